package api

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// TestCheckVisibility: what a visibility request may say, and the users
// it shares with, sorted.
func TestCheckVisibility(t *testing.T) {
	list := func(u ...string) *[]string { return &u }
	many := make([]string, maxSharedUsers+1)
	for i := range many {
		many[i] = "u" + strings.Repeat("x", i)
	}
	for _, tc := range []struct {
		name  string
		req   visibilityRequest
		users []string
		code  string
	}{
		{"owner", visibilityRequest{Visibility: "owner"}, nil, ""},
		{"organisation", visibilityRequest{Visibility: "organisation"}, nil, ""},
		{"organisation, empty users", visibilityRequest{Visibility: "organisation", Users: list()}, nil, ""},
		{"users, sorted", visibilityRequest{Visibility: "users", Users: list("u-dee", "u-bob")}, []string{"u-bob", "u-dee"}, ""},
		{"an empty list", visibilityRequest{Visibility: "users", Users: list()}, nil, "invalid_users"},
		{"too many", visibilityRequest{Visibility: "users", Users: &many}, nil, "too_many_users"},
		{"unknown", visibilityRequest{Visibility: "everyone"}, nil, "invalid_visibility"},
		{"empty", visibilityRequest{}, nil, "invalid_visibility"},
		{"users with owner", visibilityRequest{Visibility: "owner", Users: list("u-bob")}, nil, "invalid_users"},
		{"no users", visibilityRequest{Visibility: "users"}, nil, "invalid_users"},
		{"the owner", visibilityRequest{Visibility: "users", Users: list("u-bob", "u-ada")}, nil, "invalid_users"},
		{"twice", visibilityRequest{Visibility: "users", Users: list("u-bob", "u-bob")}, nil, "invalid_users"},
		{"blank", visibilityRequest{Visibility: "users", Users: list(" ")}, nil, "invalid_users"},
		{"a tab", visibilityRequest{Visibility: "users", Users: list("u\tbob")}, nil, "invalid_users"},
		{"too long", visibilityRequest{Visibility: "users", Users: list(strings.Repeat("u", maxUserID+1))}, nil, "invalid_users"},
	} {
		users, err := checkVisibility(tc.req, "u-ada")
		var invalid *visibilityInvalid
		code := ""
		if errors.As(err, &invalid) {
			code = invalid.code
		} else if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if code != tc.code || !slices.Equal(users, tc.users) {
			t.Errorf("%s: %q %q, want %q %q", tc.name, users, code, tc.users, tc.code)
		}
	}
	hundred := many[:maxSharedUsers]
	if users, err := checkVisibility(visibilityRequest{Visibility: "users", Users: &hundred}, "u-ada"); err != nil || len(users) != maxSharedUsers {
		t.Errorf("%d users: %d %v", maxSharedUsers, len(users), err)
	}
}
