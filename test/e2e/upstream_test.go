package e2e

// Minted upstream credentials (resources[].upstream_token, docs/upstream-credentials.md)
// through each front: nginx and Caddy reach resource "minted" through their catch-all
// (decided by host and path, so their shipped files need no location of their own for it),
// the gRPC front through a route naming it. Its gateway exchanges the client's token (RFC
// 8693) at oidc-provider for one to mintedAudience, with the gateway's own token as actor,
// and the proxy must put that token, and never the client's, in the upstream request's
// Authorization:
//
//	client ──Bearer <client token>──▶ nginx / Caddy / envoyfront ──▶ recorder ──▶ server-everything
//	                                     │ the answer's Authorization: Bearer <minted>
//	                                     ▼
//	                                  extauthz ──token exchange──▶ oidc-provider

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/extauthz/extauthz/internal/oidctest"
)

const (
	// mintedAudience is the upstream API the minted tokens are for: an exchange target of
	// the authorization server, and the gateways' upstream_token.audience.
	mintedAudience = "https://upstream-api.e2e.example/repo"
	// mintedPath is resource "minted" on every front, reached through nginx's and
	// Caddy's catch-all and the gRPC front's /minted/mcp route.
	mintedPath = "/minted/mcp"
	// mintedCCPath is resource "minted-cc", the same in client_credentials mode.
	mintedCCPath = "/minted-cc/mcp"
	// minterSecretEnv carries minterClient's secret to the gateways.
	minterSecretEnv = "EXTAUTHZ_E2E_MINTER_SECRET"
)

// minterClient is the gateways' client at the authorization server: it exchanges tokens, and
// gets its own client-credentials token, sent as the actor.
var minterClient = oidctest.Client{
	ID: "e2e-gateway-minter", Secret: "e2e-minter-secret-0123456789",
	GrantTypes: []string{"client_credentials", oidctest.GrantTokenExchange},
}

// mintedTarget is the authorization server's exchange target for mintedAudience.
var mintedTarget = oidctest.ExchangeTarget{Audience: mintedAudience, Scope: "repo:read repo:write", TTL: 300 * time.Second}

// minterEnv is the environment every gateway of the stack is started with.
func minterEnv() string { return minterSecretEnv + "=" + minterClient.Secret }

// mintedResourceConfig is resources "minted" and "minted-cc" of a front's gateway, to append
// to its resources. minted: the client's token exchanged for one to mintedAudience with scope
// repo:read, the gateway as actor. minted-cc: the gateway's own client-credentials token for
// mintedAudience (as an RFC 8707 resource: the server ignores audience in that grant).
func mintedResourceConfig(frontURL, issuer string) string {
	return fmt.Sprintf(`  - name: minted
    resource: "%[1]s%[5]s"
    required_scopes: ["mcp:tools"]
    authorization_servers: [{issuer: %[2]q}]
    upstream_token:
      mode: exchange
      client_id: %[3]q
      client_secret: {env: %[6]s}
      audience: [%[4]q]
      scopes: ["repo:read"]
      actor: true
  - name: minted-cc
    resource: "%[1]s%[7]s"
    required_scopes: ["mcp:tools"]
    authorization_servers: [{issuer: %[2]q}]
    upstream_token:
      mode: client_credentials
      client_id: %[3]q
      client_secret: {env: %[6]s}
      resources: [%[4]q]
      scopes: ["repo:read"]
`, frontURL, issuer, minterClient.ID, mintedAudience, mintedPath, minterSecretEnv, mintedCCPath)
}

// testMintedUpstreamToken: a client's token for resource minted, sent through front f, is
// replaced on the way to the MCP server by a token the gateway minted: the server sees
// Bearer <minted>, a JWT for mintedAudience naming the client as sub and the gateway as
// act.sub, with the identity headers of the client's token, and nowhere the client's token.
// One exchange serves the client's requests. Headers spelled like Authorization
// (lower case, Authorization_x) change nothing. A request without a token stops at the
// front, before any exchange. wantPath is the path the MCP server receives the request on;
// underscoresRefused says that f refuses a request with "_" in a header name (Envoy's
// headers_with_underscores_action: REJECT_REQUEST); nginx (underscores_in_headers off) and
// Caddy (by default since 2.11.5) drop such a header instead.
func testMintedUpstreamToken(t *testing.T, st *stack, f *front, wantPath string, underscoresRefused bool) {
	ctx := context.Background()
	mcpURL := f.resourceURL(mintedPath)
	tok, err := st.as.ClientCredentials(ctx, serviceClient, mcpURL, "mcp:tools")
	if err != nil {
		t.Fatal(err)
	}
	clientClaims := jwtPayload(t, tok)
	before := st.exchanges(t)

	// No token: the 401 challenge, nothing at the MCP server, no exchange.
	mark := st.rec.len()
	anon := st.sendRaw(t, mcpURL, nil)
	if anon.StatusCode != http.StatusUnauthorized || !strings.Contains(anon.Header.Get("WWW-Authenticate"), "resource_metadata=") {
		t.Errorf("initialize without a token: %d %q, want the 401 challenge", anon.StatusCode, anon.Header.Get("WWW-Authenticate"))
	}
	if got := st.rec.since(mark); len(got) != 0 {
		t.Errorf("a request without a token reached the MCP server: %v", got)
	}
	if n := st.exchanges(t); n != before {
		t.Errorf("a request without a token made %d token exchanges, want none", n-before)
	}

	// The client's token: the MCP server gets a minted one.
	first := ""
	for i, c := range []struct {
		what        string
		headers     [][2]string // as written on the wire, names unchanged
		underscores bool        // a header name with "_"
	}{
		{"first request", [][2]string{{"Authorization", "Bearer " + tok}}, false},
		{"second request", [][2]string{{"Authorization", "Bearer " + tok}}, false},
		{"Authorization spelled in lower case", [][2]string{{"authorization", "Bearer " + tok}}, false},
		{"Authorization_x and authorization_x forged", [][2]string{
			{"Authorization", "Bearer " + tok},
			{"Authorization_x", "Bearer forged-underscore"},
			{"authorization_x", "Bearer forged-lower-underscore"},
		}, true},
	} {
		mark := st.rec.len()
		resp := st.sendRaw(t, mcpURL, c.headers)
		got := st.rec.since(mark)
		if c.underscores && underscoresRefused {
			if resp.StatusCode != http.StatusBadRequest || len(got) != 0 {
				t.Errorf("%s: %d %s, %d requests at the MCP server; want the front's 400 and none", c.what, resp.StatusCode, resp.Body, len(got))
			}
			continue
		}
		if len(got) != 1 {
			t.Fatalf("%s: %d %s; the MCP server received %d requests, want 1", c.what, resp.StatusCode, resp.Body, len(got))
		}
		r := got[0]
		t.Logf("%s: the MCP server got %s %s (%s) and answered %d", c.what, r.Method, r.Path, r.RPCMethod, resp.StatusCode)
		for name := range r.Header {
			if strings.Contains(name, "_") {
				t.Errorf("%s: the MCP server got header %s: the front passes names with \"_\"", c.what, name)
			}
		}
		if r.Path != wantPath || r.RPCMethod != "initialize" {
			t.Errorf("%s: the MCP server got %s %s (%s), want POST %s (initialize)", c.what, r.Method, r.Path, r.RPCMethod, wantPath)
		}
		authz := r.Header.Values("Authorization")
		if len(authz) != 1 || !strings.HasPrefix(authz[0], "Bearer ") {
			t.Fatalf("%s: the MCP server got Authorization %d times (%s), want one Bearer token", c.what, len(authz), redactedAll(authz))
		}
		minted := strings.TrimPrefix(authz[0], "Bearer ")
		if minted == tok {
			t.Fatalf("%s: the MCP server got the client's own token", c.what)
		}
		for name, values := range r.Header {
			for _, v := range values {
				if strings.Contains(v, tok) {
					t.Errorf("%s: the MCP server got the client's token in %s", c.what, name)
				}
			}
		}
		mc := jwtPayload(t, minted)
		act, _ := mc["act"].(map[string]any)
		if mc["aud"] != mintedAudience || mc["sub"] == nil || mc["sub"] != clientClaims["sub"] || act["sub"] != minterClient.ID ||
			mc["iss"] != st.as.Issuer || mc["scope"] != "repo:read" {
			t.Errorf("%s: minted token claims %v; want iss %s, aud %s, sub %v (the client token's), act.sub %s, scope repo:read",
				c.what, mc, st.as.Issuer, mintedAudience, clientClaims["sub"], minterClient.ID)
		}
		if s, id, sc := r.Header.Get("X-Extauthz-Subject"), r.Header.Get("X-Extauthz-Client-Id"), r.Header.Get("X-Extauthz-Scopes"); s == "" || s != clientClaims["sub"] ||
			id != serviceClient.ID || sc != "mcp:tools" {
			t.Errorf("%s: identity headers subject=%q client-id=%q scopes=%q, want %v, %s, mcp:tools (the client token's)",
				c.what, s, id, sc, clientClaims["sub"], serviceClient.ID)
		}
		if i == 0 {
			if n := st.exchanges(t); n != before+1 {
				t.Errorf("the first request made %d token exchanges, want 1", n-before)
			}
			first = minted
		} else if minted != first {
			t.Errorf("%s: another minted token than the first request's: the cached one was not reused", c.what)
		}
	}
	if n := st.exchanges(t); n != before+1 {
		t.Errorf("three requests with one client token made %d token exchanges, want 1", n-before)
	}
}

// testMintedClientCredentials: resource minted-cc sends the gateway's own token (mode
// client_credentials) to the MCP server: a JWT for mintedAudience whose client is the
// gateway, acting for no one (no act), the same for every client token, with the identity
// headers of the client's token beside it; no token exchange. wantPath is the path the MCP
// server receives the request on.
func testMintedClientCredentials(t *testing.T, st *stack, f *front, wantPath string) {
	ctx := context.Background()
	mcpURL := f.resourceURL(mintedCCPath)
	before := st.exchanges(t)
	first := ""
	for i := range 2 {
		tok, err := st.as.ClientCredentials(ctx, serviceClient, mcpURL, "mcp:tools") // a new token each time
		if err != nil {
			t.Fatal(err)
		}
		mark := st.rec.len()
		resp := st.sendRaw(t, mcpURL, [][2]string{{"Authorization", "Bearer " + tok}})
		got := st.rec.since(mark)
		if len(got) != 1 {
			t.Fatalf("client token %d: %d %s; the MCP server received %d requests, want 1", i, resp.StatusCode, resp.Body, len(got))
		}
		r := got[0]
		if r.Path != wantPath || r.RPCMethod != "initialize" {
			t.Errorf("client token %d: the MCP server got %s %s (%s), want POST %s (initialize)", i, r.Method, r.Path, r.RPCMethod, wantPath)
		}
		authz := r.Header.Values("Authorization")
		if len(authz) != 1 || !strings.HasPrefix(authz[0], "Bearer ") || authz[0] == "Bearer "+tok {
			t.Fatalf("client token %d: the MCP server got Authorization %s, want one Bearer token other than the client's", i, redactedAll(authz))
		}
		minted := strings.TrimPrefix(authz[0], "Bearer ")
		mc := jwtPayload(t, minted)
		if mc["aud"] != mintedAudience || mc["client_id"] != minterClient.ID || mc["act"] != nil || mc["scope"] != "repo:read" || mc["iss"] != st.as.Issuer {
			t.Errorf("client token %d: the upstream's token claims %v; want iss %s, aud %s, client_id %s, scope repo:read, no act",
				i, mc, st.as.Issuer, mintedAudience, minterClient.ID)
		}
		if s, id := r.Header.Get("X-Extauthz-Subject"), r.Header.Get("X-Extauthz-Client-Id"); s == "" || s != jwtPayload(t, tok)["sub"] || id != serviceClient.ID {
			t.Errorf("client token %d: identity headers subject=%q client-id=%q, want the client token's", i, s, id)
		}
		if i == 0 {
			first = minted
		} else if minted != first {
			t.Errorf("two client tokens got two gateway tokens: one should serve every request")
		}
	}
	if n := st.exchanges(t); n != before {
		t.Errorf("client_credentials mode made %d token exchanges, want none", n-before)
	}
}

// testMintUnavailable: the token endpoint answers 503 with Retry-After 9: the client gets
// 503 with Retry-After 9 through the front, and nothing reaches the MCP server. Once the
// endpoint recovers, the same client token is served (a transient failure is not
// remembered).
func testMintUnavailable(t *testing.T, st *stack, f *front) {
	ctx := context.Background()
	mcpURL := f.resourceURL(mintedPath)
	// A token of its own: one minted already for another would be served from the cache.
	tok, err := st.as.ClientCredentials(ctx, serviceClient, mcpURL, "mcp:tools")
	if err != nil {
		t.Fatal(err)
	}
	restore := func() {
		if err := st.as.SetExchangeBehaviour(context.Background(), oidctest.ExchangeBehaviour{}); err != nil {
			t.Errorf("restoring the token endpoint: %v", err)
		}
	}
	t.Cleanup(restore) // the server is shared by the other subtests
	if err := st.as.SetExchangeBehaviour(ctx, oidctest.ExchangeBehaviour{Status: http.StatusServiceUnavailable, RetryAfter: 9 * time.Second}); err != nil {
		t.Fatal(err)
	}
	before := st.exchanges(t)
	mark := st.rec.len()
	resp := st.sendRaw(t, mcpURL, [][2]string{{"Authorization", "Bearer " + tok}})
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "9" {
		t.Errorf("token endpoint down: %d, Retry-After %q, %s; want 503 with Retry-After 9", resp.StatusCode, resp.Header.Get("Retry-After"), resp.Body)
	}
	if got := st.rec.since(mark); len(got) != 0 {
		t.Errorf("with the token endpoint down, requests reached the MCP server: %v", got)
	}
	if n := st.exchanges(t); n != before+1 {
		t.Errorf("the refused request made %d token exchanges, want 1", n-before)
	}

	restore()
	mark = st.rec.len()
	resp = st.sendRaw(t, mcpURL, [][2]string{{"Authorization", "Bearer " + tok}})
	got := st.rec.since(mark)
	if len(got) != 1 || !strings.HasPrefix(got[0].Header.Get("Authorization"), "Bearer ") || got[0].Header.Get("Authorization") == "Bearer "+tok {
		t.Errorf("after recovery: %d %s, %d requests at the MCP server; want one, with a minted token", resp.StatusCode, resp.Body, len(got))
	}
}

// exchanges is the authorization server's count of token exchange requests.
func (st *stack) exchanges(t *testing.T) int {
	t.Helper()
	n, err := st.as.Exchanges(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// sendRaw POSTs an MCP initialize with the headers written as given (Go's client sends a
// header map key as it is, so lower-case and underscore spellings reach the proxy intact).
func (st *stack) sendRaw(t *testing.T, u string, headers [][2]string) response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(initializeBody))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	for _, h := range headers {
		req.Header[h[0]] = append(req.Header[h[0]], h[1])
	}
	resp, err := st.http.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		t.Fatalf("POST %s: reading the answer: %v", u, err)
	}
	return response{StatusCode: resp.StatusCode, Header: resp.Header, Body: string(b)}
}

// jwtPayload decodes a JWT's claims, unverified (the gateway verified the minted one; the
// test reads what it carries).
func jwtPayload(t *testing.T, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %d segments", len(parts))
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatalf("JWT payload: %v", err)
	}
	var c map[string]any
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatalf("JWT payload: %v", err)
	}
	return c
}

// redactedAll describes header values without printing a credential.
func redactedAll(values []string) string {
	out := make([]string, len(values))
	for i, v := range values {
		scheme, _, _ := strings.Cut(v, " ")
		out[i] = fmt.Sprintf("%s (%d bytes)", scheme, len(v))
	}
	return strings.Join(out, ", ")
}
