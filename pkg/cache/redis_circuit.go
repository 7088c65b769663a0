package cache

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
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
//
// It tells "Redis is down" from "this process is too busy to read Redis's answers in time". A
// failure that is an answer or a broken connection (refused, reset, an error reply) is Redis's
// doing, and threshold of them in a row open the circuit at once. A timeout is ambiguous: on a
// CPU-saturated box our own goroutine may simply not have been scheduled before its 25ms
// deadline, while Redis answered in microseconds. Opening the circuit then would turn the shared
// tier off exactly when the fleet is busiest. So when the run of failures that reaches the
// threshold ends in a timeout, the circuit stays closed and asks Redis directly, once, in the
// background, with a budget far above any scheduler delay (verifyTimeout): a PING answered
// means the timeouts were ours, and the count starts again; a PING that fails or times out too
// means Redis is down or hung, and the circuit opens. Calls carry on meanwhile, each still
// bounded by its own deadline, so a decision never waits for the check.
type circuit struct {
	threshold int32
	cooldown  time.Duration
	now       func() time.Time
	obs       Observer
	log       *slog.Logger
	// verify asks Redis whether it answers (a PING); nil: timeouts count like other failures.
	verify        func(context.Context) error
	verifyTimeout time.Duration

	state     atomic.Int32
	failures  atomic.Int32 // consecutive failures while closed
	openUntil atomic.Int64 // Unix nanoseconds by now; read while open
	verifying atomic.Bool  // a verify is under way
	// excused counts the runs of timeouts that a verify showed were ours, not Redis's.
	excused atomic.Int64
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
	if c.verify != nil && isTimeout(err) {
		if c.verifying.CompareAndSwap(false, true) {
			go c.verifyTimeouts(n, err)
		}
		return
	}
	c.open(n, err)
}

// verifyTimeouts decides what a run of failures ending in a timeout means (see circuit).
func (c *circuit) verifyTimeouts(n int32, err error) {
	defer c.verifying.Store(false)
	ctx, cancel := context.WithTimeout(context.Background(), c.verifyTimeout)
	start := time.Now()
	verr := c.verify(ctx)
	cancel()
	if verr == nil {
		// Redis answers: the calls timed out on our side. Count afresh; if Redis really is
		// slower than the call budget (but not hung), each call still ends at its deadline.
		c.failures.Store(0)
		c.excused.Add(1)
		c.log.Debug("redis calls timed out but Redis answers a probe: not opening the circuit",
			"consecutive_failures", n, "probe_took", time.Since(start), "err", err)
		return
	}
	c.open(n, fmt.Errorf("%w; and Redis did not answer a probe within %v: %w", err, c.verifyTimeout, verr))
}

// isTimeout reports whether err is a call running out of time (its deadline, a socket timeout,
// or no pooled connection in time), as opposed to an answer or a broken connection.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, redis.ErrPoolTimeout) ||
		errors.As(err, &ne) && ne.Timeout()
}

// open opens a closed circuit after n consecutive failures, the last being err.
func (c *circuit) open(n int32, err error) {
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
