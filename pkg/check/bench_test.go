package check_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"

	"github.com/extauthz/extauthz/internal/redistest"
	"github.com/extauthz/extauthz/internal/testkit"
	"github.com/extauthz/extauthz/pkg/authz"
	"github.com/extauthz/extauthz/pkg/cache"
	"github.com/extauthz/extauthz/pkg/check"
	"github.com/extauthz/extauthz/pkg/check/internal/wire"
	"github.com/extauthz/extauthz/pkg/config"
	"github.com/extauthz/extauthz/pkg/devissuer"
	"github.com/extauthz/extauthz/pkg/jwks"
	"github.com/extauthz/extauthz/pkg/revocation"
	"github.com/extauthz/extauthz/pkg/token"
	"github.com/extauthz/extauthz/pkg/verdict"
)

// benchServer is a Check server over a real issuer (HTTP on loopback) with
// the cache on or off.
func benchServer(b *testing.B, alg string, cached bool) (*check.Server, *devissuer.Issuer) {
	b.Helper()
	return benchServerWith(b, alg, func() authz.VerdictStore {
		if cached {
			return verdict.LocalCache(100000, nil)
		}
		return nil
	})
}

// benchServerWith takes the verdict store from newCache (nil: no cache).
func benchServerWith(b *testing.B, alg string, newCache func() authz.VerdictStore) (*check.Server, *devissuer.Issuer) {
	return benchServerRules(b, alg, newCache, nil)
}

// benchServerRules lets the caller add MCP rules and policies to the
// resource.
func benchServerRules(b *testing.B, alg string, newCache func() authz.VerdictStore, edit func(*config.Resource)) (*check.Server, *devissuer.Issuer) {
	b.Helper()
	return benchServerUpstream(b, alg, newCache, edit, nil)
}

// benchServerUpstream also gives the engine what mints the upstream
// credentials of a resource with an upstream_token (nil: none).
func benchServerUpstream(b *testing.B, alg string, newCache func() authz.VerdictStore, edit func(*config.Resource), up authz.UpstreamCredentials) (*check.Server, *devissuer.Issuer) {
	b.Helper()
	return benchServerOptions(b, alg, newCache, edit, up, nil)
}

// benchServerOptions also lets the caller edit the engine's options.
func benchServerOptions(b *testing.B, alg string, newCache func() authz.VerdictStore, edit func(*config.Resource), up authz.UpstreamCredentials,
	editOptions func(*authz.Options)) (*check.Server, *devissuer.Issuer) {
	b.Helper()
	iss, _ := issuerServer(b, alg, "")
	cfg := &config.Config{Resources: []config.Resource{{
		Name: "mcp", Resource: resourceURI, RequiredScopes: []string{"mcp:tools"},
		AuthorizationServers: []config.AuthorizationServer{{Issuer: iss.Issuer(), JWKSURI: iss.JWKSURL()}},
	}}}
	if edit != nil {
		edit(&cfg.Resources[0])
	}
	cfg.ApplyDefaults()
	if err := cfg.Validate(); err != nil {
		b.Fatal(err)
	}
	src := jwks.New(func(context.Context) (string, error) { return iss.JWKSURL(), nil }, jwks.Options{})
	v, err := token.NewIssuerSet(token.Options{Issuers: map[string]token.Issuer{iss.Issuer(): {Keys: src}}, Leeway: time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	p, err := authz.NewPolicy(cfg)
	if err != nil {
		b.Fatal(err)
	}
	o := authz.Options{Verifier: v, MaxTTL: 5 * time.Minute, NegativeTTL: 10 * time.Second, Upstream: up}
	if c := newCache(); c != nil {
		o.Cache = c
	}
	if editOptions != nil {
		editOptions(&o)
	}
	e, err := authz.NewEngine(p, o)
	if err != nil {
		b.Fatal(err)
	}
	return check.NewServer(e, nil), iss
}

// realisticRequest is a CheckRequest as Envoy sends it for an MCP
// tools/call: about a dozen headers and an RFC 9068 access token of
// typical size (about 800 bytes with RS256).
func realisticRequest(b *testing.B, iss *devissuer.Issuer) *authv3.CheckRequest {
	b.Helper()
	req, err := check.MCPToolCall("https://mcp.example.com/mcp", realisticToken(b, iss)).Proto()
	if err != nil {
		b.Fatal(err)
	}
	return req
}

// realisticToken is the token of realisticRequest.
func realisticToken(b *testing.B, iss *devissuer.Issuer) string {
	b.Helper()
	tok, err := iss.Mint(devissuer.Token{
		Subject: "user-7f3c9a2e-4b1d-4c8e-9f6a-1d2e3f4a5b6c", ClientID: "mcp-client-0a1b2c3d",
		Scopes: []string{"mcp:tools", "mcp:resources", "openid", "profile"},
		Extra:  map[string]any{"auth_time": time.Now().Unix(), "sid": strings.Repeat("s", 36), "acr": "urn:mace:incommon:iap:silver"},
	})
	if err != nil {
		b.Fatal(err)
	}
	return tok
}

func runCheck(b *testing.B, s *check.Server, req *authv3.CheckRequest) {
	b.Helper()
	ctx := context.Background()
	if resp, _ := s.Check(ctx, req); resp.GetStatus().GetCode() != 0 {
		b.Fatalf("warm-up denied: %v", resp)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if resp, _ := s.Check(ctx, req); resp.GetStatus().GetCode() != 0 {
			b.Fatal("denied")
		}
	}
}

// BenchmarkCheckCacheHit is the common path: a known token, decided from
// the in-process cache; translation in and out included, no network.
func BenchmarkCheckCacheHit(b *testing.B) {
	s, iss := benchServer(b, "RS256", true)
	runCheck(b, s, realisticRequest(b, iss))
}

// BenchmarkCheckCacheHitWatermarks is the common path with revocation
// watermarks held, none of which revokes the token: none, and 10,000
// (subjects, and a few sessions, clients and issuer-wide ones).
func BenchmarkCheckCacheHitWatermarks(b *testing.B) {
	for _, n := range []int{0, 10_000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			x := revocation.NewIndex(nil)
			for i := range n {
				w := revocation.Watermark{Subject: fmt.Sprint("user-", i), Before: time.Now()}
				switch i % 100 {
				case 1:
					w = revocation.Watermark{SessionID: fmt.Sprint("session-", i), Before: time.Now()}
				case 2:
					w = revocation.Watermark{ClientID: fmt.Sprint("client-", i), Before: time.Now()}
				}
				if err := x.Add(w, time.Now().Add(time.Hour)); err != nil {
					b.Fatal(err)
				}
			}
			s, iss := benchServerOptions(b, "RS256", func() authz.VerdictStore { return verdict.LocalCache(100000, nil) }, nil, nil,
				func(o *authz.Options) { o.Watermarks = x })
			runCheck(b, s, realisticRequest(b, iss))
		})
	}
}

// BenchmarkCheckCacheHitBySignature is the common path for each kind of
// signature the cache key treats differently: an RSA one, and an ES256 one
// whose s is in the lower half (hashed as sent) or in the upper half
// (hashed as its low-s form).
func BenchmarkCheckCacheHitBySignature(b *testing.B) {
	for _, c := range []struct {
		name, alg string
		highS     bool
	}{{"RS256", "RS256", false}, {"ES256-low-s", "ES256", false}, {"ES256-high-s", "ES256", true}} {
		b.Run(c.name, func(b *testing.B) {
			s, iss := benchServer(b, c.alg, true)
			tok := realisticToken(b, iss)
			if c.alg == "ES256" {
				tok = testkit.MintECDSA(b, testkit.ECDSACurve(b, c.alg), c.highS, func() (string, error) { return realisticToken(b, iss), nil })
			}
			req, err := check.MCPToolCall("https://mcp.example.com/mcp", tok).Proto()
			if err != nil {
				b.Fatal(err)
			}
			runCheck(b, s, req)
		})
	}
}

// BenchmarkCheckCacheHitWithRules is the common path on a resource with
// MCP rules: the operation read from the Mcp-Method/Mcp-Name headers, three
// rules matched by glob (one matching), a scope hierarchy, and a CEL policy
// evaluated.
func BenchmarkCheckCacheHitWithRules(b *testing.B) {
	s, iss := benchServerRules(b, "RS256", func() authz.VerdictStore { return verdict.LocalCache(100000, nil) }, func(r *config.Resource) {
		r.ScopeImplications = map[string][]string{"mcp:admin": {"mcp:tools"}}
		r.Policy = `token.client_id.startsWith("mcp-client-") || "mcp:admin" in token.scopes`
		r.Rules = []config.Rule{
			{Method: "tools/call", Name: "delete_*", Scopes: []string{"mcp:admin"}},
			{Method: "tools/call", Name: "get_*", Scopes: []string{"mcp:resources"}},
			{Method: "resources/*", Name: "file:///secrets/*", Policy: `"ops" in token.scopes`},
		}
	})
	runCheck(b, s, realisticRequest(b, iss))
}

// BenchmarkCheckRedisHit is a token another replica verified: the
// in-process tier is off, so every Check reads the verdict from Redis (a
// redis-server this benchmark starts on loopback) and decodes it.
func BenchmarkCheckRedisHit(b *testing.B) {
	s, iss := benchServerWith(b, "RS256", func() authz.VerdictStore {
		srv := redistest.Start(b)
		client, err := cache.NewRedisClient(cache.RedisClientOptions{URL: "redis://" + srv.Addr(), Timeout: time.Second})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { client.Close() })
		t, err := cache.NewTiered(cache.TieredOptions[verdict.Verdict]{
			Shared: cache.NewRedis(client, cache.RedisOptions{Timeout: time.Second}),
			Codec:  verdict.Codec{},
		})
		if err != nil {
			b.Fatal(err)
		}
		return t
	})
	runCheck(b, s, realisticRequest(b, iss))
}

// BenchmarkCheckFullVerification is the cost of a token seen for the first
// time: with the cache off, every Check parses and verifies the signature.
func BenchmarkCheckFullVerification(b *testing.B) {
	for _, alg := range []string{"RS256", "ES256", "EdDSA"} {
		b.Run(alg, func(b *testing.B) {
			s, iss := benchServer(b, alg, false)
			runCheck(b, s, realisticRequest(b, iss))
		})
	}
}

// BenchmarkCheckGRPCCacheHit adds the real cost around it: a gRPC call over
// loopback TCP, 16 concurrent callers on one connection (as one Envoy
// worker multiplexes its Checks), client and server sharing the machine,
// with the service registered as the gateway registers it.
func BenchmarkCheckGRPCCacheHit(b *testing.B) {
	grpcCacheHit(b, func(g *grpc.Server, s *check.Server) { check.Register(g, s) }, check.ServerCodec())
}

// BenchmarkTranslate is the Envoy layer alone: request in, decision out.
func BenchmarkTranslate(b *testing.B) {
	_, iss := benchServer(b, "ES256", false)
	req := realisticRequest(b, iss)
	d := authz.Decision{Allow: true, Status: 200, Resource: "mcp",
		Upstream: []authz.Header{{Name: "x-extauthz-subject", Value: "alice"}, {Name: "x-extauthz-client-id", Value: "c"}, {Name: "x-extauthz-scopes", Value: "mcp:tools"}},
		Remove:   []string{"authorization"}, Claims: &token.Claims{Subject: "alice", Expiry: time.Now(), Grant: &token.Grant{Issuer: "https://auth", Scopes: []string{"mcp:tools"}, Scope: "mcp:tools"}}}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r := wire.Translate(req)
		_ = r
		_ = check.Answer(&d)
	}
}
