// Package worker runs the Temporal worker that executes outlookd's workflows
// and activities on the outlookd task queue.
package worker

import (
	"context"
	"log/slog"
	"time"

	"go.temporal.io/sdk/client"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/outlookd/outlookd/activities"
	"github.com/outlookd/outlookd/workflows"
)

// Options configures the worker.
type Options struct {
	TaskQueue string
	Logger    *slog.Logger
	// CacheSize, when positive, is how many workflows the process keeps
	// in memory between their tasks (Temporal's sticky cache, shared by
	// every worker of the process; the SDK's default is 10,000). Zero keeps
	// the default.
	CacheSize int
	// Register adds the workflows and activities to the worker.
	Register func(r sdkworker.Registry)
	// Started, when set, is called once the worker polls its task queue.
	Started func()
}

// Run polls the task queue until ctx ends. While Temporal is unreachable it
// keeps trying to start, so a worker started before the server catches up by
// itself.
func Run(ctx context.Context, c client.Client, opts Options) error {
	if opts.CacheSize > 0 {
		sdkworker.SetStickyWorkflowCacheSize(opts.CacheSize)
	}
	backoff := time.Second
	for {
		// More pollers than the SDK's default of 2: a worker serving many
		// connections has many small tasks waiting at once.
		w := sdkworker.New(c, opts.TaskQueue, sdkworker.Options{
			MaxConcurrentWorkflowTaskPollers: 8,
			MaxConcurrentActivityTaskPollers: 8,
		})
		if opts.Register != nil {
			opts.Register(w)
		}
		err := w.Start()
		if err == nil {
			opts.Logger.Info("worker started", "task_queue", opts.TaskQueue)
			if opts.Started != nil {
				opts.Started()
			}
			<-ctx.Done()
			w.Stop()
			return nil
		}
		opts.Logger.Warn("worker could not start; retrying", "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 30*time.Second)
	}
}

// Register adds every outlookd workflow and the activities to a worker.
func Register(a *activities.Activities) func(r sdkworker.Registry) {
	return func(r sdkworker.Registry) {
		r.RegisterWorkflow(workflows.Connection)
		r.RegisterWorkflowWithOptions(workflows.Backfill, workflow.RegisterOptions{Name: workflows.BackfillWorkflowName})
		r.RegisterWorkflow(workflows.Mailbox)
		r.RegisterWorkflow(workflows.Send)
		r.RegisterActivity(a)
	}
}
