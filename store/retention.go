package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// ExpiredMail is a detached mailbox whose kept mail was deleted at the end
// of its keep period.
type ExpiredMail struct {
	MailboxID    string
	ConnectionID string
	Deleted      int64
}

// PurgeExpiredMail deletes the kept mail of up to limit detached mailboxes
// (disconnected connections' and detached attached mailboxes') whose keep
// period (the settings' keepDays, counted from the detach) has ended: each
// in its own transaction, with its folders, and a mailbox.mail_expired
// event for the app. Mailboxes kept without a period are left alone.
func (s *Store) PurgeExpiredMail(ctx context.Context, now time.Time, limit int) ([]ExpiredMail, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT m.id, m.connection_id FROM mailboxes m
		WHERE m.detached_at IS NOT NULL AND COALESCE((m.settings->>'keepDays')::int, 0) > 0
		  AND m.detached_at + make_interval(days => (m.settings->>'keepDays')::int) <= $1
		  AND (EXISTS (SELECT 1 FROM messages WHERE mailbox_id = m.id) OR EXISTS (SELECT 1 FROM folders WHERE mailbox_id = m.id))
		ORDER BY m.detached_at LIMIT $2`, now, limit)
	if err != nil {
		return nil, fmt.Errorf("store: expired mail: %w", err)
	}
	due, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (ExpiredMail, error) {
		var e ExpiredMail
		err := r.Scan(&e.MailboxID, &e.ConnectionID)
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("store: expired mail: %w", err)
	}
	out := due[:0]
	for _, e := range due {
		err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			if err := lockForDetach(ctx, tx, e.MailboxID); err != nil {
				return err
			}
			tag, err := tx.Exec(ctx, `DELETE FROM messages WHERE mailbox_id = $1`, e.MailboxID)
			if err != nil {
				return err
			}
			e.Deleted = tag.RowsAffected()
			if _, err := tx.Exec(ctx, `DELETE FROM folders WHERE mailbox_id = $1`, e.MailboxID); err != nil {
				return err
			}
			return addEvent(ctx, tx, Event{ID: e.MailboxID + ":mail_expired", ConnectionID: e.ConnectionID, MailboxID: e.MailboxID,
				Type: "mailbox.mail_expired", Data: map[string]any{"mailbox_id": e.MailboxID, "deleted": e.Deleted}})
		})
		if err != nil {
			return out, fmt.Errorf("store: delete expired mail of %s: %w", e.MailboxID, err)
		}
		out = append(out, e)
	}
	return out, nil
}
