package dpop

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/extauthz/extauthz/internal/b64seg"
)

// Errors of Verify, one per answer the resource server gives (RFC 9449
// §7.1, §9). Every error Verify returns wraps exactly one of
// ErrInvalidProof, ErrUseNonce and ErrUnavailable.
var (
	// ErrInvalidProof: the proof is missing, malformed, not for this
	// request, too old, replayed, or its signature or key is wrong. The
	// answer is 401 with WWW-Authenticate: DPoP error="invalid_dpop_proof".
	ErrInvalidProof = errors.New("dpop: invalid DPoP proof")
	// ErrUseNonce: the proof is otherwise valid but lacks the server's
	// current nonce, or carries one that is no longer current. The answer
	// is 401 with WWW-Authenticate: DPoP error="use_dpop_nonce" and a
	// DPoP-Nonce header holding Nonces.Current().
	ErrUseNonce = errors.New("dpop: the proof must carry the server's current nonce")
	// ErrUnavailable: the replay store cannot say whether the proof was
	// seen before. The proof is not accepted; the answer is 503.
	ErrUnavailable = errors.New("dpop: replay store unavailable")
	// ErrKeyMismatch wraps ErrInvalidProof: the proof's key is not the one
	// the access token is bound to (Proof.JKT). An engine that does not
	// look for it answers invalid_dpop_proof; RFC 9449 §7.1 lets it answer
	// invalid_token instead, the token being the thing that does not fit.
	ErrKeyMismatch = fmt.Errorf("%w: the proof key is not the key the access token is bound to", ErrInvalidProof)
)

// DefaultAlgorithms are the proof algorithms accepted when
// Options.Algorithms is empty: the asymmetric algorithms that clients
// actually use for DPoP.
var DefaultAlgorithms = []string{"ES256", "ES384", "EdDSA", "RS256", "PS256"}

// Defaults of Options.
const (
	DefaultMaxAge = 60 * time.Second
	DefaultLeeway = 5 * time.Second
)

// Bounds on what a proof may hold. A DPoP header is attacker input read
// before any signature is checked: everything is bounded.
const (
	// MaxProofBytes bounds the DPoP header value. An RSA-4096 proof is
	// about 2.5 KiB; 8 KiB leaves room for an 8192-bit key.
	MaxProofBytes = 8 << 10
	// MaxJTIBytes bounds the jti claim. RFC 9449 §4.2 asks for 96 bits of
	// randomness or more; 256 bytes is generous for any encoding of that.
	MaxJTIBytes = 256
	// maxNonceBytes bounds a nonce claim: longer is malformed, as no nonce
	// this server issues comes near it.
	maxNonceBytes = 256
)

// Options configures a Verifier.
type Options struct {
	// Algorithms accepted for proofs (JWS alg names). Empty means
	// DefaultAlgorithms. Supported: ES256, ES384, ES512, EdDSA, Ed25519,
	// RS256, RS384, RS512, PS256, PS384, PS512. "none" and HS* are never
	// accepted (RFC 9449 §4.3 step 5: a proof is signed with a private
	// key the client holds; a MAC key would have to be shared).
	Algorithms []string
	// MaxAge: a proof whose iat is older than this is refused. Zero means
	// DefaultMaxAge.
	MaxAge time.Duration
	// Leeway: a proof whose iat is further in the future than this is
	// refused (client clocks run ahead). Zero means DefaultLeeway.
	Leeway time.Duration
	// Nonces, when set, requires every proof to carry a current server
	// nonce (RFC 9449 §9). nil: no nonce is required, and one a proof
	// carries is ignored.
	Nonces *Nonces
	// Replay remembers the proofs accepted within their window. Required.
	Replay ReplayStore
	// Now is the clock that judges iat. nil: time.Now.
	Now func() time.Time
	// HeaderCacheEntries bounds the cache of proof headers already read
	// (see DefaultHeaderCacheEntries, used when it is 0): one entry per
	// client key seen recently.
	HeaderCacheEntries int
}

// Verifier checks DPoP proofs presented to a resource server. It is safe
// for concurrent use.
type Verifier struct {
	algs   map[string]*algorithm
	maxAge time.Duration
	leeway time.Duration
	nonces *Nonces
	replay ReplayStore
	now    func() time.Time
	// headers holds the headers of proofs already verified.
	headers *headerCache
}

// NewVerifier checks the options and builds a Verifier.
func NewVerifier(o Options) (*Verifier, error) {
	names := o.Algorithms
	if len(names) == 0 {
		names = DefaultAlgorithms
	}
	algs := make(map[string]*algorithm, len(names))
	for _, n := range names {
		if n == "none" || strings.HasPrefix(strings.ToUpper(n), "HS") {
			return nil, fmt.Errorf("dpop: algorithm %q is never accepted for a proof", n)
		}
		a := lookupAlgorithm(n)
		if a == nil {
			return nil, fmt.Errorf("dpop: unsupported algorithm %q", n)
		}
		algs[n] = a
	}
	switch {
	case o.MaxAge < 0:
		return nil, errors.New("dpop: MaxAge is negative")
	case o.MaxAge == 0:
		o.MaxAge = DefaultMaxAge
	}
	switch {
	case o.Leeway < 0:
		return nil, errors.New("dpop: Leeway is negative")
	case o.Leeway == 0:
		o.Leeway = DefaultLeeway
	}
	if o.Replay == nil {
		return nil, errors.New("dpop: a replay store is required")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	switch {
	case o.HeaderCacheEntries < 0:
		return nil, errors.New("dpop: HeaderCacheEntries is negative")
	case o.HeaderCacheEntries == 0:
		o.HeaderCacheEntries = DefaultHeaderCacheEntries
	}
	return &Verifier{
		algs: algs, maxAge: o.MaxAge, leeway: o.Leeway, nonces: o.Nonces, replay: o.Replay, now: o.Now,
		headers: newHeaderCache(o.HeaderCacheEntries),
	}, nil
}

// ReplayTTL is how long an accepted proof is remembered: MaxAge + Leeway,
// the longest any proof stays acceptable after it was first seen (one
// issued Leeway in the future is acceptable until MaxAge after its iat).
func (v *Verifier) ReplayTTL() time.Duration { return v.maxAge + v.leeway }

// Algorithms are the accepted algorithms, for the algs parameter of the
// DPoP challenge (RFC 9449 §7.1) and dpop_signing_alg_values_supported.
func (v *Verifier) Algorithms() []string {
	out := make([]string, 0, len(v.algs))
	for _, n := range allAlgorithms {
		if _, ok := v.algs[n.name]; ok {
			out = append(out, n.name)
		}
	}
	return out
}

// Proof is what a request carried, as the engine read it.
type Proof struct {
	// Header is the value of the request's one DPoP header, without the
	// surrounding whitespace HTTP field parsing removes. The engine
	// refuses a request with two before calling Verify (RFC 9449 §4.3
	// step 1).
	Header string
	// Method is the request method; htm must equal it exactly.
	Method string
	// URI is the URI the client addressed, as the engine rebuilt it:
	// scheme://host[:port]/path, absolute, without query and fragment
	// (any are ignored). htu must equal it after normalisation.
	URI string
	// AccessToken is the token of Authorization: DPoP <token>. When set,
	// the proof's ath must be base64url(SHA-256(AccessToken)) (RFC 9449
	// §4.3 step 12).
	AccessToken string
	// AccessTokenSHA256, when set, is SHA-256(AccessToken), which the
	// caller has already computed (token.CacheHashAsSent): ath is compared
	// with it instead of hashing the token again.
	AccessTokenSHA256 *[sha256.Size]byte
	// JKT, when set, is the access token's cnf.jkt: the proof's key must
	// have this thumbprint (RFC 9449 §6.1, §7). Checking it here, before
	// the replay store, keeps proofs signed by some other key (say, by a
	// thief holding a stolen token) out of the store: they can neither
	// fill it nor cost a Redis round trip.
	JKT string
}

// Result is what a verified proof established.
type Result struct {
	// JKT is the base64url SHA-256 JWK thumbprint (RFC 7638) of the proof
	// key, to compare with the access token's cnf.jkt.
	JKT string
	// JTI is the proof's jti.
	JTI string
	// IssuedAt is the proof's iat.
	IssuedAt time.Time
	// NextNonce, when set, is the nonce the client should use from now on:
	// its proof carried the previous slot's, still accepted but soon not.
	// A resource server hands it out with the successful answer (RFC 9449
	// §8.2 and §9), sparing the client a use_dpop_nonce refusal later.
	NextNonce string
}

// Verify checks a DPoP proof for a request to this resource server, in
// the order doc.go gives, and records it as seen. Every refusal wraps
// ErrInvalidProof, ErrUseNonce or ErrUnavailable.
func (v *Verifier) Verify(ctx context.Context, p Proof) (Result, error) {
	var pr proof
	if err := v.parse(p.Header, &pr); err != nil {
		return Result{}, fmt.Errorf("%w: %v", ErrInvalidProof, err)
	}
	if err := v.checkRequest(&pr, p); err != nil {
		return Result{}, fmt.Errorf("%w: %v", ErrInvalidProof, err)
	}
	h := pr.hdr
	if !h.alg.verify(&h.key, pr.signingInput, pr.sig, pr.cached) {
		return Result{}, fmt.Errorf("%w: signature does not verify with the jwk", ErrInvalidProof)
	}
	jkt := h.jkt
	if !pr.cached {
		jkt = h.key.thumbprint()
	}
	if p.JKT != "" && subtle.ConstantTimeCompare([]byte(jkt), []byte(p.JKT)) != 1 {
		return Result{}, ErrKeyMismatch
	}
	var next string
	if v.nonces != nil {
		var err error
		if next, err = v.nonces.check(&pr); err != nil {
			return Result{}, err
		}
	}
	fresh, err := v.replay.Claim(ctx, replayKey(jkt, pr.jti), v.ReplayTTL())
	if err != nil {
		return Result{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	if !fresh {
		return Result{}, fmt.Errorf("%w: replayed (jti already used with this key)", ErrInvalidProof)
	}
	if !pr.cached {
		// Accepted: its header is worth keeping (see headercache.go).
		v.headers.add(pr.h64, &cachedHeader{
			alg: h.alg,
			key: jwk{kty: h.key.kty, ec: h.key.ec, ed: h.key.ed, rsa: h.key.rsa},
			jkt: jkt,
		})
	}
	return Result{JKT: jkt, JTI: pr.jti, IssuedAt: pr.iat, NextNonce: next}, nil
}

// checkRequest compares the claims with the request: htm, htu, iat and
// ath, each a definitive refusal when it does not fit, cheap, and so
// checked before the signature. Nothing they hold is trusted on the strength
// of this check alone: a proof is accepted only if its signature verifies
// too.
func (v *Verifier) checkRequest(pr *proof, p Proof) error {
	if p.Method == "" {
		return errors.New("no request method to compare htm with")
	}
	if pr.htm != p.Method {
		return fmt.Errorf("htm %q is not the request method %q", clip(pr.htm), clip(p.Method))
	}
	uri, err := normalizeURI(p.URI)
	switch {
	case string(pr.htu) == p.URI:
		// The usual case, htu as the engine rebuilt the URI: one
		// normalisation checks both, and refuses them as htu's.
		if err != nil {
			return fmt.Errorf("htu: %v", err)
		}
	default:
		htu, herr := normalizeURI(string(pr.htu))
		if herr != nil {
			return fmt.Errorf("htu: %v", herr)
		}
		if err != nil {
			return fmt.Errorf("request URI: %v", err)
		}
		if htu != uri {
			return fmt.Errorf("htu %q is not the request URI %q", clip(htu), clip(uri))
		}
	}
	now := v.now()
	if pr.iat.Before(now.Add(-v.maxAge)) {
		return fmt.Errorf("iat %s is older than %s", pr.iat.UTC().Format(time.RFC3339), v.maxAge)
	}
	if pr.iat.After(now.Add(v.leeway)) {
		return fmt.Errorf("iat %s is more than %s in the future", pr.iat.UTC().Format(time.RFC3339), v.leeway)
	}
	if p.AccessToken != "" {
		if !pr.hasAth {
			return errors.New("no ath, and the request carries an access token")
		}
		if !athMatches(pr.ath, p.AccessToken, p.AccessTokenSHA256) {
			return errors.New("ath is not the hash of the access token")
		}
	}
	return nil
}

// athMatches reports whether ath is the hash of token:
// base64url(SHA-256(ASCII(token))) (RFC 9449 §4.2), in its one canonical
// spelling. sum, unless nil, is that SHA-256, already computed.
func athMatches(ath []byte, token string, sum *[sha256.Size]byte) bool {
	var buf [sha256.Size]byte
	got, ok := b64seg.Append(buf[:0], ath)
	if !ok || len(got) != sha256.Size {
		return false
	}
	if sum == nil {
		s := sha256String(token)
		sum = &s
	}
	return [sha256.Size]byte(got) == *sum
}

// sha256String is sha256.Sum256([]byte(s)) without the conversion, which
// copies s and, past 32 bytes, allocates: s goes to the hash through a
// buffer on the stack.
func sha256String(s string) [sha256.Size]byte {
	h := sha256.New()
	var chunk [512]byte
	for len(s) > 0 {
		n := copy(chunk[:], s)
		h.Write(chunk[:n]) // hash.Hash.Write never returns an error.
		s = s[n:]
	}
	var out [sha256.Size]byte
	h.Sum(out[:0])
	return out
}

// replayKey names a proof in the replay store: hex SHA-256 of the key's
// thumbprint and the jti. A jti need only be unique per key (RFC 9449
// §4.2 leaves its choice to the client), and the thumbprint has a fixed
// length, so the concatenation is unambiguous. The signature is no part
// of it: an ECDSA signature can be rewritten into a second valid one
// ((r, s) and (r, n−s)), which must still be the same proof.
func replayKey(jkt, jti string) string {
	var buf [64 + MaxJTIBytes]byte
	sum := sha256.Sum256(append(append(buf[:0], jkt...), jti...))
	var key [2 * sha256.Size]byte
	hex.Encode(key[:], sum[:])
	return string(key[:])
}

// unixTime converts a NumericDate (seconds since the epoch, possibly
// fractional) into a time; ok is false for one outside a sane range.
func unixTime(f float64) (time.Time, bool) {
	// Up to year 5138: far beyond any window, and well inside int64 ns.
	if math.IsNaN(f) || f < 0 || f > 1e11 {
		return time.Time{}, false
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)), true
}

// clip bounds an attacker-chosen string quoted in an error message.
func clip(s string) string {
	const limit = 64
	if len(s) <= limit {
		return s
	}
	return s[:limit] + "…"
}
