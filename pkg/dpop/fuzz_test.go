package dpop_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jws"

	"github.com/extauthz/extauthz/internal/testkit"
	"github.com/extauthz/extauthz/pkg/dpop"
)

// FuzzVerifyProof: whatever the DPoP header and the request URI, Verify
// never panics, every refusal is ErrInvalidProof, and whatever it accepts
// an independent implementation (jwx) accepts too: the signature verifies
// with the header's jwk, the thumbprint is jwx's, and typ is dpop+jwt.
func FuzzVerifyProof(f *testing.F) {
	fx := newFixture(f, dpop.Options{})
	for _, alg := range []string{"ES256", "EdDSA", "RS256", "PS256"} {
		k := newKey(f, alg)
		f.Add(k.proof(f, k.header(), fx.claims()), testURI)
	}
	es := newKey(f, "ES256")
	h := es.header()
	h["jwk"].(map[string]any)["d"] = "AAAA"
	f.Add(es.proof(f, h, fx.claims()), testURI)
	f.Add(es.sign(f, []byte(`{"typ":"dpop+jwt","alg":"ES256","alg":"none","jwk":{}}`), []byte(`{}`)), testURI)
	f.Add(es.proof(f, es.header(), fx.claims()), "HTTPS://mcp.example.com:443/%6dcp?q#f")
	f.Add("e30.e30.e30", "https://a/")
	f.Add("", "")

	f.Fuzz(func(t *testing.T, proof, uri string) {
		clock := testkit.NewClockAt(t0)
		v, err := dpop.NewVerifier(dpop.Options{
			Algorithms: []string{"ES256", "ES384", "ES512", "EdDSA", "RS256", "PS256"},
			Replay:     dpop.NewMemoryReplay(4, clock.Now),
			Now:        clock.Now,
		})
		if err != nil {
			t.Fatal(err)
		}
		res, err := v.Verify(t.Context(), dpop.Proof{Header: proof, Method: testMethod, URI: uri, AccessToken: testToken})
		if err != nil {
			if !errors.Is(err, dpop.ErrInvalidProof) || errors.Is(err, dpop.ErrUnavailable) || errors.Is(err, dpop.ErrUseNonce) {
				t.Fatalf("error outside its class: %v", err)
			}
			return
		}
		msg, err := jws.Parse([]byte(proof))
		if err != nil {
			t.Fatalf("accepted, but jwx cannot parse it: %v", err)
		}
		sigs := msg.Signatures()
		if len(sigs) != 1 {
			t.Fatalf("accepted a JWS with %d signatures", len(sigs))
		}
		hdr := sigs[0].ProtectedHeaders()
		key, ok := hdr.JWK()
		alg, ok2 := hdr.Algorithm()
		typ, ok3 := hdr.Type()
		if !ok || !ok2 || !ok3 || !strings.EqualFold(strings.TrimPrefix(strings.ToLower(typ), "application/"), "dpop+jwt") {
			t.Fatalf("accepted, but jwx reads jwk %v, alg %v, typ %q", ok, ok2, typ)
		}
		if _, err := jws.Verify([]byte(proof), jws.WithKey(alg, key)); err != nil {
			t.Fatalf("accepted, but jwx does not verify it: %v", err)
		}
		if alg == jwa.NoSignature() {
			t.Fatal("accepted alg none")
		}
		tp, err := key.Thumbprint(cryptoSHA256)
		if err != nil || b64(tp) != res.JKT {
			t.Fatalf("JKT %s; jwx's thumbprint %s, %v", res.JKT, b64(tp), err)
		}
	})
}

// alwaysFresh is a replay store that has seen nothing, ever: it lets one
// Verifier judge the same proof again and again.
type alwaysFresh struct{}

func (alwaysFresh) Claim(context.Context, string, time.Duration) (bool, error) { return true, nil }

// FuzzHeaderCacheTransparent: a Verifier that has kept headers (the seed
// keys', and any a fuzzed proof verified with) answers every proof as a
// Verifier that has kept none: the same error, or the same result. Seeds
// with a kept header exercise the cached path, their mutations the
// near misses.
func FuzzHeaderCacheTransparent(f *testing.F) {
	fx := newFixture(f, dpop.Options{})
	var seeds []string
	for _, alg := range []string{"ES256", "EdDSA", "RS256", "PS256"} {
		k := newKey(f, alg)
		seeds = append(seeds, k.proof(f, k.header(), fx.claims()))
	}
	for _, s := range seeds {
		f.Add(s)
		// A near miss: one character of the header segment changed.
		i := strings.IndexByte(s, '.') / 2
		c := byte('A')
		if s[i] == 'A' {
			c = 'B'
		}
		f.Add(s[:i] + string(c) + s[i+1:])
	}
	clock := testkit.NewClockAt(t0)
	options := dpop.Options{Algorithms: []string{"ES256", "EdDSA", "RS256", "PS256"}, Replay: alwaysFresh{}, Now: clock.Now}
	kept, err := dpop.NewVerifier(options)
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range seeds {
		if _, err := kept.Verify(f.Context(), dpop.Proof{Header: s, Method: testMethod, URI: testURI, AccessToken: testToken}); err != nil {
			f.Fatal(err)
		}
	}

	f.Fuzz(func(t *testing.T, proof string) {
		fresh, err := dpop.NewVerifier(options)
		if err != nil {
			t.Fatal(err)
		}
		p := dpop.Proof{Header: proof, Method: testMethod, URI: testURI, AccessToken: testToken}
		got, gerr := kept.Verify(t.Context(), p)
		want, werr := fresh.Verify(t.Context(), p)
		if fmt.Sprint(gerr) != fmt.Sprint(werr) || got.JKT != want.JKT || got.JTI != want.JTI || !got.IssuedAt.Equal(want.IssuedAt) {
			t.Fatalf("with kept headers: %+v, %v; without: %+v, %v", got, gerr, want, werr)
		}
	})
}
