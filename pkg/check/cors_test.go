package check_test

import (
	"strings"
	"testing"

	"github.com/extauthz/extauthz/pkg/check"
	"github.com/extauthz/extauthz/pkg/devissuer"
)

// TestCORSOverGRPC: Envoy sends the denial's headers to the client as they
// are, so a browser page on an allowed origin can read the 401's challenge
// and the 503's Retry-After; another origin's refusal carries no CORS
// header; the preflight answer lists the MCP request headers.
func TestCORSOverGRPC(t *testing.T) {
	g := startGateway(t)
	const origin = "https://mcp.example.com" // the resource's own origin: allowed by default

	a := g.check(t, check.EnvoyRequest{Method: "POST", URL: resourceURI, Headers: [][2]string{{"origin", origin}}})
	if a.status != 401 || !strings.Contains(a.headers["www-authenticate"], "resource_metadata=") {
		t.Fatalf("no token: %d %v", a.status, a.headers)
	}
	if a.headers["access-control-allow-origin"] != origin || a.headers["access-control-expose-headers"] != "WWW-Authenticate, Retry-After, DPoP-Nonce" ||
		a.headers["vary"] != "Origin" || a.headers["cache-control"] != "no-store" {
		t.Errorf("401 to an allowed Origin: %v", a.headers)
	}

	tok := mint(t, g.down, devissuer.Token{Subject: "alice", Audience: []string{"https://down.example.com/mcp"}, Scopes: []string{"mcp:tools"}})
	a = g.check(t, check.EnvoyRequest{Method: "POST", URL: "https://down.example.com/mcp",
		Headers: [][2]string{{"origin", "https://down.example.com"}, {"authorization", "Bearer " + tok}}})
	if a.status != 503 || a.headers["retry-after"] == "" || a.headers["access-control-allow-origin"] != "https://down.example.com" {
		t.Errorf("503 to an allowed Origin: %d %v", a.status, a.headers)
	}

	a = g.check(t, check.EnvoyRequest{Method: "POST", URL: resourceURI, Headers: [][2]string{{"origin", "https://evil.example"}}})
	if a.status != 403 {
		t.Fatalf("another origin: %d, want 403", a.status)
	}
	for k := range a.headers {
		if strings.HasPrefix(k, "access-control-") || k == "vary" {
			t.Errorf("403 origin_not_allowed carries %s", k)
		}
	}

	a = g.check(t, check.EnvoyRequest{Method: "OPTIONS", URL: resourceURI, Headers: [][2]string{{"origin", origin},
		{"access-control-request-method", "POST"}, {"access-control-request-headers", "authorization,mcp-method,mcp-param-x"}}})
	if a.status != 204 || a.headers["access-control-allow-headers"] !=
		"Authorization, Content-Type, Mcp-Protocol-Version, Mcp-Method, Mcp-Name, Mcp-Session-Id, Last-Event-ID, mcp-param-x" {
		t.Errorf("preflight: %d %v", a.status, a.headers)
	}
}
