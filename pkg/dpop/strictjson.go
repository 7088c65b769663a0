package dpop

import (
	"errors"
	"strings"
	"unicode/utf8"
)

// A proof's header and claims are read by this package and may be read
// again by whatever logs or forwards them; JSON readers disagree on an
// ambiguous object (a repeated member: first, last or refused; a member
// whose name differs from a known one only in case: matched by Go's
// encoding/json, ignored by most others; invalid UTF-8: refused, replaced
// or kept). A proof whose meaning depends on the reader is refused, so the
// JSON is checked strictly before anything is read from it. The rules are
// the ones pkg/token applies to access tokens; that package exports no
// helper, so this is this package's own reader.

// maxJSONDepth bounds nesting (arrays and objects). A proof nests two
// levels (the jwk inside the header); the bound keeps the recursive scan's
// stack small.
const maxJSONDepth = 16

var (
	errNotObject = errors.New("not a JSON object")
	errJSON      = errors.New("invalid JSON")
	errUTF8      = errors.New("invalid UTF-8 or unpaired surrogate in a JSON string")
	errDuplicate = errors.New("duplicate member name")
	errDepth     = errors.New("JSON nested too deeply")
	errTrailing  = errors.New("trailing data after the JSON object")
)

// objectMembers checks that data is exactly one JSON object (RFC 8259),
// with optional surrounding whitespace, holding nothing ambiguous: UTF-8
// text (§8.1), string escapes that pair their surrogates, no object at any
// depth repeating a member name (§4; compared after unescaping, so "jti"
// and "\u006Ati" are the same name), and at most maxJSONDepth levels. It
// calls fn with the unescaped name and the raw value of each top-level
// member, in order, and stops at fn's first error.
func objectMembers(data []byte, fn func(name string, value []byte) error) error {
	s := scanner{b: data}
	s.ws()
	if s.i >= len(s.b) || s.b[s.i] != '{' {
		return errNotObject
	}
	if err := s.object(maxJSONDepth, fn); err != nil {
		return err
	}
	s.ws()
	if s.i != len(s.b) {
		return errTrailing
	}
	return nil
}

// jsonString decodes a raw JSON value that objectMembers has already
// checked; ok is false when it is not a string.
func jsonString(raw []byte) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' {
		return "", false
	}
	s := scanner{b: raw}
	v, err := s.name()
	return v, err == nil
}

// caseVariant reports whether name differs from one of known only in case
// (Unicode simple folding, as broad as encoding/json's matching): a member
// that a case-insensitive reader would take for one this package reads.
func caseVariant(name string, known []string) bool {
	for _, k := range known {
		if name != k && strings.EqualFold(name, k) {
			return true
		}
	}
	return false
}

// names is the set of member names of one object: a short list scanned
// linearly (a proof's objects have a handful of members), turned into a
// map past a few, so that a hostile object of a thousand members costs
// linear time, not quadratic.
type names struct {
	small [8]string
	list  []string
	set   map[string]struct{}
}

// add reports whether name was new.
func (n *names) add(name string) bool {
	if n.set != nil {
		if _, dup := n.set[name]; dup {
			return false
		}
		n.set[name] = struct{}{}
		return true
	}
	if n.list == nil {
		n.list = n.small[:0]
	}
	for _, s := range n.list {
		if s == name {
			return false
		}
	}
	n.list = append(n.list, name)
	if len(n.list) > 16 {
		n.set = make(map[string]struct{}, 2*len(n.list))
		for _, s := range n.list {
			n.set[s] = struct{}{}
		}
		n.list = nil
	}
	return true
}

// scanner is a position in a JSON text.
type scanner struct {
	b []byte
	i int
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// value scans the value at s.i; depth is the nesting still allowed.
func (s *scanner) value(depth int) error {
	if s.i >= len(s.b) {
		return errJSON
	}
	switch c := s.b[s.i]; {
	case c == '{':
		return s.object(depth, nil)
	case c == '[':
		return s.array(depth)
	case c == '"':
		_, err := s.str(false)
		return err
	case c == '-' || c >= '0' && c <= '9':
		return s.number()
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	}
	return errJSON
}

// object scans the object at s.i (its '{'), calling fn, when not nil, for
// each member.
func (s *scanner) object(depth int, fn func(string, []byte) error) error {
	if depth < 1 {
		return errDepth
	}
	s.i++
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == '}' {
		s.i++
		return nil
	}
	var seen names
	for {
		if s.i >= len(s.b) || s.b[s.i] != '"' {
			return errJSON
		}
		name, err := s.name()
		if err != nil {
			return err
		}
		if !seen.add(name) {
			return errDuplicate
		}
		s.ws()
		if s.i >= len(s.b) || s.b[s.i] != ':' {
			return errJSON
		}
		s.i++
		s.ws()
		start := s.i
		if err := s.value(depth - 1); err != nil {
			return err
		}
		if fn != nil {
			if err := fn(name, s.b[start:s.i]); err != nil {
				return err
			}
		}
		if done, err := s.after('}'); done || err != nil {
			return err
		}
	}
}

func (s *scanner) array(depth int) error {
	if depth < 1 {
		return errDepth
	}
	s.i++
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == ']' {
		s.i++
		return nil
	}
	for {
		if err := s.value(depth - 1); err != nil {
			return err
		}
		if done, err := s.after(']'); done || err != nil {
			return err
		}
	}
}

// after reads what follows a member or an element: ',' (more to come) or
// the closing byte (done), with the whitespace around them.
func (s *scanner) after(closing byte) (done bool, err error) {
	s.ws()
	if s.i >= len(s.b) {
		return false, errJSON
	}
	switch s.b[s.i] {
	case ',':
		s.i++
		s.ws()
		return false, nil
	case closing:
		s.i++
		return true, nil
	}
	return false, errJSON
}

// name scans a member name. The names a proof is made of are returned as
// constants, without allocating; others are decoded.
func (s *scanner) name() (string, error) {
	start := s.i + 1
	for i := start; i < len(s.b) && i-start <= maxKnownLen; i++ {
		if c := s.b[i]; c == '"' {
			if k, ok := known(s.b[start:i]); ok {
				s.i = i + 1
				return k, nil
			}
			break
		} else if c == '\\' || c < 0x20 || c >= utf8.RuneSelf {
			break
		}
	}
	return s.str(true)
}

// knownStrings are the member names and the values that every proof
// holds, so common that not allocating a string for each pays.
var knownStrings = []string{
	"typ", "alg", "jwk", "kid", "kty", "crv", "x", "y", "n", "e", "use",
	"jti", "htm", "htu", "iat", "ath", "nonce",
	"dpop+jwt", "ES256", "ES384", "ES512", "EdDSA", "Ed25519", "RS256", "PS256",
	"EC", "RSA", "OKP", "P-256", "P-384", "P-521", "sig",
	"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS",
}

// maxKnownLen is the length of the longest of knownStrings.
const maxKnownLen = 8

// known returns the constant equal to b, if b is one of knownStrings.
func known(b []byte) (string, bool) {
	for _, k := range knownStrings {
		if string(b) == k {
			return k, true
		}
	}
	return "", false
}

// str scans the string at s.i (its opening quote). With decode it returns
// the string's value, otherwise only checks it.
func (s *scanner) str(decode bool) (string, error) {
	s.i++
	start := s.i
	var buf []byte // the value so far, once an escape has been seen
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			var v string
			if decode {
				if buf != nil {
					v = string(append(buf, s.b[start:s.i]...))
				} else {
					v = string(s.b[start:s.i])
				}
			}
			s.i++
			return v, nil
		case c < 0x20:
			return "", errJSON
		case c == '\\':
			if decode {
				buf = append(buf, s.b[start:s.i]...)
			}
			r, err := s.escape()
			if err != nil {
				return "", err
			}
			if decode {
				buf = utf8.AppendRune(buf, r)
			}
			start = s.i
		case c < utf8.RuneSelf:
			s.i++
		default:
			r, n := utf8.DecodeRune(s.b[s.i:])
			if r == utf8.RuneError && n == 1 {
				return "", errUTF8
			}
			s.i += n
		}
	}
	return "", errJSON
}

// escape reads the escape at s.i (its backslash) and returns the character
// it stands for. A \u escape of a surrogate must be the high half of a
// pair whose low half follows at once.
func (s *scanner) escape() (rune, error) {
	if s.i+1 >= len(s.b) {
		return 0, errJSON
	}
	c := s.b[s.i+1]
	s.i += 2
	switch c {
	case '"', '\\', '/':
		return rune(c), nil
	case 'b':
		return '\b', nil
	case 'f':
		return '\f', nil
	case 'n':
		return '\n', nil
	case 'r':
		return '\r', nil
	case 't':
		return '\t', nil
	case 'u':
	default:
		return 0, errJSON
	}
	r, ok := s.hex4()
	if !ok {
		return 0, errJSON
	}
	switch {
	case r >= 0xdc00 && r <= 0xdfff:
		return 0, errUTF8
	case r >= 0xd800 && r <= 0xdbff:
		if s.i+1 >= len(s.b) || s.b[s.i] != '\\' || s.b[s.i+1] != 'u' {
			return 0, errUTF8
		}
		s.i += 2
		lo, ok := s.hex4()
		if !ok {
			return 0, errJSON
		}
		if lo < 0xdc00 || lo > 0xdfff {
			return 0, errUTF8
		}
		return 0x10000 + (r-0xd800)<<10 + (lo - 0xdc00), nil
	}
	return r, nil
}

func (s *scanner) hex4() (rune, bool) {
	if s.i+4 > len(s.b) {
		return 0, false
	}
	var r rune
	for _, c := range s.b[s.i : s.i+4] {
		v, ok := hexValue(c)
		if !ok {
			return 0, false
		}
		r = r<<4 | rune(v)
	}
	s.i += 4
	return r, true
}

// number scans -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?
func (s *scanner) number() error {
	if s.b[s.i] == '-' {
		s.i++
	}
	switch {
	case s.i < len(s.b) && s.b[s.i] == '0':
		s.i++
	case s.digits() == 0:
		return errJSON
	}
	if s.i < len(s.b) && s.b[s.i] == '.' {
		s.i++
		if s.digits() == 0 {
			return errJSON
		}
	}
	if s.i < len(s.b) && (s.b[s.i] == 'e' || s.b[s.i] == 'E') {
		s.i++
		if s.i < len(s.b) && (s.b[s.i] == '+' || s.b[s.i] == '-') {
			s.i++
		}
		if s.digits() == 0 {
			return errJSON
		}
	}
	return nil
}

func (s *scanner) digits() int {
	n := 0
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		s.i++
		n++
	}
	return n
}

func (s *scanner) literal(lit string) error {
	if len(s.b)-s.i < len(lit) || string(s.b[s.i:s.i+len(lit)]) != lit {
		return errJSON
	}
	s.i += len(lit)
	return nil
}

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
