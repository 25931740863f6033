package activities

import (
	"net/http"
	"sync"
	"time"

	"golang.org/x/sync/semaphore"
	"golang.org/x/time/rate"
)

// MailboxLimits keeps this process inside Outlook's per app and mailbox
// limits (4 concurrent requests, 10,000 per 10 minutes; docs/graph.md#throttling): every
// Graph request for a mailbox waits for a slot and a token first, so
// backfill, sync and renewals share one budget. golang.org/x/time/rate and
// x/sync/semaphore do the accounting.
type MailboxLimits struct {
	concurrency int64
	perWindow   int
	window      time.Duration

	mu    sync.Mutex
	boxes map[string]*mailboxBudget
}

type mailboxBudget struct {
	sem *semaphore.Weighted
	lim *rate.Limiter
}

// NewMailboxLimits returns limits with Outlook's figures when zero.
func NewMailboxLimits(concurrency, perWindow int, window time.Duration) *MailboxLimits {
	if concurrency <= 0 {
		concurrency = 4
	}
	if perWindow <= 0 {
		perWindow = 10000
	}
	if window <= 0 {
		window = 10 * time.Minute
	}
	return &MailboxLimits{concurrency: int64(concurrency), perWindow: perWindow, window: window, boxes: map[string]*mailboxBudget{}}
}

func (l *MailboxLimits) budget(key string) *mailboxBudget {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.boxes[key]
	if b == nil {
		// A burst of a tenth of the window's budget, then the steady rate.
		b = &mailboxBudget{sem: semaphore.NewWeighted(l.concurrency),
			lim: rate.NewLimiter(rate.Limit(float64(l.perWindow)/l.window.Seconds()), max(l.perWindow/10, 1))}
		l.boxes[key] = b
	}
	return b
}

// Transport wraps next so that each request waits for the mailbox's budget.
func (l *MailboxLimits) Transport(key string, next http.RoundTripper) http.RoundTripper {
	return &limitedTransport{b: l.budget(key), next: next}
}

type limitedTransport struct {
	b    *mailboxBudget
	next http.RoundTripper
}

func (t *limitedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	ctx := r.Context()
	if err := t.b.lim.Wait(ctx); err != nil {
		return nil, err
	}
	if err := t.b.sem.Acquire(ctx, 1); err != nil {
		return nil, err
	}
	defer t.b.sem.Release(1)
	return t.next.RoundTrip(r)
}
