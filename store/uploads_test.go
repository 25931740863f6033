package store_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/outlookd/outlookd/store"
)

// TestUploadRanges: ranges come in order; the same range again is a
// no-op; one out of order, overlapping or changed is refused; another
// connection sees nothing; the bytes read back are the file's.
func TestUploadRanges(t *testing.T) {
	ctx := context.Background()
	st := newStore(t)
	for _, c := range []string{"cu1", "cu2"} {
		if err := st.CreateConnection(ctx, store.Connection{ID: c, OrgID: "o", OwnerID: "u", State: "active", Mode: "delegated"}); err != nil {
			t.Fatal(err)
		}
	}
	file := make([]byte, 10_000)
	for i := range file {
		file[i] = byte(i * 7)
	}
	u, err := st.CreateUpload(ctx, store.Upload{ID: "upl_ranges", ConnectionID: "cu1", Name: "f.bin", ContentType: "application/octet-stream",
		Size: int64(len(file)), ExpiresAt: time.Now().Add(time.Hour)}, store.UploadQuota{})
	if err != nil || u.Received != 0 || u.Complete() {
		t.Fatalf("create: %+v %v", u, err)
	}
	notNext := errors.New("not the next expected byte")
	steps := []struct {
		name       string
		start, end int
		data       []byte // file[start:end] when nil
		want       error
		received   int64
	}{
		{"first", 0, 4000, nil, nil, 4000},
		{"the first again", 0, 4000, nil, nil, 4000},
		{"a gap", 5000, 6000, nil, notNext, 4000},
		{"overlapping", 2000, 6000, nil, store.ErrRangeOverlaps, 4000},
		{"the first, changed", 0, 4000, make([]byte, 4000), store.ErrRangeOverlaps, 4000},
		{"second", 4000, 8000, nil, nil, 8000},
		{"last", 8000, 10000, nil, nil, 10000},
		{"the last again", 8000, 10000, nil, nil, 10000},
		{"past the end", 10000, 10001, []byte{1}, notNext, 10000},
	}
	for _, s := range steps {
		data := s.data
		if data == nil {
			data = file[s.start:s.end]
		}
		got, err := st.PutUploadRange(ctx, "cu1", u.ID, int64(s.start), data)
		var next *store.RangeNotExpectedError
		switch {
		case s.want == nil && err != nil:
			t.Errorf("%s: %v", s.name, err)
		case s.want == notNext:
			if !errors.As(err, &next) || next.Next != s.received {
				t.Errorf("%s: %v, want the next expected byte %d", s.name, err, s.received)
			}
		case s.want != nil && !errors.Is(err, s.want):
			t.Errorf("%s: %v, want %v", s.name, err, s.want)
		}
		cur, err := st.GetUpload(ctx, "cu1", u.ID)
		if err != nil || cur.Received != s.received {
			t.Errorf("%s: received %d, want %d (%v)", s.name, cur.Received, s.received, err)
		}
		if err == nil && s.want == nil && got.Received != s.received {
			t.Errorf("%s: answered %d received", s.name, got.Received)
		}
	}
	if cur, _ := st.GetUpload(ctx, "cu1", u.ID); !cur.Complete() || cur.CompletedAt == nil {
		t.Errorf("not complete: %+v", cur)
	}
	for _, from := range []int64{0, 3999, 4000, 9999} {
		back, err := io.ReadAll(st.UploadReader(ctx, u.ID, from))
		if err != nil || !bytes.Equal(back, file[from:]) {
			t.Errorf("read from %d: %d bytes, %v", from, len(back), err)
		}
	}
	if _, err := st.GetUpload(ctx, "cu2", u.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("another connection's upload: %v", err)
	}
	if _, err := st.PutUploadRange(ctx, "cu2", u.ID, 0, file[:10]); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a range to another connection's upload: %v", err)
	}
	if err := st.DeleteUpload(ctx, "cu2", u.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("another connection deletes the upload: %v", err)
	}
	if err := st.DeleteUpload(ctx, "cu1", u.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := st.GetUpload(ctx, "cu1", u.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a deleted upload: %v", err)
	}
}

// TestUploadInASend: a send takes a complete upload (not an incomplete
// one, nor one another send holds); the upload outlives its expiry while
// the send needs it, its bytes go when the send is final, its row when
// it expires.
func TestUploadInASend(t *testing.T) {
	ctx := context.Background()
	st := newStore(t)
	if err := st.CreateConnection(ctx, store.Connection{ID: "cu3", OrgID: "o", OwnerID: "u", State: "active", Mode: "delegated"}); err != nil {
		t.Fatal(err)
	}
	rates := store.Rates{Mailbox: "u-3", PerMinute: 30, DailyRecipients: 100}
	file := bytes.Repeat([]byte("outlookd"), 1000)
	soon := time.Now().Add(2 * time.Second)
	u, err := st.CreateUpload(ctx, store.Upload{ID: "upl_send", ConnectionID: "cu3", Name: "f.bin", ContentType: "text/plain", Size: int64(len(file)), ExpiresAt: soon}, store.UploadQuota{})
	if err != nil {
		t.Fatal(err)
	}
	att := []store.SendAttachment{{Name: "f.bin", ContentType: "text/plain", UploadID: u.ID}}
	if _, _, err := st.CreateSend(ctx, newSend("cu3", "k1", 1), att, rates); !errors.Is(err, store.ErrUploadIncomplete) {
		t.Fatalf("an incomplete upload in a send: %v", err)
	}
	if _, err := st.PutUploadRange(ctx, "cu3", u.ID, 0, file); err != nil {
		t.Fatal(err)
	}
	snd, created, err := st.CreateSend(ctx, newSend("cu3", "k1", 1), att, rates)
	if err != nil || !created || len(snd.Attachments) != 1 || snd.Attachments[0].Size != int64(len(file)) {
		t.Fatalf("a send with the upload: %+v %v %v", snd, created, err)
	}
	if again, created, err := st.CreateSend(ctx, newSend("cu3", "k1", 1), att, rates); err != nil || created || again.ID != snd.ID {
		t.Errorf("the same send again: %v %v", created, err)
	}
	if _, _, err := st.CreateSend(ctx, newSend("cu3", "k2", 1), att, rates); !errors.Is(err, store.ErrUploadInUse) {
		t.Errorf("the upload in a second send: %v", err)
	}
	if err := st.DeleteUpload(ctx, "cu3", u.ID); !errors.Is(err, store.ErrUploadInUse) {
		t.Errorf("deleting an upload a send holds: %v", err)
	}
	files, err := st.SendAttachments(ctx, snd.ID)
	if err != nil || len(files) != 1 || files[0].UploadID != u.ID || files[0].FileSize() != int64(len(file)) || len(files[0].Content) != 0 {
		t.Fatalf("the send's files: %+v %v", files, err)
	}
	// Past its expiry, the send still reads it.
	time.Sleep(time.Until(soon) + 100*time.Millisecond)
	if n, err := st.PurgeExpiredUploads(ctx, time.Now(), 100); err != nil {
		t.Fatal(err)
	} else if _, err := st.GetUpload(ctx, "cu3", u.ID); err != nil {
		t.Errorf("an expired upload a queued send holds was purged (%d): %v", n, err)
	}
	if back, err := io.ReadAll(st.UploadReader(ctx, u.ID, 0)); err != nil || !bytes.Equal(back, file) {
		t.Errorf("read back: %d bytes, %v", len(back), err)
	}
	if err := st.UpdateSend(ctx, snd.ID, store.SendUpdate{State: "sent"}); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(st.UploadReader(ctx, u.ID, 0)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the bytes of a sent send's upload: %v", err)
	}
	if _, err := st.PurgeExpiredUploads(ctx, time.Now(), 100); err != nil {
		t.Fatal(err)
	}
	if _, err := st.GetUpload(ctx, "cu3", u.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("an expired upload of a sent send: %v", err)
	}
}

// TestUploadRangeRace: several processes given the same range (a client
// retrying through another replica) store it once, and all succeed.
func TestUploadRangeRace(t *testing.T) {
	ctx := context.Background()
	st := newStore(t)
	if err := st.CreateConnection(ctx, store.Connection{ID: "cu4", OrgID: "o", OwnerID: "u", State: "active", Mode: "delegated"}); err != nil {
		t.Fatal(err)
	}
	file := bytes.Repeat([]byte("0123456789"), 100)
	u, err := st.CreateUpload(ctx, store.Upload{ID: "upl_race", ConnectionID: "cu4", Name: "f", ContentType: "text/plain", Size: int64(len(file)), ExpiresAt: time.Now().Add(time.Hour)}, store.UploadQuota{})
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 8)
	for range 8 {
		go func() {
			_, err := st.PutUploadRange(ctx, "cu4", u.ID, 0, file[:600])
			errs <- err
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Errorf("a racing PUT: %v", err)
		}
	}
	if _, err := st.PutUploadRange(ctx, "cu4", u.ID, 600, file[600:]); err != nil {
		t.Fatal(err)
	}
	if back, err := io.ReadAll(st.UploadReader(ctx, u.ID, 0)); err != nil || !bytes.Equal(back, file) {
		t.Errorf("read back: %q %v", back, err)
	}
}

// TestUploadQuota: a connection's open uploads are bounded in number and
// in bytes; one taken by a send, or expired, no longer counts.
func TestUploadQuota(t *testing.T) {
	st := newStore(t)
	ctx := context.Background()
	for _, c := range []string{"cq1", "cq2"} {
		if err := st.CreateConnection(ctx, store.Connection{ID: c, OrgID: "o", OwnerID: "u", State: "active", Mode: "delegated"}); err != nil {
			t.Fatal(err)
		}
	}
	q := store.UploadQuota{Count: 2, Bytes: 100}
	create := func(id string, size int64, expires time.Time) error {
		_, err := st.CreateUpload(ctx, store.Upload{ID: id, ConnectionID: "cq1", Name: "f", ContentType: "text/plain", Size: size, ExpiresAt: expires}, q)
		return err
	}
	later := time.Now().Add(time.Hour)
	if err := create("upl_q1", 60, later); err != nil {
		t.Fatal(err)
	}
	if err := create("upl_q2", 50, later); !errors.Is(err, store.ErrUploadQuota) {
		t.Errorf("past the bytes: %v", err)
	}
	if err := create("upl_q3", 40, later); err != nil {
		t.Fatal(err)
	}
	if err := create("upl_q4", 1, later); !errors.Is(err, store.ErrUploadQuota) {
		t.Errorf("past the count: %v", err)
	}
	// Another connection has its own quota.
	if _, err := st.CreateUpload(ctx, store.Upload{ID: "upl_q5", ConnectionID: "cq2", Name: "f", ContentType: "text/plain", Size: 100, ExpiresAt: later}, q); err != nil {
		t.Errorf("another connection: %v", err)
	}
	// An expired upload no longer counts.
	if _, err := st.Pool().Exec(ctx, `UPDATE uploads SET expires_at = now() - interval '1 second' WHERE id = 'upl_q1'`); err != nil {
		t.Fatal(err)
	}
	if err := create("upl_q6", 60, later); err != nil {
		t.Errorf("after one expired: %v", err)
	}
}
