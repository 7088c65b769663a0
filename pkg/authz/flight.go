package authz

import (
	"fmt"
	"runtime"
	"sync"

	"github.com/extauthz/extauthz/pkg/cache"
	"github.com/extauthz/extauthz/pkg/token"
	"github.com/extauthz/extauthz/pkg/verdict"
)

// flight makes concurrent misses for one token share one verification (a single flight).
//
// The first caller for a token leads its call and must finish it, in one of two ways:
//   - on its own goroutine (guarded, then finish), when the verification needs nothing but
//     CPU (the issuer's key is held: token.HeldVerifier). A few tens of microseconds of
//     signature checking, with no hand-off to another goroutine and no deadline to arm,
//     which the full verification path measures (docs/benchmarks.md);
//   - start: apart from any caller, when it may wait on the network (a key set to fetch, an
//     introspection call), so that a caller who gives up leaves it running for the others.
//     It runs on one of a few long-lived worker goroutines when one is idle, not on a new
//     goroutine per miss, whose stack grew by copying during every verification; a new
//     goroutine is started only when every worker is busy, so a slow issuer never queues a
//     miss behind another.
//
// Either way, a panic in a verification becomes that verification's denial (503), not a
// crash, and every caller waiting on the call gets it.
type flight struct {
	mu    sync.Mutex
	calls map[cache.Key]*flightCall
}

// flightCall is one verification under way; done is closed once val is set.
type flightCall struct {
	done chan struct{}
	val  verdict.Verdict
}

// flightWork hands verifications to idle workers. Unbuffered: a send succeeds only when a
// worker is waiting for one. The workers are shared by every engine of the process (a
// reload builds a new engine; the workers stay).
var (
	flightWork        = make(chan func())
	flightWorkersOnce sync.Once
)

// startFlightWorkers starts the shared workers: two per CPU, each verification on them being
// CPU-bound once the issuer's keys are held.
func startFlightWorkers() {
	for range 2 * runtime.GOMAXPROCS(0) {
		go func() {
			for fn := range flightWork {
				fn()
			}
		}()
	}
}

// join returns the call verifying key: the one under way, or a new one that the caller leads
// (lead true) and must finish with finish or start.
func (f *flight) join(key cache.Key) (c *flightCall, lead bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c, ok := f.calls[key]; ok {
		return c, false
	}
	if f.calls == nil {
		f.calls = make(map[cache.Key]*flightCall)
	}
	c = &flightCall{done: make(chan struct{})}
	f.calls[key] = c
	return c, true
}

// finish ends the call c for key with v, and wakes its waiters.
func (f *flight) finish(key cache.Key, c *flightCall, v verdict.Verdict) {
	c.val = v
	f.mu.Lock()
	delete(f.calls, key)
	f.mu.Unlock()
	close(c.done)
}

// guarded returns fn's verdict, or a denial if fn panics.
func guarded(fn func() verdict.Verdict) (v verdict.Verdict) {
	defer func() {
		if r := recover(); r != nil {
			// Never fail open: whatever broke, this token is not allowed now (and a
			// transient error is never cached).
			v = verdict.Verdict{Err: fmt.Errorf("%w: verification panicked: %v", token.ErrUnavailable, r)}
		}
	}()
	return fn()
}

// start finishes the call c for key, which the caller leads, with fn's verdict, computed apart
// from the caller: on an idle worker, or on a new goroutine if none is idle.
func (f *flight) start(key cache.Key, c *flightCall, fn func() verdict.Verdict) {
	run := func() { f.finish(key, c, guarded(fn)) }
	flightWorkersOnce.Do(startFlightWorkers)
	select {
	case flightWork <- run:
	default:
		go run()
	}
}
