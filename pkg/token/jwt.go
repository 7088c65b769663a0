package token

import (
	"bytes"
	"context"
	"crypto"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jws"

	"github.com/extauthz/extauthz/pkg/jwks"
)

// KeySource hands out an issuer's verification keys. *jwks.Source
// implements it; errors wrapping jwks.ErrUnavailable mean "cannot tell now".
type KeySource interface {
	Key(ctx context.Context, kid, alg string) (crypto.PublicKey, error)
}

// DefaultAlgorithms are the asymmetric JWS algorithms accepted by default.
var DefaultAlgorithms = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"}

// JWTOptions configures a JWTVerifier.
type JWTOptions struct {
	// Issuers maps each trusted issuer (exact iss value) to its keys.
	Issuers map[string]KeySource
	// Algorithms accepted; nil means DefaultAlgorithms. "none" and HS* are
	// refused even if listed: a shared secret has no place in a gateway
	// that only verifies.
	Algorithms []string
	// Leeway tolerated on exp, nbf and iat.
	Leeway time.Duration
	// MaxBytes: longer tokens are rejected before any parsing.
	MaxBytes int
	// Now is the clock (nil: time.Now).
	Now func() time.Time
}

// JWTVerifier verifies JWS-signed JWT access tokens (RFC 9068).
type JWTVerifier struct {
	issuers  map[string]KeySource
	algs     map[string]jwa.SignatureAlgorithm
	leeway   time.Duration
	maxBytes int
	now      func() time.Time
}

// NewJWTVerifier checks the options and builds a verifier.
func NewJWTVerifier(o JWTOptions) (*JWTVerifier, error) {
	names := o.Algorithms
	if names == nil {
		names = DefaultAlgorithms
	}
	algs := make(map[string]jwa.SignatureAlgorithm, len(names))
	for _, n := range names {
		if n == "none" || strings.HasPrefix(n, "HS") {
			return nil, fmt.Errorf("token: algorithm %q is never accepted", n)
		}
		a, ok := jwa.LookupSignatureAlgorithm(n)
		if !ok {
			return nil, fmt.Errorf("token: unknown algorithm %q", n)
		}
		algs[n] = a
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = 16 << 10
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &JWTVerifier{issuers: o.Issuers, algs: algs, leeway: o.Leeway, maxBytes: o.MaxBytes, now: o.Now}, nil
}

// header is the part of the JOSE header verification reads. Everything
// else, notably jku, x5u, jwk and x5c, is ignored on purpose: keys come
// only from the issuer's configured key set.
type header struct {
	Alg  string          `json:"alg"`
	Kid  string          `json:"kid"`
	Crit json.RawMessage `json:"crit"`
	B64  json.RawMessage `json:"b64"`
}

// Verify checks the token's form, issuer, signature and validity period.
// The order matters for cost: everything cheap and definitive comes before
// the signature check, and nothing from the claims is trusted until the
// signature has verified.
func (v *JWTVerifier) Verify(ctx context.Context, raw string, trusted map[string]struct{}) (*Claims, error) {
	if len(raw) > v.maxBytes {
		return nil, fmt.Errorf("%w: longer than %d bytes", ErrMalformed, v.maxBytes)
	}
	h64, rest, ok := strings.Cut(raw, ".")
	if !ok {
		return nil, fmt.Errorf("%w: not a JWS compact serialization", ErrMalformed)
	}
	p64, s64, ok := strings.Cut(rest, ".")
	if !ok || strings.IndexByte(s64, '.') >= 0 || s64 == "" {
		// Five parts would be an encrypted JWT (JWE): not accepted.
		return nil, fmt.Errorf("%w: not a JWS compact serialization", ErrMalformed)
	}
	var h header
	if err := decodeSegment(h64, &h); err != nil {
		return nil, fmt.Errorf("%w: header: %v", ErrMalformed, err)
	}
	if len(h.Crit) > 0 || len(h.B64) > 0 {
		return nil, ErrCritical
	}
	alg, ok := v.algs[h.Alg]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrAlgorithm, h.Alg)
	}
	var c claimsJSON
	if err := decodeSegment(p64, &c); err != nil {
		return nil, fmt.Errorf("%w: claims: %v", ErrMalformed, err)
	}
	if _, ok := trusted[c.Iss]; !ok {
		return nil, ErrUnknownIssuer
	}
	keys, ok := v.issuers[c.Iss]
	if !ok {
		return nil, ErrUnknownIssuer
	}
	key, err := keys.Key(ctx, h.Kid, h.Alg)
	if err != nil {
		if errors.Is(err, jwks.ErrUnavailable) || ctx.Err() != nil {
			return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
		return nil, fmt.Errorf("%w: kid %q", ErrUnknownKey, h.Kid)
	}
	if _, err := jws.VerifyCompactFast(key, []byte(raw), alg); err != nil {
		return nil, ErrSignature
	}
	return c.toClaims(v.now(), v.leeway)
}

// UnverifiedExpiry reads a JWT's exp without verifying anything. Only for
// bookkeeping that a forged value cannot abuse (how long to keep a
// revocation); never for a decision.
func UnverifiedExpiry(raw string) (time.Time, bool) {
	_, rest, ok := strings.Cut(raw, ".")
	if !ok {
		return time.Time{}, false
	}
	p64, _, ok := strings.Cut(rest, ".")
	if !ok {
		return time.Time{}, false
	}
	var c struct {
		Exp *numericDate `json:"exp"`
	}
	if decodeSegment(p64, &c) != nil || c.Exp == nil {
		return time.Time{}, false
	}
	return c.Exp.time(), true
}

// decodeSegment decodes one base64url (unpadded, RFC 7515 §2) JSON segment.
func decodeSegment(seg string, into any) error {
	buf := make([]byte, base64.RawURLEncoding.DecodedLen(len(seg)))
	n, err := base64.RawURLEncoding.Decode(buf, []byte(seg))
	if err != nil {
		return errors.New("invalid base64url")
	}
	buf = buf[:n]
	if len(buf) == 0 || buf[0] != '{' {
		return errors.New("not a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(buf))
	if err := dec.Decode(into); err != nil {
		return errors.New("invalid JSON")
	}
	if dec.More() {
		return errors.New("trailing data after JSON object")
	}
	return nil
}

// claimsJSON is the wire form of the claims verification reads.
type claimsJSON struct {
	Iss      string       `json:"iss"`
	Sub      string       `json:"sub"`
	Aud      stringList   `json:"aud"`
	Exp      *numericDate `json:"exp"`
	Nbf      *numericDate `json:"nbf"`
	Iat      *numericDate `json:"iat"`
	ClientID string       `json:"client_id"`
	Azp      string       `json:"azp"`
	Scope    string       `json:"scope"`
	Scp      scopeList    `json:"scp"`
}

func (c *claimsJSON) toClaims(now time.Time, leeway time.Duration) (*Claims, error) {
	if c.Exp == nil {
		return nil, ErrMissingExpiry
	}
	exp := c.Exp.time()
	if !now.Before(exp.Add(leeway)) {
		return nil, ErrExpired
	}
	g := &Grant{Issuer: c.Iss, ClientID: c.ClientID, Audience: c.Aud}
	if g.ClientID == "" {
		g.ClientID = c.Azp
	}
	if c.Nbf != nil && now.Add(leeway).Before(c.Nbf.time()) {
		return nil, fmt.Errorf("%w: nbf is in the future", ErrNotYetValid)
	}
	if c.Iat != nil && now.Add(leeway).Before(c.Iat.time()) {
		return nil, fmt.Errorf("%w: iat is in the future", ErrNotYetValid)
	}
	if c.Scope != "" {
		g.Scopes = strings.Fields(c.Scope)
	} else if len(c.Scp) > 0 {
		g.Scopes = c.Scp
	}
	g.Scope = strings.Join(g.Scopes, " ")
	out := &Claims{Subject: c.Sub, Expiry: exp, Grant: g}
	return out, nil
}

// stringList accepts a JSON string or an array of strings, as aud may be
// either (RFC 7519 §4.1.3). A single string is one value.
type stringList []string

func (l *stringList) UnmarshalJSON(b []byte) error {
	return unmarshalStrings(b, (*[]string)(l), func(s string) []string { return []string{s} })
}

// scopeList reads scp, which servers send as an array or, like scope, as
// one space-separated string.
type scopeList []string

func (l *scopeList) UnmarshalJSON(b []byte) error {
	return unmarshalStrings(b, (*[]string)(l), strings.Fields)
}

// unmarshalStrings decodes an array of strings, or one string turned into
// a list by fromString.
func unmarshalStrings(b []byte, into *[]string, fromString func(string) []string) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*into = fromString(s)
		return nil
	}
	return json.Unmarshal(b, into)
}

// numericDate is seconds since the epoch, possibly fractional (RFC 7519 §2).
type numericDate float64

func (d *numericDate) UnmarshalJSON(b []byte) error {
	var f float64
	if err := json.Unmarshal(b, &f); err != nil {
		return errors.New("numeric date must be a number")
	}
	if math.IsNaN(f) || math.IsInf(f, 0) || f < 0 || f > 1e11 {
		return errors.New("numeric date out of range")
	}
	*d = numericDate(f)
	return nil
}

func (d numericDate) time() time.Time {
	sec, frac := math.Modf(float64(d))
	return time.Unix(int64(sec), int64(frac*1e9))
}
