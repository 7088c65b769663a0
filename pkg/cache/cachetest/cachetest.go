// Package cachetest is the conformance suite that every cache.Store implementation must pass,
// so that the in-process, Redis and tiered stores behave the same to their callers.
//
// An implementation's tests call [Run] with a function that builds a fresh store for each case.
// The suite stores []byte values, the type a store shared between processes deals in.
//
// It is test support only: nothing outside _test.go files should import it.
package cachetest

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/extauthz/extauthz/pkg/cache"
)

// Harness is one store under test and the means to move its time.
type Harness struct {
	Store cache.Store[[]byte]
	// Advance moves time forward for this store (fake clock for memory; a Redis store's harness
	// may wait instead). The suite only ever advances by multiples of TTL/4, so a harness that
	// waits spends a few seconds in total.
	Advance func(d time.Duration)
	// Now is the store's clock, optional. With it, the Expirer cases check the absolute expiry
	// a store reports; without it, only expiries relative to each other.
	Now func() time.Time
}

// Expirer is a store that also reports when an entry expires. The suite runs its Expirer cases
// on every store that implements it.
type Expirer interface {
	// GetExpiry is Get plus the entry's absolute expiry; a miss returns the zero time.
	GetExpiry(ctx context.Context, key string) ([]byte, time.Time, bool, error)
}

// Adder is a store that can store a value only if the key holds no live entry. The suite runs
// its Adder cases on every store that implements it.
type Adder interface {
	// Add stores v for ttl unless key holds a live entry, and reports whether it stored it.
	// ttl <= 0 stores nothing, leaves any entry alone, and returns false.
	Add(ctx context.Context, key string, v []byte, ttl time.Duration) (bool, error)
}

// ExpiryPrecision is how far a reported expiry may fall short of the exact deadline: a store
// shared between processes keeps deadlines in whole milliseconds, and rounds down so that an
// entry never outlives its TTL. An expiry later than the exact deadline is always wrong.
const ExpiryPrecision = time.Millisecond

// TTL is the lifetime the suite gives entries. It is long enough that a store checked against
// the wall clock (Redis, with millisecond expiry) does not expire an entry between a Set and
// the Get that follows it, and short enough that waiting out a few of them is tolerable.
// Every expiry check leaves a margin of at least TTL/4 either side of the deadline.
const TTL = time.Second

// Run runs the conformance suite. newHarness is called once per case with that case's
// *testing.T, so it can register clean-up with t.Cleanup, and may call t.Parallel if its stores
// are independent. Keys carry a random per-run prefix, so stores may share a backend (one Redis
// database) across cases and runs without flushing it.
func Run(t *testing.T, newHarness func(t *testing.T) Harness) {
	t.Helper()
	run := strconv.FormatUint(rand.Uint64(), 16)
	cases := []struct {
		name string
		fn   func(t *testing.T, h Harness, key func(string) string)
	}{
		{"GetMissing", testGetMissing},
		{"SetGet", testSetGet},
		{"EmptyValueIsAHit", testEmptyValue},
		{"Overwrite", testOverwrite},
		{"OverwriteReplacesTTL", testOverwriteReplacesTTL},
		{"Delete", testDelete},
		{"DeleteMissing", testDeleteMissing},
		{"NonPositiveTTL", testNonPositiveTTL},
		{"Expiry", testExpiry},
		{"DistinctKeys", testDistinctKeys},
		{"ReturnedValueSafeToHold", testReturnedValueSafeToHold},
		{"Concurrent", testConcurrent},
		{"CancelledContext", testCancelledContext},
		{"GetExpiry", needExpirer(testGetExpiry)},
		{"GetExpiryMiss", needExpirer(testGetExpiryMiss)},
		{"GetExpiryOverwrite", needExpirer(testGetExpiryOverwrite)},
		{"AddAbsent", needAdder(testAddAbsent)},
		{"AddPresent", needAdder(testAddPresent)},
		{"AddAfterExpiryOrDelete", needAdder(testAddAfterExpiryOrDelete)},
		{"AddNonPositiveTTL", needAdder(testAddNonPositiveTTL)},
		{"AddConcurrentOneWins", needAdder(testAddConcurrent)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t)
			if h.Store == nil || h.Advance == nil {
				t.Fatal("cachetest: Harness needs both Store and Advance")
			}
			prefix := "cachetest:" + run + ":" + c.name + ":"
			c.fn(t, h, func(name string) string { return prefix + name })
		})
	}
}

func mustGet(t *testing.T, s cache.Store[[]byte], key string) ([]byte, bool) {
	t.Helper()
	v, ok, err := s.Get(t.Context(), key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	if !ok && v != nil {
		t.Fatalf("Get(%q) = %q, false; a miss must return the zero value (nil)", key, v)
	}
	return v, ok
}

func mustSet(t *testing.T, s cache.Store[[]byte], key, value string, ttl time.Duration) {
	t.Helper()
	if err := s.Set(t.Context(), key, []byte(value), ttl); err != nil {
		t.Fatalf("Set(%q, %q, %v): %v", key, value, ttl, err)
	}
}

func mustDelete(t *testing.T, s cache.Store[[]byte], key string) {
	t.Helper()
	if err := s.Delete(t.Context(), key); err != nil {
		t.Fatalf("Delete(%q): %v", key, err)
	}
}

func wantHit(t *testing.T, s cache.Store[[]byte], key, want string) {
	t.Helper()
	got, ok := mustGet(t, s, key)
	if !ok {
		t.Fatalf("Get(%q): miss, want %q", key, want)
	}
	if string(got) != want {
		t.Fatalf("Get(%q) = %q, want %q", key, got, want)
	}
}

func wantMiss(t *testing.T, s cache.Store[[]byte], key string) {
	t.Helper()
	if got, ok := mustGet(t, s, key); ok {
		t.Fatalf("Get(%q) = %q, want a miss", key, got)
	}
}

func testGetMissing(t *testing.T, h Harness, key func(string) string) {
	wantMiss(t, h.Store, key("never-set"))
}

func testSetGet(t *testing.T, h Harness, key func(string) string) {
	mustSet(t, h.Store, key("k"), "value", TTL)
	wantHit(t, h.Store, key("k"), "value")
	// A second read sees the same value: reading does not consume the entry.
	wantHit(t, h.Store, key("k"), "value")
}

// A cached "token is invalid" marker may well be an empty value; it must still be a hit.
func testEmptyValue(t *testing.T, h Harness, key func(string) string) {
	mustSet(t, h.Store, key("empty"), "", TTL)
	got, ok := mustGet(t, h.Store, key("empty"))
	if !ok || len(got) != 0 {
		t.Fatalf("Get of an empty value = %q, %v; want an empty hit", got, ok)
	}
}

func testOverwrite(t *testing.T, h Harness, key func(string) string) {
	mustSet(t, h.Store, key("k"), "first", TTL)
	mustSet(t, h.Store, key("k"), "second", TTL)
	wantHit(t, h.Store, key("k"), "second")
}

func testOverwriteReplacesTTL(t *testing.T, h Harness, key func(string) string) {
	// Lengthened: rewritten at 3/4 of its TTL, the entry outlives the first deadline.
	mustSet(t, h.Store, key("longer"), "first", TTL)
	// Shortened: a long TTL replaced by TTL expires with the new one.
	mustSet(t, h.Store, key("shorter"), "first", 8*TTL)
	h.Advance(3 * TTL / 4)
	mustSet(t, h.Store, key("longer"), "second", TTL)
	mustSet(t, h.Store, key("shorter"), "second", TTL)

	h.Advance(TTL / 2) // first deadline of "longer" passed by TTL/4
	wantHit(t, h.Store, key("longer"), "second")
	wantHit(t, h.Store, key("shorter"), "second")

	h.Advance(3 * TTL / 4) // both second deadlines passed by TTL/4
	wantMiss(t, h.Store, key("longer"))
	wantMiss(t, h.Store, key("shorter"))
}

func testDelete(t *testing.T, h Harness, key func(string) string) {
	mustSet(t, h.Store, key("k"), "value", TTL)
	mustDelete(t, h.Store, key("k"))
	wantMiss(t, h.Store, key("k"))
	// A deleted key can be stored again.
	mustSet(t, h.Store, key("k"), "again", TTL)
	wantHit(t, h.Store, key("k"), "again")
}

func testDeleteMissing(t *testing.T, h Harness, key func(string) string) {
	mustDelete(t, h.Store, key("never-set"))
	mustSet(t, h.Store, key("k"), "value", TTL)
	mustDelete(t, h.Store, key("k"))
	mustDelete(t, h.Store, key("k")) // twice
	wantMiss(t, h.Store, key("k"))
}

func testNonPositiveTTL(t *testing.T, h Harness, key func(string) string) {
	for _, ttl := range []time.Duration{0, -time.Nanosecond, -time.Hour} {
		t.Run(ttl.String(), func(t *testing.T) {
			fresh := key("fresh" + ttl.String())
			mustSet(t, h.Store, fresh, "value", ttl)
			wantMiss(t, h.Store, fresh)

			existing := key("existing" + ttl.String())
			mustSet(t, h.Store, existing, "old", TTL)
			mustSet(t, h.Store, existing, "new", ttl)
			wantMiss(t, h.Store, existing)
		})
	}
}

func testExpiry(t *testing.T, h Harness, key func(string) string) {
	mustSet(t, h.Store, key("k"), "value", TTL)
	h.Advance(3 * TTL / 4)
	wantHit(t, h.Store, key("k"), "value")
	h.Advance(TTL / 2)
	wantMiss(t, h.Store, key("k"))
	// Expiry removes the entry, not the key's usability.
	mustSet(t, h.Store, key("k"), "again", TTL)
	wantHit(t, h.Store, key("k"), "again")
}

func testDistinctKeys(t *testing.T, h Harness, key func(string) string) {
	// "k" is a prefix of "k2": a store must not match keys by prefix or pattern.
	mustSet(t, h.Store, key("k"), "k-value", TTL)
	mustSet(t, h.Store, key("k2"), "k2-value", TTL)
	mustSet(t, h.Store, key("other"), "other-value", TTL)
	wantMiss(t, h.Store, key("k3"))

	mustDelete(t, h.Store, key("k"))
	wantMiss(t, h.Store, key("k"))
	wantHit(t, h.Store, key("k2"), "k2-value")
	wantHit(t, h.Store, key("other"), "other-value")

	mustSet(t, h.Store, key("k2"), "k2-new", TTL)
	wantHit(t, h.Store, key("other"), "other-value")

	// TTLs are per entry.
	mustSet(t, h.Store, key("long"), "long-value", 4*TTL)
	h.Advance(5 * TTL / 4)
	wantMiss(t, h.Store, key("k2"))
	wantMiss(t, h.Store, key("other"))
	wantHit(t, h.Store, key("long"), "long-value")
}

// A caller may keep a value it got while the key is overwritten, deleted or expires: the store
// never writes into a slice it has handed out. (The caller, for its part, must not modify it; see
// cache.Store.)
func testReturnedValueSafeToHold(t *testing.T, h Harness, key func(string) string) {
	mustSet(t, h.Store, key("k"), "first", TTL)
	held, ok := mustGet(t, h.Store, key("k"))
	if !ok {
		t.Fatal("Get: miss after Set")
	}
	mustSet(t, h.Store, key("k"), "XXXXX", TTL) // same length, so an in-place copy would show
	mustSet(t, h.Store, key("k"), "a much longer second value", TTL)
	mustDelete(t, h.Store, key("k"))
	if string(held) != "first" {
		t.Fatalf("held value changed to %q after overwrite and delete, want %q", held, "first")
	}

	// Neither may a Set alter the slice the caller passed.
	in := []byte("input")
	if err := h.Store.Set(t.Context(), key("in"), in, TTL); err != nil {
		t.Fatal(err)
	}
	mustSet(t, h.Store, key("in"), "other", TTL)
	if !bytes.Equal(in, []byte("input")) {
		t.Fatalf("slice passed to Set changed to %q", in)
	}
}

// Run under -race, this is what finds unsynchronised state; the value check finds a store that
// mixes up keys or tears values under contention.
func testConcurrent(t *testing.T, h Harness, key func(string) string) {
	const (
		goroutines = 8
		ops        = 200
		keys       = 16
	)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			ctx := t.Context()
			for i := range ops {
				k := key(strconv.Itoa((g + i) % keys))
				want := fmt.Sprintf("%s|%d|%d", k, g, i)
				var err error
				switch i % 4 {
				case 0, 1:
					err = h.Store.Set(ctx, k, []byte(want), TTL)
				case 2:
					var got []byte
					var ok bool
					got, ok, err = h.Store.Get(ctx, k)
					if err == nil && ok && !bytes.HasPrefix(got, []byte(k+"|")) {
						t.Errorf("Get(%q) = %q, a value never set for this key", k, got)
					}
				case 3:
					if i%8 == 3 {
						err = h.Store.Delete(ctx, k)
					} else {
						err = h.Store.Set(ctx, k, []byte(want), 0)
					}
				}
				if err != nil {
					t.Errorf("goroutine %d op %d on %q: %v", g, i, k, err)
					return
				}
			}
		})
	}
	wg.Wait()

	// The store is still consistent afterwards.
	for i := range keys {
		k := key(strconv.Itoa(i))
		mustSet(t, h.Store, k, "final", TTL)
		wantHit(t, h.Store, k, "final")
	}
}

// A request whose context is already cancelled (the client went away) must not crash the store.
// A store may refuse such a call with an error, but an error is never a hit.
func testCancelledContext(t *testing.T, h Harness, key func(string) string) {
	mustSet(t, h.Store, key("k"), "value", TTL)

	ctx, cancel := context.WithCancel(t.Context())
	cancel()

	got, ok, err := h.Store.Get(ctx, key("k"))
	switch {
	case err != nil && (ok || got != nil):
		t.Errorf("Get with cancelled ctx = %q, %v, %v; an error must come with a miss", got, ok, err)
	case err == nil && ok && string(got) != "value":
		t.Errorf("Get with cancelled ctx = %q, want %q", got, "value")
	}
	_ = h.Store.Set(ctx, key("k2"), []byte("value2"), TTL)
	_ = h.Store.Delete(ctx, key("k3"))

	// The store still works for live contexts.
	wantHit(t, h.Store, key("k"), "value")
	mustSet(t, h.Store, key("k4"), "value4", TTL)
	wantHit(t, h.Store, key("k4"), "value4")
}
