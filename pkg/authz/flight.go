package authz

import (
	"fmt"
	"runtime"
	"sync"

	"github.com/extauthz/extauthz/pkg/cache"
	"github.com/extauthz/extauthz/pkg/token"
	"github.com/extauthz/extauthz/pkg/verdict"
)

// flight makes concurrent misses for one token share one verification (a single flight),
// run apart from any caller, so that a caller who gives up leaves it running for the others.
//
// It does what singleflight.Group.DoChan did here, with two differences that the full
// verification path measures:
//   - the verification runs on one of a few long-lived worker goroutines when one is idle,
//     not on a new goroutine per miss, whose stack grew by copying during every verification
//     (5 to 25 µs of CPU per miss in BenchmarkCheckFullVerification); a new goroutine is
//     started only when every worker is busy, so a slow issuer never queues a miss behind
//     another;
//   - a panic in a verification becomes that verification's denial (503), not a crash.
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

// do returns the call verifying key: the one under way, or a new one running fn.
func (f *flight) do(key cache.Key, fn func() verdict.Verdict) *flightCall {
	f.mu.Lock()
	if c, ok := f.calls[key]; ok {
		f.mu.Unlock()
		return c
	}
	if f.calls == nil {
		f.calls = make(map[cache.Key]*flightCall)
	}
	c := &flightCall{done: make(chan struct{})}
	f.calls[key] = c
	f.mu.Unlock()

	run := func() {
		defer func() {
			if r := recover(); r != nil {
				// Never fail open: whatever broke, this token is not allowed now (and a
				// transient error is never cached).
				c.val = verdict.Verdict{Err: fmt.Errorf("%w: verification panicked: %v", token.ErrUnavailable, r)}
			}
			f.mu.Lock()
			delete(f.calls, key)
			f.mu.Unlock()
			close(c.done)
		}()
		c.val = fn()
	}
	flightWorkersOnce.Do(startFlightWorkers)
	select {
	case flightWork <- run:
	default:
		go run()
	}
	return c
}
