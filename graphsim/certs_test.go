package graphsim_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"math/big"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/oauth2"

	"github.com/outlookd/outlookd/graphsim"
)

// testCert is an RSA key with a self-signed certificate.
type testCert struct {
	key *rsa.PrivateKey
	der []byte
}

func newTestCert(t *testing.T) testCert {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "daemon"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(365 * 24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return testCert{key: key, der: der}
}

func (c testCert) x5t() string {
	s := sha1.Sum(c.der)
	return base64.RawURLEncoding.EncodeToString(s[:])
}

func (c testCert) x5tS256() string {
	s := sha256.Sum256(c.der)
	return base64.RawURLEncoding.EncodeToString(s[:])
}

// assertion signs claims with key, naming a certificate in the header.
func assertion(t *testing.T, method jwt.SigningMethod, key *rsa.PrivateKey, header map[string]any, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	for k, v := range header {
		tok.Header[k] = v
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestCertificateCredentials: a JWT signed with a registered certificate
// authenticates the client, with Entra's errors for each way it can be
// wrong (docs/graph.md#certificate-credentials).
func TestCertificateCredentials(t *testing.T) {
	f := newFixture(t, graphsim.Options{})
	ctx := context.Background()
	good, other, stale := newTestCert(t), newTestCert(t), newTestCert(t)
	if _, err := f.ctl.AddCertificate(ctx, f.app.ClientID, good.der, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.ctl.AddCertificate(ctx, f.app.ClientID, stale.der, time.Now().Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	tokenURL := f.sim.URL() + "/" + f.tenant.ID + "/oauth2/v2.0/token"
	id := f.app.ClientID
	now := time.Now()
	claims := func(kv ...any) jwt.MapClaims {
		c := jwt.MapClaims{"aud": tokenURL, "iss": id, "sub": id, "jti": "j-" + base64.RawURLEncoding.EncodeToString([]byte(time.Now().String())), "nbf": now.Unix(), "iat": now.Unix(), "exp": now.Add(10 * time.Minute).Unix()}
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(c, kv[i].(string))
			} else {
				c[kv[i].(string)] = kv[i+1]
			}
		}
		return c
	}
	rs := jwt.SigningMethodRS256
	ps := jwt.SigningMethodPS256
	x5t := map[string]any{"x5t": good.x5t()}
	tests := []struct {
		name   string
		jwt    string
		url    string
		status int
		code   int
		text   string
	}{
		{"RS256 with x5t", assertion(t, rs, good.key, x5t, claims()), tokenURL, 200, 0, ""},
		{"PS256 with x5t#S256", assertion(t, ps, good.key, map[string]any{"x5t#S256": good.x5tS256()}, claims()), tokenURL, 200, 0, ""},
		{"thumbprint in standard base64, as MSAL for Go sends it", assertion(t, ps, good.key, map[string]any{"x5t#S256": stdB64(good.x5tS256())}, claims()), tokenURL, 200, 0, ""},
		{"audience by tenant domain", assertion(t, rs, good.key, x5t, claims("aud", f.sim.URL()+"/contoso.example/oauth2/v2.0/token")), f.sim.URL() + "/contoso.example/oauth2/v2.0/token", 200, 0, ""},
		{"unknown certificate", assertion(t, rs, other.key, map[string]any{"x5t": other.x5t()}, claims()), tokenURL, 401, 700027, "The key was not found."},
		{"no thumbprint", assertion(t, rs, good.key, nil, claims()), tokenURL, 401, 700027, "The key was not found."},
		{"expired certificate", assertion(t, rs, stale.key, map[string]any{"x5t": stale.x5t()}, claims()), tokenURL, 401, 700027, "The key used is expired."},
		{"signed by another key", assertion(t, rs, other.key, x5t, claims()), tokenURL, 401, 700027, "use of the key to verify the signature failed"},
		{"HS256", assertion2HS(t, x5t, claims()), tokenURL, 401, 50027, ""},
		{"audience is another endpoint", assertion(t, rs, good.key, x5t, claims("aud", f.sim.URL()+"/common/oauth2/v2.0/token")), tokenURL, 401, 700023, ""},
		{"audience is the issuer", assertion(t, rs, good.key, x5t, claims("aud", f.sim.URL()+"/"+f.tenant.ID+"/v2.0")), tokenURL, 401, 700023, ""},
		{"on /organizations", assertion(t, rs, good.key, x5t, claims("aud", f.sim.URL()+"/organizations/oauth2/v2.0/token")), f.sim.URL() + "/organizations/oauth2/v2.0/token", 401, 700023, ""},
		{"issuer is another app", assertion(t, rs, good.key, x5t, claims("iss", "00000000-0000-0000-0000-00000000000a", "sub", "00000000-0000-0000-0000-00000000000a")), tokenURL, 401, 700021, ""},
		{"subject differs from issuer", assertion(t, rs, good.key, x5t, claims("sub", "someone")), tokenURL, 401, 50048, ""},
		{"expired assertion", assertion(t, rs, good.key, x5t, claims("nbf", now.Add(-20*time.Minute).Unix(), "exp", now.Add(-10*time.Minute).Unix())), tokenURL, 401, 700024, "Client assertion is not within its valid time range."},
		{"not yet valid", assertion(t, rs, good.key, x5t, claims("nbf", now.Add(5*time.Minute).Unix())), tokenURL, 401, 700024, ""},
		{"no exp", assertion(t, rs, good.key, x5t, claims("exp", nil)), tokenURL, 401, 50027, ""},
		{"garbled", "not.a.jwt", tokenURL, 401, 50027, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			form := url.Values{"grant_type": {"client_credentials"}, "scope": {"https://graph.microsoft.com/.default"}, "client_id": {id},
				"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {tt.jwt}}
			st, te, ok := postToken(t, tt.url, form)
			if st != tt.status {
				t.Fatalf("status %d, want %d: %+v", st, tt.status, te)
			}
			if tt.status == 200 {
				if ok["access_token"] == "" {
					t.Errorf("response %v", ok)
				}
				return
			}
			if te.Error != "invalid_client" || len(te.Codes) != 1 || te.Codes[0] != tt.code || !strings.Contains(te.Description, tt.text) {
				t.Errorf("error %+v, want invalid_client AADSTS%d %q", te, tt.code, tt.text)
			}
		})
	}
	// A reused assertion is accepted until it expires, as Entra does.
	reused := assertion(t, rs, good.key, x5t, claims("jti", "same"))
	for range 2 {
		form := url.Values{"grant_type": {"client_credentials"}, "scope": {"https://graph.microsoft.com/.default"}, "client_id": {id},
			"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {reused}}
		if st, te, _ := postToken(t, tokenURL, form); st != 200 {
			t.Errorf("reused assertion: %d %+v", st, te)
		}
	}
	// The assertion is a secret the simulator has seen.
	secrets, err := f.ctl.Secrets(ctx)
	if err != nil || !slices.Contains(secrets, reused) {
		t.Errorf("the assertion is not among the secrets seen (%v)", err)
	}

	// A confidential client redeems a code and a refresh token with it.
	cfg := f.oauth(f.tenant.ID, "offline_access", "Mail.Read")
	verifier := oauth2.GenerateVerifier()
	q := authorize(t, cfg.AuthCodeURL("s", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("login_hint", "ada@contoso.example")))
	withAssertion := func(form url.Values) url.Values {
		form.Set("client_id", id)
		form.Set("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
		form.Set("client_assertion", assertion(t, ps, good.key, map[string]any{"x5t#S256": good.x5tS256()}, claims()))
		return form
	}
	st, te, tok := postToken(t, tokenURL, withAssertion(url.Values{"grant_type": {"authorization_code"}, "code": {q.Get("code")}, "redirect_uri": {redirectURI}, "code_verifier": {verifier}}))
	if st != 200 || tok["refresh_token"] == nil {
		t.Fatalf("code redemption with an assertion: %d %+v", st, te)
	}
	st, te, _ = postToken(t, tokenURL, withAssertion(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok["refresh_token"].(string)}}))
	if st != 200 {
		t.Errorf("refresh with an assertion: %d %+v", st, te)
	}
}

// assertion2HS signs with HMAC, which Entra does not accept for assertions.
func assertion2HS(t *testing.T, header map[string]any, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, claims)
	for k, v := range header {
		tok.Header[k] = v
	}
	s, err := tok.SignedString([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// stdB64 re-encodes a base64url value in standard, padded base64.
func stdB64(u string) string {
	b, _ := base64.RawURLEncoding.DecodeString(u)
	return base64.StdEncoding.EncodeToString(b)
}
