// Package metrics holds outlookd's Prometheus registry: the Temporal SDK's
// metrics (through its tally bridge), outlookd's own (Graph and token
// endpoint requests by status, sends by state), and the Go runtime's, served
// in Prometheus' text format on a listener of their own.
package metrics

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/uber-go/tally/v4"
	tallyprom "github.com/uber-go/tally/v4/prometheus"
	"go.temporal.io/sdk/client"
	sdktally "go.temporal.io/sdk/contrib/tally"
)

// Metrics is one process's registry and outlookd's own metrics in it.
type Metrics struct {
	registry *prometheus.Registry
	graph    *prometheus.CounterVec
	wait     prometheus.Histogram
	token    *prometheus.CounterVec
	closers  []io.Closer
}

// New makes a registry with the Go runtime's and the process's collectors
// and outlookd's own metrics.
func New() *Metrics {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := &Metrics{
		registry: reg,
		graph: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "outlookd_graph_requests_total",
			Help: "Requests to Microsoft Graph, by HTTP status (429 is a throttled request; 0 a request that got no answer) and Graph's error code (empty on success).",
		}, []string{"status", "code"}),
		wait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "outlookd_graph_retry_after_seconds",
			Help:    "The waits Graph asked for with Retry-After on its throttled (429) and unavailable (503) answers.",
			Buckets: []float64{1, 2, 5, 10, 30, 60, 120, 300},
		}),
		token: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "outlookd_token_requests_total",
			Help: "Requests to the identity platform's token endpoint, by grant type (refresh_token is a token refresh) and HTTP status (0: no answer).",
		}, []string{"grant_type", "status"}),
	}
	reg.MustRegister(m.graph, m.token, m.wait)
	return m
}

// Registry is where every metric of the process is registered.
func (m *Metrics) Registry() *prometheus.Registry { return m.registry }

// Handler serves the registry in Prometheus' exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{Registry: m.registry})
}

// TemporalHandler is the Temporal SDK's metrics handler for client.Options,
// reporting into the registry with Prometheus' naming (temporal_...).
func (m *Metrics) TemporalHandler(log *slog.Logger) client.MetricsHandler {
	reporter := tallyprom.NewReporter(tallyprom.Options{
		Registerer: m.registry,
		Gatherer:   m.registry,
		// Histograms rather than summaries: they aggregate across workers.
		DefaultTimerType: tallyprom.HistogramTimerType,
		OnRegisterError: func(err error) {
			log.Warn("temporal metric not registered", "err", err)
		},
	})
	scope, closer := tally.NewRootScope(tally.ScopeOptions{
		CachedReporter:  reporter,
		Separator:       tallyprom.DefaultSeparator,
		SanitizeOptions: &sdktally.PrometheusSanitizeOptions,
	}, time.Second)
	m.closers = append(m.closers, closer)
	return sdktally.NewMetricsHandler(sdktally.NewPrometheusNamingScope(scope))
}

// Close flushes and stops the Temporal scope's reporting.
func (m *Metrics) Close() error {
	for _, c := range m.closers {
		_ = c.Close()
	}
	return nil
}

// Row is one series of a count taken at scrape time: its label values, in
// the order of the metric's labels, and the count.
type Row struct {
	Labels []string
	N      int64
}

// CountFunc counts registry rows at scrape time.
type CountFunc func(ctx context.Context) ([]Row, error)

// RegisterCount reports the gauge name{labels} from count at each scrape:
// the registry's truth, the same from every replica (aggregate with max).
// Each of zero (label values) is reported as 0 when count has no row for
// it, so that a state nobody is in still shows.
func (m *Metrics) RegisterCount(name, help string, labels []string, count CountFunc, zero ...[]string) {
	m.registry.MustRegister(&countCollector{
		desc:  prometheus.NewDesc(name, help, labels, nil),
		count: count,
		zero:  zero,
	})
}

// Names of the gauges RegisterCounts reports. The alert rules and the
// dashboard under deploy/ use these names; a test there checks each against
// what this registry serves.
const (
	Connections          = "outlookd_connections"
	Mailboxes            = "outlookd_mailboxes"
	Sends                = "outlookd_sends"
	Subscriptions        = "outlookd_subscriptions"
	WebhookDeliveries    = "outlookd_webhook_deliveries"
	NotificationInbox    = "outlookd_notification_inbox"
	NotificationInboxAge = "outlookd_notification_inbox_oldest_seconds"
)

// Subscription expiry buckets, the values of outlookd_subscriptions'
// expires_in label, soonest first.
var SubscriptionExpiry = []string{"expired", "under_6h", "under_24h", "later"}

// Delivery states counted by outlookd_webhook_deliveries: events waiting for
// their webhook, and events given up on after their retry window.
var DeliveryStates = []string{"pending", "parked"}

// Counts are the registry's figures, each counted at scrape time; a nil
// function leaves its gauge out.
type Counts struct {
	// Connections counts connections by state and mode.
	Connections CountFunc
	// Mailboxes counts mailboxes by state and sync mode.
	Mailboxes CountFunc
	// Sends counts sends by state; each of SendStates is reported even
	// when no send is in it.
	Sends      CountFunc
	SendStates []string
	// Subscriptions counts the Graph subscriptions of active connections
	// by how soon they expire (SubscriptionExpiry).
	Subscriptions CountFunc
	// Deliveries counts webhook deliveries by state (DeliveryStates).
	Deliveries CountFunc
	// Inbox counts the Graph notifications accepted and not yet handed to
	// their connection's workflow; InboxAge is how long, in seconds, the
	// oldest of them has waited (0 when none waits).
	Inbox, InboxAge CountFunc
}

// RegisterCounts reports c's figures as outlookd's registry gauges.
func (m *Metrics) RegisterCounts(c Counts) {
	one := func(values []string) [][]string {
		out := make([][]string, len(values))
		for i, v := range values {
			out[i] = []string{v}
		}
		return out
	}
	for _, g := range []struct {
		name, help string
		labels     []string
		count      CountFunc
		zero       [][]string
	}{
		{Connections, "Connections in the registry, by state and mode.", []string{"state", "mode"}, c.Connections, nil},
		{Mailboxes, "Mailboxes in the registry, by state and sync mode (empty before live sync).", []string{"state", "sync_mode"}, c.Mailboxes, nil},
		{Sends, "Sends in the registry, by state.", []string{"state"}, c.Sends, one(c.SendStates)},
		{Subscriptions, "Graph subscriptions of active connections, by how soon they expire: expired, under_6h, under_24h or later. Renewal runs a day ahead, so one under 6h is a renewal that has been failing for hours.", []string{"expires_in"}, c.Subscriptions, one(SubscriptionExpiry)},
		{WebhookDeliveries, "Events waiting for delivery to their organisation's webhook (pending) or given up on after the retry window (parked).", []string{"state"}, c.Deliveries, one(DeliveryStates)},
		{NotificationInbox, "Graph notifications accepted by the receiver and not yet handed to their connection's workflow.", nil, c.Inbox, nil},
		{NotificationInboxAge, "Seconds the oldest Graph notification not yet handed to its workflow has waited (0: none waits).", nil, c.InboxAge, nil},
	} {
		if g.count != nil {
			m.RegisterCount(g.name, g.help, g.labels, g.count, g.zero...)
		}
	}
}

type countCollector struct {
	desc  *prometheus.Desc
	count CountFunc
	zero  [][]string
}

func (c *countCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *countCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rows, err := c.count(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.desc, err)
		return
	}
	seen := map[string]bool{}
	for _, r := range rows {
		seen[strings.Join(r.Labels, "\x00")] = true
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(r.N), r.Labels...)
	}
	for _, z := range c.zero {
		if !seen[strings.Join(z, "\x00")] {
			ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, 0, z...)
		}
	}
}

// Transport counts the requests next makes to Graph (graphURL's host) and
// to the identity platform's token endpoint (authorityURL's host, a path
// ending in /token). Other requests pass uncounted.
func (m *Metrics) Transport(next http.RoundTripper, graphURL, authorityURL *url.URL) http.RoundTripper {
	return &transport{m: m, next: next, graphHost: host(graphURL), authorityHost: host(authorityURL)}
}

func host(u *url.URL) string {
	if u == nil {
		return ""
	}
	return strings.ToLower(u.Host)
}

type transport struct {
	m                        *Metrics
	next                     http.RoundTripper
	graphHost, authorityHost string
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	h := strings.ToLower(req.URL.Host)
	switch {
	case h == t.graphHost:
		resp, err := t.next.RoundTrip(req)
		if err != nil {
			t.m.graph.WithLabelValues("0", "").Inc()
			return resp, err
		}
		code := ""
		if resp.StatusCode >= 400 {
			code = graphErrorCode(resp)
			if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
				if secs, err := strconv.Atoi(strings.TrimSpace(resp.Header.Get("Retry-After"))); err == nil && secs >= 0 {
					t.m.wait.Observe(float64(secs))
				}
			}
		}
		t.m.graph.WithLabelValues(strconv.Itoa(resp.StatusCode), code).Inc()
		return resp, nil
	case h == t.authorityHost && strings.HasSuffix(req.URL.Path, "/token"):
		grant := grantType(req)
		resp, err := t.next.RoundTrip(req)
		status := "0"
		if err == nil {
			status = strconv.Itoa(resp.StatusCode)
		}
		t.m.token.WithLabelValues(grant, status).Inc()
		return resp, err
	default:
		return t.next.RoundTrip(req)
	}
}

// graphErrorCode reads Graph's error code ({"error":{"code":...}}) from an
// error answer and puts the body back for the caller. Error bodies are
// small; one past 64 KiB, or not JSON, gives no code.
func graphErrorCode(resp *http.Response) string {
	if !strings.Contains(resp.Header.Get("Content-Type"), "json") {
		return ""
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	rest := resp.Body
	resp.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(b), rest), rest}
	if err != nil {
		return ""
	}
	var body struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	if json.Unmarshal(b, &body) != nil || len(body.Error.Code) > 64 {
		return ""
	}
	for _, r := range body.Error.Code {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' || r == '.') {
			return ""
		}
	}
	return body.Error.Code
}

// grantType reads the grant_type of a token request from a copy of its
// form body (x/oauth2 and MSAL make bodies that can be read again).
func grantType(req *http.Request) string {
	if req.GetBody == nil {
		return "unknown"
	}
	body, err := req.GetBody()
	if err != nil {
		return "unknown"
	}
	defer body.Close()
	b, err := io.ReadAll(io.LimitReader(body, 64<<10))
	if err != nil {
		return "unknown"
	}
	form, err := url.ParseQuery(string(b))
	if err != nil {
		return "unknown"
	}
	switch g := form.Get("grant_type"); g {
	case "authorization_code", "refresh_token", "client_credentials":
		return g
	default:
		return "other"
	}
}
