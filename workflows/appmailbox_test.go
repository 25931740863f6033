package workflows

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
)

func appMailboxInput() MailboxInput {
	in := mailboxInput()
	in.Mode = ModeApplication
	in.Options.SubscriptionLifetime = 48 * time.Hour
	return in
}

// TestApplicationMailboxPushed follows a mailbox of an application
// connection: it subscribes after its backfill (with its connection's
// token, the subscription being the mailbox's), coalesces notifications
// into rounds, renews a day before expiry, recreates a subscription Graph
// removed, renews on reauthorizationRequired, polls with Graph's reason
// when a renewal is refused (an application access policy now keeps the
// app out), and deletes its subscription when detached.
func TestApplicationMailboxPushed(t *testing.T) {
	env, f := newEnv(t)
	f.registerMailboxes(env)
	env.OnSignalExternalWorkflow(mock.Anything, ConnectionWorkflowID("c1"), "", mock.Anything, mock.Anything).Return(nil)
	var sub string
	env.RegisterDelayedCallback(func() {
		st := query(t, env)
		if st.State != StateActive || st.Sync.Mode != SyncPush || st.Sync.SubscriptionID == "" || st.Sync.PollReason != "" {
			t.Fatalf("after an hour: %s %+v", st.State, st.Sync)
		}
		sub = st.Sync.SubscriptionID
		f.mu.Lock()
		in := f.subIns[0]
		f.mu.Unlock()
		if in.ConnectionID != "c1" || in.MailboxID != "mbx-support" || in.UserID != "support@contoso.example" || in.LifecycleURL == "" {
			t.Errorf("subscribed with %+v", in)
		}
		rounds := f.syncs.Load()
		for range 20 {
			env.SignalWorkflow(SignalChanges, nil)
		}
		env.RegisterDelayedCallback(func() {
			if n := f.syncs.Load() - rounds; n < 1 || n > 2 {
				t.Errorf("20 notifications ran %d rounds", n)
			}
		}, time.Second)
	}, time.Hour)
	env.RegisterDelayedCallback(func() {
		f.mu.Lock()
		renewals := slices.Clone(f.renewIns)
		f.mu.Unlock()
		if len(renewals) != 1 || renewals[0].ConnectionID != "c1" || renewals[0].MailboxID != "mbx-support" || renewals[0].SubscriptionID != sub {
			t.Errorf("renewals after 26 h: %+v", renewals)
		}
		before := f.subscribes.Load()
		env.SignalWorkflow(SignalLifecycle, LifecycleSignal{Event: LifecycleSubscriptionRemoved, SubscriptionID: sub})
		env.RegisterDelayedCallback(func() {
			st := query(t, env)
			f.mu.Lock()
			last := f.subIns[len(f.subIns)-1]
			f.mu.Unlock()
			if f.subscribes.Load() != before+1 || st.Sync.SubscriptionID == sub || !last.Replace || last.MailboxID != "mbx-support" {
				t.Errorf("removed subscription: %d created, now %q, last %+v", f.subscribes.Load()-before, st.Sync.SubscriptionID, last)
			}
			renews := f.renews.Load()
			env.SignalWorkflow(SignalLifecycle, LifecycleSignal{Event: LifecycleReauthorizationRequired, SubscriptionID: st.Sync.SubscriptionID})
			env.RegisterDelayedCallback(func() {
				if f.renews.Load() != renews+1 {
					t.Errorf("reauthorizationRequired renewed %d times", f.renews.Load()-renews)
				}
			}, time.Second)
		}, time.Second)
	}, 26*time.Hour)
	refusal := "ExtensionError: Operation: Create; Exception: [Status Code: Forbidden; Reason: Access to OData is disabled.]"
	env.RegisterDelayedCallback(func() {
		f.mu.Lock()
		f.renewRefused = refusal
		f.mu.Unlock()
		env.SignalWorkflow(SignalLifecycle, LifecycleSignal{Event: LifecycleReauthorizationRequired, SubscriptionID: query(t, env).Sync.SubscriptionID})
	}, 30*time.Hour)
	var pollFrom int32
	env.RegisterDelayedCallback(func() {
		st := query(t, env)
		if st.State != StateActive || st.Sync.Mode != SyncPolling || st.Sync.PollReason != refusal || st.Sync.SubscriptionID != "" {
			t.Errorf("renewal refused: %s %+v", st.State, st.Sync)
		}
		pollFrom = f.syncs.Load()
	}, 30*time.Hour+time.Minute)
	endWith(env, 31*time.Hour+time.Minute, func() {
		if n := f.syncs.Load() - pollFrom; n < 10 {
			t.Errorf("polled %d times in an hour", n)
		}
	})
	env.ExecuteWorkflow(Mailbox, appMailboxInput())
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	want := []string{ActivityDeleteSubscriptions, ActivityApplyRetention + ":delete"}
	if !slices.Equal(f.saga, want) || len(f.deleteRefs) != 1 || f.deleteRefs[0] != (ConnectionRef{ConnectionID: "c1", MailboxID: "mbx-support"}) {
		t.Errorf("detach saga %v (%+v), want %v for the mailbox only", f.saga, f.deleteRefs, want)
	}
}

// TestApplicationMailboxRefusedPolls: a mailbox Graph will not let the
// app subscribe to (an application access policy keeps it out, or the app
// lacks Mail.Read) polls, saying Graph's reason, and never renews.
func TestApplicationMailboxRefusedPolls(t *testing.T) {
	env, f := newEnv(t)
	f.registerMailboxes(env)
	env.OnSignalExternalWorkflow(mock.Anything, ConnectionWorkflowID("c1"), "", mock.Anything, mock.Anything).Return(nil)
	refusal := "ExtensionError: Operation: Create; Exception: [Status Code: Forbidden; Reason: Access to OData is disabled.]"
	f.subRefused = refusal
	endWith(env, 3*time.Hour, func() {
		st := query(t, env)
		if st.State != StateActive || st.Sync.Mode != SyncPolling || st.Sync.PollReason != refusal {
			t.Errorf("refused: %s %+v", st.State, st.Sync)
		}
		if n := f.syncs.Load(); n < 25 {
			t.Errorf("%d rounds in 3 hours of 5-minute polls", n)
		}
	})
	env.ExecuteWorkflow(Mailbox, appMailboxInput())
	if n := f.subscribes.Load(); n != 1 {
		t.Errorf("%d subscriptions asked, want 1", n)
	}
	if n := f.renews.Load(); n != 0 {
		t.Errorf("%d renewals of no subscription", n)
	}
}

// TestApplicationMailboxUpgradedToPush: a run continued from one that
// polled its application mailbox only because outlookd did not subscribe
// to such mailboxes then subscribes to it.
func TestApplicationMailboxUpgradedToPush(t *testing.T) {
	in := appMailboxInput()
	in.Options.ContinueAsNewAfter = 1000
	in.Options.NotificationURL = "" // polled: stands for the runs before push
	env, f := newEnv(t)
	f.registerMailboxes(env)
	env.OnSignalExternalWorkflow(mock.Anything, ConnectionWorkflowID("c1"), "", mock.Anything, mock.Anything).Return(nil)
	env.RegisterDelayedCallback(func() { env.SetCurrentHistoryLength(in.Options.ContinueAsNewAfter + 1) }, 2*time.Hour)
	env.ExecuteWorkflow(Mailbox, in)
	next := carriedMailboxInput(t, env.GetWorkflowError())
	if next.State == nil || next.State.Sync.Mode != SyncPolling || f.subscribes.Load() != 0 {
		t.Fatalf("first run carried %+v, subscribed %d times", next.State, f.subscribes.Load())
	}
	next.State.Sync.PollReason = legacyApplicationPollReason
	next.Options = appMailboxInput().Options

	env, f = newEnv(t)
	f.registerMailboxes(env)
	env.OnSignalExternalWorkflow(mock.Anything, ConnectionWorkflowID("c1"), "", mock.Anything, mock.Anything).Return(nil)
	endWith(env, time.Hour, func() {
		st := query(t, env)
		if st.Sync.Mode != SyncPush || st.Sync.SubscriptionID == "" || strings.Contains(st.Sync.PollReason, "does not yet") {
			t.Errorf("continued run: %+v", st.Sync)
		}
	})
	env.ExecuteWorkflow(Mailbox, next)
	if n := f.subscribes.Load(); n != 1 {
		t.Errorf("the continued run subscribed %d times", n)
	}
}

// TestApplicationMailboxBackfilledAhead: a mailbox whose connection
// backfilled it ahead of its workflow (app-prefill) begins live: no
// backfill activity, its state covering the window handed over (run 1, its
// folders' progress), subscribed at once, with a catch-up round for what
// came in between; a wider window asked later is backfilled as run 2.
func TestApplicationMailboxBackfilledAhead(t *testing.T) {
	env, f := newEnv(t)
	f.registerMailboxes(env)
	env.OnSignalExternalWorkflow(mock.Anything, ConnectionWorkflowID("c1"), "", mock.Anything, mock.Anything).Return(nil)
	in := appMailboxInput()
	in.Settings.BackfillDays = 30
	window := env.Now().Add(-30 * 24 * time.Hour).Truncate(time.Second)
	in.Backfilled = &Prefilled{WindowStart: window, Roots: DefaultFolders, Started: env.Now().Add(-time.Minute), Completed: env.Now().Add(-time.Second),
		Folders: []FolderProgress{{ID: "inbox", Name: "Inbox", Fetched: 40, Done: true}, {ID: "sent", Name: "Sent Items", Fetched: 10, Done: true}},
		Missing: []string{"archive"}}
	env.RegisterDelayedCallback(func() {
		st := query(t, env)
		f.mu.Lock()
		backfills := len(f.mailboxBackfills) + len(f.backfills)
		f.mu.Unlock()
		b := st.Backfill
		if backfills != 0 || b.Runs != 1 || b.Running || !b.Covered.Equal(window) || len(b.Folders) != 2 || b.Folders["inbox"].Fetched != 40 ||
			!slices.Equal(b.Missing, []string{"archive"}) {
			t.Errorf("a mailbox backfilled ahead: %d backfill activities, state %+v", backfills, b)
		}
		if st.Sync.Mode != SyncPush || f.subscribes.Load() != 1 || f.syncs.Load() < 1 {
			t.Errorf("not live at once: %+v, %d subscriptions, %d rounds", st.Sync, f.subscribes.Load(), f.syncs.Load())
		}
		wider := in.Settings.WithDefaults()
		wider.BackfillDays = 90
		update(t, env, UpdateSettings, wider, func(_ Status, err error) {
			if err != nil {
				t.Errorf("wider window: %v", err)
			}
		})
	}, time.Minute)
	endWith(env, time.Hour, func() {
		st := query(t, env)
		f.mu.Lock()
		backfills := len(f.mailboxBackfills)
		f.mu.Unlock()
		if backfills != 1 || st.Backfill.Runs != 2 || !st.Backfill.Covered.Before(window) {
			t.Errorf("a wider window: %d backfill activities, %+v", backfills, st.Backfill)
		}
	})
	env.ExecuteWorkflow(Mailbox, in)
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
}
