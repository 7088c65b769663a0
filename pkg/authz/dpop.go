package authz

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/extauthz/extauthz/pkg/config"
	"github.com/extauthz/extauthz/pkg/dpop"
	"github.com/extauthz/extauthz/pkg/metadata"
)

// DPoP (RFC 9449) at the resource: a token bound to a client's key
// (cnf.jkt, carried in token.Grant.JKT) is presented as
// "Authorization: DPoP <token>" with a proof of possession in the DPoP
// header, verified on every request (a proof is per request by design; the
// token's own verdict stays cached). Per resource, dpop.mode:
//
//   - off: Bearer only. A DPoP credential is not one the resource knows
//     (401 as without credentials), and a bound token sent as Bearer is
//     refused (RFC 9449 §7.2: never accept a bound token as a bearer one).
//   - allowed: both schemes; each token only under its own.
//   - required: DPoP only; a Bearer credential is refused before the token
//     is even verified.

// The DPoP refusals, each with its row in the denial table.
var (
	// ErrDPoPProof: the proof is missing, malformed, stale, for another
	// request, signed badly or replayed (401 DPoP error="invalid_dpop_proof").
	ErrDPoPProof = errors.New("invalid DPoP proof")
	// ErrDPoPNonce: the proof lacks the server's current nonce (401
	// error="use_dpop_nonce" with a DPoP-Nonce header, RFC 9449 §9).
	ErrDPoPNonce = errors.New("DPoP proof without the current nonce")
	// ErrDPoPBinding: the proof's key is not the one the token is bound to,
	// or a token that is not bound came with the DPoP scheme (401
	// error="invalid_token").
	ErrDPoPBinding = errors.New("DPoP key binding does not hold")
	// ErrDPoPRequired: a Bearer credential at a resource that accepts
	// DPoP-bound tokens only (401 error="invalid_token").
	ErrDPoPRequired = errors.New("this resource accepts DPoP-bound tokens only")
	// ErrDPoPUnavailable: whether the proof was used before cannot be
	// known now (the replay store is down): never accepted unchecked.
	ErrDPoPUnavailable = errors.New("DPoP replay check unavailable")
	// ErrDPoPRepeated: two DPoP headers (RFC 9449 §4.3 step 1): which proof
	// counts is not the gateway's to guess (400).
	ErrDPoPRepeated = fmt.Errorf("%w: more than one DPoP header", ErrInvalidRequest)
)

// dpopSettings is a resource's DPoP configuration, compiled.
type dpopSettings struct {
	mode      string // config.DPoPAllowed, DPoPRequired or DPoPOff
	algs      []string
	algsStr   string // space separated, for the challenges' algs
	conf      config.DPoP
	htuOrigin string
	// verifier checks the proofs; set by the engine (attachDPoP), nil when
	// it could not be built: every DPoP request is then refused.
	verifier *dpop.Verifier
	nonces   *dpop.Nonces // the engine's, when the resource requires nonces
}

func compileDPoP(c config.DPoP, canonical string) dpopSettings {
	mode := c.Mode
	if mode == "" {
		mode = config.DPoPAllowed
	}
	origin := c.HTUOrigin
	if origin == "" {
		if u, err := url.Parse(canonical); err == nil {
			origin = u.Scheme + "://" + u.Host
		}
	}
	return dpopSettings{mode: mode, algs: c.Algorithms, algsStr: strings.Join(c.Algorithms, " "), conf: c, htuOrigin: origin}
}

func (s *dpopSettings) accepts() bool { return s.mode != config.DPoPOff }

// attachDPoP gives every resource of p that accepts DPoP its proof
// verifier, over the engine's replay store and nonces.
func (e *Engine) attachDPoP(p *Policy) {
	for _, r := range p.resources {
		d := &r.dpop
		if !d.accepts() {
			continue
		}
		o := dpop.Options{Algorithms: d.algs, MaxAge: d.conf.MaxAge.D(), Leeway: e.opts.DPoPLeeway, Replay: e.opts.DPoPReplay, Now: e.opts.Now}
		if d.conf.Nonce {
			o.Nonces = e.opts.DPoPNonces
			d.nonces = e.opts.DPoPNonces
			if o.Nonces == nil {
				e.opts.Logger.Error("resource requires DPoP nonces but no nonce key is configured; its DPoP requests are refused", "resource", r.name)
				continue
			}
		}
		v, err := dpop.NewVerifier(o)
		if err != nil {
			e.opts.Logger.Error("DPoP verifier not built; the resource's DPoP requests are refused", "resource", r.name, "err", err)
			continue
		}
		d.verifier = v
	}
}

// checkProof verifies the request's DPoP proof for the token raw, bound to
// jkt, and maps its failures to the denial table's. rawSHA256, unless nil,
// is SHA-256(raw), already computed. next is the nonce to hand the client
// with the answer, when its proof's is about to expire.
func (res *resource) checkProof(ctx context.Context, r *Request, rawPath, raw string, rawSHA256 *[sha256.Size]byte, jkt string) (next string, err error) {
	err = res.verifyProof(ctx, r, rawPath, raw, rawSHA256, jkt, &next)
	return next, err
}

func (res *resource) verifyProof(ctx context.Context, r *Request, rawPath, raw string, rawSHA256 *[sha256.Size]byte, jkt string, next *string) error {
	if jkt == "" {
		// RFC 9449 §7.1: the DPoP scheme carries a DPoP-bound token; a
		// plain one presented with a proof is refused, not downgraded.
		return fmt.Errorf("%w: the access token is not DPoP-bound (no cnf.jkt)", ErrDPoPBinding)
	}
	header, ok := r.Headers["dpop"]
	if !ok || header == "" {
		return fmt.Errorf("%w: no DPoP header", ErrDPoPProof)
	}
	if strings.IndexByte(header, ',') >= 0 {
		// Repeated headers arrive joined with ","; a compact JWS has none.
		return ErrDPoPRepeated
	}
	v := res.dpop.verifier
	if v == nil {
		return fmt.Errorf("%w: no proof verifier for this resource", ErrDPoPUnavailable)
	}
	got, err := v.Verify(ctx, dpop.Proof{Header: header, Method: r.Method, URI: res.htu(rawPath), AccessToken: raw, AccessTokenSHA256: rawSHA256, JKT: jkt})
	switch {
	case err == nil:
		*next = got.NextNonce
		return nil
	case errors.Is(err, dpop.ErrKeyMismatch):
		return fmt.Errorf("%w: %v", ErrDPoPBinding, err)
	case errors.Is(err, dpop.ErrUseNonce):
		return fmt.Errorf("%w: %v", ErrDPoPNonce, err)
	case errors.Is(err, dpop.ErrUnavailable):
		return fmt.Errorf("%w: %v", ErrDPoPUnavailable, err)
	default:
		return fmt.Errorf("%w: %v", ErrDPoPProof, err)
	}
}

// htu is the URI a proof's htu must name (RFC 9449 §4.3 step 9, without
// query): the configured origin, else the origin of the resource's
// canonical URI — never one read from the request, whose Host and
// X-Forwarded-Proto the client chooses wherever the route, not the host,
// picks the resource: a proof made for another server must not pass here —
// then the request path as sent (pkg/dpop compares both normalised per
// RFC 3986 §6).
func (res *resource) htu(rawPath string) string {
	return res.dpop.htuOrigin + rawPath
}

// challenge renders c for res by its DPoP mode and the scheme the request
// used (RFC 9449 §7.1 and §7.2): Bearer alone when DPoP is off; DPoP alone
// when it is required; both when allowed, the error information in the
// challenge of the scheme that was tried. A DPoP challenge carrying an
// error also carries scope and resource_metadata, as Bearer's does, so
// that a client reading either learns where to get a token.
func (res *resource) challenge(c metadata.Challenge, usedDPoP bool) string {
	d := &res.dpop
	switch d.mode {
	case config.DPoPOff:
		c.Scheme = metadata.SchemeBearer
		return c.String()
	case config.DPoPRequired:
		c.Scheme, c.Algs = metadata.SchemeDPoP, d.algsStr
		return c.String()
	}
	if usedDPoP {
		bearer := metadata.Challenge{Scope: c.Scope, ResourceMetadata: c.ResourceMetadata}
		c.Scheme, c.Algs = metadata.SchemeDPoP, d.algsStr
		return metadata.Challenges(bearer, c)
	}
	// The Bearer challenge comes first and carries everything an MCP client
	// reads; the DPoP one says which proofs are accepted (RFC 9449 §7.2,
	// Figure 18).
	c.Scheme = metadata.SchemeBearer
	return metadata.Challenges(c, metadata.Challenge{Scheme: metadata.SchemeDPoP, Algs: d.algsStr})
}

// withDPoPNonce adds the nonce a use_dpop_nonce answer hands out.
func (res *resource) withDPoPNonce(d *Decision) {
	if n := res.dpop.nonces; n != nil && errors.Is(d.Err, ErrDPoPNonce) {
		d.Extra = append(d.Extra, Header{"dpop-nonce", n.Current()}, Header{"cache-control", "no-store"})
	}
}

// dpopCandidate reports whether an Authorization value uses the DPoP scheme,
// and returns its credential as bearerCandidate does for Bearer.
func dpopCandidate(v string) (string, bool, error) {
	scheme, rest, ok := strings.Cut(v, " ")
	if !strings.EqualFold(scheme, "DPoP") {
		return "", false, nil
	}
	if !ok {
		return "", true, errMalformedCredential
	}
	return strings.TrimLeft(rest, " "), true, nil
}
