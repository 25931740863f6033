package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Subscription is a Graph subscription of a connection: on its own
// mailbox (a delegated connection's, MailboxID empty), or on one of the
// mailboxes of an application connection (MailboxID names it; the
// notifications go to that mailbox's workflow).
type Subscription struct {
	ID              string
	ConnectionID    string
	MailboxID       string
	ClientStateHash []byte
	Resource        string
	ExpiresAt       time.Time
}

// SaveSubscription records (or renews) a subscription.
func (s *Store) SaveSubscription(ctx context.Context, sub Subscription) error {
	_, err := s.pool.Exec(ctx, `
		INSERT INTO subscriptions (id, connection_id, mailbox_id, client_state_hash, resource, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (id) DO UPDATE SET expires_at = EXCLUDED.expires_at`,
		sub.ID, sub.ConnectionID, sub.MailboxID, sub.ClientStateHash, sub.Resource, sub.ExpiresAt)
	if err != nil {
		return fmt.Errorf("store: save subscription: %w", err)
	}
	return nil
}

// GetSubscription finds a subscription by Graph's ID.
func (s *Store) GetSubscription(ctx context.Context, id string) (Subscription, error) {
	var sub Subscription
	err := s.pool.QueryRow(ctx, `SELECT id, connection_id, mailbox_id, client_state_hash, resource, expires_at FROM subscriptions WHERE id = $1`, id).
		Scan(&sub.ID, &sub.ConnectionID, &sub.MailboxID, &sub.ClientStateHash, &sub.Resource, &sub.ExpiresAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return sub, fmt.Errorf("store: subscription %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return sub, fmt.Errorf("store: get subscription: %w", err)
	}
	return sub, nil
}

// GetSubscriptions finds the subscriptions of the given IDs with one query;
// IDs the registry does not know are absent from the answer.
func (s *Store) GetSubscriptions(ctx context.Context, ids []string) (map[string]Subscription, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, connection_id, mailbox_id, client_state_hash, resource, expires_at FROM subscriptions WHERE id = ANY($1)`, ids)
	if err != nil {
		return nil, fmt.Errorf("store: get subscriptions: %w", err)
	}
	subs, err := pgx.CollectRows(rows, scanSubscription)
	if err != nil {
		return nil, fmt.Errorf("store: get subscriptions: %w", err)
	}
	out := make(map[string]Subscription, len(subs))
	for _, sub := range subs {
		out[sub.ID] = sub
	}
	return out, nil
}

func scanSubscription(r pgx.CollectableRow) (Subscription, error) {
	var sub Subscription
	err := r.Scan(&sub.ID, &sub.ConnectionID, &sub.MailboxID, &sub.ClientStateHash, &sub.Resource, &sub.ExpiresAt)
	return sub, err
}

// ListSubscriptions returns a connection's subscriptions: with a mailbox
// ID, those of that mailbox only; without, all of them (its own and its
// mailboxes').
func (s *Store) ListSubscriptions(ctx context.Context, connectionID, mailboxID string) ([]Subscription, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, connection_id, mailbox_id, client_state_hash, resource, expires_at FROM subscriptions
		WHERE connection_id = $1 AND ($2::text = '' OR mailbox_id = $2) ORDER BY id`, connectionID, mailboxID)
	if err != nil {
		return nil, fmt.Errorf("store: list subscriptions: %w", err)
	}
	return pgx.CollectRows(rows, scanSubscription)
}

// DeleteSubscription forgets a subscription.
func (s *Store) DeleteSubscription(ctx context.Context, id string) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM subscriptions WHERE id = $1`, id); err != nil {
		return fmt.Errorf("store: delete subscription: %w", err)
	}
	return nil
}
