package graphsim_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/outlookd/outlookd/graphsim"
)

func fileAttachment(name string, size int) map[string]any {
	return map[string]any{"@odata.type": "#microsoft.graph.fileAttachment", "name": name, "contentType": "application/octet-stream",
		"contentBytes": base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{'a'}, size))}
}

func TestInlineAttachmentsAndRequestLimit(t *testing.T) {
	f := newFixture(t, graphsim.Options{})
	tok := f.token(t, "Mail.ReadWrite", "Mail.Send")
	withAttachment := func(size int) map[string]any {
		b := mailBody("x@fabrikam.example")
		b["message"].(map[string]any)["attachments"] = []any{fileAttachment("f.bin", size)}
		return b
	}
	if st, _ := f.graphDo(t, tok, "POST", "/me/sendMail", withAttachment(2<<20), nil); st != 202 {
		t.Errorf("sendMail with 2 MB attached: %d", st)
	}
	var ge graphErr
	if st, _ := f.graphDo(t, tok, "POST", "/me/sendMail", withAttachment(3<<20+1<<19), &ge); st != 400 || ge.Error.Message != "The maximum request length supported is 4MB." {
		t.Errorf("sendMail with 3.5 MB attached (4.7 MB of base64): %d %+v", st, ge.Error)
	}
	var d draftJSON
	f.graphDo(t, tok, "POST", "/me/messages", map[string]any{"subject": "att"}, &d)
	var att struct {
		ID   string `json:"id"`
		Size int    `json:"size"`
		Type string `json:"@odata.type"`
	}
	path := "/me/messages/" + url.PathEscape(d.ID) + "/attachments"
	if st, _ := f.graphDo(t, tok, "POST", path, fileAttachment("small.bin", 1<<20), &att); st != 201 || att.Size != 1<<20 || att.ID == "" || att.Type != "#microsoft.graph.fileAttachment" {
		t.Errorf("POST attachments: %d %+v", st, att)
	}
	if st, _ := f.graphDo(t, tok, "POST", path, fileAttachment("big.bin", 3<<20+1<<19), &ge); st != 400 {
		t.Errorf("POST a 3.5 MB attachment: %d", st)
	}
	if st, _ := f.graphDo(t, tok, "DELETE", path+"/"+url.PathEscape(att.ID), nil, nil); st != 204 {
		t.Errorf("DELETE attachment: %d", st)
	}
	if st, _ := f.graphDo(t, tok, "POST", path, map[string]any{"@odata.type": "#microsoft.graph.referenceAttachment", "name": "r"}, &ge); st != 400 {
		t.Errorf("reference attachment: %d", st)
	}
}

type uploadSession struct {
	UploadURL  string   `json:"uploadUrl"`
	Expiration string   `json:"expirationDateTime"`
	Next       []string `json:"nextExpectedRanges"`
}

// put sends one range to an upload URL, without a token.
func put(t *testing.T, uploadURL string, data []byte, start, total int, header ...string) (int, http.Header, []byte) {
	t.Helper()
	req, _ := http.NewRequest("PUT", uploadURL, bytes.NewReader(data))
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, start+len(data)-1, total))
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

func nextRanges(t *testing.T, b []byte) []string {
	t.Helper()
	var s struct {
		Expiration string   `json:"ExpirationDateTime"`
		Next       []string `json:"nextExpectedRanges"`
	}
	if err := json.Unmarshal(b, &s); err != nil || s.Expiration == "" {
		t.Fatalf("upload state %q: %v", b, err)
	}
	return s.Next
}

func TestUploadSession(t *testing.T) {
	f := newFixture(t, graphsim.Options{})
	ctx := context.Background()
	tok := f.token(t, "Mail.ReadWrite")
	var d draftJSON
	f.graphDo(t, tok, "POST", "/me/messages", map[string]any{"subject": "large"}, &d, "Prefer", `IdType="ImmutableId"`)
	create := "/me/messages/" + url.PathEscape(d.ID) + "/attachments/createUploadSession"
	session := func(size int) uploadSession {
		t.Helper()
		var s uploadSession
		body := map[string]any{"AttachmentItem": map[string]any{"attachmentType": "file", "name": "scan.pdf", "size": size, "contentType": "application/pdf"}}
		if st, _ := f.graphDo(t, tok, "POST", create, body, &s); st != 201 || s.UploadURL == "" || len(s.Next) != 1 || s.Next[0] != "0-" {
			t.Fatalf("createUploadSession: %d %+v", st, s)
		}
		return s
	}
	var ge graphErr
	for _, tc := range []struct {
		size int
		code string
	}{{2 << 20, "ErrorAttachmentSizeShouldNotBeLessThanMinimumSize"}, {36 << 20, "ErrorMessageSizeExceeded"}} {
		body := map[string]any{"AttachmentItem": map[string]any{"attachmentType": "file", "name": "x", "size": tc.size}}
		if st, _ := f.graphDo(t, tok, "POST", create, body, &ge); st != 400 || ge.Error.Code != tc.code {
			t.Errorf("size %d: %d %+v", tc.size, st, ge.Error)
		}
	}
	// A mailbox whose maximum message size was raised takes the file.
	if err := f.sim.SetMaxMessageSize(f.Ada.ID, 40<<20); err != nil {
		t.Fatal(err)
	}
	big := map[string]any{"AttachmentItem": map[string]any{"attachmentType": "file", "name": "x", "size": 36 << 20}}
	if st, _ := f.graphDo(t, tok, "POST", create, big, &ge); st != 201 {
		t.Errorf("36 MB on a 40 MB mailbox: %d %+v", st, ge.Error)
	}
	if err := f.sim.SetMaxMessageSize(f.Ada.ID, 0); err != nil {
		t.Fatal(err)
	}

	const size = 9<<20 + 123
	file := make([]byte, size)
	for i := range file {
		file[i] = byte(i % 251)
	}
	s := session(size)
	u, _ := url.Parse(s.UploadURL)
	if g, _ := url.Parse(f.sim.GraphURL()); u.Hostname() == g.Hostname() || u.Query().Get("authtoken") == "" {
		t.Errorf("the upload URL is on Graph's host or has no token: %s", s.UploadURL)
	}
	if st, _, _ := put(t, s.UploadURL, file[:2<<20], 0, size, "Authorization", "Bearer "+tok); st != 401 {
		t.Errorf("PUT with an Authorization header: %d", st)
	}
	st, _, b := put(t, s.UploadURL, file[:2<<20], 0, size)
	if next := nextRanges(t, b); st != 200 || len(next) != 1 || next[0] != "2097152" {
		t.Fatalf("first range: %d %s", st, b)
	}
	// A range sent again (its answer lost) is out of order now.
	if st, _, _ := put(t, s.UploadURL, file[:2<<20], 0, size); st != 416 {
		t.Errorf("the same range again: %d", st)
	}
	if st, _, _ := put(t, s.UploadURL, file[2<<20:6<<20+1], 2<<20, size); st != 400 {
		t.Errorf("a range over 4 MB: %d", st)
	}
	// The state of an interrupted upload.
	req, _ := http.NewRequest("GET", s.UploadURL, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if next := nextRanges(t, b); resp.StatusCode != 200 || next[0] != "2097152" {
		t.Errorf("state after an interruption: %s", b)
	}
	st, _, b = put(t, s.UploadURL, file[2<<20:6<<20], 2<<20, size)
	if st != 200 || nextRanges(t, b)[0] != "6291456" {
		t.Fatalf("second range: %d %s", st, b)
	}
	st, h, b := put(t, s.UploadURL, file[6<<20:], 6<<20, size)
	loc := h.Get("Location")
	if st != 201 || len(b) != 0 || !strings.Contains(loc, "/Attachments('") {
		t.Fatalf("last range: %d %q %s", st, loc, b)
	}
	attID := loc[strings.Index(loc, "/Attachments('")+len("/Attachments('") : len(loc)-2]
	req, _ = http.NewRequest("GET", f.sim.GraphURL()+"/me/messages/"+url.PathEscape(d.ID)+"/attachments/"+url.PathEscape(attID)+"/$value", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Equal(got, file) || resp.Header.Get("Content-Type") != "application/pdf" {
		t.Errorf("the uploaded attachment: %d, %d bytes", resp.StatusCode, len(got))
	}
	if st, _, _ := put(t, s.UploadURL, file[:1], 0, size); st != 404 {
		t.Errorf("PUT after the upload finished: %d", st)
	}

	// DELETE cancels; an expired session is gone.
	c := session(4 << 20)
	req, _ = http.NewRequest("DELETE", c.UploadURL, nil)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 204 {
		t.Errorf("DELETE: %v %v", resp, err)
	}
	if st, _, _ := put(t, c.UploadURL, file[:1<<20], 0, 4<<20); st != 404 {
		t.Errorf("PUT after DELETE: %d", st)
	}
	e := session(4 << 20)
	if _, err := f.ctl.AdvanceClock(ctx, 3*time.Hour); err != nil {
		t.Fatal(err)
	}
	if st, _, _ := put(t, e.UploadURL, file[:1<<20], 0, 4<<20); st != 404 {
		t.Errorf("PUT after expiry: %d", st)
	}
}
