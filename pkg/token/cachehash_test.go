package token

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/extauthz/extauthz/internal/testkit"
	"github.com/extauthz/extauthz/pkg/devissuer"
)

// esKey is an ECDSA key of the curve of alg, and the hash alg uses.
func esKey(t testing.TB, alg string) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(testkit.ECDSACurve(t, alg), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// esSign signs header and claims, given as JSON text, byte for byte, as a
// JWS with r‖s in fixed-size halves (RFC 7518 §3.4); its s is in the upper
// half when highS, else in the lower.
func esSign(t testing.TB, k *ecdsa.PrivateKey, header, claims string, highS bool) string {
	t.Helper()
	in := enc(header) + "." + enc(claims)
	var digest []byte
	switch k.Curve {
	case elliptic.P256():
		d := sha256.Sum256([]byte(in))
		digest = d[:]
	case elliptic.P384():
		d := sha512.Sum384([]byte(in))
		digest = d[:]
	default:
		d := sha512.Sum512([]byte(in))
		digest = d[:]
	}
	r, s, err := ecdsa.Sign(rand.Reader, k, digest)
	if err != nil {
		t.Fatal(err)
	}
	n := k.Curve.Params().N
	if (s.Cmp(new(big.Int).Rsh(n, 1)) > 0) != highS {
		s.Sub(n, s)
	}
	size := (k.Curve.Params().BitSize + 7) / 8
	sig := make([]byte, 2*size)
	r.FillBytes(sig[:size])
	s.FillBytes(sig[size:])
	return in + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// withS replaces the second half of tok's signature by v, big-endian.
func withS(tok string, v *big.Int) string {
	dot := strings.LastIndexByte(tok, '.')
	sig, _ := base64.RawURLEncoding.DecodeString(tok[dot+1:])
	half := len(sig) / 2
	v.FillBytes(sig[half:])
	return tok[:dot+1] + base64.RawURLEncoding.EncodeToString(sig)
}

func rawSum(s string) [32]byte { return sha256.Sum256([]byte(s)) }

// TestCacheHashEveryAlgorithm: a token of each algorithm hashes as its own
// text, except an ECDSA one whose s is in the upper half, which hashes as
// its low-s form; both forms of an ECDSA token hash the same.
func TestCacheHashEveryAlgorithm(t *testing.T) {
	for _, alg := range []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"} {
		t.Run(alg, func(t *testing.T) {
			iss, err := devissuer.New("https://auth.example.com", alg, nil)
			if err != nil {
				t.Fatal(err)
			}
			mint := testkit.MintFunc(iss, devissuer.Token{Subject: "alice", Audience: []string{aud}})
			if !strings.HasPrefix(alg, "ES") {
				tok, _ := mint()
				if CacheHash(tok) != rawSum(tok) {
					t.Fatal("not the SHA-256 of the token")
				}
				return
			}
			curve := testkit.ECDSACurve(t, alg)
			for _, high := range []bool{false, true} {
				tok := testkit.MintECDSA(t, curve, high, mint)
				other, _ := testkit.OtherECDSASpelling(t, tok, curve)
				low := map[bool]string{false: tok, true: other}[high]
				if CacheHash(tok) != rawSum(low) || CacheHash(other) != rawSum(low) {
					t.Errorf("high s %v: the two forms hash %x and %x, want both the SHA-256 of the low-s form",
						high, CacheHash(tok), CacheHash(other))
				}
			}
		})
	}
}

// TestCacheHashSameToken: the two forms of ECDSA signatures hash the same
// whatever the header looks like, as long as the verifier reads alg ESnnn
// from it.
func TestCacheHashSameToken(t *testing.T) {
	claims := `{"iss":"https://auth.example.com","sub":"alice","exp":4102444800}`
	for _, c := range []struct{ name, alg, header string }{
		{"alg first", "ES256", `{"alg":"ES256","kid":"k1","typ":"at+jwt"}`},
		{"alg alone", "ES256", `{"alg":"ES256"}`},
		{"alg last", "ES256", `{"kid":"k1","typ":"at+jwt","alg":"ES256"}`},
		{"whitespace", "ES384", `{ "alg" : "ES384" }`},
		{"escaped alg", "ES512", `{"kid":"k1","alg":"\u0045S512"}`},
		{"escaped name", "ES256", `{"\u0061lg":"ES256"}`},
		{"ES384", "ES384", `{"alg":"ES384","kid":"k1"}`},
		{"ES512", "ES512", `{"alg":"ES512","kid":"k1"}`},
	} {
		t.Run(c.name, func(t *testing.T) {
			k := esKey(t, c.alg)
			tok := esSign(t, k, c.header, claims, true)
			other, high := testkit.OtherECDSASpelling(t, tok, k.Curve)
			if !high {
				t.Fatal("esSign did not give a high s")
			}
			if got := CacheHash(tok); got != CacheHash(other) || got != rawSum(other) {
				t.Errorf("high-s form %x, low-s form %x; want both %x", got, CacheHash(other), rawSum(other))
			}
		})
	}
}

// TestCacheHashDifferentTokens: texts that are not two forms of one valid
// ECDSA signature never share a hash, whatever their signature's length or
// value: an ECDSA-like change to an EdDSA signature, s out of range, a
// signature the length of another curve's, an alg the verifier does not
// read as ECDSA.
func TestCacheHashDifferentTokens(t *testing.T) {
	claims := `{"iss":"https://auth.example.com","sub":"alice","exp":4102444800}`
	p256 := esKey(t, "ES256")
	n := elliptic.P256().Params().N
	es := esSign(t, p256, `{"alg":"ES256","kid":"k1"}`, claims, false)
	sOf := func(tok string) *big.Int {
		sig, _ := base64.RawURLEncoding.DecodeString(tok[strings.LastIndexByte(tok, '.')+1:])
		return new(big.Int).SetBytes(sig[len(sig)/2:])
	}
	// A 64-byte signature under headers that do not say ES256.
	as := func(header string) string { return enc(header) + es[strings.IndexByte(es, '.'):] }
	flip := func(tok string) string { return withS(tok, new(big.Int).Sub(n, sOf(tok))) }
	one := big.NewInt(1)
	for _, c := range []struct{ name, a, b string }{
		{"EdDSA, second half flipped as ES256", as(`{"alg":"EdDSA","kid":"k1"}`), flip(as(`{"alg":"EdDSA","kid":"k1"}`))},
		{"ES384 with a 64-byte signature", as(`{"alg":"ES384","kid":"k1"}`), flip(as(`{"alg":"ES384","kid":"k1"}`))},
		{"alg es256 (not an algorithm name)", as(`{"alg":"es256"}`), flip(as(`{"alg":"es256"}`))},
		{"alg ES256 with a space", as(`{"alg":"ES256 "}`), flip(as(`{"alg":"ES256 "}`))},
		{"no alg", as(`{"kid":"ES256"}`), flip(as(`{"kid":"ES256"}`))},
		{"unreadable header", as(`{"kid":"a","kid":"b","alg":"ES256"}`), flip(as(`{"kid":"a","kid":"b","alg":"ES256"}`))},
		{"s = n+1 and s = 1", withS(es, new(big.Int).Add(n, one)), withS(es, one)},
		{"s = n and s = 0", withS(es, n), withS(es, new(big.Int))},
		{"s = 2^256−1 and s = n − (2^256−1) mod 2^256", withS(es, new(big.Int).Sub(new(big.Int).Lsh(one, 256), one)),
			withS(es, new(big.Int).Mod(new(big.Int).Sub(n, new(big.Int).Sub(new(big.Int).Lsh(one, 256), one)), new(big.Int).Lsh(one, 256)))},
		{"four segments", strings.Replace(flip(es), ".", ".x.", 1), strings.Replace(es, ".", ".x.", 1)},
	} {
		t.Run(c.name, func(t *testing.T) {
			if CacheHash(c.a) == CacheHash(c.b) {
				t.Fatalf("%s and %s share a hash", c.a, c.b)
			}
			// Neither is an ECDSA signature's upper-half form: both hash
			// as sent.
			if CacheHash(c.a) != rawSum(c.a) || CacheHash(c.b) != rawSum(c.b) {
				t.Errorf("not hashed as sent")
			}
		})
	}
	t.Run("s = n−1 and s = 1 are the two forms", func(t *testing.T) {
		if a, b := withS(es, new(big.Int).Sub(n, one)), withS(es, one); CacheHash(a) != CacheHash(b) || CacheHash(b) != rawSum(b) {
			t.Fatal("the two forms do not share the low form's hash")
		}
	})
	t.Run("high s spelled with non-zero padding bits", func(t *testing.T) {
		high := esSign(t, p256, `{"alg":"ES256"}`, claims, true)
		last := strings.IndexByte(b64Alphabet, high[len(high)-1])
		odd := high[:len(high)-1] + string(b64Alphabet[last^1])
		if CacheHash(odd) != rawSum(odd) {
			t.Fatal("a non-canonical signature segment was read as a signature")
		}
	})
}

// TestDecodeCanonical: the signature decoder agrees with the canonical
// base64url check and the standard decoder, at every length.
func TestDecodeCanonical(t *testing.T) {
	for n := range 140 {
		b := make([]byte, n)
		_, _ = rand.Read(b)
		e := base64.RawURLEncoding.EncodeToString(b)
		got := make([]byte, n)
		if !decodeCanonical(got, e) || string(got) != string(b) {
			t.Fatalf("%d bytes: %q decoded to %x, want %x", n, e, got, b)
		}
		if n == 0 {
			continue
		}
		if decodeCanonical(make([]byte, n+1), e) || decodeCanonical(make([]byte, n-1), e) {
			t.Errorf("%d bytes: decoded into a buffer of another length", n)
		}
		for _, bad := range []string{e[:len(e)-1] + "+", e + "=", "=" + e[1:], e[:len(e)/2] + "." + e[len(e)/2+1:]} {
			if decodeCanonical(make([]byte, n), bad) {
				t.Errorf("%d bytes: accepted %q", n, bad)
			}
		}
		if last := strings.IndexByte(b64Alphabet, e[len(e)-1]); n%3 != 0 {
			odd := e[:len(e)-1] + string(b64Alphabet[last^1])
			if decodeCanonical(make([]byte, n), odd) != canonicalBase64URL(odd) || canonicalBase64URL(odd) {
				t.Errorf("%d bytes: non-zero padding bits accepted in %q", n, odd)
			}
		}
	}
}

const b64Alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

// TestCacheHashDoesNotAllocate: the hash is computed on every Check,
// cache hits included; for the usual tokens it allocates nothing.
func TestCacheHashDoesNotAllocate(t *testing.T) {
	claims := `{"iss":"https://auth.example.com","sub":"alice","exp":4102444800}`
	rs, _ := devissuer.New("https://auth.example.com", "RS256", nil)
	rsTok, _ := rs.Mint(devissuer.Token{Subject: "alice", TTL: time.Hour})
	k := esKey(t, "ES256")
	for name, tok := range map[string]string{
		"RS256":        rsTok,
		"ES256 low s":  esSign(t, k, `{"alg":"ES256","kid":"k1","typ":"at+jwt"}`, claims, false),
		"ES256 high s": esSign(t, k, `{"alg":"ES256","kid":"k1","typ":"at+jwt"}`, claims, true),
		"opaque":       "2YotnFZFEjr1zCsicMWpAA",
	} {
		if n := testing.AllocsPerRun(100, func() { CacheHash(tok) }); n != 0 {
			t.Errorf("%s: %v allocations", name, n)
		}
	}
}

// FuzzCacheHash: CacheHash never panics, is deterministic, hashes every
// text as sent or as its low-s form, and hashes both forms of an ECDSA
// signature the same when the header, read by the verifier's own parser,
// names the algorithm. The reference is computed here with math/big.
func FuzzCacheHash(f *testing.F) {
	claims := `{"iss":"https://auth.example.com","sub":"alice","exp":4102444800}`
	for _, alg := range []string{"ES256", "ES384", "ES512"} {
		k := esKey(f, alg)
		for _, h := range []string{`{"alg":"` + alg + `","kid":"k1"}`, `{"kid":"k1","alg":"` + alg + `"}`} {
			f.Add(esSign(f, k, h, claims, true))
			f.Add(esSign(f, k, h, claims, false))
		}
	}
	f.Add(signRaw(rawHeader, rawClaims("")))
	f.Add("a.b.c")
	f.Add("")
	f.Fuzz(func(t *testing.T, raw string) {
		got := CacheHash(raw)
		if got != CacheHash(raw) {
			t.Fatal("not deterministic")
		}
		// "As sent" is said only of the SHA-256 of raw itself: a DPoP
		// proof's ath is compared with it.
		if h, asSent := CacheHashAsSent(raw); h != got || asSent && h != rawSum(raw) {
			t.Fatalf("%q: CacheHashAsSent %x, %v; CacheHash %x", raw, h, asSent, got)
		}
		other, valid := referenceOtherForm(raw)
		switch {
		case other == "":
			// No ECDSA form: hashed as sent, unless the header is one the
			// verifier refuses (any hash will do for a malformed token).
			if got != rawSum(raw) && valid {
				t.Fatalf("%q: not hashed as sent", raw)
			}
		case got != CacheHash(other):
			t.Fatalf("%q and its other form %q hash differently", raw, other)
		case got != rawSum(raw) && got != rawSum(other):
			t.Fatalf("%q: hashed as neither form", raw)
		}
	})
}

// referenceOtherForm is the other ECDSA form of raw, if raw is a JWS whose
// header the verifier reads as naming ESnnn and whose signature has that
// algorithm's length and 0 < s < n; else "". valid reports whether the
// header is readable at all.
func referenceOtherForm(raw string) (string, bool) {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return "", true
	}
	hb, err := decodeSegment(parts[0])
	if err != nil {
		return "", false
	}
	h, err := parseHeader(hb)
	if err != nil {
		return "", false
	}
	var curve elliptic.Curve
	switch h.Alg {
	case "ES256":
		curve = elliptic.P256()
	case "ES384":
		curve = elliptic.P384()
	case "ES512":
		curve = elliptic.P521()
	default:
		return "", true
	}
	sig, err := base64.RawURLEncoding.Strict().DecodeString(parts[2])
	size := (curve.Params().BitSize + 7) / 8
	if err != nil || !canonicalBase64URL(parts[2]) || len(sig) != 2*size {
		return "", true
	}
	n := curve.Params().N
	s := new(big.Int).SetBytes(sig[size:])
	if s.Sign() == 0 || s.Cmp(n) >= 0 {
		return "", true
	}
	new(big.Int).Sub(n, s).FillBytes(sig[size:])
	return parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(sig), true
}

// BenchmarkCacheHash is the cost of the cache key on every Check, against
// the SHA-256 of the token's text it replaced.
func BenchmarkCacheHash(b *testing.B) {
	claims := `{"iss":"https://auth.example.com","sub":"user-7f3c9a2e-4b1d-4c8e-9f6a-1d2e3f4a5b6c","aud":"https://mcp.example.com/mcp",` +
		`"client_id":"mcp-client-0a1b2c3d","scope":"mcp:tools mcp:resources openid profile","exp":4102444800,"iat":1700000000,` +
		`"jti":"0f2b5c8e9d7a4b3c1e6f","sid":"ssssssssssssssssssssssssssssssssssss","acr":"urn:mace:incommon:iap:silver"}`
	rs, _ := devissuer.New("https://auth.example.com", "RS256", nil)
	rsTok, _ := rs.Sign(map[string]any{"iss": "https://auth.example.com", "sub": strings.Repeat("u", 40), "exp": 4102444800}, nil)
	k := esKey(b, "ES256")
	for _, c := range []struct{ name, tok string }{
		{"RS256", rsTok},
		{"ES256-low-s", esSign(b, k, `{"alg":"ES256","kid":"k1","typ":"at+jwt"}`, claims, false)},
		{"ES256-high-s", esSign(b, k, `{"alg":"ES256","kid":"k1","typ":"at+jwt"}`, claims, true)},
		{"ES256-high-s-alg-not-first", esSign(b, k, `{"kid":"k1","typ":"at+jwt","alg":"ES256"}`, claims, true)},
	} {
		b.Run(c.name+"/sha256-of-text", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				sum(c.tok, nil)
			}
		})
		b.Run(c.name+"/CacheHash", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				CacheHash(c.tok)
			}
		})
		b.Run(c.name+"/added-work-alone", func(b *testing.B) {
			// What CacheHash does besides hashing: the part that
			// measures reliably on a noisy machine.
			var sig [maxECDSASig]byte
			b.ReportAllocs()
			for b.Loop() {
				lowS(c.tok, &sig)
			}
		})
	}
}
