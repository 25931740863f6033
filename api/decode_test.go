package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
)

// FuzzDecodeJSON feeds arbitrary bodies and content types to the request
// decoder: it never panics, every refusal is a 4xx with a code and a
// sentence, and what it accepts is one JSON object.
func FuzzDecodeJSON(f *testing.F) {
	for _, seed := range []struct{ ct, body string }{
		{"application/json", `{"owner":"u1","backfill_days":30,"storage":{"bodies":"store"}}`},
		{"application/json", `{"features":{"read":true,"send":true},"folders":["inbox"]}`},
		{"application/json; charset=utf-8", `{}`}, {"application/json", `{"colour":1}`}, {"application/json", `[]`},
		{"text/plain", `{}`}, {"application/json", `{"backfill_days":"x"}`}, {"application/json", `{} {}`}, {"", ``},
		{"application/merge-patch+json", `{"retention":"keep"}`}, {"application/json", `{"storage":{"bodies":1}}`},
	} {
		f.Add(seed.ct, []byte(seed.body))
	}
	f.Fuzz(func(t *testing.T, contentType string, body []byte) {
		var req createRequest
		derr := decodeJSON(contentType, strings.NewReader(string(body)), &req)
		if derr != nil {
			if derr.status < 400 || derr.status > 499 || derr.code == "" || derr.detail == "" {
				t.Fatalf("refusal without status, code or sentence: %+v", derr)
			}
			return
		}
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(body, &obj); err != nil {
			t.Fatalf("accepted a body that is not one JSON object: %q", body)
		}
		if len(body) > maxRequestBody {
			t.Fatalf("accepted %d bytes", len(body))
		}
	})
}

func TestDecodeMessages(t *testing.T) {
	for _, tc := range []struct {
		body, code, text string
	}{
		{`{"backfill_days":"thirty"}`, "invalid_field", `"backfill_days" must be a number, not a JSON string`},
		{`{"folders":"inbox"}`, "invalid_field", `"folders" must be a list`},
		{`{"features":"all"}`, "invalid_field", `"features" must be an object, not a JSON string`},
		{`{"colour":"blue"}`, "unknown_field", `"colour"`},
		{`{"owner":`, "invalid_json", "not valid JSON"},
	} {
		var req createRequest
		derr := decodeJSON("application/json", strings.NewReader(tc.body), &req)
		if derr == nil || derr.code != tc.code || !strings.Contains(derr.detail, tc.text) {
			t.Errorf("%s: %+v", tc.body, derr)
		}
	}
}

// TestDecodeRefusesUnstorableText: a body with bytes that are not UTF-8, a
// NUL (raw or escaped) or a lone surrogate escape, in any string, is
// refused with a code before it is decoded (encoding/json would keep the
// NUL and turn the rest into U+FFFD); escaped backslashes and surrogate
// pairs are text like any other.
func TestDecodeRefusesUnstorableText(t *testing.T) {
	for _, tc := range []struct {
		body, code string
	}{
		{"{\"owner\":\"a\xffb\"}", "invalid_encoding"},
		{"{\"owner\":\"\xed\xa0\x80\"}", "invalid_encoding"},
		{`{"owner":"\ud800"}`, "invalid_encoding"},
		{`{"owner":"\uDBFFx"}`, "invalid_encoding"},
		{`{"owner":"\ud800\u0041"}`, "invalid_encoding"},
		{`{"owner":"\udc00"}`, "invalid_encoding"},
		{`{"owner":"\ud83d\ude00\ude00"}`, "invalid_encoding"},
		{`{"storage":{"bodies":"\ud800"}}`, "invalid_encoding"},
		{`{"owner":"u\u0000"}`, "invalid_character"},
		{`{"login_hint":"ada@contoso.example\u0000"}`, "invalid_character"},
		{"{\"owner\":\"u\x00\"}", "invalid_character"},
		{`{"owner":"u"}` + "\x00", "invalid_character"},
		{`{"owner":"\\u0000"}`, ""},
		{`{"owner":"\\\ud83d\ude00"}`, ""},
		{`{"owner":"\ud83d\ude00 \u00e9\u0041"}`, ""},
		{`{"owner":"\\"}`, ""},
	} {
		var req createRequest
		derr := decodeJSON("application/json", strings.NewReader(tc.body), &req)
		switch {
		case tc.code == "" && derr != nil:
			t.Errorf("%q refused: %+v", tc.body, derr)
		case tc.code != "" && (derr == nil || derr.status != 400 || derr.code != tc.code || derr.detail == ""):
			t.Errorf("%q: %+v, want 400 %s", tc.body, derr, tc.code)
		}
	}
}

// TestFolderListsRefused: a folder list that create, settings or resync
// is given is refused with 400 and a code naming the bad item, whatever
// the hostile value; a list that is not given is no list at all.
func TestFolderListsRefused(t *testing.T) {
	gin.SetMode(gin.TestMode)
	r := gin.New()
	r.POST("/create", func(c *gin.Context) {
		var req createRequest
		if bind(c, &req) && checkFolders(c, req.Folders, false) {
			c.Status(http.StatusNoContent)
		}
	})
	r.PATCH("/settings", func(c *gin.Context) {
		var p settingsPatch
		if bind(c, &p) && checkFolders(c, p.Folders, false) {
			c.Status(http.StatusNoContent)
		}
	})
	r.POST("/resync", func(c *gin.Context) {
		var req struct {
			Folders folderList `json:"folders"`
		}
		if bind(c, &req) && checkFolders(c, req.Folders, true) {
			c.Status(http.StatusNoContent)
		}
	})
	many := make([]string, 51)
	for i := range many {
		many[i] = fmt.Sprintf("%q", fmt.Sprint("f", i))
	}
	for _, tc := range []struct {
		name, folders, code, says string
	}{
		{"path up", `["../inbox"]`, "invalid_folders", `"../inbox" is a path`},
		{"path", `["inbox","a/b"]`, "invalid_folders", `Folders[1] "a/b" is a path`},
		{"invalid UTF-8", "[\"in\xffbox\"]", "invalid_encoding", "UTF-8"},
		{"lone surrogate", `["\ud800"]`, "invalid_encoding", "surrogate"},
		{"NUL", `["in\u0000box"]`, "invalid_character", "NUL"},
		{"null", `null`, "invalid_folders", "not null"},
		{"empty list", `[]`, "invalid_folders", "the list is empty"},
		{"51 items", "[" + strings.Join(many, ",") + "]", "invalid_folders", "at most 50 folders, not 51"},
		{"1,000 characters", `["` + strings.Repeat("x", 1000) + `"]`, "invalid_folders", "1000 characters long"},
		{"twice", `["inbox","Inbox"]`, "invalid_folders", `"Inbox" names the same folder as folders[0]`},
		{"not a list", `"inbox"`, "invalid_field", `"folders" must be a list`},
		{"not names", `[1]`, "invalid_field", `"folders"`},
	} {
		for _, route := range []string{"POST /create", "PATCH /settings", "POST /resync"} {
			method, path, _ := strings.Cut(route, " ")
			w := httptest.NewRecorder()
			req := httptest.NewRequest(method, path, strings.NewReader(`{"folders":`+tc.folders+`}`))
			req.Header.Set("Content-Type", "application/json")
			r.ServeHTTP(w, req)
			var p Problem
			_ = json.Unmarshal(w.Body.Bytes(), &p)
			if w.Code != 400 || p.Code != tc.code || !strings.Contains(p.Detail, tc.says) {
				t.Errorf("%s %s: %d %s, want 400 %s saying %q", route, tc.name, w.Code, w.Body, tc.code, tc.says)
			}
		}
	}
	for _, route := range []string{"POST /create", "PATCH /settings", "POST /resync"} {
		method, path, _ := strings.Cut(route, " ")
		for _, body := range []string{`{}`, `{"folders":["inbox","AAMkAGI2TG93AAA-_=","Projects 2026"]}`} {
			w := httptest.NewRecorder()
			req := httptest.NewRequest(method, path, strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			r.ServeHTTP(w, req)
			if w.Code != http.StatusNoContent {
				t.Errorf("%s %s: %d %s", route, body, w.Code, w.Body)
			}
		}
	}
}

// TestMalformedID: the 404 for a path that holds no connection ID says
// what is wrong with the text, as a copy from a terminal gets it wrong.
func TestMalformedID(t *testing.T) {
	const id = "conn_AAAAAAAAAAAAAAAA"
	for _, tc := range []struct {
		in, want string
	}{
		{`"` + id + `"`, "send " + id + " alone"},
		{id + "\n", "send " + id + " alone"},
		{" " + id + " ", "send " + id + " alone"},
		{"<" + id + ">", "send " + id + " alone"},
		{"$ID", "starts with conn_"},
		{"snd_abc", "starts with conn_"},
		{"conn_short", "16 letters"},
		{`"conn_short"`, "16 letters"},
	} {
		if got := malformedID(tc.in); !strings.Contains(got, tc.want) {
			t.Errorf("malformedID(%q) = %q, want it to say %q", tc.in, got, tc.want)
		}
	}
}
