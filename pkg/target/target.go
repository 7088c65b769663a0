// Package target reads the two parts of an HTTP request target that decide
// which protected resource a request is for — the host and the path — in one
// canonical form, and lists the other readings that a proxy or an upstream
// server could make of the same bytes.
//
// The gateway decides on its reading of a request; the proxy routes on its
// own and the MCP server acts on a third. Where they can differ (letter case,
// percent-encoding, dot segments, an encoded "/", a backslash, ";"
// parameters, a trailing dot on the host), the gateway computes one canonical
// form for its decision and refuses a request that another plausible reading
// would route differently. This package computes the forms; the router
// (package authz) compares the routes.
//
// It is not a URL parser for anything else: query strings are not touched,
// and MCP resource URIs have their own canonical form (package mcp).
package target

import (
	"errors"
	"net/netip"
	"path"
	"strings"
)

// Errors, wrapped with a detail; the detail never quotes the request.
var (
	// ErrHost: the host (authority) is not a valid host name or address.
	ErrHost = errors.New("invalid host")
	// ErrPath: the path is not a valid origin-form path (RFC 9112 §3.2.1).
	ErrPath = errors.New("invalid path")
)

// Host returns an authority's host in canonical form: lower case, without
// its port, without one trailing dot ("mcp.example.com." names the same host
// as "mcp.example.com" in DNS and to most servers, RFC 1034 §3.1), IPv6
// literals without their brackets, in RFC 5952 form. An empty authority
// gives "".
//
// Anything that a server could read as another name is refused: bytes
// outside letters, digits, "-", ".", "_" (and ":" inside brackets),
// non-ASCII (an internationalised name must arrive in its A-label form,
// "xn--…", RFC 5890), percent-escapes, user information, a port that is not
// digits, empty labels.
func Host(authority string) (string, error) {
	h := authority
	if h == "" {
		return "", nil
	}
	if h[0] == '[' {
		end := strings.IndexByte(h, ']')
		if end < 0 {
			return "", errors.Join(ErrHost, errors.New("unterminated IPv6 literal"))
		}
		lit, rest := h[1:end], h[end+1:]
		if !validPort(rest) {
			return "", errors.Join(ErrHost, errors.New("malformed IPv6 authority"))
		}
		// RFC 3986 §3.2.2: an IPv6 address (no zone); its canonical text
		// is RFC 5952's, which netip writes.
		a, err := netip.ParseAddr(lit)
		if err != nil || !a.Is6() || a.Zone() != "" {
			return "", errors.Join(ErrHost, errors.New("invalid IPv6 literal"))
		}
		return a.String(), nil
	}
	if i := strings.IndexByte(h, ':'); i >= 0 {
		if !validPort(h[i:]) {
			return "", errors.Join(ErrHost, errors.New("invalid port"))
		}
		h = h[:i]
	}
	h = strings.TrimSuffix(h, ".")
	if h == "" {
		return "", errors.Join(ErrHost, errors.New("empty host"))
	}
	prevDot := true // a leading dot is an empty label
	for i := 0; i < len(h); i++ {
		c := h[i]
		switch {
		case c == '.':
			if prevDot {
				return "", errors.Join(ErrHost, errors.New("empty label"))
			}
			prevDot = true
			continue
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_':
		default:
			return "", errors.Join(ErrHost, errors.New("invalid character in host"))
		}
		prevDot = false
	}
	if prevDot {
		return "", errors.Join(ErrHost, errors.New("empty label"))
	}
	return lowerASCII(h), nil
}

// validPort accepts "" or ":" followed by 1 to 5 digits.
func validPort(s string) bool {
	if s == "" {
		return true
	}
	if s[0] != ':' || len(s) < 2 || len(s) > 6 {
		return false
	}
	for i := 1; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// Path returns a path in the canonical form the gateway routes and decides
// on (RFC 3986 §6.2.2):
//
//   - percent-escapes of unreserved characters (ALPHA DIGIT "-" "." "_" "~")
//     are decoded ("/%6Dcp" is "/mcp"); every other escape is kept, with
//     upper-case hex digits;
//   - dot segments are removed (§5.2.4), after that decoding, so "%2e%2e" is
//     a ".." segment as WHATWG-URL servers read it;
//   - repeated slashes are merged; a trailing slash is kept.
//
// It is refused (ErrPath) when it does not start with "/", holds a byte
// that cannot appear in a request target (control characters, space, "#",
// non-ASCII), a malformed escape, or an escaped control character ("%00",
// "%0A"…), which servers in C truncate or split at. Letter case is kept:
// paths are case-sensitive (§6.2.2.1); the router compares case-folded
// readings separately. A path that is already canonical is returned as it
// is, without allocating.
func Path(raw string) (string, error) {
	if raw == "" || raw[0] != '/' {
		return "", errors.Join(ErrPath, errors.New("not an absolute path"))
	}
	clean := true
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch {
		case c <= ' ' || c >= 0x7f || c == '#':
			return "", errors.Join(ErrPath, errors.New("invalid character in path"))
		case c == '%':
			clean = false
			if i+2 >= len(raw) || !isHex(raw[i+1]) || !isHex(raw[i+2]) {
				return "", errors.Join(ErrPath, errors.New("malformed percent-escape"))
			}
			if b := unhex(raw[i+1])<<4 | unhex(raw[i+2]); b < 0x20 || b == 0x7f {
				return "", errors.Join(ErrPath, errors.New("escaped control character"))
			}
		case c == '/' && i+1 < len(raw) && (raw[i+1] == '/' || raw[i+1] == '.'):
			clean = false
		}
	}
	if clean {
		return raw, nil
	}
	return removeDots(normalizeEscapes(raw)), nil
}

// normalizeEscapes decodes escaped unreserved characters and upper-cases
// the hex digits of the others. Escapes are known to be well formed.
func normalizeEscapes(p string) string {
	if strings.IndexByte(p, '%') < 0 {
		return p
	}
	var b strings.Builder
	b.Grow(len(p))
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c != '%' {
			b.WriteByte(c)
			continue
		}
		d := unhex(p[i+1])<<4 | unhex(p[i+2])
		if isUnreserved(d) {
			b.WriteByte(d)
		} else {
			b.WriteByte('%')
			b.WriteByte(upperHex[d>>4])
			b.WriteByte(upperHex[d&15])
		}
		i += 2
	}
	return b.String()
}

// removeDots removes dot segments and merges repeated slashes, keeping a
// trailing slash: "/public/../mcp" is "/mcp", "//mcp//x/" is "/mcp/x/".
func removeDots(p string) string {
	if !strings.Contains(p, "//") && !strings.Contains(p, "/.") {
		return p
	}
	c := path.Clean(p)
	if c != "/" && (strings.HasSuffix(p, "/") || strings.HasSuffix(p, "/.") || strings.HasSuffix(p, "/..")) {
		c += "/"
	}
	return c
}

// Readings returns the other forms a server could route raw to, each in
// the form Path would give it once its own transformation is applied. They
// are what servers in the wild do to a path before routing it:
//
//   - percent-decode nothing ("/%6Dcp" is not "/mcp" to a server that
//     compares escaped paths, nor "/%2e%2e/mcp" a dot segment);
//   - percent-decode everything, once or twice ("/x/..%2Fmcp" is "/mcp" to
//     a server that decodes %2F before resolving dot segments, and
//     "%252F" to one that decodes twice);
//   - read "\" as "/" (WHATWG URL parsers, Windows servers);
//   - drop ";" parameters from each segment ("/mcp;x" is "/mcp" to Java
//     servlet containers and Spring).
//
// Every combination is listed, deduplicated, without raw's canonical form
// itself. Letter case is not varied here: the router folds case when it
// compares. The result is nil when raw holds nothing any of them would
// change ('%', '\\', ';'): the common case costs one scan.
func Readings(raw string) []string {
	if !strings.ContainsAny(raw, "%\\;") {
		return nil
	}
	canon, _ := Path(raw)
	seen := map[string]bool{canon: true}
	var out []string
	for decode := -1; decode <= 2; decode++ {
		for _, backslash := range []bool{false, true} {
			for _, params := range []bool{false, true} {
				r := raw
				for range decode {
					r = decodeAll(r)
				}
				if backslash {
					r = strings.ReplaceAll(r, `\`, "/")
				}
				if params {
					r = dropParams(r)
				}
				if decode >= 0 {
					r = normalizeEscapes(validEscapes(r))
				}
				r = removeDots(r)
				if !seen[r] {
					seen[r] = true
					out = append(out, r)
				}
			}
		}
	}
	return out
}

// decodeAll percent-decodes every well-formed escape; a malformed one is
// left as it is (a server may do either; the router refuses malformed
// escapes in the canonical reading anyway).
func decodeAll(p string) string {
	if strings.IndexByte(p, '%') < 0 {
		return p
	}
	var b strings.Builder
	b.Grow(len(p))
	for i := 0; i < len(p); i++ {
		if c := p[i]; c == '%' && i+2 < len(p) && isHex(p[i+1]) && isHex(p[i+2]) {
			b.WriteByte(unhex(p[i+1])<<4 | unhex(p[i+2]))
			i += 2
			continue
		}
		b.WriteByte(p[i])
	}
	return b.String()
}

// validEscapes replaces "%" that does not start a well-formed escape with
// "%25", so that normalizeEscapes can read every escape.
func validEscapes(p string) string {
	if strings.IndexByte(p, '%') < 0 {
		return p
	}
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		if p[i] == '%' && !(i+2 < len(p) && isHex(p[i+1]) && isHex(p[i+2])) {
			b.WriteString("%25")
			continue
		}
		b.WriteByte(p[i])
	}
	return b.String()
}

// dropParams removes ";" parameters from every segment: "/a;x/b;y=1" is
// "/a/b".
func dropParams(p string) string {
	if strings.IndexByte(p, ';') < 0 {
		return p
	}
	var b strings.Builder
	skipping := false
	for i := 0; i < len(p); i++ {
		switch c := p[i]; {
		case c == '/':
			skipping = false
			b.WriteByte(c)
		case c == ';':
			skipping = true
		case !skipping:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// HasPrefix reports whether path is prefix or lies below it, on whole
// segments: "/mcp" has "/mcp" and "/mcp/x", not "/mcpx". An empty prefix
// (configured "/") has every path. fold compares ASCII letters
// case-insensitively.
func HasPrefix(path, prefix string, fold bool) bool {
	if len(path) < len(prefix) {
		return false
	}
	head := path[:len(prefix)]
	if fold {
		if !strings.EqualFold(head, prefix) {
			return false
		}
	} else if head != prefix {
		return false
	}
	return len(path) == len(prefix) || prefix == "" || path[len(prefix)] == '/'
}

// Canonical reports whether a configured path prefix is in canonical form
// (Path returns it unchanged and it holds no "\" or ";" that a server could
// read differently); otherwise it returns the form to write instead, or ""
// when the prefix is not a valid path at all.
func Canonical(prefix string) (string, bool) {
	c, err := Path(prefix)
	if err != nil {
		return "", false
	}
	if strings.ContainsAny(c, `\;`) {
		return "", false
	}
	return c, c == prefix
}

func isUnreserved(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~'
}

func isHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

const upperHex = "0123456789ABCDEF"

// lowerASCII lower-cases ASCII letters, without allocating when there are
// none to change.
func lowerASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' {
			return strings.ToLower(s)
		}
	}
	return s
}
