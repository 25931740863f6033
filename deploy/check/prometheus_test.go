package check

import (
	"encoding/json"
	"log/slog"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
)

// metricNames returns the metric names expr selects, failing when one is
// not named (a selector on labels alone).
func metricNames(t *testing.T, expr parser.Expr) []string {
	t.Helper()
	var out []string
	parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			name := vs.Name
			for _, m := range vs.LabelMatchers {
				if m.Name == labels.MetricName && m.Type == labels.MatchEqual {
					name = m.Value
				}
			}
			if name == "" {
				t.Errorf("%s selects no metric by name", vs)
			}
			out = append(out, name)
		}
		return nil
	})
	return out
}

func TestAlertRules(t *testing.T) {
	p := parser.NewParser(parser.Options{})
	groups, errs := rulefmt.ParseFile("../prometheus/alerts.yaml", false, model.UTF8Validation, p, slog.New(slog.DiscardHandler))
	for _, err := range errs {
		t.Error(err)
	}
	if len(errs) > 0 {
		t.FailNow()
	}
	served := registryNames(t)
	var alerts []string
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				t.Errorf("group %s: rule %q is not an alert", g.Name, r.Record)
				continue
			}
			alerts = append(alerts, r.Alert)
			expr, err := p.ParseExpr(r.Expr)
			if err != nil {
				t.Errorf("%s: %v", r.Alert, err)
				continue
			}
			for _, name := range metricNames(t, expr) {
				if !served[name] {
					t.Errorf("%s uses %s, which outlookd's registry does not serve", r.Alert, name)
				}
			}
			if sev := r.Labels["severity"]; sev != "page" && sev != "ticket" {
				t.Errorf("%s: severity %q, want page or ticket", r.Alert, sev)
			}
			if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("%s lacks a summary or a description", r.Alert)
			}
		}
	}
	// The signals that page a person each have their alert.
	for _, want := range []string{"OutlookdConnectionsNeedReauth", "OutlookdSubscriptionsAboutToLapse", "OutlookdWebhookDeliveriesParked", "OutlookdSyncLag"} {
		if !slices.Contains(alerts, want) {
			t.Errorf("no alert %s", want)
		}
	}
}

func TestDashboard(t *testing.T) {
	b, err := os.ReadFile("../grafana/outlookd.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Title  string `json:"title"`
		UID    string `json:"uid"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				RefID string `json:"refId"`
				Expr  string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatal(err)
	}
	if dash.Title == "" || dash.UID == "" || len(dash.Panels) == 0 {
		t.Fatalf("dashboard %q (%q) with %d panels", dash.Title, dash.UID, len(dash.Panels))
	}
	served := registryNames(t)
	p := parser.NewParser(parser.Options{})
	// Grafana's own interval variable, replaced as Grafana would.
	grafana := strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m")
	used := map[string]bool{}
	for _, panel := range dash.Panels {
		if len(panel.Targets) == 0 {
			t.Errorf("panel %q has no query", panel.Title)
		}
		for _, q := range panel.Targets {
			expr, err := p.ParseExpr(grafana.Replace(q.Expr))
			if err != nil {
				t.Errorf("panel %q, query %s: %v", panel.Title, q.RefID, err)
				continue
			}
			for _, name := range metricNames(t, expr) {
				used[name] = true
				if !served[name] {
					t.Errorf("panel %q uses %s, which outlookd's registry does not serve", panel.Title, name)
				}
			}
		}
	}
	for _, want := range []string{"outlookd_connections", "outlookd_subscriptions", "outlookd_webhook_deliveries", "outlookd_notification_inbox_oldest_seconds"} {
		if !used[want] {
			t.Errorf("no panel shows %s", want)
		}
	}
}
