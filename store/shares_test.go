package store_test

import (
	"context"
	"slices"
	"testing"

	"github.com/outlookd/outlookd/store"
)

// TestSetVisibility: sharing a connection with named users, with the
// organisation, and taking it back; each change is one event, a repeated
// change none; the list and the feed show each user what it may see.
func TestSetVisibility(t *testing.T) {
	ctx := context.Background()
	st := newStore(t)
	for _, c := range []store.Connection{
		{ID: "c-ada", OrgID: "acme", OwnerID: "ada", State: "active", Mode: "delegated"},
		{ID: "c-bob", OrgID: "acme", OwnerID: "bob", State: "active", Mode: "delegated"},
		{ID: "c-gx", OrgID: "globex", OwnerID: "eve", State: "active", Mode: "delegated"},
	} {
		if err := st.CreateConnection(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	sees := func(user string) []string {
		t.Helper()
		rows, err := st.ListConnections(ctx, store.ConnectionFilter{OrgID: "acme", User: user, Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, r := range rows {
			ids = append(ids, r.ID)
		}
		return ids
	}
	feedOf := func(user string) map[string]int {
		t.Helper()
		evs, err := st.Feed(ctx, store.FeedQuery{OrgID: "acme", User: user, Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]int{}
		for _, e := range evs {
			out[e.ConnectionID]++
		}
		return out
	}
	changes := 0
	for _, tc := range []struct {
		name       string
		visibility string
		users      []string
		changed    bool
		// who sees c-ada besides ada (and admin keys)
		carol, dan bool
	}{
		{"shared with carol", store.VisibilityUsers, []string{"carol"}, true, true, false},
		{"the same again", store.VisibilityUsers, []string{"carol"}, false, true, false},
		{"with carol and dan", store.VisibilityUsers, []string{"carol", "dan"}, true, true, true},
		{"with dan only", store.VisibilityUsers, []string{"dan"}, true, false, true},
		{"with the organisation", store.VisibilityOrganisation, nil, true, true, true},
		{"taken back", store.VisibilityOwner, nil, true, false, false},
		{"taken back again", store.VisibilityOwner, nil, false, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			row, changed, err := st.SetVisibility(ctx, "c-ada", store.VisibilityChange{Visibility: tc.visibility, Users: tc.users, By: "ada",
				EventID: "c-ada:visibility:" + tc.name})
			if err != nil {
				t.Fatal(err)
			}
			if changed != tc.changed || row.Visibility != tc.visibility || !slices.Equal(row.SharedWith, tc.users) {
				t.Errorf("answered %v %q %q", changed, row.Visibility, row.SharedWith)
			}
			if changed {
				changes++
			}
			got, err := st.GetConnection(ctx, "c-ada")
			if err != nil || got.Visibility != tc.visibility || !slices.Equal(got.SharedWith, tc.users) {
				t.Errorf("stored %q %q %v", got.Visibility, got.SharedWith, err)
			}
			for _, u := range []struct {
				name string
				want bool
			}{{"carol", tc.carol}, {"dan", tc.dan}, {"ada", true}, {"", true}} {
				if got := slices.Contains(sees(u.name), "c-ada"); got != u.want {
					t.Errorf("%q lists c-ada: %v, want %v", u.name, got, u.want)
				}
				if got := feedOf(u.name)["c-ada"] > 0; got != u.want {
					t.Errorf("%q reads c-ada's events: %v, want %v", u.name, got, u.want)
				}
			}
			if slices.Contains(sees("carol"), "c-bob") {
				t.Error("carol lists bob's unshared connection")
			}
		})
	}
	evs, err := st.Events(ctx, "c-ada")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range evs {
		if e.Type == "connection.visibility_changed" {
			n++
			if e.Data["by"] != "ada" || e.Data["previous"] == nil {
				t.Errorf("event data %v", e.Data)
			}
		}
	}
	if n != changes {
		t.Errorf("%d visibility events for %d changes", n, changes)
	}
	if _, _, err := st.SetVisibility(ctx, "c-none", store.VisibilityChange{Visibility: store.VisibilityOwner, EventID: "x"}); err == nil {
		t.Error("a missing connection's visibility was set")
	}
}
