package activities

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"golang.org/x/sync/semaphore"
	"golang.org/x/time/rate"

	"github.com/outlookd/outlookd/store"
)

// ErrBudgetUnavailable fails a Graph request whose share of the budget
// could not be taken because Postgres did not answer: the request is not
// sent (it would be unbounded), and the activity retries.
var ErrBudgetUnavailable = errors.New("activities: the Graph budget in Postgres is unavailable")

// Budget is the budget every process shares (*store.Store): leased slots
// for the concurrency and a token bucket for the rate, per key.
type Budget interface {
	AcquireGraphSlot(ctx context.Context, key string, slots int, lease time.Duration) (store.GraphLease, bool, error)
	ExtendGraphSlot(ctx context.Context, l store.GraphLease, lease time.Duration) (bool, error)
	ReleaseGraphSlot(ctx context.Context, l store.GraphLease) error
	TakeGraphToken(ctx context.Context, key string, r store.GraphRate) (time.Duration, error)
	TakeGraphTokens(ctx context.Context, key string, r store.GraphRate, n int) (time.Duration, error)
	TakeGraphTokenAndSlot(ctx context.Context, key string, r store.GraphRate, slots int, lease time.Duration) (store.GraphLease, bool, time.Duration, error)
	ReturnGraphToken(ctx context.Context, key string, r store.GraphRate) error
	HoldGraphSlots(ctx context.Context, key string, slots int, lease time.Duration) (store.GraphHold, bool, error)
	ExtendGraphHold(ctx context.Context, h store.GraphHold, lease time.Duration) (bool, error)
	ReleaseGraphHold(ctx context.Context, h store.GraphHold) error
}

// MailboxLimits keeps outlookd inside Outlook's per app and mailbox limits
// (4 concurrent requests, 10,000 per 10 minutes; docs/graph.md#throttling):
// every Graph request for a mailbox takes a token and a slot first, so
// backfill, sync, sends and renewals share one budget. With a shared
// Budget, the budget holds across every process using the same Postgres:
// a slot is a leased row, the rate a token bucket row; a semaphore in
// front keeps one process from asking Postgres for more slots than
// exist. Without one (nil), the budget is this process's own:
// golang.org/x/time/rate and x/sync/semaphore do the accounting.
//
// Beyond the mailboxes, every request also keeps to Graph's global limit
// per app across tenants, and a directory read to the directory's budget
// per app and tenant (docs/graph.md#throttling), both shared the same way.
type MailboxLimits struct {
	concurrency int
	rate        store.GraphRate
	shared      Budget
	// dirRate is the directory's budget per app and tenant (directoryRate).
	dirRate store.GraphRate
	// clientID names the app whose requests are counted (SetApp).
	clientID string
	// app is the budget of Graph's global limit per app.
	app *appBudget
	// lease is how long a slot stays held without renewal: a process
	// killed mid-request loses its slots after it.
	lease time.Duration
	// storeTimeout bounds each statement of the shared budget.
	storeTimeout time.Duration

	mu      sync.Mutex
	boxes   map[string]*mailboxBudget
	tenants map[string]*rate.Limiter // in-process directory budgets only
}

// appRate is Graph's global limit per app, across all tenants and
// mailboxes (docs/graph.md#throttling): 130,000 requests per 10 seconds.
const (
	appRequests = 130000
	appWindow   = 10 * time.Second
)

// directoryRate is the directory's budget per app and tenant
// (docs/graph.md#throttling): 3,500 resource units per 10 s in the
// smallest tenants, a read costing at most 2. outlookd does not know a
// tenant's size, so it keeps to the smallest budget at the highest cost:
// 1,750 reads per 10 s, all at once at most.
var directoryRate = store.GraphRate{PerSecond: 175, Burst: 1750}

type mailboxBudget struct {
	key string
	sem *semaphore.Weighted
	lim *rate.Limiter // in-process budgets only
}

// NewMailboxLimits returns limits with Outlook's figures when zero, shared
// through shared (nil: this process's own).
func NewMailboxLimits(shared Budget, concurrency, perWindow int, window time.Duration) *MailboxLimits {
	if concurrency <= 0 {
		concurrency = 4
	}
	if perWindow <= 0 {
		perWindow = 10000
	}
	if window <= 0 {
		window = 10 * time.Minute
	}
	// A burst of a tenth of the window's budget, then the steady rate.
	r := store.GraphRate{PerSecond: float64(perWindow) / window.Seconds(), Burst: max(perWindow/10, 1)}
	l := &MailboxLimits{concurrency: concurrency, rate: r, shared: shared, dirRate: directoryRate, lease: 30 * time.Second,
		storeTimeout: 5 * time.Second, boxes: map[string]*mailboxBudget{}, tenants: map[string]*rate.Limiter{}}
	return l.SetApp("", 0, 0)
}

// SetApp names the app (its client ID) whose requests these limits
// count, and sets Graph's global limit per app to perWindow requests per
// window (130,000 per 10 seconds when zero). Every process of one app must
// name it alike: the app's budget is shared by its name. It returns l.
func (l *MailboxLimits) SetApp(clientID string, perWindow int, window time.Duration) *MailboxLimits {
	if perWindow <= 0 {
		perWindow = appRequests
	}
	if window <= 0 {
		window = appWindow
	}
	l.clientID = clientID
	l.app = newAppBudget("app:"+clientID, store.GraphRate{PerSecond: float64(perWindow) / window.Seconds(), Burst: max(perWindow/10, 1)})
	return l
}

// appBudget keeps Graph's global limit per app (docs/graph.md#throttling),
// which every request of every process of the app draws on: a token
// bucket row in Postgres, like a mailbox's rate, but not one round trip
// per request. A mailbox's row is touched by at most a handful of
// requests at once; the app's would be touched by every request of every
// worker, and one row updated thousands of times a second serialises
// them all on its lock. So a process takes the app's tokens from the
// shared bucket in batches (TakeGraphTokens, a twentieth of a second's
// worth at a time) and spends them locally, through a
// golang.org/x/time/rate limiter at the app's rate whose burst is the
// batch. The bucket counts a batch when it is taken, so the processes
// together never send more than the bucket allows; what a process holds
// and has not spent (at most a batch) is lost when it stops, which errs
// on the side of sending less. Without a shared Budget, the local limiter
// alone is the app's budget.
type appBudget struct {
	key   string
	rate  store.GraphRate
	batch int
	local *rate.Limiter
	// refill is held by the one caller taking the next batch.
	refill chan struct{}

	mu      sync.Mutex
	tokens  int       // taken from the shared bucket, not yet spent
	readyAt time.Time // when the bucket's reservation of them is over
}

func newAppBudget(key string, r store.GraphRate) *appBudget {
	batch := min(max(int(r.PerSecond/20), 1), r.Burst)
	return &appBudget{key: key, rate: r, batch: batch, refill: make(chan struct{}, 1),
		local: rate.NewLimiter(rate.Limit(r.PerSecond), batch)}
}

// takeAppToken waits for one token of the app's budget. A token taken
// and not used (ctx ended while it waited) is not given back.
func (l *MailboxLimits) takeAppToken(ctx context.Context) error {
	a := l.app
	if l.shared != nil {
		ready, err := l.prepaidAppToken(ctx)
		if err != nil {
			return err
		}
		if d := time.Until(ready); d > 0 {
			if err := waitToken(ctx, a.key, d); err != nil {
				return err
			}
		}
	}
	return a.local.Wait(ctx)
}

// prepaidAppToken takes one of the tokens this process holds of the
// app's shared bucket, taking the next batch when none is left, and says
// from when it may be spent.
func (l *MailboxLimits) prepaidAppToken(ctx context.Context) (time.Time, error) {
	a := l.app
	for {
		a.mu.Lock()
		if a.tokens > 0 {
			a.tokens--
			ready := a.readyAt
			a.mu.Unlock()
			return ready, nil
		}
		a.mu.Unlock()
		select {
		case a.refill <- struct{}{}:
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		}
		a.mu.Lock()
		empty := a.tokens == 0
		a.mu.Unlock()
		if !empty { // another caller took a batch while this one waited
			<-a.refill
			continue
		}
		wait, err := detached(ctx, l.storeTimeout, func(sctx context.Context) (time.Duration, error) {
			return l.shared.TakeGraphTokens(sctx, a.key, a.rate, a.batch)
		})
		if err == nil {
			a.mu.Lock()
			a.tokens += a.batch
			a.readyAt = time.Now().Add(wait)
			a.mu.Unlock()
		}
		<-a.refill
		if err != nil {
			return time.Time{}, fmt.Errorf("%w: %w", ErrBudgetUnavailable, err)
		}
	}
}

// SetLease sets how long a shared slot stays held without renewal (30 s
// unless set): the time a killed process's slots stay taken. A held slot
// is renewed every third of it. It returns l.
func (l *MailboxLimits) SetLease(d time.Duration) *MailboxLimits {
	l.lease = d
	return l
}

func (l *MailboxLimits) budget(key string) *mailboxBudget {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.boxes[key]
	if b == nil {
		b = &mailboxBudget{key: "mailbox:" + key, sem: semaphore.NewWeighted(int64(l.concurrency))}
		if l.shared == nil {
			b.lim = rate.NewLimiter(rate.Limit(l.rate.PerSecond), l.rate.Burst)
		}
		l.boxes[key] = b
	}
	return b
}

// Transport wraps next so that each request waits for the mailbox's budget.
// The slot is held until the response's body is read to its end or closed.
func (l *MailboxLimits) Transport(key string, next http.RoundTripper) http.RoundTripper {
	return &limitedTransport{l: l, b: l.budget(key), next: next}
}

// DirectoryTransport wraps next so that each request waits for a token of
// the tenant's directory budget, which every process shares like the
// mailboxes' (the directory limits no concurrency: no slot is taken).
func (l *MailboxLimits) DirectoryTransport(tenantID string, next http.RoundTripper) http.RoundTripper {
	return &directoryTransport{l: l, key: "directory:" + l.clientID + "/" + tenantID, next: next}
}

type directoryTransport struct {
	l    *MailboxLimits
	key  string
	next http.RoundTripper
}

func (t *directoryTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	ctx := r.Context()
	if t.l.shared == nil {
		t.l.mu.Lock()
		lim := t.l.tenants[t.key]
		if lim == nil {
			lim = rate.NewLimiter(rate.Limit(t.l.dirRate.PerSecond), t.l.dirRate.Burst)
			t.l.tenants[t.key] = lim
		}
		t.l.mu.Unlock()
		if err := lim.Wait(ctx); err != nil {
			return nil, err
		}
	} else if _, err := t.l.takeToken(ctx, t.key, t.l.dirRate); err != nil {
		return nil, err
	}
	if err := t.l.takeAppToken(ctx); err != nil {
		return nil, err
	}
	return t.next.RoundTrip(r)
}

type limitedTransport struct {
	l    *MailboxLimits
	b    *mailboxBudget
	next http.RoundTripper
}

func (t *limitedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	release, err := t.l.acquire(r.Context(), t.b)
	if err != nil {
		return nil, err
	}
	// The app's token last: a request waiting for its mailbox spends
	// none of the budget every mailbox shares.
	if err := t.l.takeAppToken(r.Context()); err != nil {
		release()
		return nil, err
	}
	resp, err := t.next.RoundTrip(r)
	if err != nil || resp.Body == nil || resp.Body == http.NoBody {
		release()
		return resp, err
	}
	resp.Body = &releasingBody{ReadCloser: resp.Body, release: release}
	return resp, nil
}

// acquire waits for a token and a slot of b, and returns what gives the
// slot back.
func (l *MailboxLimits) acquire(ctx context.Context, b *mailboxBudget) (func(), error) {
	if err := b.sem.Acquire(ctx, 1); err != nil {
		return nil, err
	}
	if l.shared == nil {
		if err := b.lim.Wait(ctx); err != nil {
			b.sem.Release(1)
			return nil, err
		}
		return func() { b.sem.Release(1) }, nil
	}
	release, err := l.acquireShared(ctx, b.key)
	if err != nil {
		b.sem.Release(1)
		return nil, err
	}
	return func() { release(); b.sem.Release(1) }, nil
}

// acquireShared takes a token of key's bucket and a slot in one
// statement when the bucket has a token; else it waits out the token's
// reservation, then asks for a slot, retrying with jittered backoff while
// every slot is held. Each statement runs detached from ctx (bounded by
// storeTimeout), so a cancellation never leaves a row taken behind it:
// what was taken is given back before ctx's error is returned.
func (l *MailboxLimits) acquireShared(ctx context.Context, key string) (func(), error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// Token and slot in one statement when the token needs no wait.
	type first struct {
		lease store.GraphLease
		held  bool
		wait  time.Duration
	}
	f, err := detached(ctx, l.storeTimeout, func(sctx context.Context) (first, error) {
		lease, held, wait, err := l.shared.TakeGraphTokenAndSlot(sctx, key, l.rate, l.concurrency, l.lease)
		return first{lease, held, wait}, err
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBudgetUnavailable, err)
	}
	giveBack := func() {
		_, _ = detached(ctx, l.storeTimeout, func(sctx context.Context) (struct{}, error) {
			return struct{}{}, l.shared.ReturnGraphToken(sctx, key, l.rate)
		})
	}
	if f.held {
		if err := ctx.Err(); err != nil {
			l.releaseShared(ctx, f.lease)
			giveBack()
			return nil, err
		}
		return l.keep(ctx, f.lease), nil
	}
	if f.wait > 0 {
		if err := waitToken(ctx, key, f.wait); err != nil {
			giveBack()
			return nil, err
		}
	}
	for attempt := 0; ; attempt++ {
		var ok bool
		lease, err := detached(ctx, l.storeTimeout, func(sctx context.Context) (store.GraphLease, error) {
			lease, held, err := l.shared.AcquireGraphSlot(sctx, key, l.concurrency, l.lease)
			ok = held
			return lease, err
		})
		if err != nil {
			giveBack()
			return nil, fmt.Errorf("%w: %w", ErrBudgetUnavailable, err)
		}
		if ok {
			if err := ctx.Err(); err != nil {
				l.releaseShared(ctx, lease)
				giveBack()
				return nil, err
			}
			return l.keep(ctx, lease), nil
		}
		if err := sleep(ctx, slotBackoff(attempt)); err != nil {
			giveBack()
			return nil, err
		}
	}
}

// takeToken takes a token of key's shared bucket, waiting out its
// reservation, and returns what gives it back; a wait past ctx's deadline
// gives it back at once.
func (l *MailboxLimits) takeToken(ctx context.Context, key string, r store.GraphRate) (giveBack func(), err error) {
	wait, err := detached(ctx, l.storeTimeout, func(sctx context.Context) (time.Duration, error) {
		return l.shared.TakeGraphToken(sctx, key, r)
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBudgetUnavailable, err)
	}
	giveBack = func() {
		_, _ = detached(ctx, l.storeTimeout, func(sctx context.Context) (struct{}, error) {
			return struct{}{}, l.shared.ReturnGraphToken(sctx, key, r)
		})
	}
	if wait > 0 {
		if err := waitToken(ctx, key, wait); err != nil {
			giveBack()
			return nil, err
		}
	}
	return giveBack, nil
}

// waitToken waits out a token's reservation, unless it would outlast
// ctx's deadline.
func waitToken(ctx context.Context, key string, wait time.Duration) error {
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
		return fmt.Errorf("activities: %s's Graph rate would have the request wait %s, past its deadline: %w", key, wait.Round(time.Millisecond), context.DeadlineExceeded)
	}
	return sleep(ctx, wait)
}

// keep renews lease every third of its length until the returned function
// releases it.
func (l *MailboxLimits) keep(ctx context.Context, lease store.GraphLease) func() {
	stop := l.renewing(ctx, func(sctx context.Context) (bool, error) { return l.shared.ExtendGraphSlot(sctx, lease, l.lease) },
		"Graph slot not renewed", "key", lease.Key, "slot", lease.Slot)
	var once sync.Once
	return func() {
		once.Do(func() {
			stop()
			l.releaseShared(ctx, lease)
		})
	}
}

// renewing runs renew every third of the lease until the returned
// function stops it (and waits for it to end), logging msg with args when
// a renewal fails or finds the lease lost.
func (l *MailboxLimits) renewing(ctx context.Context, renew func(context.Context) (bool, error), msg string, args ...any) (stop func()) {
	stopped := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(l.lease / 3)
		defer tick.Stop()
		for {
			select {
			case <-stopped:
				return
			case <-tick.C:
				held, err := detached(ctx, l.storeTimeout, renew)
				if err != nil || !held {
					slog.Warn(msg, append(args, "expired", err == nil, "err", err)...)
				}
			}
		}
	}()
	return func() {
		close(stopped)
		<-done
	}
}

func (l *MailboxLimits) releaseShared(ctx context.Context, lease store.GraphLease) {
	if _, err := detached(ctx, l.storeTimeout, func(sctx context.Context) (struct{}, error) {
		return struct{}{}, l.shared.ReleaseGraphSlot(sctx, lease)
	}); err != nil {
		// The lease expires on its own.
		slog.Warn("Graph slot not released", "key", lease.Key, "slot", lease.Slot, "err", err)
	}
}

// detached runs one statement of the shared budget detached from ctx's
// cancellation, bounded by timeout.
func detached[T any](ctx context.Context, timeout time.Duration, fn func(context.Context) (T, error)) (T, error) {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	return fn(sctx)
}

// slotBackoff is how long to wait before asking again for a slot: from
// 2 ms doubling to 100 ms, drawn from its upper half so that waiting
// processes spread out.
func slotBackoff(attempt int) time.Duration {
	d := 100 * time.Millisecond
	if attempt < 6 {
		d = 2 * time.Millisecond << attempt
	}
	return d/2 + rand.N(d/2+1)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// releasingBody gives the request's slot back when the body is read to
// its end or closed.
type releasingBody struct {
	io.ReadCloser
	once    sync.Once
	release func()
}

func (b *releasingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil {
		b.once.Do(b.release)
	}
	return n, err
}

func (b *releasingBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(b.release)
	return err
}

// heldTokenBatch is how many of a held mailbox's rate tokens are taken in
// one statement.
const heldTokenBatch = 4

// Hold takes the whole of a mailbox's budget for one caller that is, for
// a while, its only user (a mailbox backfilled ahead of its workflow):
// every slot in one statement (store.HoldGraphSlots), renewed while held,
// and the rate's tokens heldTokenBatch at a time. Requests through the
// returned transport then wait only for one of the held slots, in this
// process, instead of spending two statements each; the app's global
// budget is kept as for any request. release gives the slots and the
// tokens left back. ok is false, and nothing held, when the budget is
// this process's own or another holder has a slot of the mailbox: the
// caller uses Transport.
func (l *MailboxLimits) Hold(ctx context.Context, key string, next http.RoundTripper) (rt http.RoundTripper, release func(), ok bool, err error) {
	if l.shared == nil {
		return nil, nil, false, nil
	}
	b := l.budget(key)
	if !b.sem.TryAcquire(int64(l.concurrency)) {
		return nil, nil, false, nil // in use in this process
	}
	h, err := detached(ctx, l.storeTimeout, func(sctx context.Context) (store.GraphHold, error) {
		h, held, err := l.shared.HoldGraphSlots(sctx, b.key, l.concurrency, l.lease)
		if !held {
			h = store.GraphHold{}
		}
		return h, err
	})
	if err != nil || h.Holder == "" {
		b.sem.Release(int64(l.concurrency))
		if err != nil {
			return nil, nil, false, fmt.Errorf("%w: %w", ErrBudgetUnavailable, err)
		}
		return nil, nil, false, nil
	}
	t := &heldTransport{l: l, key: b.key, next: next, slots: semaphore.NewWeighted(int64(l.concurrency))}
	stop := l.renewing(ctx, func(sctx context.Context) (bool, error) { return l.shared.ExtendGraphHold(sctx, h, l.lease) },
		"Graph hold not renewed", "key", key)
	var once sync.Once
	release = func() {
		once.Do(func() {
			stop()
			if _, err := detached(ctx, l.storeTimeout, func(sctx context.Context) (struct{}, error) {
				return struct{}{}, l.shared.ReleaseGraphHold(sctx, h)
			}); err != nil {
				slog.Warn("Graph hold not released", "key", key, "err", err) // it lapses on its own
			}
			t.mu.Lock()
			left := t.tokens
			t.tokens = 0
			t.mu.Unlock()
			for range left {
				_, _ = detached(ctx, l.storeTimeout, func(sctx context.Context) (struct{}, error) {
					return struct{}{}, l.shared.ReturnGraphToken(sctx, b.key, l.rate)
				})
			}
			b.sem.Release(int64(l.concurrency))
		})
	}
	return t, release, true, nil
}

// heldTransport sends a held mailbox's requests (Hold).
type heldTransport struct {
	l     *MailboxLimits
	key   string
	next  http.RoundTripper
	slots *semaphore.Weighted

	mu     sync.Mutex
	tokens int // taken from the mailbox's bucket, not yet spent
}

func (t *heldTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	ctx := r.Context()
	if err := t.slots.Acquire(ctx, 1); err != nil {
		return nil, err
	}
	release := func() { t.slots.Release(1) }
	if err := t.takeToken(ctx); err != nil {
		release()
		return nil, err
	}
	if err := t.l.takeAppToken(ctx); err != nil {
		release()
		return nil, err
	}
	resp, err := t.next.RoundTrip(r)
	if err != nil || resp.Body == nil || resp.Body == http.NoBody {
		release()
		return resp, err
	}
	resp.Body = &releasingBody{ReadCloser: resp.Body, release: release}
	return resp, nil
}

// takeToken spends one of the mailbox's rate tokens, taking the next
// batch from the shared bucket when none is left (and waiting out its
// reservation).
func (t *heldTransport) takeToken(ctx context.Context) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.tokens > 0 {
		t.tokens--
		return nil
	}
	n := min(heldTokenBatch, t.l.rate.Burst)
	wait, err := detached(ctx, t.l.storeTimeout, func(sctx context.Context) (time.Duration, error) {
		return t.l.shared.TakeGraphTokens(sctx, t.key, t.l.rate, n)
	})
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBudgetUnavailable, err)
	}
	// Taken: spent or given back at the release, even if the wait ends
	// early.
	t.tokens = n - 1
	if wait > 0 {
		return waitToken(ctx, t.key, wait)
	}
	return nil
}
