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
	// One copy of the entry as a string, which every string field then
	// shares: one allocation instead of one per field.
	r := reader{b: b[2:], s: string(b[2:])}
	sub, iss, client := r.string(), r.string(), r.string()
	// The audiences and scopes go to arrays on the stack first: when the
	// table already holds their grant, the usual case, no Grant is built.
	var audBuf, scopeBuf [8]string
	aud, scopes := r.list(audBuf[:0]), r.list(scopeBuf[:0])
	exp := r.varint()
	iat := r.uvarint()
	if iat > math.MaxInt64 {
		return Verdict{}, errors.New("verdict: corrupt verdict")
	}
	sid := r.string()
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
	c := &token.Claims{Subject: sub, Expiry: time.UnixMilli(exp), IssuedAt: int64(iat), SessionID: sid}
	if extra := r.string(); r.err == nil && extra != "" {
		if err := json.Unmarshal([]byte(extra), &c.Extra); err != nil || len(c.Extra) == 0 {
			return Verdict{}, errors.New("verdict: corrupt verdict")
		}
	}
	if r.err != nil || len(r.b) != 0 {
		return Verdict{}, errors.New("verdict: corrupt verdict")
	}
	if !token.IdentityHeaderSafe(sub, client, scopes) {
		// Never so for a verdict this version wrote: every verified token's
		// identity passes the same check. One written by an older replica
		// (during a rolling upgrade) or by anything else with access to
		// Redis is not trusted to hold header values: a miss, so the token
		// is verified here and judged by this version's rules.
		return Verdict{}, errors.New("verdict: subject, client id or a scope unfit for a header value: verify again")
	}
	var keyBuf [256]byte
	if c.Grant = vc.Grants.lookup(token.AppendGrantKey(keyBuf[:0], iss, client, aud, scopes, 0, jkt)); c.Grant == nil {
		g := &token.Grant{Issuer: iss, ClientID: client, Audience: clone(aud), Scopes: clone(scopes), JKT: string(jkt)}
		g.Scope = strings.Join(g.Scopes, " ")
		c.Grant = vc.Grants.Intern(g)
	}
	return Verdict{Claims: c}, nil
}

// clone is l on the heap, nil when empty (as a decoded list was before).
func clone(l []string) []string {
	if len(l) == 0 {
		return nil
	}
	return append(make([]string, 0, len(l)), l...)
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// reader decodes what Encode appended, remembering the first error.
type reader struct {
	b   []byte
	s   string // what b held at the start, as a string: string() returns parts of it
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

// list appends a counted list of strings to dst (an array on the
// caller's stack when it is long enough).
func (r *reader) list(dst []string) []string {
	n := r.uvarint()
	if r.err != nil || n > uint64(len(r.b)) {
		r.fail()
		return dst
	}
	for i := uint64(0); i < n; i++ {
		dst = append(dst, r.string())
	}
	return dst
}

func (r *reader) string() string {
	n := r.uvarint()
	if r.err != nil || n > uint64(len(r.b)) {
		r.fail()
		return ""
	}
	// b is a suffix of what s holds.
	off, size := len(r.s)-len(r.b), len(r.b[:n])
	r.b = r.b[size:]
	return r.s[off : off+size]
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
