package graphsim_test

import (
	"context"
	"slices"
	"testing"

	"github.com/outlookd/outlookd/graphsim"
)

// groupToken is an app-only token of a new app granted roles in the org's
// tenant.
func groupToken(t *testing.T, o *orgFixture, roles ...string) string {
	t.Helper()
	ctx := context.Background()
	app, err := o.ctl.AddApp(ctx, graphsim.AppSpec{Name: "groups reader", AppRoles: roles})
	if err != nil {
		t.Fatal(err)
	}
	if err := o.ctl.GrantConsent(ctx, graphsim.ConsentSpec{Tenant: o.tenant.ID, ClientID: app.ClientID, Roles: roles}); err != nil {
		t.Fatal(err)
	}
	cc := o.org.AppCredentials(o.tenant.ID)
	cc.ClientID, cc.ClientSecret = app.ClientID, app.Secrets[0].Value
	tok, err := cc.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return tok.AccessToken
}

func TestGroupMembers(t *testing.T) {
	o := newOrg(t, graphsim.Options{})
	ctx := context.Background()
	var ids []string
	for _, n := range []string{"g1", "g2", "g3", "g4"} {
		u, err := o.ctl.AddUser(ctx, graphsim.UserSpec{Tenant: "contoso.example", UPN: n + "@contoso.example"})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, u.ID)
	}
	inner, err := o.ctl.AddGroup(ctx, graphsim.GroupSpec{Tenant: "contoso.example", DisplayName: "Inner", Members: []string{"g3@contoso.example", ids[3]}})
	if err != nil {
		t.Fatal(err)
	}
	outer, err := o.ctl.AddGroup(ctx, graphsim.GroupSpec{Tenant: "contoso.example", DisplayName: "Outer", Members: []string{ids[0], ids[1], inner.ID}})
	if err != nil {
		t.Fatal(err)
	}
	// A cycle ends.
	if err := o.ctl.AddGroupMember(ctx, inner.ID, outer.ID); err != nil {
		t.Fatal(err)
	}
	tok := groupToken(t, o, "GroupMember.Read.All")
	list := func(path string) ([]string, int) {
		t.Helper()
		var got []string
		for link := path; link != ""; {
			var pg usersPage
			st, _ := o.graphGet(t, tok, link, &pg)
			if st != 200 {
				return nil, st
			}
			for _, v := range pg.Value {
				got = append(got, v["@odata.type"].(string)+":"+v["id"].(string))
			}
			link = pg.NextLink
		}
		return got, 200
	}
	user := func(i int) string { return "#microsoft.graph.user:" + ids[i] }
	group := func(id string) string { return "#microsoft.graph.group:" + id }
	for _, tc := range []struct {
		name, path string
		want       []string
	}{
		{"members", "/groups/" + outer.ID + "/members", []string{user(0), user(1), group(inner.ID)}},
		{"transitive", "/groups/" + outer.ID + "/transitiveMembers?$top=2", []string{user(0), user(1), group(inner.ID), user(2), user(3)}},
		{"transitive users", "/groups/" + outer.ID + "/transitiveMembers/microsoft.graph.user?$top=1", []string{user(0), user(1), user(2), user(3)}},
		{"transitive users, the SDK's cast", "/groups/" + outer.ID + "/transitiveMembers/graph.user", []string{user(0), user(1), user(2), user(3)}},
		{"inner with its cycle", "/groups/" + inner.ID + "/transitiveMembers", []string{user(2), user(3), group(outer.ID), user(0), user(1)}},
	} {
		got, st := list(tc.path)
		if st != 200 || !slices.Equal(got, tc.want) {
			t.Errorf("%s: %d %v, want %v", tc.name, st, got, tc.want)
		}
	}
	if err := o.ctl.RemoveGroupMember(ctx, inner.ID, "g4@contoso.example"); err != nil {
		t.Fatal(err)
	}
	if got, _ := list("/groups/" + outer.ID + "/transitiveMembers/microsoft.graph.user"); len(got) != 3 {
		t.Errorf("after a removal: %v", got)
	}

	// Refusals, as Graph words them.
	for _, tc := range []struct {
		name, token, path string
		status            int
		code              string
	}{
		{"no group permission", o.org.AppToken(t), "/groups/" + outer.ID + "/transitiveMembers", 403, "Authorization_RequestDenied"},
		{"unknown group", tok, "/groups/00000000-0000-0000-0000-000000000000/members", 404, "Request_ResourceNotFound"},
		{"bad page size", tok, "/groups/" + outer.ID + "/members?$top=1000", 400, "Request_UnsupportedQuery"},
	} {
		var ge graphErr
		if st, _ := o.graphGet(t, tc.token, tc.path, &ge); st != tc.status || ge.Error.Code != tc.code {
			t.Errorf("%s: %d %s, want %d %s", tc.name, st, ge.Error.Code, tc.status, tc.code)
		}
	}
	var g map[string]any
	if st, _ := o.graphGet(t, groupToken(t, o, "Group.Read.All"), "/groups/"+outer.ID, &g); st != 200 || g["displayName"] != "Outer" {
		t.Errorf("get group with Group.Read.All: %d %v", st, g)
	}
}
