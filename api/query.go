package api

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/gin-gonic/gin"
)

// queryParams is every /v1 route's query parameters, by method and route
// pattern: the one place that says what a route reads from the query
// (the OpenAPI document says the same, checked by a test). A route that is
// absent takes no parameter at all.
var queryParams = map[string][]string{
	"GET /v1/connections":                                  {"limit", "cursor"},
	"GET /v1/connections/:id/messages":                     {"limit", "cursor", "folder", "from", "to", "since", "unread"},
	"GET /v1/connections/:id/messages/:mid":                {"body"},
	"GET /v1/connections/:id/sends":                        {"limit", "cursor", "state"},
	"GET /v1/connections/:id/drafts":                       {"limit", "cursor"},
	"GET /v1/connections/:id/mailboxes/:mbx/sends":         {"limit", "cursor", "state"},
	"GET /v1/connections/:id/mailboxes/:mbx/drafts":        {"limit", "cursor"},
	"GET /v1/connections/:id/mailboxes/:mbx/messages":      {"limit", "cursor", "folder", "from", "to", "since", "unread"},
	"GET /v1/connections/:id/mailboxes/:mbx/messages/:mid": {"body"},
	"GET /v1/connections/:id/contacts":                     {"limit", "cursor"},
	"GET /v1/connections/:id/mailboxes/:mbx/contacts":      {"limit", "cursor"},
	"DELETE /v1/connections/:id/mailboxes/:mbx":            {"retention"},
	"GET /v1/connections/:id/directory":                    {"limit", "cursor", "status"},
	"GET /v1/events":                                       {"limit", "after"},
}

// foreignQuery is the routes whose query is written by Microsoft, not by
// the app: the identity platform's redirect to the OAuth callback and
// Graph's webhook calls carry parameters outlookd does not choose (and may
// gain new ones), so only their encoding is checked.
var foreignQuery = map[string]bool{
	"GET /v1/oauth/callback":       true,
	"GET /v1/oauth/admin-callback": true,
	"POST /v1/graph/notifications": true,
	"POST /v1/graph/lifecycle":     true,
}

// checkQuery refuses, before any handler runs, a path or query holding
// text Postgres or Vault could not take (a NUL, or bytes that are not
// UTF-8, even on the routes whose query Microsoft writes), a query string
// that does not parse (gin's c.Query silently drops what it cannot
// decode, so a filter would be ignored) and parameters the route does not
// take (a misspelt filter would be ignored too).
func checkQuery(c *gin.Context) {
	if !plainText(c.Request.URL.Path) {
		problem(c, http.StatusBadRequest, "invalid_path", "The path holds a NUL character or bytes that are not UTF-8.")
		return
	}
	q, err := url.ParseQuery(c.Request.URL.RawQuery)
	if err != nil {
		problem(c, http.StatusBadRequest, "invalid_query", "The query string is not valid URL encoding (a '%' must start an escape such as %40, and parameters are separated by '&'), so it cannot be read.")
		return
	}
	for name, values := range q {
		if !plainText(name) || slices.ContainsFunc(values, func(v string) bool { return !plainText(v) }) {
			problem(c, http.StatusBadRequest, "invalid_query", "The query parameter "+strconv.QuoteToASCII(name)+" holds a NUL character or bytes that are not UTF-8.")
			return
		}
	}
	route := c.Request.Method + " " + c.FullPath()
	if foreignQuery[route] || len(q) == 0 {
		return
	}
	takes := queryParams[route]
	var unknown []string
	for name := range q {
		if !slices.Contains(takes, name) {
			unknown = append(unknown, strconv.Quote(name))
		}
	}
	if len(unknown) == 0 {
		return
	}
	slices.Sort(unknown)
	what := "the query parameter " + unknown[0]
	if len(unknown) > 1 {
		what = "the query parameters " + strings.Join(unknown, ", ")
	}
	accepted := "takes no query parameters"
	if len(takes) > 0 {
		accepted = "takes only " + strings.Join(takes, ", ")
	}
	problem(c, http.StatusBadRequest, "unknown_parameter", "This request does not take "+what+"; it "+accepted+".")
}

// plainText says whether s is UTF-8 without a NUL: text Postgres can
// store and Vault can name.
func plainText(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsRune(s, 0)
}
