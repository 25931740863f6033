package graphsim_test

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/outlookd/outlookd/graphsim"
)

// sendRaw posts to a send endpoint and reports the status, the headers,
// the body and a transport error (a reset connection).
func sendRaw(t *testing.T, f *fixture, tok, path string, body string) (int, http.Header, string, error) {
	t.Helper()
	req, _ := http.NewRequest("POST", f.sim.GraphURL()+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
	if err != nil {
		return 0, nil, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b), nil
}

const keyedSendMail = `{"message":{"subject":"Keyed","toRecipients":[{"emailAddress":{"address":"support@contoso.example"}},{"emailAddress":{"address":"ext@fabrikam.example"}}],
"singleValueExtendedProperties":[{"id":"` + sendKeyProp + `","value":"KEY"}]}}`

func TestAmbiguousSendAnswers(t *testing.T) {
	f := newFixture(t, graphsim.Options{})
	ctx := context.Background()
	tok := f.token(t, "Mail.ReadWrite", "Mail.Send")
	arm := func(sf graphsim.SendFault) {
		t.Helper()
		sf.Mailbox = f.ada.UPN
		if err := f.ctl.SetSendFault(ctx, sf); err != nil {
			t.Fatal(err)
		}
	}
	copies := func(key string) int {
		t.Helper()
		got, err := f.ctl.Delivered(ctx, "support@contoso.example")
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, d := range got {
			if d.ExtendedProperties[sendKeyProp] == key {
				n++
			}
		}
		return n
	}
	sendMail := func(key string) (int, http.Header, string, error) {
		return sendRaw(t, f, tok, "/me/sendMail", strings.ReplaceAll(keyedSendMail, "KEY", key))
	}

	for _, tc := range []struct {
		name      string
		fault     graphsim.SendFault
		status    int // 0: the connection is reset
		code      string
		delivered int
		answer    string
	}{
		{"202 with Retry-After", graphsim.SendFault{AcceptedRetryAfter: 1, RetryAfter: 7}, 202, "", 1, "202"},
		{"delivered, then 504", graphsim.SendFault{DeliveredTimeout: 1}, 504, "UnknownError", 1, "504"},
		{"delivered, then reset", graphsim.SendFault{DeliveredReset: 1}, 0, "", 1, "reset"},
		{"504, not delivered", graphsim.SendFault{LostTimeout: 1}, 504, "UnknownError", 0, ""},
		{"503, not delivered", graphsim.SendFault{LostUnavailable: 1}, 503, "", 0, ""},
		{"blocked from sending", graphsim.SendFault{Blocked: 1}, 403, "ErrorMessageSubmissionBlocked", 0, ""},
		{"mailbox full", graphsim.SendFault{QuotaExceeded: 1}, 403, "ErrorQuotaExceeded", 0, ""},
	} {
		arm(tc.fault)
		before, _ := f.ctl.SentMail(ctx, f.ada.UPN)
		st, h, body, err := sendMail(tc.name)
		switch {
		case tc.status == 0 && err == nil:
			t.Errorf("%s: answered %d, want a reset connection", tc.name, st)
		case tc.status != 0 && (err != nil || st != tc.status || (tc.code != "" && !strings.Contains(body, `"`+tc.code+`"`))):
			t.Errorf("%s: %d %q %v", tc.name, st, body, err)
		}
		if tc.status == 202 && h.Get("Retry-After") != "7" {
			t.Errorf("%s: Retry-After %q", tc.name, h.Get("Retry-After"))
		}
		if tc.status == 503 && (h.Get("Retry-After") == "" || body != "") {
			t.Errorf("%s: %q %q", tc.name, h.Get("Retry-After"), body)
		}
		if n := copies(tc.name); n != tc.delivered {
			t.Errorf("%s: %d copies delivered, want %d", tc.name, n, tc.delivered)
		}
		after, _ := f.ctl.SentMail(ctx, f.ada.UPN)
		if got := len(after) - len(before); got != tc.delivered {
			t.Errorf("%s: %d sends recorded", tc.name, got)
		} else if got == 1 {
			sm := after[len(after)-1]
			if sm.Answer != tc.answer || len(sm.Deliveries) != 2 || sm.Deliveries[1].Mailbox != "" || sm.Deliveries[0].Mailbox != "support@contoso.example" || sm.ExtendedProperties[sendKeyProp] != tc.name {
				t.Errorf("%s: ground truth %+v", tc.name, sm)
			}
		}
	}

	// Times: the fault touches one send, the next goes through.
	arm(graphsim.SendFault{LostTimeout: 1, Times: 1})
	if st, _, _, _ := sendMail("times-1"); st != 504 {
		t.Errorf("first send under Times 1: %d", st)
	}
	if st, _, _, _ := sendMail("times-2"); st != 202 {
		t.Errorf("second send under Times 1: %d", st)
	}
	// A duplicate send is two copies of the same key.
	sendMail("dup")
	sendMail("dup")
	if n := copies("dup"); n != 2 {
		t.Errorf("duplicate send counted %d copies", n)
	}
	// Inside $batch a connection cannot be reset for one item: it gets 504.
	arm(graphsim.SendFault{DeliveredReset: 1, Times: 1})
	var batch struct {
		Responses []struct {
			Status int `json:"status"`
		} `json:"responses"`
	}
	item := map[string]any{"id": "1", "method": "POST", "url": "/me/sendMail", "headers": map[string]string{"Content-Type": "application/json"}, "body": mailBody("support@contoso.example")}
	if st, _ := f.graphDo(t, tok, "POST", "/$batch", map[string]any{"requests": []any{item}}, &batch); st != 200 || len(batch.Responses) != 1 || batch.Responses[0].Status != 504 {
		t.Errorf("batched send under a reset: %d %+v", st, batch)
	}
	if sent, _ := f.ctl.SentMail(ctx, f.ada.UPN); sent[len(sent)-1].Answer != "504" {
		t.Errorf("batched send recorded as %q", sent[len(sent)-1].Answer)
	}
	// Another mailbox is not touched by Ada's fault.
	arm(graphsim.SendFault{Blocked: 1})
	if err := f.ctl.GrantMailboxRights(ctx, "support@contoso.example", "ada@contoso.example", graphsim.RightFullAccess, graphsim.RightSendAs); err != nil {
		t.Fatal(err)
	}
	shared := f.token(t, "Mail.Send", "Mail.Send.Shared")
	if st, _, body, _ := sendRaw(t, f, shared, "/users/support@contoso.example/sendMail", strings.ReplaceAll(keyedSendMail, "KEY", "shared")); st != 202 {
		t.Errorf("a send from another mailbox: %d %s", st, body)
	}
	if err := f.ctl.ClearSendFaults(ctx); err != nil {
		t.Fatal(err)
	}
	if st, _, _, _ := sendMail("cleared"); st != 202 {
		t.Errorf("after ClearSendFaults: %d", st)
	}
}

// TestSentCopyDelayed follows a keyed draft whose send times out after
// delivery while its sent copy is late: it is in neither Drafts nor Sent
// Items but in Outbox, then in Sent Items.
func TestSentCopyDelayed(t *testing.T) {
	f := newFixture(t, graphsim.Options{})
	ctx := context.Background()
	tok := f.token(t, "Mail.ReadWrite", "Mail.Send")
	imm := []string{"Prefer", `IdType="ImmutableId"`}
	var d extMessage
	if st, _ := f.graphDo(t, tok, "POST", "/me/messages", keyedDraft("late", "support@contoso.example"), &d, imm...); st != 201 {
		t.Fatalf("create: %d", st)
	}
	if err := f.ctl.SetSendFault(ctx, graphsim.SendFault{Mailbox: f.ada.UPN, DeliveredTimeout: 1, SentItemsDelay: 300 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	send := "/me/messages/" + url.PathEscape(d.ID) + "/send"
	if st, _, _, _ := sendRaw(t, f, tok, send, ""); st != 504 {
		t.Fatalf("send: %d", st)
	}
	count := func(folder string) int {
		var p extPage
		f.graphGet(t, tok, extFilterQuery("/me/mailFolders/"+folder+"/messages", sendKeyProp, "late"), &p)
		return len(p.Value)
	}
	if dr, si, ob := count("drafts"), count("sentitems"), count("outbox"); dr != 0 || si != 0 || ob != 1 {
		t.Errorf("right after the send: drafts %d, sent items %d, outbox %d", dr, si, ob)
	}
	var ge graphErr
	if st, _ := f.graphDo(t, tok, "POST", send, nil, &ge); st != 400 {
		t.Errorf("sending the submitted draft again: %d %+v", st, ge.Error)
	}
	if got, _ := f.ctl.Delivered(ctx, "support@contoso.example"); len(got) != 1 {
		t.Errorf("delivered %d copies", len(got))
	}
	deadline := time.Now().Add(5 * time.Second)
	for count("sentitems") != 1 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if si, ob := count("sentitems"), count("outbox"); si != 1 || ob != 0 {
		t.Errorf("after the delay: sent items %d, outbox %d", si, ob)
	}
	sent, _ := f.ctl.SentMail(ctx, f.ada.UPN)
	if len(sent) != 1 || sent[0].Source != "send" || sent[0].Answer != "504" || sent[0].SentItemAt.Sub(sent[0].AcceptedAt) < 300*time.Millisecond {
		t.Errorf("ground truth: %+v", sent)
	}
}

// TestCarriedOverDraftLeavesDrafts: a draft sent over the per-minute rate
// is carried over, but it has left Drafts at once and cannot be sent again.
func TestCarriedOverDraftLeavesDrafts(t *testing.T) {
	f := newFixture(t, graphsim.Options{Sending: graphsim.SendingOptions{PerMinute: 1}})
	ctx := context.Background()
	tok := f.token(t, "Mail.ReadWrite", "Mail.Send")
	imm := []string{"Prefer", `IdType="ImmutableId"`}
	var ids []string
	for _, key := range []string{"first", "carried"} {
		var d extMessage
		if st, _ := f.graphDo(t, tok, "POST", "/me/messages", keyedDraft(key, "support@contoso.example"), &d, imm...); st != 201 {
			t.Fatalf("create: %d", st)
		}
		if st, _ := f.graphDo(t, tok, "POST", "/me/messages/"+url.PathEscape(d.ID)+"/send", nil, nil); st != 202 {
			t.Fatalf("send %s: %d", key, st)
		}
		ids = append(ids, d.ID)
	}
	sent, _ := f.ctl.SentMail(ctx, f.ada.UPN)
	if len(sent) != 2 || !sent[1].DeliverAt.After(sent[1].AcceptedAt) {
		t.Fatalf("the second send was not carried over: %+v", sent)
	}
	var p extPage
	f.graphGet(t, tok, extFilterQuery("/me/mailFolders/drafts/messages", sendKeyProp, "carried"), &p)
	if len(p.Value) != 0 {
		t.Error("the carried-over draft is still in Drafts")
	}
	f.graphGet(t, tok, extFilterQuery("/me/mailFolders/outbox/messages", sendKeyProp, "carried"), &p)
	if len(p.Value) != 1 {
		t.Error("the carried-over draft is not in Outbox")
	}
	var ge graphErr
	if st, _ := f.graphDo(t, tok, "POST", "/me/messages/"+url.PathEscape(ids[1])+"/send", nil, &ge); st != 400 {
		t.Errorf("sending the carried-over draft again: %d %+v", st, ge.Error)
	}
	if got, _ := f.ctl.Delivered(ctx, "support@contoso.example"); len(got) != 1 {
		t.Errorf("%d copies delivered before the carried-over minute", len(got))
	}
}
