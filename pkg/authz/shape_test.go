package authz

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/extauthz/extauthz/internal/testkit"
	"github.com/extauthz/extauthz/pkg/config"
	"github.com/extauthz/extauthz/pkg/devissuer"
	"github.com/extauthz/extauthz/pkg/verdict"
)

// rulesFixture is an engine over one resource with a step-up rule.
func rulesFixture(t *testing.T) (*Engine, *devissuer.Issuer) {
	t.Helper()
	clock := testkit.NewClock()
	iss, _ := testkit.Issuer(t, "ES256", "", testResource, clock.Now)
	cfg := &config.Config{Resources: []config.Resource{{
		Name: "a", Resource: testResource, RequiredScopes: []string{"mcp:tools"},
		Rules:                []config.Rule{{Method: "tools/call", Name: "delete_*", Scopes: []string{"mcp:admin"}}},
		AuthorizationServers: []config.AuthorizationServer{{Issuer: iss.Issuer(), JWKSURI: iss.JWKSURL()}},
	}}}
	e, err := NewEngine(validPolicy(t, cfg), Options{Verifier: issuerVerifier(t, iss, clock), Cache: verdict.LocalCache(100, clock.Now), MaxTTL: time.Minute, NegativeTTL: time.Second, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	return e, iss
}

// post is a POST to the resource; headers are name, value pairs with names
// lower-cased as the translators deliver them.
func post(body string, headers ...string) *Request {
	r := &Request{Method: http.MethodPost, Host: "mcp.example.com", Path: "/mcp", Headers: map[string]string{}}
	for i := 0; i+1 < len(headers); i += 2 {
		r.Headers[headers[i]] = headers[i+1]
	}
	if body != "" {
		r.Body = []byte(body)
	}
	return r
}

type rpcBody struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Error   struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// TestAuthenticationBeforeShape: a request without a usable credential gets
// its 401 whatever its MCP request looks like; only a good token learns
// that its request is malformed. Credential-format errors (RFC 6750) stay
// 400 invalid_request with their challenge.
func TestAuthenticationBeforeShape(t *testing.T) {
	e, iss := rulesFixture(t)
	good, err := iss.Mint(devissuer.Token{Subject: "alice", Scopes: []string{"mcp:tools"}})
	if err != nil {
		t.Fatal(err)
	}
	tampered := good[:len(good)-4] + "AAAA"
	const v = "2026-07-28"
	shapes := []struct {
		name   string
		req    func() *Request
		reason Reason
		code   int
		id     string
	}{
		{"no Mcp-Method, no body", func() *Request { return post("") }, ReasonHeaderMismatch, -32020, "null"},
		{"Mcp-Name without Mcp-Method", func() *Request { return post("", "mcp-protocol-version", v, "mcp-name", "x") }, ReasonHeaderMismatch, -32020, "null"},
		{"invalid base64 sentinel", func() *Request {
			return post("", "mcp-protocol-version", v, "mcp-method", "tools/call", "mcp-name", "=?base64?***?=")
		}, ReasonHeaderMismatch, -32020, "null"},
		{"header names another tool than the body", func() *Request {
			return post(`{"jsonrpc":"2.0","id":12,"method":"tools/call","params":{"name":"delete_repo"}}`,
				"mcp-protocol-version", v, "mcp-method", "tools/call", "mcp-name", "search")
		}, ReasonHeaderMismatch, -32020, "12"},
		{"method differs in case", func() *Request {
			return post(`{"jsonrpc":"2.0","id":"a","method":"tools/call","params":{"name":"search"}}`,
				"mcp-protocol-version", v, "mcp-method", "tools/Call", "mcp-name", "search")
		}, ReasonHeaderMismatch, -32020, `"a"`},
		{"Mcp-Method missing on a 2026-07-28 request", func() *Request {
			return post(`{"jsonrpc":"2.0","id":3,"method":"tools/list"}`, "mcp-protocol-version", v)
		}, ReasonHeaderMismatch, -32020, "3"},
		{"body not JSON", func() *Request { return post(`{"id":1,`, "mcp-protocol-version", v, "mcp-method", "tools/list") }, ReasonBadMessage, -32700, "null"},
		{"batch", func() *Request {
			return post(`[{"jsonrpc":"2.0","id":1,"method":"tools/list"}]`, "mcp-protocol-version", v, "mcp-method", "tools/list")
		}, ReasonBadMessage, -32600, "null"},
		{"duplicate method member", func() *Request {
			return post(`{"jsonrpc":"2.0","id":5,"method":"tools/list","method":"tools/call","params":{"name":"delete_repo"}}`)
		}, ReasonBadMessage, -32600, "5"},
		{"unnormalisable resource URI", func() *Request {
			return post(`{"jsonrpc":"2.0","id":6,"method":"resources/read","params":{"uri":"file:///a/..%2Fb"}}`)
		}, ReasonBadMessage, -32602, "6"},
	}
	for _, s := range shapes {
		t.Run(s.name, func(t *testing.T) {
			// No credential: the plain challenge.
			d := e.Check(context.Background(), s.req())
			if d.Status != 401 || d.Reason != ReasonNoCredential || strings.Contains(d.Challenge, "error=") || !strings.HasPrefix(d.Challenge, "Bearer ") {
				t.Errorf("no credential: %d %s %q", d.Status, d.Reason, d.Challenge)
			}
			// A token that does not verify: invalid_token.
			r := s.req()
			r.Headers["authorization"] = "Bearer " + tampered
			d = e.Check(context.Background(), r)
			if d.Status != 401 || !strings.Contains(d.Challenge, `error="invalid_token"`) {
				t.Errorf("invalid token: %d %s %q", d.Status, d.Reason, d.Challenge)
			}
			// A token in the query string is about the credential: 400
			// invalid_request with its challenge.
			r = s.req()
			r.Path = "/mcp?access_token=" + good
			d = e.Check(context.Background(), r)
			if d.Status != 400 || !strings.Contains(d.Challenge, `error="invalid_request"`) {
				t.Errorf("token in the query: %d %s %q", d.Status, d.Reason, d.Challenge)
			}
			// A good token: now the shape, as a JSON-RPC error.
			r = s.req()
			r.Headers["authorization"] = "Bearer " + good
			d = e.Check(context.Background(), r)
			if d.Allow || d.Status != 400 || d.Reason != s.reason || d.Challenge != "" || d.ContentType != "application/json" {
				t.Fatalf("good token: allow=%v %d %s challenge %q", d.Allow, d.Status, d.Reason, d.Challenge)
			}
			var rpc rpcBody
			if err := json.Unmarshal(d.Body, &rpc); err != nil || rpc.JSONRPC != "2.0" || rpc.Error.Code != s.code || string(rpc.ID) != s.id || rpc.Error.Message == "" {
				t.Errorf("body %s, want code %d and id %s", d.Body, s.code, s.id)
			}
			if d.Claims == nil || d.Claims.Subject != "alice" {
				t.Errorf("the refusal does not record the verified token for the audit log: %+v", d.Claims)
			}
		})
	}
}

// TestRevision20260728Forms: what a 2026-07-28 client sends passes; the
// near misses do not.
func TestRevision20260728Forms(t *testing.T) {
	e, iss := rulesFixture(t)
	tools, err := iss.Mint(devissuer.Token{Subject: "alice", Scopes: []string{"mcp:tools"}})
	if err != nil {
		t.Fatal(err)
	}
	auth := "Bearer " + tools
	const v = "2026-07-28"
	for _, tc := range []struct {
		name   string
		req    *Request
		status int
	}{
		{"tasks/get with Mcp-Name", post("", "authorization", auth, "mcp-protocol-version", v, "mcp-method", "tasks/get", "mcp-name", "t-1"), 200},
		{"tasks/update with Mcp-Name", post("", "authorization", auth, "mcp-protocol-version", v, "mcp-method", "tasks/update", "mcp-name", "t-1"), 200},
		{"tasks/cancel with encoded Mcp-Name", post("", "authorization", auth, "mcp-protocol-version", v, "mcp-method", "tasks/cancel", "mcp-name", "=?base64?dC0x?="), 200},
		{"tasks/get agreeing with the body", post(`{"jsonrpc":"2.0","id":1,"method":"tasks/get","params":{"taskId":"t-1"}}`,
			"authorization", auth, "mcp-protocol-version", v, "mcp-method", "tasks/get", "mcp-name", "t-1"), 200},
		{"tasks/get, Mcp-Name another task", post(`{"jsonrpc":"2.0","id":1,"method":"tasks/get","params":{"taskId":"t-1"}}`,
			"authorization", auth, "mcp-protocol-version", v, "mcp-method", "tasks/get", "mcp-name", "t-2"), 400},
		{"notification without Mcp-Method, no body", post("", "authorization", auth, "mcp-protocol-version", v), 200},
		{"notification without Mcp-Method, with body", post(`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1}}`,
			"authorization", auth, "mcp-protocol-version", v), 200},
		{"tools/call as a notification still meets its rule", post(`{"jsonrpc":"2.0","method":"tools/call","params":{"name":"delete_repo"}}`,
			"authorization", auth, "mcp-protocol-version", v), 403},
		{"request without Mcp-Method from a 2025 client, no body", post("", "authorization", auth, "mcp-protocol-version", "2025-11-25"), 400},
		{"request without Mcp-Method or version, no body", post("", "authorization", auth), 400},
		{"request without Mcp-Method from a 2025 client, with body", post(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`,
			"authorization", auth, "mcp-protocol-version", "2025-11-25"), 200},
		{"header values trimmed", post("", "authorization", auth, "mcp-protocol-version", "\t"+v+" ", "mcp-method", " tools/call\t", "mcp-name", " search "), 200},
		{"rule applies through the headers", post("", "authorization", auth, "mcp-protocol-version", v, "mcp-method", "tools/call", "mcp-name", "delete_repo"), 403},
		{"encoded name meets the rule", post("", "authorization", auth, "mcp-protocol-version", v, "mcp-method", "tools/call", "mcp-name", "=?base64?ZGVsZXRlX3JlcG8=?="), 403},
		{"Mcp-Name on tools/list", post("", "authorization", auth, "mcp-protocol-version", v, "mcp-method", "tools/list", "mcp-name", "x"), 400},
		{"GET needs no operation", &Request{Method: http.MethodGet, Host: "mcp.example.com", Path: "/mcp", Headers: map[string]string{"authorization": auth}}, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := e.Check(context.Background(), tc.req)
			if d.Status != tc.status {
				t.Fatalf("%d %s %s, want %d", d.Status, d.Reason, d.Body, tc.status)
			}
		})
	}
}

// TestMissingNameOnlyWhereNoRuleNeedsIt: a call that does not name its
// target (no params member, no Mcp-Name) is refused wherever a rule's match
// or a policy depends on the name, and otherwise goes on to the server,
// which refuses it itself (MCP 2026-07-28 removed resources/subscribe: the
// server answers -32601). The fixture's one rule is for tools/call
// delete_*: a tools/call without a name could be delete_repo.
func TestMissingNameOnlyWhereNoRuleNeedsIt(t *testing.T) {
	e, iss := rulesFixture(t)
	tok, err := iss.Mint(devissuer.Token{Subject: "alice", Scopes: []string{"mcp:tools"}})
	if err != nil {
		t.Fatal(err)
	}
	const v = "2026-07-28"
	for _, c := range []struct {
		name  string
		req   *Request
		allow bool
	}{
		{"tools/call without params.name", post(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"arguments":{}}}`, "mcp-protocol-version", v, "mcp-method", "tools/call"), false},
		{"tools/call without params", post(`{"jsonrpc":"2.0","id":1,"method":"tools/call"}`), false},
		{"tools/call without Mcp-Name, no body", post("", "mcp-protocol-version", v, "mcp-method", "tools/call"), false},
		{"resources/subscribe without params.uri", post(`{"jsonrpc":"2.0","id":2,"method":"resources/subscribe","params":{}}`, "mcp-protocol-version", v, "mcp-method", "resources/subscribe"), true},
		{"resources/unsubscribe without Mcp-Name, no body", post("", "mcp-protocol-version", v, "mcp-method", "resources/unsubscribe"), true},
		{"resources/read without params", post(`{"jsonrpc":"2.0","id":3,"method":"resources/read"}`), true},
		// The header still must agree with the body.
		{"Mcp-Name for a body without the name", post(`{"jsonrpc":"2.0","id":4,"method":"resources/read","params":{}}`, "mcp-protocol-version", v, "mcp-method", "resources/read", "mcp-name", "file:///x"), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.req.Headers["authorization"] = "Bearer " + tok
			d := e.Check(context.Background(), c.req)
			if d.Allow != c.allow {
				t.Fatalf("allow = %v (%d %s), want %v", d.Allow, d.Status, d.Reason, c.allow)
			}
			if !c.allow && d.Status != http.StatusBadRequest {
				t.Errorf("refused with %d %s, want 400", d.Status, d.Reason)
			}
		})
	}
}
