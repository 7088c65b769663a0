package authz

import (
	"context"
	"testing"
	"time"

	"github.com/extauthz/extauthz/internal/redistest"
	"github.com/extauthz/extauthz/internal/testkit"
	"github.com/extauthz/extauthz/pkg/cache"
	"github.com/extauthz/extauthz/pkg/config"
	"github.com/extauthz/extauthz/pkg/devissuer"
	"github.com/extauthz/extauthz/pkg/token"
	"github.com/extauthz/extauthz/pkg/verdict"
)

// redisReplica is one replica of resource "a" (testResource, iss's tokens) whose verdict
// cache shares the Redis at addr: its engine, its counting verifier, its policy and its
// shared store.
type redisReplica struct {
	e      *Engine
	v      *countingVerifier
	p      *Policy
	shared *cache.Redis
}

func newRedisReplica(t *testing.T, addr string, iss *devissuer.Issuer, clock *testkit.Clock) *redisReplica {
	t.Helper()
	r := &redisReplica{p: validPolicy(t, &config.Config{Resources: []config.Resource{{Name: "a", Resource: testResource,
		AuthorizationServers: []config.AuthorizationServer{{Issuer: iss.Issuer(), JWKSURI: iss.JWKSURL()}}}}})}
	client, err := cache.NewRedisClient(cache.RedisClientOptions{URL: "redis://" + addr, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	r.shared = cache.NewRedis(client, cache.RedisOptions{Timeout: time.Second, Now: clock.Now})
	grants := verdict.NewGrants(16)
	c, err := verdict.NewCache(verdict.CacheOptions{MaxEntries: 16, MaxNegativeEntries: 16, Grants: grants, Shared: r.shared, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	r.v = &countingVerifier{inner: issuerVerifier(t, iss, clock)}
	if r.e, err = NewEngine(r.p, Options{Verifier: r.v, Cache: c, Grants: grants, MaxTTL: time.Minute, NegativeTTL: 10 * time.Second, Now: clock.Now}); err != nil {
		t.Fatal(err)
	}
	return r
}

// check decides a POST to /mcp with tok as a Bearer token.
func (r *redisReplica) check(tok string) Decision {
	return r.e.Check(context.Background(), &Request{Method: "POST", Host: "mcp.example.com", Path: "/mcp",
		Headers: map[string]string{"authorization": "Bearer " + tok}})
}

// TestVerdictWithUnfitIdentityFromRedisIsVerifiedAgain: a valid verdict in
// Redis whose subject no token verified by this version could have (one an
// older replica wrote during a rolling upgrade, before identities were
// checked as header values, or one put there by hand) is not used: the
// replica verifies the token itself and answers with what the token says.
// A well-formed verdict put there the same way is used, which shows the
// entry is read.
func TestVerdictWithUnfitIdentityFromRedisIsVerifiedAgain(t *testing.T) {
	srv := redistest.Start(t)
	clock := testkit.NewClock()
	iss, _ := testkit.Issuer(t, "ES256", "", testResource, clock.Now)
	r := newRedisReplica(t, srv.Addr(), iss, clock)
	// seed writes, under tok's key, the verdict another replica would have
	// written for it, but with the subject sub.
	seed := func(tok, sub string) {
		t.Helper()
		g := &token.Grant{Issuer: iss.Issuer(), Audience: []string{testResource}}
		b, err := verdict.Codec{}.Encode(verdict.Verdict{Claims: &token.Claims{Subject: sub, Expiry: clock.Now().Add(time.Hour), Grant: g}})
		if err != nil {
			t.Fatal(err)
		}
		key := cache.Key{Namespace: r.p.byName["a"].ns, Hash: token.CacheHash(tok)}.String()
		if err := r.shared.Set(context.Background(), key, b, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	mint := func(sub string) string {
		tok, err := iss.Mint(devissuer.Token{Subject: sub})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}

	read := mint("bob")
	seed(read, "carol")
	if d := r.check(read); !d.Allow || d.Source != SourceRedis || d.Claims.Subject != "carol" || r.v.calls.Load() != 0 {
		t.Fatalf("a well-formed seeded verdict: allow=%v source=%q subject=%q after %d verifications; want it read from Redis",
			d.Allow, d.Source, d.Claims.Subject, r.v.calls.Load())
	}
	for _, sub := range []string{"alice\r\nx-extauthz-role: admin", " alice", "al\x00ice"} {
		tok := mint("alice")
		seed(tok, sub)
		before := r.v.calls.Load()
		d := r.check(tok)
		if !d.Allow || d.Source != SourceVerified || d.Claims.Subject != "alice" || r.v.calls.Load() != before+1 {
			t.Errorf("verdict with subject %q in Redis: allow=%v source=%q subject=%q, %d verifications; want the token verified here, subject alice",
				sub, d.Allow, d.Source, d.Claims.Subject, r.v.calls.Load()-before)
		}
	}
}
