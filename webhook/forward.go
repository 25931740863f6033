package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"golang.org/x/sync/errgroup"

	"github.com/outlookd/outlookd/store"
	"github.com/outlookd/outlookd/workflows"
)

// Signaller is the part of the Temporal client the forwarder uses.
type Signaller interface {
	SignalWorkflow(ctx context.Context, workflowID, runID, signalName string, arg any) error
}

var _ Signaller = client.Client(nil)

// Forwarder turns the notification inbox into signals: all the change
// notifications waiting for a connection become one changes signal, each
// lifecycle event its own signal. An entry is deleted only once Temporal
// accepted its signal (or the connection's workflow has ended); while
// Temporal is down, entries wait and are retried.
type Forwarder struct {
	Store    *store.Store
	Temporal Signaller
	Log      *slog.Logger
	// Batch is how many entries one pass takes (default 5000).
	Batch int

	once sync.Once
	wake chan struct{}

	// Signals counts signals sent; Entries the inbox entries handed over
	// (their signal accepted, or their workflow gone). An entry counts
	// once per pass that handed it over: one whose pass could not delete
	// it (the transaction failed after the signal) is counted again when
	// it is forwarded again.
	Signals, Entries atomic.Int64
}

func (f *Forwarder) init() { f.once.Do(func() { f.wake = make(chan struct{}, 1) }) }

// Poke wakes the forwarder: entries were committed.
func (f *Forwarder) Poke() {
	f.init()
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// Run forwards until the context ends.
func (f *Forwarder) Run(ctx context.Context) error {
	f.init()
	batch := f.Batch
	if batch == 0 {
		batch = 5000
	}
	for {
		failed := false
		n, err := f.Store.ForwardInbox(ctx, batch, func(entries []store.InboxEntry) []int64 {
			done := f.forward(ctx, entries)
			failed = len(done) < len(entries)
			return done
		})
		if err != nil && ctx.Err() == nil && f.Log != nil {
			f.Log.Warn("forwarding notifications failed", "err", err)
		}
		if err == nil && !failed && n == batch {
			continue // more are waiting
		}
		wait := time.Second
		if err != nil || failed {
			wait = 2 * time.Second // back off from a failing dependency
		}
		select {
		case <-ctx.Done():
			return nil
		case <-f.wake:
			if err != nil || failed {
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(wait):
				}
			}
		case <-time.After(wait):
		}
	}
}

// Once forwards what is waiting now, in one pass (for tests and tools).
func (f *Forwarder) Once(ctx context.Context) (int, error) {
	return f.Store.ForwardInbox(ctx, 100000, func(entries []store.InboxEntry) []int64 { return f.forward(ctx, entries) })
}

// signal is one signal to send: to a connection's workflow, or to its
// mailbox's when mailbox is set.
type signal struct {
	connection, mailbox, name, payload string
}

// workflowID is the workflow the signal goes to.
func (k signal) workflowID() string {
	if k.mailbox != "" {
		return workflows.MailboxWorkflowID(k.mailbox)
	}
	return workflows.ConnectionWorkflowID(k.connection)
}

// forward sends one signal per workflow (a connection's or a mailbox's) and
// distinct lifecycle event,
// 16 at a time, and returns the entries that are done.
func (f *Forwarder) forward(ctx context.Context, entries []store.InboxEntry) []int64 {
	groups := map[signal][]int64{}
	var order []signal
	for _, e := range entries {
		k := signal{connection: e.ConnectionID, mailbox: e.MailboxID, name: e.Signal, payload: string(e.Payload)}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], e.Seq)
	}
	var mu sync.Mutex
	var done []int64
	var g errgroup.Group
	g.SetLimit(16)
	for _, k := range order {
		g.Go(func() error {
			if f.send(ctx, k) {
				mu.Lock()
				done = append(done, groups[k]...)
				mu.Unlock()
			}
			return nil
		})
	}
	_ = g.Wait()
	f.Entries.Add(int64(len(done)))
	return done
}

func (f *Forwarder) send(ctx context.Context, k signal) bool {
	var arg any
	switch {
	case k.name == workflows.SignalLifecycle:
		var l workflows.LifecycleSignal
		if err := json.Unmarshal([]byte(k.payload), &l); err != nil {
			return true // unreadable: nothing to hand over
		}
		arg = l
	case k.payload != "":
		var c workflows.ChangesSignal
		_ = json.Unmarshal([]byte(k.payload), &c) // unreadable: a plain round
		arg = c
	}
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	err := f.Temporal.SignalWorkflow(sctx, k.workflowID(), "", k.name, arg)
	var gone *serviceerror.NotFound
	switch {
	case err == nil:
		f.Signals.Add(1)
		return true
	case errors.As(err, &gone):
		return true // the connection (or mailbox) has ended; nothing to sync
	}
	if f.Log != nil {
		f.Log.Warn("signal failed; the notification waits", "connection", k.connection, "mailbox", k.mailbox, "signal", k.name, "err", err)
	}
	return false
}
