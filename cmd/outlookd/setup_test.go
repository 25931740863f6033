package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/outlookd/outlookd/internal/testenv"
	"github.com/outlookd/outlookd/temporalconn"
	"github.com/outlookd/outlookd/workflows"
)

// TestSetupRegistersSearchAttributes runs `outlookd setup` against a fresh
// namespace of the test stack's Temporal: the check fails naming what is
// missing, setup adds every attribute, a second run finds them present, and
// the worker's own check then passes.
func TestSetupRegistersSearchAttributes(t *testing.T) {
	addr, ns := testenv.TemporalNamespace(t)
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	env := []string{"TEMPORAL_ADDRESS=" + addr, "TEMPORAL_NAMESPACE=" + ns}
	setup := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := run(context.Background(), append([]string{"setup"}, args...), &out, io.Discard, env)
		return out.String(), err
	}

	_, err := setup("--check")
	var missing *temporalconn.MissingAttributesError
	if !errors.As(err, &missing) || !strings.Contains(err.Error(), `run "outlookd setup"`) || !strings.Contains(err.Error(), "SyncMode (Keyword)") {
		t.Fatalf("setup --check before setup = %v", err)
	}

	n := len(workflows.SearchAttributes)
	for round, want := range []string{"added", "already present"} {
		out, err := setup()
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		got := 0
		for line := range strings.Lines(out) {
			if strings.HasPrefix(line, "search attribute ") && strings.HasSuffix(line, " "+want+"\n") {
				got++
			}
		}
		if got != n {
			t.Errorf("round %d: %d lines %q, want %d:\n%s", round, got, want, n, out)
		}
		if !strings.Contains(out, "namespace "+ns) {
			t.Errorf("round %d: output does not name the namespace:\n%s", round, out)
		}
	}
	if out, err := setup("--check"); err != nil || !strings.Contains(out, "search attributes are present") {
		t.Fatalf("setup --check after setup = %q, %v", out, err)
	}
}

// TestWorkerRefusesWithoutSearchAttributes: a worker pointed at a namespace
// without outlookd's search attributes does not start; serve ends with an
// error naming them and the command that registers them.
func TestWorkerRefusesWithoutSearchAttributes(t *testing.T) {
	addr, ns := testenv.TemporalNamespace(t)
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	t.Run("check", func(t *testing.T) {
		prof, err := temporalconn.Load([]string{"TEMPORAL_ADDRESS=" + addr, "TEMPORAL_NAMESPACE=" + ns})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		tc, err := dialTemporal(ctx, prof, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		defer tc.Close()
		err = waitSearchAttributes(ctx, tc, ns, slog.New(slog.DiscardHandler))
		var missing *temporalconn.MissingAttributesError
		if !errors.As(err, &missing) || len(missing.Missing) != len(workflows.SearchAttributes) {
			t.Fatalf("waitSearchAttributes = %v", err)
		}
		// The namespace outlookd's tests share has them.
		if err := waitSearchAttributes(ctx, tc, "default", slog.New(slog.DiscardHandler)); err != nil {
			t.Fatalf("default namespace: %v", err)
		}
	})
	t.Run("serve", func(t *testing.T) {
		dsn := testenv.Postgres(t)
		env := []string{
			"OUTLOOKD_LOG_LEVEL=error",
			"DATABASE_URL=" + dsn,
			"TEMPORAL_ADDRESS=" + addr,
			"TEMPORAL_NAMESPACE=" + ns,
			// The worker is refused before it would use Vault.
			"VAULT_ADDR=http://127.0.0.1:1",
			"VAULT_TOKEN=unused",
			"OUTLOOKD_HTTP_ADDR=" + freeAddr(t),
		}
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		err := run(ctx, []string{"serve", "--role", "worker"}, io.Discard, io.Discard, env)
		if ctx.Err() != nil {
			t.Fatal("serve --role worker kept running against a namespace without the search attributes")
		}
		if err == nil || !strings.Contains(err.Error(), "ConnectionId (Keyword)") || !strings.Contains(err.Error(), "outlookd setup") {
			t.Fatalf("serve --role worker = %v", err)
		}
	})
}
