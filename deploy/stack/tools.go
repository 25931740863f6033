package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// Tool versions. Bumping one builds it anew into its own cache folder.
const (
	temporalCLIVersion = "v1.5.1"
	vaultVersion       = "v1.21.0" // also pinned in deploy/tools/vault/go.mod
)

// temporalBin returns the Temporal CLI, building it on first use with
// `go install` from the Go module proxy.
func (s *stack) temporalBin() (string, error) {
	return s.tool("temporal", temporalCLIVersion, "about 5 minutes", func(out string) *exec.Cmd {
		cmd := exec.Command("go", "install", "github.com/temporalio/cli/cmd/temporal@"+temporalCLIVersion)
		cmd.Env = append(os.Environ(), "GOBIN="+filepath.Dir(out))
		return cmd
	})
}

// vaultBin returns the Vault server, built on first use from the tools module
// in deploy/tools/vault (Vault's go.mod has replace directives, so it cannot
// be installed with `go install`).
func (s *stack) vaultBin() (string, error) {
	return s.tool("vault", vaultVersion, "about 10 minutes", func(out string) *exec.Cmd {
		cmd := exec.Command("go", "build", "-o", out, "github.com/hashicorp/vault")
		cmd.Dir = filepath.Join(s.root, "deploy", "tools", "vault")
		return cmd
	})
}

// tool returns cache/<name>-<version>/<name>, building it under a file lock
// so concurrent runs build it once. The build writes into a staging folder
// that is renamed into place, so an interrupted build leaves nothing behind.
func (s *stack) tool(name, version, eta string, build func(out string) *exec.Cmd) (string, error) {
	final := filepath.Join(s.cache, name+"-"+version, name)
	if _, err := os.Stat(final); err == nil {
		return final, nil
	}
	if err := os.MkdirAll(s.cache, 0o755); err != nil {
		return "", err
	}
	lock, err := os.OpenFile(filepath.Join(s.cache, name+".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", fmt.Errorf("lock %s: %w", lock.Name(), err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if _, err := os.Stat(final); err == nil {
		return final, nil // built by a concurrent run
	}
	staging, err := os.MkdirTemp(s.cache, name+"-"+version+".building-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(staging)
	s.logf("building %s %s from the Go module proxy into %s (first time only, %s)...", name, version, filepath.Dir(final), eta)
	start := time.Now()
	cmd := build(filepath.Join(staging, name))
	cmd.Stdout, cmd.Stderr = s.out, s.out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("build %s %s: %w", name, version, err)
	}
	if _, err := os.Stat(filepath.Join(staging, name)); err != nil {
		return "", fmt.Errorf("build %s %s produced no binary: %w", name, version, err)
	}
	if err := os.Rename(staging, filepath.Dir(final)); err != nil {
		return "", err
	}
	s.logf("built %s %s in %s", name, version, time.Since(start).Round(time.Second))
	return final, nil
}
