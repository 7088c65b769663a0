package authz

import (
	"strings"
	"testing"
	"time"

	"github.com/extauthz/extauthz/pkg/devissuer"
	"github.com/extauthz/extauthz/pkg/revocation"
	"github.com/extauthz/extauthz/pkg/verdict"
)

// newWatermarkFixture is newFixture with revocation watermarks held in
// an index.
func newWatermarkFixture(t *testing.T) (*fixture, *revocation.Index) {
	t.Helper()
	f := newFixture(t, time.Hour, time.Minute)
	x := revocation.NewIndex(nil)
	e, err := NewEngine(f.engine.Policy(), Options{
		Verifier:   f.verifier,
		Cache:      verdict.LocalCache(100, f.clock.Now),
		MaxTTL:     time.Hour,
		Now:        f.clock.Now,
		Watermarks: x,
	})
	if err != nil {
		t.Fatal(err)
	}
	f.engine = e
	return f, x
}

func (f *fixture) mintFor(t *testing.T, tmpl devissuer.Token) string {
	t.Helper()
	s, err := f.issuer.Mint(tmpl)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// revokedByWatermark fails unless d is the revoked row of the denial
// table: 401 invalid_token, "the access token has been revoked".
func revokedByWatermark(t *testing.T, what string, d Decision) {
	t.Helper()
	if d.Allow || d.Status != 401 || d.Reason != ReasonRevoked ||
		!strings.Contains(d.Challenge, `error="invalid_token"`) || !strings.Contains(d.Challenge, "the access token has been revoked") {
		t.Fatalf("%s: allow %v, %d %s %q", what, d.Allow, d.Status, d.Reason, d.Challenge)
	}
}

func TestWatermarksRefuse(t *testing.T) {
	f, x := newWatermarkFixture(t)
	before := f.clock.Now()
	aliceOld := f.mintFor(t, devissuer.Token{Subject: "alice", IssuedAt: before.Add(-time.Minute)})
	aliceCached := f.mintFor(t, devissuer.Token{Subject: "alice", IssuedAt: before.Add(-time.Minute), ClientID: "other"})
	aliceNoIAT := f.mintFor(t, devissuer.Token{Subject: "alice", Extra: map[string]any{"iat": nil}})
	bobCached := f.mintFor(t, devissuer.Token{Subject: "bob", IssuedAt: before.Add(-time.Minute)})

	for name, tok := range map[string]string{"alice, cached": aliceCached, "bob, cached": bobCached} {
		if d := f.check(tok, "/mcp"); !d.Allow {
			t.Fatalf("%s before the watermark: %d %s", name, d.Status, d.Reason)
		}
	}
	calls := f.verifier.calls.Load()

	if err := x.Add(revocation.Watermark{Subject: "alice", Issuer: f.issuer.Issuer(), Before: before}, before.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}

	t.Run("on a cache hit", func(t *testing.T) {
		d := f.check(aliceCached, "/mcp")
		revokedByWatermark(t, "cached", d)
		if d.Source != SourceLocal || f.verifier.calls.Load() != calls {
			t.Fatalf("source %v, %d verifications: want a hit of the local tier", d.Source, f.verifier.calls.Load()-calls)
		}
		if !strings.Contains(d.Err.Error(), "watermark") {
			t.Errorf("detail %q", d.Err)
		}
	})
	t.Run("after a verification", func(t *testing.T) {
		d := f.check(aliceOld, "/mcp")
		revokedByWatermark(t, "fresh", d)
		if d.Source != SourceVerified {
			t.Fatalf("source %v", d.Source)
		}
		// And again, now from the cache.
		revokedByWatermark(t, "fresh, then cached", f.check(aliceOld, "/mcp"))
	})
	t.Run("on every resource", func(t *testing.T) {
		revokedByWatermark(t, "resource b", f.check(aliceCached, "/mcp2"))
	})
	t.Run("a token without iat counts as issued at the epoch", func(t *testing.T) {
		revokedByWatermark(t, "no iat", f.check(aliceNoIAT, "/mcp"))
	})
	t.Run("another user's cached token is still allowed", func(t *testing.T) {
		n := f.verifier.calls.Load()
		if d := f.check(bobCached, "/mcp"); !d.Allow || d.Source != SourceLocal || f.verifier.calls.Load() != n {
			t.Fatalf("bob: allow %v, %d %s, source %v", d.Allow, d.Status, d.Reason, d.Source)
		}
	})
	t.Run("a token issued after Before is allowed", func(t *testing.T) {
		f.clock.Advance(time.Second)
		fresh := f.mintFor(t, devissuer.Token{Subject: "alice"})
		for range 2 { // verified, then cached
			if d := f.check(fresh, "/mcp"); !d.Allow {
				t.Fatalf("a token issued after the watermark: %d %s", d.Status, d.Reason)
			}
		}
	})
}
