// Package testenv gives integration tests the real local stack: Postgres,
// the Temporal dev server and Vault, as started by `make test` (which runs
// `go run ./deploy/stack --profile test up`).
//
// When the stack is missing, a test is skipped with a hint, unless
// OUTLOOKD_REQUIRE_STACK=1 (set by `make test` and CI), in which case it
// fails loudly: CI must never pass by skipping.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/joho/godotenv"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/outlookd/outlookd/store"
	"github.com/outlookd/outlookd/vault"
)

var (
	loadOnce sync.Once
	stackEnv map[string]string
)

// Get returns a stack variable: from the process environment, else from the
// test stack's env file (.stack/test/env in the repository).
func Get(key string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	loadOnce.Do(func() { stackEnv = readStackEnv() })
	return stackEnv[key]
}

func readStackEnv() map[string]string {
	out := map[string]string{}
	path := os.Getenv("OUTLOOKD_TEST_ENV_FILE")
	if path == "" {
		root, ok := repoRoot()
		if !ok {
			return out
		}
		path = filepath.Join(root, ".stack", "test", "env")
	}
	if env, err := godotenv.Read(path); err == nil {
		return env
	}
	return out
}

func repoRoot() (string, bool) {
	d, err := os.Getwd()
	if err != nil {
		return "", false
	}
	for {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			if _, err := os.Stat(filepath.Join(d, "deploy", "stack")); err == nil {
				return d, true
			}
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", false
		}
		d = parent
	}
}

// need returns the variables or stops the test: a skip for a developer who
// has not started the stack, a failure where the stack is required.
func need(t testing.TB, component string, keys ...string) []string {
	t.Helper()
	vals := make([]string, len(keys))
	var missing []string
	for i, k := range keys {
		vals[i] = Get(k)
		if vals[i] == "" {
			missing = append(missing, k)
		}
	}
	if len(missing) == 0 {
		return vals
	}
	msg := component + " is not available (" + strings.Join(missing, ", ") + " unset): run `make test`, or `go run ./deploy/stack --profile test up` first"
	if os.Getenv("OUTLOOKD_REQUIRE_STACK") == "1" {
		t.Fatal("integration stack required but missing: " + msg)
	}
	t.Skip(msg)
	return nil
}

// Postgres returns the DSN of a fresh, migrated database that is dropped when
// the test ends.
func Postgres(t testing.TB) string {
	t.Helper()
	base := need(t, "Postgres", "DATABASE_URL")[0]
	name := "outlookd_t_" + randomHex(6)
	dsn := withDatabase(t, base, name)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := store.EnsureDatabase(ctx, dsn); err != nil {
		t.Fatalf("create test database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := store.DropDatabase(ctx, dsn); err != nil {
			t.Logf("drop test database %s: %v", name, err)
		}
	})
	if _, _, err := store.Migrate(ctx, dsn); err != nil {
		t.Fatalf("migrate test database: %v", err)
	}
	return dsn
}

// PostgresServer returns the DSN of the stack's database without creating a
// new one, for tests that manage databases themselves.
func PostgresServer(t testing.TB) string {
	t.Helper()
	return need(t, "Postgres", "DATABASE_URL")[0]
}

// Temporal returns the dev server's host:port.
func Temporal(t testing.TB) string {
	t.Helper()
	return need(t, "Temporal", "TEMPORAL_ADDRESS")[0]
}

// VaultEnv is how the service reaches the test Vault.
type VaultEnv struct {
	Addr         string
	RoleID       string
	SecretIDFile string
}

// Vault returns the address and the service's AppRole credentials.
func Vault(t testing.TB) VaultEnv {
	t.Helper()
	v := need(t, "Vault", "VAULT_ADDR", "OUTLOOKD_VAULT_ROLE_ID", "OUTLOOKD_VAULT_SECRET_ID_FILE")
	return VaultEnv{Addr: v[0], RoleID: v[1], SecretIDFile: v[2]}
}

// VaultClient is a Vault client of the test stack logged in as the
// service, as outlookd logs in (its AppRole), with the KV prefix outlookd
// uses; it runs until the test ends.
func VaultClient(t testing.TB) *vault.Client {
	t.Helper()
	env := Vault(t)
	vc, err := vault.New(vault.Options{Addr: env.Addr, RoleID: env.RoleID, SecretIDFile: env.SecretIDFile,
		KVMount: "secret", Prefix: "outlookd", Timeout: 5 * time.Second, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go func() { _ = vc.Run(ctx) }()
	for deadline := time.Now().Add(10 * time.Second); vc.Health(ctx) != nil; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("vault login did not succeed")
		}
	}
	return vc
}

// VaultRootToken returns the stack's root token, for tests that inspect Vault
// beyond what the service may see. The service itself never gets it.
func VaultRootToken(t testing.TB) string {
	t.Helper()
	dir := need(t, "Vault", "OUTLOOKD_STACK_DIR")[0]
	b, err := os.ReadFile(filepath.Join(dir, "vault", "init.json"))
	if err != nil {
		t.Fatalf("read vault init: %v", err)
	}
	var init struct {
		RootToken string `json:"root_token"`
	}
	if err := json.Unmarshal(b, &init); err != nil || init.RootToken == "" {
		t.Fatalf("parse vault init: %v", err)
	}
	return init.RootToken
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// TemporalNamespace registers a namespace of the test's own on the stack's
// Temporal (deleted when the test ends), so that a test may add search
// attributes without touching the namespace other tests share. It returns
// the server's address and the namespace, once the frontend serves it.
func TemporalNamespace(t testing.TB) (addr, namespace string) {
	t.Helper()
	addr = Temporal(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := client.DialContext(ctx, client.Options{HostPort: addr, Logger: tlog.NewStructuredLogger(slog.New(slog.DiscardHandler))})
	if err != nil {
		t.Fatalf("dial Temporal: %v", err)
	}
	namespace = "outlookd-t-" + randomHex(4)
	if _, err := c.WorkflowService().RegisterNamespace(ctx, &workflowservice.RegisterNamespaceRequest{
		Namespace: namespace, WorkflowExecutionRetentionPeriod: durationpb.New(24 * time.Hour),
	}); err != nil {
		c.Close()
		t.Fatalf("register namespace %s: %v", namespace, err)
	}
	t.Cleanup(func() {
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := c.OperatorService().DeleteNamespace(ctx, &operatorservice.DeleteNamespaceRequest{Namespace: namespace}); err != nil {
			t.Logf("delete namespace %s: %v", namespace, err)
		}
	})
	// A new namespace reaches the frontend's cache after a moment.
	for {
		_, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: namespace})
		if err == nil {
			return addr, namespace
		}
		if ctx.Err() != nil {
			t.Fatalf("namespace %s never became usable: %v", namespace, err)
		}
		time.Sleep(300 * time.Millisecond)
	}
}
