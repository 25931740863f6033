package api_test

import (
	"context"
	"encoding/base64"
	"testing"
	"time"

	"github.com/outlookd/outlookd/api"
	"github.com/outlookd/outlookd/graphsim"
	"github.com/outlookd/outlookd/workflows"
)

type draftView struct {
	sendView
	DraftID string `json:"draft_id"`
	Subject string `json:"subject"`
}

// draftTruth finds a draft in graphsim's ground truth by its ID.
func draftTruth(t *testing.T, h *harness, id string) (graphsim.MessageTruth, int) {
	t.Helper()
	truth, err := h.e.Ctl.GroundTruth(context.Background(), h.e.Ada.UPN)
	if err != nil {
		t.Fatal(err)
	}
	var found graphsim.MessageTruth
	n := 0
	for _, m := range truth.Messages {
		if m.ImmutableID == id {
			found, n = m, n+1
		}
	}
	return found, n
}

// TestDraftsThroughTheAPI: the app makes a draft in the user's mailbox
// (once per key, its file attached), changes it, and sends it; the send
// is the draft, exactly once, whatever the retries. A discarded draft
// leaves the mailbox and sends nothing; one the user deleted in Outlook
// fails its send with draft_deleted.
func TestDraftsThroughTheAPI(t *testing.T) {
	h := newHarness(t, graphsim.Options{}, func(d *api.Deps) {
		d.SendOptions = workflows.SendOptions{Settle: 300 * time.Millisecond, SentItemsWait: 20 * time.Second}
	})
	ctx := context.Background()
	e := h.e
	id := h.sendingConnection(t)
	base := "/v1/connections/" + id + "/drafts"
	call := func(method, path, key string, body any) (response, draftView) {
		r := h.callWith(t, method, path, h.acme, "u-ada", body, "Idempotency-Key", key)
		var d draftView
		r.json(t, &d)
		return r, d
	}
	body := map[string]any{"subject": "Quote for the roof", "body": map[string]string{"content_type": "html", "content": "<p>Draft</p>"},
		"headers":     []map[string]string{{"name": "x-deal", "value": "17"}},
		"attachments": []map[string]any{{"name": "quote.txt", "content_type": "text/plain", "content_bytes": base64.StdEncoding.EncodeToString([]byte("42 EUR"))}}}
	if r := h.call(t, "POST", base, h.acme, "u-ada", body); r.status != 400 || r.code() != "idempotency_key_required" {
		t.Errorf("no key: %d %s", r.status, r.body)
	}
	r, d := call("POST", base, "d-1", body)
	if r.status != 201 || d.State != workflows.SendDraft || d.DraftID == "" || d.ID != workflows.SendID(id, "d-1") {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	// No recipients yet: a draft may wait for them.
	m, n := draftTruth(t, h, d.DraftID)
	if n != 1 || m.Subject != "Quote for the roof" || len(m.Attachments) != 1 {
		t.Fatalf("the draft in the mailbox: %d %+v", n, m)
	}
	// A retried create finds the same draft; another body under the key is refused.
	if again, d2 := call("POST", base, "d-1", body); again.status != 200 || again.header.Get("Idempotent-Replayed") != "true" || d2.DraftID != d.DraftID {
		t.Errorf("retried create: %d %s", again.status, again.body)
	}
	if other, _ := call("POST", base, "d-1", map[string]any{"subject": "other"}); other.status != 422 || other.code() != "idempotency_key_reused" {
		t.Errorf("the key for another draft: %d %s", other.status, other.body)
	}
	if _, n := draftTruth(t, h, d.DraftID); n != 1 {
		t.Errorf("%d drafts after the retries", n)
	}

	// Changed: subject, body and recipients; files and headers stay.
	upd := map[string]any{"subject": "Quote for the roof, v2", "to": []map[string]string{{"address": "support@contoso.example"}},
		"body": map[string]string{"content_type": "text", "content": "Please find the quote."}}
	if r, _ := call("PUT", base+"/"+d.ID, "", map[string]any{"subject": "x", "headers": []map[string]string{{"name": "x-a", "value": "b"}}}); r.status != 422 || r.code() != "invalid_draft_update" {
		t.Errorf("an update of the headers: %d %s", r.status, r.body)
	}
	if r, got := call("PUT", base+"/"+d.ID, "", upd); r.status != 200 || got.Subject != "Quote for the roof, v2" || got.Recipients != 1 {
		t.Fatalf("update: %d %s", r.status, r.body)
	}
	if m, _ := draftTruth(t, h, d.DraftID); m.Subject != "Quote for the roof, v2" || len(m.To) != 1 || m.Body != "Please find the quote." {
		t.Errorf("the updated draft in the mailbox: %+v", m)
	}
	var list struct {
		Data []draftView `json:"data"`
	}
	h.call(t, "GET", base, h.acme, "u-ada", nil).json(t, &list)
	if len(list.Data) != 1 || list.Data[0].ID != d.ID {
		t.Errorf("drafts: %+v", list.Data)
	}

	// Sent, twice: one send, one delivered copy.
	r, sent := call("POST", base+"/"+d.ID+"/send", "", nil)
	if r.status != 202 || sent.State != workflows.SendQueued {
		t.Fatalf("send the draft: %d %s", r.status, r.body)
	}
	if again, _ := call("POST", base+"/"+d.ID+"/send", "", nil); again.status != 202 || again.header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("send the draft again: %d %s", again.status, again.body)
	}
	s := h.waitSend(t, id, d.ID)
	if s.State != workflows.SendSent || s.MessageID != d.DraftID {
		t.Fatalf("the draft's send: %+v", s)
	}
	if copies := deliveredCopies(t, e, "support@contoso.example", d.ID); copies != 1 {
		t.Errorf("%d copies delivered", copies)
	}
	if r, _ := call("PUT", base+"/"+d.ID, "", upd); r.status != 409 || r.code() != "draft_sent" {
		t.Errorf("an update after the send: %d %s", r.status, r.body)
	}

	// Discarded: gone from the mailbox, never sent; a retry answers the same.
	_, d3 := call("POST", base, "d-3", map[string]any{"subject": "never", "to": []map[string]string{{"address": "support@contoso.example"}}})
	for range 2 {
		if r, got := call("DELETE", base+"/"+d3.ID, "", nil); r.status != 200 || got.State != workflows.SendCanceled || got.Reason != workflows.ReasonDraftDiscarded {
			t.Errorf("discard: %d %s", r.status, r.body)
		}
	}
	if _, n := draftTruth(t, h, d3.DraftID); n != 0 {
		t.Error("the discarded draft is still in the mailbox")
	}
	if r, _ := call("POST", base+"/"+d3.ID+"/send", "", nil); r.status != 409 || r.code() != "draft_discarded" {
		t.Errorf("sending a discarded draft: %d %s", r.status, r.body)
	}

	// Deleted by the user in Outlook: the send fails, nothing is made again.
	_, d4 := call("POST", base, "d-4", map[string]any{"subject": "deleted", "to": []map[string]string{{"address": "support@contoso.example"}}})
	if err := e.Ctl.DeleteMessage(ctx, e.Ada.UPN, d4.DraftID); err != nil {
		t.Fatal(err)
	}
	if r, _ := call("POST", base+"/"+d4.ID+"/send", "", nil); r.status != 202 {
		t.Fatalf("send a deleted draft: %d %s", r.status, r.body)
	}
	if s := h.waitSend(t, id, d4.ID); s.State != workflows.SendFailed || s.Reason != workflows.ReasonDraftGone || deliveredCopies(t, e, "support@contoso.example", d4.ID) != 0 {
		t.Errorf("a draft deleted in Outlook: %+v", s)
	}
	if r, _ := call("POST", base+"/snd_aaaaaaaaaaaaaaaaaaaaaaaa/send", "", nil); r.status != 404 || r.code() != "draft_not_found" {
		t.Errorf("an unknown draft: %d %s", r.status, r.body)
	}
}
