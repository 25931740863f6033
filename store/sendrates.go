package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
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

// SlotGuard is added to the minute of the per-minute rate: a slot is taken
// in Postgres just before the request to Graph, and Graph counts the
// message when the request reaches it, a moment later and not always the
// same moment later. A second between the slot freed and the slot taken
// keeps the 31st message of a minute out of the minute Graph counts.
const SlotGuard = time.Second

// staleBooking is how long past its time a booking still holds its place
// ahead of later sends: a send whose workflow runs that far behind is
// placed when it comes, not counted at every other send's turn meanwhile.
const staleBooking = 5 * time.Minute

// slot is a row of send_slots: a send's place in its mailbox's rates,
// taken (it went to Graph at at) or booked (it waits for at).
type slot struct {
	sendID     string
	at         time.Time
	recipients int
	taken      bool
}

// planner places messages in a mailbox's rates one after another. It
// starts from the slots taken (in time order) and gives each message the
// earliest time at or after from that keeps every minute within
// PerMinute messages and every 24 hours within DailyRecipients
// recipients. Times are given out in order, so the minute's rule is that
// a new slot is at least a minute (and SlotGuard) after the PerMinute-th
// slot before it; the day's rule drops the oldest slots until the rest
// leave room for n.
type planner struct {
	r     Rates
	slots []slot
	lo    int // slots[:lo] left the day of every later placement
	sum   int // recipients of slots[lo:]
}

func newPlanner(r Rates, taken []slot) *planner {
	p := &planner{r: r, slots: append([]slot(nil), taken...)}
	for _, s := range taken {
		p.sum += s.recipients
	}
	return p
}

// place gives a message to n recipients its time, at or after from.
func (p *planner) place(from time.Time, n int) (time.Time, error) {
	if n > p.r.DailyRecipients {
		return time.Time{}, ErrOverDailyLimit
	}
	t := from
	if k := len(p.slots); k > 0 {
		t = maxTime(t, p.slots[k-1].at)
		if k >= p.r.PerMinute {
			t = maxTime(t, p.slots[k-p.r.PerMinute].at.Add(time.Minute+SlotGuard))
		}
	}
	sum := p.sum + n
	for ; sum > p.r.DailyRecipients && p.lo < len(p.slots); p.lo++ {
		sum -= p.slots[p.lo].recipients
		t = maxTime(t, p.slots[p.lo].at.Add(24*time.Hour))
	}
	p.slots = append(p.slots, slot{at: t, recipients: n})
	p.sum = sum
	return t, nil
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// ahead says whether booking a comes before booking b in the queue.
func ahead(a, b slot) bool {
	if !a.at.Equal(b.at) {
		return a.at.Before(b.at)
	}
	return a.sendID < b.sendID
}

// placeSend is when the send own (to n recipients) may go, at or after
// now: after the slots taken and after the bookings ahead of it in the
// queue, each placed at its own time or now, whichever is later. A send
// with no booking (own nil) queues behind every booking; one whose slot
// was taken before (a submission found not to have reached Graph) is
// ahead of them all. Bookings more than staleBooking past their time are
// not waited for.
func placeSend(now time.Time, slots []slot, own *slot, n int, r Rates) (time.Time, error) {
	var taken, queue []slot
	for _, s := range slots {
		switch {
		case own != nil && s.sendID == own.sendID:
		case s.taken:
			taken = append(taken, s)
		case s.at.Before(now.Add(-staleBooking)):
		case own == nil || (!own.taken && ahead(s, *own)):
			queue = append(queue, s)
		}
	}
	slices.SortFunc(taken, func(a, b slot) int { return a.at.Compare(b.at) })
	slices.SortFunc(queue, func(a, b slot) int {
		if ahead(a, b) {
			return -1
		}
		return 1
	})
	p := newPlanner(r, taken)
	for _, s := range queue {
		if _, err := p.place(maxTime(now, s.at), s.recipients); err != nil {
			return time.Time{}, err
		}
	}
	return p.place(now, n)
}

// lockRates takes the mailbox's advisory lock (every process takes it
// before reading or writing the mailbox's slots), and answers the
// database's clock once it is held together with the mailbox's slots of
// the last day and every booking.
func lockRates(ctx context.Context, tx pgx.Tx, mailbox string) (time.Time, []slot, error) {
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('send_slots:' || $1, 0))`, mailbox); err != nil {
		return time.Time{}, nil, fmt.Errorf("store: lock the mailbox's rates: %w", err)
	}
	// clock_timestamp, not now(): the transaction may have begun before
	// the previous holder of the lock took its slot.
	var now time.Time
	if err := tx.QueryRow(ctx, `SELECT clock_timestamp()`).Scan(&now); err != nil {
		return time.Time{}, nil, fmt.Errorf("store: now: %w", err)
	}
	rows, err := tx.Query(ctx, `SELECT send_id, at, recipients, taken FROM send_slots WHERE mailbox = $1 AND at > $2`, mailbox, now.Add(-24*time.Hour))
	if err != nil {
		return time.Time{}, nil, fmt.Errorf("store: the mailbox's sends: %w", err)
	}
	slots, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (slot, error) {
		var s slot
		err := row.Scan(&s.sendID, &s.at, &s.recipients, &s.taken)
		return s, err
	})
	if err != nil {
		return time.Time{}, nil, fmt.Errorf("store: the mailbox's sends: %w", err)
	}
	return now, slots, nil
}

// bookSlot gives a new send its place in the mailbox's queue, inside the
// transaction that records it, and answers the time it is expected to go.
// The booking holds no slot: the slot is taken by TakeSlot just before
// the submission.
func bookSlot(ctx context.Context, tx pgx.Tx, sendID string, recipients int, r Rates) (time.Time, error) {
	now, slots, err := lockRates(ctx, tx, r.Mailbox)
	if err != nil {
		return time.Time{}, err
	}
	at, err := placeSend(now, slots, nil, recipients, r)
	if err != nil {
		return time.Time{}, err
	}
	if r.NoQueue && at.After(now) {
		return time.Time{}, &RateLimitedError{At: at}
	}
	if _, err := tx.Exec(ctx, `
		INSERT INTO send_slots (send_id, mailbox, at, recipients, taken) VALUES ($1, $2, $3, $4, false)
		ON CONFLICT (send_id) DO UPDATE SET mailbox = EXCLUDED.mailbox, at = EXCLUDED.at, recipients = EXCLUDED.recipients, taken = false`,
		sendID, r.Mailbox, at, recipients); err != nil {
		return time.Time{}, fmt.Errorf("store: the send's place: %w", err)
	}
	return at, nil
}

// ErrSendEnded: the send is final (or gone); nothing may be submitted.
var ErrSendEnded = errors.New("store: the send has ended")

// ErrSubmissionMade: the submission of that number was recorded before
// (it ran, and may have reached Graph); it must not be made again.
var ErrSubmissionMade = errors.New("store: this submission of the send was made before")

// TakeSlot takes the send's slot in its mailbox's rates just before it is
// submitted to Graph, under the mailbox's advisory lock (every process
// counts the same rows). When the rates have room now, past the slots
// taken and the bookings ahead of it, the slot is taken at the database's
// clock, the send becomes sending (with its draft, when given) and the
// zero time is answered: submit now. Otherwise the send's booking moves
// to the next free time, which is answered and becomes its not_before
// (the API shows it): submit then, and take the slot again.
//
// A send holds one slot whatever happens: taking it again (the answer
// lost, or a submission that did not reach Graph tried again) moves the
// send's own slot, never adds one.
//
// submission, when above zero, numbers the submission (the workflow's
// count): a slot taken records it, in the same transaction, and a number
// already recorded is ErrSubmissionMade, with nothing changed: the same
// submission ran before and may have reached Graph.
func (s *Store) TakeSlot(ctx context.Context, sendID, draftID string, r Rates, submission int) (wait time.Time, err error) {
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		now, slots, err := lockRates(ctx, tx, r.Mailbox)
		if err != nil {
			return err
		}
		var state string
		var recipients, made int
		err = tx.QueryRow(ctx, `SELECT state, recipients, submission FROM sends WHERE id = $1 FOR UPDATE`, sendID).Scan(&state, &recipients, &made)
		if errors.Is(err, pgx.ErrNoRows) || err == nil && SendFinal(state) {
			return fmt.Errorf("store: send %s: %w", sendID, ErrSendEnded)
		}
		if err != nil {
			return fmt.Errorf("store: send %s: %w", sendID, err)
		}
		if submission > 0 && made >= submission {
			return fmt.Errorf("store: send %s, submission %d: %w", sendID, submission, ErrSubmissionMade)
		}
		recipients = max(recipients, 1)
		var own *slot
		for i := range slots {
			if slots[i].sendID == sendID {
				own = &slots[i]
			}
		}
		at, err := placeSend(now, slots, own, recipients, r)
		if err != nil {
			return err
		}
		taken := !at.After(now)
		if taken {
			wait = time.Time{}
			at = now
		} else {
			wait = at
		}
		if _, err := tx.Exec(ctx, `
			INSERT INTO send_slots (send_id, mailbox, at, recipients, taken) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (send_id) DO UPDATE SET mailbox = EXCLUDED.mailbox, at = EXCLUDED.at, recipients = EXCLUDED.recipients, taken = EXCLUDED.taken`,
			sendID, r.Mailbox, at, recipients, taken); err != nil {
			return fmt.Errorf("store: the send's slot: %w", err)
		}
		if taken {
			_, err = tx.Exec(ctx, `UPDATE sends SET state = 'sending', draft_id = COALESCE(NULLIF($2, ''), draft_id), submission = GREATEST(submission, $3), updated_at = now() WHERE id = $1`, sendID, draftID, submission)
		} else {
			_, err = tx.Exec(ctx, `UPDATE sends SET not_before = $3, draft_id = COALESCE(NULLIF($2, ''), draft_id), updated_at = now() WHERE id = $1`, sendID, draftID, at)
		}
		if err != nil {
			return fmt.Errorf("store: send %s: %w", sendID, err)
		}
		return nil
	})
	if err != nil {
		return time.Time{}, err
	}
	return wait, nil
}
