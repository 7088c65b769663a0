// Package refresh is the loop that keeps a fetched document fresh: the JWKS
// key sets of pkg/jwks and the authorization server metadata of pkg/metadata
// both run it. It fetches at once; after a success it waits as long as the
// fetch asked (a Cache-Control max-age, a configured interval), and while
// fetches fail it retries after a backoff that doubles from a start to a
// limit, without jitter, starting over from the start after the next success.
//
// The package knows nothing of what is fetched: the caller's Attempt starts
// a fetch (or joins one in progress) and reports its outcome.
package refresh

import (
	"context"
	"time"
)

// Backoff is the wait after consecutive failed attempts: Start after the
// first, doubling after each further one, never more than Limit. Both are
// positive; a Limit below Start caps every wait at Limit.
type Backoff struct {
	Start, Limit time.Duration
}

// Next is the wait after a failure, prev being the wait after the failure
// before it, or 0 if the attempt before succeeded or there was none.
func (b Backoff) Next(prev time.Duration) time.Duration {
	if prev <= 0 {
		return min(b.Start, b.Limit)
	}
	if prev > b.Limit/2 { // also keeps 2*prev from overflowing
		return b.Limit
	}
	return 2 * prev
}

// Attempt waits for the outcome of one fetch, which it starts or joins, and
// returns the wait before the next fetch after a success, or the fetch's
// error. When ctx ends first it returns at once; Run then stops, whatever
// it returned.
type Attempt func(ctx context.Context) (next time.Duration, err error)

// Wait pauses Run for d, or until ctx ends, when it returns ctx's error.
// Tests pass their own to step through the waits instead of sleeping.
type Wait func(ctx context.Context, d time.Duration) error

// Run calls attempt until ctx ends: the first time at once, then after the
// wait a success returned or, after a failure, after b's next backoff. It
// returns when ctx ends, without waiting for a fetch in progress. A nil wait
// is Sleep.
func Run(ctx context.Context, b Backoff, wait Wait, attempt Attempt) {
	if wait == nil {
		wait = Sleep
	}
	var backoff time.Duration
	for {
		d, err := attempt(ctx)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			backoff = b.Next(backoff)
			d = backoff
		} else {
			backoff = 0
		}
		if wait(ctx, d) != nil {
			return
		}
	}
}

// Sleep is the production Wait: a timer that ctx cuts short.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
