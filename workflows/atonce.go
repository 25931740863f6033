package workflows

import (
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// versions asks, once at the start of a run, whether the run takes every
// change listed under connection-versions-at-once (versions.go) at once.
// A run started since records that one marker, and the one
// TemporalChangeVersion upsert the SDK adds to it, instead of one of each
// per change; runs started before replay as they ran and ask for each
// change where they did.
func (c *connection) versions(ctx workflow.Context) {
	c.atOnce = workflow.GetVersion(ctx, "connection-versions-at-once", workflow.DefaultVersion, 1) == 1
}

// recordState writes the registry row's state, settings and events. A run
// since connection-versions-at-once writes it as a local activity, inside
// the workflow task: a trip through the server's activity queue and a
// workflow task of its own saved on every state change. Runs before used
// an activity. opts bound it either way (settingsWrite for an update's
// settings).
func (c *connection) recordState(ctx workflow.Context, opts workflow.ActivityOptions, in RecordStateInput) error {
	return book(ctx, c.atOnce, recordState.with(opts), in)
}

// recordEvent writes an event for the app, as recordState writes a state.
func (c *connection) recordEvent(ctx workflow.Context, in RecordEventInput) error {
	return book(ctx, c.atOnce, recordEvent, in)
}

// book runs a registry write as a local activity (local) or an activity,
// with the activity's timeouts and retries either way.
func book[I any](ctx workflow.Context, local bool, a call[I, None], in I) error {
	_, err := either(ctx, local, a, in)
	return err
}

// either runs an activity as a local activity (local) or an activity, with
// its timeouts and retries either way.
func either[I, O any](ctx workflow.Context, local bool, a call[I, O], in I) (O, error) {
	if local {
		return a.runLocal(ctx, localOptions(a.opts), in)
	}
	return a.run(ctx, in)
}

// localOptions is an activity's timeouts and retries for a local activity.
func localOptions(o workflow.ActivityOptions) workflow.LocalActivityOptions {
	return workflow.LocalActivityOptions{
		ScheduleToCloseTimeout: o.ScheduleToCloseTimeout,
		StartToCloseTimeout:    o.StartToCloseTimeout,
		RetryPolicy:            o.RetryPolicy,
	}
}

// keyword is a keyword search attribute and the value it should have.
type keyword struct {
	key temporal.SearchAttributeKeyKeyword
	val string
}

// searchAttrs is the search attributes of a connection's or a mailbox's
// workflow: its connection, state and kind always; its tenant, address and
// sync mode once known.
func searchAttrs(connectionID, state, mode, tenantID, mailbox, syncMode string) []keyword {
	kws := []keyword{{SAConnectionID, connectionID}, {SAConnectionState, state}, {SAConnectionMode, mode}}
	for _, kw := range []keyword{{SATenantID, tenantID}, {SAMailbox, mailbox}, {SASyncMode, syncMode}} {
		if kw.val != "" {
			kws = append(kws, kw)
		}
	}
	return kws
}

// changedAttrs is the updates that give the workflow want: with onlyChanged,
// only those whose value the workflow does not have already (its
// attributes as started, carried over from its run before, or upserted
// since, all deterministic on replay); otherwise all of them.
func changedAttrs(ctx workflow.Context, want []keyword, onlyChanged bool) []temporal.SearchAttributeUpdate {
	have := workflow.GetTypedSearchAttributes(ctx)
	var updates []temporal.SearchAttributeUpdate
	for _, kw := range want {
		if onlyChanged {
			if v, ok := have.GetKeyword(kw.key); ok && v == kw.val {
				continue
			}
		}
		updates = append(updates, kw.key.ValueSet(kw.val))
	}
	return updates
}

// StartAttributes is the search attributes a connection's workflow is
// started with, so that its first task has none to set (and the Temporal
// UI finds it by them from its start).
func StartAttributes(connectionID, mode, state, tenantID, mailbox string) temporal.SearchAttributes {
	return typed(searchAttrs(connectionID, state, mode, tenantID, mailbox, ""))
}

// MailboxStartAttributes is the search attributes a mailbox's workflow is
// started with, as it sets them itself.
func MailboxStartAttributes(in MailboxInput) temporal.SearchAttributes {
	mode := in.Mode
	if mode == "" {
		mode = ModeServiceAccount
	}
	return typed(searchAttrs(in.ConnectionID, StateActive, mode, in.TenantID, in.Address, ""))
}

func typed(kws []keyword) temporal.SearchAttributes {
	updates := make([]temporal.SearchAttributeUpdate, len(kws))
	for i, kw := range kws {
		updates[i] = kw.key.ValueSet(kw.val)
	}
	return temporal.NewSearchAttributes(updates...)
}
