package store

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
)

// InboxEntry is a notification waiting to become a signal.
type InboxEntry struct {
	Seq          int64
	ConnectionID string
	// MailboxID names the mailbox of an application connection whose
	// workflow the signal goes to; empty, the connection's.
	MailboxID string
	Signal    string // changes or lifecycle
	Payload   []byte // JSON of the lifecycle signal
}

// Inbox writes notification entries durably, committing the entries of
// concurrent requests together (group commit in the application): a
// request waits for one commit, and many requests share it.
type Inbox struct {
	s    *Store
	reqs chan inboxReq
	stop context.CancelFunc
	wg   sync.WaitGroup

	// Commits counts the commits tried (each shared by the requests that
	// gathered for it).
	Commits atomic.Int64
}

type inboxReq struct {
	entries []InboxEntry
	done    chan error
}

// NewInbox starts committers (4: one commit runs while the next batch
// gathers); Close stops them.
func NewInbox(s *Store) *Inbox {
	ctx, cancel := context.WithCancel(context.Background())
	ib := &Inbox{s: s, reqs: make(chan inboxReq, 1024), stop: cancel}
	for range 4 {
		ib.wg.Add(1)
		go ib.commit(ctx)
	}
	return ib
}

// Close stops the committers; adds still waiting end with their contexts.
func (ib *Inbox) Close() {
	ib.stop()
	ib.wg.Wait()
}

// Add commits entries; it returns once they are durable.
func (ib *Inbox) Add(ctx context.Context, entries []InboxEntry) error {
	if len(entries) == 0 {
		return nil
	}
	req := inboxReq{entries: entries, done: make(chan error, 1)}
	select {
	case ib.reqs <- req:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-req.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (ib *Inbox) commit(ctx context.Context) {
	defer ib.wg.Done()
	for {
		var batch []inboxReq
		select {
		case r := <-ib.reqs:
			batch = append(batch, r)
		case <-ctx.Done():
			return
		}
	gather:
		for len(batch) < 512 {
			select {
			case r := <-ib.reqs:
				batch = append(batch, r)
			default:
				break gather
			}
		}
		var rows [][]any
		for _, r := range batch {
			for _, e := range r.entries {
				var payload any
				if e.Payload != nil {
					payload = string(e.Payload)
				}
				rows = append(rows, []any{e.ConnectionID, e.MailboxID, e.Signal, payload})
			}
		}
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		_, err := ib.s.pool.CopyFrom(cctx, pgx.Identifier{"notification_inbox"}, []string{"connection_id", "mailbox_id", "signal", "payload"}, pgx.CopyFromRows(rows))
		cancel()
		ib.Commits.Add(1)
		if err != nil {
			err = fmt.Errorf("store: inbox: %w", err)
		}
		for _, r := range batch {
			r.done <- err
		}
	}
}

// CatchUp adds a changes entry with the payload for every connection (and
// application connection's mailbox) with a live subscription in one
// statement, and answers how many: after the receiver refused
// notifications, each of them may have missed some.
func (ib *Inbox) CatchUp(ctx context.Context, payload []byte) (int64, error) {
	tag, err := ib.s.pool.Exec(ctx, `
		INSERT INTO notification_inbox (connection_id, mailbox_id, signal, payload)
		SELECT DISTINCT connection_id, mailbox_id, 'changes', $1::jsonb FROM subscriptions`, string(payload))
	if err != nil {
		return 0, fmt.Errorf("store: inbox catch-up: %w", err)
	}
	return tag.RowsAffected(), nil
}

// ForwardInbox takes up to limit entries (locked, so concurrent forwarders
// take different ones), hands them to fn, and deletes those fn reports
// done, in one transaction. It returns how many it took.
func (s *Store) ForwardInbox(ctx context.Context, limit int, fn func([]InboxEntry) []int64) (int, error) {
	n := 0
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT seq, connection_id, mailbox_id, signal, payload FROM notification_inbox ORDER BY seq LIMIT $1 FOR UPDATE SKIP LOCKED`, limit)
		if err != nil {
			return err
		}
		entries, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (InboxEntry, error) {
			var e InboxEntry
			err := r.Scan(&e.Seq, &e.ConnectionID, &e.MailboxID, &e.Signal, &e.Payload)
			return e, err
		})
		if err != nil || len(entries) == 0 {
			return err
		}
		n = len(entries)
		done := fn(entries)
		if len(done) == 0 {
			return nil
		}
		_, err = tx.Exec(ctx, `DELETE FROM notification_inbox WHERE seq = ANY($1)`, done)
		return err
	})
	if err != nil {
		return n, fmt.Errorf("store: forward inbox: %w", err)
	}
	return n, nil
}

// InboxLen counts the entries waiting.
func (s *Store) InboxLen(ctx context.Context) (int64, error) {
	var n int64
	err := s.pool.QueryRow(ctx, `SELECT count(*) FROM notification_inbox`).Scan(&n)
	return n, err
}
