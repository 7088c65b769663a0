package config

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/extauthz/extauthz/pkg/mcp"
	"github.com/extauthz/extauthz/pkg/policy"
	"github.com/extauthz/extauthz/pkg/target"
)

// issuerUse remembers where an issuer was first listed, to hold every
// listing of it to the same settings: the key set, the discovery document
// and the introspection client exist once per issuer.
type issuerUse struct {
	path string
	as   AuthorizationServer
}

// validatePolicy compiles a CEL policy; each problem is reported with its
// line and column in the expression.
func validatePolicy(ch *checker, path, expr string) {
	if expr == "" {
		ch.add(path, msgNotEmpty)
		return
	}
	if err := compilePolicy(expr); err != nil {
		var ce policy.CompileErrors
		if errors.As(err, &ce) {
			for _, e := range ce {
				ch.add(path, "line %d, column %d: %s", e.Line, e.Column, e.Msg)
			}
			return
		}
		ch.add(path, "%v", err)
	}
}

// compilePolicy compiles with one shared compiler, built on first use.
var compilePolicy = sync.OnceValue(func() func(string) error {
	c, err := policy.NewCompiler()
	if err != nil {
		return func(string) error { return err }
	}
	return func(expr string) error { _, err := c.Compile(expr); return err }
})()

func (c *Config) validateResources(ch *checker) {
	if len(c.Resources) == 0 {
		ch.add("resources", "at least one resource is required")
		return
	}
	names := map[string]string{}
	uris := map[string]string{}
	issuers := map[string]issuerUse{}
	for i := range c.Resources {
		r := &c.Resources[i]
		p := fmt.Sprintf("resources[%d]", i)

		switch {
		case r.Name == "": // required: the tag's check says so
		case !isResourceName(r.Name):
			ch.add(p+".name", `must match ^[a-z0-9][a-z0-9_-]*$ (lower-case letters, digits, "-" and "_")`)
		case names[r.Name] != "":
			ch.add(p+".name", "%q is already used by %s", r.Name, names[r.Name])
		default:
			names[r.Name] = p
		}

		if r.Resource != "" { // required: the tag's check says so
			for _, msg := range checkWebURL(r.Resource, urlCanonical) {
				ch.add(p+".resource", "%s", msg)
			}
			if prev := uris[r.Resource]; prev != "" {
				ch.add(p+".resource", "%q is already used by %s", r.Resource, prev)
			} else {
				uris[r.Resource] = p
			}
		}
		// When hosts and path_prefix could not be derived, the canonical
		// URI's own error says why; do not repeat it as "empty".
		u, err := url.Parse(r.Resource)
		derivable := err == nil && u.Hostname() != ""

		if len(r.Hosts) == 0 && derivable {
			ch.add(p+".hosts", msgNotEmpty)
		}
		hosts := firsts{}
		for k, h := range r.Hosts {
			hp := fmt.Sprintf("%s.hosts[%d]", p, k)
			if msg := hostProblem(h); msg != "" {
				ch.add(hp, "%s", msg)
			} else if j, dup := hosts.add(h, k); dup {
				ch.add(hp, "%q is already listed at %s.hosts[%d]", h, p, j)
			}
		}

		switch {
		case r.PathPrefix == "" && !derivable:
		case !strings.HasPrefix(r.PathPrefix, "/"):
			ch.add(p+".path_prefix", `must start with "/"`)
		case strings.ContainsAny(r.PathPrefix, "?#"):
			ch.add(p+".path_prefix", `must not contain "?" or "#"`)
		default:
			// The router compares canonical paths (dot segments removed,
			// unreserved characters unescaped): a prefix in another form
			// would never match, or match what the operator did not mean.
			if canon, ok := target.Canonical(r.PathPrefix); !ok {
				if canon == "" {
					ch.add(p+".path_prefix", `must be a plain path: no control characters, spaces, "\", ";", malformed or escaped control percent-escapes`)
				} else {
					ch.add(p+".path_prefix", "is not in canonical form; write %q", canon)
				}
			}
		}

		validateAuthorizationServers(ch, p, r.AuthorizationServers, issuers)
		validatePublic(ch, p, r)

		scopeList(ch, p+".scopes_supported", r.ScopesSupported)
		scopeList(ch, p+".required_scopes", r.RequiredScopes)
		for k, rule := range r.Rules {
			scopeList(ch, fmt.Sprintf("%s.rules[%d].scopes", p, k), rule.Scopes)
		}
		if len(r.ScopesSupported) > 0 {
			supported := make(map[string]bool, len(r.ScopesSupported))
			for _, s := range r.ScopesSupported {
				supported[s] = true
			}
			for k, s := range r.RequiredScopes {
				if isScopeToken(s) && !supported[s] {
					ch.add(fmt.Sprintf("%s.required_scopes[%d]", p, k), "%q is not in scopes_supported", s)
				}
			}
			for k, rule := range r.Rules {
				for j, s := range rule.Scopes {
					if isScopeToken(s) && !supported[s] {
						ch.add(fmt.Sprintf("%s.rules[%d].scopes[%d]", p, k, j), "%q is not in scopes_supported", s)
					}
				}
			}
		}
		validateImplications(ch, p+".scope_implications", r.ScopeImplications)
		validateOrigins(ch, p+".allowed_origins", r.AllowedOrigins)
		validateCORS(ch, p+".cors", r.CORS)
		if r.Policy != "" || c.written[p+".policy"] {
			validatePolicy(ch, p+".policy", r.Policy)
		}
		for k, rule := range r.Rules {
			rp := fmt.Sprintf("%s.rules[%d]", p, k)
			if rule.Method == "" {
				ch.add(rp+".method", `must not be empty (omit it, or write "*", for any method)`)
			}
			if len(rule.Scopes) == 0 && rule.Policy == "" {
				ch.add(rp, "adds nothing: set scopes, a policy, or both")
			}
			// Resource URIs are matched in canonical form: a pattern
			// spelled otherwise would silently match nothing.
			if canon, err := mcp.CheckRuleName(rule.Method, rule.Name); err != nil && canon != "" {
				ch.add(rp+".name", "%q %v: write %q", rule.Name, err, canon)
			} else if err != nil {
				ch.add(rp+".name", "%q %v", rule.Name, err)
			}
			if rule.Policy != "" || c.written[rp+".policy"] {
				validatePolicy(ch, rp+".policy", rule.Policy)
			}
		}

		if r.ResourceDocumentation != "" {
			if u, err := url.Parse(r.ResourceDocumentation); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
				ch.add(p+".resource_documentation", "must be an absolute http or https URL")
			}
		}
	}
	validateRouting(ch, c.Resources)
	validateRootMetadata(ch, c.Resources)
}

// offlineAccess asks an authorization server for a refresh token (OpenID
// Connect Core §11). It is never a resource's scope: a resource that
// required or advertised it would make MCP clients ask every user for
// offline access.
const offlineAccess = "offline_access"

const msgOfflineAccess = "offline_access is for the authorization server (refresh tokens), never a resource's scope"

func scopeList(ch *checker, path string, scopes []string) {
	listed := firsts{}
	for k, s := range scopes {
		sp := fmt.Sprintf("%s[%d]", path, k)
		switch {
		case s == "":
			ch.add(sp, msgNotEmpty)
		case s == offlineAccess:
			ch.add(sp, msgOfflineAccess)
		case !isScopeToken(s):
			ch.add(sp, "must be a scope token: printable ASCII without spaces, double quotes or backslashes")
		default:
			if j, dup := listed.add(s, k); dup {
				ch.add(sp, "%q is already listed at %s[%d]", s, path, j)
			}
		}
	}
}

// validateImplications checks a scope hierarchy: scope tokens throughout,
// no scope implying itself. Keys are visited in sorted order so that
// messages come out the same on every run.
func validateImplications(ch *checker, path string, imp map[string][]string) {
	keys := make([]string, 0, len(imp))
	for k := range imp {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		kp := fmt.Sprintf("%s[%q]", path, k)
		switch {
		case k == offlineAccess:
			ch.add(kp, msgOfflineAccess)
			continue
		case !isScopeToken(k):
			ch.add(kp, "the key must be a scope token: printable ASCII without spaces, double quotes or backslashes")
			continue
		}
		if len(imp[k]) == 0 {
			ch.add(kp, "must list at least one implied scope")
		}
		scopeList(ch, kp, imp[k])
		if slices.Contains(imp[k], k) {
			ch.add(kp, "%q cannot imply itself", k)
		}
	}
}

// validateOrigins checks allowed_origins: "*", or serialized origins
// (RFC 6454 §6.2) in lower case, as browsers send them.
func validateOrigins(ch *checker, path string, origins []string) {
	listed := firsts{}
	for k, o := range origins {
		op := fmt.Sprintf("%s[%d]", path, k)
		if j, dup := listed.add(o, k); dup {
			ch.add(op, "%q is already listed at %s[%d]", o, path, j)
			continue
		}
		if o == "*" {
			continue
		}
		u, err := url.Parse(o)
		switch {
		case err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.Opaque != "":
			ch.add(op, `must be "*" or an origin such as "https://app.example.com" (scheme://host[:port])`)
		case u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil || strings.ContainsAny(o, "?#"):
			ch.add(op, "must be an origin only: scheme://host[:port], with no path, query or user")
		case o != strings.ToLower(o):
			ch.add(op, "must be lower case, as browsers send the Origin header")
		case (u.Scheme == "https" && u.Port() == "443") || (u.Scheme == "http" && u.Port() == "80"):
			ch.add(op, "must not include the default port (browsers omit it)")
		}
	}
}

// validateCORS checks a resource's cors block: what it lists is sent in
// headers, so only tokens (RFC 9110 §5.6.2) may appear, and "*" only where
// it has the meaning types.go gives it.
func validateCORS(ch *checker, path string, c CORS) {
	methods := firsts{}
	for k, m := range c.AllowMethods {
		mp := fmt.Sprintf("%s.allow_methods[%d]", path, k)
		switch {
		case !isToken(m) || strings.Contains(m, "*"):
			ch.add(mp, `must be a method name such as "POST" ("*" is not honoured on credentialed requests: list the methods)`)
		default:
			if j, dup := methods.add(m, k); dup {
				ch.add(mp, "%q is already listed at %s.allow_methods[%d]", m, path, j)
			}
		}
	}
	headers := firsts{}
	for k, h := range c.AllowHeaders {
		hp := fmt.Sprintf("%s.allow_headers[%d]", path, k)
		star := strings.IndexByte(h, '*')
		switch {
		case !isToken(h) || (star >= 0 && h != "*" && star != len(h)-1):
			ch.add(hp, `must be a header name such as "Mcp-Method", a prefix ending in "*" such as "Mcp-Param-*", or "*"`)
		case h == "*" && len(c.AllowHeaders) > 1:
			ch.add(hp, `"*" allows every header: list nothing beside it`)
		default:
			if j, dup := headers.add(strings.ToLower(h), k); dup {
				ch.add(hp, "%q is already listed at %s.allow_headers[%d] (header names are case-insensitive)", h, path, j)
			}
		}
	}
	if c.MaxAge < 0 || c.MaxAge.D()%time.Second != 0 {
		ch.add(path+".max_age", `must be a whole number of seconds, 0 or more, such as "10m"`)
	}
}
