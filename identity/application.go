package identity

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"

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
	Secret   string
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
