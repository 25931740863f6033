package connect

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/outlookd/outlookd/workflows"
)

// notReadyClient refuses updates as Temporal does while a workflow's last
// task has failed (WorkflowNotReady), a given number of times, then takes
// them; it records the update IDs it was asked and the signals sent. Its
// first slow attempts run out of time instead.
type notReadyClient struct {
	client.Client
	slow     int
	refusals int
	fail     error // every update attempt's answer, at once
	sigErr   error // the signal's answer
	ids      []string
	signals  []workflows.ConsentInput
}

func (c *notReadyClient) UpdateWorkflow(ctx context.Context, o client.UpdateWorkflowOptions) (client.WorkflowUpdateHandle, error) {
	c.ids = append(c.ids, o.UpdateID)
	if c.fail != nil {
		return nil, c.fail
	}
	if len(c.ids) <= c.slow {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	if len(c.ids) <= c.slow+c.refusals {
		return nil, serviceerror.NewWorkflowNotReady("Unable to perform workflow execution update due to Workflow Task in failed state.")
	}
	return nil, nil
}

func (c *notReadyClient) SignalWorkflow(_ context.Context, workflowID, _, name string, arg any) error {
	if workflowID != workflows.ConnectionWorkflowID("conn_1") || name != workflows.SignalConsent {
		return fmt.Errorf("signal %s to %s", name, workflowID)
	}
	if c.sigErr != nil {
		return c.sigErr
	}
	c.signals = append(c.signals, arg.(workflows.ConsentInput))
	return nil
}

func (c *notReadyClient) DescribeWorkflowExecution(context.Context, string, string) (*workflowservice.DescribeWorkflowExecutionResponse, error) {
	return &workflowservice.DescribeWorkflowExecutionResponse{WorkflowExecutionInfo: &workflowpb.WorkflowExecutionInfo{Status: enums.WORKFLOW_EXECUTION_STATUS_RUNNING}}, nil
}

var errUnavailable = serviceerror.NewUnavailable("connection refused")

// TestHandOffWaitsForAFailedWorkflowTask: an update refused because the
// workflow's last task failed is asked again, under the same update ID,
// until Temporal takes it or the caller's time runs out; then the consent
// goes as a signal, as it does when the caller's time runs out on attempts
// that Temporal did not answer in time (an update is not durable until
// the workflow accepts it; the workflow takes one of the two:
// TestConsentBySignal).
func TestHandOffWaitsForAFailedWorkflowTask(t *testing.T) {
	for _, tc := range []struct {
		name     string
		slow     int
		refusals int
		fail     error
		sigErr   error
		budget   time.Duration
		// wantErr: the hand-off's error (nil: taken by the update).
		wantErr     error
		wantSignals int
	}{
		{"taken after two refusals", 0, 2, nil, nil, 10 * time.Second, nil, 0},
		{"refused past the caller's time: signalled", 0, 1000, nil, nil, 2 * time.Second, ErrStillConnecting, 1},
		{"refused past the caller's time, the signal refused too: the error", 0, 1000, nil, errUnavailable, 2 * time.Second, &serviceerror.WorkflowNotReady{}, 0},
		{"an attempt ran out, then refused: signalled", 1, 1000, nil, nil, 3 * time.Second, ErrStillConnecting, 1},
		{"every attempt ran out: signalled", 1000, 0, nil, nil, 2 * time.Second, ErrStillConnecting, 1},
		{"Temporal unavailable at once: the error, not signalled", 0, 0, errUnavailable, nil, 2 * time.Second, errUnavailable, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &notReadyClient{slow: tc.slow, refusals: tc.refusals, fail: tc.fail, sigErr: tc.sigErr}
			s := &Service{Temporal: c, HandoffTimeout: 500 * time.Millisecond}
			ctx, cancel := context.WithTimeout(context.Background(), tc.budget)
			defer cancel()
			_, err := s.handOff(ctx, "conn_1", workflows.ConsentInput{Ref: "ref"})
			var notReady *serviceerror.WorkflowNotReady
			if _, want := tc.wantErr.(*serviceerror.WorkflowNotReady); want {
				// The refusal, not ErrStillConnecting: the callback's 503.
				if !errors.As(err, &notReady) || errors.Is(err, ErrStillConnecting) {
					t.Fatalf("error %v, want the refusal", err)
				}
			} else if !errors.Is(err, tc.wantErr) {
				t.Fatalf("error %v, want %v", err, tc.wantErr)
			}
			if tc.wantErr == nil && len(c.ids) != tc.slow+tc.refusals+1 {
				t.Errorf("%d attempts, want %d", len(c.ids), tc.slow+tc.refusals+1)
			}
			if len(c.signals) != tc.wantSignals || tc.wantSignals > 0 && c.signals[0].Ref != "ref" {
				t.Errorf("signals %+v, want %d with the consent", c.signals, tc.wantSignals)
			}
			for _, id := range c.ids {
				if id != c.ids[0] {
					t.Fatalf("update IDs %v: a second hand-off", c.ids)
				}
			}
		})
	}
}

// deadlineOnly has a deadline and has not ended: a context whose deadline
// has passed a moment before its timer fires.
type deadlineOnly struct {
	context.Context
	at time.Time
}

func (c deadlineOnly) Deadline() (time.Time, bool) { return c.at, true }

// TestOutOfTime: the caller's time has run out when its context ended, or
// when its deadline passed though the context does not say so yet (an
// error of a look bounded by the same deadline can come first).
func TestOutOfTime(t *testing.T) {
	ended, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name string
		ctx  context.Context
		want bool
	}{
		{"no deadline", context.Background(), false},
		{"ended", ended, true},
		{"deadline ahead", deadlineOnly{context.Background(), time.Now().Add(time.Minute)}, false},
		{"deadline passed, not ended yet", deadlineOnly{context.Background(), time.Now().Add(-time.Millisecond)}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := outOfTime(tt.ctx); got != tt.want {
				t.Errorf("outOfTime = %v, want %v", got, tt.want)
			}
		})
	}
}
