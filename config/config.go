// Package config reads outlookd's settings from the environment, applies the
// documented defaults and validates them, so that a bad value stops the process
// at start with one line naming the variable.
package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"
)

// Secret is a string that never prints: fmt, slog and JSON all see a mask.
type Secret string

const redacted = "[redacted]"

// String implements fmt.Stringer with a mask.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return redacted
}

// LogValue implements slog.LogValuer with a mask.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalText keeps the secret out of JSON and text encodings.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Reveal returns the secret itself, for the one call that needs it.
func (s Secret) Reveal() string { return string(s) }

// Config is every setting of the outlookd process. Each field names its
// environment variable and default; README.md documents the same table and a
// test keeps the two in step.
type Config struct {
	// HTTPAddr is where the API listens.
	HTTPAddr string `env:"OUTLOOKD_HTTP_ADDR" envDefault:"127.0.0.1:8080"`
	// PublicURL is the externally reachable base URL of the API (OAuth
	// redirects and Graph notifications point here).
	PublicURL *url.URL `env:"OUTLOOKD_PUBLIC_URL" envDefault:"http://127.0.0.1:8080"`
	// LogLevel is the minimum level logged: debug, info, warn or error.
	LogLevel slog.Level `env:"OUTLOOKD_LOG_LEVEL" envDefault:"info"`
	// LogFormat is json or text.
	LogFormat string `env:"OUTLOOKD_LOG_FORMAT" envDefault:"json"`
	// ShutdownTimeout bounds a graceful stop.
	ShutdownTimeout time.Duration `env:"OUTLOOKD_SHUTDOWN_TIMEOUT" envDefault:"20s"`
	// ReadyTimeout bounds each dependency check of /readyz.
	ReadyTimeout time.Duration `env:"OUTLOOKD_READY_TIMEOUT" envDefault:"2s"`

	// DatabaseURL is the Postgres connection string.
	DatabaseURL Secret `env:"DATABASE_URL" envDefault:"postgres://postgres@127.0.0.1:5432/outlookd?sslmode=disable"`
	// DatabaseMaxConns caps the connection pool.
	DatabaseMaxConns int32 `env:"OUTLOOKD_DATABASE_MAX_CONNS" envDefault:"16"`

	// Temporal's address, namespace, TLS and API key are read by package
	// temporalconn, from the TEMPORAL_* variables and profile file that
	// Temporal's own SDKs and CLI read (docs/operations.md).

	// TaskQueue is the task queue of the connection workflows.
	TaskQueue string `env:"OUTLOOKD_TASK_QUEUE" envDefault:"outlookd"`

	// VaultAddr is Vault's address.
	VaultAddr *url.URL `env:"VAULT_ADDR" envDefault:"http://127.0.0.1:8200"`
	// VaultToken authenticates to Vault directly; AppRole is used instead
	// when it is empty.
	VaultToken Secret `env:"VAULT_TOKEN"`
	// VaultRoleID is the AppRole role ID of the service.
	VaultRoleID string `env:"OUTLOOKD_VAULT_ROLE_ID"`
	// VaultSecretIDFile is a file holding the AppRole secret ID.
	VaultSecretIDFile string `env:"OUTLOOKD_VAULT_SECRET_ID_FILE"`
	// VaultKVMount is the mount of the KV v2 engine holding tokens.
	VaultKVMount string `env:"OUTLOOKD_VAULT_KV_MOUNT" envDefault:"secret"`
	// VaultKVPrefix is the path under the KV mount that outlookd owns.
	VaultKVPrefix string `env:"OUTLOOKD_VAULT_KV_PREFIX" envDefault:"outlookd"`
	// VaultTransitMount is the mount of the transit engine.
	VaultTransitMount string `env:"OUTLOOKD_VAULT_TRANSIT_MOUNT" envDefault:"transit"`

	// ClientID is the app registration's application (client) ID; its
	// secret is kept in Vault (<prefix>/app, client_secret).
	ClientID string `env:"OUTLOOKD_CLIENT_ID"`
	// AuthorityURL is the identity platform's host (national clouds differ).
	AuthorityURL *url.URL `env:"OUTLOOKD_AUTHORITY_URL" envDefault:"https://login.microsoftonline.com"`
	// Tenant is the authority's tenant segment: common, organizations,
	// consumers or a tenant ID.
	Tenant string `env:"OUTLOOKD_TENANT" envDefault:"common"`
	// GraphURL is Microsoft Graph's root with its version.
	GraphURL *url.URL `env:"OUTLOOKD_GRAPH_URL" envDefault:"https://graph.microsoft.com/v1.0"`
	// RedirectURL is where Microsoft sends users back after consent; empty
	// means OUTLOOKD_PUBLIC_URL + /v1/oauth/callback.
	RedirectURL string `env:"OUTLOOKD_REDIRECT_URL"`
	// AdminRedirectURL is where Microsoft sends an administrator back after
	// admin consent; empty means OUTLOOKD_PUBLIC_URL +
	// /v1/oauth/admin-callback. The app registration must list it too.
	AdminRedirectURL string `env:"OUTLOOKD_ADMIN_REDIRECT_URL"`
	// RefreshMargin: access tokens this close to expiry are refreshed before use.
	RefreshMargin time.Duration `env:"OUTLOOKD_REFRESH_MARGIN" envDefault:"5m"`
	// CACertFile adds a CA to trust for Microsoft's hosts (a simulator
	// served over TLS).
	CACertFile string `env:"OUTLOOKD_CA_CERT_FILE"`
	// APIRateLimit is the requests per second each API key may make (with a
	// burst of twice as many).
	APIRateLimit float64 `env:"OUTLOOKD_API_RATE_LIMIT" envDefault:"50"`
	// NotificationsURL is where Graph posts change notifications (default:
	// the public URL + /v1/graph/notifications; "none" polls instead).
	NotificationsURL string `env:"OUTLOOKD_NOTIFICATIONS_URL"`
	// MetricsAddr, when set, serves /metrics in Prometheus' format there
	// (the Temporal SDK's metrics and outlookd's own), apart from the API.
	MetricsAddr string `env:"OUTLOOKD_METRICS_ADDR"`
	// TemporalCompression is how requests to Temporal travel: "gzip" (the
	// SDK's default, for a server across a slow or metered link such as
	// Temporal Cloud) or "none" (a server on the same network: it saves the
	// compression's CPU on both ends, the server's included).
	TemporalCompression string `env:"OUTLOOKD_TEMPORAL_COMPRESSION" envDefault:"gzip"`
	// PprofAddr, when set, serves Go's profiler (net/http/pprof) there;
	// keep it on loopback.
	PprofAddr string `env:"OUTLOOKD_PPROF_ADDR"`
	// ReconcileEvery is how often a pushed connection runs a delta round
	// without being told of a change, to catch a notification Graph never
	// delivered. It applies to connections created from then on.
	ReconcileEvery time.Duration `env:"OUTLOOKD_RECONCILE_EVERY" envDefault:"6h"`
	// SecretExpiryMargins are how long before its client secret expires
	// an application connection tells the app (once per margin). They
	// apply to connections created from then on.
	SecretExpiryMargins []time.Duration `env:"OUTLOOKD_SECRET_EXPIRY_MARGINS" envDefault:"720h,168h" envSeparator:","`
	// WorkflowCache is how many connection workflows the worker keeps in
	// memory between their tasks (Temporal's sticky cache). One not kept
	// replays its history at its next task: less memory, more work.
	WorkflowCache int `env:"OUTLOOKD_WORKFLOW_CACHE" envDefault:"10000"`
	// WebhooksAllowInsecure lets organisations register, and the outbox
	// deliver to, http webhook endpoints and ones on loopback or private
	// addresses. For local development only: otherwise an organisation's
	// admin could aim deliveries at services inside the network.
	WebhooksAllowInsecure bool `env:"OUTLOOKD_WEBHOOKS_ALLOW_INSECURE" envDefault:"false"`
}

// Notifications returns the URLs Graph posts change and lifecycle
// notifications to (both empty: connections poll).
func (c Config) Notifications() (changes, lifecycle string) {
	switch c.NotificationsURL {
	case "none":
		return "", ""
	case "":
		base := strings.TrimSuffix(c.PublicURL.String(), "/") + "/v1/graph"
		return base + "/notifications", base + "/lifecycle"
	}
	return c.NotificationsURL, strings.TrimSuffix(c.NotificationsURL, "/notifications") + "/lifecycle"
}

// Redirect returns the OAuth redirect URL.
func (c Config) Redirect() string {
	if c.RedirectURL != "" {
		return c.RedirectURL
	}
	return strings.TrimSuffix(c.PublicURL.String(), "/") + "/v1/oauth/callback"
}

// AdminRedirect returns the admin consent redirect URL.
func (c Config) AdminRedirect() string {
	if c.AdminRedirectURL != "" {
		return c.AdminRedirectURL
	}
	return strings.TrimSuffix(c.PublicURL.String(), "/") + "/v1/oauth/admin-callback"
}

// Load reads the configuration from the process environment.
func Load() (Config, error) { return LoadFrom(nil) }

// LoadFrom reads the configuration from environ (KEY=VALUE pairs), or from the
// process environment when environ is nil.
func LoadFrom(environ []string) (Config, error) {
	var cfg Config
	opts := env.Options{}
	if environ != nil {
		opts.Environment = env.ToMap(environ)
	}
	if err := env.ParseWithOptions(&cfg, opts); err != nil {
		return Config{}, describe(err)
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// Error is a configuration problem with one variable.
type Error struct {
	Var    string // the environment variable
	Expect string // what it expected, in words
	Err    error  // the underlying parse error, if any
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("config: %s: expected %s (%v)", e.Var, e.Expect, e.Err)
	}
	return fmt.Sprintf("config: %s: expected %s", e.Var, e.Expect)
}

func (e *Error) Unwrap() error { return e.Err }

// Validate checks values the parser accepts but outlookd cannot use.
func (c Config) Validate() error {
	if err := hostPort("OUTLOOKD_HTTP_ADDR", c.HTTPAddr); err != nil {
		return err
	}
	if err := absoluteHTTP("OUTLOOKD_PUBLIC_URL", c.PublicURL); err != nil {
		return err
	}
	switch c.LogFormat {
	case "json", "text":
	default:
		return &Error{Var: "OUTLOOKD_LOG_FORMAT", Expect: fmt.Sprintf(`"json" or "text", got %q`, c.LogFormat)}
	}
	if c.ShutdownTimeout <= 0 {
		return &Error{Var: "OUTLOOKD_SHUTDOWN_TIMEOUT", Expect: "a positive duration such as 20s"}
	}
	if c.ReadyTimeout <= 0 {
		return &Error{Var: "OUTLOOKD_READY_TIMEOUT", Expect: "a positive duration such as 2s"}
	}
	if u, err := url.Parse(c.DatabaseURL.Reveal()); err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return &Error{Var: "DATABASE_URL", Expect: "a postgres:// URL"}
	}
	if c.DatabaseMaxConns < 1 {
		return &Error{Var: "OUTLOOKD_DATABASE_MAX_CONNS", Expect: "an integer of at least 1"}
	}
	for v, s := range map[string]string{
		"OUTLOOKD_TASK_QUEUE":          c.TaskQueue,
		"OUTLOOKD_VAULT_KV_MOUNT":      c.VaultKVMount,
		"OUTLOOKD_VAULT_KV_PREFIX":     c.VaultKVPrefix,
		"OUTLOOKD_VAULT_TRANSIT_MOUNT": c.VaultTransitMount,
	} {
		if strings.TrimSpace(s) == "" || strings.ContainsAny(s, " \t\n") {
			return &Error{Var: v, Expect: "a non-empty name without spaces"}
		}
	}
	if err := absoluteHTTP("VAULT_ADDR", c.VaultAddr); err != nil {
		return err
	}
	if err := absoluteHTTP("OUTLOOKD_AUTHORITY_URL", c.AuthorityURL); err != nil {
		return err
	}
	if err := absoluteHTTP("OUTLOOKD_GRAPH_URL", c.GraphURL); err != nil {
		return err
	}
	if c.RedirectURL != "" {
		if u, err := url.Parse(c.RedirectURL); err != nil || absoluteHTTP("OUTLOOKD_REDIRECT_URL", u) != nil {
			return &Error{Var: "OUTLOOKD_REDIRECT_URL", Expect: fmt.Sprintf("an absolute http(s) URL, got %q", c.RedirectURL)}
		}
	}
	if c.AdminRedirectURL != "" {
		if u, err := url.Parse(c.AdminRedirectURL); err != nil || absoluteHTTP("OUTLOOKD_ADMIN_REDIRECT_URL", u) != nil {
			return &Error{Var: "OUTLOOKD_ADMIN_REDIRECT_URL", Expect: fmt.Sprintf("an absolute http(s) URL, got %q", c.AdminRedirectURL)}
		}
	}
	if strings.TrimSpace(c.Tenant) == "" || strings.ContainsAny(c.Tenant, " /") {
		return &Error{Var: "OUTLOOKD_TENANT", Expect: "common, organizations, consumers or a tenant ID"}
	}
	if c.RefreshMargin < 0 || c.RefreshMargin > time.Hour {
		return &Error{Var: "OUTLOOKD_REFRESH_MARGIN", Expect: "a duration between 0s and 1h"}
	}
	if c.TemporalCompression != "gzip" && c.TemporalCompression != "none" {
		return &Error{Var: "OUTLOOKD_TEMPORAL_COMPRESSION", Expect: fmt.Sprintf(`"gzip" or "none", got %q`, c.TemporalCompression)}
	}
	if c.PprofAddr != "" {
		if err := hostPort("OUTLOOKD_PPROF_ADDR", c.PprofAddr); err != nil {
			return err
		}
	}
	if c.MetricsAddr != "" {
		if err := hostPort("OUTLOOKD_METRICS_ADDR", c.MetricsAddr); err != nil {
			return err
		}
	}
	if c.ReconcileEvery < time.Minute || c.ReconcileEvery > 24*time.Hour {
		return &Error{Var: "OUTLOOKD_RECONCILE_EVERY", Expect: "a duration between 1m and 24h"}
	}
	if len(c.SecretExpiryMargins) == 0 || len(c.SecretExpiryMargins) > 5 {
		return &Error{Var: "OUTLOOKD_SECRET_EXPIRY_MARGINS", Expect: "one to five durations, comma-separated, such as 720h,168h"}
	}
	for _, m := range c.SecretExpiryMargins {
		if m < time.Second || m > 365*24*time.Hour {
			return &Error{Var: "OUTLOOKD_SECRET_EXPIRY_MARGINS", Expect: fmt.Sprintf("durations between 1s and 8760h, got %s", m)}
		}
	}
	if c.WorkflowCache < 1 || c.WorkflowCache > 1000000 {
		return &Error{Var: "OUTLOOKD_WORKFLOW_CACHE", Expect: "a number of workflows from 1 to 1000000"}
	}
	if c.APIRateLimit <= 0 {
		return &Error{Var: "OUTLOOKD_API_RATE_LIMIT", Expect: "a positive number of requests per second"}
	}
	if c.NotificationsURL != "" && c.NotificationsURL != "none" {
		if u, err := url.Parse(c.NotificationsURL); err != nil || absoluteHTTP("OUTLOOKD_NOTIFICATIONS_URL", u) != nil || !strings.HasSuffix(u.Path, "/notifications") {
			return &Error{Var: "OUTLOOKD_NOTIFICATIONS_URL", Expect: `an absolute http(s) URL ending in /notifications, or "none"`}
		}
	}
	return nil
}

// ValidateAPI checks what the API needs to begin consent and to subscribe
// connections to change notifications.
func (c Config) ValidateAPI() error {
	if strings.TrimSpace(c.ClientID) == "" {
		return &Error{Var: "OUTLOOKD_CLIENT_ID", Expect: "the app registration's application (client) ID"}
	}
	return c.validateNotificationScheme()
}

// microsoftGraphHosts are the Graph hosts of Microsoft's clouds
// (docs/graph.md#national-clouds).
var microsoftGraphHosts = []string{"graph.microsoft.com", "graph.microsoft.us", "dod-graph.microsoft.us", "microsoftgraph.chinacloudapi.cn"}

// isMicrosoftGraph says whether the Graph URL is one of Microsoft's own
// hosts (not a simulator or a proxy).
func (c Config) isMicrosoftGraph() bool {
	if c.GraphURL == nil {
		return false
	}
	return slices.Contains(microsoftGraphHosts, strings.TrimSuffix(strings.ToLower(c.GraphURL.Hostname()), "."))
}

// validateNotificationScheme refuses http notification URLs with
// Microsoft's Graph, which posts only to https and refuses every
// subscription otherwise (docs/graph.md#creating-a-subscription).
func (c Config) validateNotificationScheme() error {
	if !c.isMicrosoftGraph() {
		return nil
	}
	changes, lifecycle := c.Notifications()
	for _, raw := range []string{changes, lifecycle} {
		if u, err := url.Parse(raw); raw == "" || err == nil && u.Scheme == "https" {
			continue
		}
		name, from := "OUTLOOKD_NOTIFICATIONS_URL", ""
		if c.NotificationsURL == "" {
			name, from = "OUTLOOKD_PUBLIC_URL", " (set OUTLOOKD_PUBLIC_URL or OUTLOOKD_NOTIFICATIONS_URL to https)"
		}
		return &Error{Var: name, Expect: fmt.Sprintf(`an https notification URL, or OUTLOOKD_NOTIFICATIONS_URL=none to poll: Microsoft Graph (%s) only posts to https, got %q%s`,
			c.GraphURL.Hostname(), raw, from)}
	}
	return nil
}

// ValidateVaultAuth checks that some Vault credential is configured; only the
// commands that talk to Vault call it.
func (c Config) ValidateVaultAuth() error {
	if c.VaultToken == "" && (c.VaultRoleID == "" || c.VaultSecretIDFile == "") {
		return &Error{Var: "VAULT_TOKEN", Expect: "a Vault token, or OUTLOOKD_VAULT_ROLE_ID and OUTLOOKD_VAULT_SECRET_ID_FILE for AppRole login"}
	}
	return nil
}

func hostPort(name, v string) error {
	if _, port, err := net.SplitHostPort(v); err != nil || port == "" {
		return &Error{Var: name, Expect: fmt.Sprintf("host:port, got %q", v)}
	}
	return nil
}

func absoluteHTTP(name string, u *url.URL) error {
	if u == nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		got := ""
		if u != nil {
			got = u.String()
		}
		return &Error{Var: name, Expect: fmt.Sprintf("an absolute http(s) URL, got %q", got)}
	}
	return nil
}

// describe turns the parser's errors into an *Error naming the variable.
func describe(err error) error {
	var agg env.AggregateError
	if errors.As(err, &agg) && len(agg.Errors) > 0 {
		err = agg.Errors[0]
	}
	var pe env.ParseError
	if errors.As(err, &pe) {
		return &Error{Var: envName(pe.Name), Expect: expectation(pe.Type), Err: pe.Err}
	}
	return fmt.Errorf("config: %w", err)
}

// envName finds the variable of a Config field.
func envName(field string) string {
	if f, ok := reflect.TypeFor[Config]().FieldByName(field); ok {
		if name, _, _ := strings.Cut(f.Tag.Get("env"), ","); name != "" {
			return name
		}
	}
	return field
}

func expectation(t reflect.Type) string {
	switch t {
	case reflect.TypeFor[time.Duration]():
		return "a duration such as 30s or 5m"
	case reflect.TypeFor[slog.Level]():
		return "one of debug, info, warn, error"
	case reflect.TypeFor[*url.URL](), reflect.TypeFor[url.URL]():
		return "a URL"
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Bool:
		return "true or false"
	}
	return "a " + t.String()
}

// Vars lists every environment variable Config reads with its default, in
// declaration order.
func Vars() []Var {
	t := reflect.TypeFor[Config]()
	out := make([]Var, 0, t.NumField())
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("env"), ",")
		if name == "" {
			continue
		}
		out = append(out, Var{Name: name, Default: f.Tag.Get("envDefault")})
	}
	return out
}

// Var is one environment variable and its default.
type Var struct {
	Name    string
	Default string
}
