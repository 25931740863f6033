package graphsim

import (
	"sync"
	"time"
)

// Clock is the simulator's notion of now: the real time plus an offset that
// the control API can move forward, so token and delta-token ages can be
// tested without waiting.
type Clock struct {
	mu     sync.Mutex
	offset time.Duration
	now    func() time.Time
}

// NewClock returns a clock at real time.
func NewClock() *Clock { return &Clock{now: time.Now} }

// Now returns the simulated time, in UTC.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now().Add(c.offset).UTC()
}

// Advance moves the clock forward by d (never backward).
func (c *Clock) Advance(d time.Duration) {
	if d <= 0 {
		return
	}
	c.mu.Lock()
	c.offset += d
	c.mu.Unlock()
}
