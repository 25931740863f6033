package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/outlookd/outlookd/graphsim"
	"github.com/outlookd/outlookd/workflows"
)

// chaosReplicas runs on the cluster profile (two API replicas behind a
// balancer, two workers, a real Temporal server on PostgreSQL). While a
// mailbox backfills, mail keeps arriving and sends are posted, one worker
// and then one API replica is killed with SIGKILL in turn, and each comes
// back at once. Everything must converge: the mailbox against graphsim's
// ground truth, and every send exactly once (one submission, one delivered
// copy, one Sent Items copy).
func chaosReplicas(ctx context.Context, w *world, size int) (result, error) {
	var r result
	if w.replicas == nil {
		return r, errors.New("chaos-replicas needs the cluster profile: make scenario NAME=chaos-replicas STACK_PROFILE=cluster")
	}
	const (
		senders = 4
		period  = 6 * time.Second
		minEach = 4 // kills of workers and of API replicas, at the least
	)
	nSends := max(size/50, 40)
	if _, err := w.sim.AddUser(ctx, graphsim.UserSpec{Tenant: "contoso.example", UPN: sink, DisplayName: "Sink"}); err != nil {
		return r, err
	}
	from, err := w.connectSenders(ctx, "replica", senders, 0, "inbox", "sentitems")
	if err != nil {
		return r, err
	}
	backfill := max(size, 4000)
	if _, err := w.sim.Generate(ctx, adele, graphsim.GenerateSpec{Count: backfill, Days: 25, Folders: workflows.DefaultFolders, Seed: 29}); err != nil {
		return r, err
	}
	id, err := w.createConsented(defaultUser, adele, nil)
	if err != nil {
		return r, err
	}

	// The chaos: every period, a worker, then an API replica, each in
	// turn, is killed and started again; mail arrives with each kill.
	var workerKills, apiKills, injected atomic.Int64
	stopChaos := make(chan struct{})
	chaosDone := make(chan error, 1)
	go func() {
		tick := time.NewTicker(period)
		defer tick.Stop()
		for n := 0; ; n++ {
			select {
			case <-stopChaos:
				chaosDone <- nil
				return
			case <-tick.C:
			}
			i := (n / 2) % clusterReplicas
			var err error
			if n%2 == 0 {
				w.kill(workerName(i))
				workerKills.Add(1)
				err = w.startWorkerN(i)
			} else {
				w.kill(apiName(i))
				apiKills.Add(1)
				err = w.startAPI(i)
			}
			if err != nil {
				chaosDone <- fmt.Errorf("restart after kill %d: %w", n+1, err)
				return
			}
			if _, err := w.sim.InjectMessages(ctx, adele, make([]graphsim.MessageSpec, 2)...); err != nil {
				chaosDone <- err
				return
			}
			injected.Add(2)
		}
	}()
	stop := sync.OnceFunc(func() { close(stopChaos) })
	defer stop()

	// An app reading all along, ten times a second: what the kills cost
	// it is the reads that failed (a replica killed under them).
	var reads, readsCut atomic.Int64
	go func() {
		for {
			select {
			case <-stopChaos:
				return
			case <-time.After(100 * time.Millisecond):
			}
			st, _, err := w.callRaw(defaultUser, "GET", "/v1/connections/"+id, nil)
			reads.Add(1)
			if err != nil || st >= 500 {
				readsCut.Add(1)
			}
		}
	}()

	// Sends, posted through the balancer while replicas die, spread over
	// the chaos's first rounds: the app asks again with the same key when
	// an answer is lost.
	plan := make([]*plannedSend, nSends)
	pace := 2 * minEach * period / time.Duration(nSends/senders)
	start := time.Now()
	var reposts atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	for c := range senders {
		g.Go(func() error {
			for i := c; i < nSends; i += senders {
				p := &plannedSend{i: i, from: from[c], kind: "new", key: fmt.Sprintf("chr-%s-%04d", w.id, i),
					path: "/v1/connections/" + from[c].id + "/sends"}
				body, _ := json.Marshal(map[string]any{"to": []map[string]string{{"address": sink, "name": "Sink"}},
					"subject": fmt.Sprintf("through the replicas %04d", i),
					"body":    map[string]string{"content_type": "text", "content": fmt.Sprintf("Message %d, sent once.", i)}})
				s, _, tries, err := w.postSend(gctx, defaultUser, p.path, p.key, body)
				if err != nil {
					return err
				}
				reposts.Add(int64(tries - 1))
				p.id = s.ID
				plan[i] = p
				time.Sleep(pace)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return r, err
	}

	got, err := w.waitConn(id, 10*time.Minute, "backfilled", func(c conn) bool {
		return c.State == "active" && c.Backfill != nil && c.Backfill.CompletedAt != nil && c.SyncMode != ""
	})
	if err != nil {
		return r, err
	}
	views, err := w.sendsEnded(from, plan, 10*time.Minute)
	if err != nil {
		return r, err
	}
	// Enough chaos, then calm: the kills go on until each kind has had
	// its share.
	if err := waitFor(5*time.Minute, func() error {
		if workerKills.Load() < minEach || apiKills.Load() < minEach {
			return fmt.Errorf("%d worker and %d API kills so far", workerKills.Load(), apiKills.Load())
		}
		return nil
	}); err != nil {
		return r, err
	}
	stop()
	if err := <-chaosDone; err != nil {
		return r, err
	}
	elapsed := time.Since(start)

	if _, err := churn(ctx, w, adele, covered(got), 5); err != nil {
		return r, err
	}
	r.lost, r.dup, err = w.converge(ctx, got, adele, 3*time.Minute)
	if err != nil {
		return r, err
	}
	v, err := w.verifySends(ctx, from, plan, views)
	if err != nil {
		return r, err
	}
	r.lost += v.lost
	r.dup += v.dup
	r.add("messages", got.MessageCount)
	r.add("injected_during_chaos", injected.Load())
	r.add("sent", v.sent)
	r.add("sends", nSends)
	r.add("reposts_after_error", reposts.Load())
	r.add("worker_kills", workerKills.Load())
	r.add("api_kills", apiKills.Load())
	r.add("replica_down_skips", w.replicas.lb.skipped.Load())
	r.add("reads", reads.Load())
	r.add("reads_cut", readsCut.Load())
	r.add("chaos_s", fmt.Sprintf("%.1f", elapsed.Seconds()))
	if len(v.problems) > 0 {
		return r, fmt.Errorf("%d of %d sends are not exactly once in effect (first: %s)", len(v.problems), nSends, v.problems[0])
	}
	return r, nil
}
