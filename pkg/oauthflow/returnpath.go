package oauthflow

import (
	"net/url"
	"strings"
)

// maxReturnPath bounds rd: a return path longer than this is refused. rd travels sealed in the
// login-state cookie, which must stay well under the 4096 bytes browsers keep for a cookie.
const maxReturnPath = 1024

// maxUnescapeRounds is how many layers of percent-encoding validReturnPath looks through.
const maxUnescapeRounds = 3

// validReturnPath reports whether rd is a same-origin relative path that is safe to put in a
// Location header (see the package documentation, "Return paths").
func validReturnPath(rd string) bool {
	if rd == "" || len(rd) > maxReturnPath || rd[0] != '/' {
		return false
	}
	if len(rd) > 1 && (rd[1] == '/' || rd[1] == '\\') {
		return false // "//host" and "/\host" are network-path references to browsers
	}
	for i := 0; i < len(rd); i++ {
		// Only visible ASCII, and no backslash: browsers drop tabs and newlines from URLs and
		// read a backslash as a slash, which could turn "/\t/evil" or "/x\..\\evil" into
		// something else than what was checked. No double quote either: no URI has one
		// (RFC 3986 §2; browsers send %22), and JSON would double it in the sealed state.
		if c := rd[i]; c <= 0x20 || c >= 0x7f || c == '\\' || c == '"' {
			return false
		}
	}
	u, err := url.Parse(rd)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" {
		return false
	}
	// A proxy or browser that decodes the path must not find a network-path reference, a
	// backslash or a control character in it either.
	s := rd
	for range maxUnescapeRounds {
		d, err := url.PathUnescape(s)
		if err != nil {
			return false
		}
		if d == s {
			break
		}
		if strings.HasPrefix(d, "//") || strings.HasPrefix(d, "/\\") || hasUnsafe(d) {
			return false
		}
		s = d
	}
	return true
}

// hasUnsafe reports whether s has a backslash or an ASCII control character.
func hasUnsafe(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f || c == '\\' {
			return true
		}
	}
	return false
}

// routePath is rd's path: without query and fragment.
func routePath(rd string) string {
	if i := strings.IndexAny(rd, "?#"); i >= 0 {
		return rd[:i]
	}
	return rd
}
