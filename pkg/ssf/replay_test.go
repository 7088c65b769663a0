package ssf_test

import (
	"errors"
	"testing"
	"time"

	"github.com/extauthz/extauthz/internal/redistest"
	"github.com/extauthz/extauthz/internal/testkit"
	"github.com/extauthz/extauthz/pkg/ssf"
)

// Both stores: unseen until remembered, seen until the ttl has passed.
func TestReplayStores(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	clock := testkit.NewClockAt(t0)
	for name, store := range map[string]ssf.ReplayStore{
		"memory": ssf.NewMemoryReplay(10, clock.Now),
		"redis":  ssf.NewRedisReplay(redisClient(t, srv.Addr())),
	} {
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			if seen, err := store.Seen(ctx, "k1"); seen || err != nil {
				t.Fatalf("Seen before Remember: %v %v", seen, err)
			}
			if err := store.Remember(ctx, "k1", time.Minute); err != nil {
				t.Fatal(err)
			}
			if seen, err := store.Seen(ctx, "k1"); !seen || err != nil {
				t.Fatalf("Seen after Remember: %v %v", seen, err)
			}
			if seen, _ := store.Seen(ctx, "k2"); seen {
				t.Fatal("another key seen")
			}
		})
	}
	// The memory store's expiry, on its clock.
	m := ssf.NewMemoryReplay(10, clock.Now)
	_ = m.Remember(t.Context(), "k", time.Minute)
	clock.Advance(time.Minute)
	if seen, _ := m.Seen(t.Context(), "k"); seen {
		t.Fatal("seen after its ttl")
	}
}

// A full memory store refuses to judge a new SET (503) rather than forget
// one early; entries that expired make room.
func TestMemoryReplayFull(t *testing.T) {
	t.Parallel()
	clock := testkit.NewClockAt(t0)
	m := ssf.NewMemoryReplay(2, clock.Now)
	ctx := t.Context()
	_ = m.Remember(ctx, "a", time.Minute)
	_ = m.Remember(ctx, "b", 2*time.Minute)
	if seen, err := m.Seen(ctx, "a"); !seen || err != nil {
		t.Fatalf("a remembered key in a full store: %v %v", seen, err)
	}
	if _, err := m.Seen(ctx, "c"); !errors.Is(err, ssf.ErrReplayFull) {
		t.Fatalf("Seen of a new key in a full store: %v; want ErrReplayFull", err)
	}
	if err := m.Remember(ctx, "c", time.Minute); !errors.Is(err, ssf.ErrReplayFull) {
		t.Fatalf("Remember in a full store: %v; want ErrReplayFull", err)
	}
	clock.Advance(time.Minute) // a expires
	if seen, err := m.Seen(ctx, "c"); seen || err != nil {
		t.Fatalf("Seen once a has expired: %v %v", seen, err)
	}
	if err := m.Remember(ctx, "c", time.Minute); err != nil {
		t.Fatal(err)
	}
	if seen, _ := m.Seen(ctx, "b"); !seen {
		t.Fatal("b forgotten")
	}
}
