package mcp

import (
	"strings"
	"unicode/utf8"
)

// Components, for the percent-encoding rules.
const (
	compPath = iota
	compQuery
)

// appendPct appends s percent-normalised (see CanonicalURI).
func appendPct(out []byte, s string, comp int, glob bool) ([]byte, string) {
	for i := 0; i < len(s); {
		c := s[i]
		if c == '%' || c >= utf8.RuneSelf {
			b, next, ok := pctByte(s, i)
			if !ok {
				return out, `"%" not followed by two hex digits`
			}
			if b >= utf8.RuneSelf {
				var why string
				if out, i, why = appendUTF8(out, s, i); why != "" {
					return out, why
				}
				continue
			}
			switch {
			case b < ' ' || b == 0x7f:
				return out, "percent-encoded control character"
			case comp == compPath && b == '/':
				return out, "percent-encoded slash (%2F) in the path"
			case comp == compPath && b == '\\':
				return out, "percent-encoded backslash (%5C) in the path"
			case b == '%' && next+1 < len(s) && isHex(s[next]) && isHex(s[next+1]):
				return out, "percent-encoded percent-escape (%25 and two hex digits)"
			case glob && b == '*':
				return out, `"%2A": in a rule "*" is the glob, and a literal "*" cannot be written`
			case decoded(b, comp):
				out = append(out, b)
			default:
				out = appendEscape(out, b)
			}
			i = next
			continue
		}
		if kept(c, comp, glob) {
			out = append(out, c)
		} else {
			out = appendEscape(out, c)
		}
		i++
	}
	return out, ""
}

// pctByte returns the byte at s[i], decoding a percent-escape, and the
// index after it; ok is false for a malformed escape.
func pctByte(s string, i int) (b byte, next int, ok bool) {
	if s[i] != '%' {
		return s[i], i + 1, true
	}
	if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
		return 0, i, false
	}
	return unhex(s[i+1])<<4 | unhex(s[i+2]), i + 3, true
}

// appendUTF8 appends, as upper-case escapes, one UTF-8 sequence starting at
// s[i] whose bytes may each be literal or percent-encoded, and returns the
// index after it.
func appendUTF8(out []byte, s string, i int) ([]byte, int, string) {
	var seq [utf8.UTFMax]byte
	lead, next, _ := pctByte(s, i)
	n := 0
	switch {
	case lead >= 0xc2 && lead <= 0xdf:
		n = 2
	case lead >= 0xe0 && lead <= 0xef:
		n = 3
	case lead >= 0xf0 && lead <= 0xf4:
		n = 4
	default:
		return out, i, "percent-encoded bytes that are not UTF-8"
	}
	seq[0] = lead
	for k := 1; k < n; k++ {
		if next >= len(s) {
			return out, i, "percent-encoded bytes that are not UTF-8"
		}
		b, nx, ok := pctByte(s, next)
		if !ok {
			return out, i, `"%" not followed by two hex digits`
		}
		seq[k], next = b, nx
	}
	r, size := utf8.DecodeRune(seq[:n])
	if size != n {
		return out, i, "percent-encoded bytes that are not UTF-8"
	}
	if why := badRune(r, size); why != "" {
		return out, i, why
	}
	for _, b := range seq[:n] {
		out = appendEscape(out, b)
	}
	return out, next, ""
}

// decoded reports whether an escape of b is written as b: unreserved
// characters, sub-delims, ":" and "@" (RFC 3986 pchar), and "/" outside the
// path.
func decoded(b byte, comp int) bool {
	return isUnreserved(b) || isSubDelim(b) || b == ':' || b == '@' || (comp == compQuery && b == '/')
}

// kept reports whether a literal b stays literal: what decoded allows, and
// "?" outside the path (or anywhere in a glob).
func kept(c byte, comp int, glob bool) bool {
	return decoded(c, comp) || c == '/' || (c == '?' && (comp == compQuery || glob))
}

func appendEscape(out []byte, b byte) []byte {
	const hex = "0123456789ABCDEF"
	return append(out, '%', hex[b>>4], hex[b&0xf])
}

func isUnreserved(c byte) bool {
	return isAlpha(c) || isDigit(c) || c == '-' || c == '.' || c == '_' || c == '~'
}

func isSubDelim(c byte) bool {
	switch c {
	case '!', '$', '&', '\'', '(', ')', '*', '+', ',', ';', '=':
		return true
	}
	return false
}

func isAlpha(c byte) bool { return (c|0x20) >= 'a' && (c|0x20) <= 'z' }
func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isHex(c byte) bool   { return isDigit(c) || ((c|0x20) >= 'a' && (c|0x20) <= 'f') }

func unhex(c byte) byte {
	if isDigit(c) {
		return c - '0'
	}
	return (c | 0x20) - 'a' + 10
}

func lower(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + ('a' - 'A')
	}
	return c
}

func indexAny(s, chars string) int {
	if i := strings.IndexAny(s, chars); i >= 0 {
		return i
	}
	return len(s)
}
