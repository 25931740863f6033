package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/joho/godotenv"
)

// stack is one local stack: a profile's ports, data folder and tool cache.
type stack struct {
	profile      string
	root         string // repository root
	dir          string // data folder
	cache        string // built tools
	components   []string
	temporalPort int
	uiPort       int
	vaultPort    int
	database     string
	out          io.Writer
}

func newStack(profile, dir, cache, only string) (*stack, error) {
	root, err := repoRoot()
	if err != nil {
		return nil, err
	}
	s := &stack{profile: profile, root: root, out: os.Stdout}
	switch profile {
	case "run":
		s.temporalPort, s.uiPort, s.vaultPort, s.database = 7233, 8233, 8200, "outlookd"
	case "test":
		s.temporalPort, s.uiPort, s.vaultPort, s.database = 17233, 18233, 18200, "outlookd_test"
	case "cluster":
		s.temporalPort, s.uiPort, s.vaultPort, s.database = 27233, 28233, 28200, "outlookd_cluster"
	default:
		return nil, fmt.Errorf("unknown profile %q: use run, test or cluster", profile)
	}
	if dir == "" {
		dir = filepath.Join(root, ".stack", profile)
	}
	if s.dir, err = filepath.Abs(dir); err != nil {
		return nil, err
	}
	if cache == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			return nil, fmt.Errorf("no cache folder: set OUTLOOKD_TOOLS_CACHE (%w)", err)
		}
		cache = filepath.Join(base, "outlookd", "tools")
	}
	if s.cache, err = filepath.Abs(cache); err != nil {
		return nil, err
	}
	for c := range strings.SplitSeq(only, ",") {
		c = strings.TrimSpace(c)
		if !slices.Contains([]string{"postgres", "temporal", "vault"}, c) {
			return nil, fmt.Errorf("unknown component %q: use postgres, temporal and/or vault", c)
		}
		s.components = append(s.components, c)
	}
	return s, nil
}

func (s *stack) has(component string) bool { return slices.Contains(s.components, component) }

// cluster tells whether this stack runs Temporal as a real server (the
// cluster profile) rather than the dev server.
func (s *stack) cluster() bool { return s.profile == "cluster" }

func (s *stack) envFile() string { return filepath.Join(s.dir, "env") }

func (s *stack) logf(format string, args ...any) { fmt.Fprintf(s.out, format+"\n", args...) }

// up makes every component run and answer, then writes the env file.
func (s *stack) up(ctx context.Context) error {
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return err
	}
	env := map[string]string{"OUTLOOKD_STACK_DIR": s.dir}
	if s.profile == "run" {
		// The app under development takes its webhooks on this machine,
		// over http: allowed here, never in production.
		env["OUTLOOKD_WEBHOOKS_ALLOW_INSECURE"] = "true"
	}
	if old, err := godotenv.Read(s.envFile()); err == nil {
		for k, v := range old {
			env[k] = v
		}
	}
	if s.has("postgres") {
		dsn, err := s.upPostgres(ctx)
		if err != nil {
			return fmt.Errorf("postgres: %w", err)
		}
		env["DATABASE_URL"] = dsn
	}
	if s.has("temporal") {
		up := s.upTemporal
		if s.cluster() {
			up = s.upTemporalCluster
		}
		if err := up(ctx); err != nil {
			return fmt.Errorf("temporal: %w", err)
		}
		env["TEMPORAL_ADDRESS"] = s.temporalAddr()
		env["OUTLOOKD_TEMPORAL_UI_URL"] = s.uiURL()
		// The Temporal CLI, for what operators do by hand (scenarios
		// cancel and terminate workflows with it).
		cli, err := s.temporalBin()
		if err != nil {
			return fmt.Errorf("temporal: %w", err)
		}
		env["OUTLOOKD_TEMPORAL_CLI"] = cli
		// The server runs on this machine: compressing every request
		// costs both ends CPU and saves no link.
		env["OUTLOOKD_TEMPORAL_COMPRESSION"] = "none"
	}
	if s.has("vault") {
		venv, err := s.upVault(ctx)
		if err != nil {
			return fmt.Errorf("vault: %w", err)
		}
		for k, v := range venv {
			env[k] = v
		}
	}
	if err := writeEnvFile(s.envFile(), env); err != nil {
		return err
	}
	s.logf("stack %q is up; its environment is in %s", s.profile, s.envFile())
	return nil
}

// down stops the processes this stack started, newest first.
func (s *stack) down(ctx context.Context) error {
	var errs []error
	// graphsim, which make run starts and leaves running (it stands for
	// Microsoft, which does not stop when outlookd does), stops with the
	// stack it was started beside.
	if _, err := os.Stat(s.pidFile(simName)); err == nil {
		errs = append(errs, s.stopProcess(simName))
	}
	if s.has("vault") {
		errs = append(errs, s.stopProcess("vault"))
	}
	if s.has("temporal") {
		if s.cluster() {
			errs = append(errs, s.stopProcess("temporal-ui"))
		}
		errs = append(errs, s.stopProcess("temporal"))
	}
	if s.has("postgres") {
		errs = append(errs, s.downPostgres(ctx))
	}
	return errors.Join(errs...)
}

// simName is graphsim's name in a stack's folder (its pid file, its log):
// deploy/run.sh starts it there, beside the stack.
const simName = "graphsim"

// status reports each component; it fails when one is not healthy.
func (s *stack) status(ctx context.Context) error {
	var errs []error
	report := func(name string, err error, detail string) {
		if err != nil {
			s.logf("%-9s DOWN  %v", name, err)
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
			return
		}
		s.logf("%-9s UP    %s", name, detail)
	}
	if s.has("postgres") {
		dsn, err := s.statusPostgres(ctx)
		report("postgres", err, redactDSN(dsn))
	}
	if s.has("temporal") {
		detail, err := s.statusTemporal(ctx)
		report("temporal", err, detail)
	}
	if s.has("vault") {
		detail, err := s.statusVault(ctx)
		report("vault", err, detail)
	}
	if _, err := os.Stat(s.pidFile(simName)); err == nil {
		if pid := s.runningPID(simName); pid != 0 {
			report(simName, nil, fmt.Sprintf("pid %d, started by make run (its log: %s)", pid, s.logFile(simName)))
		} else {
			s.logf("%-9s not running (make run starts it)", simName)
		}
	}
	return errors.Join(errs...)
}

// writeEnvFile writes KEY=value lines that both make's `include`/`export`
// and a shell's `set -a; . file` understand (values never need quoting).
func writeEnvFile(path string, env map[string]string) error {
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	b.WriteString("# Written by `go run ./deploy/stack up`; local development only.\n")
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%s\n", k, env[k])
	}
	return writeFileAtomic(path, []byte(b.String()), 0o600)
}

func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, perm); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
