package activities

import (
	"context"
	"encoding/json"
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

// TestPrefillMailboxesAgainstGraphsim backfills joining users' mailboxes
// ahead of their workflows, through the budget shared in Postgres: whole
// mailboxes are recorded done with their folders and backfill.completed,
// matching graphsim's ground truth; a mailbox another connection holds is
// excluded as taken; one an access policy closes after discovery is left
// to its workflow with the reason; a call's limit leaves the rest to the
// next call, which takes up only the users not yet recorded.
func TestPrefillMailboxesAgainstGraphsim(t *testing.T) {
	ctx := context.Background()
	org := simtest.StartOrg(t, graphsim.Options{})
	st, err := store.Open(ctx, testenv.Postgres(t), 8)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	tenant := org.Tenant.Tenant.ID
	stamp := time.Now().UTC().Format("150405.000000")
	conn := "conn_pre_" + strings.ReplaceAll(stamp, ".", "")
	type person struct {
		name, upn, id, mailbox string
		messages               int
	}
	people := []*person{{name: "ada", messages: 40}, {name: "bob", messages: 25}, {name: "cy", messages: 10}, {name: "dan", messages: 5}, {name: "eve", messages: 30}}
	var page []store.DirectoryChange
	for i, p := range people {
		p.upn = fmt.Sprintf("%s-%s@contoso.example", p.name, strings.ReplaceAll(stamp, ".", ""))
		u, err := org.Ctl.AddUser(ctx, graphsim.UserSpec{Tenant: tenant, UPN: p.upn, DisplayName: p.name})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := org.Ctl.Generate(ctx, p.upn, graphsim.GenerateSpec{Count: p.messages, Days: 20, Seed: uint64(7 + i)}); err != nil {
			t.Fatal(err)
		}
		p.id, p.mailbox = u.ID, fmt.Sprintf("mbx_%s_%s", p.name, strings.ReplaceAll(stamp, ".", ""))
		page = append(page, store.DirectoryChange{UserID: p.id, Address: p.upn, DisplayName: p.name, Want: true, NewMailboxID: p.mailbox})
	}
	ada, cy, dan := people[0], people[2], people[3]
	if err := st.CreateConnection(ctx, store.Connection{ID: conn, OrgID: "o", OwnerID: "admin", State: "active", Mode: "application", Settings: []byte("{}")}); err != nil {
		t.Fatal(err)
	}
	// dan's mailbox is another connection's (his own, delegated).
	if err := st.CreateConnection(ctx, store.Connection{ID: conn + "_dan", OrgID: "o", OwnerID: "dan", State: "active", Mode: "delegated"}); err != nil {
		t.Fatal(err)
	}
	if err := st.UpdateConnection(ctx, conn+"_dan", store.ConnectionUpdate{Mailbox: dan.upn}); err != nil {
		t.Fatal(err)
	}
	if err := st.ApplyDirectoryPage(ctx, conn, page, "link-1", true); err != nil {
		t.Fatal(err)
	}
	// cy's mailbox is closed to the app by a policy applied since.
	if err := org.Ctl.SetAppAccessPolicy(ctx, graphsim.AppAccessPolicy{Tenant: tenant, AppID: org.Daemon.ClientID,
		AccessRight: graphsim.PolicyDenyAccess, Members: []string{cy.upn}}); err != nil {
		t.Fatal(err)
	}
	tok, err := org.AppTokenSource().Token()
	if err != nil {
		t.Fatal(err)
	}
	a := &Activities{Store: st, Tokens: testenv.VaultClient(t).Tokens(), GraphURL: org.Sim.GraphURL(), Limits: NewMailboxLimits(st, 0, 0, 0)}
	if err := a.Tokens.PutTokens(ctx, conn, vault.Tokens{AccessToken: tok.AccessToken, Expiry: tok.Expiry}, 0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = a.Tokens.Purge(context.Background(), conn) })
	env := (&testsuite.WorkflowTestSuite{}).NewTestActivityEnvironment()
	env.RegisterActivity(a)
	window := time.Now().Add(-30 * 24 * time.Hour)
	in := workflows.PrefillInput{Backfill: workflows.BackfillInput{ConnectionID: conn, Roots: workflows.DefaultFolders, WindowStart: window, PageSize: 10, Concurrency: 3},
		Limit: 3, AtOnce: 2, Budget: 30 * time.Second}
	run := func(in workflows.PrefillInput) workflows.PrefillResult {
		t.Helper()
		v, err := env.ExecuteActivity(a.PrefillMailboxes, in)
		if err != nil {
			t.Fatal(err)
		}
		var res workflows.PrefillResult
		if err := v.Get(&res); err != nil {
			t.Fatal(err)
		}
		return res
	}
	first := run(in)
	if first.Mailboxes != 3 || !first.More {
		t.Fatalf("first call: %+v, want 3 mailboxes looked at and more", first)
	}
	in.Limit = 10
	second := run(in)
	if first.Mailboxes+second.Mailboxes != len(people) || second.More {
		t.Fatalf("second call: %+v after %+v, want the %d others and no more", second, first, len(people)-first.Mailboxes)
	}
	if got := first.Done + second.Done; got != 3 {
		t.Errorf("%d mailboxes done whole, want 3 (ada, bob, eve)", got)
	}
	if third := run(in); third.Mailboxes != 0 || third.More {
		t.Errorf("a third call found %+v: every user was recorded", third)
	}
	users, err := st.ListDirectoryUsers(ctx, conn, "", "", 100)
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]store.DirectoryUser{}
	for _, u := range users {
		byID[u.UserID] = u
	}
	var fetched int64
	for _, p := range people {
		u := byID[p.id]
		var rec prefillRecord
		if len(u.Prefill) > 0 {
			if err := json.Unmarshal(u.Prefill, &rec); err != nil {
				t.Fatal(err)
			}
		}
		switch p {
		case dan:
			if u.Status != store.DirExcluded || u.Reason != ExcludedMailboxTaken || len(u.Prefill) != 0 {
				t.Errorf("dan: %s %s %s, want excluded as %s", u.Status, u.Reason, u.Prefill, ExcludedMailboxTaken)
			}
			continue
		case cy:
			if rec.Done || rec.Backfill != nil || !strings.Contains(rec.Left, "no longer open this mailbox") {
				t.Errorf("cy, closed by a policy: %+v, want left to the workflow with the reason", rec)
			}
			continue
		}
		truth, err := org.Ctl.GroundTruth(ctx, p.upn)
		if err != nil {
			t.Fatal(err)
		}
		synced := map[string]bool{}
		for _, f := range truth.Folders {
			synced[f.ID] = f.WellKnown == "inbox" || f.WellKnown == "sentitems" || f.WellKnown == "archive"
		}
		want := 0
		for _, m := range truth.Messages {
			if synced[m.FolderID] && !m.Received.Before(window) {
				want++
			}
		}
		n, err := st.CountMessages(ctx, p.mailbox)
		if err != nil {
			t.Fatal(err)
		}
		if !rec.Done || rec.Backfill == nil || len(rec.Backfill.Folders) != 3 || n != int64(want) || want == 0 {
			t.Errorf("%s: %+v with %d messages stored, want done with 3 folders and %d messages", p.name, rec, n, want)
		}
		fetched += n
	}
	if got := first.Messages + second.Messages; got != fetched {
		t.Errorf("the calls counted %d messages, %d stored", got, fetched)
	}
	events, err := st.Events(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	completed := map[string]int{}
	for _, e := range events {
		if e.Type == "backfill.completed" {
			completed[e.MailboxID]++
		}
	}
	if len(completed) != 3 || completed[ada.mailbox] != 1 || completed[cy.mailbox] != 0 {
		t.Errorf("backfill.completed events: %v, want one for each of ada, bob and eve", completed)
	}
}
