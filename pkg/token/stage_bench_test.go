package token

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jws"

	"github.com/extauthz/extauthz/pkg/devissuer"
	"github.com/extauthz/extauthz/pkg/jwks"
)

// stageFixture is one algorithm's realistic token, verified against a real
// jwks.Source (keys converted once when the set is loaded, as in service).
type stageFixture struct {
	tok   string
	v     *IssuerSet
	src   *jwks.Source
	tr    map[string]struct{}
	key   crypto.PublicKey
	input []byte // the signing input: header.payload
	sig   []byte // the decoded signature
}

func newStageFixture(b *testing.B, alg string) *stageFixture {
	b.Helper()
	now := time.Unix(1700000100, 0)
	iss, err := devissuer.New("https://auth.example.com", alg, func() time.Time { return now })
	if err != nil {
		b.Fatal(err)
	}
	ts := httptest.NewServer(iss.Handler())
	b.Cleanup(ts.Close)
	src := jwks.New(func(context.Context) (string, error) { return ts.URL + "/jwks.json", nil }, jwks.Options{})
	v, err := NewIssuerSet(Options{Issuers: map[string]Issuer{iss.Issuer(): {Keys: src}}, Now: func() time.Time { return now }})
	if err != nil {
		b.Fatal(err)
	}
	tok, err := iss.Sign(benchClaims(iss.Issuer()), nil)
	if err != nil {
		b.Fatal(err)
	}
	f := &stageFixture{tok: tok, v: v, src: src, tr: map[string]struct{}{iss.Issuer(): {}}}
	if f.key, err = src.Key(context.Background(), iss.ActiveKID(), alg); err != nil {
		b.Fatal(err)
	}
	dot := strings.LastIndexByte(tok, '.')
	f.input = []byte(tok[:dot])
	if f.sig, err = decodeSegment(tok[dot+1:]); err != nil {
		b.Fatal(err)
	}
	return f
}

// BenchmarkStages breaks a JWT's verification on a cache miss into its
// stages, and sets beside them the bare crypto/* call on the same key and
// message — the floor no verification can go under. Compare figures within
// one run only: the signature dwarfs the rest, and a shared machine moves it.
//
//   - split: the three segments cut, each checked canonical base64url, and
//     header, claims and signature decoded;
//   - header: the strict JSON reading of the JOSE header;
//   - scan: the strict JSON scan of the claims for iss, before any key;
//   - key: the issuer's key for kid and alg (jwks.Source, a hit);
//   - sig: the signature check as Verify does it;
//   - sig_jwx: the same check by jwx's jws.VerifyCompactFast, for reference;
//   - claims: the claims read, the access-token checks and Claims built;
//   - verify: the whole of IssuerSet.Verify;
//   - raw_hash_verify: SHA-256 of the signing input and the bare crypto call
//     (for EdDSA, which hashes inside, the same as raw_verify);
//   - raw_verify: the bare crypto call alone, on a precomputed digest:
//     rsa.VerifyPKCS1v15, ecdsa.VerifyASN1, ed25519.Verify.
func BenchmarkStages(b *testing.B) {
	for _, alg := range []string{"RS256", "ES256", "EdDSA"} {
		b.Run(alg, func(b *testing.B) {
			f := newStageFixture(b, alg)
			ctx := context.Background()
			t, err := parseJWT(f.tok)
			if err != nil {
				b.Fatal(err)
			}
			h64, rest, _ := strings.Cut(f.tok, ".")
			p64, s64, _ := strings.Cut(rest, ".")
			hb, _ := decodeSegment(h64)

			b.Run("split", func(b *testing.B) {
				measureCPU(b)
				for b.Loop() {
					h, rest, _ := strings.Cut(f.tok, ".")
					p, s, _ := strings.Cut(rest, ".")
					if !canonicalBase64URL(s) {
						b.Fatal("signature")
					}
					if _, err := decodeSegment(h); err != nil {
						b.Fatal(err)
					}
					if _, err := decodeSegment(p); err != nil {
						b.Fatal(err)
					}
					if _, err := decodeSegment(s); err != nil {
						b.Fatal(err)
					}
				}
			})
			_ = p64
			_ = s64
			b.Run("header", func(b *testing.B) {
				measureCPU(b)
				for b.Loop() {
					if _, err := parseHeader(hb); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("scan", func(b *testing.B) {
				measureCPU(b)
				for b.Loop() {
					var r claimValues
					if err := r.scan(t.payload); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("key", func(b *testing.B) {
				measureCPU(b)
				for b.Loop() {
					if _, err := f.src.Key(ctx, t.header.Kid, t.header.Alg); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("sig", func(b *testing.B) {
				measureCPU(b)
				for b.Loop() {
					if err := verifySignature(f.v.algs[t.header.Alg], f.key, f.tok); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("sig_jwx", func(b *testing.B) {
				a, _ := jwa.LookupSignatureAlgorithm(alg)
				measureCPU(b)
				for b.Loop() {
					if _, err := jws.VerifyCompactFast(f.key, []byte(f.tok), a); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("claims", func(b *testing.B) {
				measureCPU(b)
				for b.Loop() {
					p, err := t.claims.payload(t.iss)
					if err != nil {
						b.Fatal(err)
					}
					if err := accessToken(t.header, p, false); err != nil {
						b.Fatal(err)
					}
					if _, err := p.Claims(time.Unix(1700000100, 0), 0, true); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("verify", func(b *testing.B) {
				measureCPU(b)
				for b.Loop() {
					if _, err := f.v.Verify(ctx, f.tok, f.tr); err != nil {
						b.Fatal(err)
					}
				}
			})
			rawVerify := bareCrypto(b, alg, f)
			b.Run("raw_hash_verify", func(b *testing.B) {
				measureCPU(b)
				for b.Loop() {
					if !rawVerify(true) {
						b.Fatal("raw verify failed")
					}
				}
			})
			b.Run("raw_verify", func(b *testing.B) {
				measureCPU(b)
				for b.Loop() {
					if !rawVerify(false) {
						b.Fatal("raw verify failed")
					}
				}
			})
		})
	}
}

// bareCrypto returns the bare crypto/* verification of f's signature,
// hashing the signing input first or using a digest computed beforehand.
func bareCrypto(b *testing.B, alg string, f *stageFixture) func(hash bool) bool {
	b.Helper()
	digest := sha256.Sum256(f.input)
	switch alg {
	case "RS256":
		k := f.key.(*rsa.PublicKey)
		return func(hash bool) bool {
			d := digest
			if hash {
				d = sha256.Sum256(f.input)
			}
			return rsa.VerifyPKCS1v15(k, crypto.SHA256, d[:], f.sig) == nil
		}
	case "ES256":
		k := f.key.(*ecdsa.PublicKey)
		der := appendASN1Signature(nil, f.sig)
		return func(hash bool) bool {
			d := digest
			if hash {
				d = sha256.Sum256(f.input)
			}
			return ecdsa.VerifyASN1(k, d[:], der)
		}
	case "EdDSA":
		k := f.key.(ed25519.PublicKey)
		return func(bool) bool { return ed25519.Verify(k, f.input, f.sig) }
	}
	b.Fatalf("no raw verifier for %s", alg)
	return nil
}

// measureCPU reports allocations and, as cpu-ns/op, the process's CPU
// time (user and system, every thread: the garbage collector's share
// included) per iteration of the b.Loop that follows. Unlike ns/op it does
// not count the time the benchmark waited for a CPU, so it is what to
// compare on a machine shared with other work.
func measureCPU(b *testing.B) {
	b.Helper()
	b.ReportAllocs()
	c0 := cpuTime()
	b.Cleanup(func() {
		if c0 > 0 && b.N > 0 {
			b.ReportMetric(float64(cpuTime()-c0)/float64(b.N), "cpu-ns/op")
		}
	})
}
