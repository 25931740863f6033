package graphsim_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"golang.org/x/oauth2/clientcredentials"

	"github.com/outlookd/outlookd/graphsim"
)

// Graph's global limit per app holds across every mailbox (and tenant) the
// app reaches, beside Outlook's per-mailbox limits; other apps keep their
// own budget (docs/graph.md#throttling).
func TestAppRequestLimit(t *testing.T) {
	o := newOrg(t, graphsim.Options{AppRequests: 6, AppWindow: time.Minute})
	ctx := context.Background()
	app := o.org.AppToken(t)
	mailboxes := []string{"ada@contoso.example", "support@contoso.example", "svc-outlookd@contoso.example"}
	for i := range 6 {
		if st, _ := o.graphGet(t, app, "/users/"+mailboxes[i%3]+"/messages", nil); st != 200 {
			t.Fatalf("request %d: %d", i+1, st)
		}
	}
	var ge graphErr
	st, hdr := o.graphGet(t, app, "/users/admin@contoso.example/mailFolders", &ge)
	retry, _ := strconv.Atoi(hdr.Get("Retry-After"))
	if st != 429 || ge.Error.Code != "TooManyRequests" || retry < 1 || retry > 10 {
		t.Fatalf("seventh request: %d %+v, Retry-After %q", st, ge.Error, hdr.Get("Retry-After"))
	}
	// Another app of the tenant is not held back.
	if err := o.ctl.GrantConsent(ctx, graphsim.ConsentSpec{Tenant: o.tenant.ID, ClientID: o.app.ClientID, Roles: []string{"Mail.Read"}}); err != nil {
		t.Fatal(err)
	}
	cc := clientcredentials.Config{ClientID: o.app.ClientID, ClientSecret: o.app.Secrets[0].Value, TokenURL: o.sim.URL() + "/" + o.tenant.ID + "/oauth2/v2.0/token", Scopes: []string{graphsim.GraphResource + "/.default"}}
	other, err := cc.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := o.graphGet(t, other.AccessToken, "/users/ada@contoso.example/messages", nil); st != 200 {
		t.Errorf("another app: %d", st)
	}
	// After Retry-After the app goes on; a $batch counts as its requests.
	o.sim.AdvanceClock(time.Duration(retry) * time.Second)
	batch := map[string]any{"requests": []map[string]any{
		{"id": "1", "method": "GET", "url": "/users/ada@contoso.example/messages"},
		{"id": "2", "method": "GET", "url": "/users/support@contoso.example/messages"},
	}}
	var br struct {
		Responses []struct {
			ID     string `json:"id"`
			Status int    `json:"status"`
		} `json:"responses"`
	}
	// Graph runs a batch's requests in no set order (without dependsOn):
	// one of the two takes the token the wait gave back.
	st, _ = o.graphDo(t, app, "POST", "/$batch", batch, &br)
	if st != 200 || len(br.Responses) != 2 || br.Responses[0].Status+br.Responses[1].Status != 200+429 {
		t.Errorf("batch after the wait: %d %+v", st, br)
	}
	c, _ := o.ctl.Counters(ctx)
	if c["throttled.app_limit"] != 2 {
		t.Errorf("counters = %v", c)
	}
}

// The directory charges resource units per app and tenant: GET /users costs
// 2, $select takes one off; over the budget, 429 with x-ms-throttle-scope;
// another tenant of the same app has its own budget.
func TestDirectoryResourceUnits(t *testing.T) {
	o := newOrg(t, graphsim.Options{DirectoryResourceUnits: 5, DirectoryWindow: time.Minute})
	ctx := context.Background()
	app := o.org.AppToken(t)
	for i, want := range []string{"2", "2"} {
		if st, hdr := o.graphGet(t, app, "/users", nil); st != 200 || hdr.Get("x-ms-resource-unit") != want {
			t.Fatalf("list %d: %d, %q units", i+1, st, hdr.Get("x-ms-resource-unit"))
		}
	}
	var ge graphErr
	st, hdr := o.graphGet(t, app, "/users", &ge)
	if st != 429 || ge.Error.Code != "TooManyRequests" || hdr.Get("Retry-After") == "" ||
		hdr.Get("x-ms-throttle-scope") != "Tenant_Application/ReadWrite/"+o.org.Daemon.ClientID+"/"+o.tenant.ID {
		t.Fatalf("third list: %d %+v %v", st, ge.Error, hdr)
	}
	if st, hdr := o.graphGet(t, app, "/users/delta?$select=displayName", nil); st != 200 || hdr.Get("x-ms-resource-unit") != "1" || hdr.Get("x-ms-throttle-limit-percentage") == "" {
		t.Errorf("delta with $select: %d %v", st, hdr)
	}
	// The same app in another tenant.
	if _, err := o.ctl.AddTenant(ctx, graphsim.TenantSpec{Domain: "fabrikam.example"}); err != nil {
		t.Fatal(err)
	}
	if err := o.ctl.GrantConsent(ctx, graphsim.ConsentSpec{Tenant: "fabrikam.example", ClientID: o.org.Daemon.ClientID, Roles: []string{"User.Read.All"}}); err != nil {
		t.Fatal(err)
	}
	fab, err := o.org.AppCredentials("fabrikam.example").Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := o.graphGet(t, fab.AccessToken, "/users", &ge); st != 200 {
		t.Errorf("another tenant: %d %+v", st, ge.Error)
	}
}
