package authz

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/extauthz/extauthz/pkg/config"
)

// TestRootMetadataDocument: the document at the root well-known path of a
// host is the resource at "/", else the one marked root_metadata, else the
// host's only resource, else none (404) — never one of two picked by
// configuration order.
func TestRootMetadataDocument(t *testing.T) {
	as := []config.AuthorizationServer{{Issuer: "https://as.example.com", JWKSURI: "https://as.example.com/jwks"}}
	res := func(name, uri string, root bool) config.Resource {
		return config.Resource{Name: name, Resource: uri, RootMetadata: root, AuthorizationServers: as}
	}
	for _, tc := range []struct {
		name      string
		resources []config.Resource
		host      string
		want      string // the document's resource, "" for 404
	}{
		{"two resources, none marked", []config.Resource{res("a", "https://mcp.example.com/mcp", false), res("b", "https://mcp.example.com/admin/mcp", false)}, "mcp.example.com", ""},
		{"two resources, listed the other way", []config.Resource{res("b", "https://mcp.example.com/admin/mcp", false), res("a", "https://mcp.example.com/mcp", false)}, "mcp.example.com", ""},
		{"two resources, /mcp marked", []config.Resource{res("a", "https://mcp.example.com/mcp", true), res("b", "https://mcp.example.com/admin/mcp", false)}, "mcp.example.com", "https://mcp.example.com/mcp"},
		{"two resources, /admin/mcp marked", []config.Resource{res("a", "https://mcp.example.com/mcp", false), res("b", "https://mcp.example.com/admin/mcp", true)}, "mcp.example.com", "https://mcp.example.com/admin/mcp"},
		{"a resource at /", []config.Resource{res("a", "https://mcp.example.com/mcp", false), res("r", "https://mcp.example.com/", false)}, "mcp.example.com", "https://mcp.example.com/"},
		{"the only resource of the host", []config.Resource{res("a", "https://mcp.example.com/mcp", false), res("o", "https://other.example.com/mcp", false)}, "other.example.com", "https://other.example.com/mcp"},
		{"a marked resource of another host does not count", []config.Resource{res("a", "https://mcp.example.com/mcp", false), res("b", "https://mcp.example.com/admin/mcp", false), res("o", "https://other.example.com/mcp", true)}, "mcp.example.com", ""},
		{"host with a port and in upper case", []config.Resource{res("a", "https://mcp.example.com/mcp", true), res("b", "https://mcp.example.com/admin/mcp", false)}, "MCP.example.com:443", "https://mcp.example.com/mcp"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newRouteFixture(t, func(c *config.Config) { c.Resources = tc.resources })
			p := f.engine.Policy()
			doc, ok := p.Document(tc.host, "/.well-known/oauth-protected-resource")
			d := f.engine.Check(context.Background(), &Request{Method: http.MethodGet, Host: tc.host, Path: "/.well-known/oauth-protected-resource"})
			if tc.want == "" {
				if ok || d.Status != http.StatusNotFound || d.Allow {
					t.Fatalf("Document = %s, %v; Check %d; want none and 404", doc, ok, d.Status)
				}
				return
			}
			var got struct{ Resource string }
			if !ok || json.Unmarshal(doc, &got) != nil || got.Resource != tc.want {
				t.Fatalf("Document = %s, %v; want the document of %s", doc, ok, tc.want)
			}
			if d.Status != http.StatusOK || string(d.Body) != string(doc) {
				t.Errorf("Check answered %d %s, want the same document", d.Status, d.Body)
			}
		})
	}
}
