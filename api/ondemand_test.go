package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
	"go.temporal.io/sdk/temporal"

	"github.com/outlookd/outlookd/identity"
	"github.com/outlookd/outlookd/mailreader"
	"github.com/outlookd/outlookd/store"
	"github.com/outlookd/outlookd/workflows"
)

// noMail is a MailReader never asked (onDemand only checks its presence).
type noMail struct{}

func (noMail) Body(context.Context, string, string, string) (string, string, error) {
	return "", "", errors.New("not asked")
}

func (noMail) Attachment(context.Context, string, string, string, string) (*http.Response, error) {
	return nil, errors.New("not asked")
}

// answer runs fn on a test context and returns the problem it answered.
func answer(t *testing.T, fn func(c *gin.Context)) (int, Problem) {
	t.Helper()
	gin.SetMode(gin.TestMode)
	w := httptest.NewRecorder()
	c, _ := gin.CreateTestContext(w)
	c.Request = httptest.NewRequest(http.MethodGet, "/", nil)
	fn(c)
	var p Problem
	if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	if w.Header().Get("Content-Type") != "application/problem+json" || p.Status != w.Code || p.Detail == "" {
		t.Errorf("not a problem: %d %s", w.Code, w.Body)
	}
	return w.Code, p
}

// TestOnDemandFailures: an on-demand read that fails because the
// connection's refresh token is dead says the user must sign in again
// (409 reauth_required, with the state and the reason); an item gone at
// the source is 404; anything else Graph or the identity platform does
// wrong stays 502.
func TestOnDemandFailures(t *testing.T) {
	s := &server{d: Deps{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Mail: noMail{}}}
	row := store.Connection{ID: "conn_AAAAAAAAAAAAAAAA", UserID: "u", State: workflows.StateActive}
	dead := temporal.NewNonRetryableApplicationError("the connection needs the user to sign in again: revoked", workflows.ErrReauthRequired, nil)
	for _, tc := range []struct {
		name   string
		err    error
		status int
		code   string
		text   []string
	}{
		{"dead refresh token", &mailreader.ReauthError{Reason: identity.ReasonRevoked, Err: dead}, 409, "reauth_required",
			[]string{"sign in again", "revoked", "active"}},
		{"dead refresh token, wrapped", fmt.Errorf("attachment: %w", &mailreader.ReauthError{Reason: identity.ReasonPasswordChanged, Err: dead}), 409, "reauth_required",
			[]string{"sign in again", "password_changed"}},
		{"dead refresh token, reason unknown", &mailreader.ReauthError{Err: dead}, 409, "reauth_required", []string{"sign in again", "active"}},
		{"gone at the source", mailreader.ErrGone, 404, "gone_at_source", nil},
		{"Graph failed", errors.New("message body: 503 Service Unavailable"), 502, "upstream_failed", nil},
		{"identity platform down", errors.New("activities: refresh: oauth2: server_error"), 502, "upstream_failed", nil},
		{"Graph refused otherwise", temporal.NewNonRetryableApplicationError("refused", workflows.ErrGraphRejected, nil), 502, "upstream_failed", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, p := answer(t, func(c *gin.Context) {
				s.fetchError(c, mailScope{row: row, key: row.ID, userID: row.UserID, state: row.State}, tc.err)
			})
			if status != tc.status || p.Code != tc.code {
				t.Errorf("%d %s, want %d %s", status, p.Code, tc.status, tc.code)
			}
			for _, want := range tc.text {
				if !strings.Contains(p.Detail, want) {
					t.Errorf("detail %q does not say %q", p.Detail, want)
				}
			}
		})
	}
}

// TestOnDemandState: content that is not stored is not fetched from a
// connection that is not active; one waiting for the user to sign in
// again says so with its own code.
func TestOnDemandState(t *testing.T) {
	s := &server{d: Deps{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Mail: noMail{}}}
	for _, tc := range []struct {
		state string
		code  string
		text  string
	}{
		{workflows.StateReauthRequired, "reauth_required", "sign in again"},
		{workflows.StateDisconnected, "connection_not_active", "disconnected"},
		{workflows.StatePendingConsent, "connection_not_active", "pending_consent"},
	} {
		t.Run(tc.state, func(t *testing.T) {
			row := store.Connection{ID: "conn_AAAAAAAAAAAAAAAA", UserID: "u", State: tc.state}
			var ok bool
			status, p := answer(t, func(c *gin.Context) {
				ok = s.onDemand(c, mailScope{row: row, key: row.ID, userID: row.UserID, state: row.State})
			})
			if ok || status != http.StatusConflict || p.Code != tc.code || !strings.Contains(p.Detail, tc.text) || !strings.Contains(p.Detail, tc.state) {
				t.Errorf("%v %d %s %q, want 409 %s", ok, status, p.Code, p.Detail, tc.code)
			}
		})
	}
}
