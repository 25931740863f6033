package workflows

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"
)

// registerMailboxes adds the mailbox protocol's activities to the fakes:
// every address is reachable but those in refuse.
func (f *fakes) registerMailboxes(env *testsuite.TestWorkflowEnvironment, refuse ...string) {
	env.RegisterWorkflow(Mailbox)
	f.mu.Lock()
	f.refused = append(f.refused, refuse...)
	f.mu.Unlock()
	env.RegisterActivityWithOptions(func(ctx context.Context, in CheckMailboxInput) (CheckMailboxResult, error) {
		f.mu.Lock()
		refused := slices.Contains(f.refused, in.Address)
		f.mu.Unlock()
		if refused {
			return CheckMailboxResult{}, temporal.NewNonRetryableApplicationError("no access", ErrMailboxUnreachable, nil,
				struct{ Reason, Text string }{ReasonMailboxUnreachable, "svc cannot open " + in.Address})
		}
		return CheckMailboxResult{UserID: in.Address, Address: in.Address}, nil
	}, activity.RegisterOptions{Name: ActivityCheckMailbox})
	env.RegisterActivityWithOptions(func(ctx context.Context, in RegisterMailboxInput) error {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.events = append(f.events, "mailbox.attached:"+in.MailboxID)
		return nil
	}, activity.RegisterOptions{Name: ActivityRegisterMailbox})
}

func mailboxInput() MailboxInput {
	return MailboxInput{ID: "mbx-support", ConnectionID: "c1", OrgID: "org", OwnerID: "owner", Address: "support@contoso.example",
		UserID: "support@contoso.example", Settings: Settings{Features: Features{Read: true}}, Granted: Features{Read: true},
		Options: input().Options}
}

// TestMailboxPollsPausesLosesAccessAndDetaches follows one attached
// mailbox: it backfills and polls (never subscribing: delegated access to
// a shared mailbox gets no notifications), waits while its connection's
// credential is dead and catches up when it comes back, waits in
// access_lost when its rights are removed until the app asks again, and
// detaches with its retention when cancelled, telling its connection.
func TestMailboxPollsPausesLosesAccessAndDetaches(t *testing.T) {
	env, f := newEnv(t)
	f.registerMailboxes(env)
	var told []string
	env.OnSignalExternalWorkflow(mock.Anything, ConnectionWorkflowID("c1"), "", mock.Anything, mock.Anything).Return(
		func(_, _, _, name string, arg any) error {
			told = append(told, name)
			return nil
		})
	syncsAt := func() int { return int(f.syncs.Load()) }
	var paused, resumed int
	env.RegisterDelayedCallback(func() {
		st := query(t, env)
		if st.State != StateActive || st.Sync.Mode != SyncPolling || !strings.Contains(st.Sync.PollReason, "shared mailbox") {
			t.Errorf("after an hour: %s, %s (%q)", st.State, st.Sync.Mode, st.Sync.PollReason)
		}
		if st.Backfill.Completed.IsZero() || st.ConnectionID != "c1" {
			t.Errorf("backfill %v, connection %q", st.Backfill.Completed, st.ConnectionID)
		}
		env.SignalWorkflow(SignalCredential, CredentialSignal{Dead: true})
	}, time.Hour)
	env.RegisterDelayedCallback(func() {
		if st := query(t, env); st.State != StateReauthRequired || st.Reason != ReasonCredentialDead {
			t.Errorf("credential dead: %s (%s)", st.State, st.Reason)
		}
		paused = syncsAt()
	}, time.Hour+time.Minute)
	env.RegisterDelayedCallback(func() {
		if n := syncsAt(); n != paused {
			t.Errorf("%d rounds ran while the credential was dead", n-paused)
		}
		env.SignalWorkflow(SignalCredential, CredentialSignal{})
	}, 3*time.Hour)
	env.RegisterDelayedCallback(func() {
		resumed = syncsAt()
		if st := query(t, env); st.State != StateActive || resumed != paused+1 {
			t.Errorf("after the credential came back: %s, %d catch-up rounds", st.State, resumed-paused)
		}
		f.syncErr = temporal.NewNonRetryableApplicationError("access denied", ErrMailboxUnreachable, nil,
			struct{ Reason, Text string }{ReasonMailboxUnreachable, "grant Full Access again"})
		f.syncFail.Store(100)
	}, 3*time.Hour+time.Second)
	env.RegisterDelayedCallback(func() {
		st := query(t, env)
		if st.State != StateAccessLost || st.ReasonText != "grant Full Access again" {
			t.Errorf("rights removed: %s %q", st.State, st.ReasonText)
		}
		// Asked again before the rights are back: refused with the reason,
		// and the mailbox stays where it is.
		f.mu.Lock()
		f.refused = append(f.refused, "support@contoso.example")
		f.mu.Unlock()
		update(t, env, UpdateResync, ResyncInput{}, func(_ Status, err error) {
			var appErr *temporal.ApplicationError
			if !errors.As(err, &appErr) || appErr.Type() != ErrMailboxUnreachable {
				t.Errorf("resync without the rights: %v", err)
			}
		})
	}, 4*time.Hour)
	env.RegisterDelayedCallback(func() {
		if st := query(t, env); st.State != StateAccessLost {
			t.Errorf("after a refused resync: %s", st.State)
		}
		f.mu.Lock()
		f.refused = nil
		f.mu.Unlock()
		f.syncFail.Store(0)
		update(t, env, UpdateResync, ResyncInput{}, nil)
	}, 4*time.Hour+time.Minute)
	endWith(env, 5*time.Hour, func() {
		if st := query(t, env); st.State != StateActive {
			t.Errorf("after resync: %s", st.State)
		}
	})
	env.ExecuteWorkflow(Mailbox, mailboxInput())
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if n := f.subscribes.Load(); n != 0 {
		t.Errorf("a shared mailbox subscribed %d times", n)
	}
	lost := 0
	for _, e := range f.events {
		if e == "mailbox.access_lost" {
			lost++
		}
	}
	if lost != 1 || !slices.Contains(f.events, "mailbox.detached") {
		t.Errorf("events: %v", f.events)
	}
	if want := []string{ActivityApplyRetention + ":delete"}; !slices.Equal(f.saga, want) {
		t.Errorf("detach saga %v, want %v (no subscription to delete, no secret purged)", f.saga, want)
	}
	if !slices.Contains(told, SignalMailboxEnded) {
		t.Errorf("the connection was not told the mailbox ended: %v", told)
	}
	// Polls every 5 minutes while active and reachable: about 12 an hour
	// for the 2 hours that were neither paused nor without access.
	if n := syncsAt(); n < 20 || n > 35 {
		t.Errorf("%d rounds in 5 hours, 3 of them paused or without access", n)
	}
}

// TestMailboxNinetyQuietDays polls one attached mailbox for 90 quiet days
// across weekly continue-as-new: every poll is on time and the state is
// carried.
func TestMailboxNinetyQuietDays(t *testing.T) {
	const days = 90
	week := 7 * 24 * time.Hour
	start := time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)
	end := start.Add(days * 24 * time.Hour)
	in := mailboxInput()
	in.Options.ContinueAsNewAfter = 1000
	var syncs []time.Time
	generations, now := 0, start
	for now.Before(end) {
		env, f := newEnv(t)
		f.registerMailboxes(env)
		env.OnSignalExternalWorkflow(mock.Anything, ConnectionWorkflowID("c1"), "", mock.Anything, mock.Anything).Return(nil)
		env.SetStartTime(now)
		last := end.Sub(now) <= week
		if last {
			endWith(env, end.Sub(now), func() {
				if st := query(t, env); st.State != StateActive || st.Runs != generations || st.Sync.Mode != SyncPolling {
					t.Errorf("after %d days: %s, runs %d, %s", days, st.State, st.Runs, st.Sync.Mode)
				}
			})
		} else {
			env.RegisterDelayedCallback(func() { env.SetCurrentHistoryLength(in.Options.ContinueAsNewAfter + 1) }, week)
		}
		env.ExecuteWorkflow(Mailbox, in)
		f.mu.Lock()
		syncs = append(syncs, f.at[ActivitySyncFolders]...)
		f.mu.Unlock()
		generations++
		if last {
			if err := env.GetWorkflowError(); err != nil && !temporal.IsCanceledError(err) {
				t.Fatalf("last generation: %v", err)
			}
			break
		}
		next := carriedMailboxInput(t, env.GetWorkflowError())
		if next.State == nil || next.State.ConnectionID != "c1" || next.State.Backfill.Covered.IsZero() {
			t.Fatalf("generation %d carried %+v", generations, next.State)
		}
		now = env.Now()
		next.Options = in.Options
		in = next
	}
	checkGaps(t, "poll", start, end, syncs, 5*time.Minute+time.Second)
	if want := days * 24 * 12; len(syncs) < want-20 {
		t.Errorf("%d polls in %d days, want about %d", len(syncs), days, want)
	}
	t.Logf("%d days: %d generations, %d polls", days, generations, len(syncs))
}

func carriedMailboxInput(t *testing.T, err error) MailboxInput {
	t.Helper()
	var can *workflow.ContinueAsNewError
	if !errors.As(err, &can) {
		t.Fatalf("want continue-as-new, got %v", err)
	}
	var next MailboxInput
	if err := converter.GetDefaultDataConverter().FromPayloads(can.Input, &next); err != nil {
		t.Fatal(err)
	}
	return next
}

// TestServiceAccountAttachesAndDisconnects: a service account's connection
// consents, attaches two mailboxes (refusing a third it cannot open, and
// an address already attached), syncs none of its own, and when it is
// disconnected detaches every mailbox before it purges its secrets.
func TestServiceAccountAttachesAndDisconnects(t *testing.T) {
	env, f := newEnv(t)
	f.registerMailboxes(env, "private@contoso.example")
	f.exchange = func(in ExchangeCodeInput) (ExchangeCodeResult, error) {
		return ExchangeCodeResult{UserID: "u-svc", Mailbox: "svc@contoso.example", TenantID: "t-1",
			GrantedScopes: []string{"Mail.Read.Shared", "User.Read"}, Granted: Features{Read: true}, AccessExpiry: time.Now().Add(time.Hour)}, nil
	}
	in := input()
	in.Mode = ModeServiceAccount
	env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: ConnectionWorkflowID(in.ID)})
	env.RegisterDelayedCallback(func() { update(t, env, UpdateConsent, ConsentInput{Ref: "ref-0123456789"}, nil) }, time.Minute)
	attach := func(id, address string, check func(MailboxRef, error)) {
		env.UpdateWorkflow(UpdateAttach, id, &testsuite.TestUpdateCallback{
			OnReject: func(err error) { check(MailboxRef{}, err) },
			OnAccept: func() {},
			OnComplete: func(v any, err error) {
				ref, _ := v.(MailboxRef)
				check(ref, err)
			},
		}, AttachInput{MailboxID: id, Address: address})
	}
	env.RegisterDelayedCallback(func() {
		for _, a := range []string{"support@contoso.example", "sales@contoso.example"} {
			attach("mbx-"+strings.Split(a, "@")[0], a, func(ref MailboxRef, err error) {
				if err != nil || ref.Address != a {
					t.Errorf("attach %s: %+v %v", a, ref, err)
				}
			})
		}
		attach("mbx-private", "private@contoso.example", func(_ MailboxRef, err error) {
			var appErr *temporal.ApplicationError
			if !errors.As(err, &appErr) || appErr.Type() != ErrMailboxUnreachable {
				t.Errorf("attaching a mailbox the account cannot open: %v", err)
			}
		})
	}, 2*time.Minute)
	env.RegisterDelayedCallback(func() {
		attach("mbx-again", "Support@contoso.example", func(_ MailboxRef, err error) {
			var appErr *temporal.ApplicationError
			if err == nil || !strings.Contains(err.Error(), "already has") || !errors.As(err, &appErr) || appErr.Type() != ErrAlreadyAttached {
				t.Errorf("attaching an address twice: %v", err)
			}
		})
		st := query(t, env)
		if len(st.Mailboxes) != 2 || st.Backfill.Runs != 0 || st.Sync.Mode != "" {
			t.Errorf("after attaching: %d mailboxes, %d backfills and sync %q of its own", len(st.Mailboxes), st.Backfill.Runs, st.Sync.Mode)
		}
		update(t, env, UpdateDisconnect, nil, nil)
	}, time.Hour)
	env.ExecuteWorkflow(Connection, in)
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var res ConnectionResult
	if err := env.GetWorkflowResult(&res); err != nil || res.State != StateDisconnected {
		t.Fatalf("result %+v %v", res, err)
	}
	want := []string{ActivityApplyRetention + ":delete", ActivityApplyRetention + ":delete", ActivityDeleteSubscriptions, ActivityPurgeSecrets}
	if !slices.Equal(f.saga, want) {
		t.Errorf("saga %v, want %v: every mailbox detached before the secrets go", f.saga, want)
	}
	// The connection's saga pages the waiting sends of all its mailboxes;
	// each mailbox's, its own.
	asked := map[WaitingSendsInput]bool{}
	for _, in := range f.waitingIns {
		in.After = ""
		asked[in] = true
	}
	for _, w := range []WaitingSendsInput{{ConnectionID: in.ID}, {ConnectionID: in.ID, MailboxID: "mbx-support"}, {ConnectionID: in.ID, MailboxID: "mbx-sales"}} {
		if w.Limit = waitingSendsPage; !asked[w] {
			t.Errorf("the saga did not look for the waiting sends %+v (asked %v)", w, f.waitingIns)
		}
	}
	if n := f.syncs.Load(); n < 2*10 {
		t.Errorf("%d polls of two mailboxes in an hour", n)
	}
}

// TestServiceAccountTwentyMailboxesNinetyQuietDays: a service account with
// twenty attached mailboxes, each polling hourly, for 90 quiet days: every
// mailbox polls on time, the connection keeps its refresh token alive and
// does nothing else, and every mailbox is still active at the end.
func TestServiceAccountTwentyMailboxesNinetyQuietDays(t *testing.T) {
	const (
		mailboxes = 20
		days      = 90
	)
	env, f := newEnv(t)
	f.registerMailboxes(env)
	f.exchange = func(in ExchangeCodeInput) (ExchangeCodeResult, error) {
		return ExchangeCodeResult{UserID: "u-svc", Mailbox: "svc@contoso.example", GrantedScopes: []string{"Mail.Read.Shared", "User.Read"},
			Granted: Features{Read: true}, AccessExpiry: time.Now().Add(time.Hour)}, nil
	}
	var refreshes []time.Time
	f.refresh = func() (RefreshResult, error) {
		refreshes = append(refreshes, env.Now())
		return RefreshResult{AccessExpiry: env.Now().Add(time.Hour)}, nil
	}
	start := env.Now()
	in := input()
	in.Mode = ModeServiceAccount
	env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: ConnectionWorkflowID(in.ID)})
	env.RegisterDelayedCallback(func() { update(t, env, UpdateConsent, ConsentInput{Ref: "ref-0123456789"}, nil) }, time.Minute)
	env.RegisterDelayedCallback(func() {
		for i := range mailboxes {
			a := AttachInput{MailboxID: fmt.Sprintf("mbx-team%02d", i), Address: fmt.Sprintf("team%02d@contoso.example", i),
				Settings: Settings{Features: Features{Read: true}, PollMinutes: 60}}
			env.UpdateWorkflow(UpdateAttach, a.MailboxID, &testsuite.TestUpdateCallback{
				OnReject: func(err error) { t.Errorf("attach %s: %v", a.Address, err) },
				OnAccept: func() {},
				OnComplete: func(_ any, err error) {
					if err != nil {
						t.Errorf("attach %s: %v", a.Address, err)
					}
				},
			}, a)
		}
	}, 2*time.Minute)
	var polls []time.Time
	env.RegisterDelayedCallback(func() {
		st := query(t, env)
		if st.State != StateActive || len(st.Mailboxes) != mailboxes || st.Backfill.Runs != 0 {
			t.Errorf("after %d days: %s, %d mailboxes, %d backfills of its own", days, st.State, len(st.Mailboxes), st.Backfill.Runs)
		}
		f.mu.Lock()
		polls = slices.Clone(f.at[ActivitySyncFolders])
		f.mu.Unlock()
		update(t, env, UpdateDisconnect, nil, nil)
	}, days*24*time.Hour)
	env.ExecuteWorkflow(Connection, in)
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	detached := 0
	for _, s := range f.saga {
		if strings.HasPrefix(s, ActivityApplyRetention) {
			detached++
		}
	}
	f.mu.Unlock()
	if detached != mailboxes {
		t.Errorf("the disconnect detached %d of %d mailboxes", detached, mailboxes)
	}
	// Every mailbox polls hourly: 20 a simulated hour, give or take the
	// first hour.
	if want := mailboxes * days * 24; len(polls) < want-2*mailboxes || len(polls) > want+2*mailboxes {
		t.Errorf("%d polls of %d mailboxes in %d days, want about %d", len(polls), mailboxes, days, want)
	}
	perHour := map[int64]int{}
	for _, p := range polls {
		perHour[int64(p.Sub(start)/time.Hour)]++
	}
	for h := int64(2); h < days*24-1; h++ {
		if n := perHour[h]; n < mailboxes-1 || n > mailboxes+1 {
			t.Errorf("hour %d: %d polls of %d mailboxes", h, n, mailboxes)
			break
		}
	}
	checkGaps(t, "refresh", start, start.Add(days*24*time.Hour), refreshes, 72*time.Hour+time.Minute)
	t.Logf("%d days, %d mailboxes: %d polls, %d refreshes of the shared token", days, mailboxes, len(polls), len(refreshes))
}

// TestMailboxToldOfLostAccessOnce: a mailbox without access when its
// connection's credential dies resumes after the new sign-in; its first
// round finds the access still missing, and the app, told already, is not
// told again. Once the rights are back and it was read, a new loss is told.
func TestMailboxToldOfLostAccessOnce(t *testing.T) {
	env, f := newEnv(t)
	f.registerMailboxes(env)
	env.OnSignalExternalWorkflow(mock.Anything, ConnectionWorkflowID("c1"), "", mock.Anything, mock.Anything).Return(nil)
	denied := temporal.NewNonRetryableApplicationError("access denied", ErrMailboxUnreachable, nil,
		struct{ Reason, Text string }{ReasonMailboxUnreachable, "grant Full Access again"})
	told := func() int {
		f.mu.Lock()
		defer f.mu.Unlock()
		n := 0
		for _, e := range f.events {
			if e == "mailbox.access_lost" {
				n++
			}
		}
		return n
	}
	env.RegisterDelayedCallback(func() {
		f.syncErr = denied
		f.syncFail.Store(1000)
	}, time.Hour)
	env.RegisterDelayedCallback(func() {
		if st := query(t, env); st.State != StateAccessLost || told() != 1 {
			t.Errorf("rights removed: %s, told %d times", st.State, told())
		}
		env.SignalWorkflow(SignalCredential, CredentialSignal{Dead: true})
	}, 2*time.Hour)
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(SignalCredential, CredentialSignal{}) }, 3*time.Hour)
	env.RegisterDelayedCallback(func() {
		if st := query(t, env); st.State != StateAccessLost || told() != 1 {
			t.Errorf("resumed without its rights: %s, told %d times", st.State, told())
		}
		f.syncFail.Store(0)
		update(t, env, UpdateResync, ResyncInput{}, nil)
	}, 4*time.Hour)
	env.RegisterDelayedCallback(func() {
		f.syncFail.Store(1000)
	}, 5*time.Hour)
	endWith(env, 6*time.Hour, func() {
		if st := query(t, env); st.State != StateAccessLost || told() != 2 {
			t.Errorf("a new loss after the access came back: %s, told %d times", st.State, told())
		}
	})
	env.ExecuteWorkflow(Mailbox, mailboxInput())
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
}

// TestMailboxSettingsReadByApplicationMailboxes: an application
// connection's mailbox asks its sync rounds to read its mailboxSettings
// once they are older than the interval; a service account's does not
// (delegated access gives no other user's settings).
func TestMailboxSettingsReadByApplicationMailboxes(t *testing.T) {
	for _, tc := range []struct {
		name string
		mode string
		want time.Duration
	}{
		{"application", ModeApplication, defaultMailboxSettingsEvery},
		{"service account", ModeServiceAccount, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env, f := newEnv(t)
			f.registerMailboxes(env)
			env.OnSignalExternalWorkflow(mock.Anything, mock.Anything, mock.Anything, mock.Anything, mock.Anything).Return(nil)
			in := mailboxInput()
			in.Mode = tc.mode
			endWith(env, 2*time.Hour, func() {
				f.mu.Lock()
				defer f.mu.Unlock()
				if len(f.syncIns) == 0 {
					t.Fatal("no sync round")
				}
				for _, s := range f.syncIns {
					if s.MailboxSettingsEvery != tc.want {
						t.Errorf("a round read settings every %s, want %s", s.MailboxSettingsEvery, tc.want)
					}
				}
			})
			env.ExecuteWorkflow(Mailbox, in)
		})
	}
}

// TestMailboxBackfillBeginsInOneActivity: an attached mailbox's backfill
// is one BackfillMailbox activity when that brings every folder to the
// window, with no child; what it leaves goes to the backfill child, which
// goes on from it, and the folders' progress adds both up.
func TestMailboxBackfillBeginsInOneActivity(t *testing.T) {
	tests := []struct {
		name string
		// connection: a user's connection's own mailbox
		// (connection-backfill-inline), else an attached mailbox
		// (mailbox-backfill-inline).
		connection bool
		// inOne: every folder done at its first call.
		inOne bool
		// folderCalls are the folder backfills in all; fetched is each
		// folder's total.
		folderCalls int
		fetched     int64
	}{
		{"mailbox done in the activity", false, true, 3, 50},
		{"mailbox's rest in a child", false, false, 6, 100},
		{"connection done in the activity", true, true, 3, 50},
		{"connection's rest in a child", true, false, 6, 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env, f := newEnv(t)
			f.backfillInOne = tt.inOne
			children := 0
			env.SetOnChildWorkflowStartedListener(func(*workflow.Info, workflow.Context, converter.EncodedValues) { children++ })
			if tt.connection {
				env.RegisterDelayedCallback(func() { update(t, env, UpdateConsent, ConsentInput{Ref: "ref-0123456789"}, nil) }, time.Minute)
			} else {
				f.registerMailboxes(env)
				env.OnSignalExternalWorkflow(mock.Anything, ConnectionWorkflowID("c1"), "", mock.Anything, mock.Anything).Return(nil)
			}
			endWith(env, time.Hour, func() {
				st := query(t, env)
				if st.State != StateActive || st.Backfill.Completed.IsZero() || st.Backfill.Runs != 1 || st.Backfill.LastError != "" {
					t.Errorf("after an hour: %s, backfill %+v", st.State, st.Backfill)
				}
				if len(st.Backfill.Folders) != len(f.folders) {
					t.Errorf("progress of %d folders, want %d", len(st.Backfill.Folders), len(f.folders))
				}
				for _, p := range st.Backfill.Folders {
					if !p.Done || p.Fetched != tt.fetched {
						t.Errorf("folder %s: %+v, want done with %d fetched", p.ID, p, tt.fetched)
					}
				}
			})
			if tt.connection {
				env.ExecuteWorkflow(Connection, input())
			} else {
				env.ExecuteWorkflow(Mailbox, mailboxInput())
			}
			if err := env.GetWorkflowError(); err != nil && !temporal.IsCanceledError(err) {
				t.Fatal(err)
			}
			f.mu.Lock()
			defer f.mu.Unlock()
			if len(f.mailboxBackfills) != 1 || len(f.backfills) != tt.folderCalls {
				t.Errorf("%d BackfillMailbox and %d folder calls, want 1 and %d", len(f.mailboxBackfills), len(f.backfills), tt.folderCalls)
			}
			if want := map[bool]int{true: 0, false: 1}[tt.inOne]; children != want {
				t.Errorf("%d backfill children, want %d", children, want)
			}
			if n := slices.Index(f.events, "backfill.completed"); n < 0 {
				t.Errorf("no backfill.completed event: %v", f.events)
			}
			in, mailbox := f.mailboxBackfills[0], "mbx-support"
			if tt.connection {
				mailbox = ""
			}
			if in.ConnectionID != "c1" || in.MailboxID != mailbox || in.Budget != inlineBudget || in.Concurrency == 0 {
				t.Errorf("BackfillMailbox asked with %+v", in)
			}
		})
	}
}
