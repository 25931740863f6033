package graphsim_test

import (
	"context"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"github.com/outlookd/outlookd/graphsim"
)

// The .Shared scopes need no admin consent (docs/graph.md#shared-mailboxes):
// a user consents to them alone, unless the tenant allows no user consent.
func TestSharedScopesConsent(t *testing.T) {
	f := newFixture(t, graphsim.Options{})
	ctx := context.Background()
	if _, err := f.ctl.AddTenant(ctx, graphsim.TenantSpec{Domain: "locked.example", AdminConsentRequired: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.ctl.AddUser(ctx, graphsim.UserSpec{Tenant: "locked.example", UPN: "bob@locked.example"}); err != nil {
		t.Fatal(err)
	}
	hint := func(u string) oauth2.AuthCodeOption { return oauth2.SetAuthURLParam("login_hint", u) }
	for _, sc := range []string{"Mail.Read.Shared", "Mail.ReadWrite.Shared", "Mail.Send.Shared"} {
		q := authorize(t, f.oauth("common", sc).AuthCodeURL("st", hint("ada@contoso.example")))
		if q.Get("code") == "" {
			t.Errorf("%s with user consent: %v", sc, q)
		}
		q = authorize(t, f.oauth("common", sc).AuthCodeURL("st", hint("bob@locked.example")))
		if q.Get("error") != "consent_required" || !strings.HasPrefix(q.Get("error_description"), "AADSTS90094:") {
			t.Errorf("%s where users may not consent: %v", sc, q)
		}
	}
	// Once the admin has granted them for the tenant, its users sign in.
	if err := f.ctl.GrantConsent(ctx, graphsim.ConsentSpec{Tenant: "locked.example", ClientID: f.app.ClientID, Scopes: []string{"Mail.Read.Shared"}}); err != nil {
		t.Fatal(err)
	}
	if q := authorize(t, f.oauth("common", "Mail.Read.Shared").AuthCodeURL("st", hint("bob@locked.example"))); q.Get("code") == "" {
		t.Errorf("after the admin's grant: %v", q)
	}
}

// A service account syncs a shared mailbox by delta with the .Shared scopes
// and its rights, checked on every page (docs/graph.md#mailbox-rights).
func TestSharedMailboxDeltaThroughServiceAccount(t *testing.T) {
	o := newOrg(t, graphsim.Options{})
	ctx := context.Background()
	shared, svc := o.shared.UPN, o.org.Service.UPN
	specs := make([]graphsim.MessageSpec, 25)
	for i := range specs {
		specs[i] = graphsim.MessageSpec{Subject: "ticket"}
	}
	ids := inject(t, o.fixture, shared, specs...)
	tok := o.org.ServiceToken(t, "Mail.Read.Shared")
	start := "/users/" + shared + "/mailFolders('inbox')/messages/delta()"
	items, deltaLink, pages := deltaRound(t, o.fixture, tok, start, "10")
	if len(items) != 25 || pages != 3 {
		t.Fatalf("first round: %d items in %d pages", len(items), pages)
	}
	if !strings.Contains(deltaLink, "/users/") || !strings.HasPrefix(deltaLink, o.sim.GraphURL()) {
		t.Errorf("deltaLink %s", deltaLink)
	}
	if err := o.ctl.DeleteMessage(ctx, shared, ids[0]); err != nil {
		t.Fatal(err)
	}
	inject(t, o.fixture, shared, graphsim.MessageSpec{Subject: "new ticket"})
	items, deltaLink, _ = deltaRound(t, o.fixture, tok, deltaLink, "10")
	if len(items) != 2 {
		t.Errorf("second round: %+v", items)
	}
	var folders struct {
		Value     []map[string]any `json:"value"`
		DeltaLink string           `json:"@odata.deltaLink"`
	}
	if st, _ := o.graphGet(t, tok, "/users/"+shared+"/mailFolders/delta()", &folders); st != 200 || len(folders.Value) < 8 || folders.DeltaLink == "" {
		t.Errorf("folder delta: %d %d", st, len(folders.Value))
	}

	// Rights revoked while a round is under way: the next page is refused,
	// and so is the folder delta.
	inject(t, o.fixture, shared, specs...)
	var p1 page
	if st, _ := o.graphGet(t, tok, deltaLink, &p1, "Prefer", "odata.maxpagesize=10"); st != 200 || p1.NextLink == "" {
		t.Fatalf("round three, page one: %d %+v", st, p1)
	}
	if err := o.ctl.RevokeMailboxRights(ctx, shared, svc, graphsim.RightFullAccess); err != nil {
		t.Fatal(err)
	}
	var ge graphErr
	if st, _ := o.graphGet(t, tok, p1.NextLink, &ge, "Prefer", "odata.maxpagesize=10"); st != 403 || ge.Error.Code != "ErrorAccessDenied" {
		t.Errorf("next page after the revocation: %d %+v", st, ge.Error)
	}
	if st, _ := o.graphGet(t, tok, "/users/"+shared+"/mailFolders/delta()", &ge); st != 403 || ge.Error.Code != "ErrorAccessDenied" {
		t.Errorf("folder delta after the revocation: %d %+v", st, ge.Error)
	}
	if st, _ := o.graphGet(t, tok, start, &ge); st != 403 {
		t.Errorf("a new round without rights: %d", st)
	}
	// Granted again, the same nextLink goes on.
	if err := o.ctl.GrantMailboxRights(ctx, shared, svc, graphsim.RightFullAccess); err != nil {
		t.Fatal(err)
	}
	if st, _ := o.graphGet(t, tok, p1.NextLink, nil, "Prefer", "odata.maxpagesize=10"); st != 200 {
		t.Errorf("next page after the grant: %d", st)
	}
	// Without the .Shared scope the rights are not enough.
	plain := o.org.ServiceToken(t, "Mail.Read")
	if st, _ := o.graphGet(t, plain, start, &ge); st != 403 || ge.Error.Code != "ErrorAccessDenied" {
		t.Errorf("Mail.Read on the shared mailbox: %d %+v", st, ge.Error)
	}
}
