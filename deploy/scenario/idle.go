package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"golang.org/x/sync/errgroup"

	"github.com/outlookd/outlookd/graphsim"
	"github.com/outlookd/outlookd/internal/benchfig"
	"github.com/outlookd/outlookd/workflows"
)

// productionReconcile is the default OUTLOOKD_RECONCILE_EVERY: what an idle
// pushed connection's day is made of.
const productionReconcile = 6 * time.Hour

// idleConnections connects n mailboxes (push, API and worker as separate
// processes), lets them sit idle, and measures the worker's resident
// memory, how late the connections' timers are acted on, and how much
// history an idle connection writes.
//
// An idle pushed connection wakes for its reconciliation round (every 6
// hours by default); the benchmark runs them every reconcile instead, so
// that many timers fall due inside the window, and scales the history it
// measured back to the default schedule for history_events_per_day.
func idleConnections(ctx context.Context, n int, idle, reconcile time.Duration) error {
	w, err := newWorldEnv(ctx, "bench-idle-connections", true,
		[]string{"OUTLOOKD_API_RATE_LIMIT=100000", "OUTLOOKD_RECONCILE_EVERY=" + reconcile.String()})
	if w != nil {
		defer func() { w.close() }()
	}
	if err != nil {
		return err
	}
	progress := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "idle-connections: "+format+"\n", args...)
	}
	users := make([]string, n)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for i := range users {
		users[i] = fmt.Sprintf("idle%05d@contoso.example", i)
		g.Go(func() error {
			_, err := w.sim.AddUser(gctx, graphsim.UserSpec{Tenant: "contoso.example", UPN: users[i]})
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}

	// Connect them all through the API and the consent page.
	start := time.Now()
	ids := make([]string, n)
	var created atomic.Int64
	g, gctx = errgroup.WithContext(ctx)
	g.SetLimit(32) // each consent waits for the exchange; many at once
	stopProgress := ticker(30*time.Second, func() {
		progress("%d of %d consented after %s", created.Load(), n, time.Since(start).Round(time.Second))
	})
	for i, u := range users {
		g.Go(func() error {
			if gctx.Err() != nil {
				return gctx.Err()
			}
			id, err := w.createConsented(fmt.Sprintf("user%05d", i), u, inboxOnly)
			if err != nil {
				return err
			}
			ids[i] = id
			created.Add(1)
			return nil
		})
	}
	err = g.Wait()
	stopProgress()
	if err != nil {
		return err
	}
	consented := time.Since(start)
	w.mu.Lock()
	w.responses.Reset() // not scanned here; do not hold 10,000 answers
	w.mu.Unlock()

	// Wait until every connection finished its backfill and subscribed.
	if err := waitFor(30*time.Minute+time.Duration(n)*200*time.Millisecond, func() error {
		var done int
		if err := w.st.Pool().QueryRow(ctx, `SELECT count(DISTINCT connection_id) FROM events WHERE type = 'backfill.completed'`).Scan(&done); err != nil {
			return err
		}
		subs, err := w.sim.Subscriptions(ctx)
		if err != nil {
			return err
		}
		if done < n || len(subs) < n {
			time.Sleep(2 * time.Second)
			return fmt.Errorf("%d of %d backfilled, %d subscribed", done, n, len(subs))
		}
		return nil
	}); err != nil {
		return err
	}
	live := time.Since(start)
	progress("%d connections live after %s (consents took %s); idle for %s", n, live.Round(time.Second), consented.Round(time.Second), idle)

	// Idle: sample each worker's resident memory (one worker on the test
	// profile, every worker on the cluster profile).
	workers := w.workerNames()
	peakRSS := make([]atomic.Int64, len(workers))
	sample := func() {
		for i, name := range workers {
			if kib := rssKiB(w.procs[name].Process.Pid); kib > peakRSS[i].Load() {
				peakRSS[i].Store(kib)
			}
		}
	}
	sample()
	idleStart := time.Now()
	stopRSS := ticker(5*time.Second, sample)
	select {
	case <-time.After(idle):
	case <-ctx.Done():
		stopRSS()
		return ctx.Err()
	}
	stopRSS()
	sample()
	idleEnd := time.Now()
	for _, name := range workers {
		if p := w.procs[name]; p.ProcessState != nil {
			return fmt.Errorf("%s exited during the idle window: %s", name, p.ProcessState)
		}
	}

	// What the connections' histories say about the window.
	tc, err := w.temporal()
	if err != nil {
		return err
	}
	defer tc.Close()
	sampled := slices.Clone(ids)
	rand.Shuffle(len(sampled), func(i, j int) { sampled[i], sampled[j] = sampled[j], sampled[i] })
	sampled = sampled[:min(len(sampled), 1000)]
	var lateness []float64
	events := 0
	for _, id := range sampled {
		l, e, err := windowHistory(ctx, tc, workflows.ConnectionWorkflowID(id), idleStart, idleEnd)
		if err != nil {
			return err
		}
		lateness, events = append(lateness, l...), events+e
	}
	if len(lateness) == 0 {
		return fmt.Errorf("no timer fell due in the %s window: make it longer than the reconciliation interval (%s)", idle, reconcile)
	}
	slices.Sort(lateness)
	perConn := float64(events) / float64(len(sampled))
	// One idle window of the benchmark's schedule is this many days of
	// the default one.
	days := idle.Seconds() / 86400 * float64(productionReconcile) / float64(reconcile)
	rss := make([]float64, len(workers))
	for i := range peakRSS {
		rss[i] = benchfig.Round(float64(peakRSS[i].Load())/1024, 1)
	}
	return benchfig.Fprint(os.Stdout, "idle-connections", map[string]any{
		"connections":            n,
		"workers":                len(workers),
		"worker_rss_mib":         slices.Max(rss),
		"worker_rss_mib_each":    rss,
		"connect_per_s":          benchfig.Round(float64(n)/consented.Seconds(), 1),
		"timer_lateness_p50_s":   benchfig.Round(benchfig.Percentile(lateness, 0.50), 3),
		"timer_lateness_p99_s":   benchfig.Round(benchfig.Percentile(lateness, 0.99), 3),
		"timers":                 len(lateness),
		"history_events_per_day": benchfig.Round(perConn/days, 1),
		"idle_s":                 benchfig.Round(idleEnd.Sub(idleStart).Seconds(), 1),
		"reconcile_every_s":      reconcile.Seconds(),
		"all_live_s":             benchfig.Round(live.Seconds(), 1),
		"histories_sampled":      len(sampled),
	})
}

// windowHistory reads a workflow's history and returns, for each timer
// that fell due within [from, to], how long after its due time the
// workflow task that acted on it completed, and the number of events
// written within the window.
func windowHistory(ctx context.Context, tc client.Client, workflowID string, from, to time.Time) (lateness []float64, events int, err error) {
	due := map[int64]time.Time{} // TimerStarted event ID -> due time
	var fired []time.Time        // due times awaiting the next completed workflow task
	it := tc.GetWorkflowHistory(ctx, workflowID, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			return nil, 0, fmt.Errorf("history of %s: %w", workflowID, err)
		}
		at := ev.GetEventTime().AsTime()
		if !at.Before(from) && !at.After(to) {
			events++
		}
		switch ev.GetEventType() {
		case enumspb.EVENT_TYPE_TIMER_STARTED:
			due[ev.GetEventId()] = at.Add(ev.GetTimerStartedEventAttributes().GetStartToFireTimeout().AsDuration())
		case enumspb.EVENT_TYPE_TIMER_FIRED:
			if d, ok := due[ev.GetTimerFiredEventAttributes().GetStartedEventId()]; ok && !d.Before(from) && !d.After(to) {
				fired = append(fired, d)
			}
		case enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
			for _, d := range fired {
				lateness = append(lateness, at.Sub(d).Seconds())
			}
			fired = fired[:0]
		}
	}
	return lateness, events, nil
}

// rssKiB is a process's resident set size from /proc (0 if unknown).
func rssKiB(pid int) int64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kib, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kib
		}
	}
	return 0
}

// ticker calls f every d until the returned stop is called.
func ticker(d time.Duration, f func()) (stop func()) {
	done := make(chan struct{})
	t := time.NewTicker(d)
	go func() {
		for {
			select {
			case <-t.C:
				f()
			case <-done:
				return
			}
		}
	}()
	return func() { t.Stop(); close(done) }
}
