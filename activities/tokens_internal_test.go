package activities

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/outlookd/outlookd/internal/testenv"
	"github.com/outlookd/outlookd/vault"
)

// TestTokenCache: a connection's access token is kept, without its
// refresh token, whether an app's or a user's; a newer one replaces it,
// and none forgets it.
func TestTokenCache(t *testing.T) {
	exp := time.Now().Add(time.Hour)
	tests := []struct {
		name     string
		before   *vault.Tokens
		tok      vault.Tokens
		wantKept bool
	}{
		{"an app-only token", nil, vault.Tokens{AccessToken: "app-1", Expiry: exp, Scope: "Mail.Read"}, true},
		{"a newer app-only token replaces the kept one", &vault.Tokens{AccessToken: "app-1", Expiry: exp}, vault.Tokens{AccessToken: "app-2", Expiry: exp}, true},
		{"a user's token, without its refresh token", nil, vault.Tokens{AccessToken: "user-1", RefreshToken: "rt", Expiry: exp, Scope: "Mail.Send"}, true},
		{"a user's token after an app one", &vault.Tokens{AccessToken: "app-1", Expiry: exp}, vault.Tokens{AccessToken: "user-1", RefreshToken: "rt", Expiry: exp}, true},
		{"no token forgets the kept one", &vault.Tokens{AccessToken: "app-1", Expiry: exp}, vault.Tokens{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := &Activities{}
			if tt.before != nil {
				a.keepToken("conn_1", *tt.before)
			}
			a.keepToken("conn_1", tt.tok)
			got, ok := a.tokenCache().Get("conn_1")
			if ok != tt.wantKept {
				t.Fatalf("kept %v, want %v", ok, tt.wantKept)
			}
			if ok && (got.AccessToken != tt.tok.AccessToken || !got.Expiry.Equal(tt.tok.Expiry) || got.Scope != tt.tok.Scope || got.RefreshToken != "") {
				t.Errorf("kept %+v, want %+v without the refresh token", got, tt.tok)
			}
			if _, other := a.tokenCache().Get("conn_2"); other {
				t.Error("another connection has a token")
			}
		})
	}
}

// TestTokenRetry: Graph refusing a token the process had kept sends the
// request again, once, with Vault's token when Vault has another (a new
// consent, a refresh elsewhere); a refusal of the token Vault holds is
// Graph's answer, after one look at Vault at most.
func TestTokenRetry(t *testing.T) {
	vc := testenv.VaultClient(t)
	ctx := context.Background()
	exp := time.Now().Add(time.Hour)
	tests := []struct {
		name string
		kept string // the token the process holds ("": none)
		// vault is the access token Vault holds.
		vault string
		// refusal is Graph's answer to any token but "granted".
		refusal    int
		wantStatus int
		wantCalls  int
		wantKept   string
	}{
		{"kept token refused 403, Vault has the newer: sent again with it", "old", "granted", http.StatusForbidden, http.StatusOK, 2, "granted"},
		{"kept token refused 403, Vault has the same: Graph's 403", "old", "old", http.StatusForbidden, http.StatusForbidden, 1, "old"},
		{"Vault's own token refused 403: not read again", "", "old", http.StatusForbidden, http.StatusForbidden, 1, "old"},
		{"kept token refused 401, Vault has another: sent again with it", "old", "granted", http.StatusUnauthorized, http.StatusOK, 2, "granted"},
		{"kept token granted: Vault not read", "granted", "other", http.StatusForbidden, http.StatusOK, 1, "granted"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var calls atomic.Int32
			graph := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				calls.Add(1)
				if body, _ := io.ReadAll(r.Body); string(body) != `{"message":{}}` {
					t.Errorf("body %q", body)
				}
				if r.Header.Get("Authorization") != "Bearer granted" {
					w.WriteHeader(tt.refusal)
					return
				}
				w.WriteHeader(http.StatusOK)
			}))
			defer graph.Close()
			conn := fmt.Sprintf("test-token-retry-%d-%d", time.Now().UnixNano(), i)
			if err := vc.Tokens().PutTokens(ctx, conn, vault.Tokens{AccessToken: tt.vault, RefreshToken: "rt", Expiry: exp}, 0); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _, _ = vc.Tokens().Purge(context.Background(), conn) })
			a := &Activities{Tokens: vc.Tokens()}
			if tt.kept != "" {
				a.keepToken(conn, vault.Tokens{AccessToken: tt.kept, Expiry: exp})
			}
			ts := &vaultTokenSource{ctx: ctx, a: a, connectionID: conn}
			hc := &http.Client{Transport: &oauth2.Transport{Source: ts, Base: a.graphTransport(ts, "")}}
			resp, err := hc.Post(graph.URL+"/users/u/sendMail", "application/json", strings.NewReader(`{"message":{}}`))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.wantStatus || int(calls.Load()) != tt.wantCalls {
				t.Errorf("answer %d after %d requests, want %d after %d", resp.StatusCode, calls.Load(), tt.wantStatus, tt.wantCalls)
			}
			if got, _ := a.tokenCache().Get(conn); got.AccessToken != tt.wantKept {
				t.Errorf("kept %q, want %q", got.AccessToken, tt.wantKept)
			}
		})
	}
}
