package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Outcomes of an admin consent.
const (
	ConsentGranted = "granted"
	ConsentRefused = "refused"
)

// AdminConsent is an admin-consent link the API made, and Microsoft's
// answer once the administrator came back through it. The link's state
// nonce is not part of it: StateHash is its SHA-256.
type AdminConsent struct {
	ID    string
	OrgID string
	// Tenant is the tenant as asked: a tenant ID, a domain, or
	// organizations.
	Tenant       string
	ConnectionID string
	Scopes       []string
	StateHash    []byte
	RequestedBy  string
	CreatedAt    time.Time
	ExpiresAt    time.Time
	// The answer: zero until the callback recorded one.
	AnsweredAt *time.Time
	Outcome    string
	// TenantID is the tenant Microsoft's consent names.
	TenantID      string
	GrantedScopes []string
	Reason        string
	ReasonText    string
}

// Answered says whether the callback recorded an answer.
func (a AdminConsent) Answered() bool { return a.AnsweredAt != nil }

// AdminConsentAnswer is how Microsoft answered an admin-consent link.
type AdminConsentAnswer struct {
	Outcome       string
	TenantID      string
	GrantedScopes []string
	Reason        string
	ReasonText    string
}

// ErrAnswered: the admin-consent link was answered already, or has
// expired; it takes no (further) answer.
var ErrAnswered = errors.New("store: the admin consent was answered already or has expired")

const adminConsentSelect = `
	SELECT id, org_id, tenant, connection_id, scopes, state_hash, requested_by, created_at, expires_at,
		answered_at, outcome, tenant_id, granted_scopes, reason, reason_text
	FROM admin_consents `

func scanAdminConsent(r pgx.Row) (AdminConsent, error) {
	var a AdminConsent
	var conn, outcome, tid, reason, text *string
	err := r.Scan(&a.ID, &a.OrgID, &a.Tenant, &conn, &a.Scopes, &a.StateHash, &a.RequestedBy, &a.CreatedAt, &a.ExpiresAt,
		&a.AnsweredAt, &outcome, &tid, &a.GrantedScopes, &reason, &text)
	a.ConnectionID, a.Outcome, a.TenantID, a.Reason, a.ReasonText = deref(conn), deref(outcome), deref(tid), deref(reason), deref(text)
	return a, err
}

// InsertAdminConsent records a new admin-consent link; recording one that
// exists is a no-op.
func (s *Store) InsertAdminConsent(ctx context.Context, a AdminConsent) error {
	_, err := s.pool.Exec(ctx, `
		INSERT INTO admin_consents (id, org_id, tenant, connection_id, scopes, state_hash, requested_by, expires_at)
		VALUES ($1, $2, $3, NULLIF($4, ''), $5, $6, $7, $8)
		ON CONFLICT (id) DO NOTHING`,
		a.ID, a.OrgID, a.Tenant, a.ConnectionID, a.Scopes, a.StateHash, a.RequestedBy, a.ExpiresAt)
	if err != nil {
		return fmt.Errorf("store: record admin consent %s: %w", a.ID, err)
	}
	return nil
}

// GetAdminConsent finds an admin-consent link by its ID.
func (s *Store) GetAdminConsent(ctx context.Context, id string) (AdminConsent, error) {
	a, err := scanAdminConsent(s.pool.QueryRow(ctx, adminConsentSelect+`WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return a, fmt.Errorf("store: admin consent %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return a, fmt.Errorf("store: get admin consent %s: %w", id, err)
	}
	return a, nil
}

// AnswerAdminConsent records Microsoft's answer to a link, once: a link
// answered already or expired is left as it is (ErrAnswered), so a
// replayed callback changes nothing.
func (s *Store) AnswerAdminConsent(ctx context.Context, id string, ans AdminConsentAnswer) (AdminConsent, error) {
	a, err := scanAdminConsent(s.pool.QueryRow(ctx, `
		UPDATE admin_consents SET answered_at = now(), outcome = $2, tenant_id = NULLIF($3, ''), granted_scopes = $4,
			reason = NULLIF($5, ''), reason_text = NULLIF($6, '')
		WHERE id = $1 AND answered_at IS NULL AND expires_at > now()
		RETURNING id, org_id, tenant, connection_id, scopes, state_hash, requested_by, created_at, expires_at,
			answered_at, outcome, tenant_id, granted_scopes, reason, reason_text`,
		id, ans.Outcome, ans.TenantID, ans.GrantedScopes, ans.Reason, ans.ReasonText))
	if errors.Is(err, pgx.ErrNoRows) {
		return a, fmt.Errorf("store: answer admin consent %s: %w", id, ErrAnswered)
	}
	if err != nil {
		return a, fmt.Errorf("store: answer admin consent %s: %w", id, err)
	}
	return a, nil
}

// TenantConsent is what the registry knows of a tenant's admin consent for
// an organisation: the newest answer naming it (by tenant ID, or by the
// tenant as asked, which is how a refusal is found), or else the newest
// link still waiting for an answer. ErrNotFound when there is neither.
func (s *Store) TenantConsent(ctx context.Context, orgID, tenant string) (AdminConsent, error) {
	a, err := scanAdminConsent(s.pool.QueryRow(ctx, adminConsentSelect+`
		WHERE org_id = $1 AND (lower(tenant_id) = lower($2) OR lower(tenant) = lower($2))
			AND (answered_at IS NOT NULL OR expires_at > now())
		ORDER BY answered_at DESC NULLS LAST, created_at DESC LIMIT 1`, orgID, tenant))
	if errors.Is(err, pgx.ErrNoRows) {
		return a, fmt.Errorf("store: consent of tenant %s: %w", tenant, ErrNotFound)
	}
	if err != nil {
		return a, fmt.Errorf("store: consent of tenant %s: %w", tenant, err)
	}
	return a, nil
}

// TenantConsents finds the newest consent granted by each of the given
// tenants (by tenant ID) for an organisation, in one query; tenants
// without one are absent from the answer.
func (s *Store) TenantConsents(ctx context.Context, orgID string, tenantIDs []string) (map[string]AdminConsent, error) {
	out := map[string]AdminConsent{}
	if len(tenantIDs) == 0 {
		return out, nil
	}
	rows, err := s.pool.Query(ctx, `
		SELECT DISTINCT ON (tenant_id) id, org_id, tenant, connection_id, scopes, state_hash, requested_by, created_at, expires_at,
			answered_at, outcome, tenant_id, granted_scopes, reason, reason_text
		FROM admin_consents
		WHERE org_id = $1 AND tenant_id = ANY($2) AND outcome = 'granted'
		ORDER BY tenant_id, answered_at DESC`, orgID, tenantIDs)
	if err != nil {
		return nil, fmt.Errorf("store: tenant consents: %w", err)
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (AdminConsent, error) { return scanAdminConsent(r) })
	if err != nil {
		return nil, fmt.Errorf("store: tenant consents: %w", err)
	}
	for _, a := range list {
		out[a.TenantID] = a
	}
	return out, nil
}

// ConnectionConsent finds the newest consent granted through the links
// made for a connection (ErrNotFound when there is none).
func (s *Store) ConnectionConsent(ctx context.Context, connectionID string) (AdminConsent, error) {
	a, err := scanAdminConsent(s.pool.QueryRow(ctx, adminConsentSelect+`
		WHERE connection_id = $1 AND outcome = 'granted' ORDER BY answered_at DESC LIMIT 1`, connectionID))
	if errors.Is(err, pgx.ErrNoRows) {
		return a, fmt.Errorf("store: consent of connection %s: %w", connectionID, ErrNotFound)
	}
	if err != nil {
		return a, fmt.Errorf("store: consent of connection %s: %w", connectionID, err)
	}
	return a, nil
}
