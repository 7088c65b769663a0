package httpauthz_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/extauthz/extauthz/pkg/devissuer"
)

// TestMCPShapeAfterAuthentication: on a resource with rules, the HTTP mode
// answers a request without a usable token with the 401 challenge whatever
// the shape of its MCP request, and refuses a well-authenticated request
// whose Mcp-* headers are missing, malformed or disagree with the body with
// 400 and the JSON-RPC error of MCP 2026-07-28 (-32020, the request's id),
// without a Bearer challenge.
func TestMCPShapeAfterAuthentication(t *testing.T) {
	srv, iss := server(t)
	tools, err := iss.Mint(devissuer.Token{Subject: "alice", ClientID: "app", Scopes: []string{"mcp:tools"}})
	if err != nil {
		t.Fatal(err)
	}
	v := [2]string{"MCP-Protocol-Version", "2026-07-28"}
	nginx := func(extra ...[2]string) [][2]string {
		return append([][2]string{{"Host", "mcp.example.com"}, {"X-Original-Method", "POST"}, {"X-Original-URI", "/mcp"}}, extra...)
	}
	envoyURL := srv.URL + "/authz/envoy/mcp"
	envoy := func(extra ...[2]string) [][2]string {
		return append([][2]string{{"Host", "mcp.example.com"}, {"Content-Type", "application/json"}}, extra...)
	}
	bearer := func(tok string) [2]string { return [2]string{"Authorization", "Bearer " + tok} }
	const prm = `resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource/mcp"`

	t.Run("no credential: 401 before the operation is looked at", func(t *testing.T) {
		for _, h := range [][][2]string{
			nginx(),                                 // no Mcp-Method, no body
			nginx([2]string{"Mcp-Name", "x"}),       // Mcp-Name without Mcp-Method
			nginx(v, [2]string{"Mcp-Method", "=?"}), // malformed
			nginx([2]string{"MCP-Protocol-Version", "2025-06-18"}, [2]string{"Mcp-Method", "tools/call"}, [2]string{"Mcp-Name", "x"}),
		} {
			a := do(t, "GET", srv.URL+"/authz/nginx", h, "")
			if a.status != 401 || a.header.Get("WWW-Authenticate") != `Bearer scope="mcp:tools", `+prm+`, DPoP algs="ES256 ES384 EdDSA RS256 PS256"` {
				t.Errorf("%v: %d %q %s, want the 401 challenge", h[3:], a.status, a.header.Get("WWW-Authenticate"), a.body)
			}
		}
		a := do(t, "POST", envoyURL, envoy([2]string{"Mcp-Method", "tools/list"}), `{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"x"}}`)
		if a.status != 401 || !strings.HasPrefix(a.header.Get("WWW-Authenticate"), "Bearer ") {
			t.Errorf("lying header, no token: %d %q", a.status, a.header.Get("WWW-Authenticate"))
		}
	})
	t.Run("an invalid token: 401 invalid_token before the shape", func(t *testing.T) {
		a := do(t, "GET", srv.URL+"/authz/nginx", nginx(bearer("eyJhbGciOiJFUzI1NiJ9.e30.c2ln"), [2]string{"Mcp-Name", "x"}), "")
		if a.status != 401 || !strings.Contains(a.header.Get("WWW-Authenticate"), `error="invalid_token"`) {
			t.Errorf("%d %q %s", a.status, a.header.Get("WWW-Authenticate"), a.body)
		}
	})
	t.Run("a token in the query stays a 400 invalid_request with its challenge", func(t *testing.T) {
		h := [][2]string{{"Host", "mcp.example.com"}, {"X-Original-Method", "POST"}, {"X-Original-URI", "/mcp?access_token=" + tools}}
		a := do(t, "GET", srv.URL+"/authz/nginx", h, "")
		if a.status != 400 || !strings.Contains(a.header.Get("WWW-Authenticate"), `error="invalid_request"`) {
			t.Errorf("%d %q", a.status, a.header.Get("WWW-Authenticate"))
		}
	})

	type rpcAnswer struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Error   struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	for _, tc := range []struct {
		name    string
		headers [][2]string
		body    string
		id      string
		code    int
	}{
		{"Mcp-Name names another tool", [][2]string{v, {"Mcp-Method", "tools/call"}, {"Mcp-Name", "echo"}},
			`{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"delete_all"}}`, `7`, -32020},
		{"Mcp-Method in another case", [][2]string{v, {"Mcp-Method", "Tools/Call"}, {"Mcp-Name", "delete_all"}},
			`{"jsonrpc":"2.0","id":"s-1","method":"tools/call","params":{"name":"delete_all"}}`, `"s-1"`, -32020},
		{"Mcp-Method missing on a 2026-07-28 request", [][2]string{v},
			`{"jsonrpc":"2.0","id":8,"method":"tools/list"}`, `8`, -32020},
		{"invalid base64 in Mcp-Name", [][2]string{v, {"Mcp-Method", "tools/call"}, {"Mcp-Name", "=?base64?ZGVsZXRlX2FsbA?="}},
			`{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"delete_all"}}`, `9`, -32020},
		{"Mcp-Name for a task that is not the body's", [][2]string{v, {"Mcp-Method", "tasks/get"}, {"Mcp-Name", "t-1"}},
			`{"jsonrpc":"2.0","id":10,"method":"tasks/get","params":{"taskId":"t-2"}}`, `10`, -32020},
		{"not JSON", [][2]string{v, {"Mcp-Method", "tools/list"}}, `{"jsonrpc":`, `null`, -32700},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := do(t, "POST", envoyURL, envoy(append(tc.headers, bearer(tools))...), tc.body)
			var rpc rpcAnswer
			if err := json.Unmarshal([]byte(a.body), &rpc); err != nil || a.status != 400 {
				t.Fatalf("%d %s, want 400 with a JSON-RPC error", a.status, a.body)
			}
			if rpc.JSONRPC != "2.0" || string(rpc.ID) != tc.id || rpc.Error.Code != tc.code || rpc.Error.Message == "" {
				t.Errorf("body %s, want id %s and code %d", a.body, tc.id, tc.code)
			}
			if ct := a.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			if c := a.header.Get("WWW-Authenticate"); c != "" {
				t.Errorf("challenge %q on a refusal no token can fix", c)
			}
			if a.header.Get("Cache-Control") != "no-store" {
				t.Errorf("Cache-Control %q", a.header.Get("Cache-Control"))
			}
		})
	}

	t.Run("what a 2026-07-28 client sends without the body passes", func(t *testing.T) {
		for _, h := range [][][2]string{
			// SEP-2663: params.taskId in Mcp-Name.
			{v, {"Mcp-Method", "tasks/get"}, {"Mcp-Name", "t-42"}},
			{v, {"Mcp-Method", "tasks/cancel"}, {"Mcp-Name", "=?base64?dMOiY2hl?="}},
			// A notification: no Mcp-Method (notifications/cancelled).
			{v},
			// Header names in any case, values trimmed.
			{{"mcp-protocol-version", " 2026-07-28 "}, {"MCP-METHOD", "\ttools/list "}},
		} {
			a := do(t, "GET", srv.URL+"/authz/nginx", nginx(append(h, bearer(tools))...), "")
			if a.status != 200 {
				t.Errorf("%v: %d %s", h, a.status, a.body)
			}
		}
	})
	t.Run("a notification with its body passes, and rules see its method", func(t *testing.T) {
		a := do(t, "POST", envoyURL, envoy(v, bearer(tools)), `{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":3}}`)
		if a.status != 200 {
			t.Errorf("%d %s", a.status, a.body)
		}
		a = do(t, "POST", envoyURL, envoy(v, bearer(tools)), `{"jsonrpc":"2.0","method":"tools/call","params":{"name":"delete_all"}}`)
		if a.status != 403 {
			t.Errorf("a tools/call sent as a notification: %d %s, want the rule's 403", a.status, a.body)
		}
	})
	t.Run("without the body, a request without Mcp-Method from an older client is refused", func(t *testing.T) {
		for _, h := range [][][2]string{{}, {{"MCP-Protocol-Version", "2025-11-25"}}} {
			a := do(t, "GET", srv.URL+"/authz/nginx", nginx(append(h, bearer(tools))...), "")
			var rpc rpcAnswer
			if err := json.Unmarshal([]byte(a.body), &rpc); err != nil || a.status != 400 || rpc.Error.Code != -32020 || string(rpc.ID) != "null" {
				t.Errorf("%v: %d %s, want 400 with -32020", h, a.status, a.body)
			}
		}
	})
}
