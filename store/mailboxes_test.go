package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/outlookd/outlookd/store"
)

// TestMailboxesOfAConnection: a delegated connection has one mailbox under
// its own ID that follows it; a service account's attached mailboxes each
// hold their own mail and events; an address is synced once while it is
// attached; detaching one mailbox leaves the others' mail alone.
func TestMailboxesOfAConnection(t *testing.T) {
	ctx := context.Background()
	st := newStore(t)
	if err := st.CreateConnection(ctx, store.Connection{ID: "c-ada", OrgID: "o", OwnerID: "u", State: "pending_consent", Mode: "delegated"}); err != nil {
		t.Fatal(err)
	}
	if err := st.UpdateConnection(ctx, "c-ada", store.ConnectionUpdate{State: "active", Mailbox: "ada@contoso.example", UserID: "u-ada"}); err != nil {
		t.Fatal(err)
	}
	own, err := st.GetMailbox(ctx, "c-ada")
	if err != nil || own.ConnectionID != "c-ada" || own.Address != "ada@contoso.example" || own.State != "active" {
		t.Fatalf("a delegated connection's mailbox: %+v %v", own, err)
	}
	if err := st.CreateConnection(ctx, store.Connection{ID: "c-svc", OrgID: "o", OwnerID: "admin", State: "active", Mode: "service_account"}); err != nil {
		t.Fatal(err)
	}
	if boxes, _ := st.ListMailboxes(ctx, "c-svc"); len(boxes) != 0 {
		t.Fatalf("a service account starts with mailboxes: %+v", boxes)
	}
	for _, m := range []store.Mailbox{{ID: "mbx-support", Address: "Support@contoso.example"}, {ID: "mbx-sales", Address: "sales@contoso.example"}} {
		m.ConnectionID = "c-svc"
		if err := st.AttachMailbox(ctx, m); err != nil {
			t.Fatal(err)
		}
		if err := st.AttachMailbox(ctx, m); err != nil {
			t.Fatalf("attaching again is a no-op: %v", err)
		}
	}
	for _, taken := range []string{"support@contoso.example", "ADA@contoso.example"} {
		err := st.AttachMailbox(ctx, store.Mailbox{ID: "mbx-again", ConnectionID: "c-svc", Address: taken})
		if !errors.Is(err, store.ErrMailboxTaken) {
			t.Errorf("attaching %s, synced already: %v", taken, err)
		}
	}
	window := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	for _, id := range []string{"mbx-support", "mbx-sales"} {
		if err := st.UpsertFolders(ctx, id, []store.Folder{{ID: "inbox", DisplayName: "Inbox", WellKnown: "inbox"}}, window); err != nil {
			t.Fatal(err)
		}
		// The same message IDs in two mailboxes are rows of each; the
		// pages record their events.
		for i, m := range []string{"m1", "m2"} {
			page := store.Page{FolderID: "inbox", Cursor: "delta", Phase: store.PhaseLive, Events: true, Messages: []store.Message{{ID: m, FolderID: "inbox", ChangeKey: "ck", Received: window.Add(time.Duration(i) * time.Hour)}}}
			if err := st.ApplyPage(ctx, id, page); err != nil {
				t.Fatal(err)
			}
		}
	}
	events, _ := st.Events(ctx, "c-svc")
	created := 0
	for _, e := range events {
		if e.Type == "message.created" {
			created++
			if e.MailboxID == "" {
				t.Errorf("message event without its mailbox: %+v", e)
			}
		}
	}
	if created != 4 {
		t.Errorf("%d message.created events of the connection, want two per mailbox: %+v", created, events)
	}
	poll := "polls"
	if err := st.UpdateMailbox(ctx, "mbx-support", store.MailboxUpdate{State: "access_lost", Reason: "mailbox_unreachable", SyncMode: "polling", PollReason: &poll,
		Events: []store.Event{{ID: "mbx-support:access_lost:1", Type: "mailbox.access_lost"}}}); err != nil {
		t.Fatal(err)
	}
	m, _ := st.GetMailbox(ctx, "mbx-support")
	if m.State != "access_lost" || m.Reason != "mailbox_unreachable" || m.SyncMode != "polling" || m.PollReason != poll || m.Address != "support@contoso.example" {
		t.Errorf("updated mailbox: %+v", m)
	}
	if _, err := st.DeleteMail(ctx, "mbx-support"); err != nil {
		t.Fatal(err)
	}
	if n, _ := st.CountMessages(ctx, "mbx-support"); n != 0 {
		t.Errorf("%d messages left in the detached mailbox", n)
	}
	if n, _ := st.CountMessages(ctx, "mbx-sales"); n != 2 {
		t.Errorf("detaching one mailbox changed another's mail: %d", n)
	}
	if err := st.ApplyPage(ctx, "mbx-support", store.Page{FolderID: "inbox", Cursor: "x", Phase: store.PhaseLive}); err == nil {
		t.Error("a page of a detached mailbox was taken")
	}
	if err := st.UpdateMailbox(ctx, "mbx-support", store.MailboxUpdate{State: "disconnected"}); err != nil {
		t.Fatal(err)
	}
	if err := st.AttachMailbox(ctx, store.Mailbox{ID: "mbx-support-2", ConnectionID: "c-svc", Address: "support@contoso.example"}); err != nil {
		t.Errorf("attaching a detached address again: %v", err)
	}
}
