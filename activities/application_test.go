package activities_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/outlookd/outlookd/activities"
	"github.com/outlookd/outlookd/graphsim"
	"github.com/outlookd/outlookd/graphsim/simtest"
	"github.com/outlookd/outlookd/identity"
)

// TestCheckApplicationCredential checks application credentials against
// graphsim's identity platform and directory as an administrator would get
// them wrong: each refusal carries the reason the API answers with, and a
// right one gives the tenant and the permissions granted.
func TestCheckApplicationCredential(t *testing.T) {
	ctx := context.Background()
	org := simtest.StartOrg(t, graphsim.Options{})
	tenant := org.Tenant.Tenant.ID
	roles := []string{"User.Read.All", "Mail.Read", "MailboxSettings.Read"}
	add := func(name string, spec graphsim.AppSpec, granted []string) *graphsim.App {
		t.Helper()
		spec.Name, spec.AppRoles = name, roles
		app, err := org.Ctl.AddApp(ctx, spec)
		if err != nil {
			t.Fatal(err)
		}
		if len(granted) > 0 {
			if err := org.Ctl.GrantConsent(ctx, graphsim.ConsentSpec{Tenant: tenant, ClientID: app.ClientID, Roles: granted}); err != nil {
				t.Fatal(err)
			}
		}
		return app
	}
	good := add("indexer", graphsim.AppSpec{}, roles)
	expired := add("expired", graphsim.AppSpec{SecretExpires: org.Sim.Clock().Now().Add(-time.Hour)}, roles)
	unconsented := add("unconsented", graphsim.AppSpec{}, nil)
	partial := add("partial", graphsim.AppSpec{}, []string{"Mail.Read", "User.Read.All"})
	noDirectory := add("no-directory", graphsim.AppSpec{}, []string{"Mail.Read", "MailboxSettings.Read"})
	check := activities.Credentials{A: &activities.Activities{GraphURL: org.Sim.GraphURL(),
		Identity: identity.Config{AuthorityURL: org.Sim.AuthorityURL(), ClientID: good.ClientID}}}
	cred := func(tenant string, app *graphsim.App, secret string) identity.AppCredential {
		if secret == "" {
			secret = app.Secrets[0].Value
		}
		return identity.AppCredential{Tenant: tenant, ClientID: app.ClientID, Secret: secret}
	}
	for _, tc := range []struct {
		name    string
		cred    identity.AppCredential
		want    identity.AppReason
		missing []string
	}{
		{"wrong secret", cred(tenant, good, "not-it"), identity.AppInvalidSecret, nil},
		{"expired secret", cred(tenant, expired, ""), identity.AppSecretExpired, nil},
		{"unknown tenant", cred("nowhere.example", good, ""), identity.AppTenantNotFound, nil},
		{"personal accounts", cred("consumers", good, ""), identity.AppPersonalTenant, nil},
		{"common", cred("common", good, ""), identity.AppPersonalTenant, nil},
		{"not a tenant", cred("contoso example", good, ""), identity.AppTenantNotFound, nil},
		{"no admin consent", cred(tenant, unconsented, ""), identity.AppConsentRequired, nil},
		{"MailboxSettings.Read missing", cred(tenant, partial, ""), identity.AppPermissionMissing, []string{"MailboxSettings.Read"}},
		{"User.Read.All missing", cred(tenant, noDirectory, ""), identity.AppPermissionMissing, []string{"User.Read.All"}},
	} {
		_, err := check.Check(ctx, tc.cred)
		var ae *identity.AppError
		if !errors.As(err, &ae) || ae.Reason != tc.want || !slices.Equal(ae.Missing, tc.missing) || ae.Text == "" {
			t.Errorf("%s: %v (%+v), want %s %v", tc.name, err, ae, tc.want, tc.missing)
		}
	}
	for _, tenantName := range []string{tenant, "contoso.example"} {
		got, err := check.Check(ctx, cred(tenantName, good, ""))
		if err != nil || got.TenantID != tenant || identity.MissingPermissions(got.Roles) != nil || got.Token == nil {
			t.Errorf("a right credential (tenant %s): %+v %v", tenantName, got, err)
		}
	}
}
