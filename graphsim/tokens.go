package graphsim

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// GraphResource is the resource (audience) of Graph access tokens.
const GraphResource = "https://graph.microsoft.com"

// graphAppID is Microsoft Graph's own application ID, used as the audience
// of app-only tokens and in WWW-Authenticate headers.
const graphAppID = "00000003-0000-0000-c000-000000000000"

// accessClaims are the claims of a Graph access token (docs/graph.md#access-tokens: Graph
// tokens are opaque to clients, but outlookd may read tid/oid/upn/scp).
type accessClaims struct {
	jwt.RegisteredClaims
	// Aud shadows the embedded audience: Entra writes a single string.
	Aud      string   `json:"aud"`
	TenantID string   `json:"tid"`
	ObjectID string   `json:"oid,omitempty"`
	UPN      string   `json:"upn,omitempty"`
	Email    string   `json:"email,omitempty"`
	Name     string   `json:"name,omitempty"`
	AppID    string   `json:"appid"`
	Scope    string   `json:"scp,omitempty"`
	Roles    []string `json:"roles,omitempty"`
	Version  string   `json:"ver"`
	UTI      string   `json:"uti"`
	IDType   string   `json:"idtyp"` // "user" or "app"
	MFA      bool     `json:"-"`
}

// principal is who a validated access token speaks for.
type principal struct {
	tenantID string
	appID    string
	user     *User // nil for app-only tokens
	scopes   map[string]bool
	roles    map[string]bool
	expires  time.Time
}

func (p *principal) delegated() bool { return p.user != nil }

// has tells whether any of the permissions is granted (scopes for delegated
// tokens, roles for app-only ones).
func (p *principal) has(perms ...string) bool {
	set := p.roles
	if p.delegated() {
		set = p.scopes
	}
	for _, perm := range perms {
		if set[perm] {
			return true
		}
	}
	return false
}

func (s *Sim) issuer(tenantID string) string { return "https://sts.windows.net/" + tenantID + "/" }

// mintAccessToken signs a Graph access token.
func (s *Sim) mintAccessToken(app *App, tenantID string, u *User, scopes, roles []string, now time.Time) (string, time.Duration, error) {
	life := s.opts.AccessTokenLifetime()
	c := accessClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    s.issuer(tenantID),
			IssuedAt:  jwt.NewNumericDate(now),
			NotBefore: jwt.NewNumericDate(now.Add(-5 * time.Minute)),
			ExpiresAt: jwt.NewNumericDate(now.Add(life)),
		},
		Aud:      GraphResource,
		TenantID: tenantID,
		AppID:    app.ClientID,
		Version:  "1.0",
		UTI:      randomToken(16),
		IDType:   "app",
	}
	if u != nil {
		c.ObjectID, c.Name, c.IDType = u.ID, u.DisplayName, "user"
		c.Subject = u.ID
		if s.tenants[u.TenantID] != nil && s.tenants[u.TenantID].Personal {
			c.Email = u.UPN
		} else {
			c.UPN = u.UPN
		}
		c.Scope = strings.Join(scopes, " ")
	} else {
		c.Subject = app.ClientID
		c.Roles = roles
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, c)
	tok.Header["kid"] = s.kid
	// Observed: Graph token headers carry a nonce (docs/graph.md#access-tokens).
	tok.Header["nonce"] = randomToken(24)
	signed, err := tok.SignedString(s.key)
	if err == nil && u != nil && s.tenants[u.TenantID] != nil && s.tenants[u.TenantID].Personal {
		// A personal account's Graph token is Microsoft's own encrypted
		// format, not a JWT a client could decode ("EwC..."): graphsim
		// hands out an opaque string and keeps the claims for itself.
		opaque := "EwC" + randomToken(180)
		s.opaque[opaque] = signed
		return opaque, life, nil
	}
	return signed, life, err
}

// mintIDToken signs an OpenID Connect ID token for the client.
func (s *Sim) mintIDToken(app *App, u *User, nonce string, now time.Time) (string, error) {
	claims := jwt.MapClaims{
		"aud":                app.ClientID,
		"iss":                s.URL() + "/" + u.TenantID + "/v2.0",
		"iat":                now.Unix(),
		"nbf":                now.Unix(),
		"exp":                now.Add(time.Hour).Unix(),
		"sub":                pairwiseSub(u.ID, app.ClientID),
		"oid":                u.ID,
		"tid":                u.TenantID,
		"name":               u.DisplayName,
		"preferred_username": u.UPN,
		"ver":                "2.0",
	}
	if nonce != "" {
		claims["nonce"] = nonce
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
	tok.Header["kid"] = s.kid
	// jwt encodes segments with RawURLEncoding, as MSAL requires (docs/graph.md#token-responses).
	return tok.SignedString(s.key)
}

func pairwiseSub(userID, clientID string) string {
	h := sha256.Sum256([]byte(userID + "|" + clientID))
	return base64.RawURLEncoding.EncodeToString(h[:])
}

// clientInfo is base64url JSON {"uid","utid"} (docs/graph.md#token-responses).
func clientInfo(u *User) string {
	b, _ := json.Marshal(map[string]string{"uid": u.ID, "utid": u.TenantID})
	return base64.RawURLEncoding.EncodeToString(b)
}

// token validation failures, with the message Graph returns (docs/graph.md#common-error-codes).
var (
	errTokenEmpty     = errors.New("Access token is empty.")
	errTokenExpired   = errors.New("Lifetime validation failed, the token is expired.")
	errTokenMalformed = errors.New("IDX14100: JWT is not well formed, there are no dots (.).")
	errTokenSignature = errors.New("Signature validation failed.")
	errTokenAudience  = errors.New("Invalid audience.")
)

// validateAccessToken checks a bearer token against the simulator's key,
// clock and directory.
func (s *Sim) validateAccessToken(raw string) (*principal, error) {
	if raw == "" {
		return nil, errTokenEmpty
	}
	if signed, ok := s.opaque[raw]; ok {
		raw = signed
	}
	if strings.Count(raw, ".") != 2 {
		return nil, errTokenMalformed
	}
	var c accessClaims
	_, err := jwt.ParseWithClaims(raw, &c, func(t *jwt.Token) (any, error) { return &s.key.PublicKey, nil },
		jwt.WithValidMethods([]string{"RS256"}),
		jwt.WithTimeFunc(s.clock.Now),
		jwt.WithLeeway(0),
	)
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return nil, errTokenExpired
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return nil, errTokenSignature
	case err != nil:
		return nil, fmt.Errorf("%w", errTokenMalformed)
	}
	if c.Aud != GraphResource && c.Aud != graphAppID {
		return nil, errTokenAudience
	}
	p := &principal{tenantID: c.TenantID, appID: c.AppID, scopes: map[string]bool{}, roles: map[string]bool{}, expires: c.ExpiresAt.Time}
	for sc := range strings.FieldsSeq(c.Scope) {
		p.scopes[sc] = true
	}
	for _, r := range c.Roles {
		p.roles[r] = true
	}
	if c.IDType == "user" {
		u := s.users[c.ObjectID]
		if u == nil {
			return nil, errTokenSignature
		}
		p.user = u
	}
	return p, nil
}

// jwk is the public signing key as a JSON Web Key, as Entra publishes it
// (docs/graph.md#signing-keys): x5c is standard base64 of the certificate's
// DER, x5t its base64url SHA-1 thumbprint, and kid equals x5t.
func (s *Sim) jwk(issuer string) map[string]any {
	pub := s.key.PublicKey
	return map[string]any{
		"kty":    "RSA",
		"use":    "sig",
		"kid":    s.kid,
		"x5t":    thumbprintSHA1(s.cert),
		"n":      base64.RawURLEncoding.EncodeToString(pub.N.Bytes()),
		"e":      base64.RawURLEncoding.EncodeToString(big.NewInt(int64(pub.E)).Bytes()),
		"x5c":    []string{base64.StdEncoding.EncodeToString(s.cert)},
		"issuer": issuer,
	}
}
