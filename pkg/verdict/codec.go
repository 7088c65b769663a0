package verdict

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/extauthz/extauthz/pkg/token"
)

// cachedFailures are the failures a cached verdict can carry, by wire code.
// Codes are part of the shared-cache format: append only. The cached error
// is the bare sentinel; details stay with the replica that verified.
var cachedFailures = []error{
	1:  token.ErrMalformed,
	2:  token.ErrCritical,
	3:  token.ErrMissingExpiry,
	4:  token.ErrAlgorithm,
	5:  token.ErrUnknownIssuer,
	6:  token.ErrSignature,
	7:  token.ErrExpired,
	8:  ErrWrongAudience,
	9:  ErrRevoked,
	10: token.ErrInactive,
	11: token.ErrNotAccessToken,
}

// verdictFormat is the first byte of an encoded verdict; a change of
// layout takes a new value. It stays the format of a failure (a kind byte
// and a failure code). Valid verdicts were written in it, and in the
// formats 2 to 4 below, by earlier releases.
const verdictFormat = 1

// Formats of valid verdicts that earlier releases wrote: verdictFormatExtra
// is verdictFormat followed by the kept claims (token.Claims.Extra) as a
// length-prefixed JSON object; verdictFormatBound and
// verdictFormatBoundExtra are the two with, right after the expiry, the 32
// bytes of a DPoP-bound token's thumbprint (token.Grant.JKT). None of them
// holds the token's iat or sid, which revocation watermarks match on: a
// valid verdict in any of them decodes as an error, a miss, and the token
// is verified again. Read as a token without iat or sid, it would be
// refused by every watermark of its subject (wrongly, if issued after it)
// and escape every watermark of its session.
const (
	verdictFormatExtra      = 2
	verdictFormatBound      = 3
	verdictFormatBoundExtra = 4
)

// verdictFormatRevocable is the format of every valid verdict written
// now: after the kind byte, the subject, issuer and client id as
// length-prefixed strings, the audiences and scopes as counted lists of
// them, the expiry as varint Unix milliseconds, the token's iat as uvarint
// seconds (0: none) and its sid, the thumbprint of a DPoP-bound token as
// length-prefixed bytes (0 or 32 of them) and the kept claims as a
// length-prefixed JSON object (empty: none). A release that does not know
// it reads it as a miss and verifies the token itself; and since it
// carries the binding as formats 3 and 4 do, no release reads a bound
// verdict as an unbound one.
const verdictFormatRevocable = 5

// thumbprintSize is the size of a SHA-256 JWK thumbprint (RFC 7638).
const thumbprintSize = 32

// Codec encodes verdicts compactly for the shared cache: a format byte, a
// kind byte, then for a valid token its claims (verdictFormatRevocable),
// for an invalid one a failure code. The token itself is never part of it.
type Codec struct {
	// Grants interns decoded grants; nil interns nothing.
	Grants *Grants
}

// Encode implements cache.Codec.
func (Codec) Encode(v Verdict) ([]byte, error) {
	if v.Err != nil {
		for code, e := range cachedFailures {
			if e != nil && errors.Is(v.Err, e) {
				return []byte{verdictFormat, KindInvalid, byte(code)}, nil
			}
		}
		return nil, fmt.Errorf("verdict: failure %v is not cacheable", v.Err)
	}
	c := v.Claims
	if c.IssuedAt < 0 {
		// Never so for verified claims (a numeric date is not negative).
		return nil, errors.New("verdict: iat before the epoch")
	}
	var extra []byte
	if len(c.Extra) > 0 {
		var err error
		if extra, err = json.Marshal(c.Extra); err != nil {
			return nil, fmt.Errorf("verdict: kept claims: %w", err)
		}
	}
	n := 2 + 10*binary.MaxVarintLen64 + len(c.Subject) + len(c.Issuer) + len(c.ClientID) + len(c.SessionID) + thumbprintSize + len(extra)
	for _, s := range c.Audience {
		n += len(s) + binary.MaxVarintLen64
	}
	for _, s := range c.Scopes {
		n += len(s) + binary.MaxVarintLen64
	}
	b := make([]byte, 0, n)
	b = append(b, verdictFormatRevocable, KindValid)
	for _, s := range []string{c.Subject, c.Issuer, c.ClientID} {
		b = appendString(b, s)
	}
	for _, l := range [][]string{c.Audience, c.Scopes} {
		b = binary.AppendUvarint(b, uint64(len(l)))
		for _, s := range l {
			b = appendString(b, s)
		}
	}
	b = binary.AppendVarint(b, c.Expiry.UnixMilli())
	b = binary.AppendUvarint(b, uint64(c.IssuedAt))
	b = appendString(b, c.SessionID)
	if c.JKT == "" {
		b = binary.AppendUvarint(b, 0)
	} else {
		var t [thumbprintSize]byte
		n, err := 0, errors.New("length")
		if base64.RawURLEncoding.DecodedLen(len(c.JKT)) == thumbprintSize { // else it would not fit t
			n, err = base64.RawURLEncoding.Decode(t[:], []byte(c.JKT))
		}
		if err != nil || n != thumbprintSize || base64.RawURLEncoding.EncodeToString(t[:]) != c.JKT {
			// Never so for verified claims (token.ConfirmationJKT); not
			// cached rather than written in a form that reads back
			// otherwise.
			return nil, errors.New("verdict: cnf.jkt is not a canonical SHA-256 thumbprint")
		}
		b = binary.AppendUvarint(b, thumbprintSize)
		b = append(b, t[:]...)
	}
	b = appendString(b, string(extra))
	return b, nil
}

// Decode implements cache.Codec. The grant is interned when the codec has
// a table.
func (vc Codec) Decode(b []byte) (Verdict, error) {
	if len(b) < 3 || b[0] < verdictFormat || b[0] > verdictFormatRevocable {
		return Verdict{}, errors.New("verdict: unknown verdict format")
	}
	if b[1] == KindInvalid {
		code := int(b[2])
		if b[0] != verdictFormat {
			return Verdict{}, errors.New("verdict: unknown verdict format")
		}
		if len(b) != 3 || code >= len(cachedFailures) || cachedFailures[code] == nil {
			return Verdict{}, errors.New("verdict: unknown cached failure")
		}
		return Verdict{Err: cachedFailures[code]}, nil
	}
	if b[1] != KindValid {
		return Verdict{}, errors.New("verdict: unknown verdict kind")
	}
	if b[0] != verdictFormatRevocable {
		return Verdict{}, fmt.Errorf("verdict: format %d holds no iat or sid: verify again", b[0])
	}
	// The fields are read in place. Issuer, client id, audiences and scopes are
	// not copied at all when the table holds their grant, the usual case: they
	// are written as AppendGrantKey writes them (each string and list preceded
	// by its length, as uvarints), so the bytes that hold them, followed by the
	// rest of the key, are the grant's key.
	r := reader{b: b[2:]}
	sub := r.field()
	grantFrom := len(b) - len(r.b)
	r.field() // issuer
	r.field() // client id
	r.list()  // audiences
	r.list()  // scopes
	grantTo := len(b) - len(r.b)
	exp := r.varint()
	iat := r.uvarint()
	if iat > math.MaxInt64 {
		return Verdict{}, errors.New("verdict: corrupt verdict")
	}
	sid := r.field()
	var jkt []byte // the thumbprint's base64url, on the stack
	var jktBuf [43]byte
	switch n := r.uvarint(); {
	case r.err != nil:
	case n == thumbprintSize:
		if t := r.bytes(thumbprintSize); t != nil {
			base64.RawURLEncoding.Encode(jktBuf[:], t)
			jkt = jktBuf[:]
		}
	case n != 0:
		return Verdict{}, errors.New("verdict: corrupt verdict")
	}
	extra := r.field()
	if r.err != nil || len(r.b) != 0 {
		return Verdict{}, errors.New("verdict: corrupt verdict")
	}
	// The subject and the sid share one string.
	var both [128]byte
	ss := string(append(append(both[:0], sub...), sid...))
	c := &token.Claims{Subject: ss[:len(sub)], SessionID: ss[len(sub):], Expiry: time.UnixMilli(exp), IssuedAt: int64(iat)}
	if len(extra) > 0 {
		if err := json.Unmarshal(extra, &c.Extra); err != nil || len(c.Extra) == 0 {
			return Verdict{}, errors.New("verdict: corrupt verdict")
		}
	}
	var keyBuf [256]byte
	key := append(keyBuf[:0], b[grantFrom:grantTo]...)
	key = binary.AppendVarint(key, 0) // a decoded grant has no cache TTL of its own
	key = binary.AppendUvarint(key, uint64(len(jkt)))
	key = append(key, jkt...)
	g := vc.Grants.lookup(key)
	interned := g != nil
	if !interned {
		g = newGrant(b[grantFrom:grantTo], jkt)
	}
	// A table's grant has the key of the fields read here, and so the same
	// client id and scopes (the key is injective): checking its strings is
	// checking the entry's.
	if !token.IdentityHeaderSafe(c.Subject, g.ClientID, g.Scopes) {
		// Never so for a verdict this version wrote: every verified token's
		// identity passes the same check. One written by an older replica
		// (during a rolling upgrade) or by anything else with access to
		// Redis is not trusted to hold header values: a miss, so the token
		// is verified here and judged by this version's rules.
		return Verdict{}, errors.New("verdict: subject, client id or a scope unfit for a header value: verify again")
	}
	if !interned {
		g = vc.Grants.Intern(g)
	}
	c.Grant = g
	return Verdict{Claims: c}, nil
}

// newGrant builds the grant whose issuer, client id, audiences and scopes b
// holds (as Decode has checked it does), bound to the thumbprint jkt
// (base64url; empty when unbound). Its strings share one copy of b.
func newGrant(b, jkt []byte) *token.Grant {
	r := reader{b: b, s: string(b)}
	g := &token.Grant{Issuer: r.string(), ClientID: r.string(), JKT: string(jkt)}
	g.Audience, g.Scopes = r.strings(), r.strings()
	g.Scope = strings.Join(g.Scopes, " ")
	return g
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// reader decodes what Encode appended, remembering the first error.
type reader struct {
	b   []byte
	s   string // for string: what b held at the start, as a string
	err error
}

func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

// field returns the next length-prefixed string's bytes, which stay r's.
func (r *reader) field() []byte {
	n := r.uvarint()
	if r.err != nil || n > uint64(len(r.b)) {
		r.fail()
		return nil
	}
	return r.bytes(int(n)) //nolint:gosec // n <= len(r.b), an int
}

// list skips a counted list of length-prefixed strings.
func (r *reader) list() {
	n := r.uvarint()
	if r.err != nil || n > uint64(len(r.b)) { // each string takes a byte at least
		r.fail()
		return
	}
	for i := uint64(0); i < n && r.err == nil; i++ {
		r.field()
	}
}

// string returns the next length-prefixed string, a part of r.s.
func (r *reader) string() string {
	f := r.field()
	if r.err != nil {
		return ""
	}
	end := len(r.s) - len(r.b) // b is a suffix of what s holds
	return r.s[end-len(f) : end]
}

// strings returns a counted list of strings (nil when empty), parts of r.s.
func (r *reader) strings() []string {
	n := r.uvarint()
	if r.err != nil || n == 0 || n > uint64(len(r.b)) {
		return nil
	}
	l := make([]string, 0, n)
	for i := uint64(0); i < n; i++ {
		l = append(l, r.string())
	}
	return l
}

// bytes returns the next n bytes, which stay r's.
func (r *reader) bytes(n int) []byte {
	if r.err != nil || n > len(r.b) {
		r.fail()
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) fail() {
	if r.err == nil {
		r.err = errors.New("truncated")
	}
	r.b = nil
}
