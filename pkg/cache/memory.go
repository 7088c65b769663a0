package cache

import (
	"context"
	"math"
	"time"

	"github.com/maypok86/otter/v2"
)

// Tier names reported to an [Observer].
const (
	tierLocal = "local"
	tierRedis = "redis"
)

// MemoryOptions configures [NewMemory].
type MemoryOptions struct {
	MaxEntries int              // size bound (required > 0)
	Now        func() time.Time // nil: time.Now. Expiry is decided by this clock at Get time.
	// Observer is told of every entry evicted to keep within MaxEntries, as Evicted("local").
	// nil: not reported. Memory reports nothing else: see [Observer].
	Observer Observer
}

// Memory is an in-process [Store] bounded by entry count, backed by otter (W-TinyLFU eviction).
// It is the whole cache of a single replica without Redis, and the first tier in front of Redis
// otherwise.
//
// Values are stored and returned as given, without copying (see [Store] for what that asks of
// the caller). Memory never fails: its methods return a nil error and ignore ctx, since no call
// blocks.
//
// K is the key type: string for a general store (as [Store] requires), [Key] for the verdict
// cache, where a fixed-size key saves both memory and the allocation of a string per lookup.
type Memory[K comparable, V any] struct {
	c   *otter.Cache[K, memoryEntry[V]]
	now func() time.Time
}

// memoryEntry carries its own deadline because otter's expiry is not the authority: otter runs
// on its own clock (monotonic since the cache started, by default), and a Store's contract is
// stated in the injected clock, so Get compares against that.
type memoryEntry[V any] struct {
	v V
	// expiresAt is the deadline in Unix nanoseconds by Memory.now; the entry is live while
	// now < expiresAt. otter is handed the time left, so that it reclaims the entry's memory at
	// about the same moment.
	expiresAt int64
}

// NewMemory returns an empty Memory store. It panics if opts.MaxEntries <= 0: an unbounded cache
// keyed by attacker-supplied tokens would grow without limit, so a missing bound is a wiring bug.
func NewMemory[K comparable, V any](opts MemoryOptions) *Memory[K, V] {
	if opts.MaxEntries <= 0 {
		panic("cache: MemoryOptions.MaxEntries must be > 0")
	}
	if opts.Now == nil {
		// otter's default clock reads the same time as time.Now, more cheaply, and stops its
		// ticker when the cache is collected.
		return newMemory[K, V](opts.MaxEntries, time.Now, nil, opts.Observer)
	}
	// With an injected clock (a fake one in tests), otter must run on it too: on the real clock
	// it would reclaim entries that the injected clock still considers live.
	return newMemory[K, V](opts.MaxEntries, opts.Now, nowClock(opts.Now), opts.Observer)
}

// newMemory lets tests give otter a clock other than now, to show that Get does not rely on
// otter's expiry.
func newMemory[K comparable, V any](maxEntries int, now func() time.Time, clock otter.Clock, obs Observer) *Memory[K, V] {
	o := &otter.Options[K, memoryEntry[V]]{
		MaximumSize: maxEntries,
		// Writing, not accessing: a read must not extend a verified token's lifetime.
		ExpiryCalculator: otter.ExpiryWritingFunc(func(e otter.Entry[K, memoryEntry[V]]) time.Duration {
			return max(time.Duration(e.Value.expiresAt-now().UnixNano()), time.Nanosecond)
		}),
		Clock: clock,
	}
	if obs != nil {
		// OnAtomicDeletion rather than OnDeletion: the latter hands every deletion, replacements
		// by Set included, to a new goroutine, a cost on every write for an event that only
		// size evictions need. The atomic handler runs inline and returns at once for the rest.
		// otter reports an entry that was over the bound but already expired as an expiry, so
		// CauseOverflow counts only live entries dropped for room, the ones the bound cost us.
		o.OnAtomicDeletion = func(e otter.DeletionEvent[K, memoryEntry[V]]) {
			if e.Cause == otter.CauseOverflow {
				obs.Evicted(tierLocal)
			}
		}
	}
	return &Memory[K, V]{c: otter.Must(o), now: now}
}

// Get implements [Store]. The hit path does not allocate.
func (m *Memory[K, V]) Get(_ context.Context, key K) (V, bool, error) {
	e, ok := m.c.GetIfPresent(key)
	if !ok || m.now().UnixNano() >= e.expiresAt {
		// An entry expired by m.now but not yet by otter is left for otter to reclaim:
		// invalidating it here could remove a fresh value a concurrent Set just stored.
		var zero V
		return zero, false, nil
	}
	return e.v, true, nil
}

// GetExpiry is Get that also returns when the entry expires, by the injected clock, so that a
// caller copying the entry elsewhere can give the copy the remaining lifetime. A miss returns the
// zero time. Like Get, the hit path does not allocate.
func (m *Memory[K, V]) GetExpiry(_ context.Context, key K) (V, time.Time, bool, error) {
	e, ok := m.c.GetIfPresent(key)
	if !ok || m.now().UnixNano() >= e.expiresAt {
		var zero V
		return zero, time.Time{}, false, nil
	}
	return e.v, time.Unix(0, e.expiresAt), true, nil
}

// Set implements [Store].
func (m *Memory[K, V]) Set(_ context.Context, key K, v V, ttl time.Duration) error {
	if ttl <= 0 {
		m.c.Invalidate(key)
		return nil
	}
	m.c.Set(key, newMemoryEntry(v, ttl, m.now().UnixNano()))
	return nil
}

// Add stores v for ttl only if key holds no live entry, and reports whether it did. An entry
// that has expired by the injected clock counts as absent even if otter still holds it, as it
// does for Get. ttl <= 0 stores nothing, leaves any entry alone, and returns false.
//
// It runs as one otter Compute, so that of concurrent Adds of a key exactly one wins; a
// Get-then-Set would let two callers both see the key absent and both "win".
func (m *Memory[K, V]) Add(_ context.Context, key K, v V, ttl time.Duration) (bool, error) {
	if ttl <= 0 {
		return false, nil
	}
	now := m.now().UnixNano()
	e := newMemoryEntry(v, ttl, now)
	var added bool
	m.c.Compute(key, func(old memoryEntry[V], found bool) (memoryEntry[V], otter.ComputeOp) {
		if found && now < old.expiresAt {
			added = false
			return old, otter.CancelOp
		}
		added = true
		return e, otter.WriteOp
	})
	return added, nil
}

// newMemoryEntry builds the entry Set and Add store: live for ttl > 0 from now (Unix
// nanoseconds by the injected clock).
func newMemoryEntry[V any](v V, ttl time.Duration, now int64) memoryEntry[V] {
	expiresAt := now + int64(ttl)
	if expiresAt < now { // overflow: a TTL beyond year 2262 means "until evicted"
		expiresAt = math.MaxInt64
	}
	return memoryEntry[V]{v: v, expiresAt: expiresAt}
}

// Delete implements [Store].
func (m *Memory[K, V]) Delete(_ context.Context, key K) error {
	m.c.Invalidate(key)
	return nil
}

// Clear drops every entry. A caller uses it when it can no longer trust what it holds, for
// example after missing invalidations while disconnected from the shared tier. It does not report
// evictions: nothing was dropped for room.
func (m *Memory[K, V]) Clear() {
	m.c.InvalidateAll()
}

// Len returns the number of entries held once pending evictions are
// applied, including expired ones not yet reclaimed. otter applies
// evictions in batches, so between calls the store may exceed MaxEntries
// briefly; Len applies the pending batch first, so it reports the bound
// the store settles to.
func (m *Memory[K, V]) Len() int {
	m.c.CleanUp()
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
