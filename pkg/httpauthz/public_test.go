package httpauthz_test

import (
	"fmt"
	"testing"

	"github.com/extauthz/extauthz/internal/testkit"
	"github.com/extauthz/extauthz/pkg/devissuer"
)

// TestPublicPathsThroughEveryProxy asks about a public path the way each
// proxy does: the path the proxy reports, as the client sent it, decides.
func TestPublicPathsThroughEveryProxy(t *testing.T) {
	iss, _ := testkit.Issuer(t, "ES256", "", resourceURI, nil)
	srv := serve(t, iss, nil, fmt.Sprintf(`
resources:
  - name: mcp
    resource: %q
    required_scopes: ["mcp:tools"]
    authorization_servers: [{issuer: %q, jwks_uri: %q}]
    public: [{path: /mcp/health, methods: [GET]}]
`, resourceURI, iss.Issuer(), iss.JWKSURL()))
	tok, err := iss.Mint(devissuer.Token{Subject: "alice", ClientID: "app", Scopes: []string{"mcp:tools"}})
	if err != nil {
		t.Fatal(err)
	}

	proxies := map[string]func(method, uri string) (string, string, [][2]string){
		"nginx": func(method, uri string) (string, string, [][2]string) {
			return "GET", srv.URL + "/authz/nginx", [][2]string{{"Host", "mcp.example.com"}, {"X-Original-Method", method}, {"X-Original-URI", uri}}
		},
		"traefik": func(method, uri string) (string, string, [][2]string) {
			return "GET", srv.URL + "/authz/traefik", [][2]string{
				{"X-Forwarded-Method", method}, {"X-Forwarded-Proto", "https"}, {"X-Forwarded-Host", "mcp.example.com"}, {"X-Forwarded-Uri", uri}}
		},
	}
	for name, proxy := range proxies {
		t.Run(name, func(t *testing.T) {
			m, u, h := proxy("GET", "/mcp/health")
			a := do(t, m, u, append(h, [2]string{"Authorization", "Bearer " + tok}), "")
			if a.status != 200 || a.header.Get("X-Extauthz-Subject") != "" {
				t.Errorf("public: %d, subject %q", a.status, a.header.Get("X-Extauthz-Subject"))
			}
			for uri, status := range map[string]int{"/mcp/health;x": 400, "/mcp//health": 401, "/mcp/health/../tools": 401, "/mcp/HEALTH": 400} {
				m, u, h := proxy("GET", uri)
				if a := do(t, m, u, h, ""); a.status != status {
					t.Errorf("%s: %d, want %d", uri, a.status, status)
				}
			}
			m, u, h = proxy("HEAD", "/mcp/health")
			if a := do(t, m, u, h, ""); a.status != 401 {
				t.Errorf("HEAD: %d, want 401", a.status)
			}
		})
	}
}
