package graphsim

import (
	"bytes"
	"context"
	"crypto/rsa"
	"crypto/sha1" //nolint:gosec // Entra prints SHA-1 thumbprints of certificates
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// CertificateSpec is a certificate credential of an app registration: the
// public part only, as an admin uploads it (docs/graph.md#certificate-credentials).
type CertificateSpec struct {
	ID string `json:"id"`
	// Certificate is the DER encoding (base64 in JSON).
	Certificate []byte `json:"certificate"`
	// Expires is when Entra stops accepting it: the certificate's NotAfter
	// unless the registration says otherwise.
	Expires time.Time `json:"expires"`
	// Starts is the certificate's NotBefore.
	Starts time.Time `json:"starts"`
}

// clientAssertionType is the only client_assertion_type Entra accepts.
const clientAssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// AddCertificate registers a certificate (DER) on an app as a credential,
// as an admin would upload it; a zero expires keeps the certificate's own
// NotAfter (docs/graph.md#certificate-credentials).
func (s *Sim) AddCertificate(clientID string, der []byte, expires time.Time) (*CertificateSpec, error) {
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("graphsim: certificate: %w", err)
	}
	if _, ok := cert.PublicKey.(*rsa.PublicKey); !ok {
		return nil, errors.New("graphsim: certificate credentials must hold an RSA key")
	}
	if expires.IsZero() {
		expires = cert.NotAfter
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.apps[clientID]
	if a == nil {
		return nil, fmt.Errorf("graphsim: app %s: %w", clientID, ErrNotFound)
	}
	c := CertificateSpec{ID: newGUID(), Certificate: der, Expires: expires, Starts: cert.NotBefore}
	a.Certificates = append(a.Certificates, c)
	return &c, nil
}

// AddCertificate registers a certificate (DER) on an app (see
// Sim.AddCertificate); a zero expires keeps the certificate's NotAfter.
func (c *Client) AddCertificate(ctx context.Context, clientID string, der []byte, expires time.Time) (*CertificateSpec, error) {
	var out CertificateSpec
	body := struct {
		Certificate []byte    `json:"certificate"`
		Expires     time.Time `json:"expires,omitzero"`
	}{der, expires}
	return &out, c.do(ctx, "POST", "/_sim/apps/"+url.PathEscape(clientID)+"/certificates", body, &out)
}

// handleAddCertificate serves POST /_sim/apps/{app}/certificates.
func (s *Sim) handleAddCertificate(r *http.Request) (any, error) {
	var body struct {
		Certificate []byte    `json:"certificate"`
		Expires     time.Time `json:"expires"`
	}
	if err := decode(r, &body); err != nil {
		return nil, err
	}
	return s.AddCertificate(r.PathValue("app"), body.Certificate, body.Expires)
}

// assertionAuth authenticates a client by a JWT signed with one of its
// certificates (docs/graph.md#certificate-credentials). Caller holds s.mu.
func (s *Sim) assertionAuth(r *http.Request, seg string) (*App, *idpError) {
	f := r.PostForm
	raw := f.Get("client_assertion")
	s.remember(raw)
	switch {
	case f.Get("client_assertion_type") == "":
		return nil, errMissingParam("client_assertion_type")
	case f.Get("client_assertion_type") != clientAssertionType:
		return nil, &idpError{err: "invalid_request", code: 50027, message: "JWT token is invalid or malformed. Unsupported client_assertion_type '" + f.Get("client_assertion_type") + "'."}
	case raw == "":
		return nil, errMissingParam("client_assertion")
	case f.Get("client_id") == "":
		return nil, errMissingParam("client_id")
	}
	app := s.apps[f.Get("client_id")]
	if app == nil {
		return nil, errUnknownClient(f.Get("client_id"), seg)
	}
	claims := jwt.MapClaims{}
	var used *CertificateSpec
	_, err := jwt.ParseWithClaims(raw, claims, func(t *jwt.Token) (any, error) {
		used = findCertificate(app, t.Header)
		if used == nil {
			return nil, errKeyNotFound
		}
		cert, err := x509.ParseCertificate(used.Certificate)
		if err != nil {
			return nil, err
		}
		return cert.PublicKey, nil
	}, jwt.WithValidMethods([]string{"RS256", "PS256"}), jwt.WithoutClaimsValidation())
	now := s.clock.Now()
	switch {
	case used == nil && (errors.Is(err, errKeyNotFound) || err == nil):
		return nil, errAssertionKey(app.ClientID, headerThumbprint(raw), "The key was not found.", "")
	case used == nil:
		return nil, errMalformedAssertion()
	case now.After(used.Expires):
		return nil, errAssertionKey(app.ClientID, sha1Hex(used.Certificate), "The key used is expired.",
			fmt.Sprintf("Found key 'Start=%s, End=%s'", used.Starts.UTC().Format("01/02/2006 15:04:05"), used.Expires.UTC().Format("01/02/2006 15:04:05")))
	case err != nil:
		return nil, errAssertionKey(app.ClientID, sha1Hex(used.Certificate), "Key was found, but use of the key to verify the signature failed.", "")
	}
	return app, s.checkAssertionClaims(app, seg, claims, now)
}

var errKeyNotFound = errors.New("key not found")

// checkAssertionClaims checks iss, sub, aud, jti and the time range.
func (s *Sim) checkAssertionClaims(app *App, seg string, c jwt.MapClaims, now time.Time) *idpError {
	iss, _ := c["iss"].(string)
	sub, _ := c["sub"].(string)
	jti, _ := c["jti"].(string)
	aud, audErr := c.GetAudience()
	exp, expErr := c.GetExpirationTime()
	nbf, nbfErr := c.GetNotBefore()
	switch {
	case expErr != nil || nbfErr != nil || audErr != nil || exp == nil || nbf == nil || jti == "":
		return errMalformedAssertion()
	case iss != sub:
		return &idpError{status: 401, err: "invalid_client", code: 50048, message: "Subject mismatches Issuer claim in the client assertion."}
	case iss != app.ClientID:
		return &idpError{status: 401, err: "invalid_client", code: 700021, message: "Client assertion application identifier doesn't match 'client_id' parameter. Review the documentation at https://learn.microsoft.com/entra/identity-platform/certificate-credentials ."}
	case !s.assertionAudienceOK(seg, aud):
		return &idpError{status: 401, err: "invalid_client", code: 700023, message: "Client assertion audience claim does not match Realm issuer. Review the documentation at https://learn.microsoft.com/entra/identity-platform/certificate-credentials ."}
	case now.Before(nbf.Time) || !now.Before(exp.Time):
		const f = "2006-01-02T15:04:05.0000000Z"
		return &idpError{status: 401, err: "invalid_client", code: 700024, message: fmt.Sprintf("Client assertion is not within its valid time range. Current time: %s, assertion valid from %s, expiry time of assertion %s. Review the documentation at https://learn.microsoft.com/entra/identity-platform/certificate-credentials .",
			now.UTC().Format(f), nbf.UTC().Format(f), exp.UTC().Format(f))}
	}
	return nil
}

// assertionAudienceOK: the audience must be the token endpoint of the
// tenant the request is for, by its ID or domain; the shared /common and
// /organizations endpoints have no realm to match (AADSTS700023).
func (s *Sim) assertionAudienceOK(seg string, aud []string) bool {
	if len(aud) != 1 || isAliasTenant(seg) {
		return false
	}
	t := s.tenantFor(seg)
	if t == nil {
		return false
	}
	for _, name := range []string{t.ID, t.Domain} {
		if strings.EqualFold(aud[0], s.URL()+"/"+name+"/oauth2/v2.0/token") {
			return true
		}
	}
	return false
}

// findCertificate picks the registered certificate an assertion header
// names by x5t#S256 or x5t. The thumbprint is read as base64url or as
// standard base64, padded or not: MSAL for Go sends standard base64 and
// Entra accepts it (docs/graph.md#certificate-credentials).
func findCertificate(app *App, h map[string]any) *CertificateSpec {
	s256 := decodeThumbprint(h["x5t#S256"])
	s1 := decodeThumbprint(h["x5t"])
	for i := range app.Certificates {
		c := &app.Certificates[i]
		sum256 := sha256.Sum256(c.Certificate)
		sum1 := sha1.Sum(c.Certificate) //nolint:gosec // x5t is a SHA-1 thumbprint
		if (s256 != nil && bytes.Equal(s256, sum256[:])) || (s1 != nil && bytes.Equal(s1, sum1[:])) {
			return c
		}
	}
	return nil
}

// decodeThumbprint decodes a header thumbprint in any base64 alphabet.
func decodeThumbprint(v any) []byte {
	str, _ := v.(string)
	if str == "" {
		return nil
	}
	for _, enc := range []*base64.Encoding{base64.RawURLEncoding, base64.URLEncoding, base64.StdEncoding, base64.RawStdEncoding} {
		if b, err := enc.DecodeString(str); err == nil {
			return b
		}
	}
	return nil
}

// headerThumbprint is the thumbprint an assertion names, as Entra prints
// it (upper-case hex), for the error text.
func headerThumbprint(raw string) string {
	tok, _, err := jwt.NewParser().ParseUnverified(raw, jwt.MapClaims{})
	if err != nil {
		return ""
	}
	for _, k := range []string{"x5t", "x5t#S256"} {
		if b := decodeThumbprint(tok.Header[k]); b != nil {
			return strings.ToUpper(hex.EncodeToString(b))
		}
	}
	return ""
}

func sha1Hex(der []byte) string {
	sum := sha1.Sum(der) //nolint:gosec // a thumbprint for the error text
	return strings.ToUpper(hex.EncodeToString(sum[:]))
}

// errAssertionKey is AADSTS700027 with Entra's bracketed reason.
func errAssertionKey(appID, thumbprint, reason, found string) *idpError {
	msg := "Client assertion contains an invalid signature. [Reason - " + reason + " Thumbprint of key used by client: '" + thumbprint + "'"
	if found != "" {
		msg += ", " + found
	} else if reason == "The key was not found." {
		msg += ", Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys for app Id '" + appID + "'."
	}
	return &idpError{status: 401, err: "invalid_client", code: 700027, message: msg + "]"}
}

func errMalformedAssertion() *idpError {
	return &idpError{status: 401, err: "invalid_client", code: 50027, message: "JWT token is invalid or malformed."}
}
