package store

import (
	"context"
	"fmt"
)

// CountSendsByState counts the sends of every organisation by state, for
// the metrics.
func (s *Store) CountSendsByState(ctx context.Context) (map[string]int64, error) {
	rows, err := s.pool.Query(ctx, `SELECT state, count(*) FROM sends GROUP BY state`)
	if err != nil {
		return nil, fmt.Errorf("store: count sends: %w", err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var state string
		var n int64
		if err := rows.Scan(&state, &n); err != nil {
			return nil, fmt.Errorf("store: count sends: %w", err)
		}
		out[state] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: count sends: %w", err)
	}
	return out, nil
}
