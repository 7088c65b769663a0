// Package ed25519sig verifies Ed25519 signatures (RFC 8032 §5.1.7), the
// JWS algorithm EdDSA with an Ed25519 key (RFC 8037 §3.1), with the answer
// crypto/ed25519.Verify gives, at about three fifths of its cost for a key
// used again.
//
// crypto/ed25519.Verify decompresses the key's 32 bytes into a curve point
// (a field square root) on every call, then computes [S]B − [k]A in one
// pass of about 253 doublings. Here a key is prepared once, on its first
// verification, and kept for as long as the key is (or, with a bounded
// Cache, while the bound allows): its point decoded, and a table of −A's
// multiples, 51×16 points for signed 5-bit digits (131 KB). A table of B's
// multiples of the same form is built once for the process. [S]B and
// [k](−A) are then one point addition per window each, about 100 in all,
// and no doublings. Every input is public, so this runs in variable time,
// as crypto/ed25519's verification does.
//
// The rest is crypto/ed25519's verification step by step, on
// filippo.io/edwards25519, the exported form of the package crypto/ed25519
// computes with (crypto/internal/fips140/edwards25519):
//
//   - the signature is 64 bytes, and the three top bits of its last byte
//     are zero;
//   - the key decodes to a point on the curve (every encoding crypto/ed25519
//     accepts, and no other);
//   - S is canonical (below the group order), so that a signature has one
//     valid form;
//   - k = SHA-512(R ‖ A ‖ M) reduced, the key's bytes as given;
//   - [S]B − [k]A must encode, byte for byte, to R. The tables give the
//     same integer multiples of B and of A as crypto/ed25519's pass does,
//     so a key with a small-order component gives the same point.
//
// FuzzVerifyMatchesCryptoEd25519 holds the two to the same answer.
//
// When the program runs in FIPS 140-3 mode (GODEBUG=fips140=on or only),
// every call goes to crypto/ed25519, inside the validated module.
package ed25519sig

import (
	"bytes"
	"crypto/ed25519"
	"crypto/fips140"
	"crypto/sha512"
	"errors"
	"sync"

	"filippo.io/edwards25519"

	"github.com/extauthz/extauthz/internal/keytable"
)

const (
	// window is the number of bits of a scalar each table row covers.
	window = 5
	// rows covers a scalar below the group order (< 2²⁵³) and the carry
	// out of its top signed digit.
	rows = (253 + window) / window
	// perRow is the largest digit's magnitude: the points 1..perRow times
	// the row's base.
	perRow = 1 << (window - 1)
)

// table holds, for each row i, the points j·2⁵ⁱ·P for j = 1..perRow.
type table [rows][perRow]edwards25519.Point

// prepared is a key ready for verifications.
type prepared struct {
	key    [ed25519.PublicKeySize]byte // its encoding: hashed into k, and compared to notice a change
	minusA table
}

// A Cache keeps the keys it has verified with prepared, each as long as
// the key's bytes live (a key is known by its first byte's address), with
// a bound or none (NewCache). A key beyond the bound is verified by
// crypto/ed25519 and leaves nothing behind; room is made as held keys are
// collected. The zero Cache is ready, with no bound.
type Cache struct {
	keys keytable.Table[byte, prepared]
}

// NewCache is a Cache holding at most max keys prepared (0: no bound);
// each takes 131 KB.
func NewCache(maxKeys int) *Cache {
	c := &Cache{}
	c.keys.Max = maxKeys
	return c
}

// keys is the Cache Verify uses, for the keys of the configured issuers'
// key sets, bounded as keytable.KeySetKeys says why.
var keys = NewCache(keytable.KeySetKeys)

// basePoint is the table of B's multiples, built on first use.
var basePoint = sync.OnceValue(func() *table {
	t := new(table)
	t.fill(edwards25519.NewGeneratorPoint())
	return t
})

// inFIPSMode reports whether verifications go to crypto/ed25519; a
// variable for the tests.
var inFIPSMode = fips140.Enabled

// Verify is crypto/ed25519.Verify, except that a key of the wrong length
// is a false answer, not a panic; pub is prepared once and kept as long
// as its bytes are (within keytable.KeySetKeys).
func Verify(pub ed25519.PublicKey, message, sig []byte) bool {
	return keys.Verify(pub, message, sig)
}

// Held is the number of keys Verify holds prepared now: those verified
// with and not yet collected.
func Held() int { return keys.Held() }

// Verify is crypto/ed25519.Verify, except that a key of the wrong length
// is a false answer, not a panic; pub is prepared if c has room for it.
func (c *Cache) Verify(pub ed25519.PublicKey, message, sig []byte) bool {
	if len(pub) != ed25519.PublicKeySize {
		return false
	}
	if inFIPSMode() {
		return ed25519.Verify(pub, message, sig)
	}
	if len(sig) != ed25519.SignatureSize || sig[63]&0xe0 != 0 {
		return false
	}
	k, err := c.keys.Get(&pub[0],
		func(k *prepared) bool { return bytes.Equal(k.key[:], pub) },
		func() (*prepared, error) { return prepare(pub) })
	switch {
	case errors.Is(err, keytable.ErrFull):
		return ed25519.Verify(pub, message, sig)
	case err != nil:
		return false // not a point on the curve
	}
	if _, err := edwards25519.NewScalar().SetCanonicalBytes(sig[32:]); err != nil {
		return false // S is not below the group order
	}
	h := sha512.New()
	h.Write(sig[:32]) // hash.Hash.Write never returns an error
	h.Write(k.key[:])
	h.Write(message)
	var digest [sha512.Size]byte
	kh, err := edwards25519.NewScalar().SetUniformBytes(h.Sum(digest[:0]))
	if err != nil {
		return false // a 64-byte input never fails
	}
	// [S]B = R + [k]A, so [S]B + [k](−A) = R. S's canonical bytes are
	// sig[32:].
	R := edwards25519.NewIdentityPoint()
	basePoint().addMult(R, sig[32:])
	k.minusA.addMult(R, kh.Bytes())
	return bytes.Equal(sig[:32], R.Bytes())
}

// Held is the number of keys c holds prepared now (and, until the
// collector has run, those it held lately).
func (c *Cache) Held() int { return c.keys.Held() }

// prepare decodes pub as crypto/ed25519 does and computes −A's table.
func prepare(pub ed25519.PublicKey) (*prepared, error) {
	A, err := new(edwards25519.Point).SetBytes(pub)
	if err != nil {
		return nil, err
	}
	k := &prepared{}
	copy(k.key[:], pub)
	k.minusA.fill(new(edwards25519.Point).Negate(A))
	return k, nil
}

// fill sets t to the multiples of p.
func (t *table) fill(p *edwards25519.Point) {
	base := new(edwards25519.Point).Set(p)
	for i := range t {
		row := &t[i]
		row[0].Set(base)
		for j := 1; j < perRow; j++ {
			row[j].Add(&row[j-1], base)
		}
		base.Add(&row[perRow-1], &row[perRow-1]) // 2⁵ times the row's base
	}
}

// addMult adds s·P to acc, P the point t was filled with and s a scalar
// below 2²⁵³ in 32 little-endian bytes, read in signed digits from −15 to
// 16.
func (t *table) addMult(acc *edwards25519.Point, s []byte) {
	var neg edwards25519.Point
	carry := uint(0)
	for i := range t {
		d := bitsAt(s, uint(i)*window) + carry
		// d in 17..32 is d−32 and a carry into the next window.
		carry = 0
		if d > perRow {
			carry = 1
			d = 2*perRow - d
			if d != 0 {
				acc.Add(acc, neg.Negate(&t[i][d-1]))
			}
			continue
		}
		if d != 0 {
			acc.Add(acc, &t[i][d-1])
		}
	}
}

// bitsAt is the window bits of the little-endian s starting at bit off.
func bitsAt(s []byte, off uint) uint {
	i, sh := off/8, off%8
	v := uint(s[i]) >> sh
	if sh > 8-window && i+1 < uint(len(s)) {
		v |= uint(s[i+1]) << (8 - sh)
	}
	return v & (1<<window - 1)
}
