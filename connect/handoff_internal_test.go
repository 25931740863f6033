package connect

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/outlookd/outlookd/workflows"
)

// notReadyClient refuses updates as Temporal does while a workflow's last
// task has failed (WorkflowNotReady), a given number of times, then takes
// them; it records the update IDs it was asked.
type notReadyClient struct {
	client.Client
	refusals int
	ids      []string
}

func (c *notReadyClient) UpdateWorkflow(ctx context.Context, o client.UpdateWorkflowOptions) (client.WorkflowUpdateHandle, error) {
	c.ids = append(c.ids, o.UpdateID)
	if len(c.ids) <= c.refusals {
		return nil, serviceerror.NewWorkflowNotReady("Unable to perform workflow execution update due to Workflow Task in failed state.")
	}
	return nil, nil
}

// TestHandOffWaitsForAFailedWorkflowTask: an update refused because the
// workflow's last task failed is asked again, under the same update ID,
// until Temporal takes it or the caller's time runs out.
func TestHandOffWaitsForAFailedWorkflowTask(t *testing.T) {
	for _, tc := range []struct {
		name     string
		refusals int
		budget   time.Duration
		wantErr  bool
	}{
		{"taken after two refusals", 2, 10 * time.Second, false},
		{"refused past the caller's time", 1000, 2 * time.Second, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &notReadyClient{refusals: tc.refusals}
			s := &Service{Temporal: c}
			ctx, cancel := context.WithTimeout(context.Background(), tc.budget)
			defer cancel()
			_, err := s.handOff(ctx, "conn_1", workflows.ConsentInput{Ref: "ref"})
			var notReady *serviceerror.WorkflowNotReady
			if tc.wantErr != (err != nil) || tc.wantErr && !errors.As(err, &notReady) {
				t.Fatalf("error %v", err)
			}
			if !tc.wantErr && len(c.ids) != tc.refusals+1 {
				t.Errorf("%d attempts, want %d", len(c.ids), tc.refusals+1)
			}
			for _, id := range c.ids {
				if id != c.ids[0] {
					t.Fatalf("update IDs %v: a second hand-off", c.ids)
				}
			}
		})
	}
}
