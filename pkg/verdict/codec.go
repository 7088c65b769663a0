package verdict

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
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
// layout takes a new value (and the key prefix's version moves with it).
const verdictFormat = 1

// verdictFormatExtra is verdictFormat followed by the kept claims
// (token.Claims.Extra) as a length-prefixed JSON object. It is used only
// when there are kept claims, so that a replica that knows only format 1
// reads every other entry; one reading a format-2 entry treats it as a
// miss and verifies the token itself.
const verdictFormatExtra = 2

// verdictFormatBound and verdictFormatBoundExtra are verdictFormat and
// verdictFormatExtra with, right after the expiry, the 32 bytes of the
// thumbprint a DPoP-bound token is bound to (token.Grant.JKT, sent as
// cnf.jkt). A bound verdict is written in them only, and formats 1 and 2
// decode as unbound: every release before these formats refused any cnf,
// so neither was ever written for a bound token. A replica of such a
// release reads a bound verdict as a miss (unknown format) and verifies
// the token itself, refusing it: no replica ever reads a bound verdict as
// an unbound one, which would let the token pass as a Bearer token.
const (
	verdictFormatBound      = 3
	verdictFormatBoundExtra = 4
)

// thumbprintSize is the size of a SHA-256 JWK thumbprint (RFC 7638).
const thumbprintSize = 32

// Codec encodes verdicts compactly for the shared cache: a format
// byte, a kind byte, then for a valid token the claims as length-prefixed
// strings and the expiry as varint milliseconds (then the thumbprint of a
// bound token, and kept claims, each only when there is one); for an
// invalid one a failure code. The token itself is never part of it.
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
	n := 2 + 6*binary.MaxVarintLen64 + len(c.Subject) + len(c.Issuer) + len(c.ClientID) + len(c.JKT)
	for _, s := range c.Audience {
		n += len(s) + binary.MaxVarintLen64
	}
	for _, s := range c.Scopes {
		n += len(s) + binary.MaxVarintLen64
	}
	b := make([]byte, 0, n)
	b = append(b, verdictFormat, KindValid)
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
	if c.JKT != "" {
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
		b[0] = verdictFormatBound
		b = append(b, t[:]...)
	}
	if len(c.Extra) > 0 {
		extra, err := json.Marshal(c.Extra)
		if err != nil {
			return nil, fmt.Errorf("verdict: kept claims: %w", err)
		}
		if b[0] == verdictFormatBound {
			b[0] = verdictFormatBoundExtra
		} else {
			b[0] = verdictFormatExtra
		}
		b = appendString(b, string(extra))
	}
	return b, nil
}

// Decode implements cache.Codec. The grant is interned when the codec has
// a table.
func (vc Codec) Decode(b []byte) (Verdict, error) {
	if len(b) < 3 || b[0] < verdictFormat || b[0] > verdictFormatBoundExtra {
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
	r := reader{b: b[2:]}
	c := &token.Claims{Grant: &token.Grant{}}
	for _, s := range []*string{&c.Subject, &c.Issuer, &c.ClientID} {
		*s = r.string()
	}
	for _, l := range []*[]string{&c.Audience, &c.Scopes} {
		n := r.uvarint()
		if n > uint64(len(r.b)) {
			return Verdict{}, errors.New("verdict: corrupt verdict")
		}
		for i := uint64(0); i < n; i++ {
			*l = append(*l, r.string())
		}
	}
	c.Expiry = time.UnixMilli(r.varint())
	if b[0] == verdictFormatBound || b[0] == verdictFormatBoundExtra {
		if t := r.bytes(thumbprintSize); r.err == nil {
			c.JKT = base64.RawURLEncoding.EncodeToString(t)
		}
	}
	if b[0] == verdictFormatExtra || b[0] == verdictFormatBoundExtra {
		extra := r.string()
		if r.err == nil {
			if err := json.Unmarshal([]byte(extra), &c.Extra); err != nil || len(c.Extra) == 0 {
				return Verdict{}, errors.New("verdict: corrupt verdict")
			}
		}
	}
	if r.err != nil || len(r.b) != 0 {
		return Verdict{}, errors.New("verdict: corrupt verdict")
	}
	c.Scope = strings.Join(c.Scopes, " ")
	c.Grant = vc.Grants.Intern(c.Grant)
	return Verdict{Claims: c}, nil
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// reader decodes what Encode appended, remembering the first error.
type reader struct {
	b   []byte
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

func (r *reader) string() string {
	n := r.uvarint()
	if r.err != nil || n > uint64(len(r.b)) {
		r.fail()
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
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
