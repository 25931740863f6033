package main

import (
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"text/template"
	"time"

	"github.com/jackc/pgx/v5"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/outlookd/outlookd/store"
	"github.com/outlookd/outlookd/temporalconn"
	"github.com/outlookd/outlookd/workflows"
)

// The cluster profile runs Temporal as a platform team does: the
// multi-service server with PostgreSQL persistence and SQL visibility (its
// schema set up by temporal-sql-tool) and the Web UI as a server of its own.

//go:embed temporal-cluster.yaml.tmpl
var clusterConfigTemplate string

//go:embed temporal-dynamicconfig.yaml
var clusterDynamicConfig []byte

// clusterRetention is how long the cluster keeps a closed workflow's
// history (the dev server keeps it a day too).
const clusterRetention = 24 * time.Hour

// temporalDatabases are the cluster's persistence and visibility databases
// (in the same Postgres as outlookd's, as a small installation has it).
func (s *stack) temporalDatabases() (persistence, visibility string) {
	return "temporal_" + s.profile, "temporal_" + s.profile + "_visibility"
}

func (s *stack) temporalDir() string { return filepath.Join(s.dir, "temporal") }

// clusterPorts are the server's gRPC and membership ports, one pair for
// each of its four services, derived from the frontend's port. Membership
// ports are kept under 32768: the server stores them as a smallint.
type clusterPorts struct {
	Frontend, FrontendHTTP, History, Matching, Worker   int
	FrontendRing, HistoryRing, MatchingRing, WorkerRing int
	Metrics                                             int
}

func (s *stack) clusterPorts() clusterPorts {
	f := s.temporalPort
	ring := f - 1000
	if ring > 32767 {
		ring = 32767 - 10
	}
	return clusterPorts{
		Frontend: f, FrontendHTTP: f + 10, History: f + 1, Matching: f + 2, Worker: f + 6,
		FrontendRing: ring, HistoryRing: ring + 1, MatchingRing: ring + 2, WorkerRing: ring + 6,
		Metrics: f + 20,
	}
}

// dbURL is the Postgres the stack uses, parsed: Temporal's databases are
// on the same server, with the same user.
func (s *stack) dbURL() (*url.URL, error) {
	dsn, _ := s.dsn()
	u, err := url.Parse(dsn)
	if err != nil {
		return nil, errors.New("the database URL is malformed")
	}
	return u, nil
}

// clusterConfig renders the server's configuration.
func (s *stack) clusterConfig() ([]byte, error) {
	u, err := s.dbURL()
	if err != nil {
		return nil, err
	}
	pass, _ := u.User.Password()
	persistence, visibility := s.temporalDatabases()
	tmpl, err := template.New("temporal").Parse(clusterConfigTemplate)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	err = tmpl.Execute(&b, map[string]any{
		"Ports": s.clusterPorts(), "DBAddr": u.Host, "DBUser": u.User.Username(), "DBPassword": pass,
		"Persistence": persistence, "Visibility": visibility,
		"DynamicConfig": filepath.Join(s.temporalDir(), "dynamicconfig.yaml"),
	})
	return b.Bytes(), err
}

// upTemporalCluster starts the server and its UI, setting their databases
// and the namespace up on first use.
func (s *stack) upTemporalCluster(ctx context.Context) error {
	// Written at every up: a running server reads it again within 10 s.
	if err := os.MkdirAll(s.temporalDir(), 0o700); err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(s.temporalDir(), "dynamicconfig.yaml"), clusterDynamicConfig, 0o600); err != nil {
		return err
	}
	if s.runningPID("temporal") == 0 {
		if portOpen(s.temporalAddr()) {
			return fmt.Errorf("port %d is taken by a process this stack did not start; stop it or pass --temporal-port", s.temporalPort)
		}
		bin, err := s.temporalServerBin()
		if err != nil {
			return err
		}
		if err := s.clusterSchema(ctx, filepath.Dir(bin)); err != nil {
			return err
		}
		conf, err := s.clusterConfig()
		if err != nil {
			return err
		}
		cdir := filepath.Join(s.temporalDir(), "config")
		if err := os.MkdirAll(cdir, 0o700); err != nil {
			return err
		}
		if err := writeFileAtomic(filepath.Join(cdir, "development.yaml"), conf, 0o600); err != nil {
			return err
		}
		if err := s.startProcess("temporal", bin, "--root", s.temporalDir(), "--config", "config", "--env", "development", "--allow-no-auth", "start"); err != nil {
			return err
		}
		s.logf("%-9s starting the server (PostgreSQL persistence, SQL visibility) on %s", "temporal", s.temporalAddr())
	}
	if err := s.waitFor(ctx, "temporal", 2*time.Minute, s.temporalHealthy); err != nil {
		return err
	}
	if err := s.ensureNamespace(ctx); err != nil {
		return err
	}
	if err := s.ensureSearchAttributes(ctx); err != nil {
		return err
	}
	// SQL visibility takes a new attribute in queries only once the
	// server's caches have it.
	if err := s.waitFor(ctx, "temporal", time.Minute, s.searchAttributesQueryable); err != nil {
		return err
	}
	if err := s.upTemporalUI(ctx); err != nil {
		return err
	}
	s.logf("%-9s ready at %s, Web UI at %s", "temporal", s.temporalAddr(), s.uiURL())
	return nil
}

// clusterSchema creates the persistence and visibility databases and
// brings their schema to the server's version with temporal-sql-tool: the
// first time from nothing, later only the versions added since.
func (s *stack) clusterSchema(ctx context.Context, toolDir string) error {
	u, err := s.dbURL()
	if err != nil {
		return err
	}
	host, port := u.Hostname(), u.Port()
	if port == "" {
		port = "5432"
	}
	pass, _ := u.User.Password()
	persistence, visibility := s.temporalDatabases()
	for _, db := range []struct{ name, schema string }{{persistence, "temporal"}, {visibility, "visibility"}} {
		dbURL := *u
		dbURL.Path = "/" + db.name
		if err := store.EnsureDatabase(ctx, dbURL.String()); err != nil {
			return err
		}
		fresh, err := missingSchemaVersion(ctx, dbURL.String())
		if err != nil {
			return err
		}
		sqlTool := func(args ...string) error {
			base := []string{"--plugin", "postgres12", "--ep", host, "-p", port, "-u", u.User.Username(), "--db", db.name}
			cmd := exec.CommandContext(ctx, filepath.Join(toolDir, "temporal-sql-tool"), append(base, args...)...)
			cmd.Env = append(os.Environ(), "SQL_PASSWORD="+pass)
			if out, err := cmd.CombinedOutput(); err != nil {
				return fmt.Errorf("temporal-sql-tool %s on %s: %w: %s", args[0], db.name, err, out)
			}
			return nil
		}
		if fresh {
			if err := sqlTool("setup-schema", "-v", "0.0"); err != nil {
				return err
			}
		}
		if err := sqlTool("update-schema", "-d", filepath.Join(toolDir, "schema", db.schema, "versioned")); err != nil {
			return err
		}
		s.logf("%-9s database %s at the server's schema version", "temporal", db.name)
	}
	return nil
}

// missingSchemaVersion tells whether temporal-sql-tool has never set the
// database up (it keeps its version in schema_version).
func missingSchemaVersion(ctx context.Context, dsn string) (bool, error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return false, err
	}
	defer conn.Close(ctx)
	var exists bool
	err = conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM information_schema.tables WHERE table_name = 'schema_version')`).Scan(&exists)
	return !exists, err
}

// ensureNamespace registers the namespace when the cluster lacks it, and
// waits until the frontend serves it.
func (s *stack) ensureNamespace(ctx context.Context) error {
	c, err := s.dialTemporal(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.WorkflowService().RegisterNamespace(ctx, &workflowservice.RegisterNamespaceRequest{
		Namespace:                        temporalNamespace,
		Description:                      "outlookd's local cluster",
		WorkflowExecutionRetentionPeriod: durationpb.New(clusterRetention),
	})
	var exists *serviceerror.NamespaceAlreadyExists
	switch {
	case err == nil:
		s.logf("%-9s namespace %q registered (retention %s)", "temporal", temporalNamespace, clusterRetention)
	case errors.As(err, &exists):
	default:
		return fmt.Errorf("register namespace %q: %w", temporalNamespace, err)
	}
	return s.waitFor(ctx, "temporal", time.Minute, func(ctx context.Context) error {
		_, err := c.WorkflowService().DescribeNamespace(ctx, &workflowservice.DescribeNamespaceRequest{Namespace: temporalNamespace})
		return err
	})
}

// searchAttributesQueryable checks that visibility takes every attribute in
// a query, as outlookd's listings use them.
func (s *stack) searchAttributesQueryable(ctx context.Context) error {
	c, err := s.dialTemporal(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := temporalconn.CheckSearchAttributes(ctx, c.OperatorService(), temporalNamespace, workflows.SearchAttributes); err != nil {
		return err
	}
	for _, k := range workflows.SearchAttributes {
		q := k.GetName() + " IS NOT NULL"
		if _, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Namespace: temporalNamespace, Query: q, PageSize: 1}); err != nil {
			return fmt.Errorf("visibility does not take %s yet: %w", k.GetName(), err)
		}
	}
	return nil
}

// upTemporalUI starts the Web UI server against the cluster's frontend.
func (s *stack) upTemporalUI(ctx context.Context) error {
	uiAddr := "127.0.0.1:" + strconv.Itoa(s.uiPort)
	if s.runningPID("temporal-ui") == 0 {
		if portOpen(uiAddr) {
			return fmt.Errorf("port %d is taken by a process this stack did not start; stop it or pass --temporal-ui-port", s.uiPort)
		}
		bin, err := s.temporalUIBin()
		if err != nil {
			return err
		}
		cdir := filepath.Join(s.temporalDir(), "ui")
		if err := os.MkdirAll(cdir, 0o700); err != nil {
			return err
		}
		conf := fmt.Sprintf("temporalGrpcAddress: %s\nhost: 127.0.0.1\nport: %d\nenableUi: true\ndefaultNamespace: %s\n",
			s.temporalAddr(), s.uiPort, temporalNamespace)
		if err := writeFileAtomic(filepath.Join(cdir, "development.yaml"), []byte(conf), 0o600); err != nil {
			return err
		}
		if err := s.startProcess("temporal-ui", bin, "--root", s.temporalDir(), "--config", "ui", "--env", "development", "start"); err != nil {
			return err
		}
	}
	return s.waitFor(ctx, "temporal-ui", 30*time.Second, func(context.Context) error {
		if !portOpen(uiAddr) {
			return fmt.Errorf("web UI not listening on %d", s.uiPort)
		}
		return nil
	})
}
