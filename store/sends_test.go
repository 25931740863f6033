package store_test

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/outlookd/outlookd/internal/testenv"
	"github.com/outlookd/outlookd/store"
)

func newSend(conn, key string, n int) store.Send {
	var to []store.Recipient
	for i := range n {
		to = append(to, store.Recipient{Address: fmt.Sprintf("r%d@contoso.example", i)})
	}
	return store.Send{ID: "snd_" + conn + key, ConnectionID: conn, Key: key, RequestHash: []byte(key), Message: store.OutgoingMessage{Subject: key, To: to}}
}

// TestSendsOnceByKey: a key names one send; the same request finds it, a
// different one is refused; a final state is never left.
func TestSendsOnceByKey(t *testing.T) {
	ctx := context.Background()
	st := newStore(t)
	if err := st.CreateConnection(ctx, store.Connection{ID: "c1", OrgID: "o", OwnerID: "u", State: "active", Mode: "delegated"}); err != nil {
		t.Fatal(err)
	}
	rates := store.Rates{Mailbox: "u-1", PerMinute: 30, DailyRecipients: 100}
	snd := newSend("c1", "k", 2)
	atts := []store.SendAttachment{{Name: "a.txt", ContentType: "text/plain", Content: []byte("abc")}}
	first, created, err := st.CreateSend(ctx, snd, atts, rates)
	if err != nil || !created || first.State != "queued" || first.NotBefore == nil || first.Recipients != 2 || len(first.Attachments) != 1 || first.Attachments[0].Size != 3 {
		t.Fatalf("create: %+v %v %v", first, created, err)
	}
	if files, err := st.SendAttachments(ctx, first.ID); err != nil || len(files) != 1 || string(files[0].Content) != "abc" {
		t.Errorf("attachments: %+v %v", files, err)
	}
	again, created, err := st.CreateSend(ctx, snd, atts, rates)
	if err != nil || created || again.ID != first.ID {
		t.Errorf("the same request again: %+v %v %v", again, created, err)
	}
	other := snd
	other.RequestHash = []byte("other")
	if _, _, err := st.CreateSend(ctx, other, nil, rates); !errors.Is(err, store.ErrKeyReused) {
		t.Errorf("another request under the key: %v", err)
	}
	if err := st.UpdateSend(ctx, first.ID, store.SendUpdate{State: "sent", MessageID: "m-1", Events: []store.Event{{ID: first.ID + ":sent", ConnectionID: "c1", Type: "send.sent"}}}); err != nil {
		t.Fatal(err)
	}
	if err := st.UpdateSend(ctx, first.ID, store.SendUpdate{State: "failed", Reason: "late"}); err != nil {
		t.Fatal(err)
	}
	// The same final state for another reason (an API read that found
	// the workflow ended just as it recorded its end) changes nothing.
	if err := st.UpdateSend(ctx, first.ID, store.SendUpdate{State: "sent", Reason: "workflow_ended"}); err != nil {
		t.Fatal(err)
	}
	got, err := st.GetSend(ctx, "c1", first.ID)
	if err != nil || got.State != "sent" || got.MessageID != "m-1" || got.SentAt == nil || got.Reason != "" {
		t.Errorf("after a late write: %+v %v", got, err)
	}
	if files, err := st.SendAttachments(ctx, first.ID); err != nil || len(files) != 1 || len(files[0].Content) != 0 || len(got.Attachments) != 1 || got.Attachments[0].Size != 3 {
		t.Errorf("a sent send keeps its files' bytes: %+v %+v %v", files, got.Attachments, err)
	}
	if err := st.DeleteSend(ctx, first.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a started send was deleted: %v", err)
	}
}

// twoProcesses opens two stores of one new database, as two processes
// would, with connection c1 in it.
func twoProcesses(t *testing.T) []*store.Store {
	t.Helper()
	ctx := context.Background()
	dsn := testenv.Postgres(t)
	var stores []*store.Store
	for range 2 {
		st, err := store.Open(ctx, dsn, 4)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(st.Close)
		stores = append(stores, st)
	}
	if err := stores[0].CreateConnection(ctx, store.Connection{ID: "c1", OrgID: "o", OwnerID: "u", State: "active", Mode: "delegated"}); err != nil {
		t.Fatal(err)
	}
	return stores
}

// TestSendRatesAcrossProcesses: two stores (two processes) record sends
// for one mailbox at once; no minute holds more than 30 of them, and a
// send asked not to queue is refused with the time it could go.
func TestSendRatesAcrossProcesses(t *testing.T) {
	ctx := context.Background()
	stores := twoProcesses(t)
	rates := store.Rates{Mailbox: "u-1", PerMinute: 30, DailyRecipients: 10000}
	var mu sync.Mutex
	var times []time.Time
	var wg sync.WaitGroup
	for i := range 70 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, _, err := stores[i%2].CreateSend(ctx, newSend("c1", fmt.Sprint("k", i), 1), nil, rates)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			times = append(times, *s.NotBefore)
			mu.Unlock()
		}()
	}
	wg.Wait()
	sort.Slice(times, func(i, j int) bool { return times[i].Before(times[j]) })
	for i := 30; i < len(times); i++ {
		if times[i].Sub(times[i-30]) < time.Minute {
			t.Fatalf("sends %d and %d are %v apart: 31 in a minute", i-30, i, times[i].Sub(times[i-30]))
		}
	}
	if last := times[len(times)-1].Sub(times[0]); last < 2*time.Minute || last > 2*time.Minute+10*time.Second {
		t.Errorf("70 sends spread over %v, want just over 2 minutes", last)
	}
	rates.NoQueue = true
	_, _, err := stores[0].CreateSend(ctx, newSend("c1", "urgent", 1), nil, rates)
	var limited *store.RateLimitedError
	if !errors.As(err, &limited) || !limited.At.After(time.Now()) {
		t.Fatalf("no_queue over the rate: %v", err)
	}
	if _, err := stores[0].GetSend(ctx, "c1", "snd_c1urgent"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a refused send was recorded: %v", err)
	}
}

// TestSendsFromAnAttachedMailbox: a send names the mailbox it goes from;
// its events are about that mailbox, its sender is kept once known, and
// the mailbox's sends are listed apart from the connection's others.
func TestSendsFromAnAttachedMailbox(t *testing.T) {
	ctx := context.Background()
	st := newStore(t)
	if err := st.CreateConnection(ctx, store.Connection{ID: "c-svc", OrgID: "o", OwnerID: "it", State: "active", Mode: "service_account"}); err != nil {
		t.Fatal(err)
	}
	if err := st.AttachMailbox(ctx, store.Mailbox{ID: "mbx-support", ConnectionID: "c-svc", Address: "support@contoso.example", UserID: "u-support"}); err != nil {
		t.Fatal(err)
	}
	rates := store.Rates{Mailbox: "u-support", PerMinute: 30, DailyRecipients: 100}
	fromMailbox := newSend("c-svc", "shared", 1)
	fromMailbox.MailboxID = "mbx-support"
	got, _, err := st.CreateSend(ctx, fromMailbox, nil, rates)
	if err != nil || got.MailboxID != "mbx-support" {
		t.Fatalf("create: %+v %v", got, err)
	}
	if _, _, err := st.CreateSend(ctx, newSend("c-svc", "other", 1), nil, rates); err != nil {
		t.Fatal(err)
	}
	if err := st.UpdateSend(ctx, got.ID, store.SendUpdate{State: "sent", Sender: "support@contoso.example",
		Events: []store.Event{{ID: got.ID + ":sent", ConnectionID: "c-svc", Type: "send.sent"}}}); err != nil {
		t.Fatal(err)
	}
	if err := st.UpdateSend(ctx, got.ID, store.SendUpdate{State: "sent"}); err != nil {
		t.Fatal(err)
	}
	if got, err = st.GetSend(ctx, "c-svc", got.ID); err != nil || got.Sender != "support@contoso.example" {
		t.Errorf("sender kept: %+v %v", got, err)
	}
	evs, err := st.Events(ctx, "c-svc")
	if err != nil || len(evs) == 0 || evs[len(evs)-1].Type != "send.sent" || evs[len(evs)-1].MailboxID != "mbx-support" {
		t.Errorf("the send's event is about its mailbox: %+v %v", evs, err)
	}
	for _, tc := range []struct {
		mailbox string
		want    int
	}{{"", 2}, {"mbx-support", 1}, {"mbx-other", 0}} {
		sends, err := st.ListSends(ctx, "c-svc", store.SendQuery{MailboxID: tc.mailbox})
		if err != nil || len(sends) != tc.want {
			t.Errorf("sends of mailbox %q: %d %v, want %d", tc.mailbox, len(sends), err, tc.want)
		}
	}
}

// TestDraftsWaitOutsideTheRates: a draft takes no place in the rates
// until it is queued, once; a draft whose send could not start gets its
// state and place back; a sent draft cannot be replaced.
func TestDraftsWaitOutsideTheRates(t *testing.T) {
	ctx := context.Background()
	st := newStore(t)
	if err := st.CreateConnection(ctx, store.Connection{ID: "c-d", OrgID: "o", OwnerID: "u", State: "active", Mode: "delegated"}); err != nil {
		t.Fatal(err)
	}
	rates := store.Rates{Mailbox: "u-d", PerMinute: 1, DailyRecipients: 100, NoQueue: true}
	d := newSend("c-d", "draft", 0)
	d.Kind = "draft"
	got, created, err := st.CreateSend(ctx, d, nil, rates)
	if err != nil || !created || got.State != "draft" || got.NotBefore != nil {
		t.Fatalf("create: %+v %v %v", got, created, err)
	}
	if err := st.ReplaceDraft(ctx, got.ID, store.OutgoingMessage{Subject: "v2", To: []store.Recipient{{Address: "a@contoso.example"}}}); err != nil {
		t.Fatal(err)
	}
	// The draft held no place, so queuing it takes the minute's one.
	q, queued, err := st.QueueDraft(ctx, got.ID, rates)
	if err != nil || !queued || q.State != "queued" || q.Recipients != 1 || q.Message.Subject != "v2" {
		t.Fatalf("queue: %+v %v %v", q, queued, err)
	}
	if again, queued, err := st.QueueDraft(ctx, got.ID, rates); err != nil || queued || again.State != "queued" {
		t.Errorf("queued twice: %+v %v %v", again, queued, err)
	}
	var limited *store.RateLimitedError
	if _, _, err := st.CreateSend(ctx, newSend("c-d", "plain", 1), nil, rates); !errors.As(err, &limited) {
		t.Errorf("the minute's place was the draft's: %v", err)
	}
	if err := st.UnqueueDraft(ctx, got.ID); err != nil {
		t.Fatal(err)
	}
	if back, err := st.GetSend(ctx, "c-d", got.ID); err != nil || back.State != "draft" || back.NotBefore != nil {
		t.Errorf("unqueued: %+v %v", back, err)
	}
	if _, _, err := st.CreateSend(ctx, newSend("c-d", "plain", 1), nil, rates); err != nil {
		t.Errorf("the place given back: %v", err)
	}
	if _, _, err := st.QueueDraft(ctx, got.ID, store.Rates{Mailbox: "u-d", PerMinute: 30, DailyRecipients: 100}); err != nil {
		t.Fatal(err)
	}
	if err := st.ReplaceDraft(ctx, got.ID, store.OutgoingMessage{Subject: "v3"}); !errors.Is(err, store.ErrNotDraft) {
		t.Errorf("a queued draft replaced: %v", err)
	}
}

// TestSlotsAreTakenAtSubmission: 35 sends booked at once for one mailbox
// take their slots just before their submissions, from two processes: 30
// are taken now, the other 5 wait a minute after the first taken (their
// not_before moved there), and a slot taken again (a submission retried)
// is still one slot. Bookings hold no slot: a send that ends without
// taking its own gives its place back.
func TestSlotsAreTakenAtSubmission(t *testing.T) {
	ctx := context.Background()
	stores := twoProcesses(t)
	rates := store.Rates{Mailbox: "u-1", PerMinute: 30, DailyRecipients: 10000}
	var ids []string
	for i := range 36 {
		s, _, err := stores[0].CreateSend(ctx, newSend("c1", fmt.Sprint("k", i), 1), nil, rates)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, s.ID)
	}
	// One send ends before its turn: its booking is freed.
	if err := stores[0].UpdateSend(ctx, ids[35], store.SendUpdate{State: "canceled", Reason: "operator_canceled"}); err != nil {
		t.Fatal(err)
	}
	ids = ids[:35]
	var mu sync.Mutex
	var taken []string
	waits := map[string]time.Time{}
	var wg sync.WaitGroup
	before := time.Now()
	for i, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			wait, err := stores[i%2].TakeSlot(ctx, id, "draft-"+id, rates, 0)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if wait.IsZero() {
				taken = append(taken, id)
			} else {
				waits[id] = wait
			}
		}()
	}
	wg.Wait()
	if len(taken) != 30 || len(waits) != 5 {
		t.Fatalf("%d taken, %d waiting; want 30 and 5", len(taken), len(waits))
	}
	for id, at := range waits {
		if d := at.Sub(before); d < time.Minute || d > time.Minute+10*time.Second {
			t.Errorf("send %s waits %v, want a minute and its guard", id, d)
		}
		got, err := stores[0].GetSendByID(ctx, id)
		if err != nil || got.NotBefore == nil || !got.NotBefore.Equal(at) || got.State != "queued" || got.DraftID != "draft-"+id {
			t.Errorf("a waiting send: %+v %v", got, err)
		}
	}
	got, err := stores[0].GetSendByID(ctx, taken[0])
	if err != nil || got.State != "sending" || got.DraftID != "draft-"+taken[0] {
		t.Errorf("a send that took its slot: %+v %v", got, err)
	}
	// A submission that did not reach Graph is tried again: its slot is
	// taken again in place, and the minute is still full for the others.
	if wait, err := stores[1].TakeSlot(ctx, taken[0], "", rates, 0); err != nil || !wait.IsZero() {
		t.Errorf("taking a slot again: %v %v", wait, err)
	}
	for id := range waits {
		if wait, err := stores[0].TakeSlot(ctx, id, "", rates, 0); err != nil || wait.IsZero() {
			t.Errorf("a send taken before its time: %v %v", wait, err)
		}
		break
	}
	var rows, held int
	if err := stores[0].Pool().QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE taken) FROM send_slots WHERE mailbox = 'u-1'`).Scan(&rows, &held); err != nil {
		t.Fatal(err)
	}
	if rows != 35 || held != 30 {
		t.Errorf("%d slots, %d taken; want 35 and 30", rows, held)
	}
	if err := stores[0].UpdateSend(ctx, taken[0], store.SendUpdate{State: "failed", Reason: "outcome_unknown"}); err != nil {
		t.Fatal(err)
	}
	if _, err := stores[0].TakeSlot(ctx, taken[0], "", rates, 0); !errors.Is(err, store.ErrSendEnded) {
		t.Errorf("a final send took a slot: %v", err)
	}
	if err := stores[0].Pool().QueryRow(ctx, `SELECT count(*) FILTER (WHERE taken) FROM send_slots WHERE mailbox = 'u-1'`).Scan(&held); err != nil || held != 30 {
		t.Errorf("a failed send that took its slot keeps it (it may have gone): %d %v", held, err)
	}
}

// TestNumberedSubmissions: a numbered submission is recorded with its
// slot, and the same number again (the submission run again after its
// worker died) is ErrSubmissionMade, whichever process asks, with nothing
// changed; the next number goes on. A submission that found no slot free
// records nothing, and a final send takes none.
func TestNumberedSubmissions(t *testing.T) {
	ctx := context.Background()
	stores := twoProcesses(t)
	rates := store.Rates{Mailbox: "u-num", PerMinute: 1, DailyRecipients: 10000}
	a, _, err := stores[0].CreateSend(ctx, newSend("c1", "num-a", 1), nil, rates)
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := stores[0].CreateSend(ctx, newSend("c1", "num-b", 1), nil, rates)
	if err != nil {
		t.Fatal(err)
	}
	for _, step := range []struct {
		store      int
		send       string
		submission int
		wait       bool
		made       bool
	}{
		{store: 0, send: a.ID, submission: 1},
		{store: 1, send: a.ID, submission: 1, made: true},
		{store: 0, send: a.ID, submission: 1, made: true},
		{store: 1, send: a.ID, submission: 2},
		{store: 0, send: a.ID, submission: 2, made: true},
		// The minute's one slot is a's: b waits, and its number is not
		// spent by waiting.
		{store: 0, send: b.ID, submission: 1, wait: true},
		{store: 1, send: b.ID, submission: 1, wait: true},
	} {
		wait, err := stores[step.store].TakeSlot(ctx, step.send, "", rates, step.submission)
		if made := errors.Is(err, store.ErrSubmissionMade); made != step.made || (err != nil && !made) {
			t.Errorf("%s submission %d: %v, want made %v", step.send, step.submission, err, step.made)
		}
		if !wait.IsZero() != step.wait {
			t.Errorf("%s submission %d: wait %v, want %v", step.send, step.submission, wait, step.wait)
		}
	}
	var made int
	if err := stores[0].Pool().QueryRow(ctx, `SELECT submission FROM sends WHERE id = $1`, b.ID).Scan(&made); err != nil || made != 0 {
		t.Errorf("a waiting send's recorded submission: %d %v", made, err)
	}
	if err := stores[0].UpdateSend(ctx, b.ID, store.SendUpdate{State: "canceled", Reason: "operator_canceled"}); err != nil {
		t.Fatal(err)
	}
	if _, err := stores[1].TakeSlot(ctx, b.ID, "", rates, 3); !errors.Is(err, store.ErrSendEnded) {
		t.Errorf("a submission of a canceled send: %v", err)
	}
}

// TestWaitingSendIDs: the disconnect saga finds the sends waiting to go
// (queued, reauth_required) of a connection or of one of its mailboxes,
// paged in order; sending, final and draft sends are not among them.
func TestWaitingSendIDs(t *testing.T) {
	ctx := context.Background()
	st := newStore(t)
	if err := st.CreateConnection(ctx, store.Connection{ID: "c-w", OrgID: "o", OwnerID: "it", State: "active", Mode: "service_account"}); err != nil {
		t.Fatal(err)
	}
	if err := st.AttachMailbox(ctx, store.Mailbox{ID: "mbx-w", ConnectionID: "c-w", Address: "w@contoso.example", UserID: "u-w"}); err != nil {
		t.Fatal(err)
	}
	rates := store.Rates{Mailbox: "u-w", PerMinute: 30, DailyRecipients: 1000}
	ids := map[string]string{}
	for _, k := range []string{"q1", "q2", "q3", "held", "sending", "sent", "mbx-q"} {
		snd := newSend("c-w", k, 1)
		if k == "mbx-q" {
			snd.MailboxID = "mbx-w"
		}
		got, _, err := st.CreateSend(ctx, snd, nil, rates)
		if err != nil {
			t.Fatal(err)
		}
		ids[k] = got.ID
	}
	for k, state := range map[string]string{"held": "reauth_required", "sending": "sending", "sent": "sent"} {
		if err := st.UpdateSend(ctx, ids[k], store.SendUpdate{State: state}); err != nil {
			t.Fatal(err)
		}
	}
	var all []string
	for after := ""; ; {
		page, err := st.WaitingSendIDs(ctx, "c-w", "", after, 2)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, page...)
		if len(page) < 2 {
			break
		}
		after = page[len(page)-1]
	}
	want := []string{ids["q1"], ids["q2"], ids["q3"], ids["held"], ids["mbx-q"]}
	sort.Strings(want)
	if fmt.Sprint(all) != fmt.Sprint(want) {
		t.Errorf("waiting sends %v, want %v", all, want)
	}
	if got, err := st.WaitingSendIDs(ctx, "c-w", "mbx-w", "", 10); err != nil || fmt.Sprint(got) != fmt.Sprint([]string{ids["mbx-q"]}) {
		t.Errorf("waiting sends of the mailbox: %v %v", got, err)
	}
}
