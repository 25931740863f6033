package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Org is an organisation: one calling app.
type Org struct {
	ID   string
	Name string
	// ConnectionsPerUser caps the live connections one app user may own.
	ConnectionsPerUser int
}

// APIKey is a stored key: its public ID and the hash of its secret.
type APIKey struct {
	ID         string
	OrgID      string
	Name       string
	SecretHash []byte
	Admin      bool
	CreatedAt  time.Time
	RevokedAt  *time.Time
	// Org is filled in by LookupAPIKey.
	Org Org
}

// UpsertOrg creates an organisation or renames it; connectionsPerUser 0
// leaves the cap alone (1 for a new one).
func (s *Store) UpsertOrg(ctx context.Context, id, name string, connectionsPerUser int) (Org, error) {
	var o Org
	err := s.pool.QueryRow(ctx, `
		INSERT INTO orgs (id, name, connections_per_user) VALUES ($1, $2, GREATEST($3, 1))
		ON CONFLICT (id) DO UPDATE SET name = COALESCE(NULLIF(EXCLUDED.name, ''), orgs.name),
			connections_per_user = CASE WHEN $3 > 0 THEN $3 ELSE orgs.connections_per_user END
		RETURNING id, name, connections_per_user`, id, name, connectionsPerUser).Scan(&o.ID, &o.Name, &o.ConnectionsPerUser)
	if err != nil {
		return o, fmt.Errorf("store: upsert org %s: %w", id, err)
	}
	return o, nil
}

// InsertAPIKey stores a new key.
func (s *Store) InsertAPIKey(ctx context.Context, k APIKey) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO api_keys (id, org_id, name, secret_hash, admin) VALUES ($1, $2, $3, $4, $5)`,
		k.ID, k.OrgID, k.Name, k.SecretHash, k.Admin)
	if err != nil {
		return fmt.Errorf("store: insert api key: %w", err)
	}
	return nil
}

// LookupAPIKey finds a live (not revoked) key with its organisation.
func (s *Store) LookupAPIKey(ctx context.Context, id string) (APIKey, error) {
	var k APIKey
	err := s.pool.QueryRow(ctx, `
		SELECT k.id, k.org_id, k.name, k.secret_hash, k.admin, k.created_at, o.id, o.name, o.connections_per_user
		FROM api_keys k JOIN orgs o ON o.id = k.org_id
		WHERE k.id = $1 AND k.revoked_at IS NULL`, id).Scan(&k.ID, &k.OrgID, &k.Name, &k.SecretHash, &k.Admin, &k.CreatedAt,
		&k.Org.ID, &k.Org.Name, &k.Org.ConnectionsPerUser)
	if errors.Is(err, pgx.ErrNoRows) {
		return k, fmt.Errorf("store: api key: %w", ErrNotFound)
	}
	if err != nil {
		return k, fmt.Errorf("store: api key: %w", err)
	}
	return k, nil
}

// ListAPIKeys lists an organisation's keys (hashes included, secrets never
// stored).
func (s *Store) ListAPIKeys(ctx context.Context, orgID string) ([]APIKey, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, org_id, name, secret_hash, admin, created_at, revoked_at FROM api_keys WHERE org_id = $1 ORDER BY created_at`, orgID)
	if err != nil {
		return nil, fmt.Errorf("store: list api keys: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (APIKey, error) {
		var k APIKey
		err := r.Scan(&k.ID, &k.OrgID, &k.Name, &k.SecretHash, &k.Admin, &k.CreatedAt, &k.RevokedAt)
		return k, err
	})
}

// RevokeAPIKey revokes a key; revoking twice is harmless.
func (s *Store) RevokeAPIKey(ctx context.Context, id string) error {
	tag, err := s.pool.Exec(ctx, `UPDATE api_keys SET revoked_at = COALESCE(revoked_at, now()) WHERE id = $1`, id)
	if err != nil {
		return fmt.Errorf("store: revoke api key: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("store: api key %s: %w", id, ErrNotFound)
	}
	return nil
}
