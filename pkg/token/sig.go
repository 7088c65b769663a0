package token

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"strings"
	"unsafe"

	"github.com/extauthz/extauthz/internal/b64seg"
	"github.com/extauthz/extauthz/internal/ed25519sig"
	"github.com/extauthz/extauthz/internal/p256sig"
	"github.com/extauthz/extauthz/internal/rsasig"
)

// A JWS signature is checked here with the Go crypto packages directly,
// on the key the KeySource converted once when it loaded the key set: no
// library re-reads the header, decodes the payload a second time, looks
// the algorithm up in a registry or converts the key per call. RS*, ES256
// and EdDSA signatures go through internal/rsasig, internal/p256sig and
// internal/ed25519sig, which give crypto/rsa's, crypto/ecdsa's and
// crypto/ed25519's answers with the key prepared once, where those
// prepare it on every call. What a general JWS
// library would enforce is enforced here, stated once:
//
//   - the algorithm is one of the asymmetric ones below, named by the
//     header's alg and accepted by the configuration (Options.Algorithms);
//     "none" and HS* have no entry, so no shared secret and no public key
//     used as one can ever verify anything;
//   - the key's type fits the algorithm's family, and for ECDSA its curve
//     is the algorithm's (ES256 only with P-256, ...): a key never
//     verifies under an algorithm it was not published for;
//   - RSA keys have at least minRSABits (as pkg/jwks refuses to load
//     shorter ones; checked again here, the KeySource being an interface),
//     and an RSA signature is exactly the modulus's size;
//   - an ECDSA signature is R||S, each exactly the curve's size (RFC 7518
//     §3.4); a DER signature, or one of any other length, is refused.
//     A high-S signature verifies, as in crypto/ecdsa: the cache key
//     (CacheHash) makes both forms one token;
//   - EdDSA is Ed25519 only: a 32-byte key and a 64-byte signature.

// sigFamily is how an algorithm verifies.
type sigFamily uint8

const (
	familyRSA sigFamily = iota + 1
	familyPSS
	familyECDSA
	familyEd25519
)

// sigAlg is one JWS signature algorithm (RFC 7518 §3, RFC 8037 §3.1).
type sigAlg struct {
	name   string
	family sigFamily
	hash   crypto.Hash    // the digest signed (not for Ed25519)
	curve  elliptic.Curve // ECDSA: the only curve its keys may be on
	size   int            // ECDSA: bytes of R and of S
}

// sigAlgs are the algorithms tokens may be signed with: the asymmetric
// ones (the enum of the tokens.algorithms setting).
var sigAlgs = map[string]*sigAlg{
	"RS256": {name: "RS256", family: familyRSA, hash: crypto.SHA256},
	"RS384": {name: "RS384", family: familyRSA, hash: crypto.SHA384},
	"RS512": {name: "RS512", family: familyRSA, hash: crypto.SHA512},
	"PS256": {name: "PS256", family: familyPSS, hash: crypto.SHA256},
	"PS384": {name: "PS384", family: familyPSS, hash: crypto.SHA384},
	"PS512": {name: "PS512", family: familyPSS, hash: crypto.SHA512},
	"ES256": {name: "ES256", family: familyECDSA, hash: crypto.SHA256, curve: elliptic.P256(), size: 32},
	"ES384": {name: "ES384", family: familyECDSA, hash: crypto.SHA384, curve: elliptic.P384(), size: 48},
	"ES512": {name: "ES512", family: familyECDSA, hash: crypto.SHA512, curve: elliptic.P521(), size: 66},
	"EdDSA": {name: "EdDSA", family: familyEd25519},
}

// minRSABits is the shortest RSA modulus a signature is checked with, as
// in pkg/jwks.
const minRSABits = 2048

var (
	errSigSegment = errors.New("signature: not one canonical base64url segment")
	errKeyType    = errors.New("signature: the key does not fit the algorithm")
	errRSAKeySize = errors.New("signature: RSA key shorter than 2048 bits")
	errSigLength  = errors.New("signature: wrong length for the key")
	errSigInvalid = errors.New("signature: does not verify")
)

// pssOptions are RFC 7518 §3.5's: the salt as long as the hash.
var pssOptions = [...]rsa.PSSOptions{
	crypto.SHA256: {SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA256},
	crypto.SHA384: {SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA384},
	crypto.SHA512: {SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA512},
}

// verifySignature checks the signature of raw, a JWS in compact
// serialization, with key under a. It reads nothing but the signing input
// (the text before the last '.') and the signature segment. Any failure is
// one of the errors above; the caller reports them all as ErrSignature.
func verifySignature(a *sigAlg, key crypto.PublicKey, raw string) error {
	dot := strings.LastIndexByte(raw, '.')
	if dot < 0 {
		return errSigSegment
	}
	input, seg := raw[:dot], raw[dot+1:]
	// Decoded on the stack: 512 bytes hold an RSA signature of up to
	// 4096 bits, and every ECDSA and Ed25519 one.
	var buf [512]byte
	sig, ok := b64seg.Append(buf[:0], seg)
	if !ok {
		return errSigSegment
	}
	switch a.family {
	case familyRSA, familyPSS:
		k, ok := key.(*rsa.PublicKey)
		if !ok || k.N == nil {
			return errKeyType
		}
		if k.N.BitLen() < minRSABits {
			return errRSAKeySize
		}
		if len(sig) != k.Size() {
			return errSigLength
		}
		var d [sha512.Size]byte
		digest := digestOf(a.hash, input, &d)
		var err error
		if a.family == familyRSA {
			// crypto/rsa's answer, with k's modulus prepared once (see
			// internal/rsasig): a third of the check's cost.
			err = rsasig.VerifyPKCS1v15(k, a.hash, digest, sig)
		} else {
			err = rsa.VerifyPSS(k, a.hash, digest, sig, &pssOptions[a.hash])
		}
		if err != nil {
			return errSigInvalid
		}
	case familyECDSA:
		k, ok := key.(*ecdsa.PublicKey)
		if !ok || k.Curve != a.curve {
			return errKeyType
		}
		if len(sig) != 2*a.size {
			return errSigLength
		}
		var d [sha512.Size]byte
		digest := digestOf(a.hash, input, &d)
		if a.curve == elliptic.P256() {
			// crypto/ecdsa's answer, with k's multiples computed once
			// (internal/p256sig): half the check's cost.
			if !p256sig.Verify(k, digest, sig) {
				return errSigInvalid
			}
			break
		}
		// SEQUENCE and two INTEGERs, each with at most a zero byte
		// added: 2*66 + 9 bytes for P-521.
		var der [2*66 + 9]byte
		if !ecdsa.VerifyASN1(k, digest, appendASN1Signature(der[:0], sig)) {
			return errSigInvalid
		}
	case familyEd25519:
		k, ok := key.(ed25519.PublicKey)
		if !ok || len(k) != ed25519.PublicKeySize {
			return errKeyType
		}
		if len(sig) != ed25519.SignatureSize {
			return errSigLength
		}
		// crypto/ed25519's answer, the key decoded once (internal/ed25519sig).
		if !ed25519sig.Verify(k, bytesOf(input), sig) {
			return errSigInvalid
		}
	default:
		return errKeyType
	}
	return nil
}

// digestOf is the digest h of s, written into d.
func digestOf(h crypto.Hash, s string, d *[sha512.Size]byte) []byte {
	b := bytesOf(s)
	switch h {
	case crypto.SHA256:
		*(*[sha256.Size]byte)(d[:]) = sha256.Sum256(b)
		return d[:sha256.Size]
	case crypto.SHA384:
		*(*[sha512.Size384]byte)(d[:]) = sha512.Sum384(b)
		return d[:sha512.Size384]
	default:
		*d = sha512.Sum512(b)
		return d[:]
	}
}

// bytesOf is s's bytes, without a copy: the signing input is a prefix of
// the token, hundreds of bytes that a conversion would copy to the heap
// on every verification. The slice is only ever read (by hash functions
// and ed25519.Verify), never written or kept.
func bytesOf(s string) []byte {
	return unsafe.Slice(unsafe.StringData(s), len(s)) //nolint:gosec // read-only view, see above
}

// appendASN1Signature appends to dst the ASN.1 DER form (RFC 3279
// Ecdsa-Sig-Value: SEQUENCE { r INTEGER, s INTEGER }) of the ECDSA
// signature r||s, each of n bytes (the JWS form, RFC 7518 §3.4), as
// crypto/ecdsa.VerifyASN1 takes it. n is at most 66 (P-521), so the
// sequence is under 256 bytes and its length fits the short or the
// one-byte long form, and each integer's the short form.
func appendASN1Signature(dst, rs []byte) []byte {
	if len(rs) == 0 || len(rs)%2 != 0 || len(rs) > 2*66 {
		return dst // no ECDSA signature of a JWS curve: nothing verifies
	}
	n := len(rs) / 2
	r, s := asn1Integer(rs[:n]), asn1Integer(rs[n:])
	body := 2 + len(r) + 2 + len(s)
	if r[0]&0x80 != 0 {
		body++
	}
	if s[0]&0x80 != 0 {
		body++
	}
	dst = append(dst, 0x30)
	if body >= 0x80 {
		dst = append(dst, 0x81)
	}
	dst = append(dst, byte(body)) //nolint:gosec // body < 2*(2+67) < 256
	dst = appendASN1Integer(dst, r)
	return appendASN1Integer(dst, s)
}

// asn1Integer strips the leading zero bytes of a big-endian unsigned
// integer, keeping one byte for zero.
func asn1Integer(b []byte) []byte {
	for len(b) > 1 && b[0] == 0 {
		b = b[1:]
	}
	return b
}

// appendASN1Integer appends the DER INTEGER of the unsigned, minimal b: a
// zero byte first when its top bit is set, so that it reads as positive.
func appendASN1Integer(dst, b []byte) []byte {
	l := len(b)
	pad := b[0]&0x80 != 0
	if pad {
		l++
	}
	dst = append(dst, 0x02, byte(l)) //nolint:gosec // l <= 67
	if pad {
		dst = append(dst, 0)
	}
	return append(dst, b...)
}
