package authz

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/extauthz/extauthz/pkg/config"
	"github.com/extauthz/extauthz/pkg/token"
)

// downVerifier is grantVerifier, except that "down" cannot be verified now.
type downVerifier struct{ grantVerifier }

func (v downVerifier) Verify(ctx context.Context, raw string, iss map[string]struct{}) (*token.Claims, error) {
	if raw == "down" {
		return nil, token.ErrUnavailable
	}
	return v.grantVerifier.Verify(ctx, raw, iss)
}

// corsHeaders returns the access-control-* and vary headers of an answer.
func corsHeaders(d *Decision) map[string]string {
	got := map[string]string{}
	for _, h := range d.ResponseHeaders() {
		if strings.HasPrefix(h.Name, "access-control-") || h.Name == "vary" {
			got[h.Name] = h.Value
		}
	}
	return got
}

const appOrigin = "https://app.example.com"

func corsFixture(t *testing.T, edit func(*config.Config)) *routeFixture {
	t.Helper()
	f := newRouteFixture(t, func(c *config.Config) {
		c.Resources[0].AllowedOrigins = []string{appOrigin}
		c.Resources[0].RequiredScopes = []string{"mcp"}
		c.Resources[0].Rules = []config.Rule{{Method: "tools/call", Name: "admin", Scopes: []string{"mcp:admin"}}}
		if edit != nil {
			edit(c)
		}
	})
	f.engine.opts.Verifier = downVerifier{}
	return f
}

// TestDenialsCarryCORS: every denial status a browser client can meet, to a
// request whose Origin the resource allows, can be read by that page,
// WWW-Authenticate included; the refusal of the Origin itself, a request
// without Origin and an allowed request get no CORS headers.
func TestDenialsCarryCORS(t *testing.T) {
	f := corsFixture(t, nil)
	call := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"admin"}}`
	list := `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`
	for _, tc := range []struct {
		name, path, auth, body string
		status                 int
		challenged             bool
	}{
		{"no token", "/mcp", "", "", http.StatusUnauthorized, true},
		{"invalid token", "/mcp", "Bearer bad", "", http.StatusUnauthorized, true},
		{"token in the query", "/mcp?access_token=good", "", "", http.StatusBadRequest, true},
		{"two credentials", "/mcp", "Bearer good, Bearer good", "", http.StatusBadRequest, true},
		{"missing scope", "/mcp", "Bearer good", call, http.StatusForbidden, true},
		{"cannot verify now", "/mcp", "Bearer down", "", http.StatusServiceUnavailable, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := map[string]string{"origin": appOrigin, "content-type": "application/json"}
			if tc.auth != "" {
				h["authorization"] = tc.auth
			}
			h["mcp-method"] = "tools/list"
			if tc.body != "" {
				h["mcp-method"], h["mcp-name"] = "tools/call", "admin"
			} else {
				tc.body = list
			}
			r := &Request{Method: http.MethodPost, Host: "mcp.example.com", Path: tc.path, Headers: h, Body: []byte(tc.body)}
			d := f.engine.Check(context.Background(), r)
			if d.Allow || d.Status != tc.status {
				t.Fatalf("allow=%v %d %s (%v), want %d", d.Allow, d.Status, d.Reason, d.Err, tc.status)
			}
			if (d.Challenge != "") != tc.challenged {
				t.Errorf("challenge %q, want one: %v", d.Challenge, tc.challenged)
			}
			want := map[string]string{
				"access-control-allow-origin":   appOrigin,
				"access-control-expose-headers": "WWW-Authenticate, Retry-After, DPoP-Nonce",
				"vary":                          "Origin",
			}
			if got := corsHeaders(&d); !equalMaps(got, want) {
				t.Errorf("CORS headers %v, want %v", got, want)
			}

			delete(h, "origin")
			r = &Request{Method: http.MethodPost, Host: "mcp.example.com", Path: tc.path, Headers: h, Body: []byte(tc.body)}
			if d := f.engine.Check(context.Background(), r); d.Status != tc.status || len(corsHeaders(&d)) != 0 {
				t.Errorf("without Origin: %d with CORS headers %v, want %d and none", d.Status, corsHeaders(&d), tc.status)
			}
		})
	}

	// The Origin's own refusal: the page must not read anything.
	for _, origin := range []string{"https://evil.example", "null", "https://app.example.com.evil.example", "http://app.example.com"} {
		d := f.check(http.MethodPost, "mcp.example.com", "/mcp", map[string]string{"origin": origin})
		if d.Status != http.StatusForbidden || d.Reason != ReasonOriginNotAllowed || len(corsHeaders(&d)) != 0 {
			t.Errorf("Origin %q: %d %s with %v, want 403 origin_not_allowed without CORS headers", origin, d.Status, d.Reason, corsHeaders(&d))
		}
	}
	// The Origin is compared ignoring ASCII case, and what is echoed is the
	// allowed origin, never the request's bytes.
	d := f.check(http.MethodPost, "mcp.example.com", "/mcp", map[string]string{"origin": "https://APP.example.com"})
	if d.Status != http.StatusUnauthorized || corsHeaders(&d)["access-control-allow-origin"] != appOrigin {
		t.Errorf("upper-case Origin: %d %v", d.Status, corsHeaders(&d))
	}
	// Unicode case folding is no ASCII case: the Kelvin sign lower-cases
	// to "k", "ſ" upper-cases to "S"; neither is the allowed origin.
	k := corsFixture(t, func(c *config.Config) { c.Resources[0].AllowedOrigins = []string{"https://kapp.example.com"} })
	for _, origin := range []string{"https://\u212Aapp.example.com", "https://KAPP.example.com\u0000", "https://kapp.example.com "} {
		d := k.check(http.MethodPost, "mcp.example.com", "/mcp", map[string]string{"origin": origin})
		if d.Status != http.StatusForbidden || len(corsHeaders(&d)) != 0 {
			t.Errorf("Origin %q: %d %v, want 403 without CORS headers", origin, d.Status, corsHeaders(&d))
		}
	}
	// Allowed: the upstream's answer is the upstream's.
	d = f.engine.Check(context.Background(), &Request{Method: http.MethodPost, Host: "mcp.example.com", Path: "/mcp", Body: []byte(list),
		Headers: map[string]string{"origin": appOrigin, "authorization": "Bearer good", "mcp-method": "tools/list", "content-type": "application/json"}})
	if !d.Allow || len(d.Extra) != 0 {
		t.Errorf("allowed: allow=%v extra %v, want allowed with no answer headers", d.Allow, d.Extra)
	}
	// No resource chose the request: no origin list to answer for.
	d = f.check(http.MethodPost, "mcp.example.com", "/elsewhere", map[string]string{"origin": appOrigin})
	if d.Allow || d.Resource != "" || len(corsHeaders(&d)) != 0 {
		t.Errorf("unmatched: %d resource %q with %v, want a denial without CORS headers", d.Status, d.Resource, corsHeaders(&d))
	}
	// Another resource's allowed origin is not this one's.
	d = f.check(http.MethodPost, "other.example.com", "/mcp", map[string]string{"origin": appOrigin})
	if d.Status != http.StatusForbidden || len(corsHeaders(&d)) != 0 {
		t.Errorf("origin of another resource: %d %v, want 403 without CORS headers", d.Status, corsHeaders(&d))
	}
}

// TestCORSOriginForms: "*" answers "*" and never allows credentials, even
// on a resource with browser login; a listed origin on a login resource is
// answered with credentials, on denials and preflights alike.
func TestCORSOriginForms(t *testing.T) {
	pre := map[string]string{"origin": appOrigin, "access-control-request-method": "POST", "access-control-request-headers": "authorization"}
	for _, tc := range []struct {
		name    string
		origins []string
		login   bool
		acao    string
		creds   bool
	}{
		{"listed", []string{appOrigin}, false, appOrigin, false},
		{"listed, login", []string{appOrigin}, true, appOrigin, true},
		{"any", []string{"*"}, false, "*", false},
		{"any, login", []string{"*"}, true, "*", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := corsFixture(t, func(c *config.Config) { c.Resources[0].AllowedOrigins = tc.origins })
			f.engine.Policy().byName["mcp"].login = tc.login
			for kind, d := range map[string]Decision{
				"denial":    f.check(http.MethodPost, "mcp.example.com", "/mcp", map[string]string{"origin": appOrigin}),
				"preflight": f.check(http.MethodOptions, "mcp.example.com", "/mcp", pre),
			} {
				got := corsHeaders(&d)
				if got["access-control-allow-origin"] != tc.acao || (got["access-control-allow-credentials"] == "true") != tc.creds {
					t.Errorf("%s: %v, want origin %q credentials %v", kind, got, tc.acao, tc.creds)
				}
				if _, ok := got["access-control-allow-credentials"]; ok && !tc.creds {
					t.Errorf("%s: %v has Access-Control-Allow-Credentials", kind, got)
				}
			}
		})
	}
}

// TestPreflightHeaders: the gateway's preflight answer lists what the
// resource's cors block allows, echoes requested names under a listed
// prefix (CORS has no pattern), and leaves out anything else, which makes
// the browser refuse the request.
func TestPreflightHeaders(t *testing.T) {
	const listed = "Authorization, Content-Type, Mcp-Protocol-Version, Mcp-Method, Mcp-Name, Mcp-Session-Id, Last-Event-ID"
	for _, tc := range []struct {
		name      string
		cors      config.CORS
		requested string
		want      map[string]string
	}{
		{"defaults", config.CORS{}, "authorization,content-type,mcp-method,mcp-name,mcp-protocol-version", map[string]string{
			"access-control-allow-headers": listed, "access-control-allow-methods": "GET, POST, DELETE", "access-control-max-age": "600",
		}},
		{"Mcp-Param-* echoed, others left out", config.CORS{}, "authorization, mcp-param-region,X-Evil, Mcp-Param-Tenant-Id", map[string]string{
			"access-control-allow-headers": listed + ", mcp-param-region, Mcp-Param-Tenant-Id",
		}},
		{"the bare prefix is no name under it", config.CORS{}, "mcp-param-", map[string]string{"access-control-allow-headers": listed}},
		{"not a token list: nothing echoed", config.CORS{}, "mcp-param-a\r\nx-injected: 1", map[string]string{"access-control-allow-headers": listed}},
		{"nothing requested", config.CORS{}, "", map[string]string{"access-control-allow-headers": listed}},
		{"configured", config.CORS{AllowMethods: []string{"POST"}, AllowHeaders: []string{"Authorization", "X-Tenant-*"}, MaxAge: config.Duration(time.Hour)},
			"authorization, mcp-method, x-tenant-eu", map[string]string{
				"access-control-allow-headers": "Authorization, x-tenant-eu", "access-control-allow-methods": "POST", "access-control-max-age": "3600",
			}},
		{"every header", config.CORS{AllowHeaders: []string{"*"}}, "x-anything, authorization", map[string]string{"access-control-allow-headers": "x-anything, authorization"}},
		{"every header, nothing requested", config.CORS{AllowHeaders: []string{"*"}}, "", map[string]string{"access-control-allow-headers": ""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := corsFixture(t, func(c *config.Config) { c.Resources[0].CORS = tc.cors })
			h := map[string]string{"origin": appOrigin, "access-control-request-method": "POST"}
			if tc.requested != "" {
				h["access-control-request-headers"] = tc.requested
			}
			d := f.check(http.MethodOptions, "mcp.example.com", "/mcp", h)
			if d.Allow || d.Status != http.StatusNoContent {
				t.Fatalf("allow=%v %d, want the gateway's 204", d.Allow, d.Status)
			}
			got := corsHeaders(&d)
			for k, v := range tc.want {
				if got[k] != v {
					t.Errorf("%s: %q, want %q", k, got[k], v)
				}
			}
			if got["access-control-allow-origin"] != appOrigin || got["vary"] != "Origin, Access-Control-Request-Method, Access-Control-Request-Headers" {
				t.Errorf("preflight %v", got)
			}
		})
	}
}

// TestMetadataPreflight: the metadata document is public: a preflight to
// it from any origin, with the headers an MCP client may add, is answered.
func TestMetadataPreflight(t *testing.T) {
	f := corsFixture(t, nil)
	d := f.check(http.MethodOptions, "mcp.example.com", "/.well-known/oauth-protected-resource/mcp", map[string]string{
		"origin": "https://elsewhere.example", "access-control-request-method": "GET", "access-control-request-headers": "mcp-protocol-version",
	})
	got := corsHeaders(&d)
	if d.Status != http.StatusNoContent || got["access-control-allow-origin"] != "*" || got["access-control-allow-headers"] == "" ||
		!strings.Contains(got["access-control-allow-methods"], "GET") {
		t.Errorf("metadata preflight: %d %v", d.Status, got)
	}
	d = f.check(http.MethodGet, "mcp.example.com", "/.well-known/oauth-protected-resource/mcp", map[string]string{"origin": "https://elsewhere.example"})
	if d.Status != http.StatusOK || corsHeaders(&d)["access-control-allow-origin"] != "*" {
		t.Errorf("metadata: %d %v", d.Status, corsHeaders(&d))
	}
}

// TestCORSNoAllocationWithoutOrigin: the cache-hit path pays nothing for
// CORS when the request has no Origin.
func TestCORSNoAllocationWithoutOrigin(t *testing.T) {
	f := corsFixture(t, nil)
	p := f.engine.Policy()
	r := &Request{Method: http.MethodPost, Host: "mcp.example.com", Path: "/mcp", Headers: map[string]string{"authorization": "Bearer good"}}
	deny := Decision{Status: http.StatusUnauthorized, Resource: "mcp"}
	allow := Decision{Allow: true, Status: http.StatusOK, Resource: "mcp"}
	if n := testing.AllocsPerRun(100, func() {
		p.withCORS(r, &deny)
		p.withCORS(r, &allow)
	}); n != 0 {
		t.Errorf("%v allocations without Origin, want 0", n)
	}
	r.Headers["origin"] = appOrigin
	if n := testing.AllocsPerRun(100, func() { p.withCORS(r, &allow) }); n != 0 {
		t.Errorf("%v allocations for an allowed request with Origin, want 0", n)
	}
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// TestFetchIsNoNavigation: on a resource with browser login, a page's fetch
// without credentials gets the 401 it can read, not the 302 to the sign-in
// a navigation gets: a fetch announces itself by Origin (cross-origin) or
// Sec-Fetch-Mode.
func TestFetchIsNoNavigation(t *testing.T) {
	f := corsFixture(t, nil)
	f.engine.Policy().byName["mcp"].login = true
	f.engine.opts.BrowserLogin = &fakeLogin{id: "s", tok: "good"}
	html := "text/html,application/xhtml+xml"
	for _, tc := range []struct {
		name    string
		headers map[string]string
		status  int
	}{
		{"navigation", map[string]string{"accept": html}, http.StatusFound},
		{"navigation with Fetch Metadata", map[string]string{"accept": html, "sec-fetch-mode": "navigate"}, http.StatusFound},
		{"cross-origin fetch", map[string]string{"accept": html, "origin": appOrigin}, http.StatusUnauthorized},
		{"same-origin fetch", map[string]string{"accept": html, "sec-fetch-mode": "cors"}, http.StatusUnauthorized},
		{"no-cors fetch", map[string]string{"accept": html, "sec-fetch-mode": "no-cors"}, http.StatusUnauthorized},
	} {
		d := f.check(http.MethodGet, "mcp.example.com", "/mcp", tc.headers)
		if d.Status != tc.status {
			t.Errorf("%s: %d %s, want %d", tc.name, d.Status, d.Reason, tc.status)
		}
		if tc.headers["origin"] != "" && corsHeaders(&d)["access-control-allow-origin"] != appOrigin {
			t.Errorf("%s: CORS headers %v", tc.name, corsHeaders(&d))
		}
	}
}

// FuzzPreflightAllowHeaders: whatever a client requests, the answer's
// Access-Control-Allow-Headers is the listed names plus requested names
// under a listed prefix: tokens only, nothing else of the request.
func FuzzPreflightAllowHeaders(f *testing.F) {
	for _, s := range []string{"authorization, mcp-param-a", "mcp-param-", "Mcp-Param-X,\tMCP-PARAM-y", "a\r\nb", "mcp-param-a,,", " , ", "x-tenant-1"} {
		f.Add(s)
	}
	c := compileCORS(config.CORS{AllowMethods: []string{"POST"}, AllowHeaders: []string{"Authorization", "Mcp-Param-*", "X-Tenant-*"}})
	f.Fuzz(func(t *testing.T, requested string) {
		got := c.allowHeaders(requested)
		if !strings.HasPrefix(got, "Authorization") {
			t.Fatalf("%q: %q lost the listed names", requested, got)
		}
		if !isTokenList(got) {
			t.Fatalf("%q: %q is not a list of header names", requested, got)
		}
		for item := range strings.SplitSeq(got, ",") {
			item = strings.TrimSpace(item)
			if item != "Authorization" && !c.prefixed(item) {
				t.Fatalf("%q: %q allows %q, which nothing lists", requested, got, item)
			}
			if item != "Authorization" && !strings.Contains(strings.ToLower(requested), strings.ToLower(item)) {
				t.Fatalf("%q: %q allows %q, which was not requested", requested, got, item)
			}
		}
	})
}
