package main

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/outlookd/outlookd/graphsim"
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
		var c conn
		if st, err := w.call("POST", "/v1/connections", map[string]any{"login_hint": users[i], "folders": []string{"inbox"}}, &c); err != nil || st != 201 {
			return fmt.Errorf("create: %d %v", st, err)
		}
		if err := w.consent(c.AuthorizeURL); err != nil {
			return err
		}
		ids[i] = c.ID
	}
	for _, id := range ids {
		if _, err := w.waitConn(id, 5*time.Minute, "push", func(c conn) bool { return c.SyncMode == "push" }); err != nil {
			return err
		}
	}
	var mu sync.Mutex
	injected := map[string]time.Time{} // message ID -> injection time
	connOf := map[string]string{}      // message ID -> connection ID
	var lat []time.Duration
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
				// By primary key (connection, message): the watcher must not
				// load the database it measures.
				rows, err := w.st.Pool().Query(ctx, `SELECT m.id FROM messages m JOIN unnest($1::text[], $2::text[]) AS p(c, i)
					ON m.connection_id = p.c AND m.id = p.i`, conns, pending)
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
			finished := len(injected) == 0 && len(lat) >= int(rate*d.Seconds())
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
			return err
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
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		return fmt.Errorf("%d messages never reached Postgres", len(injected))
	}
	slices.Sort(lat)
	pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
	line, _ := json.Marshal(map[string]any{"bench": "push-latency", "mailboxes": mailboxes, "msgs_per_s": round1(achieved),
		"p50_ms": round1(pct(0.50)), "p99_ms": round1(pct(0.99)), "max_ms": round1(pct(1)), "messages": len(lat)})
	fmt.Println(string(line))
	return nil
}

func round1(f float64) float64 { return float64(int64(f*10+0.5)) / 10 }
