package authz

import (
	"context"
	"testing"

	"github.com/extauthz/extauthz/pkg/config"
)

const listingConfig = `
resources:
  - name: mcp
    resource: "https://mcp.example.com/mcp"
    required_scopes: ["mcp:read"]
    scope_implications:
      "mcp:admin": ["mcp:write"]
      "mcp:write": ["mcp:read"]
    policy: 'token.iss == "https://auth.example.com"'
    rules:
      - method: tools/call
        name: "delete_*"
        scopes: ["mcp:admin"]
      - method: tools/call
        name: "shut*"
        policy: '"ops" in token.scopes'
      - method: tools/call
        name: "tenant_*"
        policy: 'request.headers[?"x-tenant"].orValue("") == "ops"'
      - method: resources/read
        name: "file:///secrets/*"
        scopes: ["mcp:admin"]
      - method: prompts/get
        name: "team_*"
        policy: '"writers" in token.claims["groups"]'
    authorization_servers:
      - &as
        issuer: "https://auth.example.com"
        keep_claims: [groups]
  - name: plain
    resource: "https://plain.example.com/mcp"
    authorization_servers: [*as]
`

func TestWouldAllow(t *testing.T) {
	cfg, err := config.Parse([]byte(listingConfig))
	if err != nil {
		t.Fatal(err)
	}
	p := validPolicy(t, cfg)
	reader := &Caller{Issuer: "https://auth.example.com", Scopes: []string{"mcp:read"}}
	writer := &Caller{Issuer: "https://auth.example.com", Scopes: []string{"mcp:write", "ops"}}
	admin := &Caller{Issuer: "https://auth.example.com", Scopes: []string{"mcp:admin"}}
	for _, tc := range []struct {
		caller                 *Caller
		resource, method, name string
		allowed, decidable     bool
	}{
		{reader, "mcp", "tools/call", "echo", true, true},
		{reader, "mcp", "tools/call", "delete_repo", false, true},
		{writer, "mcp", "tools/call", "delete_repo", false, true},
		{admin, "mcp", "tools/call", "delete_repo", true, true}, // implications
		{reader, "mcp", "tools/call", "shutdown", false, true},  // the rule's policy, evaluated
		{writer, "mcp", "tools/call", "shutdown", true, true},
		{admin, "mcp", "tools/call", "tenant_a", false, false}, // reads the request
		{reader, "mcp", "resources/read", "file:///secrets/a", false, true},
		{reader, "mcp", "resources/read", "FILE:///secrets/%61", false, true}, // canonicalised as a Check does
		{admin, "mcp", "resources/read", "file:///secrets/a", true, true},
		{reader, "mcp", "resources/read", "file:///public/a", true, true},
		{reader, "mcp", "prompts/get", "team_x", false, false}, // reads kept claims
		{reader, "mcp", "prompts/get", "simple", true, true},
		{reader, "absent", "tools/call", "echo", false, true},
		{nil, "mcp", "tools/call", "echo", false, true},
	} {
		allowed, decidable := p.WouldAllow(context.Background(), tc.resource, tc.caller, tc.method, tc.name)
		if allowed != tc.allowed || decidable != tc.decidable {
			t.Errorf("%s %s %q for %v: (%v, %v), want (%v, %v)", tc.resource, tc.method, tc.name, tc.caller,
				allowed, decidable, tc.allowed, tc.decidable)
		}
	}
	if l := p.Listing("mcp"); !l.Found || !l.Filters {
		t.Errorf("Listing(mcp) = %+v", l)
	}
	if l := p.Listing("plain"); !l.Found || l.Filters {
		t.Errorf("Listing(plain) = %+v", l)
	}
	if l := p.Listing("absent"); l.Found {
		t.Errorf("Listing(absent) = %+v", l)
	}
}
