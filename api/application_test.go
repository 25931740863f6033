package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/outlookd/outlookd/graphsim"
	"github.com/outlookd/outlookd/workflows"
)

// TestApplicationConnectionThroughTheAPI: only an admin key creates an
// application connection; a credential Microsoft refuses, or one without
// the permissions, is answered 422 with what is wrong; one that works is
// created active, never shows its secret, reports its tenant's progress
// and directory, and takes a new secret (a wrong one refused).
func TestApplicationConnectionThroughTheAPI(t *testing.T) {
	h := newHarness(t, graphsim.Options{})
	ctx := context.Background()
	tenant := h.e.Tenant.Tenant.ID
	roles := []string{"User.Read.All", "Mail.Read", "MailboxSettings.Read"}
	app, err := h.e.Ctl.AddApp(ctx, graphsim.AppSpec{Name: "indexer", AppRoles: roles, Secret: "indexer-secret-1"})
	if err != nil {
		t.Fatal(err)
	}
	partial, err := h.e.Ctl.AddApp(ctx, graphsim.AppSpec{Name: "partial", AppRoles: roles, Secret: "partial-secret-1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.e.Ctl.GrantConsent(ctx, graphsim.ConsentSpec{Tenant: tenant, ClientID: app.ClientID, Roles: roles}); err != nil {
		t.Fatal(err)
	}
	if err := h.e.Ctl.GrantConsent(ctx, graphsim.ConsentSpec{Tenant: tenant, ClientID: partial.ClientID, Roles: roles[:2]}); err != nil {
		t.Fatal(err)
	}
	body := func(tenant, client, secret string) map[string]any {
		return map[string]any{"kind": "application", "owner": "it-admin", "tenant": tenant, "client_id": client, "client_secret": secret,
			"client_secret_expires_at": time.Now().Add(60 * 24 * time.Hour).UTC().Format(time.RFC3339), "selection": map[string]any{"shared": true}}
	}
	member := body(tenant, app.ClientID, "indexer-secret-1")
	delete(member, "owner")
	if r := h.call(t, "POST", "/v1/connections", h.acme, "u1", member); r.status != http.StatusForbidden || r.code() != "admin_required" {
		t.Errorf("a member key: %d %s", r.status, r.body)
	}
	for _, tc := range []struct {
		name string
		body map[string]any
		code string
	}{
		{"wrong secret", body(tenant, app.ClientID, "wrong"), "invalid_client_secret"},
		{"personal accounts", body("consumers", app.ClientID, "indexer-secret-1"), "personal_account_unsupported"},
		{"unknown tenant", body("nowhere.example", app.ClientID, "indexer-secret-1"), "tenant_not_found"},
		{"a permission missing", body(tenant, partial.ClientID, "partial-secret-1"), "permission_missing"},
		{"no secret", body(tenant, app.ClientID, ""), "client_secret_required"},
	} {
		r := h.call(t, "POST", "/v1/connections", h.acmeAdmin, "", tc.body)
		if r.status != http.StatusUnprocessableEntity || r.code() != tc.code {
			t.Errorf("%s: %d %s, want 422 %s", tc.name, r.status, r.body, tc.code)
		}
		if tc.code == "permission_missing" && !strings.Contains(string(r.body), `"missing_permissions":["MailboxSettings.Read"]`) {
			t.Errorf("permission missing: %s", r.body)
		}
	}
	r := h.call(t, "POST", "/v1/connections", h.acmeAdmin, "", body(tenant, app.ClientID, "indexer-secret-1"))
	if r.status != http.StatusCreated || strings.Contains(string(r.body), "indexer-secret-1") {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	var created struct {
		ID, Kind, State string
		TenantID        string `json:"tenant_id"`
	}
	r.json(t, &created)
	if created.Kind != "application" || created.State != "active" || created.TenantID != tenant {
		t.Errorf("created: %+v", created)
	}
	// The same tenant again, by its domain (as pasted, with a space): one
	// application connection per organisation and tenant.
	again := h.call(t, "POST", "/v1/connections", h.acmeAdmin, "", body(h.e.Tenant.Tenant.Domain+" ", app.ClientID, "indexer-secret-1"))
	if again.status != http.StatusConflict || again.code() != "tenant_already_connected" || !strings.Contains(string(again.body), created.ID) {
		t.Errorf("a second application connection of the tenant: %d %s", again.status, again.body)
	}
	// It syncs; it does not send, nor make drafts.
	for _, path := range []string{"/sends", "/drafts"} {
		sr := h.callWith(t, "POST", "/v1/connections/"+created.ID+path, h.acmeAdmin, "",
			map[string]any{"to": []map[string]string{{"address": "a@contoso.example"}}}, "Idempotency-Key", "k-1")
		if sr.status != http.StatusUnprocessableEntity || sr.code() != "send_not_supported" {
			t.Errorf("POST %s on an application connection: %d %s", path, sr.status, sr.body)
		}
	}
	type view struct {
		Application struct {
			ClientID string `json:"client_id"`
			Syncing  int    `json:"syncing"`
			Progress struct {
				Discovered int            `json:"discovered"`
				Excluded   map[string]int `json:"excluded_reasons"`
			} `json:"progress"`
			Discovery struct {
				Rounds int `json:"rounds"`
			} `json:"discovery"`
		} `json:"application"`
	}
	var v view
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(300 * time.Millisecond) {
		r = h.call(t, "GET", "/v1/connections/"+created.ID, h.acmeAdmin, "", nil)
		v = view{}
		_ = json.Unmarshal(r.body, &v)
		if v.Application.Discovery.Rounds >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no discovery round: %s", r.body)
		}
	}
	if v.Application.ClientID != app.ClientID || v.Application.Syncing < 3 || v.Application.Progress.Discovered < 3 {
		t.Errorf("progress: %+v", v.Application)
	}
	r = h.call(t, "GET", "/v1/connections/"+created.ID+"/directory?status=syncing", h.acmeAdmin, "", nil)
	var dir struct {
		Data []struct {
			Address   string `json:"address"`
			MailboxID string `json:"mailbox_id"`
			Shared    bool   `json:"shared"`
		} `json:"data"`
	}
	r.json(t, &dir)
	shared := false
	for _, u := range dir.Data {
		shared = shared || u.Shared && u.Address == h.e.Shared.UPN
	}
	if len(dir.Data) != v.Application.Syncing || !shared {
		t.Errorf("directory: %s", r.body)
	}
	// The app detaches two mailboxes, one of them with its workflow
	// terminated by an operator: each user stays out of the connection
	// (excluded, "detached"), even after another discovery round.
	if len(dir.Data) < 2 {
		t.Fatalf("directory: %s", r.body)
	}
	running, terminated := dir.Data[0], dir.Data[1]
	if err := h.e.Temporal.TerminateWorkflow(ctx, workflows.MailboxWorkflowID(terminated.MailboxID), "", "operator"); err != nil {
		t.Fatal(err)
	}
	base := "/v1/connections/" + created.ID + "/mailboxes/"
	if r := h.call(t, "DELETE", base+running.MailboxID, h.acmeAdmin, "", nil); r.status != http.StatusAccepted {
		t.Errorf("detach a mailbox: %d %s", r.status, r.body)
	}
	if r := h.call(t, "DELETE", base+terminated.MailboxID, h.acmeAdmin, "", nil); r.status != http.StatusOK {
		t.Errorf("detach a terminated mailbox: %d %s", r.status, r.body)
	}
	if r := h.call(t, "POST", "/v1/connections/"+created.ID+"/discover", h.acmeAdmin, "", nil); r.status >= 300 {
		t.Errorf("discover: %d %s", r.status, r.body)
	}
	for _, u := range []string{running.Address, terminated.Address} {
		var got struct {
			Data []struct {
				Address, Status, Reason string
			} `json:"data"`
		}
		h.call(t, "GET", "/v1/connections/"+created.ID+"/directory?status=excluded", h.acmeAdmin, "", nil).json(t, &got)
		found := false
		for _, d := range got.Data {
			found = found || d.Address == u && d.Reason == "detached"
		}
		if !found {
			t.Errorf("%s not excluded as detached: %+v", u, got.Data)
		}
	}
	for _, id := range []string{running.MailboxID, terminated.MailboxID} {
		var m struct {
			State string `json:"state"`
		}
		for deadline := time.Now().Add(30 * time.Second); m.State != "disconnected"; time.Sleep(200 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("mailbox %s not detached: %+v", id, m)
			}
			h.call(t, "GET", base+id, h.acmeAdmin, "", nil).json(t, &m)
		}
	}
	if r := h.call(t, "GET", "/v1/connections/"+created.ID+"/directory?status=nonsense", h.acmeAdmin, "", nil); r.code() != "invalid_status" {
		t.Errorf("a wrong status: %d %s", r.status, r.body)
	}
	if r := h.call(t, "PUT", "/v1/connections/"+created.ID+"/credential", h.acmeAdmin, "", map[string]any{"client_secret": "wrong"}); r.status != 422 || r.code() != "invalid_client_secret" {
		t.Errorf("a wrong new secret: %d %s", r.status, r.body)
	}
	if err := h.e.Ctl.AddSecret(ctx, app.ClientID, "indexer-secret-2", time.Now().Add(365*24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	r = h.call(t, "PUT", "/v1/connections/"+created.ID+"/credential", h.acmeAdmin, "", map[string]any{"client_secret": "indexer-secret-2",
		"client_secret_expires_at": time.Now().Add(365 * 24 * time.Hour).UTC().Format(time.RFC3339)})
	if r.status != http.StatusOK || strings.Contains(string(r.body), "indexer-secret") {
		t.Errorf("rotation: %d %s", r.status, r.body)
	}
}
