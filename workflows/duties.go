package workflows

import (
	"slices"
	"time"

	"go.temporal.io/sdk/workflow"
)

// duty is one thing an active connection does from time to time. The main
// loop runs the first duty that is due, the wake-up timer waits for the
// earliest, and the status query names it: all three read this one list.
type duty struct {
	// name is what the status query says is next.
	name string
	// due says when the duty is next due, and whether it applies at all.
	due func(c *connection, ctx workflow.Context) (time.Time, bool)
	// run does it (or starts it: the backfill runs as a child).
	run func(c *connection, ctx workflow.Context)
}

// activeDuties are the duties of an active connection, most urgent first.
var activeDuties = []duty{
	{"starting a backfill", (*connection).backfillDue, (*connection).startBackfill},
	{"deleting the mail the contact filter excludes", (*connection).filterOnDue, (*connection).applyFilterOn},
	{"deleting stored content the storage policy no longer keeps", (*connection).stripDue, (*connection).strip},
	{"fetching added contacts' past mail", (*connection).contactsDue, (*connection).fetchContacts},
	{"subscribing to changes", (*connection).subscribeDue, (*connection).subscribe},
	{"backfilling joining mailboxes ahead of their workflows", (*connection).prefillDue, (*connection).startPrefill},
	{"renewing the subscription", (*connection).renewDue, (*connection).renew},
	{"next delta round", (*connection).syncDue, (*connection).sync},
	{"keeping the refresh token alive", (*connection).keepAliveDue, (*connection).refresh},
	{"telling the mailboxes the credential works again", (*connection).resumeDue, (*connection).resumeMailboxes},
	{"discovering mailboxes", (*connection).discoverDue, (*connection).discover},
	{"telling the app the client secret expires soon", (*connection).expiryDue, (*connection).warnExpiry},
	{"checking the credential at the secret's expiry", (*connection).credentialCheckDue, (*connection).refresh},
}

// nextDuty is the duty due soonest (the first of the list among equals).
func (c *connection) nextDuty(ctx workflow.Context) (*duty, time.Time) {
	var next *duty
	var at time.Time
	for i := range activeDuties {
		d := &activeDuties[i]
		when, ok := d.due(c, ctx)
		if ok && (next == nil || when.Before(at)) {
			next, at = d, when
		}
	}
	return next, at
}

// Backoff of a duty that failed: a minute, doubling up to an hour.
const (
	retryFirst = time.Minute
	retryMax   = time.Hour
)

// failed books a failure of a duty and sets when it may run again.
func (b *Backoff) failed(now time.Time) {
	b.Failures++
	delay := retryFirst
	for i := 1; i < b.Failures && delay < retryMax; i++ {
		delay *= 2
	}
	b.RetryAt = now.Add(min(delay, retryMax))
}

// later is the later of a due time and the backoff's.
func (b Backoff) later(t time.Time) time.Time {
	if b.RetryAt.After(t) {
		return b.RetryAt
	}
	return t
}

func (c *connection) backfillDue(ctx workflow.Context) (time.Time, bool) {
	if !c.backfillWanted(ctx) {
		return time.Time{}, false
	}
	return c.s.Backfill.Backoff.RetryAt, true
}

func (c *connection) subscribeDue(ctx workflow.Context) (time.Time, bool) {
	if !c.live() || (c.s.Sync.Mode != "" && !c.s.Pending.Resubscribe) {
		return time.Time{}, false
	}
	return c.s.Sync.Subscribe.RetryAt, true
}

func (c *connection) renewDue(ctx workflow.Context) (time.Time, bool) {
	if !c.live() || c.s.Sync.Mode != SyncPush || c.s.Pending.Resubscribe {
		return time.Time{}, false
	}
	at := c.s.Sync.SubscriptionRenewAt
	if at.IsZero() {
		at = c.s.Sync.SubscriptionExpires.Add(-c.opts.RenewBefore)
	}
	if c.s.Pending.Renew {
		at = time.Time{}
	}
	return c.s.Sync.Subscribe.later(at), true
}

// renewalTime is when a subscription Graph granted until res.Expiration is
// renewed: RenewBefore ahead of its expiry, but never more than half the
// lifetime Graph granted ahead, so that a grant shorter than asked (or than
// RenewBefore) is renewed halfway through rather than at once and again,
// and never after it expires (docs/graph.md#renewing-and-deleting). A
// result that does not say when it was asked (recorded before Requested
// existed) gives zero: renewDue then keeps to RenewBefore alone, as the
// workflows did when that result was recorded.
func renewalTime(res SubscriptionResult, renewBefore time.Duration) time.Time {
	if res.Requested.IsZero() {
		return time.Time{}
	}
	granted := max(res.Expiration.Sub(res.Requested), 0)
	return res.Expiration.Add(-min(renewBefore, granted/2))
}

func (c *connection) syncDue(ctx workflow.Context) (time.Time, bool) {
	if !c.live() || c.s.Sync.Mode == "" {
		return time.Time{}, false
	}
	at := c.nextRoundAt()
	if c.s.Pending.Sync || len(c.s.Pending.Reanchor) > 0 {
		at = time.Time{}
	}
	return c.s.Sync.Backoff.later(at), true
}

func (c *connection) keepAliveDue(ctx workflow.Context) (time.Time, bool) {
	if c.isMailbox() {
		return time.Time{}, false // the connection keeps its tokens alive
	}
	last := c.s.LastRefresh
	if last.IsZero() {
		last = c.s.Since
	}
	return last.Add(c.opts.KeepAliveEvery), true
}

// live says whether the workflow syncs a mailbox and its folders have
// their delta anchors (the first backfill is done).
func (c *connection) live() bool {
	return c.syncsMail() && !c.s.Backfill.Covered.IsZero()
}

// nextRoundAt is when the next round runs without notifications: the
// reconciliation of a pushed connection, or the poll of one that is not.
func (c *connection) nextRoundAt() time.Time {
	every := c.opts.ReconcileEvery
	if c.s.Sync.Mode == SyncPolling {
		every = c.opts.PollEvery
		if c.s.Settings.PollMinutes > 0 {
			every = time.Duration(c.s.Settings.PollMinutes) * time.Minute
		}
	}
	last := c.s.Sync.LastSync
	if last.IsZero() {
		last = c.s.Backfill.Completed
	}
	return last.Add(every)
}

// backfillTarget is the start of the window the settings ask for.
func (c *connection) backfillTarget(ctx workflow.Context) time.Time {
	return workflow.Now(ctx).Add(-time.Duration(c.s.Settings.BackfillDays) * 24 * time.Hour).Truncate(time.Second)
}

// backfillWanted says whether the settings ask for mail the store lacks:
// nothing backfilled yet, other root folders, or a window more than a day
// wider than the one covered.
func (c *connection) backfillWanted(ctx workflow.Context) bool {
	b := c.s.Backfill
	if !c.syncsMail() || b.Running {
		return false
	}
	if b.Covered.IsZero() || !sameFolders(b.Roots, c.s.Settings.Folders) {
		return true
	}
	return c.backfillTarget(ctx).Before(b.Covered.Add(-24 * time.Hour))
}

// sameFolders says whether two lists name the same folders, in any order.
func sameFolders(a, b []string) bool {
	return len(a) == len(b) && !slices.ContainsFunc(a, func(f string) bool { return !slices.Contains(b, f) })
}
