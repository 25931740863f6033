package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
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
	// DetachedAt is set once a disconnect kept the mail as an archive.
	DetachedAt *time.Time
	// Visibility is owner, organisation or users.
	Visibility string
	// SharedWith are the app users a connection of visibility users is
	// shared with, in order.
	SharedWith []string
	// Settings are the connection's settings as JSON, as the app chose them.
	Settings []byte
	// ReturnURL is where the consent callback sends the user back to.
	ReturnURL string
}

// Visibilities of a connection: who besides its owner (and the
// organisation's admin keys) sees it.
const (
	VisibilityOwner        = "owner"        // no one else
	VisibilityOrganisation = "organisation" // every user of its organisation
	VisibilityUsers        = "users"        // the users named in SharedWith
)

// visibleTo is the condition that a connection (its table named by alias)
// is visible to the app user of parameter param: its owner, every user
// when it is shared with the organisation, the users it is shared with by
// name; an empty user (an admin key) sees all of them.
func visibleTo(alias, param string) string {
	return `(` + param + ` = '' OR ` + alias + `.owner_id = ` + param + ` OR ` + alias + `.visibility = 'organisation'
		OR (` + alias + `.visibility = 'users' AND EXISTS (
			SELECT 1 FROM connection_shares sh WHERE sh.connection_id = ` + alias + `.id AND sh.user_id = ` + param + `)))`
}

// connectionSelect reads a registry row.
const connectionSelect = `
		SELECT id, org_id, owner_id, state, mode, tenant_id, mailbox, user_id, display_name, granted_scopes,
			created_at, updated_at, detached_at, visibility, settings, return_url,
			ARRAY(SELECT sh.user_id FROM connection_shares sh WHERE sh.connection_id = connections.id ORDER BY sh.user_id COLLATE "C")
		FROM connections `

func scanConnection(r pgx.Row) (Connection, error) {
	var c Connection
	var tenant, mailbox, user, name, ret *string
	err := r.Scan(&c.ID, &c.OrgID, &c.OwnerID, &c.State, &c.Mode, &tenant, &mailbox, &user, &name, &c.GrantedScopes,
		&c.CreatedAt, &c.UpdatedAt, &c.DetachedAt, &c.Visibility, &c.Settings, &ret, &c.SharedWith)
	c.TenantID, c.Mailbox, c.UserID, c.DisplayName, c.ReturnURL = deref(tenant), deref(mailbox), deref(user), deref(name), deref(ret)
	return c, err
}

// CreateConnection registers a connection; creating one that exists is a
// no-op, so a retried start is harmless.
func (s *Store) CreateConnection(ctx context.Context, c Connection) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error { return insertConnection(ctx, tx, c) })
}

func insertConnection(ctx context.Context, tx pgx.Tx, c Connection) error {
	if c.Visibility == "" {
		c.Visibility = VisibilityOwner
	}
	if c.Settings == nil {
		c.Settings = []byte("{}")
	}
	_, err := tx.Exec(ctx, `
		INSERT INTO connections (id, org_id, owner_id, state, mode, visibility, settings, return_url)
		VALUES ($1, $2, $3, $4, $5, $6, $7, NULLIF($8, ''))
		ON CONFLICT (id) DO NOTHING`, c.ID, c.OrgID, c.OwnerID, c.State, c.Mode, c.Visibility, c.Settings, c.ReturnURL)
	if err != nil {
		return fmt.Errorf("store: create connection %s: %w", c.ID, err)
	}
	if c.Mode == "" || c.Mode == "delegated" {
		// A delegated connection's one mailbox, its user's, under its own ID.
		if _, err := tx.Exec(ctx, `
			INSERT INTO mailboxes (id, connection_id, state, settings) VALUES ($1, $1, $2, $3)
			ON CONFLICT (id) DO NOTHING`, c.ID, c.State, c.Settings); err != nil {
			return fmt.Errorf("store: create mailbox of %s: %w", c.ID, err)
		}
	}
	return addEvent(ctx, tx, Event{ID: c.ID + ":created", ConnectionID: c.ID, Type: "connection.created",
		Data: map[string]any{"owner": c.OwnerID, "visibility": c.Visibility}})
}

// DeleteUnstarted removes a connection that never got further than its
// creation (still pending consent, its workflow never started), with its
// events, in one transaction; ErrNotFound when there is no such row.
func (s *Store) DeleteUnstarted(ctx context.Context, id string) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM connections WHERE id = $1 AND state = 'pending_consent' AND mailbox IS NULL`, id)
		if err != nil {
			return fmt.Errorf("store: delete connection %s: %w", id, err)
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("store: unstarted connection %s: %w", id, ErrNotFound)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM events WHERE connection_id = $1`, id); err != nil {
			return fmt.Errorf("store: delete events of %s: %w", id, err)
		}
		return nil
	})
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
	// Settings, when set, replaces the stored settings (JSON).
	Settings []byte
	// Events are recorded in the same transaction, each once.
	Events []Event
}

// UpdateConnection applies an update. Claiming a mailbox another live
// connection holds returns ErrMailboxTaken and changes nothing.
func (s *Store) UpdateConnection(ctx context.Context, id string, u ConnectionUpdate) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := updateConnection(ctx, tx, id, u); err != nil {
			return err
		}
		for _, e := range u.Events {
			e.ConnectionID = id
			if err := addEvent(ctx, tx, e); err != nil {
				return err
			}
		}
		return nil
	})
}

func updateConnection(ctx context.Context, tx pgx.Tx, id string, u ConnectionUpdate) error {
	tag, err := tx.Exec(ctx, `
		UPDATE connections SET
			state          = COALESCE(NULLIF($2, ''), state),
			mode           = COALESCE(NULLIF($3, ''), mode),
			tenant_id      = COALESCE(NULLIF($4, ''), tenant_id),
			mailbox        = COALESCE(NULLIF($5, ''), mailbox),
			user_id        = COALESCE(NULLIF($6, ''), user_id),
			display_name   = COALESCE(NULLIF($7, ''), display_name),
			granted_scopes = COALESCE($8, granted_scopes),
			settings       = COALESCE($9, settings),
			updated_at     = now()
		WHERE id = $1`, id, u.State, u.Mode, u.TenantID, u.Mailbox, u.UserID, u.DisplayName, u.GrantedScopes, u.Settings)
	if err != nil {
		return fmt.Errorf("store: update connection %s: %w", id, mailboxTaken(err, id))
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("store: connection %s: %w", id, ErrNotFound)
	}
	// A delegated connection's mailbox row follows its connection's.
	_, err = tx.Exec(ctx, `
		UPDATE mailboxes SET
			state        = COALESCE(NULLIF($2, ''), state),
			address      = COALESCE(NULLIF($3, ''), address),
			user_id      = COALESCE(NULLIF($4, ''), user_id),
			display_name = COALESCE(NULLIF($5, ''), display_name),
			settings     = COALESCE($6, settings),
			updated_at   = now()
		WHERE id = $1`, id, u.State, u.Mailbox, u.UserID, u.DisplayName, u.Settings)
	if err != nil {
		return fmt.Errorf("store: update mailbox of %s: %w", id, mailboxTaken(err, id))
	}
	return nil
}

// GetConnection reads a registry row.
func (s *Store) GetConnection(ctx context.Context, id string) (Connection, error) {
	c, err := scanConnection(s.pool.QueryRow(ctx, connectionSelect+`WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return c, fmt.Errorf("store: connection %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return c, fmt.Errorf("store: get connection %s: %w", id, err)
	}
	return c, nil
}

// TenantConnectedError refuses a second application connection of an
// organisation for a tenant: ConnectionID is the one it has.
type TenantConnectedError struct{ ConnectionID string }

func (e *TenantConnectedError) Error() string {
	return "store: the organisation has an application connection for this tenant: " + e.ConnectionID
}

// CreateApplicationConnection registers an application connection with its
// tenant and granted roles, unless the organisation has one for the tenant
// that is not disconnected (a *TenantConnectedError naming it). The look
// and the insert hold the organisation's and tenant's advisory lock, so
// two creates at once (a POST sent again while the first was still being
// checked) make one connection.
func (s *Store) CreateApplicationConnection(ctx context.Context, c Connection) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('application/' || $1 || '/' || $2, 0))`, c.OrgID, c.TenantID); err != nil {
			return fmt.Errorf("store: lock the tenant's application connection: %w", err)
		}
		var other string
		err := tx.QueryRow(ctx, `SELECT id FROM connections
			WHERE org_id = $1 AND tenant_id = $2 AND mode = 'application' AND state <> 'disconnected' AND id <> $3
			ORDER BY created_at LIMIT 1`, c.OrgID, c.TenantID, c.ID).Scan(&other)
		switch {
		case err == nil:
			return &TenantConnectedError{ConnectionID: other}
		case !errors.Is(err, pgx.ErrNoRows):
			return fmt.Errorf("store: application connection of tenant %s: %w", c.TenantID, err)
		}
		if err := insertConnection(ctx, tx, c); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE connections SET tenant_id = $2, granted_scopes = $3 WHERE id = $1`, c.ID, c.TenantID, c.GrantedScopes); err != nil {
			return fmt.Errorf("store: connection %s: %w", c.ID, err)
		}
		return nil
	})
}

// ConnectionFilter selects the connections a caller may see.
type ConnectionFilter struct {
	OrgID string
	// User sees the connections it owns, the organisation-visible ones and
	// those shared with it by name; empty (an admin key) sees every
	// connection of the organisation.
	User string
	// After is the last ID of the previous page.
	After string
	Limit int
}

// ListConnections lists connections by ID, a page at a time.
func (s *Store) ListConnections(ctx context.Context, f ConnectionFilter) ([]Connection, error) {
	rows, err := s.pool.Query(ctx, connectionSelect+`
		WHERE org_id = $1 AND `+visibleTo("connections", "$2")+` AND id > $3
		ORDER BY id LIMIT $4`, f.OrgID, f.User, f.After, f.Limit)
	if err != nil {
		return nil, fmt.Errorf("store: list connections: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Connection, error) { return scanConnection(r) })
	if err != nil {
		return nil, fmt.Errorf("store: list connections: %w", err)
	}
	return out, nil
}

// ErrTooManyConnections: the owner already has as many live connections as
// the organisation allows.
var ErrTooManyConnections = errors.New("the user already has as many connections as the organisation allows")

// CreateConnectionLimited registers a connection unless its owner already
// has max live ones; the count and the insert are one transaction, under a
// lock per owner, so two concurrent creates cannot both pass.
func (s *Store) CreateConnectionLimited(ctx context.Context, c Connection, max int) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1 || '/' || $2, 0))`, c.OrgID, c.OwnerID); err != nil {
			return fmt.Errorf("store: lock owner: %w", err)
		}
		var n int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM connections WHERE org_id = $1 AND owner_id = $2 AND state <> 'disconnected' AND id <> $3`,
			c.OrgID, c.OwnerID, c.ID).Scan(&n); err != nil {
			return fmt.Errorf("store: count connections: %w", err)
		}
		if n >= max {
			return ErrTooManyConnections
		}
		return insertConnection(ctx, tx, c)
	})
}

// Detach keeps a mailbox's mail as an archive the app can still read,
// forgetting the sync positions and subscriptions (retention "keep").
func (s *Store) Detach(ctx context.Context, mailboxID string) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := lockForDetach(ctx, tx, mailboxID); err != nil {
			return err
		}
		for _, q := range []string{`UPDATE folders SET cursor = NULL, gap_cursor = NULL WHERE mailbox_id = $1`,
			`DELETE FROM subscriptions WHERE connection_id = $1 OR mailbox_id = $1`,
			`UPDATE mailboxes SET detached_at = COALESCE(detached_at, now()) WHERE id = $1`,
			`UPDATE connections SET detached_at = COALESCE(detached_at, now()) WHERE id = $1`} {
			if _, err := tx.Exec(ctx, q, mailboxID); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: detach %s: %w", mailboxID, err)
	}
	return nil
}
