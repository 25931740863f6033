package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Statuses of a directory user of an application connection.
const (
	DirJoining  = "joining"
	DirSyncing  = "syncing"
	DirLeaving  = "leaving"
	DirLeft     = "left"
	DirExcluded = "excluded"
)

// ReasonDetached is the reason of a user whose mailbox the app detached:
// it stays excluded, whatever the directory reports of the user later.
const ReasonDetached = "detached"

// MarkDirectoryDetached records that the app detached the mailbox of an
// application connection's user: the user is excluded with reason
// "detached" (ReasonDetached), and later pages of the directory do not
// start the mailbox again. A user not synced (leaving, left, excluded) is
// left as it is, so asking twice is harmless.
func (s *Store) MarkDirectoryDetached(ctx context.Context, connectionID, mailboxID string) error {
	if _, err := s.pool.Exec(ctx, `
		UPDATE directory_users SET status = $3, reason = $4, updated_at = now()
		WHERE connection_id = $1 AND mailbox_id = $2 AND status IN ($5, $6)`,
		connectionID, mailboxID, DirExcluded, ReasonDetached, DirJoining, DirSyncing); err != nil {
		return fmt.Errorf("store: mark the mailbox %s of %s detached: %w", mailboxID, connectionID, err)
	}
	return nil
}

// DirectoryUser is a user of an application connection's tenant as the
// connection sees it.
type DirectoryUser struct {
	ConnectionID string
	UserID       string
	Address      string
	DisplayName  string
	Shared       bool
	Status       string
	Reason       string
	MailboxID    string
	UpdatedAt    time.Time
	// Prefill is what backfilling the mailbox ahead of its workflow did
	// (JSON, nil until then).
	Prefill []byte
}

// DirectoryChange is what a round of /users/delta said of one user: it
// should be synced (Want), or not, for Reason.
type DirectoryChange struct {
	UserID      string
	Address     string
	DisplayName string
	Shared      bool
	Want        bool
	// Gone: the user left the directory (Reason says how).
	Gone   bool
	Reason string
	// NewMailboxID is the mailbox ID to use should the user join now.
	NewMailboxID string
}

// ApplyDirectoryPage records what one page of /users/delta said and the
// link to follow next, in one transaction, so the link never runs ahead
// of the users it covers. A user to sync that was not becomes joining
// (with a new mailbox ID); one synced that should no longer be becomes
// leaving; the others take their new status at once.
func (s *Store) ApplyDirectoryPage(ctx context.Context, connectionID string, changes []DirectoryChange, link string, roundDone bool) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := applyDirectoryChanges(ctx, tx, connectionID, changes); err != nil {
			return err
		}
		inc := 0
		if roundDone {
			inc = 1
		}
		if _, err := tx.Exec(ctx, `
			INSERT INTO directory_cursors (connection_id, link, rounds) VALUES ($1, $2, $3)
			ON CONFLICT (connection_id) DO UPDATE SET link = EXCLUDED.link, rounds = directory_cursors.rounds + $3, updated_at = now()`,
			connectionID, link, inc); err != nil {
			return fmt.Errorf("store: directory cursor of %s: %w", connectionID, err)
		}
		return nil
	})
}

// ApplyDirectoryChanges records what became of some users outside the
// pages of /users/delta (a change of group membership), as
// ApplyDirectoryPage does, without moving the link.
func (s *Store) ApplyDirectoryChanges(ctx context.Context, connectionID string, changes []DirectoryChange) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		return applyDirectoryChanges(ctx, tx, connectionID, changes)
	})
}

func applyDirectoryChanges(ctx context.Context, tx pgx.Tx, connectionID string, changes []DirectoryChange) error {
	for _, c := range changes {
		var status, mailboxID, was string
		err := tx.QueryRow(ctx, `SELECT status, COALESCE(mailbox_id, ''), COALESCE(reason, '') FROM directory_users WHERE connection_id = $1 AND user_id = $2 FOR UPDATE`,
			connectionID, c.UserID).Scan(&status, &mailboxID, &was)
		known := err == nil
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("store: directory user %s: %w", c.UserID, err)
		}
		next, reason := status, c.Reason
		live := status == DirJoining || status == DirSyncing
		switch {
		case c.Want && status == DirExcluded && was == ReasonDetached:
			// The app detached its mailbox: it stays out.
			reason = ReasonDetached
		case c.Want && (live || status == DirLeaving):
			// Still synced (or still being detached: it joins again
			// when the directory next reports it).
			next = status
		case c.Want:
			next, mailboxID, reason = DirJoining, c.NewMailboxID, ""
		case live:
			next = DirLeaving
		case status == DirLeaving:
		case c.Gone:
			next = DirLeft
		default:
			next = DirExcluded
		}
		if !known && c.Gone {
			continue // never seen, gone already
		}
		if _, err := tx.Exec(ctx, `
				INSERT INTO directory_users (connection_id, user_id, address, display_name, shared, status, reason, mailbox_id)
				VALUES ($1, $2, NULLIF($3, ''), NULLIF($4, ''), $5, $6, NULLIF($7, ''), NULLIF($8, ''))
				ON CONFLICT (connection_id, user_id) DO UPDATE SET
					address = COALESCE(EXCLUDED.address, directory_users.address),
					display_name = COALESCE(EXCLUDED.display_name, directory_users.display_name),
					shared = CASE WHEN $9 THEN directory_users.shared ELSE EXCLUDED.shared END,
					status = EXCLUDED.status, reason = EXCLUDED.reason, mailbox_id = EXCLUDED.mailbox_id, updated_at = now(),
					prefill = CASE WHEN EXCLUDED.mailbox_id IS NOT DISTINCT FROM directory_users.mailbox_id THEN directory_users.prefill END`,
			connectionID, c.UserID, c.Address, c.DisplayName, c.Shared, next, reason, mailboxID, c.Gone); err != nil {
			return fmt.Errorf("store: directory user %s: %w", c.UserID, err)
		}
	}
	return nil
}

// ReplaceGroupMembers records the members of the selection's groups as
// just read, and answers who came in and who went out since the last read
// (all of them, the first time).
func (s *Store) ReplaceGroupMembers(ctx context.Context, connectionID string, userIDs []string) (added, removed []string, err error) {
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		added, removed = nil, nil
		if _, err := tx.Exec(ctx, `CREATE TEMP TABLE new_members (user_id text PRIMARY KEY) ON COMMIT DROP`); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO new_members SELECT DISTINCT unnest($1::text[])`, userIDs); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `
			SELECT n.user_id, true FROM new_members n
				WHERE NOT EXISTS (SELECT 1 FROM directory_group_members g WHERE g.connection_id = $1 AND g.user_id = n.user_id)
			UNION ALL
			SELECT g.user_id, false FROM directory_group_members g
				WHERE g.connection_id = $1 AND NOT EXISTS (SELECT 1 FROM new_members n WHERE n.user_id = g.user_id)
			ORDER BY 1`, connectionID)
		if err != nil {
			return err
		}
		for rows.Next() {
			var id string
			var in bool
			if err := rows.Scan(&id, &in); err != nil {
				return err
			}
			if in {
				added = append(added, id)
			} else {
				removed = append(removed, id)
			}
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM directory_group_members g WHERE g.connection_id = $1
			AND NOT EXISTS (SELECT 1 FROM new_members n WHERE n.user_id = g.user_id)`, connectionID); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO directory_group_members (connection_id, user_id) SELECT $1, user_id FROM new_members
			ON CONFLICT DO NOTHING`, connectionID)
		return err
	})
	if err != nil {
		return nil, nil, fmt.Errorf("store: group members of %s: %w", connectionID, err)
	}
	return added, removed, nil
}

// GroupMembers says which of some users are members of the selection's
// groups, as last read.
func (s *Store) GroupMembers(ctx context.Context, connectionID string, userIDs []string) (map[string]bool, error) {
	rows, err := s.pool.Query(ctx, `SELECT user_id FROM directory_group_members WHERE connection_id = $1 AND user_id = ANY($2)`, connectionID, userIDs)
	if err != nil {
		return nil, fmt.Errorf("store: group members of %s: %w", connectionID, err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("store: group members of %s: %w", connectionID, err)
	}
	out := make(map[string]bool, len(ids))
	for _, id := range ids {
		out[id] = true
	}
	return out, nil
}

// KnownDirectoryUsers answers which of some users the directory holds, with
// their status.
func (s *Store) KnownDirectoryUsers(ctx context.Context, connectionID string, userIDs []string) (map[string]DirectoryUser, error) {
	rows, err := s.pool.Query(ctx, directorySelect+`WHERE connection_id = $1 AND user_id = ANY($2)`, connectionID, userIDs)
	if err != nil {
		return nil, fmt.Errorf("store: directory users of %s: %w", connectionID, err)
	}
	us, err := scanDirectoryUsers(rows)
	if err != nil {
		return nil, fmt.Errorf("store: directory users of %s: %w", connectionID, err)
	}
	out := make(map[string]DirectoryUser, len(us))
	for _, u := range us {
		out[u.UserID] = u
	}
	return out, nil
}

// DirectoryLink is the link the next /users/delta request follows (empty:
// start a full round) and how many rounds have completed.
func (s *Store) DirectoryLink(ctx context.Context, connectionID string) (string, int, error) {
	var link string
	var rounds int
	err := s.pool.QueryRow(ctx, `SELECT link, rounds FROM directory_cursors WHERE connection_id = $1`, connectionID).Scan(&link, &rounds)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", 0, nil
	}
	if err != nil {
		return "", 0, fmt.Errorf("store: directory cursor of %s: %w", connectionID, err)
	}
	return link, rounds, nil
}

// ResetDirectoryLink forgets the delta link (it expired): the next round
// lists every user again.
func (s *Store) ResetDirectoryLink(ctx context.Context, connectionID string) error {
	_, err := s.pool.Exec(ctx, `UPDATE directory_cursors SET link = '', updated_at = now() WHERE connection_id = $1`, connectionID)
	if err != nil {
		return fmt.Errorf("store: reset directory cursor of %s: %w", connectionID, err)
	}
	return nil
}

const directorySelect = `
	SELECT connection_id, user_id, COALESCE(address, ''), COALESCE(display_name, ''), shared, status,
		COALESCE(reason, ''), COALESCE(mailbox_id, ''), updated_at, prefill
	FROM directory_users `

func scanDirectoryUsers(rows pgx.Rows) ([]DirectoryUser, error) {
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (DirectoryUser, error) {
		var u DirectoryUser
		err := r.Scan(&u.ConnectionID, &u.UserID, &u.Address, &u.DisplayName, &u.Shared, &u.Status, &u.Reason, &u.MailboxID, &u.UpdatedAt, &u.Prefill)
		return u, err
	})
}

// PendingDirectoryUsers lists up to limit users whose change (joining or
// leaving) the workflow has yet to apply, in user ID order. With
// prefilled, a joining user is listed only once its mailbox was backfilled
// ahead of its workflow (RecordPrefill), and held counts those still
// waiting for it.
func (s *Store) PendingDirectoryUsers(ctx context.Context, connectionID string, limit int, prefilled bool) (users []DirectoryUser, held int, err error) {
	rows, err := s.pool.Query(ctx, directorySelect+`WHERE connection_id = $1 AND status IN ('joining', 'leaving')
		AND NOT ($3 AND status = 'joining' AND prefill IS NULL) ORDER BY user_id LIMIT $2`,
		connectionID, limit, prefilled)
	if err != nil {
		return nil, 0, fmt.Errorf("store: pending directory users of %s: %w", connectionID, err)
	}
	users, err = scanDirectoryUsers(rows)
	if err != nil {
		return nil, 0, fmt.Errorf("store: pending directory users of %s: %w", connectionID, err)
	}
	if prefilled {
		if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM directory_users WHERE connection_id = $1 AND status = 'joining' AND prefill IS NULL`,
			connectionID).Scan(&held); err != nil {
			return nil, 0, fmt.Errorf("store: pending directory users of %s: %w", connectionID, err)
		}
	}
	return users, held, nil
}

// PrefillCandidates lists up to limit joining users whose mailboxes have
// not been backfilled ahead of their workflows yet, in user ID order, but
// those named in skip (under way).
func (s *Store) PrefillCandidates(ctx context.Context, connectionID string, limit int, skip ...string) ([]DirectoryUser, error) {
	rows, err := s.pool.Query(ctx, directorySelect+`WHERE connection_id = $1 AND status = 'joining' AND prefill IS NULL
		AND NOT (user_id = ANY($3)) ORDER BY user_id LIMIT $2`, connectionID, limit, append([]string{}, skip...))
	if err != nil {
		return nil, fmt.Errorf("store: prefill candidates of %s: %w", connectionID, err)
	}
	out, err := scanDirectoryUsers(rows)
	if err != nil {
		return nil, fmt.Errorf("store: prefill candidates of %s: %w", connectionID, err)
	}
	return out, nil
}

// RecordPrefill records what backfilling a joining user's mailbox ahead of
// its workflow did (prefill, JSON) and, in the same transaction, the
// events it gives the app (backfill.completed), each once. It is a no-op
// when the user is no longer joining with that mailbox (a later round
// changed it): the events are not recorded either.
func (s *Store) RecordPrefill(ctx context.Context, connectionID, userID, mailboxID string, prefill []byte, events ...Event) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE directory_users SET prefill = $4, updated_at = now()
			WHERE connection_id = $1 AND user_id = $2 AND mailbox_id = $3 AND status = 'joining'`, connectionID, userID, mailboxID, prefill)
		if err != nil || tag.RowsAffected() == 0 {
			return err
		}
		for _, e := range events {
			if err := addEvent(ctx, tx, e); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: prefill of %s: %w", mailboxID, err)
	}
	return nil
}

// SetDirectoryStatus moves a user from one status to another (a no-op if
// it is no longer in from: a later round changed it).
func (s *Store) SetDirectoryStatus(ctx context.Context, connectionID, userID, from, to, reason string) error {
	_, err := s.pool.Exec(ctx, `UPDATE directory_users SET status = $4, reason = COALESCE(NULLIF($5, ''), reason), updated_at = now()
		WHERE connection_id = $1 AND user_id = $2 AND status = $3`, connectionID, userID, from, to, reason)
	if err != nil {
		return fmt.Errorf("store: directory user %s: %w", userID, err)
	}
	return nil
}

// ListDirectoryUsers lists an application connection's users, those of a
// status if given, after a user ID (paging), up to limit.
func (s *Store) ListDirectoryUsers(ctx context.Context, connectionID, status, after string, limit int) ([]DirectoryUser, error) {
	rows, err := s.pool.Query(ctx, directorySelect+`WHERE connection_id = $1 AND ($2 = '' OR status = $2) AND user_id > $3 ORDER BY user_id LIMIT $4`,
		connectionID, status, after, limit)
	if err != nil {
		return nil, fmt.Errorf("store: directory users of %s: %w", connectionID, err)
	}
	out, err := scanDirectoryUsers(rows)
	if err != nil {
		return nil, fmt.Errorf("store: directory users of %s: %w", connectionID, err)
	}
	return out, nil
}

// DirectoryProgress counts an application connection's users by status,
// and the excluded and left ones by reason.
type DirectoryProgress struct {
	Discovered int            `json:"discovered"`
	ByStatus   map[string]int `json:"by_status"`
	Excluded   map[string]int `json:"excluded_reasons"`
	Left       map[string]int `json:"left_reasons"`
	Rounds     int            `json:"directory_rounds"`
}

// DirectoryProgressOf sums an application connection's directory up.
func (s *Store) DirectoryProgressOf(ctx context.Context, connectionID string) (DirectoryProgress, error) {
	p := DirectoryProgress{ByStatus: map[string]int{}, Excluded: map[string]int{}, Left: map[string]int{}}
	rows, err := s.pool.Query(ctx, `SELECT status, COALESCE(reason, ''), count(*) FROM directory_users WHERE connection_id = $1 GROUP BY 1, 2`, connectionID)
	if err != nil {
		return p, fmt.Errorf("store: directory progress of %s: %w", connectionID, err)
	}
	defer rows.Close()
	for rows.Next() {
		var status, reason string
		var n int
		if err := rows.Scan(&status, &reason, &n); err != nil {
			return p, fmt.Errorf("store: directory progress of %s: %w", connectionID, err)
		}
		p.Discovered += n
		p.ByStatus[status] += n
		switch status {
		case DirExcluded:
			p.Excluded[reason] += n
		case DirLeft:
			p.Left[reason] += n
		}
	}
	if err := rows.Err(); err != nil {
		return p, fmt.Errorf("store: directory progress of %s: %w", connectionID, err)
	}
	_, p.Rounds, err = s.DirectoryLink(ctx, connectionID)
	return p, err
}

// CloseDirectory records every user still synced (or joining, or
// leaving) as left for a reason: the connection was disconnected.
func (s *Store) CloseDirectory(ctx context.Context, connectionID, reason string) error {
	_, err := s.pool.Exec(ctx, `UPDATE directory_users SET status = 'left', reason = $2, updated_at = now()
		WHERE connection_id = $1 AND status IN ('joining', 'syncing', 'leaving')`, connectionID, reason)
	if err != nil {
		return fmt.Errorf("store: close directory of %s: %w", connectionID, err)
	}
	return nil
}

// LiveMailboxIDs lists a connection's mailboxes not yet detached, after
// an ID (paging), up to limit.
func (s *Store) LiveMailboxIDs(ctx context.Context, connectionID, after string, limit int) ([]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT id FROM mailboxes WHERE connection_id = $1 AND id <> $1 AND state <> 'disconnected' AND id > $2 ORDER BY id LIMIT $3`,
		connectionID, after, limit)
	if err != nil {
		return nil, fmt.Errorf("store: mailboxes of %s: %w", connectionID, err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("store: mailboxes of %s: %w", connectionID, err)
	}
	return ids, nil
}
