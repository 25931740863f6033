package simtest

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// Receiver is a notification endpoint for tests: it answers Graph's
// validation handshake and records what it receives. Its behaviour can be
// changed while it runs.
type Receiver struct {
	URL string

	mu        sync.Mutex
	posts     int
	items     []map[string]any
	fail      int           // answer 500 to this many more posts
	delay     time.Duration // wait this long before answering
	badEcho   bool          // answer the handshake with the wrong body
	echoType  string        // the handshake answer's Content-Type (default text/plain)
	handshake int           // validation requests seen
	arrived   chan struct{}
}

// NewReceiver starts a receiver; it stops with the test.
func NewReceiver(t testing.TB) *Receiver {
	t.Helper()
	rc := &Receiver{arrived: make(chan struct{}, 1)}
	srv := httptest.NewServer(http.HandlerFunc(rc.serve))
	t.Cleanup(srv.Close)
	rc.URL = srv.URL + "/notify"
	return rc
}

func (rc *Receiver) serve(w http.ResponseWriter, r *http.Request) {
	if tok := r.URL.Query().Get("validationToken"); tok != "" {
		rc.mu.Lock()
		rc.handshake++
		bad, delay, ct := rc.badEcho, rc.delay, rc.echoType
		rc.mu.Unlock()
		time.Sleep(delay)
		if ct == "" {
			ct = "text/plain"
		}
		w.Header().Set("Content-Type", ct)
		if bad {
			tok = "not the token"
		}
		_, _ = io.WriteString(w, tok)
		return
	}
	var body struct {
		Value []map[string]any `json:"value"`
	}
	_ = json.NewDecoder(r.Body).Decode(&body)
	rc.mu.Lock()
	rc.posts++
	delay := rc.delay
	failing := rc.fail > 0
	if failing {
		rc.fail--
	} else {
		rc.items = append(rc.items, body.Value...)
	}
	rc.mu.Unlock()
	time.Sleep(delay)
	if failing {
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	w.WriteHeader(http.StatusAccepted)
	select {
	case rc.arrived <- struct{}{}:
	default:
	}
}

// FailNext answers the next n posts with 500.
func (rc *Receiver) FailNext(n int) { rc.mu.Lock(); rc.fail = n; rc.mu.Unlock() }

// SetDelay makes every answer wait d.
func (rc *Receiver) SetDelay(d time.Duration) { rc.mu.Lock(); rc.delay = d; rc.mu.Unlock() }

// SetBadEcho makes the handshake answer with the wrong body.
func (rc *Receiver) SetBadEcho(bad bool) { rc.mu.Lock(); rc.badEcho = bad; rc.mu.Unlock() }

// SetEchoType sets the Content-Type of the handshake answer ("": text/plain).
func (rc *Receiver) SetEchoType(ct string) { rc.mu.Lock(); rc.echoType = ct; rc.mu.Unlock() }

// Items returns what was received (accepted posts only).
func (rc *Receiver) Items() []map[string]any {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]map[string]any(nil), rc.items...)
}

// Posts counts notification posts, failed ones included.
func (rc *Receiver) Posts() int { rc.mu.Lock(); defer rc.mu.Unlock(); return rc.posts }

// Handshakes counts validation requests.
func (rc *Receiver) Handshakes() int { rc.mu.Lock(); defer rc.mu.Unlock(); return rc.handshake }

// WaitFor waits until cond holds over the received items, or fails the test.
func (rc *Receiver) WaitFor(t testing.TB, timeout time.Duration, what string, cond func(items []map[string]any) bool) []map[string]any {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		items := rc.Items()
		if cond(items) {
			return items
		}
		if time.Now().After(deadline) {
			t.Fatalf("receiver: %s did not happen within %s; got %d items: %v", what, timeout, len(items), items)
		}
		select {
		case <-rc.arrived:
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Count returns how many items have field == value.
func Count(items []map[string]any, field, value string) int {
	n := 0
	for _, it := range items {
		if it[field] == value {
			n++
		}
	}
	return n
}
