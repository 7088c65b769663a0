package cache

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/extauthz/extauthz/internal/testkit"
)

func TestMemorySizeBound(t *testing.T) {
	const maxEntries = 100
	m := NewMemory[string, int](MemoryOptions{MaxEntries: maxEntries})
	for i := range 10 * maxEntries {
		if err := m.Set(t.Context(), "k"+strconv.Itoa(i), i, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	// otter applies evictions in batches on its maintenance path; CleanUp runs what is pending,
	// so Len then reflects the bound without waiting.
	m.c.CleanUp()
	if n := m.Len(); n > maxEntries || n < maxEntries*9/10 {
		t.Fatalf("Len() = %d after %d inserts and clean-up, want about %d and at most that",
			n, 10*maxEntries, maxEntries)
	}
}

// Expiry is decided by the injected clock at Get time, also for an entry otter still holds:
// otter runs on its own clock in production, and the two may disagree.
func TestMemoryExpiryByInjectedClockNotOtter(t *testing.T) {
	clock := testkit.NewClockAt(ClockStart)
	m := newMemory[string, string](10, clock.Now, nil, nil) // otter on the real clock
	ctx := t.Context()
	if err := m.Set(ctx, "k", "v", time.Hour); err != nil {
		t.Fatal(err)
	}

	clock.Advance(time.Hour - time.Nanosecond)
	if _, ok, _ := m.Get(ctx, "k"); !ok {
		t.Fatal("Get one nanosecond before the deadline: miss, want hit")
	}
	clock.Advance(time.Nanosecond)
	if v, ok, _ := m.Get(ctx, "k"); ok {
		t.Fatalf("Get at the deadline = %q, want miss", v)
	}
	if _, ok := m.c.GetIfPresent("k"); !ok {
		t.Fatal("otter no longer holds the entry, so this test shows nothing")
	}
}

// A TTL that overflows the deadline must not wrap into the past and make the entry a miss.
func TestMemoryHugeTTL(t *testing.T) {
	m := NewMemory[string, string](MemoryOptions{MaxEntries: 10})
	if err := m.Set(t.Context(), "k", "v", time.Duration(1<<63-1)); err != nil {
		t.Fatal(err)
	}
	if v, ok, _ := m.Get(t.Context(), "k"); !ok || v != "v" {
		t.Fatalf("Get = %q, %v; want hit", v, ok)
	}
}

func TestMemoryDefaultClock(t *testing.T) {
	m := NewMemory[string, string](MemoryOptions{MaxEntries: 10})
	ctx := t.Context()
	if err := m.Set(ctx, "k", "v", time.Hour); err != nil {
		t.Fatal(err)
	}
	if v, ok, _ := m.Get(ctx, "k"); !ok || v != "v" {
		t.Fatalf("Get = %q, %v; want hit with the real clock", v, ok)
	}
}

func TestNewMemoryRequiresBound(t *testing.T) {
	for _, n := range []int{0, -1} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatalf("NewMemory(MaxEntries: %d) did not panic", n)
				}
			}()
			NewMemory[string, int](MemoryOptions{MaxEntries: n})
		})
	}
}

func TestMemoryGetHitDoesNotAllocate(t *testing.T) {
	m := NewMemory[string, []byte](MemoryOptions{MaxEntries: 10})
	ctx := context.Background()
	if err := m.Set(ctx, "k", []byte("v"), time.Hour); err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(1000, func() {
		if _, ok, _ := m.Get(ctx, "k"); !ok {
			t.Fatal("miss")
		}
	})
	if allocs != 0 {
		t.Fatalf("Get hit allocates %v times, want 0", allocs)
	}
}

func BenchmarkMemoryGetHit(b *testing.B) {
	m := NewMemory[string, []byte](MemoryOptions{MaxEntries: 1 << 16})
	ctx := context.Background()
	key := TokenKey("mcp", "benchmark-token")
	if err := m.Set(ctx, key, []byte(`{"sub":"alice"}`), time.Hour); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, ok, _ := m.Get(ctx, key); !ok {
				b.Error("miss")
				return
			}
		}
	})
}

// countingObserver counts events, safe for concurrent use. It is shared by this package's
// internal tests.
type countingObserver struct {
	mu      sync.Mutex
	errors  map[string]int // "tier/op"
	evicted map[string]int
	lookups int
	circuit []bool
}

func newCountingObserver() *countingObserver {
	return &countingObserver{errors: map[string]int{}, evicted: map[string]int{}}
}

func (o *countingObserver) Lookup(string, bool) { o.mu.Lock(); o.lookups++; o.mu.Unlock() }
func (o *countingObserver) Error(tier, op string) {
	o.mu.Lock()
	o.errors[tier+"/"+op]++
	o.mu.Unlock()
}
func (o *countingObserver) Evicted(tier string) { o.mu.Lock(); o.evicted[tier]++; o.mu.Unlock() }
func (o *countingObserver) CircuitOpen(open bool) {
	o.mu.Lock()
	o.circuit = append(o.circuit, open)
	o.mu.Unlock()
}

func (o *countingObserver) errorCount(key string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.errors[key]
}

func (o *countingObserver) evictedCount(tier string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.evicted[tier]
}

// Every entry dropped for room is reported once, as "local"; replacements, deletes, Clear and
// expiry are not evictions.
func TestMemoryObserverEvicted(t *testing.T) {
	const maxEntries = 100
	obs := newCountingObserver()
	m := NewMemory[string, int](MemoryOptions{MaxEntries: maxEntries, Observer: obs})
	ctx := t.Context()

	// Not evictions: overwrite, delete, Add over a live entry.
	for i := range maxEntries / 2 {
		k := "k" + strconv.Itoa(i)
		_ = m.Set(ctx, k, i, time.Hour)
		_ = m.Set(ctx, k, -i, time.Hour)
		_, _ = m.Add(ctx, k, 0, time.Hour)
	}
	_ = m.Delete(ctx, "k0")
	m.c.CleanUp()
	if n := obs.evictedCount(tierLocal); n != 0 {
		t.Fatalf("Evicted reported %d times within the bound, want 0", n)
	}

	const inserts = 10 * maxEntries
	for i := range inserts {
		_ = m.Set(ctx, "x"+strconv.Itoa(i), i, time.Hour)
	}
	m.c.CleanUp()
	// Nothing expired (an hour's TTL) and nothing else was removed since, so every entry that is
	// gone was evicted.
	want := maxEntries/2 - 1 + inserts - m.Len()
	if n := obs.evictedCount(tierLocal); n != want {
		t.Fatalf("Evicted(local) reported %d times, want %d (entries dropped for room)", n, want)
	}
	if len(obs.evicted) != 1 {
		t.Fatalf("evictions reported for tiers %v, want only %q", obs.evicted, tierLocal)
	}

	m.Clear()
	m.c.CleanUp()
	if n := obs.evictedCount(tierLocal); n != want {
		t.Fatalf("Clear reported %d evictions, want none", n-want)
	}
}

// An entry expired by the injected clock that otter still holds counts as absent for Add and
// GetExpiry, as for Get.
func TestMemoryAddOverExpiredEntryOtterStillHolds(t *testing.T) {
	clock := testkit.NewClockAt(ClockStart)
	m := newMemory[string, string](10, clock.Now, nil, nil) // otter on the real clock
	ctx := t.Context()
	_ = m.Set(ctx, "k", "old", time.Minute)
	clock.Advance(time.Minute)
	if _, ok := m.c.GetIfPresent("k"); !ok {
		t.Fatal("otter no longer holds the entry, so this test shows nothing")
	}
	if _, exp, ok, _ := m.GetExpiry(ctx, "k"); ok || !exp.IsZero() {
		t.Fatalf("GetExpiry at the deadline = %v, %v; want a miss", exp, ok)
	}
	if added, _ := m.Add(ctx, "k", "new", time.Minute); !added {
		t.Fatal("Add over an entry expired by the injected clock: false, want true")
	}
	v, exp, ok, _ := m.GetExpiry(ctx, "k")
	if !ok || v != "new" || !exp.Equal(clock.Now().Add(time.Minute)) {
		t.Fatalf("GetExpiry = %q, %v, %v; want new, expiring a minute from now", v, exp, ok)
	}
}

func TestMemoryClear(t *testing.T) {
	m := NewMemory[string, string](MemoryOptions{MaxEntries: 100})
	ctx := t.Context()
	for i := range 50 {
		_ = m.Set(ctx, "k"+strconv.Itoa(i), "v", time.Hour)
	}
	m.Clear()
	for i := range 50 {
		if _, ok, _ := m.Get(ctx, "k"+strconv.Itoa(i)); ok {
			t.Fatalf("k%d: hit after Clear", i)
		}
	}
	m.c.CleanUp()
	if n := m.Len(); n != 0 {
		t.Fatalf("Len() = %d after Clear, want 0", n)
	}
	// Usable afterwards.
	_ = m.Set(ctx, "k", "again", time.Hour)
	if v, ok, _ := m.Get(ctx, "k"); !ok || v != "again" {
		t.Fatalf("Get after Clear and Set = %q, %v", v, ok)
	}
}

func TestMemoryGetExpiryHitDoesNotAllocate(t *testing.T) {
	m := NewMemory[string, []byte](MemoryOptions{MaxEntries: 10, Observer: NopObserver{}})
	ctx := context.Background()
	if err := m.Set(ctx, "k", []byte("v"), time.Hour); err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(1000, func() {
		if _, _, ok, _ := m.GetExpiry(ctx, "k"); !ok {
			t.Fatal("miss")
		}
		if _, ok, _ := m.Get(ctx, "k"); !ok {
			t.Fatal("miss")
		}
	})
	if allocs != 0 {
		t.Fatalf("GetExpiry and Get hits with an Observer allocate %v times, want 0", allocs)
	}
}
