package graphsim

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Subscription is a Graph change-notification subscription (docs/graph.md#change-notifications).
type Subscription struct {
	ID              string    `json:"id"`
	Resource        string    `json:"resource"`
	ChangeType      string    `json:"changeType"`
	NotificationURL string    `json:"notificationUrl"`
	LifecycleURL    string    `json:"lifecycleNotificationUrl,omitempty"`
	ClientState     string    `json:"clientState,omitempty"`
	Expiration      time.Time `json:"expirationDateTime"`
	AppID           string    `json:"applicationId"`
	CreatorID       string    `json:"creatorId"`
	TenantID        string    `json:"tenantId"`
	// UserID and FolderID are the mailbox (and folder, for a folder
	// subscription) the resource names.
	UserID    string `json:"userId"`
	FolderID  string `json:"folderId,omitempty"`
	Immutable bool   `json:"immutableIds"`
	// NeedsReauth is set when the creator's access changed; notifications
	// are held back (and reported missed) until the app reauthorizes.
	NeedsReauth bool `json:"needsReauthorization"`

	changeTypes map[string]bool
	delegated   bool
	warnedFor   time.Time // the expiration a reauthorizationRequired was sent for
	missed      bool      // changes were not notified while blocked
}

func (sub *Subscription) json(base string) map[string]any {
	nilIf := func(s string) any {
		if s == "" {
			return nil
		}
		return s
	}
	return map[string]any{
		"@odata.context":            base + "/v1.0/$metadata#subscriptions/$entity",
		"id":                        sub.ID,
		"resource":                  sub.Resource,
		"applicationId":             sub.AppID,
		"changeType":                sub.ChangeType,
		"clientState":               nilIf(sub.ClientState),
		"notificationUrl":           sub.NotificationURL,
		"notificationQueryOptions":  nil,
		"notificationContentType":   nil,
		"lifecycleNotificationUrl":  nilIf(sub.LifecycleURL),
		"expirationDateTime":        sub.Expiration.UTC().Format("2006-01-02T15:04:05.0000000Z"),
		"creatorId":                 sub.CreatorID,
		"includeResourceData":       nil,
		"latestSupportedTlsVersion": "v1_2",
		"encryptionCertificate":     nil,
		"encryptionCertificateId":   nil,
		"notificationUrlAppId":      nil,
	}
}

// subscriptionResource matches the mail resources Outlook supports
// (docs/graph.md#creating-a-subscription): me|users/{id} followed by messages or a folder's messages.
var subscriptionResource = regexp.MustCompile(`(?i)^/?(me|users/([^/]+))/(messages|mail[fF]olders(?:\('([^']+)'\)|/([^/]+))/messages)/?(\?.*)?$`)

// subscriptionRequest is the body of a create or renew request.
type subscriptionRequest struct {
	ChangeType               string `json:"changeType"`
	NotificationURL          string `json:"notificationUrl"`
	LifecycleNotificationURL string `json:"lifecycleNotificationUrl"`
	Resource                 string `json:"resource"`
	ExpirationDateTime       string `json:"expirationDateTime"`
	ClientState              string `json:"clientState"`
	LatestSupportedTLS       string `json:"latestSupportedTlsVersion"`
	IncludeResourceData      bool   `json:"includeResourceData"`
}

// serveSubscriptions serves /subscriptions and /subscriptions/{id}[/reauthorize].
func (s *Sim) serveSubscriptions(g *graphRequest) {
	if s.subscriptionsThrottled(g) {
		return
	}
	n := g.nodes
	switch {
	case len(n) == 1 && !n[0].keyed && g.r.Method == http.MethodPost:
		s.createSubscription(g)
	case len(n) == 1 && !n[0].keyed && g.r.Method == http.MethodGet:
		s.listSubscriptions(g)
	case len(n) == 1 && n[0].keyed && g.r.Method == http.MethodGet:
		s.withSubscription(g, n[0].key, func(sub *Subscription) { writeJSON(g.w, http.StatusOK, sub.json(s.URL())) })
	case len(n) == 1 && n[0].keyed && g.r.Method == http.MethodPatch:
		s.renewSubscription(g, n[0].key)
	case len(n) == 1 && n[0].keyed && g.r.Method == http.MethodDelete:
		s.withSubscription(g, n[0].key, func(sub *Subscription) {
			delete(s.subs, sub.ID)
			s.stats.add("subscriptions.deleted", 1)
			g.w.WriteHeader(http.StatusNoContent)
		})
	case len(n) == 2 && n[0].keyed && n[1].name == "reauthorize" && g.r.Method == http.MethodPost:
		s.withSubscription(g, n[0].key, func(sub *Subscription) {
			if e := s.mayAccessForSubscription(g.p, sub); e != "" {
				graphError(g.w, g.r, http.StatusForbidden, "ExtensionError", e)
				return
			}
			s.reauthorized(sub)
			g.w.WriteHeader(http.StatusNoContent)
		})
	default:
		graphError(g.w, g.r, http.StatusMethodNotAllowed, "Request_BadRequest", "The requested method is not supported by this resource.")
	}
}

// withSubscription runs fn on a live subscription of the caller's app (404
// for others, expired or removed ones: docs/graph.md#renewing-and-deleting).
func (s *Sim) withSubscription(g *graphRequest, id string, fn func(*Subscription)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sub := s.subs[id]
	if sub == nil || sub.AppID != g.p.appID || !s.clock.Now().Before(sub.Expiration) {
		graphError(g.w, g.r, http.StatusNotFound, "ResourceNotFound", "The object was not found.")
		return
	}
	fn(sub)
}

func (s *Sim) listSubscriptions(g *graphRequest) {
	s.mu.RLock()
	now := s.clock.Now()
	var out []any
	for _, sub := range s.subs {
		if sub.AppID == g.p.appID && now.Before(sub.Expiration) && (!g.p.delegated() || sub.CreatorID == g.p.user.ID) {
			out = append(out, sub.json(s.URL()))
		}
	}
	s.mu.RUnlock()
	slices.SortFunc(out, func(a, b any) int {
		return strings.Compare(a.(map[string]any)["id"].(string), b.(map[string]any)["id"].(string))
	})
	if out == nil {
		out = []any{}
	}
	writeJSON(g.w, http.StatusOK, map[string]any{"@odata.context": s.URL() + "/v1.0/$metadata#subscriptions", "value": out})
}

// expiration checks a requested expiration against Graph's rules.
func (s *Sim) expiration(raw string, now time.Time) (time.Time, string) {
	exp, err := time.Parse(time.RFC3339Nano, raw)
	if err != nil {
		return time.Time{}, "expirationDateTime is not a valid date and time: '" + raw + "'."
	}
	o := s.opts.Subscriptions
	if exp.After(now.Add(o.MaxLifetime)) {
		// Over the limit is refused, not clamped (docs/graph.md#subscription-lifetime).
		return time.Time{}, fmt.Sprintf("Subscription expiration can only be %d minutes in the future.", int(o.MaxLifetime/time.Minute))
	}
	if !exp.After(now) {
		return time.Time{}, "Subscription expiration must be in the future."
	}
	if exp.Before(now.Add(o.MinLifetime)) {
		exp = now.Add(o.MinLifetime)
	}
	return exp, ""
}

func (s *Sim) createSubscription(g *graphRequest) {
	var req subscriptionRequest
	if err := json.NewDecoder(io.LimitReader(g.r.Body, 1<<20)).Decode(&req); err != nil {
		errBadRequest(g.w, g.r, "The request body is not valid JSON.")
		return
	}
	now := s.clock.Now()
	bad := func(code, msg string) { graphError(g.w, g.r, http.StatusBadRequest, code, msg) }
	var kinds []string
	for k := range strings.SplitSeq(req.ChangeType, ",") {
		k = strings.ToLower(strings.TrimSpace(k))
		if k != "created" && k != "updated" && k != "deleted" {
			bad("ValidationError", "changeType '"+req.ChangeType+"' is not valid; use created, updated and/or deleted.")
			return
		}
		kinds = append(kinds, k)
	}
	m := subscriptionResource.FindStringSubmatch(req.Resource)
	if m == nil {
		bad("ExtensionError", "Operation: Create; Exception: [Status Code: BadRequest; Reason: The resource '"+req.Resource+"' is not supported for subscriptions.]")
		return
	}
	for _, u := range []struct{ name, url string }{{"NotificationUrl", req.NotificationURL}, {"LifecycleNotificationUrl", req.LifecycleNotificationURL}} {
		if u.url == "" {
			continue
		}
		if code, msg := s.checkNotificationURL(u.name, u.url); code != "" {
			bad(code, msg)
			return
		}
	}
	if req.NotificationURL == "" {
		bad("ValidationError", "notificationUrl is required.")
		return
	}
	if len(req.ClientState) > 128 {
		bad("ValidationError", "clientState cannot be longer than 128 characters.")
		return
	}
	exp, msg := s.expiration(req.ExpirationDateTime, now)
	if msg != "" {
		bad("ExtensionError", msg)
		return
	}
	// A lifecycleNotificationUrl is optional for Outlook mail at any
	// lifetime: Graph requires it only of Teams resources living over an
	// hour (docs/graph.md#lifecycle-notifications).

	// Resolve the mailbox and folder, and check the caller may watch it.
	s.mu.RLock()
	target := g.p.user
	if !strings.EqualFold(m[1], "me") {
		target = s.user(m[2])
	} else if !g.p.delegated() {
		s.mu.RUnlock()
		errBadRequest(g.w, g.r, "/me request is only valid with delegated authentication flow.")
		return
	}
	sub := &Subscription{
		ID: newGUID(), Resource: req.Resource, ChangeType: strings.Join(kinds, ","), NotificationURL: req.NotificationURL,
		LifecycleURL: req.LifecycleNotificationURL, ClientState: req.ClientState, Expiration: exp, AppID: g.p.appID,
		TenantID: g.p.tenantID, changeTypes: setOfStrings(kinds), delegated: g.p.delegated(),
	}
	if g.p.delegated() {
		sub.CreatorID = g.p.user.ID
	} else {
		sub.CreatorID = g.p.appID
	}
	sub.Immutable, _, _ = prefs(g.r)
	errMsg := ""
	switch {
	case target == nil || target.TenantID != g.p.tenantID:
		errMsg = "notfound"
	case target.mailbox == nil:
		errMsg = "nomailbox"
	default:
		sub.UserID = target.ID
		if folder := m[4] + m[5]; folder != "" {
			f := target.mailbox.folder(folder)
			if f == nil {
				errMsg = "nofolder"
			} else {
				sub.FolderID = f.ID
			}
		}
		if e := s.mayAccessForSubscription(g.p, sub); e != "" && errMsg == "" {
			errMsg = e
		}
	}
	s.mu.RUnlock()
	switch errMsg {
	case "":
	case "notfound":
		graphError(g.w, g.r, http.StatusNotFound, "ExtensionError", "Operation: Create; Exception: [Status Code: NotFound; Reason: The user or mailbox '"+m[2]+"' was not found.]")
		return
	case "nomailbox":
		graphError(g.w, g.r, http.StatusNotFound, "MailboxNotEnabledForRESTAPI", "The mailbox is either inactive, soft-deleted, or is hosted on-premise.")
		return
	case "nofolder":
		graphError(g.w, g.r, http.StatusNotFound, "ExtensionError", "Operation: Create; Exception: [Status Code: NotFound; Reason: The folder was not found.]")
		return
	default:
		graphError(g.w, g.r, http.StatusForbidden, "ExtensionError", errMsg)
		return
	}

	// The validation handshake happens before the answer, outside the lock
	// (docs/graph.md#validation-handshake), on both URLs.
	for _, u := range []string{sub.NotificationURL, sub.LifecycleURL} {
		if u == "" {
			continue
		}
		if code, msg := s.validateEndpoint(g.r.Context(), u); code != "" {
			s.stats.add("subscriptions.validation_failed", 1)
			bad(code, msg)
			return
		}
	}
	s.mu.Lock()
	count := 0
	for _, other := range s.subs {
		if other.UserID == sub.UserID && now.Before(other.Expiration) {
			count++
		}
	}
	if count >= s.opts.Subscriptions.PerMailbox || s.users[sub.UserID].SubscriptionsFull {
		s.mu.Unlock()
		graphError(g.w, g.r, http.StatusForbidden, "ExtensionError", "Operation: Create; Exception: [Status Code: Forbidden; Reason: Maximum number of subscriptions has been reached]")
		return
	}
	s.subs[sub.ID] = sub
	s.remember(sub.ClientState)
	body := sub.json(s.URL())
	s.mu.Unlock()
	s.stats.add("subscriptions.created", 1)
	writeJSON(g.w, http.StatusCreated, body)
}

// checkNotificationURL refuses a URL Graph would not post to: not an
// absolute URL, or not https (docs/graph.md#creating-a-subscription),
// unless the simulator was told to accept http for local receivers.
func (s *Sim) checkNotificationURL(name, raw string) (code, msg string) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return "InvalidRequest", "Invalid notification url='" + raw + "'."
	}
	if u.Scheme == "http" && !s.opts.Subscriptions.InsecureHTTPNotificationURLs {
		return "InvalidRequest", name + " scheme='http' is not supported."
	}
	return "", ""
}

// mayAccessForSubscription applies the permission rules of mail
// subscriptions (docs/graph.md#creating-a-subscription): read access to the mailbox; delegated tokens
// only on the signed-in user's own mailbox (.Shared is not supported). A
// delegated subscription on another mailbox is refused, never accepted
// and left silent (docs/graph.md#subscriptions-on-shared-mailboxes); the
// refusals are counted so that tests can prove none was attempted.
func (s *Sim) mayAccessForSubscription(p *principal, sub *Subscription) string {
	if p.delegated() {
		if sub.UserID != p.user.ID {
			s.stats.add("subscriptions.delegated_other_mailbox_refused", 1)
			return "Operation: Create; Exception: [Status Code: Forbidden; Reason: Delegated permission supports subscribing to items in folders in only the signed-in user's mailbox.]"
		}
		if !p.has("Mail.ReadBasic", "Mail.Read", "Mail.ReadWrite") {
			return "Operation: Create; Exception: [Status Code: Forbidden; Reason: Access is denied. Check credentials and try again.]"
		}
		return ""
	}
	if !p.has("Mail.ReadBasic.All", "Mail.Read", "Mail.ReadWrite") {
		return "Operation: Create; Exception: [Status Code: Forbidden; Reason: Access is denied. Check credentials and try again.]"
	}
	if s.policyBlocks(p, s.users[sub.UserID]) {
		// docs/graph.md#application-access-policies
		return "Operation: Create; Exception: [Status Code: Forbidden; Reason: " + errPolicyDenied + "]"
	}
	return ""
}

// validateEndpoint runs the handshake (docs/graph.md#validation-handshake):
// POST ?validationToken=..., expecting 200 with Content-Type text/plain and
// the decoded token as the body, within the budget (10 s).
func (s *Sim) validateEndpoint(ctx context.Context, endpoint string) (code, msg string) {
	token := "Validation: Testing client application reachability for subscription Request-Id: " + newGUID()
	u, _ := url.Parse(endpoint)
	q := u.Query()
	q.Set("validationToken", token)
	u.RawQuery = q.Encode()
	ctx, cancel := context.WithTimeout(ctx, s.opts.Subscriptions.ValidationTimeout)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), nil)
	req.Header.Set("Content-Type", "text/plain; charset=utf-8")
	resp, err := s.delivery.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return "InvalidRequest", "Subscription validation request timed out."
		}
		return "ValidationError", "Subscription validation request failed. Notification endpoint must respond with 200 OK to validation request."
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return "ValidationError", "Subscription validation request failed. Notification endpoint must respond with 200 OK to validation request."
	}
	if mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type")); err != nil || mt != "text/plain" {
		// Graph's text for this case is not reported; its generic one.
		return "ValidationError", "Subscription validation request failed. Notification endpoint must respond with 200 OK to validation request."
	}
	if string(body) != token {
		return "ValidationError", "Subscription validation request failed. Response must exactly match validationToken query parameter."
	}
	return "", ""
}

// renewSubscription serves PATCH: a new expiration, which also
// reauthorizes (docs/graph.md#renewing-and-deleting).
func (s *Sim) renewSubscription(g *graphRequest, id string) {
	var req subscriptionRequest
	if err := json.NewDecoder(io.LimitReader(g.r.Body, 1<<20)).Decode(&req); err != nil {
		errBadRequest(g.w, g.r, "The request body is not valid JSON.")
		return
	}
	s.withSubscription(g, id, func(sub *Subscription) {
		if req.LifecycleNotificationURL != "" && req.LifecycleNotificationURL != sub.LifecycleURL {
			graphError(g.w, g.r, http.StatusBadRequest, "ValidationError", "lifecycleNotificationUrl cannot be changed; delete the subscription and create a new one.")
			return
		}
		if e := s.mayAccessForSubscription(g.p, sub); e != "" {
			graphError(g.w, g.r, http.StatusForbidden, "ExtensionError", e)
			return
		}
		exp, msg := s.expiration(req.ExpirationDateTime, s.clock.Now())
		if msg != "" {
			graphError(g.w, g.r, http.StatusBadRequest, "ExtensionError", msg)
			return
		}
		sub.Expiration = exp
		s.reauthorized(sub)
		s.stats.add("subscriptions.renewed", 1)
		writeJSON(g.w, http.StatusOK, sub.json(s.URL()))
	})
}

// reauthorized clears a reauthorization hold; if changes went unnotified
// meanwhile, the app is told with a missed event. Caller holds s.mu.
func (s *Sim) reauthorized(sub *Subscription) {
	sub.NeedsReauth = false
	if sub.missed {
		sub.missed = false
		s.delivery.lifecycle(sub, "missed")
	}
}

func setOfStrings(items []string) map[string]bool {
	m := make(map[string]bool, len(items))
	for _, i := range items {
		m[i] = true
	}
	return m
}
