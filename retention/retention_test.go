package retention_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/outlookd/outlookd/internal/testenv"
	"github.com/outlookd/outlookd/retention"
	"github.com/outlookd/outlookd/store"
	"github.com/outlookd/outlookd/workflows"
)

// Kept mail of a disconnected connection is deleted once its period has
// ended, once, with an event; mail kept without a period stays.
func TestKeptMailExpires(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, testenv.Postgres(t), 4)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	window := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	mk := func(id string, keepDays int) {
		settings, _ := json.Marshal(workflows.Settings{Retention: workflows.RetentionKeep, KeepDays: keepDays})
		if err := st.CreateConnection(ctx, store.Connection{ID: id, OrgID: "o", OwnerID: "u", State: "active", Mode: "delegated", Settings: settings}); err != nil {
			t.Fatal(err)
		}
		if err := st.UpsertFolders(ctx, id, []store.Folder{{ID: "inbox", DisplayName: "Inbox"}}, window); err != nil {
			t.Fatal(err)
		}
		if err := st.ApplyPage(ctx, id, store.Page{FolderID: "inbox", Cursor: "c", Phase: store.PhaseLive,
			Messages: []store.Message{{ID: "m1", FolderID: "inbox", Received: window}, {ID: "m2", FolderID: "inbox", Received: window}}}); err != nil {
			t.Fatal(err)
		}
		if err := st.Detach(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	mk("c-expiring", 30)
	mk("c-forever", 0)
	s := &retention.Sweeper{Store: st, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	count := func(id string) int64 {
		n, err := st.CountMessages(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	s.Now = func() time.Time { return time.Now().Add(29 * 24 * time.Hour) }
	if n := s.Sweep(ctx); n != 0 || count("c-expiring") != 2 {
		t.Fatalf("before the period ended: swept %d, %d messages left", n, count("c-expiring"))
	}
	s.Now = func() time.Time { return time.Now().Add(31 * 24 * time.Hour) }
	if n := s.Sweep(ctx); n != 1 || count("c-expiring") != 0 || count("c-forever") != 2 {
		t.Fatalf("after the period: swept %d, left %d and %d", n, count("c-expiring"), count("c-forever"))
	}
	if n := s.Sweep(ctx); n != 0 {
		t.Errorf("a second sweep emptied %d mailboxes", n)
	}
	evs, _ := st.Events(ctx, "c-expiring")
	found := 0
	for _, e := range evs {
		if e.Type == "mailbox.mail_expired" && e.Data["deleted"] == float64(2) {
			found++
		}
	}
	if found != 1 {
		t.Errorf("mailbox.mail_expired events: %d (%+v)", found, evs)
	}
}
