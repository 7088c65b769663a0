package authz

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/extauthz/extauthz/pkg/config"
	"github.com/extauthz/extauthz/pkg/target"
)

// withPublic makes /mcp/health public for GET, and everything below
// /mcp/pub for GET and POST.
func withPublic(c *config.Config) {
	c.Resources[0].Public = []config.PublicPath{
		{Path: "/mcp/health", Methods: []string{"GET"}},
		{Path: "/mcp/pub", Prefix: true, Methods: []string{"GET", "POST"}},
	}
	c.Resources[0].AllowedOrigins = []string{"https://app.example.com"}
}

func TestPublicPaths(t *testing.T) {
	f := newRouteFixture(t, withPublic)
	const host = "mcp.example.com"

	t.Run("public requests pass, without identity or credential", func(t *testing.T) {
		for _, tc := range []struct {
			method, target string
			headers        map[string]string
		}{
			{"GET", "/mcp/health", nil},
			{"GET", "/mcp/health?probe=1", nil},
			{"GET", "/mcp/pub", nil},
			{"POST", "/mcp/pub/x/y", nil},
			// A token is not looked at (not even a bad one), and never
			// reaches the upstream; nor do identity headers the client
			// wrote, in either spelling.
			{"GET", "/mcp/health", map[string]string{"authorization": "Bearer good"}},
			{"GET", "/mcp/health", map[string]string{"authorization": "Bearer bad", "x-extauthz-subject": "root", "x_extauthz_subject": "root"}},
			{"GET", "/mcp/health", map[string]string{"origin": "https://app.example.com"}},
		} {
			d := f.check(tc.method, host, tc.target, tc.headers)
			if !d.Allow || d.Reason != ReasonPublic || d.Resource != "mcp" {
				t.Errorf("%s %s %v: allow=%v status=%d reason=%s, want public", tc.method, tc.target, tc.headers, d.Allow, d.Status, d.Reason)
				continue
			}
			if d.Claims != nil || len(d.Upstream) != 0 {
				t.Errorf("%s %s: identity sent upstream: %+v %v", tc.method, tc.target, d.Claims, d.Upstream)
			}
			for _, h := range []string{"authorization", "x-extauthz-subject", "x-extauthz-client-id", "x-extauthz-scopes"} {
				if !slices.Contains(d.Remove, h) {
					t.Errorf("%s %s: %s not removed (remove %v)", tc.method, tc.target, h, d.Remove)
				}
			}
			if tc.headers["x_extauthz_subject"] != "" && !slices.Contains(d.Remove, "x_extauthz_subject") {
				t.Errorf("x_extauthz_subject not removed: %v", d.Remove)
			}
		}
	})

	// The attacker's list: spellings and methods that must not pass
	// without a token. Each gets the challenge of a protected request
	// (401) or is refused as ambiguous (400) — never an allow.
	for _, tc := range []struct {
		method, target string
		status         int
	}{
		{"HEAD", "/mcp/health", 401}, // HEAD is not implied by GET
		{"POST", "/mcp/health", 401},
		{"get", "/mcp/health", 401}, // methods are case-sensitive
		{"GET", "/mcp/health/", 401},
		{"GET", "/mcp/health/x", 401}, // an exact path is not a prefix
		{"GET", "/mcp/healthz", 401},
		{"GET", "/mcp/health/../tools", 401},
		{"GET", "/mcp/health%2F..", 401},
		{"GET", "/mcp/health%2Fx", 401},
		{"GET", "/mcp/tools/..%2F..%2Fmcp%2Fhealth", 400},
		{"GET", "//mcp/health", 401}, // public only as spelled canonically
		{"GET", "/mcp/./health", 401},
		{"GET", "/mcp/x/../health", 401},
		{"GET", "/MCP/health", 400},
		{"GET", "/mcp/HEALTH", 400},
		{"GET", "/mcp/Health", 400},
		{"GET", "/mcp/health;x", 400},
		{"GET", "/mcp/health;x/../../tools", 403}, // /tools: no resource,
		{"GET", "/mcp/%68ealth", 400},
		{"GET", `/mcp/health\..\tools`, 401},
		{"GET", "/mcp/public2", 401}, // segment-aware prefix
		{"GET", "/mcp/pubx", 401},
		{"GET", "/mcp/pub/..;/tools", 400},
		{"GET", "/mcp/pub/..%2Ftools", 400},
		{"GET", "/mcp/pub/..%252Ftools", 400},
		{"GET", "/mcp/pub/%2E%2E/tools", 400},
		{"GET", `/mcp/pub\..\tools`, 401}, // "pub\..\tools" is not a segment below /mcp/pub,
		{"GET", "/mcp/PUB/x", 400},
		{"DELETE", "/mcp/pub/x", 401},
	} {
		d := f.check(tc.method, host, tc.target, nil)
		if d.Allow || d.Status != tc.status {
			t.Errorf("%s %s: allow=%v status=%d reason=%s, want %d", tc.method, tc.target, d.Allow, d.Status, d.Reason, tc.status)
		}
	}

	t.Run("a disallowed Origin is refused on a public path too", func(t *testing.T) {
		d := f.check("GET", host, "/mcp/health", map[string]string{"origin": "https://evil.example.com"})
		if d.Allow || d.Status != http.StatusForbidden {
			t.Errorf("allow=%v status=%d", d.Allow, d.Status)
		}
	})
	t.Run("named by the route, variants are still refused", func(t *testing.T) {
		ext := map[string]string{"resource": "mcp"}
		for target, status := range map[string]int{"/MCP/health": 400, "/mcp/health;x": 400, "/mcp/pub/..;/x": 400, "/mcp/health": 200} {
			d := f.engine.Check(context.Background(), &Request{Method: "GET", Host: host, Path: target, Headers: map[string]string{}, ContextExtensions: ext})
			if d.Status != status || d.Allow != (status == 200) {
				t.Errorf("%s: allow=%v status=%d, want %d", target, d.Allow, d.Status, status)
			}
		}
	})
	t.Run("other resources have no public paths", func(t *testing.T) {
		if d := f.check("GET", "other.example.com", "/mcp/health", nil); d.Allow || d.Status != 401 {
			t.Errorf("allow=%v status=%d", d.Allow, d.Status)
		}
	})
}

func TestPublicPathsCaseInsensitiveResource(t *testing.T) {
	f := newRouteFixture(t, func(c *config.Config) {
		withPublic(c)
		c.Resources[0].PathCaseInsensitive = true
	})
	// The operator says the upstream routes without regard to case: the
	// public paths are matched that way too, and their variants stay out.
	for target, allow := range map[string]bool{"/mcp/health": true, "/MCP/Health": true, "/mcp/pub/X": true, "/MCP/health;x": false, "/mcp/HEALTH/../tools": false} {
		if d := f.check("GET", "mcp.example.com", target, nil); d.Allow != allow {
			t.Errorf("%s: allow=%v status=%d reason=%s, want allow=%v", target, d.Allow, d.Status, d.Reason, allow)
		}
	}
}

// FuzzPublicNeverLoose: whatever path a client sends, a request passes
// without a token only when the path as sent is exactly a public path, or
// lies on whole segments below a public prefix, with nothing a server could
// read differently in it.
func FuzzPublicNeverLoose(f *testing.F) {
	for _, s := range []string{"/mcp/health", "/mcp/pub/x", "/mcp/health;x", "/mcp/pub/..;/t", "/mcp/pub/..%2Ft", "//mcp/health",
		"/mcp/pub%2F..%2Ftools", `/mcp/pub\..\t`, "/mcp/%70ub/x", "/mcp/pub/%252e%252e/t", "/MCP/pub"} {
		f.Add(s)
	}
	fx := newRouteFixture(f, withPublic)
	f.Fuzz(func(t *testing.T, p string) {
		if p == "" || p[0] != '/' {
			return
		}
		d := fx.check("GET", "mcp.example.com", p, nil)
		if d.Reason != ReasonPublic {
			return
		}
		path, _, _ := strings.Cut(p, "?")
		if canon, err := target.Path(path); err != nil || canon != path {
			t.Fatalf("%q passed as public but is not canonical (%q, %v)", p, canon, err)
		}
		if strings.ContainsAny(path, `%\;`) {
			for _, r := range target.Readings(path) {
				if r != "/mcp/health" && !target.HasPrefix(r, "/mcp/pub", false) {
					t.Fatalf("%q passed as public, but a server may read it as %q", p, r)
				}
			}
		}
		if path != "/mcp/health" && !target.HasPrefix(path, "/mcp/pub", false) {
			t.Fatalf("%q passed as public", p)
		}
	})
}
