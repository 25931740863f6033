package activities

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// rangeSession models an Outlook upload session's ranges
// (docs/graph.md#upload-sessions): in order, 4 MB at most, 416 for a range
// that does not start where the file stands, GET for the state. faults
// script the answers to PUTs, in order: "ok", "throttled" (429 with
// Retry-After: 1, nothing kept), "unavailable" (503, nothing kept), "lost"
// (the range kept, the connection dropped before the answer).
type rangeSession struct {
	mu     sync.Mutex
	got    []byte
	size   int64
	faults []string
	puts   int
	gets   int
}

func (s *rangeSession) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.Header.Get("Authorization") != "" {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	if r.Method == http.MethodGet {
		s.gets++
		fmt.Fprintf(w, `{"ExpirationDateTime":"2030-01-01T00:00:00Z","nextExpectedRanges":["%d"]}`, len(s.got))
		return
	}
	s.puts++
	fault := "ok"
	if len(s.faults) > 0 {
		fault, s.faults = s.faults[0], s.faults[1:]
	}
	var first, last, total int64
	if _, err := fmt.Sscanf(r.Header.Get("Content-Range"), "bytes %d-%d/%d", &first, &last, &total); err != nil || total != s.size {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	body, _ := io.ReadAll(r.Body)
	switch {
	case fault == "throttled":
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusTooManyRequests)
		return
	case fault == "unavailable":
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	case first != int64(len(s.got)):
		w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
		fmt.Fprintf(w, `{"error":{"code":"ErrorInvalidRange","message":"expected %d"}}`, len(s.got))
		return
	case int64(len(body)) != last-first+1 || len(body) > uploadRange:
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	s.got = append(s.got, body...)
	if fault == "lost" {
		panic(http.ErrAbortHandler) // kept, and the answer never comes
	}
	if int64(len(s.got)) == s.size {
		w.WriteHeader(http.StatusCreated)
		return
	}
	fmt.Fprintf(w, `{"ExpirationDateTime":"2030-01-01T00:00:00Z","nextExpectedRanges":["%d"]}`, len(s.got))
}

// TestUploadResumesPerRange: a file goes on from where the session stands
// after a throttled range, a 5xx, or a range whose answer was lost (sent
// again, it would be refused): every byte once, in order, and the
// heartbeat's progress reaches the file's size.
func TestUploadResumesPerRange(t *testing.T) {
	rangePause = 10 * time.Millisecond
	defer func() { rangePause = time.Second }()
	file := make([]byte, 5*uploadRange+12345)
	for i := range file {
		file[i] = byte(rand.N(256))
	}
	for _, tc := range []struct {
		name   string
		faults []string
		puts   int
	}{
		{"no fault", nil, 6},
		{"a range throttled twice", []string{"ok", "throttled", "throttled"}, 8},
		{"a 503", []string{"ok", "ok", "unavailable"}, 7},
		{"an answer lost", []string{"ok", "lost"}, 6},
		{"an answer lost, then a 503", []string{"ok", "ok", "ok", "ok", "lost", "unavailable"}, 7},
		{"the last answer lost", []string{"ok", "ok", "ok", "ok", "ok", "lost"}, 6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sess := &rangeSession{size: int64(len(file)), faults: tc.faults}
			srv := httptest.NewServer(sess)
			defer srv.Close()
			var last UploadProgress
			m := &mailbox{hc: srv.Client(), progress: func(p UploadProgress) { last = p }}
			open := func(from int64) io.Reader { return bytes.NewReader(file[from:]) }
			err := m.sendFile(context.Background(), srv.URL+"/session?authtoken=x", "big.bin", int64(len(file)), open)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(sess.got, file) {
				t.Fatalf("the session holds %d bytes, not the file's %d", len(sess.got), len(file))
			}
			if last.Sent != int64(len(file)) || last.Size != int64(len(file)) || last.File != "big.bin" {
				t.Errorf("last progress %+v", last)
			}
			if sess.puts != tc.puts {
				t.Errorf("%d PUTs, want %d", sess.puts, tc.puts)
			}
		})
	}
}

// TestUploadRefusedRangeIsFinal: a range the session refuses (a 4xx other
// than throttling or a range it no longer expects) ends the upload at once.
func TestUploadRefusedRangeIsFinal(t *testing.T) {
	puts := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		puts++
		w.WriteHeader(http.StatusBadRequest)
	}))
	defer srv.Close()
	m := &mailbox{hc: srv.Client()}
	file := make([]byte, uploadRange+1)
	err := m.sendFile(context.Background(), srv.URL, "f", int64(len(file)), func(from int64) io.Reader { return bytes.NewReader(file[from:]) })
	if err == nil || puts != 1 || !strings.Contains(err.Error(), strconv.Itoa(http.StatusBadRequest)) {
		t.Errorf("err %v after %d PUTs", err, puts)
	}
}

// TestUploadStateReadsEitherSpelling: an upload session's state names the
// next expected range as "nextExpectedRanges" or "NextExpectedRanges";
// a state naming none, or a range that is not a number, is an error.
func TestUploadStateReadsEitherSpelling(t *testing.T) {
	for _, tt := range []struct {
		body string
		want int64
		bad  bool
	}{
		{body: `{"nextExpectedRanges":["4194304-"]}`, want: 4194304},
		{body: `{"NextExpectedRanges":["8388608-12582911"]}`, want: 8388608},
		{body: `{"nextExpectedRanges":["0"]}`, want: 0},
		{body: `{"nextExpectedRanges":[]}`, bad: true},
		{body: `{"nextExpectedRanges":["x-"]}`, bad: true},
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			_, _ = io.WriteString(w, tt.body)
		}))
		got, err := (&mailbox{hc: srv.Client()}).uploadState(context.Background(), srv.URL)
		srv.Close()
		if tt.bad != (err != nil) || !tt.bad && got != tt.want {
			t.Errorf("%s: got %d, %v; want %d (error: %v)", tt.body, got, err, tt.want, tt.bad)
		}
	}
}
