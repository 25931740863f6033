package api_test

import (
	"context"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/outlookd/outlookd/graphsim"
	"github.com/outlookd/outlookd/internal/browsertest"
)

// useConsentApp switches the engine to an app registration that shows the
// simulator's consent page (no automatic consent), redirecting to the
// API's callback.
func (h *harness) useConsentApp(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	app, err := h.e.Ctl.AddApp(ctx, graphsim.AppSpec{Name: "outlookd", RedirectURIs: []string{h.url + "/v1/oauth/callback"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.e.Vault.Tokens().PutAppSecret(ctx, app.Secrets[0].Value); err != nil {
		t.Fatal(err)
	}
	h.e.Connect.Identity.ClientID = app.ClientID
	h.e.Acts.Identity.ClientID = app.ClientID
}

// signInWithBrowser opens an authorize URL in Chromium, accepts on the
// simulator's consent page, and returns the text of the page
// the browser lands on (the API's callback page).
func signInWithBrowser(t *testing.T, authURL string) (title, lead, mailbox, advice string) {
	t.Helper()
	ctx := browsertest.New(t)
	if err := chromedp.Do(ctx, chromedp.Navigate(authURL), chromedp.WaitVisible(chromedp.ID("accept")), chromedp.Click(chromedp.ID("accept")),
		chromedp.WaitVisible(chromedp.ID("title"))); err != nil {
		t.Fatalf("browser: %v", err)
	}
	// Each element's text, or "" when the page has no such element.
	text := func(id string) string {
		v, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(document.getElementById("`+id+`") || {textContent: ""}).textContent`))
		if err != nil {
			t.Fatalf("read #%s: %v", id, err)
		}
		return strings.TrimSpace(v)
	}
	title, lead, mailbox, advice = text("title"), text("lead"), text("mailbox"), text("advice")
	if html, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.documentElement.outerHTML`)); strings.Contains(html, "code=") {
		t.Error("the page shows the authorization code")
	}
	return title, lead, mailbox, advice
}

// TestCallbackPagesInChromium: a person consents on the simulator's page
// in a real browser and lands on the callback page naming the mailbox; a
// user of a tenant that requires admin consent lands on a page telling
// them to ask their administrator.
func TestCallbackPagesInChromium(t *testing.T) {
	browsertest.Chromium(t)
	h := newHarness(t, graphsim.Options{})
	h.useConsentApp(t)
	r := h.call(t, "POST", "/v1/connections", h.acme, "u-ada", map[string]any{"login_hint": h.e.Ada.UPN})
	var c conn
	r.json(t, &c)
	if r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	title, _, mailbox, _ := signInWithBrowser(t, c.AuthorizeURL)
	if title != "Your mailbox is connected" || mailbox != h.e.Ada.UPN {
		t.Errorf("success page: %q, mailbox %q", title, mailbox)
	}

	ctx := context.Background()
	if _, err := h.e.Ctl.AddTenant(ctx, graphsim.TenantSpec{Domain: "fabrikam.example", Name: "Fabrikam", AdminConsentRequired: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.e.Ctl.AddUser(ctx, graphsim.UserSpec{Tenant: "fabrikam.example", UPN: "kim@fabrikam.example"}); err != nil {
		t.Fatal(err)
	}
	r = h.call(t, "POST", "/v1/connections", h.acme, "u-kim", map[string]any{"login_hint": "kim@fabrikam.example"})
	r.json(t, &c)
	title, lead, _, advice := signInWithBrowser(t, c.AuthorizeURL)
	if title != "Your mailbox was not connected" || !strings.Contains(lead, "administrator") || !strings.Contains(advice, "administrator must approve") && !strings.Contains(advice, "IT administrator") {
		t.Errorf("admin consent page: %q / %q / %q", title, lead, advice)
	}
}
