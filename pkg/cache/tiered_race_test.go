package cache_test

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/extauthz/extauthz/internal/redistest"
	"github.com/extauthz/extauthz/pkg/cache"
)

// gatedShared is a real shared tier whose Add or GetExpiry can be held at
// one point of its round trip, so that a test decides what lands while a
// verification (or a shared hit) is on its way back from Redis.
type gatedShared struct {
	cache.Shared

	mu   sync.Mutex
	gate *gate
}

// gate holds the next call of op: before it reaches Redis (the request is
// still on the wire, or Redis is hung) or after Redis answered (the reply
// is on the wire).
type gate struct {
	op       string // "add" or "get"
	before   bool
	entered  chan struct{}
	released chan struct{}
}

// hold arms a gate for the next call of op and returns it.
func (g *gatedShared) hold(op string, before bool) *gate {
	gt := &gate{op: op, before: before, entered: make(chan struct{}), released: make(chan struct{})}
	g.mu.Lock()
	g.gate = gt
	g.mu.Unlock()
	return gt
}

// take returns the armed gate for op, disarming it.
func (g *gatedShared) take(op string) *gate {
	g.mu.Lock()
	defer g.mu.Unlock()
	gt := g.gate
	if gt == nil || gt.op != op {
		return nil
	}
	g.gate = nil
	return gt
}

func (gt *gate) wait(before bool) {
	if gt != nil && gt.before == before {
		close(gt.entered)
		<-gt.released
	}
}

func (g *gatedShared) Add(ctx context.Context, key string, v []byte, ttl time.Duration) (bool, error) {
	gt := g.take("add")
	gt.wait(true)
	added, err := g.Shared.Add(ctx, key, v, ttl)
	gt.wait(false)
	return added, err
}

func (g *gatedShared) GetExpiry(ctx context.Context, key string) ([]byte, time.Time, bool, error) {
	gt := g.take("get")
	gt.wait(true)
	b, exp, ok, err := g.Shared.GetExpiry(ctx, key)
	gt.wait(false)
	return b, exp, ok, err
}

// TestTieredRevocationDuringRoundTripHolds forces each interleaving of a
// revocation with a verified token's store (Add) or a shared hit's local
// fill (Get) whose Redis round trip is under way: whichever way the round
// trip ends, once the revocation has returned, no read on the revoking
// replica or on the other one may give the valid value again, and the call
// that was in flight returns the revocation.
func TestTieredRevocationDuringRoundTripHolds(t *testing.T) {
	valid, revoked := []byte{0, 'v'}, []byte{1, 'r'}
	cases := []struct {
		name string
		op   string // the call in flight on A: "add" or "get"
		// before: the call is held before Redis sees it; else after
		// Redis answered.
		before bool
		// by: the replica that revokes, "A" (the purge lands on the replica
		// whose call is in flight) or "B" (A learns of it by pub/sub).
		by string
		// redisDown: Redis goes away while the call is held (then it
		// fails, and the revocation holds on the revoking replica only).
		redisDown bool
	}{
		{name: "A verifies, SETNX done, A revokes", op: "add", by: "A"},
		{name: "A verifies, SETNX done, B revokes", op: "add", by: "B"},
		{name: "A verifies, SETNX not sent, A revokes", op: "add", before: true, by: "A"},
		{name: "A verifies, SETNX not sent, B revokes", op: "add", before: true, by: "B"},
		{name: "A verifies, Redis goes down, A revokes", op: "add", before: true, by: "A", redisDown: true},
		{name: "A reads a shared hit, B revokes", op: "get", by: "B"},
		{name: "A reads a shared hit, A revokes", op: "get", by: "A"},
		{name: "A reads a shared hit, Redis goes down, A revokes", op: "get", by: "A", redisDown: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := redistest.Start(t)
			now := newFakeNow()
			g := &gatedShared{}
			wrap := func(s cache.Shared) cache.Shared { g.Shared = s; return g }
			a := newReplicaWrapped(t, cache.RedisClientOptions{URL: "redis://" + srv.Addr()}, now, true, wrap)
			b := newReplica(t, srv.Addr(), now, true)
			waitSubscribers(t, srv.Addr(), 2)
			ctx := context.Background()
			if tc.op == "get" {
				// B verified the token: Redis holds it, A has never seen it.
				if _, err := b.t.Add(ctx, k, valid, time.Hour); err != nil {
					t.Fatal(err)
				}
			}

			gt := g.hold(tc.op, tc.before)
			type result struct {
				v   []byte
				err error
			}
			done := make(chan result, 1)
			go func() {
				var r result
				if tc.op == "add" {
					r.v, r.err = a.t.Add(ctx, k, valid, time.Hour)
				} else {
					r.v, _, r.err = a.t.Get(ctx, k)
				}
				done <- r
			}()
			<-gt.entered

			if tc.redisDown {
				srv.Stop()
			}
			by := map[string]*replica{"A": a, "B": b}[tc.by]
			inv, err := by.t.Replace(ctx, k, revoked, time.Hour)
			switch {
			case tc.redisDown && err == nil:
				t.Fatalf("Replace with Redis down = %+v, nil; want an error", inv)
			case !tc.redisDown && (err != nil || !inv.Complete() || inv.Replicas != 2):
				t.Fatalf("Replace = %+v, %v; want 2 of 2 confirmed", inv, err)
			}
			// The revocation has been answered: from now on, no read may
			// allow the token, however the call in flight ends.
			close(gt.released)
			r := <-done
			if string(r.v) != string(revoked) {
				t.Errorf("the %s in flight returned %q (err %v); want the revocation that landed first", tc.op, r.v, r.err)
			}
			readers := []*replica{a, b}
			if tc.redisDown {
				readers = readers[:1] // B was never told: the 503 case
			}
			for i, r := range readers {
				if v, ok, _ := r.t.Get(ctx, k); !ok || string(v) != string(revoked) {
					t.Errorf("replica %c reads %q %v after the revocation returned", 'A'+i, v, ok)
				}
				if _, ok, _ := r.local[0].Get(ctx, k); ok {
					t.Errorf("replica %c keeps the valid value beside the revocation", 'A'+i)
				}
			}
			if v, _ := a.t.Add(ctx, k, valid, time.Hour); string(v) != string(revoked) {
				t.Errorf("a later verification on A replaced the revocation: %q", v)
			}
		})
	}
}

// TestTieredRevocationRacesLocalStore runs a verification's store (Add)
// and a revocation (Replace) of the same key at the same moment, many
// times, on one replica without a shared tier, where the only window is
// between the local tiers: a read that starts after Replace returned must
// find the revocation, and so must every read once both are done.
func TestTieredRevocationRacesLocalStore(t *testing.T) {
	now := newFakeNow()
	local := []*cache.Memory[cache.Key, []byte]{
		cache.NewMemory[cache.Key, []byte](cache.MemoryOptions{MaxEntries: 1 << 16, Now: now.Now}),
		cache.NewMemory[cache.Key, []byte](cache.MemoryOptions{MaxEntries: 1 << 16, Now: now.Now}),
	}
	tr, err := cache.NewTiered(cache.TieredOptions[[]byte]{Local: locals(local...), Place: func(v []byte) int { return int(v[0]) }, Sticky: []int{1}, Now: now.Now})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	valid, revoked := []byte{0, 'v'}, []byte{1, 'r'}
	const trials = 20000
	var afterReplace, afterBoth int
	for i := range trials {
		key := cache.KeyOf("ns", strconv.Itoa(i))
		start := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, _ = tr.Add(ctx, key, valid, time.Hour)
		}()
		close(start)
		if _, err := tr.Replace(ctx, key, revoked, time.Hour); err != nil && !errors.Is(err, cache.ErrNoSharedTier) {
			t.Fatal(err)
		}
		if v, _, _ := tr.Get(ctx, key); string(v) != string(revoked) {
			afterReplace++
		}
		wg.Wait()
		if v, _, _ := tr.Get(ctx, key); string(v) != string(revoked) {
			afterBoth++
		}
	}
	if afterReplace+afterBoth > 0 {
		t.Fatalf("of %d races, %d reads right after the revocation and %d after both calls did not find it", trials, afterReplace, afterBoth)
	}
}

// pausingTier is a local tier whose next Set pauses twice: before it
// stores the value, and once it has stored it — a store caught half-way.
type pausingTier struct {
	*cache.Memory[cache.Key, []byte]
	armed                 atomic.Bool
	before, stored        chan struct{} // closed when Set reaches each pause
	goOn, goOnAfterStored chan struct{} // closed by the test to resume
}

func (p *pausingTier) Set(ctx context.Context, key cache.Key, v []byte, ttl time.Duration) error {
	if !p.armed.CompareAndSwap(true, false) {
		return p.Memory.Set(ctx, key, v, ttl)
	}
	close(p.before)
	<-p.goOn
	err := p.Memory.Set(ctx, key, v, ttl)
	close(p.stored)
	<-p.goOnAfterStored
	return err
}

// TestTieredRevocationDuringLocalStore catches a verification's store
// (Add) about to put the valid value in its tier, after it looked for a
// revocation and found none, and revokes then. The revocation may wait for
// that store to finish; if it does not, a read after it returned must find
// it, also once the store has put the valid value in — which reads try
// first. And the store, when it ends, must not have removed it.
func TestTieredRevocationDuringLocalStore(t *testing.T) {
	now := newFakeNow()
	validTier := &pausingTier{
		Memory: cache.NewMemory[cache.Key, []byte](cache.MemoryOptions{MaxEntries: 10, Now: now.Now}),
		before: make(chan struct{}), stored: make(chan struct{}),
		goOn: make(chan struct{}), goOnAfterStored: make(chan struct{}),
	}
	revokedTier := cache.NewMemory[cache.Key, []byte](cache.MemoryOptions{MaxEntries: 10, Now: now.Now})
	tr, err := cache.NewTiered(cache.TieredOptions[[]byte]{
		Local:  []cache.LocalTier[[]byte]{validTier, revokedTier},
		Place:  func(v []byte) int { return int(v[0]) },
		Sticky: []int{1},
		Now:    now.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	valid, revoked := []byte{0, 'v'}, []byte{1, 'r'}
	validTier.armed.Store(true)
	added := make(chan struct{})
	go func() { _, _ = tr.Add(ctx, k, valid, time.Hour); close(added) }()
	<-validTier.before
	replaced := make(chan struct{})
	go func() { _, _ = tr.Replace(ctx, k, revoked, time.Hour); close(replaced) }()
	// The revocation may have to wait for the store; if it does not, it
	// returns within this bound (a bound on waiting, not an assertion:
	// a revocation that waits is right).
	select {
	case <-replaced:
		close(validTier.goOn)
		<-validTier.stored
		if v, _, _ := tr.Get(ctx, k); string(v) != string(revoked) {
			t.Errorf("a read after the revocation returned, with a store half-way, found %q", v)
		}
	case <-time.After(200 * time.Millisecond):
		close(validTier.goOn)
	}
	close(validTier.goOnAfterStored)
	<-added
	<-replaced
	if v, _, _ := tr.Get(ctx, k); string(v) != string(revoked) {
		t.Errorf("once both returned, a read finds %q; want the revocation", v)
	}
	if v, _ := tr.Add(ctx, k, valid, time.Hour); string(v) != string(revoked) {
		t.Errorf("a later verification replaced the revocation: %q", v)
	}
}
