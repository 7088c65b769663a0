// Package token verifies OAuth 2.1 access tokens and turns them into Claims,
// the small set of facts an authorization decision needs.
//
// It knows issuers, keys, signatures and time; it does not know protected
// resources, audiences or scopes required by a request — those are the
// decision's business (package authz). Keys come from a KeySource (package
// jwks in production), never from the token itself: jku, x5u, jwk and x5c
// headers are ignored. A token is read in one way only: canonical
// base64url, and header and claims that no two JSON parsers could read
// differently (strictjson.go); anything else is malformed.
//
// The package is just over ~1,500 lines because strict JSON (strictjson.go) and the
// canonical cache hash (cachehash.go) belong to reading a token exactly one way.
package token

import (
	"context"
	"encoding/binary"
	"errors"
	"time"
)

// Claims are the verified facts about one access token that decisions and
// the upstream need. They are immutable once verified and shared by every
// request presenting the same token.
//
// They are kept small on purpose — a replica caches one per active token:
// what is unique to the token (subject, expiry) lives here, and what many
// tokens share (issuer, client, audiences, scopes) lives in a Grant that
// the cache can intern. Claims verification needs only once (jti, nbf)
// are not kept; iat and sid are, for revocation watermarks
// (pkg/revocation), which are checked on every decision, cache hit or not.
type Claims struct {
	Subject string
	Expiry  time.Time
	// IssuedAt is the token's iat in whole seconds since the epoch, its
	// fraction dropped; 0 when the token has none, which a revocation
	// watermark reads as issued at the epoch: revoked by any watermark
	// that matches it. Seconds are all a watermark compares (its Before
	// refuses the whole second), and an int64 keeps the cached Claims 16
	// bytes smaller than a time.Time would.
	IssuedAt int64
	// SessionID is the token's sid (the session at the authorization
	// server, as OpenID Connect names it); "" when absent.
	SessionID string
	*Grant
	// Extra holds the claims an issuer is configured to keep for policies
	// (keep_claims), as decoded JSON values; nil when none are kept.
	Extra map[string]any
}

// Grant is the part of a token's claims that many tokens share: who issued
// it, to which client, for which audiences and scopes, and the key it is
// bound to, if any.
type Grant struct {
	Issuer   string
	ClientID string   // client_id, else azp (RFC 9068 §2.2)
	Audience []string // aud
	Scopes   []string // from "scope" (space separated) or "scp" (array)
	Scope    string   // Scopes joined with spaces, as sent upstream
	// CacheTTL, when positive, caps how long a verdict holding this grant
	// may be cached, below the cache's own cap: an introspected token is
	// re-checked this often, so that a revocation at its server is seen.
	CacheTTL time.Duration
	// JKT, when set, is the token's cnf.jkt: the base64url SHA-256 JWK
	// thumbprint (RFC 7638) of the key the token is bound to by DPoP (RFC
	// 9449 §6.1 for a JWT, §6.2 for an introspection answer), always 43
	// characters of canonical base64url. Such a token is not a bearer
	// token: whoever reads Claims must refuse it unless the request proved
	// possession of that key (a DPoP proof). Empty for an unbound token;
	// a token bound in any other way never yields Claims (ErrNotAccessToken).
	// A client instance keeps its key across tokens, so a bound grant is
	// still shared, by that instance's tokens.
	JKT string
}

// HasAudience reports whether any of the token's audiences is in accepted.
func (g *Grant) HasAudience(accepted map[string]struct{}) bool {
	for _, a := range g.Audience {
		if _, ok := accepted[a]; ok {
			return true
		}
	}
	return false
}

// Key identifies a grant's content, for interning.
func (g *Grant) Key() string {
	return string(g.AppendKey(make([]byte, 0, len(g.Issuer)+len(g.ClientID)+len(g.Scope)+len(g.JKT)+64)))
}

// AppendKey appends Key to dst: a caller that only looks a grant up can
// do so from a buffer on its stack, without allocating.
func (g *Grant) AppendKey(b []byte) []byte {
	return AppendGrantKey(b, g.Issuer, g.ClientID, g.Audience, g.Scopes, g.CacheTTL, g.JKT)
}

// AppendGrantKey appends the Key of the grant these fields make, before
// there is a Grant: a decoder finds an interned grant by it and builds one
// only when there is none.
//
// Every string and list is preceded by its length, so that the key is
// injective: interning hands a token the grant of whatever has its key,
// and audiences and scopes come from the token, where an aud or scp array
// may hold any character. With separators instead, one scope "a\x01b"
// would have shared the key of the two scopes "a" and "b".
//
// The thumbprint may be given as bytes, so that a decoder need not make a
// string of it to look its grant up.
func AppendGrantKey[T string | []byte](b []byte, issuer, clientID string, audience, scopes []string, cacheTTL time.Duration, jkt T) []byte {
	b = appendKeyString(b, issuer)
	b = appendKeyString(b, clientID)
	for _, l := range [2][]string{audience, scopes} {
		b = binary.AppendUvarint(b, uint64(len(l)))
		for _, s := range l {
			b = appendKeyString(b, s)
		}
	}
	// A bound grant never shares a key with an unbound one, nor with one
	// bound to another key (jkt is "" when unbound), nor does a TTL's.
	b = binary.AppendVarint(b, int64(cacheTTL))
	return appendKeyString(b, jkt)
}

// appendKeyString appends s preceded by its length.
func appendKeyString[T string | []byte](b []byte, s T) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// Verifier turns a raw token into verified Claims.
//
// Claims with a JKT belong to a DPoP-bound token: the caller must refuse
// them (ErrNotAccessToken) unless it has verified the request's proof.
//
// trusted names the issuers the protected resource accepts; a token from
// any other issuer fails with ErrUnknownIssuer before any key is fetched,
// so a resource never waits on (or is made unavailable by) an issuer it
// does not trust.
type Verifier interface {
	Verify(ctx context.Context, raw string, trusted map[string]struct{}) (*Claims, error)
}

// HeldVerifier is a Verifier that can also verify a token with only what
// it holds: no key set fetched, no introspection call, nothing waited for.
// The caller can then run the verification on its own goroutine, without
// a deadline, as pure CPU work.
//
// VerifyHeld answers exactly as Verify would, or fails with
// ErrNeedsNetwork, having done nothing that Verify will not repeat: the
// caller then calls Verify.
type HeldVerifier interface {
	Verifier
	VerifyHeld(raw string, trusted map[string]struct{}) (*Claims, error)
}

// ErrNeedsNetwork is VerifyHeld's answer for a token whose verification
// needs the network: its key is not held, or its issuer introspects. It
// is not a verdict, only an instruction to call Verify, and no other
// error wraps it.
var ErrNeedsNetwork = errors.New("token: verification needs the network")

// Failure classes. Every error Verify returns wraps exactly one of them, so
// the decision's error table can map it to a status and a challenge.
var (
	// ErrMalformed: not a well-formed JWS compact token with JSON header and
	// claims, or too large to be parsed at all. Well-formed means canonical
	// base64url segments and unambiguous JSON objects (no repeated member,
	// no case variant of a member read, valid UTF-8), and not a nested JWT.
	ErrMalformed = errors.New("malformed token")
	// ErrAlgorithm: the header's alg is not accepted ("none", HS*, or not
	// configured).
	ErrAlgorithm = errors.New("token algorithm not accepted")
	// ErrCritical: the header lists critical extensions we do not understand
	// (RFC 7515 §4.1.11 requires rejecting the token).
	ErrCritical = errors.New("token has unsupported critical header parameters")
	// ErrUnknownIssuer: iss is absent or not a trusted issuer.
	ErrUnknownIssuer = errors.New("token issuer not trusted")
	// ErrUnknownKey: the issuer's current key set has no key for this token.
	ErrUnknownKey = errors.New("token signing key not found")
	// ErrSignature: the signature does not verify.
	ErrSignature = errors.New("token signature invalid")
	// ErrExpired: exp is in the past (beyond the leeway).
	ErrExpired = errors.New("token expired")
	// ErrMissingExpiry: the token has no exp; access tokens must expire.
	ErrMissingExpiry = errors.New("token has no expiry")
	// ErrNotYetValid: nbf or iat is in the future (beyond the leeway).
	ErrNotYetValid = errors.New("token not yet valid")
	// ErrInactive: the issuer's introspection endpoint says the token is
	// not active (RFC 7662 §2.2: revoked, expired, or never issued).
	ErrInactive = errors.New("token is not active")
	// ErrNotAccessToken: the token is not a bearer access token: a
	// refresh token or another kind of JWT (by its typ, or its issuer's
	// introspection answer), a JWT not typed at+jwt from an issuer that
	// types its access tokens, or a token bound to a key (cnf) that is
	// presented without its proof: one bound by anything but cnf.jkt
	// (mTLS's x5t#S256, RFC 8705, which the gateway cannot check; an
	// embedded jwk; …) is refused by Verify, a DPoP-bound one (Grant.JKT)
	// by whoever reads its Claims without a proof.
	ErrNotAccessToken = errors.New("token is not a bearer access token")
	// ErrUnavailable: the token cannot be verified now (keys or the
	// introspection endpoint unreachable).
	// Unlike all the others it says nothing about the token.
	ErrUnavailable = errors.New("cannot verify token now")
)

// Definitive reports whether err proves the token invalid, as opposed to a
// transient failure. Only definitive failures may be cached as negative.
// A not-yet-valid token becomes valid by itself, and an unknown kid may be
// a key the issuer has just started using: caching either would stretch a
// short gap (the leeway, the JWKS refetch interval) by the negative TTL.
// Neither is expensive to re-check: an unknown kid costs no signature check
// and, within the refetch interval, no fetch.
func Definitive(err error) bool {
	switch {
	case err == nil:
		return false
	case errors.Is(err, ErrUnavailable), errors.Is(err, ErrNotYetValid), errors.Is(err, ErrUnknownKey),
		errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return false
	}
	return true
}
