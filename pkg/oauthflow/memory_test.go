package oauthflow

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/extauthz/extauthz/internal/testkit"
)

// newMemoryStore is an in-process store with a bound and a fake clock.
func newMemoryStore(t *testing.T, maxEntries int) (*Store, *testkit.Clock) {
	t.Helper()
	clock := testkit.NewClockAt(clockStart)
	s, err := NewStore(StoreOptions{Key: testKey(t, 1), MaxEntries: maxEntries, Now: clock.Now})
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

// A full store makes room by evicting the oldest marker, never a session; with only sessions
// left it refuses new entries with ErrFull, but still lets existing ones be rewritten.
func TestMemoryBound(t *testing.T) {
	t.Parallel()
	s, clock := newMemoryStore(t, 4)
	ctx := t.Context()
	st1, st2, st3 := newID(t), newID(t), newID(t)
	sess := []string{newID(t), newID(t), newID(t), newID(t), newID(t)}
	mark := func(state string) error {
		first, err := s.MarkStateUsed(ctx, state, time.Hour)
		if err == nil && !first {
			t.Fatalf("MarkStateUsed of a new state: not the first")
		}
		return err
	}
	put := func(id string, ttl time.Duration) error { return s.Put(ctx, id, sampleSession(), ttl) }
	wantMarkers := func(step string, want map[string]bool) {
		t.Helper()
		for name, state := range map[string]string{"st1": st1, "st2": st2, "st3": st3} {
			if got := s.memHas(usedPrefix, state); got != want[name] {
				t.Fatalf("%s: marker %s held = %v, want %v", step, name, got, want[name])
			}
		}
		if n := s.memLen(); n > 4 {
			t.Fatalf("%s: %d entries, bound 4", step, n)
		}
	}

	for _, err := range []error{mark(st1), mark(st2), put(sess[0], time.Hour), put(sess[1], time.Hour)} {
		if err != nil {
			t.Fatal(err)
		}
	}
	// Full. A new marker evicts the oldest marker.
	if err := mark(st3); err != nil {
		t.Fatalf("MarkStateUsed in a full store: %v", err)
	}
	wantMarkers("new marker", map[string]bool{"st2": true, "st3": true})
	// Marking st2 again takes no room and changes nothing.
	if first, err := s.MarkStateUsed(ctx, st2, time.Hour); first || err != nil {
		t.Fatalf("MarkStateUsed of a marked state = %v, %v; want false", first, err)
	}
	wantMarkers("marked again", map[string]bool{"st2": true, "st3": true})
	// A new session evicts the oldest marker: st2.
	if err := put(sess[2], time.Hour); err != nil {
		t.Fatalf("Put in a full store with markers: %v", err)
	}
	wantMarkers("new session", map[string]bool{"st3": true})
	if err := put(sess[3], time.Hour); err != nil {
		t.Fatal(err)
	}
	wantMarkers("another session", nil)

	// Only sessions: no room for anything new, and no session is evicted.
	if err := put(sess[4], time.Hour); !errors.Is(err, ErrFull) {
		t.Fatalf("Put in a store full of sessions = %v, want ErrFull", err)
	}
	if _, err := s.MarkStateUsed(ctx, st1, time.Hour); !errors.Is(err, ErrFull) {
		t.Fatalf("MarkStateUsed in a store full of sessions = %v, want ErrFull", err)
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
		if _, err := s.MarkStateUsed(ctx, newID(t), time.Second); err != nil {
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
