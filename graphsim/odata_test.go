package graphsim_test

import (
	"net/url"
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
