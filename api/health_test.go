package api

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"
	"time"
)

func newTestRouter(checks ...Check) http.Handler {
	return NewRouter(Deps{
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
		Checks:       checks,
		ReadyTimeout: 200 * time.Millisecond,
	})
}

func ok(context.Context) error { return nil }

func TestReadyz(t *testing.T) {
	hang := func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }
	tests := []struct {
		name        string
		checks      []Check
		wantStatus  int
		wantFailing []string
	}{
		{"all up", []Check{{"postgres", ok}, {"vault", ok}, {"temporal", ok}}, 200, nil},
		{"postgres down", []Check{{"postgres", func(context.Context) error { return errors.New("connection refused") }}, {"vault", ok}, {"temporal", ok}}, 503, []string{"postgres"}},
		{"two down", []Check{{"postgres", ok}, {"vault", func(context.Context) error { return errors.New("sealed") }}, {"temporal", hang}}, 503, []string{"temporal", "vault"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			newTestRouter(tt.checks...).ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
			if rec.Code != tt.wantStatus {
				t.Fatalf("status = %d, want %d: %s", rec.Code, tt.wantStatus, rec.Body)
			}
			var body Readiness
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(body.Failing, tt.wantFailing) {
				t.Errorf("failing = %v, want %v", body.Failing, tt.wantFailing)
			}
			if len(body.Checks) != len(tt.checks) {
				t.Errorf("checks = %v", body.Checks)
			}
			for _, name := range tt.wantFailing {
				if body.Checks[name].Status != "down" || body.Checks[name].Error == "" {
					t.Errorf("check %s = %+v, want down with an error", name, body.Checks[name])
				}
			}
		})
	}
}

func TestHealthzAndUnknownRoutes(t *testing.T) {
	r := newTestRouter(Check{"postgres", func(context.Context) error { return errors.New("down") }})
	tests := []struct {
		method, path string
		status       int
		code         string
	}{
		{"GET", "/healthz", 200, ""},
		{"GET", "/nope", 404, "not_found"},
		{"POST", "/healthz", 405, "method_not_allowed"},
	}
	for _, tt := range tests {
		rec := httptest.NewRecorder()
		r.ServeHTTP(rec, httptest.NewRequest(tt.method, tt.path, nil))
		if rec.Code != tt.status {
			t.Errorf("%s %s = %d, want %d", tt.method, tt.path, rec.Code, tt.status)
		}
		if tt.code == "" {
			continue
		}
		if ct := rec.Header().Get("Content-Type"); ct != "application/problem+json" {
			t.Errorf("%s %s content type = %q", tt.method, tt.path, ct)
		}
		var p Problem
		if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil || p.Code != tt.code || p.Detail == "" || p.Status != tt.status {
			t.Errorf("%s %s problem = %+v (%v)", tt.method, tt.path, p, err)
		}
	}
}
