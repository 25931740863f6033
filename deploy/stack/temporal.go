package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
)

// searchAttributes are the custom search attributes the engine sets on every
// connection and mailbox workflow; operators filter on them in the UI and CLI.
var searchAttributes = map[string]enumspb.IndexedValueType{
	"ConnectionId":    enumspb.INDEXED_VALUE_TYPE_KEYWORD,
	"ConnectionState": enumspb.INDEXED_VALUE_TYPE_KEYWORD,
	"ConnectionMode":  enumspb.INDEXED_VALUE_TYPE_KEYWORD,
	"TenantId":        enumspb.INDEXED_VALUE_TYPE_KEYWORD,
	"Mailbox":         enumspb.INDEXED_VALUE_TYPE_KEYWORD,
	"SyncMode":        enumspb.INDEXED_VALUE_TYPE_KEYWORD,
}

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
		}
		for _, name := range slices.Sorted(maps.Keys(searchAttributes)) {
			args = append(args, "--search-attribute", name+"=Keyword")
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
// predates an attribute).
func (s *stack) ensureSearchAttributes(ctx context.Context) error {
	c, err := s.dialTemporal(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	have, err := listSearchAttributes(ctx, c)
	if err != nil {
		return err
	}
	missing := map[string]enumspb.IndexedValueType{}
	for name, typ := range searchAttributes {
		if got, ok := have[name]; !ok {
			missing[name] = typ
		} else if got != typ {
			return fmt.Errorf("search attribute %s exists with type %s, want %s", name, got, typ)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	_, err = c.OperatorService().AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{
		Namespace:        temporalNamespace,
		SearchAttributes: missing,
	})
	if err != nil {
		return fmt.Errorf("add search attributes: %w", err)
	}
	return nil
}

func listSearchAttributes(ctx context.Context, c client.Client) (map[string]enumspb.IndexedValueType, error) {
	resp, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: temporalNamespace})
	if err != nil {
		return nil, fmt.Errorf("list search attributes: %w", err)
	}
	return resp.GetCustomAttributes(), nil
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
	have, err := listSearchAttributes(ctx, c)
	if err != nil {
		return "", err
	}
	var names []string
	for name := range searchAttributes {
		if _, ok := have[name]; !ok {
			return "", fmt.Errorf("search attribute %s is not registered", name)
		}
		names = append(names, name)
	}
	slices.Sort(names)
	owner := "not started by this stack"
	if pid != 0 {
		owner = "pid " + strconv.Itoa(pid)
	}
	return fmt.Sprintf("%s, UI %s, %s; search attributes %s", s.temporalAddr(), s.uiURL(), owner, strings.Join(names, ", ")), nil
}
