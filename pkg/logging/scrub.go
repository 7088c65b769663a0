package logging

import "strings"

// Redacted is what every removed credential is replaced by.
const Redacted = "[REDACTED]"

// trigger marks the bytes after which a credential can follow: the '='
// of a form field, the '"' closing a JSON member name, and the blank after
// an auth scheme.
var trigger = [256]bool{'=': true, '"': true, ' ': true, '\t': true}

// nextJWT returns the position of the next "eyJ" at or after from, or
// len(s). It searches for 'J' rather than the first byte: strings.Index
// would stop at every 'e' of English text.
func nextJWT(s string, from int) int {
	for k := from + 2; k < len(s); k++ {
		j := strings.IndexByte(s[k:], 'J')
		if j < 0 {
			break
		}
		k += j
		if s[k-2] == 'e' && s[k-1] == 'y' {
			return k - 2
		}
	}
	return len(s)
}

// scrub returns s with every token-like substring replaced by "[REDACTED]",
// and whether anything was replaced.
//
// It removes:
//   - JWS/JWE compact serialisations: "eyJ" followed by at least two more
//     '.'-separated base64url segments, one of them non-empty;
//   - the credential after an HTTP auth scheme ("Bearer x", "Basic x",
//     "DPoP x"; scheme case-insensitive, kept as written), unless it is an
//     RFC 7235 auth-param such as the realm of a challenge;
//   - the value of a query, form or JSON member whose name is sensitive
//     (code=…, access_token=…, "refresh_token":"…"; the same names Redact
//     treats as sensitive attribute keys).
//
// A string with none of these is returned as is, without allocating: every
// request's audit line goes through here. scrub is idempotent.
//
// It looks only where a credential can start. The trigger bytes are common
// and close together in log text, so a table lookup per byte finds them;
// "eyJ" is found with strings.IndexByte, which skips clean text many bytes
// at a time. Every match starts at or after its trigger, so handling
// triggers in order of position yields matches in order, never
// overlapping. Nothing is allocated before the first match.
func scrub(s string) (string, bool) {
	var b strings.Builder // stays empty (no allocation) until the first match
	last := 0             // s[last:] has not been copied to b yet
	jwt := nextJWT(s, 0)  // always >= i
	for i := 0; ; {
		for i < jwt && !trigger[s[i]] {
			i++
		}
		if i == len(s) {
			break
		}
		// start is where the credential starts (everything before it is
		// kept), end where it ends; i <= start always.
		var start, end int // every case below sets both
		switch {
		case i == jwt:
			if start, end = jwtAt(s, i); start < 0 {
				jwt = nextJWT(s, i+1)
				continue // s[i] is 'e', not a trigger: the scan moves on
			}
		case s[i] == '=':
			start, end = formValueAt(s, i)
		case s[i] == '"':
			start, end = jsonValueAt(s, i)
		default: // ' ' or '\t'
			start, end = schemeCredentialBefore(s, i, last)
		}
		if start < 0 {
			i++
			continue
		}
		if b.Cap() == 0 {
			b.Grow(len(s) + len(Redacted))
		}
		b.WriteString(s[last:start])
		b.WriteString(Redacted)
		last, i = end, end
		if jwt < end {
			jwt = nextJWT(s, end)
		}
	}
	if b.Cap() == 0 {
		return s, false
	}
	b.WriteString(s[last:])
	if out := b.String(); out != s {
		return out, true
	}
	return s, false // only "[REDACTED]" was replaced by itself
}

// jwtAt matches a compact JWS (3 segments) or JWE (5 segments) starting at
// i. Empty segments are allowed after the header because they are legal:
// a detached-payload JWS has an empty payload, a "dir" JWE an empty key, an
// unsecured JWT an empty signature. At least one must be non-empty, so
// prose like "eyJ..." survives.
func jwtAt(s string, i int) (int, int) {
	if !strings.HasPrefix(s[i:], "eyJ") {
		return -1, 0
	}
	j := skipBase64URL(s, i+3)
	segments, filled := 1, false
	for j < len(s) && s[j] == '.' {
		k := skipBase64URL(s, j+1)
		filled = filled || k > j+1
		segments++
		j = k
	}
	if segments < 3 || !filled {
		return -1, 0
	}
	return i, j
}

// skipBase64URL returns the end of the run of base64url characters at j.
// '=' is included because some encoders pad segments in violation of
// RFC 7515, and a padded token must not survive in two pieces.
func skipBase64URL(s string, j int) int {
	for j < len(s) {
		c := s[j]
		if !isAlnum(c) && c != '-' && c != '_' && c != '=' {
			break
		}
		j++
	}
	return j
}

// schemeCredentialBefore matches "<scheme> <credential>" where p is the
// blank right after the scheme, for the HTTP authentication schemes whose
// credential is a secret. The scheme must start at or after last, the end
// of the previous match.
func schemeCredentialBefore(s string, p, last int) (int, int) {
	if p == 0 {
		return -1, 0
	}
	var n int
	switch lower(s[p-1]) { // one byte rules out almost every word
	case 'r':
		n = len("bearer")
	case 'c':
		n = len("basic")
	case 'p':
		n = len("dpop")
	default:
		return -1, 0
	}
	i := p - n
	if i < last || schemeLen(s, i) != n {
		return -1, 0
	}
	if i > 0 && isAlnum(s[i-1]) { // "nonbasic stuff" is a word, not a header
		return -1, 0
	}
	j := p
	for {
		k := skipBlanks(s, j)
		if k == j { // "Bearer" must be followed by a space: "Bearer," or "BearerToken" are prose
			return -1, 0
		}
		e := credentialEnd(s, k)
		if e == k {
			return -1, 0
		}
		// Clients do send "Authorization: Bearer Bearer xyz"; the secret
		// is the last word, not the repeated scheme.
		if n := schemeLen(s, k); n > 0 && k+n == e {
			j = e
			continue
		}
		// A challenge ("Bearer realm=\"x\", error=\"invalid_token\"")
		// carries auth-params, not a credential, and is worth reading.
		if isAuthParam(s[k:e]) {
			return -1, 0
		}
		return k, e
	}
}

// schemeLen returns the length of the auth scheme at s[i:], or 0.
func schemeLen(s string, i int) int {
	for _, w := range [...]string{"bearer", "basic", "dpop"} {
		if hasPrefixFold(s[i:], w) {
			return len(w)
		}
	}
	return 0
}

// isAuthParam reports whether cred, the word after an auth scheme, starts
// with one of the RFC 6750/7235/9449/9728 challenge parameters. Real
// credentials are random base64-like strings, which do not start with
// "realm=" or "error=".
func isAuthParam(cred string) bool {
	for _, p := range [...]string{"realm=", "scope=", "error=", "error_description=", "error_uri=", "resource_metadata=", "algs=", "charset="} {
		if hasPrefixFold(cred, p) {
			return true
		}
	}
	return false
}

// credentialEnd returns the end of the credential starting at j: it runs
// to whitespace, a quote, a comma (header list separator) or a backslash
// (the end of an escaped JSON string).
func credentialEnd(s string, j int) int {
	for j < len(s) {
		switch s[j] {
		case ' ', '\t', '\n', '\r', '\v', '\f', '"', '\'', ',', '\\':
			return j
		}
		j++
	}
	return j
}

// formValueAt matches the value after the '=' at p when the name before
// it is sensitive: "?code=abc&state=s" loses abc.
func formValueAt(s string, p int) (int, int) {
	if p == 0 || !mayEndSensitiveKey(s[p-1]) { // one byte rules out most names
		return -1, 0
	}
	if !sensitiveKey(s[:p]) { // it reads the name backwards from p
		return -1, 0
	}
	v := p + 1
	e := formValueEnd(s, v)
	if e == v {
		return -1, 0
	}
	// "authorization=Bearer xyz": the secret is after the space.
	if k := schemeLen(s, v); k > 0 && v+k == e {
		if c := skipBlanks(s, e); c > e {
			if ce := credentialEnd(s, c); ce > c {
				e = ce
			}
		}
	}
	return v, e
}

// formValueEnd returns the end of the form or query value starting at j:
// it runs to '&', whitespace, a quote or a backslash.
func formValueEnd(s string, j int) int {
	for j < len(s) {
		switch s[j] {
		case '&', ' ', '\t', '\n', '\r', '\v', '\f', '"', '\'', '\\':
			return j
		}
		j++
	}
	return j
}

// jsonValueAt matches the string value of a JSON member with a sensitive
// name, q being the quote closing the name. A token endpoint's response
// body in an error message would otherwise leak an opaque token. JSON that
// was itself quoted into a string (\"access_token\":\"…\") is handled too.
func jsonValueAt(s string, q int) (int, int) {
	// Cheap forward check first: most quotes are not followed by ':'.
	if q == 0 {
		return -1, 0
	}
	j := skipJSONSpace(s, q+1)
	if j >= len(s) || s[j] != ':' {
		return -1, 0
	}
	j = skipJSONSpace(s, j+1)
	escaped := false
	switch {
	case strings.HasPrefix(s[j:], `"`):
		j++
	case strings.HasPrefix(s[j:], `\"`):
		j += 2
		escaped = true
	default: // numbers, objects, null: not a credential
		return -1, 0
	}
	nameEnd := q
	if q > 0 && s[q-1] == '\\' {
		nameEnd = q - 1
	}
	open := strings.LastIndexByte(s[:nameEnd], '"')
	if open < 0 || !sensitiveKey(s[open+1:nameEnd]) {
		return -1, 0
	}
	e := j
	for e < len(s) && s[e] != '"' {
		if s[e] == '\\' {
			if escaped { // \" closes the escaped string
				break
			}
			e++ // skip the escaped character
		}
		e++
	}
	e = min(e, len(s))
	if e == j {
		return -1, 0
	}
	return j, e
}

func skipBlanks(s string, j int) int {
	for j < len(s) && (s[j] == ' ' || s[j] == '\t') {
		j++
	}
	return j
}

func skipJSONSpace(s string, j int) int {
	for j < len(s) && (s[j] == ' ' || s[j] == '\t' || s[j] == '\n' || s[j] == '\r') {
		j++
	}
	return j
}

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// hasPrefixFold is strings.HasPrefix with ASCII case folding; unlike
// strings.EqualFold it never matches Unicode look-alikes (K, ſ).
func hasPrefixFold(s, prefix string) bool {
	if len(s) < len(prefix) {
		return false
	}
	for i := 0; i < len(prefix); i++ {
		if lower(s[i]) != prefix[i] {
			return false
		}
	}
	return true
}
