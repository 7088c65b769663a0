package cache_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/extauthz/extauthz/internal/redistest"
	"github.com/extauthz/extauthz/pkg/cache"
)

// k is the key the tests use.
var k = cache.KeyOf("ns", "a token")

// bytesCodec stores []byte as is; the first byte picks the local tier.
type bytesCodec struct{}

func (bytesCodec) Encode(v []byte) ([]byte, error) { return v, nil }
func (bytesCodec) Decode(b []byte) ([]byte, error) { return b, nil }

type fakeNow struct{ ns atomic.Int64 }

func newFakeNow() *fakeNow                 { f := &fakeNow{}; f.ns.Store(time.Now().UnixNano()); return f }
func (f *fakeNow) Now() time.Time          { return time.Unix(0, f.ns.Load()) }
func (f *fakeNow) Advance(d time.Duration) { f.ns.Add(int64(d)) }

// countLookups counts lookups by tier and result.
type countLookups struct {
	cache.NopObserver
	redisHits, redisMisses atomic.Int64
}

func (c *countLookups) Lookup(tier string, hit bool) {
	if tier == "redis" {
		if hit {
			c.redisHits.Add(1)
		} else {
			c.redisMisses.Add(1)
		}
	}
}

// locals lists Memory stores as the local tiers of a Tiered store.
func locals[V any](ms ...*cache.Memory[cache.Key, V]) []cache.LocalTier[V] {
	l := make([]cache.LocalTier[V], len(ms))
	for i, m := range ms {
		l[i] = m
	}
	return l
}

// replica is one gateway's tiered store over a shared Redis.
type replica struct {
	t     *cache.Tiered[[]byte]
	local []*cache.Memory[cache.Key, []byte]
	obs   *countLookups
}

func newReplica(t *testing.T, addr string, now *fakeNow, run bool) *replica {
	t.Helper()
	return newReplicaWith(t, cache.RedisClientOptions{URL: "redis://" + addr}, now, run)
}

func newReplicaWith(t *testing.T, co cache.RedisClientOptions, now *fakeNow, run bool) *replica {
	t.Helper()
	return newReplicaWrapped(t, co, now, run, nil)
}

// newReplicaWrapped is newReplicaWith whose shared tier, if wrap is not
// nil, is wrap of the Redis one.
func newReplicaWrapped(t *testing.T, co cache.RedisClientOptions, now *fakeNow, run bool, wrap func(cache.Shared) cache.Shared) *replica {
	t.Helper()
	return newReplicaOn(t, co, now, run, wrap, "")
}

// newReplicaOn is newReplicaWrapped whose invalidations travel on channel
// ("": the default).
func newReplicaOn(t *testing.T, co cache.RedisClientOptions, now *fakeNow, run bool, wrap func(cache.Shared) cache.Shared, channel string) *replica {
	t.Helper()
	return newReplicaTweaked(t, co, now, run, wrap, func(o *cache.TieredOptions[[]byte]) { o.Channel = channel })
}

// newReplicaTweaked is newReplicaWrapped whose options tweak changes.
func newReplicaTweaked(t *testing.T, co cache.RedisClientOptions, now *fakeNow, run bool, wrap func(cache.Shared) cache.Shared, tweak func(*cache.TieredOptions[[]byte])) *replica {
	t.Helper()
	co.Timeout = time.Second
	client, err := cache.NewRedisClient(co)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	r := &replica{obs: &countLookups{}}
	r.local = []*cache.Memory[cache.Key, []byte]{
		cache.NewMemory[cache.Key, []byte](cache.MemoryOptions{MaxEntries: 100, Now: now.Now}),
		cache.NewMemory[cache.Key, []byte](cache.MemoryOptions{MaxEntries: 100, Now: now.Now}),
	}
	var shared cache.Shared = cache.NewRedis(client, cache.RedisOptions{Timeout: time.Second, Now: now.Now})
	if wrap != nil {
		shared = wrap(shared)
	}
	o := cache.TieredOptions[[]byte]{
		Local:    locals(r.local...),
		Place:    func(v []byte) int { return int(v[0]) },
		Sticky:   []int{1}, // values starting with 1 stand for revocations
		Shared:   shared,
		Codec:    bytesCodec{},
		Now:      now.Now,
		Observer: r.obs,
	}
	if tweak != nil {
		tweak(&o)
	}
	r.t, err = cache.NewTiered(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.t.Close(context.Background()) })
	if run {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { r.t.Run(ctx); close(done) }()
		t.Cleanup(func() { cancel(); <-done })
	}
	return r
}

// waitSubscribers waits until n clients follow the invalidation channel.
func waitSubscribers(t *testing.T, addr string, n int64) {
	t.Helper()
	waitChannelSubscribers(t, addr, cache.InvalidationChannel, n)
}

// waitChannelSubscribers waits until n clients follow channel.
func waitChannelSubscribers(t *testing.T, addr, channel string, n int64) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		reply, err := redistest.Do(addr, "PUBSUB", "NUMSUB", channel)
		if arr, ok := reply.([]any); err == nil && ok && len(arr) == 2 && arr[1] == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("subscribers never reached %d (last %v, %v)", n, reply, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestTieredSharedHitFillsLocalWithRemainingLifetime(t *testing.T) {
	srv := redistest.Start(t)
	now := newFakeNow()
	a, b := newReplica(t, srv.Addr(), now, false), newReplica(t, srv.Addr(), now, false)
	ctx := context.Background()
	if v, err := a.t.Add(ctx, k, []byte{0, 'v'}, 10*time.Second); err != nil || string(v) != "\x00v" {
		t.Fatalf("Add: %q %v", v, err)
	}
	now.Advance(4 * time.Second)
	v, ok, err := b.t.Get(ctx, k)
	if !ok || err != nil || string(v) != "\x00v" || b.obs.redisHits.Load() != 1 {
		t.Fatalf("B: %q %v %v, redis hits %d; want a shared hit", v, ok, err, b.obs.redisHits.Load())
	}
	_, exp, ok, _ := b.local[0].GetExpiry(ctx, k)
	// The shared entry keeps millisecond expiries.
	if left := exp.Sub(now.Now()); !ok || left > 6*time.Second || left < 6*time.Second-time.Millisecond {
		t.Fatalf("B's local copy expires at %v (in %v); want the shared entry's remaining 6s", exp, exp.Sub(now.Now()))
	}
	if _, _, err := b.t.Get(ctx, k); err != nil || b.obs.redisHits.Load() != 1 {
		t.Fatalf("second read went to Redis again (hits %d)", b.obs.redisHits.Load())
	}
	now.Advance(6*time.Second + time.Millisecond)
	if _, ok, _ := b.t.Get(ctx, k); ok {
		t.Fatal("entry outlived its lifetime")
	}
}

func TestTieredAddLosesToExistingEntry(t *testing.T) {
	srv := redistest.Start(t)
	now := newFakeNow()
	a, b := newReplica(t, srv.Addr(), now, false), newReplica(t, srv.Addr(), now, false)
	ctx := context.Background()
	if err := a.t.Set(ctx, k, []byte{1, 'r'}, time.Hour); err != nil {
		t.Fatal(err)
	}
	v, err := b.t.Add(ctx, k, []byte{0, 'v'}, time.Minute)
	if err != nil || string(v) != "\x01r" {
		t.Fatalf("Add returned %q, %v; want the entry already there", v, err)
	}
	if got, ok, _ := b.local[1].Get(ctx, k); !ok || string(got) != "\x01r" {
		t.Fatalf("B's local tier holds %q %v; want the winner", got, ok)
	}
	if _, ok, _ := b.local[0].Get(ctx, k); ok {
		t.Fatal("the loser was kept locally")
	}
}

func TestTieredInvalidateReachesEveryReplica(t *testing.T) {
	srv := redistest.Start(t)
	now := newFakeNow()
	a, b, c := newReplica(t, srv.Addr(), now, true), newReplica(t, srv.Addr(), now, true), newReplica(t, srv.Addr(), now, true)
	waitSubscribers(t, srv.Addr(), 3)
	ctx := context.Background()
	if _, err := a.t.Add(ctx, k, []byte{0, 'v'}, time.Hour); err != nil {
		t.Fatal(err)
	}
	for _, r := range []*replica{b, c} {
		if _, ok, _ := r.t.Get(ctx, k); !ok {
			t.Fatal("warm-up miss")
		}
	}
	// Revoke: replace the entry everywhere, then have every replica drop its copy.
	if err := a.t.Set(ctx, k, []byte{1, 'r'}, time.Hour); err != nil {
		t.Fatal(err)
	}
	inv, err := a.t.Invalidate(ctx, k)
	if err != nil || inv.Replicas != 3 || inv.Acknowledged != 3 || !inv.Complete() {
		t.Fatalf("Invalidate = %+v, %v; want 3 of 3 confirmed", inv, err)
	}
	// Confirmed means dropped: the very next read anywhere sees the revocation.
	for i, r := range []*replica{b, c} {
		if v, ok, _ := r.t.Get(ctx, k); !ok || string(v) != "\x01r" {
			t.Fatalf("replica %d reads %q %v after a confirmed invalidation", i, v, ok)
		}
	}
}

func TestTieredResubscribeClearsLocal(t *testing.T) {
	srv := redistest.Start(t)
	now := newFakeNow()
	b := newReplica(t, srv.Addr(), now, true)
	waitSubscribers(t, srv.Addr(), 1)
	ctx := context.Background()
	if _, err := b.t.Add(ctx, k, []byte{0, 'v'}, time.Hour); err != nil {
		t.Fatal(err)
	}
	// While Redis is gone, invalidations cannot reach b.
	srv.Stop()
	srv.Restart()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, ok, _ := b.local[0].Get(ctx, k); !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the local tier was not cleared after the subscription came back")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestTieredWithoutSharedTierIsLocal(t *testing.T) {
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
	if v, ok, _ := tr.Get(ctx, k); !ok || string(v) != "v" {
		t.Fatalf("Get = %q %v", v, ok)
	}
	inv, err := tr.Invalidate(ctx, k)
	if !errors.Is(err, cache.ErrNoSharedTier) || !inv.Complete() {
		t.Fatalf("Invalidate = %+v, %v", inv, err)
	}
	if _, ok, _ := tr.Get(ctx, k); ok {
		t.Fatal("invalidated entry still served")
	}
	tr.Run(ctx) // returns at once without a shared tier
}

func TestTieredSharedDownIsAMissNotAFailure(t *testing.T) {
	srv := redistest.Start(t)
	now := newFakeNow()
	a := newReplica(t, srv.Addr(), now, false)
	srv.Stop()
	ctx := context.Background()
	if v, _ := a.t.Add(ctx, k, []byte{0, 'v'}, time.Minute); string(v) != "\x00v" {
		t.Fatalf("Add with Redis down returned %q", v)
	}
	if v, ok, _ := a.t.Get(ctx, k); !ok || string(v) != "\x00v" {
		t.Fatalf("local copy lost with Redis down: %q %v", v, ok)
	}
	if _, ok, _ := a.t.Get(ctx, cache.KeyOf("ns", "other")); ok {
		t.Fatal("hit for a key never stored")
	}
}

// TestTieredInvalidateInCluster: in a Cluster, PUBLISH counts only the
// subscribers of the node that takes it; the count must still cover every
// replica, or an invalidation would be reported complete too early.
func TestTieredInvalidateInCluster(t *testing.T) {
	cl := redistest.StartCluster(t, 3)
	now := newFakeNow()
	var rs []*replica
	for i := 0; i < 3; i++ {
		rs = append(rs, newReplicaWith(t, cache.RedisClientOptions{ClusterAddrs: cl.Addrs()}, now, true))
	}
	ctx := context.Background()
	deadline := time.Now().Add(20 * time.Second)
	for i := 0; ; i++ {
		// Until all three subscriptions are up, fewer receive it.
		inv, err := rs[i%3].t.Invalidate(ctx, k)
		if err == nil && inv.Replicas == 3 && inv.Acknowledged == 3 && inv.Complete() {
			break
		}
		if inv.Replicas > 3 || time.Now().After(deadline) {
			t.Fatalf("Invalidate = %+v, %v; want 3 of 3", inv, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Every replica, whichever node its publishes would otherwise land on.
	for i, r := range rs {
		for j := 0; j < 5; j++ {
			if inv, err := r.t.Invalidate(ctx, k); err != nil || inv.Replicas != 3 || inv.Acknowledged != 3 {
				t.Fatalf("replica %d, try %d: %+v, %v", i, j, inv, err)
			}
		}
	}
}

func TestInvalidationReachingNobodyIsNotComplete(t *testing.T) {
	if (cache.Invalidation{}).Complete() {
		t.Fatal("an invalidation received by no one reported complete")
	}
}

// TestTieredReplaceHoldsWithoutRedis: a value stored with Replace (a
// revocation) is held by every replica's own tier, so it stays in force
// when Redis goes down, is not overwritten by a verification finishing
// late, and survives the clearing after the subscription comes back.
func TestTieredReplaceHoldsWithoutRedis(t *testing.T) {
	srv := redistest.Start(t)
	now := newFakeNow()
	a, b := newReplica(t, srv.Addr(), now, true), newReplica(t, srv.Addr(), now, true)
	waitSubscribers(t, srv.Addr(), 2)
	ctx := context.Background()
	if _, err := a.t.Add(ctx, k, []byte{0, 'v'}, time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := b.t.Get(ctx, k); !ok {
		t.Fatal("warm-up miss")
	}
	inv, err := a.t.Replace(ctx, k, []byte{1, 'r'}, time.Hour)
	if err != nil || !inv.Complete() || inv.Replicas != 2 {
		t.Fatalf("Replace = %+v, %v; want 2 of 2 confirmed", inv, err)
	}
	srv.Stop()
	for name, r := range map[string]*replica{"a": a, "b": b} {
		if v, ok, _ := r.t.Get(ctx, k); !ok || string(v) != "\x01r" {
			t.Fatalf("replica %s reads %q %v with Redis down, want the revocation", name, v, ok)
		}
		if v, _ := r.t.Add(ctx, k, []byte{0, 'v'}, time.Hour); string(v) != "\x01r" {
			t.Fatalf("replica %s: a late verification replaced the revocation: %q", name, v)
		}
	}
	srv.Restart()
	// The subscription comes back (and the non-sticky tiers are cleared);
	// the revocation is still held although Redis restarted empty.
	waitSubscribers(t, srv.Addr(), 2)
	for name, r := range map[string]*replica{"a": a, "b": b} {
		if v, ok, _ := r.local[1].Get(ctx, k); !ok || string(v) != "\x01r" {
			t.Fatalf("replica %s lost the revocation after resubscribing: %q %v", name, v, ok)
		}
	}
}

func TestTieredReplaceWithoutSharedTier(t *testing.T) {
	now := newFakeNow()
	local := []*cache.Memory[cache.Key, []byte]{
		cache.NewMemory[cache.Key, []byte](cache.MemoryOptions{MaxEntries: 10, Now: now.Now}),
		cache.NewMemory[cache.Key, []byte](cache.MemoryOptions{MaxEntries: 10, Now: now.Now}),
	}
	tr, err := cache.NewTiered(cache.TieredOptions[[]byte]{Local: locals(local...), Place: func(v []byte) int { return int(v[0]) }, Sticky: []int{1}, Now: now.Now})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := tr.Add(ctx, k, []byte{0, 'v'}, time.Minute); err != nil {
		t.Fatal(err)
	}
	if inv, err := tr.Replace(ctx, k, []byte{1, 'r'}, time.Minute); !errors.Is(err, cache.ErrNoSharedTier) || !inv.Complete() {
		t.Fatalf("Replace = %+v, %v", inv, err)
	}
	if v, ok, _ := tr.Get(ctx, k); !ok || string(v) != "\x01r" {
		t.Fatalf("Get after Replace = %q %v, want the revocation", v, ok)
	}
	if v, _ := tr.Add(ctx, k, []byte{0, 'v'}, time.Minute); string(v) != "\x01r" {
		t.Fatalf("Add replaced the revocation: %q", v)
	}
	if _, err := cache.NewTiered(cache.TieredOptions[[]byte]{Local: locals(local...), Place: func([]byte) int { return 0 }, Sticky: []int{2}}); err == nil {
		t.Fatal("a sticky tier that does not exist was accepted")
	}
}
