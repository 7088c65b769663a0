package dpop

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"

	"github.com/extauthz/extauthz/internal/b64seg"
	"github.com/extauthz/extauthz/internal/ed25519sig"
	"github.com/extauthz/extauthz/internal/p256sig"
	"github.com/extauthz/extauthz/internal/rsasig"
)

// algorithm is a JWS algorithm (RFC 7518 §3, RFC 8037 §3.1) and the one
// kind of key it is used with.
type algorithm struct {
	name string
	kty  string // "EC", "RSA" or "OKP"
	// crv is the curve of an EC or OKP key.
	crv   string
	curve elliptic.Curve
	size  int // bytes of an EC coordinate, and of r and of s
	hash  crypto.Hash
	pss   bool
}

// allAlgorithms are the algorithms this package implements, in the order
// Algorithms lists them.
var allAlgorithms = []*algorithm{
	{name: "ES256", kty: "EC", crv: "P-256", curve: elliptic.P256(), size: 32, hash: crypto.SHA256},
	{name: "ES384", kty: "EC", crv: "P-384", curve: elliptic.P384(), size: 48, hash: crypto.SHA384},
	{name: "ES512", kty: "EC", crv: "P-521", curve: elliptic.P521(), size: 66, hash: crypto.SHA512},
	{name: "EdDSA", kty: "OKP", crv: "Ed25519"},
	{name: "Ed25519", kty: "OKP", crv: "Ed25519"}, // RFC 9864's fully specified name
	{name: "RS256", kty: "RSA", hash: crypto.SHA256},
	{name: "RS384", kty: "RSA", hash: crypto.SHA384},
	{name: "RS512", kty: "RSA", hash: crypto.SHA512},
	{name: "PS256", kty: "RSA", hash: crypto.SHA256, pss: true},
	{name: "PS384", kty: "RSA", hash: crypto.SHA384, pss: true},
	{name: "PS512", kty: "RSA", hash: crypto.SHA512, pss: true},
}

func lookupAlgorithm(name string) *algorithm {
	for _, a := range allAlgorithms {
		if a.name == name {
			return a
		}
	}
	return nil
}

// RSA modulus bounds. RFC 7518 §3.3 and §3.5 require 2048 bits or more;
// the upper bound keeps an attacker's key from making verification slow.
const (
	minRSABits = 2048
	maxRSABits = 8192
)

// jwk is a public key from a proof's jwk header, with the members its
// thumbprint is computed from, exactly as received (RFC 7638 §3.2).
type jwk struct {
	kty, crv, x, y, n, e string
	ec                   *ecdsa.PublicKey
	ed                   ed25519.PublicKey
	rsa                  *rsa.PublicKey
}

// jwkNames are the JWK members this package reads or refuses.
var jwkNames = []string{"kty", "crv", "x", "y", "n", "e", "alg", "use", "key_ops", "d", "p", "q", "dp", "dq", "qi", "oth", "k"}

// parseJWK reads the jwk header parameter into k: a public key (RFC 9449
// §4.3 step 7: no private key), of the type and curve alg signs with, in
// its one valid encoding (RFC 7518 §6.2.1, §6.3.1; RFC 8037 §2).
func parseJWK(k *jwk, data []byte, alg *algorithm) error {
	var kty, crv, x, y, n, e, keyAlg, use string
	var has [6]bool // kty, crv, x, y, n, e
	var keyOps []string
	var hasKeyAlg, hasUse, hasKeyOps bool
	err := objectMembers(data, func(name string, value []byte) error {
		ok := true
		switch name {
		case "kty":
			kty, ok = jsonString(value)
			has[0] = true
		case "crv":
			crv, ok = jsonString(value)
			has[1] = true
		case "x":
			x, ok = jsonString(value)
			has[2] = true
		case "y":
			y, ok = jsonString(value)
			has[3] = true
		case "n":
			n, ok = jsonString(value)
			has[4] = true
		case "e":
			e, ok = jsonString(value)
			has[5] = true
		case "alg":
			keyAlg, ok = jsonString(value)
			hasKeyAlg = true
		case "use":
			use, ok = jsonString(value)
			hasUse = true
		case "key_ops":
			keyOps, ok = jsonStrings(value)
			hasKeyOps = true
		case "d", "p", "q", "dp", "dq", "qi", "oth", "k":
			// A private or symmetric key member, whatever its value: the
			// client has disclosed its key (or sent a shared secret), and
			// a proof made with it proves nothing.
			return fmt.Errorf("private key member %q", name)
		default:
			if caseVariant(name, jwkNames) {
				return fmt.Errorf("member %q differs from a JWK member only in case", name)
			}
		}
		if !ok {
			return fmt.Errorf("member %q has the wrong type", name)
		}
		return nil
	})
	if err != nil {
		return err
	}
	switch {
	case !has[0]:
		return errors.New("no kty")
	case kty == "oct":
		return errors.New("symmetric key (kty oct)")
	case kty != alg.kty:
		return fmt.Errorf("kty %q cannot verify alg %s", clip(kty), alg.name)
	case hasKeyAlg && keyAlg != alg.name:
		return fmt.Errorf("key is for alg %q, the proof says %s", clip(keyAlg), alg.name)
	case hasUse && use != "sig":
		return fmt.Errorf("key use %q is not sig", clip(use))
	case hasKeyOps && !contains(keyOps, "verify"):
		return errors.New(`key_ops lacks "verify"`)
	}
	k.kty = kty
	switch kty {
	case "EC":
		if has[4] || has[5] {
			return errors.New("an EC key with RSA members")
		}
		if !has[1] || crv != alg.crv {
			return fmt.Errorf("crv %q cannot verify alg %s", clip(crv), alg.name)
		}
		if !has[2] || !has[3] {
			return errors.New("EC key without x or y")
		}
		// Uncompressed point: 0x04 ‖ x ‖ y, each coordinate its full size.
		pt := make([]byte, 1, 1+2*alg.size)
		pt[0] = 4
		var ok bool
		if pt, ok = b64seg.Append(pt, x); !ok || len(pt) != 1+alg.size {
			return fmt.Errorf("x is not %d bytes of canonical base64url", alg.size)
		}
		if pt, ok = b64seg.Append(pt, y); !ok || len(pt) != 1+2*alg.size {
			return fmt.Errorf("y is not %d bytes of canonical base64url", alg.size)
		}
		pub, err := ecdsa.ParseUncompressedPublicKey(alg.curve, pt)
		if err != nil {
			return errors.New("the point is not on the curve")
		}
		k.crv, k.x, k.y, k.ec = crv, x, y, pub
	case "OKP":
		if has[3] || has[4] || has[5] {
			return errors.New("an OKP key with EC or RSA members")
		}
		if !has[1] || crv != alg.crv {
			return fmt.Errorf("crv %q cannot verify alg %s", clip(crv), alg.name)
		}
		pub, ok := b64seg.Append(make([]byte, 0, ed25519.PublicKeySize), x)
		if !has[2] || !ok || len(pub) != ed25519.PublicKeySize {
			return fmt.Errorf("x is not %d bytes of canonical base64url", ed25519.PublicKeySize)
		}
		k.crv, k.x, k.ed = crv, x, pub
	case "RSA":
		if has[1] || has[2] || has[3] {
			return errors.New("an RSA key with EC or OKP members")
		}
		if !has[4] || !has[5] {
			return errors.New("RSA key without n or e")
		}
		nb, ok := b64seg.Append(nil, n)
		if !ok || len(nb) == 0 || nb[0] == 0 {
			// RFC 7518 §6.3.1.1: the minimal big-endian form, so that one
			// key has one encoding and one thumbprint.
			return errors.New("n is not a minimal unsigned integer in canonical base64url")
		}
		eb, ok := b64seg.Append(nil, e)
		if !ok || len(eb) == 0 || eb[0] == 0 || len(eb) > 4 {
			return errors.New("e is not a minimal unsigned integer of at most 32 bits in canonical base64url")
		}
		var ev int64
		for _, b := range eb {
			ev = ev<<8 | int64(b)
		}
		if ev < 3 || ev&1 == 0 || ev > 1<<31-1 {
			return errors.New("e is not an odd exponent from 3 to 2^31-1")
		}
		mod := new(big.Int).SetBytes(nb)
		if bits := mod.BitLen(); bits < minRSABits || bits > maxRSABits {
			return fmt.Errorf("modulus of %d bits (want %d to %d)", bits, minRSABits, maxRSABits)
		}
		k.n, k.e, k.rsa = n, e, &rsa.PublicKey{N: mod, E: int(ev)}
	default:
		return fmt.Errorf("unsupported kty %q", clip(kty))
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// thumbprint is the key's JWK SHA-256 thumbprint, base64url (RFC 7638
// §3): the required members only, in lexicographic order, no whitespace.
// Each value is the string received, which parseJWK has checked is the
// one canonical encoding of the key, so no re-encoding is needed and two
// spellings of one key cannot exist.
func (k *jwk) thumbprint() string {
	var buf [1200]byte // an 8192-bit n is 1366 characters: append grows it
	b := buf[:0]
	switch k.kty {
	case "EC":
		b = append(b, `{"crv":"`...)
		b = append(b, k.crv...)
		b = append(b, `","kty":"EC","x":"`...)
		b = append(b, k.x...)
		b = append(b, `","y":"`...)
		b = append(b, k.y...)
		b = append(b, `"}`...)
	case "OKP":
		b = append(b, `{"crv":"`...)
		b = append(b, k.crv...)
		b = append(b, `","kty":"OKP","x":"`...)
		b = append(b, k.x...)
		b = append(b, `"}`...)
	case "RSA":
		b = append(b, `{"e":"`...)
		b = append(b, k.e...)
		b = append(b, `","kty":"RSA","n":"`...)
		b = append(b, k.n...)
		b = append(b, `"}`...)
	}
	sum := sha256.Sum256(b)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// preparedP256Keys and preparedEd25519Keys hold the P-256 and Ed25519
// proof keys prepared for internal/p256sig and internal/ed25519sig, at
// most maxPreparedKeys of each.
var (
	preparedP256Keys    = p256sig.NewCache(maxPreparedKeys)
	preparedEd25519Keys = ed25519sig.NewCache(maxPreparedKeys)
)

// maxPreparedKeys bounds the P-256 and the Ed25519 proof keys held
// prepared: each takes about 132 KB (its table of multiples), so 256 of
// each take 67 MB at most. A kept key beyond the bound is checked by
// crypto/ecdsa or crypto/ed25519, as a first-seen one is; room is made as
// headers leave the cache and their keys are collected. An RSA key's
// prepared form is its modulus's constants, a few hundred bytes: those
// are bounded by the header cache alone.
const maxPreparedKeys = 256

// verify checks a JWS signature (RFC 7515 §5.2 step 8) over the signing
// input with the key, which parseJWK matched to a. kept says the key is the
// header cache's, from a proof accepted before: an RSA, P-256 or Ed25519
// key is then checked by internal/rsasig, internal/p256sig or
// internal/ed25519sig (the last two within maxPreparedKeys), which
// prepare it once and keep it as long as the cache does. A key seen for
// the first time, which any client can send, goes to crypto/rsa,
// crypto/ecdsa or crypto/ed25519 and leaves nothing behind.
func (a *algorithm) verify(k *jwk, signingInput string, sig []byte, kept bool) bool {
	// The digest and the DER signature are handed to crypto/ecdsa or
	// crypto/rsa, which keeps neither but whose calls the compiler cannot
	// see through: they go to the heap, in one allocation.
	var buf struct {
		digest [sha512.Size]byte
		der    [2*67 + 8]byte
	}
	digest := a.digest(buf.digest[:0], signingInput)
	switch a.kty {
	case "OKP":
		// Go's Ed25519 refuses non-canonical encodings of S (RFC 8032
		// §5.1.7), so a signature has one valid form; ed25519sig gives its
		// answer.
		if len(sig) != ed25519.SignatureSize {
			return false
		}
		if kept {
			return preparedEd25519Keys.Verify(k.ed, []byte(signingInput), sig)
		}
		return ed25519.Verify(k.ed, []byte(signingInput), sig)
	case "EC":
		if len(sig) != 2*a.size {
			return false
		}
		if kept && a.size == p256sig.SignatureSize/2 {
			return preparedP256Keys.Verify(k.ec, digest, sig)
		}
		return ecdsa.VerifyASN1(k.ec, digest, appendECDSADER(buf.der[:0], sig[:a.size], sig[a.size:]))
	case "RSA":
		if a.pss {
			// RFC 7518 §3.5: the salt is as long as the hash.
			return rsa.VerifyPSS(k.rsa, a.hash, digest, sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash}) == nil
		}
		if kept {
			return rsasig.VerifyPKCS1v15(k.rsa, a.hash, digest, sig) == nil
		}
		return rsa.VerifyPKCS1v15(k.rsa, a.hash, digest, sig) == nil
	}
	return false
}

// digest appends the hash of the signing input to dst (nothing for
// EdDSA, which hashes the message itself).
func (a *algorithm) digest(dst []byte, signingInput string) []byte {
	switch a.hash {
	case 0:
		return dst
	case crypto.SHA256:
		d := sha256String(signingInput)
		return append(dst, d[:]...)
	case crypto.SHA384:
		d := sha512.Sum384([]byte(signingInput))
		return append(dst, d[:]...)
	}
	d := sha512.Sum512([]byte(signingInput))
	return append(dst, d[:]...)
}

// appendECDSADER appends the DER SEQUENCE { INTEGER r, INTEGER s } that
// crypto/ecdsa verifies, from the fixed-size big-endian r and s of a JWS
// ECDSA signature (RFC 7518 §3.4).
func appendECDSADER(dst, r, s []byte) []byte {
	r, s = minimalUnsigned(r), minimalUnsigned(s)
	n := intLen(r) + intLen(s)
	dst = append(dst, 0x30)
	if n >= 0x80 {
		dst = append(dst, 0x81) // at most 2×(2+67) bytes: one length byte
	}
	dst = append(dst, byte(n)) //nolint:gosec // n ≤ 2×(3+66)
	dst = appendDERInt(dst, r)
	return appendDERInt(dst, s)
}

// minimalUnsigned drops leading zero bytes, keeping one for zero.
func minimalUnsigned(b []byte) []byte {
	for len(b) > 1 && b[0] == 0 {
		b = b[1:]
	}
	return b
}

// intLen is the DER length of an INTEGER holding the unsigned b.
func intLen(b []byte) int {
	if b[0]&0x80 != 0 {
		return 3 + len(b)
	}
	return 2 + len(b)
}

func appendDERInt(dst, b []byte) []byte {
	if b[0]&0x80 != 0 {
		return append(append(dst, 0x02, byte(len(b)+1), 0), b...) //nolint:gosec // len(b) ≤ 66
	}
	return append(append(dst, 0x02, byte(len(b))), b...) //nolint:gosec // len(b) ≤ 66
}
