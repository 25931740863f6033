package activities

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/expirable"
	"go.temporal.io/sdk/temporal"
	"golang.org/x/oauth2"

	"github.com/outlookd/outlookd/identity"
	"github.com/outlookd/outlookd/store"
	"github.com/outlookd/outlookd/vault"
	"github.com/outlookd/outlookd/workflows"
)

// vaultTokenSource serves a connection's access token from Vault,
// refreshing it (and storing the rotated refresh token with check-and-set)
// when it is about to expire. Callers that find it expiring at once (the
// mailboxes of one service account) share one refresh (refreshOnce).
type vaultTokenSource struct {
	ctx          context.Context
	a            *Activities
	connectionID string

	mu     sync.Mutex
	cached *oauth2.Token
	// kept says cached came from the process's token cache, not from
	// Vault in this activity: Graph refusing it is worth a look at Vault.
	kept bool
}

func (t *vaultTokenSource) Token() (*oauth2.Token, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	margin := t.a.RefreshMargin
	if margin == 0 {
		margin = 5 * time.Minute
	}
	if t.cached != nil && t.cached.Expiry.After(t.a.now().Add(margin)) {
		return t.cached, nil
	}
	if tok, ok := t.a.tokenCache().Get(t.connectionID); ok && tok.Expiry.After(t.a.now().Add(margin)) {
		t.cached, t.kept = &oauth2.Token{AccessToken: tok.AccessToken, TokenType: "Bearer", Expiry: tok.Expiry}, true
		return t.cached, nil
	}
	tok, _, err := t.a.Tokens.GetTokens(t.ctx, t.connectionID)
	if err != nil {
		return nil, err
	}
	if !tok.Expiry.After(t.a.now().Add(margin)) {
		if tok, err = t.a.refreshOnce(t.ctx, t.connectionID, tok.AccessToken); err != nil {
			return nil, err
		}
	}
	t.use(tok)
	return t.cached, nil
}

// use makes tok the source's token, read from Vault (or refreshed), and
// keeps it for the process.
func (t *vaultTokenSource) use(tok vault.Tokens) {
	t.a.keepToken(t.connectionID, tok)
	t.cached, t.kept = &oauth2.Token{AccessToken: tok.AccessToken, TokenType: "Bearer", Expiry: tok.Expiry}, false
}

// tokenTTL bounds how long a process uses a connection's access token
// without reading Vault again.
const tokenTTL = 30 * time.Second

// tokenCache keeps connections' access tokens (never a refresh token) in
// this process for up to tokenTTL. Every activity needs one, and reading
// it from Vault each time made Vault a bound: of a tenant's onboarding
// (one app-only token serves every mailbox), of live rounds (about 2 ms of
// Vault's CPU each at 100 a second). A token kept may be older than
// Vault's:
//   - another process refreshed it: the old one stays valid until its
//     expiry, as Microsoft's access tokens do;
//   - it was revoked: Graph answers 401, and tokenRetry refreshes (which
//     reads Vault first: another process's new token is taken as it is);
//   - a new consent granted more scopes: Graph answers 403 for what the
//     old token lacks, and tokenRetry reads Vault and tries once more with
//     the new token (vaultTokenSource.kept).
//
// A disconnect forgets it (PurgeSecrets); other processes run nothing for
// a disconnected connection, and their copy ends with the TTL.
func (a *Activities) tokenCache() *expirable.LRU[string, vault.Tokens] {
	a.accessTokensOnce.Do(func() { a.accessTokens = expirable.NewLRU[string, vault.Tokens](10000, nil, tokenTTL) })
	return a.accessTokens
}

// keepToken keeps tok's access token for connectionID, or forgets what
// was kept when tok has none.
func (a *Activities) keepToken(connectionID string, tok vault.Tokens) {
	if tok.AccessToken != "" {
		a.tokenCache().Add(connectionID, vault.Tokens{AccessToken: tok.AccessToken, Expiry: tok.Expiry, Scope: tok.Scope})
		return
	}
	a.tokenCache().Remove(connectionID)
}

// forceRefresh replaces the access token Graph refused, whatever its
// expiry says: by a refresh, or by the token another caller got since.
func (t *vaultTokenSource) forceRefresh() (*oauth2.Token, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	refused := ""
	if t.cached != nil {
		refused = t.cached.AccessToken
	}
	t.a.tokenCache().Remove(t.connectionID)
	tok, err := t.a.refreshOnce(t.ctx, t.connectionID, refused)
	if err != nil {
		return nil, err
	}
	t.use(tok)
	return t.cached, nil
}

// reread answers Vault's token in place of one the process had kept and
// Graph refused (403), and whether it differs; a token read from Vault in
// this activity is not read again.
func (t *vaultTokenSource) reread() (*oauth2.Token, bool, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.kept || t.cached == nil {
		return nil, false, nil
	}
	refused := t.cached.AccessToken
	t.a.tokenCache().Remove(t.connectionID)
	tok, _, err := t.a.Tokens.GetTokens(t.ctx, t.connectionID)
	if err != nil {
		return nil, false, err
	}
	t.use(tok)
	return t.cached, tok.AccessToken != refused && tok.AccessToken != "", nil
}

// refreshOnce refreshes a connection's tokens, unless another caller did
// since the access token stale was read: then it answers theirs. One
// refresh of a connection runs at a time, whoever asks (the mailboxes of a
// service account share its tokens): in this process by a single flight,
// across processes by the store's lock. An empty stale always refreshes.
func (a *Activities) refreshOnce(ctx context.Context, connectionID, stale string) (vault.Tokens, error) {
	margin := cmp.Or(a.RefreshMargin, 5*time.Minute)
	v, err, _ := a.refreshes.Do(connectionID+"\x00"+stale, func() (any, error) {
		var out vault.Tokens
		do := func() error {
			tok, version, err := a.Tokens.GetTokens(ctx, connectionID)
			if err != nil {
				return err
			}
			if stale != "" && tok.AccessToken != stale && tok.Expiry.After(a.now().Add(margin)) {
				out = tok // refreshed meanwhile
				return nil
			}
			out, err = a.refresh(ctx, connectionID, tok, version)
			return err
		}
		if a.Store == nil {
			return out, do()
		}
		return out, a.Store.WithLock(ctx, "refresh/"+connectionID, do)
	})
	if err != nil {
		return vault.Tokens{}, err
	}
	return v.(vault.Tokens), nil
}

// refresh redeems the refresh token and stores the rotated pair before it
// is used.
func (a *Activities) refresh(ctx context.Context, connectionID string, old vault.Tokens, version int) (vault.Tokens, error) {
	if old.RefreshToken == "" {
		// An application connection: client credentials, no refresh token.
		return a.appRefresh(ctx, connectionID, version)
	}
	secret, err := a.ClientSecret(ctx)
	if err != nil {
		return vault.Tokens{}, fmt.Errorf("activities: client secret: %w", err)
	}
	cfg := a.Identity.OAuth(secret, nil)
	src := cfg.TokenSource(context.WithValue(ctx, oauth2.HTTPClient, a.httpClient()), &oauth2.Token{RefreshToken: old.RefreshToken})
	nt, err := src.Token()
	if err != nil {
		if reason, userMustAct := identity.ClassifyError(identity.AtRefresh, err); userMustAct {
			return vault.Tokens{}, reauthRequired(reason, err)
		}
		return vault.Tokens{}, fmt.Errorf("activities: refresh: %w", err)
	}
	fresh := vault.Tokens{AccessToken: nt.AccessToken, RefreshToken: nt.RefreshToken, Expiry: nt.Expiry, Scope: scopeOf(nt, old.Scope)}
	if fresh.RefreshToken == "" {
		fresh.RefreshToken = old.RefreshToken
	}
	err = a.Tokens.PutTokens(ctx, connectionID, fresh, version)
	if errors.Is(err, vault.ErrConflict) {
		current, _, err := a.Tokens.GetTokens(ctx, connectionID)
		return current, err
	}
	if err != nil {
		return vault.Tokens{}, err
	}
	return fresh, nil
}

func scopeOf(t *oauth2.Token, def string) string {
	if s, ok := t.Extra("scope").(string); ok && s != "" {
		return s
	}
	return def
}

// RefreshTokens refreshes a connection's tokens now (the keep-alive that
// stops a quiet refresh token from expiring).
func (a *Activities) RefreshTokens(ctx context.Context, in workflows.RefreshInput) (workflows.RefreshResult, error) {
	fresh, err := a.refreshOnce(ctx, in.ConnectionID, "")
	if err != nil {
		return workflows.RefreshResult{}, err
	}
	a.keepToken(in.ConnectionID, fresh)
	granted := identity.GrantedScopes(fresh.Scope)
	return workflows.RefreshResult{AccessExpiry: fresh.Expiry, GrantedScopes: granted, Granted: grantedFeatures(granted)}, nil
}

// grantedFeatures is what granted scopes allow, as the workflows see it.
func grantedFeatures(scopes []string) workflows.Features {
	f := identity.FeaturesOf(scopes)
	return workflows.Features{Read: f.Read, Send: f.Send}
}

// consentFailed is the error of a consent that cannot complete.
func consentFailed(reason identity.Reason, cause error) error {
	return temporal.NewNonRetryableApplicationError("consent could not be completed: "+string(reason), workflows.ErrConsentFailed, cause,
		reasonDetail{Reason: string(reason), Text: reason.Describe()})
}

// ExchangeCode redeems the authorization code kept in Vault under a
// reference, learns who consented, claims the mailbox in the registry and
// stores the tokens. The code and verifier are deleted once the attempt is
// over, whether it succeeded or failed for good.
func (a *Activities) ExchangeCode(ctx context.Context, in workflows.ExchangeCodeInput) (workflows.ExchangeCodeResult, error) {
	var pending *vault.Pending // as the exchange read it, when it did
	res, err := a.exchangeCode(ctx, in, &pending)
	var appErr *temporal.ApplicationError
	if err == nil || errors.As(err, &appErr) && appErr.NonRetryable() {
		if derr := a.Tokens.DeleteConsent(ctx, in.ConnectionID, pending); derr != nil && err == nil {
			return res, derr
		}
	}
	return res, err
}

// redeem exchanges the code once: the answer is kept in Vault under the
// consent's reference, and a retried exchange (after /me or Postgres
// failed) uses it instead of redeeming the single-use code again.
func (a *Activities) redeem(ctx context.Context, in workflows.ExchangeCodeInput, code string, pending vault.Pending) (*oauth2.Token, error) {
	r, err := a.Tokens.GetRedeemed(ctx, in.ConnectionID, in.Ref)
	if err == nil {
		tok := &oauth2.Token{AccessToken: r.AccessToken, RefreshToken: r.RefreshToken, Expiry: r.Expiry, TokenType: "Bearer"}
		return tok.WithExtra(map[string]any{"scope": r.Scope, "client_info": r.ClientInfo}), nil
	}
	if !errors.Is(err, vault.ErrNotFound) {
		return nil, err
	}
	secret, err := a.ClientSecret(ctx)
	if err != nil {
		return nil, fmt.Errorf("activities: client secret: %w", err)
	}
	cfg := a.Identity.OAuth(secret, nil)
	if pending.RedirectURI != "" {
		cfg.RedirectURL = pending.RedirectURI
	}
	hctx := context.WithValue(ctx, oauth2.HTTPClient, a.httpClient())
	tok, err := cfg.Exchange(hctx, code, oauth2.VerifierOption(pending.Verifier), oauth2.SetAuthURLParam("client_info", "1"))
	if err != nil {
		if reason, userMustAct := identity.ClassifyError(identity.AtSignIn, err); userMustAct {
			return nil, consentFailed(reason, err)
		}
		return nil, fmt.Errorf("activities: exchange: %w", err)
	}
	ci, _ := tok.Extra("client_info").(string)
	if err := a.Tokens.PutRedeemed(ctx, in.ConnectionID, in.Ref, vault.Redeemed{AccessToken: tok.AccessToken, RefreshToken: tok.RefreshToken,
		Expiry: tok.Expiry, Scope: scopeOf(tok, ""), ClientInfo: ci}); err != nil {
		return nil, err
	}
	return tok, nil
}

func (a *Activities) exchangeCode(ctx context.Context, in workflows.ExchangeCodeInput, read **vault.Pending) (workflows.ExchangeCodeResult, error) {
	code, _, err := a.Tokens.GetConsentCode(ctx, in.ConnectionID, in.Ref)
	if errors.Is(err, vault.ErrNotFound) {
		return workflows.ExchangeCodeResult{}, consentFailed(identity.ReasonCodeInvalid, err)
	}
	if err != nil {
		return workflows.ExchangeCodeResult{}, err
	}
	pending, err := a.Tokens.GetPending(ctx, in.ConnectionID)
	if errors.Is(err, vault.ErrNotFound) || err == nil && !pending.Completed.IsZero() {
		return workflows.ExchangeCodeResult{}, consentFailed(identity.ReasonCodeInvalid, err)
	}
	if err != nil {
		return workflows.ExchangeCodeResult{}, err
	}
	*read = &pending
	tok, err := a.redeem(ctx, in, code, pending)
	if err != nil {
		return workflows.ExchangeCodeResult{}, err
	}

	// Who consented: /me with the new token, before anything is stored.
	gc, err := a.graphWithToken(tok)
	if err != nil {
		return workflows.ExchangeCodeResult{}, err
	}
	me, err := gc.Me().Get(ctx, nil)
	if err != nil {
		return workflows.ExchangeCodeResult{}, classifyGraph("read /me", err)
	}
	res := workflows.ExchangeCodeResult{
		UserID: deref(me.GetId()), DisplayName: deref(me.GetDisplayName()), Mailbox: strings.ToLower(deref(me.GetMail())),
		TenantID: tenantOf(tok), GrantedScopes: identity.GrantedScopes(scopeOf(tok, "")), AccessExpiry: tok.Expiry,
	}
	res.Granted = grantedFeatures(res.GrantedScopes)
	if res.Mailbox == "" {
		res.Mailbox = strings.ToLower(deref(me.GetUserPrincipalName()))
	}
	if in.ExpectUserID != "" && in.ExpectUserID != res.UserID {
		return workflows.ExchangeCodeResult{}, consentFailed(identity.ReasonWrongAccount, nil)
	}
	// Claim the mailbox (the registry refuses a second live connection of
	// it); the state is the workflow's to write.
	err = a.Store.UpdateConnection(ctx, in.ConnectionID, store.ConnectionUpdate{
		TenantID: res.TenantID, Mailbox: res.Mailbox, UserID: res.UserID,
		DisplayName: res.DisplayName, GrantedScopes: res.GrantedScopes,
	})
	if errors.Is(err, store.ErrMailboxTaken) {
		return workflows.ExchangeCodeResult{}, temporal.NewNonRetryableApplicationError("the mailbox is already connected", workflows.ErrMailboxTaken, err)
	}
	if err != nil {
		return workflows.ExchangeCodeResult{}, err
	}
	stored := vault.Tokens{AccessToken: tok.AccessToken, RefreshToken: tok.RefreshToken, Expiry: tok.Expiry, Scope: scopeOf(tok, "")}
	// A first consent finds no tokens and writes them as new (check-and-set
	// 0, one request); a consent again replaces those there, at their
	// version.
	err = a.Tokens.PutTokens(ctx, in.ConnectionID, stored, 0)
	if errors.Is(err, vault.ErrConflict) {
		var version int
		if _, version, err = a.Tokens.GetTokens(ctx, in.ConnectionID); err == nil {
			err = a.Tokens.PutTokens(ctx, in.ConnectionID, stored, version)
		}
	}
	if err != nil {
		return workflows.ExchangeCodeResult{}, err
	}
	a.keepToken(in.ConnectionID, stored) // a new consent's scopes, at once here
	return res, nil
}

// tenantOf reads the tenant from client_info (base64url {"uid","utid"}),
// falling back to the access token's tid claim when it is a JWT.
func tenantOf(t *oauth2.Token) string {
	if ci, ok := t.Extra("client_info").(string); ok {
		if b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(ci, "=")); err == nil {
			var v struct {
				UTID string `json:"utid"`
			}
			if json.Unmarshal(b, &v) == nil && v.UTID != "" {
				return v.UTID
			}
		}
	}
	parts := strings.Split(t.AccessToken, ".")
	if len(parts) == 3 {
		if b, err := base64.RawURLEncoding.DecodeString(parts[1]); err == nil {
			var c struct {
				TID string `json:"tid"`
			}
			if json.Unmarshal(b, &c) == nil {
				return c.TID
			}
		}
	}
	return ""
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
