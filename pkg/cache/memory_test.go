package cache

import (
	"context"
	"strconv"
	"testing"
	"time"
)

func TestMemorySizeBound(t *testing.T) {
	const maxEntries = 100
	m := NewMemory[int](MemoryOptions{MaxEntries: maxEntries})
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
	clock := NewFakeClock()
	m := newMemory[string](10, clock.Now, nil) // otter on the real clock
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
	m := NewMemory[string](MemoryOptions{MaxEntries: 10})
	if err := m.Set(t.Context(), "k", "v", time.Duration(1<<63-1)); err != nil {
		t.Fatal(err)
	}
	if v, ok, _ := m.Get(t.Context(), "k"); !ok || v != "v" {
		t.Fatalf("Get = %q, %v; want hit", v, ok)
	}
}

func TestMemoryDefaultClock(t *testing.T) {
	m := NewMemory[string](MemoryOptions{MaxEntries: 10})
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
			NewMemory[int](MemoryOptions{MaxEntries: n})
		})
	}
}

func TestMemoryGetHitDoesNotAllocate(t *testing.T) {
	m := NewMemory[[]byte](MemoryOptions{MaxEntries: 10})
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
	m := NewMemory[[]byte](MemoryOptions{MaxEntries: 1 << 16})
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
