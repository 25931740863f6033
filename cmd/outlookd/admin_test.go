package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/outlookd/outlookd/apikey"
	"github.com/outlookd/outlookd/internal/testenv"
	"github.com/outlookd/outlookd/store"
	"github.com/outlookd/outlookd/vault"
)

// TestAPIKeyCommands creates a key (printed once, stored hashed), lists
// and revokes it.
func TestAPIKeyCommands(t *testing.T) {
	ctx := context.Background()
	dsn := testenv.Postgres(t)
	env := []string{"DATABASE_URL=" + dsn}
	var out, errOut bytes.Buffer
	if err := run(ctx, []string{"apikey", "create", "--org", "acme", "--admin", "--name", "ci", "--connections-per-user", "3"}, &out, &errOut, env); err != nil {
		t.Fatalf("create: %v %s", err, errOut.String())
	}
	key := strings.TrimSpace(out.String())
	id, secret, ok := apikey.Split(key)
	if !ok {
		t.Fatalf("printed %q, not a key", key)
	}
	st, err := store.Open(ctx, dsn, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	k, err := st.LookupAPIKey(ctx, id)
	if err != nil || !k.Admin || k.Org.ConnectionsPerUser != 3 || !apikey.Matches(secret, k.SecretHash) || bytes.Contains(k.SecretHash, []byte(secret)) {
		t.Fatalf("stored key: %+v %v", k, err)
	}
	out.Reset()
	if err := run(ctx, []string{"apikey", "list", "--org", "acme"}, &out, &errOut, env); err != nil || !strings.Contains(out.String(), id) || strings.Contains(out.String(), secret) {
		t.Errorf("list: %v %q", err, out.String())
	}
	if err := run(ctx, []string{"apikey", "revoke", id}, &out, &errOut, env); err != nil {
		t.Fatal(err)
	}
	if _, err := st.LookupAPIKey(ctx, id); err == nil {
		t.Error("a revoked key is still found")
	}
	for _, bad := range [][]string{{"apikey"}, {"apikey", "create", "--org", "Not Valid"}, {"apikey", "list"}, {"apikey", "revoke"}, {"apikey", "rotate"}} {
		if err := run(ctx, bad, &out, &errOut, env); exitCode(err) != 2 {
			t.Errorf("%v: exit %d", bad, exitCode(err))
		}
	}
}

// TestAppSecretCommand keeps the client secret in Vault from stdin.
func TestAppSecretCommand(t *testing.T) {
	v := testenv.Vault(t)
	prefix := "outlookd/test-appsecret"
	env := []string{"VAULT_ADDR=" + v.Addr, "OUTLOOKD_VAULT_ROLE_ID=" + v.RoleID, "OUTLOOKD_VAULT_SECRET_ID_FILE=" + v.SecretIDFile, "OUTLOOKD_VAULT_KV_PREFIX=" + prefix}
	old := stdin
	defer func() { stdin = old }()
	stdin = strings.NewReader("sim~the-client-secret\n")
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"appsecret", "set"}, &out, &errOut, env); err != nil {
		t.Fatalf("%v %s", err, errOut.String())
	}
	if strings.Contains(out.String()+errOut.String(), "the-client-secret") {
		t.Error("the secret was printed")
	}
	vc, err := vault.New(vault.Options{Addr: v.Addr, RoleID: v.RoleID, SecretIDFile: v.SecretIDFile, KVMount: "secret", Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = vc.Run(ctx) }()
	for deadline := time.Now().Add(10 * time.Second); vc.Health(ctx) != nil; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("vault login did not succeed")
		}
	}
	if got, err := vc.Tokens().AppSecret(ctx); err != nil || got != "sim~the-client-secret" {
		t.Errorf("stored %q, %v", got, err)
	}
	stdin = strings.NewReader("")
	if err := run(context.Background(), []string{"appsecret", "set"}, &out, &errOut, env); exitCode(err) != 2 {
		t.Errorf("empty stdin: %v", err)
	}
}
