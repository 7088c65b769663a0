// Package ed25519sig verifies Ed25519 signatures (RFC 8032 §5.1.7), the
// JWS algorithm EdDSA with an Ed25519 key (RFC 8037 §3.1), with the answer
// crypto/ed25519.Verify gives, without decoding the public key again on
// every call.
//
// crypto/ed25519.Verify takes the key as its 32 bytes and decompresses
// them into a curve point on every call, a field square root that costs
// about a twelfth of the verification. Here the point is decoded once per
// key, on its first verification, and kept for as long as the key is.
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
//   - [S]B − [k]A must encode, byte for byte, to R.
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

	"filippo.io/edwards25519"

	"github.com/extauthz/extauthz/internal/keytable"
)

// prepared is a key ready for verifications.
type prepared struct {
	key    [ed25519.PublicKeySize]byte // its encoding: hashed into k, and compared to notice a change
	minusA edwards25519.Point
}

// keys holds each key's prepared form, by its first byte, as long as the
// key lives.
var keys keytable.Table[byte, prepared]

// inFIPSMode reports whether verifications go to crypto/ed25519; a
// variable for the tests.
var inFIPSMode = fips140.Enabled

// Verify is crypto/ed25519.Verify, except that a key of the wrong length
// is a false answer, not a panic.
func Verify(pub ed25519.PublicKey, message, sig []byte) bool {
	if len(pub) != ed25519.PublicKeySize {
		return false
	}
	if inFIPSMode() {
		return ed25519.Verify(pub, message, sig)
	}
	if len(sig) != ed25519.SignatureSize || sig[63]&0xe0 != 0 {
		return false
	}
	k := keyFor(pub)
	if k == nil {
		return false
	}
	S, err := edwards25519.NewScalar().SetCanonicalBytes(sig[32:])
	if err != nil {
		return false
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
	// [S]B = R + [k]A, so [k](−A) + [S]B = R.
	R := new(edwards25519.Point).VarTimeDoubleScalarBaseMult(kh, &k.minusA, S)
	return bytes.Equal(sig[:32], R.Bytes())
}

// keyFor returns pub prepared, from keys or now; nil when pub is not a
// point on the curve.
func keyFor(pub ed25519.PublicKey) *prepared {
	k, err := keys.Get(&pub[0],
		func(k *prepared) bool { return bytes.Equal(k.key[:], pub) },
		func() (*prepared, error) { return prepare(pub) })
	if err != nil {
		return nil
	}
	return k
}

// prepare decodes pub as crypto/ed25519 does.
func prepare(pub ed25519.PublicKey) (*prepared, error) {
	A, err := new(edwards25519.Point).SetBytes(pub)
	if err != nil {
		return nil, err
	}
	k := &prepared{}
	copy(k.key[:], pub)
	k.minusA.Negate(A)
	return k, nil
}

// Held is the number of keys held prepared now: those verified with and
// not yet collected.
func Held() int { return keys.Len() }
