package conformance_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"golang.org/x/oauth2"

	"github.com/outlookd/outlookd/graphsim"
	"github.com/outlookd/outlookd/internal/browsertest"
)

// TestConsentPageInChromium signs in as a person would: open the authorize
// URL, pick a user on the simulator's page, accept, and land on the app's
// redirect URI with a code that redeems.
func TestConsentPageInChromium(t *testing.T) {
	ctx := browsertest.New(t)
	sim, err := graphsim.New(graphsim.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.Start(); err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	// The app's callback: it records what the browser brought back.
	got := make(chan string, 1)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case got <- r.URL.RawQuery:
		default:
		}
		w.Write([]byte("<html><body><h1 id=done>back in the app</h1></body></html>"))
	}))
	defer app.Close()
	demo, err := sim.SeedDemo(graphsim.DemoOptions{RedirectURIs: []string{app.URL + "/cb"}, MessagesPerUser: 5})
	if err != nil {
		t.Fatal(err)
	}
	cfg := &oauth2.Config{ClientID: demo.ClientID, ClientSecret: demo.ClientSecret, RedirectURL: app.URL + "/cb", Scopes: []string{"offline_access", "Mail.Read"},
		Endpoint: oauth2.Endpoint{AuthURL: sim.URL() + "/common/oauth2/v2.0/authorize", TokenURL: sim.URL() + "/common/oauth2/v2.0/token"}}
	verifier := oauth2.GenerateVerifier()

	if err := chromedp.Do(ctx,
		chromedp.Navigate(cfg.AuthCodeURL("browser-state", oauth2.S256ChallengeOption(verifier))),
		chromedp.WaitVisible(chromedp.ID("accept")),
	); err != nil {
		t.Fatalf("open the authorize URL: %v", err)
	}
	appName, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("app-name")))
	if err != nil {
		t.Fatal(err)
	}
	perms, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("permissions")))
	if err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`input[name="sim_user"][value="`+userID(t, sim, "alex@contoso.example")+`"]`)),
		chromedp.Click(chromedp.ID("accept")),
		chromedp.WaitVisible(chromedp.ID("done")),
	); err != nil {
		t.Fatalf("pick a user and accept: %v", err)
	}
	if appName != "outlookd demo" || !strings.Contains(perms, "Read your mail (Mail.Read)") {
		t.Errorf("page showed app %q and permissions %q", appName, perms)
	}
	var raw string
	select {
	case raw = <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("the browser never came back to the app")
	}
	q, _ := parseQuery(raw)
	if q.Get("state") != "browser-state" || q.Get("code") == "" {
		t.Fatalf("callback query = %s", raw)
	}
	tok, err := cfg.Exchange(context.Background(), q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	if c := claims(t, tok.AccessToken); c["upn"] != "alex@contoso.example" {
		t.Errorf("signed in as %v, picked alex", c["upn"])
	}
}

func userID(t *testing.T, sim *graphsim.Sim, upn string) string {
	t.Helper()
	truth, err := sim.User(upn)
	if err != nil {
		t.Fatal(err)
	}
	return truth.ID
}
