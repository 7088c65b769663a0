package dpop_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/extauthz/extauthz/internal/testkit"
	"github.com/extauthz/extauthz/pkg/dpop"
)

// An attacker who captured a proof floods the store with valid proofs of
// their own, hoping to push the captured one out and replay it. The full
// store refuses new entries instead: the captured proof stays a replay.
func TestMemoryReplayFloodEvictsNothing(t *testing.T) {
	t.Parallel()
	clock := testkit.NewClockAt(t0)
	const max = 64
	s := dpop.NewMemoryReplay(max, clock.Now)
	ctx := t.Context()
	if fresh, err := s.Claim(ctx, "victim", time.Minute); !fresh || err != nil {
		t.Fatalf("first claim: %v, %v", fresh, err)
	}
	for i := range max - 1 {
		if fresh, err := s.Claim(ctx, fmt.Sprint("flood", i), time.Minute); !fresh || err != nil {
			t.Fatalf("flood %d: %v, %v", i, fresh, err)
		}
	}
	if fresh, err := s.Claim(ctx, "one more", time.Minute); fresh || !errors.Is(err, dpop.ErrReplayFull) {
		t.Fatalf("claim when full: %v, %v; want ErrReplayFull", fresh, err)
	}
	if fresh, err := s.Claim(ctx, "victim", time.Minute); fresh || err != nil {
		t.Fatalf("the captured proof when full: %v, %v; want a replay", fresh, err)
	}
	if n := s.Len(); n != max {
		t.Fatalf("Len %d, want %d", n, max)
	}
	// Entries expire with their ttl, and make room.
	clock.Advance(time.Minute)
	if n := s.Len(); n != 0 {
		t.Fatalf("Len %d after the ttl, want 0", n)
	}
	if fresh, err := s.Claim(ctx, "one more", time.Minute); !fresh || err != nil {
		t.Fatalf("claim after expiry: %v, %v", fresh, err)
	}
}

// Through Verify, a full store is ErrUnavailable (503), never acceptance.
func TestVerifyStoreFull(t *testing.T) {
	t.Parallel()
	clock := testkit.NewClockAt(t0)
	f := newFixture(t, dpop.Options{Replay: dpop.NewMemoryReplay(1, clock.Now), Now: clock.Now})
	k := newKey(t, "ES256")
	if _, err := f.verify(k.proof(t, k.header(), f.claims())); err != nil {
		t.Fatal(err)
	}
	_, err := f.verify(k.proof(t, k.header(), f.claims()))
	if !errors.Is(err, dpop.ErrUnavailable) || !errors.Is(err, dpop.ErrReplayFull) || errors.Is(err, dpop.ErrInvalidProof) {
		t.Fatalf("Verify with a full store: %v; want ErrUnavailable wrapping ErrReplayFull", err)
	}
}

// Expiry is by each entry's own ttl; a key is a replay until then and new
// after; entries recorded with a long ttl before short ones hold the short
// ones' places until they expire (counted longer, never forgotten early).
func TestMemoryReplayExpiry(t *testing.T) {
	t.Parallel()
	clock := testkit.NewClockAt(t0)
	s := dpop.NewMemoryReplay(0, clock.Now)
	ctx := t.Context()
	claim := func(key string, ttl time.Duration) bool {
		t.Helper()
		fresh, err := s.Claim(ctx, key, ttl)
		if err != nil {
			t.Fatal(err)
		}
		return fresh
	}
	claim("long", time.Hour)
	claim("short", time.Second)
	clock.Advance(time.Second - 1)
	if claim("short", time.Second) {
		t.Fatal("short is new before its ttl")
	}
	clock.Advance(1)
	if !claim("short", time.Second) {
		t.Fatal("short is still a replay after its ttl")
	}
	if claim("long", time.Hour) {
		t.Fatal("long is new before its ttl")
	}
	if _, err := s.Claim(ctx, "zero", 0); err == nil {
		t.Fatal("a zero ttl was accepted")
	}
	if n := s.Len(); n != 3 { // long, short (expired, held behind long), short again
		t.Fatalf("Len %d, want 3", n)
	}
}

// Many keys over a long time: what counts against the bound is the live
// entries, not all ever recorded (and the fifo is compacted on the way).
func TestMemoryReplayLenFollowsLiveEntries(t *testing.T) {
	t.Parallel()
	clock := testkit.NewClockAt(t0)
	s := dpop.NewMemoryReplay(100, clock.Now)
	for i := range 10000 {
		if fresh, err := s.Claim(t.Context(), fmt.Sprint(i), 10*time.Millisecond); !fresh || err != nil {
			t.Fatalf("claim %d: %v, %v", i, fresh, err)
		}
		clock.Advance(time.Millisecond)
	}
	// The clock is 10,000ms on; entries claimed after 9,990ms live on.
	if n := s.Len(); n != 9 {
		t.Fatalf("Len %d, want the 9 live entries", n)
	}
}
