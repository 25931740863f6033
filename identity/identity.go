// Package identity speaks to the Microsoft identity platform for outlookd:
// which scopes each feature needs, the OAuth endpoints of the configured
// cloud, and what the platform's errors mean for a connection.
package identity

import (
	"errors"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/oauth2"
)

// Config is the app registration and the cloud it lives in.
type Config struct {
	// AuthorityURL is the login host (https://login.microsoftonline.com;
	// national clouds have their own, docs/graph.md#national-clouds).
	AuthorityURL string
	// Tenant is the {tenant} segment: common, organizations, consumers, or a
	// tenant ID.
	Tenant      string
	ClientID    string
	RedirectURL string
	// AdminRedirectURL is where the admin consent endpoint sends the
	// administrator back (AdminConsentURL).
	AdminRedirectURL string
	// GraphResource is Graph's resource URI for admin consent scopes
	// (default GraphResource; national clouds differ).
	GraphResource string
}

// OAuth returns the x/oauth2 configuration for scopes and a client secret.
func (c Config) OAuth(secret string, scopes []string) *oauth2.Config {
	base := strings.TrimSuffix(c.AuthorityURL, "/") + "/" + c.Tenant + "/oauth2/v2.0/"
	return &oauth2.Config{
		ClientID:     c.ClientID,
		ClientSecret: secret,
		RedirectURL:  c.RedirectURL,
		Scopes:       scopes,
		Endpoint:     oauth2.Endpoint{AuthURL: base + "authorize", TokenURL: base + "token"},
	}
}

// Features a connection can ask for.
type Features struct {
	Read bool
	Send bool
	// Shared asks for the .Shared scopes: a service account that reads and
	// sends from mailboxes Exchange lets it open.
	Shared bool
}

// Scopes returns the least delegated scopes for the features: offline_access
// always (a refresh token), User.Read to learn the mailbox, then Mail.Read
// and/or Mail.Send (C2), or their .Shared forms for a service account.
// Reading and sending together ask Mail.ReadWrite instead of Mail.Read: a
// send goes through a draft stamped with its key, which needs it, and is
// looked for in Drafts and Sent Items after an ambiguous answer
// (docs/graph.md#ambiguous-send-answers). Sending alone asks Mail.Send
// only, and sends with sendMail.
func (c Config) Scopes(f Features) []string {
	out := []string{"offline_access", "User.Read"}
	suffix := ""
	if f.Shared {
		suffix = ".Shared"
	}
	switch {
	case f.Read && f.Send:
		out = append(out, "Mail.ReadWrite"+suffix)
	case f.Read:
		out = append(out, "Mail.Read"+suffix)
	}
	if f.Send {
		out = append(out, "Mail.Send"+suffix)
	}
	return out
}

// GrantedScopes parses the space-separated scope of a token response into
// short permission names (Mail.Read), dropping OIDC scopes.
func GrantedScopes(scope string) []string {
	var out []string
	for s := range strings.FieldsSeq(scope) {
		if i := strings.LastIndexByte(s, '/'); i >= 0 {
			s = s[i+1:]
		}
		switch strings.ToLower(s) {
		case "openid", "profile", "email", "offline_access", ".default":
			continue
		}
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	slices.Sort(out)
	return out
}

// FeaturesOf says what the granted scopes allow: a user who granted only
// Mail.Send has a send-only connection.
func FeaturesOf(granted []string) Features {
	has := func(names ...string) bool {
		for _, g := range granted {
			for _, n := range names {
				if strings.EqualFold(g, n) {
					return true
				}
			}
		}
		return false
	}
	return Features{
		Read:   has("Mail.Read", "Mail.ReadWrite", "Mail.ReadBasic", "Mail.Read.Shared", "Mail.ReadWrite.Shared"),
		Send:   has("Mail.Send", "Mail.Send.Shared"),
		Shared: has("Mail.Read.Shared", "Mail.ReadWrite.Shared", "Mail.Send.Shared"),
	}
}

// Reason is why the identity platform refused, in terms a connection's
// owner can act on.
type Reason string

// Reasons.
const (
	ReasonAdminConsentRequired Reason = "admin_consent_required"
	ReasonConsentDeclined      Reason = "consent_declined"
	ReasonConsentRevoked       Reason = "consent_revoked"
	ReasonMFARequired          Reason = "mfa_required"
	ReasonConditionalAccess    Reason = "conditional_access"
	ReasonPasswordChanged      Reason = "password_changed"
	ReasonRevoked              Reason = "revoked"
	ReasonInactive             Reason = "inactive"
	ReasonAccountDisabled      Reason = "account_disabled"
	ReasonWrongAccount         Reason = "wrong_account"
	ReasonAppMisconfigured     Reason = "app_misconfigured"
	ReasonCodeInvalid          Reason = "code_invalid"
	ReasonTokenInvalid         Reason = "token_invalid"
	ReasonUnknown              Reason = "unknown"
)

// Describe says what a reason means and what to do, in one sentence.
func (r Reason) Describe() string {
	switch r {
	case ReasonAdminConsentRequired:
		return "An administrator of the organisation must approve the app before its users can connect."
	case ReasonConsentDeclined:
		return "The user declined the permissions the app asked for."
	case ReasonConsentRevoked:
		return "The consent given to the app was removed; the user must connect again."
	case ReasonMFARequired:
		return "The organisation now requires multi-factor authentication; the user must sign in again."
	case ReasonConditionalAccess:
		return "A conditional access policy of the organisation blocks the sign-in."
	case ReasonPasswordChanged:
		return "The user's password changed or was reset; the user must sign in again."
	case ReasonRevoked:
		return "The user's sessions were revoked; the user must sign in again."
	case ReasonInactive:
		return "The sign-in expired after a long period without use; the user must sign in again."
	case ReasonAccountDisabled:
		return "The user's account is disabled."
	case ReasonWrongAccount:
		return "The user signed in with a different account than the one connected."
	case ReasonAppMisconfigured:
		return "The app's credentials were refused by Microsoft (client secret wrong or expired)."
	case ReasonCodeInvalid:
		return "The sign-in could not be completed (the authorization code was refused); start again."
	case ReasonTokenInvalid:
		return "Microsoft no longer accepts the stored sign-in (the refresh token is unknown to it, damaged, or of another tenant); the user must sign in again."
	}
	return "Microsoft refused the sign-in for a reason outlookd does not recognise."
}

var aadsts = regexp.MustCompile(`AADSTS(\d+)`)

// Code extracts the AADSTS number from an error description.
func Code(description string) int {
	if m := aadsts.FindStringSubmatch(description); m != nil {
		n, _ := strconv.Atoi(m[1])
		return n
	}
	return 0
}

// Where says where an identity-platform error arrived, which decides what
// some codes mean: AADSTS65001 ("the user or administrator has not
// consented") at a sign-in means the tenant has not approved the app yet,
// and an administrator must; at a refresh it means the consent once given
// was removed (docs/graph.md#identity-platform-errors).
type Where int

const (
	// AtSignIn: the authorize redirect, or the redemption of its code.
	AtSignIn Where = iota
	// AtRefresh: the redemption of a refresh token.
	AtRefresh
)

// Classify maps an identity-platform error (an OAuth error code and its
// description, from a redirect or a token response) to a reason, and says
// whether the user must act (true) or the error is transient.
func Classify(where Where, oauthErr, description string) (Reason, bool) {
	switch Code(description) {
	case 90094, 90093, 90095: // admin consent required; a non-admin tried to grant it; admin approval workflow
		return ReasonAdminConsentRequired, true
	case 65004:
		return ReasonConsentDeclined, true
	case 65001:
		if where == AtSignIn {
			return ReasonAdminConsentRequired, true
		}
		return ReasonConsentRevoked, true
	case 50076, 50079, 50078:
		return ReasonMFARequired, true
	case 53003, 530032, 70043:
		return ReasonConditionalAccess, true
	case 50173:
		if strings.Contains(description, "password") {
			return ReasonPasswordChanged, true
		}
		return ReasonRevoked, true
	case 700082:
		return ReasonInactive, true
	case 70008: // an expired grant: at a sign-in, the code outlived its ten minutes
		if where == AtSignIn {
			return ReasonCodeInvalid, true
		}
		return ReasonInactive, true
	case 50057:
		return ReasonAccountDisabled, true
	case 7000215, 7000222, 7000218, 700016:
		return ReasonAppMisconfigured, true
	case 54005, 501481, 9002313, 500112, 700005:
		if where == AtRefresh {
			return ReasonTokenInvalid, true
		}
		return ReasonCodeInvalid, true
	}
	switch oauthErr {
	case "access_denied":
		return ReasonConsentDeclined, true
	case "consent_required":
		if where == AtSignIn {
			return ReasonAdminConsentRequired, true
		}
		return ReasonConsentRevoked, true
	case "interaction_required", "login_required":
		return ReasonMFARequired, true
	case "invalid_grant":
		if where == AtSignIn {
			return ReasonCodeInvalid, true
		}
		return ReasonRevoked, true
	case "invalid_client", "unauthorized_client":
		return ReasonAppMisconfigured, true
	case "temporarily_unavailable", "server_error":
		return ReasonUnknown, false
	}
	return ReasonUnknown, true
}

// ClassifyError classifies an x/oauth2 token error. Anything that is not an
// answer of the token endpoint (a network error) is transient.
func ClassifyError(where Where, err error) (Reason, bool) {
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) {
		return ReasonUnknown, false
	}
	if re.Response != nil && re.Response.StatusCode >= 500 {
		return ReasonUnknown, false
	}
	return Classify(where, re.ErrorCode, re.ErrorDescription)
}
