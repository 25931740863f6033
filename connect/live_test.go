package connect_test

import (
	"context"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/outlookd/outlookd/graphsim"
	"github.com/outlookd/outlookd/internal/enginetest"
	"github.com/outlookd/outlookd/store"
	"github.com/outlookd/outlookd/workflows"
)

// converged waits until Postgres holds exactly Ada's ground truth.
func converged(t *testing.T, e *enginetest.Engine, id string, since time.Time, what string) {
	t.Helper()
	convergedFor(t, e, e.Ada.UPN, id, since, what)
}

// convergedFor waits until Postgres holds exactly a user's ground truth.
func convergedFor(t *testing.T, e *enginetest.Engine, user, id string, since time.Time, what string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		want := syncedFor(t, e, user, since)
		got, err := e.Store.Messages(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		ok := len(got) == len(want)
		for _, m := range got {
			w, in := want[m.ID]
			if !in || w.FolderID != m.FolderID || w.IsRead != m.IsRead || w.ChangeKey != m.ChangeKey {
				ok = false
				break
			}
		}
		if ok {
			compare(t, e, id, want, false)
			return
		}
		if time.Now().After(deadline) {
			t.Logf("%s: not converged", what)
			compare(t, e, id, want, false)
			t.FailNow()
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestLiveSync: after backfill, mail arrives, moves, is archived, read and
// deleted while push notifications drive delta rounds; then a delta token
// expires, Graph removes the subscription and sends missed; Postgres ends
// equal to the ground truth each time. It also measures the latency from a
// message injected to its row in Postgres.
func TestLiveSync(t *testing.T) {
	e := enginetest.StartLive(t, graphsim.Options{Subscriptions: graphsim.SubscriptionOptions{BatchWindow: 5 * time.Millisecond}},
		workflows.Options{PageSize: 50, ReconcileEvery: time.Hour})
	ctx := context.Background()
	if _, err := e.Ctl.Generate(ctx, e.Ada.UPN, graphsim.GenerateSpec{Count: 300, Days: 20, Folders: []string{"inbox", "sentitems"}, Seed: 3}); err != nil {
		t.Fatal(err)
	}
	id, _ := e.ConnectUser(e.Ada.UPN, workflows.Settings{BackfillDays: 30})
	st := e.WaitFor(id, time.Minute, "push mode", func(st workflows.Status) bool { return st.Sync.Mode == workflows.SyncPush && st.Sync.Rounds > 0 })
	since := st.Backfill.Covered

	// Latency: one message at a time, injection to row.
	var lat []time.Duration
	for range 15 {
		start := time.Now()
		ids, err := e.Ctl.InjectMessages(ctx, e.Ada.UPN, graphsim.MessageSpec{Subject: "live", From: graphsim.Recipient{Name: "X", Address: "x@fabrikam.example"}})
		if err != nil {
			t.Fatal(err)
		}
		for {
			msgs, _ := e.Store.Messages(ctx, id)
			if slices.ContainsFunc(msgs, func(m store.Message) bool { return m.ID == ids[0] }) {
				break
			}
			if time.Since(start) > 20*time.Second {
				t.Fatal("a new message never reached Postgres")
			}
			time.Sleep(5 * time.Millisecond)
		}
		lat = append(lat, time.Since(start))
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	t.Logf("injection to row: p50 %s, p99 %s (%d messages)", lat[len(lat)/2], lat[len(lat)-1], len(lat))

	truth, _ := e.Ctl.GroundTruth(ctx, e.Ada.UPN)
	var inbox []string
	for _, m := range truth.Messages {
		if m.FolderID == folderID(truth, "inbox") && !m.Received.Before(since) {
			inbox = append(inbox, m.ImmutableID)
		}
	}
	read := true
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(e.Ctl.MoveMessage(ctx, e.Ada.UPN, inbox[0], "archive"))
	must(e.Ctl.MoveMessage(ctx, e.Ada.UPN, inbox[1], "sentitems"))
	must(e.Ctl.DeleteMessage(ctx, e.Ada.UPN, inbox[2]))
	must(e.Ctl.UpdateMessage(ctx, e.Ada.UPN, inbox[3], graphsim.MessageUpdate{IsRead: &read}))
	_, err := e.Ctl.InjectMessages(ctx, e.Ada.UPN, make([]graphsim.MessageSpec, 5)...)
	must(err)
	converged(t, e, id, since, "moves, archive, delete, read, new")

	// An expired delta token: the next round re-anchors without loss.
	must(e.Ctl.ExpireDeltaTokens(ctx, e.Ada.UPN))
	must(e.Ctl.DeleteMessage(ctx, e.Ada.UPN, inbox[4]))
	_, err = e.Ctl.InjectMessages(ctx, e.Ada.UPN, make([]graphsim.MessageSpec, 3)...)
	must(err)
	converged(t, e, id, since, "after the delta token expired")
	// The round's result reaches the status just after its rows commit.
	e.WaitFor(id, 10*time.Second, "the re-anchor counted", func(st workflows.Status) bool { return st.Sync.Reanchored > 0 })

	// Graph removes the subscription: a new one is made, and mail flows.
	old := e.Status(id).Sync.SubscriptionID
	must(e.Ctl.RemoveSubscription(ctx, old))
	e.WaitFor(id, 20*time.Second, "a new subscription", func(st workflows.Status) bool { return st.Sync.SubscriptionID != old && st.Sync.SubscriptionID != "" })
	_, err = e.Ctl.InjectMessages(ctx, e.Ada.UPN, graphsim.MessageSpec{Subject: "after removal"})
	must(err)
	converged(t, e, id, since, "after subscriptionRemoved")
	subs, _ := e.Ctl.Subscriptions(ctx)
	live := 0
	for _, s := range subs {
		if s.Expiration.After(time.Now()) {
			live++
		}
	}
	if live != 1 {
		t.Errorf("%d live subscriptions, want 1", live)
	}

	// missed: Graph dropped notifications; a round catches up.
	e.Sim.SetNotificationFault(graphsim.NotificationFault{Drop: 1})
	_, err = e.Ctl.InjectMessages(ctx, e.Ada.UPN, make([]graphsim.MessageSpec, 2)...)
	must(err)
	e.Sim.SetNotificationFault(graphsim.NotificationFault{})
	converged(t, e, id, since, "after missed")

	// Disconnect: no subscription, no secret and no mail left.
	disconnectAndWait(t, e, id)
	subs, _ = e.Ctl.Subscriptions(ctx)
	if len(subs) != 0 {
		t.Errorf("subscriptions left at Graph: %d", len(subs))
	}
	if n, _ := e.Vault.Tokens().Count(ctx, id); n != 0 {
		t.Errorf("secrets left in Vault: %d", n)
	}
	if n, _ := e.Store.CountMessages(ctx, id); n != 0 {
		t.Errorf("messages left: %d", n)
	}
	events, _ := e.Store.Events(ctx, id)
	if len(events) == 0 || events[len(events)-1].Type != "connection.disconnected" {
		t.Errorf("events: %+v", events)
	}
	scanHistories(t, e, id)
	if os.Getenv("OUTLOOKD_RECORD_HISTORY") == "1" {
		recordHistory(t, e, workflows.ConnectionWorkflowID(id), "../workflows/testdata/connection_live_once.json")
	}
}

// disconnectAndWait disconnects a connection and waits for its workflow
// to end as disconnected.
func disconnectAndWait(t *testing.T, e *enginetest.Engine, id string) {
	t.Helper()
	ctx := context.Background()
	h, err := e.Temporal.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{WorkflowID: workflows.ConnectionWorkflowID(id), UpdateName: workflows.UpdateDisconnect, WaitForStage: client.WorkflowUpdateStageCompleted})
	if err == nil {
		err = h.Get(ctx, nil)
	}
	if err != nil {
		t.Fatal(err)
	}
	var res workflows.ConnectionResult
	if err := e.Temporal.GetWorkflow(ctx, workflows.ConnectionWorkflowID(id), "").Get(ctx, &res); err != nil {
		t.Fatal(err)
	}
	if res.State != workflows.StateDisconnected {
		t.Errorf("result: %+v", res)
	}
}

func folderID(t *graphsim.Truth, wellKnown string) string {
	for _, f := range t.Folders {
		if f.WellKnown == wellKnown {
			return f.ID
		}
	}
	return ""
}

// TestRevokedThenReauthorized: the user's refresh tokens are revoked while
// mail keeps arriving; the connection parks in reauth_required with the
// reason and tells the app once; after a new consent by the same account it
// resumes and nothing that arrived meanwhile is missing.
func TestRevokedThenReauthorized(t *testing.T) {
	e := enginetest.StartLive(t, graphsim.Options{Subscriptions: graphsim.SubscriptionOptions{BatchWindow: 5 * time.Millisecond}},
		workflows.Options{PageSize: 50, ReconcileEvery: time.Hour})
	ctx := context.Background()
	if _, err := e.Ctl.Generate(ctx, e.Ada.UPN, graphsim.GenerateSpec{Count: 100, Days: 10, Folders: []string{"inbox"}, Seed: 9}); err != nil {
		t.Fatal(err)
	}
	settings := workflows.Settings{BackfillDays: 30}
	id, _ := e.ConnectUser(e.Ada.UPN, settings)
	st := e.WaitFor(id, time.Minute, "push mode", func(st workflows.Status) bool { return st.Sync.Mode == workflows.SyncPush && st.Sync.Rounds > 0 })
	since := st.Backfill.Covered

	if err := e.Ctl.Revoke(ctx, e.Ada.UPN, graphsim.RevokePasswordChanged); err != nil {
		t.Fatal(err)
	}
	// The access token expires at Graph; the refresh that follows is refused.
	e.Sim.AdvanceClock(2 * time.Hour)
	if _, err := e.Ctl.InjectMessages(ctx, e.Ada.UPN, make([]graphsim.MessageSpec, 4)...); err != nil {
		t.Fatal(err)
	}
	h, err := e.Temporal.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{WorkflowID: workflows.ConnectionWorkflowID(id), UpdateName: workflows.UpdateResync, Args: []any{workflows.ResyncInput{}}, WaitForStage: client.WorkflowUpdateStageCompleted})
	if err != nil {
		t.Fatal(err)
	}
	_ = h.Get(ctx, nil)
	st = e.WaitFor(id, 30*time.Second, "reauth_required", func(st workflows.Status) bool { return st.State == workflows.StateReauthRequired })
	if st.Reason != "password_changed" || st.ReasonText == "" {
		t.Errorf("reason: %q %q", st.Reason, st.ReasonText)
	}
	// The event is recorded right after the state changes.
	n := 0
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		events, _ := e.Store.Events(ctx, id)
		if n = countEvents(events, "connection.reauth_required"); n > 0 {
			break
		}
	}
	if n != 1 {
		t.Errorf("reauth_required events: %d", n)
	}
	// Mail keeps arriving while the connection waits.
	if _, err := e.Ctl.InjectMessages(ctx, e.Ada.UPN, make([]graphsim.MessageSpec, 3)...); err != nil {
		t.Fatal(err)
	}
	authURL, err := e.Connect.Reauthorize(ctx, id, workflows.ModeDelegated, settings, e.Ada.UPN)
	if err != nil {
		t.Fatal(err)
	}
	out, err := e.Connect.Callback(ctx, e.AuthorizeQuery(authURL))
	if err != nil || out.State != workflows.StateActive {
		t.Fatalf("re-consent: %+v %v", out, err)
	}
	converged(t, e, id, since, "after re-authorization")
	if st := e.Status(id); st.Backfill.Runs != 1 {
		t.Errorf("re-authorization re-ran the backfill: %d runs", st.Backfill.Runs)
	}
}

func countEvents(events []store.Event, typ string) int {
	n := 0
	for _, e := range events {
		if e.Type == typ {
			n++
		}
	}
	return n
}

// TestPollingFallbackAndKeptArchive: Graph refuses to subscribe to the
// mailbox (its subscription quota is used up by other apps), so the
// connection polls and says so, in its status and its SyncMode search
// attribute; mail keeps flowing by polling. Disconnecting with the keep
// policy leaves the mail readable, detached from the mailbox, with nothing
// left in Vault, and the mailbox can be connected again.
func TestPollingFallbackAndKeptArchive(t *testing.T) {
	e := enginetest.StartLive(t, graphsim.Options{}, workflows.Options{PageSize: 50, PollEvery: 300 * time.Millisecond})
	ctx := context.Background()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	bob, err := e.Ctl.AddUser(ctx, graphsim.UserSpec{Tenant: e.Tenant.Tenant.ID, UPN: "bob@" + e.Tenant.Tenant.Domain, SubscriptionsFull: true})
	must(err)
	_, err = e.Ctl.Generate(ctx, bob.UPN, graphsim.GenerateSpec{Count: 60, Days: 10, Folders: []string{"inbox"}, Seed: 4})
	must(err)
	settings := workflows.Settings{BackfillDays: 30, Retention: workflows.RetentionKeep}
	id, _ := e.ConnectUser(bob.UPN, settings)
	st := e.WaitFor(id, time.Minute, "polling", func(st workflows.Status) bool {
		return st.Sync.Mode == workflows.SyncPolling && st.Sync.Rounds > 0
	})
	if !strings.Contains(st.Sync.PollReason, "Maximum number of subscriptions") {
		t.Errorf("poll reason: %q", st.Sync.PollReason)
	}
	desc, err := e.Temporal.DescribeWorkflowExecution(ctx, workflows.ConnectionWorkflowID(id), "")
	must(err)
	var mode string
	if p := desc.GetWorkflowExecutionInfo().GetSearchAttributes().GetIndexedFields()["SyncMode"]; p != nil {
		must(converter.GetDefaultDataConverter().FromPayload(p, &mode))
	}
	if mode != workflows.SyncPolling {
		t.Errorf("SyncMode search attribute: %q", mode)
	}
	since := st.Backfill.Covered

	truth, _ := e.Ctl.GroundTruth(ctx, bob.UPN)
	var inbox []string
	for _, m := range truth.Messages {
		if !m.Received.Before(since) {
			inbox = append(inbox, m.ImmutableID)
		}
	}
	read := true
	must(e.Ctl.MoveMessage(ctx, bob.UPN, inbox[0], "archive"))
	must(e.Ctl.DeleteMessage(ctx, bob.UPN, inbox[1]))
	must(e.Ctl.UpdateMessage(ctx, bob.UPN, inbox[2], graphsim.MessageUpdate{IsRead: &read}))
	_, err = e.Ctl.InjectMessages(ctx, bob.UPN, make([]graphsim.MessageSpec, 4)...)
	must(err)
	convergedFor(t, e, bob.UPN, id, since, "polling")
	if subs, _ := e.Ctl.Subscriptions(ctx); len(subs) != 0 {
		t.Errorf("a refused mailbox has %d subscriptions", len(subs))
	}

	// An operator re-anchors every folder: nothing is lost or duplicated.
	before := e.Status(id).Sync.Reanchored
	h, err := e.Temporal.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{WorkflowID: workflows.ConnectionWorkflowID(id), UpdateName: workflows.UpdateResync,
		Args: []any{workflows.ResyncInput{Folders: []string{"*"}}}, WaitForStage: client.WorkflowUpdateStageCompleted})
	must(err)
	must(h.Get(ctx, nil))
	e.WaitFor(id, 20*time.Second, "every folder re-anchored", func(st workflows.Status) bool {
		return st.Sync.Reanchored >= before+3 && len(st.Pending.Reanchor) == 0
	})
	_, err = e.Ctl.InjectMessages(ctx, bob.UPN, graphsim.MessageSpec{Subject: "after the re-anchor"})
	must(err)
	convergedFor(t, e, bob.UPN, id, since, "after a full re-anchor")

	kept, err := e.Store.CountMessages(ctx, id)
	must(err)
	disconnectAndWait(t, e, id)
	if n, _ := e.Store.CountMessages(ctx, id); n != kept || n == 0 {
		t.Errorf("kept messages: %d, want %d", n, kept)
	}
	row, err := e.Store.GetConnection(ctx, id)
	must(err)
	if row.State != workflows.StateDisconnected || row.DetachedAt == nil {
		t.Errorf("registry after keep: state %s, detached %v", row.State, row.DetachedAt)
	}
	if n, _ := e.Vault.Tokens().Count(ctx, id); n != 0 {
		t.Errorf("secrets left in Vault: %d", n)
	}
	// The archive stays; the mailbox is free to connect again.
	again, _ := e.ConnectUser(bob.UPN, workflows.Settings{BackfillDays: 30})
	e.WaitFor(again, time.Minute, "the second connection polling", func(st workflows.Status) bool { return st.Sync.Rounds > 0 })
	if n, _ := e.Store.CountMessages(ctx, id); n != kept {
		t.Errorf("the archive changed when the mailbox was connected again: %d, want %d", n, kept)
	}
	scanHistories(t, e, id)
}

// TestMoveIsOneUpdate: Graph reports a move between two synced folders as
// a removal in one folder's delta and an arrival in the other's. Whichever
// folder a round reads first (they are read in name order: Archive, Inbox,
// Sent Items), the app is told of one message.updated with the new folder,
// never message.deleted then message.created; a message moved to a folder
// that is not synced, or deleted, is message.deleted.
func TestMoveIsOneUpdate(t *testing.T) {
	e := enginetest.StartLive(t, graphsim.Options{Subscriptions: graphsim.SubscriptionOptions{BatchWindow: 5 * time.Millisecond}},
		workflows.Options{PageSize: 50, ReconcileEvery: time.Hour})
	ctx := context.Background()
	if _, err := e.Ctl.Generate(ctx, e.Ada.UPN, graphsim.GenerateSpec{Count: 40, Days: 5, Folders: []string{"inbox", "archive", "sentitems"}, Seed: 5}); err != nil {
		t.Fatal(err)
	}
	id, _ := e.ConnectUser(e.Ada.UPN, workflows.Settings{BackfillDays: 30})
	st := e.WaitFor(id, time.Minute, "push mode", func(st workflows.Status) bool { return st.Sync.Mode == workflows.SyncPush && st.Sync.Rounds > 0 })
	since := st.Backfill.Covered
	truth, _ := e.Ctl.GroundTruth(ctx, e.Ada.UPN)
	in := map[string][]string{}
	for _, m := range truth.Messages {
		for _, wk := range []string{"inbox", "archive", "sentitems"} {
			if m.FolderID == folderID(truth, wk) && !m.Received.Before(since) {
				in[wk] = append(in[wk], m.ImmutableID)
			}
		}
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	earlier, err := e.Store.Events(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	moves := []struct{ id, to string }{
		{in["inbox"][0], "sentitems"}, // the source is read first
		{in["inbox"][1], "archive"},   // the destination is read first
		{in["sentitems"][0], "inbox"},
		{in["archive"][0], "sentitems"},
	}
	for _, m := range moves {
		must(e.Ctl.MoveMessage(ctx, e.Ada.UPN, m.id, m.to))
	}
	must(e.Ctl.MoveMessage(ctx, e.Ada.UPN, in["inbox"][2], "deleteditems")) // not synced
	must(e.Ctl.DeleteMessage(ctx, e.Ada.UPN, in["archive"][1]))
	converged(t, e, id, since, "moves")

	events, err := e.Store.Events(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	after := map[string][]string{} // each message's events since the moves
	for _, ev := range events[len(earlier):] {
		mid, _ := ev.Data["message_id"].(string)
		folder, _ := ev.Data["folder_id"].(string)
		after[mid] = append(after[mid], ev.Type+" "+folder)
	}
	for _, m := range moves {
		want := []string{"message.updated " + folderID(truth, m.to)}
		if !slices.Equal(after[m.id], want) {
			t.Errorf("events of the move to %s: %v, want %v", m.to, after[m.id], want)
		}
	}
	for _, gone := range []string{in["inbox"][2], in["archive"][1]} {
		if len(after[gone]) != 1 || !strings.HasPrefix(after[gone][0], "message.deleted ") {
			t.Errorf("events of a message gone from the synced folders: %v", after[gone])
		}
	}
}
