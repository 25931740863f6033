package graphsim_test

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"github.com/outlookd/outlookd/graphsim"
)

func TestAuthorizeErrorRedirects(t *testing.T) {
	f := newFixture(t, graphsim.Options{})
	ctx := context.Background()
	locked, _ := f.ctl.AddTenant(ctx, graphsim.TenantSpec{Domain: "locked.example", Name: "Locked Corp", AdminConsentRequired: true})
	add := func(spec graphsim.UserSpec) {
		if _, err := f.ctl.AddUser(ctx, spec); err != nil {
			t.Fatal(err)
		}
	}
	add(graphsim.UserSpec{Tenant: "locked.example", UPN: "bob@locked.example"})
	add(graphsim.UserSpec{Tenant: "contoso.example", UPN: "declines@contoso.example", Declines: true})
	add(graphsim.UserSpec{Tenant: "contoso.example", UPN: "mfa@contoso.example", RequireMFA: true})
	add(graphsim.UserSpec{Tenant: "contoso.example", UPN: "blocked@contoso.example", BlockedByCA: true})
	add(graphsim.UserSpec{Tenant: "consumers", UPN: "carol@outlook.com"})

	tests := []struct {
		name     string
		tenant   string
		hint     string
		scopes   []string
		extra    []oauth2.AuthCodeOption
		wantErr  string
		wantCode string
	}{
		{"admin consent required by tenant", "common", "bob@locked.example", []string{"Mail.Read"}, nil, "consent_required", "AADSTS90094"},
		{"admin-only permission", "common", "ada@contoso.example", []string{"User.Read.All"}, nil, "consent_required", "AADSTS90094"},
		{"user declines", "common", "declines@contoso.example", []string{"Mail.Read"}, nil, "access_denied", "AADSTS65004"},
		{"conditional access", "common", "blocked@contoso.example", []string{"Mail.Read"}, nil, "access_denied", "AADSTS53003"},
		{"mfa with prompt=none", "common", "mfa@contoso.example", []string{"Mail.Read"}, []oauth2.AuthCodeOption{oauth2.SetAuthURLParam("prompt", "none")}, "interaction_required", "AADSTS50076"},
		{"no consent with prompt=none", "common", "ada@contoso.example", []string{"Mail.Send"}, []oauth2.AuthCodeOption{oauth2.SetAuthURLParam("prompt", "none")}, "consent_required", "AADSTS65001"},
		{"no user with prompt=none", "common", "", []string{"Mail.Read"}, []oauth2.AuthCodeOption{oauth2.SetAuthURLParam("prompt", "none")}, "login_required", "AADSTS50058"},
		{"work account on consumers", "consumers", "ada@contoso.example", []string{"Mail.Read"}, nil, "access_denied", "AADSTS50020"},
		{"personal account on organizations", "organizations", "carol@outlook.com", []string{"Mail.Read"}, nil, "access_denied", "AADSTS90072"},
		{"user of another tenant", locked.ID, "ada@contoso.example", []string{"Mail.Read"}, nil, "access_denied", "AADSTS50020"},
		{"shared mailbox cannot sign in", "common", "support@contoso.example", []string{"Mail.Read"}, nil, "access_denied", "AADSTS50034"},
		{"unknown scope", "common", "ada@contoso.example", []string{"Mail.Fly"}, nil, "invalid_scope", "AADSTS70011"},
		{"plain PKCE method unknown", "common", "ada@contoso.example", []string{"Mail.Read"}, []oauth2.AuthCodeOption{oauth2.SetAuthURLParam("code_challenge", strings.Repeat("a", 43)), oauth2.SetAuthURLParam("code_challenge_method", "S512")}, "invalid_request", "AADSTS50148"},
		{"short code challenge", "common", "ada@contoso.example", []string{"Mail.Read"}, []oauth2.AuthCodeOption{oauth2.SetAuthURLParam("code_challenge", "short")}, "invalid_request", "AADSTS501491"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := append([]oauth2.AuthCodeOption{oauth2.SetAuthURLParam("login_hint", tt.hint)}, tt.extra...)
			q := authorize(t, f.oauth(tt.tenant, tt.scopes...).AuthCodeURL("the-state", opts...))
			if q.Get("error") != tt.wantErr || !strings.HasPrefix(q.Get("error_description"), tt.wantCode+":") || q.Get("state") != "the-state" || q.Get("code") != "" {
				t.Fatalf("redirect = %v, want error %s with %s", q, tt.wantErr, tt.wantCode)
			}
		})
	}

	// Errors that must not redirect: an unknown client or redirect URI.
	for _, u := range []string{
		f.sim.URL() + "/common/oauth2/v2.0/authorize?client_id=nope&response_type=code&redirect_uri=" + url.QueryEscape(redirectURI) + "&scope=Mail.Read",
		f.sim.URL() + "/common/oauth2/v2.0/authorize?client_id=" + f.app.ClientID + "&response_type=code&redirect_uri=" + url.QueryEscape("https://evil.example/cb") + "&scope=Mail.Read",
	} {
		resp, err := noRedirect.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 400 || resp.Header.Get("Location") != "" || !strings.Contains(string(b), "AADSTS") {
			t.Errorf("%s: %d %q", u, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
}

func TestAdminConsentUnlocksTenant(t *testing.T) {
	f := newFixture(t, graphsim.Options{})
	ctx := context.Background()
	locked, _ := f.ctl.AddTenant(ctx, graphsim.TenantSpec{Domain: "locked.example", AdminConsentRequired: true})
	if _, err := f.ctl.AddUser(ctx, graphsim.UserSpec{Tenant: "locked.example", UPN: "bob@locked.example"}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.ctl.AddUser(ctx, graphsim.UserSpec{Tenant: "locked.example", UPN: "root@locked.example", Admin: true}); err != nil {
		t.Fatal(err)
	}
	consent := func(hint string) url.Values {
		return authorize(t, f.sim.URL()+"/"+locked.ID+"/v2.0/adminconsent?"+url.Values{
			"client_id": {f.app.ClientID}, "redirect_uri": {redirectURI}, "state": {"s1"}, "login_hint": {hint},
			"scope": {"https://graph.microsoft.com/Mail.Read https://graph.microsoft.com/User.Read https://graph.microsoft.com/.default"},
		}.Encode())
	}
	// A non-admin cannot consent for the organisation.
	if q := consent("bob@locked.example"); q.Get("error") != "access_denied" || q.Get("admin_consent") != "True" || q.Get("state") != "s1" {
		t.Fatalf("non-admin consent = %v", q)
	}
	if q := consent("root@locked.example"); q.Get("error") != "" || q.Get("tenant") != locked.ID {
		t.Fatalf("admin consent = %v", q)
	}
	// Bob can now sign in without consenting himself.
	if tok := f.signIn(t, "bob@locked.example", "offline_access", "Mail.Read"); tok.AccessToken == "" {
		t.Fatal("no token")
	}
	// Admin consent on /common is refused.
	q := authorize(t, f.sim.URL()+"/common/v2.0/adminconsent?"+url.Values{"client_id": {f.app.ClientID}, "redirect_uri": {redirectURI}, "login_hint": {"root@locked.example"}}.Encode())
	if q.Get("error") != "invalid_request" {
		t.Errorf("adminconsent on common = %v", q)
	}
}

// TestConsentPage walks the HTML path a person takes: the page lists the
// permissions and users; posting the form returns the code.
func TestConsentPage(t *testing.T) {
	f := newFixture(t, graphsim.Options{})
	ctx := context.Background()
	manual, _ := f.ctl.AddApp(ctx, graphsim.AppSpec{Name: "Manual App", RedirectURIs: []string{redirectURI}})
	cfg := f.oauth("common", "offline_access", "Mail.Read", "Mail.Send")
	cfg.ClientID, cfg.ClientSecret = manual.ClientID, manual.Secrets[0].Value
	verifier := oauth2.GenerateVerifier()
	authURL := cfg.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier))
	resp, err := http.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"Manual App", "Read your mail (Mail.Read)", "Send mail as you (Mail.Send)", "ada@contoso.example", `name="code_challenge"`} {
		if !strings.Contains(string(page), want) {
			t.Errorf("consent page lacks %q", want)
		}
	}
	if strings.Contains(string(page), "support@contoso.example") {
		t.Error("a shared mailbox is offered as an account")
	}
	u, _ := url.Parse(authURL)
	form := u.Query()
	form.Set("sim_user", f.ada.ID)
	form.Set("sim_decision", "cancel")
	post := func() url.Values {
		resp, err := noRedirect.PostForm(f.sim.URL()+"/common/oauth2/v2.0/authorize", form)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		loc, _ := url.Parse(resp.Header.Get("Location"))
		return loc.Query()
	}
	if q := post(); q.Get("error") != "access_denied" {
		t.Errorf("cancel = %v", q)
	}
	form.Set("sim_decision", "accept")
	q := post()
	if q.Get("code") == "" || q.Get("state") != "st" {
		t.Fatalf("accept = %v", q)
	}
	tok, err := cfg.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil || tok.Extra("scope") != "Mail.Read Mail.Send" {
		t.Fatalf("exchange: %v %v", err, tok)
	}
}
