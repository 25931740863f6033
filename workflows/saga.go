package workflows

import (
	"go.temporal.io/sdk/workflow"
)

// disconnect runs the disconnect saga: cancel the backfill, delete every
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
	if c.s.Backfill.Running {
		step("cancelling the backfill", func() error {
			if c.cancelBackfill != nil {
				c.cancelBackfill()
			} else {
				_ = workflow.RequestCancelExternalWorkflow(ctx, BackfillWorkflowID(c.s.ID, c.s.Backfill.Runs), "").Get(ctx, nil)
			}
			return workflow.Await(ctx, func() bool { return !c.s.Backfill.Running })
		})
	}
	ref := ConnectionRef{ConnectionID: c.s.ID}
	step("deleting subscriptions", func() error { _, err := deleteSubscriptions.run(ctx, ref); return err })
	step("purging secrets", func() error { _, err := purgeSecrets.run(ctx, ref); return err })
	step("applying the retention policy", func() error {
		_, err := applyRetention.run(ctx, RetentionInput{ConnectionID: c.s.ID, Policy: c.s.Settings.Retention})
		return err
	})
	c.s.Sync = SyncState{}
	c.s.DisconnectStep = "recording the end"
	c.moveTo(ctx, StateDisconnected, ReasonDisconnected, "The connection was disconnected.",
		map[string]any{"mailbox": c.s.Mailbox, "retention": c.s.Settings.Retention, "cause": c.causeOfEnd()})
	c.s.DisconnectStep = "done"
}

// causeOfEnd is why the saga ran, for the disconnected event.
func (c *connection) causeOfEnd() string {
	switch c.s.Reason {
	case ReasonWorkflowCanceled, ReasonWorkflowEnded:
		return c.s.Reason
	}
	return ReasonDisconnectRequested
}
