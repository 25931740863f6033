package main

import (
	"context"
	"fmt"
	"time"

	"github.com/outlookd/outlookd/graphsim"
	"github.com/outlookd/outlookd/workflows"
)

// dirUser is a user of an application connection's directory as the API
// lists it.
type dirUser struct {
	UserID    string `json:"user_id"`
	Address   string `json:"address"`
	Status    string `json:"status"`
	Reason    string `json:"reason"`
	MailboxID string `json:"mailbox_id"`
	Shared    bool   `json:"shared"`
}

// directory lists every user of an application connection.
func (w *world) directory(id string) ([]dirUser, error) {
	var all []dirUser
	cursor := ""
	for {
		var page struct {
			Data       []dirUser `json:"data"`
			NextCursor string    `json:"next_cursor"`
		}
		st, err := w.call("GET", "/v1/connections/"+id+"/directory?limit=1000&cursor="+cursor, nil, &page)
		if err == nil && st != 200 {
			err = fmt.Errorf("GET directory: %d", st)
		}
		if err != nil {
			return nil, err
		}
		all = append(all, page.Data...)
		if page.NextCursor == "" {
			return all, nil
		}
		cursor = page.NextCursor
	}
}

// orgWide: an application connection syncs a tenant of about size/10
// users (a tenth without a mailbox, a twentieth kept out by an application
// access policy, two shared mailboxes selected), while mail arrives and
// users join and leave during the backfill; every synced mailbox is
// compared with graphsim, every exclusion has its reason, and every synced
// mailbox is pushed to (a message arriving in one reaches the store
// through its notification).
func orgWide(ctx context.Context, w *world, size int) (result, error) {
	var r result
	n := min(max(size/10, 20), 200)
	noMail, blocked := max(n/10, 1), max(n/20, 1)
	joiners, leavers := max(n*15/200, 2), max(n/20, 2)
	const per = 20
	upn := func(i int) string { return fmt.Sprintf("user%03d@contoso.example", i) }
	var policy []string
	for i := range n {
		spec := graphsim.UserSpec{Tenant: "contoso.example", UPN: upn(i), DisplayName: fmt.Sprintf("User %d", i), NoMailbox: i < noMail}
		if _, err := w.sim.AddUser(ctx, spec); err != nil {
			return r, err
		}
		if i >= noMail && i < noMail+blocked {
			policy = append(policy, spec.UPN)
		}
		if !spec.NoMailbox {
			if _, err := w.sim.Generate(ctx, spec.UPN, graphsim.GenerateSpec{Count: per, Days: 25, Seed: uint64(100 + i)}); err != nil {
				return r, err
			}
		}
	}
	for i := range 2 {
		box := fmt.Sprintf("shared%d@contoso.example", i)
		if _, err := w.sim.AddUser(ctx, graphsim.UserSpec{Tenant: "contoso.example", UPN: box, Shared: true}); err != nil {
			return r, err
		}
		if _, err := w.sim.Generate(ctx, box, graphsim.GenerateSpec{Count: per, Days: 25, Seed: uint64(900 + i)}); err != nil {
			return r, err
		}
	}
	roles := []string{"User.Read.All", "Mail.Read", "MailboxSettings.Read"}
	secret := "orgwide-" + w.id
	app, err := w.sim.AddApp(ctx, graphsim.AppSpec{Name: "org-wide indexer", AppRoles: roles, Secret: secret})
	if err != nil {
		return r, err
	}
	if err := w.sim.GrantConsent(ctx, graphsim.ConsentSpec{Tenant: w.demo.TenantID, ClientID: app.ClientID, Roles: roles}); err != nil {
		return r, err
	}
	if err := w.sim.SetAppAccessPolicy(ctx, graphsim.AppAccessPolicy{Tenant: w.demo.TenantID, AppID: app.ClientID,
		AccessRight: graphsim.PolicyDenyAccess, Members: policy}); err != nil {
		return r, err
	}

	start := time.Now()
	var c conn
	st, err := w.call("POST", "/v1/connections", map[string]any{"kind": "application", "owner": "it-admin", "tenant": w.demo.TenantID,
		"client_id": app.ClientID, "client_secret": secret, "backfill_days": 30,
		// The demo tenant's own shared mailbox is left out by name.
		"selection": map[string]any{"shared": true, "exclude": []string{"support@contoso.example"}}}, &c)
	if err == nil && st != 201 {
		err = fmt.Errorf("create the application connection: %d", st)
	}
	if err != nil {
		return r, err
	}

	// During the backfill: mail arrives, users join and leave.
	for i := noMail + blocked; i < noMail+blocked+10 && i < n; i++ {
		if _, err := w.sim.InjectMessages(ctx, upn(i), graphsim.MessageSpec{Subject: "during the backfill"}); err != nil {
			return r, err
		}
	}
	for i := range joiners {
		u := fmt.Sprintf("joiner%03d@contoso.example", i)
		if _, err := w.sim.AddUser(ctx, graphsim.UserSpec{Tenant: "contoso.example", UPN: u}); err != nil {
			return r, err
		}
		if _, err := w.sim.Generate(ctx, u, graphsim.GenerateSpec{Count: per, Days: 25, Seed: uint64(500 + i)}); err != nil {
			return r, err
		}
	}
	// The leavers leave once they are synced (their backfill under way).
	err = waitFor(3*time.Minute, func() error {
		users, err := w.directory(c.ID)
		if err != nil {
			return err
		}
		for i := n - leavers; i < n; i++ {
			if !synced(users, upn(i)) {
				return fmt.Errorf("%s not synced yet", upn(i))
			}
		}
		return nil
	})
	if err != nil {
		return r, err
	}
	var gone []string
	for i := n - leavers; i < n; i++ {
		gone = append(gone, upn(i))
		if err := w.sim.DeleteUser(ctx, upn(i), false); err != nil {
			return r, err
		}
	}
	if st, err := w.call("POST", "/v1/connections/"+c.ID+"/discover", nil, nil); err != nil || st != 202 {
		return r, fmt.Errorf("discover: %d %v", st, err)
	}

	var users []dirUser
	counts := map[string]int{}
	err = waitFor(5*time.Minute, func() error {
		var err error
		if users, err = w.directory(c.ID); err != nil {
			return err
		}
		counts = map[string]int{}
		for _, u := range users {
			counts[u.Status]++
			counts[u.Status+":"+u.Reason]++
		}
		if counts["excluded:no_mailbox"] != noMail || counts["excluded:access_policy"] != blocked || counts["left"] < leavers {
			return fmt.Errorf("directory not there yet: %v", counts)
		}
		for i := range joiners {
			if !synced(users, fmt.Sprintf("joiner%03d@contoso.example", i)) {
				return fmt.Errorf("joiner %d not synced yet: %v", i, counts)
			}
		}
		return nil
	})
	if err != nil {
		return r, err
	}
	discovered := time.Since(start)
	for _, g := range gone {
		if synced(users, g) {
			return r, fmt.Errorf("%s left the directory and is still synced", g)
		}
	}
	since := start.Add(-30 * 24 * time.Hour).Add(time.Hour)
	syncing := 0
	for _, u := range users {
		if u.Status != "syncing" {
			continue
		}
		syncing++
		lost, dup, err := w.convergeSince(ctx, u.MailboxID, u.Address, since, workflows.DefaultFolders, 5*time.Minute)
		if err != nil {
			return r, fmt.Errorf("%s: %w", u.Address, err)
		}
		r.lost += lost
		r.dup += dup
	}
	// Every synced mailbox is pushed to: Graph lets the app subscribe to
	// any mailbox its access policy lets it read (those it keeps out are
	// excluded above). A message arriving in one then reaches the store
	// through a notification, well before its 5-minute poll could.
	modes := map[string]int{}
	var pushed []dirUser
	for _, u := range users {
		if u.Status != "syncing" {
			continue
		}
		m, err := w.waitMailbox(c.ID, u.MailboxID, 2*time.Minute, "pushed or polled", func(m mbox) bool { return m.SyncMode != "" })
		if err != nil {
			return r, err
		}
		modes[m.SyncMode]++
		if m.SyncMode == workflows.SyncPush {
			pushed = append(pushed, u)
		} else if modes[m.SyncMode] == 1 {
			r.add("poll_reason", m.PollReason)
		}
	}
	if modes[workflows.SyncPush] != syncing || len(pushed) == 0 {
		return r, fmt.Errorf("of %d synced mailboxes %d pushed, %d polled", syncing, modes[workflows.SyncPush], modes[workflows.SyncPolling])
	}
	arrived, err := w.arrival(ctx, pushed[0].Address, pushed[0].MailboxID, "pushed to an application mailbox", time.Minute, nil)
	if err != nil {
		return r, fmt.Errorf("a pushed mailbox: %w", err)
	}
	var view struct {
		Application struct {
			Progress struct {
				Excluded map[string]int `json:"excluded_reasons"`
			} `json:"progress"`
		} `json:"application"`
		NextAction string `json:"next_action"`
	}
	if _, err := w.call("GET", "/v1/connections/"+c.ID, nil, &view); err != nil {
		return r, err
	}
	hist, err := w.connectionHistory(ctx, c.ID)
	if err != nil {
		return r, err
	}
	r.add("users", len(users))
	r.add("syncing", syncing)
	r.add("excluded", fmt.Sprint(view.Application.Progress.Excluded))
	r.add("pushed", modes[workflows.SyncPush])
	r.add("polled", modes[workflows.SyncPolling])
	r.add("push_arrival_ms", arrived.Milliseconds())
	r.add("left", counts["left"])
	r.add("joined_during_backfill", joiners)
	r.add("discovered_s", fmt.Sprintf("%.1f", discovered.Seconds()))
	r.add("all_compared_s", fmt.Sprintf("%.1f", time.Since(start).Seconds()))
	r.add("connection_history", hist)
	return r, nil
}

func synced(users []dirUser, address string) bool {
	for _, u := range users {
		if u.Address == address && u.Status == "syncing" {
			return true
		}
	}
	return false
}

// connectionHistory is the length of a connection workflow's current
// history, as its status says.
func (w *world) connectionHistory(ctx context.Context, id string) (int, error) {
	tc, err := w.temporal()
	if err != nil {
		return 0, err
	}
	defer tc.Close()
	v, err := tc.QueryWorkflow(ctx, workflows.ConnectionWorkflowID(id), "", workflows.QueryStatus)
	if err != nil {
		return 0, err
	}
	var st workflows.Status
	if err := v.Get(&st); err != nil {
		return 0, err
	}
	return st.HistoryLen, nil
}
