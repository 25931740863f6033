package api_test

import (
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/outlookd/outlookd/api"
	"github.com/outlookd/outlookd/graphsim"
	"github.com/outlookd/outlookd/internal/enginetest"
	"github.com/outlookd/outlookd/workflows"
)

// TestASendIsOneTrace follows a send from the app's request to Graph: the
// API's span continues the caller's traceparent, the send's workflow and
// its activities are children through Temporal's headers, and the request
// that submits the message to Graph is a span of that trace named by its
// route, with no mailbox address anywhere in the trace.
func TestASendIsOneTrace(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(t.Context()) })
	h := newEngineHarness(t, graphsim.Options{}, []enginetest.Option{enginetest.Traced(tp)}, func(d *api.Deps) { d.Tracer = tp })
	id := h.sendingConnection(t)

	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	r := h.callWith(t, "POST", "/v1/connections/"+id+"/sends", h.acme, "u-ada", map[string]any{
		"to": []map[string]string{{"address": "support@contoso.example"}}, "subject": "traced", "body": map[string]string{"content_type": "text", "content": "hello"},
	}, "Idempotency-Key", "trace-1", "traceparent", "00-"+traceID+"-00f067aa0ba902b7-01", api.RequestIDHeader, "req-trace-1")
	if r.status != 202 && r.status != 201 {
		t.Fatalf("send: %d %s", r.status, r.body)
	}
	if got := r.header.Get(api.RequestIDHeader); got != "req-trace-1" {
		t.Errorf("X-Request-Id = %q, want the caller's", got)
	}
	var s sendView
	r.json(t, &s)
	if s = h.waitSend(t, id, s.ID); s.State != workflows.SendSent {
		t.Fatalf("send ended %s (%s)", s.State, s.Reason)
	}

	spans := map[trace.SpanID]sdktrace.ReadOnlySpan{}
	var names []string
	// Started, not only ended: the send's workflow may still be completing
	// when the API says it was sent.
	for _, sp := range rec.Started() {
		if sp.SpanContext().TraceID().String() == traceID {
			spans[sp.SpanContext().SpanID()] = sp
			names = append(names, sp.Name())
		}
	}
	find := func(pred func(sdktrace.ReadOnlySpan) bool) sdktrace.ReadOnlySpan {
		for _, sp := range spans {
			if pred(sp) {
				return sp
			}
		}
		return nil
	}
	server := find(func(sp sdktrace.ReadOnlySpan) bool { return sp.Name() == "POST /v1/connections/:id/sends" })
	if server == nil || server.SpanKind() != trace.SpanKindServer {
		t.Fatalf("no server span for the send in trace %s; spans: %q", traceID, names)
	}
	submit := find(func(sp sdktrace.ReadOnlySpan) bool {
		return sp.SpanKind() == trace.SpanKindClient && (strings.HasSuffix(sp.Name(), "/send") || strings.HasSuffix(sp.Name(), "/sendMail"))
	})
	if submit == nil {
		t.Fatalf("no Graph submission span in trace %s; spans: %q", traceID, names)
	}
	// The submission descends from an activity, which descends from the
	// API's span through the workflow.
	var chain []string
	for sp := submit; sp != nil; sp = spans[sp.Parent().SpanID()] {
		chain = append(chain, sp.Name())
	}
	joined := strings.Join(chain, " < ")
	for _, want := range []string{"RunActivity:", "RunWorkflow:", "StartWorkflow:", "POST /v1/connections/:id/sends"} {
		if !strings.Contains(joined, want) {
			t.Errorf("the submission's ancestry %q lacks %q", joined, want)
		}
	}
	for _, sp := range spans {
		for _, kv := range sp.Attributes() {
			if v := kv.Value.String(); strings.Contains(strings.ToLower(v), "@contoso.example") {
				t.Errorf("span %q attribute %s carries a mailbox address: %q", sp.Name(), kv.Key, v)
			}
		}
	}
}
