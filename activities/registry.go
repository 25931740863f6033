package activities

import (
	"context"

	"github.com/outlookd/outlookd/store"
	"github.com/outlookd/outlookd/workflows"
)

// RecordState mirrors a connection's state into the registry.
func (a *Activities) RecordState(ctx context.Context, in workflows.RecordStateInput) error {
	return a.Store.UpdateConnection(ctx, in.ConnectionID, store.ConnectionUpdate{State: in.State, Mode: in.Mode})
}
