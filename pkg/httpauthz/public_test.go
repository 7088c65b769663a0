package httpauthz_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/extauthz/extauthz/internal/testkit"
	"github.com/extauthz/extauthz/pkg/authz"
	"github.com/extauthz/extauthz/pkg/config"
	"github.com/extauthz/extauthz/pkg/devissuer"
	"github.com/extauthz/extauthz/pkg/httpauthz"
	"github.com/extauthz/extauthz/pkg/jwks"
	"github.com/extauthz/extauthz/pkg/token"
	"github.com/extauthz/extauthz/pkg/verdict"
)

// TestPublicPathsThroughEveryProxy asks about a public path the way each
// proxy does: the path the proxy reports, as the client sent it, decides.
func TestPublicPathsThroughEveryProxy(t *testing.T) {
	iss, _ := testkit.Issuer(t, "ES256", "", resourceURI, nil)
	cfg, err := config.Parse([]byte(fmt.Sprintf(`
resources:
  - name: mcp
    resource: %q
    required_scopes: ["mcp:tools"]
    authorization_servers: [{issuer: %q, jwks_uri: %q}]
    public: [{path: /mcp/health, methods: [GET]}]
`, resourceURI, iss.Issuer(), iss.JWKSURL())))
	if err != nil {
		t.Fatal(err)
	}
	src := jwks.New(func(context.Context) (string, error) { return iss.JWKSURL(), nil }, jwks.Options{})
	v, err := token.NewIssuerSet(token.Options{Issuers: map[string]token.Issuer{iss.Issuer(): {Keys: src}}})
	if err != nil {
		t.Fatal(err)
	}
	p, err := authz.NewPolicy(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e, err := authz.NewEngine(p, authz.Options{Verifier: v, Cache: verdict.LocalCache(100, nil), MaxTTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(httpauthz.New(e, httpauthz.Options{}))
	t.Cleanup(srv.Close)
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
