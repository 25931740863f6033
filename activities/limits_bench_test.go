package activities_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/outlookd/outlookd/internal/benchfig"
	"github.com/outlookd/outlookd/internal/testenv"
)

// TestBenchGraphBudget measures what sharing the Graph budget through
// Postgres costs, against the in-process budget in the same run: three
// processes (each its own pool and MailboxLimits) of four callers send
// requests to a local server that answers at once, first each caller to
// a mailbox of its own (the budget never makes a request wait: what is
// measured is its bookkeeping), then all twelve to one mailbox, whose 4
// slots the shared budget holds across the processes and the in-process
// one does not. The rate is set too high to make anyone wait (its
// bucket is still charged on every request). The added latency of a request is the time it spent in
// the budget, taking its token and slot and giving the slot back. It
// prints one JSON line (make bench runs it with OUTLOOKD_BENCH=1).
func TestBenchGraphBudget(t *testing.T) {
	if os.Getenv("OUTLOOKD_BENCH") != "1" {
		t.Skip("a benchmark: run with OUTLOOKD_BENCH=1 (make bench)")
	}
	dsn := testenv.Postgres(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"value":[]}`)
	}))
	t.Cleanup(srv.Close)
	const procs, callers, runs = 3, 4, 3
	const d = 4 * time.Second
	figures := map[string]any{"processes": procs, "callers_per_process": callers, "runs": runs, "seconds_per_run": d.Seconds()}
	for _, load := range []struct {
		name      string
		mailboxes int // callers share them round robin
	}{{"spread", procs * callers}, {"one_mailbox", 1}} {
		got := map[bool][3][]float64{} // shared -> rps, p50, p99 per run
		for run := range runs {
			for _, shared := range []bool{false, true} {
				r := budgetRound(t, dsn, srv.URL, shared, procs, callers, load.mailboxes, d, fmt.Sprintf("r%d-", run))
				g := got[shared]
				g[0], g[1], g[2] = append(g[0], r.rps), append(g[1], r.p50), append(g[2], r.p99)
				got[shared] = g
				t.Logf("%s shared=%v: %.0f requests/s, added p50 %.3f ms, p99 %.3f ms", load.name, shared, r.rps, r.p50, r.p99)
			}
		}
		for shared, mode := range map[bool]string{false: "inprocess", true: "shared"} {
			g := got[shared]
			figures[load.name+"_"+mode+"_req_per_s"] = benchfig.Round(benchfig.Median(g[0]), 0)
			figures[load.name+"_"+mode+"_added_p50_ms"] = benchfig.Round(benchfig.Median(g[1]), 3)
			figures[load.name+"_"+mode+"_added_p99_ms"] = benchfig.Round(benchfig.Median(g[2]), 3)
		}
		figures[load.name+"_ratio_req_per_s"] = benchfig.Round(benchfig.Median(got[true][0])/benchfig.Median(got[false][0]), 3)
	}
	_ = benchfig.Fprint(os.Stdout, "graph-budget", figures)
}

type budgetFigures struct{ rps, p50, p99 float64 }

// budgetRound runs the callers for d and returns the requests per second
// and the budget's added latency (milliseconds).
func budgetRound(t *testing.T, dsn, url string, shared bool, procs, callers, mailboxes int, d time.Duration, prefix string) budgetFigures {
	t.Helper()
	// A rate too high to bite: the bucket is still charged on every
	// request, but no request waits for it.
	ps := startProcesses(t, dsn, procs, shared, 1<<30)
	var mu sync.Mutex
	var added []time.Duration
	var wg sync.WaitGroup
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	start := time.Now()
	for pi, p := range ps {
		for c := range callers {
			mailbox := fmt.Sprintf("%s%s-%d", prefix, map[bool]string{false: "local", true: "shared"}[shared], (pi*callers+c)%mailboxes)
			wg.Add(1)
			go func() {
				defer wg.Done()
				st := &stamp{next: http.DefaultTransport}
				hc := &http.Client{Transport: p.limits.Transport(mailbox, st)}
				var mine []time.Duration
				for ctx.Err() == nil {
					t0 := time.Now()
					resp, err := hc.Get(url)
					if err != nil {
						if ctx.Err() == nil {
							t.Error(err)
						}
						break
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					t1 := time.Now()
					// In the budget: before the request went out, and after
					// the server's body ended (the release).
					mine = append(mine, st.sent.Sub(t0)+t1.Sub(st.ended))
				}
				mu.Lock()
				added = append(added, mine...)
				mu.Unlock()
			}()
		}
	}
	wg.Wait()
	el := time.Since(start)
	ms := benchfig.Millis(added)
	return budgetFigures{rps: float64(len(added)) / el.Seconds(), p50: benchfig.Percentile(ms, 0.5), p99: benchfig.Percentile(ms, 0.99)}
}

// stamp records when the budget let the request go, and when the
// server's body ended, before the budget's release.
type stamp struct {
	next        http.RoundTripper
	sent, ended time.Time
}

func (s *stamp) RoundTrip(r *http.Request) (*http.Response, error) {
	s.sent = time.Now()
	resp, err := s.next.RoundTrip(r)
	if err == nil {
		resp.Body = &endStamp{ReadCloser: resp.Body, s: s}
	}
	return resp, err
}

type endStamp struct {
	io.ReadCloser
	s    *stamp
	done bool
}

func (b *endStamp) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && !b.done {
		b.s.ended, b.done = time.Now(), true
	}
	return n, err
}

func (b *endStamp) Close() error {
	if !b.done {
		b.s.ended, b.done = time.Now(), true
	}
	return b.ReadCloser.Close()
}
