package workflows

import (
	"fmt"
	"slices"

	"go.temporal.io/sdk/workflow"
)

// Connection states, as the ConnectionState search attribute, the status
// query and the registry show them.
const (
	StatePendingConsent = "pending_consent"
	StateConnecting     = "connecting"
	StateActive         = "active"
	StateReauthRequired = "reauth_required"
	// StateAdminConsentRequired: the user's organisation lets only an
	// administrator approve the app (AADSTS90094, 65001 at a sign-in); the
	// connection waits for a sign-in after the tenant's admin consent.
	StateAdminConsentRequired = "admin_consent_required"
	StateDisconnecting        = "disconnecting"
	StateDisconnected         = "disconnected"
)

// transitions is every change of state a connection may make, written
// once. moveTo refuses the rest, so a result that arrives late (a code
// exchanged, a backfill that failed) never overwrites a change made
// meanwhile (a disconnect). Staying in a state to change its reason is
// allowed everywhere but in disconnected.
var transitions = map[string][]string{
	// The user has not consented yet; a refusal keeps the state with its
	// reason, but for one that needs an administrator (refusedTo).
	StatePendingConsent: {StateConnecting, StateAdminConsentRequired, StateDisconnecting},
	// A code is being exchanged.
	StateConnecting: {StateActive, StatePendingConsent, StateReauthRequired, StateAdminConsentRequired, StateDisconnecting},
	// Tokens work; the duties of duties.go run.
	StateActive: {StateReauthRequired, StateDisconnecting},
	// The tokens died; every duty waits at its cursor for a new consent.
	StateReauthRequired: {StateConnecting, StateAdminConsentRequired, StateDisconnecting},
	// The tenant must approve the app first; the next sign-in (after the
	// admin consent) connects.
	StateAdminConsentRequired: {StateConnecting, StateDisconnecting},
	// The saga runs (saga.go); it always finishes.
	StateDisconnecting: {StateDisconnected},
	StateDisconnected:  nil,
}

// States lists the states in the order a connection usually meets them.
var States = []string{StatePendingConsent, StateAdminConsentRequired, StateConnecting, StateActive, StateReauthRequired, StateDisconnecting, StateDisconnected}

// CanMove says whether a connection may go from one state to another.
func CanMove(from, to string) bool { return canMove(transitions, from, to) }

func canMove(table map[string][]string, from, to string) bool {
	if from == to {
		return from != StateDisconnected
	}
	return slices.Contains(table[from], to)
}

// transitionEvents are the events the app is told when a connection enters
// a state.
var transitionEvents = map[string]string{
	StateActive:               "connection.active",
	StateReauthRequired:       "connection.reauth_required",
	StateAdminConsentRequired: "connection.admin_consent_required",
	StateDisconnected:         "connection.disconnected",
}

// ReasonAdminConsentRequired is the reason a sign-in refused because the
// tenant requires an administrator's approval (identity's reason of the
// same name), which moves a connection to StateAdminConsentRequired.
const ReasonAdminConsentRequired = "admin_consent_required"

// waitingForConsent says whether a connection in a state waits for a
// sign-in (and takes a consent).
func waitingForConsent(state string) bool {
	return state == StatePendingConsent || state == StateReauthRequired || state == StateAdminConsentRequired
}

// refusedState is refusedTo for a running connection: runs that met a
// refusal for admin consent before admin_consent_required existed kept
// their state with the reason, and replay so (versions.go).
func (c *connection) refusedState(ctx workflow.Context, from, reason string) string {
	to := refusedTo(from, reason)
	if to == from || !c.atOnce && workflow.GetVersion(ctx, "admin-consent-state", workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return from
	}
	return to
}

// refusedTo is the state a sign-in refused for a reason leaves a
// connection in, coming from a state (the one it waited in, or where a
// failed exchange goes back to): a tenant that requires admin consent
// says so in the state; other reasons keep the state.
func refusedTo(from, reason string) string {
	if reason == ReasonAdminConsentRequired && CanMove(from, StateAdminConsentRequired) {
		return StateAdminConsentRequired
	}
	return from
}

// moveTo is the one function that changes a connection's state. It refuses
// a change the table does not allow (and says so in the log), records the
// reason, queues the state's event for the registry, and upserts the
// search attributes. It reports whether the change was made. A final state
// is written to the registry before it is taken, so an app that sees it in
// the status may connect the same mailbox again at once.
func (c *connection) moveTo(ctx workflow.Context, to, reason, text string, data map[string]any) bool {
	from := c.s.State
	table, events := transitions, transitionEvents
	if c.isMailbox() {
		table, events = mailboxTransitions, mailboxEvents
	}
	if !canMove(table, from, to) {
		c.log.Info("state change refused", "from", from, "to", to, "reason", reason)
		return false
	}
	if from != to {
		c.log.Info("connection state", "from", from, "to", to, "reason", reason)
		c.s.Transitions++
		if typ, ok := events[to]; ok {
			if data == nil {
				data = map[string]any{}
			}
			if reason != "" {
				data["reason"], data["text"] = reason, text
			}
			c.s.Registry.Events = append(c.s.Registry.Events, EventRecord{
				ID: fmt.Sprintf("%s:%s:%d", c.s.ID, to, c.s.Transitions), Type: typ, Data: data})
		}
		if len(table[to]) == 0 {
			for !c.writeRegistry(ctx, to) {
				// bookkeeping retries until done; only a cancelled context
				// ends it, and the final state is never taken unwritten.
				if ctx.Err() != nil {
					return false
				}
			}
		}
		c.s.State, c.s.Since = to, workflow.Now(ctx)
	}
	c.s.Reason, c.s.ReasonText = reason, text
	if err := c.upsertSearchAttributes(ctx); err != nil {
		c.log.Error("upsert search attributes", "err", err)
	}
	if from != to && to == StateReauthRequired && !c.isMailbox() {
		// Every attached mailbox waits at its cursor.
		c.tellMailboxes(ctx, CredentialSignal{Dead: true, Reason: reason, Text: text})
	}
	return true
}

// still says whether the connection is in the state an activity started
// from; a result that finds it moved on is dropped.
func (c *connection) still(state string) bool {
	if c.s.State != state {
		c.log.Info("result dropped: the connection moved on meanwhile", "from", state, "now", c.s.State)
		return false
	}
	return true
}

// registryState is the state the registry should hold: the transient
// connecting state is not written.
func (c *connection) registryState() string {
	if c.s.State == StateConnecting {
		return c.s.Registry.State
	}
	return c.s.State
}

// registryBehind says whether the registry row lacks something the
// workflow knows.
func (c *connection) registryBehind() bool {
	r := c.s.Registry
	return r.State != c.registryState() || len(r.Events) > 0 || r.Settings == nil || !settingsEqual(*r.Settings, c.s.Settings) ||
		c.isMailbox() && r.SyncMode != c.s.Sync.Mode
}

// syncRegistry writes what the registry row lacks (the state, settings
// changed by an update, queued events) in one transaction. The main loop is
// its only caller (and moveTo, for a final state, from the loop), so writes
// happen in order.
func (c *connection) syncRegistry(ctx workflow.Context) {
	if c.registryBehind() {
		c.writeRegistry(ctx, c.registryState())
	}
}

// writeRegistry writes a state, the settings if they changed and the
// queued events; it reports whether the write was done. Settings an update
// changed are written within settingsWrite's bounds: when the registry
// does not take them, the workflow goes back to the settings the registry
// holds (and the update answers so), so the two never disagree.
func (c *connection) writeRegistry(ctx workflow.Context, state string) bool {
	r := &c.s.Registry
	in := RecordStateInput{ConnectionID: c.s.ID, State: state, Mode: c.s.Mode, Events: r.Events}
	if c.isMailbox() {
		in = RecordStateInput{ConnectionID: c.s.ConnectionID, MailboxID: c.s.ID, State: state, Reason: c.s.Reason, Events: r.Events,
			SyncMode: c.s.Sync.Mode, PollReason: c.s.Sync.PollReason}
	}
	opts, changed := recordState.opts, false
	if r.Settings == nil || !settingsEqual(*r.Settings, c.s.Settings) {
		s := c.s.Settings
		in.Settings = &s
		if changed = r.Settings != nil; changed {
			opts = settingsWrite
		}
	}
	if err := c.recordState(ctx, opts, in); err != nil {
		c.log.Error("record state", "err", err)
		if changed {
			c.s.Settings, c.settingsErr = *r.Settings, err
		}
		return false
	}
	r.State, r.Events = state, nil
	if c.isMailbox() {
		r.SyncMode = in.SyncMode
	}
	if in.Settings != nil {
		r.Settings = in.Settings
	}
	return true
}

func settingsEqual(a, b Settings) bool {
	return a.BackfillDays == b.BackfillDays && slices.Equal(a.Folders, b.Folders) && a.Bodies == b.Bodies &&
		a.Features == b.Features && a.Retention == b.Retention && a.PollMinutes == b.PollMinutes &&
		a.ContactFilter == b.ContactFilter && a.KeepDays == b.KeepDays
}
