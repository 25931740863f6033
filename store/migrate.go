package store

import (
	"context"
	"embed"
	"fmt"
	"io/fs"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/tern/v2/migrate"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// versionTable records which migrations have run.
const versionTable = "schema_version"

// Migrate brings the schema of the database at dsn up to the newest embedded
// migration. It is safe to run concurrently (tern holds an advisory lock) and
// repeatedly (applied migrations are skipped). It returns the schema version
// before and after.
func Migrate(ctx context.Context, dsn string) (from, to int32, err error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return 0, 0, fmt.Errorf("store: migrate: connect: %w", err)
	}
	defer conn.Close(ctx)
	m, err := migrate.NewMigrator(ctx, conn, versionTable)
	if err != nil {
		return 0, 0, fmt.Errorf("store: migrate: %w", err)
	}
	sub, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		return 0, 0, fmt.Errorf("store: migrate: %w", err)
	}
	if err := m.LoadMigrations(sub); err != nil {
		return 0, 0, fmt.Errorf("store: migrate: load: %w", err)
	}
	if from, err = m.GetCurrentVersion(ctx); err != nil {
		return 0, 0, fmt.Errorf("store: migrate: current version: %w", err)
	}
	if err := m.Migrate(ctx); err != nil {
		return from, 0, fmt.Errorf("store: migrate: %w", err)
	}
	if to, err = m.GetCurrentVersion(ctx); err != nil {
		return from, 0, fmt.Errorf("store: migrate: current version: %w", err)
	}
	return from, to, nil
}

// LatestVersion is the number of the newest embedded migration.
func LatestVersion() int {
	names, _ := fs.Glob(migrationFiles, "migrations/*.sql")
	return len(names)
}
