package graphsim

import (
	"bytes"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

var pageTmpl = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{.Title}}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font-family:Segoe UI,system-ui,sans-serif;background:#f2f2f2;margin:0}
main{max-width:440px;margin:48px auto;background:#fff;padding:32px 40px;box-shadow:0 2px 6px rgba(0,0,0,.2)}
h1{font-size:22px;font-weight:600;margin:0 0 12px}
.sim{font-size:12px;color:#a4262c;margin-bottom:16px}
ul{padding-left:20px} li{margin:6px 0}
label{display:block;margin:8px 0;cursor:pointer}
.buttons{display:flex;justify-content:flex-end;gap:8px;margin-top:24px}
button{padding:6px 20px;font-size:15px;border:1px solid #8a8a8a;background:#fff;cursor:pointer}
button.primary{background:#0067b8;color:#fff;border-color:#0067b8}
.error{color:#a4262c}
code{font-size:13px}
</style></head><body><main>
<div class="sim">Microsoft identity platform — simulated by graphsim</div>
{{if .Error}}
<h1>Sorry, but we’re having trouble signing you in.</h1>
<p class="error" id="error-code">AADSTS{{.Error.Code}}: {{.Error.Message}}</p>
<h2 style="font-size:15px">Troubleshooting details</h2>
<p>If you contact your administrator, send this info to them.</p>
<dl id="details">
<dt>Request Id:</dt><dd id="request-id">{{.Error.TraceID}}</dd>
<dt>Correlation Id:</dt><dd id="correlation-id">{{.Error.CorrelationID}}</dd>
<dt>Timestamp:</dt><dd id="timestamp">{{.Error.Timestamp}}</dd>
<dt>Message:</dt><dd id="message">AADSTS{{.Error.Code}}: {{.Error.Message}}</dd>
</dl>
{{else}}
<h1>{{.Title}}</h1>
<p><strong id="app-name">{{.AppName}}</strong> {{.Lead}}</p>
<form method="post" action="{{.Action}}">
{{range $k, $vs := .Hidden}}{{range $vs}}<input type="hidden" name="{{$k}}" value="{{.}}">{{end}}{{end}}
<p>Pick an account:</p>
{{range $i, $u := .Users}}<label><input type="radio" name="sim_user" value="{{$u.ID}}" {{if or (eq $i 0) (eq $u.ID $.Selected)}}checked{{end}}> {{$u.DisplayName}} &lt;{{$u.UPN}}&gt;</label>
{{else}}<p class="error">No account can sign in here.</p>{{end}}
<p>This app would like to:</p>
<ul id="permissions">{{range .Permissions}}<li>{{.}}</li>{{end}}</ul>
<div class="buttons">
<button type="submit" name="sim_decision" value="cancel" id="cancel">Cancel</button>
<button type="submit" name="sim_decision" value="accept" id="accept" class="primary">Accept</button>
</div>
</form>
{{end}}
</main></body></html>`))

type pageData struct {
	Title, AppName, Lead, Action, Selected string
	Hidden                                 url.Values
	Users                                  []*User
	Permissions                            []string
	Error                                  *errorPage
}

// errorPage is what Entra's error page shows (docs/graph.md#aadsts-codes):
// the AADSTS code and message and the troubleshooting details. Its fields
// are exported because templates cannot read unexported ones.
type errorPage struct {
	Code                              int
	Message                           string
	TraceID, CorrelationID, Timestamp string
}

// renderPage executes the page into a buffer first, so that a template
// failure is a logged 500 and never a page cut off halfway.
func renderPage(w http.ResponseWriter, status int, d pageData) {
	var b bytes.Buffer
	if err := pageTmpl.Execute(&b, d); err != nil {
		slog.Error("graphsim: render page", "title", d.Title, "err", err)
		http.Error(w, "page rendering failed", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(b.Bytes())
}

// renderError shows an error page (for errors that cannot be redirected).
func (s *Sim) renderError(w http.ResponseWriter, r *http.Request, status int, e *idpError) {
	corr := r.Header.Get("client-request-id")
	if corr == "" {
		corr = newGUID()
	}
	trace := newGUID()
	w.Header().Set("x-ms-request-id", trace)
	renderPage(w, status, pageData{Title: "Sign in", Error: &errorPage{
		Code: e.code, Message: e.message, TraceID: trace, CorrelationID: corr,
		Timestamp: s.clock.Now().UTC().Format("2006-01-02T15:04:05.000Z"),
	}})
}

// signInUsers lists who may sign in through a tenant segment, sorted.
func (s *Sim) signInUsers(seg string) []*User {
	var out []*User
	for _, u := range s.users {
		if !u.Shared && s.tenantAllows(seg, u) == nil {
			out = append(out, u)
		}
	}
	slices.SortFunc(out, func(a, b *User) int { return strings.Compare(a.UPN, b.UPN) })
	return out
}

// renderConsent shows the sign-in and consent page with a user picker.
func (s *Sim) renderConsent(w http.ResponseWriter, r *http.Request, ar *authRequest, hinted *User) {
	perms := make([]string, 0, len(ar.scopes.graph)+1)
	for _, sc := range ar.scopes.graph {
		perms = append(perms, fmt.Sprintf("%s (%s)", delegatedPermissions[sc].text, sc))
	}
	if ar.scopes.oidc["offline_access"] {
		perms = append(perms, "Maintain access to data you have given it access to (offline_access)")
	}
	if ar.scopes.dotDefault {
		perms = append(perms, "The permissions this app is configured for (.default)")
	}
	selected := ""
	if hinted != nil {
		selected = hinted.ID
	}
	hidden := url.Values{}
	for k, vs := range ar.raw {
		if !strings.HasPrefix(k, "sim_") {
			hidden[k] = vs
		}
	}
	renderPage(w, http.StatusOK, pageData{
		Title:       "Permissions requested",
		AppName:     ar.app.Name,
		Lead:        "wants to sign you in and access your data.",
		Action:      "/" + ar.tenant + "/oauth2/v2.0/authorize",
		Hidden:      hidden,
		Users:       s.signInUsers(ar.tenant),
		Selected:    selected,
		Permissions: perms,
	})
}

// renderAdminConsent shows the admin consent page, listing administrators.
// The form posts back to the endpoint it was opened on (v2 or the older one).
func (s *Sim) renderAdminConsent(w http.ResponseWriter, action, seg string, app *App, sr scopeRequest, q url.Values) {
	var admins []*User
	for _, u := range s.signInUsers(seg) {
		if u.Admin {
			admins = append(admins, u)
		}
	}
	var perms []string
	if sr.dotDefault {
		for _, role := range app.AppRoles {
			perms = append(perms, fmt.Sprintf("%s (%s, application)", applicationPermissions[role], role))
		}
	}
	for _, sc := range sr.graph {
		perms = append(perms, fmt.Sprintf("%s (%s, for every user)", delegatedPermissions[sc].text, sc))
	}
	hidden := url.Values{}
	for k, vs := range q {
		if !strings.HasPrefix(k, "sim_") {
			hidden[k] = vs
		}
	}
	renderPage(w, http.StatusOK, pageData{
		Title:       "Permissions requested — accept for your organization",
		AppName:     app.Name,
		Lead:        "needs permission to access resources in your organization that only an admin can grant.",
		Action:      action,
		Hidden:      hidden,
		Users:       admins,
		Permissions: perms,
	})
}

// writeFormPost answers response_mode=form_post with a self-submitting form.
func writeFormPost(w http.ResponseWriter, action string, q url.Values) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	var b strings.Builder
	fmt.Fprintf(&b, `<!doctype html><html><body onload="document.forms[0].submit()"><form method="post" action="%s">`, template.HTMLEscapeString(action))
	for k, vs := range q {
		for _, v := range vs {
			fmt.Fprintf(&b, `<input type="hidden" name="%s" value="%s">`, template.HTMLEscapeString(k), template.HTMLEscapeString(v))
		}
	}
	b.WriteString(`<noscript><button type="submit">Continue</button></noscript></form></body></html>`)
	_, _ = w.Write([]byte(b.String()))
}
