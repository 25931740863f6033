package api

import (
	"net/http"
	"testing"

	"github.com/outlookd/outlookd/store"
)

// TestAuthorize: the rule of who may do what with a connection. Sharing
// with the organisation grants reading only; changes are for the owner
// and admin keys; a user it is not shared with, and another organisation,
// do not learn it exists.
func TestAuthorize(t *testing.T) {
	acme, globex := store.Org{ID: "acme"}, store.Org{ID: "globex"}
	owner := caller{Org: acme, User: "u-ada"}
	member := caller{Org: acme, User: "u-bob"}
	admin := caller{Org: acme, Admin: true}
	adminActing := caller{Org: acme, Admin: true, User: "u-bob"}
	outsider := caller{Org: globex, User: "u-ada"}
	outsiderAdmin := caller{Org: globex, Admin: true}
	shared := store.Connection{OrgID: "acme", OwnerID: "u-ada", Visibility: store.VisibilityOrganisation}
	private := store.Connection{OrgID: "acme", OwnerID: "u-ada", Visibility: store.VisibilityOwner}
	named := store.Connection{OrgID: "acme", OwnerID: "u-ada", Visibility: store.VisibilityUsers, SharedWith: []string{"u-bob", "u-dee"}}
	// Shares left over from an earlier visibility grant nothing.
	stale := store.Connection{OrgID: "acme", OwnerID: "u-ada", Visibility: store.VisibilityOwner, SharedWith: []string{"u-bob"}}
	other := caller{Org: acme, User: "u-cy"}
	for _, tc := range []struct {
		name         string
		who          caller
		row          store.Connection
		read, change int
	}{
		{"owner, shared", owner, shared, 0, 0},
		{"owner, private", owner, private, 0, 0},
		{"member, shared", member, shared, 0, http.StatusForbidden},
		{"member, private", member, private, http.StatusNotFound, http.StatusNotFound},
		{"admin key, shared", admin, shared, 0, 0},
		{"admin key, private", admin, private, 0, 0},
		{"admin key acting for a member", adminActing, private, 0, 0},
		{"member it is shared with by name", member, named, 0, http.StatusForbidden},
		{"member it is not shared with by name", other, named, http.StatusNotFound, http.StatusNotFound},
		{"owner, shared by name", owner, named, 0, 0},
		{"admin key, shared by name", admin, named, 0, 0},
		{"member named by a stale share", member, stale, http.StatusNotFound, http.StatusNotFound},
		{"another organisation, a name it is shared with", caller{Org: globex, User: "u-bob"}, named, http.StatusNotFound, http.StatusNotFound},
		{"another organisation, same user ID", outsider, shared, http.StatusNotFound, http.StatusNotFound},
		{"another organisation's admin key", outsiderAdmin, shared, http.StatusNotFound, http.StatusNotFound},
	} {
		if got := authorize(tc.who, tc.row, accessRead); got != tc.read {
			t.Errorf("%s reading: %d, want %d", tc.name, got, tc.read)
		}
		if got := authorize(tc.who, tc.row, accessChange); got != tc.change {
			t.Errorf("%s changing: %d, want %d", tc.name, got, tc.change)
		}
	}
}
