package config

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestFromEnv(t *testing.T) {
	t.Run("the seed's names", func(t *testing.T) {
		c, err := FromEnv(envMap(map[string]string{
			"OAUTH_AUTHORIZATION_SERVER": "https://auth.example.com",
			"OAUTH_RESOURCE_URI":         "https://mcp.example.com/mcp",
			"OAUTH_REQUIRED_SCOPES":      "mcp:read mcp:write",
			"OAUTH_CLIENT_ID":            "gw",
			"OAUTH_CLIENT_SECRET":        "s",
			"ALLOWED_ORIGIN":             "https://app.example.com",
			"EXTAUTHZ_RESOURCE":          "https://mcp.example.com/mcp", // both names, equal: fine
		}))
		if err != nil {
			t.Fatal(err)
		}
		r := c.Resources[0]
		as := r.AuthorizationServers[0]
		if r.Name != "mcp" || r.PathPrefix != "/mcp" || !slices.Equal(r.Hosts, []string{"mcp.example.com"}) ||
			!slices.Equal(r.RequiredScopes, []string{"mcp:read", "mcp:write"}) || !slices.Equal(r.ScopesSupported, r.RequiredScopes) ||
			!slices.Equal(r.AllowedOrigins, []string{"https://app.example.com"}) {
			t.Errorf("resource %+v", r)
		}
		if as.TokenMode != TokenModeAuto || as.Introspection.ClientID != "gw" || as.Introspection.ClientSecret != (Secret{Env: "OAUTH_CLIENT_SECRET"}) ||
			as.Introspection.AuthMethod != AuthClientSecretBasic {
			t.Errorf("authorization server %+v", as)
		}
		if c.Listen.GRPC != "127.0.0.1:9001" || c.Log.Level != "info" || c.Unmatched != "deny" {
			t.Errorf("defaults not applied: %+v", c)
		}
	})
	t.Run("lists, several issuers, every setting", func(t *testing.T) {
		c, err := FromEnv(envMap(map[string]string{
			"EXTAUTHZ_RESOURCE":         "https://mcp.example.com/tools",
			"EXTAUTHZ_ISSUER":           "https://a.example.com,https://b.example.com",
			"EXTAUTHZ_REQUIRED_SCOPES":  " mcp:read,\tmcp:write ",
			"EXTAUTHZ_SCOPES_SUPPORTED": "mcp:read mcp:write mcp:admin",
			"EXTAUTHZ_ALLOWED_ORIGINS":  "https://a.example.com, https://b.example.com",
			"EXTAUTHZ_AUDIENCES":        "api://tools",
			"EXTAUTHZ_RESOURCE_NAME":    "tools",
			"EXTAUTHZ_HOSTS":            "mcp.example.com *.mcp.example.com",
			"EXTAUTHZ_TOKEN_MODE":       "jwt",
			"EXTAUTHZ_PUBLIC_URL":       "https://gw.example.com",
			"EXTAUTHZ_LISTEN_GRPC":      "0.0.0.0:9001",
			"EXTAUTHZ_LISTEN_HTTP":      "0.0.0.0:8080",
			"EXTAUTHZ_LISTEN_ADMIN":     "off",
			"EXTAUTHZ_REDIS_URL":        "redis://redis:6379/2",
			"EXTAUTHZ_REDIS_PASSWORD":   "p",
			"EXTAUTHZ_ADMIN_TOKEN":      "t",
			"EXTAUTHZ_LOG_LEVEL":        "debug",
			"EXTAUTHZ_LOG_FORMAT":       "text",
		}))
		if err != nil {
			t.Fatal(err)
		}
		r := c.Resources[0]
		if len(r.AuthorizationServers) != 2 || r.AuthorizationServers[1].Issuer != "https://b.example.com" || r.AuthorizationServers[0].TokenMode != "jwt" ||
			!slices.Equal(r.RequiredScopes, []string{"mcp:read", "mcp:write"}) || len(r.ScopesSupported) != 3 || len(r.AllowedOrigins) != 2 ||
			r.Name != "tools" || len(r.Hosts) != 2 || r.Audiences[0] != "api://tools" {
			t.Errorf("resource %+v", r)
		}
		if c.PublicURL != "https://gw.example.com" || c.Listen.Admin != "off" || c.Cache.RedisURL != "redis://redis:6379/2" ||
			c.Cache.RedisPassword.Env != "EXTAUTHZ_REDIS_PASSWORD" || c.Admin.Token.Env != "EXTAUTHZ_ADMIN_TOKEN" || c.Log.Format != "text" {
			t.Errorf("config %+v", c)
		}
	})
	t.Run("errors name the variables", func(t *testing.T) {
		_, err := FromEnv(envMap(map[string]string{
			"EXTAUTHZ_RESOURCE":        "https://mcp.example.com/mcp",
			"EXTAUTHZ_ISSUER":          "http://auth.example.com",
			"OAUTH_REQUIRED_SCOPES":    "mcp:read offline_access",
			"EXTAUTHZ_ALLOWED_ORIGINS": "https://App.example.com",
			"EXTAUTHZ_TOKEN_MODE":      "introspection",
			"EXTAUTHZ_LOG_LEVEL":       "", // empty: unset
		}))
		var es Errors
		if !errors.As(err, &es) {
			t.Fatalf("err = %v", err)
		}
		text := err.Error()
		for _, want := range []string{
			"EXTAUTHZ_ISSUER (resources[0].authorization_servers[0].issuer): must be an absolute https URL",
			"OAUTH_REQUIRED_SCOPES (resources[0].required_scopes[1]): offline_access",
			"EXTAUTHZ_ALLOWED_ORIGINS (resources[0].allowed_origins[0]): must be lower case",
			"EXTAUTHZ_INTROSPECTION_CLIENT_ID (resources[0].authorization_servers[0].introspection.client_id): is required",
		} {
			if !strings.Contains(text, want) {
				t.Errorf("errors lack %q:\n%s", want, text)
			}
		}
		if strings.Contains(text, "log.level") {
			t.Errorf("an empty variable was taken as a value:\n%s", text)
		}
	})
	t.Run("two names that disagree", func(t *testing.T) {
		_, err := FromEnv(envMap(map[string]string{
			"EXTAUTHZ_RESOURCE": "https://mcp.example.com/mcp", "OAUTH_RESOURCE_URI": "https://mcp.example.com/other",
			"EXTAUTHZ_ISSUER": "https://a.example.com", "OAUTH_AUTHORIZATION_SERVER": "https://b.example.com",
		}))
		if err == nil || !strings.Contains(err.Error(), "EXTAUTHZ_RESOURCE: differs from OAUTH_RESOURCE_URI") ||
			!strings.Contains(err.Error(), "EXTAUTHZ_ISSUER: differs from OAUTH_AUTHORIZATION_SERVER") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("public paths", func(t *testing.T) {
		env := map[string]string{
			"EXTAUTHZ_RESOURCE": "https://mcp.example.com/mcp", "EXTAUTHZ_ISSUER": "https://a.example.com",
			"EXTAUTHZ_PUBLIC_PATHS": "GET,HEAD /mcp/health;\n GET /mcp/static/* ;",
		}
		c, err := FromEnv(envMap(env))
		if err != nil {
			t.Fatal(err)
		}
		want := []PublicPath{{Path: "/mcp/health", Methods: []string{"GET", "HEAD"}}, {Path: "/mcp/static", Prefix: true, Methods: []string{"GET"}}}
		if got := c.Resources[0].Public; len(got) != 2 || got[0].Path != want[0].Path || !slices.Equal(got[0].Methods, want[0].Methods) ||
			got[1].Path != want[1].Path || !got[1].Prefix || !slices.Equal(got[1].Methods, want[1].Methods) {
			t.Errorf("public = %+v", got)
		}
		for v, msg := range map[string]string{
			"/mcp/health":           `EXTAUTHZ_PUBLIC_PATHS (resources[0].public): entry "/mcp/health": write METHODS PATH`,
			"GET /other":            "EXTAUTHZ_PUBLIC_PATHS (resources[0].public[0].path): must be under the resource's path_prefix",
			"get /mcp/health":       "EXTAUTHZ_PUBLIC_PATHS (resources[0].public[0].methods[0]): must be a method name in upper case",
			"GET,,HEAD /mcp/health": "EXTAUTHZ_PUBLIC_PATHS (resources[0].public[0].methods[1])",
		} {
			env["EXTAUTHZ_PUBLIC_PATHS"] = v
			if _, err := FromEnv(envMap(env)); err == nil || !strings.Contains(err.Error(), msg) {
				t.Errorf("%q: err = %v, want %q", v, err, msg)
			}
		}
	})
	t.Run("configured", func(t *testing.T) {
		if EnvConfigured(envMap(map[string]string{"EXTAUTHZ_ISSUER": "x", "EXTAUTHZ_RESOURCE": ""})) {
			t.Error("an empty EXTAUTHZ_RESOURCE counts as a configuration")
		}
		if !EnvConfigured(envMap(map[string]string{"OAUTH_RESOURCE_URI": "https://x"})) {
			t.Error("OAUTH_RESOURCE_URI does not count")
		}
	})
}
