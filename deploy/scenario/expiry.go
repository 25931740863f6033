package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/outlookd/outlookd/graphsim"
	"github.com/outlookd/outlookd/workflows"
)

// The credential-expiry scenario shortens every clock it needs (outlookd's
// expiry margins and token refresh margin, graphsim's access-token
// lifetime) so that a client secret's whole end of life fits in a minute.
// graphsim's own clock is not moved: the secret's end date, outlookd's
// timers and the tokens all run on real time.
const (
	expiryIn      = 30 * time.Second
	expiryMargin1 = 20 * time.Second
	expiryMargin2 = 10 * time.Second
	// expiryTokenLife is graphsim's access-token lifetime: tokens got just
	// before the expiry still work for this long after it, as Entra's do.
	expiryTokenLife = 20 * time.Second
)

// credentialExpiryWorld is the world the scenario needs.
var credentialExpiryWorld = worldOptions{
	env: []string{
		"OUTLOOKD_SECRET_EXPIRY_MARGINS=" + expiryMargin1.String() + "," + expiryMargin2.String(),
		"OUTLOOKD_REFRESH_MARGIN=5s",
	},
	simFlags: []string{"--access-token-lifetime", expiryTokenLife.String()},
}

// credentialExpiry: an application connection's client secret nears its
// end date (the connection says so at each margin, with an event), then
// expires: the connection stops with a reason that tells the admin what to
// do, every mailbox pauses at its cursor, and the token endpoint is not
// asked again and again; mail arrives meanwhile. A new secret given with
// PUT .../credential resumes every mailbox from its cursor, and each is
// compared with graphsim.
func credentialExpiry(ctx context.Context, w *world, size int) (result, error) {
	var r result
	n := min(max(size/200, 5), 20)
	const per = 20
	upn := func(i int) string { return fmt.Sprintf("staff%02d@contoso.example", i) }
	var include []string
	for i := range n {
		if _, err := w.sim.AddUser(ctx, graphsim.UserSpec{Tenant: "contoso.example", UPN: upn(i)}); err != nil {
			return r, err
		}
		if _, err := w.sim.Generate(ctx, upn(i), graphsim.GenerateSpec{Count: per, Days: 20, Seed: uint64(300 + i)}); err != nil {
			return r, err
		}
		include = append(include, upn(i))
	}
	roles := []string{"User.Read.All", "Mail.Read", "MailboxSettings.Read"}
	secret := "expiring-" + w.id
	expires := time.Now().Add(expiryIn).Truncate(time.Second)
	app, err := w.sim.AddApp(ctx, graphsim.AppSpec{Name: "expiring indexer", AppRoles: roles, Secret: secret, SecretExpires: expires})
	if err != nil {
		return r, err
	}
	if err := w.sim.GrantConsent(ctx, graphsim.ConsentSpec{Tenant: w.demo.TenantID, ClientID: app.ClientID, Roles: roles}); err != nil {
		return r, err
	}
	var c conn
	st, err := w.call("POST", "/v1/connections", map[string]any{"kind": "application", "owner": "it-admin", "tenant": w.demo.TenantID,
		"client_id": app.ClientID, "client_secret": secret, "client_secret_expires_at": expires, "backfill_days": 30,
		"selection": map[string]any{"include": include}}, &c)
	if err == nil && st != 201 {
		err = fmt.Errorf("create the application connection: %d", st)
	}
	if err != nil {
		return r, err
	}

	// Ahead of time: the reason, then one event per margin.
	if _, err := w.waitConn(c.ID, expiryIn, "told the secret expires soon", func(c conn) bool {
		return c.State == "active" && c.Reason == workflows.ReasonCredentialExpiring
	}); err != nil {
		return r, err
	}
	toldAhead := time.Until(expires)
	if toldAhead <= 0 {
		return r, fmt.Errorf("the expiry was told %s after it", -toldAhead)
	}
	if err := waitFor(time.Until(expires), func() error {
		if got := w.events(c.ID, "connection.credential_expiring"); got != 2 {
			return fmt.Errorf("%d connection.credential_expiring events before the expiry, want one per margin (2)", got)
		}
		return nil
	}); err != nil {
		return r, err
	}
	users, err := waitSyncing(w, c.ID, n, time.Until(expires))
	if err != nil {
		return r, err
	}

	// The expiry: the connection stops with its reason.
	if _, err := w.waitConn(c.ID, expiryIn, "stopped at the expiry", func(c conn) bool {
		return c.State == "reauth_required" && c.Reason == "client_secret_expired"
	}); err != nil {
		return r, err
	}
	stoppedAfter := time.Since(expires)
	before, err := w.sim.Counters(ctx)
	if err != nil {
		return r, err
	}
	// Mail arrives while the connection waits.
	for i := range n {
		if _, err := w.sim.InjectMessages(ctx, upn(i), graphsim.MessageSpec{Subject: "during the outage"}, graphsim.MessageSpec{Subject: "during the outage, too"}); err != nil {
			return r, err
		}
	}
	// Every mailbox pauses at its cursor; none is lost.
	for _, u := range users {
		if _, err := w.waitMailbox(c.ID, u.MailboxID, 30*time.Second, "paused", func(m mbox) bool {
			return m.State == "reauth_required"
		}); err != nil {
			return r, err
		}
	}
	// Past the end of every token the old secret got, and a little more.
	time.Sleep(time.Until(expires.Add(expiryTokenLife + 5*time.Second)))
	after, err := w.sim.Counters(ctx)
	if err != nil {
		return r, err
	}
	// Every token request counted since the expiry was seen: each is
	// refused, and a handful at most is asked (the connection's own check,
	// and a mailbox or two that met the refusal before being told).
	refusedTotal := after["tokens.error.invalid_client.7000222"]
	if refusedTotal > int64(n)+2 {
		return r, fmt.Errorf("%d token requests refused with the expired secret for %d mailboxes: a retry storm", refusedTotal, n)
	}
	if issued := after["tokens.issued.client_credentials"] - before["tokens.issued.client_credentials"]; issued != 0 {
		return r, fmt.Errorf("%d app-only tokens issued after the expiry", issued)
	}
	var view struct {
		ReasonText string `json:"reason_text"`
	}
	if _, err := w.call("GET", "/v1/connections/"+c.ID, nil, &view); err != nil {
		return r, err
	}
	if !strings.Contains(view.ReasonText, "/v1/connections/"+c.ID+"/credential") {
		return r, fmt.Errorf("the reason's sentence does not say how to give a new secret: %q", view.ReasonText)
	}

	// A new secret resumes every mailbox from its cursor.
	fresh := "renewed-" + w.id
	if err := w.sim.AddSecret(ctx, app.ClientID, fresh, time.Now().Add(180*24*time.Hour)); err != nil {
		return r, err
	}
	rotated := time.Now()
	if st, err := w.call("PUT", "/v1/connections/"+c.ID+"/credential", map[string]any{"client_secret": fresh,
		"client_secret_expires_at": time.Now().Add(180 * 24 * time.Hour).Truncate(time.Second)}, nil); err != nil || st != 200 {
		return r, fmt.Errorf("PUT credential: %d %v", st, err)
	}
	if _, err := w.waitConn(c.ID, 30*time.Second, "active again", func(c conn) bool { return c.State == "active" && c.Reason == "" }); err != nil {
		return r, err
	}
	since := time.Now().Add(-30 * 24 * time.Hour).Add(time.Hour)
	for _, u := range users {
		lost, dup, err := w.convergeSince(ctx, u.MailboxID, u.Address, since, workflows.DefaultFolders, 60*time.Second)
		if err != nil {
			return r, fmt.Errorf("%s: %w", u.Address, err)
		}
		r.lost += lost
		r.dup += dup
	}
	r.add("mailboxes", len(users))
	r.add("told_ahead_s", fmt.Sprintf("%.0f", toldAhead.Seconds()))
	r.add("stopped_after_expiry_s", fmt.Sprintf("%.1f", stoppedAfter.Seconds()))
	r.add("token_requests_refused", refusedTotal)
	r.add("resumed_and_compared_s", fmt.Sprintf("%.1f", time.Since(rotated).Seconds()))
	return r, nil
}

// waitSyncing waits until n users of an application connection's
// directory are synced, and answers them.
func waitSyncing(w *world, id string, n int, d time.Duration) ([]dirUser, error) {
	var out []dirUser
	err := waitFor(d, func() error {
		users, err := w.directory(id)
		if err != nil {
			return err
		}
		out = out[:0]
		for _, u := range users {
			if u.Status == "syncing" {
				out = append(out, u)
			}
		}
		if len(out) < n {
			return fmt.Errorf("%d of %d mailboxes synced", len(out), n)
		}
		return nil
	})
	return out, err
}
