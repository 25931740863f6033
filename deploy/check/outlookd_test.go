package check

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/outlookd/outlookd/api"
	"github.com/outlookd/outlookd/config"
	"github.com/outlookd/outlookd/metrics"
	"github.com/outlookd/outlookd/temporalconn"
)

// registryNames returns the names of the series outlookd's metrics registry
// serves, as a query names them (a histogram's _bucket, _sum and _count).
// Every count is given a row and one Graph and one token request go through
// the counting transport, so that each vector has a series to gather.
func registryNames(t *testing.T) map[string]bool {
	t.Helper()
	m := metrics.New()
	t.Cleanup(func() { _ = m.Close() })
	row := func(labels ...string) metrics.CountFunc {
		return func(context.Context) ([]metrics.Row, error) { return []metrics.Row{{Labels: labels, N: 1}}, nil }
	}
	m.RegisterCounts(metrics.Counts{
		Connections: row("active", "delegated"), Mailboxes: row("active", "push"), Sends: row("queued"),
		Subscriptions: row("later"), Deliveries: row("pending"), Inbox: row(), InboxAge: row(),
	})
	graphURL, _ := url.Parse("https://graph.example.test/v1.0")
	authority, _ := url.Parse("https://login.example.test")
	rt := m.Transport(roundTrip(func(r *http.Request) (*http.Response, error) {
		rec := httptest.NewRecorder()
		if r.URL.Host == graphURL.Host {
			rec.Header().Set("Content-Type", "application/json")
			rec.Header().Set("Retry-After", "3")
			rec.WriteHeader(http.StatusTooManyRequests)
			_, _ = io.WriteString(rec, `{"error":{"code":"ApplicationThrottled"}}`)
		}
		return rec.Result(), nil
	}), graphURL, authority)
	for _, req := range []*http.Request{
		httptest.NewRequest(http.MethodGet, "https://graph.example.test/v1.0/me/messages", nil),
		httptest.NewRequest(http.MethodPost, "https://login.example.test/common/oauth2/v2.0/token", strings.NewReader("grant_type=refresh_token")),
	} {
		req.RequestURI = ""
		if req.Body != nil {
			body := "grant_type=refresh_token"
			req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(body)), nil }
		}
		resp, err := rt.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, mf := range mfs {
		n := mf.GetName()
		switch mf.GetType() {
		case dto.MetricType_HISTOGRAM:
			names[n+"_bucket"], names[n+"_sum"], names[n+"_count"] = true, true, true
		case dto.MetricType_SUMMARY:
			names[n], names[n+"_sum"], names[n+"_count"] = true, true, true
		default:
			names[n] = true
		}
	}
	for _, want := range []string{metrics.Connections, metrics.Subscriptions, metrics.WebhookDeliveries, metrics.NotificationInboxAge,
		"outlookd_graph_requests_total", "outlookd_graph_retry_after_seconds_bucket", "outlookd_token_requests_total"} {
		if !names[want] {
			t.Fatalf("the registry serves no %s: the names gathered are %v", want, names)
		}
	}
	return names
}

type roundTrip func(*http.Request) (*http.Response, error)

func (f roundTrip) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// serveEnv is what a `serve` process is given: each variable must be one
// outlookd reads, and the whole must pass the checks serve makes at start.
type serveEnv struct {
	vars map[string]string
	api  bool // serve --role api (else worker)
}

// load runs outlookd's configuration and Temporal loading on the variables,
// as serve does, and returns the Temporal profile.
func (e serveEnv) load(t *testing.T) temporalconn.Profile {
	t.Helper()
	known := map[string]bool{}
	for _, v := range config.Vars() {
		known[v.Name] = true
	}
	var environ []string
	for k, v := range e.vars {
		if !known[k] && !temporalVars[k] {
			t.Errorf("%s is not a variable outlookd reads (config.Vars, temporalconn)", k)
		}
		environ = append(environ, k+"="+v)
	}
	// No profile file: only the variables count.
	environ = append(environ, "TEMPORAL_CONFIG_FILE=")
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	cfg, err := config.LoadFrom(environ)
	if err != nil {
		t.Fatalf("outlookd refuses its configuration: %v", err)
	}
	if err := cfg.ValidateVaultAuth(); err != nil {
		t.Fatalf("outlookd refuses its Vault login: %v", err)
	}
	if e.api {
		if err := cfg.ValidateAPI(); err != nil {
			t.Fatalf("the API refuses its configuration: %v", err)
		}
	}
	prof, err := temporalconn.Load(environ)
	if err != nil {
		t.Fatalf("temporalconn refuses the Temporal settings: %v", err)
	}
	return prof
}

// temporalVars are the TEMPORAL_* variables of Temporal's environment
// configuration (go.temporal.io/sdk/contrib/envconfig) that the deploy
// files may set; a test compares what temporalconn resolved with them.
var temporalVars = map[string]bool{
	"TEMPORAL_ADDRESS": true, "TEMPORAL_NAMESPACE": true, "TEMPORAL_API_KEY": true, "TEMPORAL_TLS": true,
	"TEMPORAL_TLS_SERVER_NAME": true, "TEMPORAL_TLS_CLIENT_CERT_PATH": true, "TEMPORAL_TLS_CLIENT_KEY_PATH": true,
	"TEMPORAL_TLS_SERVER_CA_CERT_PATH": true,
}

// secretVars are the settings that are secrets: never a literal value in a
// manifest.
var secretVars = map[string]bool{"DATABASE_URL": true, "VAULT_TOKEN": true, "TEMPORAL_API_KEY": true, "TEMPORAL_TLS_CLIENT_KEY_DATA": true}

// roleHandler is the HTTP handler `outlookd serve --role <role>` serves:
// the API's router, or a worker's probes alone.
func roleHandler(role string) http.Handler {
	if role == "worker" {
		return api.NewHealthRouter(nil, time.Second)
	}
	return api.NewRouter(api.Deps{Logger: slog.New(slog.DiscardHandler)})
}

// healthRoute answers whether a handler serves path with 200 (with no
// dependency to check, /readyz is ready).
func healthRoute(t *testing.T, h http.Handler, path string) bool {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec.Code == http.StatusOK
}
