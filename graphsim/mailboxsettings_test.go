package graphsim_test

import (
	"context"
	"testing"
	"time"

	"golang.org/x/oauth2/clientcredentials"

	"github.com/outlookd/outlookd/graphsim"
)

func TestMailboxSettings(t *testing.T) {
	o := newOrg(t, graphsim.Options{})
	ctx := context.Background()
	app := o.org.AppToken(t)
	var ms struct {
		Context          string `json:"@odata.context"`
		ArchiveFolder    string `json:"archiveFolder"`
		TimeZone         string `json:"timeZone"`
		UserPurpose      string `json:"userPurpose"`
		DateFormat       string `json:"dateFormat"`
		TimeFormat       string `json:"timeFormat"`
		AutomaticReplies struct {
			Status           string            `json:"status"`
			ExternalAudience string            `json:"externalAudience"`
			Start            map[string]string `json:"scheduledStartDateTime"`
			Internal         string            `json:"internalReplyMessage"`
		} `json:"automaticRepliesSetting"`
		Language     map[string]string `json:"language"`
		WorkingHours struct {
			Days     []string          `json:"daysOfWeek"`
			Start    string            `json:"startTime"`
			TimeZone map[string]string `json:"timeZone"`
		} `json:"workingHours"`
	}
	if st, _ := o.graphGet(t, app, "/users/ada@contoso.example/mailboxSettings", &ms); st != 200 || ms.TimeZone != "UTC" || ms.UserPurpose != "user" ||
		ms.AutomaticReplies.Status != "disabled" || ms.Language["locale"] != "en-US" || ms.Language["displayName"] != "English (United States)" ||
		len(ms.WorkingHours.Days) != 5 || ms.WorkingHours.Start != "08:00:00.0000000" || ms.ArchiveFolder == "" || ms.AutomaticReplies.Start["timeZone"] != "UTC" {
		t.Errorf("ada's settings: %d %+v", st, ms)
	}
	if st, _ := o.graphGet(t, app, "/users/support@contoso.example/mailboxSettings", &ms); st != 200 || ms.UserPurpose != "shared" {
		t.Errorf("the shared mailbox's purpose: %d %q", st, ms.UserPurpose)
	}

	// Changed through the control API.
	tz, start := "W. Europe Standard Time", time.Date(2030, 7, 1, 8, 0, 0, 0, time.UTC)
	if err := o.ctl.SetMailboxSettings(ctx, "ada@contoso.example", graphsim.MailboxSettingsUpdate{TimeZone: &tz, AutomaticReplies: &graphsim.AutomaticReplies{
		Status: "scheduled", ExternalAudience: "contactsOnly", InternalReplyMessage: "On leave", ScheduledStart: start, ScheduledEnd: start.Add(14 * 24 * time.Hour)}}); err != nil {
		t.Fatal(err)
	}
	o.graphGet(t, app, "/users/ada@contoso.example/mailboxSettings", &ms)
	if ms.TimeZone != tz || ms.WorkingHours.TimeZone["name"] != tz || ms.AutomaticReplies.Status != "scheduled" || ms.AutomaticReplies.Start["dateTime"] != "2030-07-01T08:00:00.0000000" {
		t.Errorf("after the change: %+v", ms)
	}
	if got, err := o.ctl.MailboxSettings(ctx, "ada@contoso.example"); err != nil || got.TimeZone != tz || got.Locale != "en-US" {
		t.Errorf("control API settings: %+v %v", got, err)
	}
	if err := o.ctl.SetMailboxSettings(ctx, "ada@contoso.example", graphsim.MailboxSettingsUpdate{AutomaticReplies: &graphsim.AutomaticReplies{Status: "sometimes"}}); err == nil {
		t.Error("an unknown automatic replies status was accepted")
	}

	// Single properties.
	var prim struct {
		Context string `json:"@odata.context"`
		Value   string `json:"value"`
	}
	if st, _ := o.graphGet(t, app, "/users/ada@contoso.example/mailboxSettings/timeZone", &prim); st != 200 || prim.Value != tz || prim.Context == "" {
		t.Errorf("timeZone: %d %+v", st, prim)
	}
	if st, _ := o.graphGet(t, app, "/users/support@contoso.example/mailboxSettings/userPurpose", &prim); st != 200 || prim.Value != "shared" {
		t.Errorf("userPurpose: %d %+v", st, prim)
	}
	var ar map[string]any
	if st, _ := o.graphGet(t, app, "/users/ada@contoso.example/mailboxSettings/automaticRepliesSetting", &ar); st != 200 || ar["status"] != "scheduled" || ar["internalReplyMessage"] != "On leave" {
		t.Errorf("automaticRepliesSetting: %d %v", st, ar)
	}

	// Who may read them.
	if err := o.ctl.GrantConsent(ctx, graphsim.ConsentSpec{Tenant: o.tenant.ID, ClientID: o.app.ClientID, Roles: []string{"Mail.Read"}}); err != nil {
		t.Fatal(err)
	}
	cc := clientcredentials.Config{ClientID: o.app.ClientID, ClientSecret: o.app.Secrets[0].Value, TokenURL: o.sim.URL() + "/" + o.tenant.ID + "/oauth2/v2.0/token", Scopes: []string{graphsim.GraphResource + "/.default"}}
	mailOnly, err := cc.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, token, path string
		status            int
		code              string
	}{
		{"own, delegated", o.token(t, "MailboxSettings.Read"), "/me/mailboxSettings", 200, ""},
		{"own without the scope", o.token(t, "Mail.Read"), "/me/mailboxSettings", 403, "ErrorAccessDenied"},
		{"another user's, delegated", o.token(t, "MailboxSettings.Read"), "/users/support@contoso.example/mailboxSettings", 403, "ErrorAccessDenied"},
		{"the shared mailbox's with Full Access", o.org.ServiceToken(t, "MailboxSettings.Read", "Mail.Read.Shared"), "/users/support@contoso.example/mailboxSettings", 403, "ErrorAccessDenied"},
		{"app without MailboxSettings.Read", mailOnly.AccessToken, "/users/ada@contoso.example/mailboxSettings", 403, "ErrorAccessDenied"},
		{"unknown property", app, "/users/ada@contoso.example/mailboxSettings/shoeSize", 400, "BadRequest"},
	}
	for _, tt := range tests {
		var ge graphErr
		if st, _ := o.graphGet(t, tt.token, tt.path, &ge); st != tt.status || ge.Error.Code != tt.code {
			t.Errorf("%s: %d %+v", tt.name, st, ge.Error)
		}
	}
	if err := o.ctl.SetAppAccessPolicy(ctx, graphsim.AppAccessPolicy{Tenant: o.tenant.ID, AppID: o.org.Daemon.ClientID, AccessRight: graphsim.PolicyDenyAccess, Members: []string{"ada@contoso.example"}}); err != nil {
		t.Fatal(err)
	}
	var ge graphErr
	if st, _ := o.graphGet(t, app, "/users/ada@contoso.example/mailboxSettings", &ge); st != 403 || ge.Error.Message != "Access to OData is disabled." {
		t.Errorf("under the policy: %d %+v", st, ge.Error)
	}
}
