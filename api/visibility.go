package api

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"github.com/gin-gonic/gin"

	"github.com/outlookd/outlookd/store"
)

// maxSharedUsers bounds the users a connection is shared with by name;
// past it, sharing with the organisation is the way.
const maxSharedUsers = 100

// maxUserID is the longest app user ID, as in the Outlookd-User header.
const maxUserID = 256

// visibilityRequest is the body of PUT /v1/connections/{id}/visibility.
type visibilityRequest struct {
	Visibility string    `json:"visibility"`
	Users      *[]string `json:"users,omitempty"`
}

// visibilityInvalid is a visibility request refused, with its code.
type visibilityInvalid struct{ code, detail string }

func (e *visibilityInvalid) Error() string { return e.detail }

// checkVisibility validates a visibility request for a connection with
// the given owner and answers the users to share with, sorted. outlookd
// keeps no directory of the app's users (they are the IDs the app sends in
// Outlookd-User), so a user ID is checked for its form only.
func checkVisibility(req visibilityRequest, owner string) ([]string, error) {
	switch req.Visibility {
	case store.VisibilityOwner, store.VisibilityOrganisation:
		if req.Users != nil && len(*req.Users) > 0 {
			return nil, &visibilityInvalid{"invalid_users", `users are for visibility "users" only; leave them out for "` + req.Visibility + `".`}
		}
		return nil, nil
	case store.VisibilityUsers:
	default:
		return nil, &visibilityInvalid{"invalid_visibility", `visibility must be "owner", "organisation" or "users".`}
	}
	if req.Users == nil || len(*req.Users) == 0 {
		return nil, &visibilityInvalid{"invalid_users", `visibility "users" needs the app users to share with in users; to share with no one, use "owner".`}
	}
	users := *req.Users
	if len(users) > maxSharedUsers {
		return nil, &visibilityInvalid{"too_many_users", fmt.Sprintf("A connection is shared with at most %d users by name (%d given); share it with the organisation instead.", maxSharedUsers, len(users))}
	}
	seen := make(map[string]bool, len(users))
	for i, u := range users {
		switch {
		case strings.TrimSpace(u) != u || u == "":
			return nil, &visibilityInvalid{"invalid_users", "users[" + strconv.Itoa(i) + "] is empty or has spaces around it; give app user IDs as the app sends them in " + UserHeader + "."}
		case len(u) > maxUserID:
			return nil, &visibilityInvalid{"invalid_users", "users[" + strconv.Itoa(i) + "] is longer than " + strconv.Itoa(maxUserID) + " characters."}
		case strings.ContainsFunc(u, unicode.IsControl):
			return nil, &visibilityInvalid{"invalid_users", "users[" + strconv.Itoa(i) + "] has control characters."}
		case u == owner:
			return nil, &visibilityInvalid{"invalid_users", "users[" + strconv.Itoa(i) + "] is the connection's owner, who always sees it; name only the others."}
		case seen[u]:
			return nil, &visibilityInvalid{"invalid_users", "users[" + strconv.Itoa(i) + "] (" + u + ") is named twice."}
		}
		seen[u] = true
	}
	out := slices.Clone(users)
	slices.Sort(out)
	return out, nil
}

// putVisibility changes who sees a connection: its owner only, every user
// of its organisation, or the app users it names. Only the owner and the
// organisation's admin keys may; a user it is shared with reads it and no
// more (403 not_owner). The change is recorded as a
// connection.visibility_changed event; asking for what already holds
// changes nothing and records none. A disconnected connection's mail
// (kept by retention "keep") stays readable, so its visibility can still
// be changed.
func (s *server) putVisibility(c *gin.Context) {
	row, ok := s.connection(c, accessChange)
	if !ok {
		return
	}
	var req visibilityRequest
	if !bind(c, &req) {
		return
	}
	users, err := checkVisibility(req, row.OwnerID)
	var invalid *visibilityInvalid
	if errors.As(err, &invalid) {
		problem(c, http.StatusUnprocessableEntity, invalid.code, invalid.detail)
		return
	}
	row, _, err = s.d.Store.SetVisibility(c, row.ID, store.VisibilityChange{
		Visibility: req.Visibility, Users: users, By: callerOf(c).User, EventID: row.ID + ":visibility:" + randomID(),
	})
	if err != nil {
		s.unavailable(c, err)
		return
	}
	c.PureJSON(http.StatusOK, s.present(c, row))
}
