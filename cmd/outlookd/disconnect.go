package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/outlookd/outlookd/connect"
	"github.com/outlookd/outlookd/store"
	"github.com/outlookd/outlookd/temporalconn"
)

const disconnectUsage = `Usage:
  outlookd disconnect CONNECTION_ID

Disconnects a connection as DELETE /v1/connections/{id} does: its workflow runs
the disconnect saga (Graph subscriptions deleted, Vault purged, mail deleted or
kept by the connection's retention policy). A connection whose workflow was
terminated in Temporal, or failed, is cleaned up by a new run of its workflow.
`

// disconnectCmd is the operator's way to disconnect a connection without
// the API: the same saga, from the registry and Temporal.
func disconnectCmd(ctx context.Context, args []string, stdout, stderr io.Writer, environ []string) error {
	fs := newFlagSet("disconnect", stderr)
	fs.Usage = func() { fmt.Fprint(stderr, disconnectUsage) }
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		fmt.Fprint(stderr, disconnectUsage)
		return usageError{errors.New("disconnect needs one connection ID")}
	}
	id := args[0]
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	cfg, st, err := openRegistry(ctx, environ)
	if err != nil {
		return err
	}
	defer st.Close()
	prof, err := temporalconn.Load(environ)
	if err != nil {
		return err
	}
	row, err := st.GetConnection(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("no connection %q in the registry", id)
	}
	if err != nil {
		return err
	}
	tc, err := dialTemporal(ctx, prof, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	defer tc.Close()
	svc := &connect.Service{Temporal: tc, Store: st, TaskQueue: cfg.TaskQueue}
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	status, err := svc.Disconnect(dctx, row)
	if err != nil {
		return fmt.Errorf("disconnect %s: %w", id, err)
	}
	if status.State == "disconnected" {
		fmt.Fprintf(stdout, "%s is disconnected.\n", id)
		return nil
	}
	fmt.Fprintf(stdout, "%s is disconnecting (%s); GET /v1/connections/%s shows when it is done.\n", id, status.NextAction, id)
	return nil
}
