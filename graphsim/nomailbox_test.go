package graphsim_test

import (
	"context"
	"testing"
	"time"

	"github.com/outlookd/outlookd/graphsim"
	"github.com/outlookd/outlookd/graphsim/simtest"
)

// A user without a mailbox (no Exchange licence) is in the directory, but
// every path that addresses a mailbox answers 404 MailboxNotEnabledForRESTAPI
// (docs/graph.md#users-without-a-mailbox), for app-only and delegated callers.
func TestUsersWithoutMailbox(t *testing.T) {
	o := newOrg(t, graphsim.Options{})
	ctx := context.Background()
	if _, err := o.ctl.AddUser(ctx, graphsim.UserSpec{Tenant: "contoso.example", UPN: "nomail@contoso.example", NoMailbox: true}); err != nil {
		t.Fatal(err)
	}
	rc, lc := simtest.NewReceiver(t), simtest.NewReceiver(t)
	now := o.sim.Clock().Now()
	app := o.org.AppToken(t)
	own := o.SignIn(t, "nomail@contoso.example", "offline_access", "Mail.ReadWrite", "Mail.Send", "MailboxSettings.Read").AccessToken
	u := "/users/nomail@contoso.example"
	tests := []struct {
		name, token, method, path string
		body                      any
	}{
		{"messages", app, "GET", u + "/messages", nil},
		{"a message", app, "GET", u + "/messages/AAMkAGInone", nil},
		{"folders", app, "GET", u + "/mailFolders", nil},
		{"inbox", app, "GET", u + "/mailFolders('inbox')/messages", nil},
		{"message delta", app, "GET", u + "/mailFolders('inbox')/messages/delta()", nil},
		{"folder delta", app, "GET", u + "/mailFolders/delta()", nil},
		{"draft", app, "POST", u + "/messages", map[string]any{"subject": "x"}},
		{"sendMail", app, "POST", u + "/sendMail", mailBody("x@fabrikam.example")},
		{"subscription", app, "POST", "/subscriptions", subBody("users/nomail@contoso.example/messages", rc.URL, lc.URL, 2*time.Hour, now)},
		{"mailboxSettings", app, "GET", u + "/mailboxSettings", nil},
		{"mailboxSettings/timeZone", app, "GET", u + "/mailboxSettings/timeZone", nil},
		{"own mailboxSettings", own, "GET", "/me/mailboxSettings", nil},
		{"own messages", own, "GET", "/me/messages", nil},
		{"own sendMail", own, "POST", "/me/sendMail", mailBody("x@fabrikam.example")},
		{"own subscription", own, "POST", "/subscriptions", subBody("me/messages", rc.URL, lc.URL, 2*time.Hour, now)},
	}
	for _, tt := range tests {
		var ge graphErr
		st, _ := o.graphDo(t, tt.token, tt.method, tt.path, tt.body, &ge)
		if st != 404 || ge.Error.Code != "MailboxNotEnabledForRESTAPI" || ge.Error.Message != "The mailbox is either inactive, soft-deleted, or is hosted on-premise." {
			t.Errorf("%s: %d %+v", tt.name, st, ge.Error)
		}
	}
	// The directory still has the user.
	if st, _ := o.graphGet(t, app, u, nil); st != 200 {
		t.Errorf("the user itself: %d", st)
	}
	if rc.Handshakes() != 0 {
		t.Error("a subscription on a user without a mailbox was validated")
	}
}
