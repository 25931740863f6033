// Package activities does all of outlookd's I/O for the workflows: the
// identity platform, Microsoft Graph, Vault and Postgres. Activities are
// methods on Activities, which holds the clients; each is idempotent and
// safe to retry, and classifies its errors for Temporal's retries.
package activities

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/expirable"
	"golang.org/x/oauth2"
	"golang.org/x/sync/singleflight"

	"github.com/outlookd/outlookd/graph"
	"github.com/outlookd/outlookd/identity"
	"github.com/outlookd/outlookd/store"
	"github.com/outlookd/outlookd/vault"
)

// Activities holds what the activities need.
type Activities struct {
	Tokens   *vault.TokenStore
	Store    *store.Store
	Identity identity.Config
	// ClientSecret returns the app's client secret (kept in Vault).
	ClientSecret func(ctx context.Context) (string, error)
	// GraphURL is Graph's root with its version.
	GraphURL string
	// HTTP carries identity and Graph requests (TLS settings, test CA).
	HTTP *http.Client
	// Limits is the per-mailbox request budget shared by every activity,
	// and through Postgres by every process (docs/graph.md#throttling).
	Limits *MailboxLimits
	// RefreshMargin: an access token this close to expiry is refreshed
	// before use.
	RefreshMargin time.Duration
	Now           func() time.Time
	// Workflows starts an application connection's mailbox workflows
	// (StartMailboxes): the worker's Temporal client.
	Workflows WorkflowStarter

	// refreshes lets one refresh of a connection's tokens run at a time in
	// this process (the store's lock covers the others).
	refreshes singleflight.Group
	// accessTokens keeps connections' access tokens (tokenCache).
	accessTokensOnce sync.Once
	accessTokens     *expirable.LRU[string, vault.Tokens]
}

func (a *Activities) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

func (a *Activities) httpClient() *http.Client {
	if a.HTTP != nil {
		return a.HTTP
	}
	return http.DefaultClient
}

// graphFor returns a Graph client acting for a connection, whose requests
// draw on the mailbox's budget.
func (a *Activities) graphFor(ctx context.Context, connectionID, mailboxKey string) (*graph.Client, error) {
	ts := &vaultTokenSource{ctx: ctx, a: a, connectionID: connectionID}
	return a.newGraph(ts, a.graphTransport(ts, mailboxKey))
}

// newGraph is a Graph client with ts's tokens through transport.
func (a *Activities) newGraph(ts *vaultTokenSource, transport http.RoundTripper) (*graph.Client, error) {
	c, err := graph.NewClient(graph.Config{BaseURL: a.GraphURL, Transport: transport}, ts)
	if err != nil {
		return nil, fmt.Errorf("activities: graph client: %w", err)
	}
	return c, nil
}

// graphHeld is graphFor for a caller that is, for a while, the mailbox's
// only user (a mailbox backfilled ahead of its workflow): its requests
// draw on the whole of the mailbox's budget, held at once
// (MailboxLimits.Hold), until release. When the budget cannot be held it
// is graphFor's client, and release does nothing.
func (a *Activities) graphHeld(ctx context.Context, connectionID, mailboxKey string) (*graph.Client, func(), error) {
	ts := &vaultTokenSource{ctx: ctx, a: a, connectionID: connectionID}
	release := func() {}
	var transport http.RoundTripper
	if a.Limits != nil && mailboxKey != "" {
		rt, rel, ok, err := a.Limits.Hold(ctx, mailboxKey, a.baseTransport())
		if err != nil {
			return nil, nil, err
		}
		if ok {
			transport, release = &tokenRetry{ts: ts, next: rt}, rel
		}
	}
	if transport == nil {
		transport = a.graphTransport(ts, mailboxKey)
	}
	c, err := a.newGraph(ts, transport)
	if err != nil {
		release()
		return nil, nil, err
	}
	return c, release, nil
}

// directoryFor returns a Graph client acting for an application
// connection, whose requests draw on its tenant's directory budget.
func (a *Activities) directoryFor(ctx context.Context, connectionID, tenantID string) (*graph.Client, error) {
	ts := &vaultTokenSource{ctx: ctx, a: a, connectionID: connectionID}
	transport := a.baseTransport()
	if a.Limits != nil && tenantID != "" {
		transport = a.Limits.DirectoryTransport(tenantID, transport)
	}
	return a.newGraph(ts, &tokenRetry{ts: ts, next: transport})
}

func (a *Activities) baseTransport() http.RoundTripper {
	if t := a.httpClient().Transport; t != nil {
		return t
	}
	return http.DefaultTransport
}

// graphTransport is how requests for a connection reach Graph: through
// the mailbox's shared budget, refreshed and retried once on a 401.
func (a *Activities) graphTransport(ts *vaultTokenSource, mailboxKey string) http.RoundTripper {
	transport := a.baseTransport()
	if a.Limits != nil && mailboxKey != "" {
		transport = a.Limits.Transport(mailboxKey, transport)
	}
	return &tokenRetry{ts: ts, next: transport}
}

// tokenRetry sends a request again, once, when Graph refuses its token:
//   - 401 (revoked, or the clocks disagree although it has not expired by
//     ours): with a refreshed token; a refresh that fails with
//     invalid_grant surfaces as ReauthRequired;
//   - 403 for a token the process had kept (tokenCache): with Vault's, if
//     that is another (a new consent granted more since).
//
// Any other answer, or a second refusal, is Graph's answer.
type tokenRetry struct {
	ts   *vaultTokenSource
	next http.RoundTripper
}

func (t *tokenRetry) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(r)
	if err != nil || (resp.StatusCode != http.StatusUnauthorized && resp.StatusCode != http.StatusForbidden) || r.Header.Get("Authorization") == "" {
		return resp, err
	}
	if r.Body != nil && r.GetBody == nil {
		return resp, nil // the body cannot be sent again
	}
	var tok *oauth2.Token
	if resp.StatusCode == http.StatusUnauthorized {
		if tok, err = t.ts.forceRefresh(); err != nil {
			resp.Body.Close()
			return nil, err
		}
	} else {
		newer, changed, err := t.ts.reread()
		if err != nil || !changed {
			return resp, nil // Graph's refusal stands
		}
		tok = newer
	}
	retry := r.Clone(r.Context())
	if r.GetBody != nil {
		if retry.Body, err = r.GetBody(); err != nil {
			return resp, nil
		}
	}
	resp.Body.Close()
	retry.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	return t.next.RoundTrip(retry)
}
