package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Rates are a mailbox's sending limits (docs/graph.md#sending-limits).
type Rates struct {
	// Mailbox names the sending mailbox (its Graph user ID).
	Mailbox string
	// PerMinute is how many messages go in any 60 seconds (30).
	PerMinute int
	// DailyRecipients is how many recipients in any 24 hours (10,000;
	// 300 on Outlook.com).
	DailyRecipients int
	// NoQueue refuses a send that would have to wait, with
	// RateLimitedError, instead of queueing it.
	NoQueue bool
}

// RateLimitedError refuses a send the app asked not to queue: it could go
// at At.
type RateLimitedError struct{ At time.Time }

func (e *RateLimitedError) Error() string {
	return "store: the mailbox is over a sending rate until " + e.At.UTC().Format(time.RFC3339)
}

// ErrOverDailyLimit: one message has more recipients than a day allows.
var ErrOverDailyLimit = errors.New("store: more recipients than the mailbox may send to in a day")

type slot struct {
	at         time.Time
	recipients int
}

// slotTime is the earliest time at or after now a message to n recipients
// may go, given the mailbox's slots in time order (the last day's and any
// later ones). Times are given out in order, so the rule over every window
// of a minute is that the new slot is at least a minute after the
// PerMinute-th slot before it; the day's rule drops the oldest slots until
// the rest leave room for n.
func slotTime(now time.Time, slots []slot, n int, r Rates) (time.Time, error) {
	if n > r.DailyRecipients {
		return time.Time{}, ErrOverDailyLimit
	}
	t := now
	if len(slots) > 0 {
		t = maxTime(t, slots[len(slots)-1].at)
	}
	if len(slots) >= r.PerMinute {
		t = maxTime(t, slots[len(slots)-r.PerMinute].at.Add(time.Minute))
	}
	sum := n
	for _, s := range slots {
		sum += s.recipients
	}
	for i := 0; sum > r.DailyRecipients && i < len(slots); i++ {
		sum -= slots[i].recipients
		t = maxTime(t, slots[i].at.Add(24*time.Hour))
	}
	return t, nil
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// reserveSlot gives a new send its time in the mailbox's rates, inside
// the transaction that records the send; every process takes the same
// advisory lock on the mailbox first, so two sends never get one place.
func reserveSlot(ctx context.Context, tx pgx.Tx, sendID string, recipients int, r Rates) (time.Time, error) {
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('send_slots:' || $1, 0))`, r.Mailbox); err != nil {
		return time.Time{}, fmt.Errorf("store: lock the mailbox's rates: %w", err)
	}
	var now time.Time
	if err := tx.QueryRow(ctx, `SELECT now()`).Scan(&now); err != nil {
		return time.Time{}, fmt.Errorf("store: now: %w", err)
	}
	rows, err := tx.Query(ctx, `SELECT at, recipients FROM send_slots WHERE mailbox = $1 AND at > $2 ORDER BY at, send_id`, r.Mailbox, now.Add(-24*time.Hour))
	if err != nil {
		return time.Time{}, fmt.Errorf("store: the mailbox's sends: %w", err)
	}
	slots, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (slot, error) {
		var s slot
		err := row.Scan(&s.at, &s.recipients)
		return s, err
	})
	if err != nil {
		return time.Time{}, fmt.Errorf("store: the mailbox's sends: %w", err)
	}
	at, err := slotTime(now, slots, recipients, r)
	if err != nil {
		return time.Time{}, err
	}
	if r.NoQueue && at.After(now) {
		return time.Time{}, &RateLimitedError{At: at}
	}
	if _, err := tx.Exec(ctx, `INSERT INTO send_slots (send_id, mailbox, at, recipients) VALUES ($1, $2, $3, $4)`, sendID, r.Mailbox, at, recipients); err != nil {
		return time.Time{}, fmt.Errorf("store: the send's slot: %w", err)
	}
	return at, nil
}
