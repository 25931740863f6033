package store_test

import (
	"context"
	"slices"
	"testing"

	"github.com/outlookd/outlookd/store"
)

// TestDirectoryOfAnApplicationConnection follows users through rounds of
// /users/delta as the store records them: a user to sync joins with a
// mailbox ID, one excluded keeps its reason, a synced one that should no
// longer be (deleted, or now excluded) leaves, the pending changes are
// listed until applied, and the link is kept with the page.
func TestDirectoryOfAnApplicationConnection(t *testing.T) {
	ctx := context.Background()
	st := newStore(t)
	if err := st.CreateConnection(ctx, store.Connection{ID: "c-app", OrgID: "o", OwnerID: "admin", State: "active", Mode: "application"}); err != nil {
		t.Fatal(err)
	}
	if link, rounds, err := st.DirectoryLink(ctx, "c-app"); err != nil || link != "" || rounds != 0 {
		t.Fatalf("a new connection's link: %q %d %v", link, rounds, err)
	}
	page1 := []store.DirectoryChange{
		{UserID: "u-ada", Address: "ada@contoso.example", Want: true, NewMailboxID: "mbx_ada_00001"},
		{UserID: "u-kiosk", Address: "kiosk@contoso.example", Reason: "no_mailbox"},
		{UserID: "u-ceo", Address: "ceo@contoso.example", Reason: "access_policy"},
		{UserID: "u-never", Gone: true, Reason: "user_deleted"},
	}
	if err := st.ApplyDirectoryPage(ctx, "c-app", page1, "https://graph/users/delta?$skiptoken=1", false); err != nil {
		t.Fatal(err)
	}
	page2 := []store.DirectoryChange{
		{UserID: "u-bob", Address: "bob@contoso.example", Want: true, NewMailboxID: "mbx_bob_00001"},
		{UserID: "u-support", Address: "support@contoso.example", Shared: true, Want: true, NewMailboxID: "mbx_sup_00001"},
	}
	if err := st.ApplyDirectoryPage(ctx, "c-app", page2, "https://graph/users/delta?$deltatoken=1", true); err != nil {
		t.Fatal(err)
	}
	if link, rounds, _ := st.DirectoryLink(ctx, "c-app"); link != "https://graph/users/delta?$deltatoken=1" || rounds != 1 {
		t.Errorf("link after a round: %q %d", link, rounds)
	}
	pending, _, err := st.PendingDirectoryUsers(ctx, "c-app", 10, false)
	if err != nil || len(pending) != 3 || pending[0].UserID != "u-ada" || pending[0].MailboxID != "mbx_ada_00001" || pending[0].Status != store.DirJoining {
		t.Fatalf("pending after the first round: %+v %v", pending, err)
	}
	for _, u := range pending {
		if err := st.SetDirectoryStatus(ctx, "c-app", u.UserID, store.DirJoining, store.DirSyncing, ""); err != nil {
			t.Fatal(err)
		}
	}
	// The next round: ada is reported again (a replay: nothing changes),
	// bob is deleted, the support mailbox now excluded, a newcomer joins.
	page3 := []store.DirectoryChange{
		{UserID: "u-ada", Address: "ada@contoso.example", Want: true, NewMailboxID: "mbx_ada_00002"},
		{UserID: "u-bob", Gone: true, Reason: "user_deleted"},
		{UserID: "u-support", Address: "support@contoso.example", Shared: true, Reason: "shared_not_selected"},
		{UserID: "u-new", Address: "new@contoso.example", Want: true, NewMailboxID: "mbx_new_00001"},
	}
	if err := st.ApplyDirectoryPage(ctx, "c-app", page3, "https://graph/users/delta?$deltatoken=2", true); err != nil {
		t.Fatal(err)
	}
	got := map[string]store.DirectoryUser{}
	users, err := st.ListDirectoryUsers(ctx, "c-app", "", "", 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range users {
		got[u.UserID] = u
	}
	for id, want := range map[string]string{"u-ada": "syncing:", "u-bob": "leaving:user_deleted", "u-support": "leaving:shared_not_selected",
		"u-new": "joining:", "u-kiosk": "excluded:no_mailbox", "u-ceo": "excluded:access_policy"} {
		if u := got[id]; u.Status+":"+u.Reason != want {
			t.Errorf("%s: %s:%s, want %s", id, u.Status, u.Reason, want)
		}
	}
	if got["u-ada"].MailboxID != "mbx_ada_00001" {
		t.Errorf("a replayed user got a new mailbox ID: %s", got["u-ada"].MailboxID)
	}
	if _, ok := got["u-never"]; ok {
		t.Error("a user never seen and gone was recorded")
	}
	if err := st.SetDirectoryStatus(ctx, "c-app", "u-bob", store.DirLeaving, store.DirLeft, ""); err != nil {
		t.Fatal(err)
	}
	p, err := st.DirectoryProgressOf(ctx, "c-app")
	if err != nil || p.Discovered != 6 || p.ByStatus[store.DirSyncing] != 1 || p.Excluded["no_mailbox"] != 1 || p.Excluded["access_policy"] != 1 ||
		p.Left["user_deleted"] != 1 || p.Rounds != 2 {
		t.Errorf("progress: %+v %v", p, err)
	}
	if excluded, _ := st.ListDirectoryUsers(ctx, "c-app", store.DirExcluded, "", 100); len(excluded) != 2 {
		t.Errorf("excluded users: %+v", excluded)
	}
	if err := st.CloseDirectory(ctx, "c-app", "disconnected"); err != nil {
		t.Fatal(err)
	}
	if p, _ := st.DirectoryProgressOf(ctx, "c-app"); p.ByStatus[store.DirSyncing]+p.ByStatus[store.DirJoining]+p.ByStatus[store.DirLeaving] != 0 || p.Left["disconnected"] != 3 {
		t.Errorf("after the disconnect: %+v", p)
	}
	if err := st.ResetDirectoryLink(ctx, "c-app"); err != nil {
		t.Fatal(err)
	}
	if link, _, _ := st.DirectoryLink(ctx, "c-app"); link != "" {
		t.Errorf("link after a reset: %q", link)
	}
}

// TestDirectoryUserDetached: a user whose mailbox the app detached is
// excluded with reason "detached" and stays so when the directory reports
// the user again; marking twice, or a user not synced, changes nothing; a
// detached user deleted from the tenant is recorded left.
func TestDirectoryUserDetached(t *testing.T) {
	ctx := context.Background()
	st := newStore(t)
	if err := st.CreateConnection(ctx, store.Connection{ID: "c-det", OrgID: "o", OwnerID: "admin", State: "active", Mode: "application"}); err != nil {
		t.Fatal(err)
	}
	page := []store.DirectoryChange{
		{UserID: "u-ada", Address: "ada@contoso.example", Want: true, NewMailboxID: "mbx_ada_00001"},
		{UserID: "u-bob", Address: "bob@contoso.example", Want: true, NewMailboxID: "mbx_bob_00001"},
		{UserID: "u-kiosk", Address: "kiosk@contoso.example", Reason: "no_mailbox"},
	}
	if err := st.ApplyDirectoryPage(ctx, "c-det", page, "link-1", true); err != nil {
		t.Fatal(err)
	}
	if err := st.SetDirectoryStatus(ctx, "c-det", "u-ada", store.DirJoining, store.DirSyncing, ""); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := st.MarkDirectoryDetached(ctx, "c-det", "mbx_ada_00001"); err != nil {
			t.Fatal(err)
		}
	}
	// Reported again (a rename, say), ada stays out; bob is deleted.
	again := []store.DirectoryChange{
		{UserID: "u-ada", Address: "ada.l@contoso.example", Want: true, NewMailboxID: "mbx_ada_00002"},
		{UserID: "u-kiosk", Address: "kiosk@contoso.example", Reason: "no_mailbox"},
	}
	if err := st.ApplyDirectoryPage(ctx, "c-det", again, "link-2", true); err != nil {
		t.Fatal(err)
	}
	got := map[string]store.DirectoryUser{}
	users, err := st.ListDirectoryUsers(ctx, "c-det", "", "", 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range users {
		got[u.UserID] = u
	}
	for id, want := range map[string]string{"u-ada": "excluded:detached", "u-bob": "joining:", "u-kiosk": "excluded:no_mailbox"} {
		if u := got[id]; u.Status+":"+u.Reason != want {
			t.Errorf("%s: %s:%s, want %s", id, u.Status, u.Reason, want)
		}
	}
	if got["u-ada"].MailboxID != "mbx_ada_00001" || got["u-ada"].Address != "ada.l@contoso.example" {
		t.Errorf("the detached user: %+v", got["u-ada"])
	}
	if pending, _, _ := st.PendingDirectoryUsers(ctx, "c-det", 10, false); len(pending) != 1 || pending[0].UserID != "u-bob" {
		t.Errorf("pending: %+v", pending)
	}
	gone := []store.DirectoryChange{{UserID: "u-ada", Gone: true, Reason: "user_deleted"}}
	if err := st.ApplyDirectoryPage(ctx, "c-det", gone, "link-3", true); err != nil {
		t.Fatal(err)
	}
	if u, _ := st.ListDirectoryUsers(ctx, "c-det", store.DirLeft, "", 10); len(u) != 1 || u[0].Reason != "user_deleted" {
		t.Errorf("the detached user deleted: %+v", u)
	}
}

// TestGroupMembersOfAnApplicationConnection: each read of the selected
// groups' members is compared with the last (who came in, who went out),
// and changes applied outside a page leave the link alone.
func TestGroupMembersOfAnApplicationConnection(t *testing.T) {
	ctx := context.Background()
	st := newStore(t)
	if err := st.CreateConnection(ctx, store.Connection{ID: "c-grp", OrgID: "o", OwnerID: "admin", State: "active", Mode: "application"}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name           string
		members        []string
		added, removed []string
	}{
		{"first read", []string{"u-b", "u-a", "u-a"}, []string{"u-a", "u-b"}, nil},
		{"same", []string{"u-a", "u-b"}, nil, nil},
		{"one in, one out", []string{"u-a", "u-c"}, []string{"u-c"}, []string{"u-b"}},
		{"empty", nil, nil, []string{"u-a", "u-c"}},
	} {
		added, removed, err := st.ReplaceGroupMembers(ctx, "c-grp", tc.members)
		if err != nil || !slices.Equal(added, tc.added) || !slices.Equal(removed, tc.removed) {
			t.Errorf("%s: added %v removed %v (%v), want %v %v", tc.name, added, removed, err, tc.added, tc.removed)
		}
	}
	if _, _, err := st.ReplaceGroupMembers(ctx, "c-grp", []string{"u-a"}); err != nil {
		t.Fatal(err)
	}
	if m, err := st.GroupMembers(ctx, "c-grp", []string{"u-a", "u-b"}); err != nil || !m["u-a"] || m["u-b"] {
		t.Errorf("members: %v %v", m, err)
	}
	if err := st.ApplyDirectoryPage(ctx, "c-grp", []store.DirectoryChange{{UserID: "u-b", Address: "b@x", Reason: "not_selected"}}, "delta-1", true); err != nil {
		t.Fatal(err)
	}
	if err := st.ApplyDirectoryChanges(ctx, "c-grp", []store.DirectoryChange{{UserID: "u-b", Address: "b@x", Want: true, NewMailboxID: "mbx_b"}}); err != nil {
		t.Fatal(err)
	}
	known, err := st.KnownDirectoryUsers(ctx, "c-grp", []string{"u-b", "u-z"})
	if err != nil || len(known) != 1 || known["u-b"].Status != store.DirJoining || known["u-b"].MailboxID != "mbx_b" {
		t.Errorf("after a change outside a page: %+v %v", known, err)
	}
	if link, rounds, _ := st.DirectoryLink(ctx, "c-grp"); link != "delta-1" || rounds != 1 {
		t.Errorf("the link moved: %q %d", link, rounds)
	}
}

// TestPrefillAheadOfTheWorkflow: a joining user's mailbox is attached and
// backfilled ahead of its workflow only while the user still joins; what
// was done is recorded with its event, once, and the change is listed for
// the workflow only then (the others counted as held); a user who joins
// again under a new mailbox ID starts over; and a leaving user is never
// attached.
func TestPrefillAheadOfTheWorkflow(t *testing.T) {
	ctx := context.Background()
	st := newStore(t)
	if err := st.CreateConnection(ctx, store.Connection{ID: "c-pre", OrgID: "o", OwnerID: "admin", State: "active", Mode: "application"}); err != nil {
		t.Fatal(err)
	}
	page := []store.DirectoryChange{
		{UserID: "u-ada", Address: "ada@contoso.example", Want: true, NewMailboxID: "mbx_ada_00001"},
		{UserID: "u-bob", Address: "bob@contoso.example", Want: true, NewMailboxID: "mbx_bob_00001"},
		{UserID: "u-cy", Address: "cy@contoso.example", Want: true, NewMailboxID: "mbx_cy_00001"},
	}
	if err := st.ApplyDirectoryPage(ctx, "c-pre", page, "link-1", true); err != nil {
		t.Fatal(err)
	}
	cands, err := st.PrefillCandidates(ctx, "c-pre", 2)
	if err != nil || len(cands) != 2 || cands[0].UserID != "u-ada" || cands[1].UserID != "u-bob" {
		t.Fatalf("candidates: %+v %v", cands, err)
	}
	if cands, err := st.PrefillCandidates(ctx, "c-pre", 2, "u-ada"); err != nil || len(cands) != 2 || cands[0].UserID != "u-bob" || cands[1].UserID != "u-cy" {
		t.Fatalf("candidates but one under way: %+v %v", cands, err)
	}
	if pending, held, err := st.PendingDirectoryUsers(ctx, "c-pre", 10, true); err != nil || len(pending) != 0 || held != 3 {
		t.Fatalf("nothing prefilled: %d pending, %d held, %v", len(pending), held, err)
	}
	if pending, _, _ := st.PendingDirectoryUsers(ctx, "c-pre", 10, false); len(pending) != 3 {
		t.Fatalf("without prefill every join is pending: %d", len(pending))
	}
	attach := func(user, mailbox, address string) bool {
		t.Helper()
		ok, err := st.AttachJoiningMailbox(ctx, store.Mailbox{ID: mailbox, ConnectionID: "c-pre", Address: address, UserID: user})
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	for range 2 { // the second time a no-op
		if !attach("u-ada", "mbx_ada_00001", "ada@contoso.example") {
			t.Fatal("a joining user's mailbox is not attached")
		}
	}
	done := store.Event{ID: "mbx_ada_00001:backfill:1", ConnectionID: "c-pre", MailboxID: "mbx_ada_00001", Type: "backfill.completed", Data: map[string]any{"fetched": 5}}
	for range 2 {
		if err := st.RecordPrefill(ctx, "c-pre", "u-ada", "mbx_ada_00001", []byte(`{"done":true}`), done); err != nil {
			t.Fatal(err)
		}
	}
	pending, held, err := st.PendingDirectoryUsers(ctx, "c-pre", 10, true)
	if err != nil || len(pending) != 1 || pending[0].UserID != "u-ada" || string(pending[0].Prefill) != `{"done": true}` || held != 2 {
		t.Fatalf("ada prefilled: %+v, %d held, %v", pending, held, err)
	}
	var events int
	if err := st.Pool().QueryRow(ctx, `SELECT count(*) FROM events WHERE id = 'mbx_ada_00001:backfill:1'`).Scan(&events); err != nil || events != 1 {
		t.Fatalf("backfill.completed recorded %d times (%v), want once", events, err)
	}
	// bob leaves before his mailbox was attached: it never is, and what a
	// prefill under way would record of it is dropped with its events.
	if err := st.ApplyDirectoryPage(ctx, "c-pre", []store.DirectoryChange{{UserID: "u-bob", Gone: true, Reason: "user_deleted"}}, "link-2", true); err != nil {
		t.Fatal(err)
	}
	if attach("u-bob", "mbx_bob_00001", "bob@contoso.example") {
		t.Error("a leaving user's mailbox was attached")
	}
	late := store.Event{ID: "mbx_bob_00001:backfill:1", ConnectionID: "c-pre", MailboxID: "mbx_bob_00001", Type: "backfill.completed"}
	if err := st.RecordPrefill(ctx, "c-pre", "u-bob", "mbx_bob_00001", []byte(`{"done":true}`), late); err != nil {
		t.Fatal(err)
	}
	if err := st.Pool().QueryRow(ctx, `SELECT count(*) FROM events WHERE id = $1`, late.ID).Scan(&events); err != nil || events != 0 {
		t.Fatalf("a leaving user's prefill recorded %d events (%v)", events, err)
	}
	// ada leaves and joins again: her new mailbox starts over.
	if err := st.SetDirectoryStatus(ctx, "c-pre", "u-ada", store.DirJoining, store.DirSyncing, ""); err != nil {
		t.Fatal(err)
	}
	if err := st.ApplyDirectoryPage(ctx, "c-pre", []store.DirectoryChange{{UserID: "u-ada", Gone: true, Reason: "user_deleted"}}, "link-3", true); err != nil {
		t.Fatal(err)
	}
	if err := st.SetDirectoryStatus(ctx, "c-pre", "u-ada", store.DirLeaving, store.DirLeft, ""); err != nil {
		t.Fatal(err)
	}
	again := []store.DirectoryChange{{UserID: "u-ada", Address: "ada@contoso.example", Want: true, NewMailboxID: "mbx_ada_00002"}}
	if err := st.ApplyDirectoryPage(ctx, "c-pre", again, "link-4", true); err != nil {
		t.Fatal(err)
	}
	cands, err = st.PrefillCandidates(ctx, "c-pre", 10)
	if err != nil || len(cands) != 2 || cands[0].UserID != "u-ada" || cands[0].MailboxID != "mbx_ada_00002" || cands[0].Prefill != nil || cands[1].UserID != "u-cy" {
		t.Fatalf("candidates after ada joined again: %+v %v", cands, err)
	}
}
