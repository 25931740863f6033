package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
)

// SendFinal says whether a send's state (the workflows package names
// them) is final: nothing changes it.
func SendFinal(state string) bool {
	return state == "sent" || state == "failed" || state == "canceled"
}

// SendStarted tells whether a send left the app's hands: anything but a
// draft not sent yet.
func SendStarted(state string) bool { return state != "draft" }

// ErrKeyReused: the Idempotency-Key names an earlier send whose request
// was not this one.
var ErrKeyReused = errors.New("store: the idempotency key was used for another request")

// Body is a message body.
type Body struct {
	ContentType string `json:"contentType"` // text or html
	Content     string `json:"content"`
}

// Header is an internet message header (x-...).
type Header struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// OutgoingMessage is a message as the app asked for it to be sent.
type OutgoingMessage struct {
	Subject    string      `json:"subject"`
	Body       Body        `json:"body"`
	To         []Recipient `json:"to,omitempty"`
	Cc         []Recipient `json:"cc,omitempty"`
	Bcc        []Recipient `json:"bcc,omitempty"`
	ReplyTo    []Recipient `json:"replyTo,omitempty"`
	Importance string      `json:"importance,omitempty"`
	Headers    []Header    `json:"headers,omitempty"`
	// InReplyTo is the synced message a reply or forward answers.
	InReplyTo string `json:"inReplyTo,omitempty"`
}

// Recipients counts To, Cc and Bcc together, as Exchange's limits do.
func (m OutgoingMessage) Recipients() int { return len(m.To) + len(m.Cc) + len(m.Bcc) }

// SendAttachment is a file of a send: sent inline with the request
// (Content), or uploaded before (UploadID; its bytes are read with
// UploadReader, Content stays empty).
type SendAttachment struct {
	Name        string
	ContentType string
	IsInline    bool
	ContentID   string
	Content     []byte
	UploadID    string
	// Size is the file's size: Content's, or the upload's.
	Size int64
}

// FileSize is the attachment's size in bytes.
func (a SendAttachment) FileSize() int64 {
	if a.UploadID != "" {
		return a.Size
	}
	return int64(len(a.Content))
}

// AttachmentInfo describes an attachment of a send without its bytes.
type AttachmentInfo struct {
	Name        string
	ContentType string
	IsInline    bool
	Size        int64
}

// Send is a row of the sends table.
type Send struct {
	ID           string
	ConnectionID string
	// MailboxID is the attached mailbox the send goes from; empty for the
	// connection's own mailbox.
	MailboxID string
	// Sender is who Exchange recorded as the sent copy's sender, once
	// known: the mailbox with Send As, the account with Send on Behalf.
	Sender      string
	Key         string
	RequestHash []byte
	Kind        string
	Message     OutgoingMessage
	Recipients  int
	State       string
	Reason      string
	ReasonText  string
	DraftID     string
	MessageID   string
	NotBefore   *time.Time
	CreatedAt   time.Time
	UpdatedAt   time.Time
	SentAt      *time.Time
	Attachments []AttachmentInfo
}

const sendSelect = `
	SELECT s.id, s.connection_id, COALESCE(s.mailbox_id, ''), COALESCE(s.sender, ''), s.idempotency_key, s.request_hash, s.kind, s.message, s.recipients, s.state,
		s.reason, s.reason_text, s.draft_id, s.message_id, s.not_before, s.created_at, s.updated_at, s.sent_at,
		COALESCE((SELECT json_agg(json_build_object('name', a.name, 'contentType', a.content_type, 'isInline', a.is_inline,
			'size', a.size) ORDER BY a.ord) FROM send_attachments a WHERE a.send_id = s.id), '[]')
	FROM sends s `

func scanSend(r pgx.Row) (Send, error) {
	var s Send
	var msg, atts []byte
	var reason, text, draft, mid *string
	err := r.Scan(&s.ID, &s.ConnectionID, &s.MailboxID, &s.Sender, &s.Key, &s.RequestHash, &s.Kind, &msg, &s.Recipients, &s.State,
		&reason, &text, &draft, &mid, &s.NotBefore, &s.CreatedAt, &s.UpdatedAt, &s.SentAt, &atts)
	if err != nil {
		return s, err
	}
	s.Reason, s.ReasonText, s.DraftID, s.MessageID = deref(reason), deref(text), deref(draft), deref(mid)
	if err := json.Unmarshal(msg, &s.Message); err != nil {
		return s, fmt.Errorf("store: send %s: message: %w", s.ID, err)
	}
	var infos []struct {
		Name        string `json:"name"`
		ContentType string `json:"contentType"`
		IsInline    bool   `json:"isInline"`
		Size        int64  `json:"size"`
	}
	if err := json.Unmarshal(atts, &infos); err != nil {
		return s, fmt.Errorf("store: send %s: attachments: %w", s.ID, err)
	}
	for _, a := range infos {
		s.Attachments = append(s.Attachments, AttachmentInfo{Name: a.Name, ContentType: a.ContentType, IsInline: a.IsInline, Size: a.Size})
	}
	return s, nil
}

// CreateSend records a send and its attachments in one transaction, or
// finds the one its key already names: created is false then. A send the
// key names whose request hash differs is ErrKeyReused (with that send).
// A new send takes its place in its mailbox's queue in the same
// transaction (bookSlot): its NotBefore is when it is expected to go (a
// *RateLimitedError, and nothing recorded, when it would have to wait and
// the rates say NoQueue); its slot in the rates is taken when it is
// submitted (TakeSlot).
func (s *Store) CreateSend(ctx context.Context, snd Send, atts []SendAttachment, rates Rates) (out Send, created bool, err error) {
	msg, err := json.Marshal(snd.Message)
	if err != nil {
		return Send{}, false, fmt.Errorf("store: send message: %w", err)
	}
	if snd.Kind == "" {
		snd.Kind = "new"
	}
	// A draft waits for the app to send it, outside the rates.
	draft := snd.Kind == "draft"
	state := "queued"
	if draft {
		state = "draft"
	}
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `
			INSERT INTO sends (id, connection_id, mailbox_id, idempotency_key, request_hash, kind, message, recipients, state, not_before)
			VALUES ($1, $2, NULLIF($8, ''), $3, $4, $5, $6, $7, $9, NULL)
			ON CONFLICT DO NOTHING`,
			snd.ID, snd.ConnectionID, snd.Key, snd.RequestHash, snd.Kind, msg, snd.Message.Recipients(), snd.MailboxID, state)
		if err != nil {
			return fmt.Errorf("store: create send %s: %w", snd.ID, err)
		}
		created = tag.RowsAffected() == 1
		if created && !draft {
			at, err := bookSlot(ctx, tx, snd.ID, max(snd.Message.Recipients(), snd.Recipients, 1), rates)
			if err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `UPDATE sends SET not_before = $2, recipients = $3 WHERE id = $1`, snd.ID, at, max(snd.Message.Recipients(), snd.Recipients)); err != nil {
				return fmt.Errorf("store: the send's time: %w", err)
			}
		}
		if created {
			atts = slices.Clone(atts)
			if err := attachUploads(ctx, tx, snd, atts); err != nil {
				return err
			}
			for i, a := range atts {
				content := a.Content
				if content == nil {
					content = []byte{}
				}
				if _, err := tx.Exec(ctx, `
					INSERT INTO send_attachments (send_id, ord, name, content_type, is_inline, content_id, size, content, upload_id)
					VALUES ($1, $2, $3, $4, $5, NULLIF($6, ''), $7, $8, NULLIF($9, ''))`, snd.ID, i, a.Name, a.ContentType, a.IsInline, a.ContentID, a.FileSize(), content, a.UploadID); err != nil {
					return fmt.Errorf("store: attachment %d of send %s: %w", i, snd.ID, err)
				}
			}
		}
		out, err = scanSend(tx.QueryRow(ctx, sendSelect+`WHERE s.connection_id = $1 AND s.idempotency_key = $2`, snd.ConnectionID, snd.Key))
		if err != nil {
			return fmt.Errorf("store: read send %s: %w", snd.ID, err)
		}
		return nil
	})
	if err != nil {
		return Send{}, false, err
	}
	if !bytes.Equal(out.RequestHash, snd.RequestHash) {
		return out, false, fmt.Errorf("store: send %s: %w", out.ID, ErrKeyReused)
	}
	return out, created, nil
}

// DeleteSend removes a send that never started (its workflow could not be
// started), or a draft the mailbox never got, with its attachments;
// ErrNotFound when it is neither.
func (s *Store) DeleteSend(ctx context.Context, id string) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM sends WHERE id = $1 AND state IN ('queued', 'draft') AND draft_id IS NULL`, id)
		if err != nil {
			return fmt.Errorf("store: delete send %s: %w", id, err)
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("store: unstarted send %s: %w", id, ErrNotFound)
		}
		// Its uploads are free for another send again.
		if _, err := tx.Exec(ctx, `UPDATE uploads SET send_id = NULL WHERE send_id = $1`, id); err != nil {
			return fmt.Errorf("store: uploads of send %s: %w", id, err)
		}
		return nil
	})
}

// GetSend reads one send of a connection.
func (s *Store) GetSend(ctx context.Context, connectionID, id string) (Send, error) {
	out, err := scanSend(s.pool.QueryRow(ctx, sendSelect+`WHERE s.connection_id = $1 AND s.id = $2`, connectionID, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return Send{}, fmt.Errorf("store: send %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Send{}, fmt.Errorf("store: send %s: %w", id, err)
	}
	return out, nil
}

// GetSendByID reads a send by its ID alone (the workflows' view).
func (s *Store) GetSendByID(ctx context.Context, id string) (Send, error) {
	out, err := scanSend(s.pool.QueryRow(ctx, sendSelect+`WHERE s.id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return Send{}, fmt.Errorf("store: send %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Send{}, fmt.Errorf("store: send %s: %w", id, err)
	}
	return out, nil
}

// SendQuery pages a connection's sends, newest first.
type SendQuery struct {
	State string
	// MailboxID, when set, keeps an attached mailbox's sends alone.
	MailboxID string
	// BeforeCreated and BeforeID are the last send of the previous page.
	BeforeCreated time.Time
	BeforeID      string
	Limit         int
}

// ListSends lists a connection's sends, newest first.
func (s *Store) ListSends(ctx context.Context, connectionID string, q SendQuery) ([]Send, error) {
	if q.Limit <= 0 {
		q.Limit = 50
	}
	rows, err := s.pool.Query(ctx, sendSelect+`
		WHERE s.connection_id = $1 AND ($2 = '' OR s.state = $2)
		  AND ($3 = '' OR (s.created_at, s.id) < ($4, $3))
		  AND ($6 = '' OR s.mailbox_id = $6)
		ORDER BY s.created_at DESC, s.id DESC LIMIT $5`, connectionID, q.State, q.BeforeID, q.BeforeCreated, q.Limit, q.MailboxID)
	if err != nil {
		return nil, fmt.Errorf("store: list sends: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Send, error) { return scanSend(r) })
	if err != nil {
		return nil, fmt.Errorf("store: list sends: %w", err)
	}
	return out, nil
}

// WaitingSendIDs pages the IDs of a connection's sends (or, with
// mailboxID, of one attached mailbox's) that wait before their submission
// (queued or reauth_required), after the ID after, in order.
func (s *Store) WaitingSendIDs(ctx context.Context, connectionID, mailboxID, after string, limit int) ([]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT id FROM sends
		WHERE connection_id = $1 AND ($2 = '' OR mailbox_id = $2) AND state IN ('queued', 'reauth_required') AND id > $3
		ORDER BY id LIMIT $4`, connectionID, mailboxID, after, limit)
	if err != nil {
		return nil, fmt.Errorf("store: waiting sends of %s: %w", connectionID, err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("store: waiting sends of %s: %w", connectionID, err)
	}
	return ids, nil
}

// SendAttachments reads the files of a send, in order: the bytes of those
// sent inline, the upload's ID and size of those uploaded.
func (s *Store) SendAttachments(ctx context.Context, sendID string) ([]SendAttachment, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT name, content_type, is_inline, COALESCE(content_id, ''), content, COALESCE(upload_id, ''), size
		FROM send_attachments WHERE send_id = $1 ORDER BY ord`, sendID)
	if err != nil {
		return nil, fmt.Errorf("store: attachments of send %s: %w", sendID, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (SendAttachment, error) {
		var a SendAttachment
		err := r.Scan(&a.Name, &a.ContentType, &a.IsInline, &a.ContentID, &a.Content, &a.UploadID, &a.Size)
		return a, err
	})
	if err != nil {
		return nil, fmt.Errorf("store: attachments of send %s: %w", sendID, err)
	}
	return out, nil
}

// SendUpdate is a change of a send's state; empty fields are left alone.
type SendUpdate struct {
	State      string
	Reason     string
	ReasonText string
	DraftID    string
	MessageID  string
	Sender     string
	// NotBefore, when set, is when a queued send goes out.
	NotBefore *time.Time
	// Events are recorded in the same transaction, each once.
	Events []Event
}

// UpdateSend applies a change. A send in a final state keeps it, and its
// reason: a change to another state, or to the same state for another
// reason, is ignored (a retried write of the final state itself is
// harmless), so a late write never reopens a send nor rewrites why it
// ended.
func (s *Store) UpdateSend(ctx context.Context, id string, u SendUpdate) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var state, reason, mailboxID string
		err := tx.QueryRow(ctx, `SELECT state, COALESCE(reason, ''), COALESCE(mailbox_id, '') FROM sends WHERE id = $1 FOR UPDATE`, id).Scan(&state, &reason, &mailboxID)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("store: send %s: %w", id, ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("store: send %s: %w", id, err)
		}
		if SendFinal(state) && (u.State != state || u.Reason != reason) {
			return nil
		}
		_, err = tx.Exec(ctx, `
			UPDATE sends SET
				state       = COALESCE(NULLIF($2, ''), state),
				reason      = CASE WHEN $2 = '' THEN reason ELSE NULLIF($3, '') END,
				reason_text = CASE WHEN $2 = '' THEN reason_text ELSE NULLIF($4, '') END,
				draft_id    = COALESCE(NULLIF($5, ''), draft_id),
				message_id  = COALESCE(NULLIF($6, ''), message_id),
				not_before  = COALESCE($7, not_before),
				sender      = COALESCE(NULLIF($8, ''), sender),
				sent_at     = CASE WHEN $2 = 'sent' THEN COALESCE(sent_at, now()) ELSE sent_at END,
				updated_at  = now()
			WHERE id = $1`, id, u.State, u.Reason, u.ReasonText, u.DraftID, u.MessageID, u.NotBefore, u.Sender)
		if err != nil {
			return fmt.Errorf("store: update send %s: %w", id, err)
		}
		if err := releaseBooking(ctx, tx, id, u.State); err != nil {
			return err
		}
		if SendFinal(u.State) {
			// The files were for Graph; a finished send needs them no more.
			if _, err := tx.Exec(ctx, `UPDATE send_attachments SET content = ''::bytea WHERE send_id = $1`, id); err != nil {
				return fmt.Errorf("store: attachments of send %s: %w", id, err)
			}
			// Nor the bytes of its uploads; their rows stay until they
			// expire, so that a retried request still finds them.
			if _, err := tx.Exec(ctx, `DELETE FROM upload_chunks WHERE upload_id IN (SELECT id FROM uploads WHERE send_id = $1)`, id); err != nil {
				return fmt.Errorf("store: uploads of send %s: %w", id, err)
			}
		}
		for _, e := range u.Events {
			if e.MailboxID == "" {
				// A send from an attached mailbox is news about that mailbox.
				e.MailboxID = mailboxID
			}
			if err := addEvent(ctx, tx, e); err != nil {
				return err
			}
		}
		return nil
	})
}

// releaseBooking frees the place a send booked in its mailbox's queue
// when it will not be submitted at its turn: it ended without taking its
// slot (failed or canceled), or waits for a new sign-in (it books again
// when it comes back). A slot taken stays: the message may have gone. A
// send recorded sent by a workflow that took no slot (one started before
// slots were taken at submission) keeps its booking as its slot.
func releaseBooking(ctx context.Context, tx pgx.Tx, id, state string) error {
	var err error
	switch state {
	case "failed", "canceled", "reauth_required":
		_, err = tx.Exec(ctx, `DELETE FROM send_slots WHERE send_id = $1 AND NOT taken`, id)
	case "sent":
		_, err = tx.Exec(ctx, `UPDATE send_slots SET taken = true WHERE send_id = $1 AND NOT taken`, id)
	}
	if err != nil {
		return fmt.Errorf("store: the place of send %s: %w", id, err)
	}
	return nil
}

// ErrNotDraft: the send is no draft (any more): it was sent or discarded.
var ErrNotDraft = errors.New("store: the send is not a draft")

// ReplaceDraft replaces a draft's message (its files stay); ErrNotDraft
// once it was sent or discarded.
func (s *Store) ReplaceDraft(ctx context.Context, id string, m OutgoingMessage) error {
	msg, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("store: draft message: %w", err)
	}
	tag, err := s.pool.Exec(ctx, `UPDATE sends SET message = $2, recipients = $3, updated_at = now() WHERE id = $1 AND state = 'draft'`,
		id, msg, m.Recipients())
	if err != nil {
		return fmt.Errorf("store: replace draft %s: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("store: draft %s: %w", id, ErrNotDraft)
	}
	return nil
}

// QueueDraft makes a draft a queued send, taking its place in the
// mailbox's queue (as CreateSend does for a new send). A send that is no
// draft any more is answered as it stands, with queued false: sending a
// draft twice sends it once.
func (s *Store) QueueDraft(ctx context.Context, id string, rates Rates) (out Send, queued bool, err error) {
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		out, err = scanSend(tx.QueryRow(ctx, sendSelect+`WHERE s.id = $1 FOR UPDATE OF s`, id))
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("store: send %s: %w", id, ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("store: send %s: %w", id, err)
		}
		if out.State != "draft" {
			return nil
		}
		at, err := bookSlot(ctx, tx, id, max(out.Recipients, 1), rates)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE sends SET state = 'queued', not_before = $2, updated_at = now() WHERE id = $1`, id, at); err != nil {
			return fmt.Errorf("store: queue draft %s: %w", id, err)
		}
		out.State, out.NotBefore, queued = "queued", &at, true
		return nil
	})
	return out, queued, err
}

// UnqueueDraft gives a draft whose send could not start its state back,
// and its place in the rates.
func (s *Store) UnqueueDraft(ctx context.Context, id string) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE sends SET state = 'draft', not_before = NULL, updated_at = now() WHERE id = $1 AND state = 'queued' AND kind = 'draft'`, id)
		if err != nil {
			return fmt.Errorf("store: unqueue draft %s: %w", id, err)
		}
		if tag.RowsAffected() == 0 {
			return nil
		}
		if _, err := tx.Exec(ctx, `DELETE FROM send_slots WHERE send_id = $1`, id); err != nil {
			return fmt.Errorf("store: unqueue draft %s: %w", id, err)
		}
		return nil
	})
}
