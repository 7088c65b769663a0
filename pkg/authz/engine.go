package authz

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/extauthz/extauthz/pkg/cache"
	"github.com/extauthz/extauthz/pkg/config"
	"github.com/extauthz/extauthz/pkg/dpop"
	"github.com/extauthz/extauthz/pkg/mcp"
	"github.com/extauthz/extauthz/pkg/metadata"
	"github.com/extauthz/extauthz/pkg/token"
	"github.com/extauthz/extauthz/pkg/verdict"
)

// VerdictStore caches verdicts; *cache.Tiered[verdict.Verdict] implements it.
type VerdictStore interface {
	// GetFrom returns the verdict held for key and the tier it came
	// from; cache.TierNone is a miss.
	GetFrom(ctx context.Context, key cache.Key) (verdict.Verdict, cache.Tier, error)
	// Add stores v unless another verdict is already held for key, and
	// returns the one in force.
	Add(ctx context.Context, key cache.Key, v verdict.Verdict, ttl time.Duration) (verdict.Verdict, error)
	// Replace stores v in every tier of every replica, replacing whatever
	// is held, and says how many replicas confirmed.
	Replace(ctx context.Context, key cache.Key, v verdict.Verdict, ttl time.Duration) (cache.Invalidation, error)
}

// Options configures an Engine.
type Options struct {
	// Verifier checks tokens on a cache miss. Required.
	Verifier token.Verifier
	// Cache holds verdicts; nil disables caching.
	Cache VerdictStore
	// Grants interns the grants of verified tokens (nil: a table of 65536);
	// pass the one the cache's codec uses.
	Grants *verdict.Grants
	// MaxTTL caps how long a valid verdict is cached (it never outlives the
	// token's exp); NegativeTTL is how long an invalid one is (0: never).
	MaxTTL, NegativeTTL time.Duration
	// RevokedTTL is how long a revocation lasts when the token's own exp is
	// not known (revoked by hash). Leeway is added to a known exp.
	RevokedTTL, Leeway time.Duration
	// VerifyTimeout bounds one verification, shared by all requests waiting
	// for it (default 10s; the caller's own deadline still applies to it).
	VerifyTimeout time.Duration
	// Now is the clock (nil: time.Now).
	Now func() time.Time
	// Logger (nil: discard).
	Logger *slog.Logger
	// BrowserLogin lets a signed-in browser's cookie stand for a token on
	// resources that enable the login flow (nil: cookies are never
	// credentials).
	BrowserLogin BrowserLogin
	// Upstream mints the credentials of resources with an upstream_token
	// (nil: none does; a resource that asks for one is then refused).
	Upstream UpstreamCredentials
	// DPoPReplay remembers the DPoP proofs accepted (nil: a table of its
	// own in process, per replica); DPoPNonces makes and checks the server
	// nonces of resources that require them (nil: such resources refuse
	// DPoP requests); DPoPLeeway is the future skew allowed on a proof's
	// iat (0: pkg/dpop's default).
	DPoPReplay dpop.ReplayStore
	DPoPNonces *dpop.Nonces
	DPoPLeeway time.Duration
	// Watermarks are the revocation watermarks, checked on every cache hit
	// and after every verification (nil: none).
	Watermarks Watermarks
}

// Watermarks says whether a revocation watermark (by subject, session,
// client, claim or issuer, pkg/revocation) revokes a token.
// *revocation.Store and *revocation.Index implement it; the check runs on
// every decision, so it must cost next to nothing.
type Watermarks interface {
	Revoked(c *token.Claims) bool
}

// errWatermarked is the revocation of a token by a watermark: the denial
// table's revoked row, with its own detail for the audit line.
var errWatermarked = fmt.Errorf("%w: issued before a revocation watermark", verdict.ErrRevoked)

// BrowserLogin is what the engine needs from the browser login flow: the
// access token a request's login cookie stands for, the Cookie header
// without that cookie, and where a browser signs in. *oauthflow.Handler
// implements it; the engine does not import that package.
type BrowserLogin interface {
	// AccessToken returns the current access token the Cookie header's
	// login cookie holds for the resource, refreshing it when needed;
	// found is false when the request carries no valid login cookie. An
	// error means the login's store cannot be read now.
	AccessToken(ctx context.Context, resource, cookieHeader string) (tok string, found bool, err error)
	// StripCookie removes the login cookies from a Cookie header value:
	// the cookie is a credential the upstream must not see.
	StripCookie(cookieHeader string) string
	// LoginURL is where a browser navigating to the resource without a
	// login cookie is sent, or "" when none.
	LoginURL(host, pathAndQuery string) string
}

// UpstreamCredentials mints the access token an allowed request carries to
// a resource's upstream in place of the client's (resources[].upstream_token).
// cmd/extauthz adapts pkg/upstream to it; the engine does not import that
// package.
type UpstreamCredentials interface {
	// Credential returns the token for resource's upstream on behalf of
	// the verified incoming token (raw, its token.CacheHash and its exp).
	// ok is false when the resource mints none. An error wraps
	// ErrUpstreamRefused or ErrUpstreamUnavailable, and may say how long
	// to wait (RetryAfter() time.Duration).
	Credential(ctx context.Context, resource, raw string, hash [32]byte, expiry time.Time) (c UpstreamCredential, ok bool, err error)
	// Forget drops what was minted for the incoming token of hash on
	// resource, on every replica (a revocation).
	Forget(ctx context.Context, resource string, hash [32]byte)
}

// UpstreamCredential is a minted upstream token.
type UpstreamCredential struct {
	Token string
	// Authorization, when set, is "Bearer " + Token, built once by the
	// minter (the engine builds it otherwise).
	Authorization string
	Expiry        time.Time
	// Source says where it came from: "local", "redis" or "minted".
	Source string
}

// Engine decides requests. It is safe for concurrent use; SetPolicy swaps
// the policy atomically while Checks run.
type Engine struct {
	policy atomic.Pointer[Policy]
	opts   Options
	flight flight // one verification per token at a time (flight.go)

	// joiningFlight, when set by tests, runs once a request has joined or
	// started a verification flight.
	joiningFlight func()
}

// NewEngine builds an engine deciding with p.
func NewEngine(p *Policy, o Options) (*Engine, error) {
	if o.Verifier == nil {
		return nil, errors.New("authz: a verifier is required")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.VerifyTimeout <= 0 {
		o.VerifyTimeout = 10 * time.Second
	}
	if o.RevokedTTL <= 0 {
		o.RevokedTTL = 24 * time.Hour
	}
	if o.Grants == nil {
		o.Grants = verdict.NewGrants(1 << 16)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.DPoPReplay == nil {
		o.DPoPReplay = dpop.NewMemoryReplay(1<<20, o.Now)
	}
	e := &Engine{opts: o}
	e.attachDPoP(p)
	e.policy.Store(p)
	return e, nil
}

// Swap replaces the policy and the token verifier together (a config
// reload): each Check uses one pair, never the policy of one config with
// the issuers of another. p must not be in use elsewhere. A nil v keeps
// the engine's own (Options.Verifier).
func (e *Engine) Swap(p *Policy, v token.Verifier) {
	p.verifier = v
	e.attachDPoP(p)
	e.policy.Store(p)
}

// Policy returns the policy in force.
func (e *Engine) Policy() *Policy { return e.policy.Load() }

// Check decides one request. It never fails open: every error becomes a
// denial with the status of the denial table.
func (e *Engine) Check(ctx context.Context, r *Request) Decision {
	p := e.policy.Load()
	d := e.decide(ctx, p, r)
	p.withCORS(r, &d)
	return d
}

// decide is Check before the CORS headers of a denial (cors.go).
func (e *Engine) decide(ctx context.Context, p *Policy, r *Request) Decision {
	rawPath, query, _ := strings.Cut(r.Path, "?")
	host, path, err := canonicalTarget(r.Host, rawPath)
	if err != nil {
		return p.deny(nil, err)
	}

	if strings.HasPrefix(path, metadata.WellKnownPrefix) {
		if res := p.documentFor(host, path); res != nil {
			return metadataAnswer(r.Method, res)
		}
		if path == metadata.WellKnownPrefix && p.servesHost(host) {
			// The root document of a host of ours that no resource owns
			// (rootDocument): not found, as on the HTTP listener, rather
			// than routed like a request to the MCP server.
			return Decision{Status: http.StatusNotFound, Reason: ReasonMetadata, ContentType: "application/json",
				Body: errorBody("not_found", "no protected resource owns the root metadata document of this host: use the path-suffixed URL of the resource")}
		}
	}

	res, err := p.selectResource(r.ContextExtensions, host, rawPath, path)
	if err != nil {
		if errors.Is(err, ErrUnmatched) && p.unmatchedAllow {
			// Not ours to protect: pass it on untouched, except that
			// nobody may smuggle identity headers or a login cookie past us.
			return e.passThrough(p, r, ReasonUnmatchedAllowed, "")
		}
		return p.deny(nil, err)
	}

	if origin, ok := r.Headers["origin"]; ok && !res.originAllowed(origin) {
		// MCP streamable HTTP: a present Origin that is not allowed is a
		// 403 (DNS rebinding), whatever the request carries.
		return p.deny(res, ErrOriginNotAllowed)
	}
	if isPreflight(r) {
		return e.preflight(p, res, r)
	}
	if public, err := res.isPublic(r.Method, rawPath, path); err != nil {
		return p.deny(res, err)
	} else if public {
		return e.publicPass(p, r, res)
	}

	raw, usedDPoP, err := credential(r, query, res.dpop.accepts())
	if errors.Is(err, ErrNoCredential) && res.login && e.opts.BrowserLogin != nil {
		// No Bearer token: a signed-in browser's cookie may stand for one.
		if cookie := r.Headers["cookie"]; cookie != "" {
			tok, found, serr := e.opts.BrowserLogin.AccessToken(ctx, res.name, cookie)
			switch {
			case serr != nil:
				return p.deny(res, fmt.Errorf("%w: browser login: %v", token.ErrUnavailable, serr))
			case found:
				raw, err = tok, nil
			}
		}
		if err != nil && isNavigation(r) {
			if loc := e.opts.BrowserLogin.LoginURL(r.Host, r.Path); loc != "" {
				return Decision{Status: http.StatusFound, Reason: ReasonLoginRedirect, Resource: res.name,
					Extra: []Header{{"location", loc}, {"cache-control", "no-store"}}}
			}
		}
	}
	// From here on a denial's challenge follows the scheme the credential
	// used (RFC 9449 §7.2), and a use_dpop_nonce one hands out the nonce.
	deny := func(err error) Decision {
		d := denialBy(res, err, usedDPoP)
		res.withDPoPNonce(&d)
		return d
	}
	if err != nil {
		return deny(err)
	}
	if !usedDPoP && res.dpop.mode == config.DPoPRequired {
		// Refused before anything is verified: no Bearer token can pass.
		return deny(ErrDPoPRequired)
	}
	// Authentication comes before the shape of the MCP request: a client
	// without a good token learns how to get one (401 and its challenge)
	// before anything else about its request.
	hash, asSent := token.CacheHashAsSent(raw)
	v, src := e.verify(ctx, p, res, raw, hash)
	if v.Err != nil {
		d := deny(v.Err)
		d.Source = src
		return d
	}
	var nextNonce string
	switch {
	case usedDPoP:
		// The token verified (cached or not); the proof is per request
		// and checked on every one (RFC 9449 §4.3, §7.1).
		var rawSHA256 *[sha256.Size]byte // ath's hash, when the cache key is it
		if asSent {
			rawSHA256 = &hash
		}
		next, err := res.checkProof(ctx, r, rawPath, raw, rawSHA256, v.Claims.JKT)
		if err != nil {
			d := deny(err)
			d.Source, d.Claims = src, v.Claims
			return d
		}
		nextNonce = next
	case v.Claims.JKT != "":
		// Bound to a key by DPoP (cnf.jkt, RFC 9449 §6), fresh or from the
		// cache: a Bearer request proves no possession of it (§7.2).
		d := deny(fmt.Errorf("%w: DPoP-bound (cnf.jkt) token presented as Bearer", token.ErrNotAccessToken))
		d.Source = src
		return d
	}
	var op mcp.Operation
	if res.needsOperation() {
		if op, err = res.operation(r); err != nil {
			d := p.denyMessage(res, err, r.Body)
			d.Source, d.Claims = src, v.Claims
			return d
		}
	}
	needed, matched := res.needed(res.required, op)
	if missing := res.missing(needed, v.Claims.Scopes); missing != "" {
		d := deny(fmt.Errorf("%w: %s", ErrInsufficientScope, missing))
		d.Source, d.Operation, d.Claims = src, op, v.Claims
		d.Challenge = res.challenge(metadata.Challenge{
			Error:            "insufficient_scope",
			Scope:            challengeScope(needed, v.Claims.Scopes),
			ResourceMetadata: res.metadataURL,
			ErrorDescription: "the access token lacks a required scope",
		}, usedDPoP)
		return d
	}
	if err := res.evaluate(ctx, r, host, path, op, v.Claims, matched); err != nil {
		d := deny(err)
		d.Source, d.Operation, d.Claims = src, op, v.Claims
		return d
	}
	d := p.allow(res, &v)
	d.Source, d.Operation = src, op
	if res.mintsUpstream {
		if denied, ok := e.addUpstreamCredential(ctx, p, res, raw, hash, &d); !ok {
			return denied
		}
	}
	if usedDPoP && p.strip {
		// The proof goes with the token it proves: neither reaches the
		// upstream.
		d.Remove = append(d.Remove, "dpop")
	}
	if nextNonce != "" {
		d.Respond = append(d.Respond, Header{"dpop-nonce", nextNonce})
	}
	e.scrubUpstream(p, r, &d)
	return d
}

// isNavigation reports whether a request is a browser loading a page,
// which is sent to sign in; API clients get the 401 challenge instead. A
// page's fetch is no navigation, whatever it accepts: browsers send Origin
// on a cross-origin one (never on a GET navigation) and Sec-Fetch-Mode
// other than "navigate" on any. It gets the 401, which CORS lets it read,
// rather than a redirect to a sign-in page it could not follow.
func isNavigation(r *Request) bool {
	if (r.Method != http.MethodGet && r.Method != http.MethodHead) || !strings.Contains(r.Headers["accept"], "text/html") {
		return false
	}
	if _, cors := r.Headers["origin"]; cors {
		return false
	}
	mode, ok := r.Headers["sec-fetch-mode"]
	return !ok || mode == "navigate"
}

// credential extracts the one bearer token a request may carry (RFC 6750
// §2.1, header only: OAuth 2.1 and MCP forbid tokens in the URI). The
// token is not yet checked against the b64token grammar: verify does that
// on a cache miss.
func credential(r *Request, query string, dpopOK bool) (tok string, usedDPoP bool, err error) {
	if queryHasToken(query) {
		return "", false, ErrTokenInQuery
	}
	if bodyHasToken(r.Headers["content-type"], r.Body) {
		return "", false, ErrTokenInBody
	}
	h, ok := r.Headers["authorization"]
	if !ok || h == "" {
		return "", false, ErrNoCredential
	}
	if dpopOK {
		// "Authorization: DPoP <token>" (RFC 9449 §7.1), the same token
		// syntax as Bearer's.
		if tok, isDPoP, err := dpopCandidate(h); isDPoP {
			if err != nil {
				return "", true, ErrMalformedHeader
			}
			return tok, true, nil
		}
	}
	tok, err = bearerCandidate(h)
	switch {
	case errors.Is(err, errNotBearer):
		return "", false, fmt.Errorf("%w: %v", ErrNoCredential, err)
	case err != nil:
		return "", false, ErrMalformedHeader
	}
	return tok, false, nil
}

// verify returns the verdict for a token on a resource: from the cache, or
// from one verification shared by every concurrent request for the same
// token (single flight), whose result is then cached. It also says where
// the verdict came from: SourceLocal, SourceRedis or SourceVerified.
//
// Every valid verdict it returns has passed the revocation watermarks,
// checked here on each call, whatever its source: a cached verdict stays
// valid in the cache (a watermark may expire, or be for another token of
// the same user), and what this replica holds now decides.
func (e *Engine) verify(ctx context.Context, p *Policy, res *resource, raw string, hash [32]byte) (verdict.Verdict, Source) {
	v, src := e.verdict(ctx, p, res, raw, hash)
	if v.Err == nil && e.opts.Watermarks != nil && e.opts.Watermarks.Revoked(v.Claims) {
		return verdict.Verdict{Err: errWatermarked}, src
	}
	return v, src
}

// verdict is verify before the watermarks.
func (e *Engine) verdict(ctx context.Context, p *Policy, res *resource, raw string, hash [32]byte) (verdict.Verdict, Source) {
	// Keyed by the token's canonical spelling (hash is token.CacheHash),
	// so that the other form of an ECDSA signature, which anyone can
	// compute, is the same token to the cache, the single flight and a
	// revocation.
	key := cache.Key{Namespace: res.ns, Hash: hash}
	// Only strings that passed the b64token grammar are ever verified and
	// cached, so a hit proves this one did too; the grammar scan of a long
	// token is left to the miss path.
	if v, tier := e.lookup(ctx, key); tier != cache.TierNone {
		src := SourceLocal
		if tier == cache.TierShared {
			src = SourceRedis
		}
		if v.Err == nil && !e.opts.Now().Before(v.Claims.Expiry) {
			// Defence in depth: a cache entry must never outlive its token.
			return verdict.Verdict{Err: token.ErrExpired}, src
		}
		return v, src
	}
	if !isB64Token(raw) {
		// Two headers merged with ",", a parameter after the token, stray
		// characters: not one Bearer credential (RFC 6750 §2.1).
		return verdict.Verdict{Err: ErrMalformedHeader}, SourceNone
	}
	call, lead := e.flight.join(key)
	if e.joiningFlight != nil {
		// join has registered this request with the flight (as its
		// leader or a follower).
		e.joiningFlight()
	}
	if lead {
		e.lead(ctx, p, res, raw, key, call)
	}
	select {
	case <-call.done:
		return call.val, SourceVerified
	case <-ctx.Done():
		return verdict.Verdict{Err: fmt.Errorf("%w: %v", token.ErrUnavailable, ctx.Err())}, SourceVerified
	}
}

// lead finishes the flight's call for a token this request is the first
// to miss: on this goroutine when the verification needs only keys held
// now (token.HeldVerifier: CPU work, no deadline needed), otherwise apart
// from this request (flight.start), so that a caller who gives up leaves
// it running for the others.
func (e *Engine) lead(ctx context.Context, p *Policy, res *resource, raw string, key cache.Key, call *flightCall) {
	verifier := e.verifier(p)
	if hv, ok := verifier.(token.HeldVerifier); ok {
		needsNetwork := false
		v := guarded(func() verdict.Verdict {
			c, err := hv.VerifyHeld(raw, res.issuers)
			if errors.Is(err, token.ErrNeedsNetwork) {
				needsNetwork = true
				return verdict.Verdict{}
			}
			// The verdict serves every waiter: one caller giving up must
			// not keep it out of the cache.
			return e.store(context.WithoutCancel(ctx), key, e.accept(res, c, err))
		})
		if !needsNetwork {
			e.flight.finish(key, call, v)
			return
		}
		// Nothing was verified: verify apart, below.
	}
	e.flight.start(key, call, func() verdict.Verdict {
		// The verification serves every waiter, so one caller giving up
		// must not cancel it for the others.
		vctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), e.opts.VerifyTimeout)
		defer cancel()
		return e.store(vctx, key, e.verifyUncached(vctx, p, res, raw))
	})
}

func (e *Engine) verifier(p *Policy) token.Verifier {
	if p.verifier != nil {
		return p.verifier
	}
	return e.opts.Verifier
}

func (e *Engine) verifyUncached(ctx context.Context, p *Policy, res *resource, raw string) verdict.Verdict {
	c, err := e.verifier(p).Verify(ctx, raw, res.issuers)
	return e.accept(res, c, err)
}

// accept turns a verifier's answer into the verdict for res.
func (e *Engine) accept(res *resource, c *token.Claims, err error) verdict.Verdict {
	if err != nil {
		return verdict.Verdict{Err: err}
	}
	// RFC 8707 §2 / MCP: the token must have been issued for this resource.
	if !c.HasAudience(res.audiences) {
		return verdict.Verdict{Err: verdict.ErrWrongAudience}
	}
	c.Grant = e.opts.Grants.Intern(c.Grant)
	return verdict.Verdict{Claims: c}
}

func (e *Engine) lookup(ctx context.Context, key cache.Key) (verdict.Verdict, cache.Tier) {
	if e.opts.Cache == nil {
		return verdict.Verdict{}, cache.TierNone
	}
	// A cache that cannot answer is a miss: it costs a verification,
	// never a wrong answer.
	v, tier, _ := e.opts.Cache.GetFrom(ctx, key)
	return v, tier
}

// store caches a fresh verdict and returns the verdict in force: the
// cache may already hold one from another replica — a revocation above
// all, which a verification finishing after it must not overwrite.
func (e *Engine) store(ctx context.Context, key cache.Key, v verdict.Verdict) verdict.Verdict {
	if e.opts.Cache == nil {
		return v
	}
	var ttl time.Duration
	switch {
	case v.Err == nil:
		ttl = min(v.Claims.Expiry.Sub(e.opts.Now()), e.opts.MaxTTL)
		if c := v.Claims.CacheTTL; c > 0 {
			ttl = min(ttl, c)
		}
	case token.Definitive(v.Err):
		ttl = e.opts.NegativeTTL
	default:
		return v // transient: never cached
	}
	if ttl <= 0 {
		return v
	}
	cur, err := e.opts.Cache.Add(ctx, key, v, ttl)
	if err != nil {
		e.opts.Logger.Debug("shared cache write failed", "err", err)
	}
	return cur
}

func (p *Policy) allow(res *resource, v *verdict.Verdict) Decision {
	d := Decision{Allow: true, Status: http.StatusOK, Reason: ReasonAllowed, Resource: res.name, Claims: v.Claims}
	values := [3]string{v.Claims.Subject, v.Claims.ClientID, v.Claims.Scope}
	n := len(values)
	if res.mintsUpstream {
		n++ // the minted credential's Authorization
	}
	d.Upstream = make([]Header, 0, n)
	var remove []string
	for i, name := range p.identity {
		if values[i] != "" {
			d.Upstream = append(d.Upstream, Header{name, values[i]})
		} else {
			// Absent from the token: make sure the client cannot supply it.
			remove = append(remove, name)
		}
	}
	if p.strip {
		remove = append(remove, "authorization")
	}
	d.Remove = remove
	return d
}

// deny answers a refusal of a request for res from the denial table.
func (p *Policy) deny(res *resource, err error) Decision { return denial(res, err) }

// denial is the answer to err from the denial table, with res's challenge
// when the row has one; without a resource (nil), no challenge.
func denial(res *resource, err error) Decision { return denialBy(res, err, false) }

// denialBy is denial for a request whose credential used the DPoP scheme
// (usedDPoP) or not: the error goes in the challenge of the scheme tried.
func denialBy(res *resource, err error, usedDPoP bool) Decision {
	c := classify(err)
	code := c.oauthError
	if code == "" {
		code = "unauthorized"
	}
	d := Decision{
		Status:      c.status,
		Reason:      c.reason,
		Err:         err,
		ContentType: "application/json",
		Body:        errorBody(code, c.description),
	}
	if c.status == http.StatusServiceUnavailable {
		d.RetryAfter = 5
	}
	if res == nil {
		return d
	}
	d.Resource = res.name
	switch {
	case !c.challenge:
	case c.oauthError == "":
		d.Challenge = res.noTokenChall
	default:
		d.Challenge = res.challenge(metadata.Challenge{
			Error:            c.oauthError,
			Scope:            res.requiredStr,
			ResourceMetadata: res.metadataURL,
			ErrorDescription: c.description,
		}, usedDPoP)
	}
	return d
}

// denyMessage refuses a request for the shape of its MCP message. Those
// of the JSON-RPC kind (jsonRPCCode) are answered with a JSON-RPC error
// carrying the request's id, as MCP clients expect (MCP 2026-07-28,
// Streamable HTTP, "Server Validation"), rather than the OAuth error body.
func (p *Policy) denyMessage(res *resource, err error, body []byte) Decision {
	d := p.deny(res, err)
	if code := jsonRPCCode(err); code != 0 {
		d.Body = rpcErrorBody(code, classify(err).description, mcp.RequestID(body))
	}
	return d
}

// metadataAnswer serves the RFC 9728 document directly, so a proxy needs no
// route of its own for it. It is public and cross-origin readable: browser
// MCP clients fetch it before they have any token.
func metadataAnswer(method string, res *resource) Decision {
	d := Decision{Reason: ReasonMetadata, Resource: res.name}
	switch method {
	case http.MethodGet, http.MethodHead:
		d.Status = http.StatusOK
		d.ContentType = "application/json"
		d.Body = res.document
		d.Extra = []Header{{"access-control-allow-origin", "*"}, {"cache-control", "public, max-age=300"}}
	case http.MethodOptions:
		d.Status = http.StatusNoContent
		d.Extra = []Header{
			{"access-control-allow-origin", "*"},
			{"access-control-allow-methods", "GET, HEAD, OPTIONS"},
			{"access-control-allow-headers", "*"},
			{"access-control-max-age", "86400"},
		}
	default:
		d.Status = http.StatusMethodNotAllowed
		d.ContentType = "application/json"
		d.Body = errorBody("method_not_allowed", "the metadata document is read with GET")
		d.Extra = []Header{{"allow", "GET, HEAD, OPTIONS"}}
	}
	return d
}
