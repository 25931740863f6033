package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"

	"github.com/outlookd/outlookd/temporalconn"
	"github.com/outlookd/outlookd/workflows"
)

const temporalNamespace = "default"

func (s *stack) temporalAddr() string { return "127.0.0.1:" + strconv.Itoa(s.temporalPort) }
func (s *stack) uiURL() string        { return "http://127.0.0.1:" + strconv.Itoa(s.uiPort) }

func (s *stack) upTemporal(ctx context.Context) error {
	if s.runningPID("temporal") == 0 {
		if portOpen(s.temporalAddr()) {
			return fmt.Errorf("port %d is taken by a process this stack did not start; stop it or pass --temporal-port", s.temporalPort)
		}
		bin, err := s.temporalBin()
		if err != nil {
			return err
		}
		args := []string{"server", "start-dev",
			"--ip", "127.0.0.1",
			"--port", strconv.Itoa(s.temporalPort),
			"--ui-port", strconv.Itoa(s.uiPort),
			"--db-filename", filepath.Join(s.dir, "temporal.db"),
			"--namespace", temporalNamespace,
			"--log-level", "warn",
			// Write-ahead logging: commits append to the log instead of
			// rewriting a journal, and fsync only at checkpoints; a killed
			// server loses nothing.
			"--sqlite-pragma", "journal_mode=wal",
			"--sqlite-pragma", "synchronous=normal",
			// An activity a workflow task schedules on the worker's own
			// task queue starts with the task's completion, on the worker
			// that completed it, when that worker has a free slot: no trip
			// through matching and no write of its own for the start. Off
			// by default in the server; Temporal Cloud and a cluster turn
			// it on the same way (deploy/stack/temporal-dynamicconfig.yaml).
			"--dynamic-config-value", "system.enableActivityEagerExecution=true",
		}
		// The same list `outlookd setup` registers on a real cluster.
		for _, k := range workflows.SearchAttributes {
			args = append(args, "--search-attribute", k.GetName()+"="+k.GetValueType().String())
		}
		if err := s.startProcess("temporal", bin, args...); err != nil {
			return err
		}
		s.logf("%-9s starting the dev server on %s", "temporal", s.temporalAddr())
	}
	if err := s.waitFor(ctx, "temporal", 90*time.Second, s.temporalHealthy); err != nil {
		return err
	}
	if err := s.ensureSearchAttributes(ctx); err != nil {
		return err
	}
	if err := s.waitFor(ctx, "temporal", 30*time.Second, func(context.Context) error {
		if !portOpen(fmt.Sprintf("127.0.0.1:%d", s.uiPort)) {
			return fmt.Errorf("web UI not listening on %d", s.uiPort)
		}
		return nil
	}); err != nil {
		return err
	}
	s.logf("%-9s ready at %s, Web UI at %s", "temporal", s.temporalAddr(), s.uiURL())
	return nil
}

func (s *stack) dialTemporal(ctx context.Context) (client.Client, error) {
	return client.DialContext(ctx, client.Options{
		HostPort:  s.temporalAddr(),
		Namespace: temporalNamespace,
		Logger:    tlog.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil))),
	})
}

func (s *stack) temporalHealthy(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	c, err := s.dialTemporal(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.CheckHealth(ctx, &client.CheckHealthRequest{})
	return err
}

// ensureSearchAttributes registers any attribute the server does not have
// (start-dev registers them too; this also covers a server whose database
// predates an attribute), as `outlookd setup` does.
func (s *stack) ensureSearchAttributes(ctx context.Context) error {
	c, err := s.dialTemporal(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = temporalconn.EnsureSearchAttributes(ctx, c.OperatorService(), temporalNamespace, workflows.SearchAttributes)
	return err
}

func (s *stack) statusTemporal(ctx context.Context) (string, error) {
	pid := s.runningPID("temporal")
	if err := s.temporalHealthy(ctx); err != nil {
		return "", err
	}
	c, err := s.dialTemporal(ctx)
	if err != nil {
		return "", err
	}
	defer c.Close()
	if err := temporalconn.CheckSearchAttributes(ctx, c.OperatorService(), temporalNamespace, workflows.SearchAttributes); err != nil {
		return "", err
	}
	var names []string
	for _, k := range workflows.SearchAttributes {
		names = append(names, k.GetName())
	}
	slices.Sort(names)
	owner := "not started by this stack"
	if pid != 0 {
		owner = "pid " + strconv.Itoa(pid)
	}
	kind := "dev server"
	if s.cluster() {
		kind = "server on PostgreSQL"
		if !portOpen(fmt.Sprintf("127.0.0.1:%d", s.uiPort)) {
			return "", fmt.Errorf("the Web UI does not answer on %d", s.uiPort)
		}
	}
	return fmt.Sprintf("%s %s, UI %s, %s; search attributes %s", kind, s.temporalAddr(), s.uiURL(), owner, strings.Join(names, ", ")), nil
}
