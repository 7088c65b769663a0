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

// needExpirer runs fn only on stores that implement Expirer; it says so in the log, not by
// skipping, since not implementing an optional interface is not a missing dependency.
func needExpirer(fn func(t *testing.T, h Harness, e Expirer, key func(string) string)) func(*testing.T, Harness, func(string) string) {
	return func(t *testing.T, h Harness, key func(string) string) {
		e, ok := h.Store.(Expirer)
		if !ok {
			t.Logf("%T does not implement cachetest.Expirer: nothing to check", h.Store)
			return
		}
		fn(t, h, e, key)
	}
}

// needAdder runs fn only on stores that implement Adder.
func needAdder(fn func(t *testing.T, h Harness, a Adder, key func(string) string)) func(*testing.T, Harness, func(string) string) {
	return func(t *testing.T, h Harness, key func(string) string) {
		a, ok := h.Store.(Adder)
		if !ok {
			t.Logf("%T does not implement cachetest.Adder: nothing to check", h.Store)
			return
		}
		fn(t, h, a, key)
	}
}

func mustGetExpiry(t *testing.T, e Expirer, key string) ([]byte, time.Time, bool) {
	t.Helper()
	v, exp, ok, err := e.GetExpiry(t.Context(), key)
	if err != nil {
		t.Fatalf("GetExpiry(%q): %v", key, err)
	}
	if !ok && (v != nil || !exp.IsZero()) {
		t.Fatalf("GetExpiry(%q) = %q, %v, false; a miss must return nil and the zero time", key, v, exp)
	}
	return v, exp, ok
}

// wantExpiry checks that a hit reports want as its value and an expiry within ExpiryPrecision
// before deadline.
func wantExpiry(t *testing.T, e Expirer, key, want string, deadline time.Time) time.Time {
	t.Helper()
	v, exp, ok := mustGetExpiry(t, e, key)
	if !ok || string(v) != want {
		t.Fatalf("GetExpiry(%q) = %q, %v; want hit %q", key, v, ok, want)
	}
	if !deadline.IsZero() && (exp.After(deadline) || exp.Before(deadline.Add(-ExpiryPrecision))) {
		t.Fatalf("GetExpiry(%q) expiry %v, want %v (at most %v earlier)", key, exp, deadline, ExpiryPrecision)
	}
	return exp
}

// deadlineAfter is h.Now()+d, or the zero time (check nothing) without a clock.
func deadlineAfter(h Harness, d time.Duration) time.Time {
	if h.Now == nil {
		return time.Time{}
	}
	return h.Now().Add(d)
}

// near reports whether two expiries, each up to ExpiryPrecision early, are d apart.
func near(later, earlier time.Time, d time.Duration) bool {
	diff := later.Sub(earlier) - d
	return diff >= -ExpiryPrecision && diff <= ExpiryPrecision
}

func testGetExpiry(t *testing.T, h Harness, e Expirer, key func(string) string) {
	mustSet(t, h.Store, key("a"), "a-value", TTL)
	mustSet(t, h.Store, key("b"), "b-value", 2*TTL)
	expA := wantExpiry(t, e, key("a"), "a-value", deadlineAfter(h, TTL))
	expB := wantExpiry(t, e, key("b"), "b-value", deadlineAfter(h, 2*TTL))
	if !near(expB, expA, TTL) {
		t.Fatalf("expiries %v and %v of entries set together for TTL and 2*TTL are not TTL apart", expA, expB)
	}

	// The expiry is absolute: reading later reports the same instant, not a fresh TTL.
	h.Advance(TTL / 2)
	if again := wantExpiry(t, e, key("a"), "a-value", time.Time{}); !again.Equal(expA) {
		t.Fatalf("expiry read later = %v, first read %v; want the same instant", again, expA)
	}
	mustSet(t, h.Store, key("c"), "c-value", TTL)
	expC := wantExpiry(t, e, key("c"), "c-value", deadlineAfter(h, TTL))
	if !near(expC, expA, TTL/2) {
		t.Fatalf("entry set TTL/2 later expires at %v, the first at %v; want TTL/2 apart", expC, expA)
	}

	// GetExpiry agrees with Get on expiry.
	h.Advance(3 * TTL / 4)
	if _, _, ok := mustGetExpiry(t, e, key("a")); ok {
		t.Fatal("GetExpiry: hit TTL/4 after the deadline")
	}
	wantMiss(t, h.Store, key("a"))
	wantExpiry(t, e, key("b"), "b-value", time.Time{})
}

func testGetExpiryMiss(t *testing.T, h Harness, e Expirer, key func(string) string) {
	mustGetExpiry(t, e, key("never-set"))
	mustSet(t, h.Store, key("k"), "value", TTL)
	mustDelete(t, h.Store, key("k"))
	if v, _, ok := mustGetExpiry(t, e, key("k")); ok {
		t.Fatalf("GetExpiry after Delete = %q, want a miss", v)
	}
}

func testGetExpiryOverwrite(t *testing.T, h Harness, e Expirer, key func(string) string) {
	mustSet(t, h.Store, key("k"), "first", 4*TTL)
	first := wantExpiry(t, e, key("k"), "first", deadlineAfter(h, 4*TTL))
	mustSet(t, h.Store, key("k"), "second", TTL)
	second := wantExpiry(t, e, key("k"), "second", deadlineAfter(h, TTL))
	if !near(first, second, 3*TTL) {
		t.Fatalf("overwrite with a shorter TTL: expiry %v, before %v; want 3*TTL earlier", second, first)
	}
}

// The first Add of a key stores it, for its TTL.
func testAddAbsent(t *testing.T, h Harness, a Adder, key func(string) string) {
	in := []byte("value")
	added, err := a.Add(t.Context(), key("k"), in, TTL)
	if err != nil || !added {
		t.Fatalf("Add of an absent key = %v, %v; want true", added, err)
	}
	if string(in) != "value" {
		t.Fatalf("slice passed to Add changed to %q", in)
	}
	wantHit(t, h.Store, key("k"), "value")
	h.Advance(3 * TTL / 4)
	wantHit(t, h.Store, key("k"), "value")
	h.Advance(TTL / 2)
	wantMiss(t, h.Store, key("k"))
}

// Add never touches a live entry: not its value, not its expiry.
func testAddPresent(t *testing.T, h Harness, a Adder, key func(string) string) {
	mustSet(t, h.Store, key("k"), "first", TTL)
	h.Advance(3 * TTL / 4)
	added, err := a.Add(t.Context(), key("k"), []byte("second"), 4*TTL)
	if err != nil || added {
		t.Fatalf("Add over a live entry = %v, %v; want false", added, err)
	}
	wantHit(t, h.Store, key("k"), "first")
	h.Advance(TTL / 2) // past the first deadline: Add did not extend it
	wantMiss(t, h.Store, key("k"))

	// An entry stored by Add is just as live to a second Add.
	if added, err := a.Add(t.Context(), key("k2"), []byte("one"), TTL); err != nil || !added {
		t.Fatalf("first Add = %v, %v", added, err)
	}
	if added, err := a.Add(t.Context(), key("k2"), []byte("two"), TTL); err != nil || added {
		t.Fatalf("second Add = %v, %v; want false", added, err)
	}
	wantHit(t, h.Store, key("k2"), "one")
}

// An entry that has expired, or been deleted, is absent to Add as it is to Get, even if the store
// still holds it.
func testAddAfterExpiryOrDelete(t *testing.T, h Harness, a Adder, key func(string) string) {
	mustSet(t, h.Store, key("expired"), "old", TTL)
	mustSet(t, h.Store, key("deleted"), "old", TTL)
	mustDelete(t, h.Store, key("deleted"))
	h.Advance(5 * TTL / 4)
	wantMiss(t, h.Store, key("expired"))
	for _, k := range []string{key("expired"), key("deleted")} {
		added, err := a.Add(t.Context(), k, []byte("new"), TTL)
		if err != nil || !added {
			t.Fatalf("Add(%q) after expiry or delete = %v, %v; want true", k, added, err)
		}
		wantHit(t, h.Store, k, "new")
	}
	// And it got the new TTL, not the rest of the old one.
	h.Advance(3 * TTL / 4)
	wantHit(t, h.Store, key("expired"), "new")
}

func testAddNonPositiveTTL(t *testing.T, h Harness, a Adder, key func(string) string) {
	for _, ttl := range []time.Duration{0, -time.Hour} {
		added, err := a.Add(t.Context(), key("absent"+ttl.String()), []byte("v"), ttl)
		if err != nil || added {
			t.Fatalf("Add with ttl %v = %v, %v; want false (nothing stored)", ttl, added, err)
		}
		wantMiss(t, h.Store, key("absent"+ttl.String()))

		mustSet(t, h.Store, key("present"+ttl.String()), "kept", TTL)
		if added, err := a.Add(t.Context(), key("present"+ttl.String()), []byte("v"), ttl); err != nil || added {
			t.Fatalf("Add with ttl %v over a live entry = %v, %v; want false", ttl, added, err)
		}
		wantHit(t, h.Store, key("present"+ttl.String()), "kept")
	}
}

// Of concurrent Adds of one key exactly one wins, and its value is the one stored: Add is how
// replicas agree on one value, so a check-then-set race would be a real bug.
func testAddConcurrent(t *testing.T, h Harness, a Adder, key func(string) string) {
	const goroutines = 16
	const rounds = 8
	for round := range rounds {
		k := key("k" + strconv.Itoa(round))
		var (
			wg     sync.WaitGroup
			mu     sync.Mutex
			winner []string
		)
		start := make(chan struct{})
		for g := range goroutines {
			wg.Go(func() {
				<-start
				v := "g" + strconv.Itoa(g)
				added, err := a.Add(t.Context(), k, []byte(v), TTL)
				if err != nil {
					t.Errorf("Add: %v", err)
					return
				}
				if added {
					mu.Lock()
					winner = append(winner, v)
					mu.Unlock()
				}
			})
		}
		close(start)
		wg.Wait()
		if len(winner) != 1 {
			t.Fatalf("round %d: %d Adds won (%v), want exactly 1", round, len(winner), winner)
		}
		wantHit(t, h.Store, k, winner[0])
	}
}
