package activities_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/outlookd/outlookd/activities"
	"github.com/outlookd/outlookd/graphsim"
	"github.com/outlookd/outlookd/graphsim/simtest"
	"github.com/outlookd/outlookd/internal/testenv"
	"github.com/outlookd/outlookd/store"
)

// process is one outlookd process as far as the budget can tell: its own
// pool on the shared database and its own MailboxLimits.
type process struct {
	st     *store.Store
	limits *activities.MailboxLimits
}

// startProcesses starts n processes with Outlook's figures, or with a rate
// too high to bite when perWindow is set.
func startProcesses(t *testing.T, dsn string, n int, shared bool, perWindow ...int) []process {
	t.Helper()
	out := make([]process, n)
	for i := range out {
		st, err := store.Open(context.Background(), dsn, 8)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(st.Close)
		var b activities.Budget
		if shared {
			b = st
		}
		out[i] = process{st: st, limits: activities.NewMailboxLimits(b, 0, append(perWindow, 0)[0], 0)}
	}
	return out
}

// bearer sets the access token on every request.
type bearer struct {
	tok  string
	next http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.tok)
	return b.next.RoundTrip(r)
}

// hammer has callers goroutines per process send requests each to Ada's
// messages, every process through its own budget, and counts the
// answers by status.
func hammer(t *testing.T, f *simtest.Tenant, procs []process, tok string, callers, requests int) map[int]int64 {
	t.Helper()
	var mu sync.Mutex
	statuses := map[int]int64{}
	var wg sync.WaitGroup
	for _, p := range procs {
		hc := &http.Client{Transport: bearer{tok: tok, next: p.limits.Transport(f.Ada.ID, http.DefaultTransport)}}
		for range callers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range requests {
					resp, err := hc.Get(f.Sim.GraphURL() + "/users/" + f.Ada.ID + "/messages?$top=1")
					if err != nil {
						t.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					mu.Lock()
					statuses[resp.StatusCode]++
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	return statuses
}

func adaLoad(t *testing.T, f *simtest.Tenant) graphsim.MailboxLoad {
	t.Helper()
	loads, err := f.Ctl.MailboxLoads(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range loads {
		if l.Mailbox == f.Ada.ID {
			return l
		}
	}
	t.Fatalf("graphsim saw no request to Ada's mailbox: %+v", loads)
	return graphsim.MailboxLoad{}
}

// Three processes hammering one mailbox keep to Outlook's 4 concurrent
// requests when they share the budget through Postgres; each with a
// budget of its own, they send Graph up to 12 and are throttled.
func TestBudgetHoldsAcrossProcesses(t *testing.T) {
	dsn := testenv.Postgres(t)
	for _, tc := range []struct {
		name   string
		shared bool
	}{
		{"shared through Postgres", true},
		{"each process its own", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := simtest.Start(t, graphsim.Options{})
			tok := f.SignIn(t, f.Ada.UPN, "Mail.Read").AccessToken
			if _, err := f.Ctl.InjectMessages(context.Background(), f.Ada.UPN, graphsim.MessageSpec{Subject: "hello"}); err != nil {
				t.Fatal(err)
			}
			// Slow answers, so that requests overlap.
			f.Sim.SetFault(graphsim.Fault{Endpoint: "messages", Latency: 25 * time.Millisecond})
			procs := startProcesses(t, dsn, 3, tc.shared)
			statuses := hammer(t, f, procs, tok, 6, 8)
			load := adaLoad(t, f)
			t.Logf("statuses %v, graphsim saw at most %d in flight, refused %d", statuses, load.Peak, load.Refused)
			if tc.shared {
				if load.Peak > 4 || load.Refused != 0 || statuses[200] != 3*6*8 {
					t.Fatalf("shared budget: %d in flight at once, %d refused for concurrency, statuses %v", load.Peak, load.Refused, statuses)
				}
				if load.Peak < 4 {
					t.Fatalf("the processes never used the mailbox's 4 slots together (peak %d)", load.Peak)
				}
				return
			}
			// The per-process budget is what the shared one replaces: three
			// processes overrun the mailbox.
			if load.Peak <= 4 || load.Refused == 0 {
				t.Fatalf("three separate budgets stayed within 4 (peak %d, %d refused): the test no longer tells them apart", load.Peak, load.Refused)
			}
		})
	}
}

// A slot held by a request longer than the lease is renewed: another
// process cannot take it.
func TestBudgetRenewsALongRequestsLease(t *testing.T) {
	dsn := testenv.Postgres(t)
	f := simtest.Start(t, graphsim.Options{MailboxConcurrency: 1})
	tok := f.SignIn(t, f.Ada.UPN, "Mail.Read").AccessToken
	f.Sim.SetFault(graphsim.Fault{Endpoint: "messages", Latency: 1500 * time.Millisecond})
	var procs []process
	for range 2 {
		st, err := store.Open(context.Background(), dsn, 4)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(st.Close)
		procs = append(procs, process{st: st, limits: activities.NewMailboxLimits(st, 1, 0, 0).SetLease(500 * time.Millisecond)})
	}
	statuses := hammer(t, f, procs, tok, 1, 2)
	if load := adaLoad(t, f); load.Peak > 1 || statuses[200] != 4 {
		t.Fatalf("with a lease of 500 ms and requests of 1.5 s: %d in flight at once, statuses %v", load.Peak, statuses)
	}
}

// Without Postgres the request is not sent: it fails with
// ErrBudgetUnavailable, which the activity retries.
func TestBudgetWithoutPostgresSendsNothing(t *testing.T) {
	f := simtest.Start(t, graphsim.Options{})
	tok := f.SignIn(t, f.Ada.UPN, "Mail.Read").AccessToken
	st, err := store.Open(context.Background(), "postgres://postgres@127.0.0.1:1/none?sslmode=disable&connect_timeout=1", 2)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	l := activities.NewMailboxLimits(st, 0, 0, 0)
	hc := &http.Client{Transport: bearer{tok: tok, next: l.Transport(f.Ada.ID, http.DefaultTransport)}}
	if err := f.Ctl.ResetCounters(context.Background()); err != nil {
		t.Fatal(err)
	}
	_, err = hc.Get(f.Sim.GraphURL() + "/users/" + f.Ada.ID + "/messages")
	if !errors.Is(err, activities.ErrBudgetUnavailable) {
		t.Fatalf("got %v, want ErrBudgetUnavailable", err)
	}
	c, err := f.Ctl.Counters(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for k, n := range c {
		if len(k) > 9 && k[:9] == "requests." {
			t.Fatalf("Graph was sent a request without a budget: %s=%d", k, n)
		}
	}
}

// A request whose context ends while it waits for a slot gives back the
// token it took and holds no slot; the slots it did not take stay held.
func TestBudgetCancelTakesNothing(t *testing.T) {
	dsn := testenv.Postgres(t)
	f := simtest.Start(t, graphsim.Options{})
	tok := f.SignIn(t, f.Ada.UPN, "Mail.Read").AccessToken
	procs := startProcesses(t, dsn, 2, true)
	ctx := context.Background()
	// Another process holds every slot.
	var held []store.GraphLease
	for range 4 {
		l, ok, err := procs[0].st.AcquireGraphSlot(ctx, "mailbox:"+f.Ada.ID, 4, time.Minute)
		if err != nil || !ok {
			t.Fatal(ok, err)
		}
		held = append(held, l)
	}
	var sent atomic.Int64
	hc := &http.Client{Transport: bearer{tok: tok, next: procs[1].limits.Transport(f.Ada.ID, countingTransport{&sent, http.DefaultTransport})}}
	rctx, cancel := context.WithTimeout(ctx, 150*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(rctx, "GET", f.Sim.GraphURL()+"/users/"+f.Ada.ID+"/messages", nil)
	if _, err := hc.Do(req); !errors.Is(err, context.DeadlineExceeded) || sent.Load() != 0 {
		t.Fatalf("got %v with %d sent, want the deadline and nothing sent", err, sent.Load())
	}
	var slots int
	var tokens float64
	if err := procs[0].st.Pool().QueryRow(ctx, `SELECT count(*) FROM graph_slots WHERE key = $1`, "mailbox:"+f.Ada.ID).Scan(&slots); err != nil {
		t.Fatal(err)
	}
	if err := procs[0].st.Pool().QueryRow(ctx, `SELECT tokens FROM graph_buckets WHERE key = $1`, "mailbox:"+f.Ada.ID).Scan(&tokens); err != nil {
		t.Fatal(err)
	}
	if slots != 4 || tokens < 1000-0.001 {
		t.Fatalf("after the cancel: %d slots held (want the other process's 4), %v tokens (want the burst, 1000)", slots, tokens)
	}
	for _, l := range held {
		if err := procs[0].st.ReleaseGraphSlot(ctx, l); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := hc.Get(f.Sim.GraphURL() + "/users/" + f.Ada.ID + "/messages")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("once the slots are free: %v %v", resp, err)
	}
	resp.Body.Close()
}

type countingTransport struct {
	n    *atomic.Int64
	next http.RoundTripper
}

func (c countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.next.RoundTrip(r)
}

// Directory reads of a tenant draw on one bucket every process shares,
// not on a mailbox's slots.
func TestDirectoryBudgetIsSharedPerTenant(t *testing.T) {
	dsn := testenv.Postgres(t)
	f := simtest.Start(t, graphsim.Options{})
	tok := f.SignIn(t, f.Ada.UPN, "Mail.Read").AccessToken
	procs := startProcesses(t, dsn, 2, true)
	for i, p := range procs {
		hc := &http.Client{Transport: bearer{tok: tok, next: p.limits.DirectoryTransport(f.Tenant.ID, http.DefaultTransport)}}
		resp, err := hc.Get(f.Sim.GraphURL() + "/me/messages?$top=1")
		if err != nil {
			t.Fatalf("process %d: %v", i, err)
		}
		resp.Body.Close()
	}
	ctx := context.Background()
	var tokens float64
	if err := procs[0].st.Pool().QueryRow(ctx, `SELECT tokens FROM graph_buckets WHERE key = $1`, "directory:/"+f.Tenant.ID).Scan(&tokens); err != nil {
		t.Fatal(err)
	}
	// Two reads from a full bucket of 1,750, which refills 175 a second.
	if tokens < 1748 || tokens > 1749 {
		t.Fatalf("the tenant's bucket holds %v tokens after two reads from two processes, want about 1,748", tokens)
	}
	var slots int
	if err := procs[0].st.Pool().QueryRow(ctx, `SELECT count(*) FROM graph_slots`).Scan(&slots); err != nil || slots != 0 {
		t.Fatalf("directory reads left %d slots held (%v)", slots, err)
	}
}
