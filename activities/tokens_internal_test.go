package activities

import (
	"testing"
	"time"

	"github.com/outlookd/outlookd/vault"
)

// TestAppTokenCache: an app-only token (no refresh token) is kept for its
// connection, without anything but the access token, its expiry and
// scope; a user's token is never kept, and replaces what was.
func TestAppTokenCache(t *testing.T) {
	exp := time.Now().Add(time.Hour)
	tests := []struct {
		name     string
		before   *vault.Tokens
		tok      vault.Tokens
		wantKept bool
	}{
		{"an app-only token", nil, vault.Tokens{AccessToken: "app-1", Expiry: exp, Scope: "Mail.Read"}, true},
		{"a newer app-only token replaces the kept one", &vault.Tokens{AccessToken: "app-1", Expiry: exp}, vault.Tokens{AccessToken: "app-2", Expiry: exp}, true},
		{"a user's token", nil, vault.Tokens{AccessToken: "user-1", RefreshToken: "rt", Expiry: exp}, false},
		{"a user's token after an app one", &vault.Tokens{AccessToken: "app-1", Expiry: exp}, vault.Tokens{AccessToken: "user-1", RefreshToken: "rt", Expiry: exp}, false},
		{"no token", nil, vault.Tokens{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := &Activities{}
			if tt.before != nil {
				a.keepAppToken("conn_1", *tt.before)
			}
			a.keepAppToken("conn_1", tt.tok)
			got, ok := a.appTokenCache().Get("conn_1")
			if ok != tt.wantKept {
				t.Fatalf("kept %v, want %v", ok, tt.wantKept)
			}
			if ok && (got.AccessToken != tt.tok.AccessToken || !got.Expiry.Equal(tt.tok.Expiry) || got.Scope != tt.tok.Scope || got.RefreshToken != "") {
				t.Errorf("kept %+v, want %+v", got, tt.tok)
			}
			if _, other := a.appTokenCache().Get("conn_2"); other {
				t.Error("another connection has a token")
			}
		})
	}
}
