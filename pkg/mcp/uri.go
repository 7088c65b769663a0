package mcp

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// ErrBadURI means a resource URI cannot be brought to one canonical form
// without guessing how the server reads it. See [CanonicalURI].
var ErrBadURI = errors.New("mcp: resource URI cannot be normalised unambiguously")

// CanonicalURI returns the form of a resource URI that rules are matched
// against, or [ErrBadURI] (wrapped with the reason).
//
// Why: MCP servers do not look resources up by the bytes the client sent.
// The official TypeScript SDK resolves params.uri with the WHATWG URL parser
// (new URL(uri).toString()), and a file server then decodes the path, so
// FILE:///secrets/key, file://localhost/secrets/key and
// file:///public/../secrets/key all read file:///secrets/key. A rule on the
// raw string would miss all of them.
//
// The canonical form is built so that every reading a server can make of
// an accepted URI lands on it; where readings could differ, the URI is
// refused instead of being matched loosely. Since a matching rule can only
// add requirements, the canonical form may merge URIs a server keeps apart
// (repeated slashes, a fragment, the query of a file: URI): that makes more
// rules match, never fewer. In detail:
//
//   - Refused anywhere: ASCII controls, space and DEL (a WHATWG parser
//     silently strips tab, LF and CR and surrounding spaces), C1 controls,
//     U+FFFD, invalid UTF-8, and backslash (WHATWG reads it as "/" in http,
//     https, ws, wss, ftp and file URIs).
//   - Scheme: required (a URI without one is refused), lower-cased.
//   - Special schemes (http, https, ws, wss, ftp) must be followed by "//"
//     and a host: http:host and http:///host, which WHATWG repairs, are
//     refused. file: must be followed by "/": file:/x becomes file:///x,
//     file:x (a relative path to some readers) is refused.
//   - Authority: user information ("@") is refused. The host is lower-cased
//     and may hold only letters, digits, "-", "_" and "."; so a
//     percent-encoded host (file://%6cocalhost/) or a non-ASCII one (IDNA
//     mapping) is refused. One trailing dot is removed; empty labels are
//     refused. A host whose last label is numeric is an IPv4 address to
//     WHATWG, which also reads 2130706433, 0x7f.1 and 0177.0.0.1 as
//     127.0.0.1: it must be four dotted decimal numbers without leading
//     zeros. IPv6 addresses are written in their RFC 5952 form, without
//     embedded IPv4 (as WHATWG writes them); zones are refused. The port
//     is written without leading zeros, the scheme's default port (80, 443,
//     21) is dropped, an empty one is removed, a port above 65535 is
//     refused. file: URIs cannot have a port, and file://localhost/ is
//     file:///.
//   - Path: dot segments are removed as WHATWG removes them, with "%2e" for
//     "." (so /a/%2e%2E/b is /b), in any hierarchical path (one that starts
//     with "/"). A ".." that would remove an empty segment (/a//../b) is
//     refused: WHATWG reads /a/b, a path cleaner /b. Repeated slashes are
//     then merged. An opaque path (urn:x:y, custom:a/b) keeps its dots and
//     is refused if it has a dot segment, because its server alone knows
//     whether they mean anything. In file: URIs a Windows drive letter is
//     accepted only as the first segment, written "C:" (WHATWG reads "C|"
//     as "C:", a path cleaner does not; "C%3A" is no drive letter to WHATWG
//     but is to a server that decodes first), and a ".." that WHATWG would
//     stop at the drive letter is refused; other spellings are refused.
//   - Percent-encoding: escapes of unreserved characters, sub-delims, ":"
//     and "@" are decoded (%73ecrets is secrets), other escapes are written
//     in upper case, and every other character is encoded, non-ASCII as
//     UTF-8 (as WHATWG does). Refused: a "%" without two hex digits, an
//     escape of a control character (%00, %0A, %7F, %C2%85), of U+FFFD or
//     of invalid UTF-8; in the path an escaped "/" or "\" (%2F, %5C),
//     which servers that decode the path read as a separator; and an
//     escaped escape (%252e), which a server that decodes twice reads as a
//     dot.
//   - Query: kept for every scheme but file:, whose readers ignore it; an
//     empty query ("?" alone) is dropped. The fragment is always dropped: it
//     never reaches a server's resolver as anything but noise.
//
// Case is kept in paths and queries: WHATWG servers distinguish
// file:///Secrets from file:///secrets, and so do rules. A server that maps
// URIs onto a case-insensitive file system must itself refuse what its
// rules cannot see.
//
// An input that is already canonical is returned as it is, without
// allocating (for URIs under a few hundred bytes).
func CanonicalURI(s string) (string, error) {
	c, why := canonURI(s, false)
	if why != "" {
		return "", detail(ErrBadURI, why)
	}
	return c, nil
}

// canonURI is CanonicalURI, returning the reason for a refusal. In glob mode
// (rule patterns) '*' and '?' are ordinary characters allowed in the host
// and the path, '?' never starts a query, and "%2A" is refused (it would
// decode to a glob).
func canonURI(s string, glob bool) (string, string) {
	if s == "" {
		return "", "empty"
	}
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c <= ' ' || c == 0x7f:
				return "", "control character or space"
			case c == '\\':
				return "", `backslash (read as "/" by WHATWG parsers)`
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if why := badRune(r, n); why != "" {
			return "", why
		}
		i += n
	}

	colon := schemeEnd(s)
	if colon < 0 {
		return "", "no scheme"
	}
	var buf [256]byte
	out := buf[:0]
	for i := 0; i < colon; i++ {
		out = append(out, lower(s[i]))
	}
	out = append(out, ':')
	sc := schemeOf(out[:colon])
	rest := s[colon+1:]

	hasAuth := strings.HasPrefix(rest, "//")
	switch {
	case sc.special && !sc.file && !hasAuth:
		return "", "a " + string(out[:colon]) + ` URI needs "//" and a host`
	case sc.file && !strings.HasPrefix(rest, "/"):
		return "", `a file URI needs a path starting with "/"`
	}
	authDelims, pathDelims := "/?#", "?#"
	if glob {
		authDelims, pathDelims = "/#", "#"
	}
	if hasAuth {
		a := rest[2:]
		end := indexAny(a, authDelims)
		if sc.special && !sc.file && end == 0 {
			return "", "empty host"
		}
		out = append(out, '/', '/')
		var why string
		if out, why = appendAuthority(out, a[:end], sc, glob); why != "" {
			return "", why
		}
		rest = a[end:]
	} else if sc.file {
		out = append(out, '/', '/')
	}

	end := indexAny(rest, pathDelims)
	path := rest[:end]
	rest = rest[end:]
	var why string
	switch {
	case path == "":
		if sc.special {
			out = append(out, '/')
		}
	case path[0] == '/':
		out, why = appendHierPath(out, path[1:], sc.file, glob)
	default:
		out, why = appendOpaquePath(out, path, glob)
	}
	if why != "" {
		return "", why
	}

	if !glob && strings.HasPrefix(rest, "?") {
		end := strings.IndexByte(rest, '#')
		if end < 0 {
			end = len(rest)
		}
		q := rest[1:end]
		rest = rest[end:]
		mark := len(out)
		out = append(out, '?')
		if out, why = appendPct(out, q, compQuery, glob); why != "" {
			return "", why
		}
		if sc.file || q == "" {
			out = out[:mark]
		}
	}
	if strings.HasPrefix(rest, "#") {
		mark := len(out)
		if out, why = appendPct(out, rest[1:], compQuery, glob); why != "" {
			return "", why
		}
		out = out[:mark]
	}

	// An escaped "%" is refused when two hex digits follow it (a double
	// encoding); appendPct sees the digits as sent, but one may have been
	// an escape it decoded ("%25%333" → "%2533"), so the output is checked
	// too: it must itself be canonical.
	if escapedEscape(out) {
		return "", "percent-encoded percent-escape (%25 and two hex digits)"
	}
	if string(out) == s {
		return s, ""
	}
	return string(out), ""
}

// escapedEscape reports whether b holds "%25" followed by two hex digits.
func escapedEscape(b []byte) bool {
	for i := 0; i+4 < len(b); i++ {
		if b[i] == '%' && b[i+1] == '2' && b[i+2] == '5' && isHex(b[i+3]) && isHex(b[i+4]) {
			return true
		}
	}
	return false
}

// badRune is why a non-ASCII rune (r, n as utf8.DecodeRune returns them)
// is refused, or "".
func badRune(r rune, n int) string {
	switch {
	case r == utf8.RuneError && n <= 1:
		return "invalid UTF-8"
	case r == utf8.RuneError:
		return "U+FFFD (a lossy decoder's replacement character)"
	case r >= 0x80 && r <= 0x9f:
		return "C1 control character"
	}
	return ""
}

// schemeEnd returns the index of the colon that ends s's scheme
// (ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ), RFC 3986 §3.1), or -1.
func schemeEnd(s string) int {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case isAlpha(c):
		case i > 0 && (isDigit(c) || c == '+' || c == '-' || c == '.'):
		case i > 0 && c == ':':
			return i
		default:
			return -1
		}
	}
	return -1
}

// scheme is what the canonical form needs to know of a scheme.
type scheme struct {
	special, file bool
	defaultPort   string
}

// schemeOf classifies a lower-case scheme. The special schemes are WHATWG's:
// their URIs are parsed with hosts, ports and "\" as "/".
func schemeOf(b []byte) scheme {
	switch string(b) {
	case "http", "ws":
		return scheme{special: true, defaultPort: "80"}
	case "https", "wss":
		return scheme{special: true, defaultPort: "443"}
	case "ftp":
		return scheme{special: true, defaultPort: "21"}
	case "file":
		return scheme{special: true, file: true}
	}
	return scheme{}
}

// appendHierPath appends a path that started with "/" (p is what follows
// that slash): dot segments removed as WHATWG removes them, then repeated
// slashes merged, each segment percent-normalised.
func appendHierPath(out []byte, p string, file, glob bool) ([]byte, string) {
	var segBuf [32]string
	segs := segBuf[:0]
	drive := false // segs[0] is a Windows drive letter
	for {
		seg, rest, more := strings.Cut(p, "/")
		p = rest
		switch {
		case isDoubleDot(seg):
			if n := len(segs); n > 0 {
				switch {
				case drive && n == 1:
					return out, `".." above a Windows drive letter`
				case segs[n-1] == "":
					return out, `".." after an empty segment ("//"), which servers resolve differently`
				}
				segs = segs[:n-1]
			}
			if !more {
				segs = append(segs, "")
			}
		case isSingleDot(seg):
			if !more {
				segs = append(segs, "")
			}
		default:
			if file && driveShaped(seg) {
				if len(segs) > 0 || seg[1:] != ":" {
					return out, `a Windows drive letter that is not first in the path, or not written "C:"`
				}
				drive = true
			}
			segs = append(segs, seg)
		}
		if !more {
			break
		}
	}
	var why string
	for i, seg := range segs {
		if seg == "" && i != len(segs)-1 {
			continue // "//" is "/": merging only makes more rules match
		}
		out = append(out, '/')
		if out, why = appendPct(out, seg, compPath, glob); why != "" {
			return out, why
		}
	}
	return out, ""
}

// appendOpaquePath appends a path that does not start with "/" (urn:x,
// custom:a/b): dots are kept as they are, so a dot segment is refused.
func appendOpaquePath(out []byte, p string, glob bool) ([]byte, string) {
	first := true
	for {
		seg, rest, more := strings.Cut(p, "/")
		p = rest
		if isSingleDot(seg) || isDoubleDot(seg) {
			return out, "a dot segment in an opaque path (one that does not start with \"/\")"
		}
		if seg != "" || !more {
			if !first {
				out = append(out, '/')
			}
			var why string
			if out, why = appendPct(out, seg, compPath, glob); why != "" {
				return out, why
			}
			first = false
		}
		if !more {
			return out, ""
		}
	}
}

func isSingleDot(s string) bool { return s == "." || strings.EqualFold(s, "%2e") }

func isDoubleDot(s string) bool {
	switch len(s) {
	case 2:
		return s == ".."
	case 4:
		return strings.EqualFold(s, ".%2e") || strings.EqualFold(s, "%2e.")
	case 6:
		return strings.EqualFold(s, "%2e%2e")
	}
	return false
}

// driveShaped reports whether seg decodes to a letter and ":" or "|".
func driveShaped(seg string) bool {
	var d [2]byte
	n := 0
	for i := 0; i < len(seg); n++ {
		if n == 2 {
			return false
		}
		if seg[i] == '%' && i+2 < len(seg) && isHex(seg[i+1]) && isHex(seg[i+2]) {
			d[n] = unhex(seg[i+1])<<4 | unhex(seg[i+2])
			i += 3
		} else {
			d[n] = seg[i]
			i++
		}
	}
	return n == 2 && isAlpha(d[0]) && (d[1] == ':' || d[1] == '|')
}

// uriMethods are the methods whose name is a resource URI.
var uriMethods = [...]string{"resources/read", "resources/subscribe", "resources/unsubscribe"}

// CheckRuleName checks a rule's name glob against the names it is matched
// with. Rules match canonical URIs ([CanonicalURI]), so a name glob that can
// meet a resource URI (its method glob matches resources/read,
// resources/subscribe or resources/unsubscribe) must be written the way
// canonical URIs are, or it would silently match nothing:
//
//   - A glob that starts with a scheme ("file:", "https:") is canonicalised
//     with '*' and '?' taken as ordinary characters ('?' never starts a
//     query: it is the one-character glob), and must come out unchanged;
//     otherwise the error says why and, when there is one, canonical is
//     the spelling to write instead.
//   - Any other glob (one starting with '*' or '?', or a plain name) is a
//     tool or prompt name glob when the method glob also matches tools/call
//     or prompts/get, and is not checked. Otherwise it must contain a glob
//     character (a URI always has a scheme) and only characters a
//     canonical URI can hold.
//
// "*" (and "**"...) matches everything and is always fine.
func CheckRuleName(methodGlob, nameGlob string) (canonical string, err error) {
	uri := false
	for _, m := range uriMethods {
		uri = uri || Match(methodGlob, m)
	}
	if !uri || strings.Trim(nameGlob, "*") == "" {
		return "", nil
	}
	if schemeEnd(nameGlob) > 0 {
		c, why := canonURI(nameGlob, true)
		switch {
		case why != "":
			return "", fmt.Errorf("is not a valid resource URI pattern: %s", why)
		case c != nameGlob:
			return c, errors.New("is not in canonical form, which resource URIs are matched in")
		}
		return "", nil
	}
	if Match(methodGlob, "tools/call") || Match(methodGlob, "prompts/get") {
		return "", nil
	}
	if !strings.ContainsAny(nameGlob, "*?") {
		return "", errors.New("has no scheme and no glob, so it matches no resource URI")
	}
	for i := 0; i < len(nameGlob); i++ {
		c := nameGlob[i]
		if c == '%' {
			b, next, ok := pctByte(nameGlob, i)
			if !ok || strings.ToUpper(nameGlob[i:next]) != nameGlob[i:next] || b < ' ' || b == 0x7f || b == '/' || b == '%' || decoded(b, compPath) {
				return "", fmt.Errorf("holds %q, which canonical resource URIs never do", nameGlob[i:min(i+3, len(nameGlob))])
			}
			i = next - 1
			continue
		}
		if !kept(c, compQuery, true) && c != '*' {
			return "", fmt.Errorf("holds %q, which canonical resource URIs never do", nameGlob[i:i+1])
		}
	}
	return "", nil
}
