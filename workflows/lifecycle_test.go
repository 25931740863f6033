package workflows

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
)

func TestTransitions(t *testing.T) {
	allowed := map[[2]string]bool{}
	for from, tos := range transitions {
		for _, to := range tos {
			allowed[[2]string{from, to}] = true
		}
	}
	for _, from := range States {
		for _, to := range States {
			want := allowed[[2]string{from, to}] || from == to && from != StateDisconnected
			if got := CanMove(from, to); got != want {
				t.Errorf("CanMove(%s, %s) = %v, want %v", from, to, got, want)
			}
		}
	}
	// The cases the lifecycle depends on.
	for _, tt := range []struct {
		from, to string
		want     bool
	}{
		{StateDisconnecting, StateActive, false},
		{StateDisconnecting, StateReauthRequired, false},
		{StateDisconnected, StateDisconnecting, false},
		{StateConnecting, StateDisconnecting, true},
		{StateReauthRequired, StateActive, false}, // only through connecting
		{StateActive, StateDisconnecting, true},
	} {
		if got := CanMove(tt.from, tt.to); got != tt.want {
			t.Errorf("CanMove(%s, %s) = %v, want %v", tt.from, tt.to, got, tt.want)
		}
	}
	if len(transitions) != len(States) {
		t.Errorf("%d states have transitions, %d states exist", len(transitions), len(States))
	}
}

// TestDisconnectDuringExchange: a disconnect that arrives while the code is
// exchanged wins over the exchange's result: the saga runs, the connection
// never becomes active.
func TestDisconnectDuringExchange(t *testing.T) {
	env, f := newEnv(t)
	exchange := f.exchange
	f.exchange = func(in ExchangeCodeInput) (ExchangeCodeResult, error) {
		update(t, env, UpdateDisconnect, nil, nil)
		time.Sleep(50 * time.Millisecond) // let the update land before the result
		return exchange(in)
	}
	env.RegisterDelayedCallback(func() { update(t, env, UpdateConsent, ConsentInput{Ref: "ref-0123456789"}, nil) }, time.Minute)
	env.ExecuteWorkflow(Connection, input())
	var res ConnectionResult
	if err := env.GetWorkflowResult(&res); err != nil || res.State != StateDisconnected {
		t.Fatalf("result %+v %v, want disconnected", res, err)
	}
	if slices.Contains(f.recorded, StateActive) || slices.Contains(f.events, "connection.active") {
		t.Errorf("the exchange's result overwrote the disconnect: states %v, events %v", f.recorded, f.events)
	}
	if want := []string{ActivityDeleteSubscriptions, ActivityPurgeSecrets, ActivityApplyRetention + ":" + RetentionDelete}; !slices.Equal(f.saga, want) {
		t.Errorf("saga %v, want %v", f.saga, want)
	}
}

// TestBackfillDeadTokenDuringDisconnect: a backfill that fails with dead
// tokens while the disconnect cancels it neither parks the connection in
// reauth_required nor tells the app so.
func TestBackfillDeadTokenDuringDisconnect(t *testing.T) {
	env, f := newEnv(t)
	dead := temporal.NewNonRetryableApplicationError("dead", ErrReauthRequired, nil, struct{ Reason, Text string }{"revoked", "revoked"})
	env.RegisterActivityWithOptions(func(ctx context.Context, in BackfillFolderInput) (BackfillFolderResult, error) {
		update(t, env, UpdateDisconnect, nil, nil)
		time.Sleep(50 * time.Millisecond)
		return BackfillFolderResult{}, dead
	}, activity.RegisterOptions{Name: ActivityBackfillFolder})
	env.RegisterDelayedCallback(func() { update(t, env, UpdateConsent, ConsentInput{Ref: "ref-0123456789"}, nil) }, time.Minute)
	env.ExecuteWorkflow(Connection, input())
	var res ConnectionResult
	if err := env.GetWorkflowResult(&res); err != nil || res.State != StateDisconnected {
		t.Fatalf("result %+v %v, want disconnected", res, err)
	}
	if slices.Contains(f.recorded, StateReauthRequired) || slices.Contains(f.events, "connection.reauth_required") {
		t.Errorf("a disconnecting connection was parked: states %v, events %v", f.recorded, f.events)
	}
}

// TestCancelMeansDisconnect: cancelling the workflow (the Temporal UI's
// Request Cancellation) runs the disconnect saga and ends disconnected, in
// every state.
func TestCancelMeansDisconnect(t *testing.T) {
	for _, tt := range []struct {
		name    string
		consent bool
		at      time.Duration
	}{
		{"pending_consent", false, time.Hour},
		{"during backfill", true, time.Minute + time.Millisecond},
		{"active", true, 6 * time.Hour},
	} {
		t.Run(tt.name, func(t *testing.T) {
			env, f := newEnv(t)
			if tt.consent {
				env.RegisterDelayedCallback(func() { update(t, env, UpdateConsent, ConsentInput{Ref: "ref-0123456789"}, nil) }, time.Minute)
			}
			env.RegisterDelayedCallback(env.CancelWorkflow, tt.at)
			env.ExecuteWorkflow(Connection, input())
			var res ConnectionResult
			if err := env.GetWorkflowResult(&res); err != nil || res.State != StateDisconnected {
				t.Fatalf("result %+v %v, want disconnected", res, err)
			}
			if want := []string{ActivityDeleteSubscriptions, ActivityPurgeSecrets, ActivityApplyRetention + ":" + RetentionDelete}; !slices.Equal(f.saga, want) {
				t.Errorf("saga %v, want %v", f.saga, want)
			}
			if f.recorded[len(f.recorded)-1] != StateDisconnected || !slices.Contains(f.events, "connection.disconnected") {
				t.Errorf("registry %v, events %v", f.recorded, f.events)
			}
		})
	}
}

// TestCatchUpAfterReconsent: the round that met dead tokens is run again as
// soon as the user consents again, not at the next notification or
// reconciliation.
func TestCatchUpAfterReconsent(t *testing.T) {
	env, f := newEnv(t)
	f.syncErr = temporal.NewNonRetryableApplicationError("dead", ErrReauthRequired, nil, struct{ Reason, Text string }{"revoked", "revoked"})
	env.RegisterDelayedCallback(func() { update(t, env, UpdateConsent, ConsentInput{Ref: "ref-0123456789"}, nil) }, time.Minute)
	env.RegisterDelayedCallback(func() {
		f.syncFail.Store(1)
		env.SignalWorkflow(SignalChanges, nil)
	}, time.Hour)
	var before int32
	env.RegisterDelayedCallback(func() {
		if st := query(t, env); st.State != StateReauthRequired {
			t.Fatalf("after dead tokens: %s", st.State)
		}
		before = f.syncs.Load()
		update(t, env, UpdateConsent, ConsentInput{Ref: "ref-abcdefghij"}, nil)
	}, 2*time.Hour)
	endWith(env, 2*time.Hour+time.Minute, func() {
		st := query(t, env)
		if st.State != StateActive || f.syncs.Load() == before {
			t.Errorf("a minute after re-consent: %s, %d rounds since", st.State, f.syncs.Load()-before)
		}
	})
	env.ExecuteWorkflow(Connection, input())
}

// TestFolderGoneKeepsSyncing: a folder deleted at Microsoft is dropped by
// the round that meets it; the connection tells the app and goes on.
func TestFolderGoneKeepsSyncing(t *testing.T) {
	env, f := newEnv(t)
	env.RegisterDelayedCallback(func() { update(t, env, UpdateConsent, ConsentInput{Ref: "ref-0123456789"}, nil) }, time.Minute)
	env.RegisterActivityWithOptions(func(ctx context.Context, in SyncFoldersInput) (SyncFoldersResult, error) {
		f.syncs.Add(1)
		if f.syncs.Load() == 2 {
			return SyncFoldersResult{Upserted: 1, Gone: []FolderRef{{ID: "f-proj", Name: "Projects"}}}, nil
		}
		return SyncFoldersResult{Upserted: 1}, nil
	}, activity.RegisterOptions{Name: ActivitySyncFolders})
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(SignalChanges, nil) }, time.Hour)
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(SignalChanges, nil) }, 2*time.Hour)
	endWith(env, 3*time.Hour, func() {
		st := query(t, env)
		if _, still := st.Backfill.Folders["f-proj"]; still || st.Sync.GoneFolders != 1 || st.Sync.LastError != "" || st.Sync.Rounds < 3 {
			t.Errorf("after a folder went: %+v", st.Sync)
		}
		if !slices.Contains(f.events, "folder.removed") {
			t.Errorf("events %v", f.events)
		}
	})
	env.ExecuteWorkflow(Connection, input())
}

// TestFoldersChangeBackfills: other folders in the settings are backfilled
// (over the whole window, also when the window widens at the same time),
// and the registry gets the settings before the update answers.
func TestFoldersChangeBackfills(t *testing.T) {
	env, f := newEnv(t)
	env.RegisterDelayedCallback(func() { update(t, env, UpdateConsent, ConsentInput{Ref: "ref-0123456789"}, nil) }, time.Minute)
	var discovered [][]string
	env.RegisterActivityWithOptions(func(ctx context.Context, in DiscoverFoldersInput) (DiscoverFoldersResult, error) {
		discovered = append(discovered, in.Roots)
		folders := slices.Clone(f.folders)
		if slices.Contains(in.Roots, "drafts") {
			folders = append(folders, FolderRef{ID: "f-drafts", Name: "Drafts", WellKnown: "drafts"})
		}
		return DiscoverFoldersResult{Folders: folders, Missing: []string{"archive"}}, nil
	}, activity.RegisterOptions{Name: ActivityDiscoverFolders})
	env.RegisterDelayedCallback(func() {
		s := input().Settings.WithDefaults()
		s.Folders = append(s.Folders, "drafts")
		s.BackfillDays = 60
		update(t, env, UpdateSettings, s, func(st Status, err error) {
			if err != nil || !slices.Contains(st.Settings.Folders, "drafts") {
				t.Errorf("settings update: %v %v", st.Settings, err)
			}
			if n := len(f.settings); n == 0 || !slices.Contains(f.settings[n-1].Folders, "drafts") {
				t.Errorf("the update answered before the registry had the settings: %v", f.settings)
			}
		})
	}, 2*time.Hour)
	endWith(env, 4*time.Hour, func() {
		st := query(t, env)
		if st.Backfill.Runs != 2 || !slices.Contains(st.Backfill.Roots, "drafts") || !slices.Equal(st.Backfill.Missing, []string{"archive"}) {
			t.Errorf("after adding a folder: %+v", st.Backfill)
		}
		if _, ok := st.Backfill.Folders["f-drafts"]; !ok {
			t.Errorf("the new folder has no progress: %+v", st.Backfill.Folders)
		}
	})
	env.ExecuteWorkflow(Connection, input())
	if len(discovered) != 2 || !slices.Contains(discovered[1], "drafts") {
		t.Errorf("discoveries %v", discovered)
	}
	var drafts []BackfillFolderInput
	for _, b := range f.backfills {
		if b.FolderID == "f-drafts" {
			drafts = append(drafts, b)
		}
	}
	if len(drafts) == 0 || drafts[0].WindowStart.After(env.Now().Add(-59*24*time.Hour)) {
		t.Errorf("the new folder was not backfilled over the wider window: %+v", drafts)
	}
}

// TestRetriesBackOff: a round that keeps failing is retried after a
// minute, then two, four... up to an hour; a success resets it.
func TestRetriesBackOff(t *testing.T) {
	env, f := newEnv(t)
	f.syncErr = temporal.NewNonRetryableApplicationError("refused", ErrGraphRejected, nil)
	env.RegisterDelayedCallback(func() { update(t, env, UpdateConsent, ConsentInput{Ref: "ref-0123456789"}, nil) }, time.Minute)
	var failedFrom time.Time
	env.RegisterDelayedCallback(func() {
		f.mu.Lock()
		f.at = nil
		f.mu.Unlock()
		f.syncFail.Store(1000)
		failedFrom = env.Now()
		env.SignalWorkflow(SignalChanges, nil)
	}, time.Hour)
	endWith(env, 12*time.Hour, func() {})
	env.ExecuteWorkflow(Connection, input())
	f.mu.Lock()
	defer f.mu.Unlock()
	var gaps []time.Duration
	last := failedFrom
	for _, at := range f.at[ActivitySyncFolders] {
		// a local round and its retry as an activity come together
		if at.Sub(last) > time.Second {
			gaps = append(gaps, at.Sub(last).Round(time.Minute))
		}
		last = at
	}
	want := []time.Duration{time.Minute, 2 * time.Minute, 4 * time.Minute, 8 * time.Minute, 16 * time.Minute, 32 * time.Minute, time.Hour, time.Hour}
	if len(gaps) < len(want) || !slices.Equal(gaps[:len(want)], want) {
		t.Errorf("gaps between failed rounds %v, want %v then hourly", gaps, want)
	}
}

// TestRegistryWriteRetried: a registry write that fails is retried, and
// the events of state changes reach the registry with their state, once.
func TestRegistryWriteRetried(t *testing.T) {
	env, f := newEnv(t)
	f.recordFails = 3
	env.RegisterDelayedCallback(func() { update(t, env, UpdateConsent, ConsentInput{Ref: "ref-0123456789"}, nil) }, time.Minute)
	endWith(env, time.Hour, func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		if len(f.recorded) == 0 || f.recorded[0] != StateActive || slices.Index(f.events, "connection.active") != 0 {
			t.Errorf("registry %v, events %v", f.recorded, f.events)
		}
	})
	env.ExecuteWorkflow(Connection, input())
	seen := map[string]bool{}
	for _, id := range f.eventIDs {
		if seen[id] {
			t.Errorf("event %s written twice", id)
		}
		seen[id] = true
	}
}

// TestResyncRefusesUnknownFolders: a re-anchor of a folder the connection
// does not sync is refused, not dropped.
func TestResyncRefusesUnknownFolders(t *testing.T) {
	env, _ := newEnv(t)
	env.RegisterDelayedCallback(func() { update(t, env, UpdateConsent, ConsentInput{Ref: "ref-0123456789"}, nil) }, time.Minute)
	var refused, accepted []string
	env.RegisterDelayedCallback(func() {
		for _, f := range []string{"no-such-folder", "inbox", "f-proj", "Projects", "*", "bad\x00name"} {
			update(t, env, UpdateResync, ResyncInput{Folders: []string{f}}, func(_ Status, err error) {
				if err != nil {
					refused = append(refused, f)
				} else {
					accepted = append(accepted, f)
				}
			})
		}
	}, time.Hour)
	endWith(env, 2*time.Hour, func() {})
	env.ExecuteWorkflow(Connection, input())
	if !slices.Equal(refused, []string{"no-such-folder", "bad\x00name"}) {
		t.Errorf("refused %q, accepted %q", refused, accepted)
	}
}

// TestSettingsKeptWhenTheRegistryRefuses: a settings update whose
// registry write fails answers an error, and the workflow keeps the
// settings the registry holds, so the two never disagree; the registry's
// other writes go on.
func TestSettingsKeptWhenTheRegistryRefuses(t *testing.T) {
	env, f := newEnv(t)
	env.RegisterDelayedCallback(func() { update(t, env, UpdateConsent, ConsentInput{Ref: "ref-0123456789"}, nil) }, time.Minute)
	var before Status
	var answer error
	answered := false
	env.RegisterDelayedCallback(func() {
		before = query(t, env)
		f.mu.Lock()
		f.refuseSettings = true
		f.mu.Unlock()
		changed := before.Settings
		changed.Folders, changed.PollMinutes = []string{"inbox"}, 15
		update(t, env, UpdateSettings, changed, func(_ Status, err error) { answer, answered = err, true })
	}, time.Hour)
	env.RegisterDelayedCallback(func() {
		f.mu.Lock()
		f.refuseSettings = false // the registry is well again
		f.mu.Unlock()
	}, 90*time.Minute)
	endWith(env, 2*time.Hour, func() {
		if got := query(t, env).Settings; !settingsEqual(got, before.Settings) {
			t.Errorf("the workflow kept %+v, the registry holds %+v", got, before.Settings)
		}
	})
	env.ExecuteWorkflow(Connection, input())
	var ae *temporal.ApplicationError
	if !answered || !errors.As(answer, &ae) || ae.Type() != ErrSettingsNotRecorded {
		t.Errorf("the update answered %v (answered: %v)", answer, answered)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.settings) != 0 { // nothing was left to write once it was well
		t.Errorf("the registry was given settings %+v", f.settings)
	}
	if !slices.Contains(f.recorded, StateDisconnected) {
		t.Errorf("the registry's later writes stopped: %v", f.recorded)
	}
}

// hostileFolders are folder lists no settings or resync may carry, with
// what the refusal names.
var hostileFolders = []struct {
	name    string
	folders []string
	says    string
}{
	{"path up", []string{"../inbox"}, "is a path"},
	{"path", []string{"a/b"}, "is a path"},
	{"backslash", []string{`a\b`}, "is a path"},
	{"dot dot", []string{".."}, "is a path"},
	{"invalid UTF-8", []string{"in\xffbox"}, "not valid UTF-8"},
	{"surrogate", []string{"in\xed\xa0\x80box"}, "not valid UTF-8"},
	{"replacement character", []string{"in\ufffdbox"}, "not valid UTF-8"},
	{"NUL", []string{"in\x00box"}, "control character"},
	{"newline", []string{"in\nbox"}, "control character"},
	{"invisible", []string{"in\u200ebox"}, "control character"},
	{"null", nil, "not null"},
	{"empty list", []string{}, "the list is empty"},
	{"51 items", manyFolders(51), "at most 50 folders, not 51"},
	{"1000 characters", []string{strings.Repeat("a", 1000)}, "1000 characters long"},
	{"empty name", []string{"inbox", ""}, "folders[1] is empty"},
	{"spaces", []string{" inbox"}, "starts or ends with a space"},
	{"twice", []string{"inbox", "INBOX"}, `folders[1] "INBOX" names the same folder as folders[0]`},
}

func manyFolders(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("folder-%d", i)
	}
	return out
}

// TestValidateFolders: every hostile folder list is refused with a
// sentence naming the bad item; names outlookd resolves pass.
func TestValidateFolders(t *testing.T) {
	for _, tc := range hostileFolders {
		err := ValidateFolders(tc.folders)
		var fe *FolderError
		if !errors.As(err, &fe) || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%s: %v, want a FolderError saying %q", tc.name, err, tc.says)
		}
		if len(tc.folders) > 0 {
			if err := (Settings{Folders: tc.folders}).Validate(); err == nil {
				t.Errorf("%s: Settings.Validate accepted %q", tc.name, tc.folders)
			}
		}
	}
	for _, ok := range [][]string{
		{"inbox", "sentitems", "archive"}, {"Projects 2026"}, {"AAMkAGI2TG93AAA-_=", "Ünïcode"}, manyFolders(50),
		{strings.Repeat("é", MaxFolderName)},
	} {
		if err := ValidateFolders(ok); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
	if err := ValidateResyncFolders([]string{"*", "inbox"}); err != nil {
		t.Errorf("resync of every folder refused: %v", err)
	}
	if err := ValidateFolders([]string{"*"}); err == nil {
		t.Error("settings took \"*\" as a folder")
	}
}

// TestUpdatesRefuseHostileFolders: the settings and resync validators
// refuse every hostile folder list, so nothing is applied and the registry
// is never asked to hold one.
func TestUpdatesRefuseHostileFolders(t *testing.T) {
	env, f := newEnv(t)
	env.RegisterDelayedCallback(func() { update(t, env, UpdateConsent, ConsentInput{Ref: "ref-0123456789"}, nil) }, time.Minute)
	var accepted []string
	var before Status
	env.RegisterDelayedCallback(func() {
		before = query(t, env)
		for _, tc := range hostileFolders {
			settings := before.Settings
			settings.Folders = tc.folders
			for name, arg := range map[string]any{UpdateSettings: settings, UpdateResync: ResyncInput{Folders: tc.folders}} {
				if name == UpdateResync && len(tc.folders) == 0 {
					continue // a resync without folders syncs them all
				}
				update(t, env, name, arg, func(_ Status, err error) {
					if err == nil {
						accepted = append(accepted, name+" "+tc.name)
					}
				})
			}
		}
	}, time.Hour)
	endWith(env, 2*time.Hour, func() {
		if got := query(t, env).Settings; !settingsEqual(got, before.Settings) {
			t.Errorf("settings changed to %+v", got)
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, s := range f.settings {
			if err := ValidateFolders(s.Folders); err != nil {
				t.Errorf("the registry was given %q", s.Folders)
			}
		}
	})
	env.ExecuteWorkflow(Connection, input())
	if len(accepted) > 0 {
		t.Errorf("accepted: %q", accepted)
	}
}

// TestDisconnectEndsWaitingSends: the saga tells every send waiting to go
// (paged from the registry) that the connection is being disconnected,
// before anything else and without waiting for them; a send whose
// workflow has ended meanwhile holds nothing up.
func TestDisconnectEndsWaitingSends(t *testing.T) {
	env, f := newEnv(t)
	for i := range 450 {
		f.waiting = append(f.waiting, fmt.Sprintf("snd_%04d", i))
	}
	told := map[string]SendEndedSignal{}
	var toldAt []time.Time
	var toldMu sync.Mutex // the test environment calls the mock from a goroutine per signal
	env.OnSignalExternalWorkflow(mock.Anything, mock.Anything, "", SignalSendEnded, mock.Anything).Return(
		func(_, workflowID, _, _ string, arg any) error {
			toldMu.Lock()
			defer toldMu.Unlock()
			told[workflowID] = arg.(SendEndedSignal)
			toldAt = append(toldAt, env.Now())
			if workflowID == "connection/c1/send/snd_0007" {
				return errors.New("workflow execution already completed")
			}
			return nil
		})
	env.RegisterDelayedCallback(func() { update(t, env, UpdateConsent, ConsentInput{Ref: "ref-0123456789"}, nil) }, time.Minute)
	var asked time.Time
	env.RegisterDelayedCallback(func() { asked = env.Now(); update(t, env, UpdateDisconnect, nil, nil) }, time.Hour)
	env.ExecuteWorkflow(Connection, input())
	var res ConnectionResult
	if err := env.GetWorkflowResult(&res); err != nil || res.State != StateDisconnected {
		t.Fatalf("result %+v %v, want disconnected", res, err)
	}
	if len(told) != len(f.waiting) || len(f.waitingIns) != 3 {
		t.Fatalf("told %d of %d waiting sends, in %d pages", len(told), len(f.waiting), len(f.waitingIns))
	}
	for _, id := range f.waiting {
		if sig, ok := told["connection/c1/send/"+id]; !ok || sig.Reason != ReasonConnectionEnded {
			t.Errorf("send %s told %+v (%v)", id, sig, ok)
		}
	}
	if last := toldAt[len(toldAt)-1]; last.Sub(asked) > time.Minute {
		t.Errorf("the last send was told %v after the disconnect", last.Sub(asked))
	}
	if want := []string{ActivityDeleteSubscriptions, ActivityPurgeSecrets, ActivityApplyRetention + ":" + RetentionDelete}; !slices.Equal(f.saga, want) {
		t.Errorf("saga %v, want %v", f.saga, want)
	}
}

// TestConsentBySignal: a consent handed over as a signal (when Temporal
// refused the update for a failed workflow task) connects as the update
// does; the same consent arriving both ways is taken once, whichever comes
// first, even after its exchange failed.
func TestConsentBySignal(t *testing.T) {
	for _, tc := range []struct {
		name string
		// updateFirst: the same consent came as an update a minute before
		// the signal; updateAfter: a minute after it.
		updateFirst, updateAfter bool
		// refused: the exchange finds the mailbox taken.
		refused bool
	}{
		{name: "waiting for consent: connects"},
		{name: "the update first: the signal dropped", updateFirst: true},
		{name: "the signal first: the update refused", updateAfter: true},
		{name: "the exchange failed: the signal after it dropped", updateFirst: true, refused: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env, f := newEnv(t)
			if tc.refused {
				f.exchange = func(ExchangeCodeInput) (ExchangeCodeResult, error) {
					return ExchangeCodeResult{}, temporal.NewNonRetryableApplicationError("the mailbox is already connected", ErrMailboxTaken, nil)
				}
			}
			in := ConsentInput{Ref: "ref-0123456789"}
			if tc.updateFirst {
				env.RegisterDelayedCallback(func() { update(t, env, UpdateConsent, in, nil) }, time.Minute)
			}
			env.RegisterDelayedCallback(func() { env.SignalWorkflow(SignalConsent, in) }, 2*time.Minute)
			if tc.updateAfter {
				env.RegisterDelayedCallback(func() {
					update(t, env, UpdateConsent, in, func(_ Status, err error) {
						if err == nil {
							t.Error("the same consent was taken again by the update")
						}
					})
				}, 3*time.Minute)
			}
			endWith(env, 30*time.Minute, func() {
				st := query(t, env)
				switch {
				case tc.refused && (st.State != StatePendingConsent || st.Reason != ReasonMailboxTaken):
					t.Errorf("after the refused exchange and the signal: %s (%s)", st.State, st.Reason)
				case !tc.refused && (st.State != StateActive || st.Mailbox != "ada@contoso.example"):
					t.Errorf("after the signal: %s (%s)", st.State, st.Reason)
				}
			})
			env.ExecuteWorkflow(Connection, input())
			if n := f.exchanges.Load(); n != 1 {
				t.Errorf("%d code exchanges, want 1", n)
			}
		})
	}
}
