package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Sentinel errors callers match with errors.Is.
var (
	ErrNotFound = errors.New("store: not found")
	// ErrMailboxTaken: the mailbox is connected by another live connection.
	ErrMailboxTaken = errors.New("store: mailbox already connected")
)

// Connection is a row of the connection registry.
type Connection struct {
	ID            string
	OrgID         string
	OwnerID       string
	State         string
	Mode          string
	TenantID      string
	Mailbox       string
	UserID        string
	DisplayName   string
	GrantedScopes []string
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

// CreateConnection registers a connection; creating one that exists is a
// no-op, so a retried start is harmless.
func (s *Store) CreateConnection(ctx context.Context, c Connection) error {
	_, err := s.pool.Exec(ctx, `
		INSERT INTO connections (id, org_id, owner_id, state, mode)
		VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (id) DO NOTHING`, c.ID, c.OrgID, c.OwnerID, c.State, c.Mode)
	if err != nil {
		return fmt.Errorf("store: create connection %s: %w", c.ID, err)
	}
	return nil
}

// ConnectionUpdate changes the registry's mirror of a connection; empty
// fields are left alone.
type ConnectionUpdate struct {
	State         string
	Mode          string
	TenantID      string
	Mailbox       string
	UserID        string
	DisplayName   string
	GrantedScopes []string
}

// UpdateConnection applies an update. Claiming a mailbox another live
// connection holds returns ErrMailboxTaken and changes nothing.
func (s *Store) UpdateConnection(ctx context.Context, id string, u ConnectionUpdate) error {
	tag, err := s.pool.Exec(ctx, `
		UPDATE connections SET
			state          = COALESCE(NULLIF($2, ''), state),
			mode           = COALESCE(NULLIF($3, ''), mode),
			tenant_id      = COALESCE(NULLIF($4, ''), tenant_id),
			mailbox        = COALESCE(NULLIF($5, ''), mailbox),
			user_id        = COALESCE(NULLIF($6, ''), user_id),
			display_name   = COALESCE(NULLIF($7, ''), display_name),
			granted_scopes = COALESCE($8, granted_scopes),
			updated_at     = now()
		WHERE id = $1`, id, u.State, u.Mode, u.TenantID, u.Mailbox, u.UserID, u.DisplayName, u.GrantedScopes)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" && pgErr.ConstraintName == "connections_live_mailbox" {
		return fmt.Errorf("store: connection %s: %w", id, ErrMailboxTaken)
	}
	if err != nil {
		return fmt.Errorf("store: update connection %s: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("store: connection %s: %w", id, ErrNotFound)
	}
	return nil
}

// GetConnection reads a registry row.
func (s *Store) GetConnection(ctx context.Context, id string) (Connection, error) {
	var c Connection
	var tenant, mailbox, user, name *string
	err := s.pool.QueryRow(ctx, `
		SELECT id, org_id, owner_id, state, mode, tenant_id, mailbox, user_id, display_name, granted_scopes, created_at, updated_at
		FROM connections WHERE id = $1`, id).Scan(&c.ID, &c.OrgID, &c.OwnerID, &c.State, &c.Mode, &tenant, &mailbox, &user, &name, &c.GrantedScopes, &c.CreatedAt, &c.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return c, fmt.Errorf("store: connection %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return c, fmt.Errorf("store: get connection %s: %w", id, err)
	}
	c.TenantID, c.Mailbox, c.UserID, c.DisplayName = deref(tenant), deref(mailbox), deref(user), deref(name)
	return c, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
