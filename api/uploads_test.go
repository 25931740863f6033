package api_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/outlookd/outlookd/api"
	"github.com/outlookd/outlookd/graphsim"
	"github.com/outlookd/outlookd/workflows"
)

type uploadView struct {
	ID        string    `json:"id"`
	State     string    `json:"state"`
	Size      int64     `json:"size"`
	Received  int64     `json:"received"`
	UploadURL string    `json:"upload_url"`
	Next      []string  `json:"next_expected_ranges"`
	SendID    string    `json:"send_id"`
	ExpiresAt time.Time `json:"expires_at"`
}

// testFile is n bytes that are not all alike.
func testFile(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*31 + i>>10)
	}
	return b
}

// newUpload opens an upload for a file.
func (h *harness) newUpload(t *testing.T, connID, name string, size int) uploadView {
	t.Helper()
	r := h.call(t, "POST", "/v1/connections/"+connID+"/uploads", h.acme, "u-ada", map[string]any{"name": name, "content_type": "application/pdf", "size": size})
	var u uploadView
	r.json(t, &u)
	if r.status != 201 || u.State != "uploading" || len(u.Next) != 1 || u.Next[0] != "0-" || r.header.Get("Location") != u.UploadURL {
		t.Fatalf("create the upload: %d %s", r.status, r.body)
	}
	return u
}

// putRange PUTs file[first:last+1] to the upload URL.
func (h *harness) putRange(t *testing.T, key, uploadURL string, file []byte, first, last int) response {
	t.Helper()
	req, _ := http.NewRequest("PUT", h.url+uploadURL, bytes.NewReader(file[first:last+1]))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set(api.UserHeader, "u-ada")
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", first, last, len(file)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, header: resp.Header, body: raw}
}

// uploadAll uploads a file in ranges of n bytes.
func (h *harness) uploadAll(t *testing.T, u uploadView, file []byte, n int) {
	t.Helper()
	for first := 0; first < len(file); first += n {
		last := min(first+n, len(file)) - 1
		if r := h.putRange(t, h.acme, u.UploadURL, file, first, last); r.status != 200 && r.status != 201 {
			t.Fatalf("range %d-%d: %d %s", first, last, r.status, r.body)
		}
	}
}

// dropRange sends a range's headers and half its body, then drops the
// connection, as a client whose network failed mid-range.
func (h *harness) dropRange(t *testing.T, uploadURL string, file []byte, first, last int) {
	t.Helper()
	u, _ := url.Parse(h.url)
	c, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriter(c)
	fmt.Fprintf(w, "PUT %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n%s: u-ada\r\nContent-Range: bytes %d-%d/%d\r\nContent-Length: %d\r\n\r\n",
		uploadURL, u.Host, h.acme, api.UserHeader, first, last, len(file), last-first+1)
	_, _ = w.Write(file[first : first+(last-first+1)/2])
	_ = w.Flush()
	time.Sleep(100 * time.Millisecond)
	_ = c.Close()
}

// TestUploadsThroughTheAPI: an upload takes ranges in order, is resumed
// after a dropped range from what GET says, refuses what is out of
// order, overlapping, too large or of another size, is another org's
// 404, goes with one send once complete (not before), and expires.
func TestUploadsThroughTheAPI(t *testing.T) {
	h := newHarness(t, graphsim.Options{}, func(d *api.Deps) {
		d.SendOptions = workflows.SendOptions{Settle: 300 * time.Millisecond, SentItemsWait: 20 * time.Second}
		d.UploadLifetime = 20 * time.Second
	})
	ctx := context.Background()
	id := h.sendingConnection(t)
	base := "/v1/connections/" + id + "/uploads"

	// Creation: a file over 150 MB, or with no size, is refused.
	for _, tc := range []struct {
		body   map[string]any
		status int
		code   string
	}{
		{map[string]any{"name": "huge.bin", "size": api.MaxUploadSize + 1}, 413, "upload_too_large"},
		{map[string]any{"name": "empty.bin", "size": 0}, 422, "invalid_upload"},
		{map[string]any{"name": "a/b", "size": 10}, 422, "invalid_upload"},
	} {
		if r := h.call(t, "POST", base, h.acme, "u-ada", tc.body); r.status != tc.status || r.code() != tc.code {
			t.Errorf("create %v: %d %s", tc.body, r.status, r.body)
		}
	}
	// One to expire at the end (20 s here, 24 h by default).
	x := h.newUpload(t, id, "late.pdf", 10)
	h.uploadAll(t, x, testFile(10), 10)

	const size = 5<<20 + 1234
	file := testFile(size)
	u := h.newUpload(t, id, "report.pdf", size)
	const mb = 1 << 20

	// A send naming it before it is complete is refused.
	sendBody := map[string]any{"to": []map[string]string{{"address": "support@contoso.example"}}, "subject": "The report",
		"attachments": []map[string]any{{"upload_id": u.ID}}}
	if r := h.send(t, id, "up-1", sendBody); r.status != 422 || r.code() != "upload_incomplete" {
		t.Errorf("a send with an unfinished upload: %d %s", r.status, r.body)
	}

	if r := h.putRange(t, h.acme, u.UploadURL, file, 0, 2*mb-1); r.status != 200 {
		t.Fatalf("first range: %d %s", r.status, r.body)
	}
	steps := []struct {
		name        string
		first, last int
		status      int
		code        string
	}{
		{"the first range again (its answer lost)", 0, 2*mb - 1, 200, ""},
		{"out of order", 3 * mb, 4*mb - 1, 416, "range_not_expected"},
		{"overlapping", mb, 3*mb - 1, 409, "range_overlaps"},
	}
	for _, s := range steps {
		r := h.putRange(t, h.acme, u.UploadURL, file, s.first, s.last)
		var p api.Problem
		_ = json.Unmarshal(r.body, &p)
		if r.status != s.status || p.Code != s.code {
			t.Errorf("%s: %d %s", s.name, r.status, r.body)
		}
	}
	// Ranges whose header or body is wrong.
	for _, tc := range []struct {
		name, contentRange string
		body               []byte
		status             int
		code               string
	}{
		{"over 8 MiB", fmt.Sprintf("bytes %d-%d/%d", 0, api.MaxUploadRange, size), file[:10], 413, "range_too_large"},
		{"another total", fmt.Sprintf("bytes %d-%d/%d", 2*mb, 3*mb-1, size+1), file[2*mb : 3*mb], 400, "invalid_content_range"},
		{"past the end", fmt.Sprintf("bytes %d-%d/%d", 2*mb, size, size), file[2*mb:], 400, "invalid_content_range"},
		{"no Content-Range", "", file[2*mb : 3*mb], 400, "invalid_content_range"},
		{"a body shorter than its range", fmt.Sprintf("bytes %d-%d/%d", 2*mb, 3*mb-1, size), file[2*mb : 3*mb-1], 400, "range_length_mismatch"},
	} {
		req, _ := http.NewRequest("PUT", h.url+u.UploadURL, bytes.NewReader(tc.body))
		req.Header.Set("Authorization", "Bearer "+h.acme)
		req.Header.Set(api.UserHeader, "u-ada")
		if tc.contentRange != "" {
			req.Header.Set("Content-Range", tc.contentRange)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if r := (response{status: resp.StatusCode, body: raw}); r.status != tc.status || r.code() != tc.code {
			t.Errorf("%s: %d %s", tc.name, r.status, r.body)
		}
	}

	// The network drops in the middle of a range: nothing of it is kept,
	// and GET says where to resume.
	h.dropRange(t, u.UploadURL, file, 2*mb, 4*mb-1)
	var st uploadView
	h.call(t, "GET", u.UploadURL, h.acme, "u-ada", nil).json(t, &st)
	if st.Received != 2*mb || len(st.Next) != 1 || st.Next[0] != fmt.Sprintf("%d-", 2*mb) {
		t.Fatalf("after a dropped range: %+v", st)
	}

	// Another organisation's key sees nothing.
	for _, method := range []string{"GET", "DELETE"} {
		if r := h.call(t, method, u.UploadURL, h.globex, "u-ada", nil); r.status != 404 {
			t.Errorf("%s by another org: %d %s", method, r.status, r.body)
		}
	}
	if r := h.putRange(t, h.globex, u.UploadURL, file, 2*mb, 3*mb-1); r.status != 404 {
		t.Errorf("PUT by another org: %d %s", r.status, r.body)
	}

	// Resumed from where it stands: the last range answers 201.
	next := 2 * mb
	for next < size {
		last := min(next+2*mb, size) - 1
		r := h.putRange(t, h.acme, u.UploadURL, file, next, last)
		if want := map[bool]int{true: 201, false: 200}[last == size-1]; r.status != want {
			t.Fatalf("range %d-%d: %d %s", next, last, r.status, r.body)
		}
		next = last + 1
	}
	h.call(t, "GET", u.UploadURL, h.acme, "u-ada", nil).json(t, &st)
	if st.State != "complete" || st.Received != size || len(st.Next) != 0 {
		t.Errorf("complete: %+v", st)
	}

	// Sent: the file reaches the recipient whole; the same request again
	// finds the send, another send may not take the upload.
	r := h.send(t, id, "up-1", sendBody)
	var sv sendView
	r.json(t, &sv)
	if r.status != 202 {
		t.Fatalf("send: %d %s", r.status, r.body)
	}
	if again := h.send(t, id, "up-1", sendBody); again.status != 202 || again.header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("the send again: %d %s", again.status, again.body)
	}
	if other := h.send(t, id, "up-2", sendBody); other.status != 422 || other.code() != "upload_in_use" {
		t.Errorf("the upload in a second send: %d %s", other.status, other.body)
	}
	if del := h.call(t, "DELETE", u.UploadURL, h.acme, "u-ada", nil); del.status != 409 || del.code() != "upload_in_use" {
		t.Errorf("delete an upload a send holds: %d %s", del.status, del.body)
	}
	if s := h.waitSend(t, id, sv.ID); s.State != workflows.SendSent {
		t.Fatalf("the send: %+v", s)
	}
	checkSentFile(t, h, sv.ID, "report.pdf", file)

	// A draft takes an upload as a send does; the file is on the draft in
	// the mailbox.
	df := testFile(4<<20 + 5)
	du := h.newUpload(t, id, "draft.bin", len(df))
	h.uploadAll(t, du, df, 3<<20)
	dr := h.callWith(t, "POST", "/v1/connections/"+id+"/drafts", h.acme, "u-ada",
		map[string]any{"subject": "With a file", "attachments": []map[string]any{{"upload_id": du.ID, "name": "renamed.bin"}}}, "Idempotency-Key", "up-draft")
	var dv draftView
	dr.json(t, &dv)
	if dr.status != 201 || dv.DraftID == "" {
		t.Fatalf("a draft with an upload: %d %s", dr.status, dr.body)
	}
	if m, n := draftTruth(t, h, dv.DraftID); n != 1 || len(m.Attachments) != 1 || m.Attachments[0].Name != "renamed.bin" ||
		m.Attachments[0].SHA256 != fmt.Sprintf("%x", sha256.Sum256(df)) {
		t.Errorf("the draft's file: %+v", m.Attachments)
	}

	// Canceled by DELETE.
	d := h.newUpload(t, id, "draft.pdf", 100)
	if r := h.call(t, "DELETE", d.UploadURL, h.acme, "u-ada", nil); r.status != 204 {
		t.Errorf("delete: %d %s", r.status, r.body)
	}
	if r := h.call(t, "GET", d.UploadURL, h.acme, "u-ada", nil); r.status != 404 || r.code() != "upload_not_found" {
		t.Errorf("a deleted upload: %d %s", r.status, r.body)
	}

	// Expired: gone, and no send takes it.
	time.Sleep(time.Until(x.ExpiresAt) + 200*time.Millisecond)
	if r := h.call(t, "GET", x.UploadURL, h.acme, "u-ada", nil); r.status != 404 {
		t.Errorf("an expired upload: %d %s", r.status, r.body)
	}
	if r := h.putRange(t, h.acme, x.UploadURL, testFile(10), 0, 9); r.status != 404 {
		t.Errorf("a range to an expired upload: %d %s", r.status, r.body)
	}
	late := map[string]any{"to": []map[string]string{{"address": "support@contoso.example"}}, "attachments": []map[string]any{{"upload_id": x.ID}}}
	if r := h.send(t, id, "up-3", late); r.status != 422 || r.code() != "upload_not_found" {
		t.Errorf("a send with an expired upload: %d %s", r.status, r.body)
	}
	if n, err := h.e.Store.PurgeExpiredUploads(ctx, time.Now(), 100); err != nil || n < 1 {
		t.Errorf("purge: %d %v", n, err)
	}
}

// checkSentFile finds the send's Sent Items copy in graphsim's ground
// truth and checks its one file's name, size and SHA-256.
func checkSentFile(t *testing.T, h *harness, sendID, name string, file []byte) {
	t.Helper()
	var sent struct {
		MessageID string `json:"message_id"`
	}
	h.call(t, "GET", "/v1/connections/"+mustConn(t, h, sendID)+"/sends/"+sendID, h.acme, "u-ada", nil).json(t, &sent)
	truth, err := h.e.Ctl.GroundTruth(context.Background(), h.e.Ada.UPN)
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("%x", sha256.Sum256(file))
	for _, m := range truth.Messages {
		if m.ImmutableID != sent.MessageID {
			continue
		}
		if len(m.Attachments) != 1 || m.Attachments[0].Name != name || m.Attachments[0].Size != len(file) || m.Attachments[0].SHA256 != want {
			t.Errorf("the sent copy's files: %+v, want %s of %d bytes, %s", m.Attachments, name, len(file), want)
		}
		return
	}
	t.Errorf("no sent copy %q in the mailbox", sent.MessageID)
}

// mustConn finds the connection of a send in the store.
func mustConn(t *testing.T, h *harness, sendID string) string {
	t.Helper()
	s, err := h.e.Store.GetSendByID(context.Background(), sendID)
	if err != nil {
		t.Fatal(err)
	}
	return s.ConnectionID
}

// TestLargeUploadSends sends a 40 MB upload: whole, from a mailbox whose
// maximum message size was raised to 150 MB; refused by Exchange as
// message_too_large from one at the default 35 MB.
func TestLargeUploadSends(t *testing.T) {
	h := newHarness(t, graphsim.Options{}, func(d *api.Deps) {
		d.SendOptions = workflows.SendOptions{Settle: 300 * time.Millisecond, SentItemsWait: 30 * time.Second}
	})
	id := h.sendingConnection(t)
	file := testFile(40 << 20)
	for _, tc := range []struct {
		limit  int64
		state  string
		reason string
	}{{150 << 20, workflows.SendSent, ""}, {0, workflows.SendFailed, workflows.ReasonMessageTooLarge}} {
		if err := h.e.Sim.SetMaxMessageSize(h.e.Ada.ID, tc.limit); err != nil {
			t.Fatal(err)
		}
		u := h.newUpload(t, id, "big.bin", len(file))
		h.uploadAll(t, u, file, 4<<20)
		key := fmt.Sprintf("big-%d", tc.limit)
		r := h.send(t, id, key, map[string]any{"to": []map[string]string{{"address": "support@contoso.example"}}, "subject": key,
			"attachments": []map[string]any{{"upload_id": u.ID}}})
		var sv sendView
		r.json(t, &sv)
		if r.status != 202 {
			t.Fatalf("send: %d %s", r.status, r.body)
		}
		s := h.waitSendFor(t, id, sv.ID, 3*time.Minute)
		if s.State != tc.state || s.Reason != tc.reason {
			t.Fatalf("limit %d: %+v", tc.limit, s)
		}
		if tc.state == workflows.SendSent {
			checkSentFile(t, h, sv.ID, "big.bin", file)
		}
		// The send is final: its upload's bytes are gone, its row stays
		// until it expires.
		var st uploadView
		if r := h.call(t, "GET", u.UploadURL, h.acme, "u-ada", nil); r.status != 200 {
			t.Errorf("the upload after its send: %d %s", r.status, r.body)
		} else if r.json(t, &st); st.SendID != sv.ID {
			t.Errorf("the upload after its send: %+v", st)
		}
	}
}
