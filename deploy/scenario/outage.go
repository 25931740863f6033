package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/outlookd/outlookd/graphsim"
)

// outageCatchUp: 50 connections live (push) while mail keeps arriving;
// outlookd loses Postgres for 30 s (its receiver answers Graph 503, and
// graphsim, as Graph does, then throttles or drops the one notification
// endpoint every subscription shares) and Vault for 60 s (no token, so no
// round). Postgres and Vault are cut for outlookd alone, through proxies;
// the shared servers never stop. While Vault is still cut, the API says
// which mailboxes are behind; once both are back, every mailbox must equal
// graphsim's ground truth within a minute, nothing lost or duplicated.
func outageCatchUp(ctx context.Context, w *world, _ int) (result, error) {
	var r result
	const n, perMailbox = 50, 5
	users := make([]string, n)
	for i := range users {
		users[i] = fmt.Sprintf("outage%02d@contoso.example", i)
		if _, err := w.sim.AddUser(ctx, graphsim.UserSpec{Tenant: "contoso.example", UPN: users[i]}); err != nil {
			return r, err
		}
		if _, err := w.sim.Generate(ctx, users[i], graphsim.GenerateSpec{Count: perMailbox, Days: 5, Folders: []string{"inbox"}, Seed: uint64(i + 1)}); err != nil {
			return r, err
		}
	}
	ids := make([]string, n)
	for i, u := range users {
		id, err := w.createConsented(defaultUser, u, inboxOnly)
		if err != nil {
			return r, err
		}
		ids[i] = id
	}
	conns := make([]conn, n)
	for i, id := range ids {
		c, err := w.waitConn(id, 5*time.Minute, "live", func(c conn) bool {
			return c.State == "active" && c.SyncMode == "push" && c.Backfill != nil && c.Backfill.CompletedAt != nil
		})
		if err != nil {
			return r, fmt.Errorf("%s: %w", users[i], err)
		}
		conns[i] = c
	}

	// Live mail, one message every 100 ms round the mailboxes, until told.
	var injected atomic.Int64
	var injectErr error
	stopMail := make(chan struct{})
	var mail sync.WaitGroup
	mail.Add(1)
	go func() {
		defer mail.Done()
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for i := 0; ; i++ {
			select {
			case <-stopMail:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if _, err := w.sim.InjectMessages(ctx, users[i%n], graphsim.MessageSpec{Subject: fmt.Sprintf("live %d", i)}); err != nil {
				injectErr = err
				return
			}
			injected.Add(1)
		}
	}()
	endMail := func() error {
		select {
		case <-stopMail:
		default:
			close(stopMail)
		}
		mail.Wait()
		return injectErr
	}
	defer func() { _ = endMail() }()

	pg, vault := w.cut["postgres"], w.cut["vault"]
	time.Sleep(5 * time.Second)
	start := time.Now()
	pg.Down()
	time.Sleep(15 * time.Second)
	vault.Down()
	time.Sleep(15 * time.Second)
	if err := pg.Reopen(); err != nil { // Postgres back after 30 s
		return r, err
	}
	// Vault still cut: rounds cannot run, and the API says which mailboxes
	// are behind (their notifications may have been refused).
	behind := 0
	if err := waitFor(40*time.Second, func() error {
		behind = 0
		for _, id := range ids {
			var c struct {
				Behind bool `json:"behind"`
			}
			if st, err := w.call("GET", "/v1/connections/"+id, nil, &c); err != nil || st != 200 {
				return fmt.Errorf("GET %s: %d %v", id, st, err)
			}
			if c.Behind {
				behind++
			}
		}
		if behind < n {
			return fmt.Errorf("%d of %d connections say they are behind", behind, n)
		}
		return nil
	}); err != nil {
		return r, fmt.Errorf("while Vault is cut: %w", err)
	}
	time.Sleep(time.Until(start.Add(75 * time.Second)))
	if err := vault.Reopen(); err != nil { // Vault back after 60 s
		return r, err
	}
	recovered := time.Now()
	// Mail goes on for 10 s after the recovery, while Graph may still be
	// holding the endpoint's notifications back.
	time.Sleep(10 * time.Second)
	if err := endMail(); err != nil {
		return r, err
	}
	for i, c := range conns {
		lost, dup, err := w.convergeFolders(ctx, c, users[i], []string{"inbox"}, time.Until(recovered.Add(3*time.Minute)))
		r.lost, r.dup = r.lost+lost, r.dup+dup
		if err != nil {
			return r, fmt.Errorf("%s: %w", users[i], err)
		}
	}
	converged := time.Since(recovered)
	stillBehind := 0
	for _, id := range ids {
		var c struct {
			Behind bool `json:"behind"`
		}
		if _, err := w.call("GET", "/v1/connections/"+id, nil, &c); err == nil && c.Behind {
			stillBehind++
		}
	}
	endpoints, _ := w.sim.Endpoints(ctx)
	mode := ""
	for _, ep := range endpoints {
		if !ep.Lifecycle {
			mode = ep.Mode
		}
	}
	r.add("connections", n)
	r.add("injected", injected.Load())
	r.add("behind_while_vault_cut", behind)
	r.add("endpoint_mode", fmt.Sprintf("%q", mode))
	r.add("converged_after_recovery_s", fmt.Sprintf("%.1f", converged.Seconds()))
	r.add("behind_after", stillBehind)
	if stillBehind > 0 {
		return r, fmt.Errorf("%d connections still say they are behind after converging", stillBehind)
	}
	if converged > time.Minute {
		return r, fmt.Errorf("converged %.0f s after the recovery, more than a minute", converged.Seconds())
	}
	return r, nil
}
