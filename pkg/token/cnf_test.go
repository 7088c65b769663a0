package token

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// x5t is a certificate's SHA-256 thumbprint (RFC 8705 §3.1).
const x5t = "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"

// TestConfirmation: a signed access token with a cnf claim verifies only
// when cnf is DPoP's jkt alone, a SHA-256 thumbprint in canonical
// base64url; its claims then carry it. Every other cnf is a binding the
// gateway cannot check: refused as not an access token, or, when the
// claims are ambiguous, as malformed, before anything is read from them.
func TestConfirmation(t *testing.T) {
	v := rawVerifier(t)
	cases := []struct {
		name string
		cnf  string // the value of cnf, as JSON text
		want error  // nil: verifies, bound to thumbprint
	}{
		{"jkt", `{"jkt":"` + thumbprint + `"}`, nil},
		{"jkt, name escaped", `{"\u006akt":"` + thumbprint + `"}`, nil},
		{"jkt, whitespace around", ` { "jkt" : "` + thumbprint + `" } `, nil},

		{"x5t#S256 (mTLS)", `{"x5t#S256":"` + x5t + `"}`, ErrNotAccessToken},
		{"jkt and x5t#S256", `{"jkt":"` + thumbprint + `","x5t#S256":"` + x5t + `"}`, ErrNotAccessToken},
		{"x5t#S256 and jkt", `{"x5t#S256":"` + x5t + `","jkt":"` + thumbprint + `"}`, ErrNotAccessToken},
		{"jwk", `{"jwk":{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}}`, ErrNotAccessToken},
		{"jkt and kid", `{"jkt":"` + thumbprint + `","kid":"k"}`, ErrNotAccessToken},
		{"empty object", `{}`, ErrNotAccessToken},
		{"null", `null`, ErrNotAccessToken},
		{"a string", `"` + thumbprint + `"`, ErrNotAccessToken},
		{"an array", `["` + thumbprint + `"]`, ErrNotAccessToken},
		{"true", `true`, ErrNotAccessToken},
		{"JKT", `{"JKT":"` + thumbprint + `"}`, ErrNotAccessToken},
		{"jkt null", `{"jkt":null}`, ErrNotAccessToken},
		{"jkt empty", `{"jkt":""}`, ErrNotAccessToken},
		{"jkt a number", `{"jkt":43}`, ErrNotAccessToken},
		{"jkt an object", `{"jkt":{"v":"` + thumbprint + `"}}`, ErrNotAccessToken},
		{"jkt one character short", `{"jkt":"` + thumbprint[:42] + `"}`, ErrNotAccessToken},
		{"jkt one character long", `{"jkt":"` + thumbprint + `A"}`, ErrNotAccessToken},
		{"jkt padded", `{"jkt":"` + thumbprint + `="}`, ErrNotAccessToken},
		{"jkt of SHA-512", `{"jkt":"` + strings.Repeat("A", 86) + `"}`, ErrNotAccessToken},
		{"jkt in the standard alphabet", `{"jkt":"` + strings.NewReplacer("-", "+", "_", "/").Replace(thumbprint) + `"}`, ErrNotAccessToken},
		{"jkt with non-zero trailing bits", `{"jkt":"` + thumbprint[:42] + string(flipLowBits(thumbprint[42])) + `"}`, ErrNotAccessToken},
		{"jkt with a line break", `{"jkt":"` + thumbprint[:20] + `\n` + thumbprint[20:42] + `"}`, ErrNotAccessToken},
		{"jkt hex", `{"jkt":"` + strings.Repeat("ab", 32) + `"}`, ErrNotAccessToken},

		// Ambiguous JSON, whose reading would be a parser's choice.
		{"jkt twice", `{"jkt":"` + thumbprint + `","jkt":"` + thumbprint + `"}`, ErrMalformed},
		{"jkt twice, one escaped", `{"jkt":"` + x5t + `","\u006akt":"` + thumbprint + `"}`, ErrMalformed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := v.Verify(context.Background(), signRaw(rawHeader, rawClaims(`,"cnf":`+c.cnf)), rawTrusted)
			if c.want != nil {
				if !errors.Is(err, c.want) || got != nil {
					t.Fatalf("got %+v, %v; want %v", got, err, c.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.JKT != thumbprint || got.Subject != "alice" {
				t.Fatalf("claims %+v, grant %+v; want bound to %s", got, got.Grant, thumbprint)
			}
		})
	}
	t.Run("cnf twice", func(t *testing.T) {
		// Bound, or bound to another key: a reader keeping the first member
		// would see another binding than one keeping the last.
		tok := signRaw(rawHeader, rawClaims(`,"cnf":{"jkt":"`+thumbprint+`"},"cnf":{"x5t#S256":"`+x5t+`"}`))
		if got, err := v.Verify(context.Background(), tok, rawTrusted); !errors.Is(err, ErrMalformed) {
			t.Fatalf("got %+v, %v; want ErrMalformed", got, err)
		}
	})
	t.Run("CNF beside cnf", func(t *testing.T) {
		tok := signRaw(rawHeader, rawClaims(`,"cnf":{"jkt":"`+thumbprint+`"},"CNF":{"x5t#S256":"`+x5t+`"}`))
		if got, err := v.Verify(context.Background(), tok, rawTrusted); !errors.Is(err, ErrMalformed) {
			t.Fatalf("got %+v, %v; want ErrMalformed", got, err)
		}
	})
	t.Run("no cnf is unbound", func(t *testing.T) {
		got, err := v.Verify(context.Background(), signRaw(rawHeader, rawClaims("")), rawTrusted)
		if err != nil || got.JKT != "" {
			t.Fatalf("got %+v, %v; want unbound claims", got, err)
		}
	})
	t.Run("untyped, with require_typ off", func(t *testing.T) {
		// The binding is judged whatever the typ rule.
		u, err := NewIssuerSet(Options{
			Issuers:    map[string]Issuer{rawIssuer: {Keys: fixedKey{}, AllowUntyped: true}},
			Algorithms: []string{"EdDSA"},
			Now:        func() time.Time { return rawNow },
		})
		if err != nil {
			t.Fatal(err)
		}
		hdr := `{"alg":"EdDSA","kid":"k1"}`
		if got, err := u.Verify(context.Background(), signRaw(hdr, rawClaims(`,"cnf":{"jkt":"`+thumbprint+`"}`)), rawTrusted); err != nil || got.JKT != thumbprint {
			t.Fatalf("jkt: got %+v, %v", got, err)
		}
		if got, err := u.Verify(context.Background(), signRaw(hdr, rawClaims(`,"cnf":{"x5t#S256":"`+x5t+`"}`)), rawTrusted); !errors.Is(err, ErrNotAccessToken) {
			t.Fatalf("x5t#S256: got %+v, %v; want ErrNotAccessToken", got, err)
		}
	})
}

// TestParsePayloadConfirmation: introspection answers are read by
// ParsePayload, which reports any cnf and the jkt of DPoP's alone.
func TestParsePayloadConfirmation(t *testing.T) {
	cases := []struct {
		body string
		cnf  bool
		jkt  string
	}{
		{`{"sub":"a"}`, false, ""},
		{`{"cnf":{"jkt":"` + thumbprint + `"}}`, true, thumbprint},
		{`{"cnf":{"x5t#S256":"` + x5t + `"}}`, true, ""},
		{`{"cnf":{"jkt":"` + thumbprint + `","x5t#S256":"` + x5t + `"}}`, true, ""},
		{`{"cnf":null}`, true, ""},
		{`{"cnf":{"jkt":"` + thumbprint[1:] + `"}}`, true, ""},
	}
	for _, c := range cases {
		p, err := ParsePayload([]byte(c.body), ClaimNames{})
		if err != nil {
			t.Fatalf("%s: %v", c.body, err)
		}
		if p.Confirmation != c.cnf || p.JKT != c.jkt {
			t.Errorf("%s: Confirmation %v, JKT %q; want %v, %q", c.body, p.Confirmation, p.JKT, c.cnf, c.jkt)
		}
		claims, err := p.Claims(rawNow, 0, false)
		if err != nil || claims.JKT != c.jkt {
			t.Errorf("%s: claims %+v, %v; want JKT %q", c.body, claims, err, c.jkt)
		}
	}
	// Whatever ClaimNames say.
	p, err := ParsePayload([]byte(`{"cnf":{"jkt":"`+thumbprint+`"},"tenant":"t"}`), ClaimNames{Keep: []string{"tenant"}, Scope: "scp"})
	if err != nil || p.JKT != thumbprint {
		t.Fatalf("with claim names: %+v, %v", p, err)
	}
}
