package session

import (
	"context"
	"errors"
	"testing"
	"time"
)

// newMemoryStore is an in-process store with a bound and a fake clock.
func newMemoryStore(t *testing.T, maxEntries int) (*Store, *fakeClock) {
	t.Helper()
	clock := newFakeClock()
	s, err := New(Options{Key: testKey(t, 1), MaxEntries: maxEntries, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	return s, clock
}

func (s *Store) memLen() int {
	s.mem.mu.Lock()
	defer s.mem.mu.Unlock()
	return len(s.mem.entries)
}

func (s *Store) memHas(prefix, id string) bool {
	s.mem.mu.Lock()
	defer s.mem.mu.Unlock()
	_, ok := s.mem.entries[storageKey(prefix, id)]
	return ok
}

// A full store makes room by evicting the oldest login state, never a session; with only
// sessions left it refuses new entries with ErrFull, but still lets existing ones be rewritten.
func TestMemoryBound(t *testing.T) {
	t.Parallel()
	s, clock := newMemoryStore(t, 4)
	ctx := t.Context()
	st1, st2, st3 := newID(t), newID(t), newID(t)
	sess := []string{newID(t), newID(t), newID(t), newID(t), newID(t)}
	putState := func(state string) error { return s.PutState(ctx, state, sampleState(), time.Hour) }
	put := func(id string, ttl time.Duration) error { return s.Put(ctx, id, sampleSession(), ttl) }
	wantStates := func(step string, want map[string]bool) {
		t.Helper()
		for name, state := range map[string]string{"st1": st1, "st2": st2, "st3": st3} {
			if got := s.memHas(statePrefix, state); got != want[name] {
				t.Fatalf("%s: state %s held = %v, want %v", step, name, got, want[name])
			}
		}
		if n := s.memLen(); n > 4 {
			t.Fatalf("%s: %d entries, bound 4", step, n)
		}
	}

	for _, err := range []error{putState(st1), putState(st2), put(sess[0], time.Hour), put(sess[1], time.Hour)} {
		if err != nil {
			t.Fatal(err)
		}
	}
	// Full. A new state evicts the oldest state.
	if err := putState(st3); err != nil {
		t.Fatalf("PutState in a full store: %v", err)
	}
	wantStates("new state", map[string]bool{"st2": true, "st3": true})
	// Rewriting st2 takes no room and makes it the newest.
	if err := putState(st2); err != nil {
		t.Fatal(err)
	}
	wantStates("rewritten state", map[string]bool{"st2": true, "st3": true})
	// A new session evicts the oldest state: st3 now.
	if err := put(sess[2], time.Hour); err != nil {
		t.Fatalf("Put in a full store with states: %v", err)
	}
	wantStates("new session", map[string]bool{"st2": true})
	if err := put(sess[3], time.Hour); err != nil {
		t.Fatal(err)
	}
	wantStates("another session", nil)

	// Only sessions: no room for anything new, and no session is evicted.
	if err := put(sess[4], time.Hour); !errors.Is(err, ErrFull) {
		t.Fatalf("Put in a store full of sessions = %v, want ErrFull", err)
	}
	if err := putState(st1); !errors.Is(err, ErrFull) {
		t.Fatalf("PutState in a store full of sessions = %v, want ErrFull", err)
	}
	if err := put(sess[0], 2*time.Hour); err != nil {
		t.Fatalf("rewriting a session in a full store: %v", err)
	}
	for _, id := range sess[:4] {
		if _, ok, err := s.Get(ctx, id); !ok || err != nil {
			t.Fatalf("a session was evicted: %v, %v", ok, err)
		}
	}
	// Deleting one makes room.
	if err := s.Delete(ctx, sess[1]); err != nil {
		t.Fatal(err)
	}
	if err := put(sess[4], time.Hour); err != nil {
		t.Fatalf("Put after Delete: %v", err)
	}
	// Expired sessions are reclaimed (sess[0] lives 2h, the others 1h).
	clock.Advance(time.Hour + time.Second)
	if err := put(newID(t), time.Hour); err != nil {
		t.Fatalf("Put once sessions expired: %v", err)
	}
	if n := s.memLen(); n != 2 {
		t.Fatalf("%d entries after reclaiming, want 2 (sess[0] and the new one)", n)
	}
}

// A store full of live sessions does not sweep the whole map on every refused insert, but does
// reclaim expired ones at most fullSweepGap later.
func TestMemoryFullSweepGap(t *testing.T) {
	t.Parallel()
	s, clock := newMemoryStore(t, 2)
	ctx := t.Context()
	short := newID(t)
	if err := s.Put(ctx, short, sampleSession(), 100*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, newID(t), sampleSession(), time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, newID(t), sampleSession(), time.Hour); !errors.Is(err, ErrFull) {
		t.Fatalf("Put = %v, want ErrFull", err)
	}
	clock.Advance(200 * time.Millisecond) // short has expired, but the last sweep was just now
	if err := s.Put(ctx, newID(t), sampleSession(), time.Hour); !errors.Is(err, ErrFull) {
		t.Fatalf("Put within fullSweepGap = %v, want ErrFull", err)
	}
	clock.Advance(fullSweepGap)
	if err := s.Put(ctx, newID(t), sampleSession(), time.Hour); err != nil {
		t.Fatalf("Put after fullSweepGap = %v", err)
	}
}

// Expired entries and locks are reclaimed by the periodic sweep, without being read.
func TestMemorySweep(t *testing.T) {
	t.Parallel()
	s, clock := newMemoryStore(t, 0)
	ctx := t.Context()
	for range 10 {
		if err := s.Put(ctx, newID(t), sampleSession(), time.Second); err != nil {
			t.Fatal(err)
		}
		if err := s.PutState(ctx, newID(t), sampleState(), time.Second); err != nil {
			t.Fatal(err)
		}
	}
	rel, ok, err := s.TryLock(t.Context(), "refresh", time.Second)
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	rel() // removes the lock
	// A lock whose holder's context ended is left to expire.
	lctx, cancel := context.WithCancel(t.Context())
	_, ok, err = s.TryLock(lctx, "abandoned", time.Second)
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	cancel()
	keep := newID(t)
	if err := s.Put(ctx, keep, sampleSession(), time.Hour); err != nil {
		t.Fatal(err)
	}
	if n := s.memLen(); n != 21 {
		t.Fatalf("%d entries, want 21", n)
	}
	clock.Advance(2 * time.Second)
	if n := s.memLen(); n != 21 {
		t.Fatalf("%d entries before the sweep is due, want 21", n)
	}
	clock.Advance(sweepInterval)
	if _, ok, err := s.Get(ctx, newID(t)); ok || err != nil { // any call runs the due sweep
		t.Fatal(ok, err)
	}
	if n := s.memLen(); n != 1 {
		t.Fatalf("%d entries after the sweep, want 1", n)
	}
	s.mem.mu.Lock()
	locks := len(s.mem.locks)
	s.mem.mu.Unlock()
	if locks != 0 {
		t.Fatalf("%d locks after the sweep, want 0", locks)
	}
	if _, ok, err := s.Get(ctx, keep); !ok || err != nil {
		t.Fatalf("live session swept: %v, %v", ok, err)
	}
}
