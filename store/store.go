// Package store is outlookd's Postgres layer: the connection registry and the
// synced mail, reached through a pgx connection pool. Its schema is managed by
// embedded migrations (see Migrate).
package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Store holds the connection pool every query goes through.
type Store struct {
	pool *pgxpool.Pool
}

// Open connects a pool to the database at dsn. It does not wait for the
// database: a Store opened while Postgres is down starts working when it
// returns, and Ping tells in the meantime.
func Open(ctx context.Context, dsn string, maxConns int32) (*Store, error) {
	pcfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("store: parse database URL: %w", redactParseError(err))
	}
	if maxConns > 0 {
		pcfg.MaxConns = maxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("store: create pool: %w", err)
	}
	return &Store{pool: pool}, nil
}

// Close releases every connection.
func (s *Store) Close() { s.pool.Close() }

// Ping checks that Postgres answers a query.
func (s *Store) Ping(ctx context.Context) error {
	var one int
	if err := s.pool.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
		return fmt.Errorf("store: ping: %w", err)
	}
	return nil
}

// Pool exposes the pool to this module's tests and tools.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// EnsureDatabase creates the database named in dsn when it does not exist,
// connecting to the server's maintenance database to do so.
func EnsureDatabase(ctx context.Context, dsn string) error {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return fmt.Errorf("store: parse database URL: %w", redactParseError(err))
	}
	name := cfg.Database
	if name == "" {
		return errors.New("store: the database URL names no database")
	}
	cfg.Database = "postgres"
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("store: connect to the maintenance database: %w", err)
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return fmt.Errorf("store: look up database %q: %w", name, err)
	}
	if exists {
		return nil
	}
	_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	var pgErr interface{ SQLState() string }
	if errors.As(err, &pgErr) && pgErr.SQLState() == "42P04" { // duplicate_database: created concurrently
		return nil
	}
	if err != nil {
		return fmt.Errorf("store: create database %q: %w", name, err)
	}
	return nil
}

// DropDatabase removes the database named in dsn, closing its connections.
func DropDatabase(ctx context.Context, dsn string) error {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return fmt.Errorf("store: parse database URL: %w", redactParseError(err))
	}
	name := cfg.Database
	cfg.Database = "postgres"
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("store: connect to the maintenance database: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("store: drop database %q: %w", name, err)
	}
	return nil
}

// redactParseError keeps a malformed URL, which may hold a password, out of
// error messages: pgconn's parse errors quote the whole string.
func redactParseError(err error) error {
	return errors.New("the database URL is malformed")
}

// Sentinel errors callers match with errors.Is.
var (
	ErrNotFound = errors.New("store: not found")
	// ErrMailboxTaken: the mailbox is connected by another live connection.
	ErrMailboxTaken = errors.New("store: mailbox already connected")
	// ErrDetached: the connection's mail was deleted or archived at
	// disconnect; no page is written for it any more.
	ErrDetached = errors.New("store: the connection is detached")
)

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// WithLock runs fn while holding a lock named key that every process
// sharing the database respects (a transaction-scoped advisory lock):
// callers with the same key run one at a time.
func (s *Store) WithLock(ctx context.Context, key string, fn func() error) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`, key); err != nil {
			return fmt.Errorf("store: lock %s: %w", key, err)
		}
		return fn()
	})
}
