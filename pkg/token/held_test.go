package token

import (
	"context"
	"crypto"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/extauthz/extauthz/internal/testkit"
	"github.com/extauthz/extauthz/pkg/devissuer"
	"github.com/extauthz/extauthz/pkg/jwks"
)

// heldKeys is keyMap that also says which keys it holds (HeldKeySource).
type heldKeys struct{ keyMap }

func (k heldKeys) HeldKey(kid, _ string) crypto.PublicKey {
	if k.err != nil {
		return nil
	}
	return k.iss.PublicKey(kid)
}

// VerifyHeld answers as Verify does for every token whose key is held:
// the same claims for a good one, the same failure class for a bad one.
func TestVerifyHeldAnswersAsVerify(t *testing.T) {
	now := time.Now()
	for _, alg := range []string{"RS256", "PS256", "ES256", "ES384", "EdDSA"} {
		t.Run(alg, func(t *testing.T) {
			iss, err := devissuer.New("https://auth.example.com", alg, func() time.Time { return now })
			if err != nil {
				t.Fatal(err)
			}
			iss.DefaultAudience = aud
			v, err := NewIssuerSet(Options{Issuers: map[string]Issuer{iss.Issuer(): {Keys: heldKeys{keyMap{iss: iss}}}}, Now: func() time.Time { return now }})
			if err != nil {
				t.Fatal(err)
			}
			sign := func(claims map[string]any, header map[string]any) string {
				tok, err := iss.Sign(claims, header)
				if err != nil {
					t.Fatal(err)
				}
				return tok
			}
			good, _ := iss.Mint(devissuer.Token{Subject: "alice", Scopes: []string{"read"}})
			exp := now.Add(time.Hour).Unix()
			tokens := map[string]string{
				"good":          good,
				"tampered":      good[:len(good)-4] + "AAAA",
				"expired":       sign(map[string]any{"iss": iss.Issuer(), "aud": aud, "exp": now.Add(-time.Hour).Unix()}, nil),
				"not yet valid": sign(map[string]any{"iss": iss.Issuer(), "aud": aud, "exp": exp, "nbf": now.Add(time.Hour).Unix()}, nil),
				"untrusted iss": sign(map[string]any{"iss": "https://evil.example", "aud": aud, "exp": exp}, nil),
				"no iss":        sign(map[string]any{"aud": aud, "exp": exp}, nil),
				"crit":          sign(map[string]any{"iss": iss.Issuer(), "aud": aud, "exp": exp}, map[string]any{"crit": []string{"x"}, "x": 1}),
				"malformed":     "a.b",
				"opaque":        "opaque-token",
				"alg none":      seg(map[string]string{"alg": "none"}) + good[strings.IndexByte(good, '.'):],
			}
			for name, tok := range tokens {
				want, wantErr := v.Verify(context.Background(), tok, trusted(iss))
				got, gotErr := v.VerifyHeld(tok, trusted(iss))
				if errors.Is(gotErr, ErrNeedsNetwork) {
					t.Errorf("%s: VerifyHeld needs the network for a token whose key is held", name)
					continue
				}
				if (wantErr == nil) != (gotErr == nil) || wantErr != nil && !sameClass(wantErr, gotErr) {
					t.Errorf("%s: VerifyHeld: %v; Verify: %v", name, gotErr, wantErr)
					continue
				}
				if want != nil && (got == nil || got.Subject != want.Subject || !got.Expiry.Equal(want.Expiry) || got.Key() != want.Key()) {
					t.Errorf("%s: VerifyHeld claims %+v; Verify's %+v", name, got, want)
				}
			}
		})
	}
}

// sameClass reports whether a and b wrap the same failure class.
func sameClass(a, b error) bool {
	for _, class := range []error{ErrMalformed, ErrAlgorithm, ErrCritical, ErrUnknownIssuer, ErrUnknownKey, ErrSignature,
		ErrExpired, ErrMissingExpiry, ErrNotYetValid, ErrInactive, ErrNotAccessToken, ErrUnavailable} {
		if errors.Is(a, class) {
			return errors.Is(b, class)
		}
	}
	return false
}

// Whatever needs the network makes VerifyHeld fail with ErrNeedsNetwork,
// having fetched and asked nothing; Verify then gives the real answer.
func TestVerifyHeldNeedsTheNetwork(t *testing.T) {
	now := time.Now()
	iss, err := devissuer.New("https://auth.example.com", "ES256", func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	iss.DefaultAudience = aud
	good, _ := iss.Mint(devissuer.Token{Subject: "alice"})
	unknownKid, err := iss.Sign(map[string]any{"iss": iss.Issuer(), "aud": aud, "exp": now.Add(time.Hour).Unix()}, map[string]any{"kid": "not-published"})
	if err != nil {
		t.Fatal(err)
	}
	in := &fakeIntrospector{issuer: iss.Issuer()}
	cases := []struct {
		name    string
		is      Issuer
		raw     string
		verify  error // Verify's answer afterwards
		asksIn  bool
		subject string
	}{
		{"key not held", Issuer{Keys: heldKeys{keyMap{iss: iss}}}, unknownKid, ErrUnknownKey, false, ""},
		{"key source that cannot say what it holds", Issuer{Keys: keyMap{iss: iss}}, good, nil, false, "alice"},
		{"key source failing", Issuer{Keys: heldKeys{keyMap{iss: iss, err: jwks.ErrUnavailable}}}, good, ErrUnavailable, false, ""},
		{"introspecting issuer", Issuer{Mode: ModeIntrospection, Introspector: in}, good, nil, true, "introspected"},
		{"opaque token, auto mode", Issuer{Mode: ModeAuto, Keys: heldKeys{keyMap{iss: iss}}, Introspector: in}, "opaque", nil, true, "introspected"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v, err := NewIssuerSet(Options{Issuers: map[string]Issuer{iss.Issuer(): c.is}, Now: func() time.Time { return now }})
			if err != nil {
				t.Fatal(err)
			}
			in.asked = nil
			if got, err := v.VerifyHeld(c.raw, trusted(iss)); err != ErrNeedsNetwork || got != nil { //nolint:errorlint // never wrapped
				t.Fatalf("VerifyHeld = %+v, %v; want ErrNeedsNetwork itself", got, err)
			}
			if len(in.asked) != 0 {
				t.Fatal("VerifyHeld asked the introspection endpoint")
			}
			got, err := v.Verify(context.Background(), c.raw, trusted(iss))
			if !errors.Is(err, c.verify) || errors.Is(err, ErrNeedsNetwork) || err == nil && got.Subject != c.subject {
				t.Fatalf("Verify afterwards = %+v, %v; want subject %q, err %v", got, err, c.subject, c.verify)
			}
			if c.asksIn != (len(in.asked) == 1) {
				t.Fatalf("Verify asked the introspection endpoint %d times", len(in.asked))
			}
		})
	}
}

// With the product's key source, VerifyHeld fetches nothing: before the
// first fetch every key needs the network; once Verify has fetched the
// set, its keys are held.
func TestVerifyHeldWithAKeySet(t *testing.T) {
	now := time.Now()
	iss, _ := testkit.Issuer(t, "ES256", "", aud, func() time.Time { return now })
	src := jwks.New(func(context.Context) (string, error) { return iss.JWKSURL(), nil }, jwks.Options{Now: func() time.Time { return now }})
	v, err := NewIssuerSet(Options{Issuers: map[string]Issuer{iss.Issuer(): {Keys: src}}, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := iss.Mint(devissuer.Token{Subject: "alice"})
	if _, err := v.VerifyHeld(tok, trusted(iss)); !errors.Is(err, ErrNeedsNetwork) {
		t.Fatalf("before any fetch: %v, want ErrNeedsNetwork", err)
	}
	if n := iss.JWKSFetches(); n != 0 {
		t.Fatalf("VerifyHeld fetched the key set %d times", n)
	}
	if _, err := v.Verify(context.Background(), tok, trusted(iss)); err != nil {
		t.Fatal(err)
	}
	fetches := iss.JWKSFetches()
	c, err := v.VerifyHeld(tok, trusted(iss))
	if err != nil || c.Subject != "alice" {
		t.Fatalf("after the fetch: %+v, %v", c, err)
	}
	if n := iss.JWKSFetches(); n != fetches {
		t.Fatalf("VerifyHeld fetched the key set (%d fetches, %d before)", n, fetches)
	}
}
