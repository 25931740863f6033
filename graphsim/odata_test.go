package graphsim_test

import (
	"context"
	"net/url"
	"strings"
	"testing"

	"github.com/outlookd/outlookd/graphsim"
)

// Outlook confirms the body format a request asked for with
// Preference-Applied on every successful answer carrying messages, and
// confirms no other preference.
func TestPreferenceApplied(t *testing.T) {
	f := newFixture(t, graphsim.Options{})
	tok := f.token(t, "Mail.Read")
	ids := inject(t, f, f.ada.UPN, graphsim.MessageSpec{Subject: "hello", Body: "<p>Hello</p>"})
	one := "/me/messages/" + url.PathEscape(ids[0])
	for _, tc := range []struct {
		name, path, prefer, want string
		status                   int
	}{
		{"get, text", one, `outlook.body-content-type="text"`, `outlook.body-content-type="text"`, 200},
		{"get, html", one, `outlook.body-content-type="html"`, `outlook.body-content-type="html"`, 200},
		{"get, unquoted", one, `outlook.body-content-type=text`, `outlook.body-content-type="text"`, 200},
		{"get, none", one, "", "", 200},
		{"list", "/me/messages", `outlook.body-content-type="text"`, `outlook.body-content-type="text"`, 200},
		{"folder list", "/me/mailFolders/inbox/messages", `outlook.body-content-type="html"`, `outlook.body-content-type="html"`, 200},
		{"delta", "/me/mailFolders/inbox/messages/delta", `outlook.body-content-type="text"`, `outlook.body-content-type="text"`, 200},
		{"delta, page size only", "/me/mailFolders/inbox/messages/delta", "odata.maxpagesize=5", "", 200},
		{"immutable ids only", "/me/messages", `IdType="ImmutableId"`, "", 200},
		{"not found", "/me/messages/AAMkADInope=", `outlook.body-content-type="text"`, "", 404},
		{"folders", "/me/mailFolders", `outlook.body-content-type="text"`, "", 200},
	} {
		var hdr []string
		if tc.prefer != "" {
			hdr = []string{"Prefer", tc.prefer}
		}
		st, h := f.graphGet(t, tok, tc.path, nil, hdr...)
		if st != tc.status || h.Get("Preference-Applied") != tc.want {
			t.Errorf("%s: %d, Preference-Applied %q, want %d %q", tc.name, st, h.Get("Preference-Applied"), tc.status, tc.want)
		}
	}
	// With other preferences in the same header.
	_, h := f.graphGet(t, tok, "/me/messages", nil, "Prefer", `IdType="ImmutableId", outlook.body-content-type="text"`)
	if h.Get("Preference-Applied") != `outlook.body-content-type="text"` {
		t.Errorf("combined Prefer: %q", h.Get("Preference-Applied"))
	}
}

// @odata.context names the user as the client addressed it, the path with
// every key but the last, the $select list, and /$entity for one item, as
// Microsoft's list messages, get message and get user pages show.
func TestODataContext(t *testing.T) {
	f := newFixture(t, graphsim.Options{})
	tok := f.token(t, "Mail.Read", "User.Read", "User.ReadBasic.All")
	projects, err := f.ctl.CreateFolder(context.Background(), f.ada.UPN, "inbox", "Projects")
	if err != nil {
		t.Fatal(err)
	}
	msg := url.PathEscape(inject(t, f, f.ada.UPN, graphsim.MessageSpec{Subject: "hello"})[0])
	meta := f.sim.GraphURL() + "/$metadata#"
	ada := "users('" + f.ada.ID + "')"
	for _, tc := range []struct{ path, want string }{
		{"/me/messages", ada + "/messages"},
		{"/me/messages?$select=subject,from", ada + "/messages(subject,from)"},
		{"/me/messages?$select=Subject,FROM,id", ada + "/messages(subject,from,id)"},
		{"/users/ada@contoso.example/messages?$select=subject,from", "users('ada%40contoso.example')/messages(subject,from)"},
		{"/users/" + f.ada.ID + "/messages", ada + "/messages"},
		{"/me/mailFolders/inbox/messages?$select=subject,from", ada + "/mailFolders('inbox')/messages(subject,from)"},
		{"/me/mailFolders('Inbox')/messages", ada + "/mailFolders('Inbox')/messages"},
		{"/me/messages/" + msg, ada + "/messages/$entity"},
		{"/me/messages/" + msg + "?$select=subject,from", ada + "/messages(subject,from)/$entity"},
		{"/me/mailFolders/inbox/messages/" + msg + "?$select=subject", ada + "/mailFolders('inbox')/messages(subject)/$entity"},
		{"/me/mailFolders", ada + "/mailFolders"},
		{"/me/mailFolders?$select=displayName", ada + "/mailFolders(displayName)"},
		{"/me/mailFolders/inbox", ada + "/mailFolders/$entity"},
		{"/me/mailFolders/inbox?$select=displayName,totalItemCount", ada + "/mailFolders(displayName,totalItemCount)/$entity"},
		{"/me/mailFolders/inbox/childFolders", ada + "/mailFolders('inbox')/childFolders"},
		{"/me/mailFolders/inbox/childFolders/" + url.PathEscape(projects), ada + "/mailFolders('inbox')/childFolders/$entity"},
		{"/me/mailFolders/" + url.PathEscape(projects) + "/messages", ada + "/mailFolders('" + strings.ReplaceAll(projects, "=", "%3D") + "')/messages"},
		{"/me/mailFolders/inbox/messages/delta?$select=subject", "Collection(message)"},
		{"/me", "users/$entity"},
		{"/me?$select=displayName,mail", "users(displayName,mail)/$entity"},
		{"/users/ada@contoso.example?$select=userPrincipalName", "users(userPrincipalName)/$entity"},
		{"/users", "users"},
		{"/users?$select=displayName,id", "users(displayName,id)"},
	} {
		var body struct {
			Context string `json:"@odata.context"`
		}
		if st, _ := f.graphGet(t, tok, tc.path, &body); st != 200 || body.Context != meta+tc.want {
			t.Errorf("%s: %d\n got %s\nwant %s", tc.path, st, body.Context, meta+tc.want)
		}
	}
}
