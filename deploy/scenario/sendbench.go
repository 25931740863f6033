package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/outlookd/outlookd/api"
	"github.com/outlookd/outlookd/graphsim"
	"github.com/outlookd/outlookd/internal/benchfig"
	"github.com/outlookd/outlookd/workflows"
)

// sendThroughput connects mailboxes for sending and has each ask, all at
// once, for more messages than its sending rate (30 a minute) lets go in
// the window: outlookd sends what the rate allows at once and queues the
// rest for their time. It prints the messages Graph accepted within the
// window against the ceiling the rate allows (mailboxes x 30 x the
// window's started minutes), the busiest minute of any mailbox at Graph,
// and the latency from the API call to sent of
// the sends that were under the limit (not queued).
//
// The window runs on the real clock: outlookd's rates are counted in
// Postgres and its queued sends sleep on Temporal timers, neither of which
// follows graphsim's clock, so advancing graphsim's clock would measure
// nothing of outlookd. One minute, the unit of the rate, is the default.
func sendThroughput(ctx context.Context, mailboxes int, window time.Duration) error {
	w, err := newWorldEnv(ctx, "bench-send-throughput", false, []string{"OUTLOOKD_API_RATE_LIMIT=100000"})
	if w != nil {
		defer func() { w.close() }()
	}
	if err != nil {
		return err
	}
	progress := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "send-throughput: "+format+"\n", args...)
	}
	if _, err := w.sim.AddUser(ctx, graphsim.UserSpec{Tenant: "contoso.example", UPN: sink, DisplayName: "Sink"}); err != nil {
		return err
	}
	senders, err := w.connectSenders(ctx, "bench", mailboxes, 0, "inbox")
	if err != nil {
		return err
	}
	minutes := int((window + time.Minute - 1) / time.Minute)
	allowed := api.SendsPerMinute * minutes // per mailbox in the window
	const over = 5                          // more than the rate allows: queued
	perMailbox := allowed + over
	ceiling := mailboxes * allowed
	progress("%d mailboxes live; each asks for %d sends at once (%d allowed in %s)", mailboxes, perMailbox, allowed, window)

	type asked struct {
		at time.Time
		id string
		// expected is the time the API said a queued send would go; nil
		// for a send under the limit (it goes at once).
		expected *time.Time
	}
	calls := make([][]asked, mailboxes)
	var posted atomic.Int64
	start := time.Now()
	stop := ticker(10*time.Second, func() { progress("%d sends posted after %s", posted.Load(), time.Since(start).Round(time.Second)) })
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(32)
	var mu sync.Mutex
	for m, s := range senders {
		calls[m] = make([]asked, perMailbox)
		for k := range perMailbox {
			g.Go(func() error {
				body, _ := json.Marshal(map[string]any{"to": []map[string]string{{"address": sink}}, "subject": fmt.Sprintf("throughput %d/%d", m, k),
					"body": map[string]string{"content_type": "text", "content": "As fast as the limits allow."}})
				at := time.Now()
				v, _, _, err := w.postSend(gctx, defaultUser, "/v1/connections/"+s.id+"/sends", fmt.Sprintf("tp-%d-%d", m, k), body)
				if err != nil {
					return err
				}
				mu.Lock()
				calls[m][k] = asked{at: at, id: v.ID, expected: v.NotBefore}
				mu.Unlock()
				posted.Add(1)
				return nil
			})
		}
	}
	err = g.Wait()
	stop()
	if err != nil {
		return err
	}
	postedIn := time.Since(start)
	progress("%d sends posted in %s", posted.Load(), postedIn.Round(100*time.Millisecond))

	// Every send ends: the allowed ones at once, the rest at their time.
	views := map[string]sendView{}
	deadline := time.Now().Add(window + 20*time.Minute)
	for {
		clear(views)
		open := 0
		for _, s := range senders {
			list, err := w.sendsOf(s.id)
			if err != nil {
				return err
			}
			for _, v := range list {
				views[v.ID] = v
				if !v.final() {
					open++
				}
			}
		}
		if open == 0 && len(views) == mailboxes*perMailbox {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d sends still open", open)
		}
		progress("%d of %d sends open after %s", open, mailboxes*perMailbox, time.Since(start).Round(time.Second))
		time.Sleep(5 * time.Second)
	}
	allDone := time.Since(start)

	// Graph's view: what it accepted within the window, and the busiest
	// minute of each mailbox.
	inWindow, busiest, total := 0, 0, 0
	var last time.Time
	for _, s := range senders {
		sent, err := w.sim.SentMail(ctx, s.upn)
		if err != nil {
			return err
		}
		var at []time.Time
		for _, sm := range sent {
			if sm.ExtendedProperties[workflows.SendKeyProperty] == "" {
				continue
			}
			total++
			at = append(at, sm.AcceptedAt)
			if sm.AcceptedAt.Before(start.Add(window)) {
				inWindow++
			}
			if sm.AcceptedAt.After(last) {
				last = sm.AcceptedAt
			}
		}
		slices.SortFunc(at, func(a, b time.Time) int { return a.Compare(b) })
		for i := range at {
			j := i
			for j < len(at) && at[j].Sub(at[i]) < time.Minute {
				j++
			}
			busiest = max(busiest, j-i)
		}
	}
	var underLimit, queuedLate []time.Duration
	failed := 0
	for m := range calls {
		for _, c := range calls[m] {
			v := views[c.id]
			switch {
			case v.State != workflows.SendSent || v.SentAt == nil:
				failed++
			case c.expected == nil:
				// The API answered it would go at once: under the limit.
				underLimit = append(underLimit, v.SentAt.Sub(c.at))
			default:
				// Queued: how long after the time the API gave it.
				queuedLate = append(queuedLate, v.SentAt.Sub(*c.expected))
			}
		}
	}
	lat, late := benchfig.Millis(underLimit), benchfig.Millis(queuedLate)
	progress("%d sent in the window of %d allowed; busiest minute %d; %d under the limit (p50 %.0f ms, p99 %.0f ms), %d queued",
		inWindow, ceiling, busiest, len(underLimit), benchfig.Percentile(lat, 0.5), benchfig.Percentile(lat, 0.99), len(queuedLate))
	if failed > 0 || total != mailboxes*perMailbox {
		return fmt.Errorf("%d sends did not end sent; Graph accepted %d of %d", failed, total, mailboxes*perMailbox)
	}
	// outlookd gives each send a slot by the rate; a send that goes later
	// than its slot (the system behind) can meet the next minute's at
	// Graph, which then carries the excess over rather than refuse it
	// (docs/sending.md): reported, with graphsim's count of carry-overs.
	carried := must(w.sim.Counters(ctx))["mail.carried_over"]
	figures := map[string]any{"mailboxes": mailboxes, "window_s": window.Seconds(), "ceiling": ceiling, "sent_in_window": inWindow,
		"ratio": benchfig.Round(float64(inWindow)/float64(ceiling), 3), "busiest_minute": busiest, "carried_over": carried, "sends": total,
		"under_limit": len(underLimit), "p50_ms": benchfig.Round(benchfig.Percentile(lat, 0.5), 1), "p99_ms": benchfig.Round(benchfig.Percentile(lat, 0.99), 1),
		"queued": len(queuedLate), "queued_late_p50_ms": benchfig.Round(benchfig.Percentile(late, 0.5), 1),
		"posted_s": benchfig.Round(postedIn.Seconds(), 1), "all_sent_s": benchfig.Round(allDone.Seconds(), 1)}
	if d := last.Sub(start); d > 0 {
		figures["graph_accepts_per_s"] = benchfig.Round(float64(total)/d.Seconds(), 1)
	}
	return benchfig.Fprint(os.Stdout, "send-throughput", figures)
}
