package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Subscription is a Graph subscription of a connection.
type Subscription struct {
	ID              string
	ConnectionID    string
	ClientStateHash []byte
	Resource        string
	ExpiresAt       time.Time
}

// SaveSubscription records (or renews) a subscription.
func (s *Store) SaveSubscription(ctx context.Context, sub Subscription) error {
	_, err := s.pool.Exec(ctx, `
		INSERT INTO subscriptions (id, connection_id, client_state_hash, resource, expires_at)
		VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (id) DO UPDATE SET expires_at = EXCLUDED.expires_at`,
		sub.ID, sub.ConnectionID, sub.ClientStateHash, sub.Resource, sub.ExpiresAt)
	if err != nil {
		return fmt.Errorf("store: save subscription: %w", err)
	}
	return nil
}

// GetSubscription finds a subscription by Graph's ID.
func (s *Store) GetSubscription(ctx context.Context, id string) (Subscription, error) {
	var sub Subscription
	err := s.pool.QueryRow(ctx, `SELECT id, connection_id, client_state_hash, resource, expires_at FROM subscriptions WHERE id = $1`, id).
		Scan(&sub.ID, &sub.ConnectionID, &sub.ClientStateHash, &sub.Resource, &sub.ExpiresAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return sub, fmt.Errorf("store: subscription %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return sub, fmt.Errorf("store: get subscription: %w", err)
	}
	return sub, nil
}

// ListSubscriptions returns a connection's subscriptions.
func (s *Store) ListSubscriptions(ctx context.Context, connectionID string) ([]Subscription, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, connection_id, client_state_hash, resource, expires_at FROM subscriptions WHERE connection_id = $1 ORDER BY id`, connectionID)
	if err != nil {
		return nil, fmt.Errorf("store: list subscriptions: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Subscription, error) {
		var sub Subscription
		err := r.Scan(&sub.ID, &sub.ConnectionID, &sub.ClientStateHash, &sub.Resource, &sub.ExpiresAt)
		return sub, err
	})
}

// DeleteSubscription forgets a subscription.
func (s *Store) DeleteSubscription(ctx context.Context, id string) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM subscriptions WHERE id = $1`, id); err != nil {
		return fmt.Errorf("store: delete subscription: %w", err)
	}
	return nil
}

// Event is something the app is told about a connection.
type Event struct {
	Seq          int64
	ID           string
	ConnectionID string
	Type         string
	Data         map[string]any
	CreatedAt    time.Time
}

// AddEvent records an event once: a retried write with the same ID is a
// no-op.
func (s *Store) AddEvent(ctx context.Context, e Event) error {
	return addEvent(ctx, s.pool, e)
}

func addEvent(ctx context.Context, db interface {
	Exec(context.Context, string, ...any) (pgconn.CommandTag, error)
}, e Event) error {
	data, err := json.Marshal(e.Data)
	if err != nil {
		return fmt.Errorf("store: event data: %w", err)
	}
	_, err = db.Exec(ctx, `INSERT INTO events (id, connection_id, type, data) VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO NOTHING`,
		e.ID, e.ConnectionID, e.Type, data)
	if err != nil {
		return fmt.Errorf("store: add event: %w", err)
	}
	return nil
}

// Events returns a connection's events in order.
func (s *Store) Events(ctx context.Context, connectionID string) ([]Event, error) {
	rows, err := s.pool.Query(ctx, `SELECT seq, id, connection_id, type, data, created_at FROM events WHERE connection_id = $1 ORDER BY seq`, connectionID)
	if err != nil {
		return nil, fmt.Errorf("store: events: %w", err)
	}
	return collectEvents(rows)
}

// DeleteMail deletes a connection's synced mail, folders and
// subscriptions (retention "delete"); the registry row stays, detached.
func (s *Store) DeleteMail(ctx context.Context, connectionID string) (int64, error) {
	var n int64
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM messages WHERE connection_id = $1`, connectionID)
		if err != nil {
			return err
		}
		n = tag.RowsAffected()
		for _, q := range []string{`DELETE FROM folders WHERE connection_id = $1`, `DELETE FROM subscriptions WHERE connection_id = $1`,
			`UPDATE connections SET detached_at = COALESCE(detached_at, now()) WHERE id = $1`} {
			if _, err := tx.Exec(ctx, q, connectionID); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("store: delete mail of %s: %w", connectionID, err)
	}
	return n, nil
}

// Detach keeps a connection's mail as an archive the app can still read,
// forgetting the sync positions and subscriptions (retention "keep").
func (s *Store) Detach(ctx context.Context, connectionID string) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		for _, q := range []string{`UPDATE folders SET cursor = NULL, gap_cursor = NULL WHERE connection_id = $1`,
			`DELETE FROM subscriptions WHERE connection_id = $1`,
			`UPDATE connections SET detached_at = COALESCE(detached_at, now()) WHERE id = $1`} {
			if _, err := tx.Exec(ctx, q, connectionID); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: detach %s: %w", connectionID, err)
	}
	return nil
}

// DeleteMissing removes a folder's messages received since a time that a
// full re-scan did not see (used when a delta token expired), recording a
// message.deleted event for each.
func (s *Store) DeleteMissing(ctx context.Context, connectionID, folderID string, since time.Time, seen []string) (int64, error) {
	tag, err := s.pool.Exec(ctx, deleteStatement(`received_at >= $3 AND NOT (id = ANY($4))`, true),
		connectionID, folderID, since, seen)
	if err != nil {
		return 0, fmt.Errorf("store: delete missing: %w", err)
	}
	return tag.RowsAffected(), nil
}

// DropAnchors clears the delta anchors of a connection's live folders
// named by ID or well-known name ("*": all), so the next round re-anchors
// them from a full scan of the window. It returns how many it cleared.
func (s *Store) DropAnchors(ctx context.Context, connectionID string, folders []string) (int64, error) {
	tag, err := s.pool.Exec(ctx, `
		UPDATE folders SET cursor = NULL, updated_at = now()
		WHERE connection_id = $1 AND phase = 'live' AND ('*' = ANY($2) OR id = ANY($2) OR well_known = ANY($2))`,
		connectionID, folders)
	if err != nil {
		return 0, fmt.Errorf("store: drop anchors: %w", err)
	}
	return tag.RowsAffected(), nil
}
