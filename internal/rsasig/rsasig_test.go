package rsasig

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	_ "crypto/sha512" // registers SHA-384 and SHA-512 for crypto.Hash.New
	"fmt"
	"math/big"
	"sync"
	"testing"
)

var hashes = []crypto.Hash{crypto.SHA256, crypto.SHA384, crypto.SHA512}

func digest(h crypto.Hash, msg string) []byte {
	d := h.New()
	d.Write([]byte(msg))
	return d.Sum(nil)
}

// testKeys are generated once: RSA key generation takes a while.
var testKeys = sync.OnceValue(func() map[string]*rsa.PrivateKey {
	keys := map[string]*rsa.PrivateKey{}
	for _, bits := range []int{1024, 2048, 3072, 4096} {
		k, err := rsa.GenerateKey(rand.Reader, bits)
		if err != nil {
			panic(err)
		}
		keys[fmt.Sprint(bits)] = k
	}
	keys["2048-e3"] = e3Key()
	return keys
})

// e3Key is the fuzz target's key, alone: each fuzzing process makes it.
var e3Key = sync.OnceValue(func() *rsa.PrivateKey { return keyWithExponent(2048, 3) })

// keyWithExponent builds a key with a small exponent, which
// rsa.GenerateKey never makes: the case Bleichenbacher's forgeries need.
func keyWithExponent(bits, e int) *rsa.PrivateKey {
	E := big.NewInt(int64(e))
	one := big.NewInt(1)
	for {
		p, err := rand.Prime(rand.Reader, bits/2)
		if err != nil {
			panic(err)
		}
		q, err := rand.Prime(rand.Reader, bits/2)
		if err != nil {
			panic(err)
		}
		pm, qm := new(big.Int).Sub(p, one), new(big.Int).Sub(q, one)
		if p.Cmp(q) == 0 || new(big.Int).GCD(nil, nil, E, pm).Cmp(one) != 0 || new(big.Int).GCD(nil, nil, E, qm).Cmp(one) != 0 {
			continue
		}
		n := new(big.Int).Mul(p, q)
		if n.BitLen() != bits {
			continue
		}
		phi := new(big.Int).Mul(pm, qm)
		d := new(big.Int).ModInverse(E, phi)
		k := &rsa.PrivateKey{PublicKey: rsa.PublicKey{N: n, E: e}, D: d, Primes: []*big.Int{p, q}}
		if err := k.Validate(); err != nil {
			panic(err)
		}
		k.Precompute()
		return k
	}
}

// sameAnswer fails t unless VerifyPKCS1v15 and crypto/rsa's agree on sig.
func sameAnswer(t testing.TB, pub *rsa.PublicKey, h crypto.Hash, d, sig []byte) bool {
	t.Helper()
	want := rsa.VerifyPKCS1v15(pub, h, d, sig)
	got := VerifyPKCS1v15(pub, h, d, sig)
	if (got == nil) != (want == nil) {
		t.Fatalf("%d-bit key, e=%d, %v, sig %x…: got %v, crypto/rsa %v", pub.N.BitLen(), pub.E, h, head(sig), got, want)
	}
	return got == nil
}

func head(b []byte) []byte {
	if len(b) > 8 {
		return b[:8]
	}
	return b
}

// TestVerifyMatchesCryptoRSA: good signatures verify, and every change
// to one, or to what it is checked against, fails, as in crypto/rsa.
func TestVerifyMatchesCryptoRSA(t *testing.T) {
	for name, k := range testKeys() {
		for _, h := range hashes {
			t.Run(fmt.Sprintf("%s/%v", name, h), func(t *testing.T) {
				d := digest(h, "an access token's signing input")
				sig, err := rsa.SignPKCS1v15(rand.Reader, k, h, d)
				if err != nil {
					t.Fatal(err)
				}
				if !sameAnswer(t, &k.PublicKey, h, d, sig) {
					t.Fatal("a good signature does not verify")
				}
				for _, bit := range []int{0, 7, 8 * len(sig) / 2, 8*len(sig) - 1} {
					bad := bytes.Clone(sig)
					bad[bit/8] ^= 1 << (bit % 8)
					if sameAnswer(t, &k.PublicKey, h, d, bad) {
						t.Fatalf("bit %d flipped verifies", bit)
					}
				}
				otherDigest := bytes.Clone(d)
				otherDigest[len(d)-1] ^= 1
				nBytes := k.N.FillBytes(make([]byte, len(sig)))
				nMinus1 := new(big.Int).Sub(k.N, big.NewInt(1)).FillBytes(make([]byte, len(sig)))
				// s + n: the same value mod n, as a number too large.
				sPlusN := new(big.Int).Add(new(big.Int).SetBytes(sig), k.N)
				refused := map[string]struct {
					h      crypto.Hash
					d, sig []byte
				}{
					"other digest":        {h, otherDigest, sig},
					"short":               {h, d, sig[1:]},
					"long":                {h, d, append([]byte{0}, sig...)},
					"empty":               {h, d, nil},
					"zero":                {h, d, make([]byte, len(sig))},
					"n":                   {h, d, nBytes},
					"n-1":                 {h, d, nMinus1},
					"s+n":                 {h, d, sPlusN.Bytes()},
					"other hash's digest": {otherHash(h), digest(otherHash(h), "an access token's signing input"), sig},
				}
				for what, c := range refused {
					if sameAnswer(t, &k.PublicKey, c.h, c.d, c.sig) {
						t.Errorf("%s verifies", what)
					}
				}
			})
		}
	}
}

func otherHash(h crypto.Hash) crypto.Hash {
	if h == crypto.SHA256 {
		return crypto.SHA512
	}
	return crypto.SHA256
}

// rawSign is the RSA private operation on em, any bytes below n: a
// "signature" whose encoded message is exactly em, as a forger aims for.
func rawSign(k *rsa.PrivateKey, em []byte) []byte {
	s := new(big.Int).Exp(new(big.Int).SetBytes(em), k.D, k.N)
	return s.FillBytes(make([]byte, k.Size()))
}

// encoded is RFC 8017 §9.2's EM for d, with fill after the digest taken
// out of the padding (len(fill) bytes fewer 0xff).
func encoded(size int, prefix, d, fill []byte) []byte {
	em := make([]byte, size)
	em[1] = 1
	t := len(prefix) + len(d) + len(fill)
	for i := 2; i < size-t-1; i++ {
		em[i] = 0xff
	}
	copy(em[size-t:], prefix)
	copy(em[size-t+len(prefix):], d)
	copy(em[size-len(fill):], fill)
	return em
}

// TestEncodedMessageIsCompared: signatures whose encoded message is
// almost the right one, made with the private key as a forger with a
// small exponent would approximate them, are all refused; the exact one
// verifies.
func TestEncodedMessageIsCompared(t *testing.T) {
	for _, name := range []string{"2048", "2048-e3"} {
		k := testKeys()[name]
		pub := &k.PublicKey
		size := k.Size()
		h := crypto.SHA256
		d := digest(h, "claims")
		prefix := digestInfo(h)
		if !sameAnswer(t, pub, h, d, rawSign(k, encoded(size, prefix, d, nil))) {
			t.Fatalf("%s: the exact encoding does not verify", name)
		}
		sha1Prefix := []byte{0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04, 0x14}
		near := map[string][]byte{
			"garbage after the digest": encoded(size, prefix, d, []byte("garbage garbage garbage")),
			"block type 2":             func() []byte { em := encoded(size, prefix, d, nil); em[1] = 2; return em }(),
			"first byte not zero":      func() []byte { em := encoded(size, prefix, d, nil); em[0] = 1; return em }(),
			"a padding byte not 0xff":  func() []byte { em := encoded(size, prefix, d, nil); em[40] = 0xfe; return em }(),
			"no zero after padding": func() []byte {
				em := encoded(size, prefix, d, nil)
				em[size-len(prefix)-len(d)-1] = 0xff
				return em
			}(),
			"SHA-1's DigestInfo":        encoded(size, sha1Prefix, d[:20], nil),
			"DigestInfo without NULL":   encoded(size, []byte{0x30, 0x2f, 0x30, 0x0b, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x04, 0x20}, d, nil),
			"digest alone":              encoded(size, nil, d, nil),
			"digest one byte different": encoded(size, prefix, append(bytes.Clone(d[:31]), d[31]^0x80), nil),
		}
		for what, em := range near {
			if sameAnswer(t, pub, h, d, rawSign(k, em)) {
				t.Errorf("%s: %s verifies", name, what)
			}
		}
	}
}

// TestKeysCryptoRSARefuses: the same keys are refused.
func TestKeysCryptoRSARefuses(t *testing.T) {
	k := testKeys()["2048"]
	d := digest(crypto.SHA256, "x")
	sig, err := rsa.SignPKCS1v15(rand.Reader, k, crypto.SHA256, d)
	if err != nil {
		t.Fatal(err)
	}
	small := testKeys()["1024"]
	short := &rsa.PublicKey{N: new(big.Int).Rsh(small.N, 200), E: 65537}
	short.N.SetBit(short.N, 0, 1)
	for what, pub := range map[string]*rsa.PublicKey{
		"nil modulus":   {E: 65537},
		"even modulus":  {N: new(big.Int).Add(k.N, big.NewInt(1)), E: 65537},
		"even exponent": {N: k.N, E: 65536},
		"exponent 1":    {N: k.N, E: 1},
		"exponent 0":    {N: k.N, E: 0},
		"exponent -3":   {N: k.N, E: -3},
		"exponent 2³¹":  {N: k.N, E: 1 << 31},
		"824 bits":      short,
	} {
		if sameAnswer(t, pub, crypto.SHA256, d, sig) {
			t.Errorf("%s: verifies", what)
		}
	}
	// crypto/rsa takes a negative modulus for its absolute value (it reads
	// N.Bytes()); no key set holds one, and here it is refused.
	if VerifyPKCS1v15(&rsa.PublicKey{N: new(big.Int).Neg(k.N), E: 65537}, crypto.SHA256, d, sig) == nil {
		t.Error("a negative modulus verifies")
	}
	if VerifyPKCS1v15(nil, crypto.SHA256, d, sig) == nil {
		t.Error("a nil key verifies")
	}
	if err := VerifyPKCS1v15(&k.PublicKey, crypto.SHA256, d[:31], sig); err == nil {
		t.Error("a digest of the wrong size verifies")
	}
}

// TestChangedKeyIsPreparedAgain: a *rsa.PublicKey whose fields are
// changed after its first verification is verified with its new value.
func TestChangedKeyIsPreparedAgain(t *testing.T) {
	a, b := testKeys()["2048"], testKeys()["3072"]
	d := digest(crypto.SHA256, "x")
	sigA, _ := rsa.SignPKCS1v15(rand.Reader, a, crypto.SHA256, d)
	sigB, _ := rsa.SignPKCS1v15(rand.Reader, b, crypto.SHA256, d)
	pub := &rsa.PublicKey{N: new(big.Int).Set(a.N), E: a.E}
	if VerifyPKCS1v15(pub, crypto.SHA256, d, sigA) != nil {
		t.Fatal("a's signature does not verify")
	}
	pub.N.Set(b.N) // in place: the same *big.Int
	if VerifyPKCS1v15(pub, crypto.SHA256, d, sigA) == nil {
		t.Fatal("a's signature verifies with the key changed to b")
	}
	if VerifyPKCS1v15(pub, crypto.SHA256, d, sigB) != nil {
		t.Fatal("b's signature does not verify with the key changed to b")
	}
}

// TestFIPSModeUsesCryptoRSA: in FIPS 140-3 mode crypto/rsa answers, as
// a hash only it takes shows.
func TestFIPSModeUsesCryptoRSA(t *testing.T) {
	k := testKeys()["2048"]
	h := crypto.SHA224
	d := digest(h, "x")
	sig, err := rsa.SignPKCS1v15(rand.Reader, k, h, d)
	if err != nil {
		t.Fatal(err)
	}
	if VerifyPKCS1v15(&k.PublicKey, h, d, sig) == nil {
		t.Fatal("SHA-224 verifies outside FIPS mode")
	}
	t.Cleanup(func() { inFIPSMode = func() bool { return false } })
	inFIPSMode = func() bool { return true }
	if err := VerifyPKCS1v15(&k.PublicKey, h, d, sig); err != nil {
		t.Fatalf("in FIPS mode: %v, want crypto/rsa's answer (verifies)", err)
	}
}

// FuzzVerifyMatchesCryptoRSA holds VerifyPKCS1v15 to crypto/rsa's answer
// on any signature, and, since random signatures almost never have a
// structured encoded message, on any encoded message too: em is made a
// signature with the private key, so that the fuzzer explores the
// encodings themselves.
func FuzzVerifyMatchesCryptoRSA(f *testing.F) {
	k := e3Key()
	for _, h := range hashes {
		d := digest(h, "seed")
		sig, _ := rsa.SignPKCS1v15(rand.Reader, k, h, d)
		f.Add(uint8(h), d, sig, false)
		f.Add(uint8(h), d, encoded(k.Size(), digestInfo(h), d, nil), true)
		f.Add(uint8(h), d, encoded(k.Size(), digestInfo(h), d[:len(d)-3], []byte{1, 2, 3}), true)
	}
	f.Fuzz(func(t *testing.T, hb uint8, d, b []byte, asEM bool) {
		h := crypto.Hash(hb)
		switch h {
		case crypto.SHA256, crypto.SHA384, crypto.SHA512:
		default:
			h = crypto.SHA256
		}
		sig := b
		if asEM {
			if len(b) != k.Size() || new(big.Int).SetBytes(b).Cmp(k.N) >= 0 {
				return
			}
			sig = rawSign(k, b)
		}
		sameAnswer(t, &k.PublicKey, h, d, sig)
	})
}

// BenchmarkVerify sets VerifyPKCS1v15 beside crypto/rsa's, on the same
// 2048-bit key and RS256 signature.
func BenchmarkVerify(b *testing.B) {
	k := testKeys()["2048"]
	d := sha256.Sum256([]byte("signing input"))
	sig, _ := rsa.SignPKCS1v15(rand.Reader, k, crypto.SHA256, d[:])
	b.Run("rsasig", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			if VerifyPKCS1v15(&k.PublicKey, crypto.SHA256, d[:], sig) != nil {
				b.Fatal("does not verify")
			}
		}
	})
	b.Run("crypto-rsa", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			if rsa.VerifyPKCS1v15(&k.PublicKey, crypto.SHA256, d[:], sig) != nil {
				b.Fatal("does not verify")
			}
		}
	})
}
