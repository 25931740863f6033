package graphsim_test

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/outlookd/outlookd/graphsim"
)

// A personal account's refresh tokens die only the ways a Microsoft
// account's do (docs/graph.md#personal-accounts): its password changed, its
// sessions signed out, the app's permissions removed, or unused for 90 days;
// a directory's policies (Conditional Access, MFA enforced by an
// administrator, an account disabled) cannot be applied to it.
func TestPersonalAccountRevocation(t *testing.T) {
	f := newFixture(t, graphsim.Options{})
	ctx := context.Background()
	tests := []struct {
		reason  string
		code    int // 0: graphsim refuses the reason
		message string
	}{
		{graphsim.RevokePasswordChanged, 50173, "changed or reset their password"},
		{graphsim.RevokeSignInSessions, 50173, "revoked"},
		{graphsim.RevokeConsentRevoked, 65001, "has not consented"},
		{graphsim.RevokeMFARequired, 0, ""},
		{graphsim.RevokeConditionalAccess, 0, ""},
		{graphsim.RevokeDisabled, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.reason, func(t *testing.T) {
			upn := strings.ReplaceAll(tt.reason, "_", ".") + "@outlook.com"
			if _, err := f.ctl.AddUser(ctx, graphsim.UserSpec{Tenant: "consumers", UPN: upn}); err != nil {
				t.Fatal(err)
			}
			tok := f.signIn(t, upn, "offline_access", "Mail.Read")
			err := f.ctl.Revoke(ctx, upn, tt.reason)
			if tt.code == 0 {
				var cerr *graphsim.ControlError
				if !errors.As(err, &cerr) || cerr.Status != 400 {
					t.Fatalf("revoke %s on a personal account: %v, want a 400", tt.reason, err)
				}
				// Nothing changed: the refresh token still works.
				if st, te, _ := postToken(t, f.oauth("consumers").Endpoint.TokenURL, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}}, f.app.ClientID, f.app.Secrets[0].Value); st != 200 {
					t.Fatalf("refresh after a refused revocation: %d %+v", st, te)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, seg := range []string{"consumers", "common"} {
				st, te, _ := postToken(t, f.oauth(seg).Endpoint.TokenURL, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}}, f.app.ClientID, f.app.Secrets[0].Value)
				if st != 400 || te.Error != "invalid_grant" || len(te.Codes) == 0 || te.Codes[0] != tt.code || !strings.Contains(te.Description, tt.message) {
					t.Errorf("%s: got %d %+v", seg, st, te)
				}
			}
		})
	}
}

// A personal account's access token for Graph is not a JWT a client could
// decode (docs/graph.md#personal-accounts), yet Graph accepts it; a work
// account's is a JWT.
func TestPersonalAccountOpaqueAccessToken(t *testing.T) {
	f := newFixture(t, graphsim.Options{})
	ctx := context.Background()
	if _, err := f.ctl.AddUser(ctx, graphsim.UserSpec{Tenant: "consumers", UPN: "kim@outlook.com"}); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		user string
		jwt  bool
	}{{"kim@outlook.com", false}, {"ada@contoso.example", true}} {
		tok := f.signIn(t, tt.user, "offline_access", "User.Read", "Mail.Read")
		if got := strings.Count(tok.AccessToken, ".") == 2; got != tt.jwt {
			t.Errorf("%s: access token is a JWT: %t, want %t (%.20s...)", tt.user, got, tt.jwt, tok.AccessToken)
		}
		var me struct {
			UPN string `json:"userPrincipalName"`
		}
		if st, _ := f.graphGet(t, tok.AccessToken, "/me", &me); st != 200 || me.UPN != tt.user {
			t.Errorf("%s: /me with its token: %d %q", tt.user, st, me.UPN)
		}
	}
	// A made-up opaque token is refused as a malformed one.
	if st, _ := f.graphGet(t, "EwCnotatoken", "/me", nil); st != 401 {
		t.Errorf("a made-up opaque token: %d", st)
	}
}
