package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestMain lets a test run the real main() in a child process, to check exit
// codes and what the process prints.
func TestMain(m *testing.M) {
	if os.Getenv("OUTLOOKD_TEST_RUN_MAIN") == "1" {
		os.Args = append([]string{"outlookd"}, strings.Fields(os.Getenv("OUTLOOKD_TEST_ARGS"))...)
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func runMain(t *testing.T, args string, env ...string) (stderr string, code int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append([]string{"OUTLOOKD_TEST_RUN_MAIN=1", "OUTLOOKD_TEST_ARGS=" + args, "PATH=" + os.Getenv("PATH")}, env...)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return errb.String(), ee.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return errb.String(), 0
}

func TestBadConfigurationExitsWithOneClearLine(t *testing.T) {
	tests := []struct {
		args string
		env  []string
		want string
	}{
		{"serve", []string{"VAULT_TOKEN=x", "OUTLOOKD_SHUTDOWN_TIMEOUT=soon"}, "outlookd: config: OUTLOOKD_SHUTDOWN_TIMEOUT: expected a duration"},
		{"serve", []string{"VAULT_TOKEN=x", "TEMPORAL_ADDRESS=nohost"}, `outlookd: temporal config: TEMPORAL_ADDRESS (address): expected host:port, got "nohost"`},
		{"serve", []string{"VAULT_TOKEN=x", "TEMPORAL_TLS_CLIENT_CERT_PATH=/etc/outlookd/client.pem"},
			"outlookd: temporal config: TEMPORAL_TLS_CLIENT_KEY_PATH (tls.client_key_path): expected the client certificate's private key"},
		{"setup", []string{"TEMPORAL_TLS_SERVER_CA_CERT_PATH=/nonexistent/ca.pem"},
			`outlookd: temporal config: TEMPORAL_TLS_SERVER_CA_CERT_PATH (tls.server_ca_cert_path): expected a readable file, got "/nonexistent/ca.pem"`},
		{"disconnect conn_abcdefgh", []string{"TEMPORAL_CONFIG_FILE=/nonexistent/temporal.toml"}, "outlookd: temporal config: TEMPORAL_CONFIG_FILE"},
		{"serve", []string{"VAULT_TOKEN=x", "OUTLOOKD_LOG_LEVEL=chatty"}, "outlookd: config: OUTLOOKD_LOG_LEVEL: expected one of debug, info, warn, error"},
		{"serve", nil, "outlookd: config: VAULT_TOKEN: expected a Vault token, or OUTLOOKD_VAULT_ROLE_ID"},
		{"serve", []string{"VAULT_TOKEN=x", "OUTLOOKD_CLIENT_ID=x", "OUTLOOKD_PUBLIC_URL=http://outlookd.example"},
			"outlookd: config: OUTLOOKD_PUBLIC_URL: expected an https notification URL, or OUTLOOKD_NOTIFICATIONS_URL=none to poll: Microsoft Graph (graph.microsoft.com) only posts to https"},
		{"migrate", []string{"DATABASE_URL=mysql://db"}, "outlookd: config: DATABASE_URL: expected a postgres:// URL"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			stderr, code := runMain(t, tt.args, tt.env...)
			if code != 1 {
				t.Errorf("exit code = %d, want 1", code)
			}
			if strings.Count(stderr, "\n") != 1 || !strings.HasPrefix(stderr, tt.want) {
				t.Errorf("stderr = %q, want one line starting %q", stderr, tt.want)
			}
		})
	}
}

func TestUsageErrors(t *testing.T) {
	tests := []struct {
		args string
		want string
	}{
		{"", "Usage:"},
		{"frobnicate", `unknown command "frobnicate"`},
		{"serve --role=everything", "--role must be all, api or worker"},
		{"migrate extra", `unexpected argument "extra"`},
		{"setup extra", `unexpected argument "extra"`},
		{"disconnect", "outlookd disconnect CONNECTION_ID"},
		{"disconnect conn_a conn_b", `unexpected argument "conn_b"`},
	}
	for _, tt := range tests {
		stderr, code := runMain(t, tt.args)
		if code != 2 || !strings.Contains(stderr, tt.want) {
			t.Errorf("%q: exit %d, stderr %q; want exit 2 and %q", tt.args, code, stderr, tt.want)
		}
	}
}

func TestVersion(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"version"}, &out, &out, nil); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "outlookd ") {
		t.Errorf("version = %q", out.String())
	}
}
