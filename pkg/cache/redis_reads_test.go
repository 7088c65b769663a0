package cache_test

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/extauthz/extauthz/internal/redistest"
	"github.com/extauthz/extauthz/pkg/cache"
)

// Concurrent lookups through the read batcher each get their own key's value (or a miss),
// however the batches form.
func TestRedisBatchedReadsAnswerEachKey(t *testing.T) {
	t.Parallel()
	t.Run("standalone", func(t *testing.T) {
		t.Parallel()
		srv := redistest.Start(t)
		batchedReads(t, newClient(t, cache.RedisClientOptions{URL: "redis://" + srv.Addr()}))
	})
	t.Run("cluster", func(t *testing.T) {
		t.Parallel()
		cl := redistest.StartCluster(t, 3) // a batch's keys spread over the nodes
		batchedReads(t, newClient(t, cache.RedisClientOptions{ClusterAddrs: cl.Addrs()}))
	})
}

func batchedReads(t *testing.T, client redis.UniversalClient) {
	r := cache.NewRedis(client, cache.RedisOptions{Timeout: semanticsTimeout, BatchReads: true})
	ctx := t.Context()
	const keys = 200
	for i := range keys {
		if i%3 == 0 {
			continue // a third are misses
		}
		if err := r.Set(ctx, "k"+strconv.Itoa(i), []byte("v"+strconv.Itoa(i)), time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	for g := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range 20 * keys / 64 {
				i := (g*31 + n*7) % keys
				v, ok, err := r.Get(ctx, "k"+strconv.Itoa(i))
				switch {
				case err != nil:
					t.Errorf("Get k%d: %v", i, err)
				case i%3 == 0 && ok:
					t.Errorf("Get k%d = %q; want a miss", i, v)
				case i%3 != 0 && (!ok || string(v) != "v"+strconv.Itoa(i)):
					t.Errorf("Get k%d = %q %v; want v%d", i, v, ok, i)
				}
			}
		}()
	}
	wg.Wait()
}

// A batched read that outlives its caller's deadline is a miss with an error, on time.
func TestRedisBatchedReadKeepsItsBudget(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	client := newClient(t, cache.RedisClientOptions{URL: "redis://" + srv.Addr(), Timeout: time.Hour, DialTimeout: time.Hour})
	r := cache.NewRedis(client, cache.RedisOptions{Timeout: 50 * time.Millisecond, BatchReads: true})
	ctx := t.Context()
	if _, _, err := r.Get(ctx, "warm"); err != nil {
		t.Fatal(err)
	}
	srv.Freeze()
	t.Cleanup(srv.Thaw)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			done := make(chan struct{})
			go func() {
				defer close(done)
				if _, ok, err := r.Get(ctx, "k"); ok || err == nil {
					t.Errorf("Get on a frozen Redis = %v, %v; want a miss with an error", ok, err)
				}
			}()
			waitFor(t, done, "a batched Get on a frozen Redis")
		}()
	}
	wg.Wait()
}

// BenchmarkRedisGetParallel compares one GET per pooled connection with batched GETs, for many
// concurrent lookups (hits), and reports the CPU each costs per hit: this process's
// (client-cpu-ns/op) and redis-server's (server-cpu-ns/op). Wall time is meaningless on a
// shared box; the CPU figures, compared within one run, are what to read.
func BenchmarkRedisGetParallel(b *testing.B) {
	srv := redistest.Start(b)
	for _, c := range []struct {
		batched bool
		par     int
	}{{false, 32}, {true, 32}, {false, 1}, {true, 1}} {
		batched := c.batched
		name := "pool"
		if batched {
			name = "batched"
		}
		b.Run(name+"/goroutines-per-cpu="+strconv.Itoa(c.par), func(b *testing.B) {
			client, err := cache.NewRedisClient(cache.RedisClientOptions{URL: "redis://" + srv.Addr(), Timeout: time.Second})
			if err != nil {
				b.Fatal(err)
			}
			defer client.Close()
			r := cache.NewRedis(client, cache.RedisOptions{Timeout: time.Second, BatchReads: batched})
			ctx := context.Background()
			const keys = 1024
			for i := range keys {
				if err := r.Set(ctx, "k"+strconv.Itoa(i), make([]byte, 120), time.Hour); err != nil {
					b.Fatal(err)
				}
			}
			b.SetParallelism(c.par)
			b.ReportAllocs()
			cpu0, srv0 := processCPU(), serverCPU(b, srv.Addr())
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					i++
					if _, ok, err := r.Get(ctx, "k"+strconv.Itoa(i%keys)); !ok || err != nil {
						b.Errorf("Get: %v %v", ok, err)
						return
					}
				}
			})
			b.StopTimer()
			b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N), "client-cpu-ns/op")
			b.ReportMetric(float64(serverCPU(b, srv.Addr())-srv0)/float64(b.N), "server-cpu-ns/op")
		})
	}
}

// processCPU is this process's user and system CPU time, in nanoseconds.
func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// serverCPU is redis-server's user and system CPU time, from INFO cpu.
func serverCPU(tb testing.TB, addr string) time.Duration {
	reply, err := redistest.Do(addr, "INFO", "cpu")
	if err != nil {
		tb.Fatal(err)
	}
	s, _ := reply.(string)
	var total float64
	for _, line := range strings.Split(s, "\n") {
		name, val, ok := strings.Cut(strings.TrimSpace(line), ":")
		if ok && (name == "used_cpu_sys" || name == "used_cpu_user") {
			f, _ := strconv.ParseFloat(val, 64)
			total += f
		}
	}
	return time.Duration(total * float64(time.Second))
}
