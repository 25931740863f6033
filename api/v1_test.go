package api_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	sdkpb "go.temporal.io/api/sdk/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	tlog "go.temporal.io/sdk/log"

	"github.com/outlookd/outlookd/activities"
	"github.com/outlookd/outlookd/api"
	"github.com/outlookd/outlookd/apikey"
	"github.com/outlookd/outlookd/graphsim"
	"github.com/outlookd/outlookd/graphsim/simtest"
	"github.com/outlookd/outlookd/internal/enginetest"
	"github.com/outlookd/outlookd/internal/testenv"
	"github.com/outlookd/outlookd/mailreader"
	"github.com/outlookd/outlookd/outbox"
	"github.com/outlookd/outlookd/store"
	"github.com/outlookd/outlookd/workflows"
)

// harness is the API over a whole in-process engine (real Temporal, Vault,
// Postgres; graphsim for Microsoft), with two organisations and their keys.
type harness struct {
	e   *enginetest.Engine
	url string
	// acme: member key (one connection per user), admin key; globex: key.
	acme, acmeAdmin, globex string
}

// harnessOption changes how newHarness builds the API.
type harnessOption func(*api.Deps)

// insecureWebhooks lets the organisations register http endpoints on
// loopback (OUTLOOKD_WEBHOOKS_ALLOW_INSECURE), as the tests that deliver
// to an httptest server need.
func insecureWebhooks(d *api.Deps) { d.WebhooksAllowInsecure = true }

func newHarness(t *testing.T, simOpts graphsim.Options, opts ...harnessOption) *harness {
	t.Helper()
	return newEngineHarness(t, simOpts, nil, opts...)
}

// newEngineHarness is newHarness with options for the engine.
func newEngineHarness(t *testing.T, simOpts graphsim.Options, engine []enginetest.Option, opts ...harnessOption) *harness {
	t.Helper()
	if simOpts.Subscriptions.BatchWindow == 0 {
		simOpts.Subscriptions.BatchWindow = 5 * time.Millisecond
	}
	e := enginetest.StartLive(t, simOpts, workflows.Options{PageSize: 50, ReconcileEvery: time.Hour}, engine...)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	deps := api.Deps{Logger: log, Store: e.Store, Temporal: e.Temporal, Connect: e.Connect, Tokens: e.Vault.Tokens(),
		Receiver: e.Receiver, Mail: mailreader.Reader{A: e.Acts}, Drafts: activities.Drafts{A: e.Acts}, RateLimit: 1000, RateBurst: 1000}
	for _, o := range opts {
		o(&deps)
	}
	router := api.NewRouter(deps)
	srv := httptest.NewServer(router)
	t.Cleanup(srv.Close)
	callback := srv.URL + "/v1/oauth/callback"
	if err := e.Sim.AddRedirectURI(e.App.ClientID, callback); err != nil {
		t.Fatal(err)
	}
	e.Connect.Identity.RedirectURL = callback
	e.Acts.Identity.RedirectURL = callback
	adminCallback := srv.URL + "/v1/oauth/admin-callback"
	if err := e.Sim.AddRedirectURI(e.App.ClientID, adminCallback); err != nil {
		t.Fatal(err)
	}
	e.Connect.Identity.AdminRedirectURL = adminCallback
	h := &harness{e: e, url: srv.URL}
	ctx := context.Background()
	// Organisation IDs are unique per test: the registry is shared.
	suffix := strings.ToLower(strings.ReplaceAll(e.TaskQueue, "outlookd-test-", ""))
	for _, k := range []struct {
		dst   *string
		org   string
		admin bool
	}{{&h.acme, "acme-" + suffix, false}, {&h.acmeAdmin, "acme-" + suffix, true}, {&h.globex, "globex-" + suffix, false}} {
		if _, err := e.Store.UpsertOrg(ctx, k.org, k.org, 0); err != nil {
			t.Fatal(err)
		}
		key, id, hash := apikey.New()
		if err := e.Store.InsertAPIKey(ctx, store.APIKey{ID: id, OrgID: k.org, SecretHash: hash, Admin: k.admin}); err != nil {
			t.Fatal(err)
		}
		*k.dst = key
	}
	return h
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

// code is the problem code of an error response.
func (r response) code() string {
	var p api.Problem
	_ = json.Unmarshal(r.body, &p)
	return p.Code
}

// call sends a request with a key and an acting user; body may be a
// string (sent as is) or a value (sent as JSON).
func (h *harness) call(t *testing.T, method, path, key, user string, body any) response {
	t.Helper()
	return h.callWith(t, method, path, key, user, body)
}

// callWith is call with extra header pairs.
func (h *harness) callWith(t *testing.T, method, path, key, user string, body any, headers ...string) response {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		raw, _ := json.Marshal(b)
		rd = bytes.NewReader(raw)
	}
	req, _ := http.NewRequest(method, h.url+path, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if user != "" {
		req.Header.Set(api.UserHeader, user)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := simtest.NoRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 400 && resp.Header.Get("Content-Type") != "application/problem+json" && !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Errorf("%s %s: %d with content type %q", method, path, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if resp.Header.Get("Content-Type") == "application/problem+json" {
		var p api.Problem
		if err := json.Unmarshal(raw, &p); err != nil || p.Status != resp.StatusCode || p.Title != http.StatusText(resp.StatusCode) || p.Code == "" {
			t.Errorf("%s %s: %d answered the problem %s", method, path, resp.StatusCode, raw)
		}
	}
	return response{status: resp.StatusCode, header: resp.Header, body: raw}
}

type conn struct {
	ID           string `json:"id"`
	Owner        string `json:"owner"`
	Visibility   string `json:"visibility"`
	State        string `json:"state"`
	SyncMode     string `json:"sync_mode"`
	Reason       string `json:"reason"`
	Mailbox      string `json:"mailbox"`
	MessageCount int64  `json:"message_count"`
	NextAction   string `json:"next_action"`
	Source       string `json:"source"`
	AuthorizeURL string `json:"authorize_url"`
	Settings     struct {
		BackfillDays int    `json:"backfill_days"`
		Retention    string `json:"retention"`
		PollMinutes  int    `json:"poll_minutes"`
		Storage      struct {
			Bodies string `json:"bodies"`
		} `json:"storage"`
	} `json:"settings"`
	Backfill *struct {
		Running     bool    `json:"running"`
		CompletedAt *string `json:"completed_at"`
	} `json:"backfill"`
}

// consent follows an authorize URL through graphsim (automatic consent)
// to the API's callback, and returns the callback's answer.
func (h *harness) consent(t *testing.T, authURL string) response {
	t.Helper()
	return h.call(t, "GET", "/v1/oauth/callback?"+h.callbackQuery(t, authURL), "", "", nil)
}

// callbackQuery follows an authorize URL through graphsim and answers the
// query (state and code) it sends the user back to the callback with.
func (h *harness) callbackQuery(t *testing.T, authURL string) string {
	t.Helper()
	resp, err := simtest.NoRedirect.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if !strings.HasPrefix(loc, h.url+"/v1/oauth/callback") {
		t.Fatalf("authorize redirected to %q", loc)
	}
	u, _ := url.Parse(loc)
	return u.RawQuery
}

// waitConn polls a connection until cond holds.
func (h *harness) waitConn(t *testing.T, id, key, user, what string, cond func(conn) bool) conn {
	t.Helper()
	var c conn
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		r := h.call(t, "GET", "/v1/connections/"+id, key, user, nil)
		if r.status == 200 {
			r.json(t, &c)
			if cond(c) {
				return c
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: never happened; last %d %s", what, r.status, r.body)
		}
	}
}

func TestAuthentication(t *testing.T) {
	h := newHarness(t, graphsim.Options{})
	revoked, id, hash := apikey.New()
	ctx := context.Background()
	org := strings.TrimPrefix(h.e.TaskQueue, "outlookd-test-")
	if err := h.e.Store.InsertAPIKey(ctx, store.APIKey{ID: id, OrgID: "acme-" + org, SecretHash: hash}); err != nil {
		t.Fatal(err)
	}
	if err := h.e.Store.RevokeAPIKey(ctx, id); err != nil {
		t.Fatal(err)
	}
	unknown, _, _ := apikey.New()
	wrongSecret := h.acme[:len(h.acme)-3] + "abc"
	for _, tc := range []struct {
		name, key, user string
		status          int
		code            string
	}{
		{"no key", "", "u1", 401, "unauthenticated"},
		{"malformed key", "olk_nope", "u1", 401, "invalid_api_key"},
		{"unknown key", unknown, "u1", 401, "invalid_api_key"},
		{"wrong secret", wrongSecret, "u1", 401, "invalid_api_key"},
		{"revoked key", revoked, "u1", 401, "invalid_api_key"},
		{"no acting user", h.acme, "", 400, "user_required"},
		{"long acting user", h.acme, strings.Repeat("u", 300), 400, "invalid_user"},
		{"member key", h.acme, "u1", 200, ""},
		{"admin key without a user", h.acmeAdmin, "", 200, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := h.call(t, "GET", "/v1/connections", tc.key, tc.user, nil)
			if r.status != tc.status || (tc.code != "" && r.code() != tc.code) {
				t.Errorf("%d %s, want %d %s", r.status, r.body, tc.status, tc.code)
			}
		})
	}

	// A slow key: one request a second, no burst beyond it.
	slow := api.NewRouter(api.Deps{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Store: h.e.Store, Temporal: h.e.Temporal,
		Connect: h.e.Connect, Tokens: h.e.Vault.Tokens(), RateLimit: 1, RateBurst: 1})
	srv := httptest.NewServer(slow)
	defer srv.Close()
	var last *http.Response
	for range 3 {
		req, _ := http.NewRequest("GET", srv.URL+"/v1/connections", nil)
		req.Header.Set("Authorization", "Bearer "+h.acme)
		req.Header.Set(api.UserHeader, "u1")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		last = resp
	}
	if last.StatusCode != 429 || last.Header.Get("Retry-After") == "" {
		t.Errorf("third request in a second: %d, Retry-After %q", last.StatusCode, last.Header.Get("Retry-After"))
	}
}

func TestRequestValidation(t *testing.T) {
	h := newHarness(t, graphsim.Options{})
	for _, tc := range []struct {
		name   string
		method string
		path   string
		ctype  string
		body   string
		status int
		code   string
	}{
		{"wrong content type", "POST", "/v1/connections", "text/plain", `{}`, 415, "unsupported_media_type"},
		{"no body", "POST", "/v1/connections", "application/json", ``, 400, "empty_body"},
		{"not JSON", "POST", "/v1/connections", "application/json", `{"owner":`, 400, "invalid_json"},
		{"two values", "POST", "/v1/connections", "application/json", `{} {}`, 400, "invalid_json"},
		{"an array", "POST", "/v1/connections", "application/json", `[]`, 400, "invalid_json"},
		{"unknown field", "POST", "/v1/connections", "application/json", `{"colour":"blue"}`, 400, "unknown_field"},
		{"wrong type", "POST", "/v1/connections", "application/json", `{"backfill_days":"thirty"}`, 400, "invalid_field"},
		{"oversize", "POST", "/v1/connections", "application/json", `{"owner":"` + strings.Repeat("x", 70<<10) + `"}`, 413, "body_too_large"},
		{"bad visibility", "POST", "/v1/connections", "application/json", `{"visibility":"public"}`, 422, "invalid_visibility"},
		{"bad window", "POST", "/v1/connections", "application/json", `{"backfill_days":5000}`, 422, "invalid_settings"},
		{"bad bodies policy", "POST", "/v1/connections", "application/json", `{"storage":{"bodies":"sometimes"}}`, 422, "invalid_settings"},
		{"bad retention", "POST", "/v1/connections", "application/json", `{"retention":"forever"}`, 422, "invalid_settings"},
		{"no features", "POST", "/v1/connections", "application/json", `{"features":{"read":false,"send":false}}`, 422, "invalid_features"},
		{"bad return URL", "POST", "/v1/connections", "application/json", `{"return_url":"javascript:alert(1)"}`, 422, "invalid_return_url"},
		{"login hint not an address", "POST", "/v1/connections", "application/json", `{"login_hint":"adele at contoso"}`, 422, "invalid_login_hint"},
		{"login hint of two addresses", "POST", "/v1/connections", "application/json", `{"login_hint":"adele@contoso.example, megan@contoso.example"}`, 422, "invalid_login_hint"},
		{"login hint with a name", "POST", "/v1/connections", "application/json", `{"login_hint":"Adele <adele@contoso.example>"}`, 422, "invalid_login_hint"},
		{"long return URL", "POST", "/v1/connections", "application/json", `{"return_url":"https://app.example/` + strings.Repeat("x", 2048) + `"}`, 422, "invalid_return_url"},
		{"someone else's connection", "POST", "/v1/connections", "application/json", `{"owner":"u2"}`, 403, "owner_mismatch"},
		{"bad connection ID", "GET", "/v1/connections/nope", "", "", 404, "connection_not_found"},
		{"unknown connection", "GET", "/v1/connections/conn_AAAAAAAAAAAAAAAA", "", "", 404, "connection_not_found"},
		{"bad limit", "GET", "/v1/connections?limit=0", "", "", 400, "invalid_limit"},
		{"bad cursor", "GET", "/v1/connections?cursor=%27", "", "", 400, "invalid_cursor"},
		{"bad event cursor", "GET", "/v1/events?after=-3", "", "", 400, "invalid_cursor"},
		{"event cursor from the future", "GET", "/v1/events?after=999999999999", "", "", 400, "invalid_cursor"},
		{"made-up connection cursor", "GET", "/v1/connections?cursor=conn_AAAAAAAAAAAAAAAA", "", "", 400, "invalid_cursor"},
		{"undecodable query", "GET", "/v1/connections?limit=5&cursor=%zz", "", "", 400, "invalid_query"},
		{"misspelt parameter", "GET", "/v1/connections?limti=5", "", "", 400, "unknown_parameter"},
		{"no such route", "GET", "/v1/nothing", "", "", 404, "not_found"},
		{"wrong method", "PUT", "/v1/connections", "application/json", `{}`, 405, "method_not_allowed"},
		{"endpoint by a member", "PUT", "/v1/webhook-endpoints", "application/json", `{"url":"https://app.example/hooks"}`, 403, "admin_required"},
		{"no such endpoint", "GET", "/v1/webhook-endpoints/we_AAAAAAAAAAAAAAAA", "", "", 404, "endpoint_not_found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var body io.Reader
			if tc.body != "" {
				body = strings.NewReader(tc.body)
			}
			req, _ := http.NewRequest(tc.method, h.url+tc.path, body)
			if tc.ctype != "" {
				req.Header.Set("Content-Type", tc.ctype)
			}
			req.Header.Set("Authorization", "Bearer "+h.acme)
			req.Header.Set(api.UserHeader, "u1")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var p api.Problem
			_ = json.Unmarshal(raw, &p)
			if resp.StatusCode != tc.status || p.Code != tc.code || p.Detail == "" || p.Title != http.StatusText(tc.status) ||
				resp.Header.Get("Content-Type") != "application/problem+json" {
				t.Errorf("%d %s, want %d %s", resp.StatusCode, raw, tc.status, tc.code)
			}
		})
	}
	// Nothing was half-made by the refused creates.
	r := h.call(t, "GET", "/v1/connections", h.acmeAdmin, "", nil)
	var page struct{ Data []conn }
	r.json(t, &page)
	if len(page.Data) != 0 {
		t.Errorf("refused requests left %d connections", len(page.Data))
	}
	// Endpoint URLs must be https, to a public address (unless insecure
	// endpoints are allowed, which they are not here).
	for _, tc := range []struct{ url, code string }{
		{"http://app.example/hooks", "insecure_url"},
		{"http://127.0.0.1:9000/hooks", "insecure_url"},
		{"http://localhost:9000/hooks", "insecure_url"},
		{"https://127.0.0.1:9443/hooks", "private_endpoint"},
		{"https://localhost:9443/hooks", "private_endpoint"},
		{"https://[::1]/hooks", "private_endpoint"},
		{"https://10.0.0.8/hooks", "private_endpoint"},
		{"https://192.168.1.20/hooks", "private_endpoint"},
		{"https://169.254.169.254/latest/meta-data", "private_endpoint"},
		{"https://[fd00::8]/hooks", "private_endpoint"},
	} {
		if r := h.call(t, "PUT", "/v1/webhook-endpoints", h.acmeAdmin, "", map[string]any{"url": tc.url}); r.status != 422 || r.code() != tc.code {
			t.Errorf("endpoint %s: %d %s, want 422 %s", tc.url, r.status, r.body, tc.code)
		}
	}
	if r := h.call(t, "GET", "/v1/webhook-endpoints", h.acmeAdmin, "", nil); r.status != 200 || strings.TrimSpace(string(r.body)) != `{"data":[]}` {
		t.Errorf("refused endpoints left one registered: %d %s", r.status, r.body)
	}
}

// receiver collects signed webhook deliveries.
type receiver struct {
	mu     sync.Mutex
	events map[string]outbox.Event
	bad    int
	secret string
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	defer rc.mu.Unlock()
	sec, _ := strconv.ParseInt(r.Header.Get("webhook-timestamp"), 10, 64)
	ts := time.Unix(sec, 0)
	want, _ := outbox.Sign(rc.secret, r.Header.Get("webhook-id"), ts, body)
	if !strings.Contains(r.Header.Get("webhook-signature"), want) {
		rc.bad++
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	var e outbox.Event
	_ = json.Unmarshal(body, &e)
	rc.events[e.ID] = e
	w.WriteHeader(http.StatusNoContent)
}

func (rc *receiver) types() map[string]int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	out := map[string]int{}
	for _, e := range rc.events {
		out[e.Type]++
	}
	return out
}

// TestConnectionJourney drives a connection through the API as an app
// would: create, consent through the callback, watch the backfill, read
// folders and messages (bodies on demand, attachments streamed), receive
// events by pull and by signed webhook, change settings, resync, and
// disconnect; with the visibility rules checked along the way.
func TestConnectionJourney(t *testing.T) {
	h := newHarness(t, graphsim.Options{}, insecureWebhooks)
	ctx := context.Background()
	e := h.e
	if _, err := e.Ctl.Generate(ctx, e.Ada.UPN, graphsim.GenerateSpec{Count: 120, Days: 10, Folders: []string{"inbox", "sentitems"}, Seed: 5, AttachmentShare: 0.2}); err != nil {
		t.Fatal(err)
	}
	// The app registers its webhook endpoint first (admin key).
	rc := &receiver{events: map[string]outbox.Event{}}
	hook := httptest.NewServer(rc)
	defer hook.Close()
	r := h.call(t, "PUT", "/v1/webhook-endpoints", h.acmeAdmin, "", map[string]any{"url": hook.URL + "/outlookd"})
	var ep struct {
		Secret string `json:"secret"`
		URL    string `json:"url"`
	}
	r.json(t, &ep)
	if r.status != 200 || !strings.HasPrefix(ep.Secret, "whsec_") {
		t.Fatalf("register endpoint: %d %s", r.status, r.body)
	}
	rc.secret = ep.Secret
	if r := h.call(t, "GET", "/v1/webhook-endpoints", h.acmeAdmin, "", nil); r.status != 200 || strings.Contains(string(r.body), ep.Secret) {
		t.Errorf("the endpoint shows its secret again: %s", r.body)
	}
	dctx, stop := context.WithCancel(ctx)
	defer stop()
	d := &outbox.Dispatcher{Store: e.Store, Secrets: e.Vault.Tokens().GetSigningSecrets, HTTP: hook.Client(),
		AllowInsecure: true, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Idle: 50 * time.Millisecond}
	go func() { _ = d.Run(dctx) }()

	// Create, as app user u-ada, visible to her organisation; the login
	// hint as pasted from a terminal, a newline after it.
	r = h.call(t, "POST", "/v1/connections", h.acme, "u-ada", map[string]any{
		"visibility": "organisation", "backfill_days": 30, "folders": []string{"inbox", "sentitems"}, "login_hint": " " + e.Ada.UPN + "\n",
	})
	var c conn
	r.json(t, &c)
	if r.status != 201 || c.State != workflows.StatePendingConsent || c.AuthorizeURL == "" || r.header.Get("Location") != "/v1/connections/"+c.ID {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	if u, err := url.Parse(c.AuthorizeURL); err != nil || u.Query().Get("login_hint") != e.Ada.UPN {
		t.Errorf("authorize_url's login_hint: %q, want %q (%v)", u.Query().Get("login_hint"), e.Ada.UPN, err)
	}
	if c.Settings.Storage.Bodies != api.BodiesOnDemand || c.Settings.Retention != "delete" {
		t.Errorf("defaults: %+v", c.Settings)
	}
	// One connection per user in this organisation.
	if r := h.call(t, "POST", "/v1/connections", h.acme, "u-ada", map[string]any{}); r.status != 409 || r.code() != "user_already_connected" {
		t.Errorf("second connection for u-ada: %d %s", r.status, r.body)
	}

	page := h.consent(t, c.AuthorizeURL)
	if page.status != 200 || !strings.Contains(string(page.body), e.Ada.UPN) || strings.Contains(string(page.body), "code=") {
		t.Fatalf("callback page: %d %s", page.status, page.body)
	}
	c = h.waitConn(t, c.ID, h.acme, "u-ada", "backfill done", func(c conn) bool {
		return c.State == workflows.StateActive && c.Backfill != nil && c.Backfill.CompletedAt != nil && c.SyncMode == workflows.SyncPush
	})
	if c.Mailbox != e.Ada.UPN || c.Source != "workflow" || c.MessageCount == 0 {
		t.Errorf("active connection: %+v", c)
	}

	// Visibility: another user of acme sees it (organisation visibility)
	// but may not disconnect it; globex does not know it exists.
	if r := h.call(t, "GET", "/v1/connections/"+c.ID, h.acme, "u-bob", nil); r.status != 200 {
		t.Errorf("organisation-visible connection for another user: %d", r.status)
	}
	if r := h.call(t, "DELETE", "/v1/connections/"+c.ID, h.acme, "u-bob", nil); r.status != 403 || r.code() != "not_owner" {
		t.Errorf("disconnect by another user: %d %s", r.status, r.body)
	}
	for _, path := range []string{"", "/messages", "/folders"} {
		if r := h.call(t, "GET", "/v1/connections/"+c.ID+path, h.globex, "u-ada", nil); r.status != 404 || r.code() != "connection_not_found" {
			t.Errorf("another organisation reading %q: %d %s", path, r.status, r.body)
		}
	}
	if r := h.call(t, "DELETE", "/v1/connections/"+c.ID, h.globex, "u-ada", nil); r.status != 404 {
		t.Errorf("another organisation disconnecting: %d", r.status)
	}

	// Folders and messages, paged with filters.
	r = h.call(t, "GET", "/v1/connections/"+c.ID+"/folders", h.acme, "u-ada", nil)
	var folders struct {
		Data []struct {
			ID        string `json:"id"`
			WellKnown string `json:"well_known"`
			Phase     string `json:"phase"`
		} `json:"data"`
	}
	r.json(t, &folders)
	inbox := ""
	for _, f := range folders.Data {
		if f.WellKnown == "inbox" {
			inbox = f.ID
		}
	}
	if r.status != 200 || inbox == "" {
		t.Fatalf("folders: %d %s", r.status, r.body)
	}
	type msg struct {
		ID          string `json:"id"`
		FolderID    string `json:"folder_id"`
		IsRead      bool   `json:"is_read"`
		ReceivedAt  string `json:"received_at"`
		Attachments []struct {
			ID   string `json:"id"`
			Size int64  `json:"size"`
		} `json:"attachments"`
		Body *struct {
			Content string `json:"content"`
			Source  string `json:"source"`
		} `json:"body"`
	}
	var all []msg
	cursor := ""
	for pages := 0; ; pages++ {
		r = h.call(t, "GET", "/v1/connections/"+c.ID+"/messages?limit=25&folder="+url.QueryEscape(inbox)+"&cursor="+cursor, h.acme, "u-ada", nil)
		var p struct {
			Data       []msg  `json:"data"`
			NextCursor string `json:"next_cursor"`
		}
		r.json(t, &p)
		if r.status != 200 || pages > 20 {
			t.Fatalf("messages page %d: %d %s", pages, r.status, r.body)
		}
		all = append(all, p.Data...)
		if p.NextCursor == "" {
			break
		}
		cursor = url.QueryEscape(p.NextCursor)
	}
	truth, _ := e.Ctl.GroundTruth(ctx, e.Ada.UPN)
	wantInbox := 0
	since := time.Now().Add(-30 * 24 * time.Hour)
	for _, m := range truth.Messages {
		if m.FolderID == inbox && m.Received.After(since) {
			wantInbox++
		}
	}
	seen := map[string]bool{}
	for i, m := range all {
		if seen[m.ID] || m.FolderID != inbox || (i > 0 && m.ReceivedAt > all[i-1].ReceivedAt) {
			t.Fatalf("paging: duplicate, wrong folder or out of order at %d", i)
		}
		seen[m.ID] = true
	}
	if len(all) != wantInbox {
		t.Errorf("paged %d inbox messages, ground truth %d", len(all), wantInbox)
	}
	r = h.call(t, "GET", "/v1/connections/"+c.ID+"/messages?unread=true&limit=200", h.acme, "u-ada", nil)
	var unread struct{ Data []msg }
	r.json(t, &unread)
	for _, m := range unread.Data {
		if m.IsRead {
			t.Fatal("unread=true returned a read message")
		}
	}
	for _, q := range []string{"since=yesterday", "unread=maybe", "from=nobody", "cursor=%25%25", "folder=%3Cscript%3E"} {
		if r := h.call(t, "GET", "/v1/connections/"+c.ID+"/messages?"+q, h.acme, "u-ada", nil); r.status != 400 {
			t.Errorf("messages?%s: %d", q, r.status)
		}
	}
	// What the API cannot read, or never gave out, is refused, not ignored.
	future := base64.RawURLEncoding.EncodeToString([]byte("2999-01-01T00:00:00Z|" + all[0].ID))
	for _, tc := range []struct{ query, code string }{
		{"from=megan%zz", "invalid_query"},
		{"folder=" + url.QueryEscape(inbox) + "&unread=true%", "invalid_query"},
		{"form=megan%40contoso.com", "unknown_parameter"},
		{"cursor=" + future, "invalid_cursor"},
	} {
		if r := h.call(t, "GET", "/v1/connections/"+c.ID+"/messages?"+tc.query, h.acme, "u-ada", nil); r.status != 400 || r.code() != tc.code {
			t.Errorf("messages?%s: %d %s, want 400 %s", tc.query, r.status, r.body, tc.code)
		}
	}
	// A connection cursor names a connection the caller can see.
	if r := h.call(t, "GET", "/v1/connections?cursor="+c.ID, h.acme, "u-bob", nil); r.status != 200 || strings.Contains(string(r.body), `"id":"`+c.ID+`"`) {
		t.Errorf("connections after a visible one: %d %s", r.status, r.body)
	}
	if r := h.call(t, "GET", "/v1/connections?cursor="+c.ID, h.globex, "u-ada", nil); r.status != 400 || r.code() != "invalid_cursor" {
		t.Errorf("another organisation's connection as a cursor: %d %s", r.status, r.body)
	}

	// A message: the body is fetched from Graph (policy on_demand); an
	// attachment is streamed.
	var withAttachment msg
	for _, m := range all {
		if len(m.Attachments) > 0 {
			withAttachment = m
			break
		}
	}
	if withAttachment.ID == "" {
		t.Fatal("no message with an attachment to read")
	}
	r = h.call(t, "GET", "/v1/connections/"+c.ID+"/messages/"+url.PathEscape(withAttachment.ID), h.acme, "u-ada", nil)
	var one msg
	r.json(t, &one)
	if r.status != 200 || one.Body == nil || one.Body.Source != "graph" {
		t.Errorf("message with body on demand: %d %s", r.status, r.body)
	}
	att := withAttachment.Attachments[0]
	r = h.call(t, "GET", "/v1/connections/"+c.ID+"/messages/"+url.PathEscape(withAttachment.ID)+"/attachments/"+url.PathEscape(att.ID), h.acme, "u-ada", nil)
	if r.status != 200 || int64(len(r.body)) != att.Size || r.header.Get("Content-Disposition") == "" {
		t.Errorf("attachment: %d, %d bytes of %d", r.status, len(r.body), att.Size)
	}
	if r := h.call(t, "GET", "/v1/connections/"+c.ID+"/messages/nope/attachments/x", h.acme, "u-ada", nil); r.status != 404 || r.code() != "message_not_found" {
		t.Errorf("unknown message: %d %s", r.status, r.body)
	}
	if r := h.call(t, "GET", "/v1/connections/"+c.ID+"/messages/"+url.PathEscape(withAttachment.ID)+"/attachments/nope", h.acme, "u-ada", nil); r.status != 404 || r.code() != "attachment_not_found" {
		t.Errorf("unknown attachment: %d %s", r.status, r.body)
	}

	// Live mail becomes events, by pull feed and by signed webhook.
	ids, err := e.Ctl.InjectMessages(ctx, e.Ada.UPN, graphsim.MessageSpec{Subject: "hello from the journey"})
	if err != nil {
		t.Fatal(err)
	}
	var feed []outbox.Event
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		feed = feed[:0]
		after := "0"
		for {
			r = h.call(t, "GET", "/v1/events?limit=50&after="+after, h.acme, "u-ada", nil)
			var p struct {
				Data       []outbox.Event `json:"data"`
				NextCursor string         `json:"next_cursor"`
			}
			r.json(t, &p)
			feed = append(feed, p.Data...)
			if len(p.Data) == 0 {
				break
			}
			after = p.NextCursor
		}
		found := false
		for _, ev := range feed {
			found = found || (ev.Type == "message.created" && ev.Data["message_id"] == ids[0])
		}
		got := rc.types()
		if found && got["message.created"] > 0 && got["backfill.completed"] == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("events: feed %d, delivered %v", len(feed), got)
		}
	}
	types := map[string]int{}
	for _, ev := range feed {
		types[ev.Type]++
	}
	for _, want := range []string{"connection.created", "connection.active", "backfill.completed", "message.created"} {
		if types[want] == 0 {
			t.Errorf("no %s in the feed: %v", want, types)
		}
	}
	if rc.bad != 0 {
		t.Errorf("%d deliveries had a bad signature", rc.bad)
	}
	// Another organisation's feed does not see these events, and this
	// feed's cursor is beyond anything it has.
	r = h.call(t, "GET", "/v1/events", h.globex, "u-ada", nil)
	if strings.Contains(string(r.body), c.ID) {
		t.Error("another organisation's feed shows this connection's events")
	}
	newest := feed[len(feed)-1].Cursor
	if r := h.call(t, "GET", "/v1/events?after="+newest, h.acme, "u-ada", nil); r.status != 200 {
		t.Errorf("events after the newest: %d %s", r.status, r.body)
	}
	if r := h.call(t, "GET", "/v1/events?after="+newest, h.globex, "u-ada", nil); r.status != 400 || r.code() != "invalid_cursor" {
		t.Errorf("another organisation's cursor: %d %s", r.status, r.body)
	}

	// Settings, resync and a refused reauthorize.
	r = h.call(t, "PATCH", "/v1/connections/"+c.ID+"/settings", h.acme, "u-ada", map[string]any{"poll_minutes": 15, "retention": "keep"})
	var patched conn
	r.json(t, &patched)
	if r.status != 200 || patched.Settings.PollMinutes != 15 || patched.Settings.Retention != "keep" || patched.Settings.BackfillDays != 30 {
		t.Errorf("settings: %d %s", r.status, r.body)
	}
	if r := h.call(t, "PATCH", "/v1/connections/"+c.ID+"/settings", h.acme, "u-ada", map[string]any{"poll_minutes": 0}); r.status != 422 {
		t.Errorf("poll_minutes 0: %d %s", r.status, r.body)
	}
	if r := h.call(t, "POST", "/v1/connections/"+c.ID+"/resync", h.acme, "u-ada", map[string]any{"folders": []string{"inbox"}}); r.status != 202 {
		t.Errorf("resync: %d %s", r.status, r.body)
	}
	if r := h.call(t, "POST", "/v1/connections/"+c.ID+"/reauthorize", h.acme, "u-ada", nil); r.status != 409 || r.code() != "invalid_state" {
		t.Errorf("reauthorize an active connection: %d %s", r.status, r.body)
	}
	// Graph fails while a body is fetched on demand: 502, and it says so.
	e.Sim.SetFault(graphsim.Fault{Endpoint: "messages", Unavailable: 1})
	if r := h.call(t, "GET", "/v1/connections/"+c.ID+"/messages/"+url.PathEscape(withAttachment.ID), h.acme, "u-ada", nil); r.status != 502 || r.code() != "upstream_failed" {
		t.Errorf("body while Graph fails: %d %s", r.status, r.body)
	}
	e.Sim.ClearFaults()
	// A message deleted in the mailbox before the delta round removes it
	// here (the rounds fail meanwhile): its body is gone at the source.
	gone := all[0]
	if gone.ID == withAttachment.ID {
		gone = all[1]
	}
	e.Sim.SetFault(graphsim.Fault{Endpoint: "delta", Unavailable: 1})
	if err := e.Ctl.DeleteMessage(ctx, e.Ada.UPN, gone.ID); err != nil {
		t.Fatal(err)
	}
	if r := h.call(t, "GET", "/v1/connections/"+c.ID+"/messages/"+url.PathEscape(gone.ID), h.acme, "u-ada", nil); r.status != 404 || r.code() != "gone_at_source" {
		t.Errorf("body of a message deleted at the source: %d %s", r.status, r.body)
	}
	e.Sim.ClearFaults()
	if r := h.call(t, "PUT", "/v1/webhook-endpoints", h.acmeAdmin, "", map[string]any{"url": "ftp://app.example/x"}); r.status != 422 || r.code() != "invalid_url" {
		t.Errorf("ftp endpoint: %d %s", r.status, r.body)
	}
	if r := h.call(t, "POST", "/v1/connections", h.acmeAdmin, "", map[string]any{}); r.status != 400 || r.code() != "owner_required" {
		t.Errorf("admin create without an owner: %d %s", r.status, r.body)
	}
	if r := h.call(t, "GET", "/v1/openapi.json", "", "", nil); r.status != 200 || !bytes.Equal(r.body, api.OpenAPI) {
		t.Errorf("openapi.json: %d", r.status)
	}

	// Disconnect by the owner: 202, then disconnected, mail kept (policy
	// changed to keep), nothing in Vault, a second DELETE is still 202.
	r = h.call(t, "DELETE", "/v1/connections/"+c.ID, h.acme, "u-ada", nil)
	if r.status != 202 || r.header.Get("Location") != "/v1/connections/"+c.ID {
		t.Fatalf("disconnect: %d %s", r.status, r.body)
	}
	var disconnecting conn
	r.json(t, &disconnecting)
	if strings.HasSuffix(disconnecting.NextAction, ":") || strings.HasSuffix(disconnecting.NextAction, " ") {
		t.Errorf("disconnect: next action %q", disconnecting.NextAction)
	}
	h.waitConn(t, c.ID, h.acme, "u-ada", "disconnected", func(c conn) bool { return c.State == workflows.StateDisconnected })
	if r := h.call(t, "DELETE", "/v1/connections/"+c.ID, h.acme, "u-ada", nil); r.status != 202 {
		t.Errorf("second disconnect: %d %s", r.status, r.body)
	}
	if n, _ := e.Vault.Tokens().Count(ctx, c.ID); n != 0 {
		t.Errorf("secrets left in Vault: %d", n)
	}
	if n, _ := e.Store.CountMessages(ctx, c.ID); n == 0 {
		t.Error("the keep policy deleted the mail")
	}
	if r := h.call(t, "GET", "/v1/connections/"+c.ID+"/messages?limit=1", h.acme, "u-ada", nil); r.status != 200 || !strings.Contains(string(r.body), `"id"`) {
		t.Errorf("the kept archive is not readable: %d %s", r.status, r.body)
	}
	// Bodies not stored cannot be fetched from a disconnected mailbox.
	if r := h.call(t, "GET", "/v1/connections/"+c.ID+"/messages/"+url.PathEscape(withAttachment.ID), h.acme, "u-ada", nil); r.status != 409 || r.code() != "connection_not_active" {
		t.Errorf("body of an archived message: %d %s", r.status, r.body)
	}
	// Updates to an ended connection are refused clearly.
	if r := h.call(t, "POST", "/v1/connections/"+c.ID+"/resync", h.acme, "u-ada", nil); r.status != 409 || r.code() != "connection_ended" {
		t.Errorf("resync a disconnected connection: %d %s", r.status, r.body)
	}
	// The user may connect again now.
	r = h.call(t, "POST", "/v1/connections", h.acme, "u-ada", map[string]any{})
	if r.status != 201 {
		t.Errorf("a new connection after disconnecting: %d %s", r.status, r.body)
	}
	// URLs are written as plain JSON strings, so the authorize_url a person
	// copies from curl's output works as is.
	if !strings.Contains(string(r.body), "&") || strings.Contains(string(r.body), `\u0026`) {
		t.Errorf("the answer escapes '&': %s", r.body)
	}
}

// TestOnDemandNeedsSignIn: once the user's refresh token is dead, reading
// a body or an attachment on demand says the connection needs the user to
// sign in again (409 reauth_required), not that Graph failed.
func TestOnDemandNeedsSignIn(t *testing.T) {
	h := newHarness(t, graphsim.Options{})
	ctx := context.Background()
	e := h.e
	if _, err := e.Ctl.Generate(ctx, e.Ada.UPN, graphsim.GenerateSpec{Count: 20, Days: 5, Folders: []string{"inbox"}, Seed: 7, AttachmentShare: 0.5}); err != nil {
		t.Fatal(err)
	}
	r := h.call(t, "POST", "/v1/connections", h.acme, "u-ada", map[string]any{"backfill_days": 30, "folders": []string{"inbox"}, "login_hint": e.Ada.UPN})
	var c conn
	r.json(t, &c)
	if r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	if page := h.consent(t, c.AuthorizeURL); page.status != 200 {
		t.Fatalf("consent: %d %s", page.status, page.body)
	}
	h.waitConn(t, c.ID, h.acme, "u-ada", "backfill done", func(c conn) bool {
		return c.State == workflows.StateActive && c.Backfill != nil && c.Backfill.CompletedAt != nil
	})
	r = h.call(t, "GET", "/v1/connections/"+c.ID+"/messages?limit=200", h.acme, "u-ada", nil)
	var page struct {
		Data []struct {
			ID          string `json:"id"`
			Attachments []struct {
				ID string `json:"id"`
			} `json:"attachments"`
		} `json:"data"`
	}
	r.json(t, &page)
	msg, att := "", ""
	for _, m := range page.Data {
		if len(m.Attachments) > 0 {
			msg, att = m.ID, m.Attachments[0].ID
			break
		}
	}
	if msg == "" {
		t.Fatalf("no message with an attachment: %d %s", r.status, r.body)
	}
	body := "/v1/connections/" + c.ID + "/messages/" + url.PathEscape(msg)
	if r := h.call(t, "GET", body, h.acme, "u-ada", nil); r.status != 200 {
		t.Fatalf("body before the revocation: %d %s", r.status, r.body)
	}
	// The user's sessions are revoked; the access token outlives that
	// until it expires at Graph.
	if err := e.Ctl.Revoke(ctx, e.Ada.UPN, graphsim.RevokeSignInSessions); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Ctl.AdvanceClock(ctx, 2*time.Hour); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{body, body + "/attachments/" + url.PathEscape(att)} {
		r := h.call(t, "GET", path, h.acme, "u-ada", nil)
		var p api.Problem
		_ = json.Unmarshal(r.body, &p)
		if r.status != 409 || p.Code != "reauth_required" || !strings.Contains(p.Detail, "sign in again") {
			t.Errorf("GET %s with a dead refresh token: %d %s", path, r.status, r.body)
		}
	}
}

// TestMailboxAlreadyConnected: a mailbox connected by one organisation
// cannot be connected by another; the callback says so and the refused
// connection keeps waiting for consent.
func TestMailboxAlreadyConnected(t *testing.T) {
	h := newHarness(t, graphsim.Options{})
	r := h.call(t, "POST", "/v1/connections", h.acme, "u-ada", map[string]any{"login_hint": h.e.Ada.UPN})
	var first conn
	r.json(t, &first)
	if page := h.consent(t, first.AuthorizeURL); page.status != 200 {
		t.Fatalf("first consent: %d", page.status)
	}
	r = h.call(t, "POST", "/v1/connections", h.globex, "u-other", map[string]any{"login_hint": h.e.Ada.UPN})
	var second conn
	r.json(t, &second)
	page := h.consent(t, second.AuthorizeURL)
	if page.status != 409 || !strings.Contains(string(page.body), "already connected") {
		t.Errorf("second consent: %d %s", page.status, page.body)
	}
	c := h.waitConn(t, second.ID, h.globex, "u-other", "refused", func(c conn) bool { return c.Reason == "mailbox_already_connected" })
	if c.State != workflows.StatePendingConsent {
		t.Errorf("refused connection: %+v", c)
	}
	// A return URL gets the outcome as a redirect instead of a page.
	r = h.call(t, "POST", "/v1/connections", h.globex, "u-third", map[string]any{"login_hint": h.e.Ada.UPN, "return_url": "https://app.example/done"})
	var third conn
	r.json(t, &third)
	page = h.consent(t, third.AuthorizeURL)
	loc, _ := url.Parse(page.header.Get("Location"))
	if page.status != 303 || loc.Host != "app.example" || loc.Query().Get("status") != "failed" || loc.Query().Get("reason") != "mailbox_already_connected" {
		t.Errorf("return URL redirect: %d %s", page.status, page.header.Get("Location"))
	}
}

func TestCallbackErrors(t *testing.T) {
	h := newHarness(t, graphsim.Options{})
	for _, tc := range []struct {
		name, query string
		status      int
		text        string
	}{
		{"no state", "code=abc", 400, "not valid"},
		{"forged state", "state=conn_AAAAAAAAAAAAAAAA.nonce&code=abc", 400, "not valid"},
	} {
		r := h.call(t, "GET", "/v1/oauth/callback?"+tc.query, "", "", nil)
		if r.status != tc.status || !strings.Contains(string(r.body), tc.text) || strings.Contains(string(r.body), "abc") {
			t.Errorf("%s: %d %s", tc.name, r.status, r.body)
		}
	}
	// The user declines at Microsoft: the page says nothing was connected.
	r := h.call(t, "POST", "/v1/connections", h.acme, "u1", map[string]any{})
	var c conn
	r.json(t, &c)
	u, _ := url.Parse(c.AuthorizeURL)
	state := u.Query().Get("state")
	r = h.call(t, "GET", "/v1/oauth/callback?state="+url.QueryEscape(state)+"&error=access_denied&error_description="+url.QueryEscape("AADSTS65004: User declined to consent"), "", "", nil)
	if r.status != 403 || !strings.Contains(string(r.body), "Nothing was connected") {
		t.Errorf("declined: %d %s", r.status, r.body)
	}
	// A link used once shows again how the consent ended (a reload, or an
	// answer lost on the way); one older than an hour has expired. No page
	// shows the code.
	r = h.call(t, "POST", "/v1/connections", h.acme, "u2", map[string]any{"login_hint": h.e.Ada.UPN})
	r.json(t, &c)
	q := h.callbackQuery(t, c.AuthorizeURL)
	code, _ := url.ParseQuery(q)
	if r := h.call(t, "GET", "/v1/oauth/callback?"+q, "", "", nil); r.status != 200 || !strings.Contains(string(r.body), "Your mailbox is connected") {
		t.Fatalf("consent: %d %s", r.status, r.body)
	}
	r = h.call(t, "GET", "/v1/oauth/callback?"+q, "", "", nil)
	if r.status != 200 || !strings.Contains(string(r.body), "Your mailbox is connected") || strings.Contains(string(r.body), code.Get("code")) {
		t.Errorf("a used link: %d %s", r.status, r.body)
	}
	r = h.call(t, "POST", "/v1/connections", h.acme, "u3", map[string]any{"login_hint": h.e.Ada.UPN})
	r.json(t, &c)
	q = h.callbackQuery(t, c.AuthorizeURL)
	code, _ = url.ParseQuery(q)
	p, err := h.e.Vault.Tokens().GetPending(t.Context(), c.ID)
	if err != nil {
		t.Fatal(err)
	}
	p.Created = time.Now().Add(-2 * time.Hour)
	if err := h.e.Vault.Tokens().PutPending(t.Context(), c.ID, p); err != nil {
		t.Fatal(err)
	}
	r = h.call(t, "GET", "/v1/oauth/callback?"+q, "", "", nil)
	if r.status != 400 || !strings.Contains(string(r.body), "has expired") || strings.Contains(string(r.body), code.Get("code")) {
		t.Errorf("an expired link: %d %s", r.status, r.body)
	}
	if st := h.e.Status(c.ID); st.State != workflows.StatePendingConsent {
		t.Errorf("an expired link changed the connection: %s", st.State)
	}
}

// TestCallbackTwice: the same redirect arrives twice while its code is
// being exchanged (a reload, a second tab). Both pages tell how the consent
// ended, and the second code is not left in Vault.
func TestCallbackTwice(t *testing.T) {
	h := newHarness(t, graphsim.Options{})
	grace, err := h.e.Ctl.AddUser(t.Context(), graphsim.UserSpec{Tenant: "contoso.example", UPN: "grace@contoso.example", DisplayName: "Grace Hopper"})
	if err != nil {
		t.Fatal(err)
	}
	r := h.call(t, "POST", "/v1/connections", h.acme, "u-grace", map[string]any{"login_hint": grace.UPN})
	var c conn
	r.json(t, &c)
	q := h.callbackQuery(t, c.AuthorizeURL)
	// The token endpoint answers slowly, so the first exchange is still
	// under way when the second redirect comes.
	h.e.Sim.SetFault(graphsim.Fault{Endpoint: "token", Latency: 2 * time.Second})
	defer h.e.Sim.ClearFaults()
	first := make(chan response, 1)
	go func() { first <- h.call(t, "GET", "/v1/oauth/callback?"+q, "", "", nil) }()
	for h.e.Status(c.ID).State != workflows.StateConnecting {
		time.Sleep(20 * time.Millisecond)
	}
	second := h.call(t, "GET", "/v1/oauth/callback?"+q, "", "", nil)
	for i, r := range []response{<-first, second} {
		if r.status != 200 || !strings.Contains(string(r.body), "Your mailbox is connected") {
			t.Errorf("callback %d: %d %s", i+1, r.status, r.body)
		}
	}
	h.e.Sim.ClearFaults()
	h.waitConn(t, c.ID, h.acme, "u-grace", "live", func(c conn) bool { return c.SyncMode == workflows.SyncPush })
	// What a live connection keeps: its tokens and its subscription's
	// clientState, no consent code.
	if n, err := h.e.Vault.Tokens().Count(t.Context(), c.ID); err != nil || n != 3 {
		t.Errorf("secrets kept for a live connection: %d (%v), want 3 (tokens, clientState, the completed consent's state)", n, err)
	}
}

// TestTemporalUnreachable: with Temporal cut off, reads come from the
// registry (and say so) and changes answer 503, changing nothing.
func TestTemporalUnreachable(t *testing.T) {
	h := newHarness(t, graphsim.Options{})
	r := h.call(t, "POST", "/v1/connections", h.acme, "u1", map[string]any{"login_hint": h.e.Ada.UPN})
	var c conn
	r.json(t, &c)
	proxy := testenv.NewProxy(t, testenv.Temporal(t))
	tc, err := client.Dial(client.Options{HostPort: proxy.Addr(), Logger: tlog.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	connector := *h.e.Connect
	connector.Temporal, connector.HandoffTimeout = tc, 2*time.Second
	router := api.NewRouter(api.Deps{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Store: h.e.Store, Temporal: tc, Connect: &connector,
		Tokens: h.e.Vault.Tokens(), RateLimit: 100, RateBurst: 100})
	srv := httptest.NewServer(router)
	defer srv.Close()
	// The user comes back from Microsoft while Temporal is cut off: the page
	// says so soon, and shows nothing of the code.
	q := h.callbackQuery(t, c.AuthorizeURL)
	code, _ := url.ParseQuery(q)
	proxy.Down()
	cut := &harness{e: h.e, url: srv.URL, acme: h.acme}
	start := time.Now()
	r = cut.call(t, "GET", "/v1/oauth/callback?"+q, "", "", nil)
	if r.status != 503 || !strings.Contains(string(r.body), "could not finish connecting") || strings.Contains(string(r.body), code.Get("code")) {
		t.Errorf("callback without Temporal: %d %s", r.status, r.body)
	}
	if el := time.Since(start); el > 10*time.Second {
		t.Errorf("the callback without Temporal took %s", el)
	}
	start = time.Now()
	r = cut.call(t, "GET", "/v1/connections/"+c.ID, h.acme, "u1", nil)
	var got conn
	r.json(t, &got)
	if r.status != 200 || got.Source != "registry" || got.State != workflows.StatePendingConsent {
		t.Errorf("read without Temporal: %d %s", r.status, r.body)
	}
	if el := time.Since(start); el > 10*time.Second {
		t.Errorf("the fallback took %s", el)
	}
	if r := cut.call(t, "DELETE", "/v1/connections/"+c.ID, h.acme, "u1", nil); r.status != 503 || r.code() != "unavailable" {
		t.Errorf("disconnect without Temporal: %d %s", r.status, r.body)
	}
	// A connection cannot be created either, and nothing half-made stays:
	// the user is not counted as connected once Temporal is back.
	if r := cut.call(t, "POST", "/v1/connections", h.acme, "u2", map[string]any{}); r.status != 503 || r.code() != "unavailable" {
		t.Errorf("create without Temporal: %d %s", r.status, r.body)
	}
	proxy.Up()
	if st := h.e.Status(c.ID); st.State != workflows.StatePendingConsent {
		t.Errorf("the refused disconnect changed the connection: %s", st.State)
	}
	if r := h.call(t, "POST", "/v1/connections", h.acme, "u2", map[string]any{}); r.status != 201 {
		t.Errorf("create after the refused one: %d %s", r.status, r.body)
	}
	// The user tries again once Temporal is back: connected, and the code
	// whose hand-off failed is gone with the one used.
	if r := h.consent(t, c.AuthorizeURL); r.status != 200 || !strings.Contains(string(r.body), "Your mailbox is connected") {
		t.Fatalf("consent after Temporal came back: %d %s", r.status, r.body)
	}
	h.waitConn(t, c.ID, h.acme, "u1", "live", func(c conn) bool { return c.SyncMode == workflows.SyncPush })
	if n, err := h.e.Vault.Tokens().Count(t.Context(), c.ID); err != nil || n != 3 {
		t.Errorf("secrets kept for a live connection: %d (%v), want 3 (tokens, clientState, the completed consent's state)", n, err)
	}
}

func TestGraphReceiverMounted(t *testing.T) {
	h := newHarness(t, graphsim.Options{})
	resp, err := http.Post(h.url+"/v1/graph/notifications?validationToken="+url.QueryEscape("a token+1"), "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "a token+1" || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Errorf("handshake: %d %q", resp.StatusCode, body)
	}
	resp, err = http.Post(h.url+"/v1/graph/lifecycle", "application/json", strings.NewReader(`{"value":[{"subscriptionId":"nope","clientState":"x","lifecycleEvent":"missed"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 202 {
		t.Errorf("unknown subscription: %d", resp.StatusCode)
	}
}

// TestWebhookDeliveryRetriesParksAndRequeues: an endpoint that fails gets
// its events again later, then they are parked (visible with the error);
// requeued after the app fixes its endpoint and rotates the secret, they
// arrive signed with the new secret and, for a day, the previous one.
func TestWebhookDeliveryRetriesParksAndRequeues(t *testing.T) {
	h := newHarness(t, graphsim.Options{}, insecureWebhooks)
	ctx := context.Background()
	var mu sync.Mutex
	failing := true
	var got []*http.Request
	var bodies [][]byte
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		if failing {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		got, bodies = append(got, r), append(bodies, body)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer hook.Close()
	var ep struct {
		ID        string `json:"id"`
		Secret    string `json:"secret"`
		Pending   int64  `json:"pending"`
		Parked    int64  `json:"parked"`
		Requeued  int64  `json:"requeued"`
		LastError string `json:"last_error"`
	}
	h.call(t, "PUT", "/v1/webhook-endpoints", h.acmeAdmin, "", map[string]any{"url": hook.URL}).json(t, &ep)
	first := ep.Secret
	if r := h.call(t, "POST", "/v1/connections", h.acme, "u1", map[string]any{}); r.status != 201 {
		t.Fatalf("create: %d", r.status)
	}
	d := &outbox.Dispatcher{Store: h.e.Store, Secrets: h.e.Vault.Tokens().GetSigningSecrets, HTTP: hook.Client(),
		AllowInsecure: true, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), MaxAttempts: 2}
	// Attempt 1 fails; the event is not due again until its backoff ends.
	if n, err := d.Once(ctx, 50); err != nil || n != 1 {
		t.Fatalf("first pass: %d %v", n, err)
	}
	if n, _ := d.Once(ctx, 50); n != 0 {
		t.Errorf("an event was retried before its backoff: %d", n)
	}
	var list struct{ Data []json.RawMessage }
	h.call(t, "GET", "/v1/webhook-endpoints", h.acmeAdmin, "", nil).json(t, &list)
	if len(list.Data) != 1 {
		t.Fatalf("%d endpoints", len(list.Data))
	}
	_ = json.Unmarshal(list.Data[0], &ep)
	if ep.Pending != 1 || !strings.Contains(ep.LastError, "500") {
		t.Errorf("after a failure: %+v", ep)
	}
	// Its backoff over, attempt 2 fails too: parked.
	if _, err := h.e.Store.Pool().Exec(ctx, `UPDATE webhook_deliveries SET next_attempt_at = now() WHERE endpoint_id = $1`, ep.ID); err != nil {
		t.Fatal(err)
	}
	if n, _ := d.Once(ctx, 50); n != 1 {
		t.Fatalf("second pass took %d", n)
	}
	h.call(t, "GET", "/v1/webhook-endpoints/"+ep.ID, h.acmeAdmin, "", nil).json(t, &ep)
	if ep.Parked != 1 || ep.Pending != 0 {
		t.Errorf("after the last attempt: %+v", ep)
	}
	// The app fixes its endpoint, rotates the secret, requeues.
	mu.Lock()
	failing = false
	mu.Unlock()
	h.call(t, "PUT", "/v1/webhook-endpoints", h.acmeAdmin, "", map[string]any{"url": hook.URL, "rotate_secret": true, "requeue_parked": true}).json(t, &ep)
	if ep.Requeued != 1 || ep.Secret == "" || ep.Secret == first {
		t.Fatalf("requeue and rotate: %+v", ep)
	}
	if n, _ := d.Once(ctx, 50); n != 1 {
		t.Fatalf("after requeue: %d", n)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 {
		t.Fatalf("%d deliveries", len(got))
	}
	r := got[0]
	sec, _ := strconv.ParseInt(r.Header.Get("webhook-timestamp"), 10, 64)
	for name, secret := range map[string]string{"new": ep.Secret, "previous": first} {
		want, _ := outbox.Sign(secret, r.Header.Get("webhook-id"), time.Unix(sec, 0), bodies[0])
		if !strings.Contains(r.Header.Get("webhook-signature"), want) {
			t.Errorf("no signature with the %s secret: %q", name, r.Header.Get("webhook-signature"))
		}
	}
}

// TestConnectionAccess: who may do what with a connection, through the
// API. A connection shared with the organisation is readable by every
// user of it, but only its owner and admin keys may change it (403
// not_owner, and the refused request changes nothing); a user it is not
// shared with, and another organisation, get 404 for everything.
func TestConnectionAccess(t *testing.T) {
	h := newHarness(t, graphsim.Options{})
	e := h.e
	if _, err := e.Ctl.Generate(context.Background(), e.Ada.UPN, graphsim.GenerateSpec{Count: 5, Days: 3, Folders: []string{"inbox"}, Seed: 7}); err != nil {
		t.Fatal(err)
	}
	r := h.call(t, "POST", "/v1/connections", h.acme, "u-ada", map[string]any{"visibility": "organisation", "backfill_days": 30, "login_hint": e.Ada.UPN})
	var shared conn
	r.json(t, &shared)
	if r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	h.consent(t, shared.AuthorizeURL)
	h.waitConn(t, shared.ID, h.acme, "u-ada", "active", func(c conn) bool { return c.State == workflows.StateActive })
	// u-cy's connection is not shared: u-bob does not see it.
	r = h.call(t, "POST", "/v1/connections", h.acme, "u-cy", map[string]any{})
	var private conn
	r.json(t, &private)
	if r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}

	type who struct {
		name, key, user string
		id              *string
	}
	// Refused callers come first in each column, so that what they leave
	// is compared with what was before.
	member := who{"member it is shared with", h.acme, "u-bob", &shared.ID}
	unshared := who{"member it is not shared with", h.acme, "u-bob", &private.ID}
	outsider := who{"another organisation", h.globex, "u-ada", &shared.ID}
	owner := who{"owner", h.acme, "u-ada", &shared.ID}
	admin := who{"admin key", h.acmeAdmin, "", &shared.ID}
	callers := []who{member, unshared, outsider, owner, admin}
	actions := []struct {
		name, method, path string
		body               func(i int) any
		want               map[string]int // by caller; 404 for the unseen
	}{
		{"read status", "GET", "", nil, map[string]int{member.name: 200, owner.name: 200, admin.name: 200}},
		{"list messages", "GET", "/messages", nil, map[string]int{member.name: 200, owner.name: 200, admin.name: 200}},
		{"change settings", "PATCH", "/settings", func(i int) any { return map[string]any{"backfill_days": 40 + i} },
			map[string]int{member.name: 403, owner.name: 200, admin.name: 200}},
		{"resync", "POST", "/resync", func(int) any { return map[string]any{} }, map[string]int{member.name: 403, owner.name: 202, admin.name: 202}},
		// An active connection cannot be re-authorized: past the access
		// rule, the owner and an admin key are told so.
		{"reauthorize", "POST", "/reauthorize", func(int) any { return map[string]any{} }, map[string]int{member.name: 403, owner.name: 409, admin.name: 409}},
		{"disconnect", "DELETE", "", nil, map[string]int{member.name: 403, owner.name: 202, admin.name: 202}},
	}
	// snapshot is what a refused request must leave as it was.
	snapshot := func(id string) string {
		var c conn
		h.call(t, "GET", "/v1/connections/"+id, h.acmeAdmin, "", nil).json(t, &c)
		return fmt.Sprintf("state=%s backfill_days=%d", c.State, c.Settings.BackfillDays)
	}
	for _, a := range actions {
		before := map[string]string{shared.ID: snapshot(shared.ID), private.ID: snapshot(private.ID)}
		for i, w := range callers {
			var body any
			if a.body != nil {
				body = a.body(i)
			}
			want := a.want[w.name]
			if want == 0 {
				want = 404
			}
			r := h.call(t, a.method, "/v1/connections/"+*w.id+a.path, w.key, w.user, body)
			if r.status != want {
				t.Errorf("%s, %s: %d %s, want %d", a.name, w.name, r.status, r.body, want)
			}
			switch want {
			case 403:
				if r.code() != "not_owner" {
					t.Errorf("%s, %s: code %q", a.name, w.name, r.code())
				}
			case 404:
				if r.code() != "connection_not_found" {
					t.Errorf("%s, %s: code %q", a.name, w.name, r.code())
				}
			}
			if want == 403 || want == 404 {
				if now := snapshot(*w.id); now != before[*w.id] {
					t.Errorf("%s, %s was refused but changed the connection: %s, was %s", a.name, w.name, now, before[*w.id])
				}
			}
		}
	}
}

// TestHostileInputRefused: hostile folder lists (paths, invalid UTF-8,
// lone surrogates, NUL, null, an empty list, 51 items, a 1,000-character
// name) given to create, settings and resync, a NUL in an admin's owner
// and in the OAuth callback's state, are each a 400 with its code, and
// nothing changed: no connection made, the settings read back as they
// were.
func TestHostileInputRefused(t *testing.T) {
	h := newHarness(t, graphsim.Options{})
	r := h.call(t, "POST", "/v1/connections", h.acme, "u-ada", map[string]any{"folders": []string{"inbox", "sentitems"}})
	if r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	var c conn
	r.json(t, &c)
	settings := func() string {
		t.Helper()
		r := h.call(t, "GET", "/v1/connections/"+c.ID, h.acme, "u-ada", nil)
		var v struct {
			Settings json.RawMessage `json:"settings"`
		}
		r.json(t, &v)
		return string(v.Settings)
	}
	before := settings()
	many := make([]string, 51)
	for i := range many {
		many[i] = strconv.Quote("f" + strconv.Itoa(i))
	}
	for _, tc := range []struct{ name, folders, code string }{
		{"path up", `["../inbox"]`, "invalid_folders"},
		{"path", `["a/b"]`, "invalid_folders"},
		{"invalid UTF-8", "[\"in\xffbox\"]", "invalid_encoding"},
		{"lone surrogate", `["\ud800"]`, "invalid_encoding"},
		{"NUL", `["in\u0000box"]`, "invalid_character"},
		{"null", `null`, "invalid_folders"},
		{"empty list", `[]`, "invalid_folders"},
		{"51 items", "[" + strings.Join(many, ",") + "]", "invalid_folders"},
		{"1,000 characters", `["` + strings.Repeat("x", 1000) + `"]`, "invalid_folders"},
	} {
		body := `{"folders":` + tc.folders + `}`
		for _, call := range []struct{ method, path, user string }{
			{"POST", "/v1/connections", "u-bob"},
			{"PATCH", "/v1/connections/" + c.ID + "/settings", "u-ada"},
			{"POST", "/v1/connections/" + c.ID + "/resync", "u-ada"},
		} {
			if r := h.call(t, call.method, call.path, h.acme, call.user, body); r.status != 400 || r.code() != tc.code {
				t.Errorf("%s %s %s: %d %s, want 400 %s", tc.name, call.method, call.path, r.status, r.body, tc.code)
			}
		}
	}
	if r := h.call(t, "POST", "/v1/connections", h.acmeAdmin, "", `{"owner":"u-\u0000"}`); r.status != 400 || r.code() != "invalid_character" {
		t.Errorf("NUL in owner: %d %s", r.status, r.body)
	}
	if r := h.call(t, "GET", "/v1/oauth/callback?code=c&state=st%00ate", "", "", nil); r.status != 400 {
		t.Errorf("NUL in state: %d %s", r.status, r.body)
	}
	if after := settings(); after != before {
		t.Errorf("settings changed from %s to %s", before, after)
	}
	r = h.call(t, "GET", "/v1/connections", h.acmeAdmin, "", nil)
	var page struct{ Data []conn }
	r.json(t, &page)
	if len(page.Data) != 1 {
		t.Errorf("refused creates left %d connections", len(page.Data)-1)
	}
}

// TestConnectionWithoutWorkflow: a registry row whose workflow does not
// exist (a create whose workflow could not start, and whose row could not
// be taken back either) can always be re-authorized or removed. Waiting
// for its first consent, re-authorizing it starts a fresh workflow and the
// user connects through the new link; one whose workflow ended after it
// connected answers 409 saying to disconnect it, and the disconnect cleans
// it up.
func TestConnectionWithoutWorkflow(t *testing.T) {
	h := newHarness(t, graphsim.Options{})
	ctx := context.Background()
	suffix := strings.ToLower(strings.TrimPrefix(h.e.TaskQueue, "outlookd-test-"))
	org := "acme-" + suffix
	settings, _ := json.Marshal(workflows.Settings{Features: workflows.Features{Read: true}}.WithDefaults())
	orphan := func(id, user, state string) {
		t.Helper()
		if err := h.e.Store.CreateConnection(ctx, store.Connection{ID: id, OrgID: org, OwnerID: user, State: workflows.StatePendingConsent,
			Mode: workflows.ModeDelegated, Settings: settings}); err != nil {
			t.Fatal(err)
		}
		if state != workflows.StatePendingConsent {
			if err := h.e.Store.UpdateConnection(ctx, id, store.ConnectionUpdate{State: state}); err != nil {
				t.Fatal(err)
			}
		}
	}
	pending := "conn_wait" + suffix
	orphan(pending, "u-orphan", workflows.StatePendingConsent)
	r := h.call(t, "POST", "/v1/connections/"+pending+"/reauthorize", h.acme, "u-orphan", map[string]any{"login_hint": h.e.Ada.UPN})
	var c conn
	r.json(t, &c)
	if r.status != 200 || c.AuthorizeURL == "" {
		t.Fatalf("re-authorize a connection waiting for consent without a workflow: %d %s", r.status, r.body)
	}
	if r := h.consent(t, c.AuthorizeURL); r.status != 200 || !strings.Contains(string(r.body), "Your mailbox is connected") {
		t.Fatalf("consent through the new link: %d %s", r.status, r.body)
	}
	h.waitConn(t, pending, h.acme, "u-orphan", "active", func(c conn) bool { return c.State == workflows.StateActive })

	ended := "conn_done" + suffix
	orphan(ended, "u-ended", workflows.StateReauthRequired)
	r = h.call(t, "POST", "/v1/connections/"+ended+"/reauthorize", h.acme, "u-ended", nil)
	var p api.Problem
	r.json(t, &p)
	if r.status != 409 || p.Code != "connection_ended" || !strings.Contains(p.Detail, "DELETE /v1/connections/"+ended) {
		t.Errorf("re-authorize a connection whose workflow ended after it connected: %d %s", r.status, r.body)
	}
	if row, _ := h.e.Store.GetConnection(ctx, ended); row.State != workflows.StateReauthRequired {
		t.Errorf("the refused re-authorize changed the connection: %s", row.State)
	}
	if r := h.call(t, "DELETE", "/v1/connections/"+ended, h.acme, "u-ended", nil); r.status != 202 {
		t.Fatalf("disconnect a connection without a workflow: %d %s", r.status, r.body)
	}
	h.waitConn(t, ended, h.acme, "u-ended", "disconnected", func(c conn) bool { return c.State == workflows.StateDisconnected })
	if r := h.call(t, "POST", "/v1/connections", h.acme, "u-ended", map[string]any{}); r.status != 201 {
		t.Errorf("create after the clean-up: %d %s", r.status, r.body)
	}
}

// TestRepairTerminatedWorkflow: an operator terminated a connected
// mailbox's workflow in Temporal; a repair takes it up from where it was,
// and a repair of a running workflow, or by a user's key, is refused.
func TestRepairTerminatedWorkflow(t *testing.T) {
	h := newHarness(t, graphsim.Options{})
	ctx := context.Background()
	e := h.e
	if _, err := e.Ctl.Generate(ctx, e.Ada.UPN, graphsim.GenerateSpec{Count: 20, Days: 5, Folders: []string{"inbox"}, Seed: 3}); err != nil {
		t.Fatal(err)
	}
	r := h.call(t, "POST", "/v1/connections", h.acme, "u-ada", map[string]any{"backfill_days": 30, "folders": []string{"inbox"}, "login_hint": e.Ada.UPN})
	var c conn
	r.json(t, &c)
	if r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	if r := h.consent(t, c.AuthorizeURL); r.status != 200 {
		t.Fatalf("consent: %d %s", r.status, r.body)
	}
	h.waitConn(t, c.ID, h.acme, "u-ada", "backfilled", func(c conn) bool { return c.State == workflows.StateActive && c.MessageCount >= 20 })
	// The Temporal UI's summary and current details say what it is and
	// where it stands, without a secret.
	desc, err := e.Temporal.DescribeWorkflowExecution(ctx, workflows.ConnectionWorkflowID(c.ID), "")
	if err != nil {
		t.Fatal(err)
	}
	var summary string
	if p := desc.GetExecutionConfig().GetUserMetadata().GetSummary(); p == nil || converter.GetDefaultDataConverter().FromPayload(p, &summary) != nil ||
		!strings.Contains(summary, c.ID) || !strings.Contains(summary, "pending_consent") {
		t.Errorf("the workflow's summary: %q", summary)
	}
	v, err := e.Temporal.QueryWorkflow(ctx, workflows.ConnectionWorkflowID(c.ID), "", "__temporal_workflow_metadata")
	var md sdkpb.WorkflowMetadata
	if err != nil || v.Get(&md) != nil || !strings.Contains(md.GetCurrentDetails(), "**State** active") || !strings.Contains(md.GetCurrentDetails(), e.Ada.UPN) {
		t.Errorf("the workflow's current details: %q %v", md.GetCurrentDetails(), err)
	}
	path := "/v1/connections/" + c.ID + "/repair"
	if r := h.call(t, "POST", path, h.acmeAdmin, "", nil); r.status != 409 || r.code() != "workflow_running" {
		t.Errorf("repair of a running workflow: %d %s", r.status, r.body)
	}
	if r := h.call(t, "POST", path, h.acme, "u-ada", nil); r.status != 403 || r.code() != "admin_required" {
		t.Errorf("repair with a user's key: %d %s", r.status, r.body)
	}
	if err := e.Temporal.TerminateWorkflow(ctx, workflows.ConnectionWorkflowID(c.ID), "", "operator"); err != nil {
		t.Fatal(err)
	}
	h.call(t, "GET", "/v1/connections/"+c.ID, h.acmeAdmin, "", nil).json(t, &c)
	if c.Reason != workflows.ReasonWorkflowEnded {
		t.Fatalf("a terminated connection shows %+v", c)
	}
	if r := h.call(t, "POST", path, h.acmeAdmin, "", nil); r.status != 200 {
		t.Fatalf("repair: %d %s", r.status, r.body)
	}
	got := h.waitConn(t, c.ID, h.acmeAdmin, "", "running again", func(c conn) bool { return c.Source == "workflow" && c.State == workflows.StateActive })
	if got.Reason == workflows.ReasonWorkflowEnded || got.MessageCount < 20 {
		t.Errorf("repaired: %+v", got)
	}
	// Still connected, from where it was: new mail is synced by a resync.
	if _, err := e.Ctl.Generate(ctx, e.Ada.UPN, graphsim.GenerateSpec{Count: 5, Days: 1, Folders: []string{"inbox"}, Seed: 4}); err != nil {
		t.Fatal(err)
	}
	if r := h.call(t, "POST", "/v1/connections/"+c.ID+"/resync", h.acmeAdmin, "", nil); r.status != 202 {
		t.Errorf("resync after the repair: %d %s", r.status, r.body)
	}
	h.waitConn(t, c.ID, h.acmeAdmin, "", "new mail synced after the repair", func(c conn) bool { return c.MessageCount >= got.MessageCount+5 })
	if r := h.call(t, "DELETE", "/v1/connections/"+c.ID, h.acmeAdmin, "", nil); r.status != 202 {
		t.Fatalf("disconnect: %d %s", r.status, r.body)
	}
	h.waitConn(t, c.ID, h.acmeAdmin, "", "disconnected", func(c conn) bool { return c.State == workflows.StateDisconnected })
	if r := h.call(t, "POST", path, h.acmeAdmin, "", nil); r.status != 409 || r.code() != "connection_ended" {
		t.Errorf("repair of a disconnected connection: %d %s", r.status, r.body)
	}
}

// TestRepairDuringBackfill: a connection's workflow terminated while its
// backfill runs (a terminated parent takes the backfill down with it) is
// repaired from before the backfill started: the new run starts it again,
// it resumes and completes, and the mailbox is whole.
func TestRepairDuringBackfill(t *testing.T) {
	h := newHarness(t, graphsim.Options{})
	ctx := context.Background()
	e := h.e
	const n = 120
	if _, err := e.Ctl.Generate(ctx, e.Ada.UPN, graphsim.GenerateSpec{Count: n, Days: 5, Folders: []string{"inbox"}, Seed: 5}); err != nil {
		t.Fatal(err)
	}
	// Slow delta pages (the backfill's) keep it running long enough to be
	// cut: its first activity is still paging when the workflow ends.
	if err := e.Ctl.SetFault(ctx, graphsim.Fault{Endpoint: "delta", Latency: time.Second}); err != nil {
		t.Fatal(err)
	}
	r := h.call(t, "POST", "/v1/connections", h.acme, "u-ada", map[string]any{"backfill_days": 30, "folders": []string{"inbox"}, "login_hint": e.Ada.UPN})
	var c conn
	r.json(t, &c)
	if r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	if r := h.consent(t, c.AuthorizeURL); r.status != 200 {
		t.Fatalf("consent: %d %s", r.status, r.body)
	}
	h.waitConn(t, c.ID, h.acme, "u-ada", "backfilling", func(c conn) bool {
		return c.State == workflows.StateActive && c.Backfill != nil && c.Backfill.Running
	})
	if err := e.Temporal.TerminateWorkflow(ctx, workflows.ConnectionWorkflowID(c.ID), "", "operator"); err != nil {
		t.Fatal(err)
	}
	if err := e.Ctl.SetFault(ctx, graphsim.Fault{Endpoint: "delta"}); err != nil {
		t.Fatal(err)
	}
	if r := h.call(t, "POST", "/v1/connections/"+c.ID+"/repair", h.acmeAdmin, "", nil); r.status != 200 {
		t.Fatalf("repair: %d %s", r.status, r.body)
	}
	h.waitConn(t, c.ID, h.acmeAdmin, "", "backfilled after the repair", func(c conn) bool {
		return c.Source == "workflow" && c.State == workflows.StateActive && c.Backfill != nil && !c.Backfill.Running && c.Backfill.CompletedAt != nil && c.MessageCount >= n
	})
}

// TestCallbackSlowWorkflow: a callback whose connection's workflow is slow
// to take the consent (its worker busy starting many connections) is not
// told that something failed: past the hand-off timeout it waits while
// Temporal answers, and once its time runs out it says the mailbox is being
// connected (202, or status=pending on the return URL); the connection then
// completes without the user.
func TestCallbackSlowWorkflow(t *testing.T) {
	h := newHarness(t, graphsim.Options{}, func(d *api.Deps) { d.CallbackTimeout = 4 * time.Second })
	h.e.Connect.HandoffTimeout = time.Second
	for _, tc := range []struct {
		name      string
		user, upn string
		returnURL string
	}{
		{"page", "u-slow1", "slow1@contoso.example", ""},
		{"return URL", "u-slow2", "slow2@contoso.example", "https://app.example/done"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := h.e.Ctl.AddUser(t.Context(), graphsim.UserSpec{Tenant: "contoso.example", UPN: tc.upn, DisplayName: "Slow"}); err != nil {
				t.Fatal(err)
			}
			h.e.StopWorker()
			body := map[string]any{"login_hint": tc.upn}
			if tc.returnURL != "" {
				body["return_url"] = tc.returnURL
			}
			var c conn
			h.call(t, "POST", "/v1/connections", h.acme, tc.user, body).json(t, &c)
			q := h.callbackQuery(t, c.AuthorizeURL)
			code, _ := url.ParseQuery(q)
			r := h.call(t, "GET", "/v1/oauth/callback?"+q, "", "", nil)
			h.e.StartWorker()
			if strings.Contains(string(r.body), code.Get("code")) || strings.Contains(r.header.Get("Location"), code.Get("code")) {
				t.Errorf("the answer shows the code")
			}
			if tc.returnURL == "" {
				if r.status != 202 || !strings.Contains(string(r.body), "being connected") {
					t.Errorf("callback of a slow workflow: %d %s", r.status, r.body)
				}
			} else {
				loc, _ := url.Parse(r.header.Get("Location"))
				if r.status != 303 || loc.Host != "app.example" || loc.Query().Get("status") != "pending" || loc.Query().Get("connection_id") != c.ID {
					t.Errorf("callback of a slow workflow with a return URL: %d %s", r.status, r.header.Get("Location"))
				}
			}
			h.waitConn(t, c.ID, h.acme, tc.user, "connected without the user", func(c conn) bool { return c.State == workflows.StateActive })
		})
	}
}
