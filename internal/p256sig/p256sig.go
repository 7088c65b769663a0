// Package p256sig verifies ECDSA signatures on P-256 (FIPS 186-5 §6.4.2),
// the signatures of the JWS algorithm ES256 (RFC 7518 §3.4), with the
// answer crypto/ecdsa gives, at about half its cost for a key used again.
//
// A verification computes R = u1·G + u2·Q and compares R's x with r. The
// term u1·G has a fixed base, and every library multiplies it from a
// precomputed table. The term u2·Q is where the time goes: crypto/ecdsa
// multiplies the public key Q from scratch on every call (about two thirds
// of a verification), as it must with nothing kept between calls. Here a
// key's multiples are computed once, on the key's first verification, and
// kept for as long as the key is (or, with a bounded Cache, while the
// bound allows): u2·Q is then one point addition per 6-bit window of u2,
// 43 of them, with no doublings.
//
// The table holds, for each window i, the points j·2⁶ⁱ·Q for j = 1..32:
// 43×32 points, 132 KB per key, built in about half a millisecond. u2 is
// read in signed digits from −31 to 32, a negative digit adding the
// negated point. The sum is computed with nistec's complete addition, so
// that no input (a multiple of Q equal to another, the point at infinity)
// takes a path of its own. It runs in variable time, as verifications do:
// every input to one is public.
//
// The rules are crypto/ecdsa's, each checked the same way:
//
//   - the key is a point on P-256, not the point at infinity (as
//     crypto/ecdsa's conversion of a *ecdsa.PublicKey checks it);
//   - r and s are each 32 bytes (the JWS form), from 1 to n−1: zero, n and
//     above are refused;
//   - the hash is truncated to 32 bytes and read modulo n (hashToNat);
//   - R must not be the point at infinity, and x(R) mod n must equal r.
//
// A high-S signature (s and n−s) verifies, as it does in crypto/ecdsa.
// FuzzVerifyMatchesCryptoECDSA holds the two to the same answer.
//
// The arithmetic is filippo.io/nistec and filippo.io/bigmod, the exported
// forms of the packages crypto/ecdsa itself computes with. When the
// program runs in FIPS 140-3 mode every call goes to crypto/ecdsa, so that
// signatures are checked inside the validated module.
package p256sig

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/fips140"
	"errors"
	"math/big"

	"filippo.io/bigmod"
	"filippo.io/nistec"

	"github.com/extauthz/extauthz/internal/keytable"
)

// SignatureSize is the length of a P-256 signature in the JWS form: r||s.
const SignatureSize = 64

const (
	// window is the number of bits of u2 each table row covers.
	window = 6
	// rows covers 256 bits and the carry out of the top signed digit.
	rows = (256 + window) / window
	// perRow is the largest digit's magnitude: the points 1..perRow times
	// the row's base.
	perRow = 1 << (window - 1)
)

var (
	errKey = errors.New("p256sig: not a P-256 public key crypto/ecdsa would accept")
)

// order is n, the order of P-256's base point, for arithmetic on scalars.
var (
	orderBytes = []byte{
		0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
	}
	order    = mustModulus(orderBytes)
	orderBig = new(big.Int).SetBytes(orderBytes)
)

func mustModulus(b []byte) *bigmod.Modulus {
	m, err := bigmod.NewModulus(b)
	if err != nil {
		panic(err)
	}
	return m
}

// prepared is a key's table of multiples.
type prepared struct {
	x, y big.Int // a copy of the key's point: a key changed since is noticed
	t    [rows][perRow]nistec.P256Point
}

// A Cache keeps the keys it has verified with prepared, each as long as
// its *ecdsa.PublicKey lives, with a bound or none (NewCache). A key beyond
// the bound is verified by crypto/ecdsa and leaves nothing behind; room is
// made as held keys are collected. The zero Cache is ready, with no bound.
type Cache struct {
	keys keytable.Table[ecdsa.PublicKey, prepared]
}

// NewCache is a Cache holding at most max keys prepared (0: no bound); each
// takes 132 KB.
func NewCache(maxKeys int) *Cache {
	c := &Cache{}
	c.keys.Max = maxKeys
	return c
}

// keys is the Cache Verify uses, for the keys of the configured issuers'
// key sets, bounded as keytable.KeySetKeys says why.
var keys = NewCache(keytable.KeySetKeys)

// inFIPSMode reports whether verifications go to crypto/ecdsa; a variable
// for the tests.
var inFIPSMode = fips140.Enabled

// Verify reports whether sig, r||s in 64 bytes, is pub's signature of
// hash: crypto/ecdsa's answer, with pub prepared once and kept as long as
// pub is (within keytable.KeySetKeys).
func Verify(pub *ecdsa.PublicKey, hash, sig []byte) bool {
	return keys.Verify(pub, hash, sig)
}

// Held is the number of keys Verify holds prepared now.
func Held() int { return keys.Held() }

// Verify reports whether sig, r||s in 64 bytes, is pub's signature of
// hash: crypto/ecdsa's answer, with pub prepared if c has room for it.
func (c *Cache) Verify(pub *ecdsa.PublicKey, hash, sig []byte) bool {
	if len(sig) != SignatureSize {
		return false
	}
	if inFIPSMode() {
		return verifyStd(pub, hash, sig)
	}
	k, err := c.keyFor(pub)
	switch {
	case errors.Is(err, keytable.ErrFull):
		return verifyStd(pub, hash, sig)
	case err != nil:
		return false
	}
	return k.verify(hash, sig)
}

// Held is the number of keys c holds prepared now (and, until the
// collector has run, those it held lately).
func (c *Cache) Held() int { return c.keys.Held() }

// keyFor returns pub prepared, from c or now.
func (c *Cache) keyFor(pub *ecdsa.PublicKey) (*prepared, error) {
	if !onP256(pub) {
		return nil, errKey
	}
	return c.keys.Get(pub,
		func(k *prepared) bool {
			x, y := point(pub)
			return k.x.Cmp(x) == 0 && k.y.Cmp(y) == 0
		},
		func() (*prepared, error) { return prepare(pub) })
}

// prepare checks pub as crypto/ecdsa does and computes its table.
func prepare(pub *ecdsa.PublicKey) (*prepared, error) {
	b, err := pub.Bytes() // refuses a point not on the curve
	if err != nil {
		return nil, errKey
	}
	q, err := nistec.NewP256Point().SetBytes(b) // and the point at infinity
	if err != nil {
		return nil, errKey
	}
	k := &prepared{}
	x, y := point(pub)
	k.x.Set(x)
	k.y.Set(y)
	base := q
	for i := range k.t {
		row := &k.t[i]
		row[0].Set(base)
		for j := 1; j < perRow; j++ {
			row[j].Add(&row[j-1], base)
		}
		base.Double(&row[perRow-1]) // 2⁶ times the row's base
	}
	return k, nil
}

// verify is FIPS 186-5 §6.4.2 with Q's table.
func (k *prepared) verify(hash, sig []byte) bool {
	// r and s in [1, n−1]; SetBytes refuses n and above.
	r, err := bigmod.NewNat().SetBytes(sig[:32], order)
	if err != nil || r.IsZero() == 1 {
		return false
	}
	var s big.Int
	s.SetBytes(sig[32:])
	if s.Sign() == 0 || s.Cmp(orderBig) >= 0 {
		return false
	}
	// e: the hash's leftmost 256 bits, mod n.
	if len(hash) > 32 {
		hash = hash[:32]
	}
	e, err := bigmod.NewNat().SetOverflowingBytes(hash, order)
	if err != nil {
		return false
	}
	// w = s⁻¹ mod n (n is prime and 0 < s < n, so it exists); math/big's
	// is about 2 µs, bigmod's constant-time and binary ones far longer.
	var wb [32]byte
	var wi big.Int
	if wi.ModInverse(&s, orderBig) == nil {
		return false
	}
	w, err := bigmod.NewNat().SetBytes(wi.FillBytes(wb[:]), order)
	if err != nil {
		return false
	}
	u1 := e.Mul(w, order)
	u2, err := bigmod.NewNat().SetBytes(sig[:32], order)
	if err != nil {
		return false
	}
	u2.Mul(w, order)

	p1, err := nistec.NewP256Point().ScalarBaseMult(u1.Bytes(order))
	if err != nil {
		return false
	}
	var p2 nistec.P256Point
	k.mult(&p2, u2.Bytes(order))
	x, err := p1.Add(p1, &p2).BytesX() // an error for the point at infinity
	if err != nil {
		return false
	}
	v, err := bigmod.NewNat().SetOverflowingBytes(x, order)
	if err != nil {
		return false
	}
	return v.Equal(r) == 1
}

// mult sets p = u·Q from the table, u 32 bytes big-endian.
func (k *prepared) mult(p *nistec.P256Point, u []byte) {
	var limbs [4]uint64 // u, little-endian
	for i := range limbs {
		for _, b := range u[32-8*(i+1) : 32-8*i] {
			limbs[i] = limbs[i]<<8 | uint64(b)
		}
	}
	p.Set(nistec.NewP256Point()) // the point at infinity
	var neg nistec.P256Point
	carry := uint64(0)
	for i := range k.t {
		d := bitsAt(&limbs, uint(i)*window) + carry
		// Signed digits: d in 33..64 is d−64 and a carry into the next
		// window, so every digit is in −31..32.
		carry = 0
		if d > perRow {
			carry = 1
			d = 2*perRow - d
			if d != 0 {
				p.Add(p, neg.Negate(&k.t[i][d-1]))
			}
			continue
		}
		if d != 0 {
			p.Add(p, &k.t[i][d-1])
		}
	}
}

// bitsAt is the window bits of u starting at bit off.
func bitsAt(u *[4]uint64, off uint) uint64 {
	i, sh := off/64, off%64
	v := u[i] >> sh
	if sh > 64-window && i < 3 {
		v |= u[i+1] << (64 - sh)
	}
	return v & (1<<window - 1)
}

// point is pub's coordinates. They are only read, to notice a key
// changed since it was prepared as cheaply as internal/rsasig compares N
// and E: pub.Bytes() would check the point on the curve on every call.
func point(pub *ecdsa.PublicKey) (x, y *big.Int) {
	return pub.X, pub.Y //nolint:staticcheck // read only, see above
}

// onP256 reports whether pub is a key of P-256 with both coordinates.
func onP256(pub *ecdsa.PublicKey) bool {
	if pub == nil || pub.Curve != elliptic.P256() {
		return false
	}
	x, y := point(pub)
	return x != nil && y != nil
}

// verifyStd is crypto/ecdsa's answer (false, not its panic, for a key
// without a point).
func verifyStd(pub *ecdsa.PublicKey, hash, sig []byte) bool {
	if !onP256(pub) {
		return false
	}
	var r, s big.Int
	r.SetBytes(sig[:32])
	s.SetBytes(sig[32:])
	return ecdsa.Verify(pub, hash, &r, &s)
}
