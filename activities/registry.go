package activities

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/outlookd/outlookd/store"
	"github.com/outlookd/outlookd/workflows"
)

// RecordState writes a connection's state, its settings when they changed,
// and the events of its state changes into the registry, in one
// transaction. The connection workflow is its only caller: the registry
// row's state and settings have one writer.
func (a *Activities) RecordState(ctx context.Context, in workflows.RecordStateInput) error {
	var settings []byte
	if in.Settings != nil {
		raw, err := json.Marshal(in.Settings)
		if err != nil {
			return fmt.Errorf("activities: settings of %s: %w", in.ConnectionID, err)
		}
		settings = raw
	}
	events := make([]store.Event, 0, len(in.Events))
	for _, e := range in.Events {
		events = append(events, store.Event{ID: e.ID, Type: e.Type, Data: e.Data})
	}
	if in.MailboxID != "" {
		return a.Store.UpdateMailbox(ctx, in.MailboxID, store.MailboxUpdate{State: in.State, Reason: in.Reason, SyncMode: in.SyncMode,
			PollReason: &in.PollReason, Settings: settings, Events: events})
	}
	return a.Store.UpdateConnection(ctx, in.ConnectionID, store.ConnectionUpdate{State: in.State, Mode: in.Mode, Settings: settings, Events: events})
}

// storeKey is the key of the mail an activity reads or writes: the
// attached mailbox's, or the delegated connection's own.
func storeKey(connectionID, mailboxID string) string {
	if mailboxID != "" {
		return mailboxID
	}
	return connectionID
}
