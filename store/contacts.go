package store

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Contact is one of the app's contacts of a mailbox. Address is lower
// case: Exchange compares SMTP addresses without regard to case.
type Contact struct {
	Address string
	Name    string
	AddedAt time.Time
	// FetchedAt is when the contact's past mail was fetched (nil: not yet).
	FetchedAt *time.Time
}

// NormalizeAddress is how a contact's address is compared and stored.
func NormalizeAddress(a string) string { return strings.ToLower(strings.TrimSpace(a)) }

// AddContacts adds contacts to a mailbox in one statement; contacts it
// already has keep their name and fetch state. It returns how many were
// new: only those wait for their past mail to be fetched, unless
// allStored says the mailbox stores all its mail (no contact filter), so
// there is nothing to fetch.
func (s *Store) AddContacts(ctx context.Context, mailboxID string, cs []Contact, allStored bool) (int64, error) {
	if len(cs) == 0 {
		return 0, nil
	}
	addrs, names := make([]string, len(cs)), make([]string, len(cs))
	for i, c := range cs {
		addrs[i], names[i] = NormalizeAddress(c.Address), c.Name
	}
	tag, err := s.pool.Exec(ctx, `
		INSERT INTO contacts (mailbox_id, address, name, fetched_at)
		SELECT $1, lower(a), NULLIF(n, ''), CASE WHEN $4 THEN now() END FROM unnest($2::text[], $3::text[]) AS t(a, n)
		ON CONFLICT (mailbox_id, address) DO NOTHING`, mailboxID, addrs, names, allStored)
	if err != nil {
		return 0, fmt.Errorf("store: add contacts: %w", err)
	}
	return tag.RowsAffected(), nil
}

// RemoveContacts removes contacts from a mailbox. With deleteMail, the
// mail they brought goes too, in the same transaction: every message from
// or to a removed contact and to no remaining one (each recorded as a
// message.deleted event). A page being written meanwhile either commits
// first (its messages are then deleted) or waits and sees the contacts
// gone. It returns the contacts removed and the messages deleted.
func (s *Store) RemoveContacts(ctx context.Context, mailboxID string, addrs []string, deleteMail bool) (removed, deleted int64, err error) {
	norm := make([]string, len(addrs))
	for i, a := range addrs {
		norm[i] = NormalizeAddress(a)
	}
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if deleteMail {
			if err := lockForDetach(ctx, tx, mailboxID); err != nil {
				return err
			}
		}
		tag, err := tx.Exec(ctx, `DELETE FROM contacts WHERE mailbox_id = $1 AND address = ANY($2)`, mailboxID, norm)
		if err != nil {
			return err
		}
		removed = tag.RowsAffected()
		if !deleteMail {
			return nil
		}
		tag, err = tx.Exec(ctx, deleteUnmatched(`AND message_addresses(from_address, to_recipients, cc_recipients) && $2::text[]`), mailboxID, norm)
		if err != nil {
			return err
		}
		deleted = tag.RowsAffected()
		return nil
	})
	if err != nil {
		return 0, 0, fmt.Errorf("store: remove contacts: %w", err)
	}
	return removed, deleted, nil
}

// deleteUnmatched deletes a mailbox's ($1) messages that are from or to
// none of its contacts (and meet cond), recording message.deleted events.
func deleteUnmatched(cond string) string {
	return `WITH gone AS (
			DELETE FROM messages m WHERE m.mailbox_id = $1 ` + cond + `
			AND NOT EXISTS (SELECT 1 FROM contacts c WHERE c.mailbox_id = m.mailbox_id
			                AND c.address = ANY(message_addresses(m.from_address, m.to_recipients, m.cc_recipients)))
			RETURNING id, folder_id, change_key)
		INSERT INTO events (id, connection_id, mailbox_id, type, data)
		SELECT $1 || ':' || id || ':deleted:' || COALESCE(change_key, ''), (SELECT connection_id FROM mailboxes WHERE id = $1), $1,
			'message.deleted', jsonb_build_object('message_id', id, 'folder_id', folder_id)
		FROM gone ON CONFLICT (id) DO NOTHING`
}

// DeleteUnmatchedMail deletes every message of a mailbox from or to none
// of its contacts (the contact filter was switched on), and counts the
// contacts' past mail as fetched: the mailbox held all its mail. It
// returns the messages deleted.
func (s *Store) DeleteUnmatchedMail(ctx context.Context, mailboxID string) (int64, error) {
	var n int64
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := lockForDetach(ctx, tx, mailboxID); err != nil {
			return err
		}
		// Counting inserted events is counting deleted messages: each has
		// its own event ID.
		var err error
		if err = tx.QueryRow(ctx, `
			SELECT count(*) FROM messages m WHERE m.mailbox_id = $1
			AND NOT EXISTS (SELECT 1 FROM contacts c WHERE c.mailbox_id = m.mailbox_id
			                AND c.address = ANY(message_addresses(m.from_address, m.to_recipients, m.cc_recipients)))`, mailboxID).Scan(&n); err != nil {
			return err
		}
		if _, err = tx.Exec(ctx, deleteUnmatched(""), mailboxID); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE contacts SET fetched_at = now() WHERE mailbox_id = $1 AND fetched_at IS NULL`, mailboxID)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("store: delete unmatched mail of %s: %w", mailboxID, err)
	}
	return n, nil
}

// ListContacts pages a mailbox's contacts by address, after the given one.
func (s *Store) ListContacts(ctx context.Context, mailboxID, after string, limit int) ([]Contact, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT address, COALESCE(name, ''), added_at, fetched_at FROM contacts
		WHERE mailbox_id = $1 AND address > $2 ORDER BY address LIMIT $3`, mailboxID, after, limit)
	if err != nil {
		return nil, fmt.Errorf("store: list contacts: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Contact, error) {
		var c Contact
		err := r.Scan(&c.Address, &c.Name, &c.AddedAt, &c.FetchedAt)
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("store: list contacts: %w", err)
	}
	return out, nil
}

// ContactCounts are how many contacts a mailbox has, and how many of them
// wait for their past mail.
type ContactCounts struct {
	Total     int64
	Unfetched int64
}

// CountContacts counts a mailbox's contacts.
func (s *Store) CountContacts(ctx context.Context, mailboxID string) (ContactCounts, error) {
	var c ContactCounts
	err := s.pool.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE fetched_at IS NULL) FROM contacts WHERE mailbox_id = $1`,
		mailboxID).Scan(&c.Total, &c.Unfetched)
	if err != nil {
		return c, fmt.Errorf("store: count contacts: %w", err)
	}
	return c, nil
}

// UnfetchedContacts returns up to limit contacts whose past mail has not
// been fetched, by address.
func (s *Store) UnfetchedContacts(ctx context.Context, mailboxID string, limit int) ([]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT address FROM contacts WHERE mailbox_id = $1 AND fetched_at IS NULL ORDER BY address LIMIT $2`,
		mailboxID, limit)
	if err != nil {
		return nil, fmt.Errorf("store: unfetched contacts: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("store: unfetched contacts: %w", err)
	}
	return out, nil
}

// MarkContactsFetched records that the contacts' past mail was fetched
// (after the mail itself was written).
func (s *Store) MarkContactsFetched(ctx context.Context, mailboxID string, addrs []string) error {
	_, err := s.pool.Exec(ctx, `UPDATE contacts SET fetched_at = now() WHERE mailbox_id = $1 AND address = ANY($2) AND fetched_at IS NULL`,
		mailboxID, addrs)
	if err != nil {
		return fmt.Errorf("store: mark contacts fetched: %w", err)
	}
	return nil
}

// MergeMessages writes messages found outside a folder's sync (a
// contact's past mail) without moving any cursor. With contactFilter only
// those from or to a contact (or already stored) are kept, as in a page.
// It returns how many were written.
func (s *Store) MergeMessages(ctx context.Context, mailboxID string, msgs []Message, contactFilter bool) (int, error) {
	seen := make(map[string]int, len(msgs))
	uniq := make([]Message, 0, len(msgs))
	for _, m := range msgs {
		if i, ok := seen[m.ID]; ok {
			uniq[i] = m
			continue
		}
		seen[m.ID] = len(uniq)
		uniq = append(uniq, m)
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := notDetached(ctx, tx, mailboxID); err != nil {
			return err
		}
		if contactFilter {
			kept, err := filterToContacts(ctx, tx, mailboxID, uniq)
			if err != nil {
				return err
			}
			uniq = kept
		}
		return mergeMessages(ctx, tx, mailboxID, uniq, false)
	})
	if err != nil {
		return 0, fmt.Errorf("store: merge messages: %w", err)
	}
	return len(uniq), nil
}

// filterToContacts keeps the messages from or to one of the mailbox's
// contacts (sender, To, Cc), and those already stored (kept mail stays
// current after its contact was removed with its mail kept).
func filterToContacts(ctx context.Context, tx pgx.Tx, mailboxID string, msgs []Message) ([]Message, error) {
	if len(msgs) == 0 {
		return msgs, nil
	}
	var addrs, ids []string
	for _, m := range msgs {
		ids = append(ids, m.ID)
		addrs = append(addrs, filterAddresses(m)...)
	}
	match := map[string]bool{}
	rows, err := tx.Query(ctx, `
		SELECT DISTINCT a FROM unnest($2::text[]) a JOIN contacts c ON c.mailbox_id = $1 AND c.address = lower(a)`, mailboxID, addrs)
	if err != nil {
		return nil, fmt.Errorf("store: match contacts: %w", err)
	}
	matched, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("store: match contacts: %w", err)
	}
	for _, a := range matched {
		match[a] = true
	}
	rows, err = tx.Query(ctx, `SELECT id FROM messages WHERE mailbox_id = $1 AND id = ANY($2)`, mailboxID, ids)
	if err != nil {
		return nil, fmt.Errorf("store: stored messages: %w", err)
	}
	stored, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("store: stored messages: %w", err)
	}
	have := map[string]bool{}
	for _, id := range stored {
		have[id] = true
	}
	kept := msgs[:0:0]
	for _, m := range msgs {
		if have[m.ID] || anyMatch(filterAddresses(m), match) {
			kept = append(kept, m)
		}
	}
	return kept, nil
}

// filterAddresses are the addresses the contact filter looks at: the
// sender, and the To and Cc recipients.
func filterAddresses(m Message) []string {
	out := make([]string, 0, 1+len(m.To)+len(m.Cc))
	if m.From.Address != "" {
		out = append(out, strings.TrimSpace(m.From.Address))
	}
	for _, r := range append(append([]Recipient(nil), m.To...), m.Cc...) {
		if r.Address != "" {
			out = append(out, strings.TrimSpace(r.Address))
		}
	}
	return out
}

func anyMatch(addrs []string, match map[string]bool) bool {
	for _, a := range addrs {
		if match[a] {
			return true
		}
	}
	return false
}
