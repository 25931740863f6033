package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	enumspb "go.temporal.io/api/enums/v1"

	"github.com/outlookd/outlookd/graphsim"
	"github.com/outlookd/outlookd/workflows"
)

// mbox is what the scenarios read of an attached mailbox.
type mbox struct {
	ID           string     `json:"id"`
	ConnectionID string     `json:"connection_id"`
	Address      string     `json:"address"`
	State        string     `json:"state"`
	Reason       string     `json:"reason"`
	SyncMode     string     `json:"sync_mode"`
	PollReason   string     `json:"poll_reason"`
	MessageCount int64      `json:"message_count"`
	DetachedAt   *time.Time `json:"detached_at"`
	Backfill     *struct {
		Running     bool       `json:"running"`
		CoveredFrom *time.Time `json:"covered_from"`
		CompletedAt *time.Time `json:"completed_at"`
	} `json:"backfill"`
}

// problemBody is an API error as the scenarios read it.
type problemBody struct {
	Status int    `json:"status"`
	Code   string `json:"code"`
	Detail string `json:"detail"`
}

func mailboxPath(conn, mbx string) string { return "/v1/connections/" + conn + "/mailboxes/" + mbx }

func (w *world) getMailbox(conn, mbx string) (mbox, error) {
	var m mbox
	st, err := w.call("GET", mailboxPath(conn, mbx), nil, &m)
	if err == nil && st != 200 {
		err = fmt.Errorf("GET mailbox %s: %d", mbx, st)
	}
	return m, err
}

// waitMailbox polls a mailbox until cond holds.
func (w *world) waitMailbox(conn, mbx string, d time.Duration, what string, cond func(mbox) bool) (mbox, error) {
	var m mbox
	err := waitFor(d, func() error {
		var err error
		if m, err = w.getMailbox(conn, mbx); err != nil {
			return err
		}
		if !cond(m) {
			return fmt.Errorf("%s %s: not yet (state %s, reason %q, mode %q)", m.Address, what, m.State, m.Reason, m.SyncMode)
		}
		return nil
	})
	return m, err
}

// stored says whether a mailbox's row for a message is in Postgres.
func (w *world) stored(ctx context.Context, mbx, msg string) (bool, error) {
	var one int
	err := w.st.Pool().QueryRow(ctx, `SELECT 1 FROM messages WHERE mailbox_id = $1 AND id = $2`, mbx, msg).Scan(&one)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

// arrival injects one message into a shared mailbox and answers how long
// it took to reach its row in Postgres.
func (w *world) arrival(ctx context.Context, upn, mbx, subject string, d time.Duration, kick func() error) (time.Duration, error) {
	ids, err := w.sim.InjectMessages(ctx, upn, graphsim.MessageSpec{Subject: subject})
	if err != nil {
		return 0, err
	}
	start := time.Now()
	if kick != nil {
		if err := kick(); err != nil {
			return 0, err
		}
	}
	err = waitFor(d, func() error {
		ok, err := w.stored(ctx, mbx, ids[0])
		if err == nil && !ok {
			err = fmt.Errorf("%s: %q not stored after %s", upn, subject, time.Since(start).Round(time.Second))
		}
		return err
	})
	return time.Since(start), err
}

// historyOf is what a mailbox workflow's status query says of its
// history: its length, its continue-as-new generation and its rounds.
type historyOf struct{ length, runs, rounds int }

// history reads a mailbox workflow's history figures.
func (w *world) history(ctx context.Context, mbx string) (historyOf, error) {
	tc, err := w.temporal()
	if err != nil {
		return historyOf{}, err
	}
	defer tc.Close()
	v, err := tc.QueryWorkflow(ctx, workflows.MailboxWorkflowID(mbx), "", workflows.QueryStatus)
	if err != nil {
		return historyOf{}, err
	}
	var st workflows.Status
	if err := v.Get(&st); err != nil {
		return historyOf{}, err
	}
	return historyOf{length: st.HistoryLen, runs: st.Runs, rounds: st.Sync.Rounds}, nil
}

// workflowClosed says whether a mailbox's workflow has ended.
func (w *world) workflowClosed(ctx context.Context, mbx string) (bool, error) {
	tc, err := w.temporal()
	if err != nil {
		return false, err
	}
	defer tc.Close()
	d, err := tc.DescribeWorkflowExecution(ctx, workflows.MailboxWorkflowID(mbx), "")
	if err != nil {
		return false, err
	}
	return d.WorkflowExecutionInfo.Status != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING, nil
}

// shared is one shared mailbox of the scenario.
type shared struct {
	upn, id string
	since   time.Time
}

// sharedAccount is the service account: in graphsim's demo tenant adele
// holds Full Access (and Send As) on support@.
const sharedAccount = adele

func sharedMailboxes(ctx context.Context, w *world, size int) (result, error) {
	var r result
	per := min(max(size/8, 200), 1000)
	support := &shared{upn: "support@contoso.example"} // the demo tenant's, 40 messages
	sales := &shared{upn: "sales@contoso.example"}
	billing := &shared{upn: "billing@contoso.example"}
	hr := &shared{upn: "hr@contoso.example"}
	attached := []*shared{support, sales, billing, hr}
	// legal is a shared mailbox the account holds no right on (alex does).
	const legal = "legal@contoso.example"
	for i, upn := range []string{sales.upn, billing.upn, hr.upn, legal} {
		if _, err := w.sim.AddUser(ctx, graphsim.UserSpec{Tenant: "contoso.example", UPN: upn, DisplayName: strings.Split(upn, "@")[0], Shared: true}); err != nil {
			return r, err
		}
		if _, err := w.sim.Generate(ctx, upn, graphsim.GenerateSpec{Count: per, Days: 25, Folders: workflows.DefaultFolders, Seed: uint64(31 + i), ThreadShare: 0.2}); err != nil {
			return r, err
		}
		holder := sharedAccount
		if upn == legal {
			holder = "alex@contoso.example"
		}
		if err := w.sim.GrantMailboxRights(ctx, upn, holder, graphsim.RightFullAccess); err != nil {
			return r, err
		}
	}
	if rights := must(w.sim.MailboxRights(ctx, legal)); len(rights[sharedAccount]) != 0 {
		return r, fmt.Errorf("%s holds %v on %s", sharedAccount, rights[sharedAccount], legal)
	}

	// adele's own mailbox is connected too, as in the README's walkthrough:
	// the account a service account signs in as is no mailbox it claims.
	own, err := w.connect(sharedAccount, inboxOnly)
	if err != nil {
		return r, err
	}

	// The service account signs in with the .Shared scopes.
	id, err := w.createConsented(defaultUser, sharedAccount, map[string]any{"kind": "service_account"})
	if err != nil {
		return r, err
	}
	if _, err := w.waitConn(id, time.Minute, "signed in", func(c conn) bool { return c.State == "active" }); err != nil {
		return r, err
	}

	// Attach all five; each mailbox gets mail while it backfills.
	start := time.Now()
	injected := 0
	for _, upn := range []string{support.upn, sales.upn, legal, billing.upn, hr.upn} {
		st, raw, err := w.callRaw(defaultUser, "POST", "/v1/connections/"+id+"/mailboxes",
			map[string]any{"address": upn, "backfill_days": 30, "poll_minutes": 1})
		if err != nil {
			return r, err
		}
		if upn == legal {
			var p problemBody
			_ = json.Unmarshal(raw, &p)
			if st != 422 || p.Code != "mailbox_unreachable" || !strings.Contains(p.Detail, "Add-MailboxPermission -Identity "+legal) {
				return r, fmt.Errorf("attach %s: %d %s, want 422 mailbox_unreachable naming the right to grant", upn, st, raw)
			}
			r.add("refused_reason", `"`+p.Code+`"`)
			continue
		}
		var m mbox
		if st != 201 || json.Unmarshal(raw, &m) != nil || m.ID == "" {
			return r, fmt.Errorf("attach %s: %d %s", upn, st, raw)
		}
		for _, b := range attached {
			if b.upn == upn {
				b.id = m.ID
			}
		}
		if _, err := w.sim.InjectMessages(ctx, upn, make([]graphsim.MessageSpec, 3)...); err != nil {
			return r, err
		}
		injected += 3
	}
	var list struct {
		Data []mbox `json:"data"`
	}
	if st, err := w.call("GET", "/v1/connections/"+id+"/mailboxes", nil, &list); err != nil || st != 200 || len(list.Data) != len(attached) {
		return r, fmt.Errorf("the connection lists %d mailboxes, want %d (%d %v)", len(list.Data), len(attached), st, err)
	}
	for _, b := range attached {
		m, err := w.waitMailbox(id, b.id, 5*time.Minute, "backfilled and polling", func(m mbox) bool {
			return m.State == "active" && m.Backfill != nil && m.Backfill.CompletedAt != nil && m.SyncMode == "polling" && m.PollReason != ""
		})
		if err != nil {
			return r, err
		}
		b.since = *m.Backfill.CoveredFrom
	}
	r.add("attached", len(attached))
	r.add("refused", 1)
	r.add("backfill_s", fmt.Sprintf("%.1f", time.Since(start).Seconds()))

	// Mail arrives, is read, moved and deleted while they poll.
	for _, b := range attached {
		n, err := churn(ctx, w, b.upn, b.since, 5)
		if err != nil {
			return r, err
		}
		injected += n
	}
	converge := func(b *shared, d time.Duration) error {
		lost, dup, err := w.convergeSince(ctx, b.id, b.upn, b.since, workflows.DefaultFolders, d)
		r.lost, r.dup = r.lost+lost, r.dup+dup
		if err != nil {
			return fmt.Errorf("%s: %w", b.upn, err)
		}
		return nil
	}
	for _, b := range attached {
		if err := converge(b, 3*time.Minute); err != nil {
			return r, err
		}
	}

	// From a message injected to its row at poll_minutes 1: one message
	// per mailbox, 15 s apart, so that they land at different points of
	// the interval. Then the round itself, asked for by a resync: a message
	// waits for the next round (up to the interval) and then the round, so
	// the default's figures are the 5-minute interval plus the round (no
	// setting makes the default faster for a scenario, and waiting for it
	// would measure only the interval).
	lat := make([]time.Duration, len(attached))
	var g sync.WaitGroup
	errs := make([]error, len(attached))
	for i, b := range attached {
		g.Add(1)
		go func() {
			defer g.Done()
			time.Sleep(time.Duration(i) * 15 * time.Second)
			lat[i], errs[i] = w.arrival(ctx, b.upn, b.id, "latency "+b.upn, 3*time.Minute, nil)
		}()
	}
	g.Wait()
	if err := errors.Join(errs...); err != nil {
		return r, err
	}
	injected += len(attached)
	round, err := w.arrival(ctx, support.upn, support.id, "resync "+support.upn, time.Minute, func() error {
		if st, err := w.call("POST", mailboxPath(id, support.id)+"/resync", map[string]any{}, nil); err != nil || st != 202 {
			return fmt.Errorf("resync: %d %v", st, err)
		}
		return nil
	})
	if err != nil {
		return r, err
	}
	injected++
	var sum, worst time.Duration
	samples := make([]string, len(lat))
	for i, l := range lat {
		sum += l
		worst = max(worst, l)
		samples[i] = fmt.Sprintf("%.1f", l.Seconds())
	}
	r.add("latency_1m_s", strings.Join(samples, ","))
	r.add("latency_1m_mean_s", fmt.Sprintf("%.1f", (sum/time.Duration(len(lat))).Seconds()))
	r.add("latency_1m_max_s", fmt.Sprintf("%.1f", worst.Seconds()))
	r.add("round_s", fmt.Sprintf("%.2f", round.Seconds()))
	r.add("derived_latency_5m_mean_s", fmt.Sprintf("%.1f", 150+round.Seconds()))
	r.add("derived_latency_5m_max_s", fmt.Sprintf("%.1f", 300+round.Seconds()))

	// From here sales is left alone: its history over the quiet period is
	// measured while the others are detached and lose access.
	quietFrom := time.Now()
	before, err := w.history(ctx, sales.id)
	if err != nil {
		return r, err
	}

	// hr is detached keeping its mail: it stops syncing and nothing else
	// changes.
	kept := must(w.st.CountMessages(ctx, hr.id))
	if st, err := w.call("DELETE", mailboxPath(id, hr.id)+"?retention=keep", nil, nil); err != nil || st != 202 {
		return r, fmt.Errorf("detach %s: %d %v", hr.upn, st, err)
	}
	if _, err := w.waitMailbox(id, hr.id, time.Minute, "detached", func(m mbox) bool {
		return m.State == "disconnected" && m.DetachedAt != nil && m.MessageCount == kept
	}); err != nil {
		return r, err
	}
	if _, err := w.sim.InjectMessages(ctx, hr.upn, make([]graphsim.MessageSpec, 3)...); err != nil {
		return r, err
	}
	attached = slices.DeleteFunc(attached, func(b *shared) bool { return b == hr })

	// billing loses its rights: only billing moves to access_lost, on its
	// next round, and says so once.
	revoked := time.Now()
	if err := w.sim.RevokeMailboxRights(ctx, billing.upn, sharedAccount); err != nil {
		return r, err
	}
	if _, err := w.sim.InjectMessages(ctx, billing.upn, make([]graphsim.MessageSpec, 2)...); err != nil {
		return r, err
	}
	lostM, err := w.waitMailbox(id, billing.id, 3*time.Minute, "access lost", func(m mbox) bool { return m.State == "access_lost" })
	if err != nil {
		return r, err
	}
	if lostM.Reason != workflows.ReasonMailboxUnreachable {
		return r, fmt.Errorf("%s lost access with reason %q", billing.upn, lostM.Reason)
	}
	r.add("access_lost_s", fmt.Sprintf("%.1f", time.Since(revoked).Seconds()))
	// support goes on meanwhile.
	if _, err := w.sim.InjectMessages(ctx, support.upn, make([]graphsim.MessageSpec, 2)...); err != nil {
		return r, err
	}
	injected += 4
	if err := converge(support, 3*time.Minute); err != nil {
		return r, err
	}
	// Two more poll intervals: billing stays put and says it once, hr
	// syncs nothing.
	time.Sleep(2*time.Minute + 10*time.Second)
	if m, err := w.getMailbox(id, billing.id); err != nil || m.State != "access_lost" {
		return r, fmt.Errorf("%s after two intervals: %s %v", billing.upn, m.State, err)
	}
	if n := w.mailboxEvents(billing.id, "mailbox.access_lost"); n != 1 {
		return r, fmt.Errorf("%d mailbox.access_lost events for %s, want 1", n, billing.upn)
	}
	for _, b := range attached {
		if n := w.mailboxEvents(b.id, "mailbox.access_lost"); b != billing && n != 0 {
			return r, fmt.Errorf("%d mailbox.access_lost events for %s", n, b.upn)
		}
	}
	if n := must(w.st.CountMessages(ctx, hr.id)); n != kept || kept == 0 {
		return r, fmt.Errorf("detached %s holds %d messages, kept %d", hr.upn, n, kept)
	}
	if closed, err := w.workflowClosed(ctx, hr.id); err != nil || !closed {
		return r, fmt.Errorf("detached %s's workflow still runs (%v)", hr.upn, err)
	}
	r.add("kept_after_detach", kept)

	after, err := w.history(ctx, sales.id)
	if err != nil {
		return r, err
	}
	rounds := after.rounds - before.rounds
	r.add("quiet_s", fmt.Sprintf("%.0f", time.Since(quietFrom).Seconds()))
	r.add("quiet_rounds", rounds)
	if after.runs != before.runs || rounds == 0 {
		return r, fmt.Errorf("quiet period: %+v then %+v", before, after)
	}
	// A quiet day is 288 rounds at the default 5 minutes, 1440 at 1.
	perRound := float64(after.length-before.length) / float64(rounds)
	r.add("history_events_per_round", fmt.Sprintf("%.1f", perRound))
	r.add("history_per_quiet_day_5m", fmt.Sprintf("%.0f", perRound*288))
	r.add("history_per_quiet_day_1m", fmt.Sprintf("%.0f", perRound*1440))

	// The rights come back; a resync resumes billing and it catches up.
	if err := w.sim.GrantMailboxRights(ctx, billing.upn, sharedAccount, graphsim.RightFullAccess); err != nil {
		return r, err
	}
	if _, err := w.sim.InjectMessages(ctx, billing.upn, make([]graphsim.MessageSpec, 2)...); err != nil {
		return r, err
	}
	injected += 2
	restored := time.Now()
	if st, err := w.call("POST", mailboxPath(id, billing.id)+"/resync", map[string]any{}, nil); err != nil || st != 202 {
		return r, fmt.Errorf("resync %s: %d %v", billing.upn, st, err)
	}
	if _, err := w.waitMailbox(id, billing.id, time.Minute, "active again", func(m mbox) bool { return m.State == "active" }); err != nil {
		return r, err
	}
	if err := converge(billing, time.Minute); err != nil {
		return r, err
	}
	r.add("catch_up_s", fmt.Sprintf("%.1f", time.Since(restored).Seconds()))
	for _, b := range attached {
		if err := converge(b, time.Minute); err != nil {
			return r, err
		}
	}
	// adele's own connection went on through all of it.
	if _, err := w.sim.InjectMessages(ctx, sharedAccount, make([]graphsim.MessageSpec, 2)...); err != nil {
		return r, err
	}
	injected += 2
	lost, dup, err := w.convergeFolders(ctx, own, sharedAccount, []string{"inbox"}, time.Minute)
	r.lost, r.dup = r.lost+lost, r.dup+dup
	if err != nil {
		return r, fmt.Errorf("%s's own mailbox: %w", sharedAccount, err)
	}
	var messages int64
	for _, b := range attached {
		messages += must(w.st.CountMessages(ctx, b.id))
	}
	r.add("messages", messages+kept)
	r.add("injected", injected)

	// Disconnecting the connection detaches the rest with their retention
	// (delete) and leaves hr's kept mail.
	if err := gone(ctx, w, id, false); err != nil {
		return r, err
	}
	for _, b := range attached {
		if _, err := w.waitMailbox(id, b.id, time.Minute, "detached with the connection", func(m mbox) bool {
			return m.State == "disconnected" && m.MessageCount == 0
		}); err != nil {
			return r, err
		}
	}
	if n := must(w.st.CountMessages(ctx, hr.id)); n != kept {
		return r, fmt.Errorf("%s holds %d messages after the disconnect, kept %d", hr.upn, n, kept)
	}
	if c, err := w.get(own.ID); err != nil || c.State != "active" {
		return r, fmt.Errorf("%s's own connection after the service account's disconnect: %s %v", sharedAccount, c.State, err)
	}
	return r, nil
}
