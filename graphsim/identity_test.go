package graphsim_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/outlookd/outlookd/graphsim"
)

func TestDiscoveryAndKeys(t *testing.T) {
	f := newFixture(t, graphsim.Options{})
	tests := []struct {
		tenant     string
		status     int
		wantIssuer string
	}{
		{"common", 200, f.sim.URL() + "/{tenantid}/v2.0"},
		{"consumers", 200, f.sim.URL() + "/" + graphsim.ConsumerTenantID + "/v2.0"},
		{f.tenant.ID, 200, f.sim.URL() + "/" + f.tenant.ID + "/v2.0"},
		{"contoso.example", 200, f.sim.URL() + "/" + f.tenant.ID + "/v2.0"},
		{"nowhere.example", 400, ""},
	}
	for _, tt := range tests {
		var doc map[string]any
		resp, err := http.Get(f.sim.URL() + "/" + tt.tenant + "/v2.0/.well-known/openid-configuration")
		if err != nil {
			t.Fatal(err)
		}
		_ = json.NewDecoder(resp.Body).Decode(&doc)
		resp.Body.Close()
		if resp.StatusCode != tt.status {
			t.Errorf("%s: status %d", tt.tenant, resp.StatusCode)
			continue
		}
		if tt.status != 200 {
			if doc["error"] != "invalid_tenant" || !strings.Contains(doc["error_description"].(string), "AADSTS90002") {
				t.Errorf("%s: %v", tt.tenant, doc)
			}
			continue
		}
		if doc["issuer"] != tt.wantIssuer || doc["token_endpoint"] != f.sim.URL()+"/"+tt.tenant+"/oauth2/v2.0/token" {
			t.Errorf("%s: issuer %v token %v", tt.tenant, doc["issuer"], doc["token_endpoint"])
		}
	}
	var jwks struct {
		Keys []map[string]string `json:"keys"`
	}
	resp, _ := http.Get(f.sim.URL() + "/common/discovery/v2.0/keys")
	_ = json.NewDecoder(resp.Body).Decode(&jwks)
	resp.Body.Close()
	if len(jwks.Keys) != 1 || jwks.Keys[0]["kty"] != "RSA" || jwks.Keys[0]["n"] == "" {
		t.Errorf("keys = %v", jwks)
	}
}

func TestAuthCodeFlowWithPKCE(t *testing.T) {
	f := newFixture(t, graphsim.Options{})
	tok := f.signIn(t, "ada@contoso.example", "openid", "offline_access", "Mail.Read", "User.Read")
	if tok.AccessToken == "" || tok.RefreshToken == "" || tok.TokenType != "Bearer" {
		t.Fatalf("token = %+v", tok)
	}
	if exp := time.Until(tok.Expiry); exp < 59*time.Minute || exp > 91*time.Minute {
		t.Errorf("access token lifetime %s, want 60-90 min", exp)
	}
	if got := tok.Extra("scope"); got != "Mail.Read User.Read" { // as asked (docs/graph.md#token-responses)
		t.Errorf("scope = %v", got)
	}
	// expires_in is an integer (MSAL rejects fractions).
	if _, ok := tok.Extra("expires_in").(float64); !ok {
		t.Errorf("expires_in = %#v", tok.Extra("expires_in"))
	}
	claims := jwtClaims(t, tok.AccessToken)
	if claims["tid"] != f.tenant.ID || claims["oid"] != f.ada.ID || claims["upn"] != "ada@contoso.example" || claims["scp"] != "Mail.Read User.Read openid" || claims["aud"] != "https://graph.microsoft.com" {
		t.Errorf("access token claims = %v", claims)
	}
	idt, _ := tok.Extra("id_token").(string)
	if idc := jwtClaims(t, idt); idc["aud"] != f.app.ClientID || idc["preferred_username"] != "ada@contoso.example" || idc["iss"] != f.sim.URL()+"/"+f.tenant.ID+"/v2.0" {
		t.Errorf("id token claims = %v", idc)
	}
	ci, _ := base64.RawURLEncoding.DecodeString(tok.Extra("client_info").(string))
	if !strings.Contains(string(ci), f.ada.ID) {
		t.Errorf("client_info = %s", ci)
	}
	var me map[string]any
	if st, _ := f.graphGet(t, tok.AccessToken, "/me", &me); st != 200 || me["userPrincipalName"] != "ada@contoso.example" {
		t.Errorf("/me = %d %v", st, me)
	}
}

// jwtClaims decodes the payload of a JWT (unpadded base64url, as MSAL needs).
func jwtClaims(t *testing.T, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", tok)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatalf("payload is not unpadded base64url: %v", err)
	}
	var c map[string]any
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// tokenError is the identity platform's error body.
type tokenError struct {
	Error       string `json:"error"`
	Description string `json:"error_description"`
	Codes       []int  `json:"error_codes"`
	Suberror    string `json:"suberror"`
	Claims      string `json:"claims"`
	TraceID     string `json:"trace_id"`
	Correlation string `json:"correlation_id"`
	Timestamp   string `json:"timestamp"`
}

// postToken posts a raw token request and decodes the answer.
func postToken(t *testing.T, tokenURL string, form url.Values, basic ...string) (int, tokenError, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest("POST", tokenURL, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if len(basic) == 2 {
		req.SetBasicAuth(url.QueryEscape(basic[0]), url.QueryEscape(basic[1]))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var te tokenError
	var ok map[string]any
	_ = json.Unmarshal(b, &te)
	_ = json.Unmarshal(b, &ok)
	return resp.StatusCode, te, ok
}

func TestTokenEndpointErrors(t *testing.T) {
	f := newFixture(t, graphsim.Options{})
	cfg := f.oauth("common", "offline_access", "Mail.Read")
	secret := f.app.Secrets[0].Value
	// One code per case that needs a fresh one.
	newCode := func(verifier string) string {
		q := authorize(t, cfg.AuthCodeURL("s", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("login_hint", "ada@contoso.example")))
		return q.Get("code")
	}
	v := oauth2.GenerateVerifier()
	used := newCode(v)
	if st, _, _ := postToken(t, cfg.Endpoint.TokenURL, url.Values{"grant_type": {"authorization_code"}, "code": {used}, "redirect_uri": {redirectURI}, "code_verifier": {v}, "client_id": {f.app.ClientID}, "client_secret": {secret}}); st != 200 {
		t.Fatalf("first redemption: %d", st)
	}
	expiredCode := newCode(v)
	expiredSecretApp, _ := f.ctl.AddApp(context.Background(), graphsim.AppSpec{Name: "old", RedirectURIs: []string{redirectURI}, SecretExpires: time.Now().Add(-time.Hour)})

	tests := []struct {
		name   string
		form   url.Values
		basic  []string
		before func()
		status int
		err    string
		code   int
	}{
		{"code redeemed twice", url.Values{"grant_type": {"authorization_code"}, "code": {used}, "redirect_uri": {redirectURI}, "code_verifier": {v}, "client_id": {f.app.ClientID}, "client_secret": {secret}}, nil, nil, 400, "invalid_grant", 54005},
		{"wrong verifier", url.Values{"grant_type": {"authorization_code"}, "code": {newCode(v)}, "redirect_uri": {redirectURI}, "code_verifier": {oauth2.GenerateVerifier()}, "client_id": {f.app.ClientID}, "client_secret": {secret}}, nil, nil, 400, "invalid_grant", 501481},
		{"missing verifier", url.Values{"grant_type": {"authorization_code"}, "code": {newCode(v)}, "redirect_uri": {redirectURI}, "client_id": {f.app.ClientID}, "client_secret": {secret}}, nil, nil, 400, "invalid_grant", 501481},
		{"other redirect uri", url.Values{"grant_type": {"authorization_code"}, "code": {newCode(v)}, "redirect_uri": {"http://127.0.0.1:9/other"}, "code_verifier": {v}, "client_id": {f.app.ClientID}, "client_secret": {secret}}, nil, nil, 400, "invalid_grant", 500112},
		{"expired code", url.Values{"grant_type": {"authorization_code"}, "code": {expiredCode}, "redirect_uri": {redirectURI}, "code_verifier": {v}, "client_id": {f.app.ClientID}, "client_secret": {secret}}, nil, func() { f.sim.AdvanceClock(11 * time.Minute) }, 400, "invalid_grant", 70008},
		{"wrong secret", url.Values{"grant_type": {"client_credentials"}, "scope": {"https://graph.microsoft.com/.default"}}, []string{f.app.ClientID, "nope"}, nil, 401, "invalid_client", 7000215},
		{"expired secret", url.Values{"grant_type": {"client_credentials"}, "scope": {"https://graph.microsoft.com/.default"}, "client_id": {expiredSecretApp.ClientID}, "client_secret": {expiredSecretApp.Secrets[0].Value}}, nil, nil, 401, "invalid_client", 7000222},
		{"no secret", url.Values{"grant_type": {"client_credentials"}, "scope": {"https://graph.microsoft.com/.default"}, "client_id": {f.app.ClientID}}, nil, nil, 401, "invalid_client", 7000218},
		{"unknown client", url.Values{"grant_type": {"client_credentials"}, "client_id": {"00000000-0000-0000-0000-000000000001"}, "client_secret": {"x"}}, nil, nil, 400, "unauthorized_client", 700016},
		{"unknown grant", url.Values{"grant_type": {"password"}}, []string{f.app.ClientID, secret}, nil, 400, "unsupported_grant_type", 70003},
		{"bad refresh token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"1.AQnope"}}, []string{f.app.ClientID, secret}, nil, 400, "invalid_grant", 9002313},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.before != nil {
				tt.before()
			}
			st, te, _ := postToken(t, cfg.Endpoint.TokenURL, tt.form, tt.basic...)
			if st != tt.status || te.Error != tt.err || len(te.Codes) != 1 || te.Codes[0] != tt.code {
				t.Fatalf("got %d %+v, want %d %s AADSTS%d", st, te, tt.status, tt.err, tt.code)
			}
			if !strings.HasPrefix(te.Description, "AADSTS") || !strings.Contains(te.Description, "\r\nTrace ID: ") || te.TraceID == "" || te.Timestamp == "" {
				t.Errorf("error body lacks Microsoft's fields: %+v", te)
			}
		})
	}
	// The tenant-segment rules of client credentials.
	st, te, _ := postToken(t, f.sim.URL()+"/common/oauth2/v2.0/token", url.Values{"grant_type": {"client_credentials"}, "scope": {"https://graph.microsoft.com/.default"}}, f.app.ClientID, secret)
	if st != 400 || te.Codes[0] != 9001023 {
		t.Errorf("client credentials on /common: %d %+v", st, te)
	}
	st, te, _ = postToken(t, f.sim.URL()+"/"+f.tenant.ID+"/oauth2/v2.0/token", url.Values{"grant_type": {"client_credentials"}, "scope": {"Mail.Read"}}, f.app.ClientID, secret)
	if st != 400 || te.Error != "invalid_scope" {
		t.Errorf("client credentials without .default: %d %+v", st, te)
	}
	// Faults: Graph's "*" rule leaves the token endpoint alone; a "token"
	// rule reaches it.
	good := url.Values{"grant_type": {"client_credentials"}, "scope": {"https://graph.microsoft.com/.default"}}
	tenantURL := f.sim.URL() + "/" + f.tenant.ID + "/oauth2/v2.0/token"
	f.sim.SetFault(graphsim.Fault{Endpoint: "*", Unavailable: 1})
	if st, _, _ := postToken(t, tenantURL, good, f.app.ClientID, secret); st != 200 {
		t.Errorf("token under a Graph-wide fault: %d", st)
	}
	f.sim.SetFault(graphsim.Fault{Endpoint: "token", Unavailable: 1})
	if st, _, _ := postToken(t, tenantURL, good, f.app.ClientID, secret); st != 503 {
		t.Errorf("token under a token fault: %d", st)
	}
	f.sim.ClearFaults()
	f.sim.SetFault(graphsim.Fault{Endpoint: "token", Latency: 300 * time.Millisecond})
	start := time.Now()
	if st, _, _ := postToken(t, tenantURL, good, f.app.ClientID, secret); st != 200 || time.Since(start) < 300*time.Millisecond {
		t.Errorf("token with latency: %d after %s", st, time.Since(start))
	}
	f.sim.ClearFaults()
}

func TestRefreshRotationAndRevocation(t *testing.T) {
	f := newFixture(t, graphsim.Options{})
	ctx := context.Background()
	cfg := f.oauth("common", "offline_access", "Mail.Read")
	tok := f.signIn(t, "ada@contoso.example", "offline_access", "Mail.Read", "User.Read")
	refresh := func(rt string, scope ...string) (int, tokenError, map[string]any) {
		form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}
		if len(scope) > 0 {
			form.Set("scope", scope[0])
		}
		return postToken(t, cfg.Endpoint.TokenURL, form, f.app.ClientID, f.app.Secrets[0].Value)
	}
	st, _, first := refresh(tok.RefreshToken)
	if st != 200 || first["refresh_token"] == tok.RefreshToken || first["refresh_token"] == nil {
		t.Fatalf("refresh did not rotate: %d %v", st, first)
	}
	// The old refresh token stays valid (docs/graph.md#refresh-tokens).
	if st, te, _ := refresh(tok.RefreshToken); st != 200 {
		t.Fatalf("old refresh token refused: %+v", te)
	}
	// Narrowing scopes on refresh; asking for more than consented fails.
	if st, _, body := refresh(first["refresh_token"].(string), "https://graph.microsoft.com/Mail.Read"); st != 200 || body["scope"] != "https://graph.microsoft.com/Mail.Read" {
		t.Errorf("narrowed refresh: %d %v", st, body["scope"])
	}
	if st, te, _ := refresh(first["refresh_token"].(string), "Mail.Send"); st != 400 || te.Codes[0] != 65001 || te.Suberror != "consent_required" {
		t.Errorf("refresh for unconsented scope: %d %+v", st, te)
	}

	tests := []struct {
		reason   string
		code     int
		suberror string
		claims   bool
	}{
		{graphsim.RevokeSignInSessions, 50173, "", false},
		{graphsim.RevokePasswordChanged, 50173, "", false},
		{graphsim.RevokeMFARequired, 50076, "basic_action", true},
		{graphsim.RevokeConsentRevoked, 65001, "consent_required", false},
		{graphsim.RevokeConditionalAccess, 53003, "", false},
		{graphsim.RevokeDisabled, 50057, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.reason, func(t *testing.T) {
			u, err := f.ctl.AddUser(ctx, graphsim.UserSpec{Tenant: "contoso.example", UPN: tt.reason + "@contoso.example"})
			if err != nil {
				t.Fatal(err)
			}
			tok := f.signIn(t, u.UPN, "offline_access", "Mail.Read")
			if err := f.ctl.Revoke(ctx, u.UPN, tt.reason); err != nil {
				t.Fatal(err)
			}
			st, te, _ := refresh(tok.RefreshToken)
			if st != 400 || te.Error != "invalid_grant" || te.Codes[0] != tt.code || te.Suberror != tt.suberror || (te.Claims != "") != tt.claims {
				t.Fatalf("got %d %+v", st, te)
			}
			// x/oauth2 surfaces it as a RetrieveError with the same code.
			_, err = cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
			var re *oauth2.RetrieveError
			if !errors.As(err, &re) || re.ErrorCode != "invalid_grant" {
				t.Fatalf("x/oauth2 error = %v", err)
			}
		})
	}

	t.Run("inactivity", func(t *testing.T) {
		f := newFixture(t, graphsim.Options{RefreshTokenInactivity: 24 * time.Hour})
		tok := f.signIn(t, "ada@contoso.example", "offline_access", "Mail.Read")
		f.sim.AdvanceClock(25 * time.Hour)
		st, te, _ := postToken(t, f.oauth("common").Endpoint.TokenURL, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}}, f.app.ClientID, f.app.Secrets[0].Value)
		if st != 400 || te.Codes[0] != 700082 || te.Suberror != "bad_token" {
			t.Fatalf("got %d %+v", st, te)
		}
	})
}

func TestClientCredentials(t *testing.T) {
	f := newFixture(t, graphsim.Options{})
	ctx := context.Background()
	tokenURL := f.sim.URL() + "/" + f.tenant.ID + "/oauth2/v2.0/token"
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {"https://graph.microsoft.com/.default"}, "client_id": {f.app.ClientID}, "client_secret": {f.app.Secrets[0].Value}}
	// Without admin consent: a token without roles, then 403 from Graph.
	st, _, body := postToken(t, tokenURL, form)
	if st != 200 || body["refresh_token"] != nil {
		t.Fatalf("client credentials: %d %v", st, body)
	}
	if _, ok := jwtClaims(t, body["access_token"].(string))["roles"]; ok {
		t.Errorf("roles without consent")
	}
	var ge graphErr
	if st, _ := f.graphGet(t, body["access_token"].(string), "/users/ada@contoso.example/messages", &ge); st != 403 || ge.Error.Code != "ErrorAccessDenied" {
		t.Errorf("no-role app read mail: %d %+v", st, ge)
	}
	// The admin consents through /adminconsent; the new token has roles.
	q := authorize(t, f.sim.URL()+"/"+f.tenant.ID+"/v2.0/adminconsent?"+url.Values{"client_id": {f.app.ClientID}, "redirect_uri": {redirectURI}, "scope": {"https://graph.microsoft.com/.default"}, "state": {"x"}, "login_hint": {"admin@contoso.example"}}.Encode())
	if q.Get("admin_consent") != "True" || q.Get("tenant") != f.tenant.ID || q.Get("state") != "x" || q.Get("error") != "" {
		t.Fatalf("adminconsent redirect = %v", q)
	}
	_, _, body = postToken(t, tokenURL, form)
	c := jwtClaims(t, body["access_token"].(string))
	if roles, _ := c["roles"].([]any); len(roles) != 2 {
		t.Errorf("roles after consent = %v", c["roles"])
	}
	if st, _ := f.graphGet(t, body["access_token"].(string), "/users/ada@contoso.example/messages", nil); st != 200 {
		t.Errorf("app read mail after consent: %d", st)
	}
	var ge2 graphErr
	if st, _ := f.graphGet(t, body["access_token"].(string), "/me", &ge2); st != 400 || !strings.Contains(ge2.Error.Message, "/me request is only valid with delegated authentication flow") {
		t.Errorf("/me with app token: %d %+v", st, ge2)
	}
	_ = ctx
}
