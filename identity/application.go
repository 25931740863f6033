package identity

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// AppCredential is an application's client credential for one tenant: the
// client ID and a client secret, as the tenant's administrator registered
// them. It lives in Vault only.
type AppCredential struct {
	// Tenant is the directory (tenant) ID or a verified domain.
	Tenant   string
	ClientID string
	// Secret is a client secret; or CertificatePEM, a certificate
	// registered on the app with its private key (ParseCertificate).
	Secret         string
	CertificatePEM string
}

// ApplicationPermissions are the Graph application permissions an
// organisation-wide sync needs: the directory's users, their mail, and
// their mailbox settings (which tell a shared mailbox from a user's). Each
// entry lists the permissions that satisfy it, the least first
// (docs/application.md#permissions).
var ApplicationPermissions = [][]string{
	{"User.Read.All", "Directory.Read.All", "User.ReadWrite.All", "Directory.ReadWrite.All"},
	{"Mail.Read", "Mail.ReadWrite"},
	{"MailboxSettings.Read", "MailboxSettings.ReadWrite"},
}

// MissingPermissions lists, by their least name, the permissions of
// ApplicationPermissions the granted roles do not satisfy.
func MissingPermissions(roles []string) []string {
	var missing []string
	for _, any := range ApplicationPermissions {
		if !slices.ContainsFunc(any, func(p string) bool { return slices.Contains(roles, p) }) {
			missing = append(missing, any[0])
		}
	}
	return missing
}

// personalTenants are the {tenant} segments an application credential
// cannot use: the client credentials grant needs one organisation's
// directory (AADSTS9001023 on /common and /consumers), and personal
// Microsoft accounts have none.
var personalTenants = []string{"common", "consumers", "organizations", "9188040d-6c67-4c5b-b112-36a304b66dad"}

var tenantPattern = regexp.MustCompile(`^[0-9A-Za-z][0-9A-Za-z.-]{0,253}$`)

// CheckTenant refuses a tenant an application credential cannot be used
// with, in a sentence for people; ErrPersonalTenant for the personal
// accounts' tenant and the aliases.
func CheckTenant(tenant string) error {
	switch {
	case slices.Contains(personalTenants, strings.ToLower(tenant)):
		return ErrPersonalTenant
	case !tenantPattern.MatchString(tenant):
		return fmt.Errorf("%q is not a tenant: give the directory (tenant) ID or a verified domain of the organisation", tenant)
	}
	return nil
}

// ErrPersonalTenant: application permissions need an organisation's tenant.
var ErrPersonalTenant = errors.New("personal Microsoft accounts (outlook.com, hotmail.com) have no organisation tenant and cannot grant application permissions; give a work or school tenant")

// ClientCredentialsToken asks the identity platform for an app-only token
// for Graph (grant_type=client_credentials, scope {graph}/.default;
// docs/graph.md#client-credentials). The secret travels in the form
// (client_secret_post), which the platform accepts as it accepts Basic.
func (c Config) ClientCredentialsToken(ctx context.Context, hc *http.Client, cred AppCredential) (*oauth2.Token, error) {
	resource := strings.TrimSuffix(c.GraphResource, "/")
	if resource == "" {
		resource = GraphResource
	}
	cc := clientcredentials.Config{
		ClientID:     cred.ClientID,
		ClientSecret: cred.Secret,
		TokenURL:     strings.TrimSuffix(c.AuthorityURL, "/") + "/" + cred.Tenant + "/oauth2/v2.0/token",
		Scopes:       []string{resource + "/.default"},
		AuthStyle:    oauth2.AuthStyleInParams,
	}
	if cred.Secret == "" && cred.CertificatePEM != "" {
		cert, err := ParseCertificate(cred.CertificatePEM)
		if err != nil {
			return nil, err
		}
		a, err := assertion(cert, cred.ClientID, cc.TokenURL, time.Now())
		if err != nil {
			return nil, fmt.Errorf("identity: client assertion: %w", err)
		}
		cc.EndpointParams = url.Values{"client_assertion_type": {clientAssertionType}, "client_assertion": {a}}
	}
	if hc != nil {
		ctx = context.WithValue(ctx, oauth2.HTTPClient, hc)
	}
	return cc.Token(ctx)
}

// TokenRoles reads the roles claim (the application permissions granted)
// of an app-only access token. The token is not verified: it was just
// received from the identity platform over TLS, and only its claims about
// itself are read, to say which permission is missing before Graph does.
func TokenRoles(accessToken string) ([]string, string, error) {
	parts := strings.Split(accessToken, ".")
	if len(parts) != 3 {
		return nil, "", errors.New("identity: the access token is not a JWT")
	}
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return nil, "", fmt.Errorf("identity: access token payload: %w", err)
	}
	var claims struct {
		Roles []string `json:"roles"`
		TID   string   `json:"tid"`
	}
	if err := json.Unmarshal(raw, &claims); err != nil {
		return nil, "", fmt.Errorf("identity: access token claims: %w", err)
	}
	return claims.Roles, claims.TID, nil
}

// AppReason is why an application credential was refused, for the API's
// machine-readable code.
type AppReason string

// Reasons an application credential is refused.
const (
	AppTenantNotFound       AppReason = "tenant_not_found"
	AppUnknownClient        AppReason = "unknown_client"
	AppInvalidSecret        AppReason = "invalid_client_secret"
	AppSecretExpired        AppReason = "client_secret_expired"
	AppPersonalTenant       AppReason = "personal_account_unsupported"
	AppConsentRequired      AppReason = "admin_consent_required"
	AppPermissionMissing    AppReason = "permission_missing"
	AppDirectoryUnreachable AppReason = "directory_unreachable"
	AppCredentialRefused    AppReason = "credential_refused"
	// AppGroupNotFound: the selection names a group the tenant lacks.
	AppGroupNotFound      AppReason = "group_not_found"
	AppCertificateRefused AppReason = "certificate_refused"
	AppInvalidCertificate AppReason = "invalid_certificate"
)

// ClassifyAppError maps a client credentials token error to a reason and a
// sentence saying what to change; ok is false for an error that is not the
// platform's answer (a network error: try again).
func ClassifyAppError(err error, cred AppCredential) (AppReason, string, bool) {
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || re.Response != nil && re.Response.StatusCode >= 500 {
		return "", "", false
	}
	switch Code(re.ErrorDescription) {
	case 90002, 90023:
		return AppTenantNotFound, fmt.Sprintf("Microsoft knows no tenant %q: give the organisation's directory (tenant) ID, found on the app registration's Overview page.", cred.Tenant), true
	case 700016:
		return AppUnknownClient, fmt.Sprintf("The application %s is not registered in tenant %s: check the application (client) ID and the tenant, or have an administrator consent to the app there.", cred.ClientID, cred.Tenant), true
	case 7000215:
		return AppInvalidSecret, "Microsoft refused the client secret: give the secret's value (shown once when it was created), not its ID.", true
	case 7000222:
		return AppSecretExpired, "The client secret has expired: create a new one under Certificates & secrets and give it here.", true
	case 9001023:
		return AppPersonalTenant, ErrPersonalTenant.Error(), true
	case 700027, 700024, 700023, 700021, 50048, 50027:
		return AppCertificateRefused, "Microsoft refused the certificate's assertion (AADSTS" + fmt.Sprint(Code(re.ErrorDescription)) +
			"): upload the certificate under Certificates & secrets, check that it has not expired, and give it with its private key.", true
	}
	return AppCredentialRefused, "Microsoft refused the credential: " + re.ErrorCode + ".", true
}

// AppError is an application credential refused for a reason people can
// act on.
type AppError struct {
	Reason AppReason
	Text   string
	// Missing names the permissions not granted (AppPermissionMissing).
	Missing []string
}

func (e *AppError) Error() string { return string(e.Reason) + ": " + e.Text }

// clientAssertionType is the client_assertion_type of a certificate
// credential (RFC 7523).
const clientAssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// Certificate is a certificate credential: the certificate registered on
// the app and its private key.
type Certificate struct {
	DER      []byte
	Key      crypto.Signer
	NotAfter time.Time
}

// ParseCertificate reads a certificate credential from PEM: the
// certificate (the first CERTIFICATE block) and its unencrypted private
// key (PKCS #8, PKCS #1 or EC), in any order.
func ParseCertificate(pemText string) (Certificate, error) {
	var c Certificate
	rest := []byte(pemText)
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		switch b.Type {
		case "CERTIFICATE":
			if c.DER == nil {
				c.DER = b.Bytes
			}
		case "PRIVATE KEY":
			k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
			if err != nil {
				return c, fmt.Errorf("the private key cannot be read: %w", err)
			}
			s, ok := k.(crypto.Signer)
			if !ok {
				return c, errors.New("the private key cannot sign")
			}
			c.Key = s
		case "RSA PRIVATE KEY":
			k, err := x509.ParsePKCS1PrivateKey(b.Bytes)
			if err != nil {
				return c, fmt.Errorf("the private key cannot be read: %w", err)
			}
			c.Key = k
		case "ENCRYPTED PRIVATE KEY":
			return c, errors.New("the private key is encrypted; give it unencrypted (Vault keeps it)")
		}
	}
	if c.DER == nil || c.Key == nil {
		return c, errors.New("give the certificate and its private key, both PEM-encoded")
	}
	cert, err := x509.ParseCertificate(c.DER)
	if err != nil {
		return c, fmt.Errorf("the certificate cannot be read: %w", err)
	}
	rsaPub, ok := cert.PublicKey.(*rsa.PublicKey)
	if !ok {
		return c, errors.New("the certificate's key must be RSA (Microsoft's client assertions are RS256 or PS256)")
	}
	if k, ok := c.Key.(*rsa.PrivateKey); !ok || !k.PublicKey.Equal(rsaPub) {
		return c, errors.New("the private key is not the certificate's")
	}
	c.NotAfter = cert.NotAfter
	return c, nil
}

// assertion is the signed JWT a certificate credential presents instead
// of a secret (docs/graph.md#certificate-credentials): RS256, x5t#S256
// the certificate's SHA-256 thumbprint, the token endpoint as audience,
// valid for ten minutes.
func assertion(c Certificate, clientID, tokenURL string, now time.Time) (string, error) {
	sum := sha256.Sum256(c.DER)
	jti := make([]byte, 16)
	_, _ = rand.Read(jti)
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{
		"aud": tokenURL, "iss": clientID, "sub": clientID, "jti": hex.EncodeToString(jti),
		"nbf": now.Add(-time.Minute).Unix(), "iat": now.Unix(), "exp": now.Add(10 * time.Minute).Unix(),
	})
	tok.Header["x5t#S256"] = base64.RawURLEncoding.EncodeToString(sum[:])
	return tok.SignedString(c.Key)
}
