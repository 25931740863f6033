package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/outlookd/outlookd/api"
	"github.com/outlookd/outlookd/internal/testenv"
)

// TestReadyzFollowsDependencies runs `outlookd serve` against the real stack,
// each dependency behind a proxy, then cuts each one in turn: /readyz must
// answer 503 naming exactly that dependency, and recover by itself.
func TestReadyzFollowsDependencies(t *testing.T) {
	dsn := testenv.Postgres(t)
	temporalAddr := testenv.Temporal(t)
	v := testenv.Vault(t)

	pgURL, _ := url.Parse(dsn)
	vaultURL, _ := url.Parse(v.Addr)
	proxies := map[string]*testenv.Proxy{
		"postgres": testenv.NewProxy(t, pgURL.Host),
		"temporal": testenv.NewProxy(t, temporalAddr),
		"vault":    testenv.NewProxy(t, vaultURL.Host),
	}
	pgURL.Host = proxies["postgres"].Addr()
	httpAddr := freeAddr(t)
	env := []string{
		"OUTLOOKD_HTTP_ADDR=" + httpAddr,
		"OUTLOOKD_LOG_LEVEL=warn",
		"DATABASE_URL=" + pgURL.String(),
		"TEMPORAL_ADDRESS=" + proxies["temporal"].Addr(),
		"VAULT_ADDR=http://" + proxies["vault"].Addr(),
		"OUTLOOKD_VAULT_ROLE_ID=" + v.RoleID,
		"OUTLOOKD_VAULT_SECRET_ID_FILE=" + v.SecretIDFile,
		"OUTLOOKD_READY_TIMEOUT=1s",
		"OUTLOOKD_CLIENT_ID=00000000-0000-0000-0000-000000000001",
		// Microsoft's Graph with the default http public URL: poll.
		"OUTLOOKD_NOTIFICATIONS_URL=none",
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"serve"}, io.Discard, io.Discard, env) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve returned %v", err)
		}
	})

	readyz := "http://" + httpAddr + "/readyz"
	waitReady(t, readyz, nil, 60*time.Second)
	for _, name := range []string{"postgres", "vault", "temporal"} {
		t.Run(name, func(t *testing.T) {
			proxies[name].Down()
			waitReady(t, readyz, []string{name}, 60*time.Second)
			proxies[name].Up()
			waitReady(t, readyz, nil, 60*time.Second)
		})
	}
	if resp, err := http.Get("http://" + httpAddr + "/healthz"); err != nil || resp.StatusCode != 200 {
		t.Errorf("/healthz: %v %v", resp, err)
	}
}

// waitReady polls /readyz until it reports exactly the failing dependencies
// given (none: 200).
func waitReady(t *testing.T, u string, failing []string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		resp, err := http.Get(u)
		if err == nil {
			var body api.Readiness
			_ = json.NewDecoder(resp.Body).Decode(&body)
			resp.Body.Close()
			wantCode := http.StatusOK
			if len(failing) > 0 {
				wantCode = http.StatusServiceUnavailable
			}
			if resp.StatusCode == wantCode && slices.Equal(body.Failing, failing) {
				return
			}
			last = fmt.Sprintf("%d %+v", resp.StatusCode, body)
		} else {
			last = err.Error()
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("readyz never reported failing=%v within %s; last: %s", failing, timeout, last)
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
