package main

import (
	"context"
	"fmt"
	"io"

	"github.com/outlookd/outlookd/config"
	"github.com/outlookd/outlookd/store"
)

func migrate(ctx context.Context, args []string, stdout, stderr io.Writer, environ []string) error {
	fs := newFlagSet("migrate", stderr)
	create := fs.Bool("create-database", false, "create the database named in DATABASE_URL when it does not exist")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := config.LoadFrom(environ)
	if err != nil {
		return err
	}
	dsn := cfg.DatabaseURL.Reveal()
	if *create {
		if err := store.EnsureDatabase(ctx, dsn); err != nil {
			return err
		}
	}
	from, to, err := store.Migrate(ctx, dsn)
	if err != nil {
		return err
	}
	if from == to {
		fmt.Fprintf(stdout, "schema is up to date at version %d\n", to)
	} else {
		fmt.Fprintf(stdout, "schema migrated from version %d to %d\n", from, to)
	}
	return nil
}
