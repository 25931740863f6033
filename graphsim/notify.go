package graphsim

import (
	"bytes"
	"container/heap"
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"
)

// delivery posts change and lifecycle notifications to the URLs of
// subscriptions, with Graph's batching, retries and slow-endpoint rules
// (docs/graph.md#notification-payloads, docs/graph.md#delivery-and-retries). Queues and timers run on real time; expirations on
// the simulated clock.
type delivery struct {
	s      *Sim
	client *http.Client

	mu        sync.Mutex
	endpoints map[string]*endpoint
	fault     NotificationFault
	down      map[string]bool // URLs made unreachable by the control API
	// lastMissed limits missed events to one a second per subscription.
	lastMissed map[string]time.Time

	seq  uint64 // arrival order of notifications
	wake chan struct{}
	quit chan struct{}
	wg   sync.WaitGroup
	once sync.Once
}

// NotificationFault alters delivery for tests: a delay before each
// notification, and shares that are dropped or sent twice.
type NotificationFault struct {
	Delay     time.Duration `json:"delay"`
	Drop      float64       `json:"drop"`
	Duplicate float64       `json:"duplicate"`
}

// endpoint is one notification URL (lifecycle URLs are separate endpoints).
// New notifications and redeliveries wait apart, each by due time: Graph
// retries failed deliveries with workers of their own
// (docs/graph.md#delivery-and-retries), so redeliveries scheduled for later
// never hold back a new notification, and whatever is due goes out.
type endpoint struct {
	url       string
	lifecycle bool
	fresh     pendingHeap // new notifications
	retries   pendingHeap // redeliveries
	inflight  int
	// The slow-answer statistics of the current window.
	windowStart time.Time
	total, slow int
	mode        string // "", "throttled" or "dropping"
}

// subRef is what delivery keeps of a subscription.
type subRef struct {
	id, tenant, clientState, lifecycleURL string
	expiration                            time.Time
}

type pending struct {
	item     map[string]any
	sub      subRef
	created  time.Time
	due      time.Time
	attempts int
	seq      uint64 // arrival order, among notifications due together
}

// pendingHeap orders notifications by due time, then arrival
// (container/heap).
type pendingHeap []*pending

func (h pendingHeap) Len() int { return len(h) }
func (h pendingHeap) Less(i, j int) bool {
	if !h[i].due.Equal(h[j].due) {
		return h[i].due.Before(h[j].due)
	}
	return h[i].seq < h[j].seq
}
func (h pendingHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *pendingHeap) Push(x any)   { *h = append(*h, x.(*pending)) }
func (h *pendingHeap) Pop() any {
	old := *h
	p := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return p
}

// takeDue moves what is due at now from the heap to batch, earliest first,
// until batch holds limit notifications.
func (h *pendingHeap) takeDue(batch []*pending, now time.Time, limit int) []*pending {
	for len(batch) < limit && h.Len() > 0 && !(*h)[0].due.After(now) {
		batch = append(batch, heap.Pop(h).(*pending))
	}
	return batch
}

// nextBatch takes the notifications due at now for one POST: new ones
// first, then redeliveries, earliest first; nil when none is due.
func (ep *endpoint) nextBatch(now time.Time, limit int) []*pending {
	return ep.retries.takeDue(ep.fresh.takeDue(nil, now, limit), now, limit)
}

// maxInflightPerEndpoint caps the POSTs in flight to one URL.
const maxInflightPerEndpoint = 4

func newDelivery(s *Sim) *delivery {
	d := &delivery{
		s:          s,
		client:     &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16, IdleConnTimeout: 30 * time.Second}},
		endpoints:  map[string]*endpoint{},
		down:       map[string]bool{},
		lastMissed: map[string]time.Time{},
		wake:       make(chan struct{}, 1),
		quit:       make(chan struct{}),
	}
	d.wg.Add(1)
	go d.loop()
	return d
}

func (d *delivery) stop() {
	d.once.Do(func() { close(d.quit) })
	d.wg.Wait()
}

func (d *delivery) poke() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

func ref(sub *Subscription) subRef {
	return subRef{id: sub.ID, tenant: sub.TenantID, clientState: sub.ClientState, lifecycleURL: sub.LifecycleURL, expiration: sub.Expiration}
}

// changed turns a mailbox change into notifications for the subscriptions
// that watch it. The caller holds s.mu.
func (d *delivery) changed(u *User, ev changeEvent) {
	s := d.s
	now := s.clock.Now()
	for _, sub := range s.subs {
		if sub.UserID != u.ID || !now.Before(sub.Expiration) {
			continue
		}
		kind, restID := "", ev.msg.restID
		inScope := func(folder string) bool { return sub.FolderID == "" || sub.FolderID == folder }
		switch ev.kind {
		case "created":
			if inScope(ev.to) {
				kind = "created"
			}
		case "updated":
			if inScope(ev.to) {
				kind = "updated"
			}
		case "deleted":
			if inScope(ev.from) {
				kind, restID = "deleted", ev.restID
			}
		case "moved":
			// A mailbox subscription sees a move as an update; a folder
			// subscription sees the message leave or arrive.
			switch {
			case sub.FolderID == "":
				kind = "updated"
			case sub.FolderID == ev.from:
				kind, restID = "deleted", ev.restID
			case sub.FolderID == ev.to:
				kind = "created"
			}
		}
		if kind == "" || !sub.changeTypes[kind] {
			continue
		}
		if sub.NeedsReauth {
			sub.missed = true
			s.stats.add("notifications.held_for_reauth", 1)
			continue
		}
		id := restID
		if sub.Immutable {
			id = ev.msg.ImmutableID
		}
		res := "Users/" + u.ID + "/Messages/" + id
		var cs any
		if sub.ClientState != "" {
			cs = sub.ClientState
		}
		item := map[string]any{
			"id":                             newGUID(),
			"subscriptionId":                 sub.ID,
			"subscriptionExpirationDateTime": sub.Expiration.UTC().Format("2006-01-02T15:04:05.0000000Z"),
			"clientState":                    cs,
			"changeType":                     kind,
			"resource":                       res,
			"tenantId":                       sub.TenantID,
			"resourceData": map[string]any{
				// Basic Outlook notifications capitalise the type (docs/graph.md#notification-payloads).
				"@odata.type": "#Microsoft.Graph.Message",
				"@odata.id":   res,
				"@odata.etag": `W/"` + ev.msg.ChangeKey + `"`,
				"id":          id,
			},
		}
		d.enqueue(sub.NotificationURL, false, item, ref(sub))
	}
}

// lifecycle queues a lifecycle event for a subscription (docs/graph.md#lifecycle-notifications). The
// caller holds s.mu.
func (d *delivery) lifecycle(sub *Subscription, event string) {
	d.s.stats.add("lifecycle."+event, 1)
	if sub.LifecycleURL == "" {
		d.s.stats.add("lifecycle.no_url", 1)
		return
	}
	d.enqueue(sub.LifecycleURL, true, lifecycleItem(ref(sub), event), ref(sub))
}

func lifecycleItem(r subRef, event string) map[string]any {
	var cs any
	if r.clientState != "" {
		cs = r.clientState
	}
	return map[string]any{
		"subscriptionId":                 r.id,
		"subscriptionExpirationDateTime": r.expiration.UTC().Format("2006-01-02T15:04:05.0000000Z"),
		"tenantId":                       r.tenant,
		"clientState":                    cs,
		"lifecycleEvent":                 event,
	}
}

func (d *delivery) enqueue(url string, lifecycle bool, item map[string]any, r subRef) {
	now := time.Now()
	d.mu.Lock()
	key := url
	if lifecycle {
		key = "lifecycle " + url
	}
	ep := d.endpoints[key]
	if ep == nil {
		ep = &endpoint{url: url, lifecycle: lifecycle, windowStart: now}
		d.endpoints[key] = ep
	}
	o := d.s.opts.Subscriptions
	f := d.fault
	switch {
	case !lifecycle && (ep.mode == "dropping" || (f.Drop > 0 && rand.Float64() < f.Drop)):
		d.mu.Unlock()
		d.s.stats.add("notifications.dropped", 1)
		d.missed(r)
		return
	}
	due := now.Add(o.BatchWindow + f.Delay)
	if ep.mode == "throttled" {
		due = now.Add(o.ThrottleDelay)
	}
	d.push(&ep.fresh, &pending{item: item, sub: r, created: now, due: due})
	if !lifecycle && f.Duplicate > 0 && rand.Float64() < f.Duplicate {
		d.push(&ep.fresh, &pending{item: item, sub: r, created: now, due: due})
		d.s.stats.add("notifications.duplicated", 1)
	}
	d.mu.Unlock()
	d.poke()
}

// push queues a new notification in its arrival order. Caller holds d.mu.
func (d *delivery) push(h *pendingHeap, p *pending) {
	d.seq++
	p.seq = d.seq
	heap.Push(h, p)
}

// missed reports dropped notifications with a missed lifecycle event
// (docs/graph.md#lifecycle-notifications: Outlook sends missed when notifications are dropped).
func (d *delivery) missed(r subRef) {
	if r.lifecycleURL == "" {
		return
	}
	d.mu.Lock()
	if time.Since(d.lastMissed[r.id]) < time.Second {
		d.mu.Unlock()
		return
	}
	d.lastMissed[r.id] = time.Now()
	d.mu.Unlock()
	d.s.stats.add("lifecycle.missed", 1)
	d.enqueue(r.lifecycleURL, true, lifecycleItem(r, "missed"), r)
}

// loop dispatches due batches and runs the subscription timers.
func (d *delivery) loop() {
	defer d.wg.Done()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	// due fires when the next waiting notification is due, between ticks.
	due := time.NewTimer(time.Hour)
	defer due.Stop()
	lastScan := time.Time{}
	for {
		select {
		case <-d.quit:
			return
		case <-d.wake:
		case <-tick.C:
		case <-due.C:
		}
		if time.Since(lastScan) > 200*time.Millisecond {
			d.scanSubscriptions()
			lastScan = time.Now()
		}
		if next := d.dispatch(); !next.IsZero() {
			due.Reset(time.Until(next))
		}
	}
}

// scanSubscriptions sends reauthorizationRequired ahead of expiry and
// forgets subscriptions long expired.
func (d *delivery) scanSubscriptions() {
	s := d.s
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.clock.Now()
	for id, sub := range s.subs {
		switch {
		case now.After(sub.Expiration.Add(time.Hour)):
			delete(s.subs, id)
		case now.Before(sub.Expiration) && !now.Before(sub.Expiration.Add(-s.opts.Subscriptions.ReauthWarning)) && !sub.warnedFor.Equal(sub.Expiration):
			sub.warnedFor = sub.Expiration
			d.lifecycle(sub, "reauthorizationRequired")
		}
	}
}

// dispatch posts every due notification, in batches, at most
// maxInflightPerEndpoint POSTs to a URL at a time. It answers when the
// next waiting notification of an endpoint with a free slot is due (zero:
// none; a POST that ends pokes the loop).
func (d *delivery) dispatch() (next time.Time) {
	now := time.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, ep := range d.endpoints {
		for ep.inflight < maxInflightPerEndpoint {
			batch := ep.nextBatch(now, d.s.opts.Subscriptions.BatchMax)
			if len(batch) == 0 {
				break
			}
			ep.inflight++
			d.wg.Add(1)
			go d.post(ep, batch, d.down[ep.url])
		}
		if ep.inflight == maxInflightPerEndpoint {
			continue
		}
		for _, h := range []pendingHeap{ep.fresh, ep.retries} {
			if h.Len() > 0 && (next.IsZero() || h[0].due.Before(next)) {
				next = h[0].due
			}
		}
	}
	return next
}

// post delivers one batch and books the outcome.
func (d *delivery) post(ep *endpoint, batch []*pending, unreachable bool) {
	defer d.wg.Done()
	o := d.s.opts.Subscriptions
	items := make([]map[string]any, len(batch))
	for i, p := range batch {
		items[i] = p.item
	}
	body, _ := json.Marshal(map[string]any{"value": items})
	start := time.Now()
	err := errors.New("endpoint unreachable")
	status := 0
	if !unreachable {
		ctx, cancel := context.WithTimeout(context.Background(), o.DeliveryTimeout)
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, ep.url, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json; charset=utf-8")
		var resp *http.Response
		resp, err = d.client.Do(req)
		if err == nil {
			status = resp.StatusCode
			resp.Body.Close()
		}
		cancel()
	}
	elapsed := time.Since(start)
	ok := err == nil && status >= 200 && status < 300

	kind := "notifications"
	if ep.lifecycle {
		kind = "lifecycle"
	}
	d.mu.Lock()
	ep.inflight--
	now := time.Now()
	if now.Sub(ep.windowStart) > o.SlowWindow {
		ep.windowStart, ep.total, ep.slow, ep.mode = now, 0, 0, ""
	}
	if !unreachable {
		ep.total += len(batch)
		if !ok || elapsed > o.SlowAfter {
			ep.slow += len(batch)
		}
		if !ep.lifecycle && ep.total >= o.SlowSample {
			share := float64(ep.slow) / float64(ep.total)
			switch {
			case share >= o.SlowDropShare:
				ep.mode = "dropping"
			case share >= o.SlowThrottleShare:
				ep.mode = "throttled"
			default:
				ep.mode = ""
			}
		}
	}
	var dropped []subRef
	if ok {
		d.s.stats.add(kind+".delivered", int64(len(batch)))
	} else {
		for _, p := range batch {
			p.attempts++
			delay := min(o.RetryDelay<<(p.attempts-1), o.ThrottleDelay)
			if ep.mode == "throttled" {
				delay = o.ThrottleDelay
			}
			if now.Add(delay).Sub(p.created) > o.Retention || (!ep.lifecycle && ep.mode == "dropping") {
				d.s.stats.add(kind+".dropped", 1)
				if !ep.lifecycle {
					dropped = append(dropped, p.sub)
				}
				continue
			}
			p.due = now.Add(delay)
			heap.Push(&ep.retries, p)
			d.s.stats.add(kind+".retried", 1)
		}
	}
	d.mu.Unlock()
	seen := map[string]bool{}
	for _, r := range dropped {
		if !seen[r.id] {
			seen[r.id] = true
			d.missed(r)
		}
	}
	d.poke()
}

// setFault installs a delivery fault.
func (d *delivery) setFault(f NotificationFault) {
	d.mu.Lock()
	d.fault = f
	d.mu.Unlock()
}

// setReachable makes a URL unreachable (or reachable again).
func (d *delivery) setReachable(url string, reachable bool) {
	d.mu.Lock()
	if reachable {
		delete(d.down, url)
	} else {
		d.down[url] = true
	}
	d.mu.Unlock()
}

// EndpointState is how the simulator currently treats a notification URL.
type EndpointState struct {
	URL       string `json:"url"`
	Lifecycle bool   `json:"lifecycle"`
	// Queued counts the notifications waiting, Retrying those of them
	// waiting for a redelivery.
	Queued   int    `json:"queued"`
	Retrying int    `json:"retrying"`
	Total    int    `json:"total"`
	Slow     int    `json:"slow"`
	Mode     string `json:"mode"`
}

func (d *delivery) states() []EndpointState {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]EndpointState, 0, len(d.endpoints))
	for _, ep := range d.endpoints {
		out = append(out, EndpointState{URL: ep.url, Lifecycle: ep.lifecycle, Queued: ep.fresh.Len() + ep.retries.Len(), Retrying: ep.retries.Len(), Total: ep.total, Slow: ep.slow, Mode: ep.mode})
	}
	return out
}
