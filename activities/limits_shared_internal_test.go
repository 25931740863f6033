package activities

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/outlookd/outlookd/internal/testenv"
	"github.com/outlookd/outlookd/store"
)

// upstream stands for Graph: it answers at once and notes when each
// request reached it.
type upstream struct {
	mu   sync.Mutex
	seen []time.Time
}

func (u *upstream) RoundTrip(r *http.Request) (*http.Response, error) {
	u.mu.Lock()
	u.seen = append(u.seen, time.Now())
	u.mu.Unlock()
	return &http.Response{StatusCode: 200, Body: io.NopCloser(strings.NewReader("{}")), Request: r}, nil
}

// sharedLimits opens n processes' limits on one database, each with its
// own pool, made by mk.
func sharedLimits(t *testing.T, dsn string, n int, mk func(Budget) *MailboxLimits) []*MailboxLimits {
	t.Helper()
	out := make([]*MailboxLimits, n)
	for i := range out {
		st, err := store.Open(context.Background(), dsn, 8)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(st.Close)
		out[i] = mk(st)
	}
	return out
}

// Two processes sharing one Postgres never send more together than a
// budget allows (its burst and its rate over the time they ran), whichever
// budget bites: a mailbox's, a tenant's directory's, or the app's global
// one, whose tokens each process takes in batches.
func TestSharedBudgetsHoldTheRateAcrossProcesses(t *testing.T) {
	dsn := testenv.Postgres(t)
	const run = 2 * time.Second
	for _, tc := range []struct {
		name string
		mk   func(Budget) *MailboxLimits
		// transport is caller i's way to Graph through l.
		transport func(l *MailboxLimits, i int, next http.RoundTripper) http.RoundTripper
		rate      store.GraphRate
	}{
		{"one mailbox's rate", func(b Budget) *MailboxLimits { return NewMailboxLimits(b, 0, 200, 10*time.Second) },
			func(l *MailboxLimits, _ int, next http.RoundTripper) http.RoundTripper {
				return l.Transport("ada", next)
			},
			store.GraphRate{PerSecond: 20, Burst: 20}},
		{"a tenant's directory", func(b Budget) *MailboxLimits {
			l := NewMailboxLimits(b, 0, 0, 0)
			l.dirRate = store.GraphRate{PerSecond: 25, Burst: 10}
			return l
		},
			func(l *MailboxLimits, _ int, next http.RoundTripper) http.RoundTripper {
				return l.DirectoryTransport("contoso", next)
			},
			store.GraphRate{PerSecond: 25, Burst: 10}},
		{"the app across mailboxes", func(b Budget) *MailboxLimits {
			return NewMailboxLimits(b, 0, 0, 0).SetApp("indexer", 400, 2*time.Second)
		},
			func(l *MailboxLimits, i int, next http.RoundTripper) http.RoundTripper {
				return l.Transport(fmt.Sprintf("user%d", i), next)
			},
			store.GraphRate{PerSecond: 200, Burst: 40}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := &upstream{}
			procs := sharedLimits(t, dsn, 2, tc.mk)
			// Fresh buckets for each case.
			if _, err := procs[0].shared.(*store.Store).Pool().Exec(context.Background(), `DELETE FROM graph_buckets`); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), run)
			defer cancel()
			start := time.Now()
			var wg sync.WaitGroup
			for p, l := range procs {
				for i := range 8 {
					hc := &http.Client{Transport: tc.transport(l, p*8+i, up)}
					wg.Add(1)
					go func() {
						defer wg.Done()
						for ctx.Err() == nil {
							req, _ := http.NewRequestWithContext(ctx, "GET", "https://graph.example/v1.0/users", nil)
							resp, err := hc.Do(req)
							if err != nil { // a wait past the deadline
								time.Sleep(10 * time.Millisecond)
								continue
							}
							resp.Body.Close()
						}
					}()
				}
			}
			wg.Wait()
			elapsed := time.Since(start)
			up.mu.Lock()
			sent := len(up.seen)
			up.mu.Unlock()
			allowed := float64(tc.rate.Burst) + tc.rate.PerSecond*elapsed.Seconds()
			t.Logf("%d requests in %s, the budget allows %.0f", sent, elapsed.Round(time.Millisecond), allowed)
			if float64(sent) > allowed+1 {
				t.Fatalf("two processes sent %d requests in %s; the budget allows %.0f", sent, elapsed, allowed)
			}
			// The callers wanted far more: the budget, not they, set the pace.
			if float64(sent) < 0.7*allowed {
				t.Fatalf("only %d requests of the %.0f allowed: the budget was not what limited them", sent, allowed)
			}
		})
	}
}

// A mailbox out of its rate does not hold up the others: while callers of
// both processes wait for the throttled mailbox's tokens, requests to
// other mailboxes go through at once.
func TestThrottledMailboxDoesNotHoldUpOthers(t *testing.T) {
	dsn := testenv.Postgres(t)
	// 2 requests a second, 2 at once.
	procs := sharedLimits(t, dsn, 2, func(b Budget) *MailboxLimits { return NewMailboxLimits(b, 0, 20, 10*time.Second) })
	up := &upstream{}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	var busy atomic.Int64
	for _, l := range procs {
		hc := &http.Client{Transport: l.Transport("busy", up)}
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil {
					req, _ := http.NewRequestWithContext(ctx, "GET", "https://graph.example/v1.0/users/busy/messages", nil)
					resp, err := hc.Do(req)
					if err != nil { // a wait past the deadline
						time.Sleep(10 * time.Millisecond)
						continue
					}
					resp.Body.Close()
					busy.Add(1)
				}
			}()
		}
	}
	time.Sleep(300 * time.Millisecond) // the busy mailbox's burst is spent
	var slowest time.Duration
	for i := range 20 {
		l := procs[i%2]
		hc := &http.Client{Transport: l.Transport(fmt.Sprintf("other%d", i), up)}
		t0 := time.Now()
		resp, err := hc.Get("https://graph.example/v1.0/users/other/messages")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		slowest = max(slowest, time.Since(t0))
	}
	<-ctx.Done() // the busy mailbox's callers keep at it for the 3 s
	wg.Wait()
	t.Logf("the busy mailbox got %d requests through in 3 s; the slowest request to another mailbox took %s", busy.Load(), slowest)
	if n := busy.Load(); n > 2+2*3+1 || n < 4 {
		t.Fatalf("the busy mailbox got %d requests through in 3 s, want its 2 a second after a burst of 2", n)
	}
	if slowest > 250*time.Millisecond {
		t.Fatalf("a request to another mailbox waited %s behind the throttled one", slowest)
	}
}
