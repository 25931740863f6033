package graphsim_test

import (
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"html"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"github.com/outlookd/outlookd/graphsim"
)

// TestClientCredentialsScopes: the OIDC scopes MSAL and azidentity add are
// accepted beside one /.default; what Microsoft refuses stays refused
// (docs/graph.md#client-credentials).
func TestClientCredentialsScopes(t *testing.T) {
	f := newFixture(t, graphsim.Options{})
	tokenURL := f.sim.URL() + "/" + f.tenant.ID + "/oauth2/v2.0/token"
	tests := []struct {
		name, scope string
		status      int
		code        int
	}{
		{"dot default", "https://graph.microsoft.com/.default", 200, 0},
		{"as MSAL sends it", "https://graph.microsoft.com/.default openid offline_access profile", 200, 0},
		{"Graph by app ID", "00000003-0000-0000-c000-000000000000/.default openid", 200, 0},
		{"OIDC scopes only", "openid offline_access profile", 400, 1002012},
		{"bare permission", "Mail.Read", 400, 1002012},
		{"permission beside .default", "https://graph.microsoft.com/.default https://graph.microsoft.com/Mail.Read", 400, 1002012},
		{"two resources", "https://graph.microsoft.com/.default https://outlook.office.com/.default openid", 400, 28000},
		{"empty", "", 400, 1002012},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			form := url.Values{"grant_type": {"client_credentials"}, "scope": {tt.scope}}
			st, te, ok := postToken(t, tokenURL, form, f.app.ClientID, f.app.Secrets[0].Value)
			if st != tt.status {
				t.Fatalf("status %d, want %d: %+v", st, tt.status, te)
			}
			if tt.status != 200 {
				if te.Error != "invalid_scope" || len(te.Codes) != 1 || te.Codes[0] != tt.code {
					t.Errorf("error %+v, want invalid_scope AADSTS%d", te, tt.code)
				}
				return
			}
			if ok["access_token"] == "" || ok["token_type"] != "Bearer" {
				t.Errorf("response %v", ok)
			}
			for _, k := range []string{"refresh_token", "id_token", "client_info"} {
				if _, has := ok[k]; has {
					t.Errorf("client credentials response carries %s", k)
				}
			}
		})
	}
}

// TestSigningKeyCertificate: the JWK carries the signing key's certificate
// as Entra's does (x5c, x5t = its SHA-1 thumbprint, kid = x5t), and tokens
// name that kid (docs/graph.md#signing-keys).
func TestSigningKeyCertificate(t *testing.T) {
	f := newFixture(t, graphsim.Options{})
	var jwks struct {
		Keys []struct {
			Kty, Use, Kid, X5t, N, E, Issuer string
			X5c                              []string
		} `json:"keys"`
	}
	resp, err := http.Get(f.sim.URL() + "/" + f.tenant.ID + "/discovery/v2.0/keys")
	if err != nil {
		t.Fatal(err)
	}
	_ = json.NewDecoder(resp.Body).Decode(&jwks)
	resp.Body.Close()
	if len(jwks.Keys) != 1 || len(jwks.Keys[0].X5c) != 1 {
		t.Fatalf("keys = %+v", jwks)
	}
	k := jwks.Keys[0]
	der, err := base64.StdEncoding.DecodeString(k.X5c[0])
	if err != nil {
		t.Fatalf("x5c is not standard base64: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("x5c is not a certificate: %v", err)
	}
	sum := sha1.Sum(der)
	if want := base64.RawURLEncoding.EncodeToString(sum[:]); k.X5t != want || k.Kid != want {
		t.Errorf("x5t %q kid %q, want both %q", k.X5t, k.Kid, want)
	}
	pub, ok := cert.PublicKey.(*rsa.PublicKey)
	if !ok || base64.RawURLEncoding.EncodeToString(pub.N.Bytes()) != k.N {
		t.Errorf("the certificate's key is not the JWK's")
	}
	if k.Issuer != f.sim.URL()+"/"+f.tenant.ID+"/v2.0" {
		t.Errorf("issuer %q", k.Issuer)
	}
	tok := f.signIn(t, "ada@contoso.example", "openid", "profile", "Mail.Read")
	for _, raw := range []string{tok.AccessToken, tok.Extra("id_token").(string)} {
		h, _ := base64.RawURLEncoding.DecodeString(strings.Split(raw, ".")[0])
		var hdr map[string]any
		_ = json.Unmarshal(h, &hdr)
		if hdr["kid"] != k.Kid {
			t.Errorf("token kid %v, want %s", hdr["kid"], k.Kid)
		}
	}
}

// TestUserInfo: discovery names the UserInfo endpoint on Graph; it answers
// GET and POST with the ID token's sub and the claims the scopes allow,
// and Graph's errors without a good delegated token (docs/graph.md#userinfo).
func TestUserInfo(t *testing.T) {
	f := newFixture(t, graphsim.Options{})
	var doc map[string]any
	resp, err := http.Get(f.sim.URL() + "/" + f.tenant.ID + "/v2.0/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	_ = json.NewDecoder(resp.Body).Decode(&doc)
	resp.Body.Close()
	endpoint, _ := doc["userinfo_endpoint"].(string)
	if endpoint != f.sim.URL()+"/oidc/userinfo" {
		t.Fatalf("userinfo_endpoint = %v", doc["userinfo_endpoint"])
	}
	full := f.signIn(t, "ada@contoso.example", "openid", "profile", "email", "User.Read")
	bare := f.signIn(t, "ada@contoso.example", "openid", "User.Read")
	noOpenID := f.signIn(t, "ada@contoso.example", "User.Read")
	idSub := jwtClaims(t, full.Extra("id_token").(string))["sub"]
	_, _, app := postToken(t, f.sim.URL()+"/"+f.tenant.ID+"/oauth2/v2.0/token", url.Values{"grant_type": {"client_credentials"}, "scope": {"https://graph.microsoft.com/.default"}}, f.app.ClientID, f.app.Secrets[0].Value)
	appToken, _ := app["access_token"].(string)
	tests := []struct {
		name, method, token string
		status              int
		want                map[string]any
		code                string
	}{
		{"GET with profile and email", "GET", full.AccessToken, 200, map[string]any{"sub": idSub, "name": "Ada Lovelace", "given_name": "Ada", "family_name": "Lovelace", "email": "ada@contoso.example", "picture": f.sim.GraphURL() + "/me/photo/$value"}, ""},
		{"POST with openid only", "POST", bare.AccessToken, 200, map[string]any{"sub": idSub}, ""},
		{"no token", "GET", "", 401, nil, "InvalidAuthenticationToken"},
		{"garbled token", "GET", "not-a-token", 401, nil, "InvalidAuthenticationToken"},
		{"token without openid", "GET", noOpenID.AccessToken, 403, nil, "Authorization_RequestDenied"},
		{"app-only token", "GET", appToken, 403, nil, "Authorization_RequestDenied"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, endpoint, nil)
			if tt.token != "" {
				req.Header.Set("Authorization", "Bearer "+tt.token)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body map[string]any
			_ = json.NewDecoder(resp.Body).Decode(&body)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %v", resp.StatusCode, tt.status, body)
			}
			if tt.code != "" {
				if e, _ := body["error"].(map[string]any); e["code"] != tt.code || e["message"] == "" {
					t.Errorf("error %v, want %s", body, tt.code)
				}
				if tt.status == 401 && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer ") {
					t.Errorf("no WWW-Authenticate challenge")
				}
				return
			}
			if !reflect.DeepEqual(body, tt.want) {
				t.Errorf("userinfo %v, want %v", body, tt.want)
			}
		})
	}
}

// TestAdminConsentRedirects: an error redirect carries error,
// error_description and state, never tenant or scope; the v2 endpoint adds
// admin_consent=True even then, the older endpoint does not and answers a
// decline with permission_denied (docs/graph.md#admin-consent).
func TestAdminConsentRedirects(t *testing.T) {
	f := newFixture(t, graphsim.Options{})
	base := url.Values{"client_id": {f.app.ClientID}, "redirect_uri": {redirectURI}, "state": {"s1"}, "scope": {"https://graph.microsoft.com/.default"}}
	with := func(kv ...string) url.Values {
		q := url.Values{}
		for k, v := range base {
			q[k] = v
		}
		for i := 0; i+1 < len(kv); i += 2 {
			q.Set(kv[i], kv[i+1])
		}
		return q
	}
	tests := []struct {
		name, path string
		form       url.Values
		post       bool
		err        string // "" for success
		desc       string // prefix of error_description
		flag       bool   // admin_consent=True expected
	}{
		{"v2 success", "/" + f.tenant.ID + "/v2.0/adminconsent", with("login_hint", "admin@contoso.example"), false, "", "", true},
		{"v2 declined", "/" + f.tenant.ID + "/v2.0/adminconsent", with("sim_user", f.admin.ID, "sim_decision", "cancel"), true, "consent_required", "AADSTS65004: The resource owner or authorization server denied the request.\r\nTrace ID: ", true},
		{"v2 not an admin", "/" + f.tenant.ID + "/v2.0/adminconsent", with("login_hint", "ada@contoso.example"), false, "access_denied", "AADSTS90093: ", true},
		{"v2 on common", "/common/v2.0/adminconsent", with("login_hint", "admin@contoso.example"), false, "invalid_request", "AADSTS90130: ", true},
		{"v1 success", "/" + f.tenant.ID + "/adminconsent", with("login_hint", "admin@contoso.example"), false, "", "", true},
		{"v1 declined", "/" + f.tenant.ID + "/adminconsent", with("sim_user", f.admin.ID, "sim_decision", "cancel"), true, "permission_denied", "The admin canceled the request", false},
		{"v1 not an admin", "/" + f.tenant.ID + "/adminconsent", with("login_hint", "ada@contoso.example"), false, "access_denied", "AADSTS90093: ", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var resp *http.Response
			var err error
			if tt.post {
				resp, err = noRedirect.PostForm(f.sim.URL()+tt.path, tt.form)
			} else {
				resp, err = noRedirect.Get(f.sim.URL() + tt.path + "?" + tt.form.Encode())
			}
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			loc, _ := url.Parse(resp.Header.Get("Location"))
			if resp.StatusCode != http.StatusFound || !strings.HasPrefix(loc.String(), redirectURI) {
				t.Fatalf("status %d to %q", resp.StatusCode, loc)
			}
			q := loc.Query()
			if q.Get("state") != "s1" || q.Get("error") != tt.err || (q.Get("admin_consent") == "True") != tt.flag {
				t.Errorf("redirect %v", q)
			}
			if tt.err == "" {
				if q.Get("tenant") != f.tenant.ID || q.Has("error_description") {
					t.Errorf("success %v", q)
				}
				if v2 := strings.Contains(tt.path, "/v2.0/"); q.Has("scope") != v2 {
					t.Errorf("scope on success: %v (v2 %v)", q, v2)
				}
				return
			}
			if !strings.HasPrefix(q.Get("error_description"), tt.desc) {
				t.Errorf("error_description %q, want prefix %q", q.Get("error_description"), tt.desc)
			}
			if q.Has("tenant") || q.Has("scope") {
				t.Errorf("an error redirect carries tenant or scope: %v", q)
			}
		})
	}
}

// pageText is the visible text of an HTML page: tags dropped, entities
// decoded, whitespace collapsed.
func pageText(page string) string {
	page = regexp.MustCompile(`(?s)<style.*?</style>`).ReplaceAllString(page, " ")
	page = regexp.MustCompile(`<[^>]*>`).ReplaceAllString(page, " ")
	return strings.Join(strings.Fields(html.UnescapeString(page)), " ")
}

// TestErrorPage: an error that cannot be redirected is a page showing the
// AADSTS code and message and the troubleshooting details, as Entra's page
// (docs/graph.md#aadsts-codes).
func TestErrorPage(t *testing.T) {
	f := newFixture(t, graphsim.Options{})
	const corr = "0f6c2e7d-5d6b-4f54-a2b1-2f9a3f8c1e11"
	authz := func(seg string, q url.Values) string {
		return f.sim.URL() + "/" + seg + "/oauth2/v2.0/authorize?" + q.Encode()
	}
	tests := []struct {
		name, url, want string
	}{
		{"unknown client", authz("common", url.Values{"client_id": {"00000000-0000-0000-0000-0000000000aa"}, "redirect_uri": {redirectURI}, "response_type": {"code"}, "scope": {"Mail.Read"}}),
			"AADSTS700016: Application with identifier '00000000-0000-0000-0000-0000000000aa' was not found in the directory 'common'."},
		{"redirect URI not registered", authz("common", url.Values{"client_id": {f.app.ClientID}, "redirect_uri": {"https://evil.example/cb"}, "response_type": {"code"}, "scope": {"Mail.Read"}}),
			"AADSTS50011: The redirect URI specified in the request does not match the redirect URIs configured for the application '" + f.app.ClientID + "'."},
		{"unknown tenant", authz("nowhere.example", url.Values{"client_id": {f.app.ClientID}, "redirect_uri": {redirectURI}, "response_type": {"code"}, "scope": {"Mail.Read"}}),
			"AADSTS90002: Tenant 'nowhere.example' not found."},
		{"admin consent, unknown client", f.sim.URL() + "/" + f.tenant.ID + "/v2.0/adminconsent?" + url.Values{"client_id": {"00000000-0000-0000-0000-0000000000bb"}, "redirect_uri": {redirectURI}}.Encode(),
			"AADSTS700016: Application with identifier '00000000-0000-0000-0000-0000000000bb' was not found"},
	}
	guid := `[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`
	details := regexp.MustCompile(`Troubleshooting details .* Request Id: ` + guid + ` Correlation Id: ` + corr + ` Timestamp: \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z Message: AADSTS\d+: `)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", tt.url, nil)
			req.Header.Set("client-request-id", corr)
			resp, err := noRedirect.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			text := pageText(string(b))
			if resp.StatusCode != 400 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
				t.Fatalf("status %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
			}
			if !strings.Contains(text, "Sorry, but we’re having trouble signing you in. "+tt.want) {
				t.Errorf("page lacks %q:\n%s", tt.want, text)
			}
			if !details.MatchString(text) || !strings.Contains(string(b), "</html>") {
				t.Errorf("page lacks the troubleshooting details or is cut off:\n%s", text)
			}
		})
	}
}

// TestResponseScopeAsAsked: the token response lists each scope in the form
// the client asked for it, as Graph's own example shows; MSAL compares the
// two and calls any difference a declined scope (docs/graph.md#token-responses).
func TestResponseScopeAsAsked(t *testing.T) {
	f := newFixture(t, graphsim.Options{})
	tests := []struct {
		scopes []string
		want   string
	}{
		{[]string{"openid", "Mail.Read", "User.Read"}, "Mail.Read User.Read"},
		{[]string{"https://graph.microsoft.com/Mail.Read", "user.read"}, "https://graph.microsoft.com/Mail.Read user.read"},
	}
	for _, tt := range tests {
		tok := f.signIn(t, "ada@contoso.example", tt.scopes...)
		if got := tok.Extra("scope"); got != tt.want {
			t.Errorf("scope %v for %v, want %q", got, tt.scopes, tt.want)
		}
	}
}

// TestRedemptionOIDCScopes: OIDC scopes named only at redemption, as MSAL
// sends them, bring the ID and refresh tokens (docs/graph.md#token-responses).
func TestRedemptionOIDCScopes(t *testing.T) {
	f := newFixture(t, graphsim.Options{})
	cfg := f.oauth("common", "Mail.Read")
	q := authorize(t, cfg.AuthCodeURL("s", oauth2.SetAuthURLParam("login_hint", "ada@contoso.example")))
	st, te, tok := postToken(t, f.sim.URL()+"/common/oauth2/v2.0/token", url.Values{"grant_type": {"authorization_code"}, "code": {q.Get("code")},
		"redirect_uri": {redirectURI}, "scope": {"Mail.Read openid offline_access profile"}}, f.app.ClientID, f.app.Secrets[0].Value)
	if st != 200 || tok["id_token"] == nil || tok["refresh_token"] == nil || tok["scope"] != "Mail.Read" {
		t.Errorf("redemption: %d %+v %v", st, te, tok)
	}
}
