package token

import (
	"bytes"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/base64"
	"strings"

	"github.com/extauthz/extauthz/internal/b64seg"
)

// A verdict is cached, and a token revoked, under a hash of the token. Two
// texts that verify as the same token must have the same hash, or a
// revocation of one is bypassed by presenting the other; and a text that
// does not verify must never have the hash of one that does, or it would
// be allowed by the other's cached verdict.
//
// The header and claims are signed as they are spelled, and every segment
// must be canonical base64url (canonicalBase64URL), so the only bytes
// anyone can change without the issuer's key are the signature's, and
// only where the algorithm admits a second valid signature computed from
// the first. Of the algorithms the verifier implements, only ECDSA does
// (SECURITY.md, "Signature malleability", has the reason per algorithm):
// a signature (r, s) has the second form (r, n−s), n being the order of
// the curve, because the point −R has the same x coordinate as R. So the
// canonical spelling of a token is the token itself, except that an ECDSA
// signature whose s is in the upper half (n/2 < s < n) is written with
// n−s, re-encoded as base64url. Low-s, RSA and EdDSA tokens hash as their
// own text, as they always have.

// ecdsaForm describes the JWS signatures of one ECDSA algorithm (RFC 7518
// §3.4): r and s, each of size bytes, big-endian, concatenated.
type ecdsaForm struct {
	alg      string
	size     int // bytes of r, and of s
	sigChars int // base64url characters of r‖s
	// n is the order of the curve and half is ⌊n/2⌋, both big-endian in
	// size bytes.
	n, half []byte
	// prefix and whole are the base64url of `{"alg":"ESnnn",` and of
	// `{"alg":"ESnnn"}`: a header starting with the first, or equal to the
	// second, says alg ESnnn to the verifier, for which a header that
	// repeats a member is malformed. Other headers are read by parseHeader.
	prefix, whole string
}

// maxECDSASig is the longest ECDSA signature, ES512's: 2 × 66 bytes.
const maxECDSASig = 132

// ecdsaForms are the ECDSA algorithms the verifier implements, each bound
// to its curve by the key set (package jwks serves a P-256 key only for
// ES256, P-384 for ES384, P-521 for ES512).
var ecdsaForms = func() [3]ecdsaForm {
	var forms [3]ecdsaForm
	for i, c := range []struct {
		alg   string
		curve elliptic.Curve
	}{{"ES256", elliptic.P256()}, {"ES384", elliptic.P384()}, {"ES512", elliptic.P521()}} {
		p := c.curve.Params()
		size := (p.BitSize + 7) / 8
		n := p.N.FillBytes(make([]byte, size))
		forms[i] = ecdsaForm{
			alg: c.alg, size: size, sigChars: base64.RawURLEncoding.EncodedLen(2 * size),
			n:      n,
			half:   halfOf(n),
			prefix: base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"` + c.alg + `",`)),
			whole:  base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"` + c.alg + `"}`)),
		}
	}
	return forms
}()

// halfOf is ⌊n/2⌋ of a big-endian number, in as many bytes.
func halfOf(n []byte) []byte {
	h := make([]byte, len(n))
	var carry byte
	for i, b := range n {
		h[i] = carry<<7 | b>>1
		carry = b & 1
	}
	return h
}

// CacheHash is the SHA-256 of a token's canonical spelling (see above):
// the key its verdict is cached under and the hash it is revoked by. For
// every token but an ECDSA-signed JWS whose s is in the upper half, it is
// the SHA-256 of the token as sent. raw is any string: a JWS, an opaque
// token, garbage. It does not allocate, except to read a header that does
// not start with "alg" when s is in the upper half.
func CacheHash(raw string) [sha256.Size]byte {
	h, _ := CacheHashAsSent(raw)
	return h
}

// CacheHashAsSent is CacheHash, and whether it is the SHA-256 of raw as
// sent: true for every token but an ECDSA-signed JWS whose s is in the
// upper half. A DPoP proof's ath is that SHA-256 (RFC 9449 §4.2), which
// the caller then need not compute a second time.
func CacheHashAsSent(raw string) (sum256 [sha256.Size]byte, asSent bool) {
	var sig [maxECDSASig]byte
	var enc [4 * maxECDSASig / 3]byte
	if f, n := lowS(raw, &sig); f != nil {
		base64.RawURLEncoding.Encode(enc[:], sig[:n])
		signed := raw[:len(raw)-f.sigChars] // header.payload.
		return sum(signed, enc[:f.sigChars]), false
	}
	return sum(raw, nil), true
}

// lowS reports whether raw is an ECDSA-signed JWS whose s is in the upper
// half, and if so writes the signature with n−s into sig and returns its
// form and length. The algorithm is the one the header names, read as the
// verifier reads it: never guessed from the signature's length, which an
// EdDSA signature shares with an ES256 one.
//
// It is on the path of every Check, cache hits included, so the usual
// tokens leave it early: an RSA or EdDSA signature after three byte
// comparisons, an ECDSA one with s in the lower half after decoding the
// characters that hold s.
func lowS(raw string, sig *[maxECDSASig]byte) (*ecdsaForm, int) {
	var f *ecdsaForm
	for i := range ecdsaForms {
		if c := ecdsaForms[i].sigChars; len(raw) > c && raw[len(raw)-c-1] == '.' {
			f = &ecdsaForms[i]
			break
		}
	}
	if f == nil {
		return nil, 0
	}
	// raw holds a '.' (before the signature): first is never -1.
	first := strings.IndexByte(raw, '.')
	alg, spelled := spelledAlg(raw[:first])
	if spelled && alg != f.alg {
		// An EdDSA signature has an ES256 one's length: its header, in
		// the usual spelling, says so before anything is decoded.
		return nil, 0
	}
	last := len(raw) - f.sigChars - 1
	s64 := raw[last+1:]
	n := 2 * f.size
	// Half the signatures have s in the lower half: decode only the
	// characters from the 3-byte group holding s's first byte. A text
	// that is not base64url there is left as it is: malformed.
	from := f.size / 3 * 3
	if !decodeCanonical(sig[from:n], s64[from/3*4:]) || bytes.Compare(sig[f.size:n], f.half) <= 0 {
		return nil, 0
	}
	if !decodeCanonical(sig[:n], s64) {
		return nil, 0 // not canonical base64url: malformed
	}
	s := sig[f.size:n]
	if bytes.Compare(s, f.n) >= 0 {
		return nil, 0 // out of range and so invalid
	}
	if first == last || strings.IndexByte(raw[first+1:last], '.') >= 0 {
		return nil, 0 // not three segments: not a JWS the verifier reads
	}
	if !spelled && headerAlg(raw[:first]) != f.alg {
		return nil, 0
	}
	// s = n − s, big-endian, with borrow.
	var borrow int
	for i := f.size - 1; i >= 0; i-- {
		d := int(f.n[i]) - int(s[i]) - borrow
		borrow = 0
		if d < 0 {
			d += 256
			borrow = 1
		}
		s[i] = byte(d)
	}
	return f, n
}

// eddsaPrefix and eddsaWhole are the base64url of `{"alg":"EdDSA",` and
// of `{"alg":"EdDSA"}` (see ecdsaForm's prefix and whole).
var (
	eddsaPrefix = base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"EdDSA",`))
	eddsaWhole  = base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"EdDSA"}`))
)

// spelledAlg is the alg of a JWS header segment when it starts with it
// in the usual spelling, `{"alg":"…",` or is `{"alg":"…"}`, for ECDSA and
// EdDSA (ok false: any other header, to be read by headerAlg). What the
// verifier reads from such a header is that alg, or nothing: a header
// that repeats alg is malformed.
func spelledAlg(h64 string) (alg string, ok bool) {
	for i := range ecdsaForms {
		if f := &ecdsaForms[i]; strings.HasPrefix(h64, f.prefix) || h64 == f.whole {
			return f.alg, true
		}
	}
	if strings.HasPrefix(h64, eddsaPrefix) || h64 == eddsaWhole {
		return "EdDSA", true
	}
	return "", false
}

// headerAlg is the alg of a JWS header segment, as parseJWT reads it, or
// "" when the header is not readable (the token is then malformed, in
// every spelling).
func headerAlg(h64 string) string {
	if alg, ok := spelledAlg(h64); ok {
		return alg
	}
	b, err := decodeSegment(h64)
	if err != nil {
		return ""
	}
	h, err := parseHeader(b)
	if err != nil {
		return ""
	}
	return h.Alg
}

// decodeCanonical decodes s into dst, which is exactly its decoded length,
// if s is canonical base64url without padding (canonicalBase64URL), and
// reports whether it was. It does not allocate, as the standard decoder
// would to take s as a []byte.
func decodeCanonical(dst []byte, s string) bool { return b64seg.DecodeInto(dst, s) }

// hashChunk is the stack buffer sum copies a string through: sha256 takes
// a []byte, and converting a long string to one would allocate.
const hashChunk = 256

// sum is the SHA-256 of s followed by tail.
func sum(s string, tail []byte) [sha256.Size]byte {
	h := sha256.New()
	var chunk [hashChunk]byte
	for len(s) > 0 {
		n := copy(chunk[:], s)
		h.Write(chunk[:n]) // hash.Hash.Write never returns an error.
		s = s[n:]
	}
	h.Write(tail)
	var out [sha256.Size]byte
	h.Sum(out[:0])
	return out
}
