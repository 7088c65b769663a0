package authz

import (
	"fmt"
	"strings"

	"github.com/extauthz/extauthz/pkg/metadata"
	"github.com/extauthz/extauthz/pkg/target"
)

// Step 2 of a decision (DESIGN.md): which protected resource a request is
// for. The host and path are read once, in canonical form (package
// target), and every decision below uses that form. A request that another
// plausible reading would route to a different resource — a server that
// decodes %2F, reads "\" as "/", drops ";" parameters, or matches paths
// case-insensitively — is refused rather than decided on our reading: the
// proxy routes on its reading and the upstream acts on its own.

// canonicalTarget reads a request's host and path (the path without its
// query string) in canonical form.
func canonicalTarget(authority, rawPath string) (host, path string, err error) {
	if host, err = target.Host(authority); err != nil {
		return "", "", fmt.Errorf("%w: %v", ErrBadTarget, err)
	}
	if path, err = target.Path(rawPath); err != nil {
		return "", "", fmt.Errorf("%w: %v", ErrBadTarget, err)
	}
	return host, path, nil
}

// selectResource picks the protected resource of a request: the one the
// proxy's route names (context_extensions "resource", or the HTTP mode's
// per-resource endpoint), else — unless the configuration requires the
// route to name it — the longest path prefix among the resources whose
// hosts match. rawPath is the path as sent, canon its canonical form.
func (p *Policy) selectResource(ext map[string]string, host, rawPath, canon string) (*resource, error) {
	if name, ok := ext["resource"]; ok {
		if r, ok := p.byName[name]; ok {
			return r, nil
		}
		return nil, fmt.Errorf("%w: %q", ErrUnknownResource, name)
	}
	if p.requireExplicit {
		return nil, ErrResourceNotNamed
	}
	return p.routeByHostAndPath(host, rawPath, canon)
}

// routeByHostAndPath routes on the host and the canonical path, and refuses
// the request when any other reading of the path would route elsewhere.
func (p *Policy) routeByHostAndPath(host, rawPath, canon string) (*resource, error) {
	res := p.match(host, canon, false)
	if p.foldedPrefixes || hasUpper(canon) {
		if p.match(host, canon, true) != res {
			return nil, fmt.Errorf("%w: differs from a protected path only in letter case", ErrAmbiguousPath)
		}
	}
	for _, r := range target.Readings(rawPath) {
		if p.match(host, r, false) != res || p.match(host, r, true) != res {
			return nil, fmt.Errorf("%w: routes differently once decoded", ErrAmbiguousPath)
		}
	}
	if res == nil {
		return nil, ErrUnmatched
	}
	return res, nil
}

// match returns the resource with the longest path prefix that path lies
// under, among those whose hosts match; nil for none. fold compares paths
// case-insensitively for every resource; a resource that opts in
// (path_case_insensitive) is always compared that way.
func (p *Policy) match(host, path string, fold bool) *resource {
	for _, r := range p.resources {
		if r.matchesHost(host) && target.HasPrefix(path, r.pathPrefix, fold || r.foldPath) {
			return r
		}
	}
	return nil
}

func (r *resource) matchesHost(host string) bool {
	for _, h := range r.hosts {
		if h == host || (h[0] == '.' && strings.HasSuffix(host, h) && len(host) > len(h)) {
			return true
		}
	}
	return false
}

// ResourceFor names the resource a request to host and path (as sent,
// possibly percent-encoded, without query) is decided for when its route
// does not name one, as a Check would route it; false when none or when
// the request would be refused as ambiguous. The browser login routes its
// return paths with it.
func (p *Policy) ResourceFor(host, path string) (string, bool) {
	h, canon, err := canonicalTarget(host, path)
	if err != nil {
		return "", false
	}
	res, err := p.routeByHostAndPath(h, path, canon)
	if err != nil {
		return "", false
	}
	return res.name, true
}

// Document returns the metadata document served at a well-known path for a
// host, or false. The HTTP listener and the Check share this lookup so both
// serve the same bytes.
func (p *Policy) Document(host, path string) ([]byte, bool) {
	h, canon, err := canonicalTarget(host, path)
	if err != nil {
		return nil, false
	}
	r := p.documentFor(h, canon)
	if r == nil {
		return nil, false
	}
	return r.document, true
}

// documentFor picks the resource whose metadata lives at path for host
// (both canonical), or nil.
func (p *Policy) documentFor(host, path string) *resource {
	if path == metadata.WellKnownPrefix {
		return p.rootDocument(host)
	}
	cands := p.wellKnown[path]
	for _, r := range cands {
		if host == p.publicHost || r.matchesHost(host) {
			return r
		}
	}
	// Behind a proxy that rewrites the Host, a path that names exactly one
	// resource is still unambiguous.
	if len(cands) == 1 {
		return cands[0]
	}
	return nil
}

// rootDocument picks the resource whose document is served at the root
// well-known path (RFC 9728 §3 without a path suffix) of host: the one on
// the host whose URI has the path "/", else the one on the host marked
// root_metadata, else the host's only resource, else none (404). Never a
// guess between two: when two qualify at the first tier that has any (two
// unmarked resources on a host, or resources of two hosts asked on the
// public host), there is none. check-config refuses two claimants of the
// first two tiers on one host.
func (p *Policy) rootDocument(host string) *resource {
	for _, cands := range [3][]*resource{p.wellKnown[metadata.WellKnownPrefix], p.rootMarked, p.resources} {
		var found *resource
		n := 0
		for _, r := range cands {
			if r.matchesHost(host) {
				found, n = r, n+1
			}
		}
		if n == 0 && host == p.publicHost {
			for _, r := range cands {
				found, n = r, n+1
			}
		}
		switch {
		case n == 1:
			return found
		case n > 1:
			return nil
		}
	}
	return nil
}

// servesHost reports whether some resource is served on host (or host is
// the public host).
func (p *Policy) servesHost(host string) bool {
	if host == p.publicHost {
		return true
	}
	for _, r := range p.resources {
		if r.matchesHost(host) {
			return true
		}
	}
	return false
}

// hasUpper reports whether s holds an ASCII upper-case letter.
func hasUpper(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' {
			return true
		}
	}
	return false
}
