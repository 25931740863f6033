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

// stickyTimeout is how long a workflow task waits for this worker, which
// holds its workflow in memory, before it goes to any worker (the SDK's
// default is 5 s). Under load (100 mailboxes sending at their rate) a third
// of the sends' tasks waited longer than 5 s: each then timed out, went to
// the task queue behind every other task and was replayed from its whole
// history, more work for a server that was already behind. A worker that
// stops polling loses its tasks to the task queue after 10 s anyway (the
// server's sticky poller window); this bounds only the tasks handed to it
// just before it died.
const stickyTimeout = 30 * time.Second

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
		// connections has many small tasks waiting at once. Each poll waits
		// for the server's answer, so on a busy server the pollers, not the
		// worker's slots, bound how many tasks a second the worker takes:
		// with 8 of each, 100 mailboxes sending at their rate left each
		// send's SubmitSend 46 s (p50) in the task queue while the server
		// spent itself starting new sends; with 32, 1.2 s.
		w := sdkworker.New(c, opts.TaskQueue, sdkworker.Options{
			MaxConcurrentWorkflowTaskPollers: 32,
			MaxConcurrentActivityTaskPollers: 32,
			StickyScheduleToStartTimeout:     stickyTimeout,
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
