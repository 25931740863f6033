package activities

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/outlookd/outlookd/graph"
	"github.com/outlookd/outlookd/graphsim"
	"github.com/outlookd/outlookd/graphsim/simtest"
	"github.com/outlookd/outlookd/store"
	"github.com/outlookd/outlookd/workflows"
)

// sendFixture is Ada's mailbox in graphsim, reached as the send
// activities reach it.
type sendFixture struct {
	st *simtest.Tenant
	m  *mailbox
}

func newSendFixture(t *testing.T, opts graphsim.Options, scopes ...string) *sendFixture {
	t.Helper()
	st := simtest.Start(t, opts)
	if len(scopes) == 0 {
		scopes = []string{"Mail.ReadWrite", "Mail.Send"}
	}
	gc, err := graph.NewClient(graph.Config{BaseURL: st.Sim.GraphURL()}, st.TokenSource(t, st.Ada.UPN, scopes...))
	if err != nil {
		t.Fatal(err)
	}
	return &sendFixture{st: st, m: &mailbox{gc: gc, userID: st.Ada.ID}}
}

// copies counts the copies of a send delivered to a mailbox.
func (f *sendFixture) copies(t *testing.T, user, sendID string) int {
	t.Helper()
	got, err := f.st.Ctl.Delivered(context.Background(), user)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, d := range got {
		if d.ExtendedProperties[workflows.SendKeyProperty] == sendID {
			n++
		}
	}
	return n
}

func (f *sendFixture) fault(t *testing.T, sf graphsim.SendFault) {
	t.Helper()
	sf.Mailbox = f.st.Ada.UPN
	if err := f.st.Ctl.SetSendFault(context.Background(), sf); err != nil {
		t.Fatal(err)
	}
}

// locateUntil looks for the key until it is where want says (a sent copy
// reaches Sent Items asynchronously).
func (f *sendFixture) locateUntil(t *testing.T, sendID, want string) workflows.LocateSendResult {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		loc, err := f.m.locate(context.Background(), sendID)
		if err != nil {
			t.Fatal(err)
		}
		if loc.Found == want || time.Now().After(deadline) {
			return loc
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var testMessage = store.OutgoingMessage{
	Subject: "Quarterly numbers",
	Body:    store.Body{ContentType: "html", Content: "<p>Attached.</p>"},
	To:      []store.Recipient{{Name: "Support", Address: "support@contoso.example"}},
	Cc:      []store.Recipient{{Address: "ext@fabrikam.example"}},
	ReplyTo: []store.Recipient{{Address: "replies@contoso.example"}},
	Headers: []store.Header{{Name: "x-campaign", Value: "q4"}},
}

// TestSendDraftOnce: a stamped draft is found again by its key, its
// attachments are added once however often the step runs, it is sent
// once, and its Sent Items copy keeps its ID.
func TestSendDraftOnce(t *testing.T) {
	f := newSendFixture(t, graphsim.Options{})
	ctx := context.Background()
	const sendID = "snd_draftonce"
	if loc, err := f.m.locate(ctx, sendID); err != nil || loc.Found != workflows.FoundNowhere {
		t.Fatalf("before: %+v %v", loc, err)
	}
	id, err := f.m.createDraft(ctx, sendID, testMessage)
	if err != nil {
		t.Fatal(err)
	}
	atts := []store.SendAttachment{{Name: "a.txt", ContentType: "text/plain", Content: []byte("one")}, {Name: "b.csv", ContentType: "text/csv", Content: []byte("2,3")}}
	for range 2 {
		if err := f.m.attach(ctx, id, atts); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := f.m.attachmentCount(ctx, id); err != nil || n != 2 {
		t.Fatalf("attachments on the draft: %d %v", n, err)
	}
	if loc := f.locateUntil(t, sendID, workflows.FoundDrafts); loc.MessageID != id {
		t.Fatalf("draft found as %+v, created %s", loc, id)
	}
	// The one look over the whole mailbox finds the draft, and where it is.
	if loc, err := f.m.locateNew(ctx, sendID); err != nil || loc.Found != workflows.FoundDrafts || loc.MessageID != id {
		t.Fatalf("a made draft looked for as new: %+v %v", loc, err)
	}
	if loc, err := f.m.locateNew(ctx, "snd_nowhere"); err != nil || loc.Found != workflows.FoundNowhere {
		t.Fatalf("a new send: %+v %v", loc, err)
	}
	res, err := f.m.submit(ctx, id)
	if err != nil || !res.Accepted {
		t.Fatalf("submit: %+v %v", res, err)
	}
	if loc := f.locateUntil(t, sendID, workflows.FoundSentItems); loc.Found != workflows.FoundSentItems || loc.MessageID != id {
		t.Fatalf("after sending: %+v", loc)
	}
	// Sending the sent draft again is refused: it is no draft.
	if res, err := f.m.submit(ctx, id); err != nil || !res.NotADraft {
		t.Errorf("second submit: %+v %v", res, err)
	}
	if n := f.copies(t, "support@contoso.example", sendID); n != 1 {
		t.Errorf("%d copies delivered", n)
	}
	sent, err := f.st.Ctl.SentMail(ctx, f.st.Ada.UPN)
	if err != nil || len(sent) != 1 {
		t.Fatalf("ground truth: %+v %v", sent, err)
	}
	s := sent[0]
	if s.Subject != "Quarterly numbers" || len(s.To) != 1 || len(s.Cc) != 1 || s.Headers["x-campaign"] != "q4" || s.SentItemID != id {
		t.Errorf("ground truth: %+v", s)
	}
}

// TestSubmitAnswersSorted sends a stamped draft under each fault graphsim
// arms and checks how the answer is sorted and what looking then shows,
// against the ground truth: one copy at most, and only when it says so.
func TestSubmitAnswersSorted(t *testing.T) {
	f := newSendFixture(t, graphsim.Options{})
	ctx := context.Background()
	for _, tc := range []struct {
		name      string
		fault     graphsim.SendFault
		want      workflows.SubmitSendResult
		reason    string
		found     string
		delivered int
	}{
		{"accepted", graphsim.SendFault{}, workflows.SubmitSendResult{Accepted: true}, "", workflows.FoundSentItems, 1},
		{"202 with Retry-After", graphsim.SendFault{AcceptedRetryAfter: 1, RetryAfter: 5}, workflows.SubmitSendResult{Accepted: true}, "", workflows.FoundSentItems, 1},
		{"delivered, then 504", graphsim.SendFault{DeliveredTimeout: 1}, workflows.SubmitSendResult{Ambiguous: true}, "", workflows.FoundSentItems, 1},
		{"delivered, then reset", graphsim.SendFault{DeliveredReset: 1}, workflows.SubmitSendResult{Ambiguous: true}, "", workflows.FoundSentItems, 1},
		{"delivered, copy late", graphsim.SendFault{DeliveredTimeout: 1, SentItemsDelay: time.Hour}, workflows.SubmitSendResult{Ambiguous: true}, "", workflows.FoundOutbox, 1},
		{"504, not sent", graphsim.SendFault{LostTimeout: 1}, workflows.SubmitSendResult{Ambiguous: true}, "", workflows.FoundDrafts, 0},
		{"503, not sent", graphsim.SendFault{LostUnavailable: 1}, workflows.SubmitSendResult{Ambiguous: true}, "", workflows.FoundDrafts, 0},
		{"blocked", graphsim.SendFault{Blocked: 1}, workflows.SubmitSendResult{}, workflows.ReasonSubmissionBlock, workflows.FoundDrafts, 0},
		{"mailbox full", graphsim.SendFault{QuotaExceeded: 1}, workflows.SubmitSendResult{}, workflows.ReasonMailboxFull, workflows.FoundDrafts, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sendID := "snd_" + strings.ReplaceAll(tc.name, " ", "_")
			id, err := f.m.createDraft(ctx, sendID, testMessage)
			if err != nil {
				t.Fatal(err)
			}
			f.fault(t, tc.fault)
			defer f.st.Ctl.ClearSendFaults(ctx)
			res, err := f.m.submit(ctx, id)
			if tc.reason != "" {
				var appErr *temporal.ApplicationError
				var d reasonDetail
				if !errors.As(err, &appErr) || appErr.Type() != workflows.ErrSendRefused || !appErr.NonRetryable() || appErr.Details(&d) != nil || d.Reason != tc.reason || d.Text == "" {
					t.Fatalf("refusal: %+v %v", res, err)
				}
			} else if err != nil || res.Accepted != tc.want.Accepted || res.Ambiguous != tc.want.Ambiguous || res.NotADraft {
				t.Fatalf("submit: %+v %v", res, err)
			}
			if loc := f.locateUntil(t, sendID, tc.found); loc.Found != tc.found {
				t.Errorf("found in %q, want %q", loc.Found, tc.found)
			}
			if n := f.copies(t, "support@contoso.example", sendID); n != tc.delivered {
				t.Errorf("%d copies delivered, want %d", n, tc.delivered)
			}
		})
	}
}

// TestSendWithoutPermission: a token without Mail.Send is refused with
// send_not_granted.
func TestSendWithoutPermission(t *testing.T) {
	f := newSendFixture(t, graphsim.Options{}, "Mail.ReadWrite")
	ctx := context.Background()
	id, err := f.m.createDraft(ctx, "snd_noperm", testMessage)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.m.submit(ctx, id)
	var appErr *temporal.ApplicationError
	var d reasonDetail
	if !errors.As(err, &appErr) || appErr.Details(&d) != nil || d.Reason != workflows.ReasonSendNotGranted {
		t.Fatalf("submit without Mail.Send: %v", err)
	}
}

// TestResponsesInThread: replies, reply-alls and forwards are stamped
// drafts in the original's conversation, sent once to the right people;
// an original gone is original_not_found.
func TestResponsesInThread(t *testing.T) {
	f := newSendFixture(t, graphsim.Options{})
	ctx := context.Background()
	ids, err := f.st.Ctl.InjectMessages(ctx, f.st.Ada.UPN, graphsim.MessageSpec{Subject: "Lease", From: graphsim.Recipient{Address: "support@contoso.example"},
		To: []graphsim.Recipient{{Address: f.st.Ada.UPN}}, Cc: []graphsim.Recipient{{Address: "admin@contoso.example"}}, Body: "Please sign."})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		kind    string
		om      store.OutgoingMessage
		subject string
		to      []string // mailboxes that get a copy
	}{
		{kindReply, store.OutgoingMessage{Body: store.Body{Content: "Signed."}}, "RE: Lease", []string{"support@contoso.example"}},
		{kindReplyAll, store.OutgoingMessage{Body: store.Body{Content: "Signed, all."}}, "RE: Lease", []string{"support@contoso.example", "admin@contoso.example"}},
		{kindForward, store.OutgoingMessage{Body: store.Body{Content: "FYI"}, To: []store.Recipient{{Address: "admin@contoso.example"}}}, "FW: Lease", []string{"admin@contoso.example"}},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			sendID := "snd_" + tc.kind
			id, err := f.m.createResponse(ctx, tc.kind, ids[0], sendID, tc.om)
			if err != nil {
				t.Fatal(err)
			}
			if loc := f.locateUntil(t, sendID, workflows.FoundDrafts); loc.MessageID != id {
				t.Fatalf("the %s draft is not found by its key: %+v", tc.kind, loc)
			}
			if res, err := f.m.submit(ctx, id); err != nil || !res.Accepted {
				t.Fatalf("submit: %+v %v", res, err)
			}
			for _, user := range tc.to {
				if n := f.copies(t, user, sendID); n != 1 {
					t.Errorf("%s got %d copies", user, n)
				}
			}
			sent, _ := f.st.Ctl.SentMail(ctx, f.st.Ada.UPN)
			last := sent[len(sent)-1]
			if last.Subject != tc.subject || last.ExtendedProperties[workflows.SendKeyProperty] != sendID {
				t.Errorf("ground truth %+v", last)
			}
		})
	}
	_, err = f.m.createResponse(ctx, kindReply, "AAMkAGone", "snd_gone", store.OutgoingMessage{Body: store.Body{Content: "?"}})
	var appErr *temporal.ApplicationError
	var d reasonDetail
	if !errors.As(err, &appErr) || appErr.Details(&d) != nil || d.Reason != workflows.ReasonOriginalGone {
		t.Errorf("reply to a message gone: %v", err)
	}
}

// TestSendMailSendOnly: with Mail.Send alone a message goes by sendMail,
// stamped, with its files; an ambiguous answer is sorted as one.
func TestSendMailSendOnly(t *testing.T) {
	f := newSendFixture(t, graphsim.Options{}, "Mail.Send")
	ctx := context.Background()
	atts := []store.SendAttachment{{Name: "a.txt", ContentType: "text/plain", Content: []byte("one")}}
	res, err := f.m.sendMail(ctx, "snd_sendonly", testMessage, atts)
	if err != nil || !res.Accepted {
		t.Fatalf("sendMail: %+v %v", res, err)
	}
	if n := f.copies(t, "support@contoso.example", "snd_sendonly"); n != 1 {
		t.Errorf("%d copies", n)
	}
	f.fault(t, graphsim.SendFault{DeliveredTimeout: 1, Times: 1})
	if res, err := f.m.sendMail(ctx, "snd_sendonly_504", testMessage, nil); err != nil || !res.Ambiguous {
		t.Errorf("sendMail under a 504: %+v %v", res, err)
	}
	if n := f.copies(t, "support@contoso.example", "snd_sendonly_504"); n != 1 {
		t.Errorf("%d copies after the 504 (the SDK must not retry)", n)
	}
	// Without Mail.ReadWrite no draft can be made.
	if _, err := f.m.createDraft(ctx, "snd_nodraft", testMessage); err == nil {
		t.Error("a draft was created with Mail.Send alone")
	}
}

// TestLargeAttachmentsUploaded: files of 3 MB and more go through upload
// sessions, in ranges; the draft gets each once, however often the step
// runs, and the message goes with all of them.
func TestLargeAttachmentsUploaded(t *testing.T) {
	f := newSendFixture(t, graphsim.Options{})
	ctx := context.Background()
	const sendID = "snd_large"
	id, err := f.m.createDraft(ctx, sendID, testMessage)
	if err != nil {
		t.Fatal(err)
	}
	big := make([]byte, 10<<20)
	for i := range big {
		big[i] = byte(i % 251)
	}
	atts := []store.SendAttachment{
		{Name: "small.txt", ContentType: "text/plain", Content: []byte("small")},
		{Name: "scan.pdf", ContentType: "application/pdf", Content: big},
		{Name: "exactly3.bin", ContentType: "application/octet-stream", Content: big[:uploadThreshold]},
	}
	for range 2 {
		if err := f.m.attach(ctx, id, atts); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := f.m.attachmentCount(ctx, id); err != nil || n != 3 {
		t.Fatalf("attachments on the draft: %d %v", n, err)
	}
	if res, err := f.m.submit(ctx, id); err != nil || !res.Accepted {
		t.Fatalf("submit: %+v %v", res, err)
	}
	if n := f.copies(t, "support@contoso.example", sendID); n != 1 {
		t.Errorf("%d copies", n)
	}
}

// countingReader hands out a file and remembers the largest read.
type countingReader struct {
	r       io.Reader
	largest int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.largest = max(c.largest, n)
	return n, err
}

// TestUploadedFilesStreamed: files the app uploaded to outlookd are read
// from the store as they go to Graph, in ranges, and arrive whole; one
// past the mailbox's maximum message size fails the send with
// message_too_large before anything is uploaded.
func TestUploadedFilesStreamed(t *testing.T) {
	f := newSendFixture(t, graphsim.Options{})
	ctx := context.Background()
	files := map[string][]byte{"upl_small": []byte("a small uploaded file"), "upl_big": make([]byte, 9<<20+7)}
	for i := range files["upl_big"] {
		files["upl_big"][i] = byte(i % 253)
	}
	readers := map[string]*countingReader{}
	f.m.files = func(_ context.Context, id string, from int64) io.Reader {
		r := &countingReader{r: bytes.NewReader(files[id][from:])}
		readers[id] = r
		return r
	}
	const sendID = "snd_uploaded"
	id, err := f.m.createDraft(ctx, sendID, testMessage)
	if err != nil {
		t.Fatal(err)
	}
	atts := []store.SendAttachment{
		{Name: "small.txt", ContentType: "text/plain", UploadID: "upl_small", Size: int64(len(files["upl_small"]))},
		{Name: "big.bin", ContentType: "application/octet-stream", UploadID: "upl_big", Size: int64(len(files["upl_big"]))},
	}
	if err := f.m.attach(ctx, id, atts); err != nil {
		t.Fatal(err)
	}
	if r := readers["upl_big"]; r == nil || r.largest > uploadRange {
		t.Errorf("the big file was read in reads of up to %d bytes", r.largest)
	}
	truth, err := f.st.Ctl.GroundTruth(ctx, f.st.Ada.UPN)
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, m := range truth.Messages {
		if m.ImmutableID != id {
			continue
		}
		for _, a := range m.Attachments {
			want := files[map[string]string{"small.txt": "upl_small", "big.bin": "upl_big"}[a.Name]]
			if a.Size != len(want) || a.SHA256 != fmt.Sprintf("%x", sha256.Sum256(want)) {
				t.Errorf("%s on the draft: %+v", a.Name, a)
			}
			found++
		}
	}
	if found != 2 {
		t.Errorf("%d files on the draft", found)
	}

	// 36 MB on a mailbox of 35 MB: refused as too large, nothing read.
	files["upl_huge"] = nil
	id2, err := f.m.createDraft(ctx, "snd_huge", testMessage)
	if err != nil {
		t.Fatal(err)
	}
	err = f.m.attach(ctx, id2, []store.SendAttachment{{Name: "huge.bin", ContentType: "application/octet-stream", UploadID: "upl_huge", Size: 36 << 20}})
	var appErr *temporal.ApplicationError
	var d reasonDetail
	if !errors.As(err, &appErr) || appErr.Type() != workflows.ErrSendRefused || appErr.Details(&d) != nil || d.Reason != workflows.ReasonMessageTooLarge {
		t.Errorf("a file over the mailbox's limit: %v", err)
	}
	if readers["upl_huge"] != nil {
		t.Error("the refused file was read")
	}
}
