package connect_test

import (
	"context"
	"testing"
	"time"

	"github.com/outlookd/outlookd/graphsim"
	"github.com/outlookd/outlookd/internal/enginetest"
	"github.com/outlookd/outlookd/workflows"
)

// TestApplicationMailboxesPushed runs an application connection with a
// webhook receiver against the real stack and graphsim: each mailbox
// subscribes with the app-only token (its subscription, and its
// clientState, its own), a message arriving reaches the store through its
// notification (the mailboxes would poll only every hour), a subscription
// Graph removes is recreated by its mailbox, and the disconnect deletes
// every subscription at Graph.
func TestApplicationMailboxesPushed(t *testing.T) {
	ctx := context.Background()
	e, org := enginetest.StartOrgLive(t, graphsim.Options{}, workflows.Options{PollEvery: time.Hour})
	id := createDaemon(t, e, org, workflows.Selection{Include: []string{e.Ada.UPN, org.Shared.UPN}, Shared: true})
	var ada, shared string
	defer func() {
		if t.Failed() {
			users, _ := e.Store.ListDirectoryUsers(ctx, id, "", "", 1000)
			for _, u := range users {
				t.Logf("directory: %s %s %s %s", u.Address, u.Status, u.Reason, u.MailboxID)
			}
		}
	}()
	waitUntil(t, 90*time.Second, "both mailboxes discovered", func() bool {
		ada, shared = mailboxOf(t, e, id, e.Ada.UPN, ""), mailboxOf(t, e, id, org.Shared.UPN, "")
		return ada != "" && shared != ""
	})
	// status reads a mailbox's workflow, which may not have started yet.
	status := func(mbx string) (workflows.Status, bool) {
		var st workflows.Status
		v, err := e.Temporal.QueryWorkflow(ctx, workflows.MailboxWorkflowID(mbx), "", workflows.QueryStatus)
		return st, err == nil && v.Get(&st) == nil
	}
	subs := map[string]string{}
	for _, mbx := range []string{ada, shared} {
		var st workflows.Status
		waitUntil(t, 60*time.Second, "a sync mode", func() bool {
			var ok bool
			st, ok = status(mbx)
			return ok && st.Sync.Mode != ""
		})
		if st.Sync.Mode != workflows.SyncPush || st.Sync.SubscriptionID == "" {
			t.Fatalf("%s: sync %s (%q)", mbx, st.Sync.Mode, st.Sync.PollReason)
		}
		subs[mbx] = st.Sync.SubscriptionID
	}
	rows, err := e.Store.ListSubscriptions(ctx, id, "")
	if err != nil || len(rows) != 2 {
		t.Fatalf("subscription rows: %+v %v", rows, err)
	}
	for _, r := range rows {
		if r.ConnectionID != id || subs[r.MailboxID] != r.ID {
			t.Errorf("row %s: connection %s, mailbox %s", r.ID, r.ConnectionID, r.MailboxID)
		}
	}
	if string(rows[0].ClientStateHash) == string(rows[1].ClientStateHash) {
		t.Error("two mailboxes share a clientState")
	}
	if mine, _ := e.Store.ListSubscriptions(ctx, id, ada); len(mine) != 1 || mine[0].ID != subs[ada] {
		t.Errorf("ada's subscriptions: %+v", mine)
	}

	// A message arriving reaches the store through its notification: the
	// mailbox would not poll before an hour.
	count := func(mbx string) int64 {
		n, err := e.Store.CountMessagesOf(ctx, []string{mbx})
		if err != nil {
			t.Fatal(err)
		}
		return n[mbx]
	}
	before := count(ada)
	rounds := e.WaitForMailbox(ada, 10*time.Second, "a status", func(workflows.Status) bool { return true }).Sync.Rounds
	start := time.Now()
	if _, err := e.Ctl.InjectMessages(ctx, e.Ada.UPN, graphsim.MessageSpec{Subject: "pushed"}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 30*time.Second, "the pushed message", func() bool { return count(ada) == before+1 })
	t.Logf("a message reached the store %s after it arrived", time.Since(start).Round(time.Millisecond))
	if st := e.WaitForMailbox(ada, 10*time.Second, "a round", func(st workflows.Status) bool { return st.Sync.Rounds > rounds }); st.Sync.Mode != workflows.SyncPush {
		t.Errorf("after the notification: %s", st.Sync.Mode)
	}
	sharedBefore := count(shared)

	// Graph removes the shared mailbox's subscription: its mailbox makes
	// another.
	if err := e.Ctl.RemoveSubscription(ctx, subs[shared]); err != nil {
		t.Fatal(err)
	}
	st := e.WaitForMailbox(shared, 30*time.Second, "subscribed again", func(st workflows.Status) bool {
		return st.Sync.SubscriptionID != "" && st.Sync.SubscriptionID != subs[shared]
	})
	if st.Sync.Mode != workflows.SyncPush {
		t.Errorf("after subscriptionRemoved: %s", st.Sync.Mode)
	}
	if _, err := e.Ctl.InjectMessages(ctx, org.Shared.UPN, graphsim.MessageSpec{Subject: "after the removal"}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 30*time.Second, "the shared mailbox's message", func() bool { return count(shared) == sharedBefore+1 })

	row, err := e.Store.GetConnection(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Connect.Disconnect(ctx, row); err != nil {
		t.Fatal(err)
	}
	e.WaitFor(id, 60*time.Second, "disconnected", func(st workflows.Status) bool { return st.State == workflows.StateDisconnected })
	if rows, _ := e.Store.ListSubscriptions(ctx, id, ""); len(rows) != 0 {
		t.Errorf("subscription rows after the disconnect: %+v", rows)
	}
	live, err := e.Ctl.Subscriptions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range live {
		if s.AppID == org.Daemon.ClientID {
			t.Errorf("subscription %s on %s left at Graph", s.ID, s.UserID)
		}
	}
}
