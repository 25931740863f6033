package graphsim_test

import (
	"context"
	"net/url"
	"testing"

	"github.com/outlookd/outlookd/graphsim"
)

type wireRcpt struct {
	EmailAddress struct {
		Address string `json:"address"`
	} `json:"emailAddress"`
}

type draftJSON struct {
	ID             string     `json:"id"`
	Subject        string     `json:"subject"`
	IsDraft        bool       `json:"isDraft"`
	ParentFolderID string     `json:"parentFolderId"`
	ConversationID string     `json:"conversationId"`
	To             []wireRcpt `json:"toRecipients"`
	Cc             []wireRcpt `json:"ccRecipients"`
	HasAttachments bool       `json:"hasAttachments"`
	Body           struct {
		Content string `json:"content"`
	} `json:"body"`
}

func addrs(rs []wireRcpt) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.EmailAddress.Address
	}
	return out
}

func sameList(a []string, b ...string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestRepliesAndForwards(t *testing.T) {
	f := newFixture(t, graphsim.Options{})
	ctx := context.Background()
	tok := f.token(t, "Mail.ReadWrite", "Mail.Send")
	ids := inject(t, f, f.ada.UPN, graphsim.MessageSpec{
		Subject: "Lease", From: graphsim.Recipient{Name: "Bob", Address: "bob@fabrikam.example"},
		To:          []graphsim.Recipient{{Address: "ada@contoso.example"}, {Address: "carol@fabrikam.example"}},
		Cc:          []graphsim.Recipient{{Address: "support@contoso.example"}},
		Body:        "Please sign.",
		Attachments: []graphsim.AttachmentSpec{{Name: "lease.pdf", ContentType: "application/pdf", Content: []byte("%PDF")}},
	})
	orig := "/me/messages/" + url.PathEscape(ids[0])
	truth, _ := f.ctl.GroundTruth(ctx, f.ada.UPN)
	drafts := folderID(truth, "drafts")
	var conv string
	for _, m := range truth.Messages {
		if m.ImmutableID == ids[0] {
			conv = m.ConversationID
		}
	}

	var d draftJSON
	if st, _ := f.graphDo(t, tok, "POST", orig+"/createReply", nil, &d); st != 201 || !d.IsDraft || d.Subject != "RE: Lease" || d.ParentFolderID != drafts || d.ConversationID != conv || !sameList(addrs(d.To), "bob@fabrikam.example") {
		t.Errorf("createReply: %d %+v", st, d)
	}
	if st, _ := f.graphDo(t, tok, "POST", orig+"/createReplyAll", map[string]any{"comment": "Signed."}, &d); st != 201 ||
		!sameList(addrs(d.To), "bob@fabrikam.example", "carol@fabrikam.example") || !sameList(addrs(d.Cc), "support@contoso.example") {
		t.Errorf("createReplyAll: %d %+v", st, d)
	}
	fw := map[string]any{"comment": "FYI", "toRecipients": []any{map[string]any{"emailAddress": map[string]string{"address": "dan@fabrikam.example"}}}}
	if st, _ := f.graphDo(t, tok, "POST", orig+"/createForward", fw, &d); st != 201 || d.Subject != "FW: Lease" || !d.HasAttachments || !sameList(addrs(d.To), "dan@fabrikam.example") {
		t.Errorf("createForward: %d %+v", st, d)
	}
	// A reply's reply is not "RE: RE: ".
	if st, _ := f.graphDo(t, tok, "POST", "/me/messages/"+url.PathEscape(d.ID)+"/createForward", nil, &d); st != 201 || d.Subject != "FW: Lease" {
		t.Errorf("forward of a forward: %d %q", st, d.Subject)
	}
	var ge graphErr
	both := map[string]any{"comment": "x", "message": map[string]any{"body": map[string]string{"contentType": "text", "content": "y"}}}
	if st, _ := f.graphDo(t, tok, "POST", orig+"/createReply", both, &ge); st != 400 {
		t.Errorf("comment and body: %d", st)
	}
	if st, _ := f.graphDo(t, tok, "POST", "/me/messages/AAMkADInope=/createReply", nil, &ge); st != 404 || ge.Error.Code != "ErrorItemNotFound" {
		t.Errorf("reply to an unknown message: %d %+v", st, ge.Error)
	}

	// reply, replyAll and forward send at once.
	if st, _ := f.graphDo(t, tok, "POST", orig+"/replyAll", map[string]any{"comment": "Done."}, nil); st != 202 {
		t.Fatalf("replyAll: %d", st)
	}
	if st, _ := f.graphDo(t, tok, "POST", orig+"/forward", map[string]any{"comment": "x"}, &ge); st != 400 || ge.Error.Code != "ErrorInvalidRecipients" {
		t.Errorf("forward to nobody: %d %+v", st, ge.Error)
	}
	if st, _ := f.graphDo(t, tok, "POST", orig+"/forward", fw, nil); st != 202 {
		t.Errorf("forward: %d", st)
	}
	sent, _ := f.ctl.SentMail(ctx, f.ada.UPN)
	if len(sent) != 2 || sent[0].Source != "respond:replyall" || sent[0].Subject != "RE: Lease" || !sameList(sent[0].To, "bob@fabrikam.example", "carol@fabrikam.example") || sent[1].Subject != "FW: Lease" {
		t.Errorf("sent = %+v", sent)
	}
	got, _ := f.ctl.Delivered(ctx, "support@contoso.example")
	if len(got) != 1 || got[0].Subject != "RE: Lease" {
		t.Errorf("support got %+v", got)
	}
	readOnly := f.token(t, "Mail.ReadWrite")
	if st, _ := f.graphDo(t, readOnly, "POST", orig+"/reply", map[string]any{"comment": "x"}, &ge); st != 403 {
		t.Errorf("reply without Mail.Send: %d", st)
	}
}

func TestSendDraftTwice(t *testing.T) {
	f := newFixture(t, graphsim.Options{})
	tok := f.token(t, "Mail.ReadWrite", "Mail.Send")
	for _, tc := range []struct {
		name   string
		prefer []string
		status int
		code   string
	}{
		{"regular ID: the draft's ID is gone", nil, 404, "ErrorItemNotFound"},
		{"immutable ID: the item is no draft now", []string{"Prefer", `IdType="ImmutableId"`}, 400, "ErrorInvalidOperation"},
	} {
		var d draftJSON
		if st, _ := f.graphDo(t, tok, "POST", "/me/messages", keyedDraft("k", "x@fabrikam.example"), &d, tc.prefer...); st != 201 {
			t.Fatalf("%s: create: %d", tc.name, st)
		}
		send := "/me/messages/" + url.PathEscape(d.ID) + "/send"
		if st, _ := f.graphDo(t, tok, "POST", send, nil, nil); st != 202 {
			t.Fatalf("%s: send: %d", tc.name, st)
		}
		var ge graphErr
		if st, _ := f.graphDo(t, tok, "POST", send, nil, &ge); st != tc.status || ge.Error.Code != tc.code {
			t.Errorf("%s: second send: %d %+v", tc.name, st, ge.Error)
		}
	}
	sent, _ := f.ctl.SentMail(context.Background(), f.ada.UPN)
	if len(sent) != 2 {
		t.Errorf("%d sends recorded, want 2", len(sent))
	}
}
