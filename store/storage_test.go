package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/outlookd/outlookd/store"
)

// Keeping less deletes what the stored messages hold beyond it, step by
// step: bodies, then previews, then the attachments' metadata.
func TestStripContent(t *testing.T) {
	ctx := context.Background()
	st := newStore(t)
	id := "conn_strip_" + time.Now().Format("150405.000000")
	msg := contactMailbox(t, st, id)
	body := "<p>secret</p>"
	m := msg("m1", "a@x.example", nil, nil)
	m.Body, m.BodyContentType, m.BodyPreview = &body, "html", "secret"
	if err := st.ApplyPage(ctx, id, store.Page{FolderID: "inbox", Cursor: "c", Phase: store.PhaseLive, Messages: []store.Message{m}}); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		keep                      store.Keep
		body, preview, attachment bool
		changed                   int64
	}{
		{store.Keep{Previews: true, Attachments: true}, false, true, true, 1},
		{store.Keep{Previews: true, Attachments: true}, false, true, true, 0},
		{store.Keep{Attachments: true}, false, false, true, 1},
		{store.Keep{}, false, false, false, 0},
	}
	for i, s := range steps {
		n, err := st.StripContent(ctx, id, s.keep)
		if err != nil || n != s.changed {
			t.Fatalf("step %d: %d %v", i, n, err)
		}
		got, err := st.GetMessage(ctx, id, "m1")
		if err != nil {
			t.Fatal(err)
		}
		if (got.Body != nil) != s.body || (got.BodyPreview != "") != s.preview || (len(got.Attachments) > 0) != s.attachment || got.Subject != m.Subject {
			t.Errorf("step %d: %+v", i, got)
		}
	}
}
