package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/jackc/pgx/v5"
)

// Upload is a file an app sends in byte ranges, to attach to a send by
// its ID (docs/sending.md#large-attachments).
type Upload struct {
	ID           string
	ConnectionID string
	// MailboxID is the attached mailbox it was made for; empty for the
	// connection's own.
	MailboxID   string
	Name        string
	ContentType string
	Size        int64
	// Received counts the bytes in, from the first without a gap.
	Received int64
	// SendID is the send it was attached to, once it was.
	SendID      string
	CreatedAt   time.Time
	ExpiresAt   time.Time
	CompletedAt *time.Time
}

// Complete says whether every byte is in.
func (u Upload) Complete() bool { return u.Received == u.Size }

// Errors of an upload's ranges and of its use in a send.
var (
	// ErrRangeOverlaps: a range overlaps bytes already in without being
	// one of the ranges PUT before, byte for byte.
	ErrRangeOverlaps = errors.New("store: the range overlaps bytes already uploaded")
	// ErrUploadInUse: the upload is attached to a send (which still needs
	// it), or to another send than the one asking.
	ErrUploadInUse = errors.New("store: the upload is attached to a send")
	// ErrUploadIncomplete: a send named an upload whose bytes are not all
	// in.
	ErrUploadIncomplete = errors.New("store: the upload is not complete")
)

// RangeNotExpectedError is a range that does not start where the upload
// expects its next byte.
type RangeNotExpectedError struct{ Next int64 }

func (e *RangeNotExpectedError) Error() string {
	return fmt.Sprintf("store: the range does not start at the next expected byte %d", e.Next)
}

const uploadSelect = `
	SELECT id, connection_id, COALESCE(mailbox_id, ''), name, content_type, size, received, COALESCE(send_id, ''),
		created_at, expires_at, completed_at
	FROM uploads `

func scanUpload(r pgx.Row) (Upload, error) {
	var u Upload
	err := r.Scan(&u.ID, &u.ConnectionID, &u.MailboxID, &u.Name, &u.ContentType, &u.Size, &u.Received, &u.SendID,
		&u.CreatedAt, &u.ExpiresAt, &u.CompletedAt)
	return u, err
}

// ErrUploadQuota: the connection already holds as many open uploads, or
// as many bytes in them, as its quota allows.
var ErrUploadQuota = errors.New("store: the connection's open uploads are at their quota")

// UploadQuota bounds a connection's open uploads, those neither expired nor
// taken by a send: how many, and their sizes together. Zero leaves a bound
// off.
type UploadQuota struct {
	Count int
	Bytes int64
}

// CreateUpload records a new upload, nothing in yet; ExpiresAt must be
// set. One that would take the connection past its quota is refused
// (ErrUploadQuota); creations on one connection are checked one at a time,
// so two at once cannot both pass.
func (s *Store) CreateUpload(ctx context.Context, u Upload, q UploadQuota) (Upload, error) {
	var out Upload
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if q.Count > 0 || q.Bytes > 0 {
			if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('uploads:' || $1::text))`, u.ConnectionID); err != nil {
				return err
			}
			var n int
			var bytes int64
			if err := tx.QueryRow(ctx, `SELECT count(*), COALESCE(sum(size), 0)::bigint FROM uploads
				WHERE connection_id = $1 AND send_id IS NULL AND expires_at > now()`, u.ConnectionID).Scan(&n, &bytes); err != nil {
				return err
			}
			if (q.Count > 0 && n >= q.Count) || (q.Bytes > 0 && bytes+u.Size > q.Bytes) {
				return ErrUploadQuota
			}
		}
		var err error
		out, err = scanUpload(tx.QueryRow(ctx, `
			INSERT INTO uploads (id, connection_id, mailbox_id, name, content_type, size, expires_at)
			VALUES ($1, $2, NULLIF($3, ''), $4, $5, $6, $7)
			RETURNING id, connection_id, COALESCE(mailbox_id, ''), name, content_type, size, received, COALESCE(send_id, ''),
				created_at, expires_at, completed_at`,
			u.ID, u.ConnectionID, u.MailboxID, u.Name, u.ContentType, u.Size, u.ExpiresAt))
		return err
	})
	if errors.Is(err, ErrUploadQuota) {
		return Upload{}, err
	}
	if err != nil {
		return Upload{}, fmt.Errorf("store: create upload %s: %w", u.ID, err)
	}
	return out, nil
}

// GetUpload reads an upload of a connection; one expired is ErrNotFound
// (unless a send not yet final holds it: its bytes stay until then).
func (s *Store) GetUpload(ctx context.Context, connectionID, id string) (Upload, error) {
	out, err := scanUpload(s.pool.QueryRow(ctx, uploadSelect+`WHERE connection_id = $1 AND id = $2 AND `+uploadLive, connectionID, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return Upload{}, fmt.Errorf("store: upload %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Upload{}, fmt.Errorf("store: upload %s: %w", id, err)
	}
	return out, nil
}

// uploadLive is the condition of an upload not expired, or held by a
// send that is not final.
const uploadLive = `(expires_at > now() OR EXISTS (SELECT 1 FROM sends s WHERE s.id = uploads.send_id AND s.state NOT IN ('sent', 'failed', 'canceled')))`

// PutUploadRange stores the range of an upload that starts at start. The
// range must start at the next expected byte (*RangeNotExpectedError
// otherwise, with that byte); a range PUT before, byte for byte, is taken
// again as a no-op (a retry whose answer was lost); one overlapping bytes
// in otherwise is ErrRangeOverlaps. The caller checks that the range ends
// within the upload's size. Answers the upload as it stands after.
func (s *Store) PutUploadRange(ctx context.Context, connectionID, id string, start int64, data []byte) (out Upload, err error) {
	sum := sha256.Sum256(data)
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		out, err = scanUpload(tx.QueryRow(ctx, uploadSelect+`WHERE connection_id = $1 AND id = $2 AND `+uploadLive+` FOR UPDATE`, connectionID, id))
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("store: upload %s: %w", id, ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("store: upload %s: %w", id, err)
		}
		end := start + int64(len(data))
		switch {
		case start == out.Received && end <= out.Size && len(data) > 0:
		case start < out.Received:
			var have []byte
			err := tx.QueryRow(ctx, `SELECT sha256 FROM upload_chunks WHERE upload_id = $1 AND start = $2 AND length(data) = $3`, id, start, len(data)).Scan(&have)
			if errors.Is(err, pgx.ErrNoRows) || (err == nil && !bytes.Equal(have, sum[:])) {
				return fmt.Errorf("store: upload %s: range %d-%d: %w", id, start, end-1, ErrRangeOverlaps)
			}
			if err != nil {
				return fmt.Errorf("store: upload %s: %w", id, err)
			}
			return nil // the same range again
		default:
			return &RangeNotExpectedError{Next: out.Received}
		}
		if _, err := tx.Exec(ctx, `INSERT INTO upload_chunks (upload_id, start, data, sha256) VALUES ($1, $2, $3, $4)`, id, start, data, sum[:]); err != nil {
			return fmt.Errorf("store: upload %s: range at %d: %w", id, start, err)
		}
		out, err = scanUpload(tx.QueryRow(ctx, `
			UPDATE uploads SET received = $2, completed_at = CASE WHEN $2 = size THEN now() END
			WHERE id = $1
			RETURNING id, connection_id, COALESCE(mailbox_id, ''), name, content_type, size, received, COALESCE(send_id, ''),
				created_at, expires_at, completed_at`, id, end))
		if err != nil {
			return fmt.Errorf("store: upload %s: %w", id, err)
		}
		return nil
	})
	return out, err
}

// DeleteUpload cancels an upload and deletes its bytes; ErrUploadInUse
// while a send that is not final holds it, ErrNotFound when there is no
// such upload.
func (s *Store) DeleteUpload(ctx context.Context, connectionID, id string) error {
	var held, exists bool
	err := s.pool.QueryRow(ctx, `
		WITH u AS (SELECT id, send_id FROM uploads WHERE connection_id = $1 AND id = $2),
		held AS (SELECT EXISTS (SELECT 1 FROM u JOIN sends s ON s.id = u.send_id WHERE s.state NOT IN ('sent', 'failed', 'canceled')) AS held),
		del AS (DELETE FROM uploads WHERE id IN (SELECT id FROM u) AND NOT (SELECT held FROM held) RETURNING id)
		SELECT (SELECT held FROM held), EXISTS (SELECT 1 FROM u)`, connectionID, id).Scan(&held, &exists)
	switch {
	case err != nil:
		return fmt.Errorf("store: delete upload %s: %w", id, err)
	case !exists:
		return fmt.Errorf("store: upload %s: %w", id, ErrNotFound)
	case held:
		return fmt.Errorf("store: delete upload %s: %w", id, ErrUploadInUse)
	}
	return nil
}

// PurgeExpiredUploads deletes up to limit uploads past their expiry that
// no send still needs, with their bytes, and says how many it deleted.
func (s *Store) PurgeExpiredUploads(ctx context.Context, now time.Time, limit int) (int, error) {
	tag, err := s.pool.Exec(ctx, `
		DELETE FROM uploads WHERE id IN (
			SELECT u.id FROM uploads u
			WHERE u.expires_at <= $1
			  AND NOT EXISTS (SELECT 1 FROM sends s WHERE s.id = u.send_id AND s.state NOT IN ('sent', 'failed', 'canceled'))
			ORDER BY u.expires_at LIMIT $2)`, now, limit)
	if err != nil {
		return 0, fmt.Errorf("store: purge expired uploads: %w", err)
	}
	return int(tag.RowsAffected()), nil
}

// attachUploads, in a send's transaction, marks each upload its files name
// as the send's and answers their sizes: the upload must be the
// connection's, complete, and held by no other send.
func attachUploads(ctx context.Context, tx pgx.Tx, snd Send, atts []SendAttachment) error {
	for i, a := range atts {
		if a.UploadID == "" {
			continue
		}
		u, err := scanUpload(tx.QueryRow(ctx, uploadSelect+`WHERE connection_id = $1 AND id = $2 AND `+uploadLive+` FOR UPDATE`, snd.ConnectionID, a.UploadID))
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("store: upload %s: %w", a.UploadID, ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("store: upload %s: %w", a.UploadID, err)
		}
		switch {
		case !u.Complete():
			return fmt.Errorf("store: upload %s: %w", a.UploadID, ErrUploadIncomplete)
		case u.SendID != "" && u.SendID != snd.ID:
			return fmt.Errorf("store: upload %s: %w", a.UploadID, ErrUploadInUse)
		case u.MailboxID != snd.MailboxID:
			return fmt.Errorf("store: upload %s of another mailbox: %w", a.UploadID, ErrNotFound)
		}
		if _, err := tx.Exec(ctx, `UPDATE uploads SET send_id = $2 WHERE id = $1`, u.ID, snd.ID); err != nil {
			return fmt.Errorf("store: upload %s: %w", a.UploadID, err)
		}
		atts[i].Size = u.Size
	}
	return nil
}

// UploadReader reads an upload's bytes from offset from, one stored range
// at a time: at most one range (the app's, up to the API's range limit)
// is held in memory.
func (s *Store) UploadReader(ctx context.Context, uploadID string, from int64) io.Reader {
	return &uploadReader{ctx: ctx, s: s, id: uploadID, off: from}
}

type uploadReader struct {
	ctx context.Context
	s   *Store
	id  string
	off int64
	buf []byte // the rest of the current range
}

func (r *uploadReader) Read(p []byte) (int, error) {
	if len(r.buf) == 0 {
		var start int64
		var data []byte
		err := r.s.pool.QueryRow(r.ctx, `
			SELECT start, data FROM upload_chunks WHERE upload_id = $1 AND start <= $2
			ORDER BY start DESC LIMIT 1`, r.id, r.off).Scan(&start, &data)
		if errors.Is(err, pgx.ErrNoRows) {
			return 0, fmt.Errorf("store: upload %s: no bytes at %d: %w", r.id, r.off, ErrNotFound)
		}
		if err != nil {
			return 0, fmt.Errorf("store: upload %s at %d: %w", r.id, r.off, err)
		}
		if r.off >= start+int64(len(data)) {
			return 0, io.EOF
		}
		r.buf = data[r.off-start:]
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	r.off += int64(n)
	return n, nil
}
