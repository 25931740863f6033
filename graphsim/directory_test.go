package graphsim_test

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/outlookd/outlookd/graphsim"
)

type usersPage struct {
	Context   string           `json:"@odata.context"`
	Value     []map[string]any `json:"value"`
	NextLink  string           `json:"@odata.nextLink"`
	DeltaLink string           `json:"@odata.deltaLink"`
}

// usersDeltaRound follows nextLinks to the deltaLink and returns the items by
// ID, the deltaLink and the number of pages.
func usersDeltaRound(t *testing.T, f *fixture, tok, start string) (map[string]map[string]any, string, int) {
	t.Helper()
	items := map[string]map[string]any{}
	link, pages := start, 0
	for {
		var pg usersPage
		if st, _ := f.graphGet(t, tok, link, &pg); st != 200 {
			t.Fatalf("users delta %s: %d", link, st)
		}
		pages++
		for _, it := range pg.Value {
			items[it["id"].(string)] = it
		}
		switch {
		case pg.NextLink != "" && pg.DeltaLink != "":
			t.Fatal("a page with both links")
		case pg.DeltaLink != "":
			if !strings.Contains(pg.DeltaLink, "$deltatoken=") {
				t.Errorf("deltaLink %s", pg.DeltaLink)
			}
			return items, pg.DeltaLink, pages
		case !strings.Contains(pg.NextLink, "/users/delta?$skiptoken="):
			t.Fatalf("nextLink %q", pg.NextLink)
		}
		link = pg.NextLink
	}
}

func TestUsersDelta(t *testing.T) {
	o := newOrg(t, graphsim.Options{UsersDeltaPageSize: 4})
	ctx := context.Background()
	ids := map[string]string{}
	for _, name := range []string{"u1", "u2", "u3", "u4", "u5"} {
		u, err := o.ctl.AddUser(ctx, graphsim.UserSpec{Tenant: "contoso.example", UPN: name + "@contoso.example", DisplayName: "User " + name})
		if err != nil {
			t.Fatal(err)
		}
		ids[name] = u.ID
	}
	app := o.org.AppToken(t)

	// The first round: every user, in pages, with the selected properties.
	var first usersPage
	o.graphGet(t, app, "/users/delta()?$select=displayName,accountEnabled", &first)
	if !strings.HasSuffix(first.Context, "$metadata#users(displayName,accountEnabled)") || len(first.Value) != 4 {
		t.Errorf("first page: %s, %d users", first.Context, len(first.Value))
	}
	items, deltaLink, pages := usersDeltaRound(t, o.fixture, app, "/users/delta()?$select=displayName,accountEnabled")
	if len(items) != 9 || pages != 3 {
		t.Fatalf("first round: %d users in %d pages", len(items), pages)
	}
	if sh := items[o.shared.ID]; sh["accountEnabled"] != false || len(sh) != 3 {
		t.Errorf("shared mailbox = %v", sh)
	}
	if ada := items[o.ada.ID]; ada["accountEnabled"] != true || ada["displayName"] != "Ada Lovelace" || ada["userPrincipalName"] != nil {
		t.Errorf("ada = %v", ada)
	}

	// Joins, changes and leaves.
	newbie, err := o.ctl.AddUser(ctx, graphsim.UserSpec{Tenant: "contoso.example", UPN: "newbie@contoso.example"})
	if err != nil {
		t.Fatal(err)
	}
	renamed := "User Two, renamed"
	for _, err := range []error{
		o.ctl.DisableUser(ctx, "u1@contoso.example"),
		o.ctl.UpdateUser(ctx, "u2@contoso.example", graphsim.UserUpdate{DisplayName: &renamed}),
		o.ctl.DeleteUser(ctx, "u3@contoso.example", false),
		o.ctl.DeleteUser(ctx, "u4@contoso.example", true),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	items, deltaLink, _ = usersDeltaRound(t, o.fixture, app, deltaLink)
	removed := func(id string) any {
		r, _ := items[id]["@removed"].(map[string]any)
		return r["reason"]
	}
	if len(items) != 5 || items[newbie.ID]["accountEnabled"] != true || items[ids["u1"]]["accountEnabled"] != false ||
		items[ids["u2"]]["displayName"] != renamed || removed(ids["u3"]) != "changed" || removed(ids["u4"]) != "deleted" {
		t.Errorf("second round = %v", items)
	}
	// A deleted user is gone from the directory's paths.
	var ge graphErr
	if st, _ := o.graphGet(t, app, "/users/"+ids["u3"], &ge); st != 404 || ge.Error.Code != "Request_ResourceNotFound" {
		t.Errorf("deleted user: %d %+v", st, ge.Error)
	}

	// Restored, it joins again; deleted for good later, it leaves for good.
	if err := o.ctl.RestoreDeletedUser(ctx, ids["u3"]); err != nil {
		t.Fatal(err)
	}
	if err := o.ctl.EnableUser(ctx, "u1@contoso.example"); err != nil {
		t.Fatal(err)
	}
	items, deltaLink, _ = usersDeltaRound(t, o.fixture, app, deltaLink)
	if len(items) != 2 || items[ids["u3"]]["displayName"] != "User u3" || items[ids["u1"]]["accountEnabled"] != true {
		t.Errorf("third round = %v", items)
	}
	if err := o.ctl.DeleteUser(ctx, "u5@contoso.example", false); err != nil {
		t.Fatal(err)
	}
	if err := o.ctl.DeleteUser(ctx, ids["u5"], true); err != nil {
		t.Fatal(err)
	}
	items, deltaLink, _ = usersDeltaRound(t, o.fixture, app, deltaLink)
	if len(items) != 1 || removed(ids["u5"]) != "deleted" {
		t.Errorf("fourth round = %v", items)
	}
	if err := o.ctl.RestoreDeletedUser(ctx, ids["u5"]); err == nil {
		t.Error("a permanently deleted user was restored")
	}

	// "Sync from now", then the default properties without $select.
	var latest usersPage
	if st, _ := o.graphGet(t, app, "/users/delta?$deltatoken=latest", &latest); st != 200 || len(latest.Value) != 0 || latest.DeltaLink == "" {
		t.Errorf("latest: %d %+v", st, latest)
	}
	late, _ := o.ctl.AddUser(ctx, graphsim.UserSpec{Tenant: "contoso.example", UPN: "late@contoso.example"})
	items, _, _ = usersDeltaRound(t, o.fixture, app, latest.DeltaLink)
	if u := items[late.ID]; len(items) != 1 || u["userPrincipalName"] != "late@contoso.example" || u["accountEnabled"] != nil {
		t.Errorf("after latest = %v", items)
	}

	// Refusals: unsupported options, too little permission, an old token.
	tests := []struct {
		name, token, path, code string
		status                  int
	}{
		{"$filter", app, "/users/delta?$filter=" + url.QueryEscape("displayName eq 'x'"), "Request_UnsupportedQuery", 400},
		{"unknown property", app, "/users/delta?$select=shoeSize", "Request_BadRequest", 400},
		{"foreign token", app, "/users/delta?$deltatoken=bm9wZQ", "BadRequest", 400},
		{"User.Read", o.token(t, "User.Read"), "/users/delta", "Authorization_RequestDenied", 403},
	}
	for _, tt := range tests {
		ge = graphErr{}
		if st, _ := o.graphGet(t, tt.token, tt.path, &ge); st != tt.status || ge.Error.Code != tt.code {
			t.Errorf("%s: %d %+v", tt.name, st, ge.Error)
		}
	}
	o.sim.AdvanceClock(8 * 24 * time.Hour)
	app = o.org.AppToken(t)
	if st, hdr := o.graphGet(t, app, deltaLink, &ge); st != 410 || !strings.HasSuffix(hdr.Get("Location"), "/v1.0/users/delta") {
		t.Errorf("an 8-day-old token: %d %v", st, hdr)
	}
}

// A disabled account cannot sign in, and its refresh tokens die; its
// mailbox stays reachable with application permissions.
func TestDisabledUser(t *testing.T) {
	o := newOrg(t, graphsim.Options{})
	ctx := context.Background()
	tok := o.org.SignIn(t, o.org.Service.UPN, "offline_access", "Mail.Read")
	if err := o.ctl.DisableUser(ctx, o.org.Service.UPN); err != nil {
		t.Fatal(err)
	}
	if _, err := o.OAuth("common", "offline_access", "Mail.Read").TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token(); err == nil || !strings.Contains(err.Error(), "AADSTS50057") {
		t.Errorf("refresh after disabling: %v", err)
	}
	q := authorize(t, o.oauth("common", "Mail.Read").AuthCodeURL("st", oauth2.SetAuthURLParam("login_hint", o.org.Service.UPN)))
	if q.Get("error") != "access_denied" || !strings.HasPrefix(q.Get("error_description"), "AADSTS50057:") {
		t.Errorf("sign-in while disabled: %v", q)
	}
	if st, _ := o.graphGet(t, o.org.AppToken(t), "/users/"+o.org.Service.UPN+"/messages", nil); st != 200 {
		t.Errorf("app-only on a disabled account's mailbox: %d", st)
	}
	if err := o.ctl.EnableUser(ctx, o.org.Service.UPN); err != nil {
		t.Fatal(err)
	}
	if q := authorize(t, o.oauth("common", "Mail.Read").AuthCodeURL("st", oauth2.SetAuthURLParam("login_hint", o.org.Service.UPN))); q.Get("code") == "" {
		t.Errorf("sign-in after enabling: %v", q)
	}
}
