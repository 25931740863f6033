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
	u := store.ConnectionUpdate{State: in.State, Mode: in.Mode}
	if in.Settings != nil {
		raw, err := json.Marshal(in.Settings)
		if err != nil {
			return fmt.Errorf("activities: settings of %s: %w", in.ConnectionID, err)
		}
		u.Settings = raw
	}
	for _, e := range in.Events {
		u.Events = append(u.Events, store.Event{ID: e.ID, Type: e.Type, Data: e.Data})
	}
	return a.Store.UpdateConnection(ctx, in.ConnectionID, u)
}
