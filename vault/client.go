// Package vault is outlookd's only door to HashiCorp Vault, where every token
// and secret lives. The service authenticates with its own least-privilege
// identity (an AppRole, or a token given to it) and never with the root token.
package vault

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	vaultapi "github.com/hashicorp/vault/api"
	"github.com/hashicorp/vault/api/auth/approle"
)

// Options says where Vault is and how outlookd authenticates to it.
type Options struct {
	Addr string
	// Token is used as is when set.
	Token string
	// RoleID and SecretIDFile log in with AppRole when Token is empty; the
	// token obtained is renewed while it can be, and replaced by a new login
	// when it cannot.
	RoleID       string
	SecretIDFile string
	// KVMount is the KV v2 mount; Prefix the path under it that outlookd owns.
	KVMount string
	Prefix  string
	// Timeout bounds each request to Vault.
	Timeout time.Duration
	Logger  *slog.Logger
}

// Client is an authenticated Vault client.
type Client struct {
	api  *vaultapi.Client
	opts Options
	log  *slog.Logger

	mu       sync.Mutex
	loggedIn bool
	loginErr error
}

// New builds a client. With AppRole, no request is made until Run logs in.
func New(opts Options) (*Client, error) {
	cfg := vaultapi.DefaultConfig()
	if cfg.Error != nil {
		return nil, fmt.Errorf("vault: default config: %w", cfg.Error)
	}
	cfg.Address = opts.Addr
	if opts.Timeout > 0 {
		cfg.Timeout = opts.Timeout
	}
	cfg.MaxRetries = 0 // the callers (activities, readiness) own retries
	c, err := vaultapi.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("vault: new client: %w", err)
	}
	c.ClearToken() // never pick up VAULT_TOKEN implicitly
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	v := &Client{api: c, opts: opts, log: opts.Logger}
	if opts.Token != "" {
		c.SetToken(opts.Token)
		v.loggedIn = true
	} else if opts.RoleID == "" || opts.SecretIDFile == "" {
		return nil, errors.New("vault: neither a token nor AppRole credentials were given")
	}
	return v, nil
}

// API returns the underlying client, for packages that build on it.
func (v *Client) API() *vaultapi.Client { return v.api }

// Run keeps the client authenticated until ctx ends: with AppRole it logs in,
// renews the token while Vault allows and logs in again when it does not,
// retrying with backoff while Vault is unreachable. With a static token it
// returns at once.
func (v *Client) Run(ctx context.Context) error {
	if v.opts.Token != "" {
		return nil
	}
	backoff := time.Second
	for {
		secret, err := v.login(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			v.log.Warn("vault login failed; retrying", "err", err, "in", backoff)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, 30*time.Second)
			continue
		}
		backoff = time.Second
		if err := v.watch(ctx, secret); err != nil {
			v.log.Warn("vault token renewal ended; logging in again", "err", err)
		}
		if ctx.Err() != nil {
			return nil
		}
	}
}

func (v *Client) login(ctx context.Context) (*vaultapi.Secret, error) {
	auth, err := approle.NewAppRoleAuth(v.opts.RoleID, &approle.SecretID{FromFile: v.opts.SecretIDFile})
	if err != nil {
		v.setLogin(false, err)
		return nil, fmt.Errorf("vault: approle: %w", err)
	}
	secret, err := v.api.Auth().Login(ctx, auth)
	if err == nil && (secret == nil || secret.Auth == nil) {
		err = errors.New("vault: approle login returned no token")
	}
	if err != nil {
		v.setLogin(false, err)
		return nil, fmt.Errorf("vault: approle login: %w", err)
	}
	v.setLogin(true, nil)
	v.log.Info("vault login succeeded", "policies", secret.Auth.Policies, "ttl_s", secret.Auth.LeaseDuration)
	return secret, nil
}

// watch renews the login token until it can no longer be renewed.
func (v *Client) watch(ctx context.Context, secret *vaultapi.Secret) error {
	if !secret.Auth.Renewable {
		// Wait out the token's life, then log in again.
		ttl := time.Duration(secret.Auth.LeaseDuration) * time.Second
		select {
		case <-ctx.Done():
		case <-time.After(ttl * 2 / 3):
		}
		return nil
	}
	w, err := v.api.NewLifetimeWatcher(&vaultapi.LifetimeWatcherInput{Secret: secret})
	if err != nil {
		return fmt.Errorf("vault: lifetime watcher: %w", err)
	}
	go w.Start()
	defer w.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-w.DoneCh():
			return err
		case <-w.RenewCh():
		}
	}
}

func (v *Client) setLogin(ok bool, err error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.loggedIn, v.loginErr = ok, err
}

// Health reports whether Vault is reachable, initialised, unsealed and has
// accepted outlookd's credentials.
func (v *Client) Health(ctx context.Context) error {
	h, err := v.api.Sys().HealthWithContext(ctx)
	if err != nil {
		return fmt.Errorf("vault: health: %w", err)
	}
	switch {
	case !h.Initialized:
		return errors.New("vault: not initialised")
	case h.Sealed:
		return errors.New("vault: sealed")
	}
	v.mu.Lock()
	ok, lerr := v.loggedIn, v.loginErr
	v.mu.Unlock()
	if !ok {
		if lerr != nil {
			return fmt.Errorf("vault: not authenticated: %w", lerr)
		}
		return errors.New("vault: not authenticated yet")
	}
	return nil
}
