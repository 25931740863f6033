package main

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

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
	metricsAddr := freeAddr(t)
	env := []string{
		"OUTLOOKD_LOG_LEVEL=error",
		"DATABASE_URL=" + dsn,
		"TEMPORAL_ADDRESS=" + addr,
		"TEMPORAL_NAMESPACE=" + ns,
		"VAULT_ADDR=http://127.0.0.1:1",
		"VAULT_TOKEN=unused",
		"OUTLOOKD_METRICS_ADDR=" + metricsAddr,
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
			return
		}
		time.Sleep(300 * time.Millisecond)
	}
	t.Fatalf("/metrics never showed %q", missing)
}
