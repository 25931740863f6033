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

// An app with the application permission Mail.Read subscribes to any
// mailbox of the tenant, the shared one included; notifications and
// lifecycle events reach it, and a mailbox its policy blocks refuses the
// subscription (docs/graph.md#subscriptions-on-shared-mailboxes).
func TestAppOnlySubscriptions(t *testing.T) {
	o := newOrg(t, graphsim.Options{})
	ctx := context.Background()
	rc, lc := simtest.NewReceiver(t), simtest.NewReceiver(t)
	now := o.sim.Clock().Now()
	app := o.org.AppToken(t)
	var shared, ada subscription
	if st, _ := o.graphDo(t, app, "POST", "/subscriptions", subBody("users/support@contoso.example/mailFolders('inbox')/messages", rc.URL, lc.URL, 2*24*time.Hour, now), &shared); st != 201 {
		t.Fatalf("subscribe to the shared inbox: %d", st)
	}
	if st, _ := o.graphDo(t, app, "POST", "/subscriptions", subBody("users/"+o.ada.ID+"/messages", rc.URL, lc.URL, 2*24*time.Hour, now), &ada); st != 201 {
		t.Fatalf("subscribe to ada's mailbox: %d", st)
	}
	inject(t, o.fixture, o.shared.UPN, graphsim.MessageSpec{Subject: "to the team"})
	inject(t, o.fixture, o.ada.UPN, graphsim.MessageSpec{Subject: "to ada"})
	items := rc.WaitFor(t, 5*time.Second, "two created", func(it []map[string]any) bool { return len(it) == 2 })
	for _, it := range items {
		if it["changeType"] != "created" || it["clientState"] != "s3cret-state" || it["tenantId"] != o.tenant.ID {
			t.Errorf("notification %v", it)
		}
	}
	// Lifecycle events: reauthorizationRequired ahead of expiry, missed,
	// subscriptionRemoved.
	o.sim.AdvanceClock(2*24*time.Hour - 30*time.Minute)
	lc.WaitFor(t, 5*time.Second, "reauthorizationRequired", func(it []map[string]any) bool {
		return simtest.Count(it, "lifecycleEvent", "reauthorizationRequired") == 2
	})
	app = o.org.AppToken(t)
	if st, _ := o.graphDo(t, app, "POST", "/subscriptions/"+shared.ID+"/reauthorize", nil, nil); st != 204 {
		t.Errorf("reauthorize: %d", st)
	}
	newExp := o.sim.Clock().Now().Add(2 * 24 * time.Hour).Format(time.RFC3339Nano)
	if st, _ := o.graphDo(t, app, "PATCH", "/subscriptions/"+shared.ID, map[string]any{"expirationDateTime": newExp}, nil); st != 200 {
		t.Errorf("renew: %d", st)
	}
	if err := o.ctl.SendLifecycle(ctx, shared.ID, "missed"); err != nil {
		t.Fatal(err)
	}
	if err := o.ctl.RemoveSubscription(ctx, ada.ID); err != nil {
		t.Fatal(err)
	}
	lc.WaitFor(t, 5*time.Second, "missed and subscriptionRemoved", func(it []map[string]any) bool {
		return simtest.Count(it, "lifecycleEvent", "missed") == 1 && simtest.Count(it, "lifecycleEvent", "subscriptionRemoved") == 1
	})

	// A policy that leaves the shared mailbox out refuses new subscriptions
	// on it, and renewals of the one there.
	if err := o.ctl.SetAppAccessPolicy(ctx, graphsim.AppAccessPolicy{Tenant: o.tenant.ID, AppID: o.org.Daemon.ClientID, AccessRight: graphsim.PolicyRestrictAccess, Members: []string{o.ada.UPN}}); err != nil {
		t.Fatal(err)
	}
	var ge graphErr
	if st, _ := o.graphDo(t, app, "POST", "/subscriptions", subBody("users/support@contoso.example/messages", rc.URL, lc.URL, 2*time.Hour, o.sim.Clock().Now()), &ge); st != 403 || !strings.Contains(ge.Error.Message, "Access to OData is disabled.") {
		t.Errorf("subscribe under the policy: %d %+v", st, ge.Error)
	}
	if st, _ := o.graphDo(t, app, "PATCH", "/subscriptions/"+shared.ID, map[string]any{"expirationDateTime": newExp}, &ge); st != 403 {
		t.Errorf("renew under the policy: %d %+v", st, ge.Error)
	}
	if st, _ := o.graphDo(t, app, "POST", "/subscriptions", subBody("users/ada@contoso.example/messages", rc.URL, lc.URL, 2*time.Hour, o.sim.Clock().Now()), nil); st != 201 {
		t.Errorf("subscribe to a mailbox the policy allows: %d", st)
	}
}
