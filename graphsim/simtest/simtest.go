// Package simtest starts a graphsim simulator with a small tenant for tests
// and signs users in through the automatic consent path with
// golang.org/x/oauth2, as the engine does.
package simtest

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"github.com/outlookd/outlookd/graphsim"
)

// RedirectURI is the app's registered redirect URI; nothing listens there,
// the tests read the redirect instead of following it.
const RedirectURI = "http://127.0.0.1:9/callback"

// Tenant is a started simulator with one work tenant (contoso.example), an
// app registration with auto-consent, a user (Ada), an admin, and a shared
// mailbox (support@).
type Tenant struct {
	Sim    *graphsim.Sim
	Ctl    *graphsim.Client
	Tenant *graphsim.Tenant
	App    *graphsim.App
	Ada    *graphsim.User
	Admin  *graphsim.User
	Shared *graphsim.User
}

// Start starts the simulator and creates the tenant; it stops with the test.
// Test receivers (NewReceiver) listen on plain http on loopback, so Start
// turns on Options.Subscriptions.InsecureHTTPNotificationURLs: Microsoft
// refuses http notification URLs. StartStrict keeps the options as given.
func Start(t testing.TB, opts graphsim.Options) *Tenant {
	t.Helper()
	opts.Subscriptions.InsecureHTTPNotificationURLs = true
	return StartStrict(t, opts)
}

// StartStrict is Start with the options exactly as given: notification URLs
// must be https unless the options say otherwise, as at Microsoft.
func StartStrict(t testing.TB, opts graphsim.Options) *Tenant {
	t.Helper()
	sim, err := graphsim.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Close)
	ctx := context.Background()
	f := &Tenant{Sim: sim, Ctl: graphsim.NewClient(sim.URL(), nil)}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	f.Tenant, err = f.Ctl.AddTenant(ctx, graphsim.TenantSpec{Domain: "contoso.example", Name: "Contoso"})
	must(err)
	f.App, err = f.Ctl.AddApp(ctx, graphsim.AppSpec{Name: "outlookd test", RedirectURIs: []string{RedirectURI}, AutoConsent: true,
		AppRoles: []string{"Mail.Read", "User.Read.All"}})
	must(err)
	f.Ada, err = f.Ctl.AddUser(ctx, graphsim.UserSpec{Tenant: "contoso.example", UPN: "ada@contoso.example", DisplayName: "Ada Lovelace"})
	must(err)
	f.Admin, err = f.Ctl.AddUser(ctx, graphsim.UserSpec{Tenant: "contoso.example", UPN: "admin@contoso.example", DisplayName: "Contoso Admin", Admin: true})
	must(err)
	f.Shared, err = f.Ctl.AddUser(ctx, graphsim.UserSpec{Tenant: "contoso.example", UPN: "support@contoso.example", DisplayName: "Support", Shared: true})
	must(err)
	return f
}

// OAuth returns an x/oauth2 config for the app on a tenant segment.
func (f *Tenant) OAuth(tenant string, scopes ...string) *oauth2.Config {
	return &oauth2.Config{
		ClientID:     f.App.ClientID,
		ClientSecret: f.App.Secrets[0].Value,
		RedirectURL:  RedirectURI,
		Scopes:       scopes,
		Endpoint: oauth2.Endpoint{
			AuthURL:  f.Sim.URL() + "/" + tenant + "/oauth2/v2.0/authorize",
			TokenURL: f.Sim.URL() + "/" + tenant + "/oauth2/v2.0/token",
		},
	}
}

// NoRedirect is a client that stops at the first redirect.
var NoRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// Authorize requests authURL and returns the query of the redirect back to
// the app (a code or an error).
func Authorize(t testing.TB, authURL string) url.Values {
	t.Helper()
	resp, err := NoRedirect.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("authorize: status %d, want a redirect", resp.StatusCode)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(loc.String(), RedirectURI) {
		t.Fatalf("redirected to %s", loc)
	}
	return loc.Query()
}

// SignIn runs authorize and the code exchange with PKCE (S256) for a user.
func (f *Tenant) SignIn(t testing.TB, user string, scopes ...string) *oauth2.Token {
	t.Helper()
	cfg := f.OAuth("common", scopes...)
	verifier := oauth2.GenerateVerifier()
	q := Authorize(t, cfg.AuthCodeURL("st4te", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("login_hint", user)))
	if q.Get("error") != "" {
		t.Fatalf("authorize error: %s: %s", q.Get("error"), q.Get("error_description"))
	}
	tok, err := cfg.Exchange(context.Background(), q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	return tok
}

// TokenSource signs a user in and returns a refreshing token source.
func (f *Tenant) TokenSource(t testing.TB, user string, scopes ...string) oauth2.TokenSource {
	t.Helper()
	tok := f.SignIn(t, user, scopes...)
	return f.OAuth("common", scopes...).TokenSource(context.Background(), tok)
}
