package graphsim

import (
	"fmt"
	"slices"
	"strings"
)

// The access rights of an application access policy.
const (
	// PolicyRestrictAccess limits the app to the group's mailboxes.
	PolicyRestrictAccess = "RestrictAccess"
	// PolicyDenyAccess keeps the app out of the group's mailboxes.
	PolicyDenyAccess = "DenyAccess"
)

// AppAccessPolicy is an Exchange application access policy
// (New-ApplicationAccessPolicy): it narrows what an app's application
// permissions reach to the members of a mail-enabled security group, or
// keeps them out of it. Delegated access is not affected
// (docs/graph.md#application-access-policies).
type AppAccessPolicy struct {
	Tenant      string `json:"tenant"` // tenant ID or domain
	AppID       string `json:"appId"`
	AccessRight string `json:"accessRight"` // PolicyRestrictAccess or PolicyDenyAccess
	// Members are the group's members: user IDs or addresses.
	Members     []string `json:"members"`
	Description string   `json:"description,omitempty"`
}

// errPolicyDenied is Graph's answer to a call a policy blocks, as
// documented (observed texts go on with ": [RAOP] : Blocked by tenant
// configured AppOnly AccessPolicy settings.").
const errPolicyDenied = "Access to OData is disabled."

// appPolicy is a stored policy, its members resolved to user IDs.
type appPolicy struct {
	spec    AppAccessPolicy
	members map[string]bool
}

// SetAppAccessPolicy creates or replaces the policy of an app in a tenant.
// It applies at once (Exchange may take an hour).
func (s *Sim) SetAppAccessPolicy(p AppAccessPolicy) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tenantFor(p.Tenant)
	if t == nil || t.Personal {
		return fmt.Errorf("graphsim: tenant %q: %w", p.Tenant, ErrNotFound)
	}
	if s.apps[p.AppID] == nil {
		return fmt.Errorf("graphsim: app %q: %w", p.AppID, ErrNotFound)
	}
	if p.AccessRight != PolicyRestrictAccess && p.AccessRight != PolicyDenyAccess {
		return fmt.Errorf("graphsim: access right must be %s or %s, not %q", PolicyRestrictAccess, PolicyDenyAccess, p.AccessRight)
	}
	stored := &appPolicy{spec: p, members: map[string]bool{}}
	stored.spec.Tenant, stored.spec.Members = t.ID, nil
	for _, m := range p.Members {
		u := s.user(m)
		if u == nil || u.TenantID != t.ID {
			return fmt.Errorf("graphsim: group member %q: %w", m, ErrNotFound)
		}
		stored.members[u.ID] = true
		stored.spec.Members = append(stored.spec.Members, u.UPN)
	}
	slices.Sort(stored.spec.Members)
	if t.policies == nil {
		t.policies = map[string]*appPolicy{}
	}
	t.policies[p.AppID] = stored
	return nil
}

// RemoveAppAccessPolicy removes an app's policy in a tenant.
func (s *Sim) RemoveAppAccessPolicy(tenant, appID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tenantFor(tenant)
	if t == nil || t.policies[appID] == nil {
		return fmt.Errorf("graphsim: policy of %q in %q: %w", appID, tenant, ErrNotFound)
	}
	delete(t.policies, appID)
	return nil
}

// AppAccessPolicies lists every policy, by tenant and app.
func (s *Sim) AppAccessPolicies() []AppAccessPolicy {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []AppAccessPolicy
	for _, t := range s.tenants {
		for _, p := range t.policies {
			out = append(out, p.spec)
		}
	}
	slices.SortFunc(out, func(a, b AppAccessPolicy) int {
		return strings.Compare(a.Tenant+a.AppID, b.Tenant+b.AppID)
	})
	return out
}

// policyBlocks tells whether an app-only caller is kept out of target's
// mailbox by its tenant's policy for the app. The caller holds s.mu.
func (s *Sim) policyBlocks(p *principal, target *User) bool {
	if p.delegated() || target == nil {
		return false
	}
	t := s.tenants[target.TenantID]
	if t == nil || t.policies[p.appID] == nil {
		return false
	}
	pol := t.policies[p.appID]
	if pol.spec.AccessRight == PolicyRestrictAccess {
		return !pol.members[target.ID]
	}
	return pol.members[target.ID]
}
