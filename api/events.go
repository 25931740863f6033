package api

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/outlookd/outlookd/outbox"
	"github.com/outlookd/outlookd/store"
	"github.com/outlookd/outlookd/vault"
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

type endpointJSON struct {
	URL        string     `json:"url"`
	UpdatedAt  time.Time  `json:"updated_at"`
	Pending    int64      `json:"pending"`
	Parked     int64      `json:"parked"`
	Delivered  int64      `json:"delivered"`
	LastError  string     `json:"last_error,omitempty"`
	RotatedAt  *time.Time `json:"secret_rotated_at,omitempty"`
	Secret     string     `json:"secret,omitempty"`
	Requeued   int64      `json:"requeued,omitempty"`
	SigningAlg string     `json:"signing"`
}

// endpointView is the organisation's endpoint as the API shows it, with
// when its signing secret was last made (zero: unknown).
func (s *server) endpointView(c *gin.Context, org string, rotated time.Time) (endpointJSON, error) {
	ep, err := s.d.Store.GetEndpoint(c, org)
	if err != nil {
		return endpointJSON{}, err
	}
	return endpointJSON{URL: ep.URL, UpdatedAt: ep.UpdatedAt, Pending: ep.Pending, Parked: ep.Parked, Delivered: ep.Delivered,
		LastError: ep.LastError, RotatedAt: timePtr(rotated), SigningAlg: "Standard Webhooks v1 (HMAC-SHA256)"}, nil
}

func (s *server) getEndpoint(c *gin.Context) {
	who := callerOf(c)
	var rotated time.Time
	if sec, err := s.d.Tokens.GetSigningSecrets(c, who.Org.ID); err == nil {
		rotated = sec.RotatedAt
	}
	out, err := s.endpointView(c, who.Org.ID, rotated)
	if errors.Is(err, store.ErrNotFound) {
		problem(c, http.StatusNotFound, "no_webhook_endpoint", "No webhook endpoint is registered; PUT one to receive events.")
		return
	}
	if err != nil {
		s.unavailable(c, err)
		return
	}
	c.PureJSON(http.StatusOK, out)
}

// putEndpoint registers the organisation's endpoint. The signing secret is
// made on first registration and on rotate_secret, and shown only then;
// the previous secret keeps signing (as a second signature) for a day.
func (s *server) putEndpoint(c *gin.Context) {
	who := callerOf(c)
	if !who.Admin {
		problem(c, http.StatusForbidden, "admin_required", "Only an admin key may change the organisation's webhook endpoint.")
		return
	}
	var req struct {
		URL           string `json:"url"`
		RotateSecret  bool   `json:"rotate_secret,omitempty"`
		RequeueParked bool   `json:"requeue_parked,omitempty"`
	}
	if !bind(c, &req) {
		return
	}
	u, ok := absoluteHTTP(req.URL)
	if !ok {
		problem(c, http.StatusUnprocessableEntity, "invalid_url", "url must be an absolute http(s) URL of at most 2048 characters.")
		return
	}
	switch err := outbox.CheckEndpoint(c, u, s.d.WebhooksAllowInsecure); {
	case errors.Is(err, outbox.ErrInsecureScheme):
		problem(c, http.StatusUnprocessableEntity, "insecure_url", "Events carry mail metadata: the endpoint must use https.")
		return
	case errors.Is(err, outbox.ErrPrivateAddress):
		problem(c, http.StatusUnprocessableEntity, "private_endpoint", "The endpoint's host is, or resolves to, a loopback, private or link-local address; events are delivered to public addresses only.")
		return
	}
	sec, err := s.d.Tokens.GetSigningSecrets(c, who.Org.ID)
	fresh := errors.Is(err, vault.ErrNotFound)
	if err != nil && !fresh {
		s.unavailable(c, err)
		return
	}
	var shown string
	if fresh || req.RotateSecret {
		shown = newSigningSecret()
		sec = vault.SigningSecrets{Current: shown, Previous: sec.Current, RotatedAt: time.Now().UTC()}
		// The secret is stored before the endpoint exists, so no event is
		// ever queued for an endpoint without one.
		if err := s.d.Tokens.PutSigningSecrets(c, who.Org.ID, sec); err != nil {
			s.unavailable(c, err)
			return
		}
	}
	if err := s.d.Store.PutEndpoint(c, who.Org.ID, req.URL); err != nil {
		s.unavailable(c, err)
		return
	}
	var requeued int64
	if req.RequeueParked {
		if requeued, err = s.d.Store.RequeueParked(c, who.Org.ID); err != nil {
			s.unavailable(c, err)
			return
		}
	}
	out, err := s.endpointView(c, who.Org.ID, sec.RotatedAt)
	if err != nil {
		s.unavailable(c, err)
		return
	}
	out.Secret, out.Requeued = shown, requeued
	c.PureJSON(http.StatusOK, out)
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
