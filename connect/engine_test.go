package connect_test

import (
	"context"
	"errors"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/outlookd/outlookd/connect"
	"github.com/outlookd/outlookd/graphsim"
	"github.com/outlookd/outlookd/internal/enginetest"
	"github.com/outlookd/outlookd/store"
	"github.com/outlookd/outlookd/workflows"
)

// seedMailbox gives Ada 5,000 messages over 60 days in synced folders
// (nested ones included) and in one that is not synced.
func seedMailbox(t *testing.T, e *enginetest.Engine) {
	t.Helper()
	ctx := context.Background()
	projects, err := e.Ctl.CreateFolder(ctx, e.Ada.UPN, "inbox", "Projects")
	if err != nil {
		t.Fatal(err)
	}
	y2026, err := e.Ctl.CreateFolder(ctx, e.Ada.UPN, projects, "2026")
	if err != nil {
		t.Fatal(err)
	}
	folders := []string{"inbox", "inbox", "inbox", "sentitems", "archive", projects, y2026, "junkemail"}
	if _, err := e.Ctl.Generate(ctx, e.Ada.UPN, graphsim.GenerateSpec{Count: 5000, Days: 60, Folders: folders, AttachmentShare: 0.1, ThreadShare: 0.3, Seed: 42}); err != nil {
		t.Fatal(err)
	}
}

// synced returns the ground truth the engine must hold: messages received
// since the window start, in the synced folders and their descendants.
func synced(t *testing.T, e *enginetest.Engine, since time.Time) map[string]graphsim.MessageTruth {
	t.Helper()
	return syncedFor(t, e, e.Ada.UPN, since)
}

// syncedFor is synced for any user of the tenant.
func syncedFor(t *testing.T, e *enginetest.Engine, user string, since time.Time) map[string]graphsim.MessageTruth {
	t.Helper()
	truth, err := e.Ctl.GroundTruth(context.Background(), user)
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]graphsim.FolderTruth{}
	for _, f := range truth.Folders {
		byID[f.ID] = f
	}
	inScope := func(id string) bool {
		for f, ok := byID[id]; ok; f, ok = byID[f.ParentID] {
			if slices.Contains(workflows.DefaultFolders, f.WellKnown) {
				return true
			}
		}
		return false
	}
	out := map[string]graphsim.MessageTruth{}
	for _, m := range truth.Messages {
		if !m.Received.Before(since) && inScope(m.FolderID) {
			out[m.ImmutableID] = m
		}
	}
	return out
}

// compare checks Postgres against the ground truth, field by field.
func compare(t *testing.T, e *enginetest.Engine, connectionID string, want map[string]graphsim.MessageTruth, bodies bool) {
	t.Helper()
	got, err := e.Store.Messages(context.Background(), connectionID)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Errorf("Postgres holds %d messages, ground truth %d", len(got), len(want))
	}
	seen := map[string]bool{}
	mismatches := 0
	for _, m := range got {
		if seen[m.ID] {
			t.Errorf("duplicate %s", m.ID)
		}
		seen[m.ID] = true
		w, ok := want[m.ID]
		if !ok {
			t.Errorf("unexpected message %s (%q)", m.ID, m.Subject)
			continue
		}
		var diffs []string
		check := func(name string, ok bool) {
			if !ok {
				diffs = append(diffs, name)
			}
		}
		check("folder", m.FolderID == w.FolderID)
		check("internetMessageId", m.InternetMessageID == w.InternetMessageID)
		check("conversationId", m.ConversationID == w.ConversationID)
		check("changeKey", m.ChangeKey == w.ChangeKey)
		check("subject", m.Subject == w.Subject)
		check("from", m.From.Address == w.From.Address && m.From.Name == w.From.Name)
		check("to", recipientsEqual(m.To, w.To) && recipientsEqual(m.Cc, w.Cc) && recipientsEqual(m.Bcc, w.Bcc))
		check("received", m.Received.Equal(w.Received))
		check("sent", m.Sent.Equal(w.Sent))
		check("isRead", m.IsRead == w.IsRead)
		check("importance", m.Importance == w.Importance)
		check("categories", slices.Equal(nilIfEmpty(m.Categories), nilIfEmpty(w.Categories)))
		check("hasAttachments", m.HasAttachments == w.HasAttachments)
		check("bodyPreview", m.BodyPreview == w.BodyPreview)
		check("attachments", len(m.Attachments) == len(w.Attachments))
		for i := range min(len(m.Attachments), len(w.Attachments)) {
			a, b := m.Attachments[i], w.Attachments[i]
			check("attachment", a.ID == b.ID && a.Name == b.Name && a.Size == int64(b.Size) && a.ContentType == b.ContentType)
		}
		if bodies {
			check("body", m.Body != nil && *m.Body == w.Body)
		} else {
			check("no body", m.Body == nil)
		}
		if len(diffs) > 0 {
			mismatches++
			if mismatches <= 3 {
				t.Errorf("message %s differs in %v:\n got  %+v\n want %+v", m.ID, diffs, m, w)
			}
		}
	}
	if mismatches > 3 {
		t.Errorf("%d messages differ in all", mismatches)
	}
	for id := range want {
		if !seen[id] {
			t.Errorf("missing message %s", id)
			break
		}
	}
}

func recipientsEqual(a []store.Recipient, b []graphsim.Recipient) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Address != b[i].Address || a[i].Name != b[i].Name {
			return false
		}
	}
	return true
}

func nilIfEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}

// TestConnectAndBackfill: consent through the automatic path, a 30-day
// backfill of a 5,000-message mailbox with a worker killed in the middle,
// then Postgres equals the ground truth and no secret is in any history.
func TestConnectAndBackfill(t *testing.T) {
	e := enginetest.Start(t, graphsim.Options{}, workflows.Options{PageSize: 50, HeartbeatTimeout: 3 * time.Second})
	ctx := context.Background()
	seedMailbox(t, e)
	// Slow pages down so the worker can be killed mid-backfill.
	e.Sim.SetFault(graphsim.Fault{Endpoint: "delta", Latency: 30 * time.Millisecond})

	id, out := e.ConnectUser(e.Ada.UPN, workflows.Settings{BackfillDays: 30, Bodies: workflows.BodiesStore, Features: workflows.Features{Read: true, Send: true}})
	if out.State != workflows.StateActive || out.Mailbox != "ada@contoso.example" || out.DisplayName != "Ada Lovelace" {
		t.Fatalf("consent outcome: %+v", out)
	}
	// Its first pages are committed (by the backfill's first activity,
	// which tells its progress only when it ends).
	e.WaitFor(id, 30*time.Second, "backfill progress", func(workflows.Status) bool {
		n, err := e.Store.CountMessages(ctx, id)
		return err == nil && n >= 100
	})
	e.StopWorker() // the worker dies mid-backfill
	time.Sleep(500 * time.Millisecond)
	e.Sim.ClearFaults()
	e.StartWorker()
	st := e.WaitFor(id, 3*time.Minute, "backfill completion", func(st workflows.Status) bool {
		return !st.Backfill.Covered.IsZero() && !st.Backfill.Running
	})
	if st.State != workflows.StateActive || st.TenantID != e.Tenant.Tenant.ID || !slices.Contains(st.GrantedScopes, "Mail.Send") {
		t.Errorf("status: %+v", st)
	}
	want := synced(t, e, st.Backfill.Covered)
	if len(want) < 1500 {
		t.Fatalf("the fixture has only %d messages in the window", len(want))
	}
	compare(t, e, id, want, true)

	reg, err := e.Store.GetConnection(ctx, id)
	if err != nil || reg.State != workflows.StateActive || reg.Mailbox != "ada@contoso.example" || reg.TenantID != e.Tenant.Tenant.ID {
		t.Errorf("registry: %+v %v", reg, err)
	}
	folders, _ := e.Store.ListFolders(ctx, id)
	if len(folders) != 5 {
		t.Errorf("folders: %d", len(folders))
	}
	for _, f := range folders {
		if f.Phase != store.PhaseLive || !strings.Contains(f.Cursor, "$deltatoken=") {
			t.Errorf("folder %s left without a delta anchor: %s %q", f.DisplayName, f.Phase, f.Cursor)
		}
	}
	scanHistories(t, e, id)
	if os.Getenv("OUTLOOKD_RECORD_HISTORY") == "1" {
		recordHistory(t, e, workflows.ConnectionWorkflowID(id), "../workflows/testdata/connection_once.json")
	}
}

// TestSlowPagesKeepHeartbeating: a backfill whose every page takes longer
// than the heartbeat timeout (Graph slow, or throttled) still finishes:
// the activity heartbeats while it waits, so a short timeout only catches
// dead workers.
func TestSlowPagesKeepHeartbeating(t *testing.T) {
	e := enginetest.Start(t, graphsim.Options{}, workflows.Options{PageSize: 50, HeartbeatTimeout: 2 * time.Second})
	if _, err := e.Ctl.Generate(context.Background(), e.Ada.UPN, graphsim.GenerateSpec{Count: 120, Days: 10, Folders: []string{"inbox"}, Seed: 3}); err != nil {
		t.Fatal(err)
	}
	e.Sim.SetFault(graphsim.Fault{Endpoint: "delta", Latency: 3 * time.Second})
	id, out := e.ConnectUser(e.Ada.UPN, workflows.Settings{BackfillDays: 30, Folders: []string{"inbox"}, Features: workflows.Features{Read: true}})
	if out.State != workflows.StateActive {
		t.Fatalf("consent outcome: %+v", out)
	}
	st := e.WaitFor(id, 90*time.Second, "backfill completion", func(st workflows.Status) bool {
		return !st.Backfill.Covered.IsZero() && !st.Backfill.Running
	})
	e.Sim.ClearFaults()
	if n, _ := e.Store.CountMessages(context.Background(), id); n != 120 {
		t.Errorf("%d messages after the backfill, want 120 (status %+v)", n, st.Backfill)
	}
	// No page activity was given up for silence: each ran once. The
	// backfill's first activity runs in the connection's workflow, what
	// it left in a child.
	scheduled := map[int64]string{} // the backfill's activities, by scheduled event
	started := 0
	for _, wid := range []string{workflows.ConnectionWorkflowID(id), workflows.BackfillWorkflowID(id, 1)} {
		for _, ev := range readHistory(t, e.Temporal, wid) {
			if a := ev.GetActivityTaskScheduledEventAttributes(); a != nil {
				scheduled[ev.GetEventId()] = a.GetActivityType().GetName()
			}
			a := ev.GetActivityTaskStartedEventAttributes()
			if a == nil {
				continue
			}
			if name := scheduled[a.GetScheduledEventId()]; name != workflows.ActivityBackfillMailbox && name != workflows.ActivityBackfillFolder {
				continue
			}
			started++
			if a.GetAttempt() != 1 {
				t.Errorf("a page activity ran %d times: its heartbeat timed out while it waited on Graph", a.GetAttempt())
			}
		}
	}
	if started == 0 {
		t.Error("the backfill ran no page activity")
	}
}

// recordHistory saves a workflow's history for the replay test.
func recordHistory(t *testing.T, e *enginetest.Engine, workflowID, path string) {
	t.Helper()
	var h historypb.History
	it := e.Temporal.GetWorkflowHistory(context.Background(), workflowID, "", false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		h.Events = append(h.Events, ev)
	}
	b, err := protojson.MarshalOptions{Indent: "  "}.Marshal(&h)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// activitiesRun counts the activities of the given types a workflow's
// history scheduled.
func activitiesRun(t *testing.T, e *enginetest.Engine, workflowID string, types ...string) int {
	t.Helper()
	n := 0
	it := e.Temporal.GetWorkflowHistory(context.Background(), workflowID, "", false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		if a := ev.GetActivityTaskScheduledEventAttributes(); a != nil && slices.Contains(types, a.GetActivityType().GetName()) {
			n++
		}
	}
	return n
}

// scanHistories reads every event of the connection's workflows (inputs,
// updates, signals, results, heartbeats, search attributes, memo) and looks
// for every secret the simulator issued or saw.
func scanHistories(t *testing.T, e *enginetest.Engine, connectionID string) {
	t.Helper()
	ctx := context.Background()
	ids := []string{workflows.ConnectionWorkflowID(connectionID)}
	for n := 1; n <= 5; n++ {
		ids = append(ids, workflows.BackfillWorkflowID(connectionID, n))
	}
	secrets := e.Sim.Secrets()
	if len(secrets) < 4 {
		t.Fatalf("the simulator reports only %d secrets", len(secrets))
	}
	events := 0
	for _, wid := range ids {
		it := e.Temporal.GetWorkflowHistory(ctx, wid, "", false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		for it.HasNext() {
			ev, err := it.Next()
			if err != nil {
				if strings.Contains(err.Error(), "not found") {
					break
				}
				t.Fatal(err)
			}
			events++
			b, _ := protojson.Marshal(ev)
			text := string(b)
			for _, s := range secrets {
				if strings.Contains(text, s) {
					t.Fatalf("a secret (%d chars) is in the history of %s, event %d (%s)", len(s), wid, ev.GetEventId(), ev.GetEventType())
				}
			}
		}
	}
	if events < 20 {
		t.Errorf("scanned only %d events", events)
	}
	t.Logf("scanned %d history events for %d secrets: none found", events, len(secrets))
}

func TestMailboxIsConnectedOnce(t *testing.T) {
	e := enginetest.Start(t, graphsim.Options{}, workflows.Options{})
	first, out := e.ConnectUser(e.Ada.UPN, workflows.Settings{Features: workflows.Features{Send: true}})
	if out.State != workflows.StateActive {
		t.Fatalf("first: %+v", out)
	}
	second, out := e.ConnectUser(e.Ada.UPN, workflows.Settings{Features: workflows.Features{Send: true}})
	if out.State != workflows.StatePendingConsent || out.Reason != "mailbox_already_connected" || out.ReasonText == "" {
		t.Fatalf("second connection of the same mailbox: %+v", out)
	}
	// What stays is the completed consent's state nonce alone (no code,
	// verifier or token), so that its redirect visited again says how it
	// ended.
	if n, _ := e.Vault.Tokens().Count(context.Background(), second); n != 1 {
		t.Errorf("the refused connection kept %d secrets", n)
	}
	if p, err := e.Vault.Tokens().GetPending(context.Background(), second); err != nil || p.Verifier != "" || p.Completed.IsZero() {
		t.Errorf("the refused connection's consent: %+v %v", p, err)
	}
	_ = first
}

func TestConsentRefusedByMicrosoft(t *testing.T) {
	e := enginetest.Start(t, graphsim.Options{}, workflows.Options{})
	ctx := context.Background()
	if _, err := e.Ctl.AddTenant(ctx, graphsim.TenantSpec{Domain: "locked.example", AdminConsentRequired: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Ctl.AddUser(ctx, graphsim.UserSpec{Tenant: "locked.example", UPN: "bob@locked.example"}); err != nil {
		t.Fatal(err)
	}
	created, err := e.Connect.Create(ctx, connect.Request{OrgID: "o", OwnerID: "bob", LoginHint: "bob@locked.example"})
	if err != nil {
		t.Fatal(err)
	}
	q := e.AuthorizeQuery(created.AuthorizeURL)
	out, err := e.Connect.Callback(ctx, q)
	if err != nil || out.State != workflows.StateAdminConsentRequired || out.Reason != "admin_consent_required" || !strings.Contains(out.ReasonText, "administrator") {
		t.Fatalf("outcome: %+v %v", out, err)
	}
	// A forged or replayed state is refused.
	bad := url.Values{"state": {created.ConnectionID + ".forged"}, "code": {"x"}}
	if _, err := e.Connect.Callback(ctx, bad); !errors.Is(err, connect.ErrInvalidState) {
		t.Errorf("forged state: %v", err)
	}
	if _, err := e.Connect.Callback(ctx, url.Values{"state": {"nonsense"}}); !errors.Is(err, connect.ErrInvalidState) {
		t.Errorf("malformed state: %v", err)
	}
	// An authorize URL older than an hour is refused, state or not.
	again, err := e.Connect.Create(ctx, connect.Request{OrgID: "o", OwnerID: "bob2", LoginHint: "ada@contoso.example"})
	if err != nil {
		t.Fatal(err)
	}
	q = e.AuthorizeQuery(again.AuthorizeURL)
	p, err := e.Vault.Tokens().GetPending(ctx, again.ConnectionID)
	if err != nil {
		t.Fatal(err)
	}
	p.Created = time.Now().Add(-2 * time.Hour)
	if err := e.Vault.Tokens().PutPending(ctx, again.ConnectionID, p); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Connect.Callback(ctx, q); !errors.Is(err, connect.ErrConsentExpired) {
		t.Errorf("stale consent: %v", err)
	}
}

// TestQuietConnectionHistory measures what a quiet connection adds to its
// history per keep-alive cycle, and so per day.
func TestQuietConnectionHistory(t *testing.T) {
	const every = 2 * time.Second
	e := enginetest.Start(t, graphsim.Options{}, workflows.Options{KeepAliveEvery: every})
	ctx := context.Background()
	id, out := e.ConnectUser(e.Ada.UPN, workflows.Settings{Features: workflows.Features{Send: true}})
	if out.State != workflows.StateActive {
		t.Fatal(out)
	}
	length := func() int64 {
		d, err := e.Temporal.DescribeWorkflowExecution(ctx, workflows.ConnectionWorkflowID(id), "")
		if err != nil {
			t.Fatal(err)
		}
		return d.GetWorkflowExecutionInfo().GetHistoryLength()
	}
	first := e.WaitFor(id, 10*time.Second, "a first keep-alive", func(st workflows.Status) bool { return st.LastRefresh.After(st.Since) })
	start := length()
	last := first.LastRefresh
	cycles := 0
	for cycles < 3 {
		st := e.WaitFor(id, 10*time.Second, "the next keep-alive", func(st workflows.Status) bool { return st.LastRefresh.After(last) })
		last = st.LastRefresh
		cycles++
	}
	perCycle := float64(length()-start) / float64(cycles)
	perDay := perCycle * float64(24*time.Hour) / float64(72*time.Hour)
	t.Logf("a quiet connection adds %.1f history events per keep-alive, %.1f a day at the default 72h", perCycle, perDay)
	if perDay > 100 {
		t.Errorf("a quiet connection costs %.1f events a day", perDay)
	}
}

// TestWideningTheWindow backfills 20 days, then 45: only the gap is
// fetched, and Postgres then equals the ground truth of the wider window.
func TestWideningTheWindow(t *testing.T) {
	e := enginetest.Start(t, graphsim.Options{}, workflows.Options{PageSize: 100})
	ctx := context.Background()
	if _, err := e.Ctl.Generate(ctx, e.Ada.UPN, graphsim.GenerateSpec{Count: 1200, Days: 60, Folders: []string{"inbox", "sentitems"}, Seed: 7}); err != nil {
		t.Fatal(err)
	}
	settings := workflows.Settings{BackfillDays: 20}
	id, _ := e.ConnectUser(e.Ada.UPN, settings)
	first := e.WaitFor(id, time.Minute, "the first backfill", func(st workflows.Status) bool { return !st.Backfill.Covered.IsZero() && !st.Backfill.Running })
	compare(t, e, id, synced(t, e, first.Backfill.Covered), false)
	before := e.Sim.Counters()["requests.delta.200"]

	settings = settings.WithDefaults()
	settings.BackfillDays = 45
	h, err := e.Temporal.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{WorkflowID: workflows.ConnectionWorkflowID(id), UpdateName: workflows.UpdateSettings,
		Args: []any{settings}, WaitForStage: client.WorkflowUpdateStageCompleted})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Get(ctx, nil); err != nil {
		t.Fatal(err)
	}
	second := e.WaitFor(id, time.Minute, "the gap backfill", func(st workflows.Status) bool {
		return st.Backfill.Runs == 2 && !st.Backfill.Running && st.Backfill.Covered.Before(first.Backfill.Covered)
	})
	compare(t, e, id, synced(t, e, second.Backfill.Covered), false)
	if after := e.Sim.Counters()["requests.delta.200"]; after != before {
		t.Errorf("widening re-read the delta rounds: %d more delta pages", after-before)
	}
}

// TestExchangeRetriedAfterMeFails: Graph fails /me right after the code is
// redeemed; the retried exchange uses the tokens already redeemed (the code
// is single-use) and the connection becomes active.
func TestExchangeRetriedAfterMeFails(t *testing.T) {
	e := enginetest.Start(t, graphsim.Options{}, workflows.Options{PageSize: 50})
	e.Sim.SetFault(graphsim.Fault{Endpoint: "users", Unavailable: 1})
	go func() {
		time.Sleep(1500 * time.Millisecond)
		e.Sim.ClearFaults()
	}()
	id, out := e.ConnectUser(e.Ada.UPN, workflows.Settings{BackfillDays: 30})
	if out.State != workflows.StateActive || out.Mailbox != e.Ada.UPN {
		t.Fatalf("outcome: %+v", out)
	}
	if n, _ := e.Vault.Tokens().Count(context.Background(), id); n != 2 {
		t.Errorf("Vault holds %d secrets for the connection, want its tokens and the completed consent's state", n)
	}
	if p, err := e.Vault.Tokens().GetPending(context.Background(), id); err != nil || p.Verifier != "" || p.Completed.IsZero() {
		t.Errorf("the consent's verifier outlived it: %+v %v", p, err)
	}
}

// TestCallbackRefusedCodeDropped: a redirect the workflow refuses because
// it no longer waits for consent (the same redirect came twice and the
// first finished meanwhile) answers how the connection stands, and the
// code it brought is not left in Vault.
func TestCallbackRefusedCodeDropped(t *testing.T) {
	e := enginetest.Start(t, graphsim.Options{}, workflows.Options{PageSize: 50})
	ctx := context.Background()
	created, err := e.Connect.Create(ctx, connect.Request{OrgID: "org-1", OwnerID: "owner-ada", Settings: workflows.Settings{BackfillDays: 30}, LoginHint: e.Ada.UPN})
	if err != nil {
		t.Fatal(err)
	}
	id := created.ConnectionID
	q := e.AuthorizeQuery(created.AuthorizeURL)
	pending, err := e.Vault.Tokens().GetPending(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := e.Connect.Callback(ctx, q); err != nil || out.State != workflows.StateActive {
		t.Fatalf("first redirect: %+v %v", out, err)
	}
	// The second redirect found the pending consent before the first's
	// exchange removed it.
	if err := e.Vault.Tokens().PutPending(ctx, id, pending); err != nil {
		t.Fatal(err)
	}
	out, err := e.Connect.Callback(ctx, q)
	if err != nil || out.State != workflows.StateActive || out.Mailbox != e.Ada.UPN {
		t.Fatalf("second redirect: %+v %v", out, err)
	}
	// The tokens and the pending consent put back; no code.
	if n, _ := e.Vault.Tokens().Count(ctx, id); n != 2 {
		t.Errorf("Vault holds %d secrets for the connection, want 2 (tokens, pending consent)", n)
	}
}

// TestFolderDeletedAtMicrosoft: a synced folder deleted for good at
// Microsoft is dropped with its mail by the round that meets it, and the
// other folders keep syncing (a deleted folder once failed every round).
func TestFolderDeletedAtMicrosoft(t *testing.T) {
	e := enginetest.Start(t, graphsim.Options{}, workflows.Options{PageSize: 50})
	ctx := context.Background()
	projects, err := e.Ctl.CreateFolder(ctx, e.Ada.UPN, "inbox", "Projects")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Ctl.InjectMessages(ctx, e.Ada.UPN, graphsim.MessageSpec{Folder: projects, Subject: "in projects"}, graphsim.MessageSpec{Subject: "in the inbox"}); err != nil {
		t.Fatal(err)
	}
	id, _ := e.ConnectUser(e.Ada.UPN, workflows.Settings{BackfillDays: 30})
	first := e.WaitFor(id, time.Minute, "the first backfill", func(st workflows.Status) bool {
		return !st.Backfill.Covered.IsZero() && !st.Backfill.Running && st.Sync.Mode != ""
	})
	if _, ok := first.Backfill.Folders[projects]; !ok {
		t.Fatalf("the child folder was not synced: %+v", first.Backfill.Folders)
	}
	if err := e.Ctl.DeleteFolder(ctx, e.Ada.UPN, projects); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Ctl.InjectMessages(ctx, e.Ada.UPN, graphsim.MessageSpec{Subject: "after the folder went"}); err != nil {
		t.Fatal(err)
	}
	h, err := e.Temporal.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{WorkflowID: workflows.ConnectionWorkflowID(id), UpdateName: workflows.UpdateResync,
		Args: []any{workflows.ResyncInput{}}, WaitForStage: client.WorkflowUpdateStageCompleted})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Get(ctx, nil); err != nil {
		t.Fatal(err)
	}
	st := e.WaitFor(id, time.Minute, "the folder dropped", func(st workflows.Status) bool { return st.Sync.GoneFolders == 1 })
	if st.Sync.LastError != "" || st.State != workflows.StateActive {
		t.Errorf("after the folder went: %s, last error %q", st.State, st.Sync.LastError)
	}
	if _, ok := st.Backfill.Folders[projects]; ok {
		t.Errorf("the deleted folder is still in the progress: %+v", st.Backfill.Folders)
	}
	compare(t, e, id, synced(t, e, first.Backfill.Covered), false)
	if f, err := e.Store.GetFolder(ctx, id, projects); err == nil {
		t.Errorf("the deleted folder is still in the store: %+v", f)
	}
}

// TestCallbackRevisited: the browser coming back with the same redirect
// after the consent is over (a reload, an answer lost on the way) is told
// how it ended, with nothing handed to the workflow again; a forged state
// is still refused.
func TestCallbackRevisited(t *testing.T) {
	e := enginetest.Start(t, graphsim.Options{}, workflows.Options{PageSize: 50})
	ctx := context.Background()
	created, err := e.Connect.Create(ctx, connect.Request{OrgID: "org-1", OwnerID: "owner-ada", Settings: workflows.Settings{BackfillDays: 30}, LoginHint: e.Ada.UPN})
	if err != nil {
		t.Fatal(err)
	}
	q := e.AuthorizeQuery(created.AuthorizeURL)
	if out, err := e.Connect.Callback(ctx, q); err != nil || out.State != workflows.StateActive {
		t.Fatalf("first visit: %+v %v", out, err)
	}
	for i := range 2 {
		out, err := e.Connect.Callback(ctx, q)
		if err != nil || out.State != workflows.StateActive || out.Mailbox != e.Ada.UPN || out.ConnectionID != created.ConnectionID {
			t.Fatalf("visit %d after the consent: %+v %v", i+2, out, err)
		}
	}
	if n, _ := e.Vault.Tokens().Count(ctx, created.ConnectionID); n != 2 {
		t.Errorf("Vault holds %d secrets, want the tokens and the completed consent's state (no code)", n)
	}
	forged := url.Values{}
	for k, v := range q {
		forged[k] = v
	}
	id, _, _ := strings.Cut(q.Get("state"), ".")
	forged.Set("state", id+".forged")
	if _, err := e.Connect.Callback(ctx, forged); !errors.Is(err, connect.ErrInvalidState) {
		t.Errorf("a forged state after the consent: %v", err)
	}
}
