package api_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/outlookd/outlookd/api"
	"github.com/outlookd/outlookd/graphsim"
	"github.com/outlookd/outlookd/internal/enginetest"
	"github.com/outlookd/outlookd/store"
	"github.com/outlookd/outlookd/workflows"
)

type sendView struct {
	ID         string `json:"id"`
	Kind       string `json:"kind"`
	MailboxID  string `json:"mailbox_id"`
	Sender     string `json:"sender"`
	State      string `json:"state"`
	Reason     string `json:"reason"`
	ReasonText string `json:"reason_text"`
	MessageID  string `json:"message_id"`
	Recipients int    `json:"recipients"`
}

// sendingConnection connects Ada's mailbox with reading and sending.
func (h *harness) sendingConnection(t *testing.T) string {
	t.Helper()
	r := h.call(t, "POST", "/v1/connections", h.acme, "u-ada", map[string]any{
		"features": map[string]bool{"read": true, "send": true}, "login_hint": h.e.Ada.UPN, "folders": []string{"inbox", "sentitems"},
	})
	var c conn
	r.json(t, &c)
	if r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	h.consent(t, c.AuthorizeURL)
	h.waitConn(t, c.ID, h.acme, "u-ada", "active", func(c conn) bool { return c.State == workflows.StateActive })
	// The registry, which the sends read, follows the workflow.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		row, err := h.e.Store.GetConnection(context.Background(), c.ID)
		if err == nil && row.State == workflows.StateActive && row.UserID != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the registry never showed the connection active: %+v %v", row, err)
		}
	}
	return c.ID
}

// send posts a send with a key.
func (h *harness) send(t *testing.T, connID, key string, body any) response {
	t.Helper()
	return h.callWith(t, "POST", "/v1/connections/"+connID+"/sends", h.acme, "u-ada", body, "Idempotency-Key", key)
}

// waitSend polls a send until it is in a final state.
func (h *harness) waitSend(t *testing.T, connID, id string) sendView {
	t.Helper()
	return h.waitSendFor(t, connID, id, 60*time.Second)
}

func (h *harness) waitSendFor(t *testing.T, connID, id string, limit time.Duration) sendView {
	t.Helper()
	return h.waitSendAs(t, connID, id, limit, h.acme, "u-ada")
}

// waitEvent waits for a connection's event by its ID.
func (h *harness) waitEvent(t *testing.T, connID, eventID string, limit time.Duration) store.Event {
	t.Helper()
	for deadline := time.Now().Add(limit); ; time.Sleep(100 * time.Millisecond) {
		evs, err := h.e.Store.Events(context.Background(), connID)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range evs {
			if e.ID == eventID {
				return e
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no event %s of connection %s", eventID, connID)
		}
	}
}

// waitSendAs is waitSendFor for a caller's key and user.
func (h *harness) waitSendAs(t *testing.T, connID, id string, limit time.Duration, key, user string) sendView {
	t.Helper()
	var s sendView
	for deadline := time.Now().Add(limit); ; time.Sleep(100 * time.Millisecond) {
		r := h.call(t, "GET", "/v1/connections/"+connID+"/sends/"+id, key, user, nil)
		if r.status == 200 {
			r.json(t, &s)
			if s.State == workflows.SendSent || s.State == workflows.SendFailed || s.State == workflows.SendCanceled {
				return s
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("send %s never ended: %d %s", id, r.status, r.body)
		}
	}
}

// TestSendExactlyOnceThroughTheAPI sends through the API while graphsim
// answers ambiguously, and checks graphsim's ground truth: one delivered
// copy and one Sent Items copy per send, linked to the send.
func TestSendExactlyOnceThroughTheAPI(t *testing.T) {
	h := newHarness(t, graphsim.Options{}, func(d *api.Deps) {
		d.SendOptions = workflows.SendOptions{Settle: 300 * time.Millisecond, SentItemsWait: 20 * time.Second}
	})
	ctx := context.Background()
	e := h.e
	id := h.sendingConnection(t)
	msg := func(subject string) map[string]any {
		return map[string]any{"to": []map[string]string{{"address": "support@contoso.example", "name": "Support"}}, "subject": subject,
			"body": map[string]string{"content_type": "text", "content": "Hello"}, "headers": []map[string]string{{"name": "x-ticket", "value": "42"}}}
	}

	// The key is required, and checked.
	if r := h.call(t, "POST", "/v1/connections/"+id+"/sends", h.acme, "u-ada", msg("no key")); r.status != 400 || r.code() != "idempotency_key_required" {
		t.Errorf("no key: %d %s", r.status, r.body)
	}
	if r := h.send(t, id, "k-1", map[string]any{"subject": "nobody"}); r.status != 422 || r.code() != "no_recipients" {
		t.Errorf("no recipients: %d %s", r.status, r.body)
	}

	for _, tc := range []struct {
		key   string
		fault graphsim.SendFault
	}{
		{"plain", graphsim.SendFault{}},
		{"delivered-then-504", graphsim.SendFault{DeliveredTimeout: 1, Times: 1}},
		{"delivered-then-reset", graphsim.SendFault{DeliveredReset: 1, Times: 1}},
		{"accepted-retry-after", graphsim.SendFault{AcceptedRetryAfter: 1, Times: 1}},
		{"lost-504", graphsim.SendFault{LostTimeout: 1, Times: 1}},
		{"lost-503", graphsim.SendFault{LostUnavailable: 1, Times: 1}},
	} {
		t.Run(tc.key, func(t *testing.T) {
			if err := e.Ctl.ClearSendFaults(ctx); err != nil {
				t.Fatal(err)
			}
			if tc.fault != (graphsim.SendFault{}) {
				tc.fault.Mailbox = e.Ada.UPN
				if err := e.Ctl.SetSendFault(ctx, tc.fault); err != nil {
					t.Fatal(err)
				}
			}
			r := h.send(t, id, tc.key, msg(tc.key))
			var s sendView
			r.json(t, &s)
			if r.status != 202 || s.ID != workflows.SendID(id, tc.key) || r.header.Get("Location") != "/v1/connections/"+id+"/sends/"+s.ID || s.Recipients != 1 {
				t.Fatalf("send: %d %s", r.status, r.body)
			}
			// The app retries with the same key: the same send, not another.
			again := h.send(t, id, tc.key, msg(tc.key))
			if again.status != 202 || again.header.Get("Idempotent-Replayed") != "true" || !strings.Contains(string(again.body), s.ID) {
				t.Errorf("retry: %d %s", again.status, again.body)
			}
			if other := h.send(t, id, tc.key, msg("another message")); other.status != 422 || other.code() != "idempotency_key_reused" {
				t.Errorf("the key for another body: %d %s", other.status, other.body)
			}
			s = h.waitSend(t, id, s.ID)
			if s.State != workflows.SendSent || s.MessageID == "" {
				t.Fatalf("ended %+v", s)
			}
			// Ground truth: exactly one accepted send, one delivered copy,
			// its Sent Items copy the send's message.
			sent, err := e.Ctl.SentMail(ctx, e.Ada.UPN)
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for _, sm := range sent {
				if sm.ExtendedProperties[workflows.SendKeyProperty] == s.ID {
					n++
					if sm.SentItemID != s.MessageID || sm.Headers["x-ticket"] != "42" {
						t.Errorf("ground truth %+v, send %+v", sm, s)
					}
				}
			}
			copies := deliveredCopies(t, e, "support@contoso.example", s.ID)
			if n != 1 || copies != 1 {
				t.Errorf("%d sends accepted and %d copies delivered, want 1 and 1", n, copies)
			}
			evs, err := e.Store.Events(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			found := false
			for _, ev := range evs {
				found = found || (ev.Type == workflows.EventSendSent && ev.Data["send_id"] == s.ID && ev.Data["message_id"] == s.MessageID)
			}
			if !found {
				t.Errorf("no send.sent event for %s", s.ID)
			}
		})
	}

	// A refusal fails the send with its reason, and sends nothing.
	if err := e.Ctl.SetSendFault(ctx, graphsim.SendFault{Mailbox: e.Ada.UPN, Blocked: 1}); err != nil {
		t.Fatal(err)
	}
	r := h.send(t, id, "blocked", msg("blocked"))
	var s sendView
	r.json(t, &s)
	if r.status != 202 {
		t.Fatalf("blocked send: %d %s", r.status, r.body)
	}
	s = h.waitSend(t, id, s.ID)
	if s.State != workflows.SendFailed || s.Reason != workflows.ReasonSubmissionBlock || s.ReasonText == "" {
		t.Errorf("blocked send: %+v", s)
	}

	// The list shows them all, newest first, page by page.
	var page struct {
		Data []sendView `json:"data"`
		Next string     `json:"next_cursor"`
	}
	lr := h.call(t, "GET", "/v1/connections/"+id+"/sends?limit=4", h.acme, "u-ada", nil)
	lr.json(t, &page)
	if lr.status != 200 || len(page.Data) != 4 || page.Data[0].ID != s.ID || page.Next == "" {
		t.Fatalf("list: %d %s", lr.status, lr.body)
	}
	lr = h.call(t, "GET", "/v1/connections/"+id+"/sends?limit=4&cursor="+page.Next, h.acme, "u-ada", nil)
	page.Data, page.Next = nil, ""
	lr.json(t, &page)
	if lr.status != 200 || len(page.Data) != 3 || page.Next != "" {
		t.Errorf("second page: %d %s", lr.status, lr.body)
	}
	if r := h.call(t, "GET", "/v1/connections/"+id+"/sends?state=failed", h.acme, "u-ada", nil); !strings.Contains(string(r.body), s.ID) || strings.Count(string(r.body), `"id"`) != 1 {
		t.Errorf("failed sends: %s", r.body)
	}
	// A reply to a synced message goes in its thread, once.
	if err := e.Ctl.ClearSendFaults(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Ctl.InjectMessages(ctx, e.Ada.UPN, graphsim.MessageSpec{Subject: "Lease", From: graphsim.Recipient{Address: "support@contoso.example"},
		To: []graphsim.Recipient{{Address: e.Ada.UPN}}, Body: "Please sign."}); err != nil {
		t.Fatal(err)
	}
	var mid string
	for deadline := time.Now().Add(60 * time.Second); mid == ""; time.Sleep(200 * time.Millisecond) {
		var msgs struct {
			Data []struct {
				ID      string `json:"id"`
				Subject string `json:"subject"`
			} `json:"data"`
		}
		h.call(t, "GET", "/v1/connections/"+id+"/messages?from=support@contoso.example", h.acme, "u-ada", nil).json(t, &msgs)
		for _, m := range msgs.Data {
			if m.Subject == "Lease" {
				mid = m.ID
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the message to answer was never synced")
		}
	}
	rr := h.callWith(t, "POST", "/v1/connections/"+id+"/messages/"+mid+"/reply", h.acme, "u-ada", map[string]any{"comment": "Signed."}, "Idempotency-Key", "reply-1")
	rr.json(t, &s)
	if rr.status != 202 {
		t.Fatalf("reply: %d %s", rr.status, rr.body)
	}
	if s = h.waitSend(t, id, s.ID); s.State != workflows.SendSent {
		t.Errorf("reply ended %+v", s)
	}
	if fr := h.callWith(t, "POST", "/v1/connections/"+id+"/messages/"+mid+"/forward", h.acme, "u-ada", map[string]any{"comment": "FYI"}, "Idempotency-Key", "fw-1"); fr.status != 422 || fr.code() != "no_recipients" {
		t.Errorf("forward to nobody: %d %s", fr.status, fr.body)
	}
	replies := 0
	delivered, _ := e.Ctl.Delivered(ctx, "support@contoso.example")
	for _, d := range delivered {
		if d.ExtendedProperties[workflows.SendKeyProperty] == s.ID && d.Subject == "RE: Lease" {
			replies++
		}
	}
	if replies != 1 {
		t.Errorf("%d copies of the reply delivered", replies)
	}

	// Another organisation sees nothing of them.
	if r := h.call(t, "GET", "/v1/connections/"+id+"/sends/"+s.ID, h.globex, "u-ada", nil); r.status != 404 {
		t.Errorf("another organisation: %d", r.status)
	}
}

// TestSendRatesQueueOrRefuse: the 31st send in a minute is queued with
// the time it will go, or refused with 429 when the app says no_queue.
func TestSendRatesQueueOrRefuse(t *testing.T) {
	h := newHarness(t, graphsim.Options{})
	id := h.sendingConnection(t)
	body := func(noQueue bool) map[string]any {
		return map[string]any{"to": []map[string]string{{"address": "support@contoso.example"}}, "subject": "rate", "no_queue": noQueue}
	}
	start := time.Now()
	for i := range 30 {
		r := h.send(t, id, "r-"+strings.Repeat("x", i+1), body(true))
		if r.status != 202 {
			t.Fatalf("send %d: %d %s", i, r.status, r.body)
		}
		if strings.Contains(string(r.body), "not_before") {
			t.Errorf("send %d within the rates shows a not_before: %s", i, r.body)
		}
	}
	r := h.send(t, id, "r-refused", body(true))
	if r.status != 429 || r.code() != "rate_limited" || r.header.Get("Retry-After") == "" {
		t.Errorf("31st with no_queue: %d %s", r.status, r.body)
	}
	r = h.send(t, id, "r-queued", body(false))
	var s struct {
		State     string    `json:"state"`
		NotBefore time.Time `json:"not_before"`
	}
	r.json(t, &s)
	if r.status != 202 || s.State != workflows.SendQueued || s.NotBefore.Before(start.Add(50*time.Second)) {
		t.Fatalf("31st queued: %d %s", r.status, r.body)
	}
	var queued sendView
	r.json(t, &queued)
	// Terminated by an operator while queued: the send says so once asked,
	// canceled, unsent.
	var ended sendView
	h.send(t, id, "r-terminated", body(false)).json(t, &ended)
	if err := h.e.Temporal.TerminateWorkflow(context.Background(), workflows.SendWorkflowID(id, "r-terminated"), "", "operator"); err != nil {
		t.Fatal(err)
	}
	if got := h.waitSend(t, id, ended.ID); got.State != workflows.SendCanceled || got.Reason != workflows.ReasonWorkflowEnded || got.ReasonText == "" {
		t.Errorf("a queued send whose workflow was terminated: %+v", got)
	}
	// Disconnected before its time, the queued send is canceled, unsent.
	if d := h.call(t, "DELETE", "/v1/connections/"+id, h.acme, "u-ada", nil); d.status != 202 {
		t.Fatalf("disconnect: %d %s", d.status, d.body)
	}
	// The disconnect saga tells it at once: it does not wait for its
	// turn (its not_before). Its send.failed event says so: the send
	// itself, final, goes with the connection's data (retention delete)
	// once the saga reaches that step, which may come first.
	canceled := h.waitEvent(t, id, queued.ID+":failed", time.Until(s.NotBefore)+60*time.Second)
	if canceled.Data["state"] != workflows.SendCanceled || canceled.Data["reason"] != workflows.ReasonConnectionEnded {
		t.Errorf("queued send after the disconnect: %+v", canceled)
	} else if late := canceled.CreatedAt.Sub(s.NotBefore); late > -5*time.Second {
		t.Errorf("the queued send was canceled %v from its time, not at the disconnect", late)
	}
	if r := h.send(t, id, "after-disconnect", body(false)); r.status != 409 || r.code() != "connection_ended" {
		t.Errorf("a send after the disconnect: %d %s", r.status, r.body)
	}
	sent, _ := h.e.Ctl.SentMail(context.Background(), h.e.Ada.UPN)
	for _, sm := range sent {
		if sm.ExtendedProperties[workflows.SendKeyProperty] == queued.ID {
			t.Error("the canceled send went")
		}
	}
}

// TestSendOnlyConnection: a connection granted Mail.Send alone sends with
// sendMail, once; it cannot reply (no drafts).
func TestSendOnlyConnection(t *testing.T) {
	h := newHarness(t, graphsim.Options{})
	ctx := context.Background()
	r := h.call(t, "POST", "/v1/connections", h.acme, "u-ada", map[string]any{
		"features": map[string]bool{"read": false, "send": true}, "login_hint": h.e.Ada.UPN,
	})
	var c conn
	r.json(t, &c)
	if r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	h.consent(t, c.AuthorizeURL)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		row, err := h.e.Store.GetConnection(ctx, c.ID)
		if err == nil && row.State == workflows.StateActive && row.UserID != "" {
			if slices.Contains(row.GrantedScopes, "Mail.Read") || slices.Contains(row.GrantedScopes, "Mail.ReadWrite") {
				t.Fatalf("a send-only connection was granted %v", row.GrantedScopes)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("never active: %+v %v", row, err)
		}
	}
	r = h.send(t, c.ID, "only-1", map[string]any{"to": []map[string]string{{"address": "support@contoso.example"}}, "subject": "send-only"})
	var s sendView
	r.json(t, &s)
	if r.status != 202 {
		t.Fatalf("send: %d %s", r.status, r.body)
	}
	if s = h.waitSend(t, c.ID, s.ID); s.State != workflows.SendSent {
		t.Errorf("ended %+v", s)
	}
	sent, err := h.e.Ctl.SentMail(ctx, h.e.Ada.UPN)
	if err != nil || len(sent) != 1 || sent[0].Source != "sendMail" || sent[0].ExtendedProperties[workflows.SendKeyProperty] != s.ID || !sent[0].SavedToSentItems {
		t.Errorf("ground truth: %+v %v", sent, err)
	}
	if r := h.callWith(t, "POST", "/v1/connections/"+c.ID+"/messages/AAMkAGx/reply", h.acme, "u-ada", map[string]any{}, "Idempotency-Key", "r"); r.status != 403 || r.code() != "read_write_not_granted" {
		t.Errorf("reply from a send-only connection: %d %s", r.status, r.body)
	}
}

// TestSendWorkerKilledMidSend stops the worker while the draft's send is
// under way (Graph slowed down so that the request is in flight) and
// starts it again: the send ends sent, with one copy delivered.
func TestSendWorkerKilledMidSend(t *testing.T) {
	h := newHarness(t, graphsim.Options{}, func(d *api.Deps) {
		d.SendOptions = workflows.SendOptions{Settle: 300 * time.Millisecond, SentItemsWait: 20 * time.Second}
	})
	ctx := context.Background()
	e := h.e
	id := h.sendingConnection(t)
	if err := e.Ctl.SetFault(ctx, graphsim.Fault{Endpoint: "messages", Latency: 700 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	r := h.send(t, id, "killed", map[string]any{"to": []map[string]string{{"address": "support@contoso.example"}}, "subject": "killed"})
	var s sendView
	r.json(t, &s)
	if r.status != 202 {
		t.Fatalf("send: %d %s", r.status, r.body)
	}
	// The draft is made and recorded: the send request is next.
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		row, err := e.Store.GetSend(ctx, id, s.ID)
		if err == nil && row.State == workflows.SendSending {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the send never reached sending: %+v %v", row, err)
		}
	}
	time.Sleep(300 * time.Millisecond)
	e.StopWorker()
	if err := e.Ctl.ClearFaults(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	e.StartWorker()
	s = h.waitSendFor(t, id, s.ID, 4*time.Minute)
	if s.State != workflows.SendSent || s.MessageID == "" {
		t.Errorf("ended %+v", s)
	}
	if copies := deliveredCopies(t, e, "support@contoso.example", s.ID); copies != 1 {
		t.Errorf("%d copies delivered", copies)
	}
}

// deliveredCopies counts the copies of a send graphsim delivered to user.
func deliveredCopies(t *testing.T, e *enginetest.Engine, user, sendID string) int {
	t.Helper()
	delivered, err := e.Ctl.Delivered(context.Background(), user)
	if err != nil {
		t.Fatal(err)
	}
	copies := 0
	for _, d := range delivered {
		if d.ExtendedProperties[workflows.SendKeyProperty] == sendID {
			copies++
		}
	}
	return copies
}
