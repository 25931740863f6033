// Package webhook receives Microsoft Graph's change and lifecycle
// notifications. It answers the validation handshake, checks each item
// against a known subscription and its clientState (by hash, in constant
// time), and hands valid ones over durably: they are committed to the
// notification inbox in Postgres (the commits of concurrent requests are
// shared) before Graph gets its 202. A Forwarder turns the inbox into
// signals to the connections' workflows, one per connection however many
// notifications arrived, and deletes entries only once Temporal has taken
// them. The receiver never calls Graph or Temporal in the request; when it
// cannot commit (Postgres down) it answers 503 so Graph retries.
package webhook

import (
	"cmp"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/golang-lru/v2/expirable"

	"github.com/outlookd/outlookd/store"
	"github.com/outlookd/outlookd/workflows"
)

// MaxBody bounds a notification request (Graph batches, but not without end).
const MaxBody = 1 << 20

// MaxItems bounds the notifications of one request. Graph gathers a URL's
// notifications into one POST; Microsoft documents no figure, and graphsim
// sends at most 100 (docs/graph.md#notification-payloads).
const MaxItems = 1000

// MaxValidationToken bounds the validation token echoed in the handshake.
const MaxValidationToken = 1024

// Subscriptions is what the receiver asks of the registry.
type Subscriptions interface {
	// GetSubscriptions finds many with one query; unknown IDs are absent.
	GetSubscriptions(ctx context.Context, ids []string) (map[string]store.Subscription, error)
}

// Receiver serves the notification and lifecycle URLs.
type Receiver struct {
	Store Subscriptions
	Inbox *store.Inbox
	// Forwarder, when set, is woken after each commit.
	Forwarder *Forwarder
	Log       *slog.Logger

	// RecoverEvery is how often, after a refusal, the receiver tries to
	// ask for the catch-up rounds (default 2 s); CatchUpEvery how often it
	// asks again while Graph may hold its notifications back (default 30
	// s), for HoldBack after the last refusal (default 10 minutes).
	RecoverEvery, CatchUpEvery, HoldBack time.Duration

	subsOnce sync.Once
	subs     *expirable.LRU[string, store.Subscription]

	// refusedSince is the first refusal (Unix nanoseconds) whose catch-up
	// is not asked yet, lastRefusal the latest (0: none).
	refusedSince, lastRefusal atomic.Int64

	// Counters of what was received and ignored, and catch-ups asked.
	Accepted, Ignored, CatchUps atomic.Int64
}

// Item is one notification (change or lifecycle), as far as the receiver
// reads it.
type Item struct {
	SubscriptionID string `json:"subscriptionId"`
	ClientState    string `json:"clientState"`
	ChangeType     string `json:"changeType"`
	LifecycleEvent string `json:"lifecycleEvent"`
}

// Notifications serves POST of change notifications.
func (r *Receiver) Notifications(w http.ResponseWriter, req *http.Request) { r.serve(w, req, false) }

// Lifecycle serves POST of lifecycle notifications.
func (r *Receiver) Lifecycle(w http.ResponseWriter, req *http.Request) { r.serve(w, req, true) }

func (r *Receiver) serve(w http.ResponseWriter, req *http.Request, lifecycle bool) {
	if req.URL.Query().Has("validationToken") {
		handshake(w, req)
		return
	}
	if req.Method != http.MethodPost {
		http.Error(w, "notifications are POSTed", http.StatusMethodNotAllowed)
		return
	}
	items, err := Parse(http.MaxBytesReader(w, req.Body, MaxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			http.Error(w, "the notification body is too large", http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "the notification body is not valid: "+err.Error(), http.StatusBadRequest)
		return
	}
	if len(items) > MaxItems {
		http.Error(w, fmt.Sprintf("a request holds at most %d notifications", MaxItems), http.StatusRequestEntityTooLarge)
		return
	}
	ctx := req.Context()
	subs, err := r.lookup(ctx, items)
	if err != nil {
		// The registry cannot say whether the items are genuine: let
		// Graph retry rather than drop them.
		if r.Log != nil {
			r.Log.Warn("subscription lookup failed", "err", err)
		}
		r.refused()
		http.Error(w, "could not check the notification; retry", http.StatusServiceUnavailable)
		return
	}
	// One changes entry per workflow: a connection's, or one of its
	// mailboxes' (an application connection's subscriptions are each on a
	// mailbox, whose workflow syncs it).
	type target struct{ connection, mailbox string }
	changed := map[target]bool{}
	var entries []store.InboxEntry
	for _, it := range items {
		sub, ok := check(subs, it)
		if !ok {
			r.Ignored.Add(1)
			continue
		}
		r.Accepted.Add(1)
		if lifecycle || it.LifecycleEvent != "" {
			payload, _ := json.Marshal(workflows.LifecycleSignal{Event: it.LifecycleEvent, SubscriptionID: sub.ID})
			entries = append(entries, store.InboxEntry{ConnectionID: sub.ConnectionID, MailboxID: sub.MailboxID, Signal: workflows.SignalLifecycle, Payload: payload})
			continue
		}
		if k := (target{sub.ConnectionID, sub.MailboxID}); !changed[k] {
			changed[k] = true
			entries = append(entries, store.InboxEntry{ConnectionID: sub.ConnectionID, MailboxID: sub.MailboxID, Signal: workflows.SignalChanges})
		}
	}
	if err := r.Inbox.Add(ctx, entries); err != nil {
		if r.Log != nil {
			r.Log.Warn("notification inbox unavailable", "err", err)
		}
		r.refused()
		http.Error(w, "could not keep the notification; retry", http.StatusServiceUnavailable)
		return
	}
	if len(entries) > 0 && r.Forwarder != nil {
		r.Forwarder.Poke()
	}
	w.WriteHeader(http.StatusAccepted)
}

// refused notes a refusal: the notifications of any subscription may have
// been in it (when Postgres cannot be read, the receiver cannot tell whose
// they were).
func (r *Receiver) refused() {
	now := time.Now().UnixNano()
	r.refusedSince.CompareAndSwap(0, now)
	r.lastRefusal.Store(now)
}

// Run asks for catch-up rounds after refusals until ctx ends. A refused
// notification is not lost at Graph, which retries it, but its retries
// back off (up to 10 minutes apart), and an endpoint that failed is
// throttled or dropped for up to 10 minutes: every subscription on it has
// its new notifications delayed by 10 minutes, or dropped
// (docs/graph.md#delivery-and-retries). So as soon as the inbox can be
// written again, every connection with a subscription gets a catch-up
// round (a changes entry marked with the first refusal's time, so its
// mailbox shows as behind until the round ran), and again every
// CatchUpEvery until HoldBack has passed since the last refusal: the
// connections poll while Graph may hold their notifications back.
func (r *Receiver) Run(ctx context.Context) error {
	recoverEvery := cmp.Or(r.RecoverEvery, 2*time.Second)
	t := time.NewTicker(recoverEvery)
	defer t.Stop()
	var last time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if asked, ok := r.catchUp(ctx, last); ok {
			last = asked
		}
	}
}

// catchUp asks for catch-up rounds when they are due (after a refusal, or
// every CatchUpEvery since last while Graph may hold notifications back).
func (r *Receiver) catchUp(ctx context.Context, last time.Time) (time.Time, bool) {
	now := time.Now()
	since, latest := r.refusedSince.Load(), r.lastRefusal.Load()
	switch {
	case since != 0:
	case latest != 0 && now.Sub(time.Unix(0, latest)) < cmp.Or(r.HoldBack, 10*time.Minute) &&
		now.Sub(last) >= cmp.Or(r.CatchUpEvery, 30*time.Second):
	default:
		return last, false
	}
	from := since
	if from == 0 {
		from = latest
	}
	payload, _ := json.Marshal(workflows.ChangesSignal{RefusedSince: time.Unix(0, from).UTC()})
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	n, err := r.Inbox.CatchUp(cctx, payload)
	cancel()
	if err != nil {
		if r.Log != nil {
			r.Log.Warn("catch-up after refused notifications not asked yet", "err", err)
		}
		return last, false
	}
	r.refusedSince.CompareAndSwap(since, 0)
	r.CatchUps.Add(1)
	if r.Log != nil {
		r.Log.Info("catch-up rounds asked after refused notifications", "connections", n, "refused_since", time.Unix(0, from).UTC())
	}
	if n > 0 && r.Forwarder != nil {
		r.Forwarder.Poke()
	}
	return now, true
}

// handshake answers Graph's validation request: the URL-decoded token
// echoed as text/plain within 10 s (docs/graph.md#validation-handshake).
// Only what Graph sends is echoed: a POST, a bounded token of printable
// ASCII without the characters markup needs, and never sniffed as
// anything but text.
func handshake(w http.ResponseWriter, req *http.Request) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if req.Method != http.MethodPost {
		http.Error(w, "the validation request is POSTed", http.StatusMethodNotAllowed)
		return
	}
	tok := req.URL.Query().Get("validationToken")
	if !validToken(tok) {
		http.Error(w, "the validationToken is not one Graph sends", http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, tok)
}

// validToken accepts what a Graph validation token can be: Graph's tokens
// are a sentence of ASCII words with a request ID ("Validation: Testing
// client application reachability for subscription Request-Id: ...").
func validToken(tok string) bool {
	if tok == "" || len(tok) > MaxValidationToken {
		return false
	}
	for i := 0; i < len(tok); i++ {
		if c := tok[i]; c < 0x20 || c > 0x7e || strings.IndexByte("<>&\"'`\\", c) >= 0 {
			return false
		}
	}
	return true
}

// Parse reads a notification body: {"value": [items]}. Anything else
// (not JSON, no value array, trailing data) is an error.
func Parse(body io.Reader) ([]Item, error) {
	var payload struct {
		Value *[]Item `json:"value"`
	}
	dec := json.NewDecoder(body)
	if err := dec.Decode(&payload); err != nil {
		return nil, err
	}
	if payload.Value == nil {
		return nil, errors.New("no value array")
	}
	if _, err := dec.Token(); err != io.EOF {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, err
		}
		return nil, errors.New("data after the JSON object")
	}
	return *payload.Value, nil
}

// lookup finds the subscriptions the items name: from the cache, and all
// the others with one registry query, so that a request costs at most one
// query however many unknown IDs it holds. Unknown subscriptions are not
// remembered: a new subscription's first notifications can arrive before
// its row is committed, and a remembered miss would drop the ones after it.
func (r *Receiver) lookup(ctx context.Context, items []Item) (map[string]store.Subscription, error) {
	r.subsOnce.Do(func() { r.subs = expirable.NewLRU[string, store.Subscription](100000, nil, time.Minute) })
	found := map[string]store.Subscription{}
	asked := map[string]bool{}
	var missing []string
	for _, it := range items {
		id := it.SubscriptionID
		if id == "" || it.ClientState == "" || asked[id] {
			continue
		}
		asked[id] = true
		if sub, ok := r.subs.Get(id); ok {
			found[id] = sub
			continue
		}
		missing = append(missing, id)
	}
	if len(missing) == 0 {
		return found, nil
	}
	more, err := r.Store.GetSubscriptions(ctx, missing)
	if err != nil {
		return nil, err
	}
	for id, sub := range more {
		r.subs.Add(id, sub)
		found[id] = sub
	}
	return found, nil
}

// check compares an item's clientState's hash with the one recorded for
// its subscription, in constant time. An unknown subscription is not ok.
func check(subs map[string]store.Subscription, it Item) (store.Subscription, bool) {
	sub, known := subs[it.SubscriptionID]
	if !known || it.ClientState == "" {
		return store.Subscription{}, false
	}
	h := sha256.Sum256([]byte(it.ClientState))
	return sub, subtle.ConstantTimeCompare(h[:], sub.ClientStateHash) == 1
}
