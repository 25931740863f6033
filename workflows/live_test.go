package workflows

import (
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"
)

func TestLiveSyncRenewalAndLifecycle(t *testing.T) {
	env, f := newEnv(t)
	in := input()
	in.Options.SubscriptionLifetime = 48 * time.Hour
	env.RegisterDelayedCallback(func() { update(t, env, UpdateConsent, ConsentInput{Ref: "ref-0123456789"}, nil) }, time.Minute)
	var sub string
	env.RegisterDelayedCallback(func() {
		st := query(t, env)
		if st.Sync.Mode != SyncPush || st.Sync.SubscriptionID == "" || st.Sync.Rounds == 0 {
			t.Errorf("after backfill: %+v", st.Sync)
		}
		sub = st.Sync.SubscriptionID
		rounds := f.syncs.Load()
		// A burst of notifications coalesces into few rounds.
		for range 50 {
			env.SignalWorkflow(SignalChanges, nil)
		}
		env.RegisterDelayedCallback(func() {
			if n := f.syncs.Load() - rounds; n < 1 || n > 2 {
				t.Errorf("50 notifications ran %d rounds", n)
			}
		}, time.Second)
	}, 10*time.Minute)
	// Renewal: a day before the 48 h lifetime ends.
	env.RegisterDelayedCallback(func() {
		if f.renews.Load() != 1 {
			t.Errorf("renewals after 26h: %d", f.renews.Load())
		}
		// Graph removed it: recreated, and a round catches up.
		before := f.subscribes.Load()
		env.SignalWorkflow(SignalLifecycle, LifecycleSignal{Event: LifecycleSubscriptionRemoved, SubscriptionID: sub})
		env.RegisterDelayedCallback(func() {
			if f.subscribes.Load() != before+1 {
				t.Error("a removed subscription was not recreated")
			}
			st := query(t, env)
			if st.Sync.SubscriptionID == sub {
				t.Error("the old subscription ID is still in use")
			}
			// Events about a replaced subscription are ignored; reauth renews.
			renews := f.renews.Load()
			env.SignalWorkflow(SignalLifecycle, LifecycleSignal{Event: LifecycleReauthorizationRequired, SubscriptionID: sub})
			env.SignalWorkflow(SignalLifecycle, LifecycleSignal{Event: LifecycleReauthorizationRequired, SubscriptionID: st.Sync.SubscriptionID})
			env.RegisterDelayedCallback(func() {
				if f.renews.Load() != renews+1 {
					t.Errorf("reauthorizationRequired renewed %d times", f.renews.Load()-renews)
				}
			}, time.Second)
		}, time.Second)
	}, 26*time.Hour)
	// Renewing a subscription Graph lost recreates it.
	env.RegisterDelayedCallback(func() { f.renewGone.Store(true) }, 30*time.Hour)
	endWith(env, 4*24*time.Hour, func() {
		st := query(t, env)
		if st.Sync.Mode != SyncPush || st.Sync.SubscriptionExpires.Before(env.Now()) {
			t.Errorf("after 4 days: %+v", st.Sync)
		}
		// Reconciliation every 6 hours, without notifications.
		if st.Sync.Rounds < 4*4 {
			t.Errorf("only %d rounds in 4 days", st.Sync.Rounds)
		}
	})
	env.ExecuteWorkflow(Connection, in)
	if f.subscribes.Load() < 3 {
		t.Errorf("subscriptions created: %d", f.subscribes.Load())
	}
}

func TestPollingWithoutNotificationURL(t *testing.T) {
	env, f := newEnv(t)
	in := input()
	in.Options.NotificationURL = ""
	env.RegisterDelayedCallback(func() { update(t, env, UpdateConsent, ConsentInput{Ref: "ref-0123456789"}, nil) }, time.Minute)
	endWith(env, time.Hour, func() {
		st := query(t, env)
		if st.Sync.Mode != SyncPolling || st.Sync.PollReason == "" || st.Sync.Rounds < 10 {
			t.Errorf("polling: %+v", st.Sync)
		}
	})
	env.ExecuteWorkflow(Connection, in)
	if f.subscribes.Load() != 0 {
		t.Error("a polling connection subscribed")
	}
}

func TestPollingIntervalFromSettings(t *testing.T) {
	env, f := newEnv(t)
	in := input()
	in.Options.NotificationURL = ""
	in.Settings.PollMinutes = 20
	env.RegisterDelayedCallback(func() { update(t, env, UpdateConsent, ConsentInput{Ref: "ref-0123456789"}, nil) }, time.Minute)
	endWith(env, 10*time.Hour, func() {})
	env.ExecuteWorkflow(Connection, in)
	f.mu.Lock()
	defer f.mu.Unlock()
	syncs := f.at[ActivitySyncFolders]
	if len(syncs) < 25 || len(syncs) > 32 {
		t.Errorf("%d rounds in 10 hours at a 20-minute interval", len(syncs))
	}
	for i := 1; i < len(syncs); i++ {
		if gap := syncs[i].Sub(syncs[i-1]); gap > 20*time.Minute {
			t.Errorf("round %d came %s after the previous one", i, gap)
		}
	}
	var bad error
	env2, _ := newEnv(t)
	env2.RegisterDelayedCallback(func() {
		update(t, env2, UpdateSettings, Settings{PollMinutes: 5000}, func(_ Status, err error) { bad = err })
	}, time.Minute)
	endWith(env2, time.Hour, func() {})
	env2.ExecuteWorkflow(Connection, input())
	if bad == nil {
		t.Error("a 5000-minute polling interval was accepted")
	}
}

func TestDisconnectFromEveryState(t *testing.T) {
	dead := temporal.NewNonRetryableApplicationError("dead", ErrReauthRequired, nil, struct{ Reason, Text string }{"revoked", "revoked"})
	tests := []struct {
		name      string
		consent   bool
		dead      bool
		at        time.Duration
		retention string
	}{
		{"pending_consent", false, false, time.Hour, RetentionDelete},
		{"active", true, false, time.Hour, RetentionKeep},
		{"during backfill", true, false, time.Minute + time.Millisecond, RetentionDelete},
		{"reauth_required", true, true, 4 * 24 * time.Hour, RetentionDelete},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env, f := newEnv(t)
			in := input()
			in.Settings.Retention = tt.retention
			if tt.dead {
				f.refresh = func() (RefreshResult, error) { return RefreshResult{}, dead }
			}
			if tt.consent {
				env.RegisterDelayedCallback(func() { update(t, env, UpdateConsent, ConsentInput{Ref: "ref-0123456789"}, nil) }, time.Minute)
			}
			env.RegisterDelayedCallback(func() {
				update(t, env, UpdateDisconnect, nil, func(st Status, err error) {
					if err != nil || st.State != StateDisconnecting {
						t.Errorf("disconnect: %s %v", st.State, err)
					}
					if strings.HasSuffix(st.NextAction, ": ") || !strings.HasPrefix(st.NextAction, "disconnecting") {
						t.Errorf("next action %q", st.NextAction)
					}
				})
				// Asking again while the saga runs is answered, not refused,
				// and runs the saga once.
				update(t, env, UpdateDisconnect, nil, func(st Status, err error) {
					if err != nil || st.State != StateDisconnecting {
						t.Errorf("second disconnect: %s %v", st.State, err)
					}
				})
			}, tt.at)
			env.ExecuteWorkflow(Connection, in)
			var res ConnectionResult
			if err := env.GetWorkflowResult(&res); err != nil || res.State != StateDisconnected {
				t.Fatalf("result: %+v %v", res, err)
			}
			want := []string{ActivityDeleteSubscriptions, ActivityPurgeSecrets, ActivityApplyRetention + ":" + tt.retention}
			if !slices.Equal(f.saga, want) {
				t.Errorf("saga = %v", f.saga)
			}
			if !slices.Contains(f.events, "connection.disconnected") {
				t.Errorf("events = %v", f.events)
			}
			if tt.dead && !slices.Contains(f.events, "connection.reauth_required") {
				t.Errorf("no reauth_required event: %v", f.events)
			}
		})
	}
}

// TestLiveRoundLocalThenActivity: a notified round runs as a local
// activity; one that fails runs again as a normal activity and counts once.
func TestLiveRoundLocalThenActivity(t *testing.T) {
	env, f := newEnv(t)
	env.RegisterDelayedCallback(func() { update(t, env, UpdateConsent, ConsentInput{Ref: "ref-0123456789"}, nil) }, time.Minute)
	env.RegisterDelayedCallback(func() {
		rounds, locals, calls := query(t, env).Sync.Rounds, f.localSyncs.Load(), f.syncs.Load()
		env.SignalWorkflow(SignalChanges, nil)
		env.RegisterDelayedCallback(func() {
			if f.localSyncs.Load() != locals+1 || f.syncs.Load() != calls+1 {
				t.Errorf("a notified round: %d local of %d calls", f.localSyncs.Load()-locals, f.syncs.Load()-calls)
			}
			if st := query(t, env); st.Sync.Rounds != rounds+1 {
				t.Errorf("rounds %d, want %d", st.Sync.Rounds, rounds+1)
			}
			f.syncFail.Store(1)
			env.SignalWorkflow(SignalChanges, nil)
			env.RegisterDelayedCallback(func() {
				if got := f.syncs.Load() - calls; got != 3 || f.localSyncs.Load() != locals+2 {
					t.Errorf("a failed local round: %d calls, %d local; want 3 and 2", got, f.localSyncs.Load()-locals)
				}
				if st := query(t, env); st.Sync.Rounds != rounds+2 || st.Sync.LastError != "" {
					t.Errorf("after the fallback: rounds %d (want %d), error %q", st.Sync.Rounds, rounds+2, st.Sync.LastError)
				}
			}, 10*time.Second)
		}, time.Second)
	}, 10*time.Minute)
	endWith(env, time.Hour, func() {})
	env.ExecuteWorkflow(Connection, input())
}

// TestLiveRoundLocalTimeout: a local round that outlasts its short timeout
// (a real 5 s: the SDK bounds local activities by the wall clock) runs
// again as a normal activity, and the round counts once.
func TestLiveRoundLocalTimeout(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the local round's 5 s timeout")
	}
	env, f := newEnv(t)
	env.SetTestTimeout(time.Minute)
	env.RegisterDelayedCallback(func() { update(t, env, UpdateConsent, ConsentInput{Ref: "ref-0123456789"}, nil) }, time.Minute)
	env.RegisterDelayedCallback(func() {
		rounds, locals, calls := query(t, env).Sync.Rounds, f.localSyncs.Load(), f.syncs.Load()
		f.syncHang.Store(1)
		started := time.Now()
		env.SignalWorkflow(SignalChanges, nil)
		env.RegisterDelayedCallback(func() {
			if got := f.syncs.Load() - calls; got != 2 || f.localSyncs.Load() != locals+1 {
				t.Errorf("a local round that timed out: %d calls, %d local; want 2 and 1", got, f.localSyncs.Load()-locals)
			}
			if waited := time.Since(started); waited < localRoundTimeout {
				t.Errorf("the fallback ran after %s, before the local round's timeout", waited)
			}
			if st := query(t, env); st.Sync.Rounds != rounds+1 || st.Sync.LastError != "" {
				t.Errorf("after the fallback: rounds %d (want %d), error %q", st.Sync.Rounds, rounds+1, st.Sync.LastError)
			}
		}, 10*time.Second)
	}, 10*time.Minute)
	endWith(env, time.Hour, func() {})
	env.ExecuteWorkflow(Connection, input())
}

// TestLiveRoundLocalReauth: dead tokens met by a local round park the
// connection at once (no second try as an activity), with one event.
func TestLiveRoundLocalReauth(t *testing.T) {
	env, f := newEnv(t)
	f.syncErr = temporal.NewNonRetryableApplicationError("dead", ErrReauthRequired, nil, struct{ Reason, Text string }{"revoked", "revoked"})
	env.RegisterDelayedCallback(func() { update(t, env, UpdateConsent, ConsentInput{Ref: "ref-0123456789"}, nil) }, time.Minute)
	env.RegisterDelayedCallback(func() {
		locals, calls := f.localSyncs.Load(), f.syncs.Load()
		f.syncFail.Store(1)
		env.SignalWorkflow(SignalChanges, nil)
		env.RegisterDelayedCallback(func() {
			if f.syncs.Load() != calls+1 || f.localSyncs.Load() != locals+1 {
				t.Errorf("dead tokens: %d calls, %d local; want one local call", f.syncs.Load()-calls, f.localSyncs.Load()-locals)
			}
			if st := query(t, env); st.State != StateReauthRequired || st.Reason != "revoked" {
				t.Errorf("after dead tokens: %s (%s)", st.State, st.Reason)
			}
			f.mu.Lock()
			defer f.mu.Unlock()
			if n := slices.Index(f.events, "connection.reauth_required"); n < 0 || slices.Contains(f.events[n+1:], "connection.reauth_required") {
				t.Errorf("events %v, want one connection.reauth_required", f.events)
			}
		}, 10*time.Second)
	}, 10*time.Minute)
	endWith(env, time.Hour, func() {})
	env.ExecuteWorkflow(Connection, input())
}

// TestRenewalFollowsGrantedLifetime: Graph may grant another lifetime than
// asked (a shorter limit, or the 45-minute minimum): the renewal is timed
// from the expiration Graph returned, halfway through a grant shorter than
// twice RenewBefore, and always before the subscription expires.
func TestRenewalFollowsGrantedLifetime(t *testing.T) {
	tests := []struct {
		name       string
		asked      time.Duration
		grant      time.Duration
		wantPeriod time.Duration // between a subscription and its renewals
	}{
		{"granted less than asked", 48 * time.Hour, 2 * time.Hour, time.Hour},
		{"granted far less than RenewBefore", 4230 * time.Minute, 45 * time.Minute, 45 * time.Minute / 2},
		{"raised to the minimum", 30 * time.Minute, 45 * time.Minute, 30 * time.Minute},
		{"granted as asked", 48 * time.Hour, 0, 24 * time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env, f := newEnv(t)
			f.grant = tt.grant
			in := input()
			in.Options.SubscriptionLifetime = tt.asked
			env.RegisterDelayedCallback(func() { update(t, env, UpdateConsent, ConsentInput{Ref: "ref-0123456789"}, nil) }, time.Minute)
			const span = 3 * 24 * time.Hour
			endWith(env, span, func() {
				if st := query(t, env); st.Sync.Mode != SyncPush || !st.Sync.SubscriptionExpires.After(env.Now()) {
					t.Errorf("after %s: %+v", span, st.Sync)
				}
			})
			env.ExecuteWorkflow(Connection, in)
			f.mu.Lock()
			defer f.mu.Unlock()
			subscribed, renewed := f.at[ActivityEnsureSubscription], f.at[ActivityRenewSubscription]
			if len(subscribed) != 1 || len(renewed) == 0 {
				t.Fatalf("%d subscriptions, %d renewals", len(subscribed), len(renewed))
			}
			granted := tt.grant
			if granted == 0 {
				granted = tt.asked
			}
			if want := int((span - subscribed[0].Sub(env.Now().Add(-span))) / tt.wantPeriod); len(renewed) < want-1 || len(renewed) > want+1 {
				t.Errorf("%d renewals in %s, want about %d", len(renewed), span, want)
			}
			last := subscribed[0]
			for i, at := range renewed {
				if gap := at.Sub(last); gap < tt.wantPeriod-time.Minute || gap > tt.wantPeriod+time.Minute || gap >= granted {
					t.Errorf("renewal %d came %s after the last grant of %s, want %s", i, gap, granted, tt.wantPeriod)
				}
				last = at
			}
		})
	}
}

// TestCatchUpAfterRefusedNotifications: a changes signal that says the
// receiver refused notifications asks for a round and shows the mailbox
// behind until a round that started after it has run (here the first
// rounds fail: Vault is still down); a plain notification does not.
func TestCatchUpAfterRefusedNotifications(t *testing.T) {
	env, f := newEnv(t)
	in := input()
	env.RegisterDelayedCallback(func() { update(t, env, UpdateConsent, ConsentInput{Ref: "ref-0123456789"}, nil) }, time.Minute)
	var rounds int32
	env.RegisterDelayedCallback(func() {
		st := query(t, env)
		if st.Sync.Mode != SyncPush || st.Sync.Behind {
			t.Errorf("live: %+v", st.Sync)
		}
		env.SignalWorkflow(SignalChanges, nil)
		env.RegisterDelayedCallback(func() {
			if st := query(t, env); st.Sync.Behind {
				t.Error("a plain notification marked the mailbox behind")
			}
			rounds = f.syncs.Load()
			f.syncFail.Store(1000)
			env.SignalWorkflow(SignalChanges, ChangesSignal{RefusedSince: env.Now().Add(-time.Minute)})
		}, time.Second)
		env.RegisterDelayedCallback(func() {
			st := query(t, env)
			if !st.Sync.Behind || f.syncs.Load() == rounds {
				t.Errorf("while the catch-up fails: behind %v, %d rounds", st.Sync.Behind, f.syncs.Load()-rounds)
			}
			f.syncFail.Store(0) // Vault is back
		}, 3*time.Second)
	}, 10*time.Minute)
	endWith(env, time.Hour, func() {
		st := query(t, env)
		if st.Sync.Behind || st.Sync.LastSync.Before(env.Now().Add(-50*time.Minute)) {
			t.Errorf("after the catch-up: %+v", st.Sync)
		}
	})
	env.ExecuteWorkflow(Connection, in)
}

// TestLiveRoundRetriesStayClose: a round failing through a long outage is
// tried again at most 30 s apart, so the mailbox is current within 30 s of
// the recovery (not up to 5 minutes after it).
func TestLiveRoundRetriesStayClose(t *testing.T) {
	env, f := newEnv(t)
	in := input()
	env.RegisterDelayedCallback(func() { update(t, env, UpdateConsent, ConsentInput{Ref: "ref-0123456789"}, nil) }, time.Minute)
	var from time.Time
	env.RegisterDelayedCallback(func() {
		from = env.Now()
		f.syncFail.Store(14) // about five minutes of failures
		env.SignalWorkflow(SignalChanges, nil)
	}, 10*time.Minute)
	endWith(env, time.Hour, func() {
		f.mu.Lock()
		at := slices.Clone(f.at[ActivitySyncFolders])
		f.mu.Unlock()
		var tries []time.Time
		for _, t := range at {
			if !t.Before(from) {
				tries = append(tries, t)
			}
		}
		// The first eleven: the local try, then the activity's first ten
		// attempts (the test environment stops there; the worker does not).
		if len(tries) < 11 {
			t.Fatalf("%d tries after the outage began, want 11 or more", len(tries))
		}
		for i := 1; i < 11; i++ {
			if gap := tries[i].Sub(tries[i-1]); gap > 31*time.Second {
				t.Errorf("try %d came %s after the one before", i+1, gap)
			}
		}
	})
	env.ExecuteWorkflow(Connection, in)
}

// TestSteadyTimer: an active connection sleeps on one timer (steady-timer).
// Notified rounds that each move the next reconciliation start no timer of
// their own; the timer that then fires early runs no round, and the
// reconciliation still comes 6 hours after the last round.
func TestSteadyTimer(t *testing.T) {
	env, f := newEnv(t)
	var started, cancelled atomic.Int64
	env.SetOnTimerScheduledListener(func(string, time.Duration) { started.Add(1) })
	env.SetOnTimerCanceledListener(func(string) { cancelled.Add(1) })
	env.RegisterDelayedCallback(func() { update(t, env, UpdateConsent, ConsentInput{Ref: "ref-0123456789"}, nil) }, time.Minute)
	const notified = 20
	var rounds int
	var timers int64
	env.RegisterDelayedCallback(func() {
		if st := query(t, env); st.Sync.Mode != SyncPush || st.Sync.Rounds == 0 {
			t.Fatalf("not live after 10 minutes: %+v", st.Sync)
		}
		rounds, timers = query(t, env).Sync.Rounds, started.Load()
		for i := range notified {
			env.RegisterDelayedCallback(func() { env.SignalWorkflow(SignalChanges, nil) }, time.Duration(i+1)*5*time.Minute)
		}
	}, 10*time.Minute)
	last := 10*time.Minute + notified*5*time.Minute // the last notified round
	env.RegisterDelayedCallback(func() {
		st := query(t, env)
		if st.Sync.Rounds != rounds+notified {
			t.Errorf("rounds after %d notifications: %d, want %d", notified, st.Sync.Rounds-rounds, notified)
		}
		if n := started.Load() - timers; n > 1 {
			t.Errorf("%d notified rounds started %d timers, want at most 1", notified, n)
		}
	}, last+time.Minute)
	// The timer set before the notifications fires in the meantime and
	// only sets the next: no round before 6 hours after the last one.
	env.RegisterDelayedCallback(func() {
		if got := query(t, env).Sync.Rounds; got != rounds+notified {
			t.Errorf("a round ran %d times before the reconciliation was due", got-rounds-notified)
		}
	}, last+6*time.Hour-time.Minute)
	env.RegisterDelayedCallback(func() {
		if got := query(t, env).Sync.Rounds; got != rounds+notified+1 {
			t.Errorf("rounds 6 hours after the last: %d, want 1 reconciliation", got-rounds-notified)
		}
	}, last+6*time.Hour+time.Minute)
	endWith(env, last+7*time.Hour, func() {})
	env.ExecuteWorkflow(Connection, input())
	if f.syncs.Load() == 0 {
		t.Error("no round ran")
	}
	t.Logf("timers started %d, cancelled %d", started.Load(), cancelled.Load())
}
