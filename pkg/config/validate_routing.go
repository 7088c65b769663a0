package config

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
)

// Warnings returns what a valid configuration allows but an operator
// should know: settings that are safe only if the proxy is wired a certain
// way. check-config prints them; serve logs them.
func Warnings(c *Config) []string {
	var out []string
	if !c.RequireExplicitResource {
		// Two resources told apart only by host: whoever writes the Host
		// header (the client) picks the resource, and with it the audience
		// a token must carry (RFC 8707), unless the proxy routes by the same
		// host or names the resource itself.
		for j := range c.Resources {
			for i := range j {
				a, b := c.Resources[i], c.Resources[j]
				if strings.TrimSuffix(a.PathPrefix, "/") == strings.TrimSuffix(b.PathPrefix, "/") {
					out = append(out, fmt.Sprintf("resources[%d] and resources[%d] differ only by host: unless every proxy route names its resource "+
						"(Envoy context_extensions, /authz/nginx/<resource>, /authz/traefik/<resource>) or routes by the same hosts, "+
						"a client chooses between them with the Host header; once every route names its resource, set require_explicit_resource: true", i, j))
				}
			}
		}
	}
	return out
}

// validateRouting rejects two resources that would match exactly the same
// requests: the first would always win and the second could only be reached
// through context_extensions, which is never what the operator meant.
func validateRouting(ch *checker, rs []Resource) {
	routes := map[string]int{}
	for j, r := range rs {
		if len(r.Hosts) == 0 || r.PathPrefix == "" {
			continue
		}
		// The host set, order and repeats ignored, then the prefix; NUL
		// cannot occur in a valid host.
		hosts := slices.Clone(r.Hosts)
		slices.Sort(hosts)
		key := strings.Join(slices.Compact(hosts), "\x00") + "\x00\x00" + r.PathPrefix
		if i, dup := routes[key]; dup {
			ch.add(fmt.Sprintf("resources[%d]", j), "has the same hosts and path_prefix as resources[%d] (ambiguous routing)", i)
			continue
		}
		routes[key] = j
	}
}

// validateRootMetadata: the document at a host's root well-known path
// (RFC 9728 §3 without a path suffix) must be one resource's, never a
// guess: the resource whose URI has the path "/", else the one marked
// root_metadata. Two claimants on one host are refused.
func validateRootMetadata(ch *checker, rs []Resource) {
	type claim struct {
		i      int
		atRoot bool // the URI's path is "/": the root document is its own
	}
	owners := map[string]claim{}
	for j, r := range rs {
		u, err := url.Parse(r.Resource)
		atRoot := err == nil && (u.EscapedPath() == "" || u.EscapedPath() == "/")
		if !atRoot && !r.RootMetadata {
			continue
		}
		for _, h := range r.Hosts {
			h = strings.ToLower(h)
			prev, taken := owners[h]
			switch {
			case !taken:
				owners[h] = claim{j, atRoot}
			case r.RootMetadata && prev.atRoot:
				ch.add(fmt.Sprintf("resources[%d].root_metadata", j), "resources[%d] has the path / and serves the root metadata document of host %q", prev.i, h)
			case r.RootMetadata:
				ch.add(fmt.Sprintf("resources[%d].root_metadata", j), "resources[%d] already serves the root metadata document of host %q", prev.i, h)
			case rs[prev.i].RootMetadata:
				ch.add(fmt.Sprintf("resources[%d].root_metadata", prev.i), "resources[%d] has the path / and serves the root metadata document of host %q", j, h)
			}
		}
	}
}
