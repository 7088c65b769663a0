package token

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/extauthz/extauthz/internal/b64seg"
)

// ClaimNames says which claims hold a token's audiences, scopes and client
// id, for authorization servers that do not put them where RFC 9068 does.
// An empty name means the standard one.
type ClaimNames struct {
	// Audience: "aud" by default (RFC 8707). AWS Cognito access tokens
	// carry no aud: "client_id" stands in for it.
	Audience string
	// Scope: "scope" by default (a space-separated string, RFC 9068),
	// falling back to "scp" when absent. A named claim may be a string or
	// an array of strings ("scp" at Okta and Microsoft Entra ID).
	Scope string
	// ClientID: "client_id" by default, falling back to "azp" (RFC 9068
	// §2.2); "cid" at Okta.
	ClientID string
	// Keep names further claims to keep, as decoded JSON values, for
	// policies to read (tenant, groups, roles). Absent ones are not kept.
	Keep []string
}

// standard reports whether every name is the default, so the claims can be
// read with no generic decoding.
func (n ClaimNames) standard() bool {
	return len(n.Keep) == 0 && (n.Audience == "" || n.Audience == "aud") &&
		(n.Scope == "" || n.Scope == "scope") &&
		(n.ClientID == "" || n.ClientID == "client_id")
}

// Payload is a JSON object of claims — a JWT's claims set or an RFC 7662
// introspection response, which share their member names — read into the
// facts a decision needs. Nothing in it is trusted until the caller has
// authenticated where it came from.
type Payload struct {
	Issuer, Subject, ClientID string
	Audience, Scopes          []string
	// SessionID is sid, "" when absent.
	SessionID string
	// Extra holds the claims ClaimNames.Keep asked for that are present.
	Extra map[string]any
	// Expiry, NotBefore and IssuedAt are zero when the claim is absent.
	Expiry, NotBefore, IssuedAt time.Time
	// Confirmation reports a cnf member, whatever its value (RFC 7800
	// §3.1): the token is bound to a key its presenter must prove.
	Confirmation bool
	// JKT is the thumbprint of a cnf that binds the token by DPoP and by
	// nothing else (see ConfirmationJKT); empty for any other cnf, which
	// the gateway cannot check, and when there is none.
	JKT string
	// scope, when set, is Scopes joined with single spaces, as the token
	// spelled them.
	scope string
}

// joinedIs reports whether s is fields joined with single spaces.
func joinedIs(s string, fields []string) bool {
	i := 0
	for k, f := range fields {
		if k > 0 {
			if i >= len(s) || s[i] != ' ' {
				return false
			}
			i++
		}
		if !strings.HasPrefix(s[i:], f) {
			return false
		}
		i += len(f)
	}
	return i == len(s)
}

// payloadJSON holds the standard claims, each decoded from its member
// (see field).
type payloadJSON struct {
	Iss, Sub, Sid string
	Aud           stringList
	Exp, Nbf, Iat *numericDate
	// exp, nbf and iat hold the dates Exp, Nbf and Iat point to.
	exp, nbf, iat numericDate
	ClientID, Azp string
	Scope         string
	Scp           scopeList
}

// standardClaims are the claims ParsePayload reads whatever ClaimNames
// say. A member whose name differs from one of them only in case makes the
// claims ambiguous: encoding/json, and so many a Go upstream, would read it
// as the claim.
var standardClaims = []string{"iss", "sub", "aud", "exp", "nbf", "iat", "client_id", "azp", "scope", "scp", "cnf", "sid"}

// read decodes the member name, if it is a standard claim, and reports
// whether it was.
func (w *payloadJSON) read(name string, v []byte) (bool, error) {
	switch name {
	case "iss":
		return true, readString(v, &w.Iss)
	case "sub":
		return true, readString(v, &w.Sub)
	case "sid":
		return true, readString(v, &w.Sid)
	case "aud":
		return true, readStrings(v, (*[]string)(&w.Aud), func(s string) []string { return []string{s} })
	case "exp":
		return true, readDate(v, &w.Exp, &w.exp)
	case "nbf":
		return true, readDate(v, &w.Nbf, &w.nbf)
	case "iat":
		return true, readDate(v, &w.Iat, &w.iat)
	case "client_id":
		return true, readString(v, &w.ClientID)
	case "azp":
		return true, readString(v, &w.Azp)
	case "scope":
		return true, readString(v, &w.Scope)
	case "scp":
		return true, readStrings(v, (*[]string)(&w.Scp), SplitScope)
	}
	return false, nil
}

// payload is the Payload of the standard claims read into w, with the
// cnf facts.
func (w *payloadJSON) payload(cnf bool, jkt string) *Payload {
	p := &Payload{Issuer: w.Iss, Subject: w.Sub, SessionID: w.Sid, ClientID: w.ClientID, Audience: w.Aud, Confirmation: cnf, JKT: jkt}
	if p.ClientID == "" {
		p.ClientID = w.Azp
	}
	if w.Scope != "" {
		p.Scopes = SplitScope(w.Scope)
		if joinedIs(w.Scope, p.Scopes) {
			p.scope = w.Scope // Claims' Scope as it is: no join to allocate
		}
	} else if len(w.Scp) > 0 {
		p.Scopes = w.Scp
	}
	p.Expiry, p.NotBefore, p.IssuedAt = w.Exp.time(), w.Nbf.time(), w.Iat.time()
	return p
}

// wanted lists the claims that n asks for beyond the standard ones.
func (n ClaimNames) wanted() []string {
	w := make([]string, 0, 3+len(n.Keep))
	for _, name := range []string{n.Audience, n.Scope, n.ClientID} {
		if name != "" {
			w = append(w, name)
		}
	}
	return append(w, n.Keep...)
}

// ParsePayload reads a JSON object of claims, taking the audiences, scopes
// and client id from the claims that names gives.
//
// The object must be unambiguous (see members): valid UTF-8, no member
// repeated, none named like a claim it reads but for case. Names are
// matched exactly, as RFC 7519 §4 requires.
func ParsePayload(data []byte, names ClaimNames) (*Payload, error) {
	var w payloadJSON
	cnf, jkt := false, ""
	std := names.standard()
	var want []string
	var all map[string][]byte
	if !std {
		want = names.wanted()
		all = make(map[string][]byte, len(want))
	}
	err := members(data, func(name string, v []byte) error {
		if std, err := w.read(name, v); err != nil {
			return fmt.Errorf("claim %q has the wrong type", name)
		} else if std {
			// read
		} else if name == "cnf" {
			cnf = true
			jkt, _ = ConfirmationJKT(v)
		} else if caseVariant(name, standardClaims...) {
			return fmt.Errorf("claim %q differs from a standard claim only in case", name)
		}
		if !std {
			if slices.Contains(want, name) {
				all[name] = v
			} else if caseVariant(name, want...) {
				return fmt.Errorf("claim %q differs from a configured claim only in case", name)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	p := w.payload(cnf, jkt)
	if std {
		return p, nil
	}
	// Rare: only servers configured with other claim names pay for
	// decoding them.
	if n := names.Audience; n != "" && n != "aud" {
		p.Audience = nil
		if raw, ok := all[n]; ok {
			var l stringList
			if err := json.Unmarshal(raw, &l); err != nil {
				return nil, fmt.Errorf("claim %q must be a string or an array of strings", n)
			}
			p.Audience = l
		}
	}
	if n := names.Scope; n != "" && n != "scope" {
		p.Scopes, p.scope = nil, ""
		if raw, ok := all[n]; ok {
			var l scopeList
			if err := json.Unmarshal(raw, &l); err != nil {
				return nil, fmt.Errorf("claim %q must be a string or an array of strings", n)
			}
			p.Scopes = l
		}
	}
	for _, n := range names.Keep {
		raw, ok := all[n]
		if !ok {
			continue
		}
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, fmt.Errorf("claim %q: invalid JSON", n)
		}
		if p.Extra == nil {
			p.Extra = make(map[string]any, len(names.Keep))
		}
		p.Extra[n] = v
	}
	if n := names.ClientID; n != "" && n != "client_id" {
		p.ClientID = ""
		if raw, ok := all[n]; ok {
			if err := readString(raw, &p.ClientID); err != nil {
				return nil, fmt.Errorf("claim %q must be a string", n)
			}
		}
	}
	return p, nil
}

// claimValues are the raw values of a claims set's standard claims (nil
// when absent), found in one strict scan of it: the scan before any key
// is fetched, which checks the whole set, also finds what ParsePayload
// would read, and reading it after the signature has verified needs no
// second scan.
type claimValues struct {
	iss, sub, sid, aud, exp, nbf, iat, clientID, azp, scope, scp, cnf []byte
}

// scan checks that data is an unambiguous claims set, as ParsePayload
// does with the standard names, and keeps the standard claims' values.
func (r *claimValues) scan(data []byte) error {
	return members(data, func(name string, v []byte) error {
		switch name {
		case "iss":
			r.iss = v
		case "sub":
			r.sub = v
		case "sid":
			r.sid = v
		case "aud":
			r.aud = v
		case "exp":
			r.exp = v
		case "nbf":
			r.nbf = v
		case "iat":
			r.iat = v
		case "client_id":
			r.clientID = v
		case "azp":
			r.azp = v
		case "scope":
			r.scope = v
		case "scp":
			r.scp = v
		case "cnf":
			r.cnf = v
		default:
			if caseVariant(name, standardClaims...) {
				return fmt.Errorf("claim %q differs from a standard claim only in case", name)
			}
		}
		return nil
	})
}

// payload reads the scanned values as ParsePayload reads them with the
// standard names. iss is the iss claim's value, already read (parseJWT).
func (r *claimValues) payload(iss string) (*Payload, error) {
	w := payloadJSON{Iss: iss}
	for _, m := range [...]struct {
		name string
		v    []byte
	}{
		{"sub", r.sub}, {"sid", r.sid}, {"aud", r.aud}, {"exp", r.exp}, {"nbf", r.nbf},
		{"iat", r.iat}, {"client_id", r.clientID}, {"azp", r.azp}, {"scope", r.scope}, {"scp", r.scp},
	} {
		if m.v == nil {
			continue
		}
		if _, err := w.read(m.name, m.v); err != nil {
			return nil, fmt.Errorf("claim %q has the wrong type", m.name)
		}
	}
	cnf, jkt := r.cnf != nil, ""
	if cnf {
		jkt, _ = ConfirmationJKT(r.cnf)
	}
	return w.payload(cnf, jkt), nil
}

// Claims checks the validity period against now (with leeway) and returns
// the Claims. requireExpiry refuses a payload without exp: JWT access
// tokens must carry one (RFC 9068 §2.2), an introspection response may
// omit it (RFC 7662 §2.2).
func (p *Payload) Claims(now time.Time, leeway time.Duration, requireExpiry bool) (*Claims, error) {
	if p.Expiry.IsZero() {
		if requireExpiry {
			return nil, ErrMissingExpiry
		}
	} else if !now.Before(p.Expiry.Add(leeway)) {
		return nil, ErrExpired
	}
	if !p.NotBefore.IsZero() && now.Add(leeway).Before(p.NotBefore) {
		return nil, fmt.Errorf("%w: nbf is in the future", ErrNotYetValid)
	}
	if !p.IssuedAt.IsZero() && now.Add(leeway).Before(p.IssuedAt) {
		return nil, fmt.Errorf("%w: iat is in the future", ErrNotYetValid)
	}
	if err := p.headerSafe(); err != nil {
		return nil, err
	}
	g := &Grant{Issuer: p.Issuer, ClientID: p.ClientID, Audience: p.Audience, Scopes: p.Scopes, JKT: p.JKT}
	g.Scope = p.scope
	if g.Scope == "" {
		g.Scope = strings.Join(g.Scopes, " ")
	}
	c := &Claims{Subject: p.Subject, Expiry: p.Expiry, SessionID: p.SessionID, Grant: g, Extra: p.Extra}
	if !p.IssuedAt.IsZero() {
		// Whole seconds, the fraction dropped: a watermark's Before
		// refuses its whole second, so rounding down errs on the side of
		// refusing.
		c.IssuedAt = p.IssuedAt.Unix()
	}
	return c, nil
}

// headerSafe checks the claims that go upstream as identity header values
// (the subject, the client id, the scopes): a value that a proxy or the
// upstream would read otherwise than it was decided on is refused as
// malformed, never passed on.
//   - sub and client_id hold no control character (RFC 9110 §5.5: CR, LF
//     and NUL are invalid in a field value, and parsers differ on the
//     rest) and neither start nor end with a space, which a parser strips
//     as whitespace around the value: " alice" would reach the upstream
//     as "alice".
//   - Each scope is a scope-token, 1*NQCHAR (RFC 6749 §3.3). Scopes are
//     separated by spaces alone (SplitScope): a tab or a line break is a
//     character no scope may hold, not a separator, and a space inside
//     one scp entry would make it read as two scopes once joined.
func (p *Payload) headerSafe() error {
	if !fieldSafe(p.Subject) {
		return fmt.Errorf("%w: claim \"sub\" %q holds a control character or surrounding space", ErrMalformed, p.Subject)
	}
	if !fieldSafe(p.ClientID) {
		return fmt.Errorf("%w: client id %q holds a control character or surrounding space", ErrMalformed, p.ClientID)
	}
	for _, s := range p.Scopes {
		if !scopeToken(s) {
			return fmt.Errorf("%w: scope %q is not a scope-token (RFC 6749 §3.3)", ErrMalformed, s)
		}
	}
	return nil
}

// IdentityHeaderSafe reports whether a subject, a client id and scopes
// pass the check every verified token's do (see headerSafe), for claims
// read back from elsewhere, such as a verdict another replica wrote.
func IdentityHeaderSafe(subject, clientID string, scopes []string) bool {
	p := Payload{Subject: subject, ClientID: clientID, Scopes: scopes}
	return p.headerSafe() == nil
}

// fieldSafe reports whether s can be an HTTP field value as it is: no
// control character (0x00-0x1F, 0x7F) and no space at either end. Bytes
// from 0x80 (UTF-8) are kept.
func fieldSafe(s string) bool {
	if s == "" {
		return true
	}
	if s[0] == ' ' || s[len(s)-1] == ' ' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f {
			return false
		}
	}
	return true
}

// scopeToken reports whether s is 1*NQCHAR, NQCHAR being %x21 / %x23-5B /
// %x5D-7E (RFC 6749 §3.3 and Appendix A).
func scopeToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// SplitScope splits a scope string at its spaces, the one separator RFC
// 6749 §3.3 has, dropping empty fields (a doubled space reads the same to
// everyone). Unlike strings.Fields it leaves a tab or a line break inside
// the scope it is in: "a\tb" is one scope, and no scope-token, not the two
// scopes a and b.
func SplitScope(s string) []string {
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] != ' ' && (i == 0 || s[i-1] == ' ') {
			n++
		}
	}
	if n == 0 {
		return nil
	}
	out := make([]string, 0, n)
	for s != "" {
		var f string
		f, s, _ = strings.Cut(s, " ")
		if f != "" {
			out = append(out, f)
		}
	}
	return out
}

// thumbprintLen is the length of a SHA-256 JWK thumbprint (RFC 7638) in
// base64url without padding: 32 bytes.
const thumbprintLen = 43

// ConfirmationJKT reads the value of a cnf claim or introspection member
// (RFC 7800 §3.1) and returns its jkt when that is the whole binding: an
// object with exactly one member, "jkt" (RFC 9449 §6.1 and §6.2), whose
// value is a SHA-256 JWK thumbprint in canonical base64url (43
// characters; a digest of another length is no thumbprint DPoP defines).
// Anything else — mTLS's x5t#S256 (RFC 8705 §3.1), a jwk, jkt beside
// another member, a jkt of another length or alphabet, a value that is
// not an object, an ambiguous object (see members) — is a binding the
// gateway cannot check: ok is false, and the token must be refused.
func ConfirmationJKT(cnf []byte) (jkt string, ok bool) {
	n := 0
	err := members(cnf, func(name string, v []byte) error {
		n++
		if name != "jkt" || n > 1 {
			return errors.New("not a cnf with jkt alone")
		}
		return readString(v, &jkt)
	})
	if err != nil || n != 1 || len(jkt) != thumbprintLen || !canonicalBase64URL(jkt) {
		return "", false
	}
	return jkt, true
}

// decodeSegment decodes one segment of a JWS compact token: base64url
// without padding (RFC 7515 §2), in its one canonical form (see
// internal/b64seg).
func decodeSegment(seg string) ([]byte, error) {
	b, ok := b64seg.Decode(seg)
	if !ok {
		return nil, errors.New("invalid base64url")
	}
	return b, nil
}

// canonicalBase64URL reports whether s is base64url without padding in
// the one form an encoder writes (see internal/b64seg). Any other spelling
// of the same bytes would make a different string of the same token: a
// new cache entry, and a way around a revocation by the token's hash. The
// signature segment is held to it too, and decoded by b64seg as well
// (verifySignature).
func canonicalBase64URL(s string) bool { return b64seg.Canonical(s) }

// stringList accepts a JSON string or an array of strings, as aud may be
// either (RFC 7519 §4.1.3). A single string is one value.
type stringList []string

func (l *stringList) UnmarshalJSON(b []byte) error {
	return readStrings(b, (*[]string)(l), func(s string) []string { return []string{s} })
}

// scopeList reads scp, which servers send as an array or, like scope, as
// one space-separated string.
type scopeList []string

func (l *scopeList) UnmarshalJSON(b []byte) error {
	return readStrings(b, (*[]string)(l), SplitScope)
}

// numericDate is seconds since the epoch, possibly fractional (RFC 7519 §2).
type numericDate float64

// set checks f is a date a token can carry.
func (d *numericDate) set(f float64) error {
	if math.IsNaN(f) || math.IsInf(f, 0) || f < 0 || f > 1e11 {
		return errors.New("numeric date out of range")
	}
	*d = numericDate(f)
	return nil
}

// time converts a present date; an absent one (nil) is the zero time.
func (d *numericDate) time() time.Time {
	if d == nil {
		return time.Time{}
	}
	sec, frac := math.Modf(float64(*d))
	return time.Unix(int64(sec), int64(frac*1e9))
}
