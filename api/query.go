package api

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"
)

// queryParams is every /v1 route's query parameters, by method and route
// pattern: the one place that says what a route reads from the query
// (the OpenAPI document says the same, checked by a test). A route that is
// absent takes no parameter at all.
var queryParams = map[string][]string{
	"GET /v1/connections":                   {"limit", "cursor"},
	"GET /v1/connections/:id/messages":      {"limit", "cursor", "folder", "from", "to", "since", "unread"},
	"GET /v1/connections/:id/messages/:mid": {"body"},
	"GET /v1/events":                        {"limit", "after"},
}

// foreignQuery is the routes whose query is written by Microsoft, not by
// the app: the identity platform's redirect to the OAuth callback and
// Graph's webhook calls carry parameters outlookd does not choose (and may
// gain new ones), so only their encoding is checked.
var foreignQuery = map[string]bool{
	"GET /v1/oauth/callback":       true,
	"POST /v1/graph/notifications": true,
	"POST /v1/graph/lifecycle":     true,
}

// checkQuery refuses, before any handler runs, a query string that does
// not parse (gin's c.Query silently drops what it cannot decode, so a
// filter would be ignored) and parameters the route does not take (a
// misspelt filter would be ignored too).
func checkQuery(c *gin.Context) {
	q, err := url.ParseQuery(c.Request.URL.RawQuery)
	if err != nil {
		problem(c, http.StatusBadRequest, "invalid_query", "The query string is not valid URL encoding (a '%' must start an escape such as %40, and parameters are separated by '&'), so it cannot be read.")
		return
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
