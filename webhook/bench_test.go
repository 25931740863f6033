package webhook_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"golang.org/x/sync/errgroup"

	"github.com/outlookd/outlookd/internal/benchfig"
	"github.com/outlookd/outlookd/internal/testenv"
	"github.com/outlookd/outlookd/store"
	"github.com/outlookd/outlookd/webhook"
	"github.com/outlookd/outlookd/workflows"
)

// sink stands in for a connection workflow: it takes change signals and
// does nothing else, so the benchmark measures the receiver and Temporal's
// signal path, not delta rounds. It answers the "received" query with the
// signals it took.
func sink(ctx workflow.Context) error {
	received := 0
	if err := workflow.SetQueryHandler(ctx, "received", func() (int, error) { return received, nil }); err != nil {
		return err
	}
	ch := workflow.GetSignalChannel(ctx, workflows.SignalChanges)
	for {
		ch.Receive(ctx, nil)
		received++
	}
}

// replica is one API process's notification path (outlookd serve --role
// api): its own Postgres pool, Temporal client, receiver, inbox writer and
// forwarder, sharing only Postgres and Temporal with the other replicas.
type replica struct {
	st    *store.Store
	tc    client.Client
	inbox *store.Inbox
	fwd   *webhook.Forwarder
	recv  *webhook.Receiver
	srv   *httptest.Server

	stopFwd context.CancelFunc
	fwdDone chan struct{}
}

func newReplica(ctx context.Context, t *testing.T, dsn string) *replica {
	t.Helper()
	st, err := store.Open(ctx, dsn, 32)
	if err != nil {
		t.Fatal(err)
	}
	tc, err := client.Dial(client.Options{HostPort: testenv.Temporal(t), Logger: tlog.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))})
	if err != nil {
		st.Close()
		t.Fatal(err)
	}
	r := &replica{st: st, tc: tc, inbox: store.NewInbox(st), fwd: &webhook.Forwarder{Store: st, Temporal: tc}}
	r.recv = &webhook.Receiver{Store: st, Inbox: r.inbox, Forwarder: r.fwd}
	r.srv = httptest.NewServer(http.HandlerFunc(r.recv.Notifications))
	return r
}

// start runs the replica's forwarder; stop ends it.
func (r *replica) start() {
	ctx, cancel := context.WithCancel(context.Background())
	r.stopFwd, r.fwdDone = cancel, make(chan struct{})
	go func() { _ = r.fwd.Run(ctx); close(r.fwdDone) }()
}

func (r *replica) stop() {
	if r.stopFwd != nil {
		r.stopFwd()
		<-r.fwdDone
		r.stopFwd = nil
	}
}

func (r *replica) close() {
	r.stop()
	r.srv.Close()
	r.inbox.Close()
	r.tc.Close()
	r.st.Close()
}

// counts are a replica's counters summed over replicas.
type counts struct{ accepted, ignored, signals, entries, commits int64 }

func sum(rs ...*replica) counts {
	var c counts
	for _, r := range rs {
		c.accepted += r.recv.Accepted.Load()
		c.ignored += r.recv.Ignored.Load()
		c.signals += r.fwd.Signals.Load()
		c.entries += r.fwd.Entries.Load()
		c.commits += r.inbox.Commits.Load()
	}
	return c
}

func (c counts) minus(d counts) counts {
	return counts{c.accepted - d.accepted, c.ignored - d.ignored, c.signals - d.signals, c.entries - d.entries, c.commits - d.commits}
}

func (c counts) plus(d counts) counts {
	return counts{c.accepted + d.accepted, c.ignored + d.ignored, c.signals + d.signals, c.entries + d.entries, c.commits + d.commits}
}

// TestBenchWebhookIngest loads the notification receiver on loopback with
// concurrent posts of Graph notifications (each a small batch, spread over
// many connections), against the real Postgres and Temporal: every
// acknowledgement means the notification was committed to the inbox, and
// each round ends only when the forwarders have turned all of them into
// signals accepted by Temporal. Each round runs one API replica, then two
// (each its own pool, Temporal client, receiver, inbox writer and
// forwarder; the posts spread round-robin over them, as a balancer would),
// then a parse-only handler as the baseline. It reports acknowledgements
// per second and ack latency percentiles for each (median of three
// rounds), the signals sent per notification after coalescing, the inbox
// entries each group commit wrote, and what
// proves nothing was lost or forwarded twice: the inbox entries the
// acknowledged posts committed against those the forwarders handed over
// (an entry forwarded twice counts twice), and the signals the forwarders
// had accepted against those the workflows took.
func TestBenchWebhookIngest(t *testing.T) {
	if os.Getenv("OUTLOOKD_BENCH") != "1" {
		t.Skip("a benchmark: run with OUTLOOKD_BENCH=1 (make bench)")
	}
	const (
		connections = 100
		workers     = 64
		perPost     = 3
		runFor      = 4 * time.Second
		rounds      = 3
	)
	ctx := context.Background()
	dsn := testenv.Postgres(t) // one database for both replicas
	one, two := newReplica(ctx, t, dsn), newReplica(ctx, t, dsn)
	defer one.close()
	defer two.close()
	st, tc := one.st, one.tc
	queue := fmt.Sprintf("bench-ingest-%d", time.Now().UnixNano())
	w := worker.New(tc, queue, worker.Options{})
	w.RegisterWorkflowWithOptions(sink, workflow.RegisterOptions{Name: "BenchSink"})
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer w.Stop()

	type sub struct{ id, state string }
	subs := make([]sub, connections)
	conns := make([]string, connections)
	for i := range subs {
		conn := fmt.Sprintf("conn_bench%02d%06d", i, time.Now().UnixNano()%1e6)
		if err := st.CreateConnection(ctx, store.Connection{ID: conn, OrgID: "bench", OwnerID: "bench", State: "active", Mode: "delegated"}); err != nil {
			t.Fatal(err)
		}
		s := sub{id: fmt.Sprintf("sub-%s", conn), state: fmt.Sprintf("state-%d", i)}
		h := sha256.Sum256([]byte(s.state))
		if err := st.SaveSubscription(ctx, store.Subscription{ID: s.id, ConnectionID: conn, ClientStateHash: h[:], Resource: "users/x/messages", ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		if _, err := tc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: workflows.ConnectionWorkflowID(conn), TaskQueue: queue}, "BenchSink"); err != nil {
			t.Fatal(err)
		}
		defer func() {
			_ = tc.TerminateWorkflow(context.Background(), workflows.ConnectionWorkflowID(conn), "", "benchmark over")
		}()
		subs[i], conns[i] = s, conn
	}
	// body is a post of perPost notifications and the inbox entries the
	// receiver commits for it: one per distinct connection (each
	// subscription is on its own connection).
	body := func(r *rand.Rand) ([]byte, int64) {
		var items []map[string]string
		seen := map[int]bool{}
		for range perPost {
			i := r.IntN(len(subs))
			seen[i] = true
			items = append(items, map[string]string{"subscriptionId": subs[i].id, "clientState": subs[i].state, "changeType": "created",
				"resource": "Users/x/Messages/y", "tenantId": "t"})
		}
		raw, _ := json.Marshal(map[string]any{"value": items})
		return raw, int64(len(seen))
	}
	// load posts for runFor with workers in parallel, each post to the
	// next of urls in turn; it returns acks per second, the latencies and
	// the inbox entries the acknowledged posts committed.
	load := func(urls ...string) (float64, []time.Duration, int64) {
		var acks, entries, next atomic.Int64
		var mu sync.Mutex
		var lat []time.Duration
		deadline := time.Now().Add(runFor)
		start := time.Now()
		var wg sync.WaitGroup
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: workers}}
		for g := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := rand.New(rand.NewPCG(uint64(g), 7))
				var mine []time.Duration
				for time.Now().Before(deadline) {
					b, n := body(r)
					url := urls[int(next.Add(1))%len(urls)]
					t0 := time.Now()
					resp, err := client.Post(url, "application/json", bytes.NewReader(b))
					if err != nil {
						continue
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode == http.StatusAccepted {
						mine = append(mine, time.Since(t0))
						acks.Add(1)
						entries.Add(n)
					}
				}
				mu.Lock()
				lat = append(lat, mine...)
				mu.Unlock()
			}()
		}
		wg.Wait()
		return float64(acks.Load()) / time.Since(start).Seconds(), lat, entries.Load()
	}
	base := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := webhook.Parse(http.MaxBytesReader(w, r.Body, webhook.MaxBody)); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	}))
	defer base.Close()

	// series is what one setup (one replica or two) measured over the rounds.
	type series struct {
		rates, p50s, p99s []float64
		counts            counts
		committed         int64
		// byReplica is the entries each replica's forwarder handed over.
		byReplica [2]int64
	}
	// measure runs one load over the replicas' servers, waits until the
	// inbox drained (every acknowledged notification became a signal) and
	// adds the figures to s.
	measure := func(s *series, rs ...*replica) {
		var urls []string
		var before [2]int64
		for i, r := range rs {
			urls = append(urls, r.srv.URL)
			before[i] = r.fwd.Entries.Load()
		}
		c0 := sum(one, two)
		rate, lat, committed := load(urls...)
		drain(t, st)
		s.counts = s.counts.plus(sum(one, two).minus(c0))
		s.committed += committed
		for i, r := range rs {
			s.byReplica[i] += r.fwd.Entries.Load() - before[i]
		}
		ms := benchfig.Millis(lat)
		s.rates = append(s.rates, rate)
		s.p50s = append(s.p50s, benchfig.Percentile(ms, 0.50))
		s.p99s = append(s.p99s, benchfig.Percentile(ms, 0.99))
	}

	one.start()
	two.start()
	load(one.srv.URL, two.srv.URL) // warm the caches and connections
	drain(t, st)
	two.stop()
	var single, double series
	var baseRates []float64
	for range rounds {
		measure(&single, one)
		two.start()
		measure(&double, one, two)
		two.stop()
		b, _, _ := load(base.URL)
		baseRates = append(baseRates, b)
	}
	sent := sum(one, two).signals
	took := received(t, tc, conns, sent)

	rate, rate2, baseRate := benchfig.Median(single.rates), benchfig.Median(double.rates), benchfig.Median(baseRates)
	perNotification := func(c counts) float64 { return benchfig.Round(float64(c.signals)/float64(c.accepted), 3) }
	perCommit := func(s series) float64 { return benchfig.Round(float64(s.committed)/float64(s.counts.commits), 1) }
	_ = benchfig.Fprint(os.Stdout, "webhook-ingest", map[string]any{"acks_per_s": benchfig.Round(rate, 1),
		"p50_ms": benchfig.Round(benchfig.Median(single.p50s), 2), "p99_ms": benchfig.Round(benchfig.Median(single.p99s), 2),
		"signals_per_notification": perNotification(single.counts),
		"baseline_acks_per_s":      benchfig.Round(baseRate, 1), "ratio": benchfig.Round(rate/baseRate, 3),
		"acks_per_s_2_replicas": benchfig.Round(rate2, 1),
		"p50_ms_2_replicas":     benchfig.Round(benchfig.Median(double.p50s), 2), "p99_ms_2_replicas": benchfig.Round(benchfig.Median(double.p99s), 2),
		"signals_per_notification_2_replicas": perNotification(double.counts),
		"ratio_2_to_1":                        benchfig.Round(rate2/rate, 3),
		"inbox_entries_per_commit":            perCommit(single), "inbox_entries_per_commit_2_replicas": perCommit(double),
		"notifications_accepted": single.counts.accepted, "notifications_accepted_2_replicas": double.counts.accepted,
		"inbox_entries_committed": single.committed, "inbox_entries_forwarded": single.counts.entries,
		"inbox_entries_committed_2_replicas": double.committed, "inbox_entries_forwarded_2_replicas": double.counts.entries,
		"inbox_entries_forwarded_by_replica_2_replicas": double.byReplica,
		"signals_sent": sent, "signals_received": took,
		"connections": connections, "concurrency": workers})
	if c := sum(one, two); c.ignored != 0 {
		t.Errorf("%d genuine notifications were ignored", c.ignored)
	}
	for _, s := range []struct {
		name string
		s    series
	}{{"one replica", single}, {"two replicas", double}} {
		if s.s.counts.entries != s.s.committed {
			t.Errorf("%s: the acknowledged posts committed %d inbox entries and the forwarders handed over %d", s.name, s.s.committed, s.s.counts.entries)
		}
	}
	if took != sent {
		t.Errorf("the forwarders had %d signals accepted and the workflows took %d", sent, took)
	}
}

// received sums the signals the sinks of the connections took, asking
// until they took want (a signal Temporal accepted may still wait for its
// workflow task) or a minute passed.
func received(t *testing.T, tc client.Client, conns []string, want int64) int64 {
	t.Helper()
	var got int64
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(500 * time.Millisecond) {
		var total atomic.Int64
		var g errgroup.Group
		g.SetLimit(16)
		for _, conn := range conns {
			g.Go(func() error {
				v, err := tc.QueryWorkflow(context.Background(), workflows.ConnectionWorkflowID(conn), "", "received")
				if err != nil {
					return err
				}
				var n int64
				if err := v.Get(&n); err != nil {
					return err
				}
				total.Add(n)
				return nil
			})
		}
		err := g.Wait()
		got = total.Load()
		if err == nil && got >= want || time.Now().After(deadline) {
			if err != nil {
				t.Errorf("asking the workflows what they took: %v", err)
			}
			return got
		}
	}
}

// drain waits until the forwarder has emptied the inbox.
func drain(t *testing.T, st *store.Store) {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(20 * time.Millisecond) {
		n, err := st.InboxLen(context.Background())
		if err == nil && n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the inbox still holds %d entries", n)
		}
	}
}
