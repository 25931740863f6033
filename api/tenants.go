package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/outlookd/outlookd/connect"
	"github.com/outlookd/outlookd/identity"
	"github.com/outlookd/outlookd/store"
	"github.com/outlookd/outlookd/workflows"
)

// adminConsentRequest is the body of POST /v1/tenants/admin-consent.
type adminConsentRequest struct {
	Tenant   string    `json:"tenant"`
	Features *features `json:"features,omitempty"`
}

// adminConsentLinkJSON is an admin-consent link as the API shows it.
type adminConsentLinkJSON struct {
	ID        string    `json:"id"`
	Tenant    string    `json:"tenant"`
	Scopes    []string  `json:"scopes"`
	URL       string    `json:"url"`
	ExpiresAt time.Time `json:"expires_at"`
}

func toAdminConsentLinkJSON(l connect.AdminConsentLink) *adminConsentLinkJSON {
	return &adminConsentLinkJSON{ID: l.ID, Tenant: l.Tenant, Scopes: l.Scopes, URL: l.URL, ExpiresAt: l.ExpiresAt}
}

// tenantConsentJSON is what outlookd knows of a tenant's admin consent.
type tenantConsentJSON struct {
	// TenantID is the tenant Microsoft's consent named.
	TenantID string `json:"tenant_id,omitempty"`
	// Tenant is the tenant as the link asked for it.
	Tenant string `json:"tenant"`
	// State is granted, refused, or pending (a link not answered yet).
	State string `json:"state"`
	// Scopes are the scopes granted, or asked for while pending or refused.
	Scopes      []string   `json:"scopes"`
	RequestedBy string     `json:"requested_by,omitempty"`
	RequestedAt time.Time  `json:"requested_at"`
	AnsweredAt  *time.Time `json:"answered_at,omitempty"`
	ExpiresAt   *time.Time `json:"expires_at,omitempty"`
	Reason      string     `json:"reason,omitempty"`
	ReasonText  string     `json:"reason_text,omitempty"`
}

func toTenantConsentJSON(a store.AdminConsent) *tenantConsentJSON {
	out := &tenantConsentJSON{TenantID: a.TenantID, Tenant: a.Tenant, State: a.Outcome, RequestedBy: a.RequestedBy, RequestedAt: a.CreatedAt,
		AnsweredAt: a.AnsweredAt, Reason: a.Reason, ReasonText: a.ReasonText}
	if out.State == store.ConsentGranted {
		out.Scopes = a.GrantedScopes
	} else {
		out.Scopes = identity.GrantedScopes(strings.Join(a.Scopes, " "))
	}
	if !a.Answered() {
		out.State = "pending"
		out.ExpiresAt = &a.ExpiresAt
	}
	if out.Scopes == nil {
		out.Scopes = []string{}
	}
	return out
}

// createAdminConsent makes an admin-consent link for a tenant, for the
// app to hand to the tenant's administrator. Admin keys only.
func (s *server) createAdminConsent(c *gin.Context) {
	who := callerOf(c)
	if !who.Admin {
		problem(c, http.StatusForbidden, "admin_required", "Only an admin key may ask for an organisation's admin consent.")
		return
	}
	var req adminConsentRequest
	if !bind(c, &req) {
		return
	}
	if _, err := identity.CheckAdminConsentTenant(req.Tenant); err != nil {
		problem(c, http.StatusUnprocessableEntity, "invalid_tenant", capitalize(err.Error())+".")
		return
	}
	f := features{Read: true, Send: true}
	if req.Features != nil {
		f = *req.Features
	}
	if !f.Read && !f.Send {
		problem(c, http.StatusUnprocessableEntity, "invalid_features", "Ask for at least one feature: read or send.")
		return
	}
	l, err := s.d.Connect.NewAdminConsentLink(c, connect.AdminConsentRequest{OrgID: who.Org.ID, Tenant: req.Tenant,
		Features: identity.Features{Read: f.Read, Send: f.Send}, RequestedBy: who.User})
	if err != nil {
		s.unavailable(c, err)
		return
	}
	c.Header("Location", "/v1/tenants/"+l.Tenant)
	c.PureJSON(http.StatusCreated, toAdminConsentLinkJSON(l))
}

// getTenant shows a tenant's admin consent: the newest answer, or a link
// waiting for one. Admin keys only.
func (s *server) getTenant(c *gin.Context) {
	who := callerOf(c)
	if !who.Admin {
		problem(c, http.StatusForbidden, "admin_required", "Only an admin key may read an organisation's admin consent.")
		return
	}
	tenant, err := identity.CheckAdminConsentTenant(c.Param("tenant"))
	if err != nil {
		problem(c, http.StatusNotFound, "tenant_not_found", "No admin consent is known for this tenant.")
		return
	}
	a, err := s.d.Store.TenantConsent(c, who.Org.ID, tenant)
	if errors.Is(err, store.ErrNotFound) {
		problem(c, http.StatusNotFound, "tenant_not_found", "No admin consent is known for this tenant.")
		return
	}
	if err != nil {
		s.unavailable(c, err)
		return
	}
	c.PureJSON(http.StatusOK, toTenantConsentJSON(a))
}

// adminCallback records the administrator's answer and tells them, in one
// page, what happened. Nothing secret is shown or logged (the access log
// logs paths only).
func (s *server) adminCallback(c *gin.Context) {
	c.Header("Cache-Control", "no-store")
	c.Header("Referrer-Policy", "no-referrer")
	ctx, cancel := context.WithTimeout(c, 20*time.Second)
	defer cancel()
	a, err := s.d.Connect.AdminCallback(ctx, c.Request.URL.Query())
	var p page
	status := http.StatusOK
	switch {
	case errors.Is(err, connect.ErrInvalidState), errors.Is(err, connect.ErrAdminConsentAnswer):
		status = http.StatusBadRequest
		p = page{Title: "This approval link is not valid", Lead: "It was not made by outlookd, or it was changed on the way; nothing was recorded.", Advice: "Ask the app for a new approval link."}
	case errors.Is(err, connect.ErrConsentExpired):
		status = http.StatusBadRequest
		p = page{Title: "This approval link has expired", Lead: "Approval links are valid for 7 days; nothing was recorded.", Advice: "Ask the app for a new approval link."}
	case errors.Is(err, connect.ErrAdminConsentUsed):
		status = http.StatusConflict
		p = page{Title: "This approval link was used already", Lead: usedLead(a), Advice: "Nothing changed. To answer again, ask the app for a new approval link."}
	case err != nil:
		s.d.Logger.Error("admin consent callback failed", "err", err)
		status = http.StatusServiceUnavailable
		p = page{Title: "We could not record your answer", Lead: "A service outlookd depends on did not answer.", Advice: "Wait a minute and open the approval link again."}
	case a.Outcome == store.ConsentGranted:
		p = page{OK: true, Title: "You approved the app for your organisation",
			Lead:   fmt.Sprintf("Its users can now connect their mailboxes (%s).", joinList(a.GrantedScopes)),
			Advice: "Tell the people who asked that they can sign in again from the app."}
	default:
		status = http.StatusForbidden
		p = page{Title: "The app was not approved", Lead: a.ReasonText, Advice: adminAdvice(a.Reason)}
	}
	c.Header("Content-Type", "text/html; charset=utf-8")
	c.Status(status)
	if err := pageTemplate.Execute(c.Writer, p); err != nil {
		s.d.Logger.Error("render admin consent page", "err", err)
	}
}

// usedLead says how a used link was answered.
func usedLead(a store.AdminConsent) string {
	if a.AnsweredAt == nil {
		return "Its answer was recorded already."
	}
	when := a.AnsweredAt.UTC().Format("2 January 2006 at 15:04 UTC")
	if a.Outcome == store.ConsentGranted {
		return "The app was approved for your organisation on " + when + "."
	}
	return "The app was not approved when it was used on " + when + "."
}

// adminAdvice tells the person on the admin consent page what to do after
// a refusal.
func adminAdvice(reason string) string {
	switch identity.Reason(reason) {
	case identity.ReasonAdminConsentRequired:
		return "Ask the app for a new approval link and give it to an administrator of your organisation."
	case identity.ReasonConsentDeclined:
		return "Nothing was granted. If that was a mistake, ask the app for a new approval link."
	}
	return "Ask the app for a new approval link. If it keeps failing, tell the app's support team what this page says."
}

func joinList(s []string) string {
	switch len(s) {
	case 0:
		return "no permission was named"
	case 1:
		return s[0]
	}
	out := ""
	for i, v := range s {
		switch {
		case i == len(s)-1:
			out += " and " + v
		case i > 0:
			out += ", " + v
		default:
			out += v
		}
	}
	return out
}

// adminConsentViews adds to connection views what admin consent says of
// them: the tenant's consent, and for a connection waiting for one its
// admin-consent link. A failure leaves the views without them.
func (s *server) adminConsentViews(ctx context.Context, rows []store.Connection, views []connectionJSON) {
	if len(rows) == 0 {
		return
	}
	var tenants []string
	for _, v := range views {
		if v.TenantID != "" {
			tenants = append(tenants, strings.ToLower(v.TenantID))
		}
	}
	consents, err := s.d.Store.TenantConsents(ctx, rows[0].OrgID, tenants)
	if err != nil {
		s.d.Logger.Warn("tenant consents", "err", err)
	}
	for i := range views {
		v := &views[i]
		if a, ok := consents[strings.ToLower(v.TenantID)]; ok && v.TenantID != "" {
			v.TenantConsent = toTenantConsentJSON(a)
		}
		if v.State != workflows.StateAdminConsentRequired {
			continue
		}
		row := rows[i]
		row.TenantID = v.TenantID
		l, err := s.d.Connect.ConnectionAdminConsentLink(ctx, row)
		if err != nil {
			s.d.Logger.Warn("admin consent link", "connection", row.ID, "err", err)
			continue
		}
		v.AdminConsent = toAdminConsentLinkJSON(l)
		if v.TenantConsent == nil {
			// A tenant not known yet: the consent given through this
			// connection's own link.
			if a, err := s.d.Store.ConnectionConsent(ctx, row.ID); err == nil {
				v.TenantConsent = toTenantConsentJSON(a)
			}
		}
	}
}
