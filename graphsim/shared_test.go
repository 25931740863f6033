package graphsim_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/outlookd/outlookd/graphsim"
	"github.com/outlookd/outlookd/graphsim/simtest"
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

// A service account cannot subscribe to the shared mailbox it syncs: Graph
// documents that delegated (and .Shared) permissions subscribe only to the
// signed-in user's own mailbox, and graphsim refuses such a subscription
// rather than accept it and stay silent (docs/graph.md#subscriptions-on-shared-mailboxes).
func TestSubscriptionsOnSharedMailbox(t *testing.T) {
	o := newOrg(t, graphsim.Options{})
	ctx := context.Background()
	rc, lc := simtest.NewReceiver(t), simtest.NewReceiver(t)
	now := o.sim.Clock().Now()
	svc := o.org.ServiceToken(t, "Mail.Read", "Mail.Read.Shared")
	for _, res := range []string{"users/support@contoso.example/messages", "users/" + o.shared.ID + "/mailFolders('inbox')/messages"} {
		var ge graphErr
		st, _ := o.graphDo(t, svc, "POST", "/subscriptions", subBody(res, rc.URL, lc.URL, 2*time.Hour, now), &ge)
		if st != 403 || ge.Error.Code != "ExtensionError" || !strings.Contains(ge.Error.Message, "only the signed-in user's mailbox") {
			t.Errorf("%s: %d %+v", res, st, ge.Error)
		}
	}
	sharedOnly := o.org.ServiceToken(t, "Mail.Read.Shared")
	var ge graphErr
	if st, _ := o.graphDo(t, sharedOnly, "POST", "/subscriptions", subBody("me/messages", rc.URL, lc.URL, 2*time.Hour, now), &ge); st != 403 || ge.Error.Code != "ExtensionError" {
		t.Errorf("own mailbox with Mail.Read.Shared alone: %d %+v", st, ge.Error)
	}
	if rc.Handshakes() != 0 {
		t.Errorf("a refused subscription was validated %d times", rc.Handshakes())
	}
	c, _ := o.ctl.Counters(ctx)
	if c["subscriptions.delegated_other_mailbox_refused"] != 2 || c["subscriptions.created"] != 0 {
		t.Errorf("counters = %v", c)
	}
	// The daemon app's application permission is the documented way.
	var sub subscription
	if st, _ := o.graphDo(t, o.org.AppToken(t), "POST", "/subscriptions", subBody("users/support@contoso.example/messages", rc.URL, lc.URL, 2*time.Hour, now), &sub); st != 201 || sub.ID == "" {
		t.Errorf("app-only on the shared mailbox: %d %+v", st, sub)
	}
}
