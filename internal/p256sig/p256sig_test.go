package p256sig

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"math/big"
	"runtime"
	"sync"
	"testing"
	"time"

	"filippo.io/nistec"
)

// keyFromScalar is the P-256 key with private scalar d.
func keyFromScalar(t testing.TB, d *big.Int) *ecdsa.PrivateKey {
	t.Helper()
	var b [32]byte
	k, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), d.FillBytes(b[:]))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// signWithNonce is the signature r||s of hash by d with the nonce k,
// computed here so that the tests choose what crypto/ecdsa.Sign would
// not: r = x(k·G) mod n, s = k⁻¹(e + r·d) mod n. Zero r or s are
// returned as they are.
func signWithNonce(t testing.TB, d, k *big.Int, hash []byte) []byte {
	t.Helper()
	var kb [32]byte
	R, err := nistec.NewP256Point().ScalarBaseMult(new(big.Int).Mod(k, orderBig).FillBytes(kb[:]))
	if err != nil {
		t.Fatal(err)
	}
	x, err := R.BytesX()
	if err != nil {
		t.Fatal(err)
	}
	r := new(big.Int).Mod(new(big.Int).SetBytes(x), orderBig)
	s := new(big.Int).Mul(r, d)
	s.Add(s, hashToInt(hash))
	s.Mul(s, new(big.Int).ModInverse(k, orderBig))
	s.Mod(s, orderBig)
	return joinRS(r, s)
}

// hashToInt is the hash's leftmost 256 bits, as an integer.
func hashToInt(hash []byte) *big.Int {
	if len(hash) > 32 {
		hash = hash[:32]
	}
	return new(big.Int).SetBytes(hash)
}

// joinRS is r||s, each in 32 bytes; r or s longer than that panics.
func joinRS(r, s *big.Int) []byte {
	sig := make([]byte, SignatureSize)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return sig
}

// sameAnswer checks that Verify gives crypto/ecdsa's answer, which it
// returns.
func sameAnswer(t testing.TB, pub *ecdsa.PublicKey, hash, sig []byte) bool {
	t.Helper()
	want := verifyStd(pub, hash, sig)
	if got := Verify(pub, hash, sig); got != want {
		t.Fatalf("Verify(hash %x, sig %x) = %v, crypto/ecdsa says %v", hash, sig, got, want)
	}
	return want
}

// rawKey is a P-256 key with the coordinates given, as a careless caller
// might build one: for keys ecdsa.ParseUncompressedPublicKey refuses.
func rawKey(x, y *big.Int) *ecdsa.PublicKey {
	return &ecdsa.PublicKey{Curve: elliptic.P256(), X: x, Y: y} //nolint:staticcheck // see above
}

// copyKey is another *ecdsa.PublicKey for pub's point.
func copyKey(t testing.TB, pub *ecdsa.PublicKey) *ecdsa.PublicKey {
	t.Helper()
	b, err := pub.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	c, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), b)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func sign(t testing.TB, k *ecdsa.PrivateKey, hash []byte) []byte {
	t.Helper()
	r, s, err := ecdsa.Sign(rand.Reader, k, hash)
	if err != nil {
		t.Fatal(err)
	}
	return joinRS(r, s)
}

func flip(b []byte, bit int) []byte {
	c := append([]byte(nil), b...)
	c[bit/8] ^= 1 << (bit % 8)
	return c
}

func TestVerifyMatchesCryptoECDSA(t *testing.T) {
	n := orderBig
	nMinus1 := new(big.Int).Sub(n, big.NewInt(1))
	all1 := new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 256), big.NewInt(1))
	verified, refused := 0, 0
	count := func(ok bool) {
		if ok {
			verified++
		} else {
			refused++
		}
	}
	for i := range 12 {
		k := newKey(t)
		pub := &k.PublicKey
		sum := sha256.Sum256(fmt.Appendf(nil, "message %d", i))
		h := sum[:]
		sig := sign(t, k, h)
		r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
		if !sameAnswer(t, pub, h, sig) {
			t.Fatal("a good signature does not verify")
		}
		count(true)
		// High S: n−s verifies too, as in crypto/ecdsa.
		count(sameAnswer(t, pub, h, joinRS(r, new(big.Int).Sub(n, s))))
		for _, bit := range []int{0, 7, 100, 255, 256, 300, 511} {
			count(sameAnswer(t, pub, h, flip(sig, bit)))
		}
		for _, bit := range []int{0, 128, 255} {
			count(sameAnswer(t, pub, flip(h, bit), sig))
		}
		for _, v := range []*big.Int{big.NewInt(0), big.NewInt(1), nMinus1, n, new(big.Int).Add(n, r), all1} {
			if v.Cmp(all1) > 0 {
				continue
			}
			count(sameAnswer(t, pub, h, joinRS(v, s)))
			count(sameAnswer(t, pub, h, joinRS(r, v)))
		}
		count(sameAnswer(t, pub, h, joinRS(s, r)))
		// Hashes of other lengths: truncated to 32 bytes, read mod n.
		for _, size := range []int{0, 1, 20, 31, 33, 48, 64} {
			long := make([]byte, size)
			_, _ = rand.Read(long)
			ls := sign(t, k, long)
			if !sameAnswer(t, pub, long, ls) {
				t.Fatalf("a good signature of a %d-byte hash does not verify", size)
			}
			count(true)
			if size > 32 {
				// Bytes past the 32nd are not read, by either.
				if !sameAnswer(t, pub, flip(long, 8*size-1), ls) {
					t.Fatalf("a change past the 32nd byte of a %d-byte hash refused", size)
				}
			}
		}
		// A hash at or above n: the same signature as for e − n.
		big32 := n.FillBytes(make([]byte, 32))
		count(sameAnswer(t, pub, big32, sign(t, k, big32)))
		count(sameAnswer(t, pub, all1.FillBytes(make([]byte, 32)), sign(t, k, all1.FillBytes(make([]byte, 32)))))
		// Signatures of other lengths.
		for _, l := range []int{0, 63, 65, 72} {
			bad := make([]byte, l)
			copy(bad, sig)
			if Verify(pub, h, bad) {
				t.Fatalf("a %d-byte signature verifies", l)
			}
		}
	}
	if verified == 0 || refused == 0 {
		t.Fatalf("%d verified, %d refused: both answers must occur", verified, refused)
	}
}

// TestSumsWithEqualOrOppositeTerms builds signatures whose two terms u1·G
// and u2·Q are equal (their sum is a doubling) or opposite (their sum is
// the point at infinity), and keys that are small multiples of G.
func TestSumsWithEqualOrOppositeTerms(t *testing.T) {
	n := orderBig
	for _, dv := range []*big.Int{
		big.NewInt(1), big.NewInt(2), big.NewInt(33), new(big.Int).Sub(n, big.NewInt(1)),
		new(big.Int).Lsh(big.NewInt(1), 200),
	} {
		priv := keyFromScalar(t, dv)
		pub := &priv.PublicKey
		for i := range 4 {
			nonce := big.NewInt(int64(1000 + i*7919))
			var kb [32]byte
			R, _ := nistec.NewP256Point().ScalarBaseMult(nonce.FillBytes(kb[:]))
			x, _ := R.BytesX()
			r := new(big.Int).Mod(new(big.Int).SetBytes(x), n)

			// e = r·d: u1 = u2·d, so u1·G = u2·Q and R is a doubling.
			e := new(big.Int).Mod(new(big.Int).Mul(r, dv), n)
			eb := e.FillBytes(make([]byte, 32))
			sig := signWithNonce(t, dv, nonce, eb)
			if !sameAnswer(t, pub, eb, sig) {
				t.Fatalf("d=%v: the signature whose terms are equal does not verify", dv)
			}

			// e = −r·d: u1·G = −u2·Q, R is the point at infinity for any s.
			e.Sub(n, e)
			eb = e.FillBytes(make([]byte, 32))
			for _, s := range []*big.Int{big.NewInt(1), big.NewInt(12345), new(big.Int).Sub(n, big.NewInt(2))} {
				if sameAnswer(t, pub, eb, joinRS(r, s)) {
					t.Fatalf("d=%v: a signature whose sum is the point at infinity verifies", dv)
				}
			}

			// An ordinary one, through every key.
			h := sha256.Sum256(nonce.Bytes())
			if !sameAnswer(t, pub, h[:], signWithNonce(t, dv, nonce, h[:])) {
				t.Fatalf("d=%v: a good signature does not verify", dv)
			}
		}
	}
}

// TestSPlusNIsRefused: s and s+n are the same number mod n, and only s is
// a signature. A good signature with a small s is made by choosing the
// hash: e = s·k − r·d, so that s + n still fits in 32 bytes.
func TestSPlusNIsRefused(t *testing.T) {
	n := orderBig
	d := big.NewInt(424242)
	priv := keyFromScalar(t, d)
	for _, sv := range []int64{1, 5, 1 << 40} {
		k := big.NewInt(777 + sv)
		var kb [32]byte
		R, _ := nistec.NewP256Point().ScalarBaseMult(k.FillBytes(kb[:]))
		x, _ := R.BytesX()
		r := new(big.Int).Mod(new(big.Int).SetBytes(x), n)
		s := big.NewInt(sv)
		e := new(big.Int).Mul(s, k)
		e.Sub(e, new(big.Int).Mul(r, d))
		e.Mod(e, n)
		hash := e.FillBytes(make([]byte, 32))
		if !sameAnswer(t, &priv.PublicKey, hash, joinRS(r, s)) {
			t.Fatalf("s=%d: the chosen signature does not verify", sv)
		}
		if sameAnswer(t, &priv.PublicKey, hash, joinRS(r, new(big.Int).Add(s, n))) {
			t.Fatalf("s=%d: s+n verifies", sv)
		}
	}
}

// TestMultMatchesScalarMult compares the table's product with nistec's
// for scalars whose signed digits take every edge: zero windows, 32 (the
// largest positive digit), 33 and 63 (negative, with a carry), carries
// running through windows of 63, and the top window.
func TestMultMatchesScalarMult(t *testing.T) {
	k := newKey(t)
	p, err := prepare(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := k.PublicKey.Bytes()
	q, _ := nistec.NewP256Point().SetBytes(b)
	fill := func(v byte) []byte {
		s := make([]byte, 32)
		for i := range s {
			s[i] = v
		}
		return s
	}
	scalars := [][]byte{
		make([]byte, 32), fill(0xff), fill(0x80), fill(0x7f), fill(0x20), fill(0x21), fill(0x3f), fill(0x41),
		fill(0x55), fill(0xaa), orderBytes,
		new(big.Int).Sub(orderBig, big.NewInt(1)).FillBytes(make([]byte, 32)),
	}
	for _, v := range []int64{1, 2, 31, 32, 33, 63, 64, 65, 95, 96, 97, 4095, 4096} {
		scalars = append(scalars, big.NewInt(v).FillBytes(make([]byte, 32)))
	}
	for bit := range 256 {
		scalars = append(scalars, new(big.Int).Lsh(big.NewInt(1), uint(bit)).FillBytes(make([]byte, 32)))
		// 2^bit − 1: every window full, carries all the way up.
		ones := new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), uint(bit)), big.NewInt(1))
		scalars = append(scalars, ones.FillBytes(make([]byte, 32)))
	}
	for range 200 {
		s := make([]byte, 32)
		_, _ = rand.Read(s)
		scalars = append(scalars, s)
	}
	for _, s := range scalars {
		var got nistec.P256Point
		p.mult(&got, s)
		// Reduced mod n first: ScalarMult's domain.
		red := new(big.Int).Mod(new(big.Int).SetBytes(s), orderBig).FillBytes(make([]byte, 32))
		want, err := nistec.NewP256Point().ScalarMult(q, red)
		if err != nil {
			t.Fatal(err)
		}
		if got.Equal(want) != 1 {
			t.Fatalf("table product of %x differs from ScalarMult", s)
		}
	}
}

func TestKeysCryptoECDSARefuses(t *testing.T) {
	k := newKey(t)
	h := sha256.Sum256([]byte("x"))
	sig := sign(t, k, h[:])
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	p := elliptic.P256().Params().P
	kx, ky := point(&k.PublicKey)
	p384x, p384y := point(&p384.PublicKey)
	keys := map[string]*ecdsa.PublicKey{
		"nil":                 nil,
		"P-384":               &p384.PublicKey,
		"no X":                rawKey(nil, ky),
		"off the curve":       rawKey(kx, new(big.Int).Add(ky, big.NewInt(1))),
		"X plus p":            rawKey(new(big.Int).Add(kx, p), ky),
		"negative Y":          rawKey(kx, new(big.Int).Neg(ky)),
		"point at infinity":   rawKey(big.NewInt(0), big.NewInt(0)),
		"Y for another curve": rawKey(p384x, p384y),
	}
	before := Held()
	for name, pub := range keys {
		if Verify(pub, h[:], sig) {
			t.Errorf("%s: verifies", name)
		}
		if pub != nil && verifyStd(pub, h[:], sig) {
			t.Errorf("%s: crypto/ecdsa verifies (the test's premise)", name)
		}
	}
	if got := Held(); got != before {
		t.Errorf("%d keys held after refused keys, %d before", got, before)
	}
}

func TestChangedKeyIsPreparedAgain(t *testing.T) {
	a, b := newKey(t), newKey(t)
	h := sha256.Sum256([]byte("x"))
	sigA, sigB := sign(t, a, h[:]), sign(t, b, h[:])
	ax, ay := point(&a.PublicKey)
	pub := rawKey(new(big.Int).Set(ax), new(big.Int).Set(ay))
	if !Verify(pub, h[:], sigA) {
		t.Fatal("a's signature does not verify")
	}
	// In place: the same *big.Ints, as a caller that should not might.
	x, y := point(pub)
	bx, by := point(&b.PublicKey)
	x.Set(bx)
	y.Set(by)
	if Verify(pub, h[:], sigA) {
		t.Fatal("a's signature verifies with the key changed to b")
	}
	if !Verify(pub, h[:], sigB) {
		t.Fatal("b's signature does not verify with the key changed to b")
	}
}

// waitHeld runs the collector until c holds want keys.
func waitHeld(t *testing.T, c *Cache, want int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for c.Held() != want {
		if time.Now().After(deadline) {
			t.Fatalf("%d keys held, want %d", c.Held(), want)
		}
		runtime.GC()
		time.Sleep(time.Millisecond)
	}
}

func TestCacheHoldsAtMostMax(t *testing.T) {
	c := NewCache(2)
	h := sha256.Sum256([]byte("x"))
	var pubs []*ecdsa.PublicKey
	var sigs [][]byte
	for range 5 {
		k := newKey(t)
		pub := copyKey(t, &k.PublicKey)
		pubs, sigs = append(pubs, pub), append(sigs, sign(t, k, h[:]))
	}
	for range 2 {
		for i, pub := range pubs {
			if !c.Verify(pub, h[:], sigs[i]) {
				t.Fatalf("key %d: a good signature does not verify", i)
			}
			if c.Verify(pub, h[:], sigs[(i+1)%len(sigs)]) {
				t.Fatalf("key %d: another key's signature verifies", i)
			}
		}
	}
	if got := c.Held(); got != 2 {
		t.Fatalf("%d keys held, want the bound, 2", got)
	}
	if got := c.keys.Len(); got != 2 {
		t.Fatalf("%d tables kept, want 2", got)
	}
	// The held keys go; the others are prepared in their place.
	pubs[0], pubs[1] = nil, nil
	pubs, sigs = pubs[2:], sigs[2:]
	waitHeld(t, c, 0)
	for i, pub := range pubs {
		if !c.Verify(pub, h[:], sigs[i]) {
			t.Fatalf("key %d: a good signature does not verify", i)
		}
	}
	if got := c.Held(); got != 2 {
		t.Fatalf("%d keys held after room was made, want 2", got)
	}
	runtime.KeepAlive(pubs)
}

func TestEntriesAreCollectedWithTheirKeys(t *testing.T) {
	c := &Cache{}
	h := sha256.Sum256([]byte("x"))
	func() {
		for range 3 {
			k := newKey(t)
			pub := copyKey(t, &k.PublicKey)
			if !c.Verify(pub, h[:], sign(t, k, h[:])) {
				t.Fatal("a good signature does not verify")
			}
		}
	}()
	if c.Held() != 3 {
		t.Fatalf("%d keys held, want 3", c.Held())
	}
	waitHeld(t, c, 0)
}

func TestConcurrentFirstUse(t *testing.T) {
	c := NewCache(1)
	k := newKey(t)
	h := sha256.Sum256([]byte("x"))
	sig := sign(t, k, h[:])
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 5 {
				if !c.Verify(&k.PublicKey, h[:], sig) {
					t.Error("a good signature does not verify")
				}
			}
		})
	}
	wg.Wait()
	if got := c.keys.Len(); got != 1 {
		t.Fatalf("%d tables kept, want 1", got)
	}
	waitHeld(t, c, 1)
}

func TestFIPSModeUsesCryptoECDSA(t *testing.T) {
	t.Cleanup(func() { inFIPSMode = func() bool { return false } })
	inFIPSMode = func() bool { return true }
	c := &Cache{}
	k := newKey(t)
	h := sha256.Sum256([]byte("x"))
	sig := sign(t, k, h[:])
	if !c.Verify(&k.PublicKey, h[:], sig) || c.Verify(&k.PublicKey, h[:], flip(sig, 3)) {
		t.Fatal("in FIPS mode: not crypto/ecdsa's answers")
	}
	if c.keys.Len() != 0 {
		t.Fatal("a key was prepared in FIPS mode")
	}
}

// fuzzKeys are the keys the fuzz target signs with: fixed, so that a
// failing input replays.
var fuzzKeys = []*big.Int{
	big.NewInt(1), big.NewInt(7),
	new(big.Int).SetBytes(sha256.New().Sum([]byte("fuzz key a"))[:32]),
	new(big.Int).SetBytes(sha256.New().Sum([]byte("fuzz key b"))[:32]),
}

// FuzzVerifyMatchesCryptoECDSA signs hash with a fixed key and the
// fuzzer's nonce, changes the signature by the fuzzer's mask, and
// requires Verify and crypto/ecdsa to agree on the result. A zero mask
// keeps the signature good.
func FuzzVerifyMatchesCryptoECDSA(f *testing.F) {
	f.Add(uint8(0), []byte{1}, []byte("hash"), []byte{})
	f.Add(uint8(1), []byte{0xff, 0xff}, make([]byte, 32), []byte{0, 0, 0, 1})
	f.Add(uint8(2), []byte("nonce"), make([]byte, 64), make([]byte, 64))
	f.Add(uint8(3), orderBytes, orderBytes, append(make([]byte, 63), 0x80))
	f.Fuzz(func(t *testing.T, key uint8, nonce, hash, mask []byte) {
		d := new(big.Int).Mod(fuzzKeys[int(key)%len(fuzzKeys)], orderBig)
		if d.Sign() == 0 {
			d.SetInt64(1)
		}
		k := new(big.Int).Mod(new(big.Int).SetBytes(nonce), orderBig)
		if k.Sign() == 0 {
			return
		}
		priv := keyFromScalar(t, d)
		sig := signWithNonce(t, d, k, hash)
		for i := range min(len(mask), len(sig)) {
			sig[i] ^= mask[i]
		}
		sameAnswer(t, &priv.PublicKey, hash, sig)
	})
}

func BenchmarkVerify(b *testing.B) {
	k := newKey(b)
	h := sha256.Sum256([]byte("x"))
	sig := sign(b, k, h[:])
	b.Run("p256sig", func(b *testing.B) {
		for b.Loop() {
			if !Verify(&k.PublicKey, h[:], sig) {
				b.Fatal("does not verify")
			}
		}
	})
	b.Run("crypto-ecdsa", func(b *testing.B) {
		for b.Loop() {
			if !verifyStd(&k.PublicKey, h[:], sig) {
				b.Fatal("does not verify")
			}
		}
	})
	b.Run("prepare", func(b *testing.B) {
		for b.Loop() {
			if _, err := prepare(&k.PublicKey); err != nil {
				b.Fatal(err)
			}
		}
	})
}
