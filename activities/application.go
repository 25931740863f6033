package activities

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"golang.org/x/oauth2"

	graphgroups "github.com/microsoftgraph/msgraph-sdk-go/groups"
	"github.com/microsoftgraph/msgraph-sdk-go/users"

	"github.com/outlookd/outlookd/graph"
	"github.com/outlookd/outlookd/identity"
	"github.com/outlookd/outlookd/vault"
	"github.com/outlookd/outlookd/workflows"
)

// AppCheck is what checking an application credential found.
type AppCheck struct {
	// TenantID is the tenant's directory ID (from the token).
	TenantID string
	// Roles are the application permissions granted.
	Roles []string
	Token *oauth2.Token
}

// Credentials checks and stores application credentials for the API. It
// is not an activity: the secret it takes never enters Temporal.
type Credentials struct{ A *Activities }

// Check proves an application credential before it is kept:
// a client credentials token, the permissions it carries, then a read of
// the directory. A credential Microsoft refuses, or one without the
// permissions an organisation-wide sync needs, is an *identity.AppError
// saying what to change; other errors are transient.
func (cr Credentials) Check(ctx context.Context, cred identity.AppCredential) (AppCheck, error) {
	a := cr.A
	if err := identity.CheckTenant(cred.Tenant); err != nil {
		reason := identity.AppTenantNotFound
		if errors.Is(err, identity.ErrPersonalTenant) {
			reason = identity.AppPersonalTenant
		}
		return AppCheck{}, &identity.AppError{Reason: reason, Text: capitalFirst(err.Error()) + "."}
	}
	if cred.CertificatePEM != "" {
		if _, err := identity.ParseCertificate(cred.CertificatePEM); err != nil {
			return AppCheck{}, &identity.AppError{Reason: identity.AppInvalidCertificate, Text: capitalFirst(err.Error()) + "."}
		}
	}
	tok, err := a.Identity.ClientCredentialsToken(ctx, a.httpClient(), cred)
	if err != nil {
		if reason, text, ok := identity.ClassifyAppError(err, cred); ok {
			return AppCheck{}, &identity.AppError{Reason: reason, Text: text}
		}
		return AppCheck{}, fmt.Errorf("activities: client credentials: %w", err)
	}
	roles, tid, err := identity.TokenRoles(tok.AccessToken)
	if err != nil {
		return AppCheck{}, err
	}
	if len(roles) == 0 {
		// Without admin consent the platform still issues a token, with no
		// roles (docs/graph.md#client-credentials).
		return AppCheck{}, &identity.AppError{Reason: identity.AppConsentRequired,
			Text: "The application has no application permission granted in tenant " + cred.Tenant + ": an administrator must grant admin consent for User.Read.All, Mail.Read and MailboxSettings.Read (API permissions, Grant admin consent)."}
	}
	if missing := identity.MissingPermissions(roles); len(missing) > 0 {
		return AppCheck{}, &identity.AppError{Reason: identity.AppPermissionMissing, Missing: missing,
			Text: "The application lacks the application permission " + strings.Join(missing, ", ") + ": add it under API permissions (Microsoft Graph, Application permissions) and grant admin consent again."}
	}
	gc, err := a.graphWithToken(tok)
	if err != nil {
		return AppCheck{}, err
	}
	top, sel := int32(1), []string{"id"}
	if _, err := gc.Users().Get(ctx, &users.UsersRequestBuilderGetRequestConfiguration{
		QueryParameters: &users.UsersRequestBuilderGetQueryParameters{Top: &top, Select: sel}}); err != nil {
		if ge, ok := graph.AsError(err); ok && ge.Status == 403 {
			return AppCheck{}, &identity.AppError{Reason: identity.AppPermissionMissing, Missing: []string{"User.Read.All"},
				Text: "Graph refused to list the directory's users (" + ge.Code + "): grant the application permission User.Read.All and admin consent."}
		}
		if ge, ok := graph.AsError(err); ok && ge.Status < 500 && ge.Status != 429 {
			return AppCheck{}, &identity.AppError{Reason: identity.AppDirectoryUnreachable, Text: "Graph refused to list the directory's users: " + ge.Code + "."}
		}
		return AppCheck{}, fmt.Errorf("activities: read directory: %w", err)
	}
	return AppCheck{TenantID: tid, Roles: roles, Token: tok}, nil
}

// CheckGroups proves, with the token a check obtained, that the
// application can read the members of each group the selection names: a
// permission missing is permission_missing naming GroupMember.Read.All, a
// group unknown is group_not_found (*identity.AppError); other errors are
// transient.
func (cr Credentials) CheckGroups(ctx context.Context, chk AppCheck, groups []string) error {
	gc, err := cr.A.graphWithToken(chk.Token)
	if err != nil {
		return err
	}
	top := int32(1)
	for _, g := range groups {
		_, err := gc.Groups().ByGroupId(g).TransitiveMembers().GraphUser().Get(ctx, &graphgroups.ItemTransitiveMembersGraphUserRequestBuilderGetRequestConfiguration{
			QueryParameters: &graphgroups.ItemTransitiveMembersGraphUserRequestBuilderGetQueryParameters{Top: &top, Select: []string{"id"}}})
		if err == nil {
			continue
		}
		var ae *identity.AppError
		if err := groupError(g, err); errors.As(err, &ae) {
			return ae
		}
		return fmt.Errorf("activities: read group %s: %w", g, err)
	}
	return nil
}

func capitalFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// StoreToken keeps an app-only token a check obtained, so the
// connection's first calls need no other.
func (cr Credentials) StoreToken(ctx context.Context, connectionID string, chk AppCheck) error {
	a := cr.A
	_, version, err := a.Tokens.GetTokens(ctx, connectionID)
	if err != nil && !errors.Is(err, vault.ErrNotFound) {
		return err
	}
	tok := vault.Tokens{AccessToken: chk.Token.AccessToken, Expiry: chk.Token.Expiry, Scope: strings.Join(chk.Roles, " ")}
	err = a.Tokens.PutTokens(ctx, connectionID, tok, version)
	if errors.Is(err, vault.ErrConflict) {
		return nil // another writer stored a token as fresh
	}
	if err == nil {
		a.keepToken(connectionID, tok)
	}
	return err
}

// refusedAtRefresh is the sentence of a credential refused while the
// connection runs: what to change, and where to give it.
func refusedAtRefresh(connectionID string, reason identity.AppReason, text string) string {
	where := "PUT /v1/connections/" + connectionID + "/credential"
	if reason == identity.AppSecretExpired {
		return "The client secret has expired: create a new one under Certificates & secrets in the app registration and give it with " +
			where + "; every mailbox resumes where it stopped."
	}
	return text + " Then give the credential with " + where + "; every mailbox resumes where it stopped."
}

// appRefresh gets an application connection a new app-only token with
// its client credential (there is no refresh token in this grant). A
// credential Microsoft refuses (expired or removed secret, consent
// withdrawn) is ErrReauthRequired: the connection waits for a new one.
func (a *Activities) appRefresh(ctx context.Context, connectionID string, version int) (vault.Tokens, error) {
	vc, err := a.Tokens.GetAppCredential(ctx, connectionID)
	if err != nil {
		return vault.Tokens{}, fmt.Errorf("activities: credential of %s: %w", connectionID, err)
	}
	cred := identity.AppCredential{Tenant: vc.Tenant, ClientID: vc.ClientID, Secret: vc.Secret, CertificatePEM: vc.Certificate}
	tok, err := a.Identity.ClientCredentialsToken(ctx, a.httpClient(), cred)
	if err != nil {
		if reason, text, ok := identity.ClassifyAppError(err, cred); ok {
			text = refusedAtRefresh(connectionID, reason, text)
			return vault.Tokens{}, temporal.NewNonRetryableApplicationError("the application's credential was refused: "+string(reason),
				workflows.ErrReauthRequired, err, reasonDetail{Reason: string(reason), Text: text})
		}
		return vault.Tokens{}, fmt.Errorf("activities: client credentials: %w", err)
	}
	roles, _, _ := identity.TokenRoles(tok.AccessToken)
	fresh := vault.Tokens{AccessToken: tok.AccessToken, Expiry: tok.Expiry, Scope: strings.Join(roles, " ")}
	if fresh.Expiry.IsZero() {
		fresh.Expiry = a.now().Add(time.Hour)
	}
	err = a.Tokens.PutTokens(ctx, connectionID, fresh, version)
	if errors.Is(err, vault.ErrConflict) {
		current, _, err := a.Tokens.GetTokens(ctx, connectionID)
		return current, err
	}
	if err != nil {
		return vault.Tokens{}, err
	}
	return fresh, nil
}
