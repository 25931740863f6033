package graphsim_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"github.com/outlookd/outlookd/graphsim"
)

const redirectURI = "http://127.0.0.1:9/callback"

// fixture is a started simulator with one tenant, an app and some users.
type fixture struct {
	sim    *graphsim.Sim
	ctl    *graphsim.Client
	tenant *graphsim.Tenant
	app    *graphsim.App
	ada    *graphsim.User // a user with a mailbox
	admin  *graphsim.User
	shared *graphsim.User // a shared mailbox
}

func newFixture(t *testing.T, opts graphsim.Options) *fixture {
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
	f := &fixture{sim: sim, ctl: graphsim.NewClient(sim.URL(), nil)}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	f.tenant, err = f.ctl.AddTenant(ctx, graphsim.TenantSpec{Domain: "contoso.example", Name: "Contoso"})
	must(err)
	f.app, err = f.ctl.AddApp(ctx, graphsim.AppSpec{Name: "outlookd test", RedirectURIs: []string{redirectURI}, AutoConsent: true,
		AppRoles: []string{"Mail.Read", "User.Read.All"}})
	must(err)
	f.ada, err = f.ctl.AddUser(ctx, graphsim.UserSpec{Tenant: "contoso.example", UPN: "ada@contoso.example", DisplayName: "Ada Lovelace"})
	must(err)
	f.admin, err = f.ctl.AddUser(ctx, graphsim.UserSpec{Tenant: "contoso.example", UPN: "admin@contoso.example", DisplayName: "Contoso Admin", Admin: true})
	must(err)
	f.shared, err = f.ctl.AddUser(ctx, graphsim.UserSpec{Tenant: "contoso.example", UPN: "support@contoso.example", DisplayName: "Support", Shared: true})
	must(err)
	return f
}

// oauth returns an x/oauth2 config for the app on a tenant segment.
func (f *fixture) oauth(tenant string, scopes ...string) *oauth2.Config {
	return &oauth2.Config{
		ClientID:     f.app.ClientID,
		ClientSecret: f.app.Secrets[0].Value,
		RedirectURL:  redirectURI,
		Scopes:       scopes,
		Endpoint: oauth2.Endpoint{
			AuthURL:  f.sim.URL() + "/" + tenant + "/oauth2/v2.0/authorize",
			TokenURL: f.sim.URL() + "/" + tenant + "/oauth2/v2.0/token",
		},
	}
}

// noRedirect is a client that stops at the first redirect.
var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// authorize runs the automatic authorize path and returns the query the app
// receives on its redirect URI.
func authorize(t *testing.T, authURL string) url.Values {
	t.Helper()
	resp, err := noRedirect.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("authorize: status %d, want a redirect: %s", resp.StatusCode, b)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(loc.String(), redirectURI) {
		t.Fatalf("redirected to %s", loc)
	}
	return loc.Query()
}

// signIn runs authorize + code exchange with PKCE for a user.
func (f *fixture) signIn(t *testing.T, user string, scopes ...string) *oauth2.Token {
	t.Helper()
	cfg := f.oauth("common", scopes...)
	verifier := oauth2.GenerateVerifier()
	q := authorize(t, cfg.AuthCodeURL("st4te", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("login_hint", user)))
	if q.Get("error") != "" {
		t.Fatalf("authorize error: %s: %s", q.Get("error"), q.Get("error_description"))
	}
	tok, err := cfg.Exchange(context.Background(), q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	return tok
}

// graphGet calls Graph with a bearer token and decodes JSON into out.
func (f *fixture) graphGet(t *testing.T, token, path string, out any, headers ...string) (int, http.Header) {
	t.Helper()
	u := strings.ReplaceAll(path, " ", "%20")
	if !strings.HasPrefix(path, "http") {
		u = f.sim.GraphURL() + u
	}
	req, _ := http.NewRequest("GET", u, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Add(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("GET %s: %d, decode %q: %v", path, resp.StatusCode, b, err)
		}
	}
	return resp.StatusCode, resp.Header
}

// graphErr is Graph's error body.
type graphErr struct {
	Error struct {
		Code       string `json:"code"`
		Message    string `json:"message"`
		InnerError struct {
			RequestID string `json:"request-id"`
			Date      string `json:"date"`
		} `json:"innerError"`
	} `json:"error"`
}
