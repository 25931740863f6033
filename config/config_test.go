package config

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"
)

// base is the smallest environment that loads: Vault needs some credential.
var base = []string{"VAULT_TOKEN=hvs.test"}

func TestLoadDefaults(t *testing.T) {
	cfg, err := LoadFrom(base)
	if err != nil {
		t.Fatalf("LoadFrom: %v", err)
	}
	if cfg.HTTPAddr != "127.0.0.1:8080" || cfg.TaskQueue != "outlookd" {
		t.Errorf("unexpected defaults: %+v", cfg)
	}
	if cfg.ShutdownTimeout != 20*time.Second || cfg.LogLevel != slog.LevelInfo {
		t.Errorf("unexpected defaults: %v %v", cfg.ShutdownTimeout, cfg.LogLevel)
	}
	if cfg.VaultAddr.String() != "http://127.0.0.1:8200" {
		t.Errorf("VaultAddr = %v", cfg.VaultAddr)
	}
}

func TestLoadOverrides(t *testing.T) {
	cfg, err := LoadFrom(append(base,
		"OUTLOOKD_HTTP_ADDR=:9999",
		"OUTLOOKD_LOG_LEVEL=debug",
		"OUTLOOKD_SHUTDOWN_TIMEOUT=1m",
		"OUTLOOKD_DATABASE_MAX_CONNS=3",
	))
	if err != nil {
		t.Fatalf("LoadFrom: %v", err)
	}
	if cfg.HTTPAddr != ":9999" || cfg.LogLevel != slog.LevelDebug || cfg.ShutdownTimeout != time.Minute || cfg.DatabaseMaxConns != 3 {
		t.Errorf("overrides not applied: %+v", cfg)
	}
}

func TestLoadRejectsBadValues(t *testing.T) {
	tests := []struct {
		env     string
		wantVar string
		want    string
	}{
		{"OUTLOOKD_HTTP_ADDR=8080", "OUTLOOKD_HTTP_ADDR", "host:port"},
		{"OUTLOOKD_PUBLIC_URL=/relative", "OUTLOOKD_PUBLIC_URL", "absolute http(s) URL"},
		{"OUTLOOKD_LOG_LEVEL=loud", "OUTLOOKD_LOG_LEVEL", "debug, info, warn, error"},
		{"OUTLOOKD_LOG_FORMAT=xml", "OUTLOOKD_LOG_FORMAT", `"json" or "text"`},
		{"OUTLOOKD_SHUTDOWN_TIMEOUT=soon", "OUTLOOKD_SHUTDOWN_TIMEOUT", "duration"},
		{"OUTLOOKD_SHUTDOWN_TIMEOUT=-1s", "OUTLOOKD_SHUTDOWN_TIMEOUT", "positive duration"},
		{"OUTLOOKD_READY_TIMEOUT=0s", "OUTLOOKD_READY_TIMEOUT", "positive duration"},
		{"DATABASE_URL=mysql://x", "DATABASE_URL", "postgres:// URL"},
		{"OUTLOOKD_DATABASE_MAX_CONNS=many", "OUTLOOKD_DATABASE_MAX_CONNS", "integer"},
		{"OUTLOOKD_DATABASE_MAX_CONNS=0", "OUTLOOKD_DATABASE_MAX_CONNS", "at least 1"},
		{"OUTLOOKD_TASK_QUEUE=a b", "OUTLOOKD_TASK_QUEUE", "without spaces"},
		{"VAULT_ADDR=vault:8200", "VAULT_ADDR", "absolute http(s) URL"},
		{"OUTLOOKD_RECONCILE_EVERY=30s", "OUTLOOKD_RECONCILE_EVERY", "between 1m and 24h"},
		{"OUTLOOKD_RECONCILE_EVERY=2d", "OUTLOOKD_RECONCILE_EVERY", "duration"},
		{"OUTLOOKD_WORKFLOW_CACHE=0", "OUTLOOKD_WORKFLOW_CACHE", "from 1 to 1000000"},
		{"OUTLOOKD_WORKFLOW_CACHE=lots", "OUTLOOKD_WORKFLOW_CACHE", "integer"},
		{"OUTLOOKD_TEMPORAL_COMPRESSION=zstd", "OUTLOOKD_TEMPORAL_COMPRESSION", `"gzip" or "none", got "zstd"`},
	}
	for _, tt := range tests {
		t.Run(tt.env, func(t *testing.T) {
			_, err := LoadFrom(append(base, tt.env))
			var cerr *Error
			if !errors.As(err, &cerr) {
				t.Fatalf("want *Error, got %v", err)
			}
			if cerr.Var != tt.wantVar || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %q, want var %s and %q", err, tt.wantVar, tt.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error spans lines: %q", err)
			}
		})
	}
}

func TestVaultCredentialRequired(t *testing.T) {
	tests := []struct {
		env []string
		ok  bool
	}{
		{nil, false},
		{[]string{"OUTLOOKD_VAULT_ROLE_ID=r"}, false},
		{[]string{"OUTLOOKD_VAULT_ROLE_ID=r", "OUTLOOKD_VAULT_SECRET_ID_FILE=/x"}, true},
		{[]string{"VAULT_TOKEN=t"}, true},
	}
	for _, tt := range tests {
		cfg, err := LoadFrom(append([]string{"X=1"}, tt.env...))
		if err != nil {
			t.Fatalf("LoadFrom(%v): %v", tt.env, err)
		}
		err = cfg.ValidateVaultAuth()
		var cerr *Error
		if tt.ok && err != nil {
			t.Errorf("%v: unexpected error %v", tt.env, err)
		}
		if !tt.ok && (!errors.As(err, &cerr) || cerr.Var != "VAULT_TOKEN") {
			t.Errorf("%v: want a VAULT_TOKEN error, got %v", tt.env, err)
		}
	}
}

func TestSecretNeverPrints(t *testing.T) {
	cfg, err := LoadFrom(append(base, "DATABASE_URL=postgres://u:pw-123@h/db"))
	if err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	slog.New(slog.NewJSONHandler(&sb, nil)).Info("cfg", "token", cfg.VaultToken, "db", cfg.DatabaseURL)
	out := sb.String() + fmt.Sprintf("%v %+v %s", cfg.VaultToken, cfg, cfg.DatabaseURL)
	for _, secret := range []string{"hvs.test", "pw-123"} {
		if strings.Contains(out, secret) {
			t.Errorf("secret %q printed: %s", secret, out)
		}
	}
	if cfg.VaultToken.Reveal() != "hvs.test" {
		t.Errorf("Reveal lost the value")
	}
}

// TestReadmeDocumentsEveryVariable keeps the README's configuration table true.
func TestReadmeDocumentsEveryVariable(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range Vars() {
		row := "| `" + v.Name + "` |"
		i := strings.Index(string(readme), row)
		if i < 0 {
			t.Errorf("README.md has no row for %s", v.Name)
			continue
		}
		line, _, _ := strings.Cut(string(readme[i:]), "\n")
		if v.Default != "" && !strings.Contains(line, "`"+v.Default+"`") {
			t.Errorf("README.md row for %s does not show the default %q: %s", v.Name, v.Default, line)
		}
	}
}

// TestHTTPNotificationsRefusedWithMicrosoftGraph: Microsoft's Graph posts
// only to https, so the API refuses to start with an http notification URL
// when its Graph is one of Microsoft's hosts; a simulator may take http.
func TestHTTPNotificationsRefusedWithMicrosoftGraph(t *testing.T) {
	api := append(base, "OUTLOOKD_CLIENT_ID=00000000-0000-0000-0000-000000000001")
	tests := []struct {
		name    string
		env     []string
		wantVar string // empty: accepted
	}{
		{"defaults: http public URL, global Graph", nil, "OUTLOOKD_PUBLIC_URL"},
		{"http notifications URL", []string{"OUTLOOKD_PUBLIC_URL=https://outlookd.example", "OUTLOOKD_NOTIFICATIONS_URL=http://hooks.example/v1/graph/notifications"}, "OUTLOOKD_NOTIFICATIONS_URL"},
		{"US Government L4", []string{"OUTLOOKD_GRAPH_URL=https://graph.microsoft.us/v1.0"}, "OUTLOOKD_PUBLIC_URL"},
		{"US Government L5", []string{"OUTLOOKD_GRAPH_URL=https://dod-graph.microsoft.us/v1.0"}, "OUTLOOKD_PUBLIC_URL"},
		{"China", []string{"OUTLOOKD_GRAPH_URL=https://microsoftgraph.chinacloudapi.cn/v1.0"}, "OUTLOOKD_PUBLIC_URL"},
		{"host in capitals", []string{"OUTLOOKD_GRAPH_URL=https://GRAPH.Microsoft.com/v1.0"}, "OUTLOOKD_PUBLIC_URL"},
		{"https public URL", []string{"OUTLOOKD_PUBLIC_URL=https://outlookd.example"}, ""},
		{"https notifications URL", []string{"OUTLOOKD_NOTIFICATIONS_URL=https://hooks.example/v1/graph/notifications"}, ""},
		{"polling", []string{"OUTLOOKD_NOTIFICATIONS_URL=none"}, ""},
		{"a simulator", []string{"OUTLOOKD_GRAPH_URL=http://127.0.0.1:8800/v1.0"}, ""},
		{"a host that only looks like Microsoft's", []string{"OUTLOOKD_GRAPH_URL=https://graph.microsoft.com.example/v1.0"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := LoadFrom(append(append([]string(nil), api...), tt.env...))
			if err != nil {
				t.Fatalf("LoadFrom: %v", err)
			}
			err = cfg.ValidateAPI()
			if tt.wantVar == "" {
				if err != nil {
					t.Errorf("refused: %v", err)
				}
				return
			}
			var cerr *Error
			if !errors.As(err, &cerr) || cerr.Var != tt.wantVar || !strings.Contains(err.Error(), "https") {
				t.Errorf("error = %v, want one on %s asking for https", err, tt.wantVar)
			}
			if err != nil && strings.Contains(err.Error(), "\n") {
				t.Errorf("error spans lines: %q", err)
			}
		})
	}
}
