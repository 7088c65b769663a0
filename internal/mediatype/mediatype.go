// Package mediatype compares the media types JOSE headers name in typ:
// the one reading of "at+jwt", "dpop+jwt" or "secevent+jwt" that access
// tokens, DPoP proofs and Security Event Tokens share.
package mediatype

// IsApplication reports whether typ names the media type application/<sub>
// (sub in lower case): compared without regard to ASCII case (RFC 6838
// §4.2), the "application/" prefix being optional (RFC 7515 §4.1.9).
// Parameters (";…"), whitespace and non-ASCII look-alikes (the Kelvin
// sign for "k") never match.
func IsApplication(typ, sub string) bool {
	const prefix = "application/"
	if len(typ) > len(prefix) && asciiEqualFold(typ[:len(prefix)], prefix) {
		typ = typ[len(prefix):]
	}
	return asciiEqualFold(typ, sub)
}

// asciiEqualFold is strings.EqualFold for ASCII letters only.
func asciiEqualFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}
