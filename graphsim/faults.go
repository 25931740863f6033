package graphsim

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Fault makes a share of the requests to one endpoint class fail or slow
// down, as Graph does under load (docs/graph.md#throttling, docs/graph.md#common-error-codes).
type Fault struct {
	// Endpoint is a class of requests ("messages", "delta", "folders",
	// "users", "attachments", or the identity platform's "token" and
	// "authorize") or "*" for all Graph requests (not the identity
	// platform's).
	Endpoint string `json:"endpoint"`
	// Shares of requests answered 429, 503 or 504, and of connections reset.
	Throttle    float64 `json:"throttle"`
	Unavailable float64 `json:"unavailable"`
	Timeout     float64 `json:"timeout"`
	Reset       float64 `json:"reset"`
	// RetryAfter is sent with 429 and 503 (seconds; default 1).
	RetryAfter float64 `json:"retryAfter"`
	// Latency is added to every request of the class.
	Latency time.Duration `json:"latency"`
	// Duplicate is the share of delta pages that repeat an item, as Graph
	// may (docs/graph.md#delta-queries: "the same change appears in subsequent responses").
	Duplicate float64 `json:"duplicate"`
}

type faults struct {
	mu    sync.RWMutex
	rules map[string]Fault
}

func newFaults() *faults { return &faults{rules: map[string]Fault{}} }

func (f *faults) set(rule Fault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if rule.Throttle == 0 && rule.Unavailable == 0 && rule.Timeout == 0 && rule.Reset == 0 && rule.Latency == 0 && rule.Duplicate == 0 {
		delete(f.rules, rule.Endpoint)
		return
	}
	f.rules[rule.Endpoint] = rule
}

func (f *faults) clear() {
	f.mu.Lock()
	f.rules = map[string]Fault{}
	f.mu.Unlock()
}

func (f *faults) list() []Fault {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := make([]Fault, 0, len(f.rules))
	for _, r := range f.rules {
		out = append(out, r)
	}
	return out
}

// identityClasses are the identity platform's endpoint classes, which the
// "*" rule (meant for Graph) does not reach.
var identityClasses = map[string]bool{"token": true, "authorize": true}

// injectFault applies the rule for class: it reports true when it answered
// the request itself, and the latency to add while the request holds its
// place in the mailbox's concurrency budget (slow answers count against it,
// as in Outlook).
func (s *Sim) injectFault(w http.ResponseWriter, r *http.Request, class string) (bool, time.Duration) {
	s.faults.mu.RLock()
	rule, ok := s.faults.rules[class]
	if !ok && !identityClasses[class] {
		rule, ok = s.faults.rules["*"]
	}
	s.faults.mu.RUnlock()
	if !ok {
		return false, 0
	}
	retry := rule.RetryAfter
	if retry <= 0 {
		retry = 1
	}
	x := rand.Float64()
	switch {
	case x < rule.Reset:
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				if tc, ok := conn.(interface{ SetLinger(int) error }); ok {
					_ = tc.SetLinger(0) // RST rather than FIN
				}
				conn.Close()
				s.stats.fault(class, "reset")
				return true, 0
			}
		}
	case x < rule.Reset+rule.Throttle:
		w.Header().Set("Retry-After", strconv.FormatFloat(retry, 'f', -1, 64))
		graphError(w, r, http.StatusTooManyRequests, "TooManyRequests", "Please retry again later.")
		s.stats.fault(class, "429")
		return true, 0
	case x < rule.Reset+rule.Throttle+rule.Unavailable:
		w.Header().Set("Retry-After", strconv.FormatFloat(retry, 'f', -1, 64))
		// CORSO observed 503s with an empty body (docs/graph.md#common-error-codes).
		w.WriteHeader(http.StatusServiceUnavailable)
		s.stats.fault(class, "503")
		return true, 0
	case x < rule.Reset+rule.Throttle+rule.Unavailable+rule.Timeout:
		graphError(w, r, http.StatusGatewayTimeout, "UnknownError", "The operation has timed out.")
		s.stats.fault(class, "504")
		return true, 0
	}
	return false, rule.Latency
}

// sleep waits d unless the request is cancelled.
func sleep(r *http.Request, d time.Duration) {
	if d <= 0 {
		return
	}
	select {
	case <-time.After(d):
	case <-r.Context().Done():
	}
}

// duplicateShare is the share of delta pages that repeat an item.
func (f *faults) duplicateShare() float64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if r, ok := f.rules["delta"]; ok {
		return r.Duplicate
	}
	return f.rules["*"].Duplicate
}

// SendFault arms the failures real sends meet, for one mailbox's sends
// (sendMail, a draft's send, reply, replyAll, forward), as shares of them
// (docs/graph.md#ambiguous-send-answers). The shares are drawn once per send.
type SendFault struct {
	// Mailbox is the sending mailbox (UPN or ID); empty or "*" for all.
	Mailbox string `json:"mailbox"`
	// AcceptedRetryAfter: the send is accepted and delivered once, and the
	// 202 carries a Retry-After header.
	AcceptedRetryAfter float64 `json:"acceptedRetryAfter,omitempty"`
	// DeliveredTimeout and DeliveredReset: the message is delivered, then
	// the answer is a 504 or the connection is reset.
	DeliveredTimeout float64 `json:"deliveredTimeout,omitempty"`
	DeliveredReset   float64 `json:"deliveredReset,omitempty"`
	// LostTimeout and LostUnavailable: 504 or 503, and nothing was sent.
	LostTimeout     float64 `json:"lostTimeout,omitempty"`
	LostUnavailable float64 `json:"lostUnavailable,omitempty"`
	// Blocked answers 403 ErrorMessageSubmissionBlocked, QuotaExceeded 403
	// ErrorQuotaExceeded (a full mailbox): shares, 1 for every send.
	Blocked       float64 `json:"blocked,omitempty"`
	QuotaExceeded float64 `json:"quotaExceeded,omitempty"`
	// SentItemsDelay holds the sent copy back from Sent Items this long
	// (in Outbox meanwhile); recipients get the message on time.
	SentItemsDelay time.Duration `json:"sentItemsDelay,omitempty"`
	// RetryAfter goes with AcceptedRetryAfter and LostUnavailable (seconds;
	// default 1).
	RetryAfter float64 `json:"retryAfter,omitempty"`
	// Times disarms the rule after that many sends it touched (0: never).
	Times int `json:"times,omitempty"`
}

// sendOutcome is what a send fault decided for one send.
type sendOutcome struct {
	kind       string // "", accepted-retry-after, delivered-504, delivered-reset, lost-504, lost-503, blocked, quota
	retryAfter float64
	delay      time.Duration
}

// lost reports an outcome in which nothing is submitted.
func (o sendOutcome) lost() bool {
	switch o.kind {
	case "lost-504", "lost-503", "blocked", "quota":
		return true
	}
	return false
}

type sendFaults struct {
	mu    sync.Mutex
	rules map[string]*SendFault // by user ID, "*" for all
}

func newSendFaults() *sendFaults { return &sendFaults{rules: map[string]*SendFault{}} }

// draw decides the outcome of one send from mailbox u.
func (f *sendFaults) draw(u *User) sendOutcome {
	f.mu.Lock()
	defer f.mu.Unlock()
	key := u.ID
	rule := f.rules[key]
	if rule == nil {
		key, rule = "*", f.rules["*"]
	}
	if rule == nil {
		return sendOutcome{}
	}
	o := sendOutcome{retryAfter: rule.RetryAfter, delay: rule.SentItemsDelay}
	if o.retryAfter <= 0 {
		o.retryAfter = 1
	}
	x, acc := rand.Float64(), 0.0
	for _, c := range []struct {
		share float64
		kind  string
	}{
		{rule.Blocked, "blocked"}, {rule.QuotaExceeded, "quota"}, {rule.LostTimeout, "lost-504"}, {rule.LostUnavailable, "lost-503"},
		{rule.DeliveredTimeout, "delivered-504"}, {rule.DeliveredReset, "delivered-reset"}, {rule.AcceptedRetryAfter, "accepted-retry-after"},
	} {
		acc += c.share
		if x < acc {
			o.kind = c.kind
			break
		}
	}
	if rule.Times > 0 {
		if rule.Times--; rule.Times == 0 {
			delete(f.rules, key)
		}
	}
	return o
}

// SetSendFault arms a send fault for a mailbox (or "*" for all), replacing
// the one it had; a rule with nothing armed removes it.
func (s *Sim) SetSendFault(f SendFault) error {
	key := "*"
	if f.Mailbox != "" && f.Mailbox != "*" {
		s.mu.RLock()
		u := s.user(f.Mailbox)
		s.mu.RUnlock()
		if u == nil {
			return fmt.Errorf("graphsim: mailbox %q: %w", f.Mailbox, ErrNotFound)
		}
		key = u.ID
	}
	s.sendFaults.mu.Lock()
	defer s.sendFaults.mu.Unlock()
	if f.AcceptedRetryAfter+f.DeliveredTimeout+f.DeliveredReset+f.LostTimeout+f.LostUnavailable+f.Blocked+f.QuotaExceeded == 0 && f.SentItemsDelay == 0 {
		delete(s.sendFaults.rules, key)
		return nil
	}
	s.sendFaults.rules[key] = &f
	return nil
}

// ClearSendFaults removes every send fault.
func (s *Sim) ClearSendFaults() {
	s.sendFaults.mu.Lock()
	s.sendFaults.rules = map[string]*SendFault{}
	s.sendFaults.mu.Unlock()
}
