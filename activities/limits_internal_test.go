package activities

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"go.temporal.io/sdk/temporal"
	"golang.org/x/oauth2"

	"github.com/outlookd/outlookd/graph"
	"github.com/outlookd/outlookd/store"
)

// A Graph call whose budget Postgres cannot give reaches the activity's
// classification as a retryable error that still says why.
func TestBudgetUnavailableIsRetried(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, "postgres://postgres@127.0.0.1:1/none?sslmode=disable&connect_timeout=1", 2)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var sent bool
	next := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		sent = true
		return nil, errors.New("unreachable")
	})
	limits := NewMailboxLimits(st, 0, 0, 0)
	gc, err := graph.NewClient(graph.Config{BaseURL: "https://graph.example/v1.0", Transport: limits.Transport("ada", next)},
		oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "t"}))
	if err != nil {
		t.Fatal(err)
	}
	_, err = gc.Users().ByUserId("ada").Messages().Get(ctx, nil)
	got := classifyGraph("list messages", err)
	var appErr *temporal.ApplicationError
	if sent || !errors.Is(got, ErrBudgetUnavailable) || errors.As(got, &appErr) && appErr.NonRetryable() {
		t.Fatalf("sent %v; classified %v (%T), want a retryable error wrapping ErrBudgetUnavailable", sent, got, got)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
