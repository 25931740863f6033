package graphsim

import (
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// throttler enforces Outlook's per app and mailbox limits (docs/graph.md#throttling): a
// number of concurrent requests, and a request budget per window, shared by
// every request of that app to that mailbox.
type throttler struct {
	concurrency int
	requests    int
	window      time.Duration
	clock       *Clock

	mu    sync.Mutex
	pairs map[pairKey]*pairState
}

type pairKey struct{ app, mailbox string }

type pairState struct {
	inflight int
	limiter  *rate.Limiter
}

func newThrottler(concurrency, requests int, window time.Duration, clock *Clock) *throttler {
	return &throttler{concurrency: concurrency, requests: requests, window: window, clock: clock, pairs: map[pairKey]*pairState{}}
}

// throttled says why a request was refused and when to retry.
type throttled struct {
	reason     string
	retryAfter time.Duration
}

// acquire admits a request or says why not; release must be called once
// for an admitted request.
func (t *throttler) acquire(app, mailbox string) (release func(), th *throttled) {
	t.mu.Lock()
	defer t.mu.Unlock()
	k := pairKey{app, mailbox}
	st := t.pairs[k]
	if st == nil {
		st = &pairState{limiter: rate.NewLimiter(rate.Limit(float64(t.requests)/t.window.Seconds()), t.requests)}
		t.pairs[k] = st
	}
	if st.inflight >= t.concurrency {
		return nil, &throttled{reason: "Application is over its MailboxConcurrency limit.", retryAfter: time.Second}
	}
	now := t.clock.Now()
	res := st.limiter.ReserveN(now, 1)
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		secs := math.Ceil(d.Seconds())
		return nil, &throttled{reason: "Application is over its MailboxRequests limit.", retryAfter: time.Duration(secs) * time.Second}
	}
	st.inflight++
	return func() {
		t.mu.Lock()
		st.inflight--
		t.mu.Unlock()
	}, nil
}

// reset forgets all budgets (control API).
func (t *throttler) reset() {
	t.mu.Lock()
	t.pairs = map[pairKey]*pairState{}
	t.mu.Unlock()
}
