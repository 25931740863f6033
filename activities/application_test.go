package activities_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
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

// certificatePEM makes a self-signed certificate and its key, PEM, and
// the certificate's DER.
func certificatePEM(t *testing.T) (string, []byte) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "indexer"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(365 * 24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	pk, _ := x509.MarshalPKCS8PrivateKey(key)
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})) +
		string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk})), der
}

// TestCheckApplicationCertificate: a certificate credential (Microsoft's
// preferred one) signs a client assertion; one uploaded to the app works,
// one that is not is refused, and a PEM without its key is not even sent.
func TestCheckApplicationCertificate(t *testing.T) {
	ctx := context.Background()
	org := simtest.StartOrg(t, graphsim.Options{})
	tenant := org.Tenant.Tenant.ID
	roles := []string{"User.Read.All", "Mail.Read", "MailboxSettings.Read"}
	app, err := org.Ctl.AddApp(ctx, graphsim.AppSpec{Name: "indexer", AppRoles: roles})
	if err != nil {
		t.Fatal(err)
	}
	if err := org.Ctl.GrantConsent(ctx, graphsim.ConsentSpec{Tenant: tenant, ClientID: app.ClientID, Roles: roles}); err != nil {
		t.Fatal(err)
	}
	uploaded, der := certificatePEM(t)
	if _, err := org.Sim.AddCertificate(app.ClientID, der, time.Now().Add(365*24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	other, _ := certificatePEM(t)
	check := activities.Credentials{A: &activities.Activities{GraphURL: org.Sim.GraphURL(),
		Identity: identity.Config{AuthorityURL: org.Sim.AuthorityURL()}}}
	got, err := check.Check(ctx, identity.AppCredential{Tenant: tenant, ClientID: app.ClientID, CertificatePEM: uploaded})
	if err != nil || got.TenantID != tenant {
		t.Fatalf("the uploaded certificate: %+v %v", got, err)
	}
	for _, tc := range []struct {
		name, pem string
		want      identity.AppReason
	}{
		{"a certificate not uploaded", other, identity.AppCertificateRefused},
		{"no private key", uploaded[:len(uploaded)/2], identity.AppInvalidCertificate},
	} {
		_, err := check.Check(ctx, identity.AppCredential{Tenant: tenant, ClientID: app.ClientID, CertificatePEM: tc.pem})
		var ae *identity.AppError
		if !errors.As(err, &ae) || ae.Reason != tc.want {
			t.Errorf("%s: %v, want %s", tc.name, err, tc.want)
		}
	}
}

// TestCheckApplicationGroups reads the selection's groups as creation
// does, against graphsim: a group readable passes; without a group
// permission Graph's 403 becomes permission_missing naming
// GroupMember.Read.All; a group the tenant lacks is group_not_found.
func TestCheckApplicationGroups(t *testing.T) {
	ctx := context.Background()
	org := simtest.StartOrg(t, graphsim.Options{})
	tenant := org.Tenant.Tenant.ID
	base := []string{"User.Read.All", "Mail.Read", "MailboxSettings.Read"}
	u, err := org.Ctl.AddUser(ctx, graphsim.UserSpec{Tenant: tenant, UPN: "member@contoso.example"})
	if err != nil {
		t.Fatal(err)
	}
	grp, err := org.Ctl.AddGroup(ctx, graphsim.GroupSpec{Tenant: tenant, DisplayName: "Sales", Members: []string{u.ID}})
	if err != nil {
		t.Fatal(err)
	}
	check := activities.Credentials{A: &activities.Activities{GraphURL: org.Sim.GraphURL(),
		Identity: identity.Config{AuthorityURL: org.Sim.AuthorityURL()}}}
	for _, tc := range []struct {
		name    string
		roles   []string
		group   string
		want    identity.AppReason
		missing []string
	}{
		{"GroupMember.Read.All", append(slices.Clone(base), "GroupMember.Read.All"), grp.ID, "", nil},
		{"Group.Read.All", append(slices.Clone(base), "Group.Read.All"), grp.ID, "", nil},
		{"no group permission", base, grp.ID, identity.AppPermissionMissing, []string{"GroupMember.Read.All"}},
		{"unknown group", append(slices.Clone(base), "GroupMember.Read.All"), "5d1c7a0e-0000-4000-8000-000000000000", identity.AppGroupNotFound, nil},
	} {
		app, err := org.Ctl.AddApp(ctx, graphsim.AppSpec{Name: tc.name, AppRoles: tc.roles})
		if err != nil {
			t.Fatal(err)
		}
		if err := org.Ctl.GrantConsent(ctx, graphsim.ConsentSpec{Tenant: tenant, ClientID: app.ClientID, Roles: tc.roles}); err != nil {
			t.Fatal(err)
		}
		chk, err := check.Check(ctx, identity.AppCredential{Tenant: tenant, ClientID: app.ClientID, Secret: app.Secrets[0].Value})
		if err != nil {
			t.Fatalf("%s: check: %v", tc.name, err)
		}
		err = check.CheckGroups(ctx, chk, []string{tc.group})
		var ae *identity.AppError
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (!errors.As(err, &ae) || ae.Reason != tc.want || !slices.Equal(ae.Missing, tc.missing) || ae.Text == ""):
			t.Errorf("%s: %v (%+v), want %s %v", tc.name, err, ae, tc.want, tc.missing)
		}
	}
}
