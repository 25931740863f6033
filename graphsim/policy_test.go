package graphsim_test

import (
	"context"
	"testing"
	"time"

	"golang.org/x/oauth2/clientcredentials"

	"github.com/outlookd/outlookd/graphsim"
	"github.com/outlookd/outlookd/graphsim/simtest"
)

// An application access policy narrows an app's application permissions to
// some mailboxes (RestrictAccess) or keeps it out of some (DenyAccess);
// delegated calls, other apps and the directory are not affected
// (docs/graph.md#application-access-policies).
func TestAppAccessPolicy(t *testing.T) {
	o := newOrg(t, graphsim.Options{})
	ctx := context.Background()
	rc, lc := simtest.NewReceiver(t), simtest.NewReceiver(t)
	now := o.sim.Clock().Now()
	app := o.org.AppToken(t)
	// The tenant's other app, with Mail.Read granted too.
	if err := o.ctl.GrantConsent(ctx, graphsim.ConsentSpec{Tenant: o.tenant.ID, ClientID: o.app.ClientID, Roles: []string{"Mail.Read"}}); err != nil {
		t.Fatal(err)
	}
	cc := clientcredentials.Config{ClientID: o.app.ClientID, ClientSecret: o.app.Secrets[0].Value, TokenURL: o.sim.URL() + "/" + o.tenant.ID + "/oauth2/v2.0/token", Scopes: []string{graphsim.GraphResource + "/.default"}}
	otherTok, err := cc.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	other := otherTok.AccessToken
	delegated := o.token(t, "Mail.Read")

	type call struct {
		name, token, method, path string
		body                      any
		status                    int
		code                      string
	}
	denied := func(name, path string) call {
		return call{name, app, "GET", path, nil, 403, "ErrorAccessDenied"}
	}
	ok := func(name, token, path string) call { return call{name, token, "GET", path, nil, 200, ""} }
	run := func(phase string, calls []call) {
		t.Helper()
		for _, c := range calls {
			var ge graphErr
			st, _ := o.graphDo(t, c.token, c.method, c.path, c.body, &ge)
			if st != c.status || ge.Error.Code != c.code {
				t.Errorf("%s, %s: %d %+v", phase, c.name, st, ge.Error)
			}
			if c.status == 403 && c.code == "ErrorAccessDenied" && ge.Error.Message != "Access to OData is disabled." {
				t.Errorf("%s, %s: message %q", phase, c.name, ge.Error.Message)
			}
		}
	}
	run("no policy", []call{ok("ada", app, "/users/ada@contoso.example/messages"), ok("support", app, "/users/support@contoso.example/messages")})

	if err := o.ctl.SetAppAccessPolicy(ctx, graphsim.AppAccessPolicy{Tenant: "contoso.example", AppID: o.org.Daemon.ClientID, AccessRight: graphsim.PolicyRestrictAccess, Members: []string{"support@contoso.example"}}); err != nil {
		t.Fatal(err)
	}
	run("restricted to support", []call{
		ok("support", app, "/users/support@contoso.example/messages"),
		denied("ada's messages", "/users/ada@contoso.example/messages"),
		denied("ada's folders", "/users/ada@contoso.example/mailFolders"),
		denied("ada's delta", "/users/ada@contoso.example/mailFolders('inbox')/messages/delta()"),
		{"ada's sendMail", app, "POST", "/users/ada@contoso.example/sendMail", mailBody("x@fabrikam.example"), 403, "ErrorAccessDenied"},
		{"a subscription on ada", app, "POST", "/subscriptions", subBody("users/ada@contoso.example/messages", rc.URL, lc.URL, 2*time.Hour, now), 403, "ExtensionError"},
		ok("ada in the directory", app, "/users/ada@contoso.example"),
		ok("another app", other, "/users/ada@contoso.example/messages"),
		ok("ada herself", delegated, "/me/messages"),
	})
	var ge graphErr
	o.graphDo(t, app, "POST", "/subscriptions", subBody("users/ada@contoso.example/messages", rc.URL, lc.URL, 2*time.Hour, now), &ge)
	if ge.Error.Message != "Operation: Create; Exception: [Status Code: Forbidden; Reason: Access to OData is disabled.]" {
		t.Errorf("subscription refused with %q", ge.Error.Message)
	}

	if err := o.ctl.SetAppAccessPolicy(ctx, graphsim.AppAccessPolicy{Tenant: o.tenant.ID, AppID: o.org.Daemon.ClientID, AccessRight: graphsim.PolicyDenyAccess, Members: []string{o.shared.ID}}); err != nil {
		t.Fatal(err)
	}
	run("denied support", []call{denied("support", "/users/support@contoso.example/messages"), ok("ada", app, "/users/ada@contoso.example/messages")})
	pols, err := o.ctl.AppAccessPolicies(ctx)
	if err != nil || len(pols) != 1 || pols[0].AccessRight != graphsim.PolicyDenyAccess || len(pols[0].Members) != 1 || pols[0].Members[0] != "support@contoso.example" {
		t.Errorf("policies = %+v %v", pols, err)
	}

	if err := o.ctl.RemoveAppAccessPolicy(ctx, "contoso.example", o.org.Daemon.ClientID); err != nil {
		t.Fatal(err)
	}
	run("removed", []call{ok("support", app, "/users/support@contoso.example/messages")})
	for _, bad := range []graphsim.AppAccessPolicy{
		{Tenant: "contoso.example", AppID: o.org.Daemon.ClientID, AccessRight: "Allow"},
		{Tenant: "contoso.example", AppID: o.org.Daemon.ClientID, AccessRight: graphsim.PolicyDenyAccess, Members: []string{"nobody@contoso.example"}},
		{Tenant: "contoso.example", AppID: "no-such-app", AccessRight: graphsim.PolicyDenyAccess},
	} {
		if err := o.ctl.SetAppAccessPolicy(ctx, bad); err == nil {
			t.Errorf("policy %+v accepted", bad)
		}
	}
}
