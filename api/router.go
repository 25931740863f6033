// Package api is outlookd's HTTP face: the versioned REST API the app backend
// calls, the webhook receiver Graph posts to, and the health endpoints.
package api

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
)

// Deps is what the handlers need.
type Deps struct {
	Logger *slog.Logger
	// Checks are the dependencies /readyz probes.
	Checks []Check
	// ReadyTimeout bounds each check.
	ReadyTimeout time.Duration
}

// NewRouter builds the gin engine with every route.
func NewRouter(d Deps) *gin.Engine {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.ContextWithFallback = true
	r.HandleMethodNotAllowed = true
	r.Use(recovery(d.Logger), accessLog(d.Logger))
	r.NoRoute(func(c *gin.Context) {
		problem(c, http.StatusNotFound, "not_found", "No resource lives at this path.")
	})
	r.NoMethod(func(c *gin.Context) {
		problem(c, http.StatusMethodNotAllowed, "method_not_allowed", "This resource does not accept the "+c.Request.Method+" method.")
	})

	h := health{checks: d.Checks, timeout: d.ReadyTimeout}
	r.GET("/healthz", h.live)
	r.GET("/readyz", h.ready)
	return r
}

// accessLog logs one line per request. It logs the path only, never the query
// string: OAuth callbacks carry authorization codes there.
func accessLog(log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		c.Next()
		level := slog.LevelInfo
		if c.Request.URL.Path == "/healthz" || c.Request.URL.Path == "/readyz" {
			level = slog.LevelDebug
		}
		log.Log(c.Request.Context(), level, "http request",
			"method", c.Request.Method,
			"path", c.Request.URL.Path,
			"status", c.Writer.Status(),
			"duration_ms", float64(time.Since(start).Microseconds())/1000,
		)
	}
}

// recovery turns a panic into a generic 500 problem and logs it.
func recovery(log *slog.Logger) gin.HandlerFunc {
	return gin.CustomRecoveryWithWriter(nil, func(c *gin.Context, err any) {
		log.Error("handler panicked", "path", c.Request.URL.Path, "panic", err)
		problem(c, http.StatusInternalServerError, "internal", "Something went wrong on our side; it has been logged.")
		c.Abort()
	})
}
