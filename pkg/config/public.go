package config

import (
	"fmt"
	"strings"

	"github.com/extauthz/extauthz/pkg/target"
)

// PublicPath is a path of a protected resource that passes without a
// token, for the requests whose method is listed: a health check, a
// public endpoint of the MCP server. It is matched on the canonical path
// (package target), exactly, or with Prefix on whole segments; a request
// that another reading of its path would decide differently is refused
// (400), as the router refuses ambiguous paths.
type PublicPath struct {
	// Under the resource's `path_prefix`, in canonical form (`check-config`
	// names the form to write); each path once.
	Path string `yaml:"path" schema:"required" pattern:"^/"`
	// Methods that pass without a token, upper case as sent (`GET`, `HEAD`,
	// `POST`…); compared exactly. Nothing is public by default, and `HEAD` is
	// not implied by `GET`.
	Methods []string `yaml:"methods" schema:"required,minItems=1,unique,items.ref=method"`
	// Also every path below `path`, on whole segments (`/mcp/static` covers
	// `/mcp/static/x`, never `/mcp/static2`). Written without a trailing slash;
	// not the resource's own `path_prefix` (that would make the whole resource
	// public).
	Prefix bool `yaml:"prefix"`
}

// validatePublic checks resources[i].public; p is "resources[i]".
func validatePublic(ch *checker, p string, r *Resource) {
	seen := map[string]int{}
	for k, pub := range r.Public {
		pp := fmt.Sprintf("%s.public[%d]", p, k)
		switch canon, ok := target.Canonical(pub.Path); {
		case pub.Path == "":
			ch.add(pp+".path", msgRequired)
		case strings.ContainsAny(pub.Path, "?#"):
			ch.add(pp+".path", `must not contain "?" or "#"`)
		case !ok && canon == "":
			ch.add(pp+".path", `must be a plain path starting with "/": no control characters, spaces, "\", ";", malformed or escaped control percent-escapes`)
		case !ok:
			ch.add(pp+".path", "is not in canonical form; write %q", canon)
		case r.PathPrefix != "" && !target.HasPrefix(pub.Path, strings.TrimSuffix(r.PathPrefix, "/"), r.PathCaseInsensitive):
			ch.add(pp+".path", "must be under the resource's path_prefix %q", r.PathPrefix)
		case pub.Prefix && strings.HasSuffix(pub.Path, "/"):
			ch.add(pp+".path", "a prefix is written without a trailing slash (it matches on whole segments)")
		case pub.Prefix && strings.TrimSuffix(pub.Path, "/") == strings.TrimSuffix(r.PathPrefix, "/"):
			ch.add(pp+".prefix", "would make the whole resource public; list the public paths under it")
		default:
			key := pub.Path
			if r.PathCaseInsensitive {
				key = strings.ToLower(key)
			}
			if pub.Prefix {
				key += " (prefix)"
			}
			if j, dup := seen[key]; dup {
				ch.add(pp+".path", "%q is already listed at %s.public[%d]", pub.Path, p, j)
			} else {
				seen[key] = k
			}
		}
		if len(pub.Methods) == 0 {
			ch.add(pp+".methods", "list the methods that pass without a token, such as [GET, HEAD]")
		}
		// Repeats: the unique tag's check reports them.
		for j, m := range pub.Methods {
			if !isToken(m) || strings.ToUpper(m) != m {
				ch.add(fmt.Sprintf("%s.methods[%d]", pp, j), "must be a method name in upper case, as sent (GET, HEAD, POST...)")
			}
		}
	}
}
