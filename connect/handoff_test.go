package connect_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/outlookd/outlookd/connect"
	"github.com/outlookd/outlookd/graphsim"
	"github.com/outlookd/outlookd/internal/enginetest"
	"github.com/outlookd/outlookd/workflows"
)

// TestCallbackWaitsForASlowWorkflow: a consent whose workflow is slow to
// take it (no worker polls for a while, as when a worker has many
// connections to start at once) is waited for past the hand-off timeout
// while Temporal answers, and is never answered as a failure: connected
// when the workflow catches up within the caller's time, still connecting
// when it does not, and the connection then completes without the caller.
func TestCallbackWaitsForASlowWorkflow(t *testing.T) {
	e := enginetest.Start(t, graphsim.Options{}, workflows.Options{})
	svc := *e.Connect
	svc.HandoffTimeout = time.Second
	for i, tc := range []struct {
		name   string
		budget time.Duration // the caller's time
		back   time.Duration // when the worker polls again; 0: after the callback
		want   error
	}{
		{"the worker catches up in time", 30 * time.Second, 4 * time.Second, nil},
		{"the worker catches up later", 4 * time.Second, 0, connect.ErrStillConnecting},
	} {
		t.Run(tc.name, func(t *testing.T) {
			upn := fmt.Sprintf("slow%d@contoso.example", i)
			if _, err := e.Ctl.AddUser(t.Context(), graphsim.UserSpec{Tenant: "contoso.example", UPN: upn, DisplayName: "Slow"}); err != nil {
				t.Fatal(err)
			}
			e.StopWorker()
			created, err := svc.Create(t.Context(), connect.Request{OrgID: "org-slow", OwnerID: upn, LoginHint: upn,
				Settings: workflows.Settings{Features: workflows.Features{Read: true}}})
			if err != nil {
				e.StartWorker()
				t.Fatal(err)
			}
			q := e.AuthorizeQuery(created.AuthorizeURL)
			if tc.back > 0 {
				time.AfterFunc(tc.back, e.StartWorker)
			}
			ctx, cancel := context.WithTimeout(t.Context(), tc.budget)
			start := time.Now()
			out, err := svc.Callback(ctx, q)
			cancel()
			took := time.Since(start)
			if tc.back == 0 {
				e.StartWorker()
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("callback after %s: %v, want %v", took, err, tc.want)
			}
			if tc.want == nil && out.State != workflows.StateActive {
				t.Errorf("callback: %+v, want active", out)
			}
			// Either way the connection completes, with the one consent.
			e.WaitFor(created.ConnectionID, time.Minute, "active", func(st workflows.Status) bool { return st.State == workflows.StateActive })
		})
	}
}
