package webhook_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
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
