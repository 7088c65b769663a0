package check_test

import (
	"context"
	"maps"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/extauthz/extauthz/internal/redisproc"
	"github.com/extauthz/extauthz/internal/redistest"
	"github.com/extauthz/extauthz/pkg/authz"
	"github.com/extauthz/extauthz/pkg/cache"
	"github.com/extauthz/extauthz/pkg/check"
	"github.com/extauthz/extauthz/pkg/verdict"
)

// BenchmarkCheckRedisHitParallel is the Redis-tier hit as the gateway serves it under load:
// 64 concurrent callers, the in-process tier off, every Check a GET to a private
// redis-server, with the gateway's read batching and its 25 ms budget. cpu-ns/op is this
// process's CPU per Check (redis-server's is apart).
func BenchmarkCheckRedisHitParallel(b *testing.B) {
	var srv *redistest.Server
	s, iss := benchServerWith(b, "RS256", func() authz.VerdictStore {
		t, err := cache.NewTiered(cache.TieredOptions[verdict.Verdict]{Shared: benchShared(b, &srv), Codec: verdict.Codec{}})
		if err != nil {
			b.Fatal(err)
		}
		return t
	})
	req := realisticRequest(b, iss)
	if resp, _ := s.Check(context.Background(), req); resp.GetStatus().GetCode() != 0 {
		b.Fatal("warm-up denied")
	}
	measureRedis(b, srv, func() { runParallelChecks(b, s, func() *authv3.CheckRequest { return req }) })
}

// BenchmarkCheckRedisRefill is the load tool's redis scenario in process: the service's
// verdict cache with an in-process tier of one entry, 512 tokens another replica verified,
// taken in turn by 64 concurrent callers. So every Check misses in process, reads the verdict
// from a private redis-server (batched, 25 ms budget), decodes it and refills the one entry.
func BenchmarkCheckRedisRefill(b *testing.B) {
	var srv *redistest.Server
	s, next := benchTurns(b, func() verdict.CacheOptions {
		return verdict.CacheOptions{MaxEntries: 1, MaxNegativeEntries: 1, Shared: benchShared(b, &srv)}
	})
	measureRedis(b, srv, func() { runParallelChecks(b, s, next) })
}

// BenchmarkCheckLocalHitTurns is BenchmarkCheckRedisRefill's in-process counterpart: the same
// 512 tokens in turn from 64 concurrent callers, each a hit in an in-process tier that holds
// them all, no shared tier. The difference between the two is what a Redis-tier hit adds.
func BenchmarkCheckLocalHitTurns(b *testing.B) {
	s, next := benchTurns(b, func() verdict.CacheOptions {
		return verdict.CacheOptions{MaxEntries: 2 * benchTurnTokens, MaxNegativeEntries: 1}
	})
	runParallelChecks(b, s, next)
}

// benchTurnTokens is how many tokens benchTurns takes in turn.
const benchTurnTokens = 512

// benchTurns builds a gateway on a verdict cache of the options opts returns and verifies
// benchTurnTokens tokens once through it, on a cold cache (so each verdict is written to the
// shared tier, if there is one); next returns their requests in turn, safe for concurrent use.
func benchTurns(b *testing.B, opts func() verdict.CacheOptions) (s *check.Server, next func() *authv3.CheckRequest) {
	s, iss := benchServerWith(b, "RS256", func() authz.VerdictStore {
		t, err := verdict.NewCache(opts())
		if err != nil {
			b.Fatal(err)
		}
		return t
	})
	reqs := make([]*authv3.CheckRequest, benchTurnTokens)
	for i := range reqs {
		reqs[i] = realisticRequest(b, iss)
		if resp, _ := s.Check(context.Background(), reqs[i]); resp.GetStatus().GetCode() != 0 {
			b.Fatal("warm-up denied")
		}
	}
	var n atomic.Uint64
	return s, func() *authv3.CheckRequest { return reqs[n.Add(1)%benchTurnTokens] }
}

// benchShared is the shared tier as the gateway runs it under load: a private redis-server
// (stored in *srv), read batching and the default 25 ms budget.
func benchShared(b *testing.B, srv **redistest.Server) *cache.Redis {
	*srv = redistest.Start(b)
	addr := (*srv).Addr()
	client, err := cache.NewRedisClient(cache.RedisClientOptions{URL: "redis://" + addr, Timeout: 25 * time.Millisecond})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { client.Close() })
	return cache.NewRedis(client, cache.RedisOptions{Timeout: 25 * time.Millisecond, BatchReads: true})
}

// runParallelChecks sends the requests next gives from 32 callers per CPU, each answer
// checked, and reports this process's CPU per Check (cpu-ns/op).
func runParallelChecks(b *testing.B, s *check.Server, next func() *authv3.CheckRequest) {
	ctx := context.Background()
	b.ReportAllocs()
	b.SetParallelism(32)
	cpu0 := cpuTime()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if resp, _ := s.Check(ctx, next()); resp.GetStatus().GetCode() != 0 {
				b.Error("denied")
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
}

// measureRedis runs run (the measured part) and reports redis-server's CPU per op
// (redis-cpu-ns/op) and how many commands each of its reads carried (cmds/read: the size of the
// gateway's read batches, which a round trip's system calls are shared by).
func measureRedis(b *testing.B, srv *redistest.Server, run func()) {
	b.Helper()
	cpu0, cmds0, reads0 := redisCounters(b, srv)
	run()
	cpu1, cmds1, reads1 := redisCounters(b, srv)
	b.ReportMetric((cpu1-cpu0)*1e9/float64(b.N), "redis-cpu-ns/op")
	if reads1 > reads0 {
		b.ReportMetric(float64(cmds1-cmds0)/float64(reads1-reads0), "cmds/read")
	}
}

// redisCounters reads redis-server's CPU seconds, commands processed and read events.
func redisCounters(b *testing.B, srv *redistest.Server) (cpu float64, cmds, reads int64) {
	b.Helper()
	info := map[string]string{}
	for _, section := range []string{"cpu", "stats"} {
		m, err := redisproc.Info(srv.Addr(), section)
		if err != nil {
			b.Fatal(err)
		}
		maps.Copy(info, m)
	}
	num := func(k string) float64 {
		v, err := strconv.ParseFloat(info[k], 64)
		if err != nil {
			b.Fatalf("redis INFO %s: %q", k, info[k])
		}
		return v
	}
	return num("used_cpu_sys") + num("used_cpu_user"), int64(num("total_commands_processed")), int64(num("total_reads_processed"))
}
