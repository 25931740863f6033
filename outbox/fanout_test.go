package outbox_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/outlookd/outlookd/internal/testenv"
	"github.com/outlookd/outlookd/outbox"
	"github.com/outlookd/outlookd/store"
	"github.com/outlookd/outlookd/vault"
)

func newStore(t *testing.T) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), testenv.Postgres(t), 4)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	return st
}

// TestEventFilterMatching: the patterns an endpoint takes, as Postgres
// applies them when an event is queued.
func TestEventFilterMatching(t *testing.T) {
	st := newStore(t)
	for _, tc := range []struct {
		patterns []string
		typ      string
		want     bool
	}{
		{[]string{"*"}, "send.sent", true},
		{[]string{"*"}, "connection.created", true},
		{[]string{"send.*"}, "send.sent", true},
		{[]string{"send.*"}, "send.failed", true},
		{[]string{"send.*"}, "sends.sent", false},
		{[]string{"send.*"}, "send", false},
		{[]string{"send.*"}, "message.created", false},
		{[]string{"send.sent"}, "send.sent", true},
		{[]string{"send.sent"}, "send.failed", false},
		{[]string{"message.created", "connection.*"}, "connection.disconnected", true},
		{[]string{"message.created", "connection.*"}, "message.created", true},
		{[]string{"message.created", "connection.*"}, "message.deleted", false},
		{[]string{"message.%"}, "message.created", false},
		{[]string{"message._reated"}, "message.created", false},
		{[]string{}, "send.sent", false},
	} {
		var got bool
		if err := st.Pool().QueryRow(context.Background(), `SELECT webhook_event_matches($1, $2)`, tc.patterns, tc.typ).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != tc.want {
			t.Errorf("%q takes %q: %v, want %v", tc.patterns, tc.typ, got, tc.want)
		}
	}
}

// TestCheckPatterns: a filter that could match nothing is refused.
func TestCheckPatterns(t *testing.T) {
	for _, tc := range []struct {
		patterns []string
		ok       bool
	}{
		{[]string{"*"}, true},
		{[]string{"send.*", "connection.disconnected"}, true},
		{[]string{"message.created", "message.deleted"}, true},
		{nil, false},
		{[]string{"sends.*"}, false},
		{[]string{"send.snt"}, false},
		{[]string{"send.*.*"}, false},
		{[]string{"*.sent"}, false},
		{[]string{"send.*", "send.*"}, false},
		{[]string{""}, false},
		{[]string{"test"}, false},
	} {
		if err := outbox.CheckPatterns(tc.patterns); (err == nil) != tc.ok {
			t.Errorf("%q: %v, want ok %v", tc.patterns, err, tc.ok)
		}
	}
}

// hook is an endpoint that records what it was sent, checked against its
// secret, and fails while failing is set.
type hook struct {
	mu      sync.Mutex
	secret  string
	failing bool
	got     map[string]int // event ID: deliveries
	types   map[string]string
	bad     int
	srv     *httptest.Server
}

func newHook(t *testing.T, secret string, failing bool) *hook {
	h := &hook{secret: secret, failing: failing, got: map[string]int{}, types: map[string]string{}}
	h.srv = httptest.NewServer(h)
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.failing {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	sec, _ := strconv.ParseInt(r.Header.Get("webhook-timestamp"), 10, 64)
	want, _ := outbox.Sign(h.secret, r.Header.Get("webhook-id"), time.Unix(sec, 0), body)
	if !strings.Contains(r.Header.Get("webhook-signature"), want) {
		h.bad++
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	var e outbox.Event
	_ = json.Unmarshal(body, &e)
	h.got[e.ID]++
	h.types[e.ID] = e.Type
	w.WriteHeader(http.StatusNoContent)
}

func (h *hook) count() (map[string]int, map[string]string, int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	got, types := map[string]int{}, map[string]string{}
	for k, v := range h.got {
		got[k] = v
	}
	for k, v := range h.types {
		types[k] = v
	}
	return got, types, h.bad
}

// TestFanOut: each event goes to every endpoint of its organisation whose
// filter takes it, once each, signed with that endpoint's secret; events
// from before an endpoint are not sent to it; a test event goes to the
// one endpoint it was asked for; an endpoint that fails until its
// deliveries are parked holds up none of another's.
func TestFanOut(t *testing.T) {
	ctx := context.Background()
	st := newStore(t)
	secrets := map[string]string{}
	for _, id := range []string{"", "we_all", "we_sends", "we_down", "we_late"} {
		secrets[id] = "whsec_" + base64.StdEncoding.EncodeToString([]byte(fmt.Sprintf("a secret of 32 bytes for %-7s", id)))
	}
	secretsOf := func(_ context.Context, org, endpoint string) (vault.SigningSecrets, error) {
		if org != "acme" {
			return vault.SigningSecrets{}, vault.ErrNotFound
		}
		return vault.SigningSecrets{Current: secrets[endpoint]}, nil
	}
	all, sends, down, late := newHook(t, secrets["we_all"], false), newHook(t, secrets["we_sends"], false), newHook(t, secrets["we_down"], true), newHook(t, secrets["we_late"], false)
	for _, org := range []string{"acme", "globex"} {
		if _, err := st.UpsertOrg(ctx, org, org, 0); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []store.Connection{
		{ID: "c1", OrgID: "acme", OwnerID: "ada", State: "active", Mode: "delegated"},
		{ID: "c2", OrgID: "globex", OwnerID: "eve", State: "active", Mode: "delegated"},
	} {
		if err := st.CreateConnection(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	for _, ep := range []store.Endpoint{
		{ID: "we_all", OrgID: "acme", URL: all.srv.URL, Events: []string{"*"}},
		{ID: "we_sends", OrgID: "acme", URL: sends.srv.URL, Events: []string{"send.*", "connection.disconnected"}},
		{ID: "we_down", OrgID: "acme", URL: down.srv.URL, Events: []string{"*"}},
	} {
		if _, err := st.CreateEndpoint(ctx, ep, 3); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.CreateEndpoint(ctx, store.Endpoint{ID: "we_more", OrgID: "acme", URL: all.srv.URL, Events: []string{"*"}}, 3); err != store.ErrTooManyEndpoints {
		t.Errorf("a fourth endpoint past a limit of 3: %v", err)
	}
	add := func(id, conn, typ string) {
		t.Helper()
		if err := st.AddEvent(ctx, store.Event{ID: id, ConnectionID: conn, Type: typ}); err != nil {
			t.Fatal(err)
		}
	}
	add("e1", "c1", "send.sent")
	add("e2", "c1", "message.created")
	add("e3", "c1", "connection.disconnected")
	add("e1", "c1", "send.sent") // recorded again: queued again for no one
	add("g1", "c2", "send.sent") // another organisation's
	lateEp, err := st.CreateEndpoint(ctx, store.Endpoint{ID: "we_late", OrgID: "acme", URL: late.srv.URL, Events: []string{"*"}}, 0)
	if err != nil {
		t.Fatal(err)
	}
	add("e4", "c1", "send.failed")
	if evs, _ := st.Feed(ctx, store.FeedQuery{OrgID: "acme", After: lateEp.FeedCursor, Limit: 10}); len(evs) != 1 || evs[0].ID != "e4" {
		t.Errorf("the late endpoint's feed cursor does not stand before its first event: %+v", evs)
	}
	test, err := st.QueueTest(ctx, "acme", "we_sends", "evt_test_1", map[string]any{"endpoint_id": "we_sends"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.QueueTest(ctx, "globex", "we_sends", "evt_test_2", nil); err == nil {
		t.Error("another organisation queued a test to acme's endpoint")
	}

	d := &outbox.Dispatcher{Store: st, Secrets: secretsOf, AllowInsecure: true, HTTP: &http.Client{Timeout: 5 * time.Second},
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), MaxAttempts: 3}
	// The failing endpoint is retried (its backoff cut short) until its
	// deliveries are parked; the others are served from the first pass.
	for pass := 0; pass < 4; pass++ {
		if _, err := d.Once(ctx, 100); err != nil {
			t.Fatal(err)
		}
		if pass == 0 {
			got, _, _ := all.count()
			if len(got) != 4 {
				t.Errorf("the first pass, with an endpoint failing, delivered %d of 4 to another", len(got))
			}
		}
		if _, err := st.Pool().Exec(ctx, `UPDATE webhook_deliveries SET next_attempt_at = now() WHERE state = 'pending'`); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name string
		h    *hook
		want map[string]string
	}{
		{"every type", all, map[string]string{"e1": "send.sent", "e2": "message.created", "e3": "connection.disconnected", "e4": "send.failed"}},
		{"sends and disconnects, and its test", sends, map[string]string{"e1": "send.sent", "e3": "connection.disconnected", "e4": "send.failed", test.ID: "test"}},
		{"made after three events", late, map[string]string{"e4": "send.failed"}},
		{"failing", down, map[string]string{}},
	} {
		got, types, bad := tc.h.count()
		if bad != 0 {
			t.Errorf("%s: %d deliveries with a bad signature", tc.name, bad)
		}
		if len(types) != len(tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, types, tc.want)
		}
		for id, typ := range tc.want {
			if types[id] != typ || got[id] != 1 {
				t.Errorf("%s: %s delivered %d times as %q, want once as %q", tc.name, id, got[id], types[id], typ)
			}
		}
	}
	for _, tc := range []struct {
		id                         string
		pending, parked, delivered int64
	}{{"we_all", 0, 0, 4}, {"we_sends", 0, 0, 4}, {"we_down", 0, 4, 0}, {"we_late", 0, 0, 1}} {
		ep, err := st.GetEndpoint(ctx, "acme", tc.id)
		if err != nil {
			t.Fatal(err)
		}
		if ep.Pending != tc.pending || ep.Parked != tc.parked || ep.Delivered != tc.delivered || (tc.parked > 0 && !strings.Contains(ep.LastError, "503")) {
			t.Errorf("%s: pending %d parked %d delivered %d (%q)", tc.id, ep.Pending, ep.Parked, ep.Delivered, ep.LastError)
		}
	}
	if ds, err := st.GetDelivery(ctx, "acme", "we_sends", test.ID); err != nil || ds.State != "delivered" || ds.Attempts != 1 {
		t.Errorf("the test delivery: %+v %v", ds, err)
	}
	// Requeued once the endpoint is back, its parked deliveries arrive.
	down.mu.Lock()
	down.failing = false
	down.mu.Unlock()
	if n, err := st.RequeueParked(ctx, "acme", "we_down"); err != nil || n != 4 {
		t.Fatalf("requeue: %d %v", n, err)
	}
	if _, err := d.Once(ctx, 100); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := down.count(); len(got) != 4 {
		t.Errorf("after the requeue the endpoint got %v", got)
	}
	// A test event is no connection's: it is not in the feed.
	evs, _ := st.Feed(ctx, store.FeedQuery{OrgID: "acme", Limit: 100})
	for _, e := range evs {
		if e.Type == store.TestEventType {
			t.Error("a test event is in the feed")
		}
	}
	// Deleting an endpoint takes its deliveries, not the events.
	if err := st.DeleteEndpoint(ctx, "acme", "we_all"); err != nil {
		t.Fatal(err)
	}
	if n, _ := st.Feed(ctx, store.FeedQuery{OrgID: "acme", Limit: 100}); len(n) != 5 { // connection.created, e1 to e4
		t.Errorf("the feed after an endpoint went: %d events", len(n))
	}
}
