package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Mailbox is a registry row of a mailbox a connection syncs. A delegated
// connection's one mailbox has the connection's ID; a service account's
// attached mailboxes have their own.
type Mailbox struct {
	ID           string
	ConnectionID string
	Address      string
	UserID       string
	DisplayName  string
	State        string
	Reason       string
	SyncMode     string
	PollReason   string
	// Settings are the mailbox's settings as JSON.
	Settings []byte
	// GraphSettings are Microsoft Graph's mailboxSettings of the mailbox
	// as outlookd keeps them (JSON; nil: never read), read at
	// GraphSettingsReadAt.
	GraphSettings       []byte
	GraphSettingsReadAt *time.Time
	DetachedAt          *time.Time
	CreatedAt           time.Time
	UpdatedAt           time.Time
}

const mailboxSelect = `
		SELECT id, connection_id, COALESCE(address, ''), COALESCE(user_id, ''), COALESCE(display_name, ''), state,
			COALESCE(reason, ''), COALESCE(sync_mode, ''), COALESCE(poll_reason, ''), settings, graph_settings, graph_settings_read_at,
			detached_at, created_at, updated_at
		FROM mailboxes `

func scanMailbox(r pgx.Row) (Mailbox, error) {
	var m Mailbox
	err := r.Scan(&m.ID, &m.ConnectionID, &m.Address, &m.UserID, &m.DisplayName, &m.State, &m.Reason, &m.SyncMode,
		&m.PollReason, &m.Settings, &m.GraphSettings, &m.GraphSettingsReadAt, &m.DetachedAt, &m.CreatedAt, &m.UpdatedAt)
	return m, err
}

// mailboxTaken translates a violation of the one-live-mailbox index.
func mailboxTaken(err error, id string) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" &&
		(pgErr.ConstraintName == "mailboxes_live_address" || pgErr.ConstraintName == "connections_live_mailbox") {
		return fmt.Errorf("store: mailbox %s: %w", id, ErrMailboxTaken)
	}
	return err
}

// AttachMailbox registers a mailbox of a connection with its attached
// event, in one transaction. Attaching a mailbox ID that exists is a no-op;
// an address another live mailbox (or delegated connection) holds is
// ErrMailboxTaken; a service account's own address is no mailbox it syncs.
func (s *Store) AttachMailbox(ctx context.Context, m Mailbox) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error { return attachMailbox(ctx, tx, m) })
}

// AttachJoiningMailbox attaches a joining directory user's mailbox, as
// AttachMailbox does, only while the user is still joining with that
// mailbox ID: the check and the attach are one transaction under the
// user's row lock, so a user the directory reports leaving is either
// attached before (and then detached as any mailbox) or not at all. It
// says whether the mailbox is attached. m.UserID names the user.
func (s *Store) AttachJoiningMailbox(ctx context.Context, m Mailbox) (bool, error) {
	attached := false
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var joining bool
		err := tx.QueryRow(ctx, `SELECT status = 'joining' FROM directory_users WHERE connection_id = $1 AND user_id = $2 AND mailbox_id = $3 FOR UPDATE`,
			m.ConnectionID, m.UserID, m.ID).Scan(&joining)
		if errors.Is(err, pgx.ErrNoRows) || err == nil && !joining {
			return nil
		}
		if err != nil {
			return fmt.Errorf("store: attach mailbox %s: %w", m.ID, err)
		}
		if err := attachMailbox(ctx, tx, m); err != nil {
			return err
		}
		attached = true
		return nil
	})
	return attached, err
}

func attachMailbox(ctx context.Context, tx pgx.Tx, m Mailbox) error {
	if m.Settings == nil {
		m.Settings = []byte("{}")
	}
	if m.State == "" {
		m.State = "active"
	}
	m.Address = strings.ToLower(m.Address)
	var taken bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM connections WHERE lower(mailbox) = lower($1) AND state <> 'disconnected' AND mode <> 'service_account')`,
		m.Address).Scan(&taken); err != nil {
		return fmt.Errorf("store: attach mailbox %s: %w", m.ID, err)
	}
	if taken {
		return fmt.Errorf("store: mailbox %s: %w", m.Address, ErrMailboxTaken)
	}
	tag, err := tx.Exec(ctx, `
		INSERT INTO mailboxes (id, connection_id, address, user_id, display_name, state, settings)
		VALUES ($1, $2, $3, NULLIF($4, ''), NULLIF($5, ''), $6, $7)
		ON CONFLICT (id) DO NOTHING`, m.ID, m.ConnectionID, m.Address, m.UserID, m.DisplayName, m.State, m.Settings)
	if err != nil {
		return fmt.Errorf("store: attach mailbox %s: %w", m.ID, mailboxTaken(err, m.ID))
	}
	if tag.RowsAffected() == 0 {
		return nil
	}
	return addEvent(ctx, tx, Event{ID: m.ID + ":attached", ConnectionID: m.ConnectionID, MailboxID: m.ID, Type: "mailbox.attached",
		Data: map[string]any{"mailbox_id": m.ID, "address": m.Address}})
}

// MailboxUpdate changes a mailbox's row; empty fields are left alone.
type MailboxUpdate struct {
	State      string
	Reason     string
	SyncMode   string
	PollReason *string
	Settings   []byte
	// Events are recorded in the same transaction, each once, as the
	// mailbox's connection's.
	Events []Event
}

// UpdateMailbox applies an update and records its events.
func (s *Store) UpdateMailbox(ctx context.Context, id string, u MailboxUpdate) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var connectionID string
		err := tx.QueryRow(ctx, `
			UPDATE mailboxes SET
				state       = COALESCE(NULLIF($2, ''), state),
				reason      = CASE WHEN $2 = '' THEN reason ELSE NULLIF($3, '') END,
				sync_mode   = COALESCE(NULLIF($4, ''), sync_mode),
				poll_reason = CASE WHEN $5::text IS NULL THEN poll_reason ELSE NULLIF($5, '') END,
				settings    = COALESCE($6, settings),
				updated_at  = now()
			WHERE id = $1 RETURNING connection_id`, id, u.State, u.Reason, u.SyncMode, u.PollReason, u.Settings).Scan(&connectionID)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("store: mailbox %s: %w", id, ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("store: update mailbox %s: %w", id, mailboxTaken(err, id))
		}
		for _, e := range u.Events {
			e.ConnectionID, e.MailboxID = connectionID, id
			if err := addEvent(ctx, tx, e); err != nil {
				return err
			}
		}
		return nil
	})
}

// SetGraphSettings records a mailbox's mailboxSettings as read at a time;
// an older read never replaces a newer one.
func (s *Store) SetGraphSettings(ctx context.Context, id string, settings []byte, at time.Time) error {
	_, err := s.pool.Exec(ctx, `UPDATE mailboxes SET graph_settings = $2, graph_settings_read_at = $3
		WHERE id = $1 AND (graph_settings_read_at IS NULL OR graph_settings_read_at < $3)`, id, settings, at)
	if err != nil {
		return fmt.Errorf("store: mailbox settings of %s: %w", id, err)
	}
	return nil
}

// GetMailbox reads a mailbox's row.
func (s *Store) GetMailbox(ctx context.Context, id string) (Mailbox, error) {
	m, err := scanMailbox(s.pool.QueryRow(ctx, mailboxSelect+`WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return m, fmt.Errorf("store: mailbox %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return m, fmt.Errorf("store: get mailbox %s: %w", id, err)
	}
	return m, nil
}

// ListMailboxes lists a connection's mailboxes in the order they were
// attached.
func (s *Store) ListMailboxes(ctx context.Context, connectionID string) ([]Mailbox, error) {
	rows, err := s.pool.Query(ctx, mailboxSelect+`WHERE connection_id = $1 ORDER BY created_at, id`, connectionID)
	if err != nil {
		return nil, fmt.Errorf("store: list mailboxes: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Mailbox, error) { return scanMailbox(r) })
	if err != nil {
		return nil, fmt.Errorf("store: list mailboxes: %w", err)
	}
	return out, nil
}
