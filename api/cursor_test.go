package api

import (
	"slices"
	"testing"
	"time"

	"github.com/outlookd/outlookd/store"
)

// TestPageAfter: the feed is read from the cursor's own event on; the
// cursor's event is dropped, a cursor with nothing at or after it is
// beyond the newest event and refused, and the page keeps its limit.
func TestPageAfter(t *testing.T) {
	evs := func(seqs ...int64) []store.Event {
		out := []store.Event{}
		for _, s := range seqs {
			out = append(out, store.Event{Seq: s})
		}
		return out
	}
	for _, tc := range []struct {
		name  string
		read  []store.Event
		after int64
		limit int
		want  []int64
		ok    bool
	}{
		{"from the beginning", evs(1, 2, 3), 0, 10, []int64{1, 2, 3}, true},
		{"nothing yet", evs(), 0, 10, []int64{}, true},
		{"after a cursor", evs(4, 5, 6), 4, 10, []int64{5, 6}, true},
		{"at the newest event", evs(6), 6, 10, []int64{}, true},
		{"a cursor between events", evs(9, 12), 7, 10, []int64{9, 12}, true},
		{"the limit is kept after dropping the cursor", evs(4, 5, 6, 7), 4, 2, []int64{5, 6}, true},
		{"the limit is kept without the cursor's event", evs(5, 6, 7), 4, 2, []int64{5, 6}, true},
		{"beyond the newest event", evs(), 999999, 10, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := pageAfter(tc.read, tc.after, tc.limit)
			seqs := []int64{}
			for _, e := range got {
				seqs = append(seqs, e.Seq)
			}
			if ok != tc.ok || (ok && !slices.Equal(seqs, tc.want)) {
				t.Errorf("pageAfter = %v, %v; want %v, %v", seqs, ok, tc.want, tc.ok)
			}
		})
	}
}

// TestMessageCursorRange: a message cursor may not lie beyond the
// connection's newest message (by received time; missing sorts as the
// epoch), and a connection without messages takes no cursor.
func TestMessageCursorRange(t *testing.T) {
	newest := time.Date(2026, 11, 3, 9, 30, 0, 123456000, time.UTC)
	for _, tc := range []struct {
		name     string
		newest   []store.Message
		received time.Time
		ok       bool
	}{
		{"older than the newest", []store.Message{{Received: newest}}, newest.Add(-time.Hour), true},
		{"the newest itself", []store.Message{{Received: newest}}, newest, true},
		{"newer than the newest", []store.Message{{Received: newest}}, newest.Add(time.Microsecond), false},
		{"from the future", []store.Message{{Received: newest}}, time.Now().Add(24 * time.Hour), false},
		{"no messages", nil, newest, false},
		{"only undated messages, cursor at the epoch", []store.Message{{}}, time.Unix(0, 0).UTC(), true},
		{"only undated messages, dated cursor", []store.Message{{}}, newest, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := notAfterNewest(tc.newest, tc.received); got != tc.ok {
				t.Errorf("notAfterNewest = %v, want %v", got, tc.ok)
			}
		})
	}
}
