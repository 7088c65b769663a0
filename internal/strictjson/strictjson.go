// Package strictjson checks that a JSON object means one thing to every
// reader, and hands its members over one at a time.
//
// JSON readers disagree on what an ambiguous object means: for a repeated
// member, some keep the first value, most the last, a few refuse it; for a
// member whose name differs from an expected one only in case, Go's
// encoding/json matches the struct field and most others do not; invalid
// UTF-8 and unpaired surrogate escapes are refused, replaced or kept. A
// token or a DPoP proof read one way by the gateway and another way by
// whoever reads it next (the upstream, a log pipeline, the issuer's own
// introspection) is one whose meaning an attacker may choose. So pkg/token
// and pkg/dpop check their JSON here, strictly, before anything is read
// from it, and an ambiguous object is malformed.
//
// It is not a decoder: values are handed over raw, for the caller to read
// (String for a string; encoding/json, member by member, for the rest:
// unlike decoding the whole object into a struct, that matches names
// exactly).
package strictjson

import (
	"bytes"
	"errors"
	"strings"
	"unicode/utf8"
)

// Errors of Members, one per way a text fails.
var (
	ErrNotObject = errors.New("not a JSON object")
	ErrSyntax    = errors.New("invalid JSON")
	ErrUTF8      = errors.New("invalid UTF-8 or unpaired surrogate in a JSON string")
	ErrDuplicate = errors.New("duplicate member name")
	ErrDepth     = errors.New("JSON nested too deeply")
	ErrTrailing  = errors.New("trailing data after JSON object")
)

// A Reader reads JSON objects strictly, with its bound on nesting and its
// known strings. It holds no state of its own between calls and is safe
// for concurrent use.
type Reader struct {
	maxDepth int
	// known maps each known string to itself, so that a name or value
	// equal to one is returned as that string without allocating.
	known    map[string]string
	maxKnown int // the length of the longest known string
}

// NewReader returns a Reader that refuses nesting (of arrays and objects)
// deeper than maxDepth, and returns the known strings, when a member name
// or a String value equals one and holds no escape, without allocating:
// the names and values that nearly every text holds.
func NewReader(maxDepth int, known ...string) *Reader {
	r := &Reader{maxDepth: maxDepth}
	if len(known) > 0 {
		r.known = make(map[string]string, len(known))
		for _, k := range known {
			r.known[k] = k
			r.maxKnown = max(r.maxKnown, len(k))
		}
	}
	return r
}

// Members checks that data is exactly one JSON object (RFC 8259),
// optionally surrounded by whitespace, with nothing ambiguous in it: the
// text is UTF-8 (§8.1), string escapes pair their surrogates, no object at
// any depth repeats a member name (§4; names compared after unescaping,
// so "iss" and "\u0069ss" are the same name), and nesting is within the
// Reader's bound. It calls fn with the unescaped name and the raw value of
// each top-level member, in order, and stops at fn's first error, which it
// returns.
func (r *Reader) Members(data []byte, fn func(name string, value []byte) error) error {
	s := scanner{b: data, r: r}
	s.ws()
	if s.i >= len(s.b) || s.b[s.i] != '{' {
		return ErrNotObject
	}
	if err := s.object(r.maxDepth, fn); err != nil {
		return err
	}
	s.ws()
	if s.i != len(s.b) {
		return ErrTrailing
	}
	return nil
}

// String decodes a raw value that Members has handed over (and so
// checked); ok is false when it is not a string.
func (r *Reader) String(raw []byte) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' {
		return "", false
	}
	s := scanner{b: raw, r: r}
	v, err := s.name()
	return v, err == nil
}

// Bytes is String without the copy: a string without escapes is returned
// as the slice of raw between its quotes, which the caller must not
// modify; only one with escapes is decoded into a new slice.
func (r *Reader) Bytes(raw []byte) ([]byte, bool) {
	if len(raw) < 2 || raw[0] != '"' {
		return nil, false
	}
	s := scanner{b: raw, r: r}
	if _, err := s.str(false); err != nil {
		return nil, false
	}
	body := raw[1 : s.i-1]
	if bytes.IndexByte(body, '\\') < 0 {
		return body, true
	}
	v, ok := r.String(raw)
	return []byte(v), ok
}

// CaseVariant reports whether name differs from one of known only in case
// (Unicode simple folding, as encoding/json's own matching is broader
// than ASCII): a member that a case-insensitive reader would take for one
// the caller reads.
func CaseVariant(name string, known ...string) bool {
	for _, k := range known {
		if name != k && strings.EqualFold(name, k) {
			return true
		}
	}
	return false
}

// names is the set of member names of one object: a short list scanned
// linearly (most objects have a handful of members), turned into a map
// past a few, so that a hostile object of a thousand members costs linear
// time, not quadratic. The first names are held in the struct itself,
// which lives on the scanning function's stack: an object of up to
// sixteen members (an access token's claims set is often a dozen) costs
// no allocation.
type names struct {
	small [16]string
	n     int      // names in small
	more  []string // names past small, until set is made
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
	for _, s := range n.small[:n.n] {
		if s == name {
			return false
		}
	}
	for _, s := range n.more {
		if s == name {
			return false
		}
	}
	if n.n < len(n.small) {
		n.small[n.n] = name
		n.n++
		return true
	}
	n.more = append(n.more, name)
	if n.n+len(n.more) > 24 {
		n.set = make(map[string]struct{}, 2*(n.n+len(n.more)))
		for _, s := range n.small[:n.n] {
			n.set[s] = struct{}{}
		}
		for _, s := range n.more {
			n.set[s] = struct{}{}
		}
		n.more = nil
	}
	return true
}

// scanner is a position in a JSON text.
type scanner struct {
	b []byte
	i int
	r *Reader
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
		return ErrSyntax
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
	return ErrSyntax
}

// object scans the object at s.i (its '{'), calling fn, when not nil, for
// each member.
func (s *scanner) object(depth int, fn func(string, []byte) error) error {
	if depth < 1 {
		return ErrDepth
	}
	s.i++ // '{'
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == '}' {
		s.i++
		return nil
	}
	var seen names
	for {
		if s.i >= len(s.b) || s.b[s.i] != '"' {
			return ErrSyntax
		}
		name, err := s.name()
		if err != nil {
			return err
		}
		if !seen.add(name) {
			return ErrDuplicate
		}
		s.ws()
		if s.i >= len(s.b) || s.b[s.i] != ':' {
			return ErrSyntax
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
		return ErrDepth
	}
	s.i++ // '['
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
		return false, ErrSyntax
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
	return false, ErrSyntax
}

// name scans and decodes the string at s.i (its opening quote). One of
// the Reader's known strings, written without escapes, is returned as the
// constant, without allocating.
func (s *scanner) name() (string, error) {
	if s.r.known != nil {
		start := s.i + 1
		for i := start; i < len(s.b) && i-start <= s.r.maxKnown; i++ {
			if c := s.b[i]; c == '"' {
				if k, ok := s.r.known[string(s.b[start:i])]; ok {
					s.i = i + 1
					return k, nil
				}
				break
			} else if c == '\\' || c < 0x20 || c >= utf8.RuneSelf {
				break
			}
		}
	}
	return s.str(true)
}

// str scans the string at s.i (its opening quote). With decode it returns
// the string's value, otherwise only checks it.
func (s *scanner) str(decode bool) (string, error) {
	s.i++ // '"'
	start := s.i
	var buf []byte // the value so far, once an escape has been seen
	for s.i < len(s.b) {
		// Most of a string is printable ASCII other than '"' and '\\':
		// skipped a byte at a time by one table lookup.
		for s.i < len(s.b) && plain[s.b[s.i]] {
			s.i++
		}
		if s.i == len(s.b) {
			break
		}
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
			return "", ErrSyntax
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
		default: // c ≥ 0x80: the whole UTF-8 sequence
			r, n := utf8.DecodeRune(s.b[s.i:])
			if r == utf8.RuneError && n == 1 {
				return "", ErrUTF8
			}
			s.i += n
		}
	}
	return "", ErrSyntax
}

// plain marks the bytes a string holds as themselves: printable ASCII
// other than '"' and '\\'.
var plain = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// escape reads the escape at s.i (its backslash) and returns the character
// it stands for. A \u escape of a surrogate must be the high half of a
// pair whose low half follows at once.
func (s *scanner) escape() (rune, error) {
	if s.i+1 >= len(s.b) {
		return 0, ErrSyntax
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
		return 0, ErrSyntax
	}
	r, ok := s.hex4()
	if !ok {
		return 0, ErrSyntax
	}
	switch {
	case r >= 0xdc00 && r <= 0xdfff:
		return 0, ErrUTF8
	case r >= 0xd800 && r <= 0xdbff:
		if s.i+1 >= len(s.b) || s.b[s.i] != '\\' || s.b[s.i+1] != 'u' {
			return 0, ErrUTF8
		}
		s.i += 2
		lo, ok := s.hex4()
		if !ok {
			return 0, ErrSyntax
		}
		if lo < 0xdc00 || lo > 0xdfff {
			return 0, ErrUTF8
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
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		case c >= 'A' && c <= 'F':
			r |= rune(c - 'A' + 10)
		default:
			return 0, false
		}
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
		return ErrSyntax
	}
	if s.i < len(s.b) && s.b[s.i] == '.' {
		s.i++
		if s.digits() == 0 {
			return ErrSyntax
		}
	}
	if s.i < len(s.b) && (s.b[s.i] == 'e' || s.b[s.i] == 'E') {
		s.i++
		if s.i < len(s.b) && (s.b[s.i] == '+' || s.b[s.i] == '-') {
			s.i++
		}
		if s.digits() == 0 {
			return ErrSyntax
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
		return ErrSyntax
	}
	s.i += len(lit)
	return nil
}
