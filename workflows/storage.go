package workflows

import (
	"time"

	"go.temporal.io/sdk/workflow"
)

// bodiesChanged arranges what a new body policy asks: one that keeps less
// deletes what the stored messages hold beyond it; one that keeps more
// re-anchors every folder once mail is stored, whose full scan of the
// window brings it.
func (c *connection) bodiesChanged(was, is string) {
	switch {
	case was == is:
	case KeepsLess(was, is):
		c.s.Pending.Strip = true
	case c.live() || c.s.Backfill.Running:
		// Mail is stored (or being stored) under the old policy.
		c.s.Pending.Strip = false
		c.s.Pending.Sync = true
		c.s.Pending.Reanchor = []string{"*"}
	}
}

// stripDue: the policy keeps less than what is stored. It waits for a
// running backfill, which pages with the policy it started with.
func (c *connection) stripDue(ctx workflow.Context) (time.Time, bool) {
	if !c.s.Pending.Strip || c.s.Backfill.Running || !c.syncsMail() {
		return time.Time{}, false
	}
	return c.s.Sync.Backoff.RetryAt, true
}

// strip deletes what the stored messages hold beyond the policy: bodies,
// previews, attachments' metadata.
func (c *connection) strip(ctx workflow.Context) {
	bodies := c.s.Settings.WithDefaults().Bodies
	res, err := stripContent.run(ctx, StripContentInput{ConnectionID: c.credentialID(), MailboxID: c.mailboxID(), Bodies: bodies})
	if !c.still(StateActive) {
		return
	}
	if err != nil {
		c.s.Sync.LastError = err.Error()
		c.s.Sync.Backoff.failed(workflow.Now(ctx))
		return
	}
	if c.s.Settings.WithDefaults().Bodies == bodies {
		c.s.Pending.Strip = false
	}
	c.log.Info("stored content beyond the storage policy deleted", "bodies", bodies, "messages", res.Messages)
}
