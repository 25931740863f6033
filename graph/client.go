// Package graph builds outlookd's Microsoft Graph client: msgraph-sdk-go
// pointed at a configurable Graph base URL, with tokens from an
// oauth2.TokenSource. Production and the simulator differ only in that URL.
//
// It is the only package that imports msgraph-sdk-go, whose first compile is
// expensive (docs/graph.md#build-cost).
package graph

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	absauth "github.com/microsoft/kiota-abstractions-go/authentication"
	khttp "github.com/microsoft/kiota-http-go"
	msgraphsdk "github.com/microsoftgraph/msgraph-sdk-go"
	msgraphcore "github.com/microsoftgraph/msgraph-sdk-go-core"
	"golang.org/x/oauth2"
)

// Config says where Graph is and how requests travel.
type Config struct {
	// BaseURL is Graph's root with its version, e.g.
	// https://graph.microsoft.com/v1.0 (national clouds have their own).
	BaseURL string
	// Transport is the parent round tripper (TLS settings, test CA);
	// http.DefaultTransport when nil.
	Transport http.RoundTripper
	// SDKRetries keeps the SDK's own retry handler (3 retries of 429, 503
	// and 504). outlookd turns it off and lets Temporal retry, honouring
	// Retry-After, so that waits are durable and visible.
	SDKRetries bool
}

// Client is a Graph client for one identity (a user's or an app's tokens).
type Client struct {
	*msgraphsdk.GraphServiceClient
	Adapter *msgraphsdk.GraphRequestAdapter
}

// NewClient builds a client whose requests carry tokens from ts.
func NewClient(cfg Config, ts oauth2.TokenSource) (*Client, error) {
	base := strings.TrimSuffix(cfg.BaseURL, "/")
	u, err := url.Parse(base)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("graph: base URL %q is not absolute", cfg.BaseURL)
	}
	// The SDK's auth provider silently sends no token to hosts outside its
	// allow-list (docs/graph.md#pointing-the-sdk-at-another-host), so the configured host is allowed
	// explicitly, without port or scheme.
	hosts, err := absauth.NewAllowedHostsValidatorErrorCheck([]string{u.Hostname()})
	if err != nil {
		return nil, fmt.Errorf("graph: allowed hosts: %w", err)
	}
	auth := absauth.NewBaseBearerTokenAuthenticationProvider(&tokenProvider{ts: ts, hosts: hosts})
	parent := cfg.Transport
	if parent == nil {
		parent = http.DefaultTransport
	}
	// UrlReplaceHandler turns /users/me-token-to-replace into /me
	// (docs/graph.md#pointing-the-sdk-at-another-host); the Graph defaults include it.
	mws := msgraphcore.GetDefaultMiddlewaresWithOptions(&msgraphcore.GraphClientOptions{})
	if !cfg.SDKRetries {
		kept := mws[:0]
		for _, m := range mws {
			if _, isRetry := m.(*khttp.RetryHandler); !isRetry {
				kept = append(kept, m)
			}
		}
		mws = kept
	}
	hc := &http.Client{Transport: khttp.NewCustomTransportWithParentTransport(parent, mws...)}
	adapter, err := msgraphsdk.NewGraphRequestAdapterWithParseNodeFactoryAndSerializationWriterFactoryAndHttpClient(auth, nil, nil, hc)
	if err != nil {
		return nil, fmt.Errorf("graph: request adapter: %w", err)
	}
	adapter.SetBaseUrl(base)
	return &Client{GraphServiceClient: msgraphsdk.NewGraphServiceClient(adapter), Adapter: adapter}, nil
}

// tokenProvider adapts an oauth2.TokenSource to Kiota.
type tokenProvider struct {
	ts    oauth2.TokenSource
	hosts *absauth.AllowedHostsValidator
}

func (p *tokenProvider) GetAuthorizationToken(ctx context.Context, u *url.URL, _ map[string]any) (string, error) {
	if !p.hosts.IsUrlHostValid(u) {
		return "", nil
	}
	tok, err := p.ts.Token()
	if err != nil {
		return "", fmt.Errorf("graph: token: %w", err)
	}
	if tok.AccessToken == "" {
		return "", errors.New("graph: token source returned an empty access token")
	}
	return tok.AccessToken, nil
}

func (p *tokenProvider) GetAllowedHostsValidator() *absauth.AllowedHostsValidator { return p.hosts }
