package main

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	"github.com/outlookd/outlookd/graphsim"
	"github.com/outlookd/outlookd/workflows"
)

// adminConsent: a tenant lets only an administrator approve apps. Its
// user's first sign-in ends in admin_consent_required with a link for the
// IT administrator (the app is told once); the administrator consents
// through the link; the user signs in again and the connection backfills
// and goes live, compared with the truth; then it disconnects, leaving
// nothing in Vault.
func adminConsent(ctx context.Context, w *world, _ int) (result, error) {
	var r result
	const kim, it = "kim@fabrikam.example", "it@fabrikam.example"
	fab, err := w.sim.AddTenant(ctx, graphsim.TenantSpec{Domain: "fabrikam.example", Name: "Fabrikam", AdminConsentRequired: true})
	if err != nil {
		return r, err
	}
	for _, u := range []graphsim.UserSpec{{Tenant: fab.Domain, UPN: kim, DisplayName: "Kim Akers"}, {Tenant: fab.Domain, UPN: it, DisplayName: "Fabrikam IT", Admin: true}} {
		if _, err := w.sim.AddUser(ctx, u); err != nil {
			return r, err
		}
	}
	if _, err := w.sim.Generate(ctx, kim, graphsim.GenerateSpec{Count: 200, Days: 20, Folders: workflows.DefaultFolders, Seed: 16}); err != nil {
		return r, err
	}

	// The user's first sign-in.
	var c conn
	if st, err := w.call("POST", "/v1/connections", map[string]any{"login_hint": kim}, &c); err != nil || st != 201 {
		return r, fmt.Errorf("create: %d %v", st, err)
	}
	if st, err := w.follow(c.AuthorizeURL, "/v1/oauth/callback"); err != nil || st != 403 {
		return r, fmt.Errorf("the first sign-in: the callback answered %d (%v), want 403", st, err)
	}
	var waiting struct {
		State        string `json:"state"`
		Reason       string `json:"reason"`
		AdminConsent *struct {
			URL    string `json:"url"`
			Tenant string `json:"tenant"`
		} `json:"admin_consent"`
	}
	if st, err := w.call("GET", "/v1/connections/"+c.ID, nil, &waiting); err != nil || st != 200 {
		return r, fmt.Errorf("read the connection: %d %v", st, err)
	}
	if waiting.State != workflows.StateAdminConsentRequired || waiting.Reason != "admin_consent_required" || waiting.AdminConsent == nil {
		return r, fmt.Errorf("after the first sign-in: %+v", waiting)
	}
	// The state is read from the workflow; its event reaches the feed with
	// the registry's next write, a moment later.
	if err := waitFor(10*time.Second, func() error {
		if n := w.events(c.ID, "connection.admin_consent_required"); n != 1 {
			return fmt.Errorf("%d connection.admin_consent_required events, want 1", n)
		}
		return nil
	}); err != nil {
		return r, err
	}

	// The IT administrator opens the link and consents (graphsim's
	// automatic path: the administrator named by login_hint).
	u, err := url.Parse(waiting.AdminConsent.URL)
	if err != nil {
		return r, err
	}
	q := u.Query()
	q.Set("login_hint", it)
	u.RawQuery = q.Encode()
	if st, err := w.follow(u.String(), "/v1/oauth/admin-callback"); err != nil || st != 200 {
		return r, fmt.Errorf("the admin consent: the callback answered %d (%v), want 200", st, err)
	}
	var tenant struct {
		State    string   `json:"state"`
		TenantID string   `json:"tenant_id"`
		Scopes   []string `json:"scopes"`
	}
	if st, err := w.call("GET", "/v1/tenants/"+fab.ID, nil, &tenant); err != nil || st != 200 || tenant.State != "granted" || tenant.TenantID != fab.ID {
		return r, fmt.Errorf("the tenant's consent: %d %+v %v", st, tenant, err)
	}
	// The same link again changes nothing.
	if st, err := w.follow(u.String(), "/v1/oauth/admin-callback"); err != nil || st != 409 {
		return r, fmt.Errorf("the link used again: the callback answered %d (%v), want 409", st, err)
	}

	// The user signs in again.
	start := time.Now()
	if st, err := w.call("POST", "/v1/connections/"+c.ID+"/reauthorize", map[string]any{"login_hint": kim}, &c); err != nil || st != 200 {
		return r, fmt.Errorf("reauthorize: %d %v", st, err)
	}
	if err := w.consent(c.AuthorizeURL); err != nil {
		return r, fmt.Errorf("the sign-in after the admin consent: %w", err)
	}
	c, err = w.waitConn(c.ID, 5*time.Minute, "backfilled and live", func(c conn) bool {
		return c.State == workflows.StateActive && c.Backfill != nil && c.Backfill.CompletedAt != nil && c.SyncMode != ""
	})
	if err != nil {
		return r, err
	}
	r.add("connected_s", fmt.Sprintf("%.1f", time.Since(start).Seconds()))
	if _, err := churn(ctx, w, kim, covered(c), 5); err != nil {
		return r, err
	}
	if r.lost, r.dup, err = w.converge(ctx, c, kim, time.Minute); err != nil {
		return r, err
	}
	r.add("messages", must(w.st.CountMessages(ctx, c.ID)))
	r.add("events", w.events(c.ID, "connection.admin_consent_required"))
	return r, gone(ctx, w, c.ID, false)
}

// follow opens a link at graphsim, expects to be sent back to the API at
// path, follows that redirect and answers the API's status (the page's
// body is kept for the leak scan).
func (w *world) follow(link, path string) (int, error) {
	resp, err := noRedirect.Get(link)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if !strings.HasPrefix(loc, w.apiURL+path+"?") {
		return 0, fmt.Errorf("graphsim sent the browser to %q", loc)
	}
	back, err := noRedirect.Get(loc)
	if err != nil {
		return 0, err
	}
	defer back.Body.Close()
	raw, _ := io.ReadAll(back.Body)
	w.mu.Lock()
	w.responses.Write(raw)
	w.mu.Unlock()
	return back.StatusCode, nil
}
