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
