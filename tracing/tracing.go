// Package tracing sets up OpenTelemetry traces for outlookd. Tracing is off
// unless OTEL_TRACES_EXPORTER names an exporter; the exporters, the sampler
// and the resource then read the standard OTEL_* variables themselves
// (https://opentelemetry.io/docs/specs/otel/configuration/sdk-environment-variables/).
//
// The exporters are chosen here rather than through the contrib autoexport
// package: that package also builds metric and log exporters (and a
// Prometheus bridge) that outlookd does not use, its metrics being served on
// /metrics.
package tracing

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	temporalotel "go.temporal.io/sdk/contrib/opentelemetry"
	"go.temporal.io/sdk/interceptor"
)

// Propagator carries the W3C trace context only. Baggage is left out on
// purpose: whatever a caller puts there would be copied into workflow
// headers, and so into Temporal's history.
var Propagator propagation.TextMapPropagator = propagation.TraceContext{}

// Tracing is the process's tracer provider and how to flush it.
type Tracing struct {
	// Provider makes the process's tracers; a no-op one when tracing is off.
	Provider trace.TracerProvider
	// Exporters names the exporters in use, empty when tracing is off.
	Exporters []string
	shutdown  func(context.Context) error
}

// Enabled reports whether spans are recorded and exported.
func (t *Tracing) Enabled() bool { return len(t.Exporters) > 0 }

// Shutdown flushes the spans not yet exported and stops the exporters.
func (t *Tracing) Shutdown(ctx context.Context) error {
	if t.shutdown == nil {
		return nil
	}
	return t.shutdown(ctx)
}

// TemporalInterceptor traces workflow starts, signals, updates, workflows
// and activities with the Temporal SDK's OpenTelemetry interceptor; nil when
// tracing is off, so that no trace header reaches a workflow's history.
func (t *Tracing) TemporalInterceptor() (interceptor.ClientInterceptor, error) {
	if !t.Enabled() {
		return nil, nil
	}
	return TemporalInterceptor(t.Provider)
}

// TemporalInterceptor is the Temporal SDK's OpenTelemetry interceptor with
// tp's tracer. Workers made from a client with it trace their workflows and
// activities too.
func TemporalInterceptor(tp trace.TracerProvider) (interceptor.ClientInterceptor, error) {
	return temporalotel.NewTracingInterceptor(temporalotel.TracerOptions{
		Tracer:            tp.Tracer("go.temporal.io/sdk"),
		TextMapPropagator: Propagator,
		DisableBaggage:    true,
		// Queries are how the API and the Temporal UI read a status; a span
		// each would drown the traces that matter.
		DisableQueryTracing: true,
	})
}

// Error names the variable at fault.
type Error struct {
	Var, Value, Expect string
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s=%q: expected %s", e.Var, e.Value, e.Expect)
}

// Setup reads OTEL_TRACES_EXPORTER (none, otlp or console, or a
// comma-separated list) from environ and builds the tracer provider; unset
// means none, unlike the specification's default of otlp, so that a process
// without a collector does not try one forever. stderr receives the console
// exporter's spans. The SDK and the OTLP exporters read the other OTEL_*
// variables from the process's environment.
//
// The provider is not registered as OpenTelemetry's global one on purpose:
// the Graph SDK's request adapter traces through the global provider and
// records full request URLs, which carry mailbox addresses; outlookd's own
// spans (Transport) name routes instead.
func Setup(ctx context.Context, environ []string, version string, stderr io.Writer) (*Tracing, error) {
	env := lookup(environ)
	names, err := exporterNames(env("OTEL_TRACES_EXPORTER"))
	if err != nil {
		return nil, err
	}
	if len(names) == 0 {
		return &Tracing{Provider: noop.NewTracerProvider()}, nil
	}
	var opts []sdktrace.TracerProviderOption
	for _, name := range names {
		exp, err := newExporter(ctx, name, env, stderr)
		if err != nil {
			return nil, err
		}
		opts = append(opts, sdktrace.WithBatcher(exp))
	}
	// outlookd's name and version unless OTEL_SERVICE_NAME or
	// OTEL_RESOURCE_ATTRIBUTES say otherwise (later detectors win).
	res, err := resource.New(ctx,
		resource.WithAttributes(semconv.ServiceName("outlookd"), semconv.ServiceVersion(version)),
		resource.WithTelemetrySDK(),
		resource.WithFromEnv(),
	)
	if err != nil {
		return nil, fmt.Errorf("OTEL_RESOURCE_ATTRIBUTES: %w", err)
	}
	// The sampler comes from OTEL_TRACES_SAMPLER (parent-based, always on
	// by default).
	tp := sdktrace.NewTracerProvider(append(opts, sdktrace.WithResource(res))...)
	return &Tracing{Provider: tp, Exporters: names, shutdown: tp.Shutdown}, nil
}

func exporterNames(v string) ([]string, error) {
	var out []string
	for _, n := range strings.Split(v, ",") {
		n = strings.TrimSpace(strings.ToLower(n))
		switch n {
		case "", "none":
		case "otlp", "console":
			out = append(out, n)
		default:
			return nil, &Error{Var: "OTEL_TRACES_EXPORTER", Value: v, Expect: `"otlp", "console" or "none" (or a comma-separated list)`}
		}
	}
	return out, nil
}

func newExporter(ctx context.Context, name string, env func(string) string, stderr io.Writer) (sdktrace.SpanExporter, error) {
	if name == "console" {
		return stdouttrace.New(stdouttrace.WithWriter(stderr))
	}
	// The OTLP exporters read their endpoint, headers, TLS and timeout from
	// OTEL_EXPORTER_OTLP_* themselves; only the protocol is chosen here.
	proto, v := env("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"), "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
	if proto == "" {
		proto, v = env("OTEL_EXPORTER_OTLP_PROTOCOL"), "OTEL_EXPORTER_OTLP_PROTOCOL"
	}
	switch proto {
	case "grpc":
		return otlptracegrpc.New(ctx)
	case "", "http/protobuf":
		return otlptracehttp.New(ctx)
	default:
		return nil, &Error{Var: v, Value: proto, Expect: `"grpc" or "http/protobuf"`}
	}
}

// lookup reads environ, falling back to the process's environment when
// environ is nil.
func lookup(environ []string) func(string) string {
	if environ == nil {
		return os.Getenv
	}
	m := map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	return func(k string) string { return m[k] }
}
