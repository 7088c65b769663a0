package authz

import (
	"errors"
	"net/url"
	"strings"
)

var (
	// errNotBearer: an Authorization header with another scheme. For a
	// Bearer-protected resource that is the same as no credential.
	errNotBearer = errors.New("authorization scheme is not Bearer")
	// errMalformedCredential: a Bearer header that breaks the RFC 6750 §2.1
	// grammar — including two headers joined with a comma.
	errMalformedCredential = errors.New("malformed Bearer credential")
)

// bearerCandidate extracts the token from an Authorization header value:
//
//	credentials = "Bearer" 1*SP b64token      (RFC 6750 §2.1)
//	b64token    = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
//
// The scheme is case-insensitive (RFC 9110 §11.1). Anything else after the
// token — a second credential joined with ",", a parameter, trailing space —
// is malformed: a gateway that guesses which of two credentials counts can
// be made to check one and forward the other. It returns the text after the
// scheme without the b64token check (isB64Token), which the decision runs
// only on a cache miss: a cache hit means this exact string was checked
// before (see Engine.Check).
func bearerCandidate(v string) (string, error) {
	scheme, rest, ok := strings.Cut(v, " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return "", errNotBearer
	}
	if !ok {
		return "", errMalformedCredential
	}
	return strings.TrimLeft(rest, " "), nil
}

func isB64Token(s string) bool {
	i := 0
	for i < len(s) && isB64TokenChar(s[i]) {
		i++
	}
	if i == 0 {
		return false
	}
	for i < len(s) && s[i] == '=' {
		i++
	}
	return i == len(s)
}

func isB64TokenChar(c byte) bool { return b64TokenChars[c] }

// b64TokenChars is the b64token character class as a table: the scan runs
// over every byte of every token on every request.
var b64TokenChars = func() (t [256]bool) {
	for c := 0; c < 256; c++ {
		b := byte(c)
		t[c] = b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' ||
			b == '-' || b == '.' || b == '_' || b == '~' || b == '+' || b == '/'
	}
	return t
}()

// queryHasToken reports whether the query string carries access_token
// (RFC 6750 §2.3, which OAuth 2.1 and MCP forbid). The common empty or
// token-free query is decided without parsing.
func queryHasToken(q string) bool {
	if q == "" || (!strings.Contains(q, "access_token") && !strings.Contains(q, "%")) {
		return false
	}
	vals, err := url.ParseQuery(q)
	if err != nil {
		// An unparseable query that mentions the parameter is refused
		// rather than guessed at.
		return strings.Contains(q, "access_token")
	}
	return vals.Has("access_token")
}

// bodyHasToken reports whether a form-encoded body carries access_token
// (RFC 6750 §2.2); only looked at when the proxy sent the body.
func bodyHasToken(contentType string, body []byte) bool {
	if len(body) == 0 || !strings.HasPrefix(strings.ToLower(contentType), "application/x-www-form-urlencoded") {
		return false
	}
	return queryHasToken(string(body))
}
