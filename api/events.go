package api

import (
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"net/url"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/outlookd/outlookd/outbox"
	"github.com/outlookd/outlookd/store"
)

func (s *server) events(c *gin.Context) {
	who := callerOf(c)
	limit, ok := limitParam(c, 100, 1000)
	if !ok {
		return
	}
	var after int64
	if v := c.Query("after"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			problem(c, http.StatusBadRequest, "invalid_cursor", "after must be a cursor from an earlier event (a whole number), or absent to start at the beginning.")
			return
		}
		after = n
	}
	user := who.User
	if who.Admin {
		user = ""
	}
	// From a cursor, the page is read from the cursor's own event on: the
	// cursor names the last event of a page the caller was given, so an
	// empty answer means it is beyond the newest event the caller can see
	// (the API never gave it out), which is refused rather than answered
	// with an empty page forever.
	q := store.FeedQuery{OrgID: who.Org.ID, User: user, After: after, Limit: limit}
	if after > 0 {
		q.After, q.Limit = after-1, limit+1
	}
	evs, err := s.d.Store.Feed(c, q)
	if err != nil {
		s.unavailable(c, err)
		return
	}
	evs, ok = pageAfter(evs, after, limit)
	if !ok {
		problem(c, http.StatusBadRequest, "invalid_cursor", "after is beyond the newest event you can see; use a next_cursor the feed gave you, or leave after out to start at the beginning.")
		return
	}
	out := struct {
		Data       []outbox.Event `json:"data"`
		NextCursor string         `json:"next_cursor"`
	}{Data: []outbox.Event{}, NextCursor: strconv.FormatInt(after, 10)}
	for _, e := range evs {
		v := outbox.View(e)
		out.Data = append(out.Data, v)
		out.NextCursor = v.Cursor
	}
	c.PureJSON(http.StatusOK, out)
}

// pageAfter makes the page after a cursor out of the events read from the
// cursor's own sequence on (from the beginning when after is 0): the
// cursor's event is dropped, and there must be at least one event at or
// after the cursor, or it lies beyond the newest event (not ok).
func pageAfter(evs []store.Event, after int64, limit int) ([]store.Event, bool) {
	if after > 0 {
		if len(evs) == 0 {
			return nil, false
		}
		if evs[0].Seq == after {
			evs = evs[1:]
		}
	}
	if len(evs) > limit {
		evs = evs[:limit]
	}
	return evs, true
}

// maxURL bounds the URLs an app gives (an endpoint, a return URL).
const maxURL = 2048

// absoluteHTTP parses an absolute http(s) URL of at most maxURL characters.
func absoluteHTTP(s string) (*url.URL, bool) {
	if len(s) > maxURL {
		return nil, false
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, false
	}
	return u, true
}

// newSigningSecret makes a Standard Webhooks secret: "whsec_" and 32
// random bytes in base64.
func newSigningSecret() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return "whsec_" + base64.StdEncoding.EncodeToString(b)
}
