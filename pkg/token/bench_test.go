package token

import (
	"context"
	"testing"
	"time"

	"github.com/extauthz/extauthz/pkg/devissuer"
)

// benchClaims are an access token's claims as providers issue them: the
// standard ones and a few more that the strict parse checks and skips.
func benchClaims(iss string) map[string]any {
	return map[string]any{
		"iss": iss, "sub": "user-7f3c9a2e-4b1d-4c8e-9f6a-1d2e3f4a5b6c", "aud": "https://mcp.example.com/mcp",
		"client_id": "mcp-client-0a1b2c3d", "scope": "mcp:tools mcp:resources openid profile",
		"exp": 4102444800, "iat": 1700000000, "jti": "0f2b5c8e9d7a4b3c1e6f",
		"sid": "ssssssssssssssssssssssssssssssssssss", "acr": "urn:mace:incommon:iap:silver",
	}
}

// BenchmarkVerifyJWT is a JWT's whole local verification, as on a cache
// miss: split, canonical base64url, strict JSON of header and claims,
// signature, claims read and checked.
func BenchmarkVerifyJWT(b *testing.B) {
	now := time.Unix(1700000100, 0)
	for _, alg := range []string{"ES256", "RS256"} {
		b.Run(alg, func(b *testing.B) {
			iss, v := benchSetup(b, alg, now)
			tok, err := iss.Sign(benchClaims(iss.Issuer()), nil)
			if err != nil {
				b.Fatal(err)
			}
			tr := map[string]struct{}{iss.Issuer(): {}}
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.Verify(ctx, tok, tr); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkParseJWT is the part of BenchmarkVerifyJWT besides the
// signature: splitting and decoding the token, and the strict reading of
// its header and claims. It measures reliably on a noisy machine, where
// the signature's cost would drown it.
func BenchmarkParseJWT(b *testing.B) {
	iss, _ := benchSetup(b, "ES256", time.Unix(1700000100, 0))
	tok, err := iss.Sign(benchClaims(iss.Issuer()), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		t, err := parseJWT(tok)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := ParsePayload(t.payload, ClaimNames{}); err != nil {
			b.Fatal(err)
		}
	}
}

func benchSetup(b *testing.B, alg string, now time.Time) (*devissuer.Issuer, *IssuerSet) {
	b.Helper()
	iss, err := devissuer.New("https://auth.example.com", alg, func() time.Time { return now })
	if err != nil {
		b.Fatal(err)
	}
	v, err := NewIssuerSet(Options{
		Issuers: map[string]Issuer{iss.Issuer(): {Keys: keyMap{iss: iss}}},
		Now:     func() time.Time { return now },
	})
	if err != nil {
		b.Fatal(err)
	}
	return iss, v
}
