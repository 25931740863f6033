package connect

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/outlookd/outlookd/identity"
	"github.com/outlookd/outlookd/store"
	"github.com/outlookd/outlookd/vault"
)

// AdminConsentLifetime bounds how long an admin-consent link stays usable:
// it is handed to an organisation's IT administrator, who may take days.
const AdminConsentLifetime = 7 * 24 * time.Hour

// adminLinkReuseMargin: a connection's link this close to its expiry is
// replaced by a fresh one rather than shown again.
const adminLinkReuseMargin = 24 * time.Hour

// Errors of the admin consent callback.
var (
	// ErrAdminConsentUsed: the link was answered already (a reload, or a
	// replay); nothing is recorded again.
	ErrAdminConsentUsed = errors.New("connect: the admin consent link was used already")
	// ErrAdminConsentAnswer: the redirect carries neither a consent nor an
	// error, which Microsoft never sends.
	ErrAdminConsentAnswer = errors.New("connect: the admin consent redirect carries no answer")
)

// AdminConsentRequest asks for an admin-consent link.
type AdminConsentRequest struct {
	OrgID string
	// Tenant is a tenant ID, a domain of the organisation, or
	// organizations (identity.CheckAdminConsentTenant).
	Tenant   string
	Features identity.Features
	// RequestedBy is who asked for the link (the app user, or the
	// connection's owner).
	RequestedBy string
	// ConnectionID is the connection the link is made for, if any.
	ConnectionID string
}

// AdminConsentLink is a link to Microsoft's admin consent endpoint.
type AdminConsentLink struct {
	ID        string
	Tenant    string
	Scopes    []string
	URL       string
	ExpiresAt time.Time
}

// NewAdminConsentLink makes an admin-consent link for a tenant: a state of
// the link's ID and a fresh nonce, of which the registry keeps the SHA-256
// only; the URL (the one place the nonce appears) is answered once.
func (s *Service) NewAdminConsentLink(ctx context.Context, r AdminConsentRequest) (AdminConsentLink, error) {
	l, _, err := s.newAdminConsentLink(ctx, r)
	return l, err
}

func (s *Service) newAdminConsentLink(ctx context.Context, r AdminConsentRequest) (AdminConsentLink, string, error) {
	tenant, err := identity.CheckAdminConsentTenant(r.Tenant)
	if err != nil {
		return AdminConsentLink{}, "", err
	}
	id, nonce := "ac_"+random(12), random(24)
	scopes := s.Identity.AdminConsentScopes(r.Features)
	hash := sha256.Sum256([]byte(nonce))
	expires := time.Now().Add(AdminConsentLifetime).UTC().Truncate(time.Microsecond)
	if r.ConnectionID != "" {
		// Vault first: a link whose nonce cannot be kept is not made.
		if err := s.Tokens.PutAdminConsentLink(ctx, r.ConnectionID, vault.AdminConsentLink{ID: id, Nonce: nonce}); err != nil {
			return AdminConsentLink{}, "", err
		}
	}
	if err := s.Store.InsertAdminConsent(ctx, store.AdminConsent{ID: id, OrgID: r.OrgID, Tenant: tenant, ConnectionID: r.ConnectionID,
		Scopes: scopes, StateHash: hash[:], RequestedBy: r.RequestedBy, ExpiresAt: expires}); err != nil {
		return AdminConsentLink{}, "", err
	}
	return AdminConsentLink{ID: id, Tenant: tenant, Scopes: scopes, URL: s.Identity.AdminConsentURL(tenant, scopes, id+"."+nonce), ExpiresAt: expires}, nonce, nil
}

// ConnectionAdminConsentLink is the admin-consent link of a connection
// whose tenant requires an administrator's approval: for its tenant when
// it is known (a connection that was active before), "organizations"
// otherwise, with the scopes its features need. The same link is shown
// until it is answered or close to its expiry; then a fresh one is made.
func (s *Service) ConnectionAdminConsentLink(ctx context.Context, row store.Connection) (AdminConsentLink, error) {
	tenant := strings.ToLower(row.TenantID)
	if tenant == "" {
		tenant = "organizations"
	}
	settings := SettingsOf(row)
	f := identity.Features{Read: settings.Features.Read, Send: settings.Features.Send}
	scopes := s.Identity.AdminConsentScopes(f)
	kept, err := s.Tokens.GetAdminConsentLink(ctx, row.ID)
	if err != nil && !errors.Is(err, vault.ErrNotFound) {
		return AdminConsentLink{}, err
	}
	if err == nil {
		a, gerr := s.Store.GetAdminConsent(ctx, kept.ID)
		switch {
		case gerr == nil && !a.Answered() && time.Until(a.ExpiresAt) > adminLinkReuseMargin && a.Tenant == tenant && slices.Equal(a.Scopes, scopes):
			return AdminConsentLink{ID: a.ID, Tenant: a.Tenant, Scopes: a.Scopes, URL: s.Identity.AdminConsentURL(a.Tenant, a.Scopes, a.ID+"."+kept.Nonce),
				ExpiresAt: a.ExpiresAt}, nil
		case gerr != nil && !errors.Is(gerr, store.ErrNotFound):
			return AdminConsentLink{}, gerr
		}
	}
	l, _, err := s.newAdminConsentLink(ctx, AdminConsentRequest{OrgID: row.OrgID, Tenant: tenant, Features: f, RequestedBy: row.OwnerID, ConnectionID: row.ID})
	return l, err
}

// AdminCallback records Microsoft's answer to an admin-consent link from
// its redirect's query: the state must name a link and carry its nonce
// (compared in constant time with the kept SHA-256), the link must be
// unanswered and unexpired, and it is answered once. Only an answer
// without error and with a tenant is a consent: the v2 endpoint puts
// admin_consent=True on its errors too (docs/graph.md#admin-consent).
func (s *Service) AdminCallback(ctx context.Context, q url.Values) (store.AdminConsent, error) {
	id, nonce, ok := strings.Cut(q.Get("state"), ".")
	if !ok || !strings.HasPrefix(id, "ac_") || len(id) > 64 || nonce == "" {
		return store.AdminConsent{}, ErrInvalidState
	}
	a, err := s.Store.GetAdminConsent(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return store.AdminConsent{}, ErrInvalidState
	}
	if err != nil {
		return store.AdminConsent{}, err
	}
	hash := sha256.Sum256([]byte(nonce))
	if subtle.ConstantTimeCompare(hash[:], a.StateHash) != 1 {
		return store.AdminConsent{}, ErrInvalidState
	}
	if a.Answered() {
		return a, ErrAdminConsentUsed
	}
	if !time.Now().Before(a.ExpiresAt) {
		return a, ErrConsentExpired
	}
	var ans store.AdminConsentAnswer
	switch e, tenant := q.Get("error"), q.Get("tenant"); {
	case e != "":
		reason := identity.ClassifyAdminConsent(e, q.Get("error_description"))
		ans = store.AdminConsentAnswer{Outcome: store.ConsentRefused, Reason: string(reason), ReasonText: adminRefusalText(reason)}
	case tenant != "":
		granted := identity.GrantedScopes(q.Get("scope"))
		if q.Get("scope") == "" {
			granted = identity.GrantedScopes(strings.Join(a.Scopes, " "))
		}
		ans = store.AdminConsentAnswer{Outcome: store.ConsentGranted, TenantID: strings.ToLower(tenant), GrantedScopes: granted}
	default:
		return a, ErrAdminConsentAnswer
	}
	answered, err := s.Store.AnswerAdminConsent(ctx, id, ans)
	if errors.Is(err, store.ErrAnswered) {
		// Answered (or expired) meanwhile: say how it stands.
		if a, err = s.Store.GetAdminConsent(ctx, id); err != nil {
			return a, err
		}
		if a.Answered() {
			return a, ErrAdminConsentUsed
		}
		return a, ErrConsentExpired
	}
	if err != nil {
		return a, fmt.Errorf("connect: record the admin consent: %w", err)
	}
	if answered.ConnectionID != "" {
		// The nonce of an answered link is of no further use.
		if kept, err := s.Tokens.GetAdminConsentLink(ctx, answered.ConnectionID); err == nil && kept.ID == answered.ID {
			_ = s.Tokens.DeleteAdminConsentLink(context.WithoutCancel(ctx), answered.ConnectionID)
		}
	}
	return answered, nil
}

// adminRefusalText says what a refused admin consent means, in a sentence.
func adminRefusalText(r identity.Reason) string {
	switch r {
	case identity.ReasonConsentDeclined:
		return "The administrator declined to approve the app for the organisation."
	case identity.ReasonAdminConsentRequired:
		return "The account that signed in is not an administrator of the organisation, so it cannot approve the app for everyone."
	}
	return r.Describe()
}
