package graphsim_test

import (
	"net/url"
	"testing"

	"github.com/outlookd/outlookd/graphsim"
)

// TestClientCredentialsScopes: the OIDC scopes MSAL and azidentity add are
// accepted beside one /.default; what Microsoft refuses stays refused
// (docs/graph.md#client-credentials).
func TestClientCredentialsScopes(t *testing.T) {
	f := newFixture(t, graphsim.Options{})
	tokenURL := f.sim.URL() + "/" + f.tenant.ID + "/oauth2/v2.0/token"
	tests := []struct {
		name, scope string
		status      int
		code        int
	}{
		{"dot default", "https://graph.microsoft.com/.default", 200, 0},
		{"as MSAL sends it", "https://graph.microsoft.com/.default openid offline_access profile", 200, 0},
		{"Graph by app ID", "00000003-0000-0000-c000-000000000000/.default openid", 200, 0},
		{"OIDC scopes only", "openid offline_access profile", 400, 1002012},
		{"bare permission", "Mail.Read", 400, 1002012},
		{"permission beside .default", "https://graph.microsoft.com/.default https://graph.microsoft.com/Mail.Read", 400, 1002012},
		{"two resources", "https://graph.microsoft.com/.default https://outlook.office.com/.default openid", 400, 28000},
		{"empty", "", 400, 1002012},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			form := url.Values{"grant_type": {"client_credentials"}, "scope": {tt.scope}}
			st, te, ok := postToken(t, tokenURL, form, f.app.ClientID, f.app.Secrets[0].Value)
			if st != tt.status {
				t.Fatalf("status %d, want %d: %+v", st, tt.status, te)
			}
			if tt.status != 200 {
				if te.Error != "invalid_scope" || len(te.Codes) != 1 || te.Codes[0] != tt.code {
					t.Errorf("error %+v, want invalid_scope AADSTS%d", te, tt.code)
				}
				return
			}
			if ok["access_token"] == "" || ok["token_type"] != "Bearer" {
				t.Errorf("response %v", ok)
			}
			for _, k := range []string{"refresh_token", "id_token", "client_info"} {
				if _, has := ok[k]; has {
					t.Errorf("client credentials response carries %s", k)
				}
			}
		})
	}
}
