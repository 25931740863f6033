package vault_test

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/outlookd/outlookd/internal/testenv"
	"github.com/outlookd/outlookd/vault"
)

// TestAppRoleIdentityIsLeastPrivilege logs in as the service and checks what
// its policy allows: its own prefix of KV v2 and its transit key, nothing else.
func TestAppRoleIdentityIsLeastPrivilege(t *testing.T) {
	env := testenv.Vault(t)
	vc, err := vault.New(vault.Options{
		Addr: env.Addr, RoleID: env.RoleID, SecretIDFile: env.SecretIDFile,
		KVMount: "secret", Prefix: "outlookd", Timeout: 5 * time.Second,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := vc.Health(ctx); err == nil || !strings.Contains(err.Error(), "not authenticated") {
		t.Fatalf("health before login = %v, want not authenticated", err)
	}
	go vc.Run(ctx)
	deadline := time.Now().Add(10 * time.Second)
	for vc.Health(ctx) != nil {
		if time.Now().After(deadline) {
			t.Fatalf("never became healthy: %v", vc.Health(ctx))
		}
		time.Sleep(50 * time.Millisecond)
	}

	kv := vc.API().KVv2("secret")
	own := "outlookd/test/" + t.Name()
	if _, err := kv.Put(ctx, own, map[string]any{"v": "1"}); err != nil {
		t.Fatalf("write own prefix: %v", err)
	}
	if _, err := kv.Get(ctx, own); err != nil {
		t.Fatalf("read own prefix: %v", err)
	}
	if err := kv.DeleteMetadata(ctx, own); err != nil {
		t.Fatalf("purge own secret: %v", err)
	}
	denied := []struct {
		name string
		do   func() error
	}{
		{"write outside prefix", func() error { _, err := kv.Put(ctx, "other/x", map[string]any{"v": "1"}); return err }},
		{"read outside prefix", func() error { _, err := kv.Get(ctx, "other/x"); return err }},
		{"write a policy", func() error {
			return vc.API().Sys().PutPolicyWithContext(ctx, "evil", `path "*" { capabilities = ["sudo"] }`)
		}},
		{"mount an engine", func() error {
			_, err := vc.API().Logical().WriteWithContext(ctx, "sys/mounts/evil", map[string]any{"type": "kv"})
			return err
		}},
		{"use another transit key", func() error {
			_, err := vc.API().Logical().WriteWithContext(ctx, "transit/encrypt/other", map[string]any{"plaintext": "aGk="})
			return err
		}},
	}
	for _, d := range denied {
		if err := d.do(); err == nil || !strings.Contains(err.Error(), "permission denied") {
			t.Errorf("%s: want permission denied, got %v", d.name, err)
		}
	}
	if _, err := vc.API().Logical().WriteWithContext(ctx, "transit/encrypt/outlookd", map[string]any{"plaintext": "aGk="}); err != nil {
		t.Errorf("encrypt with own key: %v", err)
	}
}
