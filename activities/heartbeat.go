package activities

import (
	"context"
	"sync/atomic"
	"time"

	"go.temporal.io/sdk/activity"
)

// heartbeat keeps a running activity's heartbeat going on its own, every
// third of its heartbeat timeout, with the progress last recorded. The
// timeout then says only whether the worker is alive, not how long a page
// of Graph (throttled, or waiting for a place in the mailbox's budget) or a
// Postgres commit takes, so it can be short and a lost worker costs
// seconds.
type heartbeat struct {
	ctx     context.Context
	details atomic.Pointer[any]
	done    chan struct{}
}

// startHeartbeat starts heartbeating until stop is called or ctx ends.
// Activities run without a heartbeat timeout get no goroutine.
func startHeartbeat(ctx context.Context) (h *heartbeat, stop func()) {
	h = &heartbeat{ctx: ctx, done: make(chan struct{})}
	every := activity.GetInfo(ctx).HeartbeatTimeout / 3
	if every <= 0 {
		return h, func() {}
	}
	every = max(every, 100*time.Millisecond)
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-h.done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				if d := h.details.Load(); d != nil {
					activity.RecordHeartbeat(ctx, *d)
				} else {
					activity.RecordHeartbeat(ctx)
				}
			}
		}
	}()
	return h, func() { close(h.done) }
}

// record heartbeats now with progress, which later heartbeats repeat.
func (h *heartbeat) record(details any) {
	h.details.Store(&details)
	activity.RecordHeartbeat(h.ctx, details)
}
