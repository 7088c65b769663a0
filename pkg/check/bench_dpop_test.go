package check_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"runtime"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/extauthz/extauthz/internal/dpoptest"
	"github.com/extauthz/extauthz/pkg/authz"
	"github.com/extauthz/extauthz/pkg/check"
	"github.com/extauthz/extauthz/pkg/devissuer"
	"github.com/extauthz/extauthz/pkg/verdict"
)

// BenchmarkCheckDPoPOverhead measures, in one process and one run, what a DPoP proof adds to
// a cached Check (issue #23's budget: a cache hit + one raw ecdsa.VerifyASN1 + 10 µs), without
// the load harness's gRPC transport and client sharing the cores:
//   - hit: the Bearer cache hit, the CheckRequest decoded from its wire bytes (CheckWire);
//   - dpop: the same token bound to an ES256 key (cnf.jkt), sent as Authorization: DPoP with a
//     new proof on every Check, as BenchmarkCheckCacheHitWire's request plus the DPoP header;
//   - raw-verify: one ecdsa.VerifyASN1 on a P-256 key, the signature check a proof needs.
//
// dpop − hit − raw-verify is what this project adds per proof. Run with -cpu 1 and compare
// cpu-ns/op (the process's CPU time per operation), which other load on the machine moves
// less than ns/op; -count interleaves the three.
func BenchmarkCheckDPoPOverhead(b *testing.B) {
	key, err := dpoptest.NewKey()
	if err != nil {
		b.Fatal(err)
	}
	const url = "https://mcp.example.com/mcp"

	b.Run("hit", func(b *testing.B) {
		s, iss := benchServer(b, "RS256", true)
		in, err := proto.Marshal(realisticRequest(b, iss))
		if err != nil {
			b.Fatal(err)
		}
		ctx := context.Background()
		checkWire(b, s, in)
		b.ReportAllocs()
		cpu0 := cpuTime()
		b.ResetTimer()
		for range b.N {
			if resp := s.CheckWire(ctx, in); resp.GetStatus().GetCode() != 0 {
				b.Fatal("denied")
			}
		}
		b.StopTimer()
		b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
	})

	b.Run("dpop", func(b *testing.B) {
		s, iss := benchServerOptions(b, "RS256", func() authz.VerdictStore { return verdict.LocalCache(100000, nil) }, nil, nil,
			func(o *authz.Options) { o.DPoPReplay = nil }) // the engine's default: the in-process replay table
		tok, err := iss.Mint(devissuer.Token{
			Subject: "user-7f3c9a2e-4b1d-4c8e-9f6a-1d2e3f4a5b6c", ClientID: "mcp-client-0a1b2c3d",
			Scopes: []string{"mcp:tools", "mcp:resources", "openid", "profile"},
			Extra:  map[string]any{"auth_time": time.Now().Unix(), "cnf": map[string]any{"jkt": key.JKT()}},
		})
		if err != nil {
			b.Fatal(err)
		}
		// One request per iteration, each with a proof never sent before, signed beforehand.
		reqs := make([][]byte, b.N+1)
		for i := range reqs {
			e := check.MCPToolCall(url, tok)
			e.Headers = append(e.Headers[1:], dpoptest.Headers(tok, key.MustSign(b, dpoptest.Proof{Method: "POST", URL: url, AccessToken: tok}))...)
			pr, err := e.Proto()
			if err != nil {
				b.Fatal(err)
			}
			if reqs[i], err = proto.Marshal(pr); err != nil {
				b.Fatal(err)
			}
		}
		ctx := context.Background()
		checkWire(b, s, reqs[b.N]) // the warm-up caches the token's verdict
		runtime.GC()
		b.ReportAllocs()
		cpu0 := cpuTime()
		b.ResetTimer()
		for i := range b.N {
			if resp := s.CheckWire(ctx, reqs[i]); resp.GetStatus().GetCode() != 0 {
				b.Fatalf("denied: %v", resp)
			}
		}
		b.StopTimer()
		b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
	})

	b.Run("raw-verify", func(b *testing.B) {
		k, err := ecdsa.GenerateKey(key.Signer().Public().(*ecdsa.PublicKey).Curve, rand.Reader)
		if err != nil {
			b.Fatal(err)
		}
		digest := sha256.Sum256([]byte("a DPoP proof's signing input"))
		sig, err := ecdsa.SignASN1(rand.Reader, k, digest[:])
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		cpu0 := cpuTime()
		b.ResetTimer()
		for range b.N {
			if !ecdsa.VerifyASN1(&k.PublicKey, digest[:], sig) {
				b.Fatal("does not verify")
			}
		}
		b.StopTimer()
		b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
	})
}

// checkWire fails b unless in is allowed.
func checkWire(b *testing.B, s *check.Server, in []byte) {
	b.Helper()
	if resp := s.CheckWire(context.Background(), in); resp.GetStatus().GetCode() != 0 {
		b.Fatalf("warm-up denied: %v", resp)
	}
}
