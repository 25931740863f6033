package store_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/outlookd/outlookd/store"
)

// contactMailbox creates an active delegated connection (its mailbox
// under its ID) with an inbox, and returns a message maker.
func contactMailbox(t *testing.T, st *store.Store, id string) func(mid, from string, to, cc []string) store.Message {
	t.Helper()
	ctx := context.Background()
	if err := st.CreateConnection(ctx, store.Connection{ID: id, OrgID: "o", OwnerID: "u", State: "active", Mode: "delegated"}); err != nil {
		t.Fatal(err)
	}
	window := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	if err := st.UpsertFolders(ctx, id, []store.Folder{{ID: "inbox", DisplayName: "Inbox", WellKnown: "inbox"}}, window); err != nil {
		t.Fatal(err)
	}
	rcpts := func(as []string) []store.Recipient {
		var out []store.Recipient
		for _, a := range as {
			out = append(out, store.Recipient{Address: a})
		}
		return out
	}
	return func(mid, from string, to, cc []string) store.Message {
		return store.Message{ID: mid, FolderID: "inbox", ChangeKey: "ck", Received: window.Add(time.Hour),
			From: store.Recipient{Address: from}, To: rcpts(to), Cc: rcpts(cc),
			Attachments: []store.Attachment{{ID: "a-" + mid, Name: "f.txt"}}}
	}
}

func ids(t *testing.T, st *store.Store, mailbox string) []string {
	t.Helper()
	msgs, err := st.Messages(context.Background(), mailbox)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range msgs {
		out = append(out, m.ID)
	}
	return out
}

func TestContactFilterKeepsMailFromOrToContacts(t *testing.T) {
	ctx := context.Background()
	st := newStore(t)
	id := "conn_contacts_filter_" + time.Now().Format("150405.000000")
	msg := contactMailbox(t, st, id)
	if n, err := st.AddContacts(ctx, id, []store.Contact{{Address: " Ann@Fabrikam.example ", Name: "Ann"}, {Address: "bob@fabrikam.example"}}, false); err != nil || n != 2 {
		t.Fatalf("add = %d, %v", n, err)
	}
	// Adding again (another case) adds nothing.
	if n, err := st.AddContacts(ctx, id, []store.Contact{{Address: "ANN@fabrikam.example"}}, false); err != nil || n != 0 {
		t.Fatalf("add again = %d, %v", n, err)
	}
	page := store.Page{FolderID: "inbox", Cursor: "next", Phase: store.PhaseBackfill, ContactFilter: true, Messages: []store.Message{
		msg("from-ann", "ANN@fabrikam.EXAMPLE", []string{"me@contoso.example"}, nil),
		msg("to-bob", "me@contoso.example", []string{"Bob@Fabrikam.example"}, nil),
		msg("cc-ann", "me@contoso.example", []string{"x@y.example"}, []string{"ann@fabrikam.example"}),
		msg("stranger", "eve@evil.example", []string{"me@contoso.example"}, nil),
		msg("bcc-only", "me@contoso.example", nil, nil),
	}}
	if err := st.ApplyPage(ctx, id, page); err != nil {
		t.Fatal(err)
	}
	want := []string{"cc-ann", "from-ann", "to-bob"}
	if got := ids(t, st, id); !slices.Equal(got, want) {
		t.Fatalf("stored %v, want %v", got, want)
	}
	// Without the filter everything is stored.
	page.ContactFilter = false
	if err := st.ApplyPage(ctx, id, page); err != nil {
		t.Fatal(err)
	}
	if got := ids(t, st, id); len(got) != 5 {
		t.Fatalf("unfiltered: %v", got)
	}
	// Switching the filter on deletes what matches no contact, with events.
	n, err := st.DeleteUnmatchedMail(ctx, id)
	if err != nil || n != 2 {
		t.Fatalf("delete unmatched = %d, %v", n, err)
	}
	if got := ids(t, st, id); !slices.Equal(got, want) {
		t.Fatalf("after filter on: %v", got)
	}
	evs, err := st.Events(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	deletedEvents := 0
	for _, e := range evs {
		if e.Type == "message.deleted" {
			deletedEvents++
		}
	}
	if deletedEvents != 2 {
		t.Errorf("message.deleted events = %d, want 2", deletedEvents)
	}
}

func TestRemovingContactsKeepsOrDeletesTheirMail(t *testing.T) {
	ctx := context.Background()
	st := newStore(t)
	id := "conn_contacts_remove_" + time.Now().Format("150405.000000")
	msg := contactMailbox(t, st, id)
	if _, err := st.AddContacts(ctx, id, []store.Contact{{Address: "ann@f.example"}, {Address: "bob@f.example"}, {Address: "cid@f.example"}}, false); err != nil {
		t.Fatal(err)
	}
	page := store.Page{FolderID: "inbox", Cursor: "next", Phase: store.PhaseLive, ContactFilter: true, Messages: []store.Message{
		msg("ann-only", "ann@f.example", []string{"me@c.example"}, nil),
		msg("ann-and-bob", "ann@f.example", []string{"bob@f.example"}, nil),
		msg("cid-only", "me@c.example", []string{"cid@f.example"}, nil),
	}}
	if err := st.ApplyPage(ctx, id, page); err != nil {
		t.Fatal(err)
	}
	// Removing cid keeping the mail: it stays, and stays current.
	if r, d, err := st.RemoveContacts(ctx, id, []string{"CID@f.example"}, false); err != nil || r != 1 || d != 0 {
		t.Fatalf("remove keep = %d %d %v", r, d, err)
	}
	updated := msg("cid-only", "me@c.example", []string{"cid@f.example"}, nil)
	updated.ChangeKey, updated.IsRead = "ck2", true
	if err := st.ApplyPage(ctx, id, store.Page{FolderID: "inbox", Cursor: "n2", Phase: store.PhaseLive, ContactFilter: true, Messages: []store.Message{updated}}); err != nil {
		t.Fatal(err)
	}
	if m, err := st.GetMessage(ctx, id, "cid-only"); err != nil || !m.IsRead {
		t.Fatalf("kept message not updated: %+v %v", m, err)
	}
	// Removing ann deleting the mail: what only ann brought goes; the
	// message bob is on stays; cid's kept message is not ann's and stays.
	if r, d, err := st.RemoveContacts(ctx, id, []string{"ann@f.example", "nobody@f.example"}, true); err != nil || r != 1 || d != 1 {
		t.Fatalf("remove delete = %d %d %v", r, d, err)
	}
	if got, want := ids(t, st, id), []string{"ann-and-bob", "cid-only"}; !slices.Equal(got, want) {
		t.Fatalf("after removal %v, want %v", got, want)
	}
	// New mail of a removed contact is not stored any more.
	if err := st.ApplyPage(ctx, id, store.Page{FolderID: "inbox", Cursor: "n3", Phase: store.PhaseLive, ContactFilter: true,
		Messages: []store.Message{msg("ann-new", "ann@f.example", nil, nil)}}); err != nil {
		t.Fatal(err)
	}
	if got := ids(t, st, id); slices.Contains(got, "ann-new") {
		t.Fatalf("a removed contact's new mail was stored: %v", got)
	}
}

func TestContactsPageAndTrackTheirFetch(t *testing.T) {
	ctx := context.Background()
	st := newStore(t)
	id := "conn_contacts_page_" + time.Now().Format("150405.000000")
	msg := contactMailbox(t, st, id)
	var cs []store.Contact
	for i := range 2500 {
		cs = append(cs, store.Contact{Address: "c" + string(rune('a'+i%26)) + "-" + time.Duration(i).String() + "@bulk.example"})
	}
	if n, err := st.AddContacts(ctx, id, cs, false); err != nil || n != 2500 {
		t.Fatalf("bulk add = %d, %v", n, err)
	}
	var all []string
	after := ""
	for {
		page, err := st.ListContacts(ctx, id, after, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		for _, c := range page {
			all = append(all, c.Address)
		}
		after = page[len(page)-1].Address
	}
	if len(all) != 2500 || !slices.IsSorted(all) {
		t.Fatalf("listed %d contacts (sorted %v)", len(all), slices.IsSorted(all))
	}
	batch, err := st.UnfetchedContacts(ctx, id, 100)
	if err != nil || len(batch) != 100 {
		t.Fatalf("unfetched = %d, %v", len(batch), err)
	}
	if err := st.MarkContactsFetched(ctx, id, batch); err != nil {
		t.Fatal(err)
	}
	if c, err := st.CountContacts(ctx, id); err != nil || c.Total != 2500 || c.Unfetched != 2400 {
		t.Fatalf("counts = %+v, %v", c, err)
	}
	// A mailbox that stores all its mail has nothing to fetch for a contact.
	if _, err := st.AddContacts(ctx, id, []store.Contact{{Address: "all-stored@x.example"}}, true); err != nil {
		t.Fatal(err)
	}
	if c, err := st.CountContacts(ctx, id); err != nil || c.Total != 2501 || c.Unfetched != 2400 {
		t.Fatalf("counts after an add to an unfiltered mailbox = %+v, %v", c, err)
	}
	// A contact's past mail merges without touching the folder's cursor,
	// filtered like a page.
	n, err := st.MergeMessages(ctx, id, []store.Message{msg("past", batch[0], nil, nil), msg("other", "eve@x.example", nil, nil)}, true)
	if err != nil || n != 1 {
		t.Fatalf("merge = %d, %v", n, err)
	}
	if f, _ := st.GetFolder(ctx, id, "inbox"); f.Cursor != "" {
		t.Errorf("cursor moved: %q", f.Cursor)
	}
	if got := ids(t, st, id); !slices.Equal(got, []string{"past"}) {
		t.Errorf("merged %v", got)
	}
}
