package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	vaultapi "github.com/hashicorp/vault/api"
	"github.com/joho/godotenv"
	"go.yaml.in/yaml/v3"

	"github.com/outlookd/outlookd/internal/testenv"
)

// TestVaultSurvivesRestart brings up a Vault of its own (file storage),
// writes a secret as the service, stops and restarts it, and reads it back.
// It also checks that a second `up` reuses the running server and that `down`
// stops it.
func TestVaultSurvivesRestart(t *testing.T) {
	testenv.Vault(t) // the tools are built when the test stack is up
	dir := t.TempDir()
	port := strconv.Itoa(freePort(t))
	ctx := context.Background()
	stack := func(cmd string) string {
		t.Helper()
		var out bytes.Buffer
		err := run(ctx, []string{"--profile", "test", "--dir", dir, "--only", "vault", "--vault-port", port, cmd}, &out, &out)
		if err != nil {
			t.Fatalf("stack %s: %v\n%s", cmd, err, out.String())
		}
		return out.String()
	}
	t.Cleanup(func() {
		_ = run(ctx, []string{"--dir", dir, "--only", "vault", "--vault-port", port, "down"}, &bytes.Buffer{}, &bytes.Buffer{})
	})

	stack("up")
	pid1, _ := os.ReadFile(filepath.Join(dir, "vault.pid"))
	if out := stack("up"); strings.Contains(out, "starting") {
		t.Errorf("second up started Vault again:\n%s", out)
	}
	pid2, _ := os.ReadFile(filepath.Join(dir, "vault.pid"))
	if !bytes.Equal(pid1, pid2) {
		t.Errorf("second up replaced the process: %q -> %q", pid1, pid2)
	}

	kv := serviceKV(t, dir)
	if _, err := kv.Put(ctx, "outlookd/restart-check", map[string]any{"token": "kept"}); err != nil {
		t.Fatal(err)
	}
	if out := stack("down"); !strings.Contains(out, "stopped") {
		t.Fatalf("down did not stop vault:\n%s", out)
	}
	var out bytes.Buffer
	if err := run(ctx, []string{"--dir", dir, "--only", "vault", "--vault-port", port, "status"}, &out, &out); err == nil {
		t.Errorf("status of a stopped vault succeeded:\n%s", out.String())
	}
	stack("up")
	s, err := serviceKV(t, dir).Get(ctx, "outlookd/restart-check")
	if err != nil {
		t.Fatalf("read after restart: %v", err)
	}
	if s.Data["token"] != "kept" {
		t.Fatalf("after restart got %v", s.Data)
	}
}

// serviceKV logs in with the AppRole credentials the stack wrote.
func serviceKV(t *testing.T, dir string) *vaultapi.KVv2 {
	t.Helper()
	env, err := godotenv.Read(filepath.Join(dir, "env"))
	if err != nil {
		t.Fatal(err)
	}
	secretID, err := os.ReadFile(env["OUTLOOKD_VAULT_SECRET_ID_FILE"])
	if err != nil {
		t.Fatal(err)
	}
	cfg := vaultapi.DefaultConfig()
	cfg.Address = env["VAULT_ADDR"]
	c, err := vaultapi.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.ClearToken()
	login, err := c.Logical().Write("auth/approle/login", map[string]any{
		"role_id": env["OUTLOOKD_VAULT_ROLE_ID"], "secret_id": strings.TrimSpace(string(secretID)),
	})
	if err != nil {
		t.Fatalf("approle login: %v", err)
	}
	c.SetToken(login.Auth.ClientToken)
	return c.KVv2("secret")
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func TestNewStackRejectsBadInput(t *testing.T) {
	if _, err := newStack("prod", "", "", "vault"); err == nil || !strings.Contains(err.Error(), "unknown profile") {
		t.Errorf("profile: %v", err)
	}
	if _, err := newStack("run", "", "", "vault,redis"); err == nil || !strings.Contains(err.Error(), `unknown component "redis"`) {
		t.Errorf("component: %v", err)
	}
}

// TestClusterConfig renders the cluster profile's Temporal configuration
// and reads it back: its databases, its ports all different, and its
// membership ports under 32768 (the server keeps them in a smallint).
func TestClusterConfig(t *testing.T) {
	t.Setenv("DATABASE_URL", "")
	s, err := newStack("cluster", t.TempDir(), t.TempDir(), "postgres,temporal,vault")
	if err != nil {
		t.Fatal(err)
	}
	raw, err := s.clusterConfig()
	if err != nil {
		t.Fatal(err)
	}
	var conf struct {
		Persistence struct {
			Datastores map[string]struct {
				SQL struct {
					PluginName   string `yaml:"pluginName"`
					DatabaseName string `yaml:"databaseName"`
					ConnectAddr  string `yaml:"connectAddr"`
				} `yaml:"sql"`
			} `yaml:"datastores"`
		} `yaml:"persistence"`
		Services map[string]struct {
			RPC struct {
				GRPCPort       int `yaml:"grpcPort"`
				MembershipPort int `yaml:"membershipPort"`
			} `yaml:"rpc"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(raw, &conf); err != nil {
		t.Fatalf("%v\n%s", err, raw)
	}
	dbs := map[string]bool{}
	for _, d := range conf.Persistence.Datastores {
		if d.SQL.PluginName != "postgres12" || d.SQL.ConnectAddr != "127.0.0.1:5432" {
			t.Errorf("datastore %+v", d.SQL)
		}
		dbs[d.SQL.DatabaseName] = true
	}
	if !dbs["temporal_cluster"] || !dbs["temporal_cluster_visibility"] {
		t.Errorf("databases %v", dbs)
	}
	ports := map[int]string{}
	for name, svc := range conf.Services {
		for _, p := range []int{svc.RPC.GRPCPort, svc.RPC.MembershipPort} {
			if other, taken := ports[p]; taken || p == 0 {
				t.Errorf("%s: port %d (also %s)", name, p, other)
			}
			ports[p] = name
		}
		if svc.RPC.MembershipPort > 32767 {
			t.Errorf("%s: membership port %d does not fit a smallint", name, svc.RPC.MembershipPort)
		}
	}
	if len(conf.Services) != 4 || conf.Services["frontend"].RPC.GRPCPort != 27233 {
		t.Errorf("services %+v", conf.Services)
	}
}
