package activities

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"golang.org/x/sync/errgroup"

	"github.com/outlookd/outlookd/workflows"
)

// WorkflowStarter starts and cancels workflows: the Temporal client's
// methods of those names, which are all StartMailboxes and EndMailboxes
// need of it.
type WorkflowStarter interface {
	ExecuteWorkflow(ctx context.Context, options client.StartWorkflowOptions, workflow any, args ...any) (client.WorkflowRun, error)
	CancelWorkflow(ctx context.Context, workflowID, runID string) error
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

// EndMailboxes ends a page of a disconnecting connection's live mailboxes
// (after in.After, up to in.Limit), in parallel: each mailbox's running
// workflow is asked to cancel, and detaches its mailbox itself with the
// retention; a mailbox without one (backfilled ahead and not started yet,
// or its workflow ended) is detached here, its mail kept or deleted as
// in.Retention says and its mailbox.detached event recorded. Run again, it
// asks again (a cancel already asked for is no error) and detaches only
// what is still live.
func (a *Activities) EndMailboxes(ctx context.Context, in workflows.EndMailboxesInput) (workflows.EndMailboxesResult, error) {
	if a.Workflows == nil {
		return workflows.EndMailboxesResult{}, temporal.NewNonRetryableApplicationError("this worker was given no Temporal client to end mailbox workflows with", ErrNoWorkflowClient, nil)
	}
	ids, err := a.Store.LiveMailboxIDs(ctx, in.ConnectionID, in.After, in.Limit)
	if err != nil {
		return workflows.EndMailboxesResult{}, fmt.Errorf("activities: %w", err)
	}
	res := workflows.EndMailboxesResult{IDs: append([]string{}, ids...)}
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(mailboxStartConcurrency)
	for _, id := range ids {
		g.Go(func() error {
			err := a.Workflows.CancelWorkflow(gctx, workflows.MailboxWorkflowID(id), "")
			var notFound *serviceerror.NotFound
			var asked *serviceerror.CancellationAlreadyRequested
			switch {
			case errors.As(err, &notFound):
				// No workflow runs for it.
			case err == nil || errors.As(err, &asked):
				return nil // its workflow detaches it
			default:
				return fmt.Errorf("cancel the workflow of mailbox %s: %w", id, err)
			}
			if err := a.ApplyRetention(gctx, workflows.RetentionInput{ConnectionID: in.ConnectionID, MailboxID: id, Policy: in.Retention}); err != nil {
				return err
			}
			if err := a.RecordState(gctx, workflows.DetachedRecord(in.ConnectionID, id, in.Retention)); err != nil {
				return err
			}
			mu.Lock()
			res.Detached = append(res.Detached, id)
			mu.Unlock()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return workflows.EndMailboxesResult{}, err
	}
	slices.Sort(res.Detached)
	return res, nil
}
