package workflows

import (
	"go.temporal.io/sdk/workflow"
)

// waitingSendsPage is how many waiting sends the saga tells at a time.
const waitingSendsPage = 200

// disconnect runs the disconnect saga: cancel the sends waiting to go
// and the backfill, delete every
// Graph subscription, purge Vault, apply the retention policy, then say
// disconnected. It runs in a context no cancellation reaches, every step
// is retried until done, and the step reached is visible in the status.
// A connection whose workflow was terminated runs the same saga in a new
// run started from the registry (Orphan).
func (c *connection) disconnect(ctx workflow.Context) {
	ctx, _ = workflow.NewDisconnectedContext(ctx)
	step := func(name string, do func() error) {
		c.s.DisconnectStep = name
		if err := do(); err != nil {
			c.log.Error("disconnect step failed", "step", name, "err", err)
		}
	}
	// Runs before the change took no step for the sends: each learnt of
	// the disconnect at its next look at the connection.
	if c.atOnce || workflow.GetVersion(ctx, "disconnect-ends-sends", workflow.DefaultVersion, 1) == 1 {
		step("cancelling the sends waiting to go", func() error { return c.endWaitingSends(ctx) })
	}
	if c.s.Backfill.Running {
		step("cancelling the backfill", func() error {
			if c.cancelBackfill != nil {
				c.cancelBackfill()
			} else {
				_ = workflow.RequestCancelExternalWorkflow(ctx, c.backfillWorkflowID(c.s.Backfill.Runs), "").Get(ctx, nil)
			}
			return workflow.Await(ctx, func() bool { return !c.s.Backfill.Running })
		})
	}
	if c.isMailbox() {
		c.detach(ctx, step)
		return
	}
	if c.prefillRunning() {
		step("cancelling the backfill of joining mailboxes", func() error { return c.cancelPrefillAndWait(ctx) })
	}
	if c.applying {
		// The mailboxes being started are detached with the others.
		step("waiting for the mailboxes being started", func() error { return workflow.Await(ctx, func() bool { return !c.applying }) })
	}
	if c.isApplication() {
		step("detaching the mailboxes", func() error { return c.detachAllMailboxes(ctx) })
	}
	if len(c.s.Mailboxes) > 0 {
		step("detaching the mailboxes", func() error { return c.detachMailboxes(ctx) })
	}
	ref := ConnectionRef{ConnectionID: c.s.ID}
	step("deleting subscriptions", func() error { _, err := deleteSubscriptions.run(ctx, ref); return err })
	step("purging secrets", func() error { _, err := purgeSecrets.run(ctx, ref); return err })
	if c.syncsOwnMailbox() {
		step("applying the retention policy", func() error {
			_, err := applyRetention.run(ctx, RetentionInput{ConnectionID: c.s.ID, Policy: c.s.Settings.Retention})
			return err
		})
	}
	c.s.Sync = SyncState{}
	c.s.DisconnectStep = "recording the end"
	c.moveTo(ctx, StateDisconnected, ReasonDisconnected, "The connection was disconnected.",
		map[string]any{"mailbox": c.s.Mailbox, "retention": c.s.Settings.Retention, "cause": c.causeOfEnd()})
	c.s.DisconnectStep = "done"
}

// detach is a mailbox's saga after its backfill ended: an application
// connection's mailbox deletes its subscription, its mail is kept or
// deleted as its retention says, and it is recorded detached; its
// connection, and the tokens, stay.
func (c *connection) detach(ctx workflow.Context, step func(string, func() error)) {
	if c.isApplicationMailbox() && c.appMailboxPush(ctx) {
		// Its subscription, made with the connection's token (which its
		// connection purges only after every mailbox is detached).
		step("deleting subscriptions", func() error {
			_, err := deleteSubscriptions.run(ctx, ConnectionRef{ConnectionID: c.s.ConnectionID, MailboxID: c.s.ID})
			return err
		})
	}
	step("applying the retention policy", func() error {
		_, err := applyRetention.run(ctx, RetentionInput{ConnectionID: c.s.ConnectionID, MailboxID: c.s.ID, Policy: c.s.Settings.Retention})
		return err
	})
	c.s.Sync = SyncState{}
	c.s.DisconnectStep = "recording the end"
	c.moveTo(ctx, StateDisconnected, ReasonDisconnected, "The mailbox was detached.",
		map[string]any{"mailbox_id": c.s.ID, "address": c.s.Mailbox, "retention": c.s.Settings.Retention, "cause": c.causeOfEnd()})
	c.s.DisconnectStep = "done"
}

// endWaitingSends tells the workflow of every send that waits before its
// submission (queued for its mailbox's rates, or held for a new sign-in)
// that the connection is being disconnected, or the mailbox detached: it
// is canceled at once rather than at its time. A send already submitted
// is not told; it ends as it would have (docs/sending.md). Nothing here
// waits for a send: a workflow that has ended meanwhile is passed over.
func (c *connection) endWaitingSends(ctx workflow.Context) error {
	in := WaitingSendsInput{ConnectionID: c.s.ID, Limit: waitingSendsPage}
	sig := SendEndedSignal{Reason: ReasonConnectionEnded}
	if c.isMailbox() {
		in.ConnectionID, in.MailboxID = c.s.ConnectionID, c.s.ID
		sig.Reason = ReasonMailboxDetached
	}
	for {
		page, err := waitingSends.run(ctx, in)
		if err != nil {
			return err
		}
		told := make([]workflow.Future, 0, len(page.IDs))
		for _, id := range page.IDs {
			told = append(told, workflow.SignalExternalWorkflow(ctx, sendWorkflowID(in.ConnectionID, id), "", SignalSendEnded, sig))
		}
		for i, f := range told {
			if err := f.Get(ctx, nil); err != nil {
				c.log.Info("a waiting send was not told of the disconnect (its workflow ended)", "send", page.IDs[i], "err", err)
			}
		}
		if len(page.IDs) < in.Limit {
			return nil
		}
		in.After = page.IDs[len(page.IDs)-1]
	}
}

// causeOfEnd is why the saga ran, for the disconnected event.
func (c *connection) causeOfEnd() string {
	switch c.s.Reason {
	case ReasonWorkflowCanceled, ReasonWorkflowEnded:
		return c.s.Reason
	}
	return ReasonDisconnectRequested
}
