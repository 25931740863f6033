package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/outlookd/outlookd/graphsim"
	"github.com/outlookd/outlookd/workflows"
)

// result is what a scenario reports besides pass or fail.
type result struct {
	lost, dup int
	figures   []string
}

func (r *result) add(k string, v any) { r.figures = append(r.figures, fmt.Sprintf("%s=%v", k, v)) }

// scenario runs in its own world.
type scenario struct {
	name string
	what string
	run  func(ctx context.Context, w *world, size int) (result, error)
	// split runs the API and the worker as separate processes.
	split bool
	// cuttable makes outlookd reach Postgres and Vault through proxies
	// the scenario can cut (world.cut).
	cuttable bool
}

// worlds are the scenarios whose world needs more than split and
// cuttable say: outlookd's environment, graphsim's flags.
var worlds = map[string]worldOptions{
	"credential-expiry": credentialExpiryWorld,
}

var scenarios = []scenario{
	{"connect-backfill", "consent and a 30-day backfill of a large mailbox, compared", connectBackfill, false, false},
	{"live-push", "mail injected, moved, archived, read and deleted while live", livePush, false, false},
	{"poll-fallback", "a mailbox Graph refuses to subscribe stays current by polling", pollFallback, false, false},
	{"delta-expired", "delta tokens expire mid-life while mail keeps arriving", deltaExpired, false, false},
	{"subscription-removed", "Graph removes the subscription, then notifications are missed", subscriptionRemoved, false, false},
	{"reauth", "the refresh token dies for each reason in turn; re-consent; nothing lost", reauth, false, false},
	{"admin-consent", "a tenant requires admin approval: the first sign-in waits for it with a link, the admin consents, the user signs in", adminConsent, false, false},
	{"disconnect", "disconnect in each state with each retention policy", disconnect, false, false},
	{"operator-cancel", "cancel one workflow and terminate another from the CLI during live mail; both disconnect, both mailboxes connect again", operatorCancel, false, false},
	{"webhook-abuse", "spoofed, unknown, malformed and huge posts at the receiver", webhookAbuse, false, false},
	{"throttle-storm", "30% of Graph requests answer 429/503 with Retry-After during backfill and live mail", throttleStorm, false, false},
	{"chaos-worker", "kill -9 the worker every 10 s for 20 cycles during backfill and live mail", chaosWorker, true, false},
	{"chaos-deps", "restart Temporal, then Postgres, then Vault during live mail", chaosDeps, false, false},
	{"many-mailboxes", "200 connections live at once, mail spread over them", manyMailboxes, false, false},
	{"shared-mailboxes", "a service account attaches five shared mailboxes (one refused), polls them, detaches one, loses and regains another's rights", sharedMailboxes, false, false},
	{"outage-catch-up", "50 connections live; outlookd loses Postgres for 30 s and Vault for 60 s; the API says who is behind; all caught up within a minute", outageCatchUp, false, true},
	{"hostile-input", "every route sent malformed, oversized and hostile paths, queries, bodies and headers: no 5xx, nothing changed by a refused request", hostileInput, false, false},
	{"contact-filter", "a mailbox synced with a contact filter: 200 contacts, 50 added and 20 removed with their mail during live mail, compared with the filtered truth; one contact's past mail timed against the full backfill", contactFilter, false, false},
	{"org-wide", "an application connection syncs a tenant (users without a mailbox, some kept out by a policy, shared mailboxes selected) while mail arrives and users join and leave", orgWide, false, false},
	{"group-selection", "an application connection syncs one group's members (some through a nested group; an app without GroupMember.Read.All refused first); a member of the nested group swapped for another user is followed at the next discovery round", groupSelection, false, false},
	{"credential-expiry", "an application connection's client secret nears its end (told at each margin), expires (the connection stops, every mailbox pauses, no retry storm) while mail arrives; a new secret resumes every mailbox from its cursor", credentialExpiry, false, false},
	{"send-exactly-once", "sends over 20 connections (new, replies, 10 MB files) while Graph answers 15% ambiguously, the worker is killed every 10 s and the app asks again with the same key: one copy each", sendExactlyOnce, true, false},
	{"personal-account", "a personal Microsoft account (Outlook.com): consent, backfill, live mail, its refresh token dead each way a Microsoft account's dies and re-consented, disconnect", personalAccount, false, false},
	{"chaos-replicas", "on the cluster profile: a worker, then an API replica, killed in turn every 6 s during backfill, live mail and sends; converged, each send once", chaosReplicas, false, false},
	{"secrets-scan", "a connection's whole life, then every haystack searched for every secret", secretsScan, false, false},
}

const adele = "adele@contoso.example"

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func connectBackfill(ctx context.Context, w *world, size int) (result, error) {
	var r result
	if _, err := w.sim.Generate(ctx, adele, graphsim.GenerateSpec{Count: size, Days: 25, Folders: workflows.DefaultFolders, Seed: 11, AttachmentShare: 0.05}); err != nil {
		return r, err
	}
	start := time.Now()
	c, err := w.connect(adele, map[string]any{"backfill_days": 30})
	if err != nil {
		return r, err
	}
	el := time.Since(start).Seconds()
	r.lost, r.dup, err = w.converge(ctx, c, adele, 30*time.Second)
	r.add("messages", c.MessageCount)
	r.add("backfill_s", fmt.Sprintf("%.1f", el))
	r.add("msgs_per_s", fmt.Sprintf("%.0f", float64(c.MessageCount)/el))
	return r, err
}

// inboxSince lists the immutable IDs of a user's inbox messages received
// since a time.
func inboxSince(ctx context.Context, w *world, user string, since time.Time) []string {
	truth := must(w.sim.GroundTruth(ctx, user))
	inbox := ""
	for _, f := range truth.Folders {
		if f.WellKnown == "inbox" {
			inbox = f.ID
		}
	}
	var out []string
	for _, m := range truth.Messages {
		if m.FolderID == inbox && !m.Received.Before(since) {
			out = append(out, m.ImmutableID)
		}
	}
	return out
}

// churn injects, moves, archives, reads and deletes mail.
func churn(ctx context.Context, w *world, user string, since time.Time, n int) (int, error) {
	if _, err := w.sim.InjectMessages(ctx, user, make([]graphsim.MessageSpec, n)...); err != nil {
		return 0, err
	}
	ids := inboxSince(ctx, w, user, since)
	if len(ids) < 8 {
		return 0, fmt.Errorf("only %d inbox messages to change", len(ids))
	}
	read := true
	steps := []func() error{
		func() error { return w.sim.MoveMessage(ctx, user, ids[0], "archive") },
		func() error { return w.sim.MoveMessage(ctx, user, ids[1], "archive") },
		func() error { return w.sim.MoveMessage(ctx, user, ids[2], "sentitems") },
		func() error { return w.sim.UpdateMessage(ctx, user, ids[3], graphsim.MessageUpdate{IsRead: &read}) },
		func() error { return w.sim.UpdateMessage(ctx, user, ids[4], graphsim.MessageUpdate{IsRead: &read}) },
		func() error { return w.sim.DeleteMessage(ctx, user, ids[5]) },
		func() error { return w.sim.DeleteMessage(ctx, user, ids[6]) },
	}
	for _, s := range steps {
		if err := s(); err != nil {
			return 0, err
		}
	}
	return n + len(steps), nil
}

func covered(c conn) time.Time {
	if c.Backfill != nil && c.Backfill.CoveredFrom != nil {
		return *c.Backfill.CoveredFrom
	}
	return time.Time{}
}

func livePush(ctx context.Context, w *world, _ int) (result, error) {
	var r result
	c, err := w.connect(adele, nil)
	if err != nil {
		return r, err
	}
	if c.SyncMode != "push" {
		return r, fmt.Errorf("sync mode %q, want push", c.SyncMode)
	}
	start := time.Now()
	n, err := churn(ctx, w, adele, covered(c), 20)
	if err != nil {
		return r, err
	}
	r.lost, r.dup, err = w.converge(ctx, c, adele, time.Minute)
	r.add("changes", n)
	r.add("converged_s", fmt.Sprintf("%.1f", time.Since(start).Seconds()))
	return r, err
}

func pollFallback(ctx context.Context, w *world, _ int) (result, error) {
	var r result
	const pat = "pat@contoso.example"
	if _, err := w.sim.AddUser(ctx, graphsim.UserSpec{Tenant: "contoso.example", UPN: pat, DisplayName: "Pat", SubscriptionsFull: true}); err != nil {
		return r, err
	}
	if _, err := w.sim.Generate(ctx, pat, graphsim.GenerateSpec{Count: 60, Days: 10, Folders: []string{"inbox"}, Seed: 3}); err != nil {
		return r, err
	}
	c, err := w.connect(pat, map[string]any{"poll_minutes": 1})
	if err != nil {
		return r, err
	}
	if c.SyncMode != "polling" {
		return r, fmt.Errorf("sync mode %q, want polling", c.SyncMode)
	}
	start := time.Now()
	n, err := churn(ctx, w, pat, covered(c), 5)
	if err != nil {
		return r, err
	}
	r.lost, r.dup, err = w.converge(ctx, c, pat, 3*time.Minute)
	r.add("changes", n)
	r.add("converged_s", fmt.Sprintf("%.1f", time.Since(start).Seconds()))
	if subs := must(w.sim.Subscriptions(ctx)); len(subs) != 0 {
		return r, fmt.Errorf("%d subscriptions exist for a mailbox that refuses them", len(subs))
	}
	return r, err
}

func deltaExpired(ctx context.Context, w *world, _ int) (result, error) {
	var r result
	c, err := w.connect(adele, nil)
	if err != nil {
		return r, err
	}
	for round := range 3 {
		if err := w.sim.ExpireDeltaTokens(ctx, adele); err != nil {
			return r, err
		}
		if _, err := churn(ctx, w, adele, covered(c), 5); err != nil {
			return r, err
		}
		lost, dup, err := w.converge(ctx, c, adele, time.Minute)
		r.lost, r.dup = r.lost+lost, r.dup+dup
		if err != nil {
			return r, fmt.Errorf("round %d: %w", round, err)
		}
	}
	r.add("expiries", 3)
	return r, nil
}

func liveSubscriptions(ctx context.Context, w *world) (int, string) {
	n, id := 0, ""
	for _, s := range must(w.sim.Subscriptions(ctx)) {
		if s.Expiration.After(time.Now()) {
			n++
			id = s.ID
		}
	}
	return n, id
}

func subscriptionRemoved(ctx context.Context, w *world, _ int) (result, error) {
	var r result
	c, err := w.connect(adele, nil)
	if err != nil {
		return r, err
	}
	_, old := liveSubscriptions(ctx, w)
	if err := w.sim.RemoveSubscription(ctx, old); err != nil {
		return r, err
	}
	if err := waitFor(30*time.Second, func() error {
		if n, id := liveSubscriptions(ctx, w); n != 1 || id == old {
			return fmt.Errorf("%d live subscriptions after removal", n)
		}
		return nil
	}); err != nil {
		return r, err
	}
	if _, err := churn(ctx, w, adele, covered(c), 3); err != nil {
		return r, err
	}
	// Graph drops notifications and says so with missed.
	if err := w.sim.SetNotificationFault(ctx, graphsim.NotificationFault{Drop: 1}); err != nil {
		return r, err
	}
	if _, err := w.sim.InjectMessages(ctx, adele, make([]graphsim.MessageSpec, 4)...); err != nil {
		return r, err
	}
	_, sub := liveSubscriptions(ctx, w)
	if err := w.sim.SendLifecycle(ctx, sub, "missed"); err != nil {
		return r, err
	}
	if err := w.sim.SetNotificationFault(ctx, graphsim.NotificationFault{}); err != nil {
		return r, err
	}
	r.lost, r.dup, err = w.converge(ctx, c, adele, time.Minute)
	n, _ := liveSubscriptions(ctx, w)
	r.add("live_subscriptions", n)
	if n != 1 && err == nil {
		err = fmt.Errorf("%d live subscriptions, want 1", n)
	}
	return r, err
}

// reasons maps graphsim's revocation reasons to the reasons outlookd shows.
var reasons = []struct{ sim, want string }{
	{graphsim.RevokePasswordChanged, "password_changed"},
	{graphsim.RevokeSignInSessions, "revoked"},
	{graphsim.RevokeMFARequired, "mfa_required"},
	{graphsim.RevokeConsentRevoked, "consent_revoked"},
	{graphsim.RevokeConditionalAccess, "conditional_access"},
	{graphsim.RevokeDisabled, "account_disabled"},
}

// events counts a connection's events of a type in the pull feed.
func (w *world) events(id, typ string) int {
	return w.countEvents(func(connectionID, _, t string) bool { return connectionID == id && t == typ })
}

// mailboxEvents counts a mailbox's events of a type in the pull feed.
func (w *world) mailboxEvents(mbx, typ string) int {
	return w.countEvents(func(_, mailboxID, t string) bool { return mailboxID == mbx && t == typ })
}

// countEvents counts the events of the pull feed that match.
func (w *world) countEvents(match func(connectionID, mailboxID, typ string) bool) int {
	n := 0
	after := "0"
	for {
		var page struct {
			Data []struct {
				Type         string `json:"type"`
				ConnectionID string `json:"connection_id"`
				MailboxID    string `json:"mailbox_id"`
			} `json:"data"`
			NextCursor string `json:"next_cursor"`
		}
		if _, err := w.call("GET", "/v1/events?limit=1000&after="+after, nil, &page); err != nil || len(page.Data) == 0 {
			return n
		}
		for _, e := range page.Data {
			if match(e.ConnectionID, e.MailboxID, e.Type) {
				n++
			}
		}
		after = page.NextCursor
	}
}

// outage kills the connection's tokens for a reason, lets mail arrive,
// checks the state and the single event, re-consents, and answers how long
// the missed mail took to arrive after the consent.
func outage(ctx context.Context, w *world, c conn, user, simReason, want string, outages int) (time.Duration, error) {
	if err := w.sim.Revoke(ctx, user, simReason); err != nil {
		return 0, err
	}
	// The access token outlives the revocation until it expires at Graph.
	if _, err := w.sim.AdvanceClock(ctx, 2*time.Hour); err != nil {
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
	if got.Reason != want {
		return 0, fmt.Errorf("%s: reason %q, want %q", simReason, got.Reason, want)
	}
	if err := waitFor(10*time.Second, func() error {
		if n := w.events(c.ID, "connection.reauth_required"); n != outages {
			return fmt.Errorf("%s: %d reauth_required events after %d outages", simReason, n, outages)
		}
		return nil
	}); err != nil {
		return 0, err
	}
	// More mail while it waits; then the user fixes the sign-in and consents.
	if _, err := w.sim.InjectMessages(ctx, user, make([]graphsim.MessageSpec, 2)...); err != nil {
		return 0, err
	}
	if err := w.sim.Restore(ctx, user); err != nil {
		return 0, err
	}
	var re conn
	if st, err := w.call("POST", "/v1/connections/"+c.ID+"/reauthorize", map[string]any{}, &re); err != nil || st != 200 {
		return 0, fmt.Errorf("reauthorize: %d %v", st, err)
	}
	if err := w.consent(re.AuthorizeURL); err != nil {
		return 0, err
	}
	// The mail missed while the tokens were dead arrives by the catch-up
	// round that follows the consent, not at a later notification or the
	// reconciliation hours away.
	consented := time.Now()
	if _, err := w.waitConn(c.ID, time.Minute, "active again", func(c conn) bool { return c.State == "active" }); err != nil {
		return 0, err
	}
	lost, dup, err := w.converge(ctx, c, user, 15*time.Second)
	if err != nil || lost != 0 || dup != 0 {
		return 0, fmt.Errorf("%s: 15 s after re-consent, lost %d, duplicated %d (%v)", simReason, lost, dup, err)
	}
	return time.Since(consented), nil
}

func reauth(ctx context.Context, w *world, _ int) (result, error) {
	var r result
	c, err := w.connect(adele, nil)
	if err != nil {
		return r, err
	}
	var slowest time.Duration
	for i, rs := range reasons {
		catchUp, err := outage(ctx, w, c, adele, rs.sim, rs.want, i+1)
		if err != nil {
			return r, err
		}
		slowest = max(slowest, catchUp)
		lost, dup, err := w.converge(ctx, c, adele, time.Minute)
		r.lost, r.dup = r.lost+lost, r.dup+dup
		if err != nil {
			return r, fmt.Errorf("after %s: %w", rs.sim, err)
		}
	}
	r.add("reasons", len(reasons))
	r.add("slowest_catch_up_s", fmt.Sprintf("%.1f", slowest.Seconds()))
	r.add("events", w.events(c.ID, "connection.reauth_required"))
	return r, nil
}

// gone checks that a disconnected connection left nothing: no Vault
// secret, no subscription at Graph for its mailbox; and its mail per policy.
func gone(ctx context.Context, w *world, id string, keep bool) error {
	if _, err := w.call("DELETE", "/v1/connections/"+id, nil, nil); err != nil {
		return err
	}
	if _, err := w.waitConn(id, time.Minute, "disconnected", func(c conn) bool { return c.State == "disconnected" }); err != nil {
		return err
	}
	if n, err := w.vault.Tokens().Count(ctx, id); err != nil || n != 0 {
		return fmt.Errorf("%s: %d secrets left in Vault (%v)", id, n, err)
	}
	n, err := w.st.CountMessages(ctx, id)
	if err != nil {
		return err
	}
	if keep != (n > 0) {
		return fmt.Errorf("%s: %d messages left with keep=%t", id, n, keep)
	}
	return nil
}

func disconnect(ctx context.Context, w *world, _ int) (result, error) {
	var r result
	// pending_consent
	var pending conn
	if st, err := w.call("POST", "/v1/connections", map[string]any{}, &pending); err != nil || st != 201 {
		return r, fmt.Errorf("create: %d %v", st, err)
	}
	if err := gone(ctx, w, pending.ID, false); err != nil {
		return r, err
	}
	// active, delete
	a, err := w.connect(adele, nil)
	if err != nil {
		return r, err
	}
	if err := gone(ctx, w, a.ID, false); err != nil {
		return r, err
	}
	// active, keep
	k, err := w.connect("alex@contoso.example", map[string]any{"retention": "keep"})
	if err != nil {
		return r, err
	}
	if err := gone(ctx, w, k.ID, true); err != nil {
		return r, err
	}
	// reauth_required
	m, err := w.connect("megan@contoso.example", nil)
	if err != nil {
		return r, err
	}
	if err := w.sim.Revoke(ctx, "megan@contoso.example", graphsim.RevokePasswordChanged); err != nil {
		return r, err
	}
	if _, err := w.sim.AdvanceClock(ctx, 2*time.Hour); err != nil {
		return r, err
	}
	_, _ = w.call("POST", "/v1/connections/"+m.ID+"/resync", map[string]any{}, nil)
	if _, err := w.waitConn(m.ID, time.Minute, "reauth_required", func(c conn) bool { return c.State == "reauth_required" }); err != nil {
		return r, err
	}
	if err := gone(ctx, w, m.ID, false); err != nil {
		return r, err
	}
	// A subscription whose tokens died cannot be deleted by anyone: Graph
	// holds it for reauthorization, delivers nothing and drops it. Every
	// other one must be gone.
	delivering, held := 0, 0
	for _, s := range must(w.sim.Subscriptions(ctx)) {
		switch {
		case !s.Expiration.After(time.Now()):
		case s.NeedsReauth:
			held++
		default:
			delivering++
		}
	}
	if delivering != 0 {
		return r, fmt.Errorf("%d delivering subscriptions left at Graph", delivering)
	}
	r.add("states", 4)
	r.add("held_for_reauthorization", held)
	return r, nil
}

func post(url, ctype string, body string) int {
	resp, err := http.Post(url, ctype, strings.NewReader(body))
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

func webhookAbuse(ctx context.Context, w *world, _ int) (result, error) {
	var r result
	c, err := w.connect(adele, nil)
	if err != nil {
		return r, err
	}
	_, sub := liveSubscriptions(ctx, w)
	note := func(sub, state string) string {
		return `{"subscriptionId":"` + sub + `","clientState":"` + state + `","changeType":"deleted","resource":"Users/x/Messages/y"}`
	}
	n := w.apiURL + "/v1/graph/notifications"
	checks := []struct {
		what   string
		status int
		got    int
	}{
		{"spoofed clientState", 202, post(n, "application/json", `{"value":[`+note(sub, "forged")+`]}`)},
		{"unknown subscription", 202, post(n, "application/json", `{"value":[`+note("00000000-0000-0000-0000-000000000000", "x")+`]}`)},
		{"malformed body", 400, post(n, "application/json", `{"value":[{`)},
		{"not a notification", 400, post(n, "application/json", `{"hello":"world"}`)},
		{"huge body", 413, post(n, "application/json", `{"value":[`+strings.Repeat(note(sub, "forged")+",", 20000)+note(sub, "forged")+`]}`)},
		{"lifecycle spoofed", 202, post(w.apiURL+"/v1/graph/lifecycle", "application/json", `{"value":[{"subscriptionId":"`+sub+`","clientState":"forged","lifecycleEvent":"subscriptionRemoved"}]}`)},
		{"validation token with markup", 400, post(n+"?validationToken="+url.QueryEscape("<script>alert(1)</script>"), "text/plain", "")},
		{"validation token over 1 KiB", 400, post(n+"?validationToken="+strings.Repeat("a", 2000), "text/plain", "")},
		{"1,001 notifications in one post", 413, post(n, "application/json", `{"value":[`+strings.Repeat(note("00000000-0000-0000-0000-000000000000", "x")+",", 1000)+note(sub, "forged")+`]}`)},
	}
	// Graph's own handshake is echoed, as text that is never sniffed.
	tok := "Validation: Testing client application reachability for subscription Request-Id: 42"
	resp, err := http.Post(n+"?validationToken="+url.QueryEscape(tok), "text/plain", nil)
	if err != nil {
		return r, err
	}
	echo, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(echo) != tok || resp.Header.Get("X-Content-Type-Options") != "nosniff" || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		return r, fmt.Errorf("the handshake Graph sends: %d %q %v", resp.StatusCode, echo, resp.Header)
	}
	for _, ch := range checks {
		if ch.got != ch.status {
			return r, fmt.Errorf("%s: %d, want %d", ch.what, ch.got, ch.status)
		}
	}
	// None of it changed the connection: still the same subscription, and
	// genuine mail still flows.
	if n, now := liveSubscriptions(ctx, w); n != 1 || now != sub {
		return r, fmt.Errorf("the abuse changed the subscription (%d live)", n)
	}
	if _, err := churn(ctx, w, adele, covered(c), 3); err != nil {
		return r, err
	}
	r.lost, r.dup, err = w.converge(ctx, c, adele, time.Minute)
	r.add("abusive_posts", len(checks))
	return r, err
}

func secretsScan(ctx context.Context, w *world, _ int) (result, error) {
	var r result
	c, err := w.connect(adele, nil)
	if err != nil {
		return r, err
	}
	if _, err := churn(ctx, w, adele, covered(c), 5); err != nil {
		return r, err
	}
	if r.lost, r.dup, err = w.converge(ctx, c, adele, time.Minute); err != nil {
		return r, err
	}
	if _, err := outage(ctx, w, c, adele, graphsim.RevokePasswordChanged, "password_changed", 1); err != nil {
		return r, err
	}
	var body struct{}
	_, _ = w.call("GET", "/v1/connections/"+c.ID+"/messages?limit=5", nil, &body)
	if err := gone(ctx, w, c.ID, false); err != nil {
		return r, err
	}
	return r, nil
}

// faultCount sums graphsim's counters of injected 429 and 503 answers.
func faultCount(ctx context.Context, w *world) int64 {
	var n int64
	for k, v := range must(w.sim.Counters(ctx)) {
		if strings.Contains(k, "429") || strings.Contains(k, "503") {
			n += v
		}
	}
	return n
}

func throttleStorm(ctx context.Context, w *world, size int) (result, error) {
	var r result
	n := max(size/4, 1000)
	if _, err := w.sim.Generate(ctx, adele, graphsim.GenerateSpec{Count: n, Days: 25, Folders: workflows.DefaultFolders, Seed: 17}); err != nil {
		return r, err
	}
	// 15% 429 and 15% 503, each with Retry-After: 1, on every Graph request.
	if err := w.sim.SetFault(ctx, graphsim.Fault{Endpoint: "*", Throttle: 0.15, Unavailable: 0.15, RetryAfter: 1}); err != nil {
		return r, err
	}
	start := time.Now()
	c, err := w.connect(adele, nil)
	if err != nil {
		return r, err
	}
	backfill := time.Since(start)
	if _, err := churn(ctx, w, adele, covered(c), 10); err != nil {
		return r, err
	}
	r.lost, r.dup, err = w.converge(ctx, c, adele, 3*time.Minute)
	r.add("messages", c.MessageCount)
	r.add("backfill_s", fmt.Sprintf("%.1f", backfill.Seconds()))
	r.add("faults_injected", faultCount(ctx, w))
	if cerr := w.sim.ClearFaults(ctx); cerr != nil && err == nil {
		err = cerr
	}
	return r, err
}

func chaosWorker(ctx context.Context, w *world, size int) (result, error) {
	var r result
	const cycles = 20
	if _, err := w.sim.Generate(ctx, adele, graphsim.GenerateSpec{Count: size, Days: 25, Folders: workflows.DefaultFolders, Seed: 23}); err != nil {
		return r, err
	}
	id, err := w.createConsented(defaultUser, adele, nil)
	if err != nil {
		return r, err
	}
	// Kill the worker every 10 seconds while the backfill runs and mail
	// keeps arriving; it comes back at once each time.
	injected := 0
	for i := range cycles {
		time.Sleep(10 * time.Second)
		w.killWorker()
		if _, err := w.sim.InjectMessages(ctx, adele, make([]graphsim.MessageSpec, 2)...); err != nil {
			return r, err
		}
		injected += 2
		if err := w.startWorker(); err != nil {
			return r, fmt.Errorf("restart %d: %w", i, err)
		}
	}
	got, err := w.waitConn(id, 10*time.Minute, "backfilled", func(c conn) bool {
		return c.State == "active" && c.Backfill != nil && c.Backfill.CompletedAt != nil && c.SyncMode != ""
	})
	if err != nil {
		return r, err
	}
	if _, err := churn(ctx, w, adele, covered(got), 5); err != nil {
		return r, err
	}
	r.lost, r.dup, err = w.converge(ctx, got, adele, 3*time.Minute)
	r.add("kills", cycles)
	r.add("messages", got.MessageCount)
	r.add("injected_during_chaos", injected)
	return r, err
}

func manyMailboxes(ctx context.Context, w *world, _ int) (result, error) {
	var r result
	const mailboxes, perMailbox = 200, 20
	users := make([]string, mailboxes)
	for i := range users {
		users[i] = fmt.Sprintf("user%03d@contoso.example", i)
		if _, err := w.sim.AddUser(ctx, graphsim.UserSpec{Tenant: "contoso.example", UPN: users[i]}); err != nil {
			return r, err
		}
		if _, err := w.sim.Generate(ctx, users[i], graphsim.GenerateSpec{Count: perMailbox, Days: 10, Folders: []string{"inbox"}, Seed: uint64(i + 1)}); err != nil {
			return r, err
		}
	}
	start := time.Now()
	ids := make([]string, mailboxes)
	for i, u := range users {
		id, err := w.createConsented(defaultUser, u, inboxOnly)
		if err != nil {
			return r, err
		}
		ids[i] = id
	}
	conns := make([]conn, mailboxes)
	for i, id := range ids {
		c, err := w.waitConn(id, 5*time.Minute, "live", func(c conn) bool { return c.State == "active" && c.SyncMode == "push" })
		if err != nil {
			return r, fmt.Errorf("%s: %w", users[i], err)
		}
		conns[i] = c
	}
	live := time.Since(start)
	// Mail spread over every mailbox, all at once.
	for round := range 3 {
		for _, u := range users {
			if _, err := w.sim.InjectMessages(ctx, u, graphsim.MessageSpec{Subject: fmt.Sprintf("round %d", round)}); err != nil {
				return r, err
			}
		}
	}
	for i, c := range conns {
		lost, dup, err := w.convergeFolders(ctx, c, users[i], []string{"inbox"}, 2*time.Minute)
		r.lost, r.dup = r.lost+lost, r.dup+dup
		if err != nil {
			return r, fmt.Errorf("%s: %w", users[i], err)
		}
	}
	r.add("mailboxes", mailboxes)
	r.add("all_live_s", fmt.Sprintf("%.1f", live.Seconds()))
	r.add("injected", 3*mailboxes)
	return r, nil
}

// restart stops and starts one component of the test stack.
func restart(ctx context.Context, component string) error {
	var cmds [][]string
	switch component {
	case "postgres":
		// Debian's packaged cluster, the newest installed (as the stack
		// starts it).
		clusters, _ := filepath.Glob("/etc/postgresql/*/main")
		if len(clusters) == 0 {
			return errors.New("restart postgres: no local cluster is installed (/etc/postgresql/*/main)")
		}
		cmds = [][]string{{"pg_ctlcluster", filepath.Base(filepath.Dir(clusters[len(clusters)-1])), "main", "restart"}}
	default:
		cmds = [][]string{
			{"go", "run", "./deploy/stack", "--profile", "test", "--only", component, "down"},
			{"go", "run", "./deploy/stack", "--profile", "test", "--only", component, "up"},
		}
	}
	for _, c := range cmds {
		if out, err := exec.CommandContext(ctx, c[0], c[1:]...).CombinedOutput(); err != nil {
			return fmt.Errorf("%s: %v: %s", strings.Join(c, " "), err, out)
		}
	}
	return nil
}

func chaosDeps(ctx context.Context, w *world, _ int) (result, error) {
	var r result
	c, err := w.connect(adele, nil)
	if err != nil {
		return r, err
	}
	for _, dep := range []string{"temporal", "postgres", "vault"} {
		// Mail arrives just before, during and after the restart.
		if _, err := w.sim.InjectMessages(ctx, adele, make([]graphsim.MessageSpec, 3)...); err != nil {
			return r, err
		}
		start := time.Now()
		if err := restart(ctx, dep); err != nil {
			return r, err
		}
		if _, err := w.sim.InjectMessages(ctx, adele, make([]graphsim.MessageSpec, 3)...); err != nil {
			return r, err
		}
		if err := waitFor(2*time.Minute, func() error {
			resp, err := http.Get(w.apiURL + "/readyz")
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				return fmt.Errorf("not ready after restarting %s", dep)
			}
			return nil
		}); err != nil {
			return r, err
		}
		if _, err := churn(ctx, w, adele, covered(c), 2); err != nil {
			return r, err
		}
		lost, dup, err := w.converge(ctx, c, adele, 2*time.Minute)
		r.lost, r.dup = r.lost+lost, r.dup+dup
		if err != nil {
			return r, fmt.Errorf("after restarting %s: %w", dep, err)
		}
		r.add(dep+"_recovered_s", fmt.Sprintf("%.1f", time.Since(start).Seconds()))
	}
	return r, nil
}
