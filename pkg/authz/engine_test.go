package authz

import (
	"context"
	"crypto/elliptic"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/extauthz/extauthz/internal/testkit"
	"github.com/extauthz/extauthz/pkg/cache"
	"github.com/extauthz/extauthz/pkg/config"
	"github.com/extauthz/extauthz/pkg/devissuer"
	"github.com/extauthz/extauthz/pkg/jwks"
	"github.com/extauthz/extauthz/pkg/token"
	"github.com/extauthz/extauthz/pkg/verdict"
)

const testResource = "https://mcp.example.com/mcp"

// countingVerifier counts verifications by the real verifier it wraps, and
// can hold them until released.
type countingVerifier struct {
	inner token.Verifier
	calls atomic.Int64
	gate  chan struct{} // nil: never held
}

func (v *countingVerifier) Verify(ctx context.Context, raw string, trusted map[string]struct{}) (*token.Claims, error) {
	v.calls.Add(1)
	if v.gate != nil {
		<-v.gate
	}
	return v.inner.Verify(ctx, raw, trusted)
}

// validPolicy applies the defaults to cfg, validates it and compiles it, as
// the process does with a configuration file.
func validPolicy(t testing.TB, cfg *config.Config) *Policy {
	t.Helper()
	cfg.ApplyDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	p, err := NewPolicy(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// issuerVerifier verifies iss's tokens with the keys of its JWKS, on clock.
func issuerVerifier(t testing.TB, iss *devissuer.Issuer, clock *testkit.Clock) token.Verifier {
	t.Helper()
	src := jwks.New(func(context.Context) (string, error) { return iss.JWKSURL(), nil }, jwks.Options{Now: clock.Now})
	v, err := token.NewIssuerSet(token.Options{Issuers: map[string]token.Issuer{iss.Issuer(): {Keys: src}}, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

type fixture struct {
	engine   *Engine
	verifier *countingVerifier
	issuer   *devissuer.Issuer
	clock    *testkit.Clock
}

func newFixture(t *testing.T, maxTTL, negTTL time.Duration) *fixture {
	t.Helper()
	f := &fixture{clock: testkit.NewClock()}
	iss, _ := testkit.Issuer(t, "ES256", "", testResource, f.clock.Now)
	f.issuer = iss

	cfg := &config.Config{Resources: []config.Resource{
		{Name: "a", Resource: testResource, AuthorizationServers: []config.AuthorizationServer{{Issuer: iss.Issuer(), JWKSURI: iss.JWKSURL()}}},
		{Name: "b", Resource: testResource + "2", Hosts: []string{"mcp.example.com"}, PathPrefix: "/mcp2", Audiences: []string{testResource},
			AuthorizationServers: []config.AuthorizationServer{{Issuer: iss.Issuer(), JWKSURI: iss.JWKSURL()}}},
	}}
	p := validPolicy(t, cfg)
	f.verifier = &countingVerifier{inner: issuerVerifier(t, iss, f.clock)}
	var err error
	f.engine, err = NewEngine(p, Options{
		Verifier:    f.verifier,
		Cache:       verdict.LocalCache(100, f.clock.Now),
		MaxTTL:      maxTTL,
		NegativeTTL: negTTL,
		Now:         f.clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) mint(t *testing.T, ttl time.Duration) string {
	t.Helper()
	s, err := f.issuer.Mint(devissuer.Token{Subject: "alice", TTL: ttl})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (f *fixture) check(tok, path string) Decision {
	r := &Request{Method: "POST", Host: "mcp.example.com", Path: path, Headers: map[string]string{"authorization": "Bearer " + tok}}
	return f.engine.Check(context.Background(), r)
}

func TestValidTokensAreVerifiedOncePerTTL(t *testing.T) {
	f := newFixture(t, time.Minute, 10*time.Second)
	tok := f.mint(t, time.Hour)
	for i := 0; i < 3; i++ {
		if d := f.check(tok, "/mcp"); !d.Allow {
			t.Fatalf("check %d denied: %v", i, d.Err)
		}
	}
	if n := f.verifier.calls.Load(); n != 1 {
		t.Fatalf("verified %d times for 3 checks, want 1 (cache hits)", n)
	}
	f.clock.Advance(61 * time.Second) // past max_ttl
	if d := f.check(tok, "/mcp"); !d.Allow {
		t.Fatalf("denied after max_ttl: %v", d.Err)
	}
	if n := f.verifier.calls.Load(); n != 2 {
		t.Fatalf("verified %d times, want 2: the entry must expire at max_ttl", n)
	}
}

func TestCacheEntryNeverOutlivesToken(t *testing.T) {
	f := newFixture(t, time.Hour, 10*time.Second)
	tok := f.mint(t, 30*time.Second)
	if d := f.check(tok, "/mcp"); !d.Allow {
		t.Fatalf("denied: %v", d.Err)
	}
	f.clock.Advance(31*time.Second + time.Minute) // past exp and the default leeway
	d := f.check(tok, "/mcp")
	if d.Allow || d.Reason != ReasonExpired {
		t.Fatalf("after exp: allow=%v reason=%s, want expired", d.Allow, d.Reason)
	}
}

func TestInvalidTokensAreCachedBriefly(t *testing.T) {
	f := newFixture(t, time.Minute, 10*time.Second)
	tok := f.mint(t, time.Hour)
	bad := tok[:len(tok)-4] + "AAAA"
	for i := 0; i < 3; i++ {
		if d := f.check(bad, "/mcp"); d.Allow || d.Status != 401 {
			t.Fatalf("tampered token: allow=%v status=%d", d.Allow, d.Status)
		}
	}
	if n := f.verifier.calls.Load(); n != 1 {
		t.Fatalf("verified %d times, want 1 (negative cache)", n)
	}
	f.clock.Advance(11 * time.Second)
	f.check(bad, "/mcp")
	if n := f.verifier.calls.Load(); n != 2 {
		t.Fatalf("verified %d times, want 2 after negative_ttl", n)
	}
}

func TestTransientFailuresAreNotCached(t *testing.T) {
	f := newFixture(t, time.Minute, 10*time.Second)
	f.issuer.SetJWKSStatus(http.StatusBadGateway)
	tok := f.mint(t, time.Hour)
	if d := f.check(tok, "/mcp"); d.Status != 503 || d.RetryAfter == 0 {
		t.Fatalf("JWKS down: status %d retry-after %d, want 503 with Retry-After", d.Status, d.RetryAfter)
	}
	f.issuer.SetJWKSStatus(0)
	f.clock.Advance(11 * time.Second) // past the unknown-kid refetch interval, not the negative TTL
	if d := f.check(tok, "/mcp"); !d.Allow {
		t.Fatalf("after recovery denied (%d): a transient failure was cached", d.Status)
	}
}

func TestCacheIsPerResource(t *testing.T) {
	f := newFixture(t, time.Minute, 10*time.Second)
	tok := f.mint(t, time.Hour)
	if d := f.check(tok, "/mcp"); !d.Allow || d.Resource != "a" {
		t.Fatalf("resource a: %+v", d)
	}
	if d := f.check(tok, "/mcp2"); !d.Allow || d.Resource != "b" {
		t.Fatalf("resource b: %+v", d)
	}
	if n := f.verifier.calls.Load(); n != 2 {
		t.Fatalf("verified %d times, want once per resource", n)
	}
}

func TestConcurrentMissesShareOneVerification(t *testing.T) {
	f := newFixture(t, time.Minute, 10*time.Second)
	// No cache: only the single flight can collapse the verifications.
	f.engine.opts.Cache = nil
	f.verifier.gate = make(chan struct{})
	const n = 50
	var joined sync.WaitGroup
	joined.Add(n)
	f.engine.joiningFlight = joined.Done
	tok := f.mint(t, time.Hour)
	// Half the requests present the other form of the ECDSA signature:
	// the same token, so the same flight.
	other, _ := testkit.OtherECDSASpelling(t, tok, elliptic.P256())
	var wg sync.WaitGroup
	var allowed atomic.Int64
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if f.check([]string{tok, other}[i%2], "/mcp").Allow {
				allowed.Add(1)
			}
		}()
	}
	joined.Wait() // every request is at the flight; the first holds it
	close(f.verifier.gate)
	wg.Wait()
	if got := f.verifier.calls.Load(); got != 1 {
		t.Fatalf("%d verifications for %d concurrent requests of one token in its two forms, want 1", got, n)
	}
	if allowed.Load() != n {
		t.Fatalf("%d of %d allowed", allowed.Load(), n)
	}
}

func TestCallerGivingUpDoesNotFailOthers(t *testing.T) {
	f := newFixture(t, time.Minute, 10*time.Second)
	f.verifier.gate = make(chan struct{})
	tok := f.mint(t, time.Hour)
	ctx, cancel := context.WithCancel(context.Background())
	first := make(chan Decision)
	go func() {
		first <- f.engine.Check(ctx, &Request{Method: "GET", Host: "mcp.example.com", Path: "/mcp", Headers: map[string]string{"authorization": "Bearer " + tok}})
	}()
	for f.verifier.calls.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	if d := <-first; d.Status != 503 {
		t.Fatalf("cancelled caller: status %d, want 503", d.Status)
	}
	close(f.verifier.gate)
	if d := f.check(tok, "/mcp"); !d.Allow {
		t.Fatalf("second caller denied: %v", d.Err)
	}
}

func TestUnknownKidIsNotCachedNegatively(t *testing.T) {
	f := newFixture(t, time.Minute, time.Hour)
	if d := f.check(f.mint(t, time.Hour), "/mcp"); !d.Allow {
		t.Fatalf("warm-up denied: %v", d.Err)
	}
	// The issuer starts signing with a new key right after our last fetch.
	kid, err := f.issuer.AddKey("ES256")
	if err != nil {
		t.Fatal(err)
	}
	f.issuer.Use(kid)
	tok := f.mint(t, time.Hour)
	if d := f.check(tok, "/mcp"); d.Allow || d.Reason != ReasonUnknownKey {
		t.Fatalf("within the refetch interval: allow=%v reason=%s, want unknown_key", d.Allow, d.Reason)
	}
	f.clock.Advance(11 * time.Second) // the refetch interval, far less than the negative TTL
	if d := f.check(tok, "/mcp"); !d.Allow {
		t.Fatalf("after the refetch interval the new key must work: %v", d.Err)
	}
}

func TestGarbageTokensCannotGrowMemory(t *testing.T) {
	f := newFixture(t, time.Minute, time.Hour)
	const bound = 1000
	tiers := make([]cache.LocalTier[verdict.Verdict], 3)
	for i := range tiers {
		tiers[i] = cache.NewMemory[cache.Key, verdict.Verdict](cache.MemoryOptions{MaxEntries: bound, Now: f.clock.Now})
	}
	tc, err := cache.NewTiered(cache.TieredOptions[verdict.Verdict]{Local: tiers, Place: verdict.Place, Now: f.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	f.engine.opts.Cache = tc
	valid := f.mint(t, time.Hour)
	if d := f.check(valid, "/mcp"); !d.Allow {
		t.Fatalf("valid token denied: %v", d.Err)
	}
	// Distinct, well-formed-looking, invalid tokens: each is verified,
	// found malformed, and cached as invalid.
	var seed [24]byte
	for i := 0; i < 200_000; i++ {
		binary.LittleEndian.PutUint64(seed[:], uint64(i))
		garbage := base64.RawURLEncoding.EncodeToString(seed[:]) + ".eyJ4IjoxfQ.c2ln"
		if d := f.check(garbage, "/mcp"); d.Allow || d.Status != 401 {
			t.Fatalf("garbage %d: allow=%v status=%d", i, d.Allow, d.Status)
		}
	}
	if n := tiers[verdict.KindInvalid].Len(); n > bound+bound/10 {
		t.Fatalf("invalid-token tier holds %d entries; bound %d", n, bound)
	}
	// The flood evicted nothing of value: the valid token is still a hit.
	calls := f.verifier.calls.Load()
	if d := f.check(valid, "/mcp"); !d.Allow || f.verifier.calls.Load() != calls {
		t.Fatalf("valid token after the flood: allow=%v, re-verified=%v", d.Allow, f.verifier.calls.Load() != calls)
	}
	t.Logf("after 200,000 garbage tokens: %d invalid, %d valid entries", tiers[verdict.KindInvalid].Len(), tiers[verdict.KindValid].Len())
}

// verifierFunc adapts a function to token.Verifier.
type verifierFunc func(ctx context.Context, raw string, trusted map[string]struct{}) (*token.Claims, error)

func (f verifierFunc) Verify(ctx context.Context, raw string, trusted map[string]struct{}) (*token.Claims, error) {
	return f(ctx, raw, trusted)
}

// An introspected token is re-checked after its grant's cache TTL, however
// far its exp; a token the server calls inactive is remembered as invalid;
// an introspection that could not be made is not remembered at all.
func TestIntrospectionVerdictsInTheCache(t *testing.T) {
	f := newFixture(t, time.Hour, 10*time.Second)
	answer := func(raw string) (*token.Claims, error) {
		switch raw {
		case "inactive-token":
			return nil, token.ErrInactive
		case "unreachable-token":
			return nil, fmt.Errorf("%w: introspection: status 502", token.ErrUnavailable)
		}
		return &token.Claims{Subject: "alice", Expiry: f.clock.Now().Add(time.Hour),
			Grant: &token.Grant{Issuer: f.issuer.Issuer(), Audience: []string{testResource}, CacheTTL: 20 * time.Second}}, nil
	}
	f.verifier.inner = verifierFunc(func(_ context.Context, raw string, _ map[string]struct{}) (*token.Claims, error) { return answer(raw) })

	// run checks tok n times and returns the last decision and how many
	// introspections the n checks cost.
	run := func(tok string, n int) (Decision, int64) {
		t.Helper()
		before := f.verifier.calls.Load()
		var d Decision
		for range n {
			d = f.check(tok, "/mcp")
		}
		return d, f.verifier.calls.Load() - before
	}
	if d, calls := run("active-token", 3); !d.Allow || calls != 1 {
		t.Fatalf("active: allow=%v, %d introspections for 3 checks (want 1)", d.Allow, calls)
	}
	f.clock.Advance(21 * time.Second) // past the grant's cache TTL, far from exp and max_ttl
	if d, calls := run("active-token", 1); !d.Allow || calls != 1 {
		t.Fatalf("after the cache TTL: allow=%v, %d introspections (want 1: re-checked)", d.Allow, calls)
	}
	if d, calls := run("inactive-token", 3); d.Status != 401 || d.Reason != ReasonInactive || calls != 1 {
		t.Fatalf("inactive: %d %s, %d introspections for 3 checks (want 401 inactive, 1)", d.Status, d.Reason, calls)
	}
	if d, calls := run("unreachable-token", 2); d.Status != 503 || calls != 2 {
		t.Fatalf("unreachable: %d, %d introspections for 2 checks (want 503, 2: never cached)", d.Status, calls)
	}
}
