package activities_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/outlookd/outlookd/activities"
	"github.com/outlookd/outlookd/workflows"
)

// fakeStarter records the starts it is asked for, holding each a moment
// to count how many are in flight at once.
type fakeStarter struct {
	mu       sync.Mutex
	opts     map[string]client.StartWorkflowOptions
	inFlight atomic.Int32
	peak     atomic.Int32
	fail     map[string]error
}

func (f *fakeStarter) CancelWorkflow(ctx context.Context, workflowID, runID string) error {
	return fmt.Errorf("cancel %s: not expected here", workflowID)
}

func (f *fakeStarter) ExecuteWorkflow(ctx context.Context, o client.StartWorkflowOptions, wf any, args ...any) (client.WorkflowRun, error) {
	n := f.inFlight.Add(1)
	defer f.inFlight.Add(-1)
	for p := f.peak.Load(); n > p && !f.peak.CompareAndSwap(p, n); p = f.peak.Load() {
	}
	time.Sleep(5 * time.Millisecond)
	if name, _ := wf.(string); name != workflows.MailboxWorkflowName || len(args) != 1 {
		return nil, fmt.Errorf("started %v with %d arguments", wf, len(args))
	}
	if _, ok := args[0].(workflows.MailboxInput); !ok {
		return nil, fmt.Errorf("argument %T", args[0])
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail[o.ID]; err != nil {
		return nil, err
	}
	f.opts[o.ID] = o
	return nil, nil
}

func TestStartMailboxes(t *testing.T) {
	starts := func(n int) []workflows.MailboxStart {
		var out []workflows.MailboxStart
		for i := range n {
			id := fmt.Sprintf("mbx_%04d", i)
			out = append(out, workflows.MailboxStart{Input: workflows.MailboxInput{ID: id, Mode: workflows.ModeApplication, UserID: "u" + id},
				Summary: "summary of " + id, Details: "details of " + id})
		}
		return out
	}
	for _, tc := range []struct {
		name      string
		noClient  bool
		queue     string
		n         int
		fail      map[string]error
		wantErr   string // the error's type when non-retryable, or "retryable"
		wantStart int
	}{
		{name: "a batch, at most 32 at once", queue: "q", n: 200, wantStart: 200},
		{name: "none", queue: "q", n: 0},
		{name: "one refused: the activity fails, to be retried", queue: "q", n: 20,
			fail: map[string]error{workflows.MailboxWorkflowID("mbx_0007"): errors.New("frontend unavailable")}, wantErr: "retryable", wantStart: 19},
		{name: "no client", noClient: true, queue: "q", n: 3, wantErr: activities.ErrNoWorkflowClient},
		{name: "no task queue", queue: "", n: 3, wantErr: activities.ErrNoWorkflowClient},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeStarter{opts: map[string]client.StartWorkflowOptions{}, fail: tc.fail}
			a := &activities.Activities{Workflows: f}
			if tc.noClient {
				a.Workflows = nil
			}
			err := a.StartMailboxes(context.Background(), workflows.StartMailboxesInput{TaskQueue: tc.queue, Mailboxes: starts(tc.n)})
			var ae *temporal.ApplicationError
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("error %v", err)
			case tc.wantErr == "retryable" && (err == nil || errors.As(err, &ae)):
				t.Fatalf("error %v, want a plain (retryable) error", err)
			case tc.wantErr != "" && tc.wantErr != "retryable" && (!errors.As(err, &ae) || !ae.NonRetryable() || ae.Type() != tc.wantErr):
				t.Fatalf("error %v, want non-retryable %s", err, tc.wantErr)
			}
			if len(f.opts) != tc.wantStart {
				t.Errorf("%d started, want %d", len(f.opts), tc.wantStart)
			}
			if p := f.peak.Load(); p > 32 {
				t.Errorf("%d starts in flight at once, want at most 32", p)
			}
			for id, o := range f.opts {
				if o.TaskQueue != tc.queue || o.WorkflowIDReusePolicy != enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE ||
					o.WorkflowIDConflictPolicy != enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING || o.StaticSummary == "" || o.StaticDetails == "" {
					t.Errorf("%s started with %+v", id, o)
				}
			}
		})
	}
}
