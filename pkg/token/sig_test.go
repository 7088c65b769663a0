package token

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"fmt"
	"math/big"
	"sync"
	"testing"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jws"
)

// The signature check (sig.go) is held against jwx, the library it
// replaces on the hot path: on valid and tampered tokens both must agree,
// except where this package is deliberately stricter — an RSA key under
// 2048 bits, an ECDSA key on another curve than the algorithm's — and
// there it must be the one refusing.

// sigKey is a test key: its name, the private key and its public part.
type sigKey struct {
	name string
	priv crypto.Signer
}

func (k sigKey) pub() crypto.PublicKey { return k.priv.Public() }

var (
	sigKeysOnce sync.Once
	sigKeysAll  []sigKey
)

// sigKeys are one key of every kind a JWKS may publish, and an RSA key too
// short for this package (but not for crypto/rsa).
func sigKeys(tb testing.TB) []sigKey {
	tb.Helper()
	sigKeysOnce.Do(func() {
		must := func(k crypto.Signer, err error) crypto.Signer {
			if err != nil {
				panic(err)
			}
			return k
		}
		_, ed, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			panic(err)
		}
		sigKeysAll = []sigKey{
			{"rsa2048", must(rsa.GenerateKey(rand.Reader, 2048))},
			{"rsa1024", must(rsa.GenerateKey(rand.Reader, 1024))},
			{"p256", must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader))},
			{"p384", must(ecdsa.GenerateKey(elliptic.P384(), rand.Reader))},
			{"p521", must(ecdsa.GenerateKey(elliptic.P521(), rand.Reader))},
			{"ed25519", ed},
		}
	})
	return sigKeysAll
}

var sigAlgNames = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// jwsSign signs input under alg with priv, in the JWS form, the way a
// conforming issuer does; for a key that cannot sign under alg it signs
// the way that key's family signs, so that mismatches can be tried.
func jwsSign(tb testing.TB, alg string, priv crypto.Signer, input string) []byte {
	tb.Helper()
	a := sigAlgs[alg]
	var digest []byte
	switch a.hash {
	case crypto.SHA256:
		d := sha256.Sum256([]byte(input))
		digest = d[:]
	case crypto.SHA384:
		d := sha512.Sum384([]byte(input))
		digest = d[:]
	case crypto.SHA512:
		d := sha512.Sum512([]byte(input))
		digest = d[:]
	}
	var sig []byte
	var err error
	switch k := priv.(type) {
	case *rsa.PrivateKey:
		h := a.hash
		if h == 0 {
			h = crypto.SHA256
			d := sha256.Sum256([]byte(input))
			digest = d[:]
		}
		if a.family == familyPSS {
			sig, err = rsa.SignPSS(rand.Reader, k, h, digest, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
			if err != nil && k.N.BitLen() < minRSABits {
				// PS512 does not fit a 1024-bit key: any signature will do.
				sig, err = rsa.SignPKCS1v15(rand.Reader, k, h, digest)
			}
		} else {
			sig, err = rsa.SignPKCS1v15(rand.Reader, k, h, digest)
		}
	case *ecdsa.PrivateKey:
		if digest == nil {
			d := sha256.Sum256([]byte(input))
			digest = d[:]
		}
		var r, s *big.Int
		r, s, err = ecdsa.Sign(rand.Reader, k, digest)
		n := (k.Curve.Params().BitSize + 7) / 8
		sig = make([]byte, 2*n)
		r.FillBytes(sig[:n])
		s.FillBytes(sig[n:])
	case ed25519.PrivateKey:
		sig = ed25519.Sign(k, []byte(input))
	}
	if err != nil {
		tb.Fatal(err)
	}
	return sig
}

// compact is a JWS of header and payload with the raw signature sig.
func compact(header, payload string, sig []byte) string {
	return enc(header) + "." + enc(payload) + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// jwxVerifies is what jwx says of the same token.
func jwxVerifies(alg string, key crypto.PublicKey, tok string) bool {
	a, ok := jwa.LookupSignatureAlgorithm(alg)
	if !ok {
		return false
	}
	_, err := jws.VerifyCompactFast(key, []byte(tok), a)
	return err == nil
}

// stricterHere reports whether this package refuses key under alg on
// purpose where jwx would verify with it.
func stricterHere(alg string, key crypto.PublicKey) bool {
	switch k := key.(type) {
	case *rsa.PublicKey:
		return k.N.BitLen() < minRSABits
	case *ecdsa.PublicKey:
		a := sigAlgs[alg]
		return a.family == familyECDSA && k.Curve != a.curve
	}
	return false
}

// agree fails unless verifySignature and jwx agree on tok (or this
// package is the stricter on purpose), and returns the verdict.
func agree(t *testing.T, alg string, key crypto.PublicKey, tok string) bool {
	t.Helper()
	got := verifySignature(sigAlgs[alg], key, tok) == nil
	want := jwxVerifies(alg, key, tok)
	switch {
	case got == want:
	case got && !want:
		t.Errorf("%s: verified here, refused by jwx: %s", alg, tok)
	case !stricterHere(alg, key):
		t.Errorf("%s: refused here, verified by jwx: %s", alg, tok)
	}
	return got
}

// tamperings are the ways a token is altered after signing: each must
// fail wherever the original verified.
var tamperings = []struct {
	name string
	edit func(header, payload string, sig []byte, curveSize int) (string, string, []byte)
}{
	{"payload changed", func(h, p string, s []byte, _ int) (string, string, []byte) { return h, p + " ", s }},
	{"header changed", func(h, p string, s []byte, _ int) (string, string, []byte) { return h + " ", p, s }},
	{"signature bit flipped", func(h, p string, s []byte, _ int) (string, string, []byte) {
		s = bytes.Clone(s)
		s[len(s)/2] ^= 0x01
		return h, p, s
	}},
	{"signature last byte flipped", func(h, p string, s []byte, _ int) (string, string, []byte) {
		s = bytes.Clone(s)
		s[len(s)-1] ^= 0x80
		return h, p, s
	}},
	{"signature one byte short", func(h, p string, s []byte, _ int) (string, string, []byte) { return h, p, s[:len(s)-1] }},
	{"signature one byte long", func(h, p string, s []byte, _ int) (string, string, []byte) { return h, p, append(bytes.Clone(s), 0) }},
	{"signature zero byte first", func(h, p string, s []byte, _ int) (string, string, []byte) {
		return h, p, append([]byte{0}, s...)
	}},
	{"signature empty", func(h, p string, _ []byte, _ int) (string, string, []byte) { return h, p, nil }},
	{"signature all zero", func(h, p string, s []byte, _ int) (string, string, []byte) { return h, p, make([]byte, len(s)) }},
	{"signature doubled", func(h, p string, s []byte, _ int) (string, string, []byte) { return h, p, append(bytes.Clone(s), s...) }},
}

func TestSignatureAgreesWithJWX(t *testing.T) {
	keys := sigKeys(t)
	for _, alg := range sigAlgNames {
		for _, k := range keys {
			t.Run(alg+"/"+k.name, func(t *testing.T) {
				header := fmt.Sprintf(`{"alg":%q,"kid":"k1","typ":"at+jwt"}`, alg)
				payload := `{"iss":"https://auth.example.com","sub":"alice","exp":4102444800}`
				sig := jwsSign(t, alg, k.priv, enc(header)+"."+enc(payload))
				valid := agree(t, alg, k.pub(), compact(header, payload, sig))
				fits := familyFits(alg, k.pub())
				if valid != fits {
					t.Errorf("verified %v, want %v", valid, fits)
				}
				for _, tm := range tamperings {
					h, p, s := tm.edit(header, payload, sig, 0)
					if agree(t, alg, k.pub(), compact(h, p, s)) {
						t.Errorf("%s: verified", tm.name)
					}
				}
			})
		}
	}
}

// familyFits reports whether a token signed under alg with key's private
// part must verify: the key is of the algorithm's family, curve and size.
func familyFits(alg string, key crypto.PublicKey) bool {
	a := sigAlgs[alg]
	switch k := key.(type) {
	case *rsa.PublicKey:
		return (a.family == familyRSA || a.family == familyPSS) && k.N.BitLen() >= minRSABits
	case *ecdsa.PublicKey:
		return a.family == familyECDSA && k.Curve == a.curve
	case ed25519.PublicKey:
		return a.family == familyEd25519
	}
	return false
}

// TestECDSASignatureForms covers what only ECDSA has: the other form of a
// signature (high S), which both accept, and encodings or values no JWS
// signature may have, which both refuse.
func TestECDSASignatureForms(t *testing.T) {
	for _, tc := range []struct {
		alg, key string
	}{{"ES256", "p256"}, {"ES384", "p384"}, {"ES512", "p521"}} {
		t.Run(tc.alg, func(t *testing.T) {
			var k *ecdsa.PrivateKey
			for _, sk := range sigKeys(t) {
				if sk.name == tc.key {
					k = sk.priv.(*ecdsa.PrivateKey)
				}
			}
			header := fmt.Sprintf(`{"alg":%q,"kid":"k1"}`, tc.alg)
			payload := `{"sub":"alice"}`
			sig := jwsSign(t, tc.alg, k, enc(header)+"."+enc(payload))
			n := len(sig) / 2
			curveN := k.Curve.Params().N
			r, s := new(big.Int).SetBytes(sig[:n]), new(big.Int).SetBytes(sig[n:])
			form := func(r, s *big.Int) []byte {
				out := make([]byte, 2*n)
				r.FillBytes(out[:n])
				s.FillBytes(out[n:])
				return out
			}
			highS := form(r, new(big.Int).Sub(curveN, s))
			if !agree(t, tc.alg, &k.PublicKey, compact(header, payload, highS)) {
				t.Error("the high-S form of a valid signature is refused")
			}
			der := appendASN1Signature(nil, sig)
			if !ecdsa.VerifyASN1(&k.PublicKey, digestFor(tc.alg, enc(header)+"."+enc(payload)), der) {
				t.Fatal("appendASN1Signature: crypto/ecdsa does not read the DER form it wrote")
			}
			bad := map[string][]byte{
				"DER encoded":      der,
				"r zero":           form(big.NewInt(0), s),
				"s zero":           form(r, big.NewInt(0)),
				"r plus order":     nil, // does not fit n bytes for every curve: built below
				"s equal to order": form(r, curveN),
				"r and s swapped":  form(s, r),
			}
			if rn := new(big.Int).Add(r, curveN); (rn.BitLen()+7)/8 <= n {
				bad["r plus order"] = form(rn, s)
			} else {
				delete(bad, "r plus order")
			}
			for name, b := range bad {
				if agree(t, tc.alg, &k.PublicKey, compact(header, payload, b)) {
					t.Errorf("%s: verified", name)
				}
			}
		})
	}
}

func digestFor(alg, input string) []byte {
	var d [sha512.Size]byte
	return bytes.Clone(digestOf(sigAlgs[alg].hash, input, &d))
}

// TestPSSSaltLength: RFC 7518 §3.5 fixes the salt at the hash's length; a
// PS256 signature with another salt is refused here as by jwx.
func TestPSSSaltLength(t *testing.T) {
	k := sigKeys(t)[0].priv.(*rsa.PrivateKey)
	header, payload := `{"alg":"PS256"}`, `{"sub":"alice"}`
	d := sha256.Sum256([]byte(enc(header) + "." + enc(payload)))
	for _, salt := range []int{0, 20, rsa.PSSSaltLengthAuto} {
		sig, err := rsa.SignPSS(rand.Reader, k, crypto.SHA256, d[:], &rsa.PSSOptions{SaltLength: salt})
		if err != nil {
			t.Fatal(err)
		}
		if agree(t, "PS256", &k.PublicKey, compact(header, payload, sig)) {
			t.Errorf("salt %d: verified", salt)
		}
	}
}

// TestSignatureNeedsCanonicalSegment: the signature segment is decoded in
// its one canonical spelling, whatever parseJWT checked before.
func TestSignatureNeedsCanonicalSegment(t *testing.T) {
	k := sigKeys(t)[5].priv
	header, payload := `{"alg":"EdDSA"}`, `{"sub":"alice"}`
	tok := compact(header, payload, jwsSign(t, "EdDSA", k, enc(header)+"."+enc(payload)))
	if err := verifySignature(sigAlgs["EdDSA"], k.Public(), tok); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{tok + "=", tok + "A", tok[:len(tok)-1], enc(header) + "." + enc(payload), "no dots"} {
		if verifySignature(sigAlgs["EdDSA"], k.Public(), bad) == nil {
			t.Errorf("%q verified", bad)
		}
	}
}

func TestSignatureDoesNotAllocate(t *testing.T) {
	keys := sigKeys(t)
	for _, tc := range []struct {
		alg string
		key sigKey
	}{{"RS256", keys[0]}, {"ES256", keys[2]}, {"EdDSA", keys[5]}} {
		header, payload := fmt.Sprintf(`{"alg":%q}`, tc.alg), `{"sub":"alice"}`
		tok := compact(header, payload, jwsSign(t, tc.alg, tc.key.priv, enc(header)+"."+enc(payload)))
		a, pub := sigAlgs[tc.alg], tc.key.pub()
		if err := verifySignature(a, pub, tok); err != nil {
			t.Fatal(err)
		}
		// Ed25519 verifies without allocating at all; RSA and ECDSA
		// allocate inside crypto/* (the key's per-call conversion), which
		// the bare call costs as much.
		if tc.alg != "EdDSA" {
			continue
		}
		if n := testing.AllocsPerRun(20, func() { _ = verifySignature(a, pub, tok) }); n != 0 {
			t.Errorf("%s: %v allocations per verification", tc.alg, n)
		}
	}
}

// FuzzSignature mutates valid signatures, the signed text, the key and the
// algorithm: verifySignature must never verify what jwx refuses, and
// refuse what jwx verifies only where it is stricter on purpose.
func FuzzSignature(f *testing.F) {
	keys := sigKeys(f)
	for ki, k := range keys {
		for ai, alg := range sigAlgNames {
			if !familyFits(alg, k.pub()) && ki != 1 {
				continue
			}
			header := fmt.Sprintf(`{"alg":%q}`, alg)
			payload := `{"sub":"alice"}`
			f.Add(uint8(ai), uint8(ki), payload, jwsSign(f, alg, k.priv, enc(header)+"."+enc(payload)))
		}
	}
	f.Fuzz(func(t *testing.T, ai, ki uint8, payload string, sig []byte) {
		alg := sigAlgNames[int(ai)%len(sigAlgNames)]
		k := keys[int(ki)%len(keys)]
		agree(t, alg, k.pub(), compact(fmt.Sprintf(`{"alg":%q}`, alg), payload, sig))
	})
}
