package connect_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/outlookd/outlookd/graph"
	"github.com/outlookd/outlookd/graphsim"
	"github.com/outlookd/outlookd/internal/benchfig"
	"github.com/outlookd/outlookd/internal/enginetest"
	"github.com/outlookd/outlookd/store"
	"github.com/outlookd/outlookd/workflows"
)

// TestBenchBackfill compares the engine's backfill with a raw baseline in
// the same run: a plain loop paging the same simulator with the same query
// and page size, merging into the same Postgres. It prints one JSON line
// (make bench runs it with OUTLOOKD_BENCH=1).
func TestBenchBackfill(t *testing.T) {
	if os.Getenv("OUTLOOKD_BENCH") != "1" {
		t.Skip("a benchmark: run with OUTLOOKD_BENCH=1 (make bench)")
	}
	const messages, pageSize, rounds = 20000, 200, 3
	var engine, baseline []float64
	for range rounds {
		e := enginetest.Start(t, graphsim.Options{MailboxRequests: 1 << 30}, workflows.Options{PageSize: pageSize})
		el := timedBackfill(t, e, graphsim.GenerateSpec{Count: messages, Days: 25, Folders: []string{"inbox"}, AttachmentShare: 0.05}, nil)
		engine = append(engine, messages/el)
		baseline = append(baseline, rawBackfill(t, e, messages, pageSize))
	}
	em, bm := benchfig.Median(engine), benchfig.Median(baseline)
	_ = benchfig.Fprint(os.Stdout, "backfill", map[string]any{"engine_msgs_per_s": benchfig.Round(em, 2), "baseline_msgs_per_s": benchfig.Round(bm, 2),
		"ratio": benchfig.Round(em/bm, 2), "messages": messages, "page_size": pageSize, "runs": rounds})
}

// timedBackfill fills Ada's mailbox, connects it and returns how many
// seconds its first backfill took, checking that it stored every message;
// before, when set, runs between the consent and the start of the clock.
func timedBackfill(t *testing.T, e *enginetest.Engine, spec graphsim.GenerateSpec, before func()) float64 {
	t.Helper()
	ctx := context.Background()
	if _, err := e.Ctl.Generate(ctx, e.Ada.UPN, spec); err != nil {
		t.Fatal(err)
	}
	id, out := e.ConnectUser(e.Ada.UPN, workflows.Settings{BackfillDays: 30, Folders: spec.Folders})
	if out.State != workflows.StateActive {
		t.Fatal(out)
	}
	if before != nil {
		before()
	}
	start := time.Now()
	e.WaitFor(id, 10*time.Minute, "backfill", func(st workflows.Status) bool { return !st.Backfill.Covered.IsZero() && !st.Backfill.Running })
	el := time.Since(start).Seconds()
	if n, _ := e.Store.CountMessages(ctx, id); n != int64(spec.Count) {
		t.Fatalf("engine stored %d of %d", n, spec.Count)
	}
	return el
}

// rawBackfill is the baseline: the same delta query and the same merge,
// without Temporal, and returns messages per second.
func rawBackfill(t *testing.T, e *enginetest.Engine, messages, pageSize int) float64 {
	t.Helper()
	ctx := context.Background()
	tok := e.SignIn(t, e.Ada.UPN, "offline_access", "Mail.Read")
	gc, err := graph.NewClient(graph.Config{BaseURL: e.Sim.GraphURL()}, oauth2.StaticTokenSource(tok))
	if err != nil {
		t.Fatal(err)
	}
	const conn = "baseline"
	if err := e.Store.CreateConnection(ctx, store.Connection{ID: conn, OrgID: "o", OwnerID: "b", State: "active", Mode: "delegated"}); err != nil {
		t.Fatal(err)
	}
	window := time.Now().Add(-30 * 24 * time.Hour)
	if err := e.Store.UpsertFolders(ctx, conn, []store.Folder{{ID: "inbox", DisplayName: "Inbox"}}, window); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	n, err := rawDeltaRound(ctx, gc, e.Store, conn, e.Ada.ID, "inbox", window, pageSize)
	if err != nil {
		t.Fatal(err)
	}
	if n != messages {
		t.Fatalf("baseline fetched %d of %d", n, messages)
	}
	return float64(messages) / time.Since(start).Seconds()
}

// TestBenchBackfillThrottled backfills a mailbox against the simulator's
// throttling at Graph's rate (10,000 requests per 10 minutes per app and
// mailbox, 16.7 a second) and concurrency (4), with small pages so that
// the request budget, not the engine, bounds the run. The window is
// shortened from 10 minutes to 3 seconds (50 requests) so that a run is not
// mostly the first window's free burst. The ceiling is what any client
// could do under these limits: the requests the backfill needed, less the
// simulator's burst, at the window's rate. throttled_share is the share of
// requests answered 429.
func TestBenchBackfillThrottled(t *testing.T) {
	if os.Getenv("OUTLOOKD_BENCH") != "1" {
		t.Skip("a benchmark: run with OUTLOOKD_BENCH=1 (make bench)")
	}
	const (
		messages, pageSize, rounds = 12000, 10, 3
		window                     = 3 * time.Second
		perWindow                  = 50 // 10,000 per 10 minutes
	)
	folders := workflows.DefaultFolders
	var rates, ceilings, ratios, shares []float64
	for range rounds {
		e := enginetest.Start(t, graphsim.Options{MailboxConcurrency: 4, MailboxRequests: perWindow, MailboxWindow: window},
			workflows.Options{PageSize: pageSize})
		var before map[string]int64
		el := timedBackfill(t, e, graphsim.GenerateSpec{Count: messages, Days: 25, Folders: folders}, func() {
			// Let the budget the consent used come back, then count from here.
			time.Sleep(window)
			before = e.Sim.Counters()
		})
		requests, throttled := graphRequests(before, e.Sim.Counters())
		minimum := float64(max(requests-throttled-perWindow, 0)) / (perWindow / window.Seconds())
		rate, ceiling := messages/el, messages/minimum
		t.Logf("requests %d (throttled %d) in %.1fs; the limits allow it in %.1fs", requests, throttled, el, minimum)
		rates, ceilings = append(rates, rate), append(ceilings, ceiling)
		ratios, shares = append(ratios, rate/ceiling), append(shares, float64(throttled)/float64(requests))
	}
	_ = benchfig.Fprint(os.Stdout, "backfill-throttled", map[string]any{"msgs_per_s": benchfig.Round(benchfig.Median(rates), 2),
		"ceiling_msgs_per_s": benchfig.Round(benchfig.Median(ceilings), 2), "ratio": benchfig.Round(benchfig.Median(ratios), 2),
		"throttled_share": benchfig.Median(shares), "messages": messages, "page_size": pageSize, "runs": rounds})
}

// graphRequests counts the Graph requests between two counter snapshots,
// and those of them refused by throttling.
func graphRequests(before, after map[string]int64) (requests, throttled int) {
	for k, v := range after {
		switch {
		case strings.HasPrefix(k, "requests."):
			requests += int(v - before[k])
		case strings.HasPrefix(k, "throttled."):
			throttled += int(v - before[k])
		}
	}
	return requests, throttled
}
