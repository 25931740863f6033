package api

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
)

func TestSendRequestChecks(t *testing.T) {
	to := []recipientJSON{{Address: "support@contoso.example"}}
	many := func(n int) []recipientJSON {
		out := make([]recipientJSON, n)
		for i := range out {
			out[i] = recipientJSON{Address: fmt.Sprintf("r%d@contoso.example", i)}
		}
		return out
	}
	file := func(n int) string { return base64.StdEncoding.EncodeToString(bytes.Repeat([]byte("x"), n)) }
	for _, tc := range []struct {
		name     string
		req      sendRequest
		personal bool
		code     string
	}{
		{"plain", sendRequest{To: to, Subject: "Hi", Body: &sendBodyJSON{ContentType: "html", Content: "<p>Hi</p>"}}, false, ""},
		{"bcc only", sendRequest{Bcc: to}, false, ""},
		{"no recipient", sendRequest{Subject: "Hi"}, false, "no_recipients"},
		{"not an address", sendRequest{To: []recipientJSON{{Address: "support"}}}, false, "invalid_recipient"},
		{"an address with a display part", sendRequest{To: []recipientJSON{{Address: "Support <support@contoso.example>"}}}, false, "invalid_recipient"},
		{"no domain dot", sendRequest{Cc: []recipientJSON{{Address: "a@localhost"}}}, false, "invalid_recipient"},
		{"a name over two lines", sendRequest{To: []recipientJSON{{Name: "A\nB", Address: "a@contoso.example"}}}, false, "invalid_recipient"},
		{"500 recipients", sendRequest{To: many(300), Cc: many(100), Bcc: many(100)}, false, ""},
		{"501 recipients", sendRequest{To: many(300), Cc: many(100), Bcc: many(101)}, false, "too_many_recipients"},
		{"101 on Outlook.com", sendRequest{To: many(101)}, true, "too_many_recipients"},
		{"100 on Outlook.com", sendRequest{To: many(100)}, true, ""},
		{"reply-to bad", sendRequest{To: to, ReplyTo: []recipientJSON{{Address: "nope"}}}, false, "invalid_recipient"},
		{"subject over lines", sendRequest{To: to, Subject: "a\r\nBcc: x@y.z"}, false, "invalid_subject"},
		{"body type", sendRequest{To: to, Body: &sendBodyJSON{ContentType: "rtf"}}, false, "invalid_body"},
		{"importance", sendRequest{To: to, Importance: "urgent"}, false, "invalid_importance"},
		{"x- header", sendRequest{To: to, Headers: []headerJSON{{Name: "x-campaign", Value: "q4"}}}, false, ""},
		{"header not x-", sendRequest{To: to, Headers: []headerJSON{{Name: "Reply-To", Value: "a@b.c"}}}, false, "invalid_header"},
		{"header twice", sendRequest{To: to, Headers: []headerJSON{{Name: "x-a", Value: "1"}, {Name: "X-A", Value: "2"}}}, false, "invalid_header"},
		{"header value injection", sendRequest{To: to, Headers: []headerJSON{{Name: "x-a", Value: "1\r\nBcc: x@y.z"}}}, false, "invalid_header"},
		{"attachment", sendRequest{To: to, Attachments: []attachmentInJSON{{Name: "a.txt", ContentBytes: file(10)}}}, false, ""},
		{"attachment at 3 MiB", sendRequest{To: to, Attachments: []attachmentInJSON{{Name: "a.bin", ContentBytes: file(MaxInlineAttachment)}}}, false, ""},
		{"attachment of 10 MiB (an upload session)", sendRequest{To: to, Attachments: []attachmentInJSON{{Name: "a.bin", ContentBytes: file(10 << 20)}}}, false, ""},
		{"attachment over 35 MB", sendRequest{To: to, Attachments: []attachmentInJSON{{Name: "a.bin", ContentBytes: file(MaxMessageSize + 1)}}}, false, "attachment_too_large"},
		{"attachment not base64", sendRequest{To: to, Attachments: []attachmentInJSON{{Name: "a.txt", ContentBytes: "!!"}}}, false, "invalid_attachment"},
		{"attachment without name", sendRequest{To: to, Attachments: []attachmentInJSON{{ContentBytes: file(1)}}}, false, "invalid_attachment"},
		{"attachment with a path", sendRequest{To: to, Attachments: []attachmentInJSON{{Name: "../a", ContentBytes: file(1)}}}, false, "invalid_attachment"},
		{"an uploaded file", sendRequest{To: to, Attachments: []attachmentInJSON{{UploadID: "upl_abcdefghijklmnopqrstuvwxyz"}}}, false, ""},
		{"an upload ID that is none", sendRequest{To: to, Attachments: []attachmentInJSON{{UploadID: "upl_x"}}}, false, "upload_not_found"},
		{"an upload and bytes", sendRequest{To: to, Attachments: []attachmentInJSON{{UploadID: "upl_abcdefghijklmnopqrstuvwxyz", ContentBytes: file(1)}}}, false, "invalid_attachment"},
		{"an upload with a path", sendRequest{To: to, Attachments: []attachmentInJSON{{UploadID: "upl_abcdefghijklmnopqrstuvwxyz", Name: "a/b"}}}, false, "invalid_attachment"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msg, atts, bad := tc.req.toOutgoing(tc.personal)
			switch {
			case tc.code == "" && bad != nil:
				t.Fatalf("refused: %s %s", bad.code, bad.detail)
			case tc.code != "" && (bad == nil || bad.code != tc.code || bad.detail == ""):
				t.Fatalf("got %+v, want %s", bad, tc.code)
			case tc.code == "":
				if msg.Recipients() != len(tc.req.To)+len(tc.req.Cc)+len(tc.req.Bcc) || len(atts) != len(tc.req.Attachments) || msg.Body.ContentType == "" {
					t.Errorf("converted %+v %d attachments", msg, len(atts))
				}
			}
		})
	}
	// A message over 35 MB in all is refused, though each file is small.
	var big []attachmentInJSON
	for i := range 12 {
		big = append(big, attachmentInJSON{Name: fmt.Sprintf("f%d", i), ContentBytes: file(MaxInlineAttachment)})
	}
	if _, _, bad := (sendRequest{To: to, Attachments: big}).toOutgoing(false); bad == nil || bad.code != "message_too_large" {
		t.Errorf("36 MiB message: %+v", bad)
	}
}

func TestRequestHash(t *testing.T) {
	a := sendRequest{To: []recipientJSON{{Address: "a@b.example"}}, Subject: "x"}
	b := a
	b.Subject = "y"
	if !bytes.Equal(requestHash("new", a), requestHash("new", a)) || bytes.Equal(requestHash("new", a), requestHash("new", b)) ||
		bytes.Equal(requestHash("new", a), requestHash("reply", a)) {
		t.Error("request hashes do not tell requests apart")
	}
	if !keyPattern.MatchString(strings.Repeat("k", 255)) || keyPattern.MatchString(strings.Repeat("k", 256)) || keyPattern.MatchString("a b") {
		t.Error("key pattern")
	}
}
