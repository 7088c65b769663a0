package authz

import (
	"slices"
	"testing"

	"github.com/extauthz/extauthz/pkg/mcp"
)

func TestScopeHierarchy(t *testing.T) {
	m := &mcpRules{impliedBy: invertImplications(map[string][]string{
		"mcp:admin": {"mcp:write", "audit:read"},
		"mcp:write": {"mcp:read"},
		// A cycle is harmless: each implies the other.
		"a": {"b"}, "b": {"a"},
	})}
	cases := []struct {
		needed, granted []string
		missing         string
	}{
		{[]string{"mcp:read"}, []string{"mcp:read"}, ""},
		{[]string{"mcp:read"}, []string{"mcp:write"}, ""},
		{[]string{"mcp:read"}, []string{"mcp:admin"}, ""}, // transitive
		{[]string{"audit:read", "mcp:read"}, []string{"mcp:admin"}, ""},
		{[]string{"mcp:write"}, []string{"mcp:read"}, "mcp:write"}, // never upwards
		{[]string{"mcp:admin"}, []string{"mcp:write", "audit:read"}, "mcp:admin"},
		{[]string{"a", "b"}, []string{"b"}, ""},
		{[]string{"mcp:read", "x"}, []string{"mcp:admin"}, "x"},
		{nil, nil, ""},
	}
	for _, tc := range cases {
		if got := m.missing(tc.needed, tc.granted); got != tc.missing {
			t.Errorf("missing(%q, %q) = %q, want %q", tc.needed, tc.granted, got, tc.missing)
		}
	}
}

func TestChallengeScope(t *testing.T) {
	for _, tc := range []struct {
		needed, granted []string
		want            string
	}{
		{[]string{"mcp:read", "mcp:admin"}, []string{"mcp:read", "files:read"}, "mcp:read mcp:admin files:read"},
		{[]string{"mcp:read"}, []string{"offline_access", "mcp:read"}, "mcp:read"},
		{[]string{"a", "a"}, nil, "a"},
	} {
		if got := challengeScope(tc.needed, tc.granted); got != tc.want {
			t.Errorf("challengeScope(%q, %q) = %q, want %q", tc.needed, tc.granted, got, tc.want)
		}
	}
}

func TestNeededNeverWritesIntoTheConfig(t *testing.T) {
	required := make([]string, 1, 4) // spare capacity an append would reuse
	required[0] = "r"
	m := &mcpRules{rules: []rule{{method: "*", name: "*", scopes: []string{"x"}}, {method: "tools/*", name: "d*", scopes: []string{"y"}}}}
	got, matched := m.needed(required, opOf("tools/call", "delete"))
	if !slices.Equal(got, []string{"r", "x", "y"}) || len(matched) != 2 {
		t.Errorf("needed = %q, %d rules", got, len(matched))
	}
	if full := required[:cap(required)]; full[1] != "" {
		t.Errorf("needed wrote into the required slice's spare capacity: %q", full)
	}
}

func opOf(method, name string) mcp.Operation {
	return mcp.Operation{Method: method, Name: name, Known: true}
}
