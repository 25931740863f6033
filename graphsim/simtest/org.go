package simtest

import (
	"context"
	"testing"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/outlookd/outlookd/graphsim"
)

// DaemonRoles are the application permissions (app roles) of the Org's
// daemon app, all granted by the tenant's admin.
var DaemonRoles = []string{"Mail.Read", "Mail.ReadWrite", "Mail.Send", "User.Read.All", "MailboxSettings.Read"}

// ServiceRights are the rights the Org's service account holds on the
// shared mailbox: Exchange's Full Access and Send As.
var ServiceRights = []string{graphsim.RightFullAccess, graphsim.RightSendAs}

// Org is a Tenant prepared for shared mailboxes and organisation-wide sync:
// besides Ada, the admin and the shared mailbox (support@), it has a
// service account (svc-outlookd@, a licensed user with its own mailbox)
// holding ServiceRights on the shared mailbox, and a daemon app registration
// whose application permissions (DaemonRoles) the admin has granted.
type Org struct {
	*Tenant
	Service *graphsim.User
	Daemon  *graphsim.App
}

// StartOrg starts a simulator with the Org's tenant; it stops with the test.
// The Tenant's own app and users are those of Start.
func StartOrg(t testing.TB, opts graphsim.Options) *Org {
	t.Helper()
	ctx := context.Background()
	o := &Org{Tenant: Start(t, opts)}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	var err error
	o.Service, err = o.Ctl.AddUser(ctx, graphsim.UserSpec{Tenant: "contoso.example", UPN: "svc-outlookd@contoso.example", DisplayName: "outlookd Service"})
	must(err)
	must(o.Ctl.GrantMailboxRights(ctx, o.Shared.UPN, o.Service.UPN, ServiceRights...))
	o.Daemon, err = o.Ctl.AddApp(ctx, graphsim.AppSpec{Name: "outlookd daemon", HomeTenant: o.Tenant.Tenant.ID, RedirectURIs: []string{RedirectURI}, AppRoles: DaemonRoles})
	must(err)
	must(o.Ctl.GrantConsent(ctx, graphsim.ConsentSpec{Tenant: o.Tenant.Tenant.ID, ClientID: o.Daemon.ClientID, Roles: DaemonRoles}))
	return o
}

// AppCredentials is the client-credentials configuration of the daemon app
// on a tenant (its ID or domain; client credentials need one, not common).
func (o *Org) AppCredentials(tenant string) *clientcredentials.Config {
	return &clientcredentials.Config{
		ClientID:     o.Daemon.ClientID,
		ClientSecret: o.Daemon.Secrets[0].Value,
		TokenURL:     o.Sim.URL() + "/" + tenant + "/oauth2/v2.0/token",
		Scopes:       []string{graphsim.GraphResource + "/.default"},
	}
}

// AppTokenSource returns app-only tokens of the daemon app for the Org's
// tenant.
func (o *Org) AppTokenSource() oauth2.TokenSource {
	return o.AppCredentials(o.Tenant.Tenant.ID).TokenSource(context.Background())
}

// AppToken returns an app-only access token of the daemon app.
func (o *Org) AppToken(t testing.TB) string {
	t.Helper()
	tok, err := o.AppTokenSource().Token()
	if err != nil {
		t.Fatalf("client credentials: %v", err)
	}
	return tok.AccessToken
}

// ServiceToken signs the service account in with the delegated scopes and
// returns its access token.
func (o *Org) ServiceToken(t testing.TB, scopes ...string) string {
	t.Helper()
	return o.SignIn(t, o.Service.UPN, append([]string{"offline_access"}, scopes...)...).AccessToken
}
