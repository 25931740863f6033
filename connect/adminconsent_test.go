package connect_test

import (
	"context"
	"errors"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/outlookd/outlookd/connect"
	"github.com/outlookd/outlookd/graphsim"
	"github.com/outlookd/outlookd/graphsim/simtest"
	"github.com/outlookd/outlookd/internal/enginetest"
	"github.com/outlookd/outlookd/store"
	"github.com/outlookd/outlookd/workflows"
)

// adminAnswer opens an admin-consent link at graphsim as the administrator
// named (graphsim's automatic path) and answers the query it sends the
// administrator back with.
func adminAnswer(t *testing.T, link, admin string) url.Values {
	t.Helper()
	u, err := url.Parse(link)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("login_hint", admin)
	u.RawQuery = q.Encode()
	resp, err := simtest.NoRedirect.Get(u.String())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || !strings.HasPrefix(loc.String(), enginetest.AdminRedirectURI+"?") {
		t.Fatalf("admin consent answered %d, redirecting to %q", resp.StatusCode, loc)
	}
	return loc.Query()
}

// TestAdminConsentThenSignIn: against the whole engine, a user of a tenant
// that requires admin consent ends in admin_consent_required; the
// connection's link, consented by the tenant's administrator, is recorded
// once (a replay and a forged state are refused); the same connection's
// next sign-in makes it active and it backfills.
func TestAdminConsentThenSignIn(t *testing.T) {
	e := enginetest.Start(t, graphsim.Options{}, workflows.Options{})
	ctx := context.Background()
	locked, err := e.Ctl.AddTenant(ctx, graphsim.TenantSpec{Domain: "locked.example", AdminConsentRequired: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []graphsim.UserSpec{{Tenant: "locked.example", UPN: "bob@locked.example"}, {Tenant: "locked.example", UPN: "it@locked.example", Admin: true}} {
		if _, err := e.Ctl.AddUser(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.Ctl.InjectMessages(ctx, "bob@locked.example", graphsim.MessageSpec{Subject: "before the consent"}); err != nil {
		t.Fatal(err)
	}
	created, err := e.Connect.Create(ctx, connect.Request{OrgID: "o", OwnerID: "bob", LoginHint: "bob@locked.example",
		Settings: workflows.Settings{Features: workflows.Features{Read: true}}})
	if err != nil {
		t.Fatal(err)
	}
	id := created.ConnectionID
	out, err := e.Connect.Callback(ctx, e.AuthorizeQuery(created.AuthorizeURL))
	if err != nil || out.State != workflows.StateAdminConsentRequired || out.Reason != "admin_consent_required" {
		t.Fatalf("the first sign-in: %+v %v", out, err)
	}
	row := waitRow(t, e, id, workflows.StateAdminConsentRequired)
	link, err := e.Connect.ConnectionAdminConsentLink(ctx, row)
	if err != nil || link.Tenant != "organizations" {
		t.Fatalf("link: %+v %v", link, err)
	}
	if again, err := e.Connect.ConnectionAdminConsentLink(ctx, row); err != nil || again.URL != link.URL {
		t.Errorf("the link changed between reads: %v", err)
	}
	answer := adminAnswer(t, link.URL, "it@locked.example")
	forged := url.Values{"state": {link.ID + ".forged"}, "tenant": {locked.ID}, "admin_consent": {"True"}}
	if _, err := e.Connect.AdminCallback(ctx, forged); !errors.Is(err, connect.ErrInvalidState) {
		t.Errorf("forged state: %v", err)
	}
	a, err := e.Connect.AdminCallback(ctx, answer)
	if err != nil || a.Outcome != store.ConsentGranted || a.TenantID != locked.ID || a.ConnectionID != id {
		t.Fatalf("admin consent: %+v %v", a, err)
	}
	if _, err := e.Connect.AdminCallback(ctx, answer); !errors.Is(err, connect.ErrAdminConsentUsed) {
		t.Errorf("replayed answer: %v", err)
	}
	// The answered link's nonce is gone from Vault; the next read makes a
	// fresh link.
	if _, err := e.Vault.Tokens().GetAdminConsentLink(ctx, id); err == nil {
		t.Error("the answered link's nonce stayed in Vault")
	}

	authURL, err := e.Connect.Reauthorize(ctx, id, workflows.ModeDelegated, workflows.Settings{Features: workflows.Features{Read: true}}, "bob@locked.example")
	if err != nil {
		t.Fatal(err)
	}
	out, err = e.Connect.Callback(ctx, e.AuthorizeQuery(authURL))
	if err != nil || out.State != workflows.StateActive || out.Mailbox != "bob@locked.example" {
		t.Fatalf("the sign-in after the admin consent: %+v %v", out, err)
	}
	st := e.WaitFor(id, time.Minute, "backfill", func(st workflows.Status) bool { return !st.Backfill.Covered.IsZero() && !st.Backfill.Running })
	if st.TenantID != locked.ID {
		t.Errorf("tenant %q, want %q", st.TenantID, locked.ID)
	}
	if n, _ := e.Store.CountMessages(ctx, id); n != 1 {
		t.Errorf("%d messages stored, want 1", n)
	}
	scanHistories(t, e, id)
	if os.Getenv("OUTLOOKD_RECORD_HISTORY") == "1" {
		recordHistory(t, e, workflows.ConnectionWorkflowID(id), "../workflows/testdata/connection_admin_consent_once.json")
	}
}

// waitRow waits until the registry shows a connection in a state.
func waitRow(t *testing.T, e *enginetest.Engine, id, state string) store.Connection {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		row, err := e.Store.GetConnection(context.Background(), id)
		if err == nil && row.State == state {
			return row
		}
		if time.Now().After(deadline) {
			t.Fatalf("the registry never showed %s: %+v %v", state, row, err)
		}
	}
}
