package api_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/outlookd/outlookd/graphsim"
	"github.com/outlookd/outlookd/workflows"
)

// mailboxView is what the tests read of a mailbox.
type mailboxView struct {
	ID           string `json:"id"`
	ConnectionID string `json:"connection_id"`
	Address      string `json:"address"`
	State        string `json:"state"`
	SyncMode     string `json:"sync_mode"`
	PollReason   string `json:"poll_reason"`
	MessageCount int64  `json:"message_count"`
	Source       string `json:"source"`
	Settings     struct {
		Retention string `json:"retention"`
	} `json:"settings"`
}

// TestServiceAccountThroughTheAPI: an admin connects a service account,
// whose callback page says what comes next; attaches the shared mailbox
// (refusals first, each with its code); reads its mail under the mailbox's
// routes; and detaches it keeping the mail. Members cannot connect a
// service account, and a delegated connection takes no mailbox.
func TestServiceAccountThroughTheAPI(t *testing.T) {
	h := newHarness(t, graphsim.Options{})
	ctx := context.Background()
	e := h.e
	if err := e.Ctl.GrantMailboxRights(ctx, e.Shared.UPN, e.Ada.UPN, graphsim.RightFullAccess); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Ctl.InjectMessages(ctx, e.Shared.UPN, make([]graphsim.MessageSpec, 12)...); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, key, user string
		body            map[string]any
		status          int
		code            string
	}{
		{"a member", h.acme, "me", map[string]any{"kind": "service_account"}, 403, "admin_required"},
		{"an unknown kind", h.acmeAdmin, "", map[string]any{"kind": "shared", "owner": "it"}, 422, "invalid_kind"},
	} {
		if r := h.call(t, "POST", "/v1/connections", tc.key, tc.user, tc.body); r.status != tc.status || r.code() != tc.code {
			t.Errorf("%s: %d %s, want %d %s", tc.name, r.status, r.code(), tc.status, tc.code)
		}
	}
	var c conn
	r := h.call(t, "POST", "/v1/connections", h.acmeAdmin, "", map[string]any{"kind": "service_account", "owner": "it", "login_hint": e.Ada.UPN})
	if r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	r.json(t, &c)
	if !strings.Contains(c.AuthorizeURL, "Mail.Read.Shared") {
		t.Errorf("a service account's consent asks for %s", c.AuthorizeURL)
	}
	if page := h.consent(t, c.AuthorizeURL); page.status != 200 || !strings.Contains(string(page.body), "The service account is connected") {
		t.Fatalf("callback page: %d %s", page.status, page.body)
	}
	base := "/v1/connections/" + c.ID + "/mailboxes"
	for _, tc := range []struct {
		body   map[string]any
		status int
		code   string
	}{
		{map[string]any{"address": "Support <" + e.Shared.UPN + ">"}, 422, "invalid_address"},
		{map[string]any{"address": e.Admin.UPN}, 422, "mailbox_unreachable"},
		{map[string]any{"address": "nobody@contoso.example"}, 422, "mailbox_unreachable"},
		{map[string]any{"address": e.Shared.UPN, "backfill_days": -1}, 422, "invalid_settings"},
		{map[string]any{"address": e.Shared.UPN, "colour": "red"}, 400, "unknown_field"},
	} {
		if r := h.call(t, "POST", base, h.acmeAdmin, "", tc.body); r.status != tc.status || r.code() != tc.code {
			t.Errorf("attach %v: %d %s %s, want %d %s", tc.body, r.status, r.code(), r.body, tc.status, tc.code)
		}
	}
	var m mailboxView
	r = h.call(t, "POST", base, h.acmeAdmin, "", map[string]any{"address": e.Shared.UPN, "retention": "keep"})
	if r.status != 201 {
		t.Fatalf("attach: %d %s", r.status, r.body)
	}
	r.json(t, &m)
	if m.ConnectionID != c.ID || m.Address != e.Shared.UPN || m.State != "active" {
		t.Errorf("attached: %+v", m)
	}
	if r := h.call(t, "POST", base, h.acmeAdmin, "", map[string]any{"address": strings.ToUpper(e.Shared.UPN)}); r.status != 409 || r.code() != "already_attached" {
		t.Errorf("attaching again: %d %s", r.status, r.code())
	}
	for deadline := time.Now().Add(30 * time.Second); m.MessageCount < 12 || m.SyncMode == ""; time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the mailbox did not backfill: %+v", m)
		}
		h.call(t, "GET", base+"/"+m.ID, h.acmeAdmin, "", nil).json(t, &m)
	}
	if m.SyncMode != "polling" || m.PollReason == "" || m.Source != "workflow" {
		t.Errorf("a shared mailbox: %+v", m)
	}
	var page struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	h.call(t, "GET", base+"/"+m.ID+"/messages?limit=5", h.acmeAdmin, "", nil).json(t, &page)
	if len(page.Data) != 5 {
		t.Fatalf("messages of the mailbox: %+v", page)
	}
	if r := h.call(t, "GET", base+"/"+m.ID+"/messages/"+page.Data[0].ID, h.acmeAdmin, "", nil); r.status != 200 || !strings.Contains(string(r.body), `"source":"graph"`) {
		t.Errorf("a message of the mailbox, body fetched from its mailbox: %d %s", r.status, r.body)
	}
	if r := h.call(t, "GET", "/v1/connections/"+c.ID+"/messages/"+page.Data[0].ID, h.acmeAdmin, "", nil); r.status != 404 {
		t.Errorf("the shared mailbox's message under the connection's own routes: %d", r.status)
	}
	if r := h.call(t, "GET", base+"/mbx_AAAAAAAAAAAAAAAA", h.acmeAdmin, "", nil); r.status != 404 || r.code() != "mailbox_not_found" {
		t.Errorf("an unknown mailbox: %d %s", r.status, r.code())
	}
	if r := h.call(t, "DELETE", base+"/"+m.ID+"?retention=forever", h.acmeAdmin, "", nil); r.status != 422 || r.code() != "invalid_retention" {
		t.Errorf("detach with a wrong retention: %d %s", r.status, r.code())
	}
	if r := h.call(t, "DELETE", base+"/"+m.ID, h.acmeAdmin, "", nil); r.status != 202 {
		t.Fatalf("detach: %d %s", r.status, r.body)
	}
	for deadline := time.Now().Add(30 * time.Second); m.State != "disconnected"; time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the mailbox was not detached: %+v", m)
		}
		h.call(t, "GET", base+"/"+m.ID, h.acmeAdmin, "", nil).json(t, &m)
	}
	if m.MessageCount < 12 || m.Settings.Retention != "keep" {
		t.Errorf("detached keeping its mail: %+v", m)
	}

	// Attached again, its workflow terminated by an operator: a detach
	// still applies the retention asked and records it detached.
	r = h.call(t, "POST", base, h.acmeAdmin, "", map[string]any{"address": e.Shared.UPN})
	if r.status != 201 {
		t.Fatalf("attach again: %d %s", r.status, r.body)
	}
	r.json(t, &m)
	if err := e.Temporal.TerminateWorkflow(ctx, workflows.MailboxWorkflowID(m.ID), "", "operator"); err != nil {
		t.Fatal(err)
	}
	var ended struct {
		Reason     string `json:"reason"`
		NextAction string `json:"next_action"`
	}
	h.call(t, "GET", base+"/"+m.ID, h.acmeAdmin, "", nil).json(t, &ended)
	if ended.Reason != "workflow_ended" || ended.NextAction != "repair, or detach to clean up" {
		t.Errorf("a terminated mailbox shows %+v", ended)
	}
	if r := h.call(t, "POST", base+"/"+m.ID+"/resync", h.acmeAdmin, "", nil); r.status != 409 || r.code() != "mailbox_ended" {
		t.Errorf("resync of a terminated mailbox: %d %s", r.status, r.code())
	}
	// An operator repairs it: it goes on from its cursors, and new mail
	// comes with its next round.
	repair := base + "/" + m.ID + "/repair"
	// (A user's key does not see the service account's connection.)
	if r := h.call(t, "POST", repair, h.acme, "u-ada", nil); r.status != 404 {
		t.Errorf("repair with a user's key: %d %s", r.status, r.body)
	}
	if r := h.call(t, "POST", base+"/"+c.ID+"/repair", h.acmeAdmin, "", nil); r.status != 404 && r.code() != "connection_mailbox" {
		t.Errorf("repair of the connection's ID as a mailbox: %d %s", r.status, r.body)
	}
	if r := h.call(t, "POST", repair, h.acmeAdmin, "", nil); r.status != 200 {
		t.Fatalf("repair: %d %s", r.status, r.body)
	}
	before := m.MessageCount
	for deadline := time.Now().Add(30 * time.Second); m.Source != "workflow" || m.State != "active" || m.MessageCount < before; time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the repaired mailbox: %+v", m)
		}
		h.call(t, "GET", base+"/"+m.ID, h.acmeAdmin, "", nil).json(t, &m)
	}
	if r := h.call(t, "POST", repair, h.acmeAdmin, "", nil); r.status != 409 || r.code() != "workflow_running" {
		t.Errorf("repair of a running mailbox: %d %s", r.status, r.body)
	}
	if _, err := e.Ctl.InjectMessages(ctx, e.Shared.UPN, graphsim.MessageSpec{Subject: "after the repair"}); err != nil {
		t.Fatal(err)
	}
	if r := h.call(t, "POST", base+"/"+m.ID+"/resync", h.acmeAdmin, "", nil); r.status != 202 {
		t.Errorf("resync after the repair: %d %s", r.status, r.body)
	}
	for deadline := time.Now().Add(30 * time.Second); m.MessageCount < before+1; time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("new mail after the repair: %+v", m)
		}
		h.call(t, "GET", base+"/"+m.ID, h.acmeAdmin, "", nil).json(t, &m)
	}
	if err := e.Temporal.TerminateWorkflow(ctx, workflows.MailboxWorkflowID(m.ID), "", "operator again"); err != nil {
		t.Fatal(err)
	}
	if r := h.call(t, "DELETE", base+"/"+m.ID+"?retention=delete", h.acmeAdmin, "", nil); r.status != 200 {
		t.Fatalf("detach of a terminated mailbox: %d %s", r.status, r.body)
	}
	h.call(t, "GET", base+"/"+m.ID, h.acmeAdmin, "", nil).json(t, &m)
	if m.State != "disconnected" || m.MessageCount != 0 {
		t.Errorf("a terminated mailbox detached: %+v", m)
	}

	// A delegated connection takes no mailbox.
	var own conn
	h.call(t, "POST", "/v1/connections", h.acme, "ada", map[string]any{"login_hint": e.Ada.UPN}).json(t, &own)
	if r := h.call(t, "POST", "/v1/connections/"+own.ID+"/mailboxes", h.acme, "ada", map[string]any{"address": e.Shared.UPN}); r.status != 409 || r.code() != "not_a_service_account" {
		t.Errorf("attach to a delegated connection: %d %s", r.status, r.code())
	}

	// Once the service account is disconnected, nothing under it is
	// repaired.
	if r := h.call(t, "DELETE", "/v1/connections/"+c.ID, h.acmeAdmin, "", nil); r.status >= 300 {
		t.Fatalf("disconnect the service account: %d %s", r.status, r.body)
	}
	h.waitConn(t, c.ID, h.acmeAdmin, "", "disconnected", func(c conn) bool { return c.State == workflows.StateDisconnected })
	if r := h.call(t, "POST", repair, h.acmeAdmin, "", nil); r.status != 409 || r.code() != "connection_ended" {
		t.Errorf("repair under a disconnected connection: %d %s", r.status, r.body)
	}
}
