package tracing

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

func TestRoute(t *testing.T) {
	for _, tc := range []struct{ path, want string }{
		{"/v1.0/users/ada@contoso.example/mailFolders/AAMkAGI2=/messages/delta", "/v1.0/users/{id}/mailFolders/{id}/messages/delta"},
		{"/v1.0/me/mailFolders/inbox/messages", "/v1.0/me/mailFolders/inbox/messages"},
		{"/v1.0/me/messages/AAMkADInope/send", "/v1.0/me/messages/{id}/send"},
		{"/v1.0/users/delta()", "/v1.0/users/delta()"},
		{"/v1.0/me/mailFolders('alice@contoso.example')", "/v1.0/me/mailFolders(…)"},
		{"/contoso.example/oauth2/v2.0/token", "/{id}/oauth2/v2.0/token"},
		{"/v1.0/subscriptions/7f1c", "/v1.0/subscriptions/{id}"},
		{"/v1.0/$batch", "/v1.0/$batch"},
	} {
		if got := Route(tc.path); got != tc.want {
			t.Errorf("Route(%q) = %q, want %q", tc.path, got, tc.want)
		}
	}
}

func TestSetupReadsTheExporter(t *testing.T) {
	for _, tc := range []struct {
		env     []string
		enabled bool
		err     string
	}{
		{nil, false, ""},
		{[]string{"OTEL_TRACES_EXPORTER=none"}, false, ""},
		{[]string{"OTEL_TRACES_EXPORTER=console"}, true, ""},
		{[]string{"OTEL_TRACES_EXPORTER=otlp", "OTEL_EXPORTER_OTLP_PROTOCOL=grpc"}, true, ""},
		{[]string{"OTEL_TRACES_EXPORTER=otlp"}, true, ""},
		{[]string{"OTEL_TRACES_EXPORTER=otlp,console"}, true, ""},
		{[]string{"OTEL_TRACES_EXPORTER=jaeger"}, false, "OTEL_TRACES_EXPORTER"},
		{[]string{"OTEL_TRACES_EXPORTER=otlp", "OTEL_EXPORTER_OTLP_PROTOCOL=http/json"}, false, "OTEL_EXPORTER_OTLP_PROTOCOL"},
		{[]string{"OTEL_TRACES_EXPORTER=otlp", "OTEL_EXPORTER_OTLP_PROTOCOL=grpc", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=carrier-pigeon"}, false, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"},
	} {
		env := append([]string{"PATH=/bin"}, tc.env...)
		tr, err := Setup(context.Background(), env, "test", &bytes.Buffer{})
		if tc.err != "" {
			var e *Error
			if !errors.As(err, &e) || e.Var != tc.err {
				t.Errorf("%v: err = %v, want one naming %s", tc.env, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%v: %v", tc.env, err)
		}
		if tr.Enabled() != tc.enabled {
			t.Errorf("%v: enabled = %v", tc.env, tr.Enabled())
		}
		ti, err := tr.TemporalInterceptor()
		if err != nil || (ti != nil) != tc.enabled {
			t.Errorf("%v: interceptor %v, %v", tc.env, ti, err)
		}
		_ = tr.Shutdown(context.Background())
	}
}

// TestConsoleExporterWritesSpans checks that a span ended with the console
// exporter reaches the writer once the provider is shut down.
func TestConsoleExporterWritesSpans(t *testing.T) {
	// The SDK reads the resource's variables from the process.
	t.Setenv("OTEL_SERVICE_NAME", "outlookd-test")
	var out bytes.Buffer
	tr, err := Setup(context.Background(), []string{"OTEL_TRACES_EXPORTER=console"}, "v-test", &out)
	if err != nil {
		t.Fatal(err)
	}
	_, span := tr.Provider.Tracer("t").Start(context.Background(), "a span")
	span.End()
	if err := tr.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"Name":"a span"`, "outlookd-test", "v-test"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("console output lacks %s:\n%s", want, out.String())
		}
	}
}

func TestTransportNamesRoutesAndRecordsGraphsRequestID(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("traceparent") != "" {
			t.Error("a trace header was sent to Microsoft")
		}
		w.Header().Set("request-id", "0c3a-graph")
		w.WriteHeader(http.StatusTooManyRequests)
	}))
	defer srv.Close()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	ctx, parent := tp.Tracer("t").Start(context.Background(), "activity")
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/v1.0/users/ada@contoso.example/messages?$filter=from/emailAddress/address+eq+'bob@contoso.example'", nil)
	resp, err := (&http.Client{Transport: Transport(tp, http.DefaultTransport)}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	parent.End()
	spans := rec.Ended()
	if len(spans) != 2 {
		t.Fatalf("%d spans", len(spans))
	}
	sp := spans[0]
	if sp.Name() != "GET /v1.0/users/{id}/messages" || sp.Parent().SpanID() != parent.SpanContext().SpanID() {
		t.Errorf("span %q, parent %v", sp.Name(), sp.Parent().SpanID())
	}
	attrs := map[string]string{}
	for _, kv := range sp.Attributes() {
		attrs[string(kv.Key)] = kv.Value.String()
	}
	if attrs["graph.request_id"] != "0c3a-graph" || attrs["http.response.status_code"] != "429" {
		t.Errorf("attributes %v", attrs)
	}
	for k, v := range attrs {
		if strings.Contains(v, "@contoso.example") {
			t.Errorf("attribute %s carries an address: %q", k, v)
		}
	}
	if sp.Status().Code.String() != "Error" {
		t.Errorf("status %v", sp.Status())
	}
}

func TestLogHandlerAddsRequestAndTrace(t *testing.T) {
	var out bytes.Buffer
	log := slog.New(LogHandler(slog.NewTextHandler(&out, nil)))
	tp := sdktrace.NewTracerProvider()
	ctx, span := tp.Tracer("t").Start(WithRequestID(context.Background(), "req-1"), "s")
	defer span.End()
	log.InfoContext(ctx, "hello")
	log.Info("no context")
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%q", lines)
	}
	for _, want := range []string{"request_id=req-1", "trace_id=" + span.SpanContext().TraceID().String(), "span_id="} {
		if !strings.Contains(lines[0], want) {
			t.Errorf("%q lacks %s", lines[0], want)
		}
	}
	if strings.Contains(lines[1], "request_id") || strings.Contains(lines[1], "trace_id") {
		t.Errorf("a line without context carries ids: %q", lines[1])
	}
}
