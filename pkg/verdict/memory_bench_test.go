package verdict

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/extauthz/extauthz/pkg/cache"
	"github.com/extauthz/extauthz/pkg/token"
)

// tierKinds are the stores a valid-token tier can be: the compact one the
// service uses, and the general one it used before (for comparison).
var tierKinds = []struct {
	name string
	new  func(max int, grants *Grants) cache.LocalTier[Verdict]
}{
	{"compact", func(max int, grants *Grants) cache.LocalTier[Verdict] { return NewCompactTier(max, grants, nil, nil) }},
	{"memory", func(max int, _ *Grants) cache.LocalTier[Verdict] {
		return cache.NewMemory[cache.Key, Verdict](cache.MemoryOptions{MaxEntries: max})
	}},
}

// BenchmarkCachedTokenMemory reports the memory per valid token held in
// the in-process tier, with 1,000,000 tokens of realistic claims: distinct
// subjects, a handful of clients, one issuer, audience and scope set. It
// fills the tier the way verification does (grants interned), through the
// tiered store, with max_entries 1,100,000.
//
//   - heap-B/token: live Go heap (after a collection) per token;
//   - heapRSS-B/token: heap memory the runtime holds from the OS, objects
//     and free space alike (runtime/metrics), which is what the heap costs
//     in RSS;
//   - RSS-B/token: growth of the process's resident set (/proc/self/statm),
//     which also counts the compact tier's slab, mapped outside the heap.
func BenchmarkCachedTokenMemory(b *testing.B) {
	const n = 1_000_000
	for _, kind := range tierKinds {
		b.Run(kind.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				grants := NewGrants(1 << 16)
				runtime.GC()
				heap0, held0, rss0 := memoryNow()
				local := []cache.LocalTier[Verdict]{
					kind.new(n+n/10, grants),
					cache.NewMemory[cache.Key, Verdict](cache.MemoryOptions{MaxEntries: 10000}),
					cache.NewMemory[cache.Key, Verdict](cache.MemoryOptions{MaxEntries: 10000}),
				}
				c, err := cache.NewTiered(cache.TieredOptions[Verdict]{Local: local, Place: Place, Sticky: []int{KindRevoked}})
				if err != nil {
					b.Fatal(err)
				}
				exp := time.Now().Add(time.Hour)
				for j := 0; j < n; j++ {
					g := grants.Intern(&token.Grant{
						Issuer: "https://auth.example.com/realms/prod", ClientID: "mcp-client-" + strconv.Itoa(j%16),
						Audience: []string{"https://mcp.example.com/mcp"}, Scopes: []string{"mcp:tools", "mcp:resources", "openid", "profile"},
						Scope: "mcp:tools mcp:resources openid profile",
					})
					cl := &token.Claims{Subject: fmt.Sprintf("user-%08d-4b1d-4c8e-9f6a-1d2e3f4a5b6c", j), Expiry: exp, Grant: g}
					_, _ = c.Add(context.Background(), key("mcp", strconv.Itoa(j)), Verdict{Claims: cl}, time.Hour)
				}
				if l := local[KindValid].Len(); l < n*99/100 {
					b.Fatalf("the tier holds %d tokens", l)
				}
				runtime.GC()
				heap1, held1, rss1 := memoryNow()
				b.ReportMetric(float64(heap1-heap0)/n, "heap-B/token")
				b.ReportMetric(float64(held1-held0)/n, "heapRSS-B/token")
				if rss0 > 0 {
					b.ReportMetric(float64(rss1-rss0)/n, "RSS-B/token")
				}
				runtime.KeepAlive(c)
			}
		})
	}
}

// memoryNow returns the live heap, the heap memory held from the OS, and
// the resident set size (0 where /proc is not available), in bytes.
func memoryNow() (live, held, rss int64) {
	s := []metrics.Sample{
		{Name: "/gc/heap/live:bytes"},
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/memory/classes/heap/unused:bytes"},
		{Name: "/memory/classes/heap/free:bytes"},
	}
	metrics.Read(s)
	live = int64(s[0].Value.Uint64())
	held = int64(s[1].Value.Uint64() + s[2].Value.Uint64() + s[3].Value.Uint64())
	if b, err := os.ReadFile("/proc/self/statm"); err == nil {
		if f := strings.Fields(string(b)); len(f) > 1 {
			pages, _ := strconv.ParseInt(f[1], 10, 64)
			rss = pages * int64(os.Getpagesize())
		}
	}
	return live, held, rss
}

// BenchmarkValidTierGet is a hit in the valid-token tier alone, among
// 100,000 entries, from every P at once: the part of a cache hit that the
// choice of store decides.
func BenchmarkValidTierGet(b *testing.B) {
	const n = 100_000
	for _, kind := range tierKinds {
		b.Run(kind.name, func(b *testing.B) {
			grants := NewGrants(1 << 16)
			tier := kind.new(n+n/4, grants) // each shard holds its share: leave room
			g := grants.Intern(&token.Grant{Issuer: "https://auth.example.com", ClientID: "c", Scopes: []string{"mcp:tools"}, Scope: "mcp:tools"})
			keys := make([]cache.Key, n)
			ctx := context.Background()
			for j := range keys {
				keys[j] = key("mcp", strconv.Itoa(j))
				cl := &token.Claims{Subject: fmt.Sprintf("user-%08d-4b1d-4c8e-9f6a-1d2e3f4a5b6c", j), Expiry: time.Now().Add(time.Hour), Grant: g}
				_ = tier.Set(ctx, keys[j], Verdict{Claims: cl}, time.Hour)
			}
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				j := 0
				for pb.Next() {
					if _, ok, _ := tier.Get(ctx, keys[j]); !ok {
						b.Error("miss")
						return
					}
					if j++; j == n {
						j = 0
					}
				}
			})
		})
	}
}
