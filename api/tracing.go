package api

import (
	"crypto/rand"
	"encoding/hex"

	"github.com/gin-gonic/gin"
	"go.opentelemetry.io/contrib/instrumentation/github.com/gin-gonic/gin/otelgin"
	"go.opentelemetry.io/otel/trace"

	"github.com/outlookd/outlookd/tracing"
)

// RequestIDHeader carries a request's id both ways: a caller may send its
// own (up to 128 letters, digits and ._:- characters), otherwise one is made;
// the answer always carries it, and every log line of the request names it.
const RequestIDHeader = "X-Request-Id"

// requestID gives each request its id before anything logs.
func requestID(c *gin.Context) {
	id := c.GetHeader(RequestIDHeader)
	if !validRequestID(id) {
		var b [12]byte
		_, _ = rand.Read(b[:])
		id = hex.EncodeToString(b[:])
	}
	c.Header(RequestIDHeader, id)
	c.Request = c.Request.WithContext(tracing.WithRequestID(c.Request.Context(), id))
	c.Next()
}

func validRequestID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for _, r := range id {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == ':' || r == '-'
		if !ok {
			return false
		}
	}
	return true
}

// traced opens a server span per request with otelgin, named after the
// method and route (a path carries IDs), continuing the caller's trace when
// it sent a traceparent header. The span joins the request's context, so
// the workflow it starts and the Graph calls it makes share its trace.
// Probes are left out.
func traced(tp trace.TracerProvider) gin.HandlerFunc {
	return otelgin.Middleware("outlookd",
		otelgin.WithTracerProvider(tp),
		otelgin.WithPropagators(tracing.Propagator),
		otelgin.WithGinFilter(func(c *gin.Context) bool {
			return c.Request.URL.Path != "/healthz" && c.Request.URL.Path != "/readyz"
		}),
	)
}
