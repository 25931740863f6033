package workflows

import (
	"slices"
	"testing"
	"time"
)

// A body policy that keeps less deletes what is stored beyond it; one
// that keeps more re-anchors every folder; every page is asked with the
// policy in force.
func TestSwitchingTheBodyPolicy(t *testing.T) {
	env, f := newEnv(t)
	in := input()
	in.Settings = in.Settings.WithDefaults()
	in.Settings.Bodies = BodiesStore
	env.RegisterDelayedCallback(func() {
		update(t, env, UpdateConsent, ConsentInput{Ref: "ref-0123456789"}, nil)
	}, time.Minute)
	none := in.Settings
	none.Bodies = BodiesNone
	env.RegisterDelayedCallback(func() { update(t, env, UpdateSettings, none, nil) }, 10*time.Minute)
	env.RegisterDelayedCallback(func() {
		if st := query(t, env); st.Pending.Strip {
			t.Error("the strip is still pending")
		}
		f.mu.Lock()
		f.syncIns = nil
		f.mu.Unlock()
		update(t, env, UpdateSettings, in.Settings, nil)
	}, 20*time.Minute)
	endWith(env, 30*time.Minute, func() {})
	env.ExecuteWorkflow(Connection, in)
	f.mu.Lock()
	defer f.mu.Unlock()
	if !slices.Equal(f.strips, []string{BodiesNone}) {
		t.Errorf("strips %v, want one to none", f.strips)
	}
	if len(f.syncIns) == 0 || !slices.Equal(f.syncIns[0].Reanchor, []string{"*"}) || f.syncIns[0].Bodies != BodiesStore || !f.syncIns[0].StoreBodies {
		t.Errorf("the round after bodies went back to store: %+v", f.syncIns)
	}
	for _, b := range f.backfills {
		if b.Bodies != BodiesStore {
			t.Fatalf("a backfill page asked with %q", b.Bodies)
		}
	}
}
