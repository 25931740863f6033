package store

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"
)

// VisibilityChange is who is to see a connection from now on, and what is
// recorded of the change.
type VisibilityChange struct {
	// Visibility is owner, organisation or users.
	Visibility string
	// Users are the app users it is shared with (visibility users only),
	// sorted bytewise (as Go sorts strings, and SharedWith is read),
	// without repeats.
	Users []string
	// By is the app user who changed it ("" for an admin key without one).
	By string
	// EventID names the connection.visibility_changed event the change
	// records.
	EventID string
}

// SetVisibility changes who sees a connection: its visibility and the
// users it is shared with are replaced, and a connection.visibility_changed
// event is recorded, in one transaction under the row's lock. A change to
// what already holds changes nothing and records no event (false).
func (s *Store) SetVisibility(ctx context.Context, id string, v VisibilityChange) (Connection, bool, error) {
	var row Connection
	changed := false
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		row, err = scanConnection(tx.QueryRow(ctx, connectionSelect+`WHERE id = $1 FOR UPDATE`, id))
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("store: connection %s: %w", id, ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("store: lock connection %s: %w", id, err)
		}
		users := v.Users
		if v.Visibility != VisibilityUsers {
			users = nil
		}
		if row.Visibility == v.Visibility && slices.Equal(row.SharedWith, users) {
			return nil
		}
		previous, previousUsers := row.Visibility, row.SharedWith
		if _, err := tx.Exec(ctx, `UPDATE connections SET visibility = $2, updated_at = now() WHERE id = $1`, id, v.Visibility); err != nil {
			return fmt.Errorf("store: set visibility of %s: %w", id, err)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM connection_shares WHERE connection_id = $1`, id); err != nil {
			return fmt.Errorf("store: unshare %s: %w", id, err)
		}
		if len(users) > 0 {
			if _, err := tx.Exec(ctx, `INSERT INTO connection_shares (connection_id, user_id) SELECT $1, unnest($2::text[])`, id, users); err != nil {
				return fmt.Errorf("store: share %s: %w", id, err)
			}
		}
		if users == nil {
			users = []string{}
		}
		if previousUsers == nil {
			previousUsers = []string{}
		}
		data := map[string]any{"visibility": v.Visibility, "users": users,
			"previous": map[string]any{"visibility": previous, "users": previousUsers}}
		if v.By != "" {
			data["by"] = v.By
		}
		if err := addEvent(ctx, tx, Event{ID: v.EventID, ConnectionID: id, Type: "connection.visibility_changed", Data: data}); err != nil {
			return err
		}
		row, err = scanConnection(tx.QueryRow(ctx, connectionSelect+`WHERE id = $1`, id))
		if err != nil {
			return fmt.Errorf("store: read connection %s: %w", id, err)
		}
		changed = true
		return nil
	})
	return row, changed, err
}
