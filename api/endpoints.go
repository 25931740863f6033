package api

import (
	"context"
	"errors"
	"net/http"
	"regexp"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/outlookd/outlookd/outbox"
	"github.com/outlookd/outlookd/store"
	"github.com/outlookd/outlookd/vault"
)

// maxEndpoints bounds an organisation's webhook endpoints.
const maxEndpoints = 10

// maxDescription bounds an endpoint's description.
const maxDescription = 256

var endpointIDPattern = regexp.MustCompile(`^we_[A-Za-z0-9_-]{16}$`)

// endpointJSON is a webhook endpoint as the API shows it.
type endpointJSON struct {
	ID          string    `json:"id"`
	URL         string    `json:"url"`
	Events      []string  `json:"events"`
	Description string    `json:"description,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
	Pending     int64     `json:"pending"`
	Parked      int64     `json:"parked"`
	Delivered   int64     `json:"delivered"`
	LastError   string    `json:"last_error,omitempty"`
	// RotatedAt is when the signing secret was last made (absent:
	// unknown); Secret is shown only then.
	RotatedAt  *time.Time `json:"secret_rotated_at,omitempty"`
	Secret     string     `json:"secret,omitempty"`
	Requeued   int64      `json:"requeued,omitempty"`
	SigningAlg string     `json:"signing"`
	// History says where the events from before the endpoint are.
	History historyJSON `json:"history"`
}

// historyJSON tells the app that an endpoint receives only what happens
// after it is made, and where to read the rest.
type historyJSON struct {
	// FeedCursor was the organisation's newest event when the endpoint
	// was made.
	FeedCursor string `json:"feed_cursor"`
	Detail     string `json:"detail"`
}

const historyDetail = "This endpoint receives the events recorded after it was made (feed_cursor was the newest then). " +
	"Every event, earlier ones included, is in the pull feed, which reads from any point: GET /v1/events from the beginning, " +
	"or GET /v1/events?after=<cursor> after any cursor it gave out (feed_cursor among them)."

// toEndpointJSON is an endpoint as the API shows it.
func toEndpointJSON(ep store.Endpoint, rotated time.Time) endpointJSON {
	return endpointJSON{ID: ep.ID, URL: ep.URL, Events: ep.Events, Description: ep.Description, CreatedAt: ep.CreatedAt, UpdatedAt: ep.UpdatedAt,
		Pending: ep.Pending, Parked: ep.Parked, Delivered: ep.Delivered, LastError: ep.LastError, RotatedAt: timePtr(rotated),
		SigningAlg: "Standard Webhooks v1 (HMAC-SHA256)",
		History:    historyJSON{FeedCursor: strconv.FormatInt(ep.FeedCursor, 10), Detail: historyDetail}}
}

// secretEndpoint is the endpoint ID an endpoint's secrets are filed under
// ("": its organisation's).
func secretEndpoint(ep store.Endpoint) string {
	if ep.OrgSecret {
		return ""
	}
	return ep.ID
}

// endpointView reads an endpoint as the API shows it, with when its
// signing secret was last made.
func (s *server) endpointView(ctx context.Context, ep store.Endpoint) endpointJSON {
	var rotated time.Time
	if sec, err := s.d.Tokens.GetSigningSecrets(ctx, ep.OrgID, secretEndpoint(ep)); err == nil {
		rotated = sec.RotatedAt
	}
	return toEndpointJSON(ep, rotated)
}

// endpointRequest is the body that makes or changes an endpoint; absent
// fields keep their value (or default).
type endpointRequest struct {
	URL           *string   `json:"url,omitempty"`
	Events        *[]string `json:"events,omitempty"`
	Description   *string   `json:"description,omitempty"`
	RotateSecret  bool      `json:"rotate_secret,omitempty"`
	RequeueParked bool      `json:"requeue_parked,omitempty"`
}

// checkEndpointRequest answers the problem of a request's URL, filter or
// description, and says whether to go on.
func (s *server) checkEndpointRequest(c *gin.Context, req endpointRequest) bool {
	if req.URL != nil && !s.checkEndpointURL(c, *req.URL) {
		return false
	}
	if req.Events != nil {
		if err := outbox.CheckPatterns(*req.Events); err != nil {
			problem(c, http.StatusUnprocessableEntity, "invalid_events", capitalize(err.Error())+".")
			return false
		}
	}
	if req.Description != nil && len(*req.Description) > maxDescription {
		problem(c, http.StatusUnprocessableEntity, "invalid_description", "description is longer than "+strconv.Itoa(maxDescription)+" bytes.")
		return false
	}
	return true
}

// checkEndpointURL answers the problem of an endpoint URL the API does
// not deliver to, and says whether to go on.
func (s *server) checkEndpointURL(c *gin.Context, raw string) bool {
	u, ok := absoluteHTTP(raw)
	if !ok {
		problem(c, http.StatusUnprocessableEntity, "invalid_url", "url must be an absolute http(s) URL of at most 2048 characters.")
		return false
	}
	switch err := outbox.CheckEndpoint(c, u, s.d.WebhooksAllowInsecure); {
	case errors.Is(err, outbox.ErrInsecureScheme):
		problem(c, http.StatusUnprocessableEntity, "insecure_url", "Events carry mail metadata: the endpoint must use https.")
		return false
	case errors.Is(err, outbox.ErrPrivateAddress):
		problem(c, http.StatusUnprocessableEntity, "private_endpoint", "The endpoint's host is, or resolves to, a loopback, private or link-local address; events are delivered to public addresses only.")
		return false
	}
	return true
}

// adminOnly answers 403 admin_required unless the caller holds an admin
// key, and says whether to go on.
func adminOnly(c *gin.Context) bool {
	if !callerOf(c).Admin {
		problem(c, http.StatusForbidden, "admin_required", "Only an admin key may change the organisation's webhook endpoints.")
		return false
	}
	return true
}

// endpoint loads the endpoint named in the path, of the caller's
// organisation; otherwise it answers 404.
func (s *server) endpoint(c *gin.Context) (store.Endpoint, bool) {
	id := c.Param("eid")
	notFound := func() (store.Endpoint, bool) {
		problem(c, http.StatusNotFound, "endpoint_not_found", "Your organisation has no webhook endpoint with this ID.")
		return store.Endpoint{}, false
	}
	if !endpointIDPattern.MatchString(id) {
		return notFound()
	}
	ep, err := s.d.Store.GetEndpoint(c, callerOf(c).Org.ID, id)
	if errors.Is(err, store.ErrNotFound) {
		return notFound()
	}
	if err != nil {
		s.unavailable(c, err)
		return ep, false
	}
	return ep, true
}

func (s *server) listEndpoints(c *gin.Context) {
	eps, err := s.d.Store.ListEndpoints(c, callerOf(c).Org.ID)
	if err != nil {
		s.unavailable(c, err)
		return
	}
	out := struct {
		Data []endpointJSON `json:"data"`
	}{Data: []endpointJSON{}}
	for _, ep := range eps {
		out.Data = append(out.Data, s.endpointView(c, ep))
	}
	c.PureJSON(http.StatusOK, out)
}

func (s *server) getEndpoint(c *gin.Context) {
	ep, ok := s.endpoint(c)
	if !ok {
		return
	}
	c.PureJSON(http.StatusOK, s.endpointView(c, ep))
}

// createEndpoint registers one more endpoint of the organisation (at most
// maxEndpoints), taking every event type unless events says which. Its
// own signing secret is made and stored before the endpoint exists, so no
// event is ever queued for an endpoint without one, and shown only in
// this answer.
func (s *server) createEndpoint(c *gin.Context) {
	if !adminOnly(c) {
		return
	}
	var req endpointRequest
	if !bind(c, &req) {
		return
	}
	if req.URL == nil {
		problem(c, http.StatusUnprocessableEntity, "invalid_url", "url is required: the absolute https URL events are posted to.")
		return
	}
	if req.RotateSecret || req.RequeueParked {
		problem(c, http.StatusUnprocessableEntity, "invalid_field", "rotate_secret and requeue_parked are for an endpoint that exists (PATCH it).")
		return
	}
	if !s.checkEndpointRequest(c, req) {
		return
	}
	ep, secret, ok := s.newEndpoint(c, req)
	if !ok {
		return
	}
	out := s.endpointView(c, ep)
	out.Secret = secret
	c.Header("Location", "/v1/webhook-endpoints/"+ep.ID)
	c.PureJSON(http.StatusCreated, out)
}

// newEndpoint makes an endpoint with its own secret, or answers the
// problem.
func (s *server) newEndpoint(c *gin.Context, req endpointRequest) (store.Endpoint, string, bool) {
	who := callerOf(c)
	ep := store.Endpoint{ID: "we_" + randomID(), OrgID: who.Org.ID, URL: *req.URL, Events: []string{"*"}}
	if req.Events != nil {
		ep.Events = *req.Events
	}
	if req.Description != nil {
		ep.Description = *req.Description
	}
	secret := newSigningSecret()
	if err := s.d.Tokens.PutSigningSecrets(c, who.Org.ID, ep.ID, vault.SigningSecrets{Current: secret, RotatedAt: time.Now().UTC()}); err != nil {
		s.unavailable(c, err)
		return ep, "", false
	}
	made, err := s.d.Store.CreateEndpoint(c, ep, maxEndpoints)
	if err != nil {
		if derr := s.d.Tokens.DeleteSigningSecrets(context.WithoutCancel(c), who.Org.ID, ep.ID); derr != nil {
			s.d.Logger.Warn("removing an unused signing secret", "endpoint", ep.ID, "err", derr)
		}
	}
	if errors.Is(err, store.ErrTooManyEndpoints) {
		problem(c, http.StatusConflict, "too_many_endpoints", "Your organisation has "+strconv.Itoa(maxEndpoints)+" webhook endpoints, as many as it may; delete one, or widen one's events.")
		return ep, "", false
	}
	if err != nil {
		s.unavailable(c, err)
		return ep, "", false
	}
	return made, secret, true
}

// patchEndpoint changes an endpoint: its URL, events or description; with
// rotate_secret it gets a new signing secret (shown only in this answer;
// the previous one still signs, as a second signature, for a day); with
// requeue_parked its parked deliveries are retried.
func (s *server) patchEndpoint(c *gin.Context) {
	if !adminOnly(c) {
		return
	}
	ep, ok := s.endpoint(c)
	if !ok {
		return
	}
	var req endpointRequest
	if !bind(c, &req) || !s.checkEndpointRequest(c, req) {
		return
	}
	s.changeEndpoint(c, ep, req, http.StatusOK)
}

// changeEndpoint applies a checked request to an endpoint and answers it.
func (s *server) changeEndpoint(c *gin.Context, ep store.Endpoint, req endpointRequest, status int) {
	ch := store.EndpointChange{URL: req.URL, Description: req.Description}
	if req.Events != nil {
		ch.Events = *req.Events
	}
	var shown string
	if req.RotateSecret {
		var ok bool
		if shown, ok = s.rotateSecret(c, ep); !ok {
			return
		}
		ch.OwnSecret = true
	}
	if err := s.d.Store.UpdateEndpoint(c, ep.OrgID, ep.ID, ch); err != nil {
		s.unavailable(c, err)
		return
	}
	var requeued int64
	if req.RequeueParked {
		var err error
		if requeued, err = s.d.Store.RequeueParked(c, ep.OrgID, ep.ID); err != nil {
			s.unavailable(c, err)
			return
		}
	}
	ep, err := s.d.Store.GetEndpoint(c, ep.OrgID, ep.ID)
	if err != nil {
		s.unavailable(c, err)
		return
	}
	out := s.endpointView(c, ep)
	out.Secret, out.Requeued = shown, requeued
	c.PureJSON(status, out)
}

// rotateSecret makes an endpoint a new secret of its own, keeping its
// current one (its organisation's, for an endpoint that signed with it) as
// the previous one.
func (s *server) rotateSecret(c *gin.Context, ep store.Endpoint) (string, bool) {
	sec, err := s.d.Tokens.GetSigningSecrets(c, ep.OrgID, secretEndpoint(ep))
	if err != nil && !errors.Is(err, vault.ErrNotFound) {
		s.unavailable(c, err)
		return "", false
	}
	shown := newSigningSecret()
	next := vault.SigningSecrets{Current: shown, Previous: sec.Current, RotatedAt: time.Now().UTC()}
	if err := s.d.Tokens.PutSigningSecrets(c, ep.OrgID, ep.ID, next); err != nil {
		s.unavailable(c, err)
		return "", false
	}
	return shown, true
}

// deleteEndpoint removes an endpoint with its deliveries, pending ones
// included; the events stay in the feed.
func (s *server) deleteEndpoint(c *gin.Context) {
	if !adminOnly(c) {
		return
	}
	ep, ok := s.endpoint(c)
	if !ok {
		return
	}
	if err := s.d.Store.DeleteEndpoint(c, ep.OrgID, ep.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
		s.unavailable(c, err)
		return
	}
	if err := s.d.Tokens.DeleteSigningSecrets(c, ep.OrgID, secretEndpoint(ep)); err != nil {
		s.d.Logger.Warn("removing a deleted endpoint's signing secret", "endpoint", ep.ID, "err", err)
	}
	c.Status(http.StatusNoContent)
}

// deliveryJSON is how one delivery to an endpoint stands.
type deliveryJSON struct {
	// ID is the delivery's event ID, sent as webhook-id.
	ID          string        `json:"id"`
	EndpointID  string        `json:"endpoint_id"`
	State       string        `json:"state"`
	Attempts    int           `json:"attempts"`
	LastError   string        `json:"last_error,omitempty"`
	DeliveredAt *time.Time    `json:"delivered_at,omitempty"`
	Event       *outbox.Event `json:"event,omitempty"`
}

// testEndpoint queues a test event for one endpoint, through the outbox:
// signed, retried and parked like any other, whatever the endpoint's
// filter. It answers 202 with the delivery's ID (the webhook-id the
// endpoint receives) and where to follow it.
func (s *server) testEndpoint(c *gin.Context) {
	if !adminOnly(c) {
		return
	}
	ep, ok := s.endpoint(c)
	if !ok {
		return
	}
	id := "evt_test_" + randomID()
	ev, err := s.d.Store.QueueTest(c, ep.OrgID, ep.ID, id, map[string]any{"endpoint_id": ep.ID, "message": "A test delivery requested through the API."})
	if errors.Is(err, store.ErrNotFound) {
		problem(c, http.StatusNotFound, "endpoint_not_found", "Your organisation has no webhook endpoint with this ID.")
		return
	}
	if err != nil {
		s.unavailable(c, err)
		return
	}
	v := outbox.View(ev)
	v.Cursor = "" // not in the feed
	c.Header("Location", "/v1/webhook-endpoints/"+ep.ID+"/deliveries/"+id)
	c.PureJSON(http.StatusAccepted, deliveryJSON{ID: id, EndpointID: ep.ID, State: "pending", Event: &v})
}

var deliveryIDPattern = regexp.MustCompile(`^[A-Za-z0-9_:.@-]{1,512}$`)

// getDelivery shows how the delivery of one event to an endpoint stands.
func (s *server) getDelivery(c *gin.Context) {
	ep, ok := s.endpoint(c)
	if !ok {
		return
	}
	id := c.Param("did")
	notFound := func() {
		problem(c, http.StatusNotFound, "delivery_not_found", "This endpoint has no delivery of an event with this ID.")
	}
	if !deliveryIDPattern.MatchString(id) {
		notFound()
		return
	}
	d, err := s.d.Store.GetDelivery(c, ep.OrgID, ep.ID, id)
	if errors.Is(err, store.ErrNotFound) {
		notFound()
		return
	}
	if err != nil {
		s.unavailable(c, err)
		return
	}
	c.PureJSON(http.StatusOK, deliveryJSON{ID: id, EndpointID: ep.ID, State: d.State, Attempts: d.Attempts, LastError: d.LastError, DeliveredAt: d.DeliveredAt})
}

// putOrgEndpoint is the route of the time an organisation had one
// endpoint, kept working while it has at most one: it registers the
// endpoint (every event type) or changes the one there is; an organisation
// with several manages them by ID (409 several_endpoints).
func (s *server) putOrgEndpoint(c *gin.Context) {
	if !adminOnly(c) {
		return
	}
	var req struct {
		URL           string `json:"url"`
		RotateSecret  bool   `json:"rotate_secret,omitempty"`
		RequeueParked bool   `json:"requeue_parked,omitempty"`
	}
	if !bind(c, &req) || !s.checkEndpointURL(c, req.URL) {
		return
	}
	eps, err := s.d.Store.ListEndpoints(c, callerOf(c).Org.ID)
	if err != nil {
		s.unavailable(c, err)
		return
	}
	switch len(eps) {
	case 0:
		ep, secret, ok := s.newEndpoint(c, endpointRequest{URL: &req.URL})
		if !ok {
			return
		}
		out := s.endpointView(c, ep)
		out.Secret = secret
		c.PureJSON(http.StatusOK, out)
	case 1:
		s.changeEndpoint(c, eps[0], endpointRequest{URL: &req.URL, RotateSecret: req.RotateSecret, RequeueParked: req.RequeueParked}, http.StatusOK)
	default:
		problem(c, http.StatusConflict, "several_endpoints", "Your organisation has "+strconv.Itoa(len(eps))+" webhook endpoints; change one by its ID (PATCH /v1/webhook-endpoints/{id}).")
	}
}
