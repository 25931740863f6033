package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Recipient is an address with a display name.
type Recipient struct {
	Name    string `json:"name"`
	Address string `json:"address"`
}

// Message is a synced message.
type Message struct {
	ID                string
	FolderID          string
	InternetMessageID string
	ConversationID    string
	ChangeKey         string
	Subject           string
	From              Recipient
	To, Cc, Bcc       []Recipient
	Received          time.Time
	Sent              time.Time
	IsRead            bool
	IsDraft           bool
	Categories        []string
	Importance        string
	HasAttachments    bool
	BodyPreview       string
	BodyContentType   string
	Body              *string // nil when the policy keeps no bodies
	Attachments       []Attachment
}

// Attachment is attachment metadata; content is fetched on demand.
type Attachment struct {
	ID          string
	Name        string
	ContentType string
	Size        int64
	IsInline    bool
}

// MessageQuery filters and pages a mailbox's messages, newest first.
type MessageQuery struct {
	FolderID string
	// From matches the sender's address (case-insensitive, exact).
	From string
	// To matches any To, Cc or Bcc address (case-insensitive, exact).
	To     string
	Since  time.Time
	Unread bool
	// AfterReceived and AfterID are the position of the previous page's
	// last message.
	AfterReceived time.Time
	AfterID       string
	Limit         int
}

// ListMessages returns a page of messages, newest first (by received time,
// then ID). Bodies are not read from the table.
func (s *Store) ListMessages(ctx context.Context, mailboxID string, q MessageQuery) ([]Message, error) {
	where := `mailbox_id = $1
		AND ($2 = '' OR folder_id = $2)
		AND ($3 = '' OR lower(from_address) = lower($3))
		AND ($4 = '' OR EXISTS (SELECT 1 FROM jsonb_array_elements(to_recipients || cc_recipients || bcc_recipients) r
		                        WHERE lower(r->>'address') = lower($4)))
		AND ($5::timestamptz IS NULL OR received_at >= $5)
		AND (NOT $6 OR NOT is_read)
		AND ($7::timestamptz IS NULL OR (COALESCE(received_at, 'epoch'), id) < ($7, $8))
		ORDER BY COALESCE(received_at, 'epoch') DESC, id DESC LIMIT $9`
	return s.queryMessages(ctx, false, where, mailboxID, q.FolderID, q.From, q.To, nullTime(q.Since), q.Unread,
		nullTime(q.AfterReceived), q.AfterID, q.Limit)
}

// GetMessage reads one message with its body (when stored) and attachments.
func (s *Store) GetMessage(ctx context.Context, mailboxID, id string) (Message, error) {
	msgs, err := s.queryMessages(ctx, true, `mailbox_id = $1 AND id = $2`, mailboxID, id)
	if err != nil {
		return Message{}, err
	}
	if len(msgs) == 0 {
		return Message{}, fmt.Errorf("store: message: %w", ErrNotFound)
	}
	return msgs[0], nil
}

// Messages returns every message of a mailbox, ordered by ID (for
// comparisons with ground truth).
func (s *Store) Messages(ctx context.Context, mailboxID string) ([]Message, error) {
	return s.queryMessages(ctx, true, `mailbox_id = $1 ORDER BY id`, mailboxID)
}

// messageSelect reads a message row with its attachments; %s is the body
// column, or NULL when bodies are not wanted (they are not read at all).
const messageSelect = `
		SELECT id, folder_id, COALESCE(internet_message_id, ''), COALESCE(conversation_id, ''), COALESCE(change_key, ''),
			COALESCE(subject, ''), COALESCE(from_name, ''), COALESCE(from_address, ''), to_recipients, cc_recipients, bcc_recipients,
			received_at, sent_at, is_read, is_draft, categories, COALESCE(importance, ''), has_attachments,
			COALESCE(body_preview, ''), COALESCE(body_content_type, ''), %s,
			(SELECT COALESCE(json_agg(json_build_object('id', a.id, 'name', a.name, 'contentType', a.content_type, 'size', a.size, 'isInline', a.is_inline) ORDER BY a.id), '[]')
			   FROM attachments a WHERE a.mailbox_id = m.mailbox_id AND a.message_id = m.id)
		FROM messages m WHERE `

// queryMessages runs messageSelect with a condition (and order, limit),
// with or without the bodies.
func (s *Store) queryMessages(ctx context.Context, bodies bool, where string, args ...any) ([]Message, error) {
	body := "NULL::text"
	if bodies {
		body = "body"
	}
	rows, err := s.pool.Query(ctx, fmt.Sprintf(messageSelect, body)+where, args...)
	if err != nil {
		return nil, fmt.Errorf("store: messages: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Message, error) {
		var m Message
		var to, cc, bcc, atts []byte
		var received, sent *time.Time
		err := r.Scan(&m.ID, &m.FolderID, &m.InternetMessageID, &m.ConversationID, &m.ChangeKey, &m.Subject, &m.From.Name, &m.From.Address,
			&to, &cc, &bcc, &received, &sent, &m.IsRead, &m.IsDraft, &m.Categories, &m.Importance, &m.HasAttachments,
			&m.BodyPreview, &m.BodyContentType, &m.Body, &atts)
		if err != nil {
			return m, err
		}
		_ = json.Unmarshal(to, &m.To)
		_ = json.Unmarshal(cc, &m.Cc)
		_ = json.Unmarshal(bcc, &m.Bcc)
		var as []struct {
			ID          string `json:"id"`
			Name        string `json:"name"`
			ContentType string `json:"contentType"`
			Size        int64  `json:"size"`
			IsInline    bool   `json:"isInline"`
		}
		_ = json.Unmarshal(atts, &as)
		for _, a := range as {
			m.Attachments = append(m.Attachments, Attachment{ID: a.ID, Name: a.Name, ContentType: a.ContentType, Size: a.Size, IsInline: a.IsInline})
		}
		if received != nil {
			m.Received = received.UTC()
		}
		if sent != nil {
			m.Sent = sent.UTC()
		}
		return m, nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: messages: %w", err)
	}
	return out, nil
}

// CountMessages counts a mailbox's messages.
func (s *Store) CountMessages(ctx context.Context, mailboxID string) (int64, error) {
	var n int64
	err := s.pool.QueryRow(ctx, `SELECT count(*) FROM messages WHERE mailbox_id = $1`, mailboxID).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("store: count messages: %w", err)
	}
	return n, nil
}

// CountMessagesOf counts the messages of several mailboxes in one query
// (mailboxes without mail are absent from the map).
func (s *Store) CountMessagesOf(ctx context.Context, ids []string) (map[string]int64, error) {
	rows, err := s.pool.Query(ctx, `SELECT mailbox_id, count(*) FROM messages WHERE mailbox_id = ANY($1) GROUP BY mailbox_id`, ids)
	if err != nil {
		return nil, fmt.Errorf("store: count messages: %w", err)
	}
	out := map[string]int64{}
	for rows.Next() {
		var id string
		var n int64
		if err := rows.Scan(&id, &n); err != nil {
			rows.Close()
			return nil, fmt.Errorf("store: count messages: %w", err)
		}
		out[id] = n
	}
	rows.Close()
	return out, rows.Err()
}

// Page is one page of a folder's sync: the messages it brings, the IDs it
// removes, and the cursor that follows it.
type Page struct {
	FolderID string
	Messages []Message
	// Removed are IDs the folder's delta reports gone; a message is deleted
	// only if it is still filed in this folder (a move shows as a removal
	// here and an arrival elsewhere).
	Removed []string
	Cursor  string
	Phase   string
	// Gap marks a page of a window-widening backfill: Cursor is then the
	// gap's next page, and an empty Cursor with GapDone moves the folder's
	// window start to WindowStart.
	Gap         bool
	GapDone     bool
	WindowStart time.Time
	// Events records message.created, message.updated and message.deleted
	// events (live sync) in the page's transaction.
	Events bool
	// DeferRemovals keeps Removed as pending removals of the folder instead
	// of deleting at once; ApplyRemovals applies them once the round has
	// read every folder, so a move between two synced folders (a removal
	// here, an arrival there) is one update and never a deletion followed
	// by a creation, whichever folder is read first.
	DeferRemovals bool
	// ContactFilter keeps only the messages from or to one of the
	// mailbox's contacts, and those already stored (docs/contacts.md).
	ContactFilter bool
}

// messageColumns are the columns a page writes. The page travels as one
// JSON parameter read by json_populate_recordset with the messages
// table's own row type, so the table alone says each column's type.
var messageColumns = []string{
	"id", "folder_id", "internet_message_id", "conversation_id", "change_key", "subject", "from_name", "from_address",
	"to_recipients", "cc_recipients", "bcc_recipients", "received_at", "sent_at", "is_read", "is_draft",
	"categories", "importance", "has_attachments", "body_preview", "body_content_type", "body",
}

// stagedMessage is a message as the merge reads it (messageColumns).
type stagedMessage struct {
	ID                string      `json:"id"`
	FolderID          string      `json:"folder_id"`
	InternetMessageID string      `json:"internet_message_id"`
	ConversationID    string      `json:"conversation_id"`
	ChangeKey         string      `json:"change_key"`
	Subject           string      `json:"subject"`
	FromName          string      `json:"from_name"`
	FromAddress       string      `json:"from_address"`
	To                []Recipient `json:"to_recipients"`
	Cc                []Recipient `json:"cc_recipients"`
	Bcc               []Recipient `json:"bcc_recipients"`
	Received          any         `json:"received_at"` // nullTime
	Sent              any         `json:"sent_at"`
	IsRead            bool        `json:"is_read"`
	IsDraft           bool        `json:"is_draft"`
	Categories        []string    `json:"categories"`
	Importance        string      `json:"importance"`
	HasAttachments    bool        `json:"has_attachments"`
	BodyPreview       string      `json:"body_preview"`
	BodyContentType   string      `json:"body_content_type"`
	Body              *string     `json:"body"`
}

// ApplyPage writes a page in one transaction: the messages are copied into
// a staging table and merged (insert or update by immutable ID), removals
// applied, attachments replaced, and the folder's cursor advanced, so the
// cursor never runs ahead of the data it covers. Re-applying a page is
// harmless.
func (s *Store) ApplyPage(ctx context.Context, mailboxID string, p Page) error {
	// Graph may repeat an item within a page (docs/graph.md#delta-queries); keep the last.
	seen := make(map[string]int, len(p.Messages))
	msgs := make([]Message, 0, len(p.Messages))
	for _, m := range p.Messages {
		if i, ok := seen[m.ID]; ok {
			msgs[i] = m
			continue
		}
		seen[m.ID] = len(msgs)
		msgs = append(msgs, m)
	}
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := notDetached(ctx, tx, mailboxID); err != nil {
			return err
		}
		if p.ContactFilter {
			kept, err := filterToContacts(ctx, tx, mailboxID, msgs)
			if err != nil {
				return err
			}
			msgs = kept
		}
		if err := mergeMessages(ctx, tx, mailboxID, msgs, p.Events); err != nil {
			return err
		}
		switch {
		case len(p.Removed) > 0 && p.DeferRemovals:
			if _, err := tx.Exec(ctx, `
				INSERT INTO removals (mailbox_id, folder_id, id) SELECT $1, $2, unnest($3::text[])
				ON CONFLICT DO NOTHING`, mailboxID, p.FolderID, p.Removed); err != nil {
				return fmt.Errorf("store: record removals: %w", err)
			}
		case len(p.Removed) > 0:
			if _, err := tx.Exec(ctx, deleteStatement(`id = ANY($3)`, p.Events), mailboxID, p.FolderID, p.Removed); err != nil {
				return fmt.Errorf("store: remove messages: %w", err)
			}
		}
		var tag pgconn.CommandTag
		var err error
		switch {
		case p.Gap && p.GapDone:
			tag, err = tx.Exec(ctx, `
				UPDATE folders SET gap_cursor = NULL, window_start = LEAST(window_start, $3), synced = synced + $4, updated_at = now()
				WHERE mailbox_id = $1 AND id = $2`, mailboxID, p.FolderID, p.WindowStart, len(msgs))
		case p.Gap:
			tag, err = tx.Exec(ctx, `
				UPDATE folders SET gap_cursor = $3, synced = synced + $4, updated_at = now()
				WHERE mailbox_id = $1 AND id = $2`, mailboxID, p.FolderID, p.Cursor, len(msgs))
		default:
			tag, err = tx.Exec(ctx, `
				UPDATE folders SET cursor = $3, phase = $4, synced = synced + $5, updated_at = now()
				WHERE mailbox_id = $1 AND id = $2`, mailboxID, p.FolderID, p.Cursor, p.Phase, len(msgs))
		}
		if err != nil {
			return fmt.Errorf("store: advance cursor: %w", err)
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("store: folder %s of %s: %w", p.FolderID, mailboxID, ErrNotFound)
		}
		return nil
	})
}

// mergeMessages merges messages (insert or update by immutable ID),
// replacing their attachments; with events, each real change is recorded.
// The page goes to Postgres as one JSON parameter: a temporary staging
// table cost a catalog write per page (its CREATE was most of a live
// round's time in Postgres) and a new plan for every merge.
func mergeMessages(ctx context.Context, tx pgx.Tx, mailboxID string, msgs []Message, events bool) error {
	if len(msgs) == 0 {
		return nil
	}
	staged := make([]stagedMessage, len(msgs))
	for i, m := range msgs {
		if m.Categories == nil {
			m.Categories = []string{}
		}
		staged[i] = stagedMessage{ID: m.ID, FolderID: m.FolderID, InternetMessageID: m.InternetMessageID, ConversationID: m.ConversationID,
			ChangeKey: m.ChangeKey, Subject: m.Subject, FromName: m.From.Name, FromAddress: m.From.Address,
			To: nonNil(m.To), Cc: nonNil(m.Cc), Bcc: nonNil(m.Bcc), Received: nullTime(m.Received), Sent: nullTime(m.Sent),
			IsRead: m.IsRead, IsDraft: m.IsDraft, Categories: m.Categories, Importance: m.Importance,
			HasAttachments: m.HasAttachments, BodyPreview: m.BodyPreview, BodyContentType: m.BodyContentType, Body: m.Body}
	}
	var page bytes.Buffer
	enc := json.NewEncoder(&page)
	enc.SetEscapeHTML(false) // bodies are HTML: kept as written, not as \u003c
	if err := enc.Encode(staged); err != nil {
		return fmt.Errorf("store: encode page: %w", err)
	}
	if _, err := tx.Exec(ctx, mergeStatement(events), mailboxID, page.String()); err != nil {
		return fmt.Errorf("store: merge page: %w", err)
	}
	if err := replaceAttachments(ctx, tx, mailboxID, msgs); err != nil {
		return err
	}
	return nil
}

// mergeStatement upserts the page ($2, JSON of stagedMessage). Rows whose content did not
// change (same change key, folder, read state and body) are left alone, so
// replays write nothing; with events, each real change is recorded as an
// event whose ID (mailbox, message, change key) is stable across
// replays.
func mergeStatement(events bool) string {
	merge := `
		INSERT INTO messages (mailbox_id, ` + columnList("") + `)
		SELECT $1, ` + columnList("s.") + ` FROM json_populate_recordset(NULL::messages, $2::json) AS s
		ON CONFLICT (mailbox_id, id) DO UPDATE SET
			folder_id = EXCLUDED.folder_id, internet_message_id = EXCLUDED.internet_message_id,
			conversation_id = EXCLUDED.conversation_id, change_key = EXCLUDED.change_key,
			subject = EXCLUDED.subject, from_name = EXCLUDED.from_name, from_address = EXCLUDED.from_address,
			to_recipients = EXCLUDED.to_recipients, cc_recipients = EXCLUDED.cc_recipients,
			bcc_recipients = EXCLUDED.bcc_recipients, received_at = EXCLUDED.received_at,
			sent_at = EXCLUDED.sent_at, is_read = EXCLUDED.is_read, is_draft = EXCLUDED.is_draft,
			categories = EXCLUDED.categories, importance = EXCLUDED.importance,
			has_attachments = EXCLUDED.has_attachments, body_preview = EXCLUDED.body_preview,
			body_content_type = EXCLUDED.body_content_type, body = EXCLUDED.body, updated_at = now()
		WHERE COALESCE(EXCLUDED.change_key, '') = '' OR messages.change_key IS DISTINCT FROM EXCLUDED.change_key
			OR messages.folder_id <> EXCLUDED.folder_id OR messages.is_read <> EXCLUDED.is_read
			OR messages.body IS DISTINCT FROM EXCLUDED.body`
	if !events {
		return merge
	}
	return `WITH merged AS (` + merge + ` RETURNING id, folder_id, change_key, (xmax = 0) AS inserted)
		INSERT INTO events (id, connection_id, mailbox_id, type, data)
		SELECT $1 || ':' || id || ':' || COALESCE(change_key, ''), (SELECT connection_id FROM mailboxes WHERE id = $1), $1,
			CASE WHEN inserted THEN 'message.created' ELSE 'message.updated' END,
			jsonb_build_object('message_id', id, 'folder_id', folder_id)
		FROM merged ON CONFLICT (id) DO NOTHING`
}

// deleteStatement deletes a folder's messages matching a condition ($1 the
// mailbox, $2 the folder); with events, each deletion is recorded.
func deleteStatement(cond string, events bool) string {
	del := `DELETE FROM messages WHERE mailbox_id = $1 AND folder_id = $2 AND ` + cond
	if !events {
		return del
	}
	return `WITH gone AS (` + del + ` RETURNING id, change_key)
		INSERT INTO events (id, connection_id, mailbox_id, type, data)
		SELECT $1 || ':' || id || ':deleted:' || COALESCE(change_key, ''), (SELECT connection_id FROM mailboxes WHERE id = $1), $1, 'message.deleted',
			jsonb_build_object('message_id', id, 'folder_id', $2::text)
		FROM gone ON CONFLICT (id) DO NOTHING`
}

// PendingRemovals counts a mailbox's removals not applied yet.
func (s *Store) PendingRemovals(ctx context.Context, mailboxID string) (int64, error) {
	var n int64
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM removals WHERE mailbox_id = $1`, mailboxID).Scan(&n); err != nil {
		return 0, fmt.Errorf("store: pending removals of %s: %w", mailboxID, err)
	}
	return n, nil
}

// ApplyRemovals applies a mailbox's pending removals (Page.DeferRemovals)
// in one transaction: a message still filed in the folder that reported it
// removed is deleted, with a message.deleted event; one filed elsewhere
// since (it moved to another synced folder, whose delta updated it) stays.
// It answers how many messages were deleted. Applying twice is harmless.
func (s *Store) ApplyRemovals(ctx context.Context, mailboxID string) (int64, error) {
	var n int64
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `
			WITH pending AS (
				DELETE FROM removals WHERE mailbox_id = $1 RETURNING folder_id, id
			), gone AS (
				DELETE FROM messages m USING pending p
				WHERE m.mailbox_id = $1 AND m.id = p.id AND m.folder_id = p.folder_id
				RETURNING m.id, m.folder_id, m.change_key
			), told AS (
				INSERT INTO events (id, connection_id, mailbox_id, type, data)
				SELECT $1 || ':' || id || ':deleted:' || COALESCE(change_key, ''), (SELECT connection_id FROM mailboxes WHERE id = $1), $1, 'message.deleted',
					jsonb_build_object('message_id', id, 'folder_id', folder_id)
				FROM gone ON CONFLICT (id) DO NOTHING
			)
			SELECT count(*) FROM gone`, mailboxID).Scan(&n)
		if err != nil {
			return fmt.Errorf("store: apply removals of %s: %w", mailboxID, err)
		}
		return nil
	})
	return n, err
}

func replaceAttachments(ctx context.Context, tx pgx.Tx, mailboxID string, msgs []Message) error {
	ids := make([]string, 0, len(msgs))
	var rows [][]any
	for _, m := range msgs {
		ids = append(ids, m.ID)
		for _, a := range m.Attachments {
			rows = append(rows, []any{mailboxID, m.ID, a.ID, a.Name, a.ContentType, a.Size, a.IsInline})
		}
	}
	if _, err := tx.Exec(ctx, `DELETE FROM attachments WHERE mailbox_id = $1 AND message_id = ANY($2)`, mailboxID, ids); err != nil {
		return fmt.Errorf("store: clear attachments: %w", err)
	}
	if len(rows) == 0 {
		return nil
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"attachments"}, []string{"mailbox_id", "message_id", "id", "name", "content_type", "size", "is_inline"}, pgx.CopyFromRows(rows)); err != nil {
		return fmt.Errorf("store: copy attachments: %w", err)
	}
	return nil
}

// columnList names the page's columns, each with prefix.
func columnList(prefix string) string {
	names := make([]string, len(messageColumns))
	for i, c := range messageColumns {
		names[i] = prefix + c
	}
	return strings.Join(names, ", ")
}

func nonNil(r []Recipient) []Recipient {
	if r == nil {
		return []Recipient{}
	}
	return r
}

func nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t
}

// DeleteMissing removes a folder's messages received since a time that a
// full re-scan did not see (used when a delta token expired), recording a
// message.deleted event for each.
func (s *Store) DeleteMissing(ctx context.Context, mailboxID, folderID string, since time.Time, seen []string) (int64, error) {
	tag, err := s.pool.Exec(ctx, deleteStatement(`received_at >= $3 AND NOT (id = ANY($4))`, true),
		mailboxID, folderID, since, seen)
	if err != nil {
		return 0, fmt.Errorf("store: delete missing: %w", err)
	}
	return tag.RowsAffected(), nil
}

// DeleteMail deletes a mailbox's synced mail, folders and
// subscriptions (retention "delete"); the registry row stays, detached.
func (s *Store) DeleteMail(ctx context.Context, mailboxID string) (int64, error) {
	var n int64
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := lockForDetach(ctx, tx, mailboxID); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `DELETE FROM messages WHERE mailbox_id = $1`, mailboxID)
		if err != nil {
			return err
		}
		n = tag.RowsAffected()
		for _, q := range []string{`DELETE FROM folders WHERE mailbox_id = $1`, `DELETE FROM subscriptions WHERE connection_id = $1 OR mailbox_id = $1`,
			`DELETE FROM sends WHERE connection_id = $1 AND state IN ('sent', 'failed', 'canceled')`,
			`UPDATE mailboxes SET detached_at = COALESCE(detached_at, now()) WHERE id = $1`,
			`UPDATE connections SET detached_at = COALESCE(detached_at, now()) WHERE id = $1`} {
			if _, err := tx.Exec(ctx, q, mailboxID); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("store: delete mail of %s: %w", mailboxID, err)
	}
	return n, nil
}

// notDetached holds the mailbox's row against a detach (a key-share
// lock, which only a detach's lock waits for) and refuses a detached one:
// a page still under way when the disconnect saga deletes or archives the
// mail either commits before it, and is deleted with the rest, or is
// refused after it.
func notDetached(ctx context.Context, tx pgx.Tx, mailboxID string) error {
	var detached bool
	err := tx.QueryRow(ctx, `SELECT detached_at IS NOT NULL FROM mailboxes WHERE id = $1 FOR KEY SHARE`, mailboxID).Scan(&detached)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("store: mailbox %s: %w", mailboxID, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("store: lock mailbox %s: %w", mailboxID, err)
	}
	if detached {
		return fmt.Errorf("store: mailbox %s: %w", mailboxID, ErrDetached)
	}
	return nil
}

// lockForDetach waits for the pages under way (notDetached) to commit.
func lockForDetach(ctx context.Context, tx pgx.Tx, mailboxID string) error {
	if _, err := tx.Exec(ctx, `SELECT 1 FROM mailboxes WHERE id = $1 FOR UPDATE`, mailboxID); err != nil {
		return fmt.Errorf("store: lock mailbox %s: %w", mailboxID, err)
	}
	return nil
}

// Keep says what of a message's content a storage policy keeps.
type Keep struct {
	Bodies, Previews, Attachments bool
}

// StripContent deletes what a mailbox's stored messages hold beyond what
// is kept (the storage policy now keeps less): bodies, previews, the
// attachments' metadata. It returns the messages changed.
func (s *Store) StripContent(ctx context.Context, mailboxID string, keep Keep) (int64, error) {
	var n int64
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `
			UPDATE messages SET
				body = CASE WHEN $2 THEN body END, body_content_type = CASE WHEN $2 THEN body_content_type END,
				body_preview = CASE WHEN $3 THEN body_preview END, updated_at = now()
			WHERE mailbox_id = $1 AND (NOT $2 AND (body IS NOT NULL OR body_content_type IS NOT NULL)
			                           OR NOT $3 AND body_preview IS NOT NULL)`, mailboxID, keep.Bodies, keep.Previews)
		if err != nil {
			return err
		}
		n = tag.RowsAffected()
		if !keep.Attachments {
			if _, err := tx.Exec(ctx, `DELETE FROM attachments WHERE mailbox_id = $1`, mailboxID); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("store: strip content of %s: %w", mailboxID, err)
	}
	return n, nil
}
