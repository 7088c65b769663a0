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
	p := validPolicy(t, &config.Config{Resources: []config.Resource{{Name: "a", Resource: testResource,
		AuthorizationServers: []config.AuthorizationServer{{Issuer: iss.Issuer(), JWKSURI: iss.JWKSURL()}}}}})
	client, err := cache.NewRedisClient(cache.RedisClientOptions{URL: "redis://" + srv.Addr(), Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	shared := cache.NewRedis(client, cache.RedisOptions{Timeout: time.Second, Now: clock.Now})
	grants := verdict.NewGrants(16)
	c, err := verdict.NewCache(verdict.CacheOptions{MaxEntries: 16, MaxNegativeEntries: 16, Grants: grants, Shared: shared, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	v := &countingVerifier{inner: issuerVerifier(t, iss, clock)}
	e, err := NewEngine(p, Options{Verifier: v, Cache: c, Grants: grants, MaxTTL: time.Minute, NegativeTTL: 10 * time.Second, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	// seed writes, under tok's key, the verdict another replica would have
	// written for it, but with the subject sub.
	seed := func(tok, sub string) {
		t.Helper()
		g := &token.Grant{Issuer: iss.Issuer(), Audience: []string{testResource}}
		b, err := verdict.Codec{}.Encode(verdict.Verdict{Claims: &token.Claims{Subject: sub, Expiry: clock.Now().Add(time.Hour), Grant: g}})
		if err != nil {
			t.Fatal(err)
		}
		key := cache.Key{Namespace: p.byName["a"].ns, Hash: token.CacheHash(tok)}.String()
		if err := shared.Set(context.Background(), key, b, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	check := func(tok string) Decision {
		return e.Check(context.Background(), &Request{Method: "POST", Host: "mcp.example.com", Path: "/mcp",
			Headers: map[string]string{"authorization": "Bearer " + tok}})
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
	if d := check(read); !d.Allow || d.Source != SourceRedis || d.Claims.Subject != "carol" || v.calls.Load() != 0 {
		t.Fatalf("a well-formed seeded verdict: allow=%v source=%q subject=%q after %d verifications; want it read from Redis",
			d.Allow, d.Source, d.Claims.Subject, v.calls.Load())
	}
	for _, sub := range []string{"alice\r\nx-extauthz-role: admin", " alice", "al\x00ice"} {
		tok := mint("alice")
		seed(tok, sub)
		before := v.calls.Load()
		d := check(tok)
		if !d.Allow || d.Source != SourceVerified || d.Claims.Subject != "alice" || v.calls.Load() != before+1 {
			t.Errorf("verdict with subject %q in Redis: allow=%v source=%q subject=%q, %d verifications; want the token verified here, subject alice",
				sub, d.Allow, d.Source, d.Claims.Subject, v.calls.Load()-before)
		}
	}
}
