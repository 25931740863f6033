// Package retention deletes the mail kept for disconnected connections and
// detached mailboxes once their keep period has ended (the settings'
// retention_days; docs/storage.md#retention).
package retention

import (
	"context"
	"log/slog"
	"time"

	"github.com/outlookd/outlookd/store"
)

// Purger is what the sweeper needs of the store.
type Purger interface {
	PurgeExpiredMail(ctx context.Context, now time.Time, limit int) ([]store.ExpiredMail, error)
}

// UploadPurger deletes expired uploads (docs/sending.md#large-attachments).
type UploadPurger interface {
	PurgeExpiredUploads(ctx context.Context, now time.Time, limit int) (int, error)
}

// Sweeper deletes expired kept mail every Every (default an hour), and
// expired uploads when Uploads is set. Every worker process may run one:
// each deletion is its own idempotent transaction.
type Sweeper struct {
	Store   Purger
	Uploads UploadPurger
	Log     *slog.Logger
	Every   time.Duration
	Now     func() time.Time
}

// batch is how many mailboxes one pass handles before the next.
const batch = 50

// Run sweeps until ctx ends.
func (s *Sweeper) Run(ctx context.Context) error {
	every := s.Every
	if every <= 0 {
		every = time.Hour
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		s.Sweep(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Sweep deletes every mailbox's expired kept mail now, batch by batch,
// and says how many mailboxes it emptied.
func (s *Sweeper) Sweep(ctx context.Context) int {
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	s.sweepUploads(ctx, now)
	n := 0
	for ctx.Err() == nil {
		done, err := s.Store.PurgeExpiredMail(ctx, now(), batch)
		for _, e := range done {
			s.Log.Info("kept mail deleted at the end of its retention period", "mailbox", e.MailboxID, "connection", e.ConnectionID, "messages", e.Deleted)
		}
		n += len(done)
		if err != nil {
			s.Log.Warn("retention sweep failed; retried at the next", "err", err)
			return n
		}
		if len(done) < batch {
			return n
		}
	}
	return n
}

// sweepUploads deletes the expired uploads, batch by batch.
func (s *Sweeper) sweepUploads(ctx context.Context, now func() time.Time) {
	if s.Uploads == nil {
		return
	}
	total := 0
	for ctx.Err() == nil {
		n, err := s.Uploads.PurgeExpiredUploads(ctx, now(), batch)
		total += n
		if err != nil {
			s.Log.Warn("upload sweep failed; retried at the next", "err", err)
			break
		}
		if n < batch {
			break
		}
	}
	if total > 0 {
		s.Log.Info("expired uploads deleted", "uploads", total)
	}
}
