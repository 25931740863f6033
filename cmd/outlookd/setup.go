package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/outlookd/outlookd/temporalconn"
	"github.com/outlookd/outlookd/workflows"
)

// setupCmd prepares a Temporal namespace for outlookd: it registers the
// custom search attributes the workflows set, saying for each whether it was
// added or already there. With --check it changes nothing and fails when one
// is missing. It reads only the Temporal settings.
func setupCmd(ctx context.Context, args []string, stdout, stderr io.Writer, environ []string) error {
	fs := newFlagSet("setup", stderr)
	check := fs.Bool("check", false, "only check that the namespace has the search attributes; change nothing")
	timeout := fs.Duration("timeout", 30*time.Second, "how long to wait for Temporal")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	prof, err := temporalconn.Load(environ)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	tc, err := dialTemporal(ctx, prof, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	defer tc.Close()
	fmt.Fprintf(stdout, "temporal %s, namespace %s\n", prof.Address, prof.Namespace)
	if *check {
		if err := temporalconn.CheckSearchAttributes(ctx, tc.OperatorService(), prof.Namespace, workflows.SearchAttributes); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "all %d search attributes are present\n", len(workflows.SearchAttributes))
		return nil
	}
	res, err := temporalconn.EnsureSearchAttributes(ctx, tc.OperatorService(), prof.Namespace, workflows.SearchAttributes)
	if err != nil {
		var denied *serviceerror.PermissionDenied
		if errors.As(err, &denied) {
			return fmt.Errorf("%w (the credentials may not manage search attributes: on Temporal Cloud add them with tcld or the Cloud UI, see docs/operations.md)", err)
		}
		return err
	}
	added := 0
	for _, r := range res {
		fmt.Fprintf(stdout, "search attribute %-16s %-8s %s\n", r.Name, r.Type, r.Outcome)
		if r.Outcome == temporalconn.Added {
			added++
		}
	}
	fmt.Fprintf(stdout, "%d added, %d already present\n", added, len(res)-added)
	return nil
}

// dialTemporal connects to Temporal now (not lazily), so that a command
// fails at once with the reason when Temporal cannot be reached.
func dialTemporal(ctx context.Context, prof temporalconn.Profile, log *slog.Logger) (client.Client, error) {
	opts, err := prof.ClientOptions(log)
	if err != nil {
		return nil, err
	}
	tc, err := client.DialContext(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("temporal %s (namespace %s): %w", prof.Address, prof.Namespace, err)
	}
	return tc, nil
}

// waitSearchAttributes returns nil once the namespace has every search
// attribute the workflows set, and the error naming the missing ones
// otherwise. While Temporal cannot be reached it retries (the worker's
// start is what waits); where the credentials may not list attributes (some
// Temporal Cloud keys) it warns and lets the worker start.
func waitSearchAttributes(ctx context.Context, tc client.Client, namespace string, log *slog.Logger) error {
	backoff := time.Second
	for {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := temporalconn.CheckSearchAttributes(cctx, tc.OperatorService(), namespace, workflows.SearchAttributes)
		cancel()
		var (
			missing *temporalconn.MissingAttributesError
			denied  *serviceerror.PermissionDenied
			unimpl  *serviceerror.Unimplemented
		)
		switch {
		case err == nil:
			return nil
		case errors.As(err, &missing):
			return err
		case errors.As(err, &denied), errors.As(err, &unimpl):
			log.Warn("cannot list the namespace's search attributes; starting the worker unchecked", "namespace", namespace, "err", err)
			return nil
		}
		if ctx.Err() != nil {
			return nil
		}
		log.Warn("cannot check the namespace's search attributes yet; retrying", "namespace", namespace, "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 30*time.Second)
	}
}
