package config

import (
	"strings"
	"testing"
)

const facadeYAML = `
public_url: https://gw.example.com
login:
  session_key: {env: SESSION_KEY}
oauth_facade:
  signing_keys: [{file: /run/secrets/facade-key.pem}]
resources:
  - name: mcp
    resource: https://gw.example.com/mcp
    required_scopes: [mcp:tools]
    authorization_servers: [{issuer: "https://login.example.com"}]
    oauth_facade:
      enabled: true
      client_id: gateway
      client_secret: {env: GATEWAY_SECRET}
`

func TestFacadeConfig(t *testing.T) {
	c, err := Parse([]byte(facadeYAML))
	if err != nil {
		t.Fatal(err)
	}
	r := c.Resources[0]
	if c.FacadeIssuer() != "https://gw.example.com/oauth" || !c.FacadeEnabled() {
		t.Fatalf("issuer %q", c.FacadeIssuer())
	}
	// The facade is listed first, its keys at its own jwks_uri; the provider stays.
	as := r.AuthorizationServers
	if len(as) != 2 || as[0].Issuer != "https://gw.example.com/oauth" || as[0].JWKSURI != "https://gw.example.com/oauth/jwks" ||
		as[0].TokenMode != TokenModeJWT || as[0].AudienceClaim != "aud" || as[1].Issuer != "https://login.example.com" {
		t.Errorf("authorization servers %+v", as)
	}
	f := r.OAuthFacade
	if f.Issuer != "https://login.example.com" || f.UpstreamAudience != r.Resource || f.AudienceStyle != "resource" ||
		f.TokenTTL.D().String() != "1h0m0s" || strings.Join(f.Scopes, " ") != "openid offline_access" {
		t.Errorf("defaults %+v", f)
	}
	// Parsing the result again changes nothing (the facade is not listed twice).
	c.ApplyDefaults()
	if len(c.Resources[0].AuthorizationServers) != 2 {
		t.Errorf("listed twice: %+v", c.Resources[0].AuthorizationServers)
	}

	for _, tt := range []struct {
		name, replace, with, want string
	}{
		{"no client id", "      client_id: gateway\n", "", "resources[0].oauth_facade.client_id: is required when the facade is enabled"},
		{"no signing key", "  signing_keys: [{file: /run/secrets/facade-key.pem}]\n", "", "oauth_facade.signing_keys: at least one key is required"},
		{"no session key", "  session_key: {env: SESSION_KEY}\n", "", "login.session_key: is required when a resource enables oauth_facade"},
		{"issuer not listed", "      client_id: gateway\n", "      client_id: gateway\n      issuer: https://other.example.com\n", "resources[0].oauth_facade.issuer: must be one of the resource's authorization_servers"},
		{"scope style without scope", "      client_id: gateway\n", "      client_id: gateway\n      audience_style: scope\n", "resources[0].oauth_facade.audience_scope: is required with audience_style: scope"},
		{"set but off", "      enabled: true\n", "      enabled: false\n", "resources[0].oauth_facade: is set but not enabled"},
		{"document network not CIDR", "  signing_keys:", "  client_documents: {allow_networks: [127.0.0.1/32, 10.0.0.1]}\n  signing_keys:", `oauth_facade.client_documents.allow_networks[1]: must be a network in CIDR notation`},
		{"login path on an endpoint", "login:\n", "login:\n  callback_path: /oauth/token\n", `login.callback_path: "/oauth/token" is an endpoint of the OAuth facade`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(strings.Replace(facadeYAML, tt.replace, tt.with, 1)))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want %q", err, tt.want)
			}
		})
	}
}
