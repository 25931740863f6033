package api_test

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/outlookd/outlookd/graphsim"
	"github.com/outlookd/outlookd/outbox"
)

// endpointView is what the tests read of a webhook endpoint.
type endpointView struct {
	ID      string   `json:"id"`
	URL     string   `json:"url"`
	Events  []string `json:"events"`
	Secret  string   `json:"secret"`
	Pending int64    `json:"pending"`
	History struct {
		FeedCursor string `json:"feed_cursor"`
		Detail     string `json:"detail"`
	} `json:"history"`
}

// TestWebhookEndpoints: an organisation registers several endpoints, each
// with the event types it takes and its own secret; each receives what
// its filter takes, once; a test delivery goes through the outbox to the
// one endpoint asked for and is followed to delivered; the single-endpoint
// route refuses to guess among several; a removed endpoint is gone.
func TestWebhookEndpoints(t *testing.T) {
	h := newHarness(t, graphsim.Options{}, insecureWebhooks)
	ctx := context.Background()
	sendsRc, allRc := &receiver{events: map[string]outbox.Event{}}, &receiver{events: map[string]outbox.Event{}}
	sendsHook, allHook := httptest.NewServer(sendsRc), httptest.NewServer(allRc)
	defer sendsHook.Close()
	defer allHook.Close()

	// Refused: a member key, a filter that matches nothing, a bad URL.
	for _, tc := range []struct {
		name, key string
		body      map[string]any
		status    int
		code      string
	}{
		{"member key", h.acme, map[string]any{"url": allHook.URL}, 403, "admin_required"},
		{"misspelt family", h.acmeAdmin, map[string]any{"url": allHook.URL, "events": []string{"sends.*"}}, 422, "invalid_events"},
		{"unknown type", h.acmeAdmin, map[string]any{"url": allHook.URL, "events": []string{"send.snt"}}, 422, "invalid_events"},
		{"no types", h.acmeAdmin, map[string]any{"url": allHook.URL, "events": []string{}}, 422, "invalid_events"},
		{"no URL", h.acmeAdmin, map[string]any{"events": []string{"*"}}, 422, "invalid_url"},
		{"not a URL", h.acmeAdmin, map[string]any{"url": "ftp://x"}, 422, "invalid_url"},
		{"rotate on create", h.acmeAdmin, map[string]any{"url": allHook.URL, "rotate_secret": true}, 422, "invalid_field"},
	} {
		if r := h.call(t, "POST", "/v1/webhook-endpoints", tc.key, "u1", tc.body); r.status != tc.status || r.code() != tc.code {
			t.Errorf("%s: %d %s, want %d %s", tc.name, r.status, r.body, tc.status, tc.code)
		}
	}

	var sendsEp, allEp endpointView
	r := h.call(t, "POST", "/v1/webhook-endpoints", h.acmeAdmin, "", map[string]any{"url": sendsHook.URL, "events": []string{"send.*", "connection.disconnected"}, "description": "billing"})
	r.json(t, &sendsEp)
	if r.status != 201 || !strings.HasPrefix(sendsEp.Secret, "whsec_") || r.header.Get("Location") != "/v1/webhook-endpoints/"+sendsEp.ID ||
		!strings.Contains(sendsEp.History.Detail, "GET /v1/events") {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	r = h.call(t, "POST", "/v1/webhook-endpoints", h.acmeAdmin, "", map[string]any{"url": allHook.URL})
	r.json(t, &allEp)
	if r.status != 201 || allEp.Secret == sendsEp.Secret || len(allEp.Events) != 1 || allEp.Events[0] != "*" {
		t.Fatalf("create a second: %d %s", r.status, r.body)
	}
	sendsRc.secret, allRc.secret = sendsEp.Secret, allEp.Secret
	var list struct{ Data []endpointView }
	h.call(t, "GET", "/v1/webhook-endpoints", h.acme, "u1", nil).json(t, &list)
	if len(list.Data) != 2 || list.Data[0].Secret != "" || list.Data[0].ID != sendsEp.ID {
		t.Errorf("list: %+v", list.Data)
	}
	if r := h.call(t, "PUT", "/v1/webhook-endpoints", h.acmeAdmin, "", map[string]any{"url": allHook.URL}); r.status != 409 || r.code() != "several_endpoints" {
		t.Errorf("the single-endpoint route with two: %d %s", r.status, r.body)
	}
	if r := h.call(t, "GET", "/v1/webhook-endpoints/"+sendsEp.ID, h.globex, "u1", nil); r.status != 404 || r.code() != "endpoint_not_found" {
		t.Errorf("another organisation's endpoint: %d %s", r.status, r.body)
	}

	d := &outbox.Dispatcher{Store: h.e.Store, Secrets: h.e.Vault.Tokens().GetSigningSecrets, HTTP: allHook.Client(),
		AllowInsecure: true, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Idle: 50 * time.Millisecond}
	dctx, stop := context.WithCancel(ctx)
	defer stop()
	go func() { _ = d.Run(dctx) }()

	// A test delivery: queued, then delivered to that endpoint only.
	r = h.call(t, "POST", "/v1/webhook-endpoints/"+sendsEp.ID+"/test", h.acmeAdmin, "", nil)
	var queued struct {
		ID    string `json:"id"`
		State string `json:"state"`
	}
	r.json(t, &queued)
	if r.status != 202 || queued.State != "pending" || queued.ID == "" || r.header.Get("Location") != "/v1/webhook-endpoints/"+sendsEp.ID+"/deliveries/"+queued.ID {
		t.Fatalf("test: %d %s", r.status, r.body)
	}
	if r := h.call(t, "POST", "/v1/webhook-endpoints/"+sendsEp.ID+"/test", h.acme, "u1", nil); r.status != 403 {
		t.Errorf("a test by a member key: %d", r.status)
	}
	// A connection: its connection.created goes to the endpoint of every
	// type, not to the one of sends.
	r = h.call(t, "POST", "/v1/connections", h.acme, "u1", map[string]any{})
	var c conn
	r.json(t, &c)
	if r.status != 201 {
		t.Fatalf("create a connection: %d %s", r.status, r.body)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		var dl struct {
			State    string `json:"state"`
			Attempts int    `json:"attempts"`
		}
		h.call(t, "GET", "/v1/webhook-endpoints/"+sendsEp.ID+"/deliveries/"+queued.ID, h.acmeAdmin, "", nil).json(t, &dl)
		all := allRc.types()
		if dl.State == "delivered" && all["connection.created"] == 1 {
			if dl.Attempts != 1 {
				t.Errorf("the test took %d attempts", dl.Attempts)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("deliveries: test %+v, every-type endpoint got %v", dl, all)
		}
	}
	if got := sendsRc.types(); len(got) != 1 || got["test"] != 1 || sendsRc.bad != 0 {
		t.Errorf("the endpoint of sends got %v (%d badly signed)", got, sendsRc.bad)
	}
	if got := allRc.types(); got["test"] != 0 || allRc.bad != 0 {
		t.Errorf("the endpoint of every type got %v (%d badly signed)", got, allRc.bad)
	}

	// Its filter changed, the sends endpoint takes connection events too.
	r = h.call(t, "PATCH", "/v1/webhook-endpoints/"+sendsEp.ID, h.acmeAdmin, "", map[string]any{"events": []string{"send.*", "connection.*"}})
	var patched endpointView
	r.json(t, &patched)
	if r.status != 200 || len(patched.Events) != 2 || patched.Events[1] != "connection.*" || patched.Secret != "" {
		t.Errorf("patch: %d %s", r.status, r.body)
	}
	if r := h.call(t, "DELETE", "/v1/connections/"+c.ID, h.acme, "u1", nil); r.status != 202 {
		t.Fatalf("disconnect: %d %s", r.status, r.body)
	}
	for deadline := time.Now().Add(60 * time.Second); sendsRc.types()["connection.disconnected"] != 1 || allRc.types()["connection.disconnected"] != 1; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("connection.disconnected: sends %v, every type %v", sendsRc.types(), allRc.types())
		}
	}

	// Removed, it is gone; the other stays, alone: the single-endpoint
	// route changes it again.
	if r := h.call(t, "DELETE", "/v1/webhook-endpoints/"+sendsEp.ID, h.acmeAdmin, "", nil); r.status != 204 {
		t.Errorf("delete: %d %s", r.status, r.body)
	}
	if r := h.call(t, "GET", "/v1/webhook-endpoints/"+sendsEp.ID, h.acmeAdmin, "", nil); r.status != 404 {
		t.Errorf("a deleted endpoint: %d", r.status)
	}
	var single endpointView
	r = h.call(t, "PUT", "/v1/webhook-endpoints", h.acmeAdmin, "", map[string]any{"url": allHook.URL + "/v2"})
	r.json(t, &single)
	if r.status != 200 || single.ID != allEp.ID || single.URL != allHook.URL+"/v2" {
		t.Errorf("the single-endpoint route with one: %d %s", r.status, r.body)
	}
}
