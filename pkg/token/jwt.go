package token

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/extauthz/extauthz/internal/mediatype"
	"github.com/extauthz/extauthz/pkg/jwks"
)

// KeySource hands out an issuer's verification keys. *jwks.Source
// implements it; errors wrapping jwks.ErrUnavailable mean "cannot tell now".
type KeySource interface {
	Key(ctx context.Context, kid, alg string) (crypto.PublicKey, error)
}

// HeldKeySource is a KeySource that can say, without fetching anything,
// which key it holds now for a kid and an alg (nil: none held, which is
// not a refusal: Key may find it by fetching). Without it, IssuerSet's
// VerifyHeld treats every key as needing the network.
type HeldKeySource interface {
	KeySource
	HeldKey(kid, alg string) crypto.PublicKey
}

// Introspector verifies a token by asking the authorization server that
// issued it (RFC 7662). Errors wrap the failure classes of this package;
// ErrUnavailable when the server cannot answer now.
type Introspector interface {
	Introspect(ctx context.Context, raw string) (*Claims, error)
}

// Mode is how an issuer's tokens are verified.
type Mode int

const (
	// ModeJWT verifies JWTs locally against the issuer's keys.
	ModeJWT Mode = iota
	// ModeIntrospection asks the issuer about every token.
	ModeIntrospection
	// ModeAuto verifies a JWT naming the issuer locally and introspects
	// any other token presented to a resource trusting the issuer.
	ModeAuto
)

// Issuer is how one trusted issuer's tokens are verified.
type Issuer struct {
	Mode Mode
	// Keys verify JWTs (ModeJWT, ModeAuto).
	Keys KeySource
	// Introspector answers for other tokens (ModeIntrospection, ModeAuto).
	Introspector Introspector
	// Claims names where the issuer puts audiences, scopes and client id.
	Claims ClaimNames
	// AllowUntyped accepts JWT access tokens whose typ header is absent
	// or "JWT", for servers that do not type them at+jwt (configured as
	// require_typ: false). The zero value requires at+jwt; a JWT typed
	// as anything else is refused either way (see accessToken).
	AllowUntyped bool
}

// DefaultAlgorithms are the asymmetric JWS algorithms accepted by default.
var DefaultAlgorithms = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"}

// Options configures an IssuerSet.
type Options struct {
	// Issuers maps each trusted issuer (exact iss value) to how its tokens
	// are verified.
	Issuers map[string]Issuer
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

// IssuerSet verifies the access tokens of a set of trusted issuers, each
// in its mode: JWS-signed JWTs (RFC 9068) locally, other tokens by
// introspection.
type IssuerSet struct {
	issuers  map[string]Issuer
	algs     map[string]*sigAlg
	leeway   time.Duration
	maxBytes int
	now      func() time.Time
}

// NewIssuerSet checks the options and builds a verifier.
func NewIssuerSet(o Options) (*IssuerSet, error) {
	names := o.Algorithms
	if names == nil {
		names = DefaultAlgorithms
	}
	algs := make(map[string]*sigAlg, len(names))
	for _, n := range names {
		if n == "none" || strings.HasPrefix(n, "HS") {
			return nil, fmt.Errorf("token: algorithm %q is never accepted", n)
		}
		a, ok := sigAlgs[n]
		if !ok {
			return nil, fmt.Errorf("token: unknown algorithm %q", n)
		}
		algs[n] = a
	}
	for iss, is := range o.Issuers {
		if (is.Mode != ModeIntrospection && is.Keys == nil) || (is.Mode != ModeJWT && is.Introspector == nil) {
			return nil, fmt.Errorf("token: issuer %q lacks keys or an introspector for its mode", iss)
		}
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = 16 << 10
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &IssuerSet{issuers: o.Issuers, algs: algs, leeway: o.Leeway, maxBytes: o.MaxBytes, now: o.Now}, nil
}

// header is the part of the JOSE header verification reads. Everything
// else, notably jku, x5u, jwk and x5c, is ignored on purpose: keys come
// only from the issuer's configured key set.
type header struct {
	Alg, Kid string
	// Crit and B64 are present (any value, null included): the token is
	// refused.
	Crit, B64 bool
	// Cty is the content type; "JWT" means the payload is another JWT.
	Cty string
	// Typ is the token's media type (RFC 7515 §4.1.9); HasTyp reports
	// whether the header has it at all (null included).
	Typ    string
	HasTyp bool
}

// headerNames are the header parameters header reads.
var headerNames = []string{"alg", "kid", "crit", "b64", "cty", "typ"}

// parseHeader reads a JOSE header, as strictly as ParsePayload reads
// claims (see members).
func parseHeader(data []byte) (header, error) {
	var h header
	err := members(data, func(name string, v []byte) error {
		var err error
		switch name {
		case "alg":
			err = readString(v, &h.Alg)
		case "kid":
			err = readString(v, &h.Kid)
		case "cty":
			err = readString(v, &h.Cty)
		case "typ":
			h.HasTyp = true
			err = readString(v, &h.Typ)
		case "crit":
			h.Crit = true
		case "b64":
			h.B64 = true
		default:
			if caseVariant(name, headerNames...) {
				return fmt.Errorf("parameter %q differs from a standard one only in case", name)
			}
		}
		if err != nil {
			return fmt.Errorf("parameter %q has the wrong type", name)
		}
		return nil
	})
	return h, err
}

// jwt is a token in JWS compact form whose header and claims are
// readable JSON objects; nothing in it is verified yet.
type jwt struct {
	header  header
	payload []byte
	iss     string
	// claims are the standard claims' raw values, found by the scan that
	// checked the claims set, read once the signature has verified.
	claims claimValues
}

// Verify checks a token for a resource that trusts the given issuers.
//
// A readable JWT is routed by its iss: an issuer the resource does not
// trust fails at once, and is never introspected (a token is never sent
// to a server that did not issue it); a trusted issuer verifies it in its
// mode. Any other token — opaque, encrypted, or a JWT without iss — can
// only be judged by the resource's introspecting server, if it has one.
func (v *IssuerSet) Verify(ctx context.Context, raw string, trusted map[string]struct{}) (*Claims, error) {
	return v.verify(ctx, raw, trusted, false)
}

// VerifyHeld is Verify with only the keys held now (HeldVerifier): a
// token whose key is not held, or that its issuer introspects, fails with
// ErrNeedsNetwork, and nothing is fetched or called.
func (v *IssuerSet) VerifyHeld(raw string, trusted map[string]struct{}) (*Claims, error) {
	return v.verify(context.Background(), raw, trusted, true)
}

// verify is Verify, or VerifyHeld when held: every step that would wait
// on the network then fails with ErrNeedsNetwork instead.
func (v *IssuerSet) verify(ctx context.Context, raw string, trusted map[string]struct{}, held bool) (*Claims, error) {
	if len(raw) > v.maxBytes {
		return nil, fmt.Errorf("%w: longer than %d bytes", ErrMalformed, v.maxBytes)
	}
	t, perr := parseJWT(raw)
	if perr != nil || t.iss == "" {
		if in := v.introspectorFor(trusted); in != nil {
			return introspect(ctx, in, raw, held)
		}
		if perr != nil {
			return nil, perr
		}
		return nil, ErrUnknownIssuer
	}
	if _, ok := trusted[t.iss]; !ok {
		return nil, ErrUnknownIssuer
	}
	is, ok := v.issuers[t.iss]
	if !ok {
		return nil, ErrUnknownIssuer
	}
	if is.Mode == ModeIntrospection {
		return introspect(ctx, is.Introspector, raw, held)
	}
	return v.verifyJWT(ctx, raw, t, is, held)
}

// introspect asks in about raw, unless held (VerifyHeld).
func introspect(ctx context.Context, in Introspector, raw string, held bool) (*Claims, error) {
	if held {
		return nil, ErrNeedsNetwork
	}
	return in.Introspect(ctx, raw)
}

// key returns is's key for kid and alg: only a held one when held
// (VerifyHeld), ErrNeedsNetwork when none is.
func (is Issuer) key(ctx context.Context, kid, alg string, held bool) (crypto.PublicKey, error) {
	if !held {
		return is.Keys.Key(ctx, kid, alg)
	}
	if h, ok := is.Keys.(HeldKeySource); ok {
		if k := h.HeldKey(kid, alg); k != nil {
			return k, nil
		}
	}
	return nil, ErrNeedsNetwork
}

// introspectorFor returns the introspector of the one trusted issuer
// that introspects, or nil when none does. Should several (a
// configuration Validate refuses), none is chosen: an opaque token does
// not say whose it is, and it must not be disclosed to a guess.
func (v *IssuerSet) introspectorFor(trusted map[string]struct{}) Introspector {
	var found Introspector
	for iss := range trusted {
		is, ok := v.issuers[iss]
		if !ok || is.Mode == ModeJWT {
			continue
		}
		if found != nil {
			return nil
		}
		found = is.Introspector
	}
	return found
}

// parseJWT splits a JWS compact token and decodes its header and claims.
// Every segment must be canonical base64url (see canonicalBase64URL), and
// the header and claims unambiguous JSON objects (see members).
func parseJWT(raw string) (*jwt, error) {
	h64, rest, ok := strings.Cut(raw, ".")
	if !ok {
		return nil, fmt.Errorf("%w: not a JWS compact serialization", ErrMalformed)
	}
	p64, s64, ok := strings.Cut(rest, ".")
	if !ok || strings.IndexByte(s64, '.') >= 0 || s64 == "" {
		// Five parts would be an encrypted JWT (JWE): not readable here.
		return nil, fmt.Errorf("%w: not a JWS compact serialization", ErrMalformed)
	}
	if !canonicalBase64URL(s64) {
		return nil, fmt.Errorf("%w: signature: invalid base64url", ErrMalformed)
	}
	hb, err := decodeSegment(h64)
	if err != nil {
		return nil, fmt.Errorf("%w: header: %v", ErrMalformed, err)
	}
	t := &jwt{}
	if t.header, err = parseHeader(hb); err != nil {
		return nil, fmt.Errorf("%w: header: %v", ErrMalformed, err)
	}
	if strings.EqualFold(t.header.Cty, "JWT") || strings.EqualFold(t.header.Cty, "application/jwt") {
		// A nested JWT (RFC 7519 §5.2): the claims would be those of the
		// inner token, which a reader that does not unwrap it never sees.
		// Access tokens are never nested (RFC 9068).
		return nil, fmt.Errorf("%w: header: nested JWT (cty %q)", ErrMalformed, t.header.Cty)
	}
	payload, err := decodeSegment(p64)
	if err != nil {
		return nil, fmt.Errorf("%w: claims: %v", ErrMalformed, err)
	}
	// The whole claims set is checked here, before any key is fetched; the
	// rest of it is read once the signature has verified.
	if err = t.claims.scan(payload); err != nil {
		return nil, fmt.Errorf("%w: claims: %v", ErrMalformed, err)
	}
	// Without iss, t.iss stays "", and Verify routes the token so.
	if t.claims.iss != nil && readString(t.claims.iss, &t.iss) != nil {
		return nil, fmt.Errorf(`%w: claims: claim "iss" has the wrong type`, ErrMalformed)
	}
	t.payload = payload
	return t, nil
}

// verifyJWT checks a JWT's header, signature and validity period. The
// order matters for cost: everything cheap and definitive comes before
// the signature check, and nothing from the claims is trusted until the
// signature has verified.
func (v *IssuerSet) verifyJWT(ctx context.Context, raw string, t *jwt, is Issuer, held bool) (*Claims, error) {
	if t.header.Crit || t.header.B64 {
		return nil, ErrCritical
	}
	alg, ok := v.algs[t.header.Alg]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrAlgorithm, t.header.Alg)
	}
	key, err := is.key(ctx, t.header.Kid, t.header.Alg, held)
	if err != nil {
		if held {
			return nil, err // ErrNeedsNetwork: VerifyHeld's caller calls Verify
		}
		if errors.Is(err, jwks.ErrUnavailable) || ctx.Err() != nil {
			return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
		return nil, fmt.Errorf("%w: kid %q", ErrUnknownKey, t.header.Kid)
	}
	if err := verifySignature(alg, key, raw); err != nil {
		return nil, ErrSignature
	}
	var p *Payload
	if is.Claims.standard() {
		// The claims set was scanned once already: only the standard
		// claims' values are left to read.
		p, err = t.claims.payload(t.iss)
	} else {
		p, err = ParsePayload(t.payload, is.Claims)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: claims: %v", ErrMalformed, err)
	}
	if err := accessToken(t.header, p, is.AllowUntyped); err != nil {
		return nil, err
	}
	return p.Claims(v.now(), v.leeway, true)
}

// accessToken checks that a verified JWT is an access token the gateway
// can accept: the one place where a JWT's kind is judged (an introspected
// token's is judged by its server's answer).
//
// Its typ must say it is an access token (RFC 9068 §2.1, §4: "at+jwt"),
// or, when the issuer does not type its access tokens (allowUntyped), be
// absent or the generic "JWT". Any other type is another kind of JWT —
// a refresh token (rt+jwt), an ID token, a security event, a DPoP proof,
// a logout token — and is refused whatever the issuer's setting: such a
// JWT can carry the right iss and aud, and only its type tells it apart.
//
// And a cnf it carries (RFC 7800 §3.1) must be a binding the gateway can
// check: cnf.jkt alone (DPoP, RFC 9449 §6.1; see ConfirmationJKT). A token
// bound to a TLS client certificate (RFC 8705 §3, cnf.x5t#S256) or in any
// other way may only be used by a presenter proving possession of a key
// the gateway never sees: it is refused here. A DPoP-bound one passes,
// its thumbprint in the claims (Grant.JKT), and is not yet a bearer
// token: its proof is the reader's to check.
func accessToken(h header, p *Payload, allowUntyped bool) error {
	switch {
	case !h.HasTyp:
		if !allowUntyped {
			return fmt.Errorf("%w: no typ (want at+jwt)", ErrNotAccessToken)
		}
	case mediatype.IsApplication(h.Typ, "at+jwt"):
	case mediatype.IsApplication(h.Typ, "jwt"):
		if !allowUntyped {
			return fmt.Errorf("%w: typ %q (want at+jwt)", ErrNotAccessToken, h.Typ)
		}
	default:
		return fmt.Errorf("%w: typ %q", ErrNotAccessToken, h.Typ)
	}
	if p.Confirmation && p.JKT == "" {
		return fmt.Errorf("%w: sender-constrained (cnf) other than by a DPoP key thumbprint (cnf.jkt)", ErrNotAccessToken)
	}
	return nil
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
	b, err := decodeSegment(p64)
	if err != nil {
		return time.Time{}, false
	}
	var exp *numericDate
	var store numericDate
	if members(b, func(name string, v []byte) error {
		if name == "exp" {
			return readDate(v, &exp, &store)
		}
		return nil
	}) != nil || exp == nil {
		return time.Time{}, false
	}
	return exp.time(), true
}
