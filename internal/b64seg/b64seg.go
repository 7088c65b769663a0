// Package b64seg reads the base64url segments of a JWS in compact
// serialization (RFC 7515 §2, §3.1), and the base64url values inside one
// (JWK members, thumbprints, ath), in the one spelling an encoder writes:
// the URL-safe alphabet without padding, and zero bits after the last
// byte. Any other spelling of the same bytes — the standard alphabet,
// padding, whitespace or line breaks, which lenient decoders skip or
// accept, or non-zero trailing bits — is refused: it would be a second
// text of the same token or proof (a new cache entry, a way around a
// revocation or a replay check by the text's hash), and some other
// reader might decode it differently.
//
// It is shared by pkg/token and pkg/dpop. It is not a general base64
// package: there is no encoder (encoding/base64's RawURLEncoding writes
// the canonical form), and no lenient mode.
package b64seg

import "slices"

// Canonical reports whether s is canonical unpadded base64url, without
// decoding it.
func Canonical(s string) bool {
	for i := 0; i < len(s); i++ {
		if value[s[i]] < 0 {
			return false
		}
	}
	switch len(s) % 4 {
	case 1: // one character carries no whole byte
		return false
	case 2: // one byte; the last character carries 4 bits that must be zero
		return value[s[len(s)-1]]&0x0f == 0
	case 3: // two bytes; the last character carries 2 bits that must be zero
		return value[s[len(s)-1]]&0x03 == 0
	}
	return true
}

// DecodedLen is the number of bytes a canonical s of n characters
// decodes to; -1 when no canonical string has n characters.
func DecodedLen(n int) int {
	switch n % 4 {
	case 1:
		return -1
	case 2:
		return n/4*3 + 1
	case 3:
		return n/4*3 + 2
	}
	return n / 4 * 3
}

// Decode returns the bytes s encodes, in a new slice, if s is canonical.
func Decode(s string) ([]byte, bool) {
	n := DecodedLen(len(s))
	if n < 0 {
		return nil, false
	}
	return Append(make([]byte, 0, n), s)
}

// DecodeInto decodes s into dst, which must be exactly its decoded
// length, and reports whether s was canonical and of that length. It does
// not allocate.
func DecodeInto(dst []byte, s string) bool {
	return DecodedLen(len(s)) == len(dst) && decode(dst, s)
}

// Append appends the bytes s encodes to dst, if s is canonical; ok is
// false otherwise, and dst is returned unchanged. It allocates only when
// dst's capacity is short.
func Append[S ~string | ~[]byte](dst []byte, s S) (_ []byte, ok bool) {
	n := DecodedLen(len(s))
	if n < 0 {
		return dst, false
	}
	dst = slices.Grow(dst, n)
	if !decode(dst[len(dst):len(dst)+n], s) {
		return dst, false
	}
	return dst[:len(dst)+n], true
}

// decode decodes s into dst, DecodedLen(len(s)) bytes, if s is canonical.
// Both shrink as it goes, which lets the compiler drop the bounds checks.
func decode[S ~string | ~[]byte](dst []byte, s S) bool {
	for len(s) >= 4 && len(dst) >= 3 {
		a, b, c, d := value[s[0]], value[s[1]], value[s[2]], value[s[3]]
		if a|b|c|d < 0 {
			return false
		}
		// Each digit is 0–63 here, and v holds 24 bits: no conversion
		// below loses anything it should keep.
		v := uint32(a)<<18 | uint32(b)<<12 | uint32(c)<<6 | uint32(d) //nolint:gosec // 6-bit digits
		dst[0], dst[1], dst[2] = byte(v>>16), byte(v>>8), byte(v)     //nolint:gosec // one byte each
		s, dst = s[4:], dst[3:]
	}
	switch {
	case len(s) == 0:
		return true
	case len(s) == 2 && len(dst) == 1: // the last character's low 4 bits must be zero
		a, b := value[s[0]], value[s[1]]
		if a|b < 0 || b&0x0f != 0 {
			return false
		}
		dst[0] = byte(a)<<2 | byte(b)>>4 //nolint:gosec // 6-bit digits
		return true
	case len(s) == 3 && len(dst) == 2: // the last character's low 2 bits must be zero
		a, b, c := value[s[0]], value[s[1]], value[s[2]]
		if a|b|c < 0 || c&0x03 != 0 {
			return false
		}
		v := uint32(a)<<10 | uint32(b)<<4 | uint32(c)>>2 //nolint:gosec // 6-bit digits
		dst[0], dst[1] = byte(v>>8), byte(v)             //nolint:gosec // one byte each
		return true
	}
	return false // one character left carries no whole byte (DecodedLen refused it)
}

// value is each byte's value in the base64url alphabet, -1 outside it.
var value = func() (t [256]int8) {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	for i := range t {
		t[i] = -1
	}
	for i := 0; i < len(alphabet); i++ {
		t[alphabet[i]] = int8(i)
	}
	return t
}()
