package cache

import (
	"sync/atomic"
	"time"
)

// FakeClock is a goroutine-safe manual clock for the tests of this package, internal and
// external. It lives in a _test file so that no build of the package carries it.
type FakeClock struct{ ns atomic.Int64 }

// NewFakeClock starts at a fixed instant, so that failures reproduce.
func NewFakeClock() *FakeClock {
	c := &FakeClock{}
	c.ns.Store(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).UnixNano())
	return c
}

func (c *FakeClock) Now() time.Time { return time.Unix(0, c.ns.Load()) }

func (c *FakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }
