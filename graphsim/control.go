package graphsim

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Reasons a user's refresh tokens stop working, each answered with the
// identity platform's own error (docs/graph.md#aadsts-codes).
const (
	RevokeSignInSessions    = "revoked"            // admin revoked sessions: AADSTS50173
	RevokePasswordChanged   = "password_changed"   // password reset: AADSTS50173
	RevokeMFARequired       = "mfa_required"       // MFA now required: AADSTS50076
	RevokeConsentRevoked    = "consent_revoked"    // consent removed: AADSTS65001
	RevokeConditionalAccess = "conditional_access" // blocked by CA: AADSTS53003
	RevokeDisabled          = "disabled"           // account disabled: AADSTS50057
)

// ErrNotFound is returned by control methods for unknown tenants, apps,
// users, folders or messages.
var ErrNotFound = errors.New("graphsim: not found")

// TenantSpec describes a tenant to create.
type TenantSpec struct {
	ID     string `json:"id,omitempty"`
	Domain string `json:"domain"`
	Name   string `json:"name,omitempty"`
	// AdminConsentRequired disables user consent (AADSTS90094 at sign-in).
	AdminConsentRequired bool `json:"adminConsentRequired,omitempty"`
}

// AddTenant creates a work or school tenant.
func (s *Sim) AddTenant(spec TenantSpec) (*Tenant, error) {
	if spec.Domain == "" {
		return nil, errors.New("graphsim: a tenant needs a domain")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tenantFor(spec.Domain) != nil {
		return nil, fmt.Errorf("graphsim: tenant %s exists", spec.Domain)
	}
	if spec.ID == "" {
		spec.ID = newGUID()
	}
	if spec.Name == "" {
		spec.Name = spec.Domain
	}
	t := &Tenant{ID: spec.ID, Domain: spec.Domain, Name: spec.Name, UserConsent: !spec.AdminConsentRequired}
	s.addTenantLocked(t)
	cp := *t
	return &cp, nil
}

// AppSpec describes an app registration.
type AppSpec struct {
	ClientID     string   `json:"clientId,omitempty"`
	Name         string   `json:"name"`
	HomeTenant   string   `json:"homeTenant,omitempty"`
	RedirectURIs []string `json:"redirectUris"`
	// Secret is the client secret; one is generated when empty.
	Secret        string    `json:"secret,omitempty"`
	SecretExpires time.Time `json:"secretExpires,omitempty"`
	AppRoles      []string  `json:"appRoles,omitempty"`
	AutoConsent   bool      `json:"autoConsent,omitempty"`
}

// AddApp registers an app and returns it with its secret.
func (s *Sim) AddApp(spec AppSpec) (*App, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if spec.ClientID == "" {
		spec.ClientID = newGUID()
	}
	if s.apps[spec.ClientID] != nil {
		return nil, fmt.Errorf("graphsim: app %s exists", spec.ClientID)
	}
	if spec.Secret == "" {
		spec.Secret = "sim~" + randomToken(30)
	}
	for _, role := range spec.AppRoles {
		if _, ok := applicationPermissions[role]; !ok {
			return nil, fmt.Errorf("graphsim: unknown application permission %q", role)
		}
	}
	a := &App{
		ClientID: spec.ClientID, Name: spec.Name, HomeTenant: spec.HomeTenant,
		RedirectURIs: slices.Clone(spec.RedirectURIs), AppRoles: slices.Clone(spec.AppRoles), AutoConsent: spec.AutoConsent,
		Secrets: []SecretSpec{{ID: newGUID(), Value: spec.Secret, Expires: spec.SecretExpires}},
	}
	s.apps[a.ClientID] = a
	s.remember(spec.Secret)
	cp := *a
	return &cp, nil
}

// AddRedirectURI registers another redirect URI on an app, as an admin
// would in the app registration.
func (s *Sim) AddRedirectURI(clientID, uri string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.apps[clientID]
	if a == nil {
		return fmt.Errorf("graphsim: app %s: %w", clientID, ErrNotFound)
	}
	if !slices.Contains(a.RedirectURIs, uri) {
		a.RedirectURIs = append(a.RedirectURIs, uri)
	}
	return nil
}

// AddSecret adds a client secret to an app (for rotation tests).
func (s *Sim) AddSecret(clientID, value string, expires time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.apps[clientID]
	if a == nil {
		return ErrNotFound
	}
	a.Secrets = append(a.Secrets, SecretSpec{ID: newGUID(), Value: value, Expires: expires})
	s.remember(value)
	return nil
}

// UserSpec describes a user or a shared mailbox.
type UserSpec struct {
	ID          string `json:"id,omitempty"`
	Tenant      string `json:"tenant"` // tenant ID or domain; "consumers" for a personal account
	UPN         string `json:"userPrincipalName"`
	DisplayName string `json:"displayName,omitempty"`
	Shared      bool   `json:"shared,omitempty"`
	Admin       bool   `json:"admin,omitempty"`
	RequireMFA  bool   `json:"requireMfa,omitempty"`
	BlockedByCA bool   `json:"blockedByConditionalAccess,omitempty"`
	Declines    bool   `json:"declinesConsent,omitempty"`
	NoMailbox   bool   `json:"noMailbox,omitempty"`
	// SubscriptionsFull: other apps have used up the mailbox's
	// subscription quota, so Graph refuses new subscriptions with 403.
	SubscriptionsFull bool `json:"subscriptionsFull,omitempty"`
}

// AddUser creates a user with a mailbox (unless NoMailbox).
func (s *Sim) AddUser(spec UserSpec) (*User, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tenantFor(spec.Tenant)
	if strings.EqualFold(spec.Tenant, "consumers") {
		t = s.tenants[ConsumerTenantID]
	}
	if t == nil {
		return nil, fmt.Errorf("graphsim: tenant %q: %w", spec.Tenant, ErrNotFound)
	}
	if spec.UPN == "" || !strings.Contains(spec.UPN, "@") {
		return nil, errors.New("graphsim: a user needs an address as userPrincipalName")
	}
	if s.userByName[strings.ToLower(spec.UPN)] != nil {
		return nil, fmt.Errorf("graphsim: user %s exists", spec.UPN)
	}
	if spec.ID == "" {
		spec.ID = newGUID()
	}
	if spec.DisplayName == "" {
		spec.DisplayName = strings.Split(spec.UPN, "@")[0]
	}
	u := &User{
		ID: spec.ID, TenantID: t.ID, UPN: spec.UPN, Mail: spec.UPN, DisplayName: spec.DisplayName,
		Shared: spec.Shared, Admin: spec.Admin, RequireMFA: spec.RequireMFA, BlockedByCA: spec.BlockedByCA,
		DeclinesConsent: spec.Declines, NoMailbox: spec.NoMailbox, SubscriptionsFull: spec.SubscriptionsFull,
		consents: map[string]map[string]bool{}, rights: map[string]map[string]bool{},
	}
	if !spec.NoMailbox {
		u.mailbox = newMailbox(u.ID)
		u.mailbox.emit = func(ev changeEvent) { s.delivery.changed(u, ev) }
	}
	s.users[u.ID] = u
	s.userByName[strings.ToLower(u.UPN)] = u
	s.touchUser(u)
	cp := *u
	return &cp, nil
}

// user resolves a user by ID or address; the caller holds the lock.
func (s *Sim) user(idOrUPN string) *User {
	if u := s.users[idOrUPN]; u != nil {
		return u
	}
	return s.userByName[strings.ToLower(idOrUPN)]
}

// GrantMailboxRights gives delegate rights on owner's mailbox (Right*
// constants: read, readwrite, fullaccess, sendas, sendonbehalf), as an
// Exchange admin would (docs/graph.md#mailbox-rights).
func (s *Sim) GrantMailboxRights(owner, delegate string, rights ...string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, d := s.user(owner), s.user(delegate)
	if o == nil || d == nil {
		return ErrNotFound
	}
	if err := checkRights(rights); err != nil {
		return err
	}
	if o.rights[d.ID] == nil {
		o.rights[d.ID] = map[string]bool{}
	}
	for _, r := range rights {
		o.rights[d.ID][r] = true
	}
	return nil
}

// GrantConsent records a user's (or, with user empty, the tenant admin's)
// delegated consent, or with roles, the tenant's application permissions.
func (s *Sim) GrantConsent(tenant, clientID, user string, scopes, roles []string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tenantFor(tenant)
	if t == nil || s.apps[clientID] == nil {
		return ErrNotFound
	}
	if user != "" {
		u := s.user(user)
		if u == nil {
			return ErrNotFound
		}
		if u.consents[clientID] == nil {
			u.consents[clientID] = map[string]bool{}
		}
		for _, sc := range scopes {
			u.consents[clientID][sc] = true
		}
		return nil
	}
	if t.adminGrants[clientID] == nil {
		t.adminGrants[clientID] = map[string]bool{}
	}
	for _, sc := range scopes {
		t.adminGrants[clientID][sc] = true
	}
	if t.appRoleGrants[clientID] == nil {
		t.appRoleGrants[clientID] = map[string]bool{}
	}
	for _, r := range roles {
		t.appRoleGrants[clientID][r] = true
	}
	return nil
}

// Revoke kills every refresh token issued to the user so far, for a reason
// (Revoke* constants) that decides the error the token endpoint returns.
// Access tokens already issued stay valid until they expire, as in Graph
// without continuous access evaluation.
func (s *Sim) Revoke(user, reason string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.user(user)
	if u == nil {
		return ErrNotFound
	}
	switch reason {
	case RevokeSignInSessions, RevokePasswordChanged, RevokeConsentRevoked:
	case RevokeMFARequired, RevokeConditionalAccess, RevokeDisabled:
		// Conditional Access, per-user MFA and disabling an account are a
		// directory administrator's policies: a personal account has
		// neither a directory nor an administrator
		// (docs/graph.md#personal-accounts).
		if s.tenants[u.TenantID].Personal {
			return fmt.Errorf("graphsim: %q is a directory's policy and cannot apply to the personal account %s", reason, u.UPN)
		}
	default:
		return fmt.Errorf("graphsim: unknown revocation reason %q", reason)
	}
	s.revokeLocked(u, reason)
	return nil
}

// revokeLocked kills u's refresh tokens for a reason. The caller holds s.mu.
func (s *Sim) revokeLocked(u *User, reason string) {
	u.revokedAt = s.clock.Now()
	u.revokeReason = reason
	// The user's access changed: their subscriptions must be reauthorized
	// (docs/graph.md#lifecycle-notifications), and hold notifications until they are.
	for _, sub := range s.subs {
		if sub.delegated && sub.CreatorID == u.ID && !sub.NeedsReauth {
			sub.NeedsReauth = true
			s.delivery.lifecycle(sub, "reauthorizationRequired")
		}
	}
	switch reason {
	case RevokeConsentRevoked:
		// The user's own grants go; the tenant's admin grants (and so
		// other users) are untouched.
		u.consents = map[string]map[string]bool{}
	case RevokeMFARequired:
		u.RequireMFA = true
	case RevokeConditionalAccess:
		u.BlockedByCA = true
	}
}

// Restore lifts a block set by Revoke (conditional access, disabled), so a
// new sign-in can succeed; old refresh tokens stay dead.
func (s *Sim) Restore(user string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.user(user)
	if u == nil {
		return ErrNotFound
	}
	u.BlockedByCA = false
	return nil
}

// AdvanceClock moves the simulated time forward.
func (s *Sim) AdvanceClock(d time.Duration) { s.clock.Advance(d) }

// SetFault installs (or, with all shares zero, removes) a fault rule.
func (s *Sim) SetFault(f Fault) { s.faults.set(f) }

// ClearFaults removes every fault rule.
func (s *Sim) ClearFaults() { s.faults.clear() }

// Counters returns request and event counters.
func (s *Sim) Counters() map[string]int64 { return s.stats.snapshot() }

// ResetCounters zeroes the counters.
func (s *Sim) ResetCounters() { s.stats.reset() }

// MailboxLoads reports, per app and mailbox, the most requests the
// simulator saw in flight at once and how many it refused for the
// mailbox's concurrency, since the last throttle reset.
func (s *Sim) MailboxLoads() []MailboxLoad { return s.throttle.loads() }

// ExpireDeltaTokens makes every delta and skip token of the user's mailbox
// answer 410 SyncStateNotFound from now on.
func (s *Sim) ExpireDeltaTokens(user string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.user(user)
	if u == nil || u.mailbox == nil {
		return ErrNotFound
	}
	u.mailbox.generation++
	return nil
}

// User returns a copy of a user by ID or address.
func (s *Sim) User(idOrUPN string) (*User, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	u := s.user(idOrUPN)
	if u == nil {
		return nil, ErrNotFound
	}
	cp := *u
	return &cp, nil
}

// Subscriptions lists every subscription, expired ones included.
func (s *Sim) Subscriptions() []Subscription {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]Subscription, 0, len(s.subs))
	for _, sub := range s.subs {
		out = append(out, *sub)
	}
	slices.SortFunc(out, func(a, b Subscription) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// RemoveSubscription deletes a subscription as Graph does on its own side,
// telling the app with a subscriptionRemoved lifecycle event.
func (s *Sim) RemoveSubscription(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	sub := s.subs[id]
	if sub == nil {
		return ErrNotFound
	}
	s.delivery.lifecycle(sub, "subscriptionRemoved")
	delete(s.subs, id)
	return nil
}

// SendLifecycle sends a lifecycle event (missed or reauthorizationRequired;
// the latter also holds notifications until the app reauthorizes).
func (s *Sim) SendLifecycle(id, event string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	sub := s.subs[id]
	if sub == nil {
		return ErrNotFound
	}
	switch event {
	case "missed":
	case "reauthorizationRequired":
		sub.NeedsReauth = true
	default:
		return fmt.Errorf("graphsim: lifecycle event must be missed or reauthorizationRequired, not %q", event)
	}
	s.delivery.lifecycle(sub, event)
	return nil
}

// SetNotificationFault delays, drops or duplicates notifications.
func (s *Sim) SetNotificationFault(f NotificationFault) { s.delivery.setFault(f) }

// SetEndpointReachable makes a notification URL unreachable, or reachable
// again.
func (s *Sim) SetEndpointReachable(url string, reachable bool) {
	s.delivery.setReachable(url, reachable)
}

// Endpoints reports how each notification URL is treated.
func (s *Sim) Endpoints() []EndpointState { return s.delivery.states() }

// SentMail returns what a mailbox has sent, in order.
func (s *Sim) SentMail(user string) ([]SentMail, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	u := s.user(user)
	if u == nil {
		return nil, ErrNotFound
	}
	return slices.Clone(s.sent[u.ID]), nil
}
