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
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/outlookd/outlookd/internal/lookupcache"
	"github.com/outlookd/outlookd/store"
	"github.com/outlookd/outlookd/workflows"
)

// MaxBody bounds a notification request (Graph batches, but not without end).
const MaxBody = 1 << 20

// Receiver serves the notification and lifecycle URLs.
type Receiver struct {
	Store *store.Store
	Inbox *store.Inbox
	// Forwarder, when set, is woken after each commit.
	Forwarder *Forwarder
	Log       *slog.Logger

	subsOnce sync.Once
	subs     *lookupcache.Cache[store.Subscription]

	// Counters of what was received and ignored.
	Accepted, Ignored atomic.Int64
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
	// The handshake: echo the URL-decoded token as text/plain (docs/graph.md#validation-handshake).
	if tok := req.URL.Query().Get("validationToken"); tok != "" {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, tok)
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
	ctx := req.Context()
	changed := map[string]bool{}
	var entries []store.InboxEntry
	for _, it := range items {
		sub, ok, err := r.check(ctx, it)
		if err != nil {
			// The registry cannot say whether the item is genuine: let
			// Graph retry rather than drop it.
			http.Error(w, "could not check the notification; retry", http.StatusServiceUnavailable)
			return
		}
		if !ok {
			r.Ignored.Add(1)
			continue
		}
		r.Accepted.Add(1)
		if lifecycle || it.LifecycleEvent != "" {
			payload, _ := json.Marshal(workflows.LifecycleSignal{Event: it.LifecycleEvent, SubscriptionID: sub.ID})
			entries = append(entries, store.InboxEntry{ConnectionID: sub.ConnectionID, Signal: workflows.SignalLifecycle, Payload: payload})
			continue
		}
		if !changed[sub.ConnectionID] {
			changed[sub.ConnectionID] = true
			entries = append(entries, store.InboxEntry{ConnectionID: sub.ConnectionID, Signal: workflows.SignalChanges})
		}
	}
	if err := r.Inbox.Add(ctx, entries); err != nil {
		if r.Log != nil {
			r.Log.Warn("notification inbox unavailable", "err", err)
		}
		http.Error(w, "could not keep the notification; retry", http.StatusServiceUnavailable)
		return
	}
	if len(entries) > 0 && r.Forwarder != nil {
		r.Forwarder.Poke()
	}
	w.WriteHeader(http.StatusAccepted)
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

// check finds the subscription of an item and compares the clientState's
// hash with the one recorded, in constant time. An unknown subscription is
// not ok; an error means the registry could not be asked.
func (r *Receiver) check(ctx context.Context, it Item) (store.Subscription, bool, error) {
	if it.SubscriptionID == "" || it.ClientState == "" {
		return store.Subscription{}, false, nil
	}
	r.subsOnce.Do(func() {
		// Unknown subscriptions are not remembered: a new subscription's
		// first notifications can arrive before its row is committed, and
		// a remembered miss would drop the ones after it.
		r.subs = lookupcache.New(func(ctx context.Context, id string) (store.Subscription, error) {
			return r.Store.GetSubscription(ctx, id)
		}, lookupcache.Options{Size: 100000, TTL: time.Minute})
	})
	sub, err := r.subs.Get(ctx, it.SubscriptionID)
	if errors.Is(err, store.ErrNotFound) {
		return store.Subscription{}, false, nil
	}
	if err != nil {
		return store.Subscription{}, false, err
	}
	h := sha256.Sum256([]byte(it.ClientState))
	return sub, subtle.ConstantTimeCompare(h[:], sub.ClientStateHash) == 1, nil
}
