package api_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/outlookd/outlookd/api"
	"github.com/outlookd/outlookd/graphsim"
	"github.com/outlookd/outlookd/workflows"
)

// TestSendFromSharedMailbox: a service account sends from a mailbox it
// attached, as Exchange's rights allow: refused without Send As or Send on
// Behalf (send_as_denied, nothing delivered); with Send As the copy comes
// from the mailbox alone, with Send on Behalf the account is its sender;
// either way the copy lands in the shared mailbox's Sent Items, once. A
// reply answers a message synced from that mailbox, and a detached mailbox
// sends nothing more.
func TestSendFromSharedMailbox(t *testing.T) {
	h := newHarness(t, graphsim.Options{}, func(d *api.Deps) {
		d.SendOptions = workflows.SendOptions{Settle: 300 * time.Millisecond, SentItemsWait: 20 * time.Second}
	})
	ctx := context.Background()
	e := h.e
	shared, account := e.Shared.UPN, e.Ada.UPN
	if err := e.Ctl.GrantMailboxRights(ctx, shared, account, graphsim.RightFullAccess); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Ctl.InjectMessages(ctx, shared, graphsim.MessageSpec{Subject: "Order 7", From: graphsim.Recipient{Address: "customer@fabrikam.example"}}); err != nil {
		t.Fatal(err)
	}
	var c conn
	r := h.call(t, "POST", "/v1/connections", h.acmeAdmin, "", map[string]any{"kind": "service_account", "owner": "it", "login_hint": account,
		"features": map[string]bool{"read": true, "send": true}})
	if r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	r.json(t, &c)
	if !strings.Contains(c.AuthorizeURL, "Mail.Send.Shared") || !strings.Contains(c.AuthorizeURL, "Mail.ReadWrite.Shared") {
		t.Errorf("a sending service account's consent asks for %s", c.AuthorizeURL)
	}
	h.consent(t, c.AuthorizeURL)
	h.waitConn(t, c.ID, h.acmeAdmin, "", "active", func(c conn) bool { return c.State == workflows.StateActive })
	var m mailboxView
	r = h.call(t, "POST", "/v1/connections/"+c.ID+"/mailboxes", h.acmeAdmin, "", map[string]any{"address": shared})
	if r.status != 201 {
		t.Fatalf("attach: %d %s", r.status, r.body)
	}
	r.json(t, &m)
	base := "/v1/connections/" + c.ID + "/mailboxes/" + m.ID
	msg := func(subject string) map[string]any {
		return map[string]any{"to": []map[string]string{{"address": "support@contoso.example"}}, "subject": subject,
			"body": map[string]string{"content_type": "text", "content": "Hello from the team"}}
	}
	post := func(path, key string, body any) (int, sendView, response) {
		r := h.callWith(t, "POST", path, h.acmeAdmin, "", body, "Idempotency-Key", key)
		var s sendView
		r.json(t, &s)
		return r.status, s, r
	}
	if st, _, r := post("/v1/connections/"+c.ID+"/sends", "own", msg("own")); st != 422 || r.code() != "mailbox_required" {
		t.Errorf("a service account's send without a mailbox: %d %s", st, r.body)
	}
	// sentFrom waits for a send and checks graphsim's ground truth: one
	// accepted send from the shared mailbox with the sender expected, one
	// delivered copy.
	sentFrom := func(t *testing.T, key, subject, wantSender string) sendView {
		t.Helper()
		st, s, r := post(base+"/sends", key, msg(subject))
		if st != 202 || s.ID != workflows.SendID(c.ID, key) {
			t.Fatalf("send: %d %s", st, r.body)
		}
		s = h.waitSendAs(t, c.ID, s.ID, 60*time.Second, h.acmeAdmin, "")
		if s.State != workflows.SendSent || s.MessageID == "" || s.MailboxID != m.ID || !strings.EqualFold(s.Sender, wantSender) {
			t.Fatalf("ended %+v, want sent from %s by %s", s, m.ID, wantSender)
		}
		sent, err := e.Ctl.SentMail(ctx, shared)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, sm := range sent {
			if sm.ExtendedProperties[workflows.SendKeyProperty] == s.ID {
				n++
				if !strings.EqualFold(sm.From, shared) || !strings.EqualFold(sm.Sender, wantSender) || sm.SentItemID != s.MessageID {
					t.Errorf("ground truth %+v", sm)
				}
			}
		}
		if copies := deliveredCopies(t, e, "support@contoso.example", s.ID); n != 1 || copies != 1 {
			t.Errorf("%d sends accepted from the shared mailbox, %d copies delivered; want 1 and 1", n, copies)
		}
		return s
	}

	// Full Access alone lets the account read, not send.
	st, s, r := post(base+"/sends", "denied", msg("denied"))
	if st != 202 {
		t.Fatalf("send: %d %s", st, r.body)
	}
	s = h.waitSendAs(t, c.ID, s.ID, 60*time.Second, h.acmeAdmin, "")
	if s.State != workflows.SendFailed || s.Reason != workflows.ReasonSendAsDenied || deliveredCopies(t, e, "support@contoso.example", s.ID) != 0 {
		t.Errorf("without Send As: %+v", s)
	}

	if err := e.Ctl.GrantMailboxRights(ctx, shared, account, graphsim.RightSendAs); err != nil {
		t.Fatal(err)
	}
	sentFrom(t, "as", "as the mailbox", shared)
	if st, again, r := post(base+"/sends", "as", msg("as the mailbox")); st != 202 || r.header.Get("Idempotent-Replayed") != "true" || again.ID != workflows.SendID(c.ID, "as") {
		t.Errorf("retry: %d %s", st, r.body)
	}
	if err := e.Ctl.RevokeMailboxRights(ctx, shared, account, graphsim.RightSendAs); err != nil {
		t.Fatal(err)
	}
	if err := e.Ctl.GrantMailboxRights(ctx, shared, account, graphsim.RightSendOnBehalf); err != nil {
		t.Fatal(err)
	}
	sentFrom(t, "behalf", "on behalf of the mailbox", account)

	// A reply to a message of the shared mailbox, once it is synced.
	var page struct {
		Data []struct {
			ID      string `json:"id"`
			Subject string `json:"subject"`
		} `json:"data"`
	}
	orderID := ""
	for deadline := time.Now().Add(30 * time.Second); orderID == "" && time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		h.call(t, "GET", base+"/messages", h.acmeAdmin, "", nil).json(t, &page)
		for _, msg := range page.Data {
			if msg.Subject == "Order 7" {
				orderID = msg.ID
			}
		}
	}
	if orderID == "" {
		t.Fatalf("the shared mailbox's message was never synced: %+v", page.Data)
	}
	if st, _, r := post("/v1/connections/"+c.ID+"/messages/"+orderID+"/reply", "reply-own", map[string]any{"comment": "x"}); st != 422 || r.code() != "mailbox_required" {
		t.Errorf("a reply without the mailbox: %d %s", st, r.body)
	}
	st, s, r = post(base+"/messages/"+orderID+"/reply", "reply", map[string]any{"comment": "We are on it."})
	if st != 202 {
		t.Fatalf("reply: %d %s", st, r.body)
	}
	s = h.waitSendAs(t, c.ID, s.ID, 60*time.Second, h.acmeAdmin, "")
	if s.State != workflows.SendSent || s.Kind != "reply" {
		t.Errorf("reply from the shared mailbox: %+v", s)
	}
	sent, err := e.Ctl.SentMail(ctx, shared)
	if err != nil {
		t.Fatal(err)
	}
	replies := 0
	for _, sm := range sent {
		if sm.ExtendedProperties[workflows.SendKeyProperty] == s.ID {
			replies++
			if sm.Subject != "RE: Order 7" || len(sm.To) != 1 || sm.To[0] != "customer@fabrikam.example" || !strings.EqualFold(sm.From, shared) {
				t.Errorf("the reply at graphsim: %+v", sm)
			}
		}
	}
	if replies != 1 {
		t.Errorf("%d replies sent from the shared mailbox, want 1", replies)
	}

	// The mailbox's sends, and none from elsewhere.
	var sends struct {
		Data []sendView `json:"data"`
	}
	h.call(t, "GET", base+"/sends", h.acmeAdmin, "", nil).json(t, &sends)
	if len(sends.Data) != 4 {
		t.Errorf("the mailbox's sends: %+v", sends.Data)
	}

	if r := h.call(t, "DELETE", base, h.acmeAdmin, "", nil); r.status != 202 {
		t.Fatalf("detach: %d %s", r.status, r.body)
	}
	for deadline := time.Now().Add(30 * time.Second); m.State != workflows.StateDisconnected; time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the mailbox was not detached: %+v", m)
		}
		h.call(t, "GET", base, h.acmeAdmin, "", nil).json(t, &m)
	}
	if st, _, r := post(base+"/sends", "after-detach", msg("after")); st != 409 || r.code() != "mailbox_detached" {
		t.Errorf("a send from a detached mailbox: %d %s", st, r.body)
	}
}
