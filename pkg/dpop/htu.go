package dpop

import (
	"errors"
	"strings"
)

// normalizeURI returns an absolute http or https URI without its query
// and fragment, in the normal form RFC 9449 §4.3 asks htu to be compared
// in: syntax-based (RFC 3986 §6.2.2) and scheme-based (§6.2.3)
// normalisation, nothing more.
//
//   - Scheme and host are lower-cased (§6.2.2.1).
//   - Percent-encodings are written with upper-case hex digits (§6.2.2.1),
//     and those of unreserved characters (ALPHA DIGIT - . _ ~) are decoded
//     (§6.2.2.2). An encoded reserved character (%2F, %3F…) stays encoded:
//     it means something else than the character itself.
//   - An empty path is "/", an empty port is dropped, and so is the
//     scheme's default port: 80 for http, 443 for https (§6.2.3). A port
//     is written in decimal without leading zeros.
//   - Query and fragment are dropped (RFC 9449 §4.3 step 9).
//
// Refused, because no comparison of such a URI can be trusted: another
// scheme; user information; a percent-encoded or empty host, an IPv6 zone
// or IPvFuture literal; a port above 65535; a path that does not start
// with "/"; any character a URI cannot hold (space, controls, non-ASCII,
// '"', '<', '\'…); and a dot segment ("." or "..", in any spelling,
// %2e included). Dot-segment removal (§6.2.2.3) is deliberately not
// done: "/a/../b" reaches "/b" only if every proxy on the way removes it
// the same way, so a proof naming such a path is refused outright.
//
// An input already in normal form is returned without allocating
// (for URIs under 256 bytes).
func normalizeURI(s string) (string, error) {
	if i := strings.IndexAny(s, "?#"); i >= 0 {
		s = s[:i]
	}
	var buf [256]byte
	out := buf[:0]

	colon := strings.IndexByte(s, ':')
	if colon <= 0 {
		return "", errors.New("no scheme")
	}
	for i := 0; i < colon; i++ {
		out = append(out, lower(s[i]))
	}
	var defaultPort string
	switch string(out) {
	case "http":
		defaultPort = "80"
	case "https":
		defaultPort = "443"
	default:
		return "", errors.New("scheme is not http or https")
	}
	rest := s[colon+1:]
	if !strings.HasPrefix(rest, "//") {
		return "", errors.New("no authority")
	}
	out = append(out, "://"...)
	rest = rest[2:]
	end := strings.IndexByte(rest, '/')
	if end < 0 {
		end = len(rest)
	}
	var err error
	if out, err = appendAuthority(out, rest[:end], defaultPort); err != nil {
		return "", err
	}
	if out, err = appendPath(out, rest[end:]); err != nil {
		return "", err
	}
	if string(out) == s {
		return s, nil
	}
	return string(out), nil
}

// appendAuthority appends host[:port], normalised.
func appendAuthority(out []byte, a, defaultPort string) ([]byte, error) {
	if strings.IndexByte(a, '@') >= 0 {
		return nil, errors.New("user information in the authority")
	}
	host, port := a, ""
	if strings.HasPrefix(a, "[") {
		end := strings.IndexByte(a, ']')
		if end < 0 {
			return nil, errors.New("unterminated IP literal")
		}
		host, port = a[:end+1], a[end+1:]
		if port != "" && port[0] != ':' {
			return nil, errors.New("junk after the IP literal")
		}
		lit := host[1 : len(host)-1]
		if lit == "" {
			return nil, errors.New("empty IP literal")
		}
		for i := 0; i < len(lit); i++ {
			// IPv6address (RFC 3986 §3.2.2): hex digits, ':' and the dots
			// of an embedded IPv4. A zone ("%25…") or IPvFuture ("v1.…")
			// is refused.
			if c := lit[i]; c != ':' && c != '.' {
				if _, ok := hexValue(c); !ok {
					return nil, errors.New("not an IPv6 address in the IP literal")
				}
			}
		}
	} else if i := strings.LastIndexByte(a, ':'); i >= 0 {
		host, port = a[:i], a[i:]
	}
	if host == "" {
		return nil, errors.New("empty host")
	}
	for i := 0; i < len(host); i++ {
		c := host[i]
		switch {
		case c == '[' || c == ']' || c == ':':
			if host[0] != '[' {
				return nil, errors.New("invalid character in host")
			}
		case c == '%':
			return nil, errors.New("percent-encoded host")
		case !isUnreserved(c) && !isSubDelim(c):
			return nil, errors.New("invalid character in host")
		}
		out = append(out, lower(c))
	}
	if port == "" || port == ":" {
		return out, nil
	}
	digits := strings.TrimLeft(port[1:], "0")
	for i := 0; i < len(port)-1; i++ {
		if c := port[1+i]; c < '0' || c > '9' {
			return nil, errors.New("port is not a number")
		}
	}
	if digits == "" {
		digits = "0"
	}
	if len(digits) > 5 || (len(digits) == 5 && digits > "65535") {
		return nil, errors.New("port above 65535")
	}
	if digits == defaultPort {
		return out, nil
	}
	out = append(out, ':')
	return append(out, digits...), nil
}

// appendPath appends the path, normalised; an empty one is "/".
func appendPath(out []byte, p string) ([]byte, error) {
	if p == "" {
		return append(out, '/'), nil
	}
	// p starts with '/': the authority ended there.
	seg := len(out) // start of the current segment in out, after its '/'
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '/':
			if dotSegment(out[seg:]) {
				return nil, errors.New(`dot segment ("." or "..") in the path`)
			}
			out = append(out, '/')
			seg = len(out)
		case c == '%':
			if i+2 >= len(p) {
				return nil, errors.New(`"%" without two hex digits`)
			}
			hi, ok1 := hexValue(p[i+1])
			lo, ok2 := hexValue(p[i+2])
			if !ok1 || !ok2 {
				return nil, errors.New(`"%" without two hex digits`)
			}
			if d := hi<<4 | lo; isUnreserved(d) {
				out = append(out, d)
			} else {
				out = append(out, '%', upperHex[hi], upperHex[lo])
			}
			i += 2
		case isUnreserved(c) || isSubDelim(c) || c == ':' || c == '@':
			out = append(out, c)
		default:
			return nil, errors.New("character not allowed in a URI path")
		}
	}
	if dotSegment(out[seg:]) {
		return nil, errors.New(`dot segment ("." or "..") in the path`)
	}
	return out, nil
}

func dotSegment(seg []byte) bool {
	return string(seg) == "." || string(seg) == ".."
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

func isUnreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~'
}

func isSubDelim(c byte) bool {
	return strings.IndexByte("!$&'()*+,;=", c) >= 0
}

const upperHex = "0123456789ABCDEF"

// hexValue is the value of one hexadecimal digit, either case.
func hexValue(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
