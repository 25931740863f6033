package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Folder is a synced mail folder with its sync position.
type Folder struct {
	ID          string
	ParentID    string
	DisplayName string
	WellKnown   string
	Phase       string // backfill or live
	Cursor      string // the next page (backfill) or the delta link (live)
	WindowStart time.Time
	Synced      int64
	// GapCursor is the next page of a window-widening backfill.
	GapCursor string
}

// Phases of a folder.
const (
	PhaseBackfill = "backfill"
	PhaseLive     = "live"
)

// UpsertFolders records folders; the sync position of a known folder is
// kept, and a new one starts its backfill at windowStart.
func (s *Store) UpsertFolders(ctx context.Context, mailboxID string, folders []Folder, windowStart time.Time) error {
	batch := &pgx.Batch{}
	for _, f := range folders {
		batch.Queue(`
			INSERT INTO folders (mailbox_id, id, parent_id, display_name, well_known, window_start)
			VALUES ($1, $2, NULLIF($3, ''), $4, NULLIF($5, ''), $6)
			ON CONFLICT (mailbox_id, id) DO UPDATE SET
				parent_id = EXCLUDED.parent_id, display_name = EXCLUDED.display_name,
				well_known = EXCLUDED.well_known, updated_at = now()`,
			mailboxID, f.ID, f.ParentID, f.DisplayName, f.WellKnown, windowStart)
	}
	if err := s.pool.SendBatch(ctx, batch).Close(); err != nil {
		return fmt.Errorf("store: upsert folders of %s: %w", mailboxID, err)
	}
	return nil
}

// GetFolder reads a folder and its sync position.
func (s *Store) GetFolder(ctx context.Context, mailboxID, folderID string) (Folder, error) {
	var f Folder
	var parent, wk, cursor *string
	err := s.pool.QueryRow(ctx, `
		SELECT id, parent_id, display_name, well_known, phase, cursor, window_start, synced, COALESCE(gap_cursor, '')
		FROM folders WHERE mailbox_id = $1 AND id = $2`, mailboxID, folderID).
		Scan(&f.ID, &parent, &f.DisplayName, &wk, &f.Phase, &cursor, &f.WindowStart, &f.Synced, &f.GapCursor)
	if errors.Is(err, pgx.ErrNoRows) {
		return f, fmt.Errorf("store: folder %s of %s: %w", folderID, mailboxID, ErrNotFound)
	}
	if err != nil {
		return f, fmt.Errorf("store: get folder: %w", err)
	}
	f.ParentID, f.WellKnown, f.Cursor = deref(parent), deref(wk), deref(cursor)
	return f, nil
}

// ListFolders returns a mailbox's folders.
func (s *Store) ListFolders(ctx context.Context, mailboxID string) ([]Folder, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT id, COALESCE(parent_id, ''), display_name, COALESCE(well_known, ''), phase, COALESCE(cursor, ''), window_start, synced
		FROM folders WHERE mailbox_id = $1 ORDER BY display_name, id`, mailboxID)
	if err != nil {
		return nil, fmt.Errorf("store: list folders: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Folder, error) {
		var f Folder
		err := r.Scan(&f.ID, &f.ParentID, &f.DisplayName, &f.WellKnown, &f.Phase, &f.Cursor, &f.WindowStart, &f.Synced)
		return f, err
	})
	if err != nil {
		return nil, fmt.Errorf("store: list folders: %w", err)
	}
	return out, nil
}

// DropAnchors clears the delta anchors of a mailbox's live folders
// named by ID or well-known name ("*": all), so the next round re-anchors
// them from a full scan of the window. It returns how many it cleared.
func (s *Store) DropAnchors(ctx context.Context, mailboxID string, folders []string) (int64, error) {
	tag, err := s.pool.Exec(ctx, `
		UPDATE folders SET cursor = NULL, updated_at = now()
		WHERE mailbox_id = $1 AND phase = 'live' AND ('*' = ANY($2) OR id = ANY($2) OR well_known = ANY($2))`,
		mailboxID, folders)
	if err != nil {
		return 0, fmt.Errorf("store: drop anchors: %w", err)
	}
	return tag.RowsAffected(), nil
}

// RemoveFolder forgets a folder deleted at Microsoft: its messages still
// filed there are deleted (each with a message.deleted event) and the
// folder's row with its sync position, in one transaction. It answers how
// many messages went.
func (s *Store) RemoveFolder(ctx context.Context, mailboxID, folderID string) (int64, error) {
	var n int64
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		n, err = removeFolder(ctx, tx, mailboxID, folderID)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("store: remove folder %s of %s: %w", folderID, mailboxID, err)
	}
	return n, nil
}

// PruneFolders removes the folders of a mailbox that are not in keep
// (the folders the settings name, as just discovered), with their messages
// and a message.deleted event for each. It answers how many folders went.
func (s *Store) PruneFolders(ctx context.Context, mailboxID string, keep []string) (int, error) {
	var n int
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT id FROM folders WHERE mailbox_id = $1 AND NOT (id = ANY($2))`, mailboxID, keep)
		if err != nil {
			return err
		}
		gone, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		for _, id := range gone {
			if _, err := removeFolder(ctx, tx, mailboxID, id); err != nil {
				return err
			}
		}
		n = len(gone)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("store: prune folders of %s: %w", mailboxID, err)
	}
	return n, nil
}

func removeFolder(ctx context.Context, tx pgx.Tx, mailboxID, folderID string) (int64, error) {
	tag, err := tx.Exec(ctx, deleteStatement(`TRUE`, true), mailboxID, folderID)
	if err != nil {
		return 0, err
	}
	if _, err := tx.Exec(ctx, `DELETE FROM folders WHERE mailbox_id = $1 AND id = $2`, mailboxID, folderID); err != nil {
		return 0, err
	}
	return tag.RowsAffected(), nil
}
