package cache_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/extauthz/extauthz/internal/redistest"
	"github.com/extauthz/extauthz/internal/testkit"
	"github.com/extauthz/extauthz/pkg/cache"
)

// One batch applies its writes in order, keys spread over a cluster's nodes included: an add
// stores where nothing live is held and returns what is held otherwise, a delete after a set of
// the same key leaves it absent, and a set after a delete leaves it present.
func TestRedisWriteBatch(t *testing.T) {
	t.Parallel()
	t.Run("standalone", func(t *testing.T) {
		t.Parallel()
		srv := redistest.Start(t)
		writeBatch(t, newClient(t, cache.RedisClientOptions{URL: "redis://" + srv.Addr()}))
	})
	t.Run("cluster", func(t *testing.T) {
		t.Parallel()
		cl := redistest.StartCluster(t, 3)
		writeBatch(t, newClient(t, cache.RedisClientOptions{ClusterAddrs: cl.Addrs()}))
	})
}

func writeBatch(t *testing.T, client redis.UniversalClient) {
	clock := testkit.NewClockAt(cache.ClockStart)
	r := cache.NewRedis(client, cache.RedisOptions{Timeout: semanticsTimeout, WriteTimeout: semanticsTimeout, Now: clock.Now})
	ctx := t.Context()
	const n = 40
	held := func(i int) string { return "held" + strconv.Itoa(i) }
	for i := range n {
		if err := r.Set(ctx, held(i), []byte("old"+strconv.Itoa(i)), time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	exp := clock.Now().Add(time.Hour)
	var ops []cache.WriteOp
	for i := range n {
		s := strconv.Itoa(i)
		ops = append(ops,
			cache.WriteOp{Kind: cache.WriteAdd, Key: "new" + s, Value: []byte("v" + s), ExpiresAt: exp},
			cache.WriteOp{Kind: cache.WriteAdd, Key: held(i), Value: []byte("lost"), ExpiresAt: exp},
			cache.WriteOp{Kind: cache.WriteSet, Key: "gone" + s, Value: []byte("x"), ExpiresAt: exp},
			cache.WriteOp{Kind: cache.WriteDelete, Key: "gone" + s},
			cache.WriteOp{Kind: cache.WriteDelete, Key: "back" + s},
			cache.WriteOp{Kind: cache.WriteSet, Key: "back" + s, Value: []byte("b" + s), ExpiresAt: exp},
		)
	}
	r.WriteBatch(ctx, ops)
	for i, op := range ops {
		if op.Err != nil {
			t.Fatalf("op %d (%s): %v", i, op.Key, op.Err)
		}
	}
	for i := range n {
		s := strconv.Itoa(i)
		add, lost := ops[6*i], ops[6*i+1]
		if !add.Added {
			t.Errorf("add of new%s not stored", s)
		}
		if lost.Added || string(lost.Held) != "old"+s || !lost.HeldExpiry.Equal(exp.Truncate(time.Millisecond)) {
			t.Errorf("add of %s over a live entry: added %v, held %q until %v", held(i), lost.Added, lost.Held, lost.HeldExpiry)
		}
		for key, want := range map[string]string{"new" + s: "v" + s, held(i): "old" + s, "back" + s: "b" + s, "gone" + s: ""} {
			v, ok, err := r.Get(ctx, key)
			if err != nil || string(v) != want || ok != (want != "") {
				t.Errorf("%s = %q %v %v; want %q", key, v, ok, err, want)
			}
		}
	}
}
