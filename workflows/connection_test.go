package workflows

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"
)

// fakes implement the activities in memory, counting calls.
type fakes struct {
	mu         sync.Mutex
	exchange   func(ExchangeCodeInput) (ExchangeCodeResult, error)
	refresh    func() (RefreshResult, error)
	exchanges  atomic.Int32
	refreshes  atomic.Int32
	backfills  []BackfillFolderInput
	recorded   []string
	folders    []FolderRef
	syncs      atomic.Int32
	subscribes atomic.Int32
	renews     atomic.Int32
	renewGone  atomic.Bool
	// subIns, renewIns and deleteRefs are the inputs of the subscription
	// activities; subRefused and renewRefused, when set, are Graph's
	// refusal of the next subscriptions and renewals (the mailbox polls).
	subIns       []EnsureSubscriptionInput
	renewIns     []RenewSubscriptionInput
	deleteRefs   []ConnectionRef
	subRefused   string
	renewRefused string
	// grant, when set, is the lifetime Graph grants whatever is asked.
	grant  time.Duration
	events []string
	saga   []string
	// at holds the (workflow) times of sync, renew and subscribe calls.
	at map[string][]time.Time
	// duringSync, when set, runs inside the next delta round.
	duringSync func()
	// syncFail fails that many next delta rounds; localSyncs counts the
	// rounds run as local activities.
	syncFail   atomic.Int32
	localSyncs atomic.Int32
	// syncErr is what a failed round answers (nil: a transient error).
	syncErr error
	// syncHang makes that many next local rounds run until their deadline.
	syncHang atomic.Int32
	// settings are the settings written to the registry, eventIDs the IDs
	// of the events written with state changes; recordFails fails that
	// many registry writes, refuseSettings every one carrying settings.
	settings       []Settings
	eventIDs       []string
	recordFails    int
	refuseSettings bool
	// refused are the addresses CheckMailbox finds unreachable.
	refused []string
	// unfetched counts contacts whose past mail waits; contactFetches
	// and filterOns record the calls that fetch it or apply the filter;
	// syncIns are the delta rounds' inputs.
	unfetched      atomic.Int64
	strips         []string
	contactFetches []FetchContactMailInput
	filterOns      atomic.Int32
	syncIns        []SyncFoldersInput
	// waiting are the IDs of the sends waiting to go, as the registry
	// pages them; waitingIns the pages asked for.
	waiting    []string
	waitingIns []WaitingSendsInput
	// mailboxBackfills are the BackfillMailbox calls; backfillInOne makes
	// every folder done at its first call.
	mailboxBackfills []BackfillMailboxInput
	backfillInOne    bool
}

// backfillFolder is the fake folder backfill: a folder takes two calls
// per window (one budget's worth, then the rest), or one with
// backfillInOne.
func (f *fakes) backfillFolder(in BackfillFolderInput) BackfillFolderResult {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.backfills = append(f.backfills, in)
	n := 0
	for _, b := range f.backfills {
		if b.FolderID == in.FolderID && b.WindowStart.Equal(in.WindowStart) {
			n++
		}
	}
	return BackfillFolderResult{Fetched: 50, Pages: 1, Done: n >= 2 || f.backfillInOne}
}

func (f *fakes) mark(name string, t time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.at == nil {
		f.at = map[string][]time.Time{}
	}
	f.at[name] = append(f.at[name], t)
}

// granted is the lifetime Graph grants when asked for asked.
func (f *fakes) granted(asked time.Duration) time.Duration {
	if f.grant != 0 {
		return f.grant
	}
	return asked
}

func newFakes() *fakes {
	f := &fakes{folders: []FolderRef{{ID: "f-inbox", Name: "Inbox", WellKnown: "inbox"}, {ID: "f-sent", Name: "Sent Items"}, {ID: "f-proj", Name: "Projects", ParentID: "f-inbox"}}}
	f.exchange = func(in ExchangeCodeInput) (ExchangeCodeResult, error) {
		return ExchangeCodeResult{UserID: "u-1", Mailbox: "ada@contoso.example", TenantID: "t-1", DisplayName: "Ada",
			GrantedScopes: []string{"Mail.Read", "User.Read"}, Granted: Features{Read: true}, AccessExpiry: time.Now().Add(time.Hour)}, nil
	}
	f.refresh = func() (RefreshResult, error) { return RefreshResult{AccessExpiry: time.Now().Add(time.Hour)}, nil }
	return f
}

func (f *fakes) register(env *testsuite.TestWorkflowEnvironment) {
	env.RegisterWorkflow(Connection)
	env.RegisterWorkflow(Backfill)
	env.RegisterActivityWithOptions(func(ctx context.Context, in ExchangeCodeInput) (ExchangeCodeResult, error) {
		f.exchanges.Add(1)
		return f.exchange(in)
	}, activity.RegisterOptions{Name: ActivityExchangeCode})
	env.RegisterActivityWithOptions(func(ctx context.Context, in RefreshInput) (RefreshResult, error) {
		f.refreshes.Add(1)
		return f.refresh()
	}, activity.RegisterOptions{Name: ActivityRefreshTokens})
	env.RegisterActivityWithOptions(func(ctx context.Context, in DiscoverFoldersInput) (DiscoverFoldersResult, error) {
		return DiscoverFoldersResult{Folders: f.folders}, nil
	}, activity.RegisterOptions{Name: ActivityDiscoverFolders})
	env.RegisterActivityWithOptions(func(ctx context.Context, in BackfillFolderInput) (BackfillFolderResult, error) {
		return f.backfillFolder(in), nil
	}, activity.RegisterOptions{Name: ActivityBackfillFolder})
	env.RegisterActivityWithOptions(func(ctx context.Context, in BackfillMailboxInput) (BackfillMailboxResult, error) {
		f.mu.Lock()
		f.mailboxBackfills = append(f.mailboxBackfills, in)
		folders := f.folders
		f.mu.Unlock()
		out := BackfillMailboxResult{Done: true}
		for _, fo := range folders {
			r := f.backfillFolder(BackfillFolderInput{ConnectionID: in.ConnectionID, MailboxID: in.MailboxID, UserID: in.UserID, FolderID: fo.ID, WindowStart: in.WindowStart,
				StoreBodies: in.StoreBodies, ContactFilter: in.ContactFilter, Bodies: in.Bodies, PageSize: in.PageSize, Budget: in.Budget})
			out.Folders = append(out.Folders, FolderProgress{ID: fo.ID, Name: fo.Name, Total: fo.Total, Fetched: r.Fetched, Done: r.Done})
			out.Fetched += r.Fetched
			out.Done = out.Done && r.Done
		}
		return out, nil
	}, activity.RegisterOptions{Name: ActivityBackfillMailbox})
	env.RegisterActivityWithOptions(func(ctx context.Context, in SyncFoldersInput) (SyncFoldersResult, error) {
		f.syncs.Add(1)
		f.mark(ActivitySyncFolders, env.Now())
		f.mu.Lock()
		f.syncIns = append(f.syncIns, in)
		f.mu.Unlock()
		if activity.GetInfo(ctx).IsLocalActivity {
			f.localSyncs.Add(1)
			if f.syncHang.Add(-1) >= 0 {
				<-ctx.Done()
				return SyncFoldersResult{}, ctx.Err()
			}
			f.syncHang.Store(0)
		}
		if f.syncFail.Add(-1) >= 0 {
			if f.syncErr != nil {
				return SyncFoldersResult{}, f.syncErr
			}
			return SyncFoldersResult{}, errors.New("graph did not answer")
		}
		f.syncFail.Store(0)
		f.mu.Lock()
		during := f.duringSync
		f.duringSync = nil
		f.mu.Unlock()
		if during != nil {
			during()
		}
		return SyncFoldersResult{Upserted: 1}, nil
	}, activity.RegisterOptions{Name: ActivitySyncFolders})
	env.RegisterActivityWithOptions(func(ctx context.Context, in EnsureSubscriptionInput) (SubscriptionResult, error) {
		f.subscribes.Add(1)
		f.mark(ActivityEnsureSubscription, env.Now())
		f.mu.Lock()
		f.subIns = append(f.subIns, in)
		refused := f.subRefused
		f.mu.Unlock()
		if refused != "" {
			return SubscriptionResult{PollReason: refused}, nil
		}
		return SubscriptionResult{ID: "sub-" + time.Now().Format("150405.000000000"), Expiration: env.Now().Add(f.granted(in.Lifetime)), Requested: env.Now()}, nil
	}, activity.RegisterOptions{Name: ActivityEnsureSubscription})
	env.RegisterActivityWithOptions(func(ctx context.Context, in RenewSubscriptionInput) (SubscriptionResult, error) {
		if f.renews.Add(1) > 1000 {
			return SubscriptionResult{}, errors.New("renewed a thousand times")
		}
		f.mark(ActivityRenewSubscription, env.Now())
		f.mu.Lock()
		f.renewIns = append(f.renewIns, in)
		refused := f.renewRefused
		f.mu.Unlock()
		if refused != "" {
			return SubscriptionResult{PollReason: refused}, nil
		}
		if f.renewGone.Load() {
			return SubscriptionResult{Gone: true}, nil
		}
		return SubscriptionResult{ID: in.SubscriptionID, Expiration: env.Now().Add(f.granted(in.Lifetime)), Requested: env.Now()}, nil
	}, activity.RegisterOptions{Name: ActivityRenewSubscription})
	env.RegisterActivityWithOptions(func(ctx context.Context, in ConnectionRef) error {
		f.mu.Lock()
		f.saga = append(f.saga, ActivityDeleteSubscriptions)
		f.deleteRefs = append(f.deleteRefs, in)
		f.mu.Unlock()
		return nil
	}, activity.RegisterOptions{Name: ActivityDeleteSubscriptions})
	env.RegisterActivityWithOptions(func(ctx context.Context, in WaitingSendsInput) (WaitingSendsResult, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.waitingIns = append(f.waitingIns, in)
		out := WaitingSendsResult{IDs: []string{}}
		for _, id := range f.waiting {
			if id > in.After && len(out.IDs) < in.Limit {
				out.IDs = append(out.IDs, id)
			}
		}
		return out, nil
	}, activity.RegisterOptions{Name: ActivityWaitingSends})
	env.RegisterActivityWithOptions(func(ctx context.Context, in ConnectionRef) (int, error) {
		f.mu.Lock()
		f.saga = append(f.saga, ActivityPurgeSecrets)
		f.mu.Unlock()
		return 2, nil
	}, activity.RegisterOptions{Name: ActivityPurgeSecrets})
	env.RegisterActivityWithOptions(func(ctx context.Context, in RetentionInput) error {
		f.mu.Lock()
		f.saga = append(f.saga, ActivityApplyRetention+":"+in.Policy)
		f.mu.Unlock()
		return nil
	}, activity.RegisterOptions{Name: ActivityApplyRetention})
	env.RegisterActivityWithOptions(func(ctx context.Context, in RecordEventInput) error {
		f.mu.Lock()
		f.events = append(f.events, in.Type)
		f.mu.Unlock()
		return nil
	}, activity.RegisterOptions{Name: ActivityRecordEvent})
	env.RegisterActivityWithOptions(func(ctx context.Context, in RecordStateInput) error {
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.recordFails > 0 {
			f.recordFails--
			return errors.New("the registry did not answer")
		}
		if f.refuseSettings && in.Settings != nil {
			return errors.New("invalid byte sequence for encoding UTF8")
		}
		f.recorded = append(f.recorded, in.State)
		if in.Settings != nil {
			f.settings = append(f.settings, *in.Settings)
		}
		for _, e := range in.Events {
			f.events = append(f.events, e.Type)
			f.eventIDs = append(f.eventIDs, e.ID)
		}
		return nil
	}, activity.RegisterOptions{Name: ActivityRecordState})
	env.RegisterActivityWithOptions(func(ctx context.Context, in FetchContactMailInput) (FetchContactMailResult, error) {
		f.mu.Lock()
		f.contactFetches = append(f.contactFetches, in)
		f.mu.Unlock()
		n := min(f.unfetched.Load(), int64(in.Batch))
		left := f.unfetched.Add(-n)
		return FetchContactMailResult{Contacts: n, Messages: 3 * n, Requests: int(9 * n), Remaining: left}, nil
	}, activity.RegisterOptions{Name: ActivityFetchContactMail})
	env.RegisterActivityWithOptions(func(ctx context.Context, in ContactFilterInput) (ContactFilterResult, error) {
		f.filterOns.Add(1)
		f.unfetched.Store(0)
		return ContactFilterResult{Deleted: 7}, nil
	}, activity.RegisterOptions{Name: ActivityApplyContactFilter})
	env.RegisterActivityWithOptions(func(ctx context.Context, in StripContentInput) (StripContentResult, error) {
		f.mu.Lock()
		f.strips = append(f.strips, in.Bodies)
		f.mu.Unlock()
		return StripContentResult{Messages: 3}, nil
	}, activity.RegisterOptions{Name: ActivityStripContent})
}

func input() ConnectionInput {
	return ConnectionInput{ID: "c1", OrgID: "org", OwnerID: "owner", Settings: Settings{Features: Features{Read: true}},
		Options: Options{NotificationURL: "https://outlookd.example/v1/graph/notifications", LifecycleURL: "https://outlookd.example/v1/graph/lifecycle"}}
}

func newEnv(t *testing.T) (*testsuite.TestWorkflowEnvironment, *fakes) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	f := newFakes()
	f.register(env)
	return env, f
}

// update sends an update and fails the test if it is rejected.
func update(t *testing.T, env *testsuite.TestWorkflowEnvironment, name string, arg any, check func(Status, error)) {
	env.UpdateWorkflow(name, "", &testsuite.TestUpdateCallback{
		OnReject: func(err error) {
			if check != nil {
				check(Status{}, err)
				return
			}
			t.Errorf("update %s rejected: %v", name, err)
		},
		OnAccept: func() {},
		OnComplete: func(v any, err error) {
			if check == nil {
				return
			}
			st, _ := v.(Status)
			check(st, err)
		},
	}, arg)
}

func query(t *testing.T, env *testsuite.TestWorkflowEnvironment) Status {
	t.Helper()
	v, err := env.QueryWorkflow(QueryStatus)
	if err != nil {
		t.Fatal(err)
	}
	var st Status
	if err := v.Get(&st); err != nil {
		t.Fatal(err)
	}
	return st
}

// endWith cancels the workflow at the given time, after checking it.
func endWith(env *testsuite.TestWorkflowEnvironment, after time.Duration, check func()) {
	env.RegisterDelayedCallback(func() {
		check()
		env.CancelWorkflow()
	}, after)
}

func TestConnectionConsentAndBackfill(t *testing.T) {
	env, f := newEnv(t)
	env.RegisterDelayedCallback(func() {
		if st := query(t, env); st.State != StatePendingConsent {
			t.Errorf("before consent: %s", st.State)
		}
		update(t, env, UpdateConsent, ConsentInput{Ref: "ref-0123456789"}, func(st Status, err error) {
			if err != nil || st.State != StateActive || st.Mailbox != "ada@contoso.example" {
				t.Errorf("consent update: %+v %v", st, err)
			}
		})
	}, time.Minute)
	endWith(env, time.Hour, func() {
		st := query(t, env)
		if st.State != StateActive || st.Backfill.Running || st.Backfill.Covered.IsZero() || st.Backfill.Runs != 1 {
			t.Errorf("after backfill: %+v", st.Backfill)
		}
		if len(st.Backfill.Folders) != 3 || !st.Backfill.Folders["f-proj"].Done || st.Backfill.Folders["f-inbox"].Fetched != 100 {
			t.Errorf("folder progress: %+v", st.Backfill.Folders)
		}
		if st.NextAction != "next delta round" {
			t.Errorf("next action = %q", st.NextAction)
		}
		// A consent now is refused by the validator: nothing is applied.
		update(t, env, UpdateConsent, ConsentInput{Ref: "ref-0123456789"}, func(_ Status, err error) {
			if err == nil {
				t.Error("a second consent was accepted")
			}
		})
	})
	env.ExecuteWorkflow(Connection, input())
	if !env.IsWorkflowCompleted() || env.GetWorkflowError() != nil {
		t.Fatalf("workflow: %v", env.GetWorkflowError())
	}
	if f.exchanges.Load() != 1 || len(f.backfills) != 6 {
		t.Errorf("exchanges %d, backfill calls %d", f.exchanges.Load(), len(f.backfills))
	}
	// The workflow writes every state the registry shows (the cancellation
	// that ends the test disconnects), each with its event.
	if want := []string{StateActive, StateDisconnecting, StateDisconnected}; !slices.Equal(f.recorded, want) {
		t.Errorf("registry states %v, want %v", f.recorded, want)
	}
	if want := []string{"connection.active", "backfill.completed", "connection.disconnected"}; !slices.Equal(f.events, want) {
		t.Errorf("events %v, want %v", f.events, want)
	}
}

func TestConsentRefusalsAndFailures(t *testing.T) {
	tests := []struct {
		name       string
		in         ConsentInput
		exchange   error
		wantState  string
		wantReason string
	}{
		{"declined by the user", ConsentInput{Reason: "consent_declined", ReasonText: "The user declined."}, nil, StatePendingConsent, "consent_declined"},
		{"admin consent required", ConsentInput{Reason: "admin_consent_required", ReasonText: "An administrator must approve."}, nil, StateAdminConsentRequired, "admin_consent_required"},
		{"code refused", ConsentInput{Ref: "ref-0123456789"}, temporal.NewNonRetryableApplicationError("x", ErrConsentFailed, nil, struct{ Reason, Text string }{"code_invalid", "start again"}), StatePendingConsent, "code_invalid"},
		{"mailbox taken", ConsentInput{Ref: "ref-0123456789"}, temporal.NewNonRetryableApplicationError("x", ErrMailboxTaken, nil), StatePendingConsent, "mailbox_already_connected"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env, f := newEnv(t)
			if tt.exchange != nil {
				f.exchange = func(ExchangeCodeInput) (ExchangeCodeResult, error) { return ExchangeCodeResult{}, tt.exchange }
			}
			env.RegisterDelayedCallback(func() {
				update(t, env, UpdateConsent, tt.in, nil)
			}, time.Minute)
			endWith(env, time.Hour, func() {
				st := query(t, env)
				if st.State != tt.wantState || st.Reason != tt.wantReason || st.ReasonText == "" {
					t.Errorf("status = %s %q %q", st.State, st.Reason, st.ReasonText)
				}
			})
			env.ExecuteWorkflow(Connection, input())
		})
	}
	t.Run("bad updates are rejected", func(t *testing.T) {
		env, _ := newEnv(t)
		env.RegisterDelayedCallback(func() {
			for _, in := range []ConsentInput{{}, {Ref: "x"}, {Ref: "ref-0123456789", Reason: "both"}} {
				update(t, env, UpdateConsent, in, func(_ Status, err error) {
					if err == nil {
						t.Errorf("accepted %+v", in)
					}
				})
			}
			update(t, env, UpdateSettings, Settings{BackfillDays: -1}, func(_ Status, err error) {
				if err == nil {
					t.Error("accepted a negative window")
				}
			})
		}, time.Minute)
		endWith(env, time.Hour, func() {
			if st := query(t, env); st.State != StatePendingConsent || st.Reason != "" {
				t.Errorf("a rejected update changed the state: %+v", st)
			}
		})
		env.ExecuteWorkflow(Connection, input())
	})
}

func TestSendOnlyGrantSyncsNothing(t *testing.T) {
	env, f := newEnv(t)
	f.exchange = func(ExchangeCodeInput) (ExchangeCodeResult, error) {
		return ExchangeCodeResult{UserID: "u-1", Mailbox: "ada@contoso.example", GrantedScopes: []string{"Mail.Send", "User.Read"}, Granted: Features{Send: true}}, nil
	}
	env.RegisterDelayedCallback(func() { update(t, env, UpdateConsent, ConsentInput{Ref: "ref-0123456789"}, nil) }, time.Minute)
	endWith(env, time.Hour, func() {
		st := query(t, env)
		if st.State != StateActive || st.Granted.Read || !st.Granted.Send || st.ReasonText == "" {
			t.Errorf("send-only: %+v", st)
		}
	})
	env.ExecuteWorkflow(Connection, input())
	if len(f.backfills) != 0 {
		t.Errorf("a send-only connection backfilled: %d calls", len(f.backfills))
	}
}

// TestThirtyQuietDays runs a connection for 30 simulated days: the refresh
// token is exercised on schedule (every 72 hours), and only then.
func TestThirtyQuietDays(t *testing.T) {
	env, f := newEnv(t)
	env.RegisterDelayedCallback(func() { update(t, env, UpdateConsent, ConsentInput{Ref: "ref-0123456789"}, nil) }, time.Minute)
	var refreshedAt []time.Time
	f.refresh = func() (RefreshResult, error) {
		refreshedAt = append(refreshedAt, env.Now())
		return RefreshResult{AccessExpiry: env.Now().Add(time.Hour)}, nil
	}
	endWith(env, 30*24*time.Hour, func() {
		st := query(t, env)
		if st.State != StateActive || !st.LastRefresh.Equal(refreshedAt[len(refreshedAt)-1]) {
			t.Errorf("after 30 days: %s, last refresh %v", st.State, st.LastRefresh)
		}
	})
	env.ExecuteWorkflow(Connection, input())
	if n := len(refreshedAt); n != 9 {
		t.Errorf("refreshes in 30 days: %d, want 9 (every 72h after consent)", n)
	}
	for i := 1; i < len(refreshedAt); i++ {
		if gap := refreshedAt[i].Sub(refreshedAt[i-1]); gap < 71*time.Hour || gap > 73*time.Hour {
			t.Errorf("refresh %d came %s after the previous one", i, gap)
		}
	}
}

// TestContinueAsNewKeepsState lowers the threshold so the workflow
// continues as new, then runs the next generation from the carried state.
// carriedInput answers the input a workflow that ended with err continues
// as new with, and fails the test if it did not continue as new.
func carriedInput(t *testing.T, err error) ConnectionInput {
	t.Helper()
	var can *workflow.ContinueAsNewError
	if !errors.As(err, &can) {
		t.Fatalf("want continue-as-new, got %v", err)
	}
	var next ConnectionInput
	if err := converter.GetDefaultDataConverter().FromPayloads(can.Input, &next); err != nil {
		t.Fatal(err)
	}
	return next
}

// firstGeneration runs a connection through consent and backfill until it
// continues as new, and answers the input of the next generation.
func firstGeneration(t *testing.T) ConnectionInput {
	t.Helper()
	env, _ := newEnv(t)
	in := input()
	in.Options.ContinueAsNewAfter = 60
	env.RegisterDelayedCallback(func() { update(t, env, UpdateConsent, ConsentInput{Ref: "ref-0123456789"}, nil) }, time.Minute)
	// The test environment keeps no history; say it has grown.
	env.RegisterDelayedCallback(func() { env.SetCurrentHistoryLength(61) }, 2*time.Hour)
	env.ExecuteWorkflow(Connection, in)
	next := carriedInput(t, env.GetWorkflowError())
	next.Options.ContinueAsNewAfter = 10000
	return next
}

func TestContinueAsNewKeepsState(t *testing.T) {
	next := firstGeneration(t)
	if next.State == nil || next.State.State != StateActive || next.State.Mailbox != "ada@contoso.example" || next.State.Backfill.Covered.IsZero() {
		t.Fatalf("carried state = %+v", next.State)
	}
	env2, f2 := newEnv(t)
	endWith(env2, 24*time.Hour, func() {
		st := query(t, env2)
		if st.State != StateActive || st.Runs != 1 || st.Backfill.Runs != 1 {
			t.Errorf("second generation: %+v", st)
		}
	})
	env2.ExecuteWorkflow(Connection, next)
	if f2.exchanges.Load() != 0 || len(f2.backfills) != 0 {
		t.Errorf("the second generation redid work: %d exchanges, %d backfills", f2.exchanges.Load(), len(f2.backfills))
	}
}

// TestSyncModeOnEveryGeneration: a generation that starts already pushing
// (its mode never changes) still sets the SyncMode search attribute.
func TestSyncModeOnEveryGeneration(t *testing.T) {
	next := firstGeneration(t)
	if next.State.Sync.Mode != SyncPush {
		t.Fatalf("first generation ended in mode %q", next.State.Sync.Mode)
	}
	env, _ := newEnv(t)
	var modes []string
	env.OnUpsertTypedSearchAttributes(mock.Anything).Run(func(args mock.Arguments) {
		if sa, ok := args.Get(0).(temporal.SearchAttributes); ok {
			if m, ok := sa.GetKeyword(SASyncMode); ok {
				modes = append(modes, m)
			}
		}
	}).Return(nil)
	endWith(env, time.Hour, func() {})
	env.ExecuteWorkflow(Connection, next)
	if len(modes) == 0 || modes[0] != SyncPush {
		t.Errorf("SyncMode upserts in the second generation: %v, want push first", modes)
	}
}

// TestContinueAsNewDrainsUnreadSignals: signals delivered but not yet read
// when the workflow continues as new are applied to the carried state.
func TestContinueAsNewDrainsUnreadSignals(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflowWithOptions(func(ctx workflow.Context) error {
		progress, changes, lifecycle := workflow.NewBufferedChannel(ctx, 2), workflow.NewBufferedChannel(ctx, 2), workflow.NewBufferedChannel(ctx, 2)
		progress.Send(ctx, BackfillProgress{Folder: FolderProgress{ID: "f-inbox", Fetched: 7}})
		changes.Send(ctx, nil)
		lifecycle.Send(ctx, LifecycleSignal{Event: LifecycleReauthorizationRequired, SubscriptionID: "sub-1"})
		lifecycle.Send(ctx, LifecycleSignal{Event: LifecycleSubscriptionRemoved, SubscriptionID: "sub-replaced"})
		credential, ended := workflow.NewBufferedChannel(ctx, 1), workflow.NewBufferedChannel(ctx, 1)
		ended.Send(ctx, MailboxEnded{MailboxID: "mbx-gone"})
		contacts := workflow.NewBufferedChannel(ctx, 1)
		contacts.Send(ctx, nil)
		c := &connection{log: workflow.GetLogger(ctx), progress: progress, changes: changes, lifecycle: lifecycle, credential: credential, ended: ended, contacts: contacts}
		c.s = ConnectionState{ID: "c1", State: StateActive, Mailboxes: map[string]MailboxRef{"mbx-gone": {}, "mbx-kept": {}}}
		c.s.Sync.SubscriptionID = "sub-1"
		return c.continueAsNew(ctx)
	}, workflow.RegisterOptions{Name: "drain"})
	env.ExecuteWorkflow("drain")
	next := carriedInput(t, env.GetWorkflowError())
	p := next.State.Pending
	if !p.Sync || !p.Renew || p.Resubscribe || !p.Contacts {
		t.Errorf("carried pending work %+v, want sync, renew and contacts (the removal was about a replaced subscription)", p)
	}
	if _, gone := next.State.Mailboxes["mbx-gone"]; gone || len(next.State.Mailboxes) != 1 {
		t.Errorf("carried mailboxes %v, want the one that had not ended", next.State.Mailboxes)
	}
	if f := next.State.Backfill.Folders["f-inbox"]; f.Fetched != 7 {
		t.Errorf("carried folder progress %+v, want 7 fetched", f)
	}
}

func TestReauthAndResume(t *testing.T) {
	env, f := newEnv(t)
	dead := temporal.NewNonRetryableApplicationError("dead", ErrReauthRequired, nil, struct{ Reason, Text string }{"revoked", "The user's sessions were revoked."})
	f.refresh = func() (RefreshResult, error) { return RefreshResult{}, dead }
	var exchangeIn ExchangeCodeInput
	env.RegisterDelayedCallback(func() { update(t, env, UpdateConsent, ConsentInput{Ref: "ref-0123456789"}, nil) }, time.Minute)
	env.RegisterDelayedCallback(func() {
		st := query(t, env)
		if st.State != StateReauthRequired || st.Reason != "revoked" || st.ReasonText == "" {
			t.Errorf("after a dead refresh token: %s %q", st.State, st.Reason)
		}
		f.refresh = func() (RefreshResult, error) { return RefreshResult{AccessExpiry: time.Now().Add(time.Hour)}, nil }
		f.exchange = func(in ExchangeCodeInput) (ExchangeCodeResult, error) {
			exchangeIn = in
			return ExchangeCodeResult{UserID: "u-1", Mailbox: "ada@contoso.example", GrantedScopes: []string{"Mail.Read"}, Granted: Features{Read: true}}, nil
		}
		update(t, env, UpdateConsent, ConsentInput{Ref: "ref-abcdefghij"}, func(st Status, err error) {
			if err != nil || st.State != StateActive {
				t.Errorf("re-consent: %+v %v", st.State, err)
			}
		})
	}, 4*24*time.Hour)
	endWith(env, 5*24*time.Hour, func() {
		if st := query(t, env); st.State != StateActive || st.Backfill.Runs != 1 {
			t.Errorf("after re-consent: %s, %d backfills", st.State, st.Backfill.Runs)
		}
	})
	env.ExecuteWorkflow(Connection, input())
	if exchangeIn.ExpectUserID != "u-1" {
		t.Errorf("re-consent did not require the same account: %+v", exchangeIn)
	}
}

func TestWideningTheWindowBackfillsTheGap(t *testing.T) {
	env, f := newEnv(t)
	env.RegisterDelayedCallback(func() { update(t, env, UpdateConsent, ConsentInput{Ref: "ref-0123456789"}, nil) }, time.Minute)
	env.RegisterDelayedCallback(func() {
		s := input().Settings.WithDefaults()
		s.BackfillDays = 90
		update(t, env, UpdateSettings, s, nil)
	}, 2*time.Hour)
	endWith(env, 4*time.Hour, func() {
		st := query(t, env)
		if st.Backfill.Runs != 2 || st.Backfill.Running {
			t.Errorf("backfills: %+v", st.Backfill)
		}
	})
	env.ExecuteWorkflow(Connection, input())
	var wide []BackfillFolderInput
	for _, b := range f.backfills {
		if b.WindowStart.Before(f.backfills[0].WindowStart.Add(-59 * 24 * time.Hour)) {
			wide = append(wide, b)
		}
	}
	if len(wide) != 6 {
		t.Errorf("backfill calls for the wider window: %d %+v", len(wide), wide)
	}
}
