package api

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/outlookd/outlookd/store"
	"github.com/outlookd/outlookd/webhook"
)

// testRouter is the router with a store that is never reached: the
// requests of these tests are answered before any handler (or the API key
// check) runs, or by the key check itself.
func testRouter() http.Handler {
	return NewRouter(Deps{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Store: &store.Store{}, Receiver: &webhook.Receiver{}})
}

// TestQueryRefused: a query string that does not parse, or that carries a
// parameter the route does not take, is refused on every /v1 route before
// the handler (and the key check) runs; a query the route takes goes on
// to the key check.
func TestQueryRefused(t *testing.T) {
	router := testRouter()
	for _, tc := range []struct {
		name, method, target string
		status               int
		code, text           string
	}{
		{"bad escape in a filter", "GET", "/v1/connections/conn_AAAAAAAAAAAAAAAA/messages?from=megan%zz", 400, "invalid_query", "not valid URL encoding"},
		{"bad escape in a name", "GET", "/v1/events?aft%er=3", 400, "invalid_query", "not valid URL encoding"},
		{"semicolon separator", "GET", "/v1/connections?limit=5;cursor=x", 400, "invalid_query", "not valid URL encoding"},
		{"bad escape on a route without parameters", "DELETE", "/v1/connections/conn_AAAAAAAAAAAAAAAA?x=%", 400, "invalid_query", ""},
		{"bad escape at the callback", "GET", "/v1/oauth/callback?code=%zz&state=s", 400, "invalid_query", ""},
		{"bad escape at the Graph receiver", "POST", "/v1/graph/notifications?validationToken=%zz", 400, "invalid_query", ""},
		{"bad escape in the document's query", "GET", "/v1/openapi.json?v=%g1", 400, "invalid_query", ""},
		{"NUL in the callback's state", "GET", "/v1/oauth/callback?code=c&state=st%00ate", 400, "invalid_query", `"state" holds a NUL`},
		{"invalid UTF-8 in the callback's code", "GET", "/v1/oauth/callback?code=%ff&state=s", 400, "invalid_query", `"code"`},
		{"NUL in a Graph receiver's token", "POST", "/v1/graph/notifications?validationToken=%00", 400, "invalid_query", ""},
		{"NUL in a filter", "GET", "/v1/connections/conn_AAAAAAAAAAAAAAAA/messages?folder=in%00box", 400, "invalid_query", `"folder"`},
		{"invalid UTF-8 in a cursor", "GET", "/v1/connections?cursor=conn_%c3%28", 400, "invalid_query", `"cursor"`},
		{"NUL in a name", "GET", "/v1/connections?li%00mit=5", 400, "invalid_query", `"li\x00mit"`},
		{"NUL in the path", "GET", "/v1/connections/conn_AAAAAAAAAAAAAA%00A", 400, "invalid_path", "NUL"},
		{"invalid UTF-8 in the path", "DELETE", "/v1/connections/conn_%ff", 400, "invalid_path", "UTF-8"},
		{"misspelt filter", "GET", "/v1/connections/conn_AAAAAAAAAAAAAAAA/messages?form=megan@contoso.com", 400, "unknown_parameter", `"form"`},
		{"several unknown", "GET", "/v1/connections/conn_AAAAAAAAAAAAAAAA/messages?zz=1&form=x&limit=5", 400, "unknown_parameter", `"form", "zz"`},
		{"another route's parameter", "GET", "/v1/events?cursor=5", 400, "unknown_parameter", "takes only limit, after"},
		{"a route without parameters", "GET", "/v1/connections/conn_AAAAAAAAAAAAAAAA/folders?limit=10", 400, "unknown_parameter", "takes no query parameters"},
		{"an empty name", "GET", "/v1/connections?=x", 400, "unknown_parameter", `""`},
		{"names are case-sensitive", "GET", "/v1/connections?Limit=5", 400, "unknown_parameter", `"Limit"`},
		{"taken parameters", "GET", "/v1/connections/conn_AAAAAAAAAAAAAAAA/messages?from=megan%40contoso.com&to=&since=2026-01-01T00:00:00Z&unread=true&folder=f&limit=5&cursor=", 401, "unauthenticated", ""},
		{"taken event parameters", "GET", "/v1/events?after=3&limit=10", 401, "unauthenticated", ""},
		{"the body switch", "GET", "/v1/connections/conn_AAAAAAAAAAAAAAAA/messages/m1?body=false", 401, "unauthenticated", ""},
		{"no query", "GET", "/v1/webhook-endpoints", 401, "unauthenticated", ""},
		{"an empty query", "GET", "/v1/connections?", 401, "unauthenticated", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			router.ServeHTTP(w, httptest.NewRequest(tc.method, tc.target, nil))
			var p Problem
			if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil {
				t.Fatalf("%d %s", w.Code, w.Body)
			}
			if w.Code != tc.status || p.Code != tc.code || p.Detail == "" || !strings.Contains(p.Detail, tc.text) ||
				w.Header().Get("Content-Type") != "application/problem+json" {
				t.Errorf("%d %s, want %d %s with %q", w.Code, w.Body, tc.status, tc.code, tc.text)
			}
		})
	}
}

// TestQueryParamsDocumented: the routes' accepted parameters are the
// query parameters the OpenAPI document gives each operation, and every
// table entry is a served route.
func TestQueryParamsDocumented(t *testing.T) {
	type param struct {
		Ref  string `json:"$ref"`
		Name string `json:"name"`
		In   string `json:"in"`
	}
	var doc struct {
		Paths      map[string]map[string]json.RawMessage `json:"paths"`
		Components struct {
			Parameters map[string]param `json:"parameters"`
		} `json:"components"`
	}
	if err := json.Unmarshal(OpenAPI, &doc); err != nil {
		t.Fatal(err)
	}
	queryOf := func(raw json.RawMessage) []string {
		var ps []param
		if raw != nil {
			if err := json.Unmarshal(raw, &ps); err != nil {
				t.Fatal(err)
			}
		}
		var out []string
		for _, p := range ps {
			if p.Ref != "" {
				p = doc.Components.Parameters[strings.TrimPrefix(p.Ref, "#/components/parameters/")]
			}
			if p.In == "query" {
				out = append(out, p.Name)
			}
		}
		return out
	}
	braces := regexp.MustCompile(`\{(\w+)\}`)
	documented := map[string][]string{}
	for path, item := range doc.Paths {
		shared := queryOf(item["parameters"])
		for method, raw := range item {
			if method == "parameters" {
				continue
			}
			var op struct {
				Parameters json.RawMessage `json:"parameters"`
			}
			if err := json.Unmarshal(raw, &op); err != nil {
				t.Fatal(err)
			}
			documented[strings.ToUpper(method)+" "+braces.ReplaceAllString(path, ":$1")] = append(slices.Clone(shared), queryOf(op.Parameters)...)
		}
	}
	served := map[string]bool{}
	for _, r := range NewRouter(Deps{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Store: &store.Store{}, Receiver: &webhook.Receiver{}}).Routes() {
		if !strings.HasPrefix(r.Path, "/v1/") {
			continue
		}
		route := r.Method + " " + r.Path
		served[route] = true
		if foreignQuery[route] {
			continue
		}
		got, want := slices.Sorted(slices.Values(queryParams[route])), slices.Sorted(slices.Values(documented[route]))
		if !slices.Equal(got, want) {
			t.Errorf("%s takes %v, the document says %v", route, got, want)
		}
	}
	for route := range queryParams {
		if !served[route] {
			t.Errorf("parameters for %s, which is not served", route)
		}
	}
	for route := range foreignQuery {
		if !served[route] {
			t.Errorf("foreign query for %s, which is not served", route)
		}
	}
}
