package authz

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
)

// What an allowed request takes to the upstream. The MCP server trusts the
// identity headers the gateway sets and must never receive a credential of
// the client's: not the Authorization header (MCP forbids token
// passthrough), not the browser's login cookie (it works as the user), not a
// spelling of an identity header that the upstream's framework would read
// as the real one.

// scrubUpstream completes an allowed decision: the spellings of the
// identity headers that use "_" for "-" are removed (CGI-style frameworks
// read X_Extauthz_Subject as X-Extauthz-Subject), and the login cookie
// leaves the Cookie header — on every request, whichever resource it is for
// and however it was authenticated, since the browser sends the cookie to
// every path of the host. The identity headers themselves are set or
// removed by whoever built d.
func (e *Engine) scrubUpstream(p *Policy, r *Request, d *Decision) {
	if r.UnderscoredKnown {
		for _, name := range r.Underscored {
			if contains(p.identity, strings.ReplaceAll(name, "_", "-")) {
				d.Remove = append(d.Remove, name)
			}
		}
	} else {
		for name := range r.Headers {
			if strings.IndexByte(name, '_') >= 0 && contains(p.identity, strings.ReplaceAll(name, "_", "-")) {
				d.Remove = append(d.Remove, name)
			}
		}
	}
	if e.opts.BrowserLogin == nil {
		return
	}
	cookie, ok := r.Headers["cookie"]
	if !ok {
		return
	}
	rest := e.opts.BrowserLogin.StripCookie(cookie)
	switch {
	case rest == strings.TrimSpace(cookie):
		// No login cookie in it: the upstream gets the header as sent.
	case rest == "":
		d.Remove = append(d.Remove, "cookie")
	default:
		d.Upstream = append(d.Upstream, Header{"cookie", rest})
	}
}

// passThrough lets a request through without a token (no resource
// matched and the operator allows that, or a forwarded CORS preflight):
// no identity reaches the upstream, and no login cookie either.
func (e *Engine) passThrough(p *Policy, r *Request, reason Reason, resource string) Decision {
	d := Decision{Allow: true, Status: http.StatusOK, Reason: reason, Resource: resource, Remove: slices.Clone(p.identity)}
	e.scrubUpstream(p, r, &d)
	return d
}

// isPreflight reports whether a request is a CORS preflight (Fetch
// standard, "CORS-preflight request"): OPTIONS with Origin and
// Access-Control-Request-Method, and no body. A request with a body is not
// a preflight whatever its headers say: browsers never send one, and the
// upstream would receive it without a token.
func isPreflight(r *Request) bool {
	if r.Method != http.MethodOptions || r.Headers["origin"] == "" || r.Headers["access-control-request-method"] == "" {
		return false
	}
	if len(r.Body) > 0 || r.Headers["transfer-encoding"] != "" {
		return false
	}
	cl, ok := r.Headers["content-length"]
	return !ok || cl == "0"
}

// preflight answers a CORS preflight from an allowed origin (the Origin
// was checked before): by the gateway itself (204 with the CORS headers of
// the resource's cors block, cors.go), or, when the resource says so, by
// letting it through to the upstream without a token. Either way no
// credential is involved: browsers never send one on a preflight.
func (e *Engine) preflight(p *Policy, res *resource, r *Request) Decision {
	if res.forwardPreflight {
		return e.passThrough(p, r, ReasonPreflight, res.name)
	}
	return res.preflightAnswer(r)
}

// isTokenList reports whether v is a comma-separated list of header names
// (RFC 9110 §5.6.1 and §5.6.2), so that reflecting it cannot inject anything.
func isTokenList(v string) bool {
	for item := range strings.SplitSeq(v, ",") {
		item = strings.Trim(item, " \t")
		if item == "" {
			return false
		}
		for i := 0; i < len(item); i++ {
			if !isTchar(item[i]) {
				return false
			}
		}
	}
	return true
}

func isTchar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// addUpstreamCredential completes an allowed decision for a resource with
// an upstream_token: the minted token replaces the client's Authorization
// header (which the allow already removes). When it cannot be had, the
// request is refused instead (ok false): never let through without the
// credential the operator asked for.
func (e *Engine) addUpstreamCredential(ctx context.Context, p *Policy, res *resource, raw string, hash [32]byte, d *Decision) (Decision, bool) {
	refuse := func(err error) (Decision, bool) {
		den := p.deny(res, err)
		den.Source, den.Operation, den.Claims = d.Source, d.Operation, d.Claims
		var ra interface{ RetryAfter() time.Duration }
		if den.Status == http.StatusServiceUnavailable && errors.As(err, &ra) {
			if s := int(ra.RetryAfter() / time.Second); s > 0 {
				den.RetryAfter = s
			}
		}
		return den, false
	}
	if e.opts.Upstream == nil {
		return refuse(fmt.Errorf("%w: no upstream credential minter is configured", ErrUpstreamUnavailable))
	}
	c, ok, err := e.opts.Upstream.Credential(ctx, res.name, raw, hash, d.Claims.Expiry)
	switch {
	case err != nil:
		if !errors.Is(err, ErrUpstreamRefused) && !errors.Is(err, ErrUpstreamUnavailable) {
			err = fmt.Errorf("%w: %w", ErrUpstreamUnavailable, err)
		}
		return refuse(err)
	case !ok || c.Token == "":
		return refuse(fmt.Errorf("%w: resource %q has no upstream credential minter", ErrUpstreamUnavailable, res.name))
	}
	// Set, not appended: whatever Authorization the request had is
	// replaced (Envoy: OVERWRITE_IF_EXISTS_OR_ADD; HTTP mode: the proxy
	// copies this header of the answer over the request's).
	authorization := c.Authorization
	if authorization == "" {
		authorization = "Bearer " + c.Token
	}
	d.Upstream = append(d.Upstream, Header{"authorization", authorization})
	d.Remove = slices.DeleteFunc(d.Remove, func(h string) bool { return h == "authorization" })
	d.UpstreamCredential = c.Source
	return Decision{}, true
}
