package api_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/outlookd/outlookd/graphsim"
	"github.com/outlookd/outlookd/workflows"
)

// filteredTruth is graphsim's ground truth filtered as the contact filter
// does: the messages of the synced folders from or to (sender, To, Cc) a
// contact, addresses compared without regard to case.
func filteredTruth(t *testing.T, h *harness, user string, roots []string, contacts map[string]bool) []string {
	t.Helper()
	truth, err := h.e.Ctl.GroundTruth(context.Background(), user)
	if err != nil {
		t.Fatal(err)
	}
	synced := map[string]bool{}
	for _, f := range truth.Folders {
		if slices.Contains(roots, f.WellKnown) {
			synced[f.ID] = true
		}
	}
	var out []string
	for _, m := range truth.Messages {
		if !synced[m.FolderID] {
			continue
		}
		match := contacts[strings.ToLower(m.From.Address)]
		for _, r := range append(append([]graphsim.Recipient(nil), m.To...), m.Cc...) {
			match = match || contacts[strings.ToLower(r.Address)]
		}
		if match {
			out = append(out, m.ImmutableID)
		}
	}
	slices.Sort(out)
	return out
}

// storedIDs are the IDs of a mailbox's stored messages, sorted.
func storedIDs(t *testing.T, h *harness, mailbox string) []string {
	t.Helper()
	msgs, err := h.e.Store.Messages(context.Background(), mailbox)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range msgs {
		out = append(out, m.ID)
	}
	return out
}

// compareIDs counts what the store lacks and what it holds beyond want.
func compareIDs(got, want []string) (lost, extra int) {
	for _, id := range want {
		if _, ok := slices.BinarySearch(got, id); !ok {
			lost++
		}
	}
	for _, id := range got {
		if _, ok := slices.BinarySearch(want, id); !ok {
			extra++
		}
	}
	return lost, extra
}

type contactsView struct {
	Filter        bool    `json:"filter"`
	Fetching      bool    `json:"fetching"`
	Waiting       int64   `json:"waiting"`
	LastFetchedAt *string `json:"last_fetched_at"`
}

// waitFetched waits until the connection's fetch of added contacts' past
// mail has ended after the given completion time.
func (h *harness) waitFetched(t *testing.T, id, key, user string, after *string) contactsView {
	t.Helper()
	var v struct {
		Contacts *contactsView `json:"contacts"`
	}
	for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		r := h.call(t, "GET", "/v1/connections/"+id, key, user, nil)
		if r.status == 200 {
			r.json(t, &v)
			if k := v.Contacts; k != nil && !k.Fetching && k.Waiting == 0 && k.LastFetchedAt != nil && (after == nil || *k.LastFetchedAt != *after) {
				return *k
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the contacts' past mail was never fetched; last %d %s", r.status, r.body)
		}
	}
}

// TestContactFilterAgainstGroundTruth: a connection with the contact
// filter stores exactly the mail from or to its contacts, through the
// backfill, contacts added later (their past mail fetched without a
// re-sync), live mail, and contacts removed with their mail.
func TestContactFilterAgainstGroundTruth(t *testing.T) {
	h := newHarness(t, graphsim.Options{})
	ctx := context.Background()
	e := h.e
	roots := []string{"inbox", "sentitems"}
	if _, err := e.Ctl.Generate(ctx, e.Ada.UPN, graphsim.GenerateSpec{Count: 400, Days: 10, Folders: []string{"inbox", "inbox", "sentitems", "archive"}, Seed: 19, Correspondents: 30}); err != nil {
		t.Fatal(err)
	}
	truth, _ := e.Ctl.GroundTruth(ctx, e.Ada.UPN)
	seen := map[string]bool{}
	var addrs []string
	for _, m := range truth.Messages {
		for _, r := range append(append([]graphsim.Recipient{m.From}, m.To...), m.Cc...) {
			a := strings.ToLower(r.Address)
			if a != "" && a != strings.ToLower(e.Ada.UPN) && !seen[a] {
				seen[a] = true
				addrs = append(addrs, a)
			}
		}
	}
	slices.Sort(addrs)
	if len(addrs) < 12 {
		t.Fatalf("only %d correspondents", len(addrs))
	}
	first, later := addrs[:len(addrs)/3], addrs[len(addrs)/3:len(addrs)/2]

	r := h.call(t, "POST", "/v1/connections", h.acme, "u-ada", map[string]any{
		"folders": roots, "backfill_days": 30, "login_hint": e.Ada.UPN, "contact_filter": true,
	})
	var c conn
	r.json(t, &c)
	if r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	// The first contacts, sent in another case than the mail's: Exchange
	// compares addresses without regard to case.
	var body []map[string]string
	for _, a := range first {
		body = append(body, map[string]string{"address": strings.ToUpper(a[:1]) + a[1:], "name": "First " + a})
	}
	if r := h.call(t, "POST", "/v1/connections/"+c.ID+"/contacts", h.acme, "u-ada", map[string]any{"contacts": body}); r.status != 200 {
		t.Fatalf("add contacts: %d %s", r.status, r.body)
	}
	// Only the owner (or an admin key) changes them; bad input is refused.
	if r := h.call(t, "POST", "/v1/connections/"+c.ID+"/contacts", h.acme, "u-bob", map[string]any{"contacts": body}); r.status != 404 {
		t.Errorf("another user adding contacts: %d %s", r.status, r.body)
	}
	for _, bad := range []map[string]any{{"contacts": []map[string]string{{"address": "not an address"}}}, {"contacts": []any{}}, {"addresses": []string{first[0]}}} {
		if r := h.call(t, "POST", "/v1/connections/"+c.ID+"/contacts", h.acme, "u-ada", bad); r.status != 400 {
			t.Errorf("add %v: %d %s", bad, r.status, r.body)
		}
	}
	h.consent(t, c.AuthorizeURL)
	h.waitConn(t, c.ID, h.acme, "u-ada", "backfill done", func(c conn) bool {
		return c.State == workflows.StateActive && c.Backfill != nil && c.Backfill.CompletedAt != nil
	})
	contacts := map[string]bool{}
	for _, a := range first {
		contacts[a] = true
	}
	check := func(stage string) {
		t.Helper()
		want := filteredTruth(t, h, e.Ada.UPN, roots, contacts)
		got := storedIDs(t, h, c.ID)
		if lost, extra := compareIDs(got, want); lost != 0 || extra != 0 || len(want) == 0 {
			t.Errorf("%s: lost=%d extra=%d (stored %d, filtered truth %d)", stage, lost, extra, len(got), len(want))
		}
	}
	// Contacts added before the backfill ended are fetched after it.
	k := h.waitFetched(t, c.ID, h.acme, "u-ada", nil)
	check("after the backfill")

	// Contacts added later: their past mail is fetched without a re-sync.
	body = nil
	for _, a := range later {
		body = append(body, map[string]string{"address": a})
		contacts[a] = true
	}
	before, _ := e.Store.ListFolders(ctx, c.ID)
	r = h.call(t, "POST", "/v1/connections/"+c.ID+"/contacts", h.acme, "u-ada", map[string]any{"contacts": body})
	var added struct{ Added, Existing, Total, Waiting int64 }
	r.json(t, &added)
	if r.status != 200 || added.Added != int64(len(later)) || added.Total != int64(len(first)+len(later)) {
		t.Fatalf("add later contacts: %d %s", r.status, r.body)
	}
	h.waitFetched(t, c.ID, h.acme, "u-ada", k.LastFetchedAt)
	check("after contacts were added")
	after, _ := e.Store.ListFolders(ctx, c.ID)
	for i := range before {
		if before[i].Cursor != after[i].Cursor || after[i].Phase != "live" {
			t.Errorf("folder %s was re-synced: cursor %q -> %q", before[i].ID, before[i].Cursor, after[i].Cursor)
		}
	}
	if !slices.ContainsFunc(storedEvents(t, h, c.ID), func(s string) bool { return s == "contacts.fetched" }) {
		t.Error("no contacts.fetched event")
	}

	// Live mail is filtered as it arrives.
	stranger := "stranger-19@elsewhere.example"
	live, err := e.Ctl.InjectMessages(ctx, e.Ada.UPN,
		graphsim.MessageSpec{Subject: "from a contact", From: graphsim.Recipient{Address: strings.ToUpper(later[0])}},
		graphsim.MessageSpec{Subject: "from a stranger", From: graphsim.Recipient{Address: stranger}})
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if _, err := e.Store.GetMessage(ctx, c.ID, live[0]); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a contact's live message never arrived")
		}
		h.e.Temporal.SignalWorkflow(ctx, workflows.ConnectionWorkflowID(c.ID), "", workflows.SignalChanges, nil)
	}
	check("after live mail")

	// Removing a contact with its mail: what only it brought goes.
	r = h.call(t, "POST", "/v1/connections/"+c.ID+"/contacts/remove", h.acme, "u-ada", map[string]any{"addresses": []string{strings.ToUpper(first[0])}, "mail": "delete"})
	var removed struct {
		Removed         int64 `json:"removed"`
		MessagesDeleted int64 `json:"messages_deleted"`
	}
	r.json(t, &removed)
	if r.status != 200 || removed.Removed != 1 {
		t.Fatalf("remove: %d %s", r.status, r.body)
	}
	delete(contacts, first[0])
	check("after a contact was removed with its mail")
	// Removing one keeping its mail: nothing is deleted.
	n := len(storedIDs(t, h, c.ID))
	r = h.call(t, "POST", "/v1/connections/"+c.ID+"/contacts/remove", h.acme, "u-ada", map[string]any{"addresses": []string{first[1]}, "mail": "keep"})
	if r.status != 200 || len(storedIDs(t, h, c.ID)) != n {
		t.Errorf("remove keeping the mail: %d %s, %d messages -> %d", r.status, r.body, n, len(storedIDs(t, h, c.ID)))
	}
	if r := h.call(t, "POST", "/v1/connections/"+c.ID+"/contacts/remove", h.acme, "u-ada", map[string]any{"addresses": []string{first[2]}}); r.status != 400 || r.code() != "invalid_mail" {
		t.Errorf("remove without saying what to do with the mail: %d %s", r.status, r.body)
	}

	// The list pages by address; another user of the organisation sees
	// nothing of an unshared connection.
	var listed []string
	for path := "/v1/connections/" + c.ID + "/contacts?limit=3"; ; {
		r := h.call(t, "GET", path, h.acme, "u-ada", nil)
		var page struct {
			Data []struct {
				Address string `json:"address"`
			} `json:"data"`
			Total      int64  `json:"total"`
			NextCursor string `json:"next_cursor"`
		}
		r.json(t, &page)
		for _, d := range page.Data {
			listed = append(listed, d.Address)
		}
		if page.NextCursor == "" {
			break
		}
		path = "/v1/connections/" + c.ID + "/contacts?limit=3&cursor=" + page.NextCursor
	}
	if want := len(first) + len(later) - 2; len(listed) != want || !slices.IsSorted(listed) {
		t.Errorf("listed %d contacts (sorted %v), want %d", len(listed), slices.IsSorted(listed), want)
	}
	if r := h.call(t, "GET", "/v1/connections/"+c.ID+"/contacts", h.acme, "u-bob", nil); r.status != 404 {
		t.Errorf("another user listing contacts: %d", r.status)
	}
}

// storedEvents are the types of a connection's events, in order.
func storedEvents(t *testing.T, h *harness, id string) []string {
	t.Helper()
	evs, err := h.e.Store.Events(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range evs {
		out = append(out, e.Type)
	}
	return out
}
