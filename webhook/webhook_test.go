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
	r := &webhook.Receiver{Store: st, Temporal: sig}
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
	if len(sig.calls) != 1 || sig.calls[0] != workflows.ConnectionWorkflowID("c1")+" "+workflows.SignalChanges {
		t.Errorf("signals = %v", sig.calls)
	}
	if r.Accepted.Load() != 2 || r.Ignored.Load() != 2 {
		t.Errorf("accepted %d, ignored %d", r.Accepted.Load(), r.Ignored.Load())
	}
	// Only forged items: 202 and no signal.
	if rec := post(r.Notifications, "/n", `{"value":[`+note("sub-1", "")+`]}`); rec.Code != 202 || len(sig.calls) != 1 {
		t.Errorf("forged only: %d, %d signals", rec.Code, len(sig.calls))
	}
	// Lifecycle events become lifecycle signals.
	lc := `{"value":[{"subscriptionId":"sub-1","clientState":"the-state","lifecycleEvent":"missed"}]}`
	if rec := post(r.Lifecycle, "/l", lc); rec.Code != 202 || sig.calls[len(sig.calls)-1] != workflows.ConnectionWorkflowID("c1")+" "+workflows.SignalLifecycle {
		t.Errorf("lifecycle: %d %v", rec.Code, sig.calls)
	}
	// Bad bodies.
	if rec := post(r.Notifications, "/n", `{"value":[`); rec.Code != 400 {
		t.Errorf("malformed: %d", rec.Code)
	}
	if rec := post(r.Notifications, "/n", `{"value":[`+strings.Repeat(note("sub-1", "the-state")+",", webhook.MaxBody/100)+`]}`); rec.Code != 413 {
		t.Errorf("oversize: %d", rec.Code)
	}
	// Temporal cannot take it: 503, so Graph retries.
	sig.err = errors.New("unavailable")
	if rec := post(r.Notifications, "/n", `{"value":[`+note("sub-1", "the-state")+`]}`); rec.Code != 503 {
		t.Errorf("temporal down: %d", rec.Code)
	}
	// A connection that has ended: accepted, nothing to do.
	sig.err = serviceerror.NewNotFound("workflow not found")
	if rec := post(r.Notifications, "/n", `{"value":[`+note("sub-1", "the-state")+`]}`); rec.Code != 202 {
		t.Errorf("ended connection: %d", rec.Code)
	}
}
