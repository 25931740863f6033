package activities

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"golang.org/x/sync/errgroup"

	"github.com/outlookd/outlookd/store"
	"github.com/outlookd/outlookd/workflows"
)

// prefillRecord is what the directory keeps of a mailbox backfilled ahead
// of its workflow (directory_users.prefill): the backfill when it was done
// whole, or why the workflow is to do it.
type prefillRecord struct {
	Done     bool                 `json:"done"`
	Backfill *workflows.Prefilled `json:"backfill,omitempty"`
	// Left says why the mailbox's workflow backfills (the rest of) it: the
	// budget ran out, a folder went, or an error the workflow meets with
	// its own retries and states.
	Left string `json:"left,omitempty"`
}

// handedOver is the backfill a directory user's prefill record hands its
// mailbox's workflow (nil: the workflow backfills).
func handedOver(raw []byte) (*workflows.Prefilled, error) {
	if raw == nil {
		return nil, nil
	}
	var r prefillRecord
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, err
	}
	if !r.Done {
		return nil, nil
	}
	return r.Backfill, nil
}

// PrefillMailboxes backfills an application connection's joining users'
// mailboxes ahead of their workflows: in.AtOnce side by side, a new one
// begun as soon as one ends, until none is left, in.Limit were begun or
// in.Window has passed. Each is attached (while its user still joins) and
// backfilled as BackfillMailbox does, for up to in.Budget, through its own
// per-mailbox budget. A mailbox done whole has its backfill recorded in
// the directory with its backfill.completed event, in one transaction, and
// its workflow begins live; one left unfinished (a large mailbox, a folder
// deleted meanwhile, an error of that mailbox alone) is recorded so, and
// its workflow backfills the rest from the cursors committed. A credential
// refused ends the call with its error (the connection pauses); a call run
// again takes up the users not yet recorded.
func (a *Activities) PrefillMailboxes(ctx context.Context, in workflows.PrefillInput) (workflows.PrefillResult, error) {
	var res workflows.PrefillResult
	connID := in.Backfill.ConnectionID
	conn, err := a.Store.GetConnection(ctx, connID)
	if err != nil {
		return res, err
	}
	hb, stop := startHeartbeat(ctx)
	defer stop()
	atOnce := max(in.AtOnce, 1)
	var mu sync.Mutex
	underWay := map[string]bool{}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(atOnce)
	deadline := a.now().Add(in.Window)
	for res.Mailboxes < in.Limit && (in.Window <= 0 || a.now().Before(deadline)) && gctx.Err() == nil {
		mu.Lock()
		skip := make([]string, 0, len(underWay))
		for id := range underWay {
			skip = append(skip, id)
		}
		mu.Unlock()
		users, err := a.Store.PrefillCandidates(gctx, connID, min(atOnce, in.Limit-res.Mailboxes), skip...)
		if err != nil {
			_ = g.Wait()
			return res, err
		}
		if len(users) == 0 {
			if len(skip) == 0 {
				break
			}
			// Users discovered while the ones under way are backfilled
			// join them: the batch goes on rather than end and wait for
			// the workflow to begin the next.
			if err := sleep(gctx, candidatesRecheck); err != nil {
				break // the ones under way end below
			}
			continue
		}
		for _, u := range users {
			mu.Lock()
			underWay[u.UserID] = true
			res.Mailboxes++
			mu.Unlock()
			// Waits for a place among the in.AtOnce.
			g.Go(func() error {
				done, fetched, err := a.prefillMailbox(gctx, hb, conn, in, u)
				mu.Lock()
				defer mu.Unlock()
				delete(underWay, u.UserID)
				if done {
					res.Done++
				}
				res.Messages += fetched
				return err
			})
		}
	}
	err = g.Wait()
	mu.Lock()
	defer mu.Unlock()
	res.More = res.Mailboxes >= in.Limit || in.Window > 0 && !a.now().Before(deadline)
	return res, err
}

// prefillMailbox attaches and backfills one joining user's mailbox and
// records what was done.
func (a *Activities) prefillMailbox(ctx context.Context, hb *heartbeat, conn store.Connection, in workflows.PrefillInput, u store.DirectoryUser) (done bool, fetched int64, err error) {
	attached, err := a.Store.AttachJoiningMailbox(ctx, store.Mailbox{ID: u.MailboxID, ConnectionID: conn.ID, Address: u.Address,
		UserID: u.UserID, DisplayName: u.DisplayName, State: workflows.StateActive, Settings: conn.Settings})
	if errors.Is(err, store.ErrMailboxTaken) {
		return false, 0, a.Store.SetDirectoryStatus(ctx, conn.ID, u.UserID, store.DirJoining, store.DirExcluded, ExcludedMailboxTaken)
	}
	if err != nil || !attached {
		return false, 0, err // not joining any more: nothing to do
	}
	started := a.now()
	bf := in.Backfill
	bf.MailboxID, bf.UserID = u.MailboxID, u.UserID
	// Its workflow not started yet, the mailbox has no other user: its
	// whole budget is held once rather than taken request by request.
	gc, release, err := a.graphHeld(ctx, conn.ID, u.UserID)
	var r workflows.BackfillMailboxResult
	if err == nil {
		r, err = a.backfillMailbox(ctx, hb, gc, workflows.BackfillMailboxInput{BackfillInput: bf, Budget: in.Budget})
		release()
	}
	rec := prefillRecord{}
	switch {
	case err != nil && (ctx.Err() != nil || credentialRefused(err)):
		return false, 0, err
	case err != nil:
		activity.GetLogger(ctx).Warn("a joining mailbox's backfill failed; its workflow does it", "mailbox", u.MailboxID, "err", err)
		rec.Left = err.Error()
	case len(r.Gone) > 0:
		rec.Left = "a folder was deleted while it was backfilled"
	case !r.Done:
		rec.Left = fmt.Sprintf("not done within %s", in.Budget)
	default:
		rec.Done = true
		rec.Backfill = &workflows.Prefilled{WindowStart: bf.WindowStart, Roots: bf.Roots, Folders: r.Folders, Missing: r.Missing,
			Started: started, Completed: a.now()}
	}
	raw, err := json.Marshal(rec)
	if err != nil {
		return false, 0, err
	}
	var events []store.Event
	if rec.Done {
		events = append(events, store.Event{ID: u.MailboxID + ":backfill:1", ConnectionID: conn.ID, MailboxID: u.MailboxID,
			Type: "backfill.completed", Data: workflows.BackfillCompletedData(u.MailboxID, bf.WindowStart, r.Fetched, 1, r.Missing)})
	}
	if err := a.Store.RecordPrefill(ctx, conn.ID, u.UserID, u.MailboxID, raw, events...); err != nil {
		return false, 0, err
	}
	return rec.Done, r.Fetched, nil
}

// candidatesRecheck is how often a batch with no joining user left to
// begin, and some under way, looks for users discovered since.
const candidatesRecheck = 250 * time.Millisecond

// credentialRefused says whether an activity's error is its connection's
// credential refused (ErrReauthRequired).
func credentialRefused(err error) bool {
	var appErr *temporal.ApplicationError
	return errors.As(err, &appErr) && appErr.Type() == workflows.ErrReauthRequired
}
