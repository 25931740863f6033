package graphsim

import (
	"strconv"
	"sync"
)

// counters count requests per endpoint class and status, and other events
// tests and benchmarks read through the control API.
type counters struct {
	mu     sync.Mutex
	counts map[string]int64
}

func newCounters() *counters { return &counters{counts: map[string]int64{}} }

func (c *counters) add(key string, n int64) {
	c.mu.Lock()
	c.counts[key] += n
	c.mu.Unlock()
}

func (c *counters) request(class string, status int) {
	c.add("requests."+class+"."+strconv.Itoa(status), 1)
}
func (c *counters) fault(class, kind string) { c.add("faults."+class+"."+kind, 1) }
func (c *counters) throttled(class string)   { c.add("throttled."+class, 1) }
func (c *counters) tokenIssued(grant string) { c.add("tokens.issued."+grant, 1) }
func (c *counters) tokenError(err string, code int) {
	c.add("tokens.error."+err+"."+strconv.Itoa(code), 1)
}
func (c *counters) authorizeError(err string, code int) {
	c.add("authorize.error."+err+"."+strconv.Itoa(code), 1)
}
func (c *counters) codeIssued()   { c.add("authorize.codes", 1) }
func (c *counters) adminConsent() { c.add("adminconsent.granted", 1) }

func (c *counters) snapshot() map[string]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int64, len(c.counts))
	for k, v := range c.counts {
		out[k] = v
	}
	return out
}

func (c *counters) reset() {
	c.mu.Lock()
	c.counts = map[string]int64{}
	c.mu.Unlock()
}
