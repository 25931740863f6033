package store_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/outlookd/outlookd/internal/testenv"
	"github.com/outlookd/outlookd/store"
)

// BenchmarkApplyPage writes pages of new messages as a live round (one
// message) and a backfill page (100) do, bodies of 2 KB, each page in its
// own transaction with its cursor.
//
//	go test -run '^$' -bench ApplyPage -benchmem ./store
func BenchmarkApplyPage(b *testing.B) {
	ctx := context.Background()
	st, err := store.Open(ctx, testenv.Postgres(b), 4)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(st.Close)
	if err := st.CreateConnection(ctx, store.Connection{ID: "c1", OrgID: "o", OwnerID: "u", State: "active", Mode: "delegated"}); err != nil {
		b.Fatal(err)
	}
	window := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	if err := st.UpsertFolders(ctx, "c1", []store.Folder{{ID: "inbox", DisplayName: "Inbox", WellKnown: "inbox"}}, window); err != nil {
		b.Fatal(err)
	}
	body := strings.Repeat("<p>As fast as the limits allow.</p>", 2048/36)
	n := 0
	for _, size := range []int{1, 100} {
		b.Run(fmt.Sprintf("messages=%d", size), func(b *testing.B) {
			for b.Loop() {
				msgs := make([]store.Message, size)
				for i := range msgs {
					n++
					msgs[i] = store.Message{ID: fmt.Sprintf("m%d", n), FolderID: "inbox", Subject: "hello", ChangeKey: "ck",
						Received: window.Add(time.Duration(n) * time.Second), From: store.Recipient{Name: "A", Address: "a@x.example"},
						To: []store.Recipient{{Address: "b@x.example"}}, Categories: []string{"Blue"}, Body: &body, BodyContentType: "html"}
				}
				if err := st.ApplyPage(ctx, "c1", store.Page{FolderID: "inbox", Cursor: fmt.Sprintf("d%d", n), Phase: store.PhaseLive,
					Messages: msgs, Events: true}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
