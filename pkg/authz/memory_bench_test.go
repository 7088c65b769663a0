package authz

import (
	"context"
	"fmt"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/extauthz/extauthz/pkg/cache"
	"github.com/extauthz/extauthz/pkg/token"
)

// BenchmarkCachedTokenMemory reports the live heap per valid token held in
// the in-process tier, with 1,000,000 tokens of realistic claims: distinct
// subjects, a handful of clients, one issuer, audience and scope set. It
// fills the tier the way verification does (grants interned).
func BenchmarkCachedTokenMemory(b *testing.B) {
	const n = 1_000_000
	for i := 0; i < b.N; i++ {
		grants := NewGrants(1 << 16)
		c := LocalCache(n+n/10, nil)
		exp := time.Now().Add(time.Hour)
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for j := 0; j < n; j++ {
			g := grants.Intern(&token.Grant{
				Issuer: "https://auth.example.com/realms/prod", ClientID: "mcp-client-" + strconv.Itoa(j%16),
				Audience: []string{"https://mcp.example.com/mcp"}, Scopes: []string{"mcp:tools", "mcp:resources", "openid", "profile"},
				Scope: "mcp:tools mcp:resources openid profile",
			})
			cl := &token.Claims{Subject: fmt.Sprintf("user-%08d-4b1d-4c8e-9f6a-1d2e3f4a5b6c", j), Expiry: exp, Grant: g}
			_, _ = c.Add(context.Background(), cache.KeyOf("mcp", strconv.Itoa(j)), Verdict{Claims: cl}, time.Hour)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "heap-B/token")
		runtime.KeepAlive(c)
	}
}
