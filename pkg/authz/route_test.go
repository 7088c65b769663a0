package authz

import (
	"context"
	"net/http"
	"net/url"
	"path"
	"strings"
	"testing"
	"time"

	"github.com/extauthz/extauthz/pkg/config"
	"github.com/extauthz/extauthz/pkg/token"
)

// grantVerifier accepts the token "good" for every resource (audience
// checks pass: it names every audience the tests use) and refuses the
// rest. Routing is what these tests look at; verification has its own.
type grantVerifier struct{}

func (grantVerifier) Verify(_ context.Context, raw string, _ map[string]struct{}) (*token.Claims, error) {
	if raw != "good" {
		return nil, token.ErrSignature
	}
	return &token.Claims{Subject: "alice", Expiry: time.Now().Add(time.Hour), Grant: &token.Grant{
		Issuer: "https://as.example.com", Audience: []string{"https://mcp.example.com/mcp", "https://other.example.com/mcp", "https://mcp.example.com/", "https://mcp.example.com/Admin", "https://mcp.example.com/ci"},
		Scopes: []string{"mcp"}, Scope: "mcp",
	}}, nil
}

type routeFixture struct {
	engine *Engine
}

// newRouteFixture builds an engine over resources given as YAML-ish config
// values; edit adjusts the config before it is validated.
func newRouteFixture(t testing.TB, edit func(*config.Config)) *routeFixture {
	t.Helper()
	as := []config.AuthorizationServer{{Issuer: "https://as.example.com", JWKSURI: "https://as.example.com/jwks"}}
	cfg := &config.Config{Resources: []config.Resource{
		{Name: "mcp", Resource: "https://mcp.example.com/mcp", AuthorizationServers: as},
		{Name: "other", Resource: "https://other.example.com/mcp", AuthorizationServers: as},
	}}
	if edit != nil {
		edit(cfg)
	}
	e, err := NewEngine(validPolicy(t, cfg), Options{Verifier: grantVerifier{}})
	if err != nil {
		t.Fatal(err)
	}
	return &routeFixture{engine: e}
}

func (f *routeFixture) check(method, host, target string, headers map[string]string) Decision {
	if headers == nil {
		headers = map[string]string{}
	}
	return f.engine.Check(context.Background(), &Request{Method: method, Host: host, Path: target, Headers: headers})
}

// withCatchAll adds the weaker resources an operator might have: a public
// catch-all on "/" (no scope) and no explicit route names.
func withCatchAll(c *config.Config) {
	c.Resources = append(c.Resources, config.Resource{
		Name: "public", Resource: "https://mcp.example.com/", Hosts: []string{"mcp.example.com"}, PathPrefix: "/",
		AuthorizationServers: c.Resources[0].AuthorizationServers,
	})
}

// TestPathAndHostVariantsNeverSlipPast is the attacker's list: spellings of
// /mcp that a proxy or an upstream routes to the MCP endpoint (Express
// matches case-insensitively, nginx and many servers decode %2F, Java
// containers drop ";" parameters, DNS ignores a trailing dot). Whatever
// else the gateway does with them, it must never decide them as something
// other than resource "mcp": it answers the mcp challenge (401, routed
// correctly) or refuses them (400). Never an allow, never another resource.
func TestPathAndHostVariantsNeverSlipPast(t *testing.T) {
	variants := []struct {
		host, target string
	}{
		{"mcp.example.com", "/MCP"},
		{"mcp.example.com", "/Mcp/x"},
		{"mcp.example.com", "/%6Dcp"},
		{"mcp.example.com", "/%6dcp"},
		{"mcp.example.com", "/x/..%2Fmcp"},
		{"mcp.example.com", "/x/..%2fmcp"},
		{"mcp.example.com", "/x/%2E%2E/mcp"},
		{"mcp.example.com", "/mcp%2F"},
		{"mcp.example.com", "/mcp%2Fx"},
		{"mcp.example.com", "/mcp;x"},
		{"mcp.example.com", "/mcp;x/y"},
		{"mcp.example.com", `/x\..\mcp`},
		{"mcp.example.com", "/x/..%5Cmcp"},
		{"mcp.example.com", "/x/..%252Fmcp"},
		{"mcp.example.com", "//mcp"},
		{"mcp.example.com", "/./mcp"},
		{"mcp.example.com", "/public/../mcp"},
		{"mcp.example.com.", "/mcp"},
		{"MCP.Example.COM", "/mcp"},
		{"mcp.example.com.:443", "/mcp"},
	}
	for _, setup := range []struct {
		name string
		edit func(*config.Config)
	}{
		{"unmatched allow", func(c *config.Config) { c.Unmatched = "allow" }},
		{"catch-all resource", withCatchAll},
	} {
		t.Run(setup.name, func(t *testing.T) {
			f := newRouteFixture(t, setup.edit)
			for _, v := range variants {
				d := f.check(http.MethodPost, v.host, v.target, nil)
				switch {
				case d.Allow:
					t.Errorf("Host %q %s: allowed without a token (%s, resource %q)", v.host, v.target, d.Reason, d.Resource)
				case d.Status == http.StatusBadRequest:
				case d.Status == http.StatusUnauthorized && d.Resource == "mcp":
				default:
					t.Errorf("Host %q %s: %d %s resource %q; want 400, or mcp's 401", v.host, v.target, d.Status, d.Reason, d.Resource)
				}
			}
		})
	}
}

// TestHostIsCanonical: the routed host is lower case, without port or one
// trailing dot; anything a server could read as another name is refused.
func TestHostIsCanonical(t *testing.T) {
	f := newRouteFixture(t, nil)
	for _, host := range []string{"mcp.example.com", "MCP.EXAMPLE.COM", "mcp.example.com.", "mcp.example.com:8443", "mcp.example.com.:8443"} {
		if d := f.check(http.MethodPost, host, "/mcp", nil); d.Status != http.StatusUnauthorized || d.Resource != "mcp" {
			t.Errorf("Host %q: %d %q, want mcp's 401", host, d.Status, d.Resource)
		}
	}
	for _, host := range []string{"mcp.example.com..", "mcp..example.com", ".mcp.example.com", "mcp.ex%61mple.com", "user@mcp.example.com",
		"mcp.exаmple.com" /* Cyrillic а */, "mcp.example.com:x", "mcp.example.com:443:443", "mcp example.com", "[::1", "[::1]x"} {
		if d := f.check(http.MethodPost, host, "/mcp", nil); d.Status != http.StatusBadRequest || d.Allow {
			t.Errorf("Host %q: %d %q, want 400", host, d.Status, d.Resource)
		}
	}
}

// TestResourceFromTheRouteNotTheHost: a token for resource "other" sent to
// the route of "mcp" with other's Host is decided as mcp (wrong audience)
// when the route names its resource, and refused when the operator requires
// routes to name it and one does not.
func TestResourceFromTheRouteNotTheHost(t *testing.T) {
	f := newRouteFixture(t, nil)
	ext := map[string]string{"resource": "mcp"}
	r := &Request{Method: http.MethodPost, Host: "other.example.com", Path: "/mcp", Headers: map[string]string{}, ContextExtensions: ext}
	if d := f.engine.Check(context.Background(), r); d.Resource != "mcp" || d.Status != http.StatusUnauthorized {
		t.Errorf("named route: %d resource %q, want mcp's 401", d.Status, d.Resource)
	}

	strict := newRouteFixture(t, func(c *config.Config) { c.RequireExplicitResource = true })
	if d := strict.check(http.MethodPost, "mcp.example.com", "/mcp", map[string]string{"authorization": "Bearer good"}); d.Allow || d.Status != http.StatusForbidden {
		t.Errorf("require_explicit_resource, no route name: %d allow=%v, want 403", d.Status, d.Allow)
	}
	r.ContextExtensions = map[string]string{"resource": "mcp"}
	r.Headers = map[string]string{"authorization": "Bearer good"}
	if d := strict.engine.Check(context.Background(), r); !d.Allow || d.Resource != "mcp" {
		t.Errorf("require_explicit_resource, named route: %d %s, want allowed as mcp", d.Status, d.Reason)
	}
	for _, name := range []string{"", "MCP", "nope"} {
		r.ContextExtensions = map[string]string{"resource": name}
		if d := strict.engine.Check(context.Background(), r); d.Allow || d.Status != http.StatusForbidden {
			t.Errorf("route names %q: %d allow=%v, want 403", name, d.Status, d.Allow)
		}
	}
}

// TestCaseInsensitivePrefixOptIn: a resource whose upstream routes
// case-insensitively says so, and then /MCP is that resource.
func TestCaseInsensitivePrefixOptIn(t *testing.T) {
	f := newRouteFixture(t, func(c *config.Config) {
		c.Resources[0].PathCaseInsensitive = true
		withCatchAll(c)
	})
	for _, target := range []string{"/MCP", "/Mcp/x", "/mcp"} {
		if d := f.check(http.MethodPost, "mcp.example.com", target, nil); d.Resource != "mcp" || d.Status != http.StatusUnauthorized {
			t.Errorf("%s: %d resource %q, want mcp's 401", target, d.Status, d.Resource)
		}
	}
}

// TestCanonicalPathReachesPolicies: rules and policies see the canonical
// path and host, the ones the decision routed on.
func TestCanonicalPathReachesPolicies(t *testing.T) {
	f := newRouteFixture(t, func(c *config.Config) {
		c.Resources[0].Policy = `request.path == "/mcp/x" && request.host == "mcp.example.com"`
	})
	h := map[string]string{"authorization": "Bearer good"}
	if d := f.check(http.MethodPost, "MCP.example.com.", "/mcp/./y/../%78", h); !d.Allow {
		t.Errorf("canonical /mcp/x denied: %d %s %v", d.Status, d.Reason, d.Err)
	}
}

// TestPreflight: a CORS preflight from an allowed origin is answered by the
// gateway (or forwarded when the resource says so); an OPTIONS with a body
// is no preflight and needs a token like any request.
func TestPreflight(t *testing.T) {
	f := newRouteFixture(t, func(c *config.Config) { c.Resources[0].AllowedOrigins = []string{"https://app.example.com"} })
	pre := map[string]string{"origin": "https://app.example.com", "access-control-request-method": "POST",
		"access-control-request-headers": "authorization, content-type, mcp-protocol-version"}
	d := f.check(http.MethodOptions, "mcp.example.com", "/mcp", pre)
	if d.Allow || d.Status != http.StatusNoContent || d.Reason != ReasonPreflight {
		t.Fatalf("preflight: allow=%v %d %s, want answered 204", d.Allow, d.Status, d.Reason)
	}
	got := map[string]string{}
	for _, h := range d.ResponseHeaders() {
		got[h.Name] = h.Value
	}
	if got["access-control-allow-origin"] != "https://app.example.com" || !strings.Contains(got["access-control-allow-headers"], "Mcp-Protocol-Version") ||
		!strings.Contains(got["access-control-allow-methods"], "POST") || got["vary"] == "" {
		t.Errorf("preflight answer headers %v", got)
	}

	for name, extra := range map[string]map[string]string{
		"content-length":    {"content-length": "57"},
		"transfer-encoding": {"transfer-encoding": "chunked"},
	} {
		h := map[string]string{}
		for k, v := range pre {
			h[k] = v
		}
		for k, v := range extra {
			h[k] = v
		}
		if d := f.check(http.MethodOptions, "mcp.example.com", "/mcp", h); d.Allow || d.Status != http.StatusUnauthorized {
			t.Errorf("OPTIONS with a body (%s): allow=%v %d, want 401 (no preflight)", name, d.Allow, d.Status)
		}
	}
	r := &Request{Method: http.MethodOptions, Host: "mcp.example.com", Path: "/mcp", Headers: pre, Body: []byte(`{"jsonrpc":"2.0","id":1,"method":"tools/call"}`)}
	if d := f.engine.Check(context.Background(), r); d.Allow || d.Status != http.StatusUnauthorized {
		t.Errorf("OPTIONS with a forwarded body: allow=%v %d, want 401", d.Allow, d.Status)
	}
	if d := f.check(http.MethodOptions, "mcp.example.com", "/mcp", map[string]string{"origin": "https://evil.example", "access-control-request-method": "POST"}); d.Status != http.StatusForbidden {
		t.Errorf("preflight from another origin: %d, want 403", d.Status)
	}

	fwd := newRouteFixture(t, func(c *config.Config) {
		c.Resources[0].AllowedOrigins = []string{"https://app.example.com"}
		c.Resources[0].Preflight = "forward"
	})
	h := map[string]string{"x_extauthz_subject": "mallory"}
	for k, v := range pre {
		h[k] = v
	}
	d = fwd.check(http.MethodOptions, "mcp.example.com", "/mcp", h)
	if !d.Allow || d.Reason != ReasonPreflight {
		t.Fatalf("forwarded preflight: allow=%v %d %s", d.Allow, d.Status, d.Reason)
	}
	for _, name := range []string{"x-extauthz-subject", "x-extauthz-client-id", "x-extauthz-scopes", "x_extauthz_subject"} {
		if !contains(d.Remove, name) {
			t.Errorf("forwarded preflight keeps %s (removes %v)", name, d.Remove)
		}
	}
}

// stripLogin is the cookie side of BrowserLogin: the login cookie is "sid".
type stripLogin struct{}

func (stripLogin) AccessToken(context.Context, string, string) (string, bool, error) {
	return "", false, nil
}
func (stripLogin) LoginURL(string, string) string { return "" }
func (stripLogin) StripCookie(c string) string {
	var kept []string
	for part := range strings.SplitSeq(c, ";") {
		part = strings.TrimSpace(part)
		if part != "" && !strings.HasPrefix(part, "sid=") {
			kept = append(kept, part)
		}
	}
	return strings.Join(kept, "; ")
}

// TestUpstreamNeverGetsTheLoginCookieOrForgedIdentity: on a Bearer request, on
// another resource and on an unmatched request let through, the login
// cookie is taken out of Cookie and every "_" spelling of an identity
// header is removed.
func TestUpstreamNeverGetsTheLoginCookieOrForgedIdentity(t *testing.T) {
	f := newRouteFixture(t, func(c *config.Config) { c.Unmatched = "allow" })
	f.engine.opts.BrowserLogin = stripLogin{}
	forged := map[string]string{
		"authorization":        "Bearer good",
		"cookie":               "theme=dark; sid=SECRET; lang=en",
		"x_extauthz_subject":   "mallory",
		"x_extauthz-client_id": "mallory-client",
		"x-extauthz_scopes":    "admin",
	}
	for _, target := range []string{"/mcp", "/elsewhere"} {
		d := f.check(http.MethodPost, "mcp.example.com", target, forged)
		if !d.Allow {
			t.Fatalf("%s: denied %d %v", target, d.Status, d.Err)
		}
		var cookie string
		for _, h := range d.Upstream {
			if h.Name == "cookie" {
				cookie = h.Value
			}
		}
		if cookie != "theme=dark; lang=en" {
			t.Errorf("%s: upstream Cookie %q, want the login cookie removed", target, cookie)
		}
		for _, name := range []string{"x_extauthz_subject", "x_extauthz-client_id", "x-extauthz_scopes"} {
			if !contains(d.Remove, name) {
				t.Errorf("%s: %s reaches the upstream (removes %v)", target, name, d.Remove)
			}
		}
	}
	only := map[string]string{"authorization": "Bearer good", "cookie": "sid=SECRET"}
	if d := f.check(http.MethodPost, "mcp.example.com", "/mcp", only); !contains(d.Remove, "cookie") {
		t.Errorf("a Cookie holding only the login cookie: removes %v, want cookie", d.Remove)
	}
}

// routeRef is the reference router of the differential fuzz target: the
// resources as plain (host, prefix) pairs and a naive longest-prefix match,
// written independently of the package's router.
type routeRef struct {
	name, host, prefix string
	fold               bool
}

var refResources = []routeRef{
	{"mcp", "mcp.example.com", "/mcp", false},
	{"admin", "mcp.example.com", "/mcp/admin", false},
	{"other", "other.example.com", "/mcp", false},
	{"upper", "mcp.example.com", "/Admin", false},
	{"ci", "mcp.example.com", "/ci", true},
	{"root", "mcp.example.com", "", false},
}

func refRoute(host, p string, fold bool) string {
	best, bestLen := "", -1
	for _, r := range refResources {
		if r.host != host {
			continue
		}
		f := fold || r.fold
		match := r.prefix == "" || p == r.prefix || strings.HasPrefix(p, r.prefix+"/")
		if f {
			lp, lr := strings.ToLower(p), strings.ToLower(r.prefix)
			match = lr == "" || lp == lr || strings.HasPrefix(lp, lr+"/")
		}
		if match && len(r.prefix) > bestLen {
			best, bestLen = r.name, len(r.prefix)
		}
	}
	return best
}

// refReadings are what servers may route a raw path as, computed with
// net/url and path, not with package target.
func refReadings(raw string) []string {
	clean := func(s string) string {
		if s == "" {
			return "/"
		}
		c := path.Clean("/" + s)
		return c
	}
	out := []string{clean(raw)}
	dec := raw
	for range 2 {
		if d, err := url.PathUnescape(dec); err == nil {
			dec = d
		}
		out = append(out, clean(dec))
		out = append(out, clean(strings.ReplaceAll(dec, `\`, "/")))
		var segs []string
		for s := range strings.SplitSeq(strings.ReplaceAll(dec, `\`, "/"), "/") {
			s, _, _ = strings.Cut(s, ";")
			segs = append(segs, s)
		}
		out = append(out, clean(strings.Join(segs, "/")))
	}
	return out
}

// FuzzRouteDifferential sends random hosts and paths through the router
// and, for every request it routes (does not refuse), checks that a
// reference router over net/url's readings — decoded once and twice, "\"
// as "/", ";" parameters dropped, case folded — finds the same resource.
// "Same resource or refused": never a resource some server's reading
// would not reach.
func FuzzRouteDifferential(f *testing.F) {
	for _, s := range []string{"/mcp", "/MCP", "/mcp/admin", "/mcp/Admin", "/%6Dcp", "/x/..%2Fmcp", "/mcp%2F", "/mcp;x", "/ci/x", "/CI",
		"/admin", "/Admin/x", `/x\..\mcp`, "/mcp/admin%2F..%2F..%2Fother", "/%2e%2e/mcp", "/mcp/%2561dmin", "//mcp", "/mcp/./admin/"} {
		f.Add("mcp.example.com", s)
		f.Add("other.example.com.", s)
	}
	as := []config.AuthorizationServer{{Issuer: "https://as.example.com", JWKSURI: "https://as.example.com/jwks"}}
	cfg := &config.Config{Unmatched: "allow"}
	for _, r := range refResources {
		res := config.Resource{Name: r.name, Resource: "https://" + r.host + "/" + r.name, Hosts: []string{r.host},
			PathPrefix: r.prefix + "/", PathCaseInsensitive: r.fold, AuthorizationServers: as}
		if r.prefix == "" {
			res.PathPrefix = "/"
		}
		cfg.Resources = append(cfg.Resources, res)
	}
	p := validPolicy(f, cfg)
	f.Fuzz(func(t *testing.T, host, raw string) {
		h, canon, err := canonicalTarget(host, raw)
		if err != nil {
			return // refused: 400
		}
		res, err := p.selectResource(nil, h, raw, canon)
		if err != nil && err != ErrUnmatched {
			return // refused as ambiguous: 400
		}
		got := ""
		if res != nil {
			got = res.name
		}
		refHost := strings.TrimSuffix(strings.ToLower(host), ".")
		if u, err := url.Parse("http://" + host + "/"); err == nil {
			refHost = strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
		}
		for _, reading := range refReadings(raw) {
			for _, fold := range []bool{false, true} {
				if want := refRoute(refHost, reading, fold); want != got {
					t.Fatalf("Host %q path %q routed to %q, but a server reading it as %q (fold %v) reaches %q", host, raw, got, reading, fold, want)
				}
			}
		}
	})
}

// TestPolicyOnTheOperationNeedsTheOperation: behind a proxy that forwards
// no body, a POST without Mcp-* headers has no known operation. A policy
// that reads mcp would see mcp.name == "" for a call it never saw
// (`!mcp.name.startsWith("admin_")` is true), so such a request is
// refused; a policy that does not read mcp decides as before.
func TestPolicyOnTheOperationNeedsTheOperation(t *testing.T) {
	h := map[string]string{"authorization": "Bearer good"}
	reads := newRouteFixture(t, func(c *config.Config) { c.Resources[0].Policy = `!mcp.name.startsWith("admin_")` })
	if d := reads.check(http.MethodPost, "mcp.example.com", "/mcp", h); d.Allow || d.Status != http.StatusBadRequest {
		t.Errorf("policy on mcp, POST with no operation: allow=%v %d %s, want 400", d.Allow, d.Status, d.Reason)
	}
	if d := reads.check(http.MethodGet, "mcp.example.com", "/mcp", h); !d.Allow {
		t.Errorf("policy on mcp, GET (no JSON-RPC): %d %s, want allowed", d.Status, d.Reason)
	}
	other := newRouteFixture(t, func(c *config.Config) { c.Resources[0].Policy = `token.sub == "alice"` })
	if d := other.check(http.MethodPost, "mcp.example.com", "/mcp", h); !d.Allow {
		t.Errorf("policy not on mcp, POST with no operation: %d %s, want allowed", d.Status, d.Reason)
	}
}
