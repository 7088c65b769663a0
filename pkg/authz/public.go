package authz

import (
	"fmt"
	"slices"

	"github.com/extauthz/extauthz/pkg/config"
	"github.com/extauthz/extauthz/pkg/target"
)

// Public paths (resources[].public): requests that pass without a token.
// Passing without a token is the one decision that an attacker wants to
// reach by spelling a path differently, so it is made on the canonical
// path and only when nothing else could be meant:
//
//   - the path as sent must already be canonical: "//mcp/health",
//     "/mcp/./health" or "/mcp/%68ealth" are not public (they are decided
//     as protected requests), whatever the proxy and the upstream make of
//     them;
//   - every other reading a server could give the path (target.Readings:
//     decoded, "\" as "/", ";" parameters dropped) and the case-folded
//     comparison must agree with the canonical one, else the request is
//     refused as ambiguous (400): "/mcp/pub/..;/tools" is under a public
//     prefix as written and is /mcp/tools to a servlet container;
//   - a prefix matches on whole segments only ("/mcp/pub" never covers
//     "/mcp/public2");
//   - the method must be listed, compared exactly (RFC 9110 §9.1: methods
//     are case-sensitive); HEAD is not implied by GET.

// publicPath is one compiled resources[].public entry.
type publicPath struct {
	path    string // canonical, without a trailing slash when prefix
	prefix  bool
	methods []string
}

func compilePublic(ps []config.PublicPath) []publicPath {
	out := make([]publicPath, 0, len(ps))
	for _, p := range ps {
		out = append(out, publicPath{path: p.Path, prefix: p.Prefix, methods: slices.Clone(p.Methods)})
	}
	return out
}

// publicAt reports whether a request with this method to path (one reading
// of it) is public; fold compares letters case-insensitively.
func (r *resource) publicAt(method, path string, fold bool) bool {
	for i := range r.public {
		pp := &r.public[i]
		if !slices.Contains(pp.methods, method) {
			continue
		}
		if pp.prefix {
			if target.HasPrefix(path, pp.path, fold) {
				return true
			}
			continue
		}
		if len(path) == len(pp.path) && target.HasPrefix(path, pp.path, fold) {
			return true
		}
	}
	return false
}

// isPublic decides whether a request to the resource passes without a
// token. rawPath is the path as sent (without the query), canon its
// canonical form. A request whose readings disagree is ErrAmbiguousPath.
func (r *resource) isPublic(method, rawPath, canon string) (bool, error) {
	if len(r.public) == 0 {
		return false, nil
	}
	pub := r.publicAt(method, canon, r.foldPath)
	if r.publicAt(method, canon, true) != pub {
		return false, fmt.Errorf("%w: differs from a public path only in letter case", ErrAmbiguousPath)
	}
	for _, reading := range target.Readings(rawPath) {
		if r.publicAt(method, reading, r.foldPath) != pub || r.publicAt(method, reading, true) != pub {
			return false, fmt.Errorf("%w: another reading of the path is decided differently as a public path", ErrAmbiguousPath)
		}
	}
	// Only the canonical spelling itself is public: any other one is a
	// near miss, decided as a protected request.
	return pub && rawPath == canon, nil
}

// publicPass lets a request to a public path through without looking at
// any credential. Like every request let through without a verified
// token, it carries no identity to the upstream (the identity headers are
// removed, and their "_" spellings) and no login cookie; and, as for
// every request to the resource, no Authorization header either unless
// upstream.strip_authorization is false (MCP forbids passing a client's
// token through, and a public endpoint has no use for one).
func (e *Engine) publicPass(p *Policy, r *Request, res *resource) Decision {
	d := e.passThrough(p, r, ReasonPublic, res.name)
	if p.strip {
		d.Remove = append(d.Remove, "authorization")
	}
	return d
}
