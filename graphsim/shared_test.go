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
