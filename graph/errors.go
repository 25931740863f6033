package graph

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	abstractions "github.com/microsoft/kiota-abstractions-go"
	"github.com/microsoftgraph/msgraph-sdk-go/models/odataerrors"
)

// Error is a Graph error answer in a form the engine can act on.
type Error struct {
	Status  int
	Code    string // e.g. ErrorItemNotFound, SyncStateNotFound, ApplicationThrottled
	Message string
	// RetryAfter is the server's Retry-After, zero when absent.
	RetryAfter time.Duration
	Err        error
}

func (e *Error) Error() string {
	if e.Code == "" {
		return fmt.Sprintf("graph: status %d", e.Status)
	}
	return fmt.Sprintf("graph: %d %s: %s", e.Status, e.Code, e.Message)
}

func (e *Error) Unwrap() error { return e.Err }

// HasCode matches error codes case-insensitively (docs/graph.md#delta-token-expiry: Outlook writes
// SyncStateNotFound, the docs syncStateNotFound).
func (e *Error) HasCode(code string) bool { return strings.EqualFold(e.Code, code) }

// Throttled reports a 429, 503 or 504: retry later (docs/graph.md#throttling).
func (e *Error) Throttled() bool { return e.Status == 429 || e.Status == 503 || e.Status == 504 }

// SyncStateLost reports an expired or invalid delta token (docs/graph.md#delta-token-expiry).
func (e *Error) SyncStateLost() bool {
	return e.Status == 410 || e.HasCode("SyncStateNotFound") || e.HasCode("ResyncRequired") || e.HasCode("SyncStateInvalid")
}

// AsError extracts a Graph error from what the SDK returned.
func AsError(err error) (*Error, bool) {
	if err == nil {
		return nil, false
	}
	var od *odataerrors.ODataError
	if errors.As(err, &od) {
		e := &Error{Status: od.GetStatusCode(), Err: err, RetryAfter: retryAfter(od.GetResponseHeaders())}
		if main := od.GetErrorEscaped(); main != nil {
			if c := main.GetCode(); c != nil {
				e.Code = *c
			}
			if m := main.GetMessage(); m != nil {
				e.Message = *m
			}
		}
		return e, true
	}
	var api *abstractions.ApiError
	if errors.As(err, &api) {
		return &Error{Status: api.ResponseStatusCode, Message: api.Message, Err: err, RetryAfter: retryAfter(api.ResponseHeaders)}, true
	}
	return nil, false
}

// retryAfter reads Retry-After as seconds (possibly fractional) or a date.
func retryAfter(h *abstractions.ResponseHeaders) time.Duration {
	if h == nil {
		return 0
	}
	vals := h.Get("retry-after")
	if len(vals) == 0 {
		return 0
	}
	if secs, err := strconv.ParseFloat(strings.TrimSpace(vals[0]), 64); err == nil && secs >= 0 {
		return time.Duration(secs * float64(time.Second))
	}
	if t, err := time.Parse(time.RFC1123, vals[0]); err == nil {
		return max(time.Until(t), 0)
	}
	return 0
}
