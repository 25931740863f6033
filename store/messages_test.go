package store_test

import (
	"context"
	"errors"
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
