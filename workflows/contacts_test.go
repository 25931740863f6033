package workflows

import (
	"reflect"
	"slices"
	"testing"
	"time"
)

// With the contact filter on, the backfill and every delta round filter;
// contacts added after the backfill have their past mail fetched in
// batches, then the app is told once; contacts added during the first
// backfill wait for it to end.
func TestAddedContactsPastMailIsFetchedInBatches(t *testing.T) {
	env, f := newEnv(t)
	in := input()
	in.Settings.ContactFilter = true
	env.RegisterDelayedCallback(func() {
		update(t, env, UpdateConsent, ConsentInput{Ref: "ref-0123456789"}, nil)
	}, time.Minute)
	env.RegisterDelayedCallback(func() {
		if st := query(t, env); st.Backfill.Covered.IsZero() {
			t.Fatal("the backfill has not completed after 10 minutes")
		}
		f.unfetched.Store(60)
		env.SignalWorkflow(SignalContacts, nil)
	}, 10*time.Minute)
	env.RegisterDelayedCallback(func() {
		st := query(t, env)
		k := st.Contacts
		if k.Fetching || k.Runs != 1 || k.Contacts != 60 || k.Messages != 180 || k.Remaining != 0 || k.LastCompleted.IsZero() {
			t.Errorf("contacts after the fetch: %+v", k)
		}
		if st.Pending.Contacts {
			t.Error("the fetch is still pending")
		}
		// Contacts added again: a second fetch, a second event.
		f.unfetched.Store(5)
		env.SignalWorkflow(SignalContacts, nil)
	}, 20*time.Minute)
	endWith(env, 30*time.Minute, func() {
		if k := query(t, env).Contacts; k.Runs != 2 || k.Contacts != 5 {
			t.Errorf("after the second fetch: %+v", k)
		}
	})
	env.ExecuteWorkflow(Connection, in)
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.contactFetches) != 4 { // 25, 25, 10; then 5
		t.Errorf("%d fetch calls, want 4", len(f.contactFetches))
	}
	for _, c := range f.contactFetches {
		if c.Batch != contactBatch || c.UserID != "u-1" || c.ConnectionID != "c1" {
			t.Errorf("fetch input %+v", c)
		}
	}
	n := 0
	for _, e := range f.events {
		if e == "contacts.fetched" {
			n++
		}
	}
	if n != 2 {
		t.Errorf("contacts.fetched %d times, want 2 (events %v)", n, f.events)
	}
	for _, b := range f.backfills {
		if !b.ContactFilter {
			t.Fatalf("a backfill page without the filter: %+v", b)
		}
	}
	for _, s := range f.syncIns {
		if !s.ContactFilter {
			t.Fatalf("a delta round without the filter: %+v", s)
		}
	}
}

// Switching the filter on deletes the mail it excludes (once); switching
// it off re-anchors every folder, which brings back the mail it kept out.
func TestSwitchingTheContactFilter(t *testing.T) {
	env, f := newEnv(t)
	in := input()
	in.Settings = in.Settings.WithDefaults()
	env.RegisterDelayedCallback(func() {
		update(t, env, UpdateConsent, ConsentInput{Ref: "ref-0123456789"}, nil)
	}, time.Minute)
	on := in.Settings
	on.ContactFilter = true
	env.RegisterDelayedCallback(func() {
		update(t, env, UpdateSettings, on, func(st Status, err error) {
			if err != nil || !st.Settings.ContactFilter {
				t.Errorf("filter on: %+v %v", st.Settings, err)
			}
		})
	}, 10*time.Minute)
	env.RegisterDelayedCallback(func() {
		if f.filterOns.Load() != 1 {
			t.Errorf("filter applied %d times", f.filterOns.Load())
		}
		if st := query(t, env); st.Pending.FilterOn {
			t.Error("the filter is still pending")
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
	if f.filterOns.Load() != 1 {
		t.Errorf("filter applied %d times", f.filterOns.Load())
	}
	if len(f.syncIns) == 0 || !slices.Equal(f.syncIns[0].Reanchor, []string{"*"}) || f.syncIns[0].ContactFilter {
		t.Errorf("the round after the filter went off: %+v", f.syncIns)
	}
	if len(f.contactFetches) != 0 {
		t.Errorf("contacts fetched although none was added: %d", len(f.contactFetches))
	}
	// The registry was given each change, the filter alone changing.
	if n := len(f.settings); n < 2 || !f.settings[n-2].ContactFilter || f.settings[n-1].ContactFilter {
		t.Errorf("settings recorded %+v", f.settings)
	}
}

// A change of one setting alone reaches the registry, whichever it is.
func TestSettingsEqualSeesEveryField(t *testing.T) {
	base := Settings{}.WithDefaults()
	changes := []func(*Settings){
		func(s *Settings) { s.BackfillDays++ },
		func(s *Settings) { s.Folders = []string{"inbox"} },
		func(s *Settings) { s.Bodies = BodiesMetadata },
		func(s *Settings) { s.Features.Send = true },
		func(s *Settings) { s.Retention = RetentionKeep },
		func(s *Settings) { s.PollMinutes = 7 },
		func(s *Settings) { s.ContactFilter = true },
		func(s *Settings) { s.KeepDays = 30 },
	}
	if n := reflect.TypeFor[Settings]().NumField(); n != len(changes) {
		t.Fatalf("Settings has %d fields and the test changes %d: settingsEqual must compare every one", n, len(changes))
	}
	for i, change := range changes {
		s := base
		s.Folders = slices.Clone(base.Folders)
		change(&s)
		if settingsEqual(base, s) {
			t.Errorf("change %d is not seen", i)
		}
	}
}
