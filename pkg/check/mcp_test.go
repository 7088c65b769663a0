package check_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/extauthz/extauthz/internal/testkit"
	"github.com/extauthz/extauthz/pkg/authz"
	"github.com/extauthz/extauthz/pkg/check"
	"github.com/extauthz/extauthz/pkg/config"
	"github.com/extauthz/extauthz/pkg/devissuer"
	"github.com/extauthz/extauthz/pkg/jwks"
	"github.com/extauthz/extauthz/pkg/token"
	"github.com/extauthz/extauthz/pkg/verdict"
)

// startRulesGateway serves one resource with MCP rules, a scope hierarchy,
// allowed origins and policies over real gRPC.
func startRulesGateway(t *testing.T) (*gateway, *devissuer.Issuer) {
	t.Helper()
	iss, _ := testkit.Issuer(t, "ES256", "", resourceURI, nil)
	cfg, err := config.Parse([]byte(fmt.Sprintf(`
resources:
  - name: mcp
    resource: %q
    required_scopes: ["mcp:read"]
    scopes_supported: ["mcp:read", "mcp:write", "mcp:admin", "ops"]
    scope_implications:
      "mcp:admin": ["mcp:write"]
      "mcp:write": ["mcp:read"]
    allowed_origins: ["https://app.example.com"]
    policy: 'token.client_id != "banned-client"'
    rules:
      - {method: tools/call, scopes: ["mcp:write"]}
      - {method: tools/call, name: "delete_*", scopes: ["mcp:admin"]}
      - method: "resources/*"
        name: "file:///secrets/*"
        policy: '"ops" in token.scopes'
      - {method: "resources/*", name: "https://api.example.com/admin/*", scopes: ["mcp:admin"]}
      - {method: prompts/get, policy: '"writers" in token.claims["groups"]'}
      - method: tools/call
        name: "expensive"
        policy: 'request.headers["x-team"].split(",").all(a, request.headers["x-team"].split(",").all(b, request.headers["x-team"].split(",").all(c, a + b + c != "")))'
    authorization_servers: [{issuer: %q, jwks_uri: %q, keep_claims: [groups]}]
`, resourceURI, iss.Issuer(), iss.JWKSURL())))
	if err != nil {
		t.Fatal(err)
	}
	src := jwks.New(func(context.Context) (string, error) { return iss.JWKSURL(), nil }, jwks.Options{})
	v, err := token.NewIssuerSet(token.Options{Issuers: map[string]token.Issuer{iss.Issuer(): {Keys: src, Claims: token.ClaimNames{Keep: []string{"groups"}}}}})
	if err != nil {
		t.Fatal(err)
	}
	p, err := authz.NewPolicy(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e, err := authz.NewEngine(p, authz.Options{Verifier: v, Cache: verdict.LocalCache(1000, nil), MaxTTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	return &gateway{client: checkClient(t, e)}, iss
}

// call is one MCP request as Envoy describes it: headers as a 2026-07-28
// client sends them (MCP-Protocol-Version with Mcp-Method), and optionally
// the JSON-RPC body.
func call(tok, method, name string, body string, extra ...[2]string) check.EnvoyRequest {
	h := bearer(tok)
	if method != "" {
		h = append(h, [2]string{"mcp-protocol-version", "2026-07-28"}, [2]string{"mcp-method", method})
	}
	if name != "" {
		h = append(h, [2]string{"mcp-name", name})
	}
	h = append(h, [2]string{"content-type", "application/json"})
	h = append(h, extra...)
	r := check.EnvoyRequest{Method: "POST", URL: resourceURI, Headers: h}
	if body != "" {
		r.Body = []byte(body)
	}
	return r
}

// signed mints a token for the resource with extra claims.
func signed(t *testing.T, iss *devissuer.Issuer, extra map[string]any) string {
	t.Helper()
	claims := map[string]any{"iss": iss.Issuer(), "sub": "alice", "aud": resourceURI, "exp": time.Now().Add(time.Hour).Unix()}
	for k, v := range extra {
		claims[k] = v
	}
	return sign(t, iss, claims, nil)
}

func toolCall(name string) string {
	return fmt.Sprintf(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":%q,"arguments":{}}}`, name)
}

func TestMCPRules(t *testing.T) {
	g, iss := startRulesGateway(t)
	tok := func(client string, scopes ...string) string {
		return mint(t, iss, devissuer.Token{Subject: "alice", ClientID: client, Scopes: scopes})
	}
	reader, writer, admin := tok("c", "mcp:read"), tok("c", "mcp:write"), tok("c", "mcp:admin")
	challenge := func(scope string) string {
		return fmt.Sprintf(`Bearer error="insufficient_scope", scope=%q, resource_metadata=%q, error_description="the access token lacks a required scope"`, scope, prmURL) + dpopAllowed
	}
	b64 := "=?base64?" + base64.StdEncoding.EncodeToString([]byte("delete_tööl")) + "?="

	cases := []struct {
		name      string
		req       check.EnvoyRequest
		status    int
		challenge string // expected WWW-Authenticate, "" for none or not checked
	}{
		// Per-method and per-tool scopes, from the headers.
		{"list tools with mcp:read", call(reader, "tools/list", "", ""), 200, ""},
		{"call a tool with only mcp:read: step up", call(reader, "tools/call", "search", ""), 403, challenge("mcp:read mcp:write")},
		{"call a tool with mcp:write", call(writer, "tools/call", "search", ""), 200, ""},
		{"destructive tool with mcp:write: step up, granted scopes kept", call(writer, "tools/call", "delete_repo", ""), 403, challenge("mcp:read mcp:write mcp:admin")},
		{"destructive tool with mcp:admin (implies write and read)", call(admin, "tools/call", "delete_repo", ""), 200, ""},
		{"base64 Mcp-Name is decoded and matched", call(writer, "tools/call", b64, ""), 403, challenge("mcp:read mcp:write mcp:admin")},

		// From the body, for clients that send no Mcp-* headers.
		{"body only: destructive tool with mcp:write", call(writer, "", "", toolCall("delete_repo")), 403, challenge("mcp:read mcp:write mcp:admin")},
		{"body only: ordinary tool with mcp:write", call(writer, "", "", toolCall("search")), 200, ""},
		{"headers and body agree", call(admin, "tools/call", "delete_repo", toolCall("delete_repo")), 200, ""},
		{"header names a harmless tool, body a destructive one", call(admin, "tools/call", "search", toolCall("delete_repo")), 400, ""},
		{"header method differs from the body", call(admin, "tools/list", "", toolCall("search")), 400, ""},
		{"unparseable body", call(admin, "", "", `{"method":`), 400, ""},
		{"JSON-RPC batch", call(admin, "", "", `[`+toolCall("search")+`]`), 400, ""},
		{"POST whose method cannot be known", call(admin, "", "", ""), 400, ""},

		// Policies.
		{"resource policy false", call(tok("banned-client", "mcp:admin"), "tools/list", "", ""), 403, ""},
		{"rule policy false", call(admin, "resources/read", "file:///secrets/key", ""), 403, ""},
		{"rule policy true", call(tok("c", "mcp:read", "ops"), "resources/read", "file:///secrets/key", ""), 200, ""},
		{"rule not matching another uri", call(reader, "resources/read", "file:///public/readme", ""), 200, ""},
		{"policy over the cost limit is a denial", call(writer, "tools/call", "expensive", "",
			[2]string{"x-team", strings.Repeat("a,", 200) + "a"}), 403, ""},
		{"policy failing on a missing header is a denial", call(writer, "tools/call", "expensive", ""), 403, ""},

		// Claims kept for policies.
		{"policy over a kept claim: member", call(signed(t, iss, map[string]any{"scope": "mcp:read", "groups": []string{"writers"}}), "prompts/get", "draft", ""), 200, ""},
		{"policy over a kept claim: not a member", call(signed(t, iss, map[string]any{"scope": "mcp:read", "groups": []string{"readers"}}), "prompts/get", "draft", ""), 403, ""},
		{"policy over a kept claim: claim absent", call(signed(t, iss, map[string]any{"scope": "mcp:read"}), "prompts/get", "draft", ""), 403, ""},

		// Origin.
		{"allowed origin", call(writer, "tools/call", "search", "", [2]string{"origin", "https://app.example.com"}), 200, ""},
		{"disallowed origin, valid token", call(admin, "tools/call", "search", "", [2]string{"origin", "https://evil.example"}), 403, ""},
		{"disallowed origin is refused before the token is looked at", call("not-a-token", "tools/list", "", "", [2]string{"origin", "http://localhost:1234"}), 403, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := g.check(t, tc.req)
			if a.status != tc.status {
				t.Fatalf("status %d, want %d (body %s, challenge %q)", a.status, tc.status, a.body, a.headers["www-authenticate"])
			}
			if tc.challenge != "" && a.headers["www-authenticate"] != tc.challenge {
				t.Errorf("challenge\n got %s\nwant %s", a.headers["www-authenticate"], tc.challenge)
			}
			if tc.status == 403 && tc.challenge == "" && a.headers["www-authenticate"] != "" {
				t.Errorf("a %d that no token can fix carries a challenge: %s", tc.status, a.headers["www-authenticate"])
			}
			if tc.status == 400 {
				shapeRefusal(t, a)
			}
		})
	}

	t.Run("offline_access is never challenged for", func(t *testing.T) {
		a := g.check(t, call(tok("c", "mcp:read", "offline_access"), "tools/call", "search", ""))
		if a.status != 403 || strings.Contains(a.headers["www-authenticate"], "offline_access") {
			t.Errorf("status %d, challenge %q", a.status, a.headers["www-authenticate"])
		}
	})
	t.Run("a CORS preflight from an allowed origin needs no token", func(t *testing.T) {
		a := g.check(t, check.EnvoyRequest{Method: "OPTIONS", URL: resourceURI, Headers: [][2]string{
			{"origin", "https://app.example.com"}, {"access-control-request-method", "POST"}}})
		if a.allowed || a.status != 204 || a.headers["access-control-allow-origin"] != "https://app.example.com" {
			t.Errorf("preflight: allowed=%v %d %v, want a 204 answer for the origin", a.allowed, a.status, a.headers)
		}
	})
}

// shapeRefusal checks a 400 for the shape of the MCP request: no Bearer
// challenge (no token can fix it) and a JSON-RPC error body with one of the
// codes the gateway uses, Content-Type application/json, and the request's id
// (every request of these tests has id 1, or none when no body was sent).
func shapeRefusal(t *testing.T, a answer) {
	t.Helper()
	if c := a.headers["www-authenticate"]; c != "" {
		t.Errorf("a 400 for the request's shape carries a challenge: %q", c)
	}
	if ct := a.headers["content-type"]; ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	var rpc struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Error   struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal([]byte(a.body), &rpc); err != nil || rpc.JSONRPC != "2.0" || rpc.Error.Message == "" {
		t.Fatalf("body %s is not a JSON-RPC error: %v", a.body, err)
	}
	switch rpc.Error.Code {
	case -32020, -32600, -32602, -32700:
	default:
		t.Errorf("JSON-RPC error code %d in %s", rpc.Error.Code, a.body)
	}
	if id := string(rpc.ID); id != "1" && id != "null" {
		t.Errorf("id %s in %s", id, a.body)
	}
}

// mcpName is Mcp-Name as a conforming client writes it: plain when the value
// is visible ASCII, else the base64 sentinel.
func mcpName(name string) string {
	for i := 0; i < len(name); i++ {
		if name[i] < 0x21 || name[i] > 0x7e {
			return "=?base64?" + base64.StdEncoding.EncodeToString([]byte(name)) + "?="
		}
	}
	return name
}

func readResource(uri string) string {
	b, err := json.Marshal(uri)
	if err != nil {
		panic(err)
	}
	return `{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":` + string(b) + `}}`
}

// TestMCPResourceURIVariants: a rule on a resource URI holds for every
// spelling a server resolves to the same resource (issue #17, item 2). The
// rule of docs/mcp-rules.md guards file:///secrets/* with a policy; a base-scope token
// must not read the secret by re-spelling its URI, whether the URI travels
// in Mcp-Name, in the body, or in both. Spellings that cannot be normalised
// unambiguously are refused with 400.
func TestMCPResourceURIVariants(t *testing.T) {
	g, iss := startRulesGateway(t)
	tok := func(scopes ...string) string {
		return mint(t, iss, devissuer.Token{Subject: "alice", ClientID: "c", Scopes: scopes})
	}
	reader, ops, admin := tok("mcp:read"), tok("mcp:read", "ops"), tok("mcp:admin")
	adminChallenge := fmt.Sprintf(`Bearer error="insufficient_scope", scope="mcp:read mcp:admin", resource_metadata=%q, error_description="the access token lacks a required scope"`, prmURL) + dpopAllowed

	cases := []struct {
		uri    string
		status int // for the base-scope token; 403 from the policy or the scope rule, 400 refused
	}{
		// The four spellings of issue #17 and the canonical one.
		{"file:///secrets/key", 403},
		{"file:///public/../secrets/key", 403},
		{"FILE:///secrets/key", 403},
		{"file://localhost/secrets/key", 403},
		{"file:///./secrets/key", 403},
		// More that a WHATWG URL parser resolves to the secret.
		{"File://LocalHost/secrets/key", 403},
		{"file:///public/%2e%2e/secrets/key", 403},
		{"file:///public/.%2E/secrets/key", 403},
		{"file:///public/%2E./secrets/key", 403},
		{"file:///%73ecrets/key", 403},
		{"file:///secrets/%6Bey", 403},
		{"file:/secrets/key", 403},
		{"file:////secrets/key", 403},
		{"file:///public/x/../../secrets/key", 403},
		{"file://localhost./secrets/key", 403},
		{"file:///../../secrets/key", 403},
		{"file:///secrets/key#fragment", 403},
		{"file:///secrets/key?version=2", 403},
		{"https://api.example.com/admin/reset", 403},
		{"HTTPS://API.Example.COM/admin/reset", 403},
		{"https://api.example.com:443/admin/reset", 403},
		{"https://api.example.com:0443/admin/reset", 403},
		{"https://api.example.com./admin/reset", 403},
		{"https://api.example.com/public/../admin/reset", 403},
		{"https://api.example.com/%61dmin/reset", 403},
		{"https://api.example.com//admin/reset", 403},
		{"https://api.example.com/./admin/reset", 403},
		// Refused: readings differ between servers, or the spelling hides
		// what a server will decode.
		{"file://%6cocalhost/secrets/key", 400},
		{"file:///public/..%2Fsecrets/key", 400},
		{`file:///public\..\secrets\key`, 400},
		{"file:secrets/key", 400},
		{"file:///secrets/key%00", 400},
		{"file:///secrets/ke\ty", 400},
		{"file:///secrets/key\n", 400},
		{" file:///secrets/key", 400},
		{"file:///public//../secrets/key", 400},
		{"file:///public/%252e%252e/secrets/key", 400},
		{"/secrets/key", 400},
		{"https:api.example.com/admin/reset", 400},
		{"https:///api.example.com/admin/reset", 400},
		{"https://user@api.example.com/admin/reset", 400},
		{"https://api.example.com:99999/admin/reset", 400},
		{"https://%61pi.example.com/admin/reset", 400},
	}
	for _, tc := range cases {
		for _, form := range []string{"headers", "body", "both"} {
			req := func(tok string) check.EnvoyRequest {
				switch form {
				case "headers":
					return call(tok, "resources/read", mcpName(tc.uri), "")
				case "body":
					return call(tok, "", "", readResource(tc.uri))
				}
				return call(tok, "resources/read", mcpName(tc.uri), readResource(tc.uri))
			}
			t.Run(fmt.Sprintf("%s/%q", form, tc.uri), func(t *testing.T) {
				a := g.check(t, req(reader))
				if a.status != tc.status {
					t.Fatalf("base-scope token: status %d, want %d (body %s)", a.status, tc.status, a.body)
				}
				if tc.status == 400 {
					shapeRefusal(t, a)
				}
				if tc.status == 403 && strings.Contains(strings.ToLower(tc.uri), "api.example.com") && a.headers["www-authenticate"] != adminChallenge {
					t.Errorf("challenge\n got %s\nwant %s", a.headers["www-authenticate"], adminChallenge)
				}
				// The scope or policy the rule asks for lets the same spelling through.
				if tc.status == 403 {
					for _, good := range []string{ops, admin} {
						if a := g.check(t, req(good)); a.status == 200 {
							return
						}
					}
					t.Errorf("no token passes the rule for %q", tc.uri)
				}
			})
		}
	}
	t.Run("other resources stay readable with the base scope", func(t *testing.T) {
		for _, uri := range []string{"file:///public/readme", "file:///secrets/../public/readme", "https://api.example.com/docs/x", "file:///secretsX"} {
			if a := g.check(t, call(reader, "resources/read", uri, "")); a.status != 200 {
				t.Errorf("%s: %d %s", uri, a.status, a.body)
			}
		}
	})
}

// TestMCPHeadersNeedProtocolVersion: behind a proxy that does not forward the
// body, the Mcp-* headers decide only for a request that declares MCP
// 2026-07-28 or later, the revision whose servers must refuse headers that
// disagree with the body (issue #17, item 9). An older or absent version is
// refused: its server may act on a body that names another tool.
func TestMCPHeadersNeedProtocolVersion(t *testing.T) {
	g, iss := startRulesGateway(t)
	writer := mint(t, iss, devissuer.Token{Subject: "alice", ClientID: "c", Scopes: []string{"mcp:write"}})
	headersOnly := func(version string, method, name string, body string) check.EnvoyRequest {
		h := append(bearer(writer), [2]string{"content-type", "application/json"}, [2]string{"mcp-method", method})
		if name != "" {
			h = append(h, [2]string{"mcp-name", name})
		}
		if version != "-" {
			h = append(h, [2]string{"mcp-protocol-version", version})
		}
		r := check.EnvoyRequest{Method: "POST", URL: resourceURI, Headers: h}
		if body != "" {
			r.Body = []byte(body)
		}
		return r
	}
	const versionDesc = `"error_description":"the Mcp-Method and Mcp-Name headers are trusted without the JSON-RPC body only from MCP 2026-07-28 on: send MCP-Protocol-Version 2026-07-28 or later, or have the proxy forward the body"`
	cases := []struct {
		name    string
		req     check.EnvoyRequest
		status  int
		inChall string // in the challenge, or for a 400 in the body
	}{
		// The reproduction: the header names a harmless tool, the body (unseen)
		// calls a destructive one, and the client declares an old revision.
		{"headers only, 2025-06-18", headersOnly("2025-06-18", "tools/call", "search", ""), 400, versionDesc},
		{"headers only, 2025-11-25", headersOnly("2025-11-25", "tools/call", "search", ""), 400, versionDesc},
		{"headers only, no version", headersOnly("-", "tools/call", "search", ""), 400, versionDesc},
		{"headers only, no version, tools/list", headersOnly("-", "tools/list", "", ""), 400, versionDesc},
		{"headers only, 2026-07-27", headersOnly("2026-07-27", "tools/call", "search", ""), 400, versionDesc},
		{"headers only, malformed version", headersOnly("2026-7-28", "tools/call", "search", ""), 400, `"error_description":"the MCP-Protocol-Version header is not a protocol revision`},
		{"headers only, two versions", headersOnly("2026-07-28, 2025-06-18", "tools/call", "search", ""), 400, `"error_description":"the MCP-Protocol-Version header is not a protocol revision`},
		{"headers only, month 13", headersOnly("2026-13-01", "tools/call", "search", ""), 400, `"error_description":"the MCP-Protocol-Version header is not a protocol revision`},
		{"headers only, empty version", headersOnly("", "tools/call", "search", ""), 400, `"error_description":"the MCP-Protocol-Version header is not a protocol revision`},
		// 2026-07-28 and later: decided on the headers.
		{"headers only, 2026-07-28", headersOnly("2026-07-28", "tools/call", "search", ""), 200, ""},
		{"headers only, 2026-07-28 with OWS", headersOnly(" 2026-07-28\t", "tools/call", "search", ""), 200, ""},
		{"headers only, 2027-01-15", headersOnly("2027-01-15", "tools/call", "search", ""), 200, ""},
		{"headers only, 2026-07-28, destructive tool", headersOnly("2026-07-28", "tools/call", "delete_repo", ""), 403, `error="insufficient_scope"`},
		// With the body the body decides, whatever the version.
		{"body, 2025-06-18, agreeing", headersOnly("2025-06-18", "tools/call", "search", toolCall("search")), 200, ""},
		{"body, no version, agreeing", headersOnly("-", "tools/call", "search", toolCall("search")), 200, ""},
		{"body, 2025-06-18, lying header", headersOnly("2025-06-18", "tools/call", "search", toolCall("delete_repo")), 400, `{"code":-32020,"message":"Header mismatch: the Mcp-Method or Mcp-Name header does not match the JSON-RPC body"}`},
		{"body only, old client", call(writer, "", "", toolCall("delete_repo"), [2]string{"mcp-protocol-version", "2025-06-18"}), 403, `error="insufficient_scope"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := g.check(t, tc.req)
			if a.status != tc.status {
				t.Fatalf("status %d, want %d (body %s, challenge %q)", a.status, tc.status, a.body, a.headers["www-authenticate"])
			}
			if tc.status == 400 {
				// The request's shape, not its credential: no challenge.
				if c := a.headers["www-authenticate"]; c != "" {
					t.Errorf("a 400 for the request's shape carries a challenge: %q", c)
				}
				if !strings.Contains(a.body, tc.inChall) {
					t.Errorf("body %s lacks %s", a.body, tc.inChall)
				}
			} else if tc.inChall != "" && !strings.Contains(a.headers["www-authenticate"], tc.inChall) {
				t.Errorf("WWW-Authenticate %q lacks %s", a.headers["www-authenticate"], tc.inChall)
			}
		})
	}
	t.Run("a GET carries no operation and needs no version", func(t *testing.T) {
		if a := g.check(t, check.EnvoyRequest{Method: "GET", URL: resourceURI, Headers: bearer(writer)}); a.status != 200 {
			t.Errorf("GET: %d %s", a.status, a.body)
		}
	})
}
