// Command stack brings up, inspects and stops outlookd's local stack: the
// Temporal dev server (with its Web UI), a persistent Vault and Postgres. It
// builds Temporal and Vault from the Go module proxy into a cache folder keyed
// by version, so only the first run pays for the build.
//
//	go run ./deploy/stack [flags] up|down|status|env
//
// The "run" profile serves `make run`; the "test" profile uses other ports
// and its own data folder, so the tests never touch a developer's stack. The
// "cluster" profile runs Temporal as a platform team does instead of the dev
// server: the multi-service server on PostgreSQL with SQL visibility, and
// its Web UI as a server of its own.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "stack:", err)
		}
		os.Exit(1)
	}
}

const usage = `usage: go run ./deploy/stack [flags] up|down|status|env

  up      build what is missing, start what is not running, migrate Postgres
  down    stop what this stack started (never anything else)
  status  say what runs and whether it answers
  env     print the environment (KEY=value lines) for outlookd and the tests

flags:
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("stack", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage); fs.PrintDefaults() }
	profile := fs.String("profile", envOr("OUTLOOKD_STACK_PROFILE", "run"), "run, test or cluster: default ports, database and data folder")
	dir := fs.String("dir", os.Getenv("OUTLOOKD_STACK_DIR"), "data folder (default .stack/<profile> in the repository)")
	cache := fs.String("cache", os.Getenv("OUTLOOKD_TOOLS_CACHE"), "folder of built tools (default $XDG_CACHE_HOME/outlookd/tools or ~/.cache/outlookd/tools)")
	only := fs.String("only", "postgres,temporal,vault", "comma-separated components to act on")
	tport := fs.Int("temporal-port", 0, "Temporal frontend port (run: 7233, test: 17233, cluster: 27233)")
	uiport := fs.Int("temporal-ui-port", 0, "Temporal Web UI port (run: 8233, test: 18233, cluster: 28233)")
	vport := fs.Int("vault-port", 0, "Vault port (run: 8200, test: 18200, cluster: 28200)")
	db := fs.String("database", "", "database name when DATABASE_URL is unset (run: outlookd, test: outlookd_test, cluster: outlookd_cluster)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errors.New("expected exactly one command: up, down, status or env")
	}
	s, err := newStack(*profile, *dir, *cache, *only)
	if err != nil {
		return err
	}
	if *tport != 0 {
		s.temporalPort = *tport
	}
	if *uiport != 0 {
		s.uiPort = *uiport
	}
	if *vport != 0 {
		s.vaultPort = *vport
	}
	if *db != "" {
		s.database = *db
	}
	s.out = stdout
	switch fs.Arg(0) {
	case "up":
		return s.up(ctx)
	case "down":
		return s.down(ctx)
	case "status":
		return s.status(ctx)
	case "env":
		b, err := os.ReadFile(s.envFile())
		if err != nil {
			return fmt.Errorf("no environment yet: run `up` first (%w)", err)
		}
		_, err = stdout.Write(b)
		return err
	default:
		fs.Usage()
		return fmt.Errorf("unknown command %q", fs.Arg(0))
	}
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// repoRoot finds the module root by walking up from the working directory.
func repoRoot() (string, error) {
	d, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(d, "go.mod")); err == nil && strings.Contains(string(b), "module github.com/outlookd/outlookd\n") {
			return d, nil
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", errors.New("run this from inside the outlookd repository")
		}
		d = parent
	}
}
