package activities

import (
	"context"
	"fmt"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"golang.org/x/sync/errgroup"

	"github.com/outlookd/outlookd/workflows"
)

// WorkflowStarter starts workflows: the Temporal client's method of that
// name, which is all StartMailboxes needs of it.
type WorkflowStarter interface {
	ExecuteWorkflow(ctx context.Context, options client.StartWorkflowOptions, workflow any, args ...any) (client.WorkflowRun, error)
}

// mailboxStartConcurrency bounds the starts in flight at once: each is one
// request to the Temporal frontend.
const mailboxStartConcurrency = 32

// ErrNoWorkflowClient is the type of the error of StartMailboxes in a
// process given no Temporal client.
const ErrNoWorkflowClient = "NoWorkflowClient"

// StartMailboxes starts the workflows of an application connection's
// joined mailboxes, in parallel. Each start is idempotent by workflow ID:
// a mailbox whose workflow runs keeps it (a retry after a partial failure
// starts only the rest), and one whose workflow has ended gets a new run,
// as a child workflow would.
func (a *Activities) StartMailboxes(ctx context.Context, in workflows.StartMailboxesInput) error {
	if a.Workflows == nil {
		return temporal.NewNonRetryableApplicationError("this worker was given no Temporal client to start mailbox workflows with", ErrNoWorkflowClient, nil)
	}
	if in.TaskQueue == "" {
		return temporal.NewNonRetryableApplicationError("no task queue to start mailbox workflows on", ErrNoWorkflowClient, nil)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(mailboxStartConcurrency)
	for _, m := range in.Mailboxes {
		g.Go(func() error {
			_, err := a.Workflows.ExecuteWorkflow(gctx, client.StartWorkflowOptions{
				ID:                       workflows.MailboxWorkflowID(m.Input.ID),
				TaskQueue:                in.TaskQueue,
				WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
				WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
				TypedSearchAttributes:    workflows.MailboxStartAttributes(m.Input),
				// This process runs a worker of the queue (the activity's
				// own): the server hands the mailbox's first workflow task
				// to it with the start when it has a free slot, without a
				// trip through matching; otherwise the start is as usual.
				EnableEagerStart: true,
				StaticSummary:    m.Summary,
				StaticDetails:    m.Details,
			}, workflows.MailboxWorkflowName, m.Input)
			if err != nil {
				return fmt.Errorf("start the workflow of mailbox %s: %w", m.Input.ID, err)
			}
			return nil
		})
	}
	return g.Wait()
}
