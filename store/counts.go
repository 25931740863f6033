package store

import (
	"context"
	"fmt"
)

// Count is a number of rows sharing the values of some columns (in the
// order the counting method names them; NULL is "").
type Count struct {
	Values []string
	N      int64
}

// CountSends counts the sends of every organisation by state.
func (s *Store) CountSends(ctx context.Context) ([]Count, error) {
	return s.count(ctx, "sends", `SELECT state, count(*) FROM sends GROUP BY state`, 1)
}

// CountConnections counts connections by state and mode.
func (s *Store) CountConnections(ctx context.Context) ([]Count, error) {
	return s.count(ctx, "connections", `SELECT state, mode, count(*) FROM connections GROUP BY state, mode`, 2)
}

// CountMailboxes counts mailboxes by state and sync mode ("" before live
// sync has started).
func (s *Store) CountMailboxes(ctx context.Context) ([]Count, error) {
	return s.count(ctx, "mailboxes", `SELECT state, coalesce(sync_mode, ''), count(*) FROM mailboxes GROUP BY 1, 2`, 2)
}

// CountSubscriptions counts the Graph subscriptions of active connections by
// how soon they expire: expired, under_6h, under_24h or later.
func (s *Store) CountSubscriptions(ctx context.Context) ([]Count, error) {
	return s.count(ctx, "subscriptions", `
		SELECT CASE WHEN s.expires_at <= now() THEN 'expired'
		            WHEN s.expires_at <= now() + interval '6 hours' THEN 'under_6h'
		            WHEN s.expires_at <= now() + interval '24 hours' THEN 'under_24h'
		            ELSE 'later' END, count(*)
		FROM subscriptions s JOIN connections c ON c.id = s.connection_id
		WHERE c.state = 'active' GROUP BY 1`, 1)
}

// CountDeliveries counts the deliveries, one per endpoint and event, waiting
// for their endpoint (pending) and those given up on (parked).
func (s *Store) CountDeliveries(ctx context.Context) ([]Count, error) {
	return s.count(ctx, "deliveries", `SELECT state, count(*) FROM webhook_deliveries WHERE state IN ('pending', 'parked') GROUP BY 1`, 1)
}

// CountInbox counts the notifications waiting in the inbox (one row, no
// values).
func (s *Store) CountInbox(ctx context.Context) ([]Count, error) {
	return s.count(ctx, "inbox", `SELECT count(*) FROM notification_inbox`, 0)
}

// InboxAge is how long, in whole seconds, the oldest notification in the
// inbox has waited (one row, no values; 0 when the inbox is empty).
func (s *Store) InboxAge(ctx context.Context) ([]Count, error) {
	return s.count(ctx, "inbox age", `SELECT coalesce(floor(extract(epoch FROM now() - min(received_at))), 0)::bigint FROM notification_inbox`, 0)
}

func (s *Store) count(ctx context.Context, what, query string, columns int) ([]Count, error) {
	rows, err := s.pool.Query(ctx, query)
	if err != nil {
		return nil, fmt.Errorf("store: count %s: %w", what, err)
	}
	defer rows.Close()
	var out []Count
	for rows.Next() {
		c := Count{Values: make([]string, columns)}
		dest := make([]any, 0, columns+1)
		for i := range c.Values {
			dest = append(dest, &c.Values[i])
		}
		if err := rows.Scan(append(dest, &c.N)...); err != nil {
			return nil, fmt.Errorf("store: count %s: %w", what, err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: count %s: %w", what, err)
	}
	return out, nil
}
