package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/outlookd/outlookd/store"
)

// dsn is DATABASE_URL when set, else the local cluster's database of this
// profile (trust authentication on 127.0.0.1, as Debian's package sets up).
func (s *stack) dsn() (dsn string, external bool) {
	if v := os.Getenv("DATABASE_URL"); v != "" {
		return v, true
	}
	return "postgres://postgres@127.0.0.1:5432/" + s.database + "?sslmode=disable", false
}

func (s *stack) startedPostgresMarker() string {
	return filepath.Join(s.dir, "postgres.started-by-stack")
}

func (s *stack) upPostgres(ctx context.Context) (string, error) {
	dsn, external := s.dsn()
	if err := pingServer(ctx, dsn); err != nil {
		if external {
			return "", fmt.Errorf("DATABASE_URL does not answer: %w", err)
		}
		if err := s.startLocalCluster(ctx); err != nil {
			return "", err
		}
	}
	if err := store.EnsureDatabase(ctx, dsn); err != nil {
		return "", err
	}
	from, to, err := store.Migrate(ctx, dsn)
	if err != nil {
		return "", err
	}
	s.logf("%-9s ready at %s (schema version %d -> %d)", "postgres", redactDSN(dsn), from, to)
	return dsn, nil
}

// startLocalCluster starts Debian's packaged cluster when it is down.
func (s *stack) startLocalCluster(ctx context.Context) error {
	versions, _ := filepath.Glob("/etc/postgresql/*/main")
	if len(versions) == 0 {
		return errors.New("nothing answers on 127.0.0.1:5432 and no local cluster is installed: install Debian's postgresql package or set DATABASE_URL")
	}
	version := filepath.Base(filepath.Dir(versions[len(versions)-1]))
	s.logf("%-9s starting the local cluster %s/main", "postgres", version)
	out, err := exec.CommandContext(ctx, "pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start").CombinedOutput()
	if err != nil {
		return fmt.Errorf("pg_ctlcluster %s main start: %w: %s", version, err, out)
	}
	if err := writeFileAtomic(s.startedPostgresMarker(), []byte(version+"\n"), 0o600); err != nil {
		return err
	}
	dsn, _ := s.dsn()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := pingServer(ctx, dsn)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the local cluster did not answer within 30s: %w", err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// downPostgres stops the local cluster only if this stack started it.
func (s *stack) downPostgres(ctx context.Context) error {
	b, err := os.ReadFile(s.startedPostgresMarker())
	if err != nil {
		s.logf("%-9s left running (this stack did not start it)", "postgres")
		return nil
	}
	version := string(b[:len(b)-1])
	out, err := exec.CommandContext(ctx, "pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "stop").CombinedOutput()
	if err != nil {
		return fmt.Errorf("pg_ctlcluster %s main stop: %w: %s", version, err, out)
	}
	_ = os.Remove(s.startedPostgresMarker())
	s.logf("%-9s stopped the local cluster %s/main", "postgres", version)
	return nil
}

func (s *stack) statusPostgres(ctx context.Context) (string, error) {
	dsn, _ := s.dsn()
	st, err := store.Open(ctx, dsn, 1)
	if err != nil {
		return dsn, err
	}
	defer st.Close()
	return dsn, st.Ping(ctx)
}

// pingServer checks the server answers, using its maintenance database so
// that a missing application database does not count as down.
func pingServer(ctx context.Context, dsn string) error {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return errors.New("the database URL is malformed")
	}
	cfg.Database = "postgres"
	cfg.ConnectTimeout = 3 * time.Second
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	return conn.Close(ctx)
}

// redactDSN hides the password of a database URL.
func redactDSN(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return "(malformed database URL)"
	}
	return u.Redacted()
}
