package api_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/outlookd/outlookd/graphsim"
)

// feedItem is what the visibility test reads of an event in the feed.
type feedItem struct {
	ConnectionID string `json:"connection_id"`
}

// TestVisibilityOwnerControls: an owner shares a connection with named
// users, with the organisation, and takes it back, after creation; each
// caller sees and does only what it may: the users it is shared with read
// it (status, list, messages, sends, events) and change nothing (403
// not_owner); a user it is not shared with and another organisation do not
// learn it exists (404); each change is a connection.visibility_changed
// event.
func TestVisibilityOwnerControls(t *testing.T) {
	h := newHarness(t, graphsim.Options{})
	id := h.sendingConnection(t)
	base := "/v1/connections/" + id
	vis := func(key, user string, body any) response {
		t.Helper()
		return h.call(t, "PUT", base+"/visibility", key, user, body)
	}
	var c struct {
		Visibility string   `json:"visibility"`
		SharedWith []string `json:"shared_with"`
	}
	r := vis(h.acme, "u-ada", map[string]any{"visibility": "users", "users": []string{"u-bob", "u-dee"}})
	r.json(t, &c)
	if r.status != 200 || c.Visibility != "users" || !slices.Equal(c.SharedWith, []string{"u-bob", "u-dee"}) {
		t.Fatalf("share with two users: %d %s", r.status, r.body)
	}

	// Refused changes: each a 422 with its code, and nothing changed.
	many := make([]string, 101)
	for i := range many {
		many[i] = fmt.Sprintf("u-%d", i)
	}
	for _, tc := range []struct {
		name string
		body any
		code string
	}{
		{"unknown visibility", map[string]any{"visibility": "public"}, "invalid_visibility"},
		{"no visibility", map[string]any{"users": []string{"u-bob"}}, "invalid_visibility"},
		{"users with owner", map[string]any{"visibility": "owner", "users": []string{"u-bob"}}, "invalid_users"},
		{"users with organisation", map[string]any{"visibility": "organisation", "users": []string{"u-bob"}}, "invalid_users"},
		{"users without users", map[string]any{"visibility": "users"}, "invalid_users"},
		{"an empty list", map[string]any{"visibility": "users", "users": []string{}}, "invalid_users"},
		{"an empty user", map[string]any{"visibility": "users", "users": []string{""}}, "invalid_users"},
		{"spaces around", map[string]any{"visibility": "users", "users": []string{" u-bob"}}, "invalid_users"},
		{"a control character", map[string]any{"visibility": "users", "users": []string{"u-\u0007bob"}}, "invalid_users"},
		{"too long", map[string]any{"visibility": "users", "users": []string{strings.Repeat("u", 257)}}, "invalid_users"},
		{"named twice", map[string]any{"visibility": "users", "users": []string{"u-bob", "u-bob"}}, "invalid_users"},
		{"the owner", map[string]any{"visibility": "users", "users": []string{"u-ada"}}, "invalid_users"},
		{"too many", map[string]any{"visibility": "users", "users": many}, "too_many_users"},
	} {
		if r := vis(h.acme, "u-ada", tc.body); r.status != 422 || r.code() != tc.code {
			t.Errorf("%s: %d %s, want 422 %s", tc.name, r.status, r.body, tc.code)
		}
	}
	if r := vis(h.acme, "u-ada", `{"visibility":"users","users":"u-bob"}`); r.status != 400 {
		t.Errorf("users not a list: %d %s", r.status, r.body)
	}
	h.call(t, "GET", base, h.acme, "u-ada", nil).json(t, &c)
	if c.Visibility != "users" || !slices.Equal(c.SharedWith, []string{"u-bob", "u-dee"}) {
		t.Errorf("refused changes changed the visibility: %+v", c)
	}

	// sees says whether a caller gets the connection, by every read path.
	sees := func(key, user string) map[string]bool {
		t.Helper()
		out := map[string]bool{}
		for _, path := range []string{"", "/messages", "/folders", "/sends", "/contacts"} {
			r := h.call(t, "GET", base+path, key, user, nil)
			if r.status != 200 && (r.status != 404 || r.code() != "connection_not_found") {
				t.Errorf("GET %s as %s: %d %s", path, user, r.status, r.body)
			}
			out[path] = r.status == 200
		}
		var page struct{ Data []struct{ ID string } }
		h.call(t, "GET", "/v1/connections", key, user, nil).json(t, &page)
		out["list"] = slices.ContainsFunc(page.Data, func(c struct{ ID string }) bool { return c.ID == id })
		var feed struct{ Data []feedItem }
		h.call(t, "GET", "/v1/events?limit=1000", key, user, nil).json(t, &feed)
		out["events"] = slices.ContainsFunc(feed.Data, func(e feedItem) bool { return e.ConnectionID == id })
		return out
	}
	seesAll := func(key, user string, want bool) {
		t.Helper()
		for path, got := range sees(key, user) {
			if got != want {
				t.Errorf("%s reads %q: %v, want %v", user, path, got, want)
			}
		}
	}
	// Taking it back, sharing with the organisation, with one user again.
	for _, step := range []struct {
		name      string
		key, user string
		body      any
		bob, cy   bool
	}{
		{"shared with u-bob and u-dee", "", "", nil, true, false},
		{"taken back by the owner", h.acme, "u-ada", map[string]any{"visibility": "owner"}, false, false},
		{"shared with the organisation by an admin key", h.acmeAdmin, "", map[string]any{"visibility": "organisation"}, true, true},
		{"shared with u-bob only by the owner", h.acme, "u-ada", map[string]any{"visibility": "users", "users": []string{"u-bob"}}, true, false},
	} {
		if step.body != nil {
			if r := vis(step.key, step.user, step.body); r.status != 200 {
				t.Fatalf("%s: %d %s", step.name, r.status, r.body)
			}
		}
		seesAll(h.acme, "u-bob", step.bob)
		seesAll(h.acme, "u-cy", step.cy)
		seesAll(h.acme, "u-ada", true)
		seesAll(h.acmeAdmin, "", true)
		seesAll(h.globex, "u-ada", false)
	}
	// The same again changes nothing and records no event.
	if r := vis(h.acme, "u-ada", map[string]any{"visibility": "users", "users": []string{"u-bob"}}); r.status != 200 {
		t.Errorf("the same visibility again: %d %s", r.status, r.body)
	}
	var feed struct {
		Data []struct {
			Type         string         `json:"type"`
			ConnectionID string         `json:"connection_id"`
			Data         map[string]any `json:"data"`
		} `json:"data"`
	}
	h.call(t, "GET", "/v1/events?limit=1000", h.acmeAdmin, "", nil).json(t, &feed)
	var changes []string
	for _, e := range feed.Data {
		if e.Type == "connection.visibility_changed" && e.ConnectionID == id {
			changes = append(changes, fmt.Sprintf("%v %v", e.Data["visibility"], e.Data["users"]))
		}
	}
	if want := []string{"users [u-bob u-dee]", "owner []", "organisation []", "users [u-bob]"}; !slices.Equal(changes, want) {
		t.Errorf("visibility events %q, want %q", changes, want)
	}

	// Who may do what, shared with u-bob.
	type who struct{ name, key, user string }
	owner := who{"owner", h.acme, "u-ada"}
	shared := who{"user it is shared with", h.acme, "u-bob"}
	other := who{"user it is not shared with", h.acme, "u-cy"}
	admin := who{"admin key", h.acmeAdmin, ""}
	outsider := who{"another organisation", h.globex, "u-ada"}
	// Refused callers come first, so that the allowed ones act last.
	callers := []who{shared, other, outsider, owner, admin}
	msg := map[string]any{"to": []map[string]string{{"address": "megan@contoso.example"}}, "subject": "Hello",
		"body": map[string]string{"content_type": "text", "content": "Hi"}}
	for _, a := range []struct {
		name, method, path string
		body               any
		want               map[string]int // by caller; 404 for the unseen
	}{
		{"get", "GET", "", nil, map[string]int{owner.name: 200, shared.name: 200, admin.name: 200}},
		{"messages", "GET", "/messages", nil, map[string]int{owner.name: 200, shared.name: 200, admin.name: 200}},
		{"sends", "GET", "/sends", nil, map[string]int{owner.name: 200, shared.name: 200, admin.name: 200}},
		{"send", "POST", "/sends", msg, map[string]int{owner.name: 202, shared.name: 403, admin.name: 202}},
		{"settings", "PATCH", "/settings", map[string]any{"backfill_days": 20}, map[string]int{owner.name: 200, shared.name: 403, admin.name: 200}},
		{"change visibility", "PUT", "/visibility", map[string]any{"visibility": "users", "users": []string{"u-bob"}},
			map[string]int{owner.name: 200, shared.name: 403, admin.name: 200}},
		{"disconnect", "DELETE", "", nil, map[string]int{owner.name: 202, shared.name: 403, admin.name: 202}},
	} {
		for i, w := range callers {
			want := a.want[w.name]
			if want == 0 {
				want = 404
			}
			r := h.callWith(t, a.method, base+a.path, w.key, w.user, a.body, "Idempotency-Key", fmt.Sprintf("vis-%s-%d", a.name, i))
			if r.status != want {
				t.Errorf("%s by the %s: %d %s, want %d", a.name, w.name, r.status, r.body, want)
			}
			switch want {
			case 403:
				if r.code() != "not_owner" {
					t.Errorf("%s by the %s: code %q", a.name, w.name, r.code())
				}
			case 404:
				if r.code() != "connection_not_found" {
					t.Errorf("%s by the %s: code %q", a.name, w.name, r.code())
				}
			}
		}
	}
	h.call(t, "GET", base, h.acme, "u-ada", nil).json(t, &c)
	if c.Visibility != "users" || !slices.Equal(c.SharedWith, []string{"u-bob"}) {
		t.Errorf("after the refused changes: %+v", c)
	}
}
