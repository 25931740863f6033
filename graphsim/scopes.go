package graphsim

import (
	"slices"
	"strings"
)

// permission describes a Microsoft Graph permission the simulator knows.
type permission struct {
	name      string
	adminOnly bool // delegated permissions that need admin consent
	text      string
}

// delegatedPermissions are the delegated Graph permissions the simulator
// grants, with what the consent page says of each. adminOnly follows
// Microsoft's permissions reference: the .Shared scopes need no admin
// consent (docs/graph.md#shared-mailboxes).
var delegatedPermissions = map[string]permission{
	"User.Read":                 {"User.Read", false, "Sign you in and read your profile"},
	"User.ReadBasic.All":        {"User.ReadBasic.All", false, "Read all users' basic profiles"},
	"User.Read.All":             {"User.Read.All", true, "Read all users' full profiles"},
	"Directory.Read.All":        {"Directory.Read.All", true, "Read directory data"},
	"Mail.ReadBasic":            {"Mail.ReadBasic", false, "Read basic mail in your mailbox (no bodies or attachments)"},
	"Mail.Read":                 {"Mail.Read", false, "Read your mail"},
	"Mail.ReadWrite":            {"Mail.ReadWrite", false, "Read and write access to your mail"},
	"Mail.Send":                 {"Mail.Send", false, "Send mail as you"},
	"Mail.Read.Shared":          {"Mail.Read.Shared", false, "Read mail you can access, including shared mail"},
	"Mail.ReadWrite.Shared":     {"Mail.ReadWrite.Shared", false, "Read and write mail you can access, including shared mail"},
	"Mail.Send.Shared":          {"Mail.Send.Shared", false, "Send mail on behalf of others"},
	"MailboxSettings.Read":      {"MailboxSettings.Read", false, "Read your mailbox settings"},
	"MailboxSettings.ReadWrite": {"MailboxSettings.ReadWrite", false, "Read and write your mailbox settings"},
}

// applicationPermissions are the app roles an admin can grant.
var applicationPermissions = map[string]string{
	"Mail.ReadBasic.All":   "Read basic mail in all mailboxes",
	"Mail.Read":            "Read mail in all mailboxes",
	"Mail.ReadWrite":       "Read and write mail in all mailboxes",
	"Mail.Send":            "Send mail as any user",
	"User.Read.All":        "Read all users' full profiles",
	"Directory.Read.All":   "Read directory data",
	"GroupMember.Read.All": "Read all group memberships",
	"Group.Read.All":       "Read all groups",
	"MailboxSettings.Read": "Read all user mailbox settings",
}

// oidcScopes are requested alongside resource scopes and never appear in scp.
var oidcScopes = map[string]bool{"openid": true, "profile": true, "email": true, "offline_access": true}

// scopeRequest is a parsed scope parameter.
type scopeRequest struct {
	graph      []string // short Graph permission names, sorted, unique
	oidc       map[string]bool
	dotDefault bool
	unknown    []string
	// asked is how the client wrote each Graph scope (short name -> as
	// written); the token response echoes that form (docs/graph.md#token-responses).
	asked map[string]string
}

// parseScopes splits a space-separated scope list. Graph scopes may be given
// short ("Mail.Read") or as URIs ("https://graph.microsoft.com/Mail.Read").
func parseScopes(raw string) scopeRequest {
	r := scopeRequest{oidc: map[string]bool{}, asked: map[string]string{}}
	for sc := range strings.FieldsSeq(raw) {
		lower := strings.ToLower(sc)
		switch {
		case oidcScopes[lower]:
			r.oidc[lower] = true
			continue
		case lower == GraphResource+"/.default" || lower == graphAppID+"/.default":
			r.dotDefault = true
			continue
		}
		name := sc
		if strings.HasPrefix(lower, GraphResource+"/") {
			name = sc[len(GraphResource)+1:]
		}
		if p, ok := lookupPermission(name); ok {
			if !slices.Contains(r.graph, p) {
				r.graph = append(r.graph, p)
				r.asked[p] = sc
			}
			continue
		}
		r.unknown = append(r.unknown, sc)
	}
	slices.Sort(r.graph)
	return r
}

// lookupPermission matches a delegated permission name case-insensitively.
func lookupPermission(name string) (string, bool) {
	for k := range delegatedPermissions {
		if strings.EqualFold(k, name) {
			return k, true
		}
	}
	return "", false
}

// responseScopes renders granted scopes as a token response lists them: in
// the form the client asked for each (short, or the resource's URI), and as
// URIs for those it did not name (docs/graph.md#token-responses).
func responseScopes(scopes []string, asked ...map[string]string) string {
	out := make([]string, len(scopes))
	for i, s := range scopes {
		out[i] = GraphResource + "/" + s
		for _, a := range asked {
			if v := a[s]; v != "" {
				out[i] = v
			}
		}
	}
	return strings.Join(out, " ")
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k, v := range m {
		if v {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}
