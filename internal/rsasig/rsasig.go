// Package rsasig verifies RSASSA-PKCS1-v1_5 signatures (RFC 8017 §8.2.2),
// the signatures of the JWS algorithms RS256, RS384 and RS512 (RFC 7518
// §3.3), with the result crypto/rsa.VerifyPKCS1v15 gives, at about two
// thirds of its cost.
//
// crypto/rsa prepares the modulus for Montgomery arithmetic (R² mod n, a
// long computation on a 2048-bit number) on every call: a *rsa.PublicKey
// keeps nothing between calls. That preparation is about a third of a
// 2048-bit verification. Here it is done once per key, on the key's first
// verification, and kept for as long as the key is: a verification is
// then the exponentiation and the comparison alone. The arithmetic is
// filippo.io/bigmod, the exported form of the package crypto/rsa itself
// computes with (crypto/internal/fips140/bigmod).
//
// The rules are crypto/rsa's, each checked the same way:
//
//   - the key: a modulus of at least 1024 bits, odd; an exponent odd,
//     at least 3 and below 2³¹ (callers ask for more: pkg/token 2048 bits);
//   - the signature: exactly as long as the modulus, and below it as a
//     number (RFC 8017 §5.2.2 step 1);
//   - the encoded message s^e mod n must equal, byte for byte, the one
//     encoding of the digest (RFC 8017 §9.2): 0x00 0x01, 0xff bytes, 0x00,
//     the hash's DigestInfo and the digest. Nothing is parsed out of it, so
//     no signature with other bytes in it (Bleichenbacher's low-exponent
//     forgeries, garbage after the digest, another DigestInfo) can pass.
//
// FuzzVerifyMatchesCryptoRSA holds the two to the same answer.
//
// When the program runs in FIPS 140-3 mode (GODEBUG=fips140=on or only),
// every call goes to crypto/rsa, so that signatures are checked inside
// the validated module.
package rsasig

import (
	"bytes"
	"crypto"
	"crypto/fips140"
	"crypto/rsa"
	"errors"
	"math/big"

	"filippo.io/bigmod"

	"github.com/extauthz/extauthz/internal/keytable"
)

// ErrVerification is any signature that does not verify.
var ErrVerification = errors.New("rsasig: verification error")

// Errors for keys and hashes crypto/rsa refuses.
var (
	errKey  = errors.New("rsasig: public key crypto/rsa would refuse")
	errHash = errors.New("rsasig: hash not SHA-256, SHA-384 or SHA-512, or digest of the wrong size")
)

// minBits is crypto/rsa's shortest modulus (its rsa1024min default).
const minBits = 1024

// digestInfo is the DER DigestInfo before the digest, for each hash a JWS
// RS algorithm uses (RFC 8017 §9.2, note 1).
func digestInfo(h crypto.Hash) []byte {
	switch h {
	case crypto.SHA256:
		return []byte{0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20}
	case crypto.SHA384:
		return []byte{0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02, 0x05, 0x00, 0x04, 0x30}
	case crypto.SHA512:
		return []byte{0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03, 0x05, 0x00, 0x04, 0x40}
	}
	return nil
}

// prepared is a key ready for verifications.
type prepared struct {
	n   big.Int // a copy of the key's modulus: a key changed since is noticed
	e   int
	mod *bigmod.Modulus
}

// keys holds each *rsa.PublicKey's prepared form, as long as the key lives.
var keys keytable.Table[rsa.PublicKey, prepared]

// inFIPSMode reports whether verifications go to crypto/rsa; a variable
// for the tests.
var inFIPSMode = fips140.Enabled

// VerifyPKCS1v15 is crypto/rsa.VerifyPKCS1v15 for the hashes SHA-256,
// SHA-384 and SHA-512: nil when sig is pub's signature of digest, an
// error otherwise (ErrVerification for a signature that does not verify).
func VerifyPKCS1v15(pub *rsa.PublicKey, hash crypto.Hash, digest, sig []byte) error {
	if inFIPSMode() {
		return rsa.VerifyPKCS1v15(pub, hash, digest, sig)
	}
	prefix := digestInfo(hash)
	if prefix == nil || len(digest) != hash.Size() {
		return errHash
	}
	k, err := keyFor(pub)
	if err != nil {
		return err
	}
	size := k.mod.Size()
	if len(sig) != size {
		return ErrVerification
	}
	t := len(prefix) + len(digest)
	if size < t+11 {
		return ErrVerification // RFC 8017 §9.2 step 3: no room for the padding
	}
	s, err := bigmod.NewNat().SetBytes(sig, k.mod) // refuses s ≥ n
	if err != nil {
		return ErrVerification
	}
	em := bigmod.NewNat().ExpShortVarTime(s, uint(k.e), k.mod).Bytes(k.mod) //nolint:gosec // 3 ≤ e < 2³¹
	// EM = 0x00 || 0x01 || PS || 0x00 || DigestInfo || digest, PS all 0xff.
	ps := size - t - 1 // the index of the 0x00 after PS
	if em[0] != 0 || em[1] != 1 || em[ps] != 0 ||
		!bytes.Equal(em[ps+1:ps+1+len(prefix)], prefix) || !bytes.Equal(em[size-len(digest):], digest) {
		return ErrVerification
	}
	for _, b := range em[2:ps] {
		if b != 0xff {
			return ErrVerification
		}
	}
	return nil
}

// keyFor returns pub prepared, from keys or now.
func keyFor(pub *rsa.PublicKey) (*prepared, error) {
	if pub == nil || pub.N == nil {
		return nil, errKey
	}
	return keys.Get(pub,
		func(k *prepared) bool { return k.e == pub.E && k.n.Cmp(pub.N) == 0 },
		func() (*prepared, error) { return prepare(pub) })
}

// prepare checks pub as crypto/rsa does and computes its modulus's
// Montgomery constants.
func prepare(pub *rsa.PublicKey) (*prepared, error) {
	if pub.N.Sign() <= 0 || pub.N.BitLen() < minBits || pub.N.Bit(0) == 0 ||
		pub.E < 3 || pub.E&1 == 0 || pub.E > 1<<31-1 {
		return nil, errKey
	}
	mod, err := bigmod.NewModulus(pub.N.Bytes())
	if err != nil {
		return nil, errKey
	}
	k := &prepared{e: pub.E, mod: mod}
	k.n.Set(pub.N)
	return k, nil
}

// Held is the number of keys held prepared now: those verified with and
// not yet collected.
func Held() int { return keys.Len() }
