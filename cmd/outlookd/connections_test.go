package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const testKey = "olk_testkeyid_s3cr3t-never-printed"

// fakeAPI answers the routes the connections command uses as outlookd's
// API does, from a list of connections, two per page.
type fakeAPI struct {
	conns []map[string]any
	calls []string
}

func (f *fakeAPI) problem(w http.ResponseWriter, status int, code, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"status": status, "code": code, "detail": detail})
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.calls = append(f.calls, r.Method+" "+r.URL.RequestURI())
	if r.Header.Get("Authorization") == "Bearer olk_user" {
		f.problem(w, 400, "user_required", "Name the app user the request acts for in the Outlookd-User header.")
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+testKey {
		f.problem(w, 401, "unauthenticated", "The API key is not valid.")
		return
	}
	path := strings.TrimPrefix(r.URL.Path, "/v1/connections")
	if path == "" && r.Method == "GET" {
		start := 0
		if c := r.URL.Query().Get("cursor"); c != "" {
			for i, conn := range f.conns {
				if conn["id"] == c {
					start = i + 1
				}
			}
		}
		end := min(start+2, len(f.conns))
		page := map[string]any{"data": f.conns[start:end]}
		if end < len(f.conns) {
			page["next_cursor"] = f.conns[end-1]["id"]
		}
		_ = json.NewEncoder(w).Encode(page)
		return
	}
	id, rest, _ := strings.Cut(strings.TrimPrefix(path, "/"), "/")
	var conn map[string]any
	for _, c := range f.conns {
		if c["id"] == id {
			conn = c
		}
	}
	if conn == nil {
		f.problem(w, 404, "connection_not_found", "No connection with this ID is visible to you.")
		return
	}
	out := map[string]any{}
	for k, v := range conn {
		out[k] = v
	}
	switch r.Method + " " + rest {
	case "GET ":
	case "GET mailboxes":
		_ = json.NewEncoder(w).Encode(map[string]any{"data": []map[string]any{{"id": "mbx_AAAAAAAAAAAAAAAA", "address": "shared@contoso.example", "state": "active", "sync_mode": "push", "message_count": 7}}})
		return
	case "GET sends":
		if st := r.URL.Query().Get("state"); st != "" && st != "queued" {
			_ = json.NewEncoder(w).Encode(map[string]any{"data": []any{}})
			return
		}
		if r.URL.Query().Get("cursor") == "" {
			_ = json.NewEncoder(w).Encode(map[string]any{"data": []map[string]any{{"id": "snd_a", "state": "queued", "recipients": 2, "subject": "Quarterly figures",
				"not_before": "2026-01-01T10:00:00Z"}}, "next_cursor": "snd_a"})
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"data": []map[string]any{{"id": "snd_b", "state": "queued", "mailbox_id": "mbx_AAAAAAAAAAAAAAAA", "recipients": 1}}})
		return
	case "POST resync":
		w.WriteHeader(http.StatusAccepted)
	case "POST reauthorize":
		if conn["state"] != "reauth_required" {
			f.problem(w, 409, "invalid_state", "Only a connection waiting for consent or for a new sign-in can be re-authorized; this one is active.")
			return
		}
		out["authorize_url"] = "https://login.example/authorize?state=abc&client_id=x"
	case "POST mailboxes/mbx_AAAAAAAAAAAAAAAA/repair":
		_ = json.NewEncoder(w).Encode(map[string]any{"id": "mbx_AAAAAAAAAAAAAAAA", "address": "shared@contoso.example", "state": "active"})
		return
	case "POST mailboxes/mbx_BBBBBBBBBBBBBBBB/repair":
		f.problem(w, 409, "workflow_running", "This mailbox's workflow is running, so there is nothing to repair.")
		return
	case "POST repair":
		if conn["reason"] != "workflow_ended" {
			f.problem(w, 409, "workflow_running", "This connection's workflow is running; nothing to repair.")
			return
		}
		out["reason"] = ""
	case "DELETE ":
		w.WriteHeader(http.StatusAccepted)
		out["state"] = "disconnecting"
	default:
		f.problem(w, 404, "not_found", "No resource lives at this path.")
		return
	}
	_ = json.NewEncoder(w).Encode(out)
}

func TestConnectionsCommand(t *testing.T) {
	f := &fakeAPI{}
	for i, st := range []string{"active", "reauth_required", "active", "reauth_required", "pending_consent"} {
		f.conns = append(f.conns, map[string]any{"id": fmt.Sprintf("conn_%016d", i), "kind": "delegated", "state": st,
			"mailbox": "user" + strconv.Itoa(i) + "@contoso.example", "sync_mode": "push", "message_count": i})
	}
	f.conns[2]["kind"] = "service_account"
	f.conns[2]["backfill"] = map[string]any{"running": true, "fetched": 40, "total": 80, "percent": 50.0}
	f.conns[2]["reason_text"] = "Graph throttled the last round."
	f.conns[3]["reason"] = "workflow_ended"
	srv := httptest.NewServer(f)
	defer srv.Close()
	notAPI := httptest.NewServer(http.NotFoundHandler())
	defer notAPI.Close()
	keyFile := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(keyFile, []byte(testKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{"OUTLOOKD_API_URL=" + srv.URL, "OUTLOOKD_API_KEY=" + testKey}
	id := func(i int) string { return f.conns[i]["id"].(string) }

	tests := []struct {
		name     string
		args     []string
		env      []string
		exit     int
		want     []string // in stdout (or stderr and the error on failure)
		wantNot  []string
		wantCall string
	}{
		{name: "list follows the pages", args: []string{"list"}, want: []string{"ID", "STATE", id(0), id(4), "user4@contoso.example"},
			wantCall: "GET /v1/connections?cursor=" + id(3) + "&limit=200"},
		{name: "list by state", args: []string{"list", "--state", "reauth_required"}, want: []string{id(1), id(3)}, wantNot: []string{id(0), id(2), id(4)}},
		{name: "list none in a state", args: []string{"list", "--state", "disconnected"}, want: []string{"no connection in state disconnected"}},
		{name: "list as JSON", args: []string{"list", "--json", "--state", "active"}, want: []string{`"id": "` + id(0) + `"`, `"id": "` + id(2) + `"`}, wantNot: []string{id(1)}},
		{name: "show", args: []string{"show", id(2)}, want: []string{"State:", "active", "Sync mode:", "push", "40 fetched of 80 (50.0%), running",
			"Last error:", "Graph throttled", "Mailboxes:", "shared@contoso.example"}},
		{name: "show flags first", args: []string{"show", "--json", id(0)}, want: []string{`"connection"`, `"state": "active"`}},
		{name: "resync", args: []string{"resync", id(0)}, want: []string{"resync started"}, wantCall: "POST /v1/connections/" + id(0) + "/resync"},
		{name: "reauthorize prints the link", args: []string{"reauthorize", id(1)}, want: []string{"https://login.example/authorize?state=abc&client_id=x"}},
		{name: "reauthorize an active one", args: []string{"reauthorize", id(0)}, exit: 1, want: []string{"409 invalid_state", "this one is active"}},
		{name: "repair a terminated one", args: []string{"repair", id(3)}, want: []string{"runs again"}, wantCall: "POST /v1/connections/" + id(3) + "/repair"},
		{name: "repair a running one", args: []string{"repair", id(0)}, exit: 1, want: []string{"409 workflow_running"}},
		{name: "repair a mailbox", args: []string{"repair", id(0), "--mailbox", "mbx_AAAAAAAAAAAAAAAA"}, want: []string{"shared@contoso.example", "runs again"},
			wantCall: "POST /v1/connections/" + id(0) + "/mailboxes/mbx_AAAAAAAAAAAAAAAA/repair"},
		{name: "repair a running mailbox", args: []string{"repair", "--mailbox", "mbx_BBBBBBBBBBBBBBBB", id(0)}, exit: 1, want: []string{"409 workflow_running"}},
		{name: "disconnect", args: []string{"disconnect", id(0)}, want: []string{"disconnecting"}, wantCall: "DELETE /v1/connections/" + id(0)},
		{name: "sends follow the pages", args: []string{"sends", id(0), "--state", "queued"}, want: []string{"snd_a", "2026-01-01T10:00:00Z", "snd_b", "mbx_AAAAAAAAAAAAAAAA"},
			wantNot: []string{"Quarterly"}, wantCall: "GET /v1/connections/" + id(0) + "/sends?cursor=snd_a&limit=200&state=queued"},
		{name: "no sends in a state", args: []string{"sends", id(0), "--state", "sending"}, wantNot: []string{"snd_a"}},
		{name: "unknown ID", args: []string{"show", "conn_0000000000000099"}, exit: 1, want: []string{"404 connection_not_found"}},
		{name: "wrong key", args: []string{"list"}, env: []string{"OUTLOOKD_API_URL=" + srv.URL, "OUTLOOKD_API_KEY=olk_wrong"}, exit: 1, want: []string{"401", "refused the API key"}},
		{name: "not an admin key", args: []string{"list"}, env: []string{"OUTLOOKD_API_URL=" + srv.URL, "OUTLOOKD_API_KEY=olk_user"}, exit: 1, want: []string{"not an admin key"}},
		{name: "key from a file", args: []string{"list", "--api-key-file", keyFile}, env: []string{"OUTLOOKD_API_URL=" + srv.URL}, want: []string{id(0)}},
		{name: "URL not outlookd's", args: []string{"list", "--api-url", notAPI.URL}, exit: 1, want: []string{"is " + notAPI.URL + " outlookd's API"}},
		{name: "URL unreachable", args: []string{"list", "--api-url", "http://127.0.0.1:1"}, exit: 1, want: []string{"cannot reach the API"}},
		{name: "URL not http", args: []string{"list", "--api-url", "ftp://x"}, exit: 1, want: []string{"not an http(s) URL"}},
		{name: "no URL", args: []string{"list"}, env: []string{"OUTLOOKD_API_KEY=" + testKey}, exit: 1, want: []string{"OUTLOOKD_API_URL"}},
		{name: "no key", args: []string{"list"}, env: []string{"OUTLOOKD_API_URL=" + srv.URL}, exit: 1, want: []string{"OUTLOOKD_API_KEY"}},
		{name: "no subcommand", args: nil, exit: 2},
		{name: "unknown subcommand", args: []string{"purge", id(0)}, exit: 2},
		{name: "show without an ID", args: []string{"show"}, exit: 2},
		{name: "two IDs", args: []string{"resync", id(0), id(1)}, exit: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.calls = nil
			e := tt.env
			if e == nil {
				e = env
			}
			var out, errOut bytes.Buffer
			err := run(context.Background(), append([]string{"connections"}, tt.args...), &out, &errOut, e)
			if got := exitCode(err); (err == nil && tt.exit != 0) || (err != nil && got != tt.exit) {
				t.Fatalf("exit %d (%v), want %d; stderr %s", got, err, tt.exit, errOut.String())
			}
			text := out.String() + errOut.String()
			if err != nil {
				text += err.Error()
			}
			for _, w := range tt.want {
				if !strings.Contains(text, w) {
					t.Errorf("%q not in:\n%s", w, text)
				}
			}
			for _, w := range tt.wantNot {
				if strings.Contains(out.String(), w) {
					t.Errorf("%q in:\n%s", w, out.String())
				}
			}
			if strings.Contains(text, "s3cr3t") {
				t.Errorf("the API key was printed:\n%s", text)
			}
			if tt.wantCall != "" && !strings.Contains(strings.Join(f.calls, "\n"), tt.wantCall) {
				t.Errorf("%q not called; calls: %v", tt.wantCall, f.calls)
			}
		})
	}
}
