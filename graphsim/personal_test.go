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
