package main

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/outlookd/outlookd/graphsim"
	"github.com/outlookd/outlookd/internal/benchfig"
)

// pushLatency connects mailboxes (push mode), then injects mail into them
// at a steady rate and measures, per message, the time from its injection
// in graphsim to its row in Postgres. It prints one JSON line.
func pushLatency(ctx context.Context, mailboxes int, rate float64, d time.Duration) error {
	w, err := newWorld(ctx, "bench-push-latency", false)
	if w != nil {
		defer func() { w.close() }()
	}
	if err != nil {
		return err
	}
	users := make([]string, mailboxes)
	ids := make([]string, mailboxes)
	for i := range users {
		users[i] = fmt.Sprintf("push%03d@contoso.example", i)
		if _, err := w.sim.AddUser(ctx, graphsim.UserSpec{Tenant: "contoso.example", UPN: users[i]}); err != nil {
			return err
		}
		id, err := w.createConsented(defaultUser, users[i], inboxOnly)
		if err != nil {
			return err
		}
		ids[i] = id
	}
	for _, id := range ids {
		if _, err := w.waitConn(id, 5*time.Minute, "push", func(c conn) bool { return c.SyncMode == "push" }); err != nil {
			return err
		}
	}
	const runs = 3
	var p50s, p99s, maxes, rates []float64
	total := 0
	for range runs {
		r, err := pushRound(ctx, w, users, ids, rate, d)
		if err != nil {
			return err
		}
		p50s, p99s, maxes, rates = append(p50s, r.p50), append(p99s, r.p99), append(maxes, r.max), append(rates, r.rate)
		total += r.messages
		fmt.Fprintf(os.Stderr, "push-latency: %d messages at %.1f/s: p50 %.1f ms, p99 %.1f ms, max %.1f ms\n", r.messages, r.rate, r.p50, r.p99, r.max)
	}
	return benchfig.Fprint(os.Stdout, "push-latency", map[string]any{"mailboxes": mailboxes, "msgs_per_s": benchfig.Round(benchfig.Median(rates), 1),
		"p50_ms": benchfig.Round(benchfig.Median(p50s), 1), "p99_ms": benchfig.Round(benchfig.Median(p99s), 1),
		"max_ms": benchfig.Round(benchfig.Median(maxes), 1), "messages": total, "runs": runs})
}

// pushFigures are one push-latency round's figures (milliseconds).
type pushFigures struct {
	p50, p99, max, rate float64
	messages            int
}

// pushRound injects mail at rate for d, spread over the mailboxes, and
// measures each message's time from injection to its row in Postgres.
func pushRound(ctx context.Context, w *world, users, ids []string, rate float64, d time.Duration) (pushFigures, error) {
	var mu sync.Mutex
	injected := map[string]time.Time{} // message ID -> injection time
	connOf := map[string]string{}      // message ID -> connection ID
	var lat []time.Duration
	allSent := false
	done := make(chan struct{})
	go func() { // watch Postgres for arrivals
		defer close(done)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for range tick.C {
			mu.Lock()
			pending := make([]string, 0, len(injected))
			conns := make([]string, 0, len(injected))
			for id := range injected {
				pending = append(pending, id)
				conns = append(conns, connOf[id])
			}
			mu.Unlock()
			if len(pending) > 0 {
				// By primary key (mailbox, message): the watcher must not
				// load the database it measures.
				rows, err := w.st.Pool().Query(ctx, `SELECT m.id FROM messages m JOIN unnest($1::text[], $2::text[]) AS p(c, i)
					ON m.mailbox_id = p.c AND m.id = p.i`, conns, pending)
				if err == nil {
					now := time.Now()
					for rows.Next() {
						var id string
						_ = rows.Scan(&id)
						mu.Lock()
						if t0, ok := injected[id]; ok {
							lat = append(lat, now.Sub(t0))
							delete(injected, id)
						}
						mu.Unlock()
					}
					rows.Close()
				}
			}
			select {
			case <-ctx.Done():
				return
			default:
			}
			mu.Lock()
			finished := allSent && len(injected) == 0
			mu.Unlock()
			if finished {
				return
			}
		}
	}()
	every := time.Duration(float64(time.Second) / rate)
	start := time.Now()
	sent := 0
	for i := 0; time.Since(start) < d; i++ {
		u := users[i%len(users)]
		t0 := time.Now()
		got, err := w.sim.InjectMessages(ctx, u, graphsim.MessageSpec{Subject: "latency"})
		if err != nil {
			return pushFigures{}, err
		}
		mu.Lock()
		injected[got[0]] = t0
		connOf[got[0]] = ids[i%len(ids)]
		mu.Unlock()
		sent++
		if sleep := time.Until(start.Add(time.Duration(i+1) * every)); sleep > 0 {
			time.Sleep(sleep)
		}
	}
	achieved := float64(sent) / time.Since(start).Seconds()
	mu.Lock()
	allSent = true
	mu.Unlock()
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		mu.Lock()
		defer mu.Unlock()
		return pushFigures{}, fmt.Errorf("%d messages never reached Postgres", len(injected))
	}
	ms := benchfig.Millis(lat)
	return pushFigures{p50: benchfig.Percentile(ms, 0.50), p99: benchfig.Percentile(ms, 0.99), max: benchfig.Percentile(ms, 1),
		rate: achieved, messages: len(lat)}, nil
}
