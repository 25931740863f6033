package vault

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"
	"time"

	vaultapi "github.com/hashicorp/vault/api"
)

// Sentinel errors.
var (
	ErrNotFound = errors.New("vault: not found")
	// ErrConflict: a check-and-set write lost to a concurrent write.
	ErrConflict = errors.New("vault: check-and-set conflict")
)

// Tokens are a connection's OAuth tokens.
type Tokens struct {
	AccessToken  string
	RefreshToken string
	Expiry       time.Time
	Scope        string // space-separated, as the token endpoint granted
}

// Pending is what the consent flow keeps between the authorize URL and the
// callback: the PKCE verifier and the nonce bound to the state parameter.
type Pending struct {
	Verifier    string
	StateNonce  string
	RedirectURI string
	Created     time.Time
	// Completed is set once the consent is over: what is kept then is the
	// state nonce alone (no verifier), so that the user's browser coming
	// back with the same redirect is told how it ended.
	Completed time.Time
}

// TokenStore keeps every secret of every connection in KV v2, under
// <prefix>/connections/<id>/. Token writes use check-and-set, so a rotated
// refresh token is never lost to a concurrent write.
type TokenStore struct {
	kv     *vaultapi.KVv2
	api    *vaultapi.Client
	mount  string
	prefix string
}

// Tokens returns the store over the client's KV mount and prefix.
func (v *Client) Tokens() *TokenStore {
	return &TokenStore{kv: v.api.KVv2(v.opts.KVMount), api: v.api, mount: v.opts.KVMount, prefix: strings.Trim(v.opts.Prefix, "/")}
}

func (ts *TokenStore) path(connectionID string, parts ...string) string {
	return path.Join(append([]string{ts.prefix, "connections", connectionID}, parts...)...)
}

func (ts *TokenStore) get(ctx context.Context, p string) (*vaultapi.KVSecret, error) {
	s, err := ts.kv.Get(ctx, p)
	if errors.Is(err, vaultapi.ErrSecretNotFound) {
		return nil, fmt.Errorf("vault: %s: %w", p, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("vault: read %s: %w", p, err)
	}
	return s, nil
}

// put writes with check-and-set: version 0 means the secret must not exist.
func (ts *TokenStore) put(ctx context.Context, p string, data map[string]any, version int) error {
	_, err := ts.kv.Put(ctx, p, data, vaultapi.WithCheckAndSet(version))
	if err != nil && strings.Contains(err.Error(), "check-and-set") {
		return fmt.Errorf("vault: write %s: %w", p, ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("vault: write %s: %w", p, err)
	}
	return nil
}

func str(d map[string]any, k string) string {
	s, _ := d[k].(string)
	return s
}

// GetTokens reads a connection's tokens and their version.
func (ts *TokenStore) GetTokens(ctx context.Context, connectionID string) (Tokens, int, error) {
	s, err := ts.get(ctx, ts.path(connectionID, "tokens"))
	if err != nil {
		return Tokens{}, 0, err
	}
	t := Tokens{AccessToken: str(s.Data, "access_token"), RefreshToken: str(s.Data, "refresh_token"), Scope: str(s.Data, "scope")}
	t.Expiry, _ = time.Parse(time.RFC3339Nano, str(s.Data, "expiry"))
	return t, s.VersionMetadata.Version, nil
}

// PutTokens writes tokens if the stored version is still version (0: none
// stored yet); otherwise ErrConflict.
func (ts *TokenStore) PutTokens(ctx context.Context, connectionID string, t Tokens, version int) error {
	return ts.put(ctx, ts.path(connectionID, "tokens"), map[string]any{
		"access_token": t.AccessToken, "refresh_token": t.RefreshToken,
		"expiry": t.Expiry.UTC().Format(time.RFC3339Nano), "scope": t.Scope,
	}, version)
}

// PutPending stores the consent flow's verifier and state nonce, replacing
// any earlier attempt.
func (ts *TokenStore) PutPending(ctx context.Context, connectionID string, p Pending) error {
	_, err := ts.kv.Put(ctx, ts.path(connectionID, "pending"), map[string]any{
		"verifier": p.Verifier, "state_nonce": p.StateNonce, "redirect_uri": p.RedirectURI, "created": p.Created.UTC().Format(time.RFC3339Nano),
	})
	if err != nil {
		return fmt.Errorf("vault: write pending consent: %w", err)
	}
	return nil
}

// GetPending reads the pending consent of a connection.
func (ts *TokenStore) GetPending(ctx context.Context, connectionID string) (Pending, error) {
	s, err := ts.get(ctx, ts.path(connectionID, "pending"))
	if err != nil {
		return Pending{}, err
	}
	p := Pending{Verifier: str(s.Data, "verifier"), StateNonce: str(s.Data, "state_nonce"), RedirectURI: str(s.Data, "redirect_uri")}
	p.Created, _ = time.Parse(time.RFC3339Nano, str(s.Data, "created"))
	p.Completed, _ = time.Parse(time.RFC3339Nano, str(s.Data, "completed"))
	return p, nil
}

// PutConsentCode keeps an authorization code under a reference until the
// engine exchanges it; the reference, not the code, travels through
// Temporal.
func (ts *TokenStore) PutConsentCode(ctx context.Context, connectionID, ref, code string) error {
	return ts.put(ctx, ts.path(connectionID, "consent", ref), map[string]any{"code": code, "created": time.Now().UTC().Format(time.RFC3339Nano)}, 0)
}

// GetConsentCode reads a stored authorization code.
func (ts *TokenStore) GetConsentCode(ctx context.Context, connectionID, ref string) (string, time.Time, error) {
	s, err := ts.get(ctx, ts.path(connectionID, "consent", ref))
	if err != nil {
		return "", time.Time{}, err
	}
	created, _ := time.Parse(time.RFC3339Nano, str(s.Data, "created"))
	return str(s.Data, "code"), created, nil
}

// Redeemed is what the token endpoint answered for a consent's code,
// kept until the exchange finishes, so a retried exchange does not redeem
// the (single-use) code twice.
type Redeemed struct {
	AccessToken  string    `json:"access_token"`
	RefreshToken string    `json:"refresh_token"`
	Expiry       time.Time `json:"expiry"`
	Scope        string    `json:"scope"`
	ClientInfo   string    `json:"client_info"`
}

// PutRedeemed keeps a consent's redeemed tokens.
func (ts *TokenStore) PutRedeemed(ctx context.Context, connectionID, ref string, r Redeemed) error {
	data := map[string]any{"access_token": r.AccessToken, "refresh_token": r.RefreshToken,
		"expiry": r.Expiry.UTC().Format(time.RFC3339Nano), "scope": r.Scope, "client_info": r.ClientInfo}
	if _, err := ts.kv.Put(ctx, ts.path(connectionID, "consent", ref+"-redeemed"), data); err != nil {
		return fmt.Errorf("vault: write redeemed tokens: %w", err)
	}
	return nil
}

// GetRedeemed reads a consent's redeemed tokens (ErrNotFound: not yet).
func (ts *TokenStore) GetRedeemed(ctx context.Context, connectionID, ref string) (Redeemed, error) {
	s, err := ts.get(ctx, ts.path(connectionID, "consent", ref+"-redeemed"))
	if err != nil {
		return Redeemed{}, err
	}
	exp, _ := time.Parse(time.RFC3339Nano, str(s.Data, "expiry"))
	return Redeemed{AccessToken: str(s.Data, "access_token"), RefreshToken: str(s.Data, "refresh_token"), Expiry: exp,
		Scope: str(s.Data, "scope"), ClientInfo: str(s.Data, "client_info")}, nil
}

// DeleteConsent removes what a consent left once it is over: every code
// kept for the connection (the one used, and any whose hand-off to the
// workflow failed), their redeemed tokens and the pending verifier, every
// version. The state nonce stays, marked completed, until the connection's
// secrets are purged: a reload of the redirect is then recognised. known is
// the pending consent as the caller just read it, or nil to read it here.
func (ts *TokenStore) DeleteConsent(ctx context.Context, connectionID string, known *Pending) error {
	if _, err := ts.purgeTree(ctx, ts.path(connectionID, "consent")); err != nil {
		return err
	}
	var pending Pending
	if known != nil {
		pending = *known
	} else {
		var err error
		pending, err = ts.GetPending(ctx, connectionID)
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
	}
	p := ts.path(connectionID, "pending")
	if err := ts.kv.DeleteMetadata(ctx, p); err != nil {
		return fmt.Errorf("vault: delete %s: %w", p, err)
	}
	if !pending.Completed.IsZero() {
		return nil
	}
	_, err := ts.kv.Put(ctx, p, map[string]any{
		"state_nonce": pending.StateNonce, "created": pending.Created.UTC().Format(time.RFC3339Nano),
		"completed": time.Now().UTC().Format(time.RFC3339Nano),
	})
	if err != nil {
		return fmt.Errorf("vault: mark consent completed: %w", err)
	}
	return nil
}

// DeleteConsentCode removes one kept code, every version: a code the
// workflow refused (the pending verifier stays; another consent may be
// under way).
func (ts *TokenStore) DeleteConsentCode(ctx context.Context, connectionID, ref string) error {
	p := ts.path(connectionID, "consent", ref)
	if err := ts.kv.DeleteMetadata(ctx, p); err != nil {
		return fmt.Errorf("vault: delete %s: %w", p, err)
	}
	return nil
}

// Purge deletes every secret of a connection, every version, and reports
// how many it removed. Purging twice is harmless.
func (ts *TokenStore) Purge(ctx context.Context, connectionID string) (int, error) {
	return ts.purgeTree(ctx, ts.path(connectionID))
}

func (ts *TokenStore) purgeTree(ctx context.Context, p string) (int, error) {
	keys, err := ts.list(ctx, p)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, k := range keys {
		child := path.Join(p, strings.TrimSuffix(k, "/"))
		if strings.HasSuffix(k, "/") {
			m, err := ts.purgeTree(ctx, child)
			n += m
			if err != nil {
				return n, err
			}
			continue
		}
		if err := ts.kv.DeleteMetadata(ctx, child); err != nil {
			return n, fmt.Errorf("vault: purge %s: %w", child, err)
		}
		n++
	}
	return n, nil
}

// list lists the keys under a KV v2 folder (none when it does not exist).
func (ts *TokenStore) list(ctx context.Context, p string) ([]string, error) {
	s, err := ts.api.Logical().ListWithContext(ctx, ts.mount+"/metadata/"+p)
	if err != nil {
		return nil, fmt.Errorf("vault: list %s: %w", p, err)
	}
	if s == nil {
		return nil, nil
	}
	raw, _ := s.Data["keys"].([]any)
	out := make([]string, 0, len(raw))
	for _, k := range raw {
		if ks, ok := k.(string); ok {
			out = append(out, ks)
		}
	}
	return out, nil
}

// Count returns how many secrets a connection has (for tests and the
// disconnect saga's verification).
func (ts *TokenStore) Count(ctx context.Context, connectionID string) (int, error) {
	return ts.countTree(ctx, ts.path(connectionID))
}

func (ts *TokenStore) countTree(ctx context.Context, p string) (int, error) {
	keys, err := ts.list(ctx, p)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, k := range keys {
		if strings.HasSuffix(k, "/") {
			m, err := ts.countTree(ctx, path.Join(p, strings.TrimSuffix(k, "/")))
			if err != nil {
				return n, err
			}
			n += m
			continue
		}
		n++
	}
	return n, nil
}

// AppSecret reads the app registration's client secret, kept at
// <prefix>/app under client_secret.
func (ts *TokenStore) AppSecret(ctx context.Context) (string, error) {
	s, err := ts.get(ctx, path.Join(ts.prefix, "app"))
	if err != nil {
		return "", err
	}
	secret := str(s.Data, "client_secret")
	if secret == "" {
		return "", fmt.Errorf("vault: %s/app has no client_secret: %w", ts.prefix, ErrNotFound)
	}
	return secret, nil
}

// PutAppSecret stores the app registration's client secret.
func (ts *TokenStore) PutAppSecret(ctx context.Context, secret string) error {
	if _, err := ts.kv.Put(ctx, path.Join(ts.prefix, "app"), map[string]any{"client_secret": secret}); err != nil {
		return fmt.Errorf("vault: write app secret: %w", err)
	}
	return nil
}

// PutClientState keeps the clientState of a connection's subscription: of
// its own mailbox (mailboxID empty), or of one of its mailboxes (an
// application connection's), each under its own key so that one
// mailbox's subscription never overwrites another's. A purge of the
// connection removes them all.
func (ts *TokenStore) PutClientState(ctx context.Context, connectionID, mailboxID, clientState string) error {
	p := ts.path(connectionID, "subscription")
	if mailboxID != "" {
		p = ts.path(connectionID, "mailboxes", mailboxID, "subscription")
	}
	if _, err := ts.kv.Put(ctx, p, map[string]any{"client_state": clientState}); err != nil {
		return fmt.Errorf("vault: write client state: %w", err)
	}
	return nil
}

// SigningSecrets are a webhook endpoint's signing secrets: the current
// one, and the previous one for a day after a rotation, so the app can
// switch over without rejecting deliveries.
type SigningSecrets struct {
	Current   string    `json:"current"`
	Previous  string    `json:"previous,omitempty"`
	RotatedAt time.Time `json:"rotated_at"`
}

// signingPath is where an endpoint's secrets are filed: under its
// organisation and its ID, or (endpointID "") the organisation's own, which
// the one endpoint an organisation had before endpoints were many signs
// with.
func (ts *TokenStore) signingPath(orgID, endpointID string) string {
	if endpointID == "" {
		return path.Join(ts.prefix, "orgs", orgID, "webhook")
	}
	return path.Join(ts.prefix, "orgs", orgID, "webhooks", endpointID)
}

// GetSigningSecrets reads an endpoint's signing secrets (endpointID "":
// the organisation's).
func (ts *TokenStore) GetSigningSecrets(ctx context.Context, orgID, endpointID string) (SigningSecrets, error) {
	s, err := ts.get(ctx, ts.signingPath(orgID, endpointID))
	if err != nil {
		return SigningSecrets{}, err
	}
	at, _ := time.Parse(time.RFC3339Nano, str(s.Data, "rotated_at"))
	return SigningSecrets{Current: str(s.Data, "current"), Previous: str(s.Data, "previous"), RotatedAt: at}, nil
}

// PutSigningSecrets writes an endpoint's signing secrets (endpointID "":
// the organisation's).
func (ts *TokenStore) PutSigningSecrets(ctx context.Context, orgID, endpointID string, s SigningSecrets) error {
	data := map[string]any{"current": s.Current, "previous": s.Previous, "rotated_at": s.RotatedAt.Format(time.RFC3339Nano)}
	if _, err := ts.kv.Put(ctx, ts.signingPath(orgID, endpointID), data); err != nil {
		return fmt.Errorf("vault: write signing secrets: %w", err)
	}
	return nil
}

// DeleteSigningSecrets removes an endpoint's signing secrets (never the
// organisation's).
func (ts *TokenStore) DeleteSigningSecrets(ctx context.Context, orgID, endpointID string) error {
	if endpointID == "" {
		return nil
	}
	if err := ts.kv.DeleteMetadata(ctx, ts.signingPath(orgID, endpointID)); err != nil {
		return fmt.Errorf("vault: delete signing secrets: %w", err)
	}
	return nil
}

// AppCredential is an application connection's client credential: the
// tenant, the client ID and the client secret, and when the secret
// expires (zero: not said).
type AppCredential struct {
	Tenant   string
	ClientID string
	Secret   string
	// Certificate is a certificate credential instead of a secret: the
	// certificate and its private key, PEM.
	Certificate   string
	SecretExpires time.Time
}

// PutAppCredential stores (or replaces, on rotation) an application
// connection's client credential.
func (ts *TokenStore) PutAppCredential(ctx context.Context, connectionID string, c AppCredential) error {
	data := map[string]any{"tenant": c.Tenant, "client_id": c.ClientID, "client_secret": c.Secret, "client_certificate": c.Certificate}
	if !c.SecretExpires.IsZero() {
		data["secret_expires"] = c.SecretExpires.UTC().Format(time.RFC3339Nano)
	}
	if _, err := ts.kv.Put(ctx, ts.path(connectionID, "credential"), data); err != nil {
		return fmt.Errorf("vault: write credential of %s: %w", connectionID, err)
	}
	return nil
}

// GetAppCredential reads an application connection's client credential.
func (ts *TokenStore) GetAppCredential(ctx context.Context, connectionID string) (AppCredential, error) {
	s, err := ts.get(ctx, ts.path(connectionID, "credential"))
	if err != nil {
		return AppCredential{}, err
	}
	c := AppCredential{Tenant: str(s.Data, "tenant"), ClientID: str(s.Data, "client_id"), Secret: str(s.Data, "client_secret"),
		Certificate: str(s.Data, "client_certificate")}
	if e := str(s.Data, "secret_expires"); e != "" {
		c.SecretExpires, _ = time.Parse(time.RFC3339Nano, e)
	}
	return c, nil
}
