package api_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"log/slog"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/outlookd/outlookd/api"
	"github.com/outlookd/outlookd/apikey"
	"github.com/outlookd/outlookd/connect"
	"github.com/outlookd/outlookd/graphsim"
	"github.com/outlookd/outlookd/graphsim/simtest"
	"github.com/outlookd/outlookd/identity"
	"github.com/outlookd/outlookd/internal/browsertest"
	"github.com/outlookd/outlookd/internal/testenv"
	"github.com/outlookd/outlookd/store"
)

type adminLink struct {
	ID        string   `json:"id"`
	Tenant    string   `json:"tenant"`
	Scopes    []string `json:"scopes"`
	URL       string   `json:"url"`
	ExpiresAt string   `json:"expires_at"`
}

type tenantConsent struct {
	TenantID    string   `json:"tenant_id"`
	Tenant      string   `json:"tenant"`
	State       string   `json:"state"`
	Scopes      []string `json:"scopes"`
	RequestedBy string   `json:"requested_by"`
	AnsweredAt  *string  `json:"answered_at"`
	Reason      string   `json:"reason"`
	ReasonText  string   `json:"reason_text"`
}

var pageTitle = regexp.MustCompile(`<h1[^>]*id="title">([^<]*)</h1>`)
var pageLead = regexp.MustCompile(`<p id="lead">([^<]*)</p>`)

// title is the title of a callback page.
func (r response) title() string {
	if m := pageTitle.FindSubmatch(r.body); m != nil {
		return string(m[1])
	}
	return ""
}

func (r response) lead() string {
	if m := pageLead.FindSubmatch(r.body); m != nil {
		return string(m[1])
	}
	return ""
}

// adminAnswer opens an admin-consent link at graphsim with extra
// parameters (login_hint: the administrator signs in on the automatic
// path; or the consent page's form) and returns the query graphsim sends
// the administrator back to the admin callback with.
func (h *harness) adminAnswer(t *testing.T, link string, extra url.Values) string {
	t.Helper()
	u, err := url.Parse(link)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	for k, vs := range extra {
		q[k] = vs
	}
	u.RawQuery = q.Encode()
	r, err := simtest.NoRedirect.PostForm(u.Scheme+"://"+u.Host+u.Path, q)
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	loc := r.Header.Get("Location")
	if !strings.HasPrefix(loc, h.url+"/v1/oauth/admin-callback?") {
		t.Fatalf("admin consent answered %d, redirecting to %q", r.StatusCode, loc)
	}
	back, _ := url.Parse(loc)
	return back.RawQuery
}

func (h *harness) adminCallback(t *testing.T, query string) response {
	t.Helper()
	return h.call(t, "GET", "/v1/oauth/admin-callback?"+query, "", "", nil)
}

// newConsentHarness is the API over Postgres and graphsim alone (admin
// consent links need neither Temporal nor Vault), with the organisations
// and keys of newHarness.
func newConsentHarness(t *testing.T) (*harness, *simtest.Tenant, *store.Store) {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, testenv.Postgres(t), 4)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	sim := simtest.Start(t, graphsim.Options{})
	svc := &connect.Service{Store: st, Identity: identity.Config{AuthorityURL: sim.Sim.AuthorityURL(), Tenant: "common", ClientID: sim.App.ClientID}}
	srv := httptest.NewServer(api.NewRouter(api.Deps{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Store: st, Connect: svc, RateLimit: 1000, RateBurst: 1000}))
	t.Cleanup(srv.Close)
	svc.Identity.AdminRedirectURL = srv.URL + "/v1/oauth/admin-callback"
	if err := sim.Sim.AddRedirectURI(sim.App.ClientID, svc.Identity.AdminRedirectURL); err != nil {
		t.Fatal(err)
	}
	h := &harness{url: srv.URL}
	suffix := strings.ToLower(randomSuffix())
	for _, k := range []struct {
		dst   *string
		org   string
		admin bool
	}{{&h.acme, "acme-" + suffix, false}, {&h.acmeAdmin, "acme-" + suffix, true}, {&h.globex, "globex-" + suffix, true}} {
		if _, err := st.UpsertOrg(ctx, k.org, k.org, 0); err != nil {
			t.Fatal(err)
		}
		key, id, hash := apikey.New()
		if err := st.InsertAPIKey(ctx, store.APIKey{ID: id, OrgID: k.org, SecretHash: hash, Admin: k.admin}); err != nil {
			t.Fatal(err)
		}
		*k.dst = key
	}
	return h, sim, st
}

func randomSuffix() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// TestAdminConsentLink: an admin key makes a link for a tenant; the
// administrator's consent through it is recorded once and shown; a
// refusal, a forged, a replayed and an expired state are each told apart
// and record nothing more.
func TestAdminConsentLink(t *testing.T) {
	h, sim, st := newConsentHarness(t)
	ctx := context.Background()
	tid := sim.Tenant.ID

	t.Run("validation", func(t *testing.T) {
		for _, tc := range []struct {
			name, key string
			body      any
			status    int
			code      string
		}{
			{"member key", h.acme, map[string]any{"tenant": tid}, 403, "admin_required"},
			{"no tenant", h.acmeAdmin, map[string]any{}, 422, "invalid_tenant"},
			{"common", h.acmeAdmin, map[string]any{"tenant": "common"}, 422, "invalid_tenant"},
			{"consumers", h.acmeAdmin, map[string]any{"tenant": "consumers"}, 422, "invalid_tenant"},
			{"not a tenant", h.acmeAdmin, map[string]any{"tenant": "../organizations"}, 422, "invalid_tenant"},
			{"no feature", h.acmeAdmin, map[string]any{"tenant": tid, "features": map[string]bool{}}, 422, "invalid_features"},
			{"tenant not a string", h.acmeAdmin, `{"tenant": 5}`, 400, "invalid_field"},
			{"unknown field", h.acmeAdmin, map[string]any{"tenant": tid, "scope": "Mail.Read"}, 400, "unknown_field"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				r := h.call(t, "POST", "/v1/tenants/admin-consent", tc.key, "u-it", tc.body)
				if r.status != tc.status || r.code() != tc.code {
					t.Errorf("%d %s, want %d %s", r.status, r.body, tc.status, tc.code)
				}
			})
		}
		if r := h.call(t, "GET", "/v1/tenants/"+tid, h.acme, "u-it", nil); r.status != 403 || r.code() != "admin_required" {
			t.Errorf("member key reads a tenant: %d %s", r.status, r.body)
		}
		if r := h.call(t, "GET", "/v1/tenants/"+tid, h.acmeAdmin, "", nil); r.status != 404 || r.code() != "tenant_not_found" {
			t.Errorf("tenant without consent: %d %s", r.status, r.body)
		}
	})

	// A link for Contoso's tenant ID, for reading only.
	r := h.call(t, "POST", "/v1/tenants/admin-consent", h.acmeAdmin, "u-it", map[string]any{"tenant": strings.ToUpper(tid), "features": map[string]bool{"read": true}})
	var l adminLink
	r.json(t, &l)
	if r.status != 201 || l.Tenant != tid || !strings.HasPrefix(l.ID, "ac_") || l.ExpiresAt == "" {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	u, _ := url.Parse(l.URL)
	q := u.Query()
	want := []string{"offline_access", "https://graph.microsoft.com/User.Read", "https://graph.microsoft.com/Mail.Read"}
	if u.Path != "/"+tid+"/v2.0/adminconsent" || q.Get("client_id") != sim.App.ClientID || q.Get("redirect_uri") != h.url+"/v1/oauth/admin-callback" ||
		!slices.Equal(strings.Fields(q.Get("scope")), want) || !slices.Equal(l.Scopes, want) || !strings.HasPrefix(q.Get("state"), l.ID+".") {
		t.Errorf("link %s", l.URL)
	}
	var tc tenantConsent
	r = h.call(t, "GET", "/v1/tenants/"+tid, h.acmeAdmin, "", nil)
	r.json(t, &tc)
	if r.status != 200 || tc.State != "pending" || tc.RequestedBy != "u-it" {
		t.Errorf("before the answer: %d %s", r.status, r.body)
	}
	// The state nonce is in the link only: the registry keeps its hash.
	nonce := strings.TrimPrefix(q.Get("state"), l.ID+".")
	var leaked bool
	if err := st.Pool().QueryRow(ctx, `SELECT count(*) > 0 FROM admin_consents WHERE row_to_json(admin_consents)::text LIKE '%' || $1 || '%'`, nonce).Scan(&leaked); err != nil || leaked {
		t.Errorf("the state nonce is in the registry (%v)", err)
	}
	// An organisation's links are its own.
	if r := h.call(t, "GET", "/v1/tenants/"+tid, h.globex, "", nil); r.status != 404 {
		t.Errorf("another organisation reads the tenant: %d %s", r.status, r.body)
	}

	t.Run("forged state", func(t *testing.T) {
		for _, state := range []string{l.ID + ".forged", l.ID, "ac_nothing.x", "conn_0123456789abcdef.x", ""} {
			r := h.adminCallback(t, url.Values{"state": {state}, "admin_consent": {"True"}, "tenant": {tid}}.Encode())
			if r.status != 400 || r.title() != "This approval link is not valid" {
				t.Errorf("state %q: %d %q", state, r.status, r.title())
			}
		}
		// A redirect with the right state but no answer records nothing.
		if r := h.adminCallback(t, url.Values{"state": {q.Get("state")}, "admin_consent": {"True"}}.Encode()); r.status != 400 {
			t.Errorf("no answer: %d %q", r.status, r.title())
		}
	})

	// The administrator consents.
	answer := h.adminAnswer(t, l.URL, url.Values{"login_hint": {sim.Admin.UPN}})
	r = h.adminCallback(t, answer)
	if r.status != 200 || r.title() != "You approved the app for your organisation" || !strings.Contains(r.lead(), "Mail.Read") {
		t.Fatalf("consent page: %d %q %q", r.status, r.title(), r.lead())
	}
	if strings.Contains(string(r.body), nonce) {
		t.Error("the page shows the state nonce")
	}
	r = h.call(t, "GET", "/v1/tenants/"+tid, h.acmeAdmin, "", nil)
	r.json(t, &tc)
	if r.status != 200 || tc.State != "granted" || tc.TenantID != tid || !slices.Equal(tc.Scopes, []string{"Mail.Read", "User.Read"}) || tc.AnsweredAt == nil {
		t.Errorf("after the consent: %d %s", r.status, r.body)
	}
	answeredAt := *tc.AnsweredAt

	t.Run("replayed", func(t *testing.T) {
		r := h.adminCallback(t, answer)
		if r.status != 409 || r.title() != "This approval link was used already" || !strings.Contains(r.lead(), "approved") {
			t.Errorf("replay: %d %q %q", r.status, r.title(), r.lead())
		}
		// A replay carrying a refusal changes nothing either.
		refusal := url.Values{"state": {q.Get("state")}, "admin_consent": {"True"}, "error": {"consent_required"}, "error_description": {"AADSTS65004: declined"}}
		if r := h.adminCallback(t, refusal.Encode()); r.status != 409 {
			t.Errorf("replayed refusal: %d %q", r.status, r.title())
		}
		var again tenantConsent
		h.call(t, "GET", "/v1/tenants/"+tid, h.acmeAdmin, "", nil).json(t, &again)
		if again.State != "granted" || again.AnsweredAt == nil || *again.AnsweredAt != answeredAt {
			t.Errorf("after the replay: %+v", again)
		}
	})

	t.Run("refused", func(t *testing.T) {
		for _, tc := range []struct {
			name, tenant string
			answer       url.Values
			reason, lead string
		}{
			// Microsoft's v2 error redirect says admin_consent=True too.
			{"declined", "contoso.example", url.Values{"sim_user": {sim.Admin.ID}, "sim_decision": {"cancel"}}, "consent_declined", "declined"},
			{"not an administrator", "organizations", url.Values{"login_hint": {sim.Ada.UPN}}, "admin_consent_required", "not an administrator"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				r := h.call(t, "POST", "/v1/tenants/admin-consent", h.acmeAdmin, "", map[string]any{"tenant": tc.tenant})
				var l adminLink
				r.json(t, &l)
				answer := h.adminAnswer(t, l.URL, tc.answer)
				if aq, _ := url.ParseQuery(answer); aq.Get("admin_consent") != "True" || aq.Get("error") == "" {
					t.Fatalf("graphsim's refusal: %s", answer)
				}
				r = h.adminCallback(t, answer)
				if r.status != 403 || r.title() != "The app was not approved" || !strings.Contains(r.lead(), tc.lead) {
					t.Errorf("refusal page: %d %q %q", r.status, r.title(), r.lead())
				}
				var got tenantConsent
				h.call(t, "GET", "/v1/tenants/"+tc.tenant, h.acmeAdmin, "", nil).json(t, &got)
				if got.State != "refused" || got.Reason != tc.reason || got.ReasonText == "" {
					t.Errorf("refusal recorded as %+v", got)
				}
			})
		}
		// The tenant's consent stays the one granted.
		var still tenantConsent
		h.call(t, "GET", "/v1/tenants/"+tid, h.acmeAdmin, "", nil).json(t, &still)
		if still.State != "granted" {
			t.Errorf("after refusals elsewhere: %+v", still)
		}
	})

	t.Run("expired", func(t *testing.T) {
		r := h.call(t, "POST", "/v1/tenants/admin-consent", h.acmeAdmin, "", map[string]any{"tenant": "organizations"})
		var l adminLink
		r.json(t, &l)
		answer := h.adminAnswer(t, l.URL, url.Values{"login_hint": {sim.Admin.UPN}})
		if _, err := st.Pool().Exec(ctx, `UPDATE admin_consents SET expires_at = now() - interval '1 second' WHERE id = $1`, l.ID); err != nil {
			t.Fatal(err)
		}
		r = h.adminCallback(t, answer)
		if r.status != 400 || r.title() != "This approval link has expired" {
			t.Errorf("expired: %d %q", r.status, r.title())
		}
		var answered bool
		if err := st.Pool().QueryRow(ctx, `SELECT answered_at IS NOT NULL FROM admin_consents WHERE id = $1`, l.ID).Scan(&answered); err != nil || answered {
			t.Errorf("an expired link was answered (%v)", err)
		}
	})
}

// TestConnectionNeedsAdminConsent: a user of a tenant that lets only an
// administrator approve apps signs in; the connection ends in
// admin_consent_required with a link for the IT administrator (the same
// link on every read) and tells the app once; the administrator consents
// through it; the same connection's next sign-in connects it, and it
// shows its tenant's consent.
func TestConnectionNeedsAdminConsent(t *testing.T) {
	h := newHarness(t, graphsim.Options{})
	ctx := context.Background()
	fab, err := h.e.Ctl.AddTenant(ctx, graphsim.TenantSpec{Domain: "fabrikam.example", Name: "Fabrikam", AdminConsentRequired: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []graphsim.UserSpec{{Tenant: "fabrikam.example", UPN: "kim@fabrikam.example", DisplayName: "Kim"},
		{Tenant: "fabrikam.example", UPN: "it@fabrikam.example", Admin: true}} {
		if _, err := h.e.Ctl.AddUser(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	r := h.call(t, "POST", "/v1/connections", h.acme, "u-kim", map[string]any{"login_hint": "kim@fabrikam.example", "features": map[string]bool{"read": true, "send": true}})
	var c struct {
		conn
		ReasonText    string         `json:"reason_text"`
		TenantID      string         `json:"tenant_id"`
		AdminConsent  *adminLink     `json:"admin_consent"`
		TenantConsent *tenantConsent `json:"tenant_consent"`
	}
	r.json(t, &c)
	if r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	id := c.ID
	page := h.consent(t, c.AuthorizeURL)
	if page.status != 403 || page.title() != "Your mailbox was not connected" || !strings.Contains(string(page.body), "administrator") {
		t.Errorf("the user's page: %d %q", page.status, page.title())
	}
	get := func() {
		t.Helper()
		c.AdminConsent, c.TenantConsent = nil, nil
		r := h.call(t, "GET", "/v1/connections/"+id, h.acme, "u-kim", nil)
		if r.status != 200 {
			t.Fatalf("get: %d %s", r.status, r.body)
		}
		r.json(t, &c)
	}
	get()
	if c.State != "admin_consent_required" || c.Reason != "admin_consent_required" || c.ReasonText == "" || c.AdminConsent == nil || c.NextAction == "" {
		t.Fatalf("after the refused sign-in: %+v", c)
	}
	link := *c.AdminConsent
	u, _ := url.Parse(link.URL)
	if link.Tenant != "organizations" || u.Path != "/organizations/v2.0/adminconsent" || !slices.Contains(link.Scopes, "https://graph.microsoft.com/Mail.Send") {
		t.Errorf("the connection's link: %+v", link)
	}
	get()
	if c.AdminConsent == nil || c.AdminConsent.URL != link.URL {
		t.Errorf("a second read shows another link: %+v", c.AdminConsent)
	}
	// In a list too.
	var list struct {
		Data []struct {
			ID           string     `json:"id"`
			AdminConsent *adminLink `json:"admin_consent"`
		} `json:"data"`
	}
	h.call(t, "GET", "/v1/connections", h.acme, "u-kim", nil).json(t, &list)
	if len(list.Data) != 1 || list.Data[0].AdminConsent == nil || list.Data[0].AdminConsent.URL != link.URL {
		t.Errorf("listed: %+v", list.Data)
	}
	// The user trying again before the administrator answered changes
	// nothing and tells the app nothing new.
	r = h.call(t, "POST", "/v1/connections/"+id+"/reauthorize", h.acme, "u-kim", map[string]any{"login_hint": "kim@fabrikam.example"})
	r.json(t, &c)
	if r.status != 200 || c.AuthorizeURL == "" {
		t.Fatalf("reauthorize in admin_consent_required: %d %s", r.status, r.body)
	}
	if page := h.consent(t, c.AuthorizeURL); page.status != 403 {
		t.Errorf("second refused sign-in: %d %q", page.status, page.title())
	}

	// Fabrikam's administrator opens the link and consents.
	page = h.adminCallback(t, h.adminAnswer(t, link.URL, url.Values{"login_hint": {"it@fabrikam.example"}}))
	if page.status != 200 || page.title() != "You approved the app for your organisation" {
		t.Fatalf("admin page: %d %q %q", page.status, page.title(), page.lead())
	}
	var tc tenantConsent
	h.call(t, "GET", "/v1/tenants/"+fab.ID, h.acmeAdmin, "", nil).json(t, &tc)
	if tc.State != "granted" || tc.TenantID != fab.ID || tc.RequestedBy != "u-kim" || !slices.Equal(tc.Scopes, []string{"Mail.ReadWrite", "Mail.Send", "User.Read"}) {
		t.Errorf("Fabrikam's consent: %+v", tc)
	}
	get()
	if c.State != "admin_consent_required" || c.TenantConsent == nil || c.TenantConsent.State != "granted" {
		t.Errorf("after the admin consent, before the sign-in: %s %+v", c.State, c.TenantConsent)
	}

	// The user signs in again: connected.
	r = h.call(t, "POST", "/v1/connections/"+id+"/reauthorize", h.acme, "u-kim", map[string]any{"login_hint": "kim@fabrikam.example"})
	r.json(t, &c)
	if page := h.consent(t, c.AuthorizeURL); page.status != 200 || page.title() != "Your mailbox is connected" {
		t.Fatalf("the sign-in after the admin consent: %d %q %q", page.status, page.title(), page.lead())
	}
	h.waitConn(t, id, h.acme, "u-kim", "active", func(x conn) bool { return x.State == "active" })
	get()
	if c.Mailbox != "kim@fabrikam.example" || c.TenantID != fab.ID || c.AdminConsent != nil || c.TenantConsent == nil || c.TenantConsent.TenantID != fab.ID {
		t.Errorf("connected: %+v", c)
	}
	// The app was told once (the active state's event follows the state
	// into the registry).
	var types []string
	for deadline := time.Now().Add(30 * time.Second); !slices.Contains(types, "connection.active") && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		var events struct {
			Data []struct {
				Type         string `json:"type"`
				ConnectionID string `json:"connection_id"`
			} `json:"data"`
		}
		h.call(t, "GET", "/v1/events?limit=100", h.acme, "u-kim", nil).json(t, &events)
		types = nil
		for _, e := range events.Data {
			if e.ConnectionID == id {
				types = append(types, e.Type)
			}
		}
	}
	if n := countOf(types, "connection.admin_consent_required"); n != 1 || !slices.Contains(types, "connection.active") {
		t.Errorf("events %v", types)
	}
	// Disconnecting purges every secret, the admin consent link's included.
	if r := h.call(t, "DELETE", "/v1/connections/"+id, h.acme, "u-kim", nil); r.status != 202 {
		t.Fatalf("disconnect: %d %s", r.status, r.body)
	}
	h.waitConn(t, id, h.acme, "u-kim", "disconnected", func(x conn) bool { return x.State == "disconnected" })
	if n, err := h.e.Vault.Tokens().Count(ctx, id); err != nil || n != 0 {
		t.Errorf("%d secrets left (%v)", n, err)
	}
}

func countOf(xs []string, x string) (n int) {
	for _, v := range xs {
		if v == x {
			n++
		}
	}
	return n
}

// TestAdminConsentPageInChromium: an administrator opens an admin-consent
// link in a real browser, accepts on graphsim's admin consent page, and
// lands on outlookd's page saying, once, that they approved the app.
func TestAdminConsentPageInChromium(t *testing.T) {
	browsertest.Chromium(t)
	h := newHarness(t, graphsim.Options{})
	ctx := context.Background()
	if _, err := h.e.Ctl.AddTenant(ctx, graphsim.TenantSpec{Domain: "fabrikam.example", Name: "Fabrikam", AdminConsentRequired: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.e.Ctl.AddUser(ctx, graphsim.UserSpec{Tenant: "fabrikam.example", UPN: "it@fabrikam.example", DisplayName: "Fabrikam IT", Admin: true}); err != nil {
		t.Fatal(err)
	}
	r := h.call(t, "POST", "/v1/tenants/admin-consent", h.acmeAdmin, "", map[string]any{"tenant": "fabrikam.example"})
	var l adminLink
	r.json(t, &l)
	if r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	title, lead, _, advice := signInWithBrowser(t, l.URL)
	if title != "You approved the app for your organisation" || !strings.Contains(lead, "Mail.Read") || !strings.Contains(advice, "sign in again") {
		t.Errorf("admin page: %q / %q / %q", title, lead, advice)
	}
	var tc tenantConsent
	h.call(t, "GET", "/v1/tenants/fabrikam.example", h.acmeAdmin, "", nil).json(t, &tc)
	if tc.State != "granted" || tc.TenantID == "" {
		t.Errorf("the consent: %+v", tc)
	}
}
