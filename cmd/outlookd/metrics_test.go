package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/outlookd/outlookd/api"
	"github.com/outlookd/outlookd/internal/testenv"
)

// TestMetricsAreScraped prepares a namespace of its own with `outlookd
// setup`, starts a worker there with OUTLOOKD_METRICS_ADDR, and scrapes
// /metrics: the Temporal SDK's metrics (the worker started, its requests),
// outlookd's sends by state from the registry, and the Go runtime's.
func TestMetricsAreScraped(t *testing.T) {
	addr, ns := testenv.TemporalNamespace(t)
	dsn := testenv.Postgres(t)
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	metricsAddr, healthAddr := freeAddr(t), freeAddr(t)
	env := []string{
		"OUTLOOKD_LOG_LEVEL=error",
		"DATABASE_URL=" + dsn,
		"TEMPORAL_ADDRESS=" + addr,
		"TEMPORAL_NAMESPACE=" + ns,
		"VAULT_ADDR=http://127.0.0.1:1",
		"VAULT_TOKEN=unused",
		"OUTLOOKD_METRICS_ADDR=" + metricsAddr,
		"OUTLOOKD_HTTP_ADDR=" + healthAddr,
	}
	if err := run(context.Background(), []string{"setup"}, io.Discard, io.Discard, env); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"serve", "--role", "worker"}, io.Discard, io.Discard, env) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve returned %v", err)
		}
	})

	want := []string{
		`temporal_worker_start_total{`,
		`temporal_request_total{`,
		`namespace="` + strings.ReplaceAll(ns, "-", "_") + `"`,
		`outlookd_sends{state="queued"} 0`,
		`outlookd_sends{state="sent"} 0`,
		"go_goroutines",
	}
	deadline := time.Now().Add(60 * time.Second)
	var missing []string
	for time.Now().Before(deadline) {
		select {
		case err := <-done:
			t.Fatalf("serve ended: %v", err)
		default:
		}
		missing = nil
		resp, err := http.Get("http://" + metricsAddr + "/metrics")
		if err != nil {
			missing = []string{err.Error()}
		} else {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			for _, w := range want {
				if !strings.Contains(string(b), w) {
					missing = append(missing, w)
				}
			}
		}
		if len(missing) == 0 {
			break
		}
		time.Sleep(300 * time.Millisecond)
	}
	if len(missing) > 0 {
		t.Fatalf("/metrics never showed %q", missing)
	}

	// The worker answers its probes: alive, and not ready while Vault
	// is unreachable, the worker itself polling.
	resp, err := http.Get("http://" + healthAddr + "/healthz")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("worker /healthz = %v %v", resp, err)
	}
	resp.Body.Close()
	var ready api.Readiness
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		ready = api.Readiness{}
		if resp, err = http.Get("http://" + healthAddr + "/readyz"); err != nil {
			t.Fatal(err)
		}
		err = json.NewDecoder(resp.Body).Decode(&ready)
		resp.Body.Close()
		if ready.Checks["worker"].Status == "ok" || time.Now().After(deadline) {
			break
		}
	}
	if err != nil || resp.StatusCode != http.StatusServiceUnavailable || !slices.Equal(ready.Failing, []string{"vault"}) || ready.Checks["worker"].Status != "ok" {
		t.Fatalf("worker /readyz = %d %+v (%v), want 503 with only vault failing and the worker polling", resp.StatusCode, ready, err)
	}
}
