package graphsim_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/outlookd/outlookd/graphsim"
)

func mailBody(to ...string) map[string]any {
	var rcpts []any
	for _, a := range to {
		rcpts = append(rcpts, map[string]any{"emailAddress": map[string]string{"address": a}})
	}
	return map[string]any{"message": map[string]any{
		"subject": "Lease renewal", "body": map[string]string{"contentType": "Text", "content": "Please sign."},
		"toRecipients": rcpts, "internetMessageHeaders": []map[string]string{{"name": "x-outlookd-send-id", "value": "s-1"}},
	}}
}

func TestSendMail(t *testing.T) {
	f := newFixture(t, graphsim.Options{Sending: graphsim.SendingOptions{PerMinute: 2, DailyRecipients: 6}})
	ctx := context.Background()
	alex, _ := f.ctl.AddUser(ctx, graphsim.UserSpec{Tenant: "contoso.example", UPN: "alex@contoso.example"})
	tok := f.token(t, "Mail.Read", "Mail.Send")

	if st, _ := f.graphDo(t, tok, "POST", "/me/sendMail", mailBody("alex@contoso.example", "someone@fabrikam.example"), nil); st != 202 {
		t.Fatalf("sendMail: %d", st)
	}
	sent, _ := f.ctl.SentMail(ctx, f.ada.UPN)
	if len(sent) != 1 || sent[0].Headers["x-outlookd-send-id"] != "s-1" || !sent[0].SavedToSentItems || len(sent[0].To) != 2 {
		t.Fatalf("sent = %+v", sent)
	}
	truth, _ := f.ctl.GroundTruth(ctx, f.ada.UPN)
	sentItems := folderID(truth, "sentitems")
	if n := countIn(truth, sentItems); n != 1 {
		t.Errorf("Sent Items has %d messages", n)
	}
	inbox, _ := f.ctl.GroundTruth(ctx, alex.UPN)
	if len(inbox.Messages) != 1 || inbox.Messages[0].InternetMessageID != sent[0].InternetMessageID || inbox.Messages[0].Subject != "Lease renewal" {
		t.Errorf("recipient got %+v", inbox.Messages)
	}
	// saveToSentItems as the string "false", gzip-compressed as the SDK sends.
	b := mailBody("alex@contoso.example")
	b["saveToSentItems"] = "false"
	raw, _ := json.Marshal(b)
	var zipped bytes.Buffer
	zw := gzip.NewWriter(&zipped)
	zw.Write(raw)
	zw.Close()
	req, _ := http.NewRequest("POST", f.sim.GraphURL()+"/me/sendMail", &zipped)
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Content-Encoding", "gzip")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 202 {
		t.Fatalf("gzip sendMail: %v %v", resp, err)
	}
	resp.Body.Close()
	truth, _ = f.ctl.GroundTruth(ctx, f.ada.UPN)
	if n := countIn(truth, sentItems); n != 1 {
		t.Errorf("saveToSentItems=false still saved: %d", n)
	}
	// Over 30 (here 2) a minute, sends are carried over, not refused.
	if st, _ := f.graphDo(t, tok, "POST", "/me/sendMail", mailBody("alex@contoso.example"), nil); st != 202 {
		t.Fatalf("third send: %d", st)
	}
	sent, _ = f.ctl.SentMail(ctx, f.ada.UPN)
	if last := sent[len(sent)-1]; !last.DeliverAt.After(last.AcceptedAt) {
		t.Errorf("third send in a minute was not carried over: %+v", last)
	}
	// The daily recipient limit (here 6; 4 used): the submission of 3 more
	// recipients is accepted, reaches nobody, and bounces with 5.1.90.
	var ge graphErr
	if st, _ := f.graphDo(t, tok, "POST", "/me/sendMail", mailBody("a@x.example", "b@x.example", "c@x.example"), &ge); st != 202 {
		t.Errorf("daily limit: %d %+v", st, ge.Error)
	}
	sent, _ = f.ctl.SentMail(ctx, f.ada.UPN)
	if last := sent[len(sent)-1]; last.Rejected != "5.1.90" || len(last.Deliveries) != 0 {
		t.Errorf("over the daily limit: %+v", last)
	}
	truth, _ = f.ctl.GroundTruth(ctx, f.ada.UPN)
	bounced := false
	for _, m := range truth.Messages {
		if m.FolderID == folderID(truth, "inbox") && m.Subject == "Undeliverable: Lease renewal" && strings.Contains(m.Body, "5.1.90") {
			bounced = true
		}
	}
	if !bounced {
		t.Error("no non-delivery report in the sender's Inbox")
	}
	errs := []struct {
		name, token, path, ctype string
		body                     any
		status                   int
		code                     string
	}{
		{"no Mail.Send", f.token(t, "Mail.Read"), "/me/sendMail", "", mailBody("alex@contoso.example"), 403, "ErrorAccessDenied"},
		{"no recipients", tok, "/me/sendMail", "", mailBody(), 400, "ErrorInvalidRecipients"},
		{"bad recipient", tok, "/me/sendMail", "", mailBody("not-an-address"), 400, "ErrorInvalidRecipients"},
		{"header without x-", tok, "/me/sendMail", "", map[string]any{"message": map[string]any{"toRecipients": []any{map[string]any{"emailAddress": map[string]string{"address": "a@b.example"}}}, "internetMessageHeaders": []map[string]string{{"name": "Received", "value": "x"}}}}, 400, "InvalidInternetMessageHeader"},
		{"bad base64 MIME", tok, "/me/sendMail", "text/plain", "%%% not base64", 400, "ErrorMimeContentInvalidBase64String"},
		{"send as without the right", f.token(t, "Mail.Send", "Mail.Send.Shared"), "/users/support@contoso.example/sendMail", "", mailBody("alex@contoso.example"), 403, "ErrorSendAsDenied"},
		{"empty body", tok, "/me/sendMail", "", "{}", 400, "BadRequest"},
	}
	for _, tt := range errs {
		var ge graphErr
		headers := []string{}
		if tt.ctype != "" {
			headers = []string{"Content-Type", tt.ctype}
		}
		if st, _ := f.graphDo(t, tt.token, "POST", tt.path, tt.body, &ge, headers...); st != tt.status || ge.Error.Code != tt.code {
			t.Errorf("%s: %d %+v", tt.name, st, ge.Error)
		}
	}
}

func TestSendAsSharedAndMIME(t *testing.T) {
	f := newFixture(t, graphsim.Options{})
	ctx := context.Background()
	if err := f.ctl.GrantMailboxRights(ctx, "support@contoso.example", "ada@contoso.example", graphsim.RightFullAccess, graphsim.RightSendAs); err != nil {
		t.Fatal(err)
	}
	tok := f.token(t, "Mail.Send.Shared", "Mail.Send")
	if st, _ := f.graphDo(t, tok, "POST", "/users/support@contoso.example/sendMail", mailBody("x@fabrikam.example"), nil); st != 202 {
		t.Fatalf("send as shared: %d", st)
	}
	truth, _ := f.ctl.GroundTruth(ctx, "support@contoso.example")
	if countIn(truth, folderID(truth, "sentitems")) != 1 {
		t.Error("the shared mailbox's Sent Items has no copy")
	}
	mimeMsg := "From: ada@contoso.example\r\nTo: Someone <someone@fabrikam.example>\r\nSubject: MIME hello\r\nContent-Type: text/plain\r\n\r\nplain body\r\n"
	st, _ := f.graphDo(t, tok, "POST", "/me/sendMail", base64.StdEncoding.EncodeToString([]byte(mimeMsg)), nil, "Content-Type", "text/plain")
	sent, _ := f.ctl.SentMail(ctx, f.ada.UPN)
	if st != 202 || len(sent) != 1 || sent[0].Subject != "MIME hello" || sent[0].To[0] != "someone@fabrikam.example" {
		t.Errorf("MIME send: %d %+v", st, sent)
	}
	// Personal accounts have lower limits.
	if _, err := f.ctl.AddUser(ctx, graphsim.UserSpec{Tenant: "consumers", UPN: "sam@outlook.com"}); err != nil {
		t.Fatal(err)
	}
	personal := f.SignIn(t, "sam@outlook.com", "offline_access", "Mail.Send").AccessToken
	many := make([]string, 101)
	for i := range many {
		many[i] = "r" + string(rune('a'+i%26)) + string(rune('a'+i/26)) + "@fabrikam.example"
	}
	var ge graphErr
	if st, _ := f.graphDo(t, personal, "POST", "/me/sendMail", mailBody(many...), &ge); st != 400 || ge.Error.Code != "ErrorTooManyRecipients" {
		t.Errorf("101 recipients from a personal account: %d %+v", st, ge.Error)
	}
}

func folderID(t *graphsim.Truth, wellKnown string) string {
	for _, f := range t.Folders {
		if f.WellKnown == wellKnown {
			return f.ID
		}
	}
	return ""
}

func countIn(t *graphsim.Truth, folder string) int {
	n := 0
	for _, m := range t.Messages {
		if m.FolderID == folder {
			n++
		}
	}
	return n
}

func TestDraftsAndWrites(t *testing.T) {
	f := newFixture(t, graphsim.Options{})
	ctx := context.Background()
	tok := f.token(t, "Mail.ReadWrite", "Mail.Send")
	var draft message
	st, _ := f.graphDo(t, tok, "POST", "/me/messages", map[string]any{"subject": "draft", "toRecipients": []any{map[string]any{"emailAddress": map[string]string{"address": "x@fabrikam.example"}}}}, &draft, "Prefer", `IdType="ImmutableId"`)
	if st != 201 || draft.ID == "" {
		t.Fatalf("create draft: %d", st)
	}
	truth, _ := f.ctl.GroundTruth(ctx, f.ada.UPN)
	if countIn(truth, folderID(truth, "drafts")) != 1 {
		t.Error("the draft is not in Drafts")
	}
	var patched message
	if st, _ := f.graphDo(t, tok, "PATCH", "/me/messages/"+url.PathEscape(draft.ID), map[string]any{"subject": "draft v2", "body": map[string]string{"contentType": "text", "content": "hi"}}, &patched); st != 200 || *patched.Subject != "draft v2" {
		t.Errorf("patch draft: %d %v", st, patched.Subject)
	}
	// send needs Content-Length: 0.
	// A body of unknown length goes chunked, without Content-Length.
	req, _ := http.NewRequest("POST", f.sim.GraphURL()+"/me/messages/"+url.PathEscape(draft.ID)+"/send", io.NopCloser(strings.NewReader("")))
	req.ContentLength = -1
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 411 {
		t.Errorf("send without Content-Length: %d", resp.StatusCode)
	}
	if st, _ := f.graphDo(t, tok, "POST", "/me/messages/"+url.PathEscape(draft.ID)+"/send", nil, nil); st != 202 {
		t.Fatalf("send draft: %d", st)
	}
	truth, _ = f.ctl.GroundTruth(ctx, f.ada.UPN)
	if countIn(truth, folderID(truth, "drafts")) != 0 || countIn(truth, folderID(truth, "sentitems")) != 1 {
		t.Error("the sent draft is not in Sent Items alone")
	}
	ids := inject(t, f, f.ada.UPN, graphsim.MessageSpec{Subject: "received"})
	var ge graphErr
	if st, _ := f.graphDo(t, tok, "PATCH", "/me/messages/"+url.PathEscape(ids[0]), map[string]any{"subject": "renamed"}, &ge); st != 400 || ge.Error.Code != "ErrorInvalidPropertyUpdateSentMessage" {
		t.Errorf("patch subject of a received message: %d %+v", st, ge.Error)
	}
	if st, _ := f.graphDo(t, tok, "PATCH", "/me/messages/"+url.PathEscape(ids[0]), map[string]any{"isRead": true, "categories": []string{"Red"}}, &patched); st != 200 || !*patched.IsRead {
		t.Errorf("patch isRead: %d", st)
	}
	var moved message
	if st, _ := f.graphDo(t, tok, "POST", "/me/messages/"+url.PathEscape(ids[0])+"/move", map[string]string{"destinationId": "archive"}, &moved); st != 201 || moved.ID == "" || moved.ID == ids[0] {
		t.Errorf("move: %d %s", st, moved.ID)
	}
	if st, _ := f.graphDo(t, tok, "DELETE", "/me/messages/"+url.PathEscape(ids[0]), nil, nil); st != 204 {
		t.Errorf("delete: %d", st)
	}
	if st, _ := f.graphDo(t, tok, "DELETE", "/me/messages/"+url.PathEscape(ids[0]), nil, &ge); st != 404 {
		t.Errorf("delete twice: %d", st)
	}
	readOnly := f.token(t, "Mail.Read")
	if st, _ := f.graphDo(t, readOnly, "POST", "/me/messages", map[string]any{"subject": "x"}, &ge); st != 403 {
		t.Errorf("draft with Mail.Read: %d", st)
	}
}

func TestBatch(t *testing.T) {
	f := newFixture(t, graphsim.Options{})
	tok := f.token(t, "Mail.Read", "Mail.Send")
	inject(t, f, f.ada.UPN, graphsim.MessageSpec{Subject: "one"})
	type resp struct {
		Responses []struct {
			ID      string            `json:"id"`
			Status  int               `json:"status"`
			Headers map[string]string `json:"headers"`
			Body    json.RawMessage   `json:"body"`
		} `json:"responses"`
	}
	var r resp
	st, _ := f.graphDo(t, tok, "POST", "/$batch", map[string]any{"requests": []any{
		map[string]any{"id": "1", "method": "GET", "url": "/me/messages?$select=subject"},
		map[string]any{"id": "2", "method": "GET", "url": "/me/mailFolders/nope"},
		map[string]any{"id": "3", "method": "GET", "url": "/me", "dependsOn": []string{"2"}},
		map[string]any{"id": "4", "method": "POST", "url": "/me/sendMail", "headers": map[string]string{"Content-Type": "application/json"}, "body": mailBody("x@fabrikam.example")},
	}}, &r)
	if st != 200 || len(r.Responses) != 4 {
		t.Fatalf("batch: %d %+v", st, r)
	}
	want := map[string]int{"1": 200, "2": 404, "3": 424, "4": 202}
	for _, it := range r.Responses {
		if it.Status != want[it.ID] {
			t.Errorf("item %s: %d, want %d (%s)", it.ID, it.Status, want[it.ID], it.Body)
		}
	}
	// Throttled items answer 429 with their own Retry-After.
	f.sim.SetFault(graphsim.Fault{Endpoint: "messages", Throttle: 1, RetryAfter: 3})
	f.graphDo(t, tok, "POST", "/$batch", map[string]any{"requests": []any{map[string]any{"id": "a", "method": "GET", "url": "/me/messages"}}}, &r)
	if r.Responses[0].Status != 429 || r.Responses[0].Headers["Retry-After"] != "3" {
		t.Errorf("throttled item: %+v", r.Responses[0])
	}
	f.sim.ClearFaults()
	var many []any
	for i := range 21 {
		many = append(many, map[string]any{"id": string(rune('a' + i)), "method": "GET", "url": "/me"})
	}
	var ge graphErr
	if st, _ := f.graphDo(t, tok, "POST", "/$batch", map[string]any{"requests": many}, &ge); st != 400 || !strings.Contains(ge.Error.Message, "limit of 20") {
		t.Errorf("21 requests: %d %+v", st, ge.Error)
	}
	for name, body := range map[string]any{
		"duplicate ids":      map[string]any{"requests": []any{map[string]any{"id": "1", "method": "GET", "url": "/me"}, map[string]any{"id": "1", "method": "GET", "url": "/me"}}},
		"body without type":  map[string]any{"requests": []any{map[string]any{"id": "1", "method": "POST", "url": "/me/sendMail", "body": map[string]any{}}}},
		"unknown dependency": map[string]any{"requests": []any{map[string]any{"id": "1", "method": "GET", "url": "/me", "dependsOn": []string{"9"}}}},
		"malformed":          "{nope",
	} {
		if st, _ := f.graphDo(t, tok, "POST", "/$batch", body, &ge); st != 400 {
			t.Errorf("%s: %d", name, st)
		}
	}
	_ = time.Second
}
