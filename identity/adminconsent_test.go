package identity

import (
	"net/url"
	"slices"
	"strings"
	"testing"
)

func TestAdminConsentURL(t *testing.T) {
	c := Config{AuthorityURL: "https://login.microsoftonline.com/", ClientID: "client-1", AdminRedirectURL: "https://outlookd.example/v1/oauth/admin-callback"}
	// What the users of a reading and sending connection are asked for.
	scopes := c.AdminConsentScopes(Features{Read: true, Send: true})
	want := []string{"offline_access", "https://graph.microsoft.com/User.Read", "https://graph.microsoft.com/Mail.ReadWrite", "https://graph.microsoft.com/Mail.Send"}
	if !slices.Equal(scopes, want) {
		t.Fatalf("scopes %v, want %v", scopes, want)
	}
	if got := (Config{GraphResource: "https://graph.microsoft.us/"}).AdminConsentScopes(Features{Read: true}); got[2] != "https://graph.microsoft.us/Mail.Read" || len(got) != 3 {
		t.Errorf("national cloud scopes %v", got)
	}
	u, err := url.Parse(c.AdminConsentURL("contoso.example", scopes, "ac_x.nonce"))
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	if u.Host != "login.microsoftonline.com" || u.Path != "/contoso.example/v2.0/adminconsent" || q.Get("client_id") != "client-1" ||
		q.Get("redirect_uri") != c.AdminRedirectURL || q.Get("state") != "ac_x.nonce" || q.Get("scope") != strings.Join(want, " ") {
		t.Errorf("admin consent URL %s", u)
	}
	// GrantedScopes reads what the consent's redirect answers back.
	if got := GrantedScopes(q.Get("scope")); !slices.Equal(got, []string{"Mail.ReadWrite", "Mail.Send", "User.Read"}) {
		t.Errorf("granted %v", got)
	}
}

func TestCheckAdminConsentTenant(t *testing.T) {
	for _, tt := range []struct {
		in, want string
		ok       bool
	}{
		{"organizations", "organizations", true},
		{"Organizations", "organizations", true},
		{"72F988BF-86F1-41AF-91AB-2D7CD011DB47", "72f988bf-86f1-41af-91ab-2d7cd011db47", true},
		{"contoso.onmicrosoft.com", "contoso.onmicrosoft.com", true},
		{" fabrikam.example ", "fabrikam.example", true},
		{"common", "", false},
		{"consumers", "", false},
		{"", "", false},
		{"contoso", "", false},
		{"../common", "", false},
		{"contoso.example/v2.0", "", false},
		{"a b.example", "", false},
	} {
		got, err := CheckAdminConsentTenant(tt.in)
		if got != tt.want || (err == nil) != tt.ok {
			t.Errorf("CheckAdminConsentTenant(%q) = %q, %v", tt.in, got, err)
		}
	}
}

func TestClassifyAdminConsent(t *testing.T) {
	for _, tt := range []struct {
		err, desc string
		want      Reason
	}{
		{"consent_required", "AADSTS65004: The resource owner or authorization server denied the request.", ReasonConsentDeclined},
		{"access_denied", "AADSTS90093: Graph returned Forbidden (403)", ReasonAdminConsentRequired},
		{"permission_denied", "The admin canceled the request", ReasonConsentDeclined},
		{"invalid_request", "AADSTS90130: Application admin consent is not supported on the 'common' endpoint", ReasonUnknown},
	} {
		if got := ClassifyAdminConsent(tt.err, tt.desc); got != tt.want {
			t.Errorf("ClassifyAdminConsent(%s, %s) = %s, want %s", tt.err, tt.desc, got, tt.want)
		}
	}
}
