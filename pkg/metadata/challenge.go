package metadata

import (
	"errors"
	"strings"
)

// Challenge is one WWW-Authenticate challenge: Bearer (RFC 6750 §3) or
// DPoP (RFC 9449 §7.1), with the RFC 9728 §5.1 resource_metadata
// parameter. Empty fields are omitted: in particular a challenge never
// carries an empty scope.
type Challenge struct {
	// Scheme is "Bearer" (the default when empty) or "DPoP".
	Scheme           string
	Error            string // invalid_request, invalid_token, insufficient_scope, invalid_dpop_proof, use_dpop_nonce; empty when no credential was sent (RFC 6750 §3.1)
	Scope            string // space-separated scopes the operation needs
	ResourceMetadata string // absolute URL of the metadata document
	ErrorDescription string // human-readable, ASCII
	// Algs lists the JWS algorithms accepted for DPoP proofs, space
	// separated (RFC 9449 §7.1 algs).
	Algs string
}

// Schemes of Challenge.
const (
	SchemeBearer = "Bearer"
	SchemeDPoP   = "DPoP"
)

// Challenges renders several challenges as one WWW-Authenticate value,
// comma separated (RFC 9110 §11.6.1), in the order given.
func Challenges(cs ...Challenge) string {
	parts := make([]string, len(cs))
	for i, c := range cs {
		parts[i] = c.String()
	}
	return strings.Join(parts, ", ")
}

// String renders the challenge as a header value.
func (c Challenge) String() string {
	var b strings.Builder
	b.Grow(40 + len(c.Error) + len(c.Scope) + len(c.ResourceMetadata) + len(c.ErrorDescription) + len(c.Algs))
	if c.Scheme == "" {
		b.WriteString(SchemeBearer)
	} else {
		b.WriteString(c.Scheme)
	}
	sep := " "
	param := func(name, value string) {
		if !hasKept(value) {
			return // never an empty parameter, even after sanitizing
		}
		b.WriteString(sep)
		b.WriteString(name)
		b.WriteString(`="`)
		writeQuoted(&b, value)
		b.WriteByte('"')
		sep = ", "
	}
	param("error", c.Error)
	param("scope", c.Scope)
	param("resource_metadata", c.ResourceMetadata)
	param("error_description", c.ErrorDescription)
	param("algs", c.Algs)
	return b.String()
}

// writeQuoted writes the inside of an RFC 9110 §5.6.4 quoted-string. The
// values RFC 6750 allows never need escaping; anything else is made safe
// rather than trusted: quote and backslash are escaped, and control
// characters (CR and LF above all: header injection) and non-ASCII bytes
// are dropped.
func writeQuoted(b *strings.Builder, s string) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c == '\t' || (c >= 0x20 && c < 0x7f):
			b.WriteByte(c)
		}
	}
}

// hasKept reports whether writeQuoted keeps any byte of s.
func hasKept(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '\t' || (c >= 0x20 && c < 0x7f) {
			return true
		}
	}
	return false
}

// ParsedChallenge is one challenge read back from a WWW-Authenticate value.
type ParsedChallenge struct {
	Scheme string            // as sent; compare case-insensitively
	Params map[string]string // names lower-cased
}

// ParseChallenges parses a WWW-Authenticate field value (RFC 9110 §11.6.1):
// one or more comma-separated challenges, each a scheme followed by
// auth-params. token68 credentials are not supported (no Bearer challenge
// uses them). No request path calls it: it is how the tests of this package
// and of pkg/check read an answer as an MCP client would, kept beside
// Challenge.String so that writing and reading are tested together.
func ParseChallenges(v string) ([]ParsedChallenge, error) {
	var out []ParsedChallenge
	p := parser{s: v}
	for {
		p.skipSpaceAndCommas()
		if p.done() {
			break
		}
		scheme := p.token()
		if scheme == "" {
			return nil, errors.New("expected an auth-scheme")
		}
		ch := ParsedChallenge{Scheme: scheme, Params: map[string]string{}}
		// Params follow until the next token that is not followed by "=".
		for {
			p.skipSpaceAndCommas()
			save := p.i
			name := p.token()
			if name == "" {
				break
			}
			p.skipSpace()
			if !p.eat('=') {
				p.i = save // the next challenge's scheme
				break
			}
			p.skipSpace()
			val, err := p.value()
			if err != nil {
				return nil, err
			}
			key := strings.ToLower(name)
			if _, dup := ch.Params[key]; dup {
				return nil, errors.New("duplicate parameter " + key)
			}
			ch.Params[key] = val
		}
		out = append(out, ch)
	}
	if len(out) == 0 {
		return nil, errors.New("no challenge")
	}
	return out, nil
}

type parser struct {
	s string
	i int
}

func (p *parser) done() bool { return p.i >= len(p.s) }

func (p *parser) skipSpace() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t') {
		p.i++
	}
}

func (p *parser) skipSpaceAndCommas() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t' || p.s[p.i] == ',') {
		p.i++
	}
}

func (p *parser) eat(c byte) bool {
	if p.i < len(p.s) && p.s[p.i] == c {
		p.i++
		return true
	}
	return false
}

func (p *parser) token() string {
	start := p.i
	for p.i < len(p.s) && isTokenChar(p.s[p.i]) {
		p.i++
	}
	return p.s[start:p.i]
}

func (p *parser) value() (string, error) {
	if !p.eat('"') {
		t := p.token()
		if t == "" {
			return "", errors.New("expected a parameter value")
		}
		return t, nil
	}
	var b strings.Builder
	for p.i < len(p.s) {
		c := p.s[p.i]
		p.i++
		switch {
		case c == '"':
			return b.String(), nil
		case c == '\\':
			if p.i >= len(p.s) {
				return "", errors.New("unterminated quoted-pair")
			}
			b.WriteByte(p.s[p.i])
			p.i++
		case c == '\t' || c >= 0x20 && c != 0x7f:
			b.WriteByte(c)
		default:
			return "", errors.New("control character in quoted-string")
		}
	}
	return "", errors.New("unterminated quoted-string")
}

// isTokenChar reports RFC 9110 §5.6.2 tchar.
func isTokenChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}
