package graphsim

import (
	"math"
	"net/http"
	"strconv"
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
	// buckets are the token buckets of the limits beyond Outlook's: per
	// app ("app "+id) and per app and tenant for the directory ("dir
	// "+app+"/"+tenant).
	buckets map[string]*rate.Limiter
}

type pairKey struct{ app, mailbox string }

type pairState struct {
	inflight int
	// peak is the most requests ever in flight at once, admitted or
	// refused: what the clients tried, not what the limit let through.
	peak    int
	refused int64
	limiter *rate.Limiter
}

// MailboxLoad is what the simulator saw of one app's requests to one
// mailbox since the last throttle reset: the most in flight at once
// (counting those refused for concurrency) and how many were refused.
type MailboxLoad struct {
	App      string `json:"app"`
	Mailbox  string `json:"mailbox"`
	InFlight int    `json:"in_flight"`
	Peak     int    `json:"peak"`
	// Refused counts the requests answered 429 for the mailbox's
	// concurrency.
	Refused int64 `json:"refused"`
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
	st.peak = max(st.peak, st.inflight+1)
	if st.inflight >= t.concurrency {
		st.refused++
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

// loads reports every app and mailbox pair's load, in no order.
func (t *throttler) loads() []MailboxLoad {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]MailboxLoad, 0, len(t.pairs))
	for k, st := range t.pairs {
		out = append(out, MailboxLoad{App: k.app, Mailbox: k.mailbox, InFlight: st.inflight, Peak: st.peak, Refused: st.refused})
	}
	return out
}

// reset forgets all budgets (control API).
func (t *throttler) reset() {
	t.mu.Lock()
	t.pairs = map[pairKey]*pairState{}
	t.buckets = nil
	t.mu.Unlock()
}

// take spends cost from the bucket key, which holds limit per window; over
// it, it says how long to wait (whole seconds) and spends nothing. used is
// the share of the bucket spent after this request.
func (t *throttler) take(key string, cost, limit int, window time.Duration) (wait time.Duration, used float64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.buckets == nil {
		t.buckets = map[string]*rate.Limiter{}
	}
	b := t.buckets[key]
	if b == nil {
		b = rate.NewLimiter(rate.Limit(float64(limit)/window.Seconds()), limit)
		t.buckets[key] = b
	}
	now := t.clock.Now()
	res := b.ReserveN(now, cost)
	if d := res.DelayFrom(now); d > 0 || !res.OK() {
		res.CancelAt(now)
		if !res.OK() {
			d = window
		}
		return time.Duration(math.Ceil(d.Seconds())) * time.Second, 1
	}
	return 0, 1 - b.TokensAt(now)/float64(b.Burst())
}

// appThrottled applies Graph's global limit per app, across all tenants
// and mailboxes (docs/graph.md#throttling): over it, the request answers
// 429 TooManyRequests with Retry-After. A $batch counts as its requests,
// each of which passes here on its own.
func (s *Sim) appThrottled(g *graphRequest) bool {
	if g.nodes[0].name == "$batch" {
		return false
	}
	wait, _ := s.throttle.take("app "+g.p.appID, 1, s.opts.AppRequests, s.opts.AppWindow)
	if wait == 0 {
		return false
	}
	s.stats.add("throttled.app_limit", 1)
	s.tooManyRequests(g, wait)
	return true
}

// directoryLimit is the resource-unit budget per app and tenant for the
// directory, by the tenant's size (docs/graph.md#throttling), unless
// Options.DirectoryResourceUnits sets one. The caller holds s.mu.
func (s *Sim) directoryLimit(tenantID string) int {
	if s.opts.DirectoryResourceUnits > 0 {
		return s.opts.DirectoryResourceUnits
	}
	n := 0
	for _, u := range s.users {
		if u.TenantID == tenantID {
			n++
		}
	}
	switch {
	case n < 50:
		return 3500
	case n <= 500:
		return 5000
	}
	return 8000
}

// directoryCost is what a directory request costs in resource units: GET
// /users 2, others 1; $select takes one off, as does $top under 20; never
// under 1.
func directoryCost(g *graphRequest, list bool) int {
	q := g.r.URL.Query()
	cost := 1
	if list {
		cost = 2
	}
	if q.Get("$select") != "" {
		cost--
	}
	if n, err := strconv.Atoi(q.Get("$top")); err == nil && n < 20 {
		cost--
	}
	return max(cost, 1)
}

// directoryThrottled charges a directory request to its app and tenant
// (docs/graph.md#throttling), reporting the cost in x-ms-resource-unit;
// over the budget it answers 429 with x-ms-throttle-scope and reports true.
func (s *Sim) directoryThrottled(g *graphRequest, list bool) bool {
	cost := directoryCost(g, list)
	s.mu.RLock()
	limit := s.directoryLimit(g.p.tenantID)
	s.mu.RUnlock()
	wait, used := s.throttle.take("dir "+g.p.appID+"/"+g.p.tenantID, cost, limit, s.opts.DirectoryWindow)
	h := g.w.Header()
	h.Set("x-ms-resource-unit", strconv.Itoa(cost))
	if wait == 0 {
		if used >= 0.8 {
			h.Set("x-ms-throttle-limit-percentage", strconv.FormatFloat(used, 'f', 1, 64))
		}
		return false
	}
	h.Set("x-ms-throttle-scope", "Tenant_Application/ReadWrite/"+g.p.appID+"/"+g.p.tenantID)
	h.Set("x-ms-throttle-information", "ResourceUnitLimitExceeded")
	s.tooManyRequests(g, wait)
	return true
}

// acquireMailbox takes one of the addressed mailbox's places for the
// caller's app, or answers 429 ApplicationThrottled with Retry-After and
// reports false (docs/graph.md#throttling).
func (s *Sim) acquireMailbox(g *graphRequest) (release func(), ok bool) {
	release, th := s.throttle.acquire(g.p.appID, g.target.ID)
	if th != nil {
		s.stats.throttled(g.class)
		g.w.Header().Set("Retry-After", strconv.Itoa(int(th.retryAfter.Seconds())))
		graphError(g.w, g.r, http.StatusTooManyRequests, "ApplicationThrottled", th.reason)
		return nil, false
	}
	return release, true
}

// subscriptionsThrottled applies the subscription API's limits per app
// and tenant (docs/graph.md#creating-a-subscription): writes (POST, PATCH,
// DELETE) and requests of any kind per window; over either, 429
// TooManyRequests with Retry-After, and nothing is done.
func (s *Sim) subscriptionsThrottled(g *graphRequest) bool {
	o := s.opts.Subscriptions
	key := g.p.appID + "/" + g.p.tenantID
	wait, _ := s.throttle.take("subs "+key, 1, o.Requests, o.Window)
	if wait == 0 && g.r.Method != http.MethodGet {
		wait, _ = s.throttle.take("subs-writes "+key, 1, o.Writes, o.Window)
	}
	if wait == 0 {
		return false
	}
	s.stats.add("throttled.subscriptions", 1)
	s.tooManyRequests(g, wait)
	return true
}

// tooManyRequests answers a request refused by a rate limit beyond
// Outlook's per-mailbox ones: 429 TooManyRequests with Retry-After in
// whole seconds, counted as throttled.
func (s *Sim) tooManyRequests(g *graphRequest, wait time.Duration) {
	s.stats.throttled(g.class)
	g.w.Header().Set("Retry-After", strconv.Itoa(int(wait.Seconds())))
	graphError(g.w, g.r, http.StatusTooManyRequests, "TooManyRequests", "Please retry again later.")
}
