package webhook_test

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.temporal.io/api/serviceerror"

	"github.com/outlookd/outlookd/internal/testenv"
	"github.com/outlookd/outlookd/store"
	"github.com/outlookd/outlookd/webhook"
	"github.com/outlookd/outlookd/workflows"

	"go.temporal.io/sdk/client"
)

// signals records SignalWorkflow calls; err makes them fail.
type signals struct {
	client.Client
	mu    sync.Mutex
	calls []string
	err   error
}

func (s *signals) SignalWorkflow(_ context.Context, workflowID, _ string, name string, _ any) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	s.calls = append(s.calls, workflowID+" "+name)
	return nil
}

func TestReceiver(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, testenv.Postgres(t), 2)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.CreateConnection(ctx, store.Connection{ID: "c1", OrgID: "o", OwnerID: "u", State: "active", Mode: "delegated"}); err != nil {
		t.Fatal(err)
	}
	hash := sha256.Sum256([]byte("the-state"))
	if err := st.SaveSubscription(ctx, store.Subscription{ID: "sub-1", ConnectionID: "c1", ClientStateHash: hash[:], Resource: "users/x/messages", ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	sig := &signals{}
	inbox := store.NewInbox(st)
	defer inbox.Close()
	fwd := &webhook.Forwarder{Store: st, Temporal: sig}
	r := &webhook.Receiver{Store: st, Inbox: inbox}
	// forward hands what the inbox holds to the (fake) Temporal.
	forward := func() {
		t.Helper()
		if _, err := fwd.Once(ctx); err != nil {
			t.Fatal(err)
		}
	}
	post := func(handler http.HandlerFunc, target, body string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		handler(rec, httptest.NewRequest("POST", target, strings.NewReader(body)))
		return rec
	}
	note := func(sub, state string) string {
		return `{"subscriptionId":"` + sub + `","clientState":"` + state + `","changeType":"created","resource":"Users/x/Messages/1"}`
	}

	// The handshake echoes the decoded token as text/plain.
	tok := "Validation: Testing client application reachability for subscription Request-Id: 42"
	rec := post(r.Notifications, "/n?validationToken="+url.QueryEscape(tok), "")
	if rec.Code != 200 || rec.Body.String() != tok || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/plain") {
		t.Fatalf("handshake: %d %q", rec.Code, rec.Body.String())
	}
	// A burst for one connection is one signal; spoofed and unknown items
	// are ignored and counted.
	body := `{"value":[` + note("sub-1", "the-state") + `,` + note("sub-1", "the-state") + `,` + note("sub-1", "forged") + `,` + note("sub-9", "the-state") + `]}`
	if rec := post(r.Notifications, "/n", body); rec.Code != 202 {
		t.Fatalf("notifications: %d", rec.Code)
	}
	// Two more requests for the same connection before the forwarder runs:
	// still one signal.
	post(r.Notifications, "/n", `{"value":[`+note("sub-1", "the-state")+`]}`)
	post(r.Notifications, "/n", `{"value":[`+note("sub-1", "the-state")+`]}`)
	forward()
	if len(sig.calls) != 1 || sig.calls[0] != workflows.ConnectionWorkflowID("c1")+" "+workflows.SignalChanges {
		t.Errorf("signals = %v", sig.calls)
	}
	if r.Accepted.Load() != 4 || r.Ignored.Load() != 2 {
		t.Errorf("accepted %d, ignored %d", r.Accepted.Load(), r.Ignored.Load())
	}
	// Only forged items: 202 and no signal.
	rec = post(r.Notifications, "/n", `{"value":[`+note("sub-1", "")+`]}`)
	forward()
	if rec.Code != 202 || len(sig.calls) != 1 {
		t.Errorf("forged only: %d, %d signals", rec.Code, len(sig.calls))
	}
	// Lifecycle events become lifecycle signals.
	lc := `{"value":[{"subscriptionId":"sub-1","clientState":"the-state","lifecycleEvent":"missed"}]}`
	rec = post(r.Lifecycle, "/l", lc)
	forward()
	if rec.Code != 202 || sig.calls[len(sig.calls)-1] != workflows.ConnectionWorkflowID("c1")+" "+workflows.SignalLifecycle {
		t.Errorf("lifecycle: %d %v", rec.Code, sig.calls)
	}
	// Bad bodies.
	if rec := post(r.Notifications, "/n", `{"value":[`); rec.Code != 400 {
		t.Errorf("malformed: %d", rec.Code)
	}
	if rec := post(r.Notifications, "/n", `{"value":[`+strings.Repeat(note("sub-1", "the-state")+",", webhook.MaxBody/100)+`]}`); rec.Code != 413 {
		t.Errorf("oversize: %d", rec.Code)
	}
	// Temporal cannot take it: Graph still gets its 202 (the notification
	// is in Postgres), and the signal goes out once Temporal is back.
	sig.err = errors.New("unavailable")
	before := len(sig.calls)
	if rec := post(r.Notifications, "/n", `{"value":[`+note("sub-1", "the-state")+`]}`); rec.Code != 202 {
		t.Errorf("temporal down: %d", rec.Code)
	}
	forward()
	if n, _ := st.InboxLen(ctx); n != 1 {
		t.Errorf("while Temporal is down the inbox holds %d entries, want 1", n)
	}
	sig.err = nil
	forward()
	if n, _ := st.InboxLen(ctx); n != 0 || len(sig.calls) != before+1 {
		t.Errorf("after Temporal is back: inbox %d, %d new signals", n, len(sig.calls)-before)
	}
	// A connection that has ended: accepted, and the entry is dropped.
	sig.err = serviceerror.NewNotFound("workflow not found")
	if rec := post(r.Notifications, "/n", `{"value":[`+note("sub-1", "the-state")+`]}`); rec.Code != 202 {
		t.Errorf("ended connection: %d", rec.Code)
	}
	forward()
	if n, _ := st.InboxLen(ctx); n != 0 {
		t.Errorf("an ended connection's entry stayed: %d", n)
	}
	// A subscription unknown when its first notification came (its row not
	// yet written) is known as soon as the row is: misses are not cached.
	if err := st.CreateConnection(ctx, store.Connection{ID: "c9", OrgID: "o", OwnerID: "u9", State: "active", Mode: "delegated"}); err != nil {
		t.Fatal(err)
	}
	if err := st.SaveSubscription(ctx, store.Subscription{ID: "sub-9", ConnectionID: "c9", ClientStateHash: hash[:], Resource: "users/y/messages", ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	accepted := r.Accepted.Load()
	post(r.Notifications, "/n", `{"value":[`+note("sub-9", "the-state")+`]}`)
	if r.Accepted.Load() != accepted+1 {
		t.Error("a subscription first met unknown stayed unknown after its row was written")
	}
	// Postgres cannot keep it: 503, so Graph retries.
	down, err := store.Open(ctx, testenv.Postgres(t), 2)
	if err != nil {
		t.Fatal(err)
	}
	downInbox := store.NewInbox(down)
	defer downInbox.Close()
	down.Close()
	r2 := &webhook.Receiver{Store: st, Inbox: downInbox}
	if rec := post(r2.Notifications, "/n", `{"value":[`+note("sub-1", "the-state")+`]}`); rec.Code != 503 {
		t.Errorf("postgres down: %d", rec.Code)
	}
}

// countingStore counts the registry queries the receiver makes.
type countingStore struct {
	*store.Store
	queries atomic.Int64
}

func (c *countingStore) GetSubscriptions(ctx context.Context, ids []string) (map[string]store.Subscription, error) {
	c.queries.Add(1)
	return c.Store.GetSubscriptions(ctx, ids)
}

// TestReceiverBounds: the handshake echoes only what Graph sends, a request
// holds a bounded number of items, and unknown subscription IDs cost one
// registry query per request however many there are.
func TestReceiverBounds(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, testenv.Postgres(t), 2)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.CreateConnection(ctx, store.Connection{ID: "b1", OrgID: "o", OwnerID: "ub", State: "active", Mode: "delegated"}); err != nil {
		t.Fatal(err)
	}
	hash := sha256.Sum256([]byte("the-state"))
	if err := st.SaveSubscription(ctx, store.Subscription{ID: "sub-b1", ConnectionID: "b1", ClientStateHash: hash[:], Resource: "users/b/messages", ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	inbox := store.NewInbox(st)
	defer inbox.Close()
	cs := &countingStore{Store: st}
	r := &webhook.Receiver{Store: cs, Inbox: inbox}

	graphToken := "Validation: Testing client application reachability for subscription Request-Id: 3b3f9821-ce3f-23d9-879b-00a23f3"
	for _, tc := range []struct {
		name, method, token string
		want                int
	}{
		{"Graph's token", "POST", graphToken, 200},
		{"a GET", "GET", graphToken, 405},
		{"markup", "POST", "<script>alert(1)</script>", 400},
		{"a quote", "POST", `a"b`, 400},
		{"a control byte", "POST", "a\x00b", 400},
		{"not ASCII", "POST", "caf\u00e9", 400},
		{"empty", "POST", "", 400},
		{"over the bound", "POST", strings.Repeat("a", webhook.MaxValidationToken+1), 400},
		{"at the bound", "POST", strings.Repeat("a", webhook.MaxValidationToken), 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			r.Notifications(rec, httptest.NewRequest(tc.method, "/n?validationToken="+url.QueryEscape(tc.token), nil))
			if rec.Code != tc.want {
				t.Fatalf("status %d, want %d", rec.Code, tc.want)
			}
			if rec.Header().Get("X-Content-Type-Options") != "nosniff" || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/plain") {
				t.Errorf("headers %v", rec.Header())
			}
			if tc.want == 200 && rec.Body.String() != tc.token {
				t.Errorf("echoed %q", rec.Body.String())
			}
			if tc.want != 200 && tc.token != "" && strings.Contains(rec.Body.String(), tc.token) {
				t.Errorf("a refused token was echoed")
			}
		})
	}

	items := func(n int, known bool) string {
		parts := make([]string, n)
		for i := range parts {
			id := fmt.Sprintf("unknown-%d", i)
			if known {
				id = "sub-b1"
			}
			parts[i] = `{"subscriptionId":"` + id + `","clientState":"the-state","changeType":"created"}`
		}
		return `{"value":[` + strings.Join(parts, ",") + `]}`
	}
	post := func(body string) int {
		rec := httptest.NewRecorder()
		r.Notifications(rec, httptest.NewRequest("POST", "/n", strings.NewReader(body)))
		return rec.Code
	}
	if code := post(items(webhook.MaxItems+1, true)); code != 413 {
		t.Errorf("%d items: %d, want 413", webhook.MaxItems+1, code)
	}
	before := cs.queries.Load()
	if code := post(items(webhook.MaxItems, false)); code != 202 {
		t.Errorf("unknown items: %d", code)
	}
	if n := cs.queries.Load() - before; n != 1 {
		t.Errorf("%d unknown IDs cost %d registry queries, want 1", webhook.MaxItems, n)
	}
	// A known subscription is answered from memory after its first lookup.
	post(items(3, true))
	before = cs.queries.Load()
	if code := post(items(50, true)); code != 202 {
		t.Errorf("known items: %d", code)
	}
	if n := cs.queries.Load() - before; n != 0 {
		t.Errorf("known IDs cost %d registry queries, want 0", n)
	}
}

// recorder records the signals the forwarder sends, with their arguments.
type recorder struct {
	client.Client
	mu   sync.Mutex
	args map[string][]any
}

func (s *recorder) SignalWorkflow(_ context.Context, workflowID, _ string, name string, arg any) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.args[workflowID+" "+name] = append(s.args[workflowID+" "+name], arg)
	return nil
}

func (s *recorder) count(key string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.args[key])
}

// TestCatchUpAfterRefusal: while Postgres is cut the receiver answers 503,
// and it cannot tell whose notifications it refused. Once Postgres is back
// every connection with a subscription gets a catch-up round marked with
// the refusal's time (so its mailbox shows as behind), and again every
// CatchUpEvery while Graph may hold notifications back (HoldBack), then no
// more.
func TestCatchUpAfterRefusal(t *testing.T) {
	ctx := context.Background()
	dsn := testenv.Postgres(t)
	direct, err := store.Open(ctx, dsn, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	hash := sha256.Sum256([]byte("the-state"))
	for _, id := range []string{"k1", "k2", "k3"} {
		if err := direct.CreateConnection(ctx, store.Connection{ID: id, OrgID: "o", OwnerID: "u-" + id, State: "active", Mode: "delegated"}); err != nil {
			t.Fatal(err)
		}
		if id == "k3" {
			continue // polls: no subscription, no notification to miss
		}
		if err := direct.SaveSubscription(ctx, store.Subscription{ID: "sub-" + id, ConnectionID: id, ClientStateHash: hash[:], Resource: "users/" + id + "/messages", ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	proxy := testenv.NewProxy(t, u.Host)
	u.Host = proxy.Addr()
	st, err := store.Open(ctx, u.String(), 2)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	inbox := store.NewInbox(st)
	defer inbox.Close()
	rec := &recorder{args: map[string][]any{}}
	fwd := &webhook.Forwarder{Store: direct, Temporal: rec}
	r := &webhook.Receiver{Store: st, Inbox: inbox, Forwarder: fwd, RecoverEvery: 20 * time.Millisecond, CatchUpEvery: 300 * time.Millisecond, HoldBack: time.Second}
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { _ = r.Run(rctx) }()

	proxy.Down()
	refusedAt := time.Now()
	resp := httptest.NewRecorder()
	r.Notifications(resp, httptest.NewRequest("POST", "/n", strings.NewReader(`{"value":[{"subscriptionId":"sub-k1","clientState":"the-state","changeType":"created"}]}`)))
	if rec := resp; rec.Code != 503 {
		t.Fatalf("postgres cut: %d", rec.Code)
	}
	time.Sleep(100 * time.Millisecond)
	if n := r.CatchUps.Load(); n != 0 {
		t.Fatalf("%d catch-ups asked while Postgres is cut", n)
	}
	proxy.Up()
	recovered := time.Now()
	for deadline := time.Now().Add(10 * time.Second); r.CatchUps.Load() == 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no catch-up asked after Postgres came back")
		}
	}
	t.Logf("catch-up asked %s after recovery", time.Since(recovered).Round(time.Millisecond))
	if _, err := fwd.Once(ctx); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"k1", "k2"} {
		key := workflows.ConnectionWorkflowID(id) + " " + workflows.SignalChanges
		if rec.count(key) == 0 {
			t.Fatalf("no catch-up round for %s", id)
		}
		rec.mu.Lock()
		sig, ok := rec.args[key][0].(workflows.ChangesSignal)
		rec.mu.Unlock()
		if !ok || sig.RefusedSince.Before(refusedAt.Add(-time.Second)) || sig.RefusedSince.After(recovered) {
			t.Errorf("catch-up of %s: %#v, want the refusal's time", id, sig)
		}
	}
	if n := rec.count(workflows.ConnectionWorkflowID("k3") + " " + workflows.SignalChanges); n != 0 {
		t.Errorf("a connection without a subscription got %d catch-ups", n)
	}
	// Graph may hold notifications back for HoldBack after the refusal:
	// catch-ups again meanwhile, then none.
	time.Sleep(1500 * time.Millisecond)
	asked := r.CatchUps.Load()
	if asked < 3 || asked > 5 {
		t.Errorf("%d catch-ups in the hold-back second at one per 300 ms, want 3 to 5", asked)
	}
	time.Sleep(700 * time.Millisecond)
	if n := r.CatchUps.Load(); n != asked {
		t.Errorf("catch-ups went on after the hold-back: %d, then %d", asked, n)
	}
}

// TestReceiverRoutesToMailboxes: the subscriptions of an application
// connection's mailboxes are each a mailbox's; their notifications become
// one changes signal per mailbox, and their lifecycle events lifecycle
// signals, to the mailboxes' workflows, never the connection's. A
// catch-up after a refusal reaches each of them too.
func TestReceiverRoutesToMailboxes(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, testenv.Postgres(t), 2)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.CreateConnection(ctx, store.Connection{ID: "app1", OrgID: "o", OwnerID: "u", State: "active", Mode: "application"}); err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"mbx-a", "mbx-b"} {
		hash := sha256.Sum256([]byte("state-of-" + m))
		if err := st.SaveSubscription(ctx, store.Subscription{ID: "sub-" + m, ConnectionID: "app1", MailboxID: m, ClientStateHash: hash[:],
			Resource: "users/" + m + "/messages", ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	sig := &signals{}
	inbox := store.NewInbox(st)
	defer inbox.Close()
	fwd := &webhook.Forwarder{Store: st, Temporal: sig}
	r := &webhook.Receiver{Store: st, Inbox: inbox}
	post := func(handler http.HandlerFunc, body string) int {
		rec := httptest.NewRecorder()
		handler(rec, httptest.NewRequest("POST", "/n", strings.NewReader(body)))
		return rec.Code
	}
	note := func(m, state string) string {
		return `{"subscriptionId":"sub-` + m + `","clientState":"` + state + `","changeType":"created","resource":"Users/x/Messages/1"}`
	}
	forward := func() []string {
		t.Helper()
		sig.mu.Lock()
		sig.calls = nil
		sig.mu.Unlock()
		if _, err := fwd.Once(ctx); err != nil {
			t.Fatal(err)
		}
		sig.mu.Lock()
		defer sig.mu.Unlock()
		calls := slices.Clone(sig.calls)
		slices.Sort(calls)
		return calls
	}
	// Three for a, one for b, one with b's subscription and a's
	// clientState (forged).
	body := `{"value":[` + note("mbx-a", "state-of-mbx-a") + `,` + note("mbx-a", "state-of-mbx-a") + `,` + note("mbx-b", "state-of-mbx-b") + `,` +
		note("mbx-a", "state-of-mbx-a") + `,` + note("mbx-b", "state-of-mbx-a") + `]}`
	if code := post(r.Notifications, body); code != 202 {
		t.Fatalf("notifications: %d", code)
	}
	want := []string{workflows.MailboxWorkflowID("mbx-a") + " " + workflows.SignalChanges, workflows.MailboxWorkflowID("mbx-b") + " " + workflows.SignalChanges}
	if got := forward(); !slices.Equal(got, want) {
		t.Errorf("signals %v, want %v", got, want)
	}
	if r.Accepted.Load() != 4 || r.Ignored.Load() != 1 {
		t.Errorf("accepted %d, ignored %d", r.Accepted.Load(), r.Ignored.Load())
	}
	lc := `{"value":[{"subscriptionId":"sub-mbx-b","clientState":"state-of-mbx-b","lifecycleEvent":"reauthorizationRequired"}]}`
	if code := post(r.Lifecycle, lc); code != 202 {
		t.Fatalf("lifecycle: %d", code)
	}
	if got := forward(); !slices.Equal(got, []string{workflows.MailboxWorkflowID("mbx-b") + " " + workflows.SignalLifecycle}) {
		t.Errorf("lifecycle signals %v", got)
	}
	payload, _ := json.Marshal(workflows.ChangesSignal{RefusedSince: time.Now().UTC()})
	if n, err := inbox.CatchUp(ctx, payload); err != nil || n != 2 {
		t.Fatalf("catch-up: %d entries, %v", n, err)
	}
	if got := forward(); !slices.Equal(got, want) {
		t.Errorf("catch-up signals %v, want %v", got, want)
	}
}
