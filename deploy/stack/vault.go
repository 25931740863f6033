package main

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	vaultapi "github.com/hashicorp/vault/api"
)

//go:embed vault-policy.hcl
var vaultPolicy string

const (
	vaultPolicyName = "outlookd"
	vaultRoleName   = "outlookd"
	transitKey      = "outlookd"
)

func (s *stack) vaultAddr() string { return "http://127.0.0.1:" + strconv.Itoa(s.vaultPort) }
func (s *stack) vaultDir() string  { return filepath.Join(s.dir, "vault") }

// vaultInit is what `vault operator init` returns: the unseal key and the root
// token, kept in the data folder for local development only.
type vaultInit struct {
	UnsealKey string `json:"unseal_key"`
	RootToken string `json:"root_token"`
}

func (s *stack) upVault(ctx context.Context) (map[string]string, error) {
	if err := os.MkdirAll(filepath.Join(s.vaultDir(), "data"), 0o700); err != nil {
		return nil, err
	}
	if s.runningPID("vault") == 0 {
		if portOpen(fmt.Sprintf("127.0.0.1:%d", s.vaultPort)) {
			return nil, fmt.Errorf("port %d is taken by a process this stack did not start; stop it or pass --vault-port", s.vaultPort)
		}
		bin, err := s.vaultBin()
		if err != nil {
			return nil, err
		}
		conf := filepath.Join(s.vaultDir(), "config.hcl")
		if err := writeFileAtomic(conf, []byte(s.vaultConfig()), 0o600); err != nil {
			return nil, err
		}
		if err := s.startProcess("vault", bin, "server", "-config="+conf); err != nil {
			return nil, err
		}
		s.logf("%-9s starting with file storage in %s", "vault", filepath.Join(s.vaultDir(), "data"))
	}
	vc, err := s.vaultClient(10 * time.Second)
	if err != nil {
		return nil, err
	}
	if err := s.waitFor(ctx, "vault", 30*time.Second, func(ctx context.Context) error {
		_, err := vc.Sys().SealStatusWithContext(ctx)
		return err
	}); err != nil {
		return nil, err
	}
	init, err := s.vaultInitialise(ctx, vc)
	if err != nil {
		return nil, err
	}
	st, err := vc.Sys().SealStatusWithContext(ctx)
	if err != nil {
		return nil, err
	}
	if st.Sealed {
		if _, err := vc.Sys().UnsealWithContext(ctx, init.UnsealKey); err != nil {
			return nil, fmt.Errorf("unseal: %w", err)
		}
	}
	vc.SetToken(init.RootToken)
	if err := s.vaultConfigure(ctx, vc); err != nil {
		return nil, err
	}
	roleID, secretIDFile, err := s.vaultServiceIdentity(ctx, vc)
	if err != nil {
		return nil, err
	}
	s.logf("%-9s ready at %s (unsealed; service identity: AppRole %q with policy %q)", "vault", s.vaultAddr(), vaultRoleName, vaultPolicyName)
	return map[string]string{
		"VAULT_ADDR":                    s.vaultAddr(),
		"OUTLOOKD_VAULT_ROLE_ID":        roleID,
		"OUTLOOKD_VAULT_SECRET_ID_FILE": secretIDFile,
	}, nil
}

func (s *stack) vaultConfig() string {
	return fmt.Sprintf(`# Local development only: plain HTTP on loopback.
storage "file" {
  path = %q
}

listener "tcp" {
  address     = "127.0.0.1:%d"
  tls_disable = true
}

api_addr      = %q
disable_mlock = true
ui            = false
log_level     = "warn"
`, filepath.Join(s.vaultDir(), "data"), s.vaultPort, s.vaultAddr())
}

// vaultInitialise initialises Vault once (one unseal key) and keeps the
// result in the data folder; later runs read it back.
func (s *stack) vaultInitialise(ctx context.Context, vc *vaultapi.Client) (vaultInit, error) {
	path := filepath.Join(s.vaultDir(), "init.json")
	var init vaultInit
	done, err := vc.Sys().InitStatusWithContext(ctx)
	if err != nil {
		return init, fmt.Errorf("init status: %w", err)
	}
	if done {
		b, err := os.ReadFile(path)
		if err != nil {
			return init, fmt.Errorf("vault is initialised but its keys are not in %s: remove %s to start over (%w)", path, s.vaultDir(), err)
		}
		return init, json.Unmarshal(b, &init)
	}
	resp, err := vc.Sys().InitWithContext(ctx, &vaultapi.InitRequest{SecretShares: 1, SecretThreshold: 1})
	if err != nil {
		return init, fmt.Errorf("init: %w", err)
	}
	init = vaultInit{UnsealKey: resp.KeysB64[0], RootToken: resp.RootToken}
	b, _ := json.MarshalIndent(init, "", "  ")
	if err := writeFileAtomic(path, b, 0o600); err != nil {
		return init, err
	}
	s.logf("%-9s initialised; unseal key and root token kept in %s (local development only)", "vault", path)
	return init, nil
}

// vaultConfigure enables KV v2 at secret/, transit with the outlookd key,
// AppRole, and writes the service's policy. Each step is idempotent.
func (s *stack) vaultConfigure(ctx context.Context, vc *vaultapi.Client) error {
	mounts, err := vc.Sys().ListMountsWithContext(ctx)
	if err != nil {
		return fmt.Errorf("list mounts: %w", err)
	}
	if m, ok := mounts["secret/"]; !ok {
		if err := vc.Sys().MountWithContext(ctx, "secret", &vaultapi.MountInput{Type: "kv", Options: map[string]string{"version": "2"}}); err != nil {
			return fmt.Errorf("enable kv v2: %w", err)
		}
	} else if m.Type != "kv" || m.Options["version"] != "2" {
		return fmt.Errorf("secret/ is mounted as %s (options %v), want kv version 2", m.Type, m.Options)
	}
	if _, ok := mounts["transit/"]; !ok {
		if err := vc.Sys().MountWithContext(ctx, "transit", &vaultapi.MountInput{Type: "transit"}); err != nil {
			return fmt.Errorf("enable transit: %w", err)
		}
	}
	if _, err := vc.Logical().WriteWithContext(ctx, "transit/keys/"+transitKey, nil); err != nil {
		return fmt.Errorf("create transit key: %w", err)
	}
	auths, err := vc.Sys().ListAuthWithContext(ctx)
	if err != nil {
		return fmt.Errorf("list auth methods: %w", err)
	}
	if _, ok := auths["approle/"]; !ok {
		if err := vc.Sys().EnableAuthWithOptionsWithContext(ctx, "approle", &vaultapi.EnableAuthOptions{Type: "approle"}); err != nil {
			return fmt.Errorf("enable approle: %w", err)
		}
	}
	if err := vc.Sys().PutPolicyWithContext(ctx, vaultPolicyName, vaultPolicy); err != nil {
		return fmt.Errorf("write policy: %w", err)
	}
	_, err = vc.Logical().WriteWithContext(ctx, "auth/approle/role/"+vaultRoleName, map[string]any{
		"token_policies": []string{vaultPolicyName},
		"token_ttl":      "1h",
		"token_max_ttl":  "24h",
		"secret_id_ttl":  "0",
	})
	if err != nil {
		return fmt.Errorf("write approle role: %w", err)
	}
	return nil
}

// vaultServiceIdentity returns the AppRole role ID and the file holding a
// secret ID that still logs in, issuing a new secret ID when needed.
func (s *stack) vaultServiceIdentity(ctx context.Context, vc *vaultapi.Client) (roleID, secretIDFile string, err error) {
	r, err := vc.Logical().ReadWithContext(ctx, "auth/approle/role/"+vaultRoleName+"/role-id")
	if err != nil || r == nil {
		return "", "", fmt.Errorf("read role id: %v", err)
	}
	roleID, _ = r.Data["role_id"].(string)
	secretIDFile = filepath.Join(s.vaultDir(), "secret-id")
	if b, err := os.ReadFile(secretIDFile); err == nil {
		login, err := vc.Logical().WriteWithContext(ctx, "auth/approle/login", map[string]any{"role_id": roleID, "secret_id": strings.TrimSpace(string(b))})
		if err == nil && login != nil && login.Auth != nil {
			// Revoke the probe token at once; the service logs in by itself.
			probe, _ := vc.Clone()
			probe.SetToken(login.Auth.ClientToken)
			_ = probe.Auth().Token().RevokeSelfWithContext(ctx, "")
			return roleID, secretIDFile, nil
		}
	}
	sec, err := vc.Logical().WriteWithContext(ctx, "auth/approle/role/"+vaultRoleName+"/secret-id", nil)
	if err != nil || sec == nil {
		return "", "", fmt.Errorf("issue secret id: %v", err)
	}
	secretID, _ := sec.Data["secret_id"].(string)
	if secretID == "" {
		return "", "", errors.New("issue secret id: empty answer")
	}
	if err := writeFileAtomic(secretIDFile, []byte(secretID+"\n"), 0o600); err != nil {
		return "", "", err
	}
	return roleID, secretIDFile, nil
}

func (s *stack) statusVault(ctx context.Context) (string, error) {
	vc, err := s.vaultClient(5 * time.Second)
	if err != nil {
		return "", err
	}
	h, err := vc.Sys().HealthWithContext(ctx)
	if err != nil {
		return "", err
	}
	if !h.Initialized {
		return "", errors.New("not initialised")
	}
	if h.Sealed {
		return "", errors.New("sealed")
	}
	owner := "not started by this stack"
	if pid := s.runningPID("vault"); pid != 0 {
		owner = "pid " + strconv.Itoa(pid)
	}
	return fmt.Sprintf("%s, unsealed, version %s, %s", s.vaultAddr(), h.Version, owner), nil
}

// vaultClient is a client of this stack's Vault with no token.
func (s *stack) vaultClient(timeout time.Duration) (*vaultapi.Client, error) {
	cfg := vaultapi.DefaultConfig()
	cfg.Address = s.vaultAddr()
	cfg.Timeout = timeout
	vc, err := vaultapi.NewClient(cfg)
	if err != nil {
		return nil, err
	}
	vc.ClearToken()
	return vc, nil
}
