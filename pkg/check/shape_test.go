package check_test

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/extauthz/extauthz/pkg/check"
	"github.com/extauthz/extauthz/pkg/devissuer"
)

// TestShapeAfterAuthenticationGRPC: through the gRPC Check, a request
// without a usable token gets the 401 challenge whatever its MCP request
// looks like; with a good token, Mcp-* headers that disagree with the body
// are denied with 400 (gRPC INVALID_ARGUMENT), the JSON-RPC error of MCP
// 2026-07-28 as the body, byte for byte, and no challenge.
func TestShapeAfterAuthenticationGRPC(t *testing.T) {
	g, iss := startRulesGateway(t)
	writer := mint(t, iss, devissuer.Token{Subject: "alice", ClientID: "c", Scopes: []string{"mcp:write"}})
	lying := func(tok string) check.EnvoyRequest {
		r := call(tok, "tools/call", "search", `{"jsonrpc":"2.0","id":"req-7","method":"tools/call","params":{"name":"delete_repo"}}`)
		if tok == "" {
			r.Headers = r.Headers[1:] // no Authorization
		}
		return r
	}
	for name, tok := range map[string]string{"no token": "", "invalid token": writer[:len(writer)-4] + "AAAA"} {
		t.Run(name, func(t *testing.T) {
			a := g.check(t, lying(tok))
			if a.status != 401 || !strings.HasPrefix(a.headers["www-authenticate"], "Bearer ") || !strings.Contains(a.headers["www-authenticate"], "resource_metadata=") {
				t.Errorf("%d %q %s, want the 401 challenge", a.status, a.headers["www-authenticate"], a.body)
			}
		})
	}
	t.Run("good token", func(t *testing.T) {
		req, err := lying(writer).Proto()
		if err != nil {
			t.Fatal(err)
		}
		resp, err := g.client.Check(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		d := resp.GetDeniedResponse()
		if resp.GetStatus().GetCode() != int32(codes.InvalidArgument) || d.GetStatus().GetCode() != 400 {
			t.Fatalf("gRPC %d, HTTP %d; want INVALID_ARGUMENT and 400", resp.GetStatus().GetCode(), d.GetStatus().GetCode())
		}
		const want = `{"jsonrpc":"2.0","id":"req-7","error":{"code":-32020,"message":"Header mismatch: the Mcp-Method or Mcp-Name header does not match the JSON-RPC body"}}`
		if d.GetBody() != want {
			t.Errorf("body\n got %s\nwant %s", d.GetBody(), want)
		}
		for _, h := range d.GetHeaders() {
			switch k, v := strings.ToLower(h.GetHeader().GetKey()), h.GetHeader().GetValue(); k {
			case "www-authenticate":
				t.Errorf("challenge %q on a refusal no token can fix", v)
			case "content-type":
				if v != "application/json" {
					t.Errorf("Content-Type %q", v)
				}
			}
		}
	})
}
