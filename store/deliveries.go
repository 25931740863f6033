package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

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
		RETURNING e.seq, e.id, e.connection_id, COALESCE(e.mailbox_id, ''), e.type, e.data, e.created_at, c.org_id, w.url, e.attempts`,
		limit, lease.String())
	if err != nil {
		return nil, fmt.Errorf("store: claim deliveries: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Delivery, error) {
		var d Delivery
		var data []byte
		err := r.Scan(&d.Seq, &d.ID, &d.ConnectionID, &d.MailboxID, &d.Type, &data, &d.CreatedAt, &d.OrgID, &d.URL, &d.Attempts)
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
