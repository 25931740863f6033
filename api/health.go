package api

import (
	"context"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
)

// Check probes one dependency.
type Check struct {
	Name  string
	Probe func(ctx context.Context) error
}

type health struct {
	checks  []Check
	timeout time.Duration
}

// CheckResult is the outcome of one dependency check.
type CheckResult struct {
	Status    string  `json:"status"` // "ok" or "down"
	Error     string  `json:"error,omitempty"`
	LatencyMS float64 `json:"latency_ms"`
}

// Readiness is the body of /readyz.
type Readiness struct {
	Status  string                 `json:"status"` // "ready" or "unavailable"
	Failing []string               `json:"failing,omitempty"`
	Checks  map[string]CheckResult `json:"checks"`
}

// live answers as long as the process serves HTTP.
func (h health) live(c *gin.Context) {
	c.PureJSON(http.StatusOK, gin.H{"status": "ok"})
}

// ready probes every dependency in parallel, each within the timeout, and
// answers 503 naming those that failed.
func (h health) ready(c *gin.Context) {
	out := Readiness{Status: "ready", Checks: make(map[string]CheckResult, len(h.checks))}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, chk := range h.checks {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(c.Request.Context(), h.timeout)
			defer cancel()
			start := time.Now()
			err := chk.Probe(ctx)
			res := CheckResult{Status: "ok", LatencyMS: float64(time.Since(start).Microseconds()) / 1000}
			if err != nil {
				res.Status, res.Error = "down", err.Error()
			}
			mu.Lock()
			out.Checks[chk.Name] = res
			if err != nil {
				out.Failing = append(out.Failing, chk.Name)
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	status := http.StatusOK
	if len(out.Failing) > 0 {
		sort.Strings(out.Failing)
		out.Status = "unavailable"
		status = http.StatusServiceUnavailable
	}
	c.Header("Cache-Control", "no-store")
	c.PureJSON(status, out)
}

// NewHealthRouter serves /healthz and /readyz alone, with the same answers
// as the API's: a process that serves no API (a worker) answers its
// orchestrator's probes with it.
func NewHealthRouter(checks []Check, timeout time.Duration) http.Handler {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.Use(gin.Recovery())
	h := health{checks: checks, timeout: timeout}
	r.GET("/healthz", h.live)
	r.GET("/readyz", h.ready)
	return r
}
