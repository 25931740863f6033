package api

import (
	"cmp"
	"context"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/outlookd/outlookd/connect"
	"github.com/outlookd/outlookd/identity"
	"github.com/outlookd/outlookd/workflows"
)

// page is what the consent callback shows the user.
type page struct {
	Title   string
	Lead    string
	Advice  string
	OK      bool
	Mailbox string
	Name    string
}

var pageTemplate = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}} · outlookd</title>
<style>
body{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;color:#1b1b1b;line-height:1.5}
h1{font-size:1.5rem}.ok{color:#0a7a32}.fail{color:#a4262c}.advice{background:#f3f2f1;padding:.75rem 1rem;border-radius:6px}
</style></head><body>
<h1 class="{{if .OK}}ok{{else}}fail{{end}}" id="title">{{.Title}}</h1>
<p id="lead">{{.Lead}}</p>
{{if .Mailbox}}<p>Mailbox: <strong id="mailbox">{{.Mailbox}}</strong>{{if .Name}} ({{.Name}}){{end}}</p>{{end}}
{{if .Advice}}<p class="advice" id="advice">{{.Advice}}</p>{{end}}
<p>You can close this window.</p>
</body></html>`))

// advice tells the user what to do about a failed consent.
func advice(reason string) string {
	switch identity.Reason(reason) {
	case identity.ReasonAdminConsentRequired:
		return "Ask your IT administrator to approve it (the app can give you a link for them), then sign in again."
	case identity.ReasonConsentDeclined:
		return "Nothing was connected. If that was a mistake, start again from the app and accept the permissions."
	case identity.ReasonMFARequired, identity.ReasonConditionalAccess:
		return "Your organisation's sign-in policy stopped the sign-in. Sign in from a device and network your organisation allows, or ask your administrator."
	case identity.ReasonWrongAccount:
		return "Sign in with the same account that was connected before. To connect another account, disconnect this connection first."
	case identity.ReasonAppMisconfigured:
		return "The app's registration with Microsoft needs attention; tell the app's support team."
	case "mailbox_already_connected":
		return "This mailbox is already connected (possibly by someone else). Disconnect that connection first, or connect another account."
	}
	return "Start again from the app. If it keeps failing, tell the app's support team what this page says."
}

// callback completes consent and tells the user how it went: a page, or a
// redirect back into the app with the outcome in the query. Neither the
// code nor any token is shown or logged (the access log logs paths only).
func (s *server) callback(c *gin.Context) {
	c.Header("Cache-Control", "no-store")
	c.Header("Referrer-Policy", "no-referrer")
	// The exchange with Microsoft happens while the user waits; bound it.
	ctx, cancel := context.WithTimeout(c, cmp.Or(s.d.CallbackTimeout, 45*time.Second))
	defer cancel()
	out, err := s.d.Connect.Callback(ctx, c.Request.URL.Query())
	var p page
	status := http.StatusOK
	switch {
	case errors.Is(err, connect.ErrInvalidState):
		status = http.StatusBadRequest
		p = page{Title: "This sign-in link is not valid", Lead: "It does not belong to a connection, or that connection has ended.", Advice: "Start again from the app."}
	case errors.Is(err, connect.ErrConsentExpired):
		status = http.StatusBadRequest
		p = page{Title: "This sign-in link has expired", Lead: "Sign-in links are valid for an hour.", Advice: "Start again from the app to get a fresh link."}
	case errors.Is(err, connect.ErrStillConnecting):
		// Not a failure: the workflow holds the consent and finishes
		// without the user, who is not asked to start again.
		s.d.Logger.Warn("consent callback: the connection is still being made", "connection", out.ConnectionID)
		status = http.StatusAccepted
		p = page{Title: "Your mailbox is being connected", Lead: "Microsoft accepted your sign-in; outlookd is finishing the connection, which is taking longer than usual.",
			Advice: "You can return to the app: it shows the connection once it is ready. There is no need to sign in again."}
	case err != nil:
		s.d.Logger.Error("consent callback failed", "connection", out.ConnectionID, "err", err)
		status = http.StatusServiceUnavailable
		p = page{Title: "We could not finish connecting", Lead: "A service outlookd depends on did not answer.", Advice: "Wait a minute and start again from the app."}
	case out.State == workflows.StateActive && out.Mode == workflows.ModeServiceAccount:
		p = page{OK: true, Title: "The service account is connected", Lead: "The app can now attach the shared mailboxes this account may open; you can return to it.",
			Mailbox: out.Mailbox, Name: out.DisplayName}
	case out.State == workflows.StateActive:
		p = page{OK: true, Title: "Your mailbox is connected", Lead: "Mail is being synced; you can return to the app.", Mailbox: out.Mailbox, Name: out.DisplayName}
	default:
		status = http.StatusConflict
		if out.Reason == string(identity.ReasonAdminConsentRequired) || out.Reason == string(identity.ReasonConsentDeclined) {
			status = http.StatusForbidden
		}
		lead := out.ReasonText
		if out.Reason == string(identity.ReasonAdminConsentRequired) {
			lead = "Your organisation lets only an administrator approve this app, and none has yet."
		}
		if lead == "" {
			lead = "The sign-in did not complete."
		}
		p = page{Title: "Your mailbox was not connected", Lead: lead, Advice: advice(out.Reason)}
	}
	if out.ConnectionID != "" {
		if row, rerr := s.d.Store.GetConnection(c, out.ConnectionID); rerr == nil && row.ReturnURL != "" {
			if u, perr := url.Parse(row.ReturnURL); perr == nil {
				q := u.Query()
				q.Set("connection_id", out.ConnectionID)
				switch {
				case p.OK:
					q.Set("status", "connected")
				case status == http.StatusAccepted:
					q.Set("status", "pending")
				default:
					q.Set("status", "failed")
					q.Set("reason", outcomeReason(out, err))
				}
				u.RawQuery = q.Encode()
				c.Redirect(http.StatusSeeOther, u.String())
				return
			}
		}
	}
	c.Header("Content-Type", "text/html; charset=utf-8")
	c.Status(status)
	if err := pageTemplate.Execute(c.Writer, p); err != nil {
		s.d.Logger.Error("render callback page", "err", err)
	}
}

func outcomeReason(out connect.Outcome, err error) string {
	switch {
	case errors.Is(err, connect.ErrConsentExpired):
		return "consent_expired"
	case err != nil:
		return "unavailable"
	case out.Reason != "":
		return out.Reason
	}
	return "not_connected"
}
