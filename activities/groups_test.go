package activities

import (
	"context"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/outlookd/outlookd/graph"
	"github.com/outlookd/outlookd/graphsim"
	"github.com/outlookd/outlookd/graphsim/simtest"
	"github.com/outlookd/outlookd/internal/testenv"
	"github.com/outlookd/outlookd/store"
	"github.com/outlookd/outlookd/workflows"
)

// A selection by group against graphsim and Postgres: the first read
// records the members (nested ones too); after a member of the nested
// group is swapped for another user, the next read makes the newcomer
// join (its mailbox read again) and the one who went out leave, with no
// page of /users/delta.
func TestDiscoverGroupsAgainstGraphsim(t *testing.T) {
	ctx := context.Background()
	org := simtest.StartOrg(t, graphsim.Options{})
	tenant := org.Tenant.Tenant.ID
	st, err := store.Open(ctx, testenv.Postgres(t), 4)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	ids := map[string]string{}
	for _, n := range []string{"ann", "bob", "cid"} {
		u, err := org.Ctl.AddUser(ctx, graphsim.UserSpec{Tenant: tenant, UPN: n + "@contoso.example"})
		if err != nil {
			t.Fatal(err)
		}
		ids[n] = u.ID
	}
	nested, err := org.Ctl.AddGroup(ctx, graphsim.GroupSpec{Tenant: tenant, DisplayName: "Nested", Members: []string{ids["bob"]}})
	if err != nil {
		t.Fatal(err)
	}
	outer, err := org.Ctl.AddGroup(ctx, graphsim.GroupSpec{Tenant: tenant, DisplayName: "Sales", Members: []string{ids["ann"], nested.ID}})
	if err != nil {
		t.Fatal(err)
	}
	roles := []string{"User.Read.All", "Mail.Read", "MailboxSettings.Read", "GroupMember.Read.All"}
	app, err := org.Ctl.AddApp(ctx, graphsim.AppSpec{Name: "group indexer", AppRoles: roles})
	if err != nil {
		t.Fatal(err)
	}
	if err := org.Ctl.GrantConsent(ctx, graphsim.ConsentSpec{Tenant: tenant, ClientID: app.ClientID, Roles: roles}); err != nil {
		t.Fatal(err)
	}
	cc := org.AppCredentials(tenant)
	cc.ClientID, cc.ClientSecret = app.ClientID, app.Secrets[0].Value
	tok, err := cc.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	gc, err := graph.NewClient(graph.Config{BaseURL: org.Sim.GraphURL()}, oauth2.StaticTokenSource(tok))
	if err != nil {
		t.Fatal(err)
	}
	mailboxGraph := func(context.Context, string) (*graph.Client, error) { return gc, nil }

	id := "conn_groups_" + time.Now().UTC().Format("150405.000000")
	if err := st.CreateConnection(ctx, store.Connection{ID: id, OrgID: "o", OwnerID: "admin", State: "active", Mode: "application"}); err != nil {
		t.Fatal(err)
	}
	a := &Activities{Store: st}
	in := workflows.DiscoverGroupsInput{ConnectionID: id, Selection: workflows.Selection{Groups: []string{outer.ID}}}
	res, err := a.discoverGroups(ctx, gc, mailboxGraph, in)
	if err != nil || res.Members != 2 || res.Joined != 0 || res.Left != 0 {
		t.Fatalf("first read: %+v %v", res, err)
	}
	// The round's pages, as DiscoverPage records them.
	members, err := st.GroupMembers(ctx, id, []string{ids["ann"], ids["bob"], ids["cid"]})
	if err != nil || !members[ids["ann"]] || !members[ids["bob"]] || members[ids["cid"]] {
		t.Fatalf("members recorded: %v %v", members, err)
	}
	var page []store.DirectoryChange
	for _, n := range []string{"ann", "bob", "cid"} {
		c := store.DirectoryChange{UserID: ids[n], Address: n + "@contoso.example"}
		if reason := selectionRefuses(in.Selection, members[ids[n]], ids[n], c.Address); reason != "" {
			c.Reason = reason
		} else {
			c.Want, c.NewMailboxID = true, "mbx_"+n
		}
		page = append(page, c)
	}
	if err := st.ApplyDirectoryPage(ctx, id, page, "delta-1", true); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"ann", "bob"} {
		if err := st.SetDirectoryStatus(ctx, id, ids[n], store.DirJoining, store.DirSyncing, ""); err != nil {
			t.Fatal(err)
		}
	}

	if err := org.Ctl.RemoveGroupMember(ctx, nested.ID, ids["bob"]); err != nil {
		t.Fatal(err)
	}
	if err := org.Ctl.AddGroupMember(ctx, nested.ID, "cid@contoso.example"); err != nil {
		t.Fatal(err)
	}
	res, err = a.discoverGroups(ctx, gc, mailboxGraph, in)
	if err != nil || res.Members != 2 || res.Joined != 1 || res.Left != 1 {
		t.Fatalf("after the change: %+v %v", res, err)
	}
	known, err := st.KnownDirectoryUsers(ctx, id, []string{ids["ann"], ids["bob"], ids["cid"]})
	if err != nil {
		t.Fatal(err)
	}
	for n, want := range map[string]string{"ann": store.DirSyncing, "bob": store.DirLeaving, "cid": store.DirJoining} {
		if got := known[ids[n]].Status; got != want {
			t.Errorf("%s: %s (%s), want %s", n, got, known[ids[n]].Reason, want)
		}
	}
	if known[ids["bob"]].Reason != ExcludedNotSelected || known[ids["cid"]].MailboxID == "" {
		t.Errorf("bob %+v, cid %+v", known[ids["bob"]], known[ids["cid"]])
	}
	if link, _, _ := st.DirectoryLink(ctx, id); link != "delta-1" {
		t.Errorf("the users delta link moved: %q", link)
	}
}
