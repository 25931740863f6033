package conformance_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/outlookd/outlookd/graphsim"
)

const tlsRedirectURI = "http://127.0.0.1:9/callback"

// tlsTenant is a simulator served over HTTPS (as MSAL, azidentity and
// go-oidc need, docs/graph.md#private-authorities-and-msal) with one work
// tenant, an auto-consent app, a user (Ada) and an admin.
type tlsTenant struct {
	sim    *graphsim.Sim
	ctl    *graphsim.Client
	hc     *http.Client // trusts the simulator's CA
	tenant *graphsim.Tenant
	app    *graphsim.App
	ada    *graphsim.User
	admin  *graphsim.User
}

func startTLS(t *testing.T) *tlsTenant {
	t.Helper()
	sim, err := graphsim.New(graphsim.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sim.StartTLSOn("127.0.0.1:0", []string{"127.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Close)
	tt := &tlsTenant{sim: sim, hc: sim.HTTPClient()}
	tt.ctl = graphsim.NewClient(sim.URL(), tt.hc)
	ctx := context.Background()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	tt.tenant, err = tt.ctl.AddTenant(ctx, graphsim.TenantSpec{Domain: "contoso.example", Name: "Contoso"})
	must(err)
	tt.app, err = tt.ctl.AddApp(ctx, graphsim.AppSpec{Name: "conformance", RedirectURIs: []string{tlsRedirectURI}, AutoConsent: true,
		AppRoles: []string{"Mail.Read", "User.Read.All"}})
	must(err)
	tt.ada, err = tt.ctl.AddUser(ctx, graphsim.UserSpec{Tenant: "contoso.example", UPN: "ada@contoso.example", DisplayName: "Ada Lovelace"})
	must(err)
	tt.admin, err = tt.ctl.AddUser(ctx, graphsim.UserSpec{Tenant: "contoso.example", UPN: "admin@contoso.example", DisplayName: "Contoso Admin", Admin: true})
	must(err)
	return tt
}

// authorize opens an authorize (or admin consent) URL as a browser would
// and returns the query of the redirect back to the app.
func (tt *tlsTenant) authorize(t *testing.T, authURL string) url.Values {
	t.Helper()
	hc := *tt.hc
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := hc.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound || err != nil || !strings.HasPrefix(loc.String(), tlsRedirectURI) {
		t.Fatalf("authorize: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	return loc.Query()
}

// TestGoOIDC: go-oidc discovers the tenant endpoint, verifies the ID token
// of a real sign-in (issuer, audience, expiry, signature by the published
// key, nonce) and calls UserInfo (docs/graph.md#userinfo).
func TestGoOIDC(t *testing.T) {
	tt := startTLS(t)
	ctx := oidc.ClientContext(context.Background(), tt.hc)
	provider, err := oidc.NewProvider(ctx, tt.sim.URL()+"/"+tt.tenant.ID+"/v2.0")
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}
	cfg := oauth2.Config{ClientID: tt.app.ClientID, ClientSecret: tt.app.Secrets[0].Value, RedirectURL: tlsRedirectURI,
		Endpoint: provider.Endpoint(), Scopes: []string{oidc.ScopeOpenID, "profile", "email", "User.Read"}}
	nonce, verifier := oauth2.GenerateVerifier(), oauth2.GenerateVerifier()
	q := tt.authorize(t, cfg.AuthCodeURL("st", oidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("login_hint", "ada@contoso.example")))
	tok, err := cfg.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := provider.Verifier(&oidc.Config{ClientID: tt.app.ClientID}).Verify(ctx, raw)
	if err != nil {
		t.Fatalf("verify id_token: %v", err)
	}
	if idt.Nonce != nonce {
		t.Errorf("nonce %q, want %q", idt.Nonce, nonce)
	}
	var claims struct {
		PreferredUsername string `json:"preferred_username"`
		TID               string `json:"tid"`
	}
	if err := idt.Claims(&claims); err != nil || claims.PreferredUsername != "ada@contoso.example" || claims.TID != tt.tenant.ID {
		t.Errorf("claims %+v: %v", claims, err)
	}
	// Another client's verifier refuses it.
	if _, err := provider.Verifier(&oidc.Config{ClientID: "00000000-0000-0000-0000-000000000009"}).Verify(ctx, raw); err == nil {
		t.Error("an ID token for another audience verified")
	}
	ui, err := provider.UserInfo(ctx, oauth2.StaticTokenSource(tok))
	if err != nil {
		t.Fatalf("userinfo: %v", err)
	}
	if ui.Subject != idt.Subject || ui.Email != "ada@contoso.example" {
		t.Errorf("userinfo sub %q email %q, id_token sub %q", ui.Subject, ui.Email, idt.Subject)
	}
	var profile struct {
		Name string `json:"name"`
	}
	if err := ui.Claims(&profile); err != nil || profile.Name != "Ada Lovelace" {
		t.Errorf("userinfo name %q: %v", profile.Name, err)
	}
}
