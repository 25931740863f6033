package identity

import (
	"net/http"
	"reflect"
	"testing"

	"golang.org/x/oauth2"
)

func TestScopesAndFeatures(t *testing.T) {
	c := Config{}
	tests := []struct {
		f    Features
		want []string
	}{
		{Features{Read: true}, []string{"offline_access", "User.Read", "Mail.Read"}},
		{Features{Send: true}, []string{"offline_access", "User.Read", "Mail.Send"}},
		{Features{Read: true, Send: true}, []string{"offline_access", "User.Read", "Mail.ReadWrite", "Mail.Send"}},
	}
	for _, tt := range tests {
		if got := c.Scopes(tt.f); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Scopes(%+v) = %v", tt.f, got)
		}
	}
	granted := GrantedScopes("https://graph.microsoft.com/Mail.Send https://graph.microsoft.com/User.Read openid offline_access")
	if !reflect.DeepEqual(granted, []string{"Mail.Send", "User.Read"}) {
		t.Errorf("granted = %v", granted)
	}
	if f := FeaturesOf(granted); f.Read || !f.Send {
		t.Errorf("send-only grant: %+v", f)
	}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		where     Where
		err, desc string
		want      Reason
	}{
		{AtSignIn, "consent_required", "AADSTS90094: Admin consent is required", ReasonAdminConsentRequired},
		{AtSignIn, "access_denied", "AADSTS65004: User declined to consent to access the app.", ReasonConsentDeclined},
		// The same code means two things, by where it arrived.
		{AtSignIn, "invalid_client", "AADSTS65001: The user or administrator has not consented to use the application", ReasonAdminConsentRequired},
		{AtRefresh, "invalid_grant", "AADSTS65001: The user or administrator has not consented", ReasonConsentRevoked},
		{AtSignIn, "consent_required", "", ReasonAdminConsentRequired},
		{AtRefresh, "consent_required", "", ReasonConsentRevoked},
		{AtRefresh, "invalid_grant", "AADSTS50076: Due to a configuration change ... multi-factor", ReasonMFARequired},
		{AtSignIn, "access_denied", "AADSTS53003: Access has been blocked by Conditional Access policies.", ReasonConditionalAccess},
		{AtRefresh, "invalid_grant", "AADSTS50173: The provided grant has expired due to it being revoked, a fresh auth token is needed. The user might have changed or reset their password.", ReasonPasswordChanged},
		{AtRefresh, "invalid_grant", "AADSTS50173: The provided grant has expired due to it being revoked, a fresh auth token is needed.", ReasonRevoked},
		{AtSignIn, "invalid_grant", "AADSTS9002313: Invalid request. Request is malformed or invalid.", ReasonCodeInvalid},
		{AtRefresh, "invalid_grant", "AADSTS9002313: Invalid request. Request is malformed or invalid.", ReasonTokenInvalid},
		{AtRefresh, "invalid_grant", "AADSTS700005: Provided refresh token is intended to use against other tenant, thus rejected.", ReasonTokenInvalid},
		{AtRefresh, "invalid_grant", "AADSTS700082: The refresh token has expired due to inactivity.", ReasonInactive},
		{AtRefresh, "invalid_grant", "AADSTS50057: The user account is disabled.", ReasonAccountDisabled},
		{AtRefresh, "invalid_client", "AADSTS7000222: The provided client secret keys for app are expired.", ReasonAppMisconfigured},
		{AtSignIn, "invalid_grant", "AADSTS54005: OAuth2 Authorization code was already redeemed", ReasonCodeInvalid},
		{AtSignIn, "invalid_grant", "", ReasonCodeInvalid},
		{AtRefresh, "invalid_grant", "", ReasonRevoked},
		{AtSignIn, "access_denied", "", ReasonConsentDeclined},
		{AtSignIn, "invalid_grant", "AADSTS70008: The provided authorization code or refresh token has expired", ReasonCodeInvalid},
		{AtRefresh, "invalid_grant", "AADSTS70008: The provided authorization code or refresh token has expired", ReasonInactive},
	}
	for _, tt := range tests {
		got, userMustAct := Classify(tt.where, tt.err, tt.desc)
		if got != tt.want || !userMustAct || got.Describe() == "" {
			t.Errorf("Classify(%v, %q, %q) = %v, %v; want %v", tt.where, tt.err, tt.desc, got, userMustAct, tt.want)
		}
	}
	if _, userMustAct := Classify(AtRefresh, "temporarily_unavailable", "AADSTS90055"); userMustAct {
		t.Error("throttling classified as permanent")
	}
	if _, userMustAct := ClassifyError(AtRefresh, &oauth2.RetrieveError{Response: &http.Response{StatusCode: 503}, ErrorCode: "x"}); userMustAct {
		t.Error("a 503 from the token endpoint classified as permanent")
	}
	if r, userMustAct := ClassifyError(AtRefresh, &oauth2.RetrieveError{Response: &http.Response{StatusCode: 400}, ErrorCode: "invalid_grant", ErrorDescription: "AADSTS50173: revoked"}); r != ReasonRevoked || !userMustAct {
		t.Error("invalid_grant not classified")
	}
}
