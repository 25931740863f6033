package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Tool versions. Bumping one builds it anew into its own cache folder.
const (
	temporalCLIVersion = "v1.5.1"
	vaultVersion       = "v1.21.0" // also pinned in deploy/tools/vault/go.mod
	// The cluster profile's Temporal: the server the CLI embeds (CLI v1.5.1
	// embeds server v1.29.1 and UI server v2.42.1), run as a real server.
	temporalServerVersion = "v1.29.1"
	temporalUIVersion     = "v2.42.1"
)

// temporalBin returns the Temporal CLI, building it on first use with
// `go install` from the Go module proxy.
func (s *stack) temporalBin() (string, error) {
	return s.tool("temporal", temporalCLIVersion, temporalBuildTime, func(out string) *exec.Cmd {
		cmd := exec.Command("go", "install", "-v", "github.com/temporalio/cli/cmd/temporal@"+temporalCLIVersion)
		cmd.Env = append(os.Environ(), "GOBIN="+filepath.Dir(out))
		return cmd
	}, nil)
}

// temporalServerBin returns the multi-service Temporal server. Its folder
// also holds temporal-sql-tool (the server's schema tool) and the schema
// files for PostgreSQL, copied from the module, so that the cache alone
// can set a database up.
func (s *stack) temporalServerBin() (string, error) {
	return s.tool("temporal-server", temporalServerVersion, temporalServerBuildTime, func(out string) *exec.Cmd {
		cmd := exec.Command("go", "install", "-v",
			"go.temporal.io/server/cmd/server@"+temporalServerVersion,
			"go.temporal.io/server/cmd/tools/sql@"+temporalServerVersion)
		cmd.Env = append(os.Environ(), "GOBIN="+filepath.Dir(out))
		return cmd
	}, func(dir string) error {
		if err := os.Rename(filepath.Join(dir, "server"), filepath.Join(dir, "temporal-server")); err != nil {
			return err
		}
		if err := os.Rename(filepath.Join(dir, "sql"), filepath.Join(dir, "temporal-sql-tool")); err != nil {
			return err
		}
		mod, err := moduleDir("go.temporal.io/server@" + temporalServerVersion)
		if err != nil {
			return err
		}
		return os.CopyFS(filepath.Join(dir, "schema"), os.DirFS(filepath.Join(mod, "schema", "postgresql", "v12")))
	})
}

// temporalUIBin returns Temporal's Web UI server, for the cluster profile
// (the dev server embeds its own).
func (s *stack) temporalUIBin() (string, error) {
	return s.tool("temporal-ui", temporalUIVersion, temporalUIBuildTime, func(out string) *exec.Cmd {
		cmd := exec.Command("go", "install", "-v", "github.com/temporalio/ui-server/v2/cmd/server@"+temporalUIVersion)
		cmd.Env = append(os.Environ(), "GOBIN="+filepath.Dir(out))
		return cmd
	}, func(dir string) error {
		return os.Rename(filepath.Join(dir, "server"), filepath.Join(dir, "temporal-ui"))
	})
}

// moduleDir is where the go command keeps a downloaded module (mod@version).
func moduleDir(mod string) (string, error) {
	out, err := exec.Command("go", "env", "GOMODCACHE").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMODCACHE: %w", err)
	}
	dir := filepath.Join(strings.TrimSpace(string(out)), mod)
	if _, err := os.Stat(dir); err != nil {
		return "", fmt.Errorf("module %s is not in the module cache: %w", mod, err)
	}
	return dir, nil
}

// vaultBin returns the Vault server, built on first use from the tools module
// in deploy/tools/vault (Vault's go.mod has replace directives, so it cannot
// be installed with `go install`).
func (s *stack) vaultBin() (string, error) {
	return s.tool("vault", vaultVersion, vaultBuildTime, func(out string) *exec.Cmd {
		cmd := exec.Command("go", "build", "-v", "-o", out, "github.com/hashicorp/vault")
		cmd.Dir = filepath.Join(s.root, "deploy", "tools", "vault")
		return cmd
	}, nil)
}

// What a first build takes on two cores with an empty Go build cache, as
// measured; the README says the same.
const (
	temporalBuildTime       = "15 to 20 minutes"
	vaultBuildTime          = "about 40 minutes"
	temporalServerBuildTime = "about 5 minutes after the CLI's build"
	temporalUIBuildTime     = "about 1 minute"
)

// buildReport is how often a build, or a wait for another run's build,
// says where it stands.
var buildReport = 30 * time.Second

// tool returns cache/<name>-<version>/<name>, building it under a file lock
// so concurrent runs build it once. The build writes into a staging folder
// that is renamed into place, so an interrupted build leaves nothing behind.
// Both the build and a run waiting for another run's build say every
// buildReport what is happening: modules downloaded and packages compiled
// so far (the build keeps them in the staging folder's progress file, which
// a waiting run reads).
//
// finish, when not nil, completes the staging folder after the build
// (renames, files copied beside the binary).
func (s *stack) tool(name, version, eta string, build func(out string) *exec.Cmd, finish func(dir string) error) (string, error) {
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
	if err := s.waitLock(lock, name, version, eta); err != nil {
		return "", err
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if _, err := os.Stat(final); err == nil {
		s.logf("%s %s was built by the other run", name, version)
		return final, nil // built by a concurrent run
	}
	staging, err := os.MkdirTemp(s.cache, name+"-"+version+".building-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(staging)
	s.logf("building %s %s from the Go module proxy into %s (first time only: %s on two cores; progress every %s)...",
		name, version, filepath.Dir(final), eta, buildReport)
	start := time.Now()
	prog := &buildProgress{out: s.out, file: filepath.Join(staging, progressFile), start: start}
	cmd := build(filepath.Join(staging, name))
	cmd.Stdout, cmd.Stderr = prog, prog
	stop := s.every(func(elapsed time.Duration) {
		s.logf("  building %s %s: %s of %s; %s", name, version, elapsed.Round(time.Second), eta, prog.save())
	})
	err = cmd.Run()
	stop()
	if err != nil {
		return "", fmt.Errorf("build %s %s: %w", name, version, err)
	}
	if finish != nil {
		if err := finish(staging); err != nil {
			return "", fmt.Errorf("build %s %s: %w", name, version, err)
		}
	}
	if _, err := os.Stat(filepath.Join(staging, name)); err != nil {
		return "", fmt.Errorf("build %s %s produced no binary: %w", name, version, err)
	}
	_ = os.Remove(filepath.Join(staging, progressFile))
	if err := os.Rename(staging, filepath.Dir(final)); err != nil {
		return "", err
	}
	s.logf("built %s %s in %s (%s)", name, version, time.Since(start).Round(time.Second), prog.save())
	return final, nil
}

// waitLock takes the tool's build lock; when another run holds it, it says
// so, and what that run's build has done, until the lock is free.
func (s *stack) waitLock(lock *os.File, name, version, eta string) error {
	err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if err == nil {
		return nil
	}
	if !errors.Is(err, syscall.EWOULDBLOCK) {
		return fmt.Errorf("lock %s: %w", lock.Name(), err)
	}
	s.logf("waiting for another run that is building %s %s (it holds %s; a first build takes %s)...", name, version, lock.Name(), eta)
	stop := s.every(func(elapsed time.Duration) {
		s.logf("  still waiting for the other run's build of %s %s (%s so far): %s", name, version, elapsed.Round(time.Second), s.otherBuild(name, version))
	})
	defer stop()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("lock %s: %w", lock.Name(), err)
	}
	return nil
}

// otherBuild describes another run's build of a tool from its staging
// folder's progress file.
func (s *stack) otherBuild(name, version string) string {
	dirs, _ := filepath.Glob(filepath.Join(s.cache, name+"-"+version+".building-*"))
	var newest string
	var at time.Time
	for _, d := range dirs {
		if fi, err := os.Stat(d); err == nil && fi.ModTime().After(at) {
			newest, at = d, fi.ModTime()
		}
	}
	if newest == "" {
		return "it has not started building yet"
	}
	b, err := os.ReadFile(filepath.Join(newest, progressFile))
	if err != nil || len(bytes.TrimSpace(b)) == 0 {
		return "it started " + time.Since(at).Round(time.Second).String() + " ago"
	}
	return string(bytes.TrimSpace(b))
}

// every calls report every buildReport with the time since it was called,
// until the function it returns is called.
func (s *stack) every(report func(elapsed time.Duration)) (stop func()) {
	start := time.Now()
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(buildReport)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				report(time.Since(start))
			}
		}
	}()
	return func() { close(done); <-finished }
}

// progressFile, in a build's staging folder, says how far the build is.
const progressFile = "progress"

// buildProgress reads the output of `go build -v` (or install): it counts
// the modules downloaded ("go: downloading ...") and the packages compiled
// (one import path a line), and passes anything else (errors) through.
type buildProgress struct {
	out   io.Writer
	file  string
	start time.Time

	mu       sync.Mutex
	partial  []byte
	modules  int
	packages int
}

// importPath is a line of `go build -v`: a package being compiled.
var importPath = regexp.MustCompile(`^[A-Za-z0-9_.~+-]+(/[A-Za-z0-9_.~+-]+)*$`)

func (p *buildProgress) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.partial = append(p.partial, b...)
	for {
		i := bytes.IndexByte(p.partial, '\n')
		if i < 0 {
			break
		}
		line := string(p.partial[:i])
		p.partial = p.partial[i+1:]
		switch {
		case strings.HasPrefix(line, "go: downloading "):
			p.modules++
		case importPath.MatchString(line):
			p.packages++
		default:
			fmt.Fprintln(p.out, line)
		}
	}
	return len(b), nil
}

// save writes the progress file and answers the same words.
func (p *buildProgress) save() string {
	p.mu.Lock()
	phase := "compiling"
	if p.packages == 0 {
		phase = "downloading modules"
	}
	msg := fmt.Sprintf("%d modules downloaded, %d packages compiled, %s", p.modules, p.packages, phase)
	p.mu.Unlock()
	_ = os.WriteFile(p.file, []byte(fmt.Sprintf("it has been building for %s: %s\n", time.Since(p.start).Round(time.Second), msg)), 0o644)
	return msg
}
