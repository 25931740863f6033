package metrics

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestTransportCountsGraphAndTokenRequests(t *testing.T) {
	graph := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1.0/throttled" {
			w.Header().Set("Retry-After", "7")
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusTooManyRequests)
			_, _ = io.WriteString(w, `{"error":{"code":"ApplicationThrottled","message":"Application is over its MailboxConcurrency limit."}}`)
			return
		}
		_, _ = io.WriteString(w, `{"value":[]}`)
	}))
	defer graph.Close()
	login := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil || r.PostForm.Get("refresh_token") == "revoked" {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, `{"error":"invalid_grant"}`)
			return
		}
		_, _ = io.WriteString(w, `{"access_token":"a","token_type":"Bearer","expires_in":3600}`)
	}))
	defer login.Close()
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer other.Close()

	m := New()
	gu, _ := url.Parse(graph.URL + "/v1.0")
	lu, _ := url.Parse(login.URL)
	hc := &http.Client{Transport: m.Transport(http.DefaultTransport, gu, lu)}
	get := func(u string) string {
		resp, err := hc.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	token := func(form url.Values) {
		resp, err := hc.PostForm(login.URL+"/common/oauth2/v2.0/token", form)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	get(graph.URL + "/v1.0/me/messages")
	get(graph.URL + "/v1.0/me/messages")
	// The caller still reads the whole error body the code was taken from.
	if body := get(graph.URL + "/v1.0/throttled"); !strings.HasSuffix(body, `MailboxConcurrency limit."}}`) {
		t.Errorf("error body after counting: %q", body)
	}
	get(other.URL + "/anything")
	token(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"r"}})
	token(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"revoked"}})
	token(url.Values{"grant_type": {"authorization_code"}, "code": {"c"}})
	// A Graph host that does not answer.
	dead := &http.Client{Transport: m.Transport(http.DefaultTransport, &url.URL{Host: "127.0.0.1:1"}, lu)}
	if _, err := dead.Get("http://127.0.0.1:1/v1.0/me"); err == nil {
		t.Fatal("a request to a closed port succeeded")
	}

	for _, c := range []struct {
		got  float64
		want float64
		name string
	}{
		{testutil.ToFloat64(m.graph.WithLabelValues("200", "")), 2, "graph 200"},
		{testutil.ToFloat64(m.graph.WithLabelValues("429", "ApplicationThrottled")), 1, "graph 429"},
		{testutil.ToFloat64(m.graph.WithLabelValues("0", "")), 1, "graph no answer"},
		{testutil.ToFloat64(m.token.WithLabelValues("refresh_token", "200")), 1, "refresh ok"},
		{testutil.ToFloat64(m.token.WithLabelValues("refresh_token", "400")), 1, "refresh failed"},
		{testutil.ToFloat64(m.token.WithLabelValues("authorization_code", "200")), 1, "code exchange"},
	} {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if err := testutil.CollectAndCompare(m.wait, strings.NewReader(`
# HELP outlookd_graph_retry_after_seconds The waits Graph asked for with Retry-After on its throttled (429) and unavailable (503) answers.
# TYPE outlookd_graph_retry_after_seconds histogram
outlookd_graph_retry_after_seconds_bucket{le="1"} 0
outlookd_graph_retry_after_seconds_bucket{le="2"} 0
outlookd_graph_retry_after_seconds_bucket{le="5"} 0
outlookd_graph_retry_after_seconds_bucket{le="10"} 1
outlookd_graph_retry_after_seconds_bucket{le="30"} 1
outlookd_graph_retry_after_seconds_bucket{le="60"} 1
outlookd_graph_retry_after_seconds_bucket{le="120"} 1
outlookd_graph_retry_after_seconds_bucket{le="300"} 1
outlookd_graph_retry_after_seconds_bucket{le="+Inf"} 1
outlookd_graph_retry_after_seconds_sum 7
outlookd_graph_retry_after_seconds_count 1
`)); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(m.graph) + testutil.CollectAndCount(m.token); n != 6 {
		t.Errorf("%d series, want 6 (the other host uncounted)", n)
	}
}

func TestCountsAtScrape(t *testing.T) {
	m := New()
	rows := []Row{{[]string{"queued"}, 3}, {[]string{"sent"}, 7}}
	var fail error
	m.RegisterCount("outlookd_sends", "Sends by state.", []string{"state"},
		func(context.Context) ([]Row, error) { return rows, fail }, []string{"queued"}, []string{"sending"})
	m.RegisterCount("outlookd_mailboxes", "Mailboxes by state and sync mode.", []string{"state", "sync_mode"},
		func(context.Context) ([]Row, error) {
			return []Row{{[]string{"active", "push"}, 2}, {[]string{"active", "polling"}, 1}}, nil
		})
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	scrape := func() (int, string) {
		resp, err := http.Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	_, body := scrape()
	for _, want := range []string{`outlookd_sends{state="queued"} 3`, `outlookd_sends{state="sending"} 0`, `outlookd_sends{state="sent"} 7`,
		`outlookd_mailboxes{state="active",sync_mode="push"} 2`, `outlookd_mailboxes{state="active",sync_mode="polling"} 1`, "go_goroutines"} {
		if !strings.Contains(body, want) {
			t.Errorf("scrape lacks %q", want)
		}
	}
	if strings.Count(body, `outlookd_sends{state="queued"}`) != 1 {
		t.Errorf("a zero-filled series doubled a counted one:\n%s", grep(body, "outlookd_sends"))
	}
	rows = []Row{{[]string{"queued"}, 1}, {[]string{"sent"}, 9}}
	if _, body = scrape(); !strings.Contains(body, `outlookd_sends{state="queued"} 1`) || !strings.Contains(body, `outlookd_sends{state="sent"} 9`) {
		t.Errorf("the gauge did not follow the registry:\n%s", grep(body, "outlookd_sends"))
	}
	fail = errors.New("database down")
	if code, _ := scrape(); code != http.StatusInternalServerError {
		t.Errorf("a failed count answered %d, want 500", code)
	}
}

func TestTemporalMetricsReachTheRegistry(t *testing.T) {
	m := New()
	defer m.Close()
	h := m.TemporalHandler(slog.New(slog.DiscardHandler))
	h.WithTags(map[string]string{"namespace": "default"}).Counter("temporal_request").Inc(2)
	deadline := time.Now().Add(5 * time.Second)
	for {
		n, err := testutil.GatherAndCount(m.Registry(), "temporal_request_total")
		if err != nil {
			t.Fatal(err)
		}
		if n == 1 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("temporal_request_total never reached the registry")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func grep(s, sub string) string {
	var out []string
	for line := range strings.Lines(s) {
		if strings.Contains(line, sub) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "")
}

func TestRegisterCounts(t *testing.T) {
	m := New()
	row := func(n int64, labels ...string) CountFunc {
		return func(context.Context) ([]Row, error) { return []Row{{labels, n}}, nil }
	}
	m.RegisterCounts(Counts{
		Connections:   row(4, "reauth_required", "delegated"),
		Sends:         row(2, "queued"),
		SendStates:    []string{"queued", "failed"},
		Subscriptions: row(1, "under_6h"),
		Deliveries:    row(3, "parked"),
		Inbox:         row(5),
		InboxAge:      row(42),
	})
	tests := []struct {
		name string
		want string
	}{
		{Connections, `outlookd_connections{mode="delegated",state="reauth_required"} 4`},
		{Sends, `outlookd_sends{state="failed"} 0` + "\n" + `outlookd_sends{state="queued"} 2`},
		{Subscriptions, `outlookd_subscriptions{expires_in="expired"} 0` + "\n" + `outlookd_subscriptions{expires_in="later"} 0` + "\n" +
			`outlookd_subscriptions{expires_in="under_24h"} 0` + "\n" + `outlookd_subscriptions{expires_in="under_6h"} 1`},
		{WebhookDeliveries, `outlookd_webhook_deliveries{state="parked"} 3` + "\n" + `outlookd_webhook_deliveries{state="pending"} 0`},
		{NotificationInbox, `outlookd_notification_inbox 5`},
		{NotificationInboxAge, `outlookd_notification_inbox_oldest_seconds 42`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var want strings.Builder
			want.WriteString("# HELP " + tt.name + " x\n# TYPE " + tt.name + " gauge\n" + tt.want + "\n")
			if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(helpless(t, m, tt.name, want.String())), tt.name); err != nil {
				t.Error(err)
			}
		})
	}
	if n, err := testutil.GatherAndCount(m.Registry(), Mailboxes); err != nil || n != 0 {
		t.Errorf("a count given no function reported %d series (%v)", n, err)
	}
}

// helpless puts the registered help text of name into want, so a test
// compares values and labels, not wording.
func helpless(t *testing.T, m *Metrics, name, want string) string {
	t.Helper()
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return strings.Replace(want, "# HELP "+name+" x\n", "# HELP "+name+" "+mf.GetHelp()+"\n", 1)
		}
	}
	t.Fatalf("%s is not in the registry", name)
	return ""
}
