package cachetest

import (
	"strconv"
	"sync"
	"testing"
	"time"
)

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
