package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"

	"github.com/outlookd/outlookd/graphsim"
	"github.com/outlookd/outlookd/workflows"
)

// conn is what the scenarios read of a connection.
type conn struct {
	ID           string `json:"id"`
	State        string `json:"state"`
	SyncMode     string `json:"sync_mode"`
	Reason       string `json:"reason"`
	Mailbox      string `json:"mailbox"`
	AuthorizeURL string `json:"authorize_url"`
	MessageCount int64  `json:"message_count"`
	Backfill     *struct {
		Running     bool       `json:"running"`
		CoveredFrom *time.Time `json:"covered_from"`
		CompletedAt *time.Time `json:"completed_at"`
	} `json:"backfill"`
}

func (w *world) get(id string) (conn, error) {
	var c conn
	st, err := w.call("GET", "/v1/connections/"+id, nil, &c)
	if err == nil && st != 200 {
		err = fmt.Errorf("GET connection: %d", st)
	}
	return c, err
}

// waitConn polls a connection until cond holds.
func (w *world) waitConn(id string, d time.Duration, what string, cond func(conn) bool) (conn, error) {
	var c conn
	err := waitFor(d, func() error {
		var err error
		if c, err = w.get(id); err != nil {
			return err
		}
		if !cond(c) {
			return fmt.Errorf("%s: not yet (state %s, mode %q, reason %q)", what, c.State, c.SyncMode, c.Reason)
		}
		return nil
	})
	return c, err
}

// consent follows an authorize URL through graphsim (automatic consent
// for the hinted user) and the API's callback.
func (w *world) consent(authURL string) error {
	resp, err := noRedirect.Get(authURL)
	if err != nil {
		return err
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if !strings.HasPrefix(loc, w.apiURL+"/v1/oauth/callback") {
		return fmt.Errorf("authorize sent the browser to %q", loc)
	}
	cb, err := noRedirect.Get(loc)
	if err != nil {
		return err
	}
	cb.Body.Close()
	// 202: the consent was handed over and the connection completes
	// without the user (its workflow slow to take it); the caller waits
	// for the state it needs, as an app does.
	if cb.StatusCode != 200 && cb.StatusCode != 202 {
		return fmt.Errorf("callback answered %d", cb.StatusCode)
	}
	return nil
}

// createConsented creates a connection for a mailbox, acting for an app
// user, with more of the request body in extra, and consents; it answers
// the connection's ID without waiting for the backfill.
func (w *world) createConsented(user, mailbox string, extra map[string]any) (string, error) {
	body := map[string]any{"login_hint": mailbox}
	for k, v := range extra {
		body[k] = v
	}
	var c conn
	if st, err := w.callAs(user, "POST", "/v1/connections", body, &c); err != nil || st != 201 {
		return "", fmt.Errorf("create for %s: %d %v", mailbox, st, err)
	}
	if err := w.consent(c.AuthorizeURL); err != nil {
		return "", fmt.Errorf("consent for %s: %w", mailbox, err)
	}
	return c.ID, nil
}

// inboxOnly is the request body of a connection that syncs the inbox.
var inboxOnly = map[string]any{"folders": []string{"inbox"}}

// connect creates a connection for a mailbox, consents, and waits for the
// first backfill and live sync.
func (w *world) connect(mailbox string, extra map[string]any) (conn, error) {
	id, err := w.createConsented(defaultUser, mailbox, extra)
	if err != nil {
		return conn{}, err
	}
	return w.waitConn(id, 10*time.Minute, "backfilled and live", func(c conn) bool {
		return c.State == "active" && c.Backfill != nil && c.Backfill.CompletedAt != nil && c.SyncMode != ""
	})
}

// compare counts what Postgres lacks (or holds stale) against graphsim's
// ground truth for a connection, and what it holds that the truth does
// not: lost and duplicated.
func (w *world) compare(ctx context.Context, id, user string, since time.Time, folders []string) (lost, dup int, err error) {
	truth, err := w.sim.GroundTruth(ctx, user)
	if err != nil {
		return 0, 0, err
	}
	byID := map[string]graphsim.FolderTruth{}
	for _, f := range truth.Folders {
		byID[f.ID] = f
	}
	inScope := func(fid string) bool {
		for f, ok := byID[fid]; ok; f, ok = byID[f.ParentID] {
			if slices.Contains(folders, f.WellKnown) {
				return true
			}
		}
		return false
	}
	want := map[string]graphsim.MessageTruth{}
	for _, m := range truth.Messages {
		if inScope(m.FolderID) && !m.Received.Before(since) {
			want[m.ImmutableID] = m
		}
	}
	got, err := w.st.Messages(ctx, id)
	if err != nil {
		return 0, 0, err
	}
	have := map[string]bool{}
	for _, m := range got {
		t, ok := want[m.ID]
		if !ok {
			dup++
			continue
		}
		if t.FolderID != m.FolderID || t.IsRead != m.IsRead {
			lost++ // stale: a change was lost
		}
		have[m.ID] = true
	}
	for id := range want {
		if !have[id] {
			lost++
		}
	}
	return lost, dup, nil
}

// converge waits until Postgres equals the truth, and returns the counts.
func (w *world) converge(ctx context.Context, c conn, user string, d time.Duration) (lost, dup int, err error) {
	return w.convergeFolders(ctx, c, user, workflows.DefaultFolders, d)
}

// convergeFolders is converge for a connection syncing other folders.
func (w *world) convergeFolders(ctx context.Context, c conn, user string, folders []string, d time.Duration) (lost, dup int, err error) {
	since := time.Time{}
	if c.Backfill != nil && c.Backfill.CoveredFrom != nil {
		since = *c.Backfill.CoveredFrom
	}
	return w.convergeSince(ctx, c.ID, user, since, folders, d)
}

// convergeSince is convergeFolders for the mail under a mailbox ID (a
// connection's, or an attached mailbox's) received since a time.
func (w *world) convergeSince(ctx context.Context, id, user string, since time.Time, folders []string, d time.Duration) (lost, dup int, err error) {
	err = waitFor(d, func() error {
		var cerr error
		lost, dup, cerr = w.compare(ctx, id, user, since, folders)
		if cerr != nil {
			return cerr
		}
		if lost != 0 || dup != 0 {
			return fmt.Errorf("lost %d, duplicated %d", lost, dup)
		}
		return nil
	})
	if lost != 0 || dup != 0 {
		err = nil // the counts say it
	}
	return lost, dup, err
}

// leaks searches every haystack of the world for every secret graphsim
// issued or saw: workflow histories of the world's task queue, the
// processes' logs, every Postgres table, and every API response.
func (w *world) leaks(ctx context.Context) (hits int, secrets int, where []string, err error) {
	list, err := w.sim.Secrets(ctx)
	if err != nil {
		return 0, 0, nil, err
	}
	var needles []string
	for _, s := range list {
		if len(s) >= 8 {
			needles = append(needles, s)
		}
	}
	hay := map[string][]byte{}
	w.mu.Lock()
	hay["api responses"] = append([]byte(nil), w.responses.Bytes()...)
	w.mu.Unlock()
	// Every outlookd process's log (the API and, in a split world, the
	// worker that handles the tokens); graphsim's own log is Microsoft's.
	for name := range w.procs {
		if name != "graphsim" {
			raw, err := os.ReadFile(filepath.Join(w.dir, name+".log"))
			if err != nil {
				return 0, 0, nil, fmt.Errorf("leak scan: %w", err)
			}
			hay[name+".log"] = raw
		}
	}
	rows, err := w.st.Pool().Query(ctx, `SELECT tablename FROM pg_tables WHERE schemaname = 'public'`)
	if err != nil {
		return 0, 0, nil, err
	}
	var tables []string
	for rows.Next() {
		var t string
		_ = rows.Scan(&t)
		tables = append(tables, t)
	}
	rows.Close()
	for _, t := range tables {
		var dump string
		if err := w.st.Pool().QueryRow(ctx, `SELECT COALESCE(string_agg(row_to_json(x)::text, E'\n'), '') FROM `+quoteIdent(t)+` x`).Scan(&dump); err != nil {
			return 0, 0, nil, fmt.Errorf("dump %s: %w", t, err)
		}
		hay["table "+t] = []byte(dump)
	}
	tc, err := w.temporal()
	if err != nil {
		return 0, 0, nil, err
	}
	defer tc.Close()
	histories := 0
	var token []byte
	for {
		resp, err := tc.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Namespace: "default",
			Query: "TaskQueue = '" + w.queue + "'", NextPageToken: token})
		if err != nil {
			return 0, 0, nil, err
		}
		for _, ex := range resp.Executions {
			h := tc.GetWorkflowHistory(ctx, ex.Execution.WorkflowId, ex.Execution.RunId, false, 0)
			var buf []byte
			for h.HasNext() {
				ev, err := h.Next()
				if err != nil {
					return 0, 0, nil, err
				}
				raw, _ := json.Marshal(ev)
				buf = append(buf, raw...)
			}
			hay["history "+ex.Execution.WorkflowId] = buf
			histories++
		}
		if token = resp.NextPageToken; len(token) == 0 {
			break
		}
	}
	for name, h := range hay {
		for _, n := range needles {
			for _, form := range []string{n, url.QueryEscape(n)} {
				if bytes.Contains(h, []byte(form)) {
					hits++
					where = append(where, name)
				}
			}
		}
	}
	if histories == 0 {
		return hits, len(needles), where, fmt.Errorf("no workflow history found for task queue %s", w.queue)
	}
	return hits, len(needles), where, nil
}

// temporal dials the test stack's Temporal server.
func (w *world) temporal() (client.Client, error) {
	return client.Dial(client.Options{HostPort: w.stack["TEMPORAL_ADDRESS"], Logger: quietLogger()})
}

func quietLogger() tlog.Logger {
	return tlog.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))
}

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
