package cache

import (
	"context"
	"math"
	"time"

	"github.com/maypok86/otter/v2"
)

// MemoryOptions configures [NewMemory].
type MemoryOptions struct {
	MaxEntries int              // size bound (required > 0)
	Now        func() time.Time // nil: time.Now. Expiry is decided by this clock at Get time.
}

// Memory is an in-process [Store] bounded by entry count, backed by otter (W-TinyLFU eviction).
// It is the whole cache of a single replica without Redis, and the first tier in front of Redis
// otherwise.
//
// Values are stored and returned as given, without copying (see [Store] for what that asks of
// the caller). Memory never fails: its methods return a nil error and ignore ctx, since no call
// blocks.
type Memory[V any] struct {
	c   *otter.Cache[string, memoryEntry[V]]
	now func() time.Time
}

// memoryEntry carries its own deadline because otter's expiry is not the authority: otter runs
// on its own clock (monotonic since the cache started, by default), and a Store's contract is
// stated in the injected clock, so Get compares against that.
type memoryEntry[V any] struct {
	v V
	// expiresAt is the deadline in Unix nanoseconds by Memory.now; the entry is live while
	// now < expiresAt.
	expiresAt int64
	// ttl is handed to otter so that it reclaims the entry's memory at about the same time.
	ttl time.Duration
}

// NewMemory returns an empty Memory store. It panics if opts.MaxEntries <= 0: an unbounded cache
// keyed by attacker-supplied tokens would grow without limit, so a missing bound is a wiring bug.
func NewMemory[V any](opts MemoryOptions) *Memory[V] {
	if opts.MaxEntries <= 0 {
		panic("cache: MemoryOptions.MaxEntries must be > 0")
	}
	if opts.Now == nil {
		// otter's default clock reads the same time as time.Now, more cheaply, and stops its
		// ticker when the cache is collected.
		return newMemory[V](opts.MaxEntries, time.Now, nil)
	}
	// With an injected clock (a fake one in tests), otter must run on it too: on the real clock
	// it would reclaim entries that the injected clock still considers live.
	return newMemory[V](opts.MaxEntries, opts.Now, nowClock(opts.Now))
}

// newMemory lets tests give otter a clock other than now, to show that Get does not rely on
// otter's expiry.
func newMemory[V any](maxEntries int, now func() time.Time, clock otter.Clock) *Memory[V] {
	c := otter.Must(&otter.Options[string, memoryEntry[V]]{
		MaximumSize: maxEntries,
		// Writing, not accessing: a read must not extend a verified token's lifetime.
		ExpiryCalculator: otter.ExpiryWritingFunc(func(e otter.Entry[string, memoryEntry[V]]) time.Duration {
			return e.Value.ttl
		}),
		Clock: clock,
	})
	return &Memory[V]{c: c, now: now}
}

// Get implements [Store]. The hit path does not allocate.
func (m *Memory[V]) Get(_ context.Context, key string) (V, bool, error) {
	e, ok := m.c.GetIfPresent(key)
	if !ok || m.now().UnixNano() >= e.expiresAt {
		// An entry expired by m.now but not yet by otter is left for otter to reclaim:
		// invalidating it here could remove a fresh value a concurrent Set just stored.
		var zero V
		return zero, false, nil
	}
	return e.v, true, nil
}

// Set implements [Store].
func (m *Memory[V]) Set(_ context.Context, key string, v V, ttl time.Duration) error {
	if ttl <= 0 {
		m.c.Invalidate(key)
		return nil
	}
	now := m.now().UnixNano()
	expiresAt := now + int64(ttl)
	if expiresAt < now { // overflow: a TTL beyond year 2262 means "until evicted"
		expiresAt = math.MaxInt64
	}
	m.c.Set(key, memoryEntry[V]{v: v, expiresAt: expiresAt, ttl: ttl})
	return nil
}

// Delete implements [Store].
func (m *Memory[V]) Delete(_ context.Context, key string) error {
	m.c.Invalidate(key)
	return nil
}

// Len returns the approximate number of entries held, including expired ones not yet reclaimed.
// otter applies evictions in batches, so Len may exceed MaxEntries briefly.
func (m *Memory[V]) Len() int {
	return m.c.EstimatedSize()
}

// nowClock adapts an injected clock to otter.Clock.
type nowClock func() time.Time

func (f nowClock) NowNano() int64 { return f().UnixNano() }

// Tick drives otter's periodic clean-up in real time whatever the injected clock says: a fake
// clock does not tick, and reclaiming memory is not part of the behaviour tests observe.
func (f nowClock) Tick(d time.Duration) <-chan time.Time {
	// Since Go 1.23 an unreferenced time.Tick ticker is garbage-collected, so it goes away with
	// the cache and its clean-up goroutine.
	return time.Tick(d)
}
