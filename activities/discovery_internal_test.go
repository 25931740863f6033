package activities

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/testsuite"

	"github.com/outlookd/outlookd/graphsim"
	"github.com/outlookd/outlookd/graphsim/simtest"
	"github.com/outlookd/outlookd/internal/testenv"
	"github.com/outlookd/outlookd/store"
	"github.com/outlookd/outlookd/vault"
	"github.com/outlookd/outlookd/workflows"
)

// TestDiscoverPagesAgainstGraphsim reads a directory of several
// /users/delta pages: one call reads as many pages as it is asked,
// recording each with the link that follows it, the next call goes on
// from that link to the end of the round, and a round after a change
// reads only the change.
func TestDiscoverPagesAgainstGraphsim(t *testing.T) {
	ctx := context.Background()
	org := simtest.StartOrg(t, graphsim.Options{UsersDeltaPageSize: 3})
	st, err := store.Open(ctx, testenv.Postgres(t), 4)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	tenant := org.Tenant.Tenant.ID
	stamp := strings.ReplaceAll(time.Now().UTC().Format("150405.000000"), ".", "")
	var joiners []string
	for i := range 7 {
		upn := fmt.Sprintf("page%d-%s@contoso.example", i, stamp)
		u, err := org.Ctl.AddUser(ctx, graphsim.UserSpec{Tenant: tenant, UPN: upn})
		if err != nil {
			t.Fatal(err)
		}
		joiners = append(joiners, u.ID)
	}
	conn := "conn_pages_" + stamp
	if err := st.CreateConnection(ctx, store.Connection{ID: conn, OrgID: "o", OwnerID: "admin", State: "active", Mode: "application", TenantID: tenant}); err != nil {
		t.Fatal(err)
	}
	tok, err := org.AppTokenSource().Token()
	if err != nil {
		t.Fatal(err)
	}
	a := &Activities{Store: st, GraphURL: org.Sim.GraphURL()}
	// The app-only token, as the worker keeps it: every read here is
	// answered, so Vault is never asked.
	a.keepToken(conn, vault.Tokens{AccessToken: tok.AccessToken, Expiry: tok.Expiry})
	env := (&testsuite.WorkflowTestSuite{}).NewTestActivityEnvironment()
	env.RegisterActivity(a)
	read := func(pages int) workflows.DiscoverPageResult {
		t.Helper()
		v, err := env.ExecuteActivity(a.DiscoverPage, workflows.DiscoverPageInput{ConnectionID: conn, Selection: workflows.Selection{Shared: true}, Pages: pages})
		if err != nil {
			t.Fatal(err)
		}
		var res workflows.DiscoverPageResult
		if err := v.Get(&res); err != nil {
			t.Fatal(err)
		}
		return res
	}
	first := read(2)
	if first.Users != 6 || first.RoundDone {
		t.Fatalf("two pages of three: %+v", first)
	}
	if link, _, err := st.DirectoryLink(ctx, conn); err != nil || !strings.Contains(link, "skiptoken") {
		t.Fatalf("the link after two pages: %q %v", link, err)
	}
	rest := read(10)
	if !rest.RoundDone || rest.Users == 0 || rest.Users > 3*10 {
		t.Fatalf("the rest of the round: %+v", rest)
	}
	known, err := st.KnownDirectoryUsers(ctx, conn, joiners)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range joiners {
		if known[id].Status != store.DirJoining {
			t.Errorf("user %s: %q (%s), want joining", id, known[id].Status, known[id].Reason)
		}
	}
	all, err := st.ListDirectoryUsers(ctx, conn, "", "", 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != first.Users+rest.Users {
		t.Errorf("%d users recorded, %d read", len(all), first.Users+rest.Users)
	}
	// A newcomer: the next round reads only the change.
	u, err := org.Ctl.AddUser(ctx, graphsim.UserSpec{Tenant: tenant, UPN: "late-" + stamp + "@contoso.example"})
	if err != nil {
		t.Fatal(err)
	}
	if next := read(10); next.Users != 1 || !next.RoundDone {
		t.Errorf("the round after a newcomer: %+v, want one user and the round done", next)
	}
	if known, err := st.KnownDirectoryUsers(ctx, conn, []string{u.ID}); err != nil || known[u.ID].Status != store.DirJoining {
		t.Errorf("the newcomer: %+v %v", known[u.ID], err)
	}
}
