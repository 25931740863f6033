package activities

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/outlookd/outlookd/graph"
	"github.com/outlookd/outlookd/identity"
	"github.com/outlookd/outlookd/store"
	"github.com/outlookd/outlookd/workflows"
)

// reasonDetail travels as the details of reason-bearing errors.
type reasonDetail struct {
	Reason string
	Text   string
}

// reauthRequired is the error of a dead refresh token: the workflow parks
// the connection in reauth_required with the reason.
func reauthRequired(reason identity.Reason, cause error) error {
	return temporal.NewNonRetryableApplicationError("the connection needs the user to sign in again: "+string(reason),
		workflows.ErrReauthRequired, cause, reasonDetail{Reason: string(reason), Text: reason.Describe()})
}

// classifyGraph turns a Graph error into an error Temporal retries (or
// not) the right way: throttling after Retry-After, 4xx never.
func classifyGraph(op string, err error) error {
	if err == nil {
		return nil
	}
	var classified *temporal.ApplicationError
	if errors.As(err, &classified) {
		// Already classified (a token failure inside the SDK call): return
		// it unwrapped, so Temporal sees its type.
		return classified
	}
	ge, ok := graph.AsError(err)
	if !ok {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return err
		}
		return fmt.Errorf("%s: %w", op, err)
	}
	switch {
	case ge.Throttled():
		delay := ge.RetryAfter
		if delay <= 0 {
			delay = 5 * time.Second
		}
		return temporal.NewApplicationErrorWithOptions(fmt.Sprintf("%s: Graph throttled (%d %s)", op, ge.Status, ge.Code), workflows.ErrThrottled,
			temporal.ApplicationErrorOptions{NextRetryDelay: delay, Cause: err})
	case ge.Status == 401:
		// A token Graph refuses although it is unexpired: retry, the token
		// source refreshes it.
		return fmt.Errorf("%s: Graph refused the token: %w", op, err)
	case ge.Status == 403 && ge.HasCode("ErrorAccessDenied"):
		// The account's rights on the mailbox were removed (or never
		// reached it): an attached mailbox waits in access_lost.
		return unreachable(workflows.ReasonMailboxUnreachable, "The account can no longer open this mailbox: an Exchange administrator must grant it Full Access again, then ask for a resync.", err)
	case ge.Status == 404 && (ge.HasCode("ErrorItemNotFound") || ge.HasCode("ErrorFolderNotFound")):
		return temporal.NewNonRetryableApplicationError(fmt.Sprintf("%s: %s", op, ge.Message), workflows.ErrFolderGone, err)
	case ge.Status >= 400 && ge.Status < 500:
		return temporal.NewNonRetryableApplicationError(fmt.Sprintf("%s: Graph refused: %d %s: %s", op, ge.Status, ge.Code, ge.Message), workflows.ErrGraphRejected, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// classifyStore marks the store's refusal of a detached connection's page
// as final: the disconnect saga has deleted or archived its mail.
func classifyStore(err error) error {
	if errors.Is(err, store.ErrDetached) {
		return temporal.NewNonRetryableApplicationError("the connection was disconnected; nothing more is written for it", workflows.ErrDetached, err)
	}
	return err
}
