package vault

import (
	"context"
	"fmt"
)

// AdminConsentLink is the admin-consent link made for a connection whose
// tenant requires an administrator's approval: its ID and its state
// nonce, kept so that the connection shows the same link until it is
// answered or expires (the registry keeps only the nonce's SHA-256).
type AdminConsentLink struct {
	ID    string
	Nonce string
}

// PutAdminConsentLink keeps a connection's admin-consent link, replacing
// the one kept before; it goes with the connection's other secrets.
func (ts *TokenStore) PutAdminConsentLink(ctx context.Context, connectionID string, l AdminConsentLink) error {
	if _, err := ts.kv.Put(ctx, ts.path(connectionID, "admin-consent"), map[string]any{"id": l.ID, "state_nonce": l.Nonce}); err != nil {
		return fmt.Errorf("vault: write admin consent link: %w", err)
	}
	return nil
}

// GetAdminConsentLink reads a connection's admin-consent link
// (ErrNotFound when it has none).
func (ts *TokenStore) GetAdminConsentLink(ctx context.Context, connectionID string) (AdminConsentLink, error) {
	s, err := ts.get(ctx, ts.path(connectionID, "admin-consent"))
	if err != nil {
		return AdminConsentLink{}, err
	}
	return AdminConsentLink{ID: str(s.Data, "id"), Nonce: str(s.Data, "state_nonce")}, nil
}

// DeleteAdminConsentLink removes a connection's admin-consent link, every
// version (an answered link is of no further use).
func (ts *TokenStore) DeleteAdminConsentLink(ctx context.Context, connectionID string) error {
	p := ts.path(connectionID, "admin-consent")
	if err := ts.kv.DeleteMetadata(ctx, p); err != nil {
		return fmt.Errorf("vault: delete %s: %w", p, err)
	}
	return nil
}
