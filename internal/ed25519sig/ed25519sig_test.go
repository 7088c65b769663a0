package ed25519sig

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"math/big"
	"runtime"
	"testing"
	"time"

	"filippo.io/edwards25519"
)

// sameAnswer fails t unless Verify and crypto/ed25519's agree.
func sameAnswer(t testing.TB, pub ed25519.PublicKey, msg, sig []byte) bool {
	t.Helper()
	want := ed25519.Verify(pub, msg, sig)
	if got := Verify(pub, msg, sig); got != want {
		t.Fatalf("key %x, sig %x: got %v, crypto/ed25519 %v", []byte(pub), sig, got, want)
	}
	return want
}

func newKey(t testing.TB) (ed25519.PublicKey, ed25519.PrivateKey) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return pub, priv
}

// order is the group order ℓ, little-endian as S is encoded.
var order = func() *big.Int {
	n, _ := new(big.Int).SetString("7237005577332262213973186563042994240857116359379907606001950938285454250989", 10)
	return n
}()

func littleEndian(n *big.Int, size int) []byte {
	b := n.FillBytes(make([]byte, size))
	for i, j := 0, len(b)-1; i < j; i, j = i+1, j-1 {
		b[i], b[j] = b[j], b[i]
	}
	return b
}

func fromLittleEndian(b []byte) *big.Int {
	r := bytes.Clone(b)
	for i, j := 0, len(r)-1; i < j; i, j = i+1, j-1 {
		r[i], r[j] = r[j], r[i]
	}
	return new(big.Int).SetBytes(r)
}

// TestVerifyMatchesCryptoEd25519: good signatures verify, and every change
// to one, its message or its key fails, as in crypto/ed25519.
func TestVerifyMatchesCryptoEd25519(t *testing.T) {
	for range 20 {
		pub, priv := newKey(t)
		msg := make([]byte, 800)
		rand.Read(msg)
		sig := ed25519.Sign(priv, msg)
		if !sameAnswer(t, pub, msg, sig) {
			t.Fatal("a good signature does not verify")
		}
		for _, bit := range []int{0, 255, 256, 8*64 - 4, 8*64 - 1} {
			bad := bytes.Clone(sig)
			bad[bit/8] ^= 1 << (bit % 8)
			if sameAnswer(t, pub, msg, bad) {
				t.Fatalf("bit %d flipped verifies", bit)
			}
		}
		other := bytes.Clone(msg)
		other[400] ^= 1
		otherPub, _ := newKey(t)
		// S + ℓ: the same scalar, not canonical, still under 2²⁵³.
		sPlusL := new(big.Int).Add(fromLittleEndian(sig[32:]), order)
		malleable := append(bytes.Clone(sig[:32]), littleEndian(sPlusL, 32)...)
		for what, c := range map[string]struct {
			pub      ed25519.PublicKey
			msg, sig []byte
		}{
			"other message":  {pub, other, sig},
			"empty message":  {pub, nil, sig},
			"other key":      {otherPub, msg, sig},
			"S + ℓ":          {pub, msg, malleable},
			"short":          {pub, msg, sig[:63]},
			"long":           {pub, msg, append(bytes.Clone(sig), 0)},
			"empty":          {pub, msg, nil},
			"all zero":       {pub, msg, make([]byte, 64)},
			"key not on it":  {notOnCurve(t), msg, sig},
			"R and S as one": {pub, msg, append(bytes.Clone(sig[32:]), sig[:32]...)},
		} {
			if sameAnswer(t, c.pub, c.msg, c.sig) {
				t.Errorf("%s verifies", what)
			}
		}
	}
}

// notOnCurve is a 32-byte string that is no point's encoding.
func notOnCurve(t testing.TB) ed25519.PublicKey {
	for i := range 256 {
		b := make([]byte, 32)
		b[0] = byte(i)
		b[1] = 0x5a
		if _, err := prepare(b); err != nil {
			return b
		}
	}
	t.Fatal("every candidate decodes")
	return nil
}

// TestOddKeys: keys of small order and non-canonical encodings, which
// crypto/ed25519 accepts (it does not check the key's order, and decodes
// y ≥ p), get its answer too, for signatures made to pass with them.
func TestOddKeys(t *testing.T) {
	identity, _ := hex.DecodeString("0100000000000000000000000000000000000000000000000000000000000000")
	// y = p + 1 (= 1): a non-canonical encoding of the identity.
	nonCanonical, _ := hex.DecodeString("eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f")
	// A point of order 8 on the curve.
	order8, _ := hex.DecodeString("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a")
	zeroS := make([]byte, 32)
	verified, refused := 0, 0
	for _, key := range map[string][]byte{"identity": identity, "y = p+1": nonCanonical, "order 8": order8} {
		for _, sig := range map[string][]byte{
			"R identity, S 0": append(bytes.Clone(identity), zeroS...),
			"R the key, S 0":  append(bytes.Clone(key), zeroS...),
			"R order 8, S 0":  append(bytes.Clone(order8), zeroS...),
		} {
			for _, msg := range []string{"", "a", "an access token"} {
				if sameAnswer(t, key, []byte(msg), sig) {
					verified++
				} else {
					refused++
				}
			}
		}
	}
	// Both answers occur, so both are compared (8 and 19 today).
	if verified == 0 || refused == 0 {
		t.Fatalf("%d verified, %d refused: the cases no longer cover both answers", verified, refused)
	}
}

// TestChangedKeyIsPreparedAgain: a key whose bytes are changed after its
// first verification is verified as its new value.
func TestChangedKeyIsPreparedAgain(t *testing.T) {
	pubA, privA := newKey(t)
	pubB, privB := newKey(t)
	msg := []byte("m")
	sigA, sigB := ed25519.Sign(privA, msg), ed25519.Sign(privB, msg)
	key := bytes.Clone(pubA)
	if !Verify(key, msg, sigA) {
		t.Fatal("A's signature does not verify")
	}
	copy(key, pubB)
	if Verify(key, msg, sigA) {
		t.Fatal("A's signature verifies with the key changed to B")
	}
	if !Verify(key, msg, sigB) {
		t.Fatal("B's signature does not verify with the key changed to B")
	}
}

// TestFIPSModeUsesCryptoEd25519: in FIPS 140-3 mode nothing is prepared:
// crypto/ed25519 answers.
func TestFIPSModeUsesCryptoEd25519(t *testing.T) {
	pub, priv := newKey(t)
	msg := []byte("m")
	sig := ed25519.Sign(priv, msg)
	t.Cleanup(func() { inFIPSMode = func() bool { return false } })
	inFIPSMode = func() bool { return true }
	before := Held()
	if !Verify(pub, msg, sig) {
		t.Fatal("does not verify in FIPS mode")
	}
	if Held() != before {
		t.Fatal("a key was prepared in FIPS mode")
	}
	inFIPSMode = func() bool { return false }
	if !Verify(pub, msg, sig) {
		t.Fatal("does not verify")
	}
	if Held() != before+1 {
		t.Fatal("the key was not prepared outside FIPS mode")
	}
	runtime.KeepAlive(pub)
}

// TestAddMultMatchesScalarMult compares the tables' products with
// edwards25519's for scalars whose signed digits take every edge: zero
// windows, 16 (the largest positive digit), 17 and 31 (negative, with a
// carry), carries running through windows of 31, the top window; for B's
// table and a key's, and for a point of order 8 (a key crypto/ed25519
// accepts), whose multiples wrap every 8.
func TestAddMultMatchesScalarMult(t *testing.T) {
	var scalars []*big.Int
	for _, v := range []int64{0, 1, 2, 8, 15, 16, 17, 31, 32, 33, 63, 1023, 1024} {
		scalars = append(scalars, big.NewInt(v))
	}
	for bit := range 253 {
		p := new(big.Int).Lsh(big.NewInt(1), uint(bit))
		scalars = append(scalars, p, new(big.Int).Sub(p, big.NewInt(1)))
	}
	scalars = append(scalars, new(big.Int).Sub(order, big.NewInt(1)), order,
		new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 253), big.NewInt(1)))
	for range 200 {
		r, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 253))
		scalars = append(scalars, r)
	}
	pub, _ := newKey(t)
	A, _ := new(edwards25519.Point).SetBytes(pub)
	order8Bytes, _ := hex.DecodeString("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a")
	order8, _ := new(edwards25519.Point).SetBytes(order8Bytes)
	for name, P := range map[string]*edwards25519.Point{"B": edwards25519.NewGeneratorPoint(), "a key": A, "order 8": order8} {
		tab := new(table)
		tab.fill(P)
		if name == "B" {
			tab = basePoint()
		}
		for _, v := range scalars {
			got := edwards25519.NewIdentityPoint()
			tab.addMult(got, littleEndian(v, 32))
			// The same integer multiple, by double-and-add on big.Int's
			// bits: reduced mod ℓ only for points of order ℓ.
			want := edwards25519.NewIdentityPoint()
			for i := v.BitLen() - 1; i >= 0; i-- {
				want.Add(want, want)
				if v.Bit(i) == 1 {
					want.Add(want, P)
				}
			}
			if got.Equal(want) != 1 {
				t.Fatalf("%s: the table's product of %v differs", name, v)
			}
		}
	}
}

// TestCacheHoldsAtMostMax: a bounded Cache prepares keys up to its bound,
// gives the others crypto/ed25519's answer, and prepares new keys once
// held ones are collected.
func TestCacheHoldsAtMostMax(t *testing.T) {
	c := NewCache(2)
	msg := []byte("m")
	var pubs []ed25519.PublicKey
	var sigs [][]byte
	for range 5 {
		pub, priv := newKey(t)
		pubs, sigs = append(pubs, pub), append(sigs, ed25519.Sign(priv, msg))
	}
	for range 2 {
		for i, pub := range pubs {
			if !c.Verify(pub, msg, sigs[i]) {
				t.Fatalf("key %d: a good signature does not verify", i)
			}
			if c.Verify(pub, msg, sigs[(i+1)%len(sigs)]) {
				t.Fatalf("key %d: another key's signature verifies", i)
			}
		}
	}
	if got := c.Held(); got != 2 {
		t.Fatalf("%d keys held, want the bound, 2", got)
	}
	pubs[0], pubs[1] = nil, nil
	pubs, sigs = pubs[2:], sigs[2:]
	deadline := time.Now().Add(10 * time.Second)
	for c.Held() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d keys held after theirs went", c.Held())
		}
		runtime.GC()
		time.Sleep(time.Millisecond)
	}
	for i, pub := range pubs {
		if !c.Verify(pub, msg, sigs[i]) {
			t.Fatalf("key %d: a good signature does not verify", i)
		}
	}
	if got := c.Held(); got != 2 {
		t.Fatalf("%d keys held after room was made, want 2", got)
	}
	runtime.KeepAlive(pubs)
}

// FuzzVerifyMatchesCryptoEd25519 holds Verify to crypto/ed25519's answer
// on any key, message and signature, starting from good signatures.
func FuzzVerifyMatchesCryptoEd25519(f *testing.F) {
	for _, m := range []string{"", "m", "an access token's signing input"} {
		pub, priv, _ := ed25519.GenerateKey(rand.Reader)
		f.Add([]byte(pub), []byte(m), ed25519.Sign(priv, []byte(m)))
	}
	identity, _ := hex.DecodeString("0100000000000000000000000000000000000000000000000000000000000000")
	f.Add(identity, []byte("m"), append(bytes.Clone(identity), make([]byte, 32)...))
	f.Fuzz(func(t *testing.T, pub, msg, sig []byte) {
		if len(pub) != ed25519.PublicKeySize {
			if Verify(pub, msg, sig) {
				t.Fatal("a key of the wrong length verifies")
			}
			return
		}
		sameAnswer(t, pub, msg, sig)
	})
}

// BenchmarkVerify sets Verify beside crypto/ed25519's, on the same key
// and an 800-byte message, about a token's signing input.
func BenchmarkVerify(b *testing.B) {
	pub, priv := newKey(b)
	msg := make([]byte, 800)
	sig := ed25519.Sign(priv, msg)
	b.Run("ed25519sig", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			if !Verify(pub, msg, sig) {
				b.Fatal("does not verify")
			}
		}
	})
	b.Run("crypto-ed25519", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			if !ed25519.Verify(pub, msg, sig) {
				b.Fatal("does not verify")
			}
		}
	})
}
