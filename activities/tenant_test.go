package activities

import (
	"encoding/base64"
	"testing"

	"golang.org/x/oauth2"
)

// The tenant of a consented account comes from client_info; a personal
// account's Graph token is not a JWT (docs/graph.md#personal-accounts), so
// the token is only a fallback, and an opaque one yields nothing rather
// than a wrong tenant.
func TestTenantOf(t *testing.T) {
	const consumer = "9188040d-6c67-4c5b-b112-36a304b66dad"
	b64 := base64.RawURLEncoding.EncodeToString
	jwt := b64([]byte(`{"alg":"RS256"}`)) + "." + b64([]byte(`{"tid":"72f988bf-86f1-41af-91ab-2d7cd011db47"}`)) + ".sig"
	tests := []struct {
		name       string
		access     string
		clientInfo string
		want       string
	}{
		{"personal account: opaque token, client_info", "EwC" + b64(make([]byte, 60)), b64([]byte(`{"uid":"00000000-0000-0000-1234-567890abcdef","utid":"` + consumer + `"}`)), consumer},
		{"personal account: opaque token, no client_info", "EwC" + b64(make([]byte, 60)), "", ""},
		{"work account: client_info wins over the token", jwt, b64([]byte(`{"uid":"u","utid":"11111111-1111-1111-1111-111111111111"}`)), "11111111-1111-1111-1111-111111111111"},
		{"work account: the token's tid without client_info", jwt, "", "72f988bf-86f1-41af-91ab-2d7cd011db47"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok := &oauth2.Token{AccessToken: tt.access}
			if tt.clientInfo != "" {
				tok = tok.WithExtra(map[string]any{"client_info": tt.clientInfo})
			}
			if got := tenantOf(tok); got != tt.want {
				t.Errorf("tenantOf = %q, want %q", got, tt.want)
			}
		})
	}
}
