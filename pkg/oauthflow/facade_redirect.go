package oauthflow

import (
	"errors"
	"net/url"
	"strconv"
	"strings"
)

// MaxRedirectURILen is the longest redirect URI a facade client may register.
const MaxRedirectURILen = 1024

// checkRedirectURI decides whether a client may register s as a redirect URI, and says why
// not. The rules, for public clients that are native apps or web apps (RFC 8252, RFC 9700
// §2.1, OAuth 2.1 §2.3.1):
//
//   - at most MaxRedirectURILen bytes of visible ASCII, none of which a parser could read in
//     two ways: no space, no backslash, no quote, angle bracket, brace, pipe, caret or backtick;
//   - an absolute URL in its plain form (parsing and writing it back gives the same string),
//     whose scheme is https, or http on a loopback host: exactly "127.0.0.1", "[::1]" or
//     "localhost", with any port or none (RFC 8252 §7.3, §8.3);
//   - a host, and no user information;
//   - no fragment (RFC 6749 §3.1.2), and no "#" anywhere;
//   - no "*" anywhere: the URI is compared as a whole string, never as a pattern;
//   - a port, when present, of digits 1–65535.
//
// Private-use schemes (RFC 8252 §7.1, "com.example.app:/cb") are refused: the facade
// registers only URIs whose host it can show the user on the consent page.
func checkRedirectURI(s string) error {
	switch {
	case s == "":
		return errors.New("an empty redirect URI")
	case len(s) > MaxRedirectURILen:
		return errors.New("a redirect URI longer than " + strconv.Itoa(MaxRedirectURILen) + " bytes")
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= 0x20 || c >= 0x7f || strings.IndexByte("\\\"<>{}|^`", c) >= 0 {
			return errors.New("a redirect URI with a character that is not plain visible ASCII")
		}
	}
	if strings.ContainsRune(s, '#') {
		return errors.New("a redirect URI with a fragment")
	}
	if strings.ContainsRune(s, '*') {
		return errors.New("a redirect URI with a wildcard")
	}
	u, err := url.Parse(s)
	if err != nil || u.Opaque != "" || !u.IsAbs() {
		return errors.New("a redirect URI that is not an absolute URL")
	}
	if u.String() != s {
		return errors.New("a redirect URI not in its plain form")
	}
	if u.User != nil || strings.ContainsRune(u.Host, '@') {
		return errors.New("a redirect URI with user information")
	}
	if u.Host == "" || u.Hostname() == "" {
		return errors.New("a redirect URI without a host")
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 || p[0] == '0' {
			return errors.New("a redirect URI with an invalid port")
		}
	} else if strings.HasSuffix(u.Host, ":") {
		return errors.New("a redirect URI with an empty port")
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if loopbackRedirectHost(u.Hostname()) {
			return nil
		}
		return errors.New("a plain http redirect URI on a host other than 127.0.0.1, [::1] or localhost")
	}
	return errors.New("a redirect URI whose scheme is neither https nor http on loopback")
}

// loopbackRedirectHost reports whether host (u.Hostname(): brackets removed) is one of the
// loopback names RFC 8252 lets a native app listen on, spelled exactly so.
func loopbackRedirectHost(host string) bool {
	return host == "127.0.0.1" || host == "::1" || host == "localhost"
}

// redirectURIMatches reports whether requested, sent on an authorization or token request,
// names registered: the same string, or, for a loopback IP literal over plain http, the same
// URI but for the port, which RFC 8252 §7.3 lets a native app choose at the time of the
// request. "localhost" gets no such allowance (RFC 8252 §8.3 advises against it; a client
// using it registered the port it listens on).
func redirectURIMatches(registered, requested string) bool {
	if registered == requested {
		return true
	}
	if !strings.HasPrefix(registered, "http://") || !strings.HasPrefix(requested, "http://") ||
		checkRedirectURI(requested) != nil {
		return false
	}
	r, err1 := url.Parse(registered)
	q, err2 := url.Parse(requested)
	if err1 != nil || err2 != nil {
		return false
	}
	h := r.Hostname()
	if h != q.Hostname() || (h != "127.0.0.1" && h != "::1") {
		return false
	}
	return r.EscapedPath() == q.EscapedPath() && r.RawQuery == q.RawQuery && r.ForceQuery == q.ForceQuery
}
