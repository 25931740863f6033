package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/workflow"
)

// contactBatch is how many contacts one FetchContactMail activity covers:
// a bounded piece of work that reports progress between pieces.
const contactBatch = 25

// contactFilterChanged arranges what switching the contact filter asks: on,
// the mail it excludes is deleted (and the contacts' past mail counts as
// fetched: every message was stored); off, every folder is re-anchored
// from a full scan of its window, which brings the mail the filter kept
// out.
func (c *connection) contactFilterChanged(was, is bool) {
	switch {
	case !was && is:
		c.s.Pending.FilterOn = true
	case was && !is:
		c.s.Pending.FilterOn = false
		if c.live() || c.s.Backfill.Running {
			c.s.Pending.Sync = true
			c.s.Pending.Reanchor = []string{"*"}
		}
	}
}

// filterOnDue: the filter was switched on and the mail it excludes is not
// yet deleted. It waits for a running backfill, which pages unfiltered.
func (c *connection) filterOnDue(ctx workflow.Context) (time.Time, bool) {
	if !c.s.Pending.FilterOn || !c.s.Settings.ContactFilter || !c.syncsMail() || c.s.Backfill.Running {
		return time.Time{}, false
	}
	return c.s.Contacts.Backoff.RetryAt, true
}

// applyFilterOn deletes the mail the contact filter excludes.
func (c *connection) applyFilterOn(ctx workflow.Context) {
	c.s.Pending.Contacts = false
	res, err := applyContactFilter.run(ctx, ContactFilterInput{ConnectionID: c.credentialID(), MailboxID: c.mailboxID()})
	if !c.still(StateActive) {
		return
	}
	if err != nil {
		c.s.Contacts.LastError = err.Error()
		c.s.Contacts.Backoff.failed(workflow.Now(ctx))
		return
	}
	c.s.Pending.FilterOn = false
	c.s.Contacts.LastError, c.s.Contacts.Backoff = "", Backoff{}
	c.log.Info("contact filter on: mail from or to no contact deleted", "deleted", res.Deleted)
}

// contactsDue: contacts were added to a mailbox whose mail is filtered,
// and its first backfill is done (a backfill under way stores the mail
// of contacts added before its pages; the fetch after it covers the
// rest).
func (c *connection) contactsDue(ctx workflow.Context) (time.Time, bool) {
	if !c.s.Pending.Contacts || !c.s.Settings.ContactFilter || c.s.Pending.FilterOn || !c.live() || c.s.Backfill.Running {
		return time.Time{}, false
	}
	return c.s.Contacts.Backoff.RetryAt, true
}

// fetchContacts fetches the past mail of one batch of added contacts
// from every synced folder. Contacts still waiting keep the duty due; when
// none is left the app is told (contacts.fetched) with what the fetch
// covered. Contacts added meanwhile signal again, so none is missed.
func (c *connection) fetchContacts(ctx workflow.Context) {
	k := &c.s.Contacts
	now := workflow.Now(ctx)
	if !k.Fetching {
		k.Fetching, k.StartedAt, k.Contacts, k.Messages = true, now, 0, 0
	}
	c.s.Pending.Contacts = false
	res, err := fetchContactMail.run(ctx, FetchContactMailInput{
		ConnectionID: c.credentialID(), MailboxID: c.mailboxID(), UserID: c.s.UserID,
		StoreBodies: c.s.Settings.StoreBodies(), Bodies: c.s.Settings.Bodies, PageSize: c.opts.PageSize, Batch: contactBatch,
	})
	if !c.still(StateActive) {
		return
	}
	now = workflow.Now(ctx)
	if err != nil {
		c.s.Pending.Contacts = true
		k.LastError = err.Error()
		if !c.onActivityError(ctx, err) {
			k.Backoff.failed(now)
		}
		return
	}
	k.LastError, k.Backoff = "", Backoff{}
	k.Contacts += res.Contacts
	k.Messages += res.Messages
	k.Remaining = res.Remaining
	if res.Remaining > 0 {
		c.s.Pending.Contacts = true
		return
	}
	k.Fetching, k.LastCompleted = false, now
	k.Runs++
	data := map[string]any{"contacts": k.Contacts, "messages": k.Messages,
		"started_at": k.StartedAt.UTC().Format(time.RFC3339), "seconds": now.Sub(k.StartedAt).Seconds()}
	if c.isMailbox() {
		data["mailbox_id"] = c.s.ID
	}
	if err := c.recordEvent(ctx, RecordEventInput{ConnectionID: c.credentialID(), MailboxID: c.mailboxID(),
		EventID: fmt.Sprintf("%s:contacts:%d", c.s.ID, k.Runs), Type: "contacts.fetched", Data: data}); err != nil {
		c.log.Error("record contacts.fetched", "err", err)
	}
}
