// Command outlookd is the single binary of the service: the API and the
// Temporal worker (serve), the schema migrations (migrate) and its version.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

const usage = `outlookd connects an application's users to their Microsoft 365 and Outlook.com mailboxes.

Usage:
  outlookd serve [--role all|api|worker]   run the API and/or the Temporal worker
  outlookd migrate [--create-database]      bring the Postgres schema up to date
  outlookd setup [--check]                  register outlookd's search attributes in the Temporal namespace
  outlookd sim [--seed demo] [--tls]        run graphsim, the Microsoft identity platform and Graph simulator
  outlookd apikey create|list|revoke        manage the API keys of an organisation (shown once)
  outlookd connections list|show|resync|reauthorize|repair|disconnect
                                            operate on connections through the API (OUTLOOKD_API_URL, OUTLOOKD_API_KEY)
  outlookd disconnect CONNECTION_ID         disconnect a connection, also one whose workflow was terminated
  outlookd appsecret set < secret           keep the app registration's client secret in Vault
  outlookd version                          print the version

Configuration comes from environment variables (Temporal's also from its profile
file); see README.md and docs/operations.md.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Environ())
	stop()
	if err != nil {
		var ue usageError
		if !errors.As(err, &ue) {
			fmt.Fprintln(os.Stderr, "outlookd:", err)
		}
		os.Exit(exitCode(err))
	}
}

// usageError is a wrong command line; its message was already printed.
type usageError struct{ error }

func exitCode(err error) int {
	var ue usageError
	if errors.As(err, &ue) {
		return 2
	}
	return 1
}

// run dispatches a subcommand. environ is the process environment, so tests
// can run the binary's logic in-process.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, environ []string) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return usageError{errors.New("no command")}
	}
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:], stderr, environ)
	case "migrate":
		return migrate(ctx, args[1:], stdout, stderr, environ)
	case "setup":
		return setupCmd(ctx, args[1:], stdout, stderr, environ)
	case "sim":
		return simulate(ctx, args[1:], stdout, stderr)
	case "apikey":
		return apikeyCmd(ctx, args[1:], stdout, stderr, environ)
	case "connections":
		return connectionsCmd(ctx, args[1:], stdout, stderr, environ)
	case "disconnect":
		return disconnectCmd(ctx, args[1:], stdout, stderr, environ)
	case "appsecret":
		return appsecret(ctx, args[1:], stdin, stdout, stderr, environ)
	case "version":
		fmt.Fprintln(stdout, versionString())
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprintf(stderr, "outlookd: unknown command %q\n\n%s", args[0], usage)
		return usageError{fmt.Errorf("unknown command %q", args[0])}
	}
}

func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("outlookd "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "%s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		return usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	return nil
}
