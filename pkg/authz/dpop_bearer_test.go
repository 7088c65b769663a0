package authz

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/extauthz/extauthz/internal/redistest"
	"github.com/extauthz/extauthz/internal/testkit"
	"github.com/extauthz/extauthz/pkg/devissuer"
	"github.com/extauthz/extauthz/pkg/token"
)

// A JWK SHA-256 thumbprint (RFC 7638; RFC 9449 §6.1's example), and a
// certificate's (RFC 8705 §3.1).
const (
	testJKT = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"
	testX5T = "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"
)

// mintBound mints alice's token for the fixture's resource with cnf.
func (f *fixture) mintBound(t *testing.T, cnf map[string]any) string {
	t.Helper()
	s, err := f.issuer.Mint(devissuer.Token{Subject: "alice", Extra: map[string]any{"cnf": cnf}})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// wantNotAccessToken fails unless d is the denial of a token that is not a
// bearer access token: 401 invalid_token, reason not_access_token, with
// detail (the error's text) saying why.
func wantNotAccessToken(t *testing.T, d Decision, detail string) {
	t.Helper()
	if d.Allow || d.Status != http.StatusUnauthorized || d.Reason != ReasonNotAccessToken ||
		!errors.Is(d.Err, token.ErrNotAccessToken) || !strings.Contains(d.Challenge, `error="invalid_token"`) ||
		!strings.Contains(string(d.Body), "not a bearer access token") {
		t.Fatalf("allow=%v status=%d reason=%s err=%v challenge=%q body=%s; want 401 not_access_token",
			d.Allow, d.Status, d.Reason, d.Err, d.Challenge, d.Body)
	}
	if !strings.Contains(d.Err.Error(), detail) {
		t.Fatalf("err %q does not say %q", d.Err, detail)
	}
}

// TestDPoPBoundTokenIsNotABearerToken: a token bound to a key by DPoP
// (cnf.jkt) verifies, but presented as Bearer it is refused — when
// verified, and when its verdict comes from the cache. One bound by mTLS
// (cnf.x5t#S256) is refused by the token layer, as before.
func TestDPoPBoundTokenIsNotABearerToken(t *testing.T) {
	t.Run("cnf.jkt as Bearer", func(t *testing.T) {
		f := newFixture(t, time.Minute, 10*time.Second)
		tok := f.mintBound(t, map[string]any{"jkt": testJKT})
		d := f.check(tok, "/mcp")
		wantNotAccessToken(t, d, "DPoP-bound (cnf.jkt) token presented as Bearer")
		if d.Source != SourceVerified {
			t.Fatalf("source %q, want verified", d.Source)
		}
		// The verdict cached is the valid, bound one; served from the
		// cache, it is refused all the same.
		d = f.check(tok, "/mcp")
		wantNotAccessToken(t, d, "DPoP-bound (cnf.jkt) token presented as Bearer")
		if d.Source != SourceLocal || f.verifier.calls.Load() != 1 {
			t.Fatalf("second check: source %q after %d verifications, want a cache hit after 1", d.Source, f.verifier.calls.Load())
		}
	})
	t.Run("cnf.x5t#S256 as Bearer", func(t *testing.T) {
		f := newFixture(t, time.Minute, 10*time.Second)
		tok := f.mintBound(t, map[string]any{"x5t#S256": testX5T})
		wantNotAccessToken(t, f.check(tok, "/mcp"), "sender-constrained (cnf) other than by a DPoP key thumbprint")
		d := f.check(tok, "/mcp")
		wantNotAccessToken(t, d, "token is not a bearer access token") // the cached failure is the bare class
		if d.Source != SourceLocal || f.verifier.calls.Load() != 1 {
			t.Fatalf("second check: source %q after %d verifications, want the negative cache after 1", d.Source, f.verifier.calls.Load())
		}
	})
	t.Run("unbound, the same otherwise", func(t *testing.T) {
		f := newFixture(t, time.Minute, 10*time.Second)
		if d := f.check(f.mint(t, time.Hour), "/mcp"); !d.Allow {
			t.Fatalf("denied: %v", d.Err)
		}
	})
}

// TestDPoPBoundVerdictFromRedis: a bound token's verdict cached in Redis
// by one replica is refused as Bearer by another, which reads it with the
// codec and never verifies the token itself.
func TestDPoPBoundVerdictFromRedis(t *testing.T) {
	srv := redistest.Start(t)
	clock := testkit.NewClock()
	iss, _ := testkit.Issuer(t, "ES256", "", testResource, clock.Now)
	a := newRedisReplica(t, srv.Addr(), iss, clock)
	b := newRedisReplica(t, srv.Addr(), iss, clock)
	tok, err := iss.Mint(devissuer.Token{Subject: "alice", Extra: map[string]any{"cnf": map[string]any{"jkt": testJKT}}})
	if err != nil {
		t.Fatal(err)
	}
	wantNotAccessToken(t, a.check(tok), "presented as Bearer")
	d := b.check(tok)
	wantNotAccessToken(t, d, "presented as Bearer")
	if d.Source != SourceRedis || b.v.calls.Load() != 0 {
		t.Fatalf("second replica: source %q after %d verifications; want the shared cache and none", d.Source, b.v.calls.Load())
	}
	// And the unbound control: the same path lets an unbound token through.
	unbound, err := iss.Mint(devissuer.Token{Subject: "bob"})
	if err != nil {
		t.Fatal(err)
	}
	if d := a.check(unbound); !d.Allow {
		t.Fatalf("unbound denied: %v", d.Err)
	}
	if d := b.check(unbound); !d.Allow || d.Source != SourceRedis {
		t.Fatalf("unbound on the second replica: allow=%v source=%q err=%v", d.Allow, d.Source, d.Err)
	}
}
