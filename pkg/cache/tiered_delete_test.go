package cache_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/extauthz/extauthz/internal/redistest"
	"github.com/extauthz/extauthz/pkg/cache"
)

// TestTieredChannelSeparatesStores: a second kind of Tiered store on its
// own channel neither receives the first kind's invalidations (its entries
// stay) nor counts among the replicas that must confirm them.
func TestTieredChannelSeparatesStores(t *testing.T) {
	srv := redistest.Start(t)
	now := newFakeNow()
	co := cache.RedisClientOptions{URL: "redis://" + srv.Addr()}
	const other = "extauthz:v1:invalidate:other"
	a := newReplicaOn(t, co, now, true, nil, "")
	newReplicaOn(t, co, now, true, nil, "") // b, a second replica of the first kind
	x := newReplicaOn(t, co, now, true, nil, other)
	waitSubscribers(t, srv.Addr(), 2)
	waitChannelSubscribers(t, srv.Addr(), other, 1)
	ctx := context.Background()
	if _, err := x.t.Add(ctx, k, []byte{0, 'x'}, time.Hour); err != nil {
		t.Fatal(err)
	}
	inv, err := a.t.Invalidate(ctx, k)
	if err != nil || inv.Replicas != 2 || inv.Acknowledged != 2 {
		t.Fatalf("Invalidate on the default channel = %+v, %v; want 2 of 2 (a and b only)", inv, err)
	}
	if v, ok, _ := x.local[0].Get(ctx, k); !ok || string(v) != "\x00x" {
		t.Fatalf("the store on another channel dropped its entry: %q %v", v, ok)
	}
	inv, err = x.t.Invalidate(ctx, k)
	if err != nil || inv.Replicas != 1 || inv.Acknowledged != 1 {
		t.Fatalf("Invalidate on %s = %+v, %v; want 1 of 1", other, inv, err)
	}
}

// TestTieredDeleteReachesEveryTier: after a confirmed Delete no replica
// serves the key, from its local tiers (sticky included) or from Redis.
func TestTieredDeleteReachesEveryTier(t *testing.T) {
	srv := redistest.Start(t)
	now := newFakeNow()
	a, b := newReplica(t, srv.Addr(), now, true), newReplica(t, srv.Addr(), now, true)
	waitSubscribers(t, srv.Addr(), 2)
	ctx := context.Background()
	other := cache.KeyOf("ns", "another token")
	if _, err := a.t.Add(ctx, k, []byte{0, 'v'}, time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, err := a.t.Add(ctx, other, []byte{0, 'o'}, time.Hour); err != nil {
		t.Fatal(err)
	}
	for _, key := range []cache.Key{k, other} {
		if _, ok, _ := b.t.Get(ctx, key); !ok {
			t.Fatal("warm-up miss")
		}
	}
	inv, err := a.t.Delete(ctx, k)
	if err != nil || inv.Replicas != 2 || inv.Acknowledged != 2 || !inv.Complete() {
		t.Fatalf("Delete = %+v, %v; want 2 of 2 confirmed", inv, err)
	}
	for name, r := range map[string]*replica{"a": a, "b": b} {
		if v, ok, err := r.t.Get(ctx, k); ok || err != nil {
			t.Fatalf("replica %s still reads %q (%v) after Delete", name, v, err)
		}
		if _, ok, _ := r.t.Get(ctx, other); !ok {
			t.Fatalf("replica %s lost another key", name)
		}
	}
	if n, err := redistest.Do(srv.Addr(), "EXISTS", k.String()); err != nil || n != int64(0) {
		t.Fatalf("EXISTS %s = %v, %v; want 0", k, n, err)
	}

	// A sticky entry goes too: Delete is the explicit removal.
	if _, err := a.t.Replace(ctx, k, []byte{1, 'r'}, time.Hour); err != nil {
		t.Fatal(err)
	}
	if inv, err := b.t.Delete(ctx, k); err != nil || !inv.Complete() {
		t.Fatalf("Delete = %+v, %v", inv, err)
	}
	for name, r := range map[string]*replica{"a": a, "b": b} {
		if v, ok, _ := r.t.Get(ctx, k); ok {
			t.Fatalf("replica %s still reads the sticky %q after Delete", name, v)
		}
	}
}

func TestTieredDeleteWithoutSharedTier(t *testing.T) {
	now := newFakeNow()
	local := []*cache.Memory[cache.Key, []byte]{cache.NewMemory[cache.Key, []byte](cache.MemoryOptions{MaxEntries: 10, Now: now.Now})}
	tr, err := cache.NewTiered(cache.TieredOptions[[]byte]{Local: locals(local...), Place: func([]byte) int { return 0 }, Now: now.Now})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := tr.Add(ctx, k, []byte("v"), time.Minute); err != nil {
		t.Fatal(err)
	}
	inv, err := tr.Delete(ctx, k)
	if !errors.Is(err, cache.ErrNoSharedTier) || !inv.Complete() {
		t.Fatalf("Delete = %+v, %v", inv, err)
	}
	if _, ok, _ := tr.Get(ctx, k); ok {
		t.Fatal("deleted entry still served")
	}
}

// TestTieredDeleteWithRedisDown: the local copy goes, and the caller
// learns that the shared tier could not be reached.
func TestTieredDeleteWithRedisDown(t *testing.T) {
	srv := redistest.Start(t)
	now := newFakeNow()
	a := newReplica(t, srv.Addr(), now, false)
	ctx := context.Background()
	if _, err := a.t.Add(ctx, k, []byte{0, 'v'}, time.Hour); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	if _, err := a.t.Delete(ctx, k); err == nil {
		t.Fatal("Delete with Redis down reported success")
	}
	if _, ok, _ := a.local[0].Get(ctx, k); ok {
		t.Fatal("the local copy survived Delete")
	}
}
