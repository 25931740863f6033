package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/microsoftgraph/msgraph-sdk-go/users"
	"golang.org/x/oauth2"
	"golang.org/x/sync/errgroup"

	"github.com/outlookd/outlookd/activities"
	"github.com/outlookd/outlookd/graph"
	"github.com/outlookd/outlookd/graphsim"
	"github.com/outlookd/outlookd/identity"
	"github.com/outlookd/outlookd/internal/benchfig"
	"github.com/outlookd/outlookd/store"
	"github.com/outlookd/outlookd/workflows"
)

// orgBackfill: one application connection selecting every user of a
// tenant of n mailboxes of perBox messages each, in graphsim with all its
// limits enforced (per mailbox 4 at once and 10,000 per 10 minutes, the
// directory's resource units per app and tenant, the global limit per
// app). It measures the time until every mailbox is discovered and its
// workflow running, the backfill's messages per second (until the last
// mailbox's backfill.completed) against a raw baseline of the same Graph
// requests in the same run, the share of
// requests answered 429, the worker's peak memory and the workflows'
// history. It prints one JSON line.
func orgBackfill(ctx context.Context, n, perBox, baselineMailboxes int) error {
	w, err := newWorldEnv(ctx, "bench-org-backfill", true, []string{"OUTLOOKD_API_RATE_LIMIT=100000"})
	if w != nil {
		defer func() { w.close() }()
	}
	if err != nil {
		return err
	}
	progress := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "org-backfill: "+format+"\n", args...)
	}
	upn := func(i int) string { return fmt.Sprintf("org%05d@contoso.example", i) }
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for i := range n {
		g.Go(func() error {
			if _, err := w.sim.AddUser(gctx, graphsim.UserSpec{Tenant: "contoso.example", UPN: upn(i), DisplayName: fmt.Sprintf("Org %d", i)}); err != nil {
				return err
			}
			_, err := w.sim.Generate(gctx, upn(i), graphsim.GenerateSpec{Count: perBox, Days: 25, Seed: uint64(1000 + i)})
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	roles := []string{"User.Read.All", "Mail.Read", "MailboxSettings.Read"}
	secret := "org-backfill-" + w.id
	// Two apps of the same tenant: the baseline's requests count against
	// its own app's budgets, not the engine's.
	app, err := w.sim.AddApp(ctx, graphsim.AppSpec{Name: "org-wide indexer", AppRoles: roles, Secret: secret})
	if err != nil {
		return err
	}
	rawApp, err := w.sim.AddApp(ctx, graphsim.AppSpec{Name: "raw baseline", AppRoles: roles, Secret: secret})
	if err != nil {
		return err
	}
	for _, a := range []*graphsim.App{app, rawApp} {
		if err := w.sim.GrantConsent(ctx, graphsim.ConsentSpec{Tenant: w.demo.TenantID, ClientID: a.ClientID, Roles: roles}); err != nil {
			return err
		}
	}
	progress("%d mailboxes of %d messages generated", n, perBox)

	// The baseline first, so that the engine's run is not slowed by it.
	raw, err := rawOrgBackfill(ctx, w, rawApp.ClientID, secret, baselineMailboxes)
	if err != nil {
		return fmt.Errorf("baseline: %w", err)
	}
	progress("baseline: %d messages of %d mailboxes in %s: %.0f msg/s, %d answered 429", raw.messages, raw.mailboxes,
		raw.elapsed.Round(time.Millisecond), raw.rate(), raw.throttled)
	if err := w.sim.ResetCounters(ctx); err != nil {
		return err
	}

	// The engine: one application connection, every user selected.
	worker := w.procs["worker"].Process.Pid
	var peakRSS atomic.Int64
	stopRSS := sync.OnceFunc(ticker(200*time.Millisecond, func() {
		if kib := rssKiB(worker); kib > peakRSS.Load() {
			peakRSS.Store(kib)
		}
	}))
	defer stopRSS()
	start := time.Now()
	var c conn
	st, err := w.call("POST", "/v1/connections", map[string]any{"kind": "application", "owner": "it-admin", "tenant": w.demo.TenantID,
		"client_id": app.ClientID, "client_secret": secret, "backfill_days": 30, "selection": map[string]any{"shared": true}}, &c)
	if err == nil && st != 201 {
		err = fmt.Errorf("create the application connection: %d", st)
	}
	if err != nil {
		return err
	}
	// Every generated user syncing: discovered, its mailbox's workflow
	// started.
	var running, discovered time.Duration
	var syncing int
	var shown atomic.Int64 // what the progress line shows
	stopReport := ticker(15*time.Second, func() {
		progress("%d of %d mailboxes syncing after %s", shown.Load(), n, time.Since(start).Round(time.Second))
	})
	// Counted in Postgres, one cheap statement a poll: paging the
	// directory through the API twice a second took a quarter of a core
	// of the API and Postgres from the engine measured.
	err = waitFor(30*time.Minute, func() error {
		var listed, ours, all int
		if err := w.st.Pool().QueryRow(ctx, `SELECT count(*) FILTER (WHERE address LIKE 'org%'),
				count(*) FILTER (WHERE status = 'syncing' AND address LIKE 'org%'), count(*) FILTER (WHERE status = 'syncing')
			FROM directory_users WHERE connection_id = $1`, c.ID).Scan(&listed, &ours, &all); err != nil {
			return err
		}
		syncing = all
		if listed >= n && discovered == 0 {
			discovered = time.Since(start)
		}
		shown.Store(int64(ours))
		if ours < n {
			time.Sleep(500 * time.Millisecond)
			return fmt.Errorf("%d of %d mailboxes syncing", ours, n)
		}
		return nil
	})
	stopReport()
	if err != nil {
		return err
	}
	running = time.Since(start)
	progress("every mailbox syncing after %s (%d in all)", running.Round(time.Millisecond), syncing)
	// Every syncing mailbox backfilled.
	var backfilled int
	var stored int64
	shown.Store(0)
	stopReport = ticker(15*time.Second, func() {
		progress("%d of %d mailboxes backfilled after %s", shown.Load(), syncing, time.Since(start).Round(time.Second))
	})
	err = waitFor(60*time.Minute, func() error {
		if err := w.st.Pool().QueryRow(ctx, `SELECT count(DISTINCT split_part(id, ':backfill:', 1)) FROM events WHERE type = 'backfill.completed'`).Scan(&backfilled); err != nil {
			return err
		}
		shown.Store(int64(backfilled))
		if backfilled < syncing {
			time.Sleep(250 * time.Millisecond)
			return fmt.Errorf("%d of %d mailboxes backfilled", backfilled, syncing)
		}
		return nil
	})
	stopReport()
	if err != nil {
		return err
	}
	// The backfill ended when its last mailbox's backfill.completed was
	// recorded (with the mail it covers, in one transaction): the mailboxes'
	// workflows may still have been starting then (all_running_s).
	var lastDone time.Time
	if err := w.st.Pool().QueryRow(ctx, `SELECT max(created_at) FROM events WHERE type = 'backfill.completed' AND connection_id = $1`, c.ID).Scan(&lastDone); err != nil {
		return err
	}
	elapsed := lastDone.Sub(start)
	// When each kind of the connection's events came, from the create.
	rows, err := w.st.Pool().Query(ctx, `SELECT type, count(*), min(created_at), max(created_at) FROM events WHERE connection_id = $1 GROUP BY type ORDER BY min(created_at)`, c.ID)
	if err != nil {
		return err
	}
	for rows.Next() {
		var typ string
		var n int
		var first, last time.Time
		if err := rows.Scan(&typ, &n, &first, &last); err != nil {
			return err
		}
		progress("%d %s from %.2f s to %.2f s", n, typ, first.Sub(start).Seconds(), last.Sub(start).Seconds())
	}
	if err := rows.Err(); err != nil {
		return err
	}
	// How the mailboxes' backfills spread over time, 5 s at a time.
	var spread []string
	rows, err = w.st.Pool().Query(ctx, `SELECT floor(extract(epoch FROM created_at - $2::timestamptz) / 5)::int AS slot, count(*)
		FROM events WHERE connection_id = $1 AND type = 'backfill.completed' GROUP BY slot ORDER BY slot`, c.ID, start)
	if err != nil {
		return err
	}
	for rows.Next() {
		var slot, n int
		if err := rows.Scan(&slot, &n); err != nil {
			return err
		}
		spread = append(spread, fmt.Sprintf("%d-%ds: %d", slot*5, slot*5+5, n))
	}
	if err := rows.Err(); err != nil {
		return err
	}
	progress("mailboxes backfilled by time: %s", strings.Join(spread, ", "))
	if err := w.st.Pool().QueryRow(ctx, `SELECT count(*) FROM messages WHERE mailbox_id NOT LIKE 'bl-%'`).Scan(&stored); err != nil {
		return err
	}
	stopRSS()
	counts, err := w.sim.Counters(ctx)
	if err != nil {
		return err
	}
	requests, throttled := graphRequests(counts)
	subs, err := w.sim.Subscriptions(ctx)
	if err != nil {
		return err
	}
	connHist, err := w.connectionHistory(ctx, c.ID)
	if err != nil {
		return err
	}
	maxHist, err := mailboxHistoryMax(ctx, w, c.ID)
	if err != nil {
		return err
	}
	engineRate := float64(stored) / elapsed.Seconds()
	share := 0.0
	if requests > 0 {
		share = float64(throttled) / float64(requests)
	}
	progress("engine: %d messages of %d mailboxes in %s: %.0f msg/s; %d of %d requests answered 429", stored, backfilled,
		elapsed.Round(time.Millisecond), engineRate, throttled, requests)
	return benchfig.Fprint(os.Stdout, "org-backfill", map[string]any{
		"mailboxes": n, "messages_per_mailbox": perBox, "syncing": syncing,
		"all_running_s":       benchfig.Round(running.Seconds(), 1),
		"discovered_s":        benchfig.Round(discovered.Seconds(), 1),
		"backfilled_s":        benchfig.Round(elapsed.Seconds(), 1),
		"messages":            stored,
		"engine_msgs_per_s":   benchfig.Round(engineRate, 1),
		"baseline_msgs_per_s": benchfig.Round(raw.rate(), 1),
		"baseline_mailboxes":  raw.mailboxes,
		"ratio":               benchfig.Round(engineRate/raw.rate(), 2),
		"requests":            requests, "throttled": throttled,
		"throttled_share":     benchfig.Round(share, 4),
		"subscribed":          len(subs),
		"worker_rss_peak_mib": benchfig.Round(float64(peakRSS.Load())/1024, 1),
		"connection_history":  connHist,
		"mailbox_history_max": maxHist,
	})
}

// mailboxHistoryMax is the longest history of the connection's mailbox
// workflows, as their status says.
func mailboxHistoryMax(ctx context.Context, w *world, connectionID string) (int, error) {
	dir, err := w.directory(connectionID)
	if err != nil {
		return 0, err
	}
	tc, err := w.temporal()
	if err != nil {
		return 0, err
	}
	defer tc.Close()
	var mu sync.Mutex
	longest := 0
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for _, u := range dir {
		if u.Status != "syncing" || u.MailboxID == "" {
			continue
		}
		g.Go(func() error {
			// A query the worker could not answer in time (busy with the
			// other mailboxes' rounds) is asked again.
			var st workflows.Status
			err := waitFor(time.Minute, func() error {
				v, err := tc.QueryWorkflow(gctx, workflows.MailboxWorkflowID(u.MailboxID), "", workflows.QueryStatus)
				if err != nil {
					time.Sleep(time.Second)
					return fmt.Errorf("%s: %w", u.Address, err)
				}
				return v.Get(&st)
			})
			if err != nil {
				return err
			}
			mu.Lock()
			longest = max(longest, st.HistoryLen)
			mu.Unlock()
			return nil
		})
	}
	return longest, g.Wait()
}

// graphRequests sums graphsim's counters of Graph requests and of those
// answered 429.
func graphRequests(counts map[string]int64) (requests, throttled int64) {
	for k, v := range counts {
		if strings.HasPrefix(k, "requests.") {
			requests += v
			if strings.HasSuffix(k, ".429") {
				throttled += v
			}
		}
	}
	return requests, throttled
}

// rawOrg is what the raw baseline did.
type rawOrg struct {
	mailboxes int
	messages  int
	throttled int
	elapsed   time.Duration
}

func (r rawOrg) rate() float64 { return float64(r.messages) / r.elapsed.Seconds() }

// rawOrgBackfill is the baseline: the Graph requests the engine makes,
// in a plain loop through the same Graph client, with as much
// concurrency as the limits allow (each mailbox's folders at once, up to
// its 4 requests; mailboxes side by side). It reads the directory
// (/users/delta), then for each mailbox its settings and each default
// folder's messages by delta, merging each page into Postgres as the
// engine does. Up to limit mailboxes (0: all). A 429 is waited out as
// Retry-After says and counted.
func rawOrgBackfill(ctx context.Context, w *world, clientID, secret string, limit int) (rawOrg, error) {
	var r rawOrg
	idc := identity.Config{AuthorityURL: w.simURL, ClientID: clientID}
	tok, err := idc.ClientCredentialsToken(ctx, http.DefaultClient, identity.AppCredential{Tenant: w.demo.TenantID, ClientID: clientID, Secret: secret})
	if err != nil {
		return r, err
	}
	var throttled atomic.Int64
	gc, err := graph.NewClient(graph.Config{BaseURL: w.simURL + "/v1.0", Transport: retry429{next: http.DefaultTransport, n: &throttled}},
		oauth2.StaticTokenSource(tok))
	if err != nil {
		return r, err
	}
	start := time.Now()
	// The directory.
	var ids []string
	delta := gc.Users().Delta()
	cfg := &users.DeltaRequestBuilderGetRequestConfiguration{QueryParameters: &users.DeltaRequestBuilderGetQueryParameters{
		Select: []string{"id", "displayName", "mail", "userPrincipalName", "accountEnabled"}}}
	b := delta
	for {
		page, err := b.GetAsDeltaGetResponse(ctx, cfg)
		if err != nil {
			return r, fmt.Errorf("users delta: %w", err)
		}
		for _, u := range page.GetValue() {
			if u.GetMail() != nil && *u.GetMail() != "" {
				ids = append(ids, *u.GetId())
			}
		}
		next := page.GetOdataNextLink()
		if next == nil {
			break
		}
		b, cfg = delta.WithUrl(*next), nil
	}
	if limit > 0 && len(ids) > limit {
		ids = ids[:limit]
	}
	setup := time.Since(start)
	// Each mailbox a connection of its own in Postgres (not timed).
	window := time.Now().Add(-30 * 24 * time.Hour)
	for i := range ids {
		conn := fmt.Sprintf("bl-%05d", i)
		if err := w.st.CreateConnection(ctx, store.Connection{ID: conn, OrgID: "bench", OwnerID: "baseline", State: "active", Mode: "delegated"}); err != nil {
			return r, err
		}
		var folders []store.Folder
		for _, f := range workflows.DefaultFolders {
			folders = append(folders, store.Folder{ID: f, DisplayName: f})
		}
		if err := w.st.UpsertFolders(ctx, conn, folders, window); err != nil {
			return r, err
		}
	}
	start = time.Now().Add(-setup)
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(64) // mailboxes side by side
	for i, id := range ids {
		g.Go(func() error {
			conn := fmt.Sprintf("bl-%05d", i)
			if _, err := gc.Users().ByUserId(id).MailboxSettings().Get(gctx, nil); err != nil {
				return fmt.Errorf("mailbox settings of %s: %w", id, err)
			}
			fg, fctx := errgroup.WithContext(gctx)
			for _, f := range workflows.DefaultFolders { // 3 folders: within the mailbox's 4
				fg.Go(func() error {
					got, err := rawFolderDelta(fctx, gc, w.st, conn, id, f, window)
					mu.Lock()
					r.messages += got
					mu.Unlock()
					return err
				})
			}
			return fg.Wait()
		})
	}
	if err := g.Wait(); err != nil {
		return r, err
	}
	r.elapsed = time.Since(start)
	r.mailboxes = len(ids)
	r.throttled = int(throttled.Load())
	return r, nil
}

// rawFolderDelta pages a folder's messages by delta from window on and
// merges each page into Postgres, as the backfill does.
func rawFolderDelta(ctx context.Context, gc *graph.Client, st *store.Store, conn, userID, folderID string, window time.Time) (int, error) {
	const pageSize = 200 // the engine's
	delta := gc.Users().ByUserId(userID).MailFolders().ByMailFolderId(folderID).Messages().Delta()
	cfg := activities.BackfillRequest(window, pageSize, false)
	b := delta
	total := 0
	for {
		page, err := b.GetAsDeltaGetResponse(ctx, cfg)
		if err != nil {
			return total, fmt.Errorf("%s of %s: %w", folderID, userID, err)
		}
		p := store.Page{FolderID: folderID, Phase: store.PhaseBackfill}
		p.Messages, p.Removed = activities.ConvertMessages(page.GetValue(), folderID)
		done := false
		if l := page.GetOdataDeltaLink(); l != nil {
			p.Cursor, p.Phase, done = *l, store.PhaseLive, true
		} else if l := page.GetOdataNextLink(); l != nil {
			p.Cursor = *l
		}
		if err := st.ApplyPage(ctx, conn, p); err != nil {
			return total, err
		}
		total += len(p.Messages)
		if done {
			return total, nil
		}
		b = delta.WithUrl(p.Cursor)
		cfg = activities.NextPageRequest(pageSize)
	}
}

// retry429 waits out a 429's Retry-After and sends the request again,
// counting the 429s.
type retry429 struct {
	next http.RoundTripper
	n    *atomic.Int64
}

func (t retry429) RoundTrip(r *http.Request) (*http.Response, error) {
	for {
		resp, err := t.next.RoundTrip(r)
		if err != nil || resp.StatusCode != http.StatusTooManyRequests || r.Body != nil && r.GetBody == nil {
			return resp, err
		}
		t.n.Add(1)
		resp.Body.Close()
		wait := time.Second
		if d, err := time.ParseDuration(resp.Header.Get("Retry-After") + "s"); err == nil {
			wait = d
		}
		select {
		case <-r.Context().Done():
			return nil, r.Context().Err()
		case <-time.After(wait):
		}
	}
}
