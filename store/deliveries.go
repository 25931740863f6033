package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Endpoint is one of an organisation's webhook endpoints, the event types
// it takes and how its deliveries stand. Its signing secret is in Vault.
type Endpoint struct {
	ID    string
	OrgID string
	URL   string
	// Events are the patterns of the event types it takes: a type
	// ("send.sent"), a family ("send.*") or every type ("*").
	Events      []string
	Description string
	// OrgSecret: it signs with its organisation's secret (the one endpoint
	// an organisation had before endpoints were many) until its secret is
	// rotated; otherwise it has its own.
	OrgSecret bool
	// FeedCursor is the newest event of the organisation when the endpoint
	// was made: the events up to it are in the pull feed, not delivered.
	FeedCursor int64
	CreatedAt  time.Time
	UpdatedAt  time.Time
	Pending    int64
	Parked     int64
	Delivered  int64
	LastError  string
}

// ErrTooManyEndpoints: the organisation has as many endpoints as it may.
var ErrTooManyEndpoints = errors.New("the organisation has as many webhook endpoints as it may")

// endpointSelect reads an endpoint with its delivery counts and its
// latest failure.
const endpointSelect = `
	SELECT w.id, w.org_id, w.url, w.events, w.description, w.org_secret, w.feed_cursor, w.created_at, w.updated_at,
		(SELECT count(*) FROM webhook_deliveries d WHERE d.endpoint_id = w.id AND d.state = 'pending'),
		(SELECT count(*) FROM webhook_deliveries d WHERE d.endpoint_id = w.id AND d.state = 'parked'),
		(SELECT count(*) FROM webhook_deliveries d WHERE d.endpoint_id = w.id AND d.state = 'delivered'),
		(SELECT d.last_error FROM webhook_deliveries d WHERE d.endpoint_id = w.id AND d.last_error IS NOT NULL
		 ORDER BY d.event_seq DESC LIMIT 1)
	FROM webhook_endpoints w `

func scanEndpoint(r pgx.Row) (Endpoint, error) {
	var e Endpoint
	var lastErr *string
	err := r.Scan(&e.ID, &e.OrgID, &e.URL, &e.Events, &e.Description, &e.OrgSecret, &e.FeedCursor, &e.CreatedAt, &e.UpdatedAt,
		&e.Pending, &e.Parked, &e.Delivered, &lastErr)
	e.LastError = deref(lastErr)
	return e, err
}

// CreateEndpoint registers an endpoint unless its organisation already has
// max (0: no limit); the count and the insert are one transaction under a
// lock per organisation. The endpoint takes the events recorded after it;
// its FeedCursor says where the feed stood.
func (s *Store) CreateEndpoint(ctx context.Context, e Endpoint, max int) (Endpoint, error) {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('webhook_endpoints/' || $1, 0))`, e.OrgID); err != nil {
			return fmt.Errorf("store: lock endpoints: %w", err)
		}
		var n int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM webhook_endpoints WHERE org_id = $1`, e.OrgID).Scan(&n); err != nil {
			return fmt.Errorf("store: count endpoints: %w", err)
		}
		if max > 0 && n >= max {
			return ErrTooManyEndpoints
		}
		_, err := tx.Exec(ctx, `
			INSERT INTO webhook_endpoints (id, org_id, url, events, description, org_secret, feed_cursor)
			VALUES ($1, $2, $3, $4, $5, $6, (SELECT COALESCE(max(e.seq), 0) FROM events e JOIN connections c ON c.id = e.connection_id WHERE c.org_id = $2))`,
			e.ID, e.OrgID, e.URL, e.Events, e.Description, e.OrgSecret)
		if err != nil {
			return fmt.Errorf("store: create endpoint: %w", err)
		}
		return nil
	})
	if err != nil {
		return Endpoint{}, err
	}
	return s.GetEndpoint(ctx, e.OrgID, e.ID)
}

// EndpointChange changes an endpoint; nil fields are left alone.
type EndpointChange struct {
	URL         *string
	Events      []string
	Description *string
	// OwnSecret: the endpoint signs with its own secret from now on.
	OwnSecret bool
}

// UpdateEndpoint changes one of an organisation's endpoints.
func (s *Store) UpdateEndpoint(ctx context.Context, orgID, id string, c EndpointChange) error {
	tag, err := s.pool.Exec(ctx, `
		UPDATE webhook_endpoints SET
			url         = COALESCE($3, url),
			events      = COALESCE($4, events),
			description = COALESCE($5, description),
			org_secret  = org_secret AND NOT $6,
			updated_at  = now()
		WHERE org_id = $1 AND id = $2`, orgID, id, c.URL, c.Events, c.Description, c.OwnSecret)
	if err != nil {
		return fmt.Errorf("store: update endpoint %s: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("store: endpoint %s: %w", id, ErrNotFound)
	}
	return nil
}

// DeleteEndpoint removes one of an organisation's endpoints and its
// deliveries, pending ones included; the events stay in the feed.
func (s *Store) DeleteEndpoint(ctx context.Context, orgID, id string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM webhook_endpoints WHERE org_id = $1 AND id = $2`, orgID, id)
	if err != nil {
		return fmt.Errorf("store: delete endpoint %s: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("store: endpoint %s: %w", id, ErrNotFound)
	}
	return nil
}

// GetEndpoint reads one of an organisation's endpoints with its delivery
// counts.
func (s *Store) GetEndpoint(ctx context.Context, orgID, id string) (Endpoint, error) {
	e, err := scanEndpoint(s.pool.QueryRow(ctx, endpointSelect+`WHERE w.org_id = $1 AND w.id = $2`, orgID, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return e, fmt.Errorf("store: endpoint %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return e, fmt.Errorf("store: endpoint %s: %w", id, err)
	}
	return e, nil
}

// ListEndpoints reads an organisation's endpoints, oldest first.
func (s *Store) ListEndpoints(ctx context.Context, orgID string) ([]Endpoint, error) {
	rows, err := s.pool.Query(ctx, endpointSelect+`WHERE w.org_id = $1 ORDER BY w.created_at, w.id`, orgID)
	if err != nil {
		return nil, fmt.Errorf("store: list endpoints: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Endpoint, error) { return scanEndpoint(r) })
	if err != nil {
		return nil, fmt.Errorf("store: list endpoints: %w", err)
	}
	return out, nil
}

// Delivery is an event due for delivery to one endpoint.
type Delivery struct {
	Event
	EndpointID string
	OrgID      string
	URL        string
	// OrgSecret: sign with the organisation's secret, not the endpoint's.
	OrgSecret bool
	Attempts  int
}

// ClaimDeliveries takes up to limit due deliveries and leases them: they
// are not due again before the lease ends, so a crashed dispatcher's
// claims come back by themselves and two dispatchers never take the same
// delivery. Each endpoint's deliveries are their own rows: one endpoint
// failing delays none of another's.
func (s *Store) ClaimDeliveries(ctx context.Context, limit int, lease time.Duration) ([]Delivery, error) {
	rows, err := s.pool.Query(ctx, `
		WITH due AS (
			SELECT endpoint_id, event_seq FROM webhook_deliveries WHERE state = 'pending' AND next_attempt_at <= now()
			ORDER BY next_attempt_at, event_seq LIMIT $1 FOR UPDATE SKIP LOCKED)
		UPDATE webhook_deliveries d SET next_attempt_at = now() + $2::interval
		FROM due, events e, webhook_endpoints w
		WHERE d.endpoint_id = due.endpoint_id AND d.event_seq = due.event_seq AND e.seq = d.event_seq AND w.id = d.endpoint_id
		RETURNING e.seq, e.id, e.connection_id, COALESCE(e.mailbox_id, ''), e.type, e.data, e.created_at,
			w.id, w.org_id, w.url, w.org_secret, d.attempts`,
		limit, lease.String())
	if err != nil {
		return nil, fmt.Errorf("store: claim deliveries: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Delivery, error) {
		var d Delivery
		var data []byte
		err := r.Scan(&d.Seq, &d.ID, &d.ConnectionID, &d.MailboxID, &d.Type, &data, &d.CreatedAt,
			&d.EndpointID, &d.OrgID, &d.URL, &d.OrgSecret, &d.Attempts)
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
func (s *Store) DeliveryDone(ctx context.Context, endpointID string, seq int64, delivered bool, errText string, next time.Time, park bool) error {
	var err error
	switch {
	case delivered:
		_, err = s.pool.Exec(ctx, `UPDATE webhook_deliveries SET state = 'delivered', delivered_at = now(), attempts = attempts + 1, last_error = NULL
			WHERE endpoint_id = $1 AND event_seq = $2`, endpointID, seq)
	case park:
		_, err = s.pool.Exec(ctx, `UPDATE webhook_deliveries SET state = 'parked', attempts = attempts + 1, last_error = $3
			WHERE endpoint_id = $1 AND event_seq = $2`, endpointID, seq, errText)
	default:
		_, err = s.pool.Exec(ctx, `UPDATE webhook_deliveries SET attempts = attempts + 1, last_error = $3, next_attempt_at = $4
			WHERE endpoint_id = $1 AND event_seq = $2`, endpointID, seq, errText, next)
	}
	if err != nil {
		return fmt.Errorf("store: delivery outcome: %w", err)
	}
	return nil
}

// RequeueParked puts an endpoint's parked deliveries back in its queue.
func (s *Store) RequeueParked(ctx context.Context, orgID, endpointID string) (int64, error) {
	tag, err := s.pool.Exec(ctx, `
		UPDATE webhook_deliveries d SET state = 'pending', next_attempt_at = now(), attempts = 0
		FROM webhook_endpoints w WHERE w.id = d.endpoint_id AND w.org_id = $1 AND w.id = $2 AND d.state = 'parked'`, orgID, endpointID)
	if err != nil {
		return 0, fmt.Errorf("store: requeue parked: %w", err)
	}
	return tag.RowsAffected(), nil
}

// TestEventType is the type of the event a test delivery carries.
const TestEventType = "test"

// QueueTest records a test event (about no connection, so never in the
// feed) and queues it for one endpoint only, in one transaction; the
// dispatcher signs and delivers it like any other. eventID names it.
func (s *Store) QueueTest(ctx context.Context, orgID, endpointID, eventID string, data map[string]any) (Event, error) {
	var ev Event
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var found string
		err := tx.QueryRow(ctx, `SELECT id FROM webhook_endpoints WHERE org_id = $1 AND id = $2 FOR SHARE`, orgID, endpointID).Scan(&found)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("store: endpoint %s: %w", endpointID, ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("store: endpoint %s: %w", endpointID, err)
		}
		raw, err := json.Marshal(data)
		if err != nil {
			return fmt.Errorf("store: event data: %w", err)
		}
		err = tx.QueryRow(ctx, `INSERT INTO events (id, connection_id, type, data) VALUES ($1, '', $2, $3) RETURNING seq, created_at`,
			eventID, TestEventType, raw).Scan(&ev.Seq, &ev.CreatedAt)
		if err != nil {
			return fmt.Errorf("store: add test event: %w", err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO webhook_deliveries (endpoint_id, event_seq) VALUES ($1, $2)`, endpointID, ev.Seq); err != nil {
			return fmt.Errorf("store: queue test event: %w", err)
		}
		return nil
	})
	ev.ID, ev.Type, ev.Data = eventID, TestEventType, data
	return ev, err
}

// DeliveryState is how one delivery to an endpoint stands.
type DeliveryState struct {
	State       string
	Attempts    int
	LastError   string
	DeliveredAt *time.Time
}

// GetDelivery reads how the delivery of an event (by its ID) to one of an
// organisation's endpoints stands.
func (s *Store) GetDelivery(ctx context.Context, orgID, endpointID, eventID string) (DeliveryState, error) {
	var d DeliveryState
	var lastErr *string
	err := s.pool.QueryRow(ctx, `
		SELECT d.state, d.attempts, d.last_error, d.delivered_at
		FROM webhook_deliveries d JOIN webhook_endpoints w ON w.id = d.endpoint_id JOIN events e ON e.seq = d.event_seq
		WHERE w.org_id = $1 AND w.id = $2 AND e.id = $3`, orgID, endpointID, eventID).Scan(&d.State, &d.Attempts, &lastErr, &d.DeliveredAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return d, fmt.Errorf("store: delivery of %s to %s: %w", eventID, endpointID, ErrNotFound)
	}
	if err != nil {
		return d, fmt.Errorf("store: delivery of %s to %s: %w", eventID, endpointID, err)
	}
	d.LastError = deref(lastErr)
	return d, nil
}
