package main

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/outlookd/outlookd/graphsim"
	"github.com/outlookd/outlookd/workflows"
)

// groupSelection: an application connection syncs the members of one
// group, some of them through a nested group; an app without a group
// permission is refused first (permission_missing naming
// GroupMember.Read.All). Then a member of the nested group is swapped for
// another user, and one discovery round later the newcomer is synced and
// the other left; every synced mailbox is compared with graphsim.
func groupSelection(ctx context.Context, w *world, size int) (result, error) {
	var r result
	n := min(max(size/100, 10), 40)
	const per = 10
	upn := func(i int) string { return fmt.Sprintf("team%02d@contoso.example", i) }
	ids := make([]string, n)
	for i := range n {
		u, err := w.sim.AddUser(ctx, graphsim.UserSpec{Tenant: "contoso.example", UPN: upn(i)})
		if err != nil {
			return r, err
		}
		ids[i] = u.ID
		if _, err := w.sim.Generate(ctx, upn(i), graphsim.GenerateSpec{Count: per, Days: 20, Seed: uint64(700 + i)}); err != nil {
			return r, err
		}
	}
	// Sales: users 0-3 directly, and the nested group with users 4-7.
	nested, err := w.sim.AddGroup(ctx, graphsim.GroupSpec{Tenant: "contoso.example", DisplayName: "Sales EMEA", Members: ids[4:8]})
	if err != nil {
		return r, err
	}
	sales, err := w.sim.AddGroup(ctx, graphsim.GroupSpec{Tenant: "contoso.example", DisplayName: "Sales", Members: append(append([]string{}, ids[:4]...), nested.ID)})
	if err != nil {
		return r, err
	}
	// One member is away: its mailbox's settings say so through the API.
	tz := "Tokyo Standard Time"
	if err := w.sim.SetMailboxSettings(ctx, upn(1), graphsim.MailboxSettingsUpdate{TimeZone: &tz,
		AutomaticReplies: &graphsim.AutomaticReplies{Status: "alwaysEnabled", ExternalAudience: "all", InternalReplyMessage: "On leave"}}); err != nil {
		return r, err
	}
	selection := map[string]any{"groups": []string{sales.ID}}
	base := []string{"User.Read.All", "Mail.Read", "MailboxSettings.Read"}
	// Without a group permission: refused, naming the one to grant.
	plain, err := w.sim.AddApp(ctx, graphsim.AppSpec{Name: "no groups", AppRoles: base, Secret: "plain-" + w.id})
	if err != nil {
		return r, err
	}
	if err := w.sim.GrantConsent(ctx, graphsim.ConsentSpec{Tenant: w.demo.TenantID, ClientID: plain.ClientID, Roles: base}); err != nil {
		return r, err
	}
	var refused struct {
		Code    string   `json:"code"`
		Missing []string `json:"missing_permissions"`
	}
	st, raw, err := w.callRaw(defaultUser, "POST", "/v1/connections", map[string]any{"kind": "application", "owner": "it-admin", "tenant": w.demo.TenantID,
		"client_id": plain.ClientID, "client_secret": "plain-" + w.id, "selection": selection})
	if err == nil {
		err = json.Unmarshal(raw, &refused)
	}
	if err != nil || st != 422 || refused.Code != "permission_missing" || len(refused.Missing) != 1 || refused.Missing[0] != "GroupMember.Read.All" {
		return r, fmt.Errorf("without a group permission: %d %+v %v", st, refused, err)
	}

	roles := append(base, "GroupMember.Read.All")
	app, err := w.sim.AddApp(ctx, graphsim.AppSpec{Name: "sales indexer", AppRoles: roles, Secret: "groups-" + w.id})
	if err != nil {
		return r, err
	}
	if err := w.sim.GrantConsent(ctx, graphsim.ConsentSpec{Tenant: w.demo.TenantID, ClientID: app.ClientID, Roles: roles}); err != nil {
		return r, err
	}
	start := time.Now()
	var c conn
	st, err = w.call("POST", "/v1/connections", map[string]any{"kind": "application", "owner": "it-admin", "tenant": w.demo.TenantID,
		"client_id": app.ClientID, "client_secret": "groups-" + w.id, "backfill_days": 30, "selection": selection,
		// The mailbox settings are read at the first poll after the backfill.
		"poll_minutes": 1}, &c)
	if err == nil && st != 201 {
		err = fmt.Errorf("create the application connection: %d", st)
	}
	if err != nil {
		return r, err
	}
	want := func(members []int, gone []int) func() error {
		return func() error {
			users, err := w.directory(c.ID)
			if err != nil {
				return err
			}
			for _, i := range members {
				if !synced(users, upn(i)) {
					return fmt.Errorf("%s not synced yet", upn(i))
				}
			}
			for _, i := range gone {
				if synced(users, upn(i)) {
					return fmt.Errorf("%s still synced", upn(i))
				}
			}
			syncing := 0
			for _, u := range users {
				if u.Status == "syncing" {
					syncing++
				}
			}
			if syncing != len(members) {
				return fmt.Errorf("%d synced, want %d", syncing, len(members))
			}
			return nil
		}
	}
	if err := waitFor(2*time.Minute, want([]int{0, 1, 2, 3, 4, 5, 6, 7}, nil)); err != nil {
		return r, err
	}
	first := time.Since(start)
	// user 7 leaves the nested group, user 8 joins it: no change of either
	// user for /users/delta to report.
	if err := w.sim.RemoveGroupMember(ctx, nested.ID, ids[7]); err != nil {
		return r, err
	}
	if err := w.sim.AddGroupMember(ctx, nested.ID, ids[8]); err != nil {
		return r, err
	}
	changed := time.Now()
	if st, err := w.call("POST", "/v1/connections/"+c.ID+"/discover", nil, nil); err != nil || st != 202 {
		return r, fmt.Errorf("discover: %d %v", st, err)
	}
	if err := waitFor(2*time.Minute, want([]int{0, 1, 2, 3, 4, 5, 6, 8}, []int{7})); err != nil {
		return r, err
	}
	followed := time.Since(changed)
	users, err := w.directory(c.ID)
	if err != nil {
		return r, err
	}
	counts := map[string]int{}
	since := start.Add(-30 * 24 * time.Hour).Add(time.Hour)
	for _, u := range users {
		counts[u.Status+":"+u.Reason]++
		if u.Status != "syncing" {
			continue
		}
		lost, dup, err := w.convergeSince(ctx, u.MailboxID, u.Address, since, workflows.DefaultFolders, 2*time.Minute)
		if err != nil {
			return r, fmt.Errorf("%s: %w", u.Address, err)
		}
		r.lost += lost
		r.dup += dup
	}
	var away struct {
		Settings struct {
			TimeZone         string `json:"time_zone"`
			AutomaticReplies struct {
				Status  string `json:"status"`
				Message string `json:"internal_reply_message"`
			} `json:"automatic_replies"`
		} `json:"mailbox_settings"`
	}
	settingsAt := time.Now()
	err = waitFor(90*time.Second, func() error {
		for _, u := range users {
			if u.Address != upn(1) {
				continue
			}
			if _, err := w.call("GET", mailboxPath(c.ID, u.MailboxID), nil, &away); err != nil {
				return err
			}
		}
		if s := away.Settings; s.TimeZone != tz || s.AutomaticReplies.Status != "alwaysEnabled" || s.AutomaticReplies.Message != "On leave" {
			return fmt.Errorf("%s's mailbox settings: %+v", upn(1), s)
		}
		return nil
	})
	if err != nil {
		return r, err
	}
	r.add("mailbox_settings_s", fmt.Sprintf("%.1f", time.Since(settingsAt).Seconds()))
	r.add("users", len(users))
	r.add("directory", fmt.Sprint(counts))
	r.add("first_round_s", fmt.Sprintf("%.1f", first.Seconds()))
	r.add("membership_change_followed_s", fmt.Sprintf("%.1f", followed.Seconds()))
	return r, nil
}
