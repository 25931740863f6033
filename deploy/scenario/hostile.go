package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"time"

	"golang.org/x/net/http/httpguts"
)

// routes are the API's routes, with their path parameters in braces.
var routes = []struct{ method, path string }{
	{"POST", "/v1/connections"},
	{"GET", "/v1/connections"},
	{"GET", "/v1/connections/{id}"},
	{"DELETE", "/v1/connections/{id}"},
	{"POST", "/v1/connections/{id}/reauthorize"},
	{"POST", "/v1/connections/{id}/resync"},
	{"PATCH", "/v1/connections/{id}/settings"},
	{"PUT", "/v1/connections/{id}/visibility"},
	{"GET", "/v1/connections/{id}/folders"},
	{"GET", "/v1/connections/{id}/messages"},
	{"GET", "/v1/connections/{id}/messages/{mid}"},
	{"GET", "/v1/connections/{id}/messages/{mid}/attachments/{aid}"},
	{"GET", "/v1/connections/{id}/mailboxes"},
	{"POST", "/v1/connections/{id}/mailboxes"},
	{"GET", "/v1/connections/{id}/mailboxes/{mbx}"},
	{"DELETE", "/v1/connections/{id}/mailboxes/{mbx}"},
	{"POST", "/v1/connections/{id}/mailboxes/{mbx}/resync"},
	{"GET", "/v1/connections/{id}/mailboxes/{mbx}/folders"},
	{"GET", "/v1/connections/{id}/mailboxes/{mbx}/messages"},
	{"GET", "/v1/connections/{id}/mailboxes/{mbx}/messages/{mid}"},
	{"GET", "/v1/connections/{id}/mailboxes/{mbx}/messages/{mid}/attachments/{aid}"},
	{"POST", "/v1/tenants/admin-consent"},
	{"GET", "/v1/tenants/{tenant}"},
	{"POST", "/v1/connections/{id}/messages/{mid}/reply"},
	{"POST", "/v1/connections/{id}/messages/{mid}/reply-all"},
	{"POST", "/v1/connections/{id}/messages/{mid}/forward"},
	{"POST", "/v1/connections/{id}/sends"},
	{"GET", "/v1/connections/{id}/sends"},
	{"GET", "/v1/connections/{id}/sends/{sid}"},
	{"GET", "/v1/events"},
	{"GET", "/v1/webhook-endpoints"},
	{"PUT", "/v1/webhook-endpoints"},
	{"POST", "/v1/webhook-endpoints"},
	{"GET", "/v1/webhook-endpoints/{eid}"},
	{"PATCH", "/v1/webhook-endpoints/{eid}"},
	{"DELETE", "/v1/webhook-endpoints/{eid}"},
	{"POST", "/v1/webhook-endpoints/{eid}/test"},
	{"GET", "/v1/webhook-endpoints/{eid}/deliveries/{did}"},
	{"GET", "/v1/oauth/callback"},
	{"GET", "/v1/oauth/admin-callback"},
	{"POST", "/v1/graph/notifications"},
	{"POST", "/v1/graph/lifecycle"},
	{"GET", "/v1/openapi.json"},
}

// hostileValues go into path parameters and queries (already escaped for
// a URL where they must be).
var hostileValues = []string{
	"conn_doesnotexist0000",
	"..%2F..%2F..%2Fetc%2Fpasswd",
	strings.Repeat("a", 16<<10),
	"conn_%00abc",
	"%ff%fe%fd",
	"%ed%a0%80", // a lone surrogate, in UTF-8
	"'%20OR%201=1--",
	"%3Cscript%3Ealert(1)%3C%2Fscript%3E",
	"%0d%0aSet-Cookie:%20x=1",
	"-1",
	"99999999999999999999999",
}

// hostileBodies go to every route that takes a body.
func hostileBodies() []string {
	return []string{
		`{`,
		`[]`,
		`"a string"`,
		`{"folders":"inbox"}`,
		`{"folders":["in\u0000box"]}`,
		`{"folders":["../inbox"]}`,
		`{"login_hint":"\ud800"}`,
		`{"login_hint":"` + strings.Repeat("x", 70000) + `"}`,
		`{"backfill_days":1e309}`,
		`{"backfill_days":-5,"retention":"forever"}`,
		`{"features":{"read":"yes"}}`,
		`{"storage":{"bodies":"maybe"}}`,
		`{"to":[{"address":"<script>@x"}],"subject":"` + strings.Repeat("s", 1<<20) + `"}`,
		`{"address":"not an address"}`,
		`{"url":"http://127.0.0.1:22/"}`,
		`{"url":"file:///etc/passwd"}`,
		`{"value":[{"subscriptionId":"x","clientState":"y"}]}` + `garbage`,
		"\xff\xfe{\"a\":1}",
		strings.Repeat("[", 100000) + strings.Repeat("]", 100000),
		`{"a":"` + strings.Repeat("b", 3<<20) + `"}`, // 3 MiB
		`{"backfill_days":30,"backfill_days":"x"}`,
		`{"unknown_field":true}`,
	}
}

// hostileHeaders are headers a client may send wrong.
var hostileHeaders = [][2]string{
	{"Content-Type", "text/plain"},
	{"Content-Type", "application/json; charset=latin-1"},
	{"Idempotency-Key", strings.Repeat("k", 5000)},
	{"Idempotency-Key", "key\x7f"},
	{"Outlookd-User", strings.Repeat("u", 5000)},
	{"Authorization", "Bearer olk_" + strings.Repeat("z", 4000)},
	{"Authorization", "Basic dXNlcjpwYXNz"},
}

// hostileInput sends every route malformed, oversized and hostile values
// (in the path, the query, the body and the headers) next to a live
// connection, and checks that none answers 5xx and that no refused
// request changed anything: the registry's tables are the same before and
// after each.
func hostileInput(ctx context.Context, w *world, _ int) (result, error) {
	var r result
	c, err := w.connect(adele, inboxOnly)
	if err != nil {
		return r, err
	}
	time.Sleep(2 * time.Second) // let the first rounds settle
	valid := map[string]string{"id": c.ID, "mid": "AAMk-none", "aid": "att-none", "mbx": "mbx_none0000000000", "sid": "snd_none", "tenant": "contoso.example",
		"eid": "we_none000000000000", "did": "evt_none"}
	type probe struct {
		method, path, body string
		header             [2]string
	}
	var probes []probe
	fill := func(path, param, value string) string {
		for k, v := range valid {
			if k == param {
				v = value
			}
			path = strings.ReplaceAll(path, "{"+k+"}", v)
		}
		return path
	}
	for _, rt := range routes {
		params := []string{}
		for k := range valid {
			if strings.Contains(rt.path, "{"+k+"}") {
				params = append(params, k)
			}
		}
		sort.Strings(params)
		// Every path parameter hostile in turn (never a valid ID where a
		// request could change something).
		for _, p := range params {
			for _, v := range hostileValues {
				probes = append(probes, probe{method: rt.method, path: fill(rt.path, p, v), body: `{}`})
			}
		}
		base := fill(rt.path, "", "")
		// Hostile queries.
		for _, v := range hostileValues {
			for _, q := range []string{"limit", "cursor", "since", "folder", "state", "code", "after", "x"} {
				if rt.method == "GET" || rt.method == "POST" && strings.HasPrefix(rt.path, "/v1/graph/") {
					probes = append(probes, probe{method: rt.method, path: base + "?" + q + "=" + v})
				}
			}
		}
		if rt.method == "GET" || rt.method == "DELETE" {
			continue
		}
		for _, b := range hostileBodies() {
			probes = append(probes, probe{method: rt.method, path: base, body: b})
		}
		for _, h := range hostileHeaders {
			probes = append(probes, probe{method: rt.method, path: base, body: `{"folders":["in\u0000box"]}`, header: h})
		}
	}

	before, err := w.snapshot(ctx)
	if err != nil {
		return r, err
	}
	counts := map[string]int{}
	var failures []string
	for _, p := range probes {
		status, err := w.raw(p.method, p.path, p.body, p.header)
		switch {
		case errors.Is(err, errUnsendable):
			counts["unsendable"]++
			continue
		case err != nil:
			counts["no_answer"]++
			failures = append(failures, fmt.Sprintf("%s %.80s: %v", p.method, p.path, err))
			continue
		case status >= 500:
			counts["5xx"]++
			failures = append(failures, fmt.Sprintf("%s %.80s (body %.40q): %d", p.method, p.path, p.body, status))
		case status >= 400:
			counts["4xx"]++
		default:
			counts["accepted"]++
		}
		after, err := w.snapshot(ctx)
		if err != nil {
			return r, err
		}
		if after != before {
			if status >= 400 {
				counts["changed"]++
				failures = append(failures, fmt.Sprintf("%s %.80s (body %.40q) answered %d and changed %s", p.method, p.path, p.body, status, diff(before, after)))
			}
			before = after
		}
	}
	r.add("requests", len(probes))
	r.add("refused_4xx", counts["4xx"])
	r.add("accepted", counts["accepted"])
	r.add("5xx", counts["5xx"])
	r.add("changed_by_refused", counts["changed"])
	r.add("no_answer", counts["no_answer"])
	r.add("unsendable", counts["unsendable"])
	if st, err := w.get(c.ID); err != nil || st.State != "active" {
		return r, fmt.Errorf("the connection after the hostile requests: %+v %v", st, err)
	}
	if len(failures) > 0 {
		if len(failures) > 10 {
			failures = append(failures[:10], fmt.Sprintf("and %d more", len(failures)-10))
		}
		return r, fmt.Errorf("%s", strings.Join(failures, "; "))
	}
	return r, nil
}

// snapshotTables are the registry tables a request could change, with
// what is compared of each (timestamps the background writes are left out).
var snapshotTables = map[string]string{
	"connections":       "id, state, mode, visibility, owner_id, settings, return_url, mailbox",
	"mailboxes":         "id, connection_id, state, settings",
	"subscriptions":     "id, connection_id",
	"events":            "id, type",
	"webhook_endpoints": "*",
	"connection_shares": "*",
	"admin_consents":    "*",
	"sends":             "*",
	"send_attachments":  "*",
	"orgs":              "*",
}

// snapshot is a digest of the registry's tables, one line per table.
func (w *world) snapshot(ctx context.Context) (string, error) {
	names := make([]string, 0, len(snapshotTables))
	for t := range snapshotTables {
		names = append(names, t)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, t := range names {
		var n int64
		var digest string
		q := `SELECT count(*), md5(COALESCE(string_agg(r::text, '|' ORDER BY r::text), '')) FROM (SELECT ` + snapshotTables[t] + ` FROM ` + t + `) r`
		if err := w.st.Pool().QueryRow(ctx, q).Scan(&n, &digest); err != nil {
			return "", fmt.Errorf("snapshot %s: %w", t, err)
		}
		fmt.Fprintf(&b, "%s %d %s\n", t, n, digest)
	}
	return b.String(), nil
}

// diff names the tables whose lines differ.
func diff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	var out []string
	for i := range al {
		if i < len(bl) && al[i] != bl[i] {
			out = append(out, strings.Fields(al[i])[0])
		}
	}
	return strings.Join(out, ", ")
}

// errUnsendable: Go's client refuses to send the request (a URL or header
// value no HTTP client may send), so nothing reached the API.
var errUnsendable = errors.New("not sendable over HTTP")

// raw sends a request as the app (admin key, the default user) with a body
// sent as is and one header replaced, and answers the status.
func (w *world) raw(method, path, body string, header [2]string) (int, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, w.apiURL+path, rd)
	if err != nil {
		return 0, fmt.Errorf("%w: %v", errUnsendable, err)
	}
	req.Header.Set("Authorization", "Bearer "+w.key)
	req.Header.Set("Outlookd-User", defaultUser)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", "hostile-1")
	}
	if header[0] != "" {
		req.Header.Set(header[0], header[1])
	}
	for _, vs := range req.Header {
		for _, v := range vs {
			if !httpguts.ValidHeaderFieldValue(v) {
				return 0, fmt.Errorf("%w: header value %.20q", errUnsendable, v)
			}
		}
	}
	resp, err := noRedirect.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	w.mu.Lock()
	w.responses.Write(raw)
	w.mu.Unlock()
	return resp.StatusCode, nil
}
