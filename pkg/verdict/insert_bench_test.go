package verdict

import (
	"context"
	"encoding/binary"
	"testing"
	"time"

	"github.com/extauthz/extauthz/pkg/cache"
	"github.com/extauthz/extauthz/pkg/token"
)

// BenchmarkInsert is the last stage of a cache miss: a freshly verified,
// valid verdict stored in the verdict cache (in-process tiers only, as
// NewCache builds them), each under a key not seen before, the grant
// interned as verification interns it. Once the tier is full, each insert
// also evicts, as on a busy replica.
func BenchmarkInsert(b *testing.B) {
	grants := NewGrants(1 << 16)
	c, err := NewCache(CacheOptions{MaxEntries: 1 << 18, MaxNegativeEntries: 1 << 10, Grants: grants})
	if err != nil {
		b.Fatal(err)
	}
	exp := time.Now().Add(time.Hour)
	ctx := context.Background()
	newClaims := func() *token.Claims {
		return &token.Claims{
			Subject: "user-7f3c9a2e-4b1d-4c8e-9f6a-1d2e3f4a5b6c", Expiry: exp, IssuedAt: 1700000000,
			SessionID: "ssssssssssssssssssssssssssssssssssss",
			Grant: grants.Intern(&token.Grant{
				Issuer: "https://auth.example.com", ClientID: "mcp-client-0a1b2c3d",
				Audience: []string{"https://mcp.example.com/mcp"}, Scopes: []string{"mcp:tools", "mcp:resources", "openid", "profile"},
				Scope: "mcp:tools mcp:resources openid profile",
			}),
		}
	}
	k := cache.Key{Namespace: "mcp"}
	var n uint64
	b.ReportAllocs()
	c0 := cpuTime()
	for b.Loop() {
		n++
		binary.LittleEndian.PutUint64(k.Hash[:], n)
		binary.LittleEndian.PutUint64(k.Hash[8:], n*0x9e3779b97f4a7c15)
		if cur, err := c.Add(ctx, k, Verdict{Claims: newClaims()}, time.Hour); err != nil || cur.Err != nil {
			b.Fatal(cur.Err, err)
		}
	}
	// CPU time per insert (every thread, the collector's share included),
	// which waiting for a CPU on a shared machine does not inflate.
	if c0 > 0 {
		b.ReportMetric(float64(cpuTime()-c0)/float64(b.N), "cpu-ns/op")
	}
}
