package workflows

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"golang.org/x/sync/errgroup"
)

// TestBenchSendSteps measures what the send workflow's own steps cost on a
// Temporal server (TEMPORAL_ADDRESS), with activities that answer at once
// (no Graph, no Postgres, no Vault): sends are started as the
// send-throughput benchmark posts them (32 at a time) and the time from
// the start to the submission is taken for each. It tells whether the
// workflow's steps through Temporal alone keep up with a rate of
// OUTLOOKD_BENCH_SENDS sends (default 3000, 100 mailboxes' minute).
//
//	OUTLOOKD_BENCH=1 TEMPORAL_ADDRESS=127.0.0.1:17233 go test -run TestBenchSendSteps -v ./workflows
func TestBenchSendSteps(t *testing.T) {
	c, suffix := serverClient(t, "OUTLOOKD_BENCH", "a benchmark")
	n := 3000
	if v, err := strconv.Atoi(os.Getenv("OUTLOOKD_BENCH_SENDS")); err == nil && v > 0 {
		n = v
	}
	queue := "outlookd-bench-" + suffix
	w := worker.New(c, queue, worker.Options{MaxConcurrentWorkflowTaskPollers: 8, MaxConcurrentActivityTaskPollers: 8})
	var mu sync.Mutex
	started := map[string]time.Time{}
	submitted := map[string]time.Time{}
	w.RegisterWorkflow(Send)
	w.RegisterActivityWithOptions(func(ctx context.Context, in SendRef) (PrepareSendResult, error) {
		return PrepareSendResult{DraftID: "d-" + in.SendID}, nil
	}, activity.RegisterOptions{Name: ActivityPrepareSend})
	w.RegisterActivityWithOptions(func(ctx context.Context, in SubmitSendInput) (SubmitSendResult, error) {
		mu.Lock()
		submitted[in.SendID] = time.Now()
		mu.Unlock()
		return SubmitSendResult{Accepted: true}, nil
	}, activity.RegisterOptions{Name: ActivitySubmitSend})
	w.RegisterActivityWithOptions(func(ctx context.Context, in SendRef) (LocateSendResult, error) {
		return LocateSendResult{Found: FoundSentItems, MessageID: "d-" + in.SendID}, nil
	}, activity.RegisterOptions{Name: ActivityLocateSend})
	w.RegisterActivityWithOptions(func(ctx context.Context, in SendStateInput) (SendConnectionResult, error) {
		return SendConnectionResult{State: StateActive}, nil
	}, activity.RegisterOptions{Name: ActivitySendConnectionState})
	w.RegisterActivityWithOptions(func(ctx context.Context, in RecordSendInput) error { return nil }, activity.RegisterOptions{Name: ActivityRecordSend})
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	ctx := context.Background()
	begin := time.Now()
	g := errgroup.Group{}
	g.SetLimit(32)
	runs := make([]client.WorkflowRun, n)
	for i := range n {
		g.Go(func() error {
			id := fmt.Sprintf("snd_%s_%d", suffix, i)
			mu.Lock()
			started[id] = time.Now()
			mu.Unlock()
			r, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "bench/" + id, TaskQueue: queue, EnableEagerStart: true}, Send,
				SendInput{SendID: id, ConnectionID: "conn_1", UserID: fmt.Sprintf("u-%d", i%100), Recipients: 1, Rates: testRates})
			runs[i] = r
			return err
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	startedIn := time.Since(begin)
	for _, r := range runs {
		if err := r.Get(ctx, nil); err != nil {
			t.Fatal(err)
		}
	}
	all := time.Since(begin)
	var lat []time.Duration
	inMinute := 0
	for id, at := range submitted {
		lat = append(lat, at.Sub(started[id]))
		if at.Sub(begin) < time.Minute {
			inMinute++
		}
	}
	slices.Sort(lat)
	t.Logf("%d sends started in %v (%.0f/s); all ended in %v; submitted within the first minute: %d (%.2f of %d); start to submit p50 %v p99 %v",
		n, startedIn.Round(time.Millisecond), float64(n)/startedIn.Seconds(), all.Round(time.Millisecond), inMinute, float64(inMinute)/float64(n), n,
		lat[len(lat)/2].Round(time.Millisecond), lat[len(lat)*99/100].Round(time.Millisecond))
}
