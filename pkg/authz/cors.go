package authz

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/extauthz/extauthz/pkg/config"
)

// CORS (Fetch standard, "CORS protocol") for browser MCP clients. A page on
// another origin can read an answer only if it carries
// Access-Control-Allow-Origin for that origin, and can read a header of it
// other than the safelisted few only if Access-Control-Expose-Headers names
// it. A browser MCP client must read the 401's WWW-Authenticate to find the
// metadata, so the gateway's denials to an allowed Origin carry both. The
// origins are the resource's allowed_origins, the list the Origin check
// (MCP streamable HTTP transport, DNS rebinding) uses: one list, so that an
// origin whose requests are refused is never told it may read answers, and
// the reverse.

// corsExposed are the headers of the gateway's own answers that are not
// CORS-safelisted response headers: a denial's challenge and a 503's
// Retry-After. (Content-Type and Cache-Control are safelisted.) What the
// upstream's answers expose, Mcp-Session-Id among them, is the upstream's
// to say.
const corsExposed = "WWW-Authenticate, Retry-After, DPoP-Nonce"

// corsRules is a resource's cors block, compiled.
type corsRules struct {
	methods  string   // Access-Control-Allow-Methods
	headers  string   // the listed names, Access-Control-Allow-Headers when no prefix matches
	prefixes []string // lower case, from "Mcp-Param-*": requested names with one are echoed
	echoAll  bool     // allow_headers ["*"]: every requested name is echoed
	maxAge   string   // Access-Control-Max-Age, seconds
}

func compileCORS(c config.CORS) corsRules {
	r := corsRules{
		methods: strings.Join(c.AllowMethods, ", "),
		maxAge:  strconv.FormatInt(int64(c.MaxAge.D().Seconds()), 10),
	}
	var names []string
	for _, h := range c.AllowHeaders {
		switch {
		case h == "*":
			r.echoAll = true
		case strings.HasSuffix(h, "*"):
			r.prefixes = append(r.prefixes, strings.ToLower(strings.TrimSuffix(h, "*")))
		default:
			names = append(names, h)
		}
	}
	r.headers = strings.Join(names, ", ")
	return r
}

// allowHeaders is the Access-Control-Allow-Headers of a preflight answer
// for the requested names: the listed ones, and those of the requested
// names that a listed prefix (or "*") allows — CORS has no pattern, so
// they are echoed. A requested name that nothing allows is left out, and
// the browser refuses the request (Fetch, CORS-preflight fetch step 7.7).
// Only a list of tokens is ever echoed, so nothing can be injected.
func (c *corsRules) allowHeaders(requested string) string {
	if requested == "" || (!c.echoAll && len(c.prefixes) == 0) || !isTokenList(requested) {
		return c.headers
	}
	if c.echoAll {
		return requested
	}
	var b strings.Builder
	for item := range strings.SplitSeq(requested, ",") {
		item = strings.Trim(item, " \t")
		if !c.prefixed(item) {
			continue
		}
		if b.Len() == 0 {
			b.WriteString(c.headers)
		}
		if b.Len() > 0 {
			b.WriteString(", ")
		}
		b.WriteString(item)
	}
	if b.Len() == 0 {
		return c.headers
	}
	return b.String()
}

// prefixed reports whether a header name is longer than, and starts with,
// one of the allowed prefixes (ASCII case-insensitively).
func (c *corsRules) prefixed(name string) bool {
	for _, p := range c.prefixes {
		if len(name) > len(p) && strings.EqualFold(name[:len(p)], p) {
			return true
		}
	}
	return false
}

// corsOrigin is the Access-Control-Allow-Origin for an allowed Origin, and
// whether Access-Control-Allow-Credentials is sent. A resource allowing
// every origin answers "*": nothing of the caller is reflected, and no
// credentialed (cookie) request may read it, so a browser's login cookie is
// never usable from any site. Otherwise the answer names the listed origin the
// Origin matched (ASCII, lower case: what browsers send; never the
// request's own bytes), with credentials when the resource has the browser
// login, whose cookie makes requests credentialed.
func (res *resource) corsOrigin(origin string) (string, bool) {
	if res.anyOrigin {
		return "*", false
	}
	return strings.ToLower(origin), res.login
}

// withCORS adds the CORS headers to a denial of a request whose Origin the
// resource allows, so that a browser client can read its status, challenge
// and body. A request without Origin (same-origin, or not a browser), a
// denial before a resource was chosen, and the refusal of the Origin
// itself get none.
func (p *Policy) withCORS(r *Request, d *Decision) {
	origin, ok := r.Headers["origin"]
	if !ok || d.Allow || d.Status < 400 || d.Resource == "" || d.Reason == ReasonOriginNotAllowed {
		return
	}
	res := p.byName[d.Resource]
	if res == nil || !res.originAllowed(origin) {
		return
	}
	allow, creds := res.corsOrigin(origin)
	// Never append into a slice the decision may share with another.
	h := make([]Header, 0, len(d.Extra)+4)
	h = append(h, d.Extra...)
	h = append(h,
		Header{"access-control-allow-origin", allow},
		Header{"access-control-expose-headers", corsExposed},
	)
	if creds {
		h = append(h, Header{"access-control-allow-credentials", "true"})
	}
	d.Extra = append(h, Header{"vary", "Origin"})
}

// preflightAnswer is the gateway's answer to a CORS preflight from an
// allowed origin: 204 with what the resource's cors block allows.
func (res *resource) preflightAnswer(r *Request) Decision {
	allow, creds := res.corsOrigin(r.Headers["origin"])
	h := make([]Header, 0, 6)
	h = append(h, Header{"access-control-allow-origin", allow})
	if res.cors.methods != "" {
		h = append(h, Header{"access-control-allow-methods", res.cors.methods})
	}
	if ah := res.cors.allowHeaders(r.Headers["access-control-request-headers"]); ah != "" {
		h = append(h, Header{"access-control-allow-headers", ah})
	}
	if creds {
		h = append(h, Header{"access-control-allow-credentials", "true"})
	}
	h = append(h,
		Header{"access-control-max-age", res.cors.maxAge},
		Header{"vary", "Origin, Access-Control-Request-Method, Access-Control-Request-Headers"},
	)
	return Decision{Status: http.StatusNoContent, Reason: ReasonPreflight, Resource: res.name, Extra: h}
}
