package workflows

import (
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"
)

// TestNinetyQuietDaysAcrossContinueAsNew runs one connection for 90
// simulated days, generation after generation of continue-as-new (the
// history is said to outgrow its limit every week). It checks that the
// refresh token is exercised and the subscription renewed on time across
// generations, that exactly one subscription ever exists, that the
// reconciliation runs, and that a change signal arriving as the history is
// cut over is carried into the next generation and synced there.
func TestNinetyQuietDaysAcrossContinueAsNew(t *testing.T) {
	const (
		days = 90
		week = 7 * 24 * time.Hour
	)
	start := time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)
	end := start.Add(days * 24 * time.Hour)
	in := input()
	in.Options.ContinueAsNewAfter = 1000
	var refreshes, syncs, renews []time.Time
	subscribes, generations, carried := 0, 0, 0
	var cutovers []time.Time // when a generation ended with a signal in flight
	now := start
	for now.Before(end) {
		env, f := newEnv(t)
		env.SetStartTime(now)
		f.refresh = func() (RefreshResult, error) {
			refreshes = append(refreshes, env.Now())
			return RefreshResult{AccessExpiry: env.Now().Add(time.Hour)}, nil
		}
		if generations == 0 {
			env.RegisterDelayedCallback(func() { update(t, env, UpdateConsent, ConsentInput{Ref: "ref-0123456789"}, nil) }, time.Minute)
		}
		last := end.Sub(now) <= week
		if last {
			endWith(env, end.Sub(now), func() {
				st := query(t, env)
				if st.State != StateActive || st.Sync.Mode != SyncPush || st.Runs != generations {
					t.Errorf("after %d days: state %s, mode %s, runs %d", days, st.State, st.Sync.Mode, st.Runs)
				}
			})
		} else {
			// A change starts a delta round; while it runs, another change
			// and a lifecycle event arrive and the history grows too long.
			// The round ends, the workflow continues as new: both signals
			// must survive the cut-over.
			env.RegisterDelayedCallback(func() {
				f.mu.Lock()
				f.duringSync = func() {
					env.SignalWorkflow(SignalChanges, nil)
					env.SignalWorkflow(SignalLifecycle, LifecycleSignal{Event: LifecycleReauthorizationRequired})
					env.SetCurrentHistoryLength(in.Options.ContinueAsNewAfter + 1)
				}
				f.mu.Unlock()
				env.SignalWorkflow(SignalChanges, nil)
			}, week)
		}
		env.ExecuteWorkflow(Connection, in)
		f.mu.Lock()
		syncs = append(syncs, f.at[ActivitySyncFolders]...)
		renews = append(renews, f.at[ActivityRenewSubscription]...)
		subscribes += len(f.at[ActivityEnsureSubscription])
		f.mu.Unlock()
		generations++
		if last {
			if err := env.GetWorkflowError(); err != nil && !temporal.IsCanceledError(err) {
				t.Fatalf("last generation ended with %v", env.GetWorkflowError())
			}
			break
		}
		next := carriedInput(t, env.GetWorkflowError())
		if next.State.Pending.Sync && next.State.Pending.Renew {
			carried++
		}
		now = env.Now()
		cutovers = append(cutovers, now)
		next.Options = in.Options
		in = next
	}

	if want := days/7 + 1; generations != want {
		t.Errorf("generations: %d, want %d", generations, want)
	}
	if carried != len(cutovers) {
		t.Errorf("%d of %d cut-overs carried the pending change", carried, len(cutovers))
	}
	// Each carried change is synced as soon as the next generation starts.
	for _, at := range cutovers {
		found := false
		for _, s := range syncs {
			if !s.Before(at) && s.Sub(at) < time.Minute {
				found = true
			}
		}
		if !found {
			t.Errorf("the change signalled at %s was not synced by the next generation", at.Format(time.RFC3339))
		}
	}
	if subscribes != 1 {
		t.Errorf("subscriptions created: %d, want exactly 1 in 90 quiet days", subscribes)
	}
	checkGaps(t, "refresh", start, end, refreshes, 72*time.Hour+time.Minute)
	// Renewal every lifetime minus the margin (70.5 h - 24 h), never late.
	checkGaps(t, "renewal", start, end, renews, 4230*time.Minute-24*time.Hour+time.Minute)
	checkGaps(t, "reconciliation", start, end, syncs, 6*time.Hour+time.Minute)
	t.Logf("%d days: %d generations, %d refreshes, %d renewals, %d delta rounds", days, generations, len(refreshes), len(renews), len(syncs))
}

// checkGaps fails when two consecutive times, or the last and the end, are
// further apart than max; the first may come up to an hour later (consent
// and the first backfill come before the schedule starts).
func checkGaps(t *testing.T, what string, start, end time.Time, at []time.Time, max time.Duration) {
	t.Helper()
	if len(at) == 0 {
		t.Errorf("no %s at all", what)
		return
	}
	prev, slack := start, time.Hour
	for _, x := range append(at, end) {
		if gap := x.Sub(prev); gap > max+slack {
			t.Errorf("%s: a gap of %s before %s (at most %s)", what, gap, x.Format(time.RFC3339), max)
		}
		prev, slack = x, 0
	}
}
