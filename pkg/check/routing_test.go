package check_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/extauthz/extauthz/pkg/authz"
	"github.com/extauthz/extauthz/pkg/check"
	"github.com/extauthz/extauthz/pkg/config"
	"github.com/extauthz/extauthz/pkg/devissuer"
)

// mcpMetadata is how a challenge names resource mcp.
const mcpMetadata = `resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource/mcp"`

// TestRouteVariantsThroughTheCheck is issue 17's item 4 through the gRPC
// Check, as Envoy sends it (both header encodings): an operator protects
// /mcp and lets everything else through to a public catch-all resource. A
// client holding a token for the catch-all (or no token) tries the
// spellings of /mcp that a proxy or the upstream routes to the MCP
// endpoint. Each must be refused (400) or decided as mcp (401: the token's
// audience is wrong); never allowed as the catch-all, never passed as
// unmatched.
func TestRouteVariantsThroughTheCheck(t *testing.T) {
	g := startGateway(t)
	cfg := &config.Config{
		Unmatched: "allow",
		Resources: []config.Resource{
			{Name: "mcp", Resource: resourceURI, AuthorizationServers: []config.AuthorizationServer{{Issuer: g.main.Issuer()}},
				RequiredScopes: []string{"mcp:tools"}},
			{Name: "public", Resource: "https://mcp.example.com/", AuthorizationServers: []config.AuthorizationServer{{Issuer: g.main.Issuer()}}},
		},
	}
	cfg.ApplyDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	p, err := authz.NewPolicy(cfg)
	if err != nil {
		t.Fatal(err)
	}
	g.engine.Swap(p, nil)
	public := mint(t, g.main, devissuer.Token{Audience: []string{"https://mcp.example.com/"}})

	for _, u := range []string{
		"https://mcp.example.com/MCP",
		"https://mcp.example.com/Mcp/tools",
		"https://mcp.example.com/%6Dcp",
		"https://mcp.example.com/x/..%2Fmcp",
		"https://mcp.example.com/mcp%2F",
		"https://mcp.example.com/mcp;x",
		"https://mcp.example.com/mcp;jsessionid=1/x",
		"https://mcp.example.com/x/%2e%2e/mcp",
		"https://mcp.example.com/x/..%252Fmcp",
		"https://mcp.example.com.:443/mcp",
		"https://MCP.EXAMPLE.COM/mcp",
	} {
		for _, raw := range []bool{false, true} {
			for _, h := range [][][2]string{nil, bearer(public)} {
				a := g.check(t, check.EnvoyRequest{Method: http.MethodPost, URL: u, RawHeaders: raw, Headers: h})
				switch {
				case a.allowed:
					t.Errorf("%s (raw headers %v, token %v): allowed", u, raw, h != nil)
				case a.status == http.StatusBadRequest:
				case a.status == http.StatusUnauthorized && strings.Contains(a.headers["www-authenticate"], mcpMetadata):
				default:
					t.Errorf("%s (raw headers %v, token %v): %d %q %s; want 400, or mcp's 401", u, raw, h != nil, a.status, a.headers["www-authenticate"], a.body)
				}
			}
		}
	}
	// Controls: the catch-all's own paths pass with its token; /mcp wants mcp's.
	if a := g.check(t, check.EnvoyRequest{Method: http.MethodPost, URL: "https://mcp.example.com/docs", Headers: bearer(public)}); !a.allowed {
		t.Errorf("control: the catch-all with its own token: %d %s", a.status, a.body)
	}
	if a := g.check(t, check.EnvoyRequest{Method: http.MethodPost, URL: resourceURI, Headers: bearer(public)}); a.allowed || a.status != http.StatusUnauthorized {
		t.Errorf("control: /mcp with the catch-all's token: allowed=%v %d", a.allowed, a.status)
	}
}

// TestUnderscoreIdentityHeadersRemoved: X_Extauthz_Subject reads as the
// identity header to CGI-style upstreams; an allowed Check removes every
// such spelling, whichever header encoding Envoy used.
func TestUnderscoreIdentityHeadersRemoved(t *testing.T) {
	g := startGateway(t)
	tok := mint(t, g.main, devissuer.Token{})
	for _, raw := range []bool{false, true} {
		a := g.check(t, check.EnvoyRequest{Method: http.MethodPost, URL: resourceURI, RawHeaders: raw, Headers: append(bearer(tok),
			[2]string{"x_extauthz_subject", "mallory"}, [2]string{"X_Extauthz-Client_Id", "forged"}, [2]string{"x-extauthz_scopes", "mcp:admin"},
			[2]string{"x_other", "kept"})})
		if !a.allowed {
			t.Fatalf("raw headers %v: denied %d %s", raw, a.status, a.body)
		}
		for _, name := range []string{"x_extauthz_subject", "x_extauthz-client_id", "x-extauthz_scopes"} {
			if !contains(a.removed, name) {
				t.Errorf("raw headers %v: %s reaches the upstream (removed %v)", raw, name, a.removed)
			}
		}
		if contains(a.removed, "x_other") {
			t.Errorf("raw headers %v: x_other removed, it names no identity header", raw)
		}
	}
}
