package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// MessageQuery filters and pages a connection's messages, newest first.
type MessageQuery struct {
	FolderID string
	// From matches the sender's address (case-insensitive, exact).
	From string
	// To matches any To, Cc or Bcc address (case-insensitive, exact).
	To     string
	Since  time.Time
	Unread bool
	// AfterReceived and AfterID are the position of the previous page's
	// last message.
	AfterReceived time.Time
	AfterID       string
	Limit         int
}

// ListMessages returns a page of messages, newest first (by received time,
// then ID). Bodies are not read from the table.
func (s *Store) ListMessages(ctx context.Context, connectionID string, q MessageQuery) ([]Message, error) {
	where := `connection_id = $1
		AND ($2 = '' OR folder_id = $2)
		AND ($3 = '' OR lower(from_address) = lower($3))
		AND ($4 = '' OR EXISTS (SELECT 1 FROM jsonb_array_elements(to_recipients || cc_recipients || bcc_recipients) r
		                        WHERE lower(r->>'address') = lower($4)))
		AND ($5::timestamptz IS NULL OR received_at >= $5)
		AND (NOT $6 OR NOT is_read)
		AND ($7::timestamptz IS NULL OR (COALESCE(received_at, 'epoch'), id) < ($7, $8))
		ORDER BY COALESCE(received_at, 'epoch') DESC, id DESC LIMIT $9`
	return s.queryMessages(ctx, false, where, connectionID, q.FolderID, q.From, q.To, nullTime(q.Since), q.Unread,
		nullTime(q.AfterReceived), q.AfterID, q.Limit)
}

// GetMessage reads one message with its body (when stored) and attachments.
func (s *Store) GetMessage(ctx context.Context, connectionID, id string) (Message, error) {
	msgs, err := s.queryMessages(ctx, true, `connection_id = $1 AND id = $2`, connectionID, id)
	if err != nil {
		return Message{}, err
	}
	if len(msgs) == 0 {
		return Message{}, fmt.Errorf("store: message: %w", ErrNotFound)
	}
	return msgs[0], nil
}

// CountMessagesOf counts the messages of several connections in one query
// (connections without mail are absent from the map).
func (s *Store) CountMessagesOf(ctx context.Context, ids []string) (map[string]int64, error) {
	rows, err := s.pool.Query(ctx, `SELECT connection_id, count(*) FROM messages WHERE connection_id = ANY($1) GROUP BY connection_id`, ids)
	if err != nil {
		return nil, fmt.Errorf("store: count messages: %w", err)
	}
	out := map[string]int64{}
	for rows.Next() {
		var id string
		var n int64
		if err := rows.Scan(&id, &n); err != nil {
			rows.Close()
			return nil, fmt.Errorf("store: count messages: %w", err)
		}
		out[id] = n
	}
	rows.Close()
	return out, rows.Err()
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
		SELECT e.seq, e.id, e.connection_id, e.type, e.data, e.created_at
		FROM events e JOIN connections c ON c.id = e.connection_id
		WHERE c.org_id = $1 AND ($2 = '' OR c.owner_id = $2 OR c.visibility = 'organisation') AND e.seq > $3
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
		err := r.Scan(&e.Seq, &e.ID, &e.ConnectionID, &e.Type, &data, &e.CreatedAt)
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

// Endpoint is an organisation's webhook endpoint and how its deliveries
// stand. The signing secret is in Vault.
type Endpoint struct {
	OrgID     string
	URL       string
	UpdatedAt time.Time
	Pending   int64
	Parked    int64
	Delivered int64
	LastError string
}

// PutEndpoint registers or changes an organisation's endpoint.
func (s *Store) PutEndpoint(ctx context.Context, orgID, url string) error {
	_, err := s.pool.Exec(ctx, `
		INSERT INTO webhook_endpoints (org_id, url) VALUES ($1, $2)
		ON CONFLICT (org_id) DO UPDATE SET url = EXCLUDED.url, updated_at = now()`, orgID, url)
	if err != nil {
		return fmt.Errorf("store: put endpoint: %w", err)
	}
	return nil
}

// GetEndpoint reads an organisation's endpoint with delivery counts.
func (s *Store) GetEndpoint(ctx context.Context, orgID string) (Endpoint, error) {
	var e Endpoint
	var lastErr *string
	err := s.pool.QueryRow(ctx, `
		SELECT w.org_id, w.url, w.updated_at,
			count(*) FILTER (WHERE e.delivery = 'pending'), count(*) FILTER (WHERE e.delivery = 'parked'),
			count(*) FILTER (WHERE e.delivery = 'delivered'),
			(SELECT e2.last_error FROM events e2 JOIN connections c2 ON c2.id = e2.connection_id
			 WHERE c2.org_id = w.org_id AND e2.last_error IS NOT NULL ORDER BY e2.seq DESC LIMIT 1)
		FROM webhook_endpoints w
		LEFT JOIN connections c ON c.org_id = w.org_id
		LEFT JOIN events e ON e.connection_id = c.id AND e.delivery <> 'none'
		WHERE w.org_id = $1 GROUP BY w.org_id, w.url, w.updated_at`, orgID).Scan(&e.OrgID, &e.URL, &e.UpdatedAt, &e.Pending, &e.Parked, &e.Delivered, &lastErr)
	if errors.Is(err, pgx.ErrNoRows) {
		return e, fmt.Errorf("store: endpoint: %w", ErrNotFound)
	}
	if err != nil {
		return e, fmt.Errorf("store: endpoint: %w", err)
	}
	e.LastError = deref(lastErr)
	return e, nil
}

// Delivery is an event due for delivery to its organisation's endpoint.
type Delivery struct {
	Event
	OrgID    string
	URL      string
	Attempts int
}

// ClaimDeliveries takes up to limit due events and leases them: they are
// not due again before the lease ends, so a crashed dispatcher's claims
// come back by themselves and two dispatchers never take the same event.
func (s *Store) ClaimDeliveries(ctx context.Context, limit int, lease time.Duration) ([]Delivery, error) {
	rows, err := s.pool.Query(ctx, `
		WITH due AS (
			SELECT seq FROM events WHERE delivery = 'pending' AND next_attempt_at <= now()
			ORDER BY next_attempt_at, seq LIMIT $1 FOR UPDATE SKIP LOCKED)
		UPDATE events e SET next_attempt_at = now() + $2::interval
		FROM due, connections c, webhook_endpoints w
		WHERE e.seq = due.seq AND c.id = e.connection_id AND w.org_id = c.org_id
		RETURNING e.seq, e.id, e.connection_id, e.type, e.data, e.created_at, c.org_id, w.url, e.attempts`,
		limit, lease.String())
	if err != nil {
		return nil, fmt.Errorf("store: claim deliveries: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Delivery, error) {
		var d Delivery
		var data []byte
		err := r.Scan(&d.Seq, &d.ID, &d.ConnectionID, &d.Type, &data, &d.CreatedAt, &d.OrgID, &d.URL, &d.Attempts)
		if err == nil {
			_ = json.Unmarshal(data, &d.Data)
		}
		return d, err
	})
	if err != nil {
		return nil, fmt.Errorf("store: claim deliveries: %w", err)
	}
	return out, nil
}

// DeliveryDone records a delivery's outcome: delivered, retried at next,
// or parked (given up on after its retry window).
func (s *Store) DeliveryDone(ctx context.Context, seq int64, delivered bool, errText string, next time.Time, park bool) error {
	var err error
	switch {
	case delivered:
		_, err = s.pool.Exec(ctx, `UPDATE events SET delivery = 'delivered', delivered_at = now(), attempts = attempts + 1, last_error = NULL WHERE seq = $1`, seq)
	case park:
		_, err = s.pool.Exec(ctx, `UPDATE events SET delivery = 'parked', attempts = attempts + 1, last_error = $2 WHERE seq = $1`, seq, errText)
	default:
		_, err = s.pool.Exec(ctx, `UPDATE events SET attempts = attempts + 1, last_error = $2, next_attempt_at = $3 WHERE seq = $1`, seq, errText, next)
	}
	if err != nil {
		return fmt.Errorf("store: delivery outcome: %w", err)
	}
	return nil
}

// RequeueParked puts an organisation's parked events back in the queue.
func (s *Store) RequeueParked(ctx context.Context, orgID string) (int64, error) {
	tag, err := s.pool.Exec(ctx, `
		UPDATE events e SET delivery = 'pending', next_attempt_at = now(), attempts = 0
		FROM connections c WHERE c.id = e.connection_id AND c.org_id = $1 AND e.delivery = 'parked'`, orgID)
	if err != nil {
		return 0, fmt.Errorf("store: requeue parked: %w", err)
	}
	return tag.RowsAffected(), nil
}
