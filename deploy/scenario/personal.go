package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/outlookd/outlookd/graphsim"
	"github.com/outlookd/outlookd/workflows"
)

// sam is the personal Microsoft account (Outlook.com) of personal-account.
const sam = "sam@outlook.com"

// personalAccount: a personal Microsoft account's whole life. It consents
// through the common authority's sign-in page, backfills, stays live by
// change notifications, loses its refresh token each way a Microsoft
// account's dies (password changed, the app's permissions removed, 90 days
// unused) and is re-consented with the mail that arrived meanwhile synced,
// and is disconnected: its subscriptions deleted at Graph, its tokens gone
// from Vault, its mail deleted.
func personalAccount(ctx context.Context, w *world, size int) (result, error) {
	var r result
	u, err := w.sim.AddUser(ctx, graphsim.UserSpec{Tenant: "consumers", UPN: sam, DisplayName: "Sam"})
	if err != nil {
		return r, err
	}
	if _, err := w.sim.Generate(ctx, sam, graphsim.GenerateSpec{Count: size, Days: 25, Folders: workflows.DefaultFolders, Seed: 31}); err != nil {
		return r, err
	}
	start := time.Now()
	c, err := w.connect(sam, map[string]any{"backfill_days": 30})
	if err != nil {
		return r, err
	}
	r.add("backfill_s", fmt.Sprintf("%.1f", time.Since(start).Seconds()))
	var who struct {
		TenantID string `json:"tenant_id"`
		Mailbox  string `json:"mailbox"`
		Account  struct {
			Type    string `json:"type"`
			Sending struct {
				PerMessage int `json:"recipients_per_message"`
				PerDay     int `json:"recipients_per_day"`
			} `json:"sending"`
		} `json:"account"`
	}
	if _, err := w.call("GET", "/v1/connections/"+c.ID, nil, &who); err != nil {
		return r, err
	}
	if who.TenantID != graphsim.ConsumerTenantID || !strings.EqualFold(who.Mailbox, sam) {
		return r, fmt.Errorf("the connection says tenant %q, mailbox %q; want the consumer tenant and %s", who.TenantID, who.Mailbox, sam)
	}
	// What differs for a personal account is said: its sending limits.
	if a := who.Account; a.Type != "personal" || a.Sending.PerMessage != 100 || a.Sending.PerDay != 300 {
		return r, fmt.Errorf("the connection describes its account as %+v; want personal, 100 recipients a message and 300 a day", a)
	}
	if c.SyncMode != "push" {
		return r, fmt.Errorf("sync mode %q, want push: Graph notifies message changes of personal accounts", c.SyncMode)
	}
	if r.lost, r.dup, err = w.converge(ctx, c, sam, 30*time.Second); err != nil {
		return r, fmt.Errorf("after the backfill: %w", err)
	}
	r.add("messages", c.MessageCount)
	subs := userSubscriptions(ctx, w, u.ID)
	if len(subs) == 0 {
		return r, fmt.Errorf("no subscription for %s at Graph", sam)
	}
	for _, s := range subs {
		if s.TenantID != graphsim.ConsumerTenantID || s.CreatorID != u.ID {
			return r, fmt.Errorf("subscription %s: tenant %q, creator %q; want the consumer tenant and %s", s.ID, s.TenantID, s.CreatorID, sam)
		}
	}

	// Live mail, by change notifications.
	live := time.Now()
	n, err := churn(ctx, w, sam, covered(c), 10)
	if err != nil {
		return r, err
	}
	if r.lost, r.dup, err = w.converge(ctx, c, sam, time.Minute); err != nil {
		return r, fmt.Errorf("live mail: %w", err)
	}
	r.add("live_changes", n)
	r.add("live_converged_s", fmt.Sprintf("%.1f", time.Since(live).Seconds()))

	// The refresh token dies as a Microsoft account's does; each time the
	// user consents again and the mail that arrived meanwhile is synced.
	var slowest time.Duration
	for i, rs := range []struct{ sim, want string }{
		{graphsim.RevokePasswordChanged, "password_changed"},
		{graphsim.RevokeConsentRevoked, "consent_revoked"},
	} {
		d, err := outage(ctx, w, c, sam, rs.sim, rs.want, i+1)
		if err != nil {
			return r, err
		}
		slowest = max(slowest, d)
	}
	d, err := inactive(ctx, w, c, sam, 3)
	if err != nil {
		return r, err
	}
	slowest = max(slowest, d)
	if r.lost, r.dup, err = w.converge(ctx, c, sam, time.Minute); err != nil {
		return r, fmt.Errorf("after the outages: %w", err)
	}
	r.add("reauths", 3)
	r.add("slowest_catch_up_s", fmt.Sprintf("%.1f", slowest.Seconds()))

	// Disconnect: nothing left at Graph, in Vault or (retention delete) in
	// Postgres.
	if err := gone(ctx, w, c.ID, false); err != nil {
		return r, err
	}
	if err := waitFor(30*time.Second, func() error {
		if subs := userSubscriptions(ctx, w, u.ID); len(subs) != 0 {
			return fmt.Errorf("%d subscriptions of %s left at Graph after the disconnect", len(subs), sam)
		}
		return nil
	}); err != nil {
		return r, err
	}
	return r, nil
}

// userSubscriptions lists the subscriptions on a user's mailbox not yet
// expired at graphsim's clock (which the scenario moves).
func userSubscriptions(ctx context.Context, w *world, userID string) []graphsim.Subscription {
	now := must(w.sim.AdvanceClock(ctx, 0))
	var out []graphsim.Subscription
	for _, s := range must(w.sim.Subscriptions(ctx)) {
		if s.UserID == userID && s.Expiration.After(now) {
			out = append(out, s)
		}
	}
	return out
}

// inactive lets the connection's refresh token go unused for longer than
// the identity platform's 90 days (the simulated clock jumps; the worker is
// the only one that would have used it), so that it expires: reauth_required
// with reason inactive. Then mail arrives, the user consents again, and the
// mail is synced.
func inactive(ctx context.Context, w *world, c conn, user string, outages int) (time.Duration, error) {
	if _, err := w.sim.AdvanceClock(ctx, 91*24*time.Hour); err != nil {
		return 0, err
	}
	if _, err := w.sim.InjectMessages(ctx, user, make([]graphsim.MessageSpec, 3)...); err != nil {
		return 0, err
	}
	if _, err := w.call("POST", "/v1/connections/"+c.ID+"/resync", map[string]any{}, nil); err != nil {
		return 0, err
	}
	got, err := w.waitConn(c.ID, time.Minute, "reauth_required", func(c conn) bool { return c.State == "reauth_required" })
	if err != nil {
		return 0, err
	}
	if got.Reason != "inactive" {
		return 0, fmt.Errorf("90 days unused: reason %q, want inactive", got.Reason)
	}
	if err := waitFor(10*time.Second, func() error {
		if n := w.events(c.ID, "connection.reauth_required"); n != outages {
			return fmt.Errorf("%d reauth_required events after %d outages", n, outages)
		}
		return nil
	}); err != nil {
		return 0, err
	}
	if _, err := w.sim.InjectMessages(ctx, user, make([]graphsim.MessageSpec, 2)...); err != nil {
		return 0, err
	}
	var re conn
	if st, err := w.call("POST", "/v1/connections/"+c.ID+"/reauthorize", map[string]any{}, &re); err != nil || st != 200 {
		return 0, fmt.Errorf("reauthorize: %d %v", st, err)
	}
	if err := w.consent(re.AuthorizeURL); err != nil {
		return 0, err
	}
	consented := time.Now()
	if _, err := w.waitConn(c.ID, time.Minute, "active again", func(c conn) bool { return c.State == "active" }); err != nil {
		return 0, err
	}
	lost, dup, err := w.converge(ctx, c, user, 30*time.Second)
	if err != nil || lost != 0 || dup != 0 {
		return 0, fmt.Errorf("inactive: 30 s after re-consent, lost %d, duplicated %d (%v)", lost, dup, err)
	}
	return time.Since(consented), nil
}
