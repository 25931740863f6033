package connect

import (
	"cmp"
	"context"
	"errors"
	"fmt"

	"go.temporal.io/api/common/v1"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"

	"github.com/outlookd/outlookd/store"
	"github.com/outlookd/outlookd/workflows"
)

// Errors Repair answers for a connection it leaves as it is.
var (
	// ErrWorkflowRunning: the connection's workflow runs; nothing to repair.
	ErrWorkflowRunning = errors.New("connect: the connection's workflow is running")
	// ErrNotRepairable: the workflow ended by itself (a cancel disconnects
	// the connection) or its history is gone, so no run can take up where
	// it was; the connection can only be disconnected, which cleans it up.
	ErrNotRepairable = errors.New("connect: the connection's workflow cannot be taken up again")
)

// Repaired says how Repair brought a connection's workflow back.
type Repaired struct {
	// RunID is the new run.
	RunID string
	// Restarted: the connection was waiting for its first consent and got
	// a fresh run (Restart); it needs a sign-in through a fresh link.
	Restarted bool
}

// Repair takes up again the workflow of a connection whose run an operator
// terminated (or that failed or timed out) without disconnecting it: the
// run is reset to its last completed workflow task, so the new run has the
// state the old one had (tokens in Vault, delta links, subscriptions) and
// re-does only what was under way; signals received after that point are
// applied again. A connection still waiting for its first consent whose
// history is gone gets a fresh run (Restart). A running workflow is left
// as it is (ErrWorkflowRunning); one that ended by itself, or whose
// history Temporal no longer keeps, cannot be taken up (ErrNotRepairable).
func (s *Service) Repair(ctx context.Context, row store.Connection) (Repaired, error) {
	runID, err := s.reset(ctx, workflows.ConnectionWorkflowID(row.ID))
	if errors.Is(err, errNothingToReplay) {
		if row.State != workflows.StatePendingConsent {
			return Repaired{}, ErrNotRepairable
		}
		return Repaired{Restarted: true}, s.Restart(ctx, row)
	}
	if err != nil {
		return Repaired{}, err
	}
	return Repaired{RunID: runID}, nil
}

// RepairMailbox takes up again the workflow of an attached mailbox (a
// service account's or an application connection's) that an operator
// terminated (or that failed or timed out) without detaching it, as
// Repair does a connection's: its ended run is reset to its last completed
// workflow task (or to before a backfill child it was running), and the
// mailbox goes on from its cursors. A running workflow is left as it is
// (ErrWorkflowRunning); one that ended by itself or whose history is gone
// cannot be taken up (ErrNotRepairable): the mailbox can only be detached.
func (s *Service) RepairMailbox(ctx context.Context, m store.Mailbox) (Repaired, error) {
	runID, err := s.reset(ctx, workflows.MailboxWorkflowID(m.ID))
	if errors.Is(err, errNothingToReplay) {
		return Repaired{}, ErrNotRepairable
	}
	if err != nil {
		return Repaired{}, err
	}
	return Repaired{RunID: runID}, nil
}

// errNothingToReplay: the workflow's history is gone, or its run ended
// before its first workflow task completed.
var errNothingToReplay = errors.New("connect: no workflow task to reset to")

// reset resets the ended run of workflow wid to its reset point (see
// resetPoint) and answers the new run's ID: ErrWorkflowRunning when it
// runs, ErrNotRepairable when it ended by itself (completed, cancelled,
// continued as new), errNothingToReplay when there is no point to reset
// to.
func (s *Service) reset(ctx context.Context, wid string) (string, error) {
	desc, err := s.Temporal.DescribeWorkflowExecution(ctx, wid, "")
	var gone *serviceerror.NotFound
	if errors.As(err, &gone) {
		return "", errNothingToReplay
	}
	if err != nil {
		return "", fmt.Errorf("connect: describe the workflow %s: %w", wid, err)
	}
	info := desc.GetWorkflowExecutionInfo()
	switch info.GetStatus() {
	case enums.WORKFLOW_EXECUTION_STATUS_RUNNING:
		return "", ErrWorkflowRunning
	case enums.WORKFLOW_EXECUTION_STATUS_TERMINATED, enums.WORKFLOW_EXECUTION_STATUS_FAILED, enums.WORKFLOW_EXECUTION_STATUS_TIMED_OUT:
	default:
		return "", ErrNotRepairable
	}
	runID := info.GetExecution().GetRunId()
	last, err := s.resetPoint(ctx, wid, runID)
	if err != nil {
		return "", err
	}
	if last == 0 {
		// Terminated before its first workflow task: nothing to replay.
		return "", errNothingToReplay
	}
	resp, err := s.Temporal.ResetWorkflowExecution(ctx, &workflowservice.ResetWorkflowExecutionRequest{
		Namespace:                 cmp.Or(s.Namespace, "default"),
		WorkflowExecution:         &common.WorkflowExecution{WorkflowId: wid, RunId: runID},
		Reason:                    "outlookd repair: the run was " + info.GetStatus().String(),
		WorkflowTaskFinishEventId: last,
		// The same run reset twice (a retried repair) gives one new run.
		RequestId: "repair-" + runID,
	})
	if err != nil {
		return "", fmt.Errorf("connect: reset the workflow %s: %w", wid, err)
	}
	return resp.GetRunId(), nil
}

// resetPoint is the workflow task a repair resets a run to (0: none):
// its last completed one, or, when the run was ended while a backfill
// child ran, the one that started that child. A terminated parent takes
// its backfill down with it, and a run reset past the child's start would
// wait for it forever; reset before it, the new run starts the backfill
// again, which resumes from the cursors it committed. A connection's runs
// continue as new before their history grows long, so reading it forward
// is bounded.
func (s *Service) resetPoint(ctx context.Context, wid, runID string) (int64, error) {
	it := s.Temporal.GetWorkflowHistory(ctx, wid, runID, false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	var last int64
	backfills := map[int64]int64{} // initiated event ID -> the workflow task that initiated it
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			return 0, fmt.Errorf("connect: history of %s: %w", wid, err)
		}
		switch ev.GetEventType() {
		case enums.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
			last = ev.GetEventId()
		case enums.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED:
			if a := ev.GetStartChildWorkflowExecutionInitiatedEventAttributes(); a.GetWorkflowType().GetName() == workflows.BackfillWorkflowName {
				backfills[ev.GetEventId()] = a.GetWorkflowTaskCompletedEventId()
			}
		case enums.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_FAILED:
			delete(backfills, ev.GetStartChildWorkflowExecutionFailedEventAttributes().GetInitiatedEventId())
		case enums.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED:
			delete(backfills, ev.GetChildWorkflowExecutionCompletedEventAttributes().GetInitiatedEventId())
		case enums.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_FAILED:
			delete(backfills, ev.GetChildWorkflowExecutionFailedEventAttributes().GetInitiatedEventId())
		case enums.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_CANCELED:
			delete(backfills, ev.GetChildWorkflowExecutionCanceledEventAttributes().GetInitiatedEventId())
		case enums.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_TIMED_OUT:
			delete(backfills, ev.GetChildWorkflowExecutionTimedOutEventAttributes().GetInitiatedEventId())
		case enums.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_TERMINATED:
			delete(backfills, ev.GetChildWorkflowExecutionTerminatedEventAttributes().GetInitiatedEventId())
		}
	}
	for _, task := range backfills {
		if task > 0 && task < last {
			last = task
		}
	}
	return last, nil
}
