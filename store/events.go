package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Event is something the app is told about a connection.
type Event struct {
	Seq          int64
	ID           string
	ConnectionID string
	// MailboxID names the mailbox an event is about, if it is about one.
	MailboxID string
	Type      string
	Data      map[string]any
	CreatedAt time.Time
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
	_, err = db.Exec(ctx, `INSERT INTO events (id, connection_id, mailbox_id, type, data) VALUES ($1, $2, NULLIF($3, ''), $4, $5) ON CONFLICT (id) DO NOTHING`,
		e.ID, e.ConnectionID, e.MailboxID, e.Type, data)
	if err != nil {
		return fmt.Errorf("store: add event: %w", err)
	}
	return nil
}

// Events returns a connection's events in order.
func (s *Store) Events(ctx context.Context, connectionID string) ([]Event, error) {
	rows, err := s.pool.Query(ctx, `SELECT seq, id, connection_id, COALESCE(mailbox_id, ''), type, data, created_at FROM events WHERE connection_id = $1 ORDER BY seq`, connectionID)
	if err != nil {
		return nil, fmt.Errorf("store: events: %w", err)
	}
	return collectEvents(rows)
}

// FeedQuery pages an organisation's events.
type FeedQuery struct {
	OrgID string
	// User sees events of the connections visible to it; empty sees all.
	User  string
	After int64
	Limit int
}

// Feed returns events after a cursor (their sequence number), in order.
func (s *Store) Feed(ctx context.Context, q FeedQuery) ([]Event, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT e.seq, e.id, e.connection_id, COALESCE(e.mailbox_id, ''), e.type, e.data, e.created_at
		FROM events e JOIN connections c ON c.id = e.connection_id
		WHERE c.org_id = $1 AND `+visibleTo("c", "$2")+` AND e.seq > $3
		ORDER BY e.seq LIMIT $4`, q.OrgID, q.User, q.After, q.Limit)
	if err != nil {
		return nil, fmt.Errorf("store: feed: %w", err)
	}
	return collectEvents(rows)
}

func collectEvents(rows pgx.Rows) ([]Event, error) {
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Event, error) {
		var e Event
		var data []byte
		err := r.Scan(&e.Seq, &e.ID, &e.ConnectionID, &e.MailboxID, &e.Type, &data, &e.CreatedAt)
		if err == nil {
			_ = json.Unmarshal(data, &e.Data)
		}
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("store: events: %w", err)
	}
	return out, nil
}
