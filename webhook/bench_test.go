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

	"github.com/outlookd/outlookd/internal/benchfig"
	"github.com/outlookd/outlookd/internal/testenv"
	"github.com/outlookd/outlookd/store"
	"github.com/outlookd/outlookd/webhook"
	"github.com/outlookd/outlookd/workflows"
)

// sink stands in for a connection workflow: it takes change signals and
// does nothing else, so the benchmark measures the receiver and Temporal's
// signal path, not delta rounds.
func sink(ctx workflow.Context) error {
	ch := workflow.GetSignalChannel(ctx, workflows.SignalChanges)
	for {
		ch.Receive(ctx, nil)
	}
}

// TestBenchWebhookIngest loads the notification receiver on loopback with
// concurrent posts of Graph notifications (each a small batch, spread over
// many connections), against the real Postgres and Temporal: every
// acknowledgement means the notification was committed to the inbox, and
// each round ends only when the forwarder has turned all of them into
// signals accepted by Temporal. It reports
// acknowledgements per second, ack latency percentiles and the signals sent
// per notification after coalescing, with a parse-only handler as the
// baseline (median of three runs each).
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
	st, err := store.Open(ctx, testenv.Postgres(t), 32)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	tc, err := client.Dial(client.Options{HostPort: testenv.Temporal(t), Logger: tlog.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	queue := fmt.Sprintf("bench-ingest-%d", time.Now().UnixNano())
	w := worker.New(tc, queue, worker.Options{})
	w.RegisterWorkflowWithOptions(sink, workflow.RegisterOptions{Name: "BenchSink"})
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer w.Stop()

	type sub struct{ id, state string }
	subs := make([]sub, connections)
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
		subs[i] = s
	}
	body := func(r *rand.Rand) []byte {
		var items []map[string]string
		for range perPost {
			s := subs[r.IntN(len(subs))]
			items = append(items, map[string]string{"subscriptionId": s.id, "clientState": s.state, "changeType": "created",
				"resource": "Users/x/Messages/y", "tenantId": "t"})
		}
		raw, _ := json.Marshal(map[string]any{"value": items})
		return raw
	}
	// load posts for runFor with workers in parallel; it returns acks per
	// second and the latencies.
	load := func(url string) (float64, []time.Duration) {
		var acks atomic.Int64
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
					b := body(r)
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
					}
				}
				mu.Lock()
				lat = append(lat, mine...)
				mu.Unlock()
			}()
		}
		wg.Wait()
		return float64(acks.Load()) / time.Since(start).Seconds(), lat
	}
	inbox := store.NewInbox(st)
	defer inbox.Close()
	fwd := &webhook.Forwarder{Store: st, Temporal: tc}
	fctx, stopFwd := context.WithCancel(ctx)
	fwdDone := make(chan struct{})
	go func() { _ = fwd.Run(fctx); close(fwdDone) }()
	defer func() { stopFwd(); <-fwdDone }()
	recv := &webhook.Receiver{Store: st, Inbox: inbox, Forwarder: fwd}
	real := httptest.NewServer(http.HandlerFunc(recv.Notifications))
	defer real.Close()
	base := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := webhook.Parse(http.MaxBytesReader(w, r.Body, webhook.MaxBody)); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	}))
	defer base.Close()

	load(real.URL) // warm the caches and connections
	drain(t, st)
	recv.Accepted.Store(0)
	fwd.Signals.Store(0)
	var rates, baseRates, p50s, p99s []float64
	for range rounds {
		rate, lat := load(real.URL)
		drain(t, st) // every acknowledged notification became a signal
		ms := benchfig.Millis(lat)
		rates = append(rates, rate)
		p50s = append(p50s, benchfig.Percentile(ms, 0.50))
		p99s = append(p99s, benchfig.Percentile(ms, 0.99))
		b, _ := load(base.URL)
		baseRates = append(baseRates, b)
	}
	rate, baseRate := benchfig.Median(rates), benchfig.Median(baseRates)
	_ = benchfig.Fprint(os.Stdout, "webhook-ingest", map[string]any{"acks_per_s": benchfig.Round(rate, 1),
		"p50_ms": benchfig.Round(benchfig.Median(p50s), 2), "p99_ms": benchfig.Round(benchfig.Median(p99s), 2),
		"signals_per_notification": benchfig.Round(float64(fwd.Signals.Load())/float64(recv.Accepted.Load()), 3),
		"baseline_acks_per_s":      benchfig.Round(baseRate, 1), "ratio": benchfig.Round(rate/baseRate, 3),
		"connections": connections, "concurrency": workers})
	if recv.Ignored.Load() != 0 {
		t.Errorf("%d genuine notifications were ignored", recv.Ignored.Load())
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
