package httpauthz_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/extauthz/extauthz/pkg/devissuer"
)

// TestCORSOnDenials: a denial to a request whose Origin the resource
// allows carries the CORS headers, for the proxy to copy with
// WWW-Authenticate; the refusal of another Origin carries none.
func TestCORSOnDenials(t *testing.T) {
	srv, _ := server(t)
	describe := func(origin string) [][2]string {
		return [][2]string{{"X-Original-Method", "POST"}, {"X-Original-URI", "/mcp"}, {"Host", "mcp.example.com"},
			{"Mcp-Method", "tools/list"}, {"Origin", origin}}
	}
	a := do(t, "GET", srv.URL+"/authz/nginx/mcp", describe("https://mcp.example.com"), "")
	if a.status != http.StatusUnauthorized || !strings.Contains(a.header.Get("WWW-Authenticate"), "resource_metadata=") {
		t.Fatalf("no token: %d %v", a.status, a.header)
	}
	if a.header.Get("Access-Control-Allow-Origin") != "https://mcp.example.com" ||
		!strings.Contains(a.header.Get("Access-Control-Expose-Headers"), "WWW-Authenticate") || a.header.Get("Vary") != "Origin" {
		t.Errorf("401 to an allowed Origin: CORS headers %v", a.header)
	}
	a = do(t, "GET", srv.URL+"/authz/nginx/mcp", describe("https://evil.example"), "")
	if a.status != http.StatusForbidden {
		t.Fatalf("other Origin: %d, want 403", a.status)
	}
	for name := range a.header {
		if strings.HasPrefix(strings.ToLower(name), "access-control-") {
			t.Errorf("403 origin_not_allowed carries %s", name)
		}
	}
}

// TestNginxPreflight: /authz/nginx-preflight serves the gateway's answer to
// a CORS preflight (nginx proxies the preflight there), refuses another
// Origin as the subrequest would, and never answers 2xx for a request the
// gateway would let through.
func TestNginxPreflight(t *testing.T) {
	srv, iss := server(t)
	preflight := [][2]string{{"X-Original-Method", "OPTIONS"}, {"X-Original-URI", "/mcp"}, {"Host", "mcp.example.com"},
		{"Origin", "https://mcp.example.com"}, {"Access-Control-Request-Method", "POST"},
		{"Access-Control-Request-Headers", "authorization,content-type,mcp-method,mcp-name,mcp-param-region,x-other"}}
	a := do(t, "GET", srv.URL+"/authz/nginx-preflight/mcp", preflight, "")
	if a.status != http.StatusNoContent || a.header.Get("Access-Control-Allow-Origin") != "https://mcp.example.com" {
		t.Fatalf("preflight: %d %v %s", a.status, a.header, a.body)
	}
	ah := strings.ToLower(a.header.Get("Access-Control-Allow-Headers"))
	for _, want := range []string{"authorization", "content-type", "mcp-method", "mcp-name", "mcp-param-region"} {
		if !strings.Contains(ah, want) {
			t.Errorf("Access-Control-Allow-Headers %q lacks %s", ah, want)
		}
	}
	if strings.Contains(ah, "x-other") {
		t.Errorf("Access-Control-Allow-Headers %q allows an unlisted header", ah)
	}

	evil := append([][2]string{}, preflight...)
	evil[3] = [2]string{"Origin", "https://evil.example"}
	if a := do(t, "GET", srv.URL+"/authz/nginx-preflight/mcp", evil, ""); a.status != http.StatusForbidden || a.header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("preflight from another origin: %d %v", a.status, a.header)
	}

	tok, err := iss.Mint(devissuer.Token{Subject: "alice", Scopes: []string{"mcp:tools"}})
	if err != nil {
		t.Fatal(err)
	}
	allowed := [][2]string{{"X-Original-Method", "OPTIONS"}, {"X-Original-URI", "/mcp"}, {"Host", "mcp.example.com"},
		{"Authorization", "Bearer " + tok}}
	if a := do(t, "GET", srv.URL+"/authz/nginx/mcp", allowed, ""); a.status != http.StatusOK {
		t.Fatalf("the same request as a subrequest: %d, want allowed", a.status)
	}
	if a := do(t, "GET", srv.URL+"/authz/nginx-preflight/mcp", allowed, ""); a.status != http.StatusForbidden {
		t.Errorf("an allowed non-preflight: %d, want 403", a.status)
	}
	noToken := [][2]string{{"X-Original-Method", "OPTIONS"}, {"X-Original-URI", "/mcp"}, {"Host", "mcp.example.com"}}
	if a := do(t, "GET", srv.URL+"/authz/nginx-preflight/mcp", noToken, ""); a.status != http.StatusUnauthorized {
		t.Errorf("a non-preflight without token: %d, want the 401 relayed", a.status)
	}
	// The subrequest endpoint still never answers a preflight with a 2xx.
	if a := do(t, "GET", srv.URL+"/authz/nginx/mcp", preflight, ""); a.status != http.StatusForbidden {
		t.Errorf("preflight through /authz/nginx: %d, want 403", a.status)
	}
}
