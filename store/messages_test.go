package store_test

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/outlookd/outlookd/store"
)

func TestApplyPageIsIdempotentAndAdvancesTheCursor(t *testing.T) {
	ctx := context.Background()
	st := newStore(t)
	if err := st.CreateConnection(ctx, store.Connection{ID: "c1", OrgID: "o", OwnerID: "u", State: "active", Mode: "delegated"}); err != nil {
		t.Fatal(err)
	}
	window := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	if err := st.UpsertFolders(ctx, "c1", []store.Folder{{ID: "inbox", DisplayName: "Inbox", WellKnown: "inbox"}, {ID: "archive", DisplayName: "Archive"}}, window); err != nil {
		t.Fatal(err)
	}
	body := "<p>hi</p>"
	msg := func(id, folder, subject string) store.Message {
		return store.Message{ID: id, FolderID: folder, Subject: subject, ChangeKey: "ck-" + subject, Received: window.Add(time.Hour),
			From: store.Recipient{Name: "A", Address: "a@x.example"}, To: []store.Recipient{{Address: "b@x.example"}}, Body: &body,
			Attachments: []store.Attachment{{ID: "att-" + id, Name: "f.pdf", ContentType: "application/pdf", Size: 10}}}
	}
	page := store.Page{FolderID: "inbox", Cursor: "next-1", Phase: store.PhaseBackfill,
		Messages: []store.Message{msg("m1", "inbox", "one"), msg("m2", "inbox", "two"), msg("m1", "inbox", "one again")}}
	for range 2 {
		if err := st.ApplyPage(ctx, "c1", page); err != nil {
			t.Fatal(err)
		}
	}
	msgs, err := st.Messages(ctx, "c1")
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 2 || msgs[0].Subject != "one again" || len(msgs[0].Attachments) != 1 || *msgs[0].Body != body || msgs[0].To[0].Address != "b@x.example" {
		t.Fatalf("messages = %+v", msgs)
	}
	f, _ := st.GetFolder(ctx, "c1", "inbox")
	if f.Cursor != "next-1" || f.Phase != store.PhaseBackfill || !f.WindowStart.Equal(window) {
		t.Errorf("folder = %+v", f)
	}
	// m2 moved to archive: the archive page files it there, and the inbox's
	// removal of m2 then deletes nothing.
	if err := st.ApplyPage(ctx, "c1", store.Page{FolderID: "archive", Cursor: "delta-a", Phase: store.PhaseLive, Messages: []store.Message{msg("m2", "archive", "two")}}); err != nil {
		t.Fatal(err)
	}
	if err := st.ApplyPage(ctx, "c1", store.Page{FolderID: "inbox", Cursor: "delta-i", Phase: store.PhaseLive, Removed: []string{"m2", "m1"}}); err != nil {
		t.Fatal(err)
	}
	msgs, _ = st.Messages(ctx, "c1")
	if len(msgs) != 1 || msgs[0].ID != "m2" || msgs[0].FolderID != "archive" {
		t.Errorf("after move and delete: %+v", msgs)
	}
	if err := st.ApplyPage(ctx, "c1", store.Page{FolderID: "nope", Cursor: "x", Phase: store.PhaseLive}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown folder: %v", err)
	}
}

// TestMoveBetweenSyncedFoldersIsOneUpdate: Graph reports a move as a
// removal in the source folder's delta and an arrival in the destination's.
// With the round's removals deferred, the app is told of one update with
// the new folder whichever folder is read first, and a real deletion is
// still a deletion.
func TestMoveBetweenSyncedFoldersIsOneUpdate(t *testing.T) {
	ctx := context.Background()
	st := newStore(t)
	if err := st.CreateConnection(ctx, store.Connection{ID: "c1", OrgID: "o", OwnerID: "u", State: "active", Mode: "delegated"}); err != nil {
		t.Fatal(err)
	}
	window := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	if err := st.UpsertFolders(ctx, "c1", []store.Folder{{ID: "inbox", DisplayName: "Inbox", WellKnown: "inbox"}, {ID: "archive", DisplayName: "Archive"}}, window); err != nil {
		t.Fatal(err)
	}
	msg := func(id, folder, ck string) store.Message {
		return store.Message{ID: id, FolderID: folder, Subject: id, ChangeKey: ck, Received: window.Add(time.Hour)}
	}
	live := func(folder string, msgs []store.Message, removed ...string) store.Page {
		return store.Page{FolderID: folder, Cursor: "delta-" + folder, Phase: store.PhaseLive, Events: true, DeferRemovals: true, Messages: msgs, Removed: removed}
	}
	apply := func(pages ...store.Page) {
		t.Helper()
		for _, p := range pages {
			if err := st.ApplyPage(ctx, "c1", p); err != nil {
				t.Fatal(err)
			}
		}
	}
	apply(live("inbox", []store.Message{msg("m1", "inbox", "1a"), msg("m2", "inbox", "2a"), msg("m3", "inbox", "3a")}))
	if _, err := st.ApplyRemovals(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	// m1 moves to archive, the source read first; m2 moves too, the
	// destination read first; m3 is deleted.
	apply(live("inbox", nil, "m1", "m3"), live("archive", []store.Message{msg("m1", "archive", "1b"), msg("m2", "archive", "2b")}), live("inbox", nil, "m2"))
	if n, _ := st.PendingRemovals(ctx, "c1"); n != 3 {
		t.Errorf("pending removals before the round ends: %d, want 3", n)
	}
	msgs, _ := st.Messages(ctx, "c1")
	if len(msgs) != 3 {
		t.Errorf("a removal was applied before the round ended: %d messages", len(msgs))
	}
	for range 2 {
		n, err := st.ApplyRemovals(ctx, "c1")
		if err != nil {
			t.Fatal(err)
		}
		if n != 1 && n != 0 {
			t.Errorf("deleted %d", n)
		}
	}
	msgs, _ = st.Messages(ctx, "c1")
	if len(msgs) != 2 || msgs[0].FolderID != "archive" || msgs[1].FolderID != "archive" {
		t.Errorf("after the round: %+v", msgs)
	}
	events, err := st.Events(ctx, "c1")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]string{}
	for _, e := range events {
		if id, ok := e.Data["message_id"].(string); ok {
			got[id] = append(got[id], e.Type+" "+e.Data["folder_id"].(string))
		}
	}
	want := map[string][]string{
		"m1": {"message.created inbox", "message.updated archive"},
		"m2": {"message.created inbox", "message.updated archive"},
		"m3": {"message.created inbox", "message.deleted inbox"},
	}
	for id, w := range want {
		if !slices.Equal(got[id], w) {
			t.Errorf("events of %s: %v, want %v", id, got[id], w)
		}
	}
	if n, _ := st.PendingRemovals(ctx, "c1"); n != 0 {
		t.Errorf("pending removals after the round: %d", n)
	}
}

// TestApplyPageKeepsEveryField: each field of a message comes back as it
// was written, whatever its characters: quotes, backslashes, HTML, a
// category with a comma and braces, no body at all, no dates.
func TestApplyPageKeepsEveryField(t *testing.T) {
	ctx := context.Background()
	st := newStore(t)
	if err := st.CreateConnection(ctx, store.Connection{ID: "c1", OrgID: "o", OwnerID: "u", State: "active", Mode: "delegated"}); err != nil {
		t.Fatal(err)
	}
	window := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	if err := st.UpsertFolders(ctx, "c1", []store.Folder{{ID: "inbox", DisplayName: "Inbox", WellKnown: "inbox"}}, window); err != nil {
		t.Fatal(err)
	}
	html := `<p class="x">Tom &amp; "Jerry" \ 'quoted' — ünïcödé 📬</p>`
	received := time.Date(2026, 11, 2, 3, 4, 5, 123456000, time.UTC)
	for _, want := range []store.Message{
		{ID: "full", FolderID: "inbox", InternetMessageID: "<a@b>", ConversationID: "conv", ChangeKey: "ck1", Subject: `Re: "plans" \ {next} week`,
			From: store.Recipient{Name: `O'Brien, Pat`, Address: "pat@x.example"}, To: []store.Recipient{{Name: "A", Address: "a@x.example"}},
			Cc: []store.Recipient{{Address: "c@x.example"}}, Bcc: []store.Recipient{{Address: "d@x.example"}}, Received: received, Sent: received.Add(-time.Minute),
			IsRead: true, IsDraft: true, Categories: []string{"Red", `a,b {c} "d"`}, Importance: "high", HasAttachments: true,
			BodyPreview: "Tom & Jerry", BodyContentType: "html", Body: &html},
		{ID: "bare", FolderID: "inbox"},
	} {
		t.Run(want.ID, func(t *testing.T) {
			if err := st.ApplyPage(ctx, "c1", store.Page{FolderID: "inbox", Cursor: "d-" + want.ID, Phase: store.PhaseLive, Messages: []store.Message{want}}); err != nil {
				t.Fatal(err)
			}
			got, err := st.GetMessage(ctx, "c1", want.ID)
			if err != nil {
				t.Fatal(err)
			}
			if want.Categories == nil {
				want.Categories = []string{}
			}
			for _, r := range []*[]store.Recipient{&want.To, &want.Cc, &want.Bcc} {
				if *r == nil {
					*r = []store.Recipient{}
				}
			}
			if !reflect.DeepEqual(normalized(got), normalized(want)) {
				t.Errorf("read back\n %+v\nwant\n %+v", got, want)
			}
		})
	}
}

// normalized is m with its times in UTC, for comparison.
func normalized(m store.Message) store.Message {
	m.Received, m.Sent = m.Received.UTC(), m.Sent.UTC()
	return m
}
