package cache

import (
	"log/slog"
	"sync/atomic"
	"time"
)

// Circuit breaker states.
const (
	circuitClosed   = iota // calls go through
	circuitOpen            // calls refused until openUntil
	circuitHalfOpen        // one probe call in flight; others refused
)

// circuit is a consecutive-failure circuit breaker. The closed path, every call while Redis is
// healthy, is two atomic loads and no writes; only transitions write, and compare-and-swap makes
// each happen (and be logged and reported) once.
type circuit struct {
	threshold int32
	cooldown  time.Duration
	now       func() time.Time
	obs       Observer
	log       *slog.Logger

	state     atomic.Int32
	failures  atomic.Int32 // consecutive failures while closed
	openUntil atomic.Int64 // Unix nanoseconds by now; read while open
}

// allow reports whether a call may go ahead, and whether it is the half-open probe (whose
// outcome decides the state, so it must be reported to success, failure or neutral).
func (c *circuit) allow() (probe, ok bool) {
	switch c.state.Load() {
	case circuitClosed:
		return false, true
	case circuitOpen:
		if c.now().UnixNano() < c.openUntil.Load() {
			return false, false
		}
		// Of the callers that find the cooldown over, exactly one wins the probe.
		if c.state.CompareAndSwap(circuitOpen, circuitHalfOpen) {
			return true, true
		}
	}
	return false, false
}

func (c *circuit) success(probe bool) {
	if probe {
		c.failures.Store(0)
		c.state.Store(circuitClosed)
		c.obs.CircuitOpen(false)
		c.log.Info("redis circuit closed: Redis answers again")
		return
	}
	if c.failures.Load() != 0 { // load first: no cache-line write per healthy call
		c.failures.Store(0)
	}
}

func (c *circuit) failure(probe bool, err error) {
	if probe {
		c.openUntil.Store(c.now().Add(c.cooldown).UnixNano())
		c.state.Store(circuitOpen)
		c.log.Debug("redis circuit probe failed; staying open", "cooldown", c.cooldown, "err", err)
		return
	}
	n := c.failures.Add(1)
	if n < c.threshold || c.state.Load() != circuitClosed {
		return
	}
	// openUntil first, so that whoever sees the circuit open also sees its deadline.
	c.openUntil.Store(c.now().Add(c.cooldown).UnixNano())
	if c.state.CompareAndSwap(circuitClosed, circuitOpen) {
		c.obs.CircuitOpen(true)
		c.log.Warn("redis circuit opened: cache calls skip Redis",
			"consecutive_failures", n, "cooldown", c.cooldown, "err", err)
	}
}

// neutral ends a probe that says nothing about Redis (its caller gave up): the circuit stays
// open with its cooldown over, so the next call probes.
func (c *circuit) neutral(probe bool) {
	if probe {
		c.state.Store(circuitOpen)
	}
}
