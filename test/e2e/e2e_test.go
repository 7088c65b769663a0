package e2e

// The end-to-end suite. One stack is started for all scenarios, every part on 127.0.0.1:
//
//	SDK 1.x client (client.mjs) ───▶ nginx ──auth_request──▶ extauthz serve (/authz/nginx)
//	SDK 2.x client (client-v2.mjs) ─▶  │   (deploy/nginx/nginx.conf)
//	                                   ├─ /mcp, /admin/mcp ─▶ recorder ──▶ server-everything
//	                                   │                                   (SDK 1.x, streamableHttp)
//	                                   └─ /v2/… ────────────▶ recorder ──▶ server-v2.mjs
//	                                                                       (SDK 2.x, 2026-07-28)
//	                  the same clients ▶ Caddy ──forward_auth──▶ a second extauthz serve
//	                                       (deploy/caddy/Caddyfile)  (/authz/traefik), whose
//	                                       ─▶ the same recorders      public_url is Caddy's
//	oidc-provider (internal/oidctest) ◀── the SDK's discovery, registration, authorization
//	                                      and token requests; the gateways' JWKS fetches
//
// A recorder is a streaming reverse proxy that keeps the headers of every request the MCP
// server behind it receives. The Node clients print one JSON line per HTTP request they make
// and per step of their scenario; the assertions read those lines, the recorders, and the
// lines server-v2.mjs prints when a tool runs.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/extauthz/extauthz/internal/oidctest"
	"github.com/extauthz/extauthz/internal/testkit"
)

const (
	startTimeout  = 20 * time.Second // each process, until it listens
	stopTimeout   = 5 * time.Second  // SIGTERM, then SIGKILL
	clientTimeout = 60 * time.Second // one run of client.mjs

	adminTool = "get-sum" // the tool the step-up rule guards
	depsHint  = "run `make e2e-deps` (npm ci --prefix test/e2e; npm ci --prefix test/authserver; " +
		"apt-get install -y nginx chromium when they are missing)"
)

// serviceClient is a confidential client of the authorization server, for tokens minted
// directly (client_credentials).
var serviceClient = oidctest.Client{ID: "e2e-service", Secret: "e2e-service-secret"}

func TestE2E(t *testing.T) {
	st := startStack(t)

	t.Run("DiscoveryRegistrationPKCEAndToolsThroughNginx", func(t *testing.T) { testToolsFlow(t, st, st.ng) })
	t.Run("UpstreamGetsIdentityHeadersNeverTheToken", func(t *testing.T) { testUpstreamHeaders(t, st, st.ng) })
	t.Run("StepUpOnInsufficientScope", func(t *testing.T) { testStepUp(t, st, st.ng) })
	t.Run("HeadersOfA2025ClientAreNotTrusted", func(t *testing.T) { testLegacyHeadersRefused(t, st) })
	t.Run("HeaderBodyMismatchStopsAtTheV2Server", func(t *testing.T) { testHeaderBodyMismatch(t, st) })
	t.Run("Revision20260728FormsReachTheV2Server", func(t *testing.T) { testRevisionForms(t, st, st.ng) })
	t.Run("TokenForAnotherResourceIsRefused", func(t *testing.T) { testForeignToken(t, st, st.ng) })
	t.Run("HostHeaderDoesNotChooseTheResource", func(t *testing.T) { testHostDoesNotChoose(t, st, st.ng) })
	t.Run("PathAndHostVariantsNeverReachTheServer", func(t *testing.T) { testPathVariants(t, st, st.ng) })
	t.Run("SessionCookieNeverReachesTheServer", func(t *testing.T) { testSessionCookieStripped(t, st, st.ng) })
	t.Run("PublicPathsOnlyAsSpelled", func(t *testing.T) { testPublicPaths(t, st, st.ng) })
	t.Run("PreflightWithABodyNeedsAToken", func(t *testing.T) { testPreflightWithBody(t, st) })
	t.Run("DenialsRelayedByNginx", func(t *testing.T) { testDenialsRelayed(t, st, st.nginxURL) })
	t.Run("UpstreamGetsTheMintedTokenThroughNginx", func(t *testing.T) { testMintedUpstreamToken(t, st, st.ng, mintedPath, false) })
	t.Run("UpstreamGetsTheGatewaysTokenThroughNginx", func(t *testing.T) { testMintedClientCredentials(t, st, st.ng, mintedCCPath) })
	t.Run("TokenEndpointDownThroughNginx", func(t *testing.T) { testMintUnavailable(t, st, st.ng) })
	t.Run("DPoPThroughNginx", func(t *testing.T) { testDPoP(t, st, st.ng) })
	t.Run("DPoPNoncesThroughNginx", func(t *testing.T) { testDPoPNonce(t, st, st.ng, true) })
	t.Run("NginxWithTheGatewayDown", func(t *testing.T) { testGatewayDown(t, st) })

	// The same flows through Caddy (deploy/caddy/Caddyfile, forward_auth to /authz/traefik).
	t.Run("DiscoveryRegistrationPKCEAndToolsThroughCaddy", func(t *testing.T) { testToolsFlow(t, st, st.caddy) })
	t.Run("UpstreamGetsIdentityHeadersNeverTheTokenThroughCaddy", func(t *testing.T) { testUpstreamHeaders(t, st, st.caddy) })
	t.Run("StepUpOnInsufficientScopeThroughCaddy", func(t *testing.T) { testStepUp(t, st, st.caddy) })
	t.Run("Revision20260728FormsReachTheV2ServerThroughCaddy", func(t *testing.T) { testRevisionForms(t, st, st.caddy) })
	t.Run("TokenForAnotherResourceIsRefusedThroughCaddy", func(t *testing.T) { testForeignToken(t, st, st.caddy) })
	t.Run("HostHeaderDoesNotChooseTheResourceThroughCaddy", func(t *testing.T) { testHostDoesNotChoose(t, st, st.caddy) })
	t.Run("PathAndHostVariantsNeverReachTheServerThroughCaddy", func(t *testing.T) { testPathVariants(t, st, st.caddy) })
	t.Run("SessionCookieNeverReachesTheServerThroughCaddy", func(t *testing.T) { testSessionCookieStripped(t, st, st.caddy) })
	t.Run("PublicPathsOnlyAsSpelledThroughCaddy", func(t *testing.T) { testPublicPaths(t, st, st.caddy) })
	t.Run("DenialsRelayedByCaddy", func(t *testing.T) { testDenialsRelayed(t, st, st.caddy.url) })
	t.Run("UpstreamGetsTheMintedTokenThroughCaddy", func(t *testing.T) { testMintedUpstreamToken(t, st, st.caddy, mintedPath, false) })
	t.Run("UpstreamGetsTheGatewaysTokenThroughCaddy", func(t *testing.T) { testMintedClientCredentials(t, st, st.caddy, mintedCCPath) })
	t.Run("TokenEndpointDownThroughCaddy", func(t *testing.T) { testMintUnavailable(t, st, st.caddy) })
	t.Run("DPoPThroughCaddy", func(t *testing.T) { testDPoP(t, st, st.caddy) })
	t.Run("DPoPNoncesThroughCaddy", func(t *testing.T) { testDPoPNonce(t, st, st.caddy, false) })
	t.Run("CaddyWithTheGatewayDown", func(t *testing.T) { testCaddyGatewayDown(t, st, st.caddyBin) })
}

// ---------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------

// testToolsFlow: the first request gets 401 with resource_metadata; the SDK fetches the
// metadata at the path-suffixed URL, then the authorization server's metadata, registers,
// authorizes with PKCE and resource, exchanges the code, and then initialize, tools/list and
// tools/call succeed through nginx, with progress notifications streamed as they are sent.
func testToolsFlow(t *testing.T, st *stack, f *front) {
	mcpURL := f.resourceURL("/mcp")
	run := st.runClient(t, map[string]any{"url": mcpURL, "scenario": "tools", "login": "alice"})

	md := st.authServerMetadata(t)
	prm := f.url + "/.well-known/oauth-protected-resource/mcp"
	registered := run.one(t, "client_registered")
	clientID := str(registered["client_id"])
	if clientID == "" {
		t.Fatalf("client_registered without client_id: %v", registered)
	}

	// The OAuth dance, in order.
	steps := run.inOrder(t,
		step{"the unauthenticated initialize gets 401 with resource_metadata", func(e event) bool {
			return e.is("http") && e.s("actor") == "sdk" && e.s("method") == "POST" && e.s("url") == mcpURL &&
				e.jsonrpcMethod() == "initialize" && e.status() == 401 && e.s("authorization") == ""
		}},
		step{"protected resource metadata fetched at the path-suffixed URL", func(e event) bool {
			return e.is("http") && e.s("method") == "GET" && e.s("url") == prm && e.status() == 200
		}},
		step{"authorization server metadata fetched", func(e event) bool {
			return e.is("http") && e.s("method") == "GET" && e.s("url") == st.as.Issuer+"/.well-known/oauth-authorization-server" && e.status() == 200
		}},
		step{"dynamic client registration", func(e event) bool {
			return e.is("http") && e.s("method") == "POST" && e.s("url") == md.RegistrationEndpoint && e.status() == 201
		}},
		step{"authorization request built", func(e event) bool { return e.is("redirect_to_authorization") }},
		step{"authorization endpoint opened", func(e event) bool {
			return e.is("http") && e.s("actor") == "browser" && e.s("url") == md.AuthorizationEndpoint
		}},
		step{"login form", func(e event) bool { return e.is("form") && e.s("page") == "login" }},
		step{"consent form", func(e event) bool { return e.is("form") && e.s("page") == "consent" }},
		step{"code received", func(e event) bool { return e.is("authorization_code") }},
		step{"connect reports UnauthorizedError", func(e event) bool { return e.is("unauthorized") }},
		step{"code exchanged at the token endpoint", func(e event) bool {
			return e.is("http") && e.s("method") == "POST" && e.s("url") == md.TokenEndpoint && e.status() == 200
		}},
		step{"tokens saved", func(e event) bool { return e.is("tokens_saved") }},
		step{"initialize with the token succeeds", func(e event) bool {
			return e.is("http") && e.s("url") == mcpURL && e.jsonrpcMethod() == "initialize" && e.status() == 200 && e.s("authorization") == "Bearer"
		}},
		step{"connected", func(e event) bool { return e.is("connected") }},
		step{"tools/list succeeds", func(e event) bool {
			return e.is("http") && e.s("url") == mcpURL && e.jsonrpcMethod() == "tools/list" && e.status() == 200
		}},
		step{"tools/call succeeds", func(e event) bool {
			return e.is("http") && e.s("url") == mcpURL && e.jsonrpcMethod() == "tools/call" && e.status() == 200
		}},
	)

	first := steps[0]
	www := first.s("www_authenticate")
	for _, want := range []string{`resource_metadata="` + prm + `"`, `scope="mcp:tools"`} {
		if !strings.Contains(www, want) {
			t.Errorf("401 WWW-Authenticate = %q, want it to contain %s", www, want)
		}
	}
	if strings.Count(strings.ToLower(www), "bearer") != 1 {
		t.Errorf("401 WWW-Authenticate = %q: want exactly one Bearer challenge", www)
	}
	// The SDK took the metadata URL from the challenge: it never probed the root well-known URL.
	if root := run.filter(func(e event) bool {
		return e.is("http") && e.s("url") == f.url+"/.well-known/oauth-protected-resource"
	}); len(root) > 0 {
		t.Errorf("the SDK fetched the root metadata URL: %v", root)
	}
	var doc struct {
		Resource             string   `json:"resource"`
		AuthorizationServers []string `json:"authorization_servers"`
		ScopesSupported      []string `json:"scopes_supported"`
	}
	if resp := st.get(t, prm); resp.StatusCode != http.StatusOK || json.Unmarshal([]byte(resp.Body), &doc) != nil ||
		doc.Resource != mcpURL || !slices.Equal(doc.AuthorizationServers, []string{st.as.Issuer}) {
		t.Errorf("metadata document at %s: %d %s; want resource %s and authorization_servers [%s]", prm, resp.StatusCode, resp.Body, mcpURL, st.as.Issuer)
	}
	if reg := steps[3].m("body")["registration"]; reg == nil {
		t.Errorf("registration request body not seen: %v", steps[3])
	}

	// The authorization request: PKCE S256, the resource verbatim from the metadata, the
	// challenged scope, the registered client.
	q := steps[4].m("query")
	for k, want := range map[string]string{
		"response_type": "code", "code_challenge_method": "S256", "code_challenge": "(set)",
		"resource": mcpURL, "scope": "mcp:tools", "client_id": clientID,
	} {
		if got := str(q[k]); got != want {
			t.Errorf("authorization request %s = %q, want %q (query %v)", k, got, want, q)
		}
	}
	// The token request: authorization_code with the verifier and the same resource.
	form := steps[10].m("body").m("form")
	for k, want := range map[string]string{
		"grant_type": "authorization_code", "code": "(set)", "code_verifier": "(set)",
		"resource": mcpURL, "client_id": clientID,
	} {
		if got := str(form[k]); got != want {
			t.Errorf("token request %s = %q, want %q (form %v)", k, got, want, form)
		}
	}
	claims := steps[11].m("claims")
	if str(claims["aud"]) != mcpURL || str(claims["sub"]) != "alice" || str(claims["client_id"]) != clientID ||
		!slices.Contains(strings.Fields(str(claims["scope"])), "mcp:tools") || str(claims["iss"]) != st.as.Issuer {
		t.Errorf("access token claims = %v, want iss %s, aud %s, sub alice, client_id %s, scope with mcp:tools", claims, st.as.Issuer, mcpURL, clientID)
	}

	tools := run.one(t, "tools_list")
	for _, want := range []string{"echo", adminTool, "trigger-long-running-operation"} {
		if !slices.Contains(strs(tools["names"]), want) {
			t.Errorf("tools/list = %v, want %s among them", tools["names"], want)
		}
	}
	echo := run.toolResult(t, "echo")
	if echo.s("text") != "Echo: hello through nginx" || echo["is_error"] == true {
		t.Errorf("echo result = %v", echo)
	}

	// Streaming: the progress notifications of a 1.5 s tool (3 steps) arrive while it runs.
	// A buffering proxy would deliver all of them with the result.
	progress := run.all("progress")
	result := run.toolResult(t, "trigger-long-running-operation")
	if len(progress) != 3 {
		t.Fatalf("got %d progress notifications, want 3: %v", len(progress), progress)
	}
	end := result.f("since_call_ms")
	if first := progress[0].f("since_call_ms"); first > end-400 {
		t.Errorf("first progress notification at %.0f ms, result at %.0f ms: the SSE stream was buffered", first, end)
	}
	if end < 1400 {
		t.Errorf("long-running tool returned after %.0f ms, want about 1500", end)
	}
}

// testUpstreamHeaders: the MCP server never receives the Authorization header, and receives
// the identity headers the gateway derived from the token, whatever the client sent in them.
func testUpstreamHeaders(t *testing.T, st *stack, f *front) {
	mcpURL := f.resourceURL("/mcp")
	mark := st.rec.len()
	run := st.runClient(t, map[string]any{"url": mcpURL, "scenario": "echo", "login": "bob"})
	clientID := str(run.one(t, "client_registered")["client_id"])
	got := st.rec.since(mark)

	if len(got) < 3 {
		t.Fatalf("the MCP server received %d requests, want at least initialize, notifications/initialized and tools/call: %v", len(got), got)
	}
	inits := 0
	for _, r := range got {
		if r.Header.Get("Authorization") != "" {
			t.Errorf("%s %s reached the MCP server with an Authorization header", r.Method, r.Path)
		}
		if r.Header.Get("X-Extauthz-Subject") != "bob" || r.Header.Get("X-Extauthz-Client-Id") != clientID ||
			r.Header.Get("X-Extauthz-Scopes") != "mcp:tools" {
			t.Errorf("%s %s (%s) reached the MCP server with identity headers subject=%q client-id=%q scopes=%q, want bob, %s, mcp:tools",
				r.Method, r.Path, r.RPCMethod, r.Header.Get("X-Extauthz-Subject"), r.Header.Get("X-Extauthz-Client-Id"), r.Header.Get("X-Extauthz-Scopes"), clientID)
		}
		if r.RPCMethod == "initialize" {
			inits++
		}
	}
	// The client sent initialize twice: the first, without a token, stopped at nginx.
	if sent := len(run.filter(func(e event) bool { return e.is("http") && e.jsonrpcMethod() == "initialize" })); sent != 2 || inits != 1 {
		t.Errorf("client sent initialize %d times, the MCP server received it %d times; want 2 and 1", sent, inits)
	}
	if r := run.toolResult(t, "echo"); r.s("text") != "Echo: upstream headers" {
		t.Errorf("echo result = %v", r)
	}

	// A client cannot forge the identity headers: nginx overwrites them with the gateway's.
	tok, err := st.as.ClientCredentials(context.Background(), serviceClient, mcpURL, "mcp:tools")
	if err != nil {
		t.Fatal(err)
	}
	mark = st.rec.len()
	resp := st.post(t, mcpURL, tok, initializeBody, map[string]string{
		"X-Extauthz-Subject": "mallory", "X-Extauthz-Client-Id": "forged", "X-Extauthz-Scopes": "mcp:admin",
	})
	if resp.StatusCode != 200 {
		t.Fatalf("initialize with a valid service token and forged identity headers: %d %s", resp.StatusCode, resp.Body)
	}
	got = st.rec.since(mark)
	if len(got) != 1 {
		t.Fatalf("the MCP server received %d requests, want 1", len(got))
	}
	h := got[0].Header
	if h.Get("Authorization") != "" || h.Get("X-Extauthz-Client-Id") != serviceClient.ID || h.Get("X-Extauthz-Scopes") != "mcp:tools" ||
		h.Get("X-Extauthz-Subject") == "mallory" || len(h.Values("X-Extauthz-Subject")) > 1 {
		t.Errorf("forged identity headers: the MCP server received subject=%q client-id=%q scopes=%q, Authorization present: %t; want the token's (client %s, mcp:tools), no token",
			h.Values("X-Extauthz-Subject"), h.Get("X-Extauthz-Client-Id"), h.Get("X-Extauthz-Scopes"), h.Get("Authorization") != "", serviceClient.ID)
	}
}

// testStepUp: a rule demands mcp:admin for one tool, on a resource behind nginx, which cannot
// show the body to the gateway. The SDK v2 client speaks MCP 2026-07-28 and sends
// MCP-Protocol-Version, Mcp-Method and Mcp-Name itself, so the gateway decides on them; the
// call gets 403 insufficient_scope naming every scope it needs, the SDK re-authorizes with
// those scopes (no new registration), and the call succeeds. The SDK v2 server ran the tool
// once, and the headers the gateway decided on agree with the bodies the server acted on.
func testStepUp(t *testing.T, st *stack, f *front) {
	mcpURL := f.resourceURL("/v2/mcp")
	mark, runsBefore := st.recV2.len(), len(st.v2ToolRuns(t))
	run := st.runClientV2(t, map[string]any{"url": mcpURL, "scenario": "stepup", "login": "carol", "adminTool": adminTool})
	md := st.authServerMetadata(t)

	isCall := func(e event, status int) bool {
		return e.is("http") && e.s("actor") == "sdk" && e.s("url") == mcpURL && e.jsonrpcMethod() == "tools/call" &&
			e.jsonrpcName() == adminTool && e.status() == status
	}
	steps := run.inOrder(t,
		step{"the unauthenticated server/discover gets 401", func(e event) bool {
			return e.is("http") && e.s("url") == mcpURL && e.jsonrpcMethod() == "server/discover" && e.status() == 401
		}},
		step{"dynamic client registration", func(e event) bool {
			return e.is("http") && e.s("method") == "POST" && e.s("url") == md.RegistrationEndpoint && e.status() == 201
		}},
		step{"first authorization", func(e event) bool { return e.is("tokens_saved") }},
		step{"connected on MCP 2026-07-28", func(e event) bool { return e.is("connected") && e.s("era") == "modern" }},
		step{"echo allowed with mcp:tools", func(e event) bool { return e.is("tool_result") && e.s("tool") == "echo" }},
		step{adminTool + " refused with 403", func(e event) bool { return isCall(e, 403) }},
		step{"re-authorization requested", func(e event) bool { return e.is("redirect_to_authorization") }},
		step{"consent to the new scope", func(e event) bool { return e.is("form") && e.s("page") == "consent" }},
		step{"code received", func(e event) bool { return e.is("authorization_code") }},
		step{"the SDK reports UnauthorizedError", func(e event) bool { return e.is("step_up") && e.s("tool") == adminTool }},
		step{"code exchanged", func(e event) bool {
			return e.is("http") && e.s("url") == md.TokenEndpoint && e.status() == 200
		}},
		step{"new tokens saved", func(e event) bool { return e.is("tokens_saved") }},
		step{adminTool + " retried and allowed", func(e event) bool { return isCall(e, 200) }},
		step{adminTool + " result", func(e event) bool { return e.is("tool_result") && e.s("tool") == adminTool }},
	)

	www := steps[5].s("www_authenticate")
	prm := f.url + "/.well-known/oauth-protected-resource/v2/mcp"
	if strings.Count(strings.ToLower(www), "bearer") != 1 || !strings.Contains(www, `error="insufficient_scope"`) ||
		!strings.Contains(www, `resource_metadata="`+prm+`"`) {
		t.Errorf("403 WWW-Authenticate = %q, want one Bearer challenge with insufficient_scope and resource_metadata %s", www, prm)
	}
	challenged := scopeParam(www)
	if !slices.Contains(challenged, "mcp:admin") || !slices.Contains(challenged, "mcp:tools") {
		t.Errorf("403 challenge scope = %v, want mcp:admin and mcp:tools", challenged)
	}
	// SDK 2.x asks for the union of the scopes it had and the challenged ones, plus
	// offline_access (for a refresh token: the authorization server supports it and the client
	// registered the refresh_token grant).
	if got := strings.Fields(str(steps[6].m("query")["scope"])); !sameSet(got, append(slices.Clone(challenged), "offline_access")) {
		t.Errorf("re-authorization scope = %v, want the challenged %v and offline_access", got, challenged)
	}
	if got := str(steps[6].m("query")["resource"]); got != mcpURL {
		t.Errorf("re-authorization resource = %q, want %s", got, mcpURL)
	}
	if n := len(run.all("client_registered")); n != 1 {
		t.Errorf("client registered %d times, want once (the same client steps up)", n)
	}
	if got := steps[11].m("claims"); !slices.Contains(strings.Fields(str(got["scope"])), "mcp:admin") ||
		!slices.Contains(strings.Fields(str(got["scope"])), "mcp:tools") || str(got["aud"]) != mcpURL {
		t.Errorf("stepped-up token claims = %v, want scope with mcp:admin and mcp:tools, aud %s", got, mcpURL)
	}
	if got := steps[13].s("text"); got != "The sum of 2 and 3 is 5." {
		t.Errorf("%s result = %q", adminTool, got)
	}
	if r := run.toolResult(t, "echo"); r.s("text") != "Echo: before step-up" {
		t.Errorf("echo result = %v", r)
	}
	// The SDK sent the MCP 2026-07-28 headers itself, on every JSON-RPC request.
	for _, e := range run.filter(func(e event) bool { return e.is("http") && e.s("url") == mcpURL }) {
		if e.s("mcp_protocol_version") != "2026-07-28" || e.s("mcp_method") != e.jsonrpcMethod() || e.s("mcp_name") != e.jsonrpcName() ||
			e.m("body").m("jsonrpc").s("protocol_version") != "2026-07-28" {
			t.Errorf("the SDK sent %s %s with MCP-Protocol-Version %q, Mcp-Method %q, Mcp-Name %q, _meta protocol version %q",
				e.jsonrpcMethod(), e.jsonrpcName(), e.s("mcp_protocol_version"), e.s("mcp_method"), e.s("mcp_name"), e.m("body").m("jsonrpc").s("protocol_version"))
		}
	}

	// The MCP server saw the guarded tool called once, with the admin scope, and ran it once;
	// the operation headers the gateway decided on agree with the bodies the server acted on.
	calls := 0
	for _, r := range st.recV2.since(mark) {
		if r.RPCMethod == "tools/call" && r.RPCName == adminTool {
			calls++
			if !slices.Contains(strings.Fields(r.Header.Get("X-Extauthz-Scopes")), "mcp:admin") {
				t.Errorf("%s reached the MCP server with scopes %q", adminTool, r.Header.Get("X-Extauthz-Scopes"))
			}
		}
		if r.Method == http.MethodPost && r.RPCMethod != "" && (r.Header.Get("Mcp-Method") != r.RPCMethod || r.Header.Get("Mcp-Name") != r.RPCName ||
			r.Header.Get("Mcp-Protocol-Version") != "2026-07-28") {
			t.Errorf("MCP-Protocol-Version/Mcp-Method/Mcp-Name %q/%q/%q disagree with the body's 2026-07-28/%q/%q",
				r.Header.Get("Mcp-Protocol-Version"), r.Header.Get("Mcp-Method"), r.Header.Get("Mcp-Name"), r.RPCMethod, r.RPCName)
		}
	}
	if calls != 1 {
		t.Errorf("the MCP server received %s %d times, want once (after the step-up)", adminTool, calls)
	}
	st.v2.waitUntil(t, "the last echo's run", func() bool { return len(st.v2ToolRuns(t)) >= runsBefore+3 })
	var ran []string
	for _, r := range st.v2ToolRuns(t)[runsBefore:] {
		ran = append(ran, r.Endpoint+" "+r.Era+" "+r.Tool)
	}
	if want := []string{"/mcp modern echo", "/mcp modern " + adminTool, "/mcp modern echo"}; !slices.Equal(ran, want) {
		t.Errorf("the MCP server ran %q, want %q", ran, want)
	}
}

// testLegacyHeadersRefused: nginx cannot show the body to the gateway, and a server of a
// revision before 2026-07-28 acts on the body whatever the Mcp-* headers say. So on a
// resource with rules, a POST from SDK 1.x (MCP 2025-11-25) is refused even when it carries
// Mcp-Method/Mcp-Name (the client's shim adds them), and so is one without them: the
// gateway's 400, relayed by nginx, and nothing reaches the MCP server.
func testLegacyHeadersRefused(t *testing.T, st *stack) {
	mcpURL := st.resourceURL("/admin/mcp")
	mark := st.rec.len()
	run := st.runScript(t, "client.mjs", map[string]any{"url": mcpURL, "scenario": "echo", "login": "dave", "mcpHeaders": true}, false)
	if run.err == nil {
		t.Errorf("the SDK 1.x client completed its scenario on a resource with rules behind nginx")
	}
	refused := run.filter(func(e event) bool {
		return e.is("http") && e.s("url") == mcpURL && e.jsonrpcMethod() == "initialize" && e.s("authorization") == "Bearer" &&
			e.s("mcp_method") == "initialize" && e.status() == http.StatusBadRequest
	})
	if len(refused) == 0 {
		t.Errorf("no initialize with a token and Mcp-Method was refused with 400")
	}
	if ok := run.filter(func(e event) bool { return e.is("http") && e.s("url") == mcpURL && e.status() < 300 }); len(ok) > 0 {
		t.Errorf("the MCP endpoint accepted requests of the 2025-11-25 client: %v", ok)
	}
	if errs := run.all("error"); len(errs) != 1 || errs[0].f("code") != http.StatusBadRequest {
		t.Errorf("the client ended with %v, want the 400 of its initialize", errs)
	}

	tok, err := st.as.ClientCredentials(context.Background(), serviceClient, mcpURL, "mcp:tools mcp:admin")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		what    string
		headers map[string]string
	}{
		{"no Mcp-* headers", nil},
		{"Mcp-Method, no MCP-Protocol-Version", map[string]string{"Mcp-Method": "initialize"}},
		{"Mcp-Method, MCP-Protocol-Version 2025-11-25", map[string]string{"Mcp-Method": "initialize", "MCP-Protocol-Version": "2025-11-25"}},
	} {
		if resp := st.post(t, mcpURL, tok, initializeBody, c.headers); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("initialize with %s to a resource with rules: %d %s, want the gateway's 400", c.what, resp.StatusCode, resp.Body)
		}
	}
	if got := st.rec.since(mark); len(got) != 0 {
		t.Errorf("refused requests reached the MCP server: %v", got)
	}
}

// testHeaderBodyMismatch: issue 17's item 9, against the SDK v2 server, on both of its
// postures (/v2/mcp: 2026-07-28 only; /v2/any-era/mcp: the SDK's default, which also serves
// 2025 requests). A token with the base scope only; the headers name echo (or another
// harmless operation), the body calls get-sum, which needs mcp:admin. Declaring 2025-06-18,
// the request stops at the gateway. Declaring 2026-07-28, the gateway decides on the headers
// and lets it through, and the MCP server must refuse it: it answers 400 with a JSON-RPC
// error (or, for a notification, 202 and nothing), and get-sum never runs.
func testHeaderBodyMismatch(t *testing.T, st *stack) {
	ctx := context.Background()
	const noError, anyError = 0, 1 // JSON-RPC error codes are negative
	envelope := func(version string) string {
		return `,"_meta":{"io.modelcontextprotocol/protocolVersion":"` + version +
			`","io.modelcontextprotocol/clientInfo":{"name":"e2e-go","version":"0"},"io.modelcontextprotocol/clientCapabilities":{}}`
	}
	// The refused requests ask for 2 + 3, the controls for 20 + 22.
	getSum := func(meta string) string {
		return `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"get-sum","arguments":{"a":2,"b":3}` + meta + `}}`
	}
	control := `{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"get-sum","arguments":{"a":20,"b":22}` + envelope("2026-07-28") + `}}`
	modern := envelope("2026-07-28")
	runsBefore := len(st.v2ToolRuns(t))

	for _, ep := range []struct{ name, path string }{{"2026-07-28 only", "/v2/mcp"}, {"any era (the SDK's default)", "/v2/any-era/mcp"}} {
		t.Run(ep.name, func(t *testing.T) {
			mcpURL := st.resourceURL(ep.path)
			base, err := st.as.ClientCredentials(ctx, serviceClient, mcpURL, "mcp:tools")
			if err != nil {
				t.Fatal(err)
			}
			send := func(token, body string, headers map[string]string) (response, []recorded) {
				t.Helper()
				mark := st.recV2.len()
				h := map[string]string{"Authorization": "Bearer " + token}
				for k, v := range headers {
					h[k] = v
				}
				resp := st.send(t, http.MethodPost, mcpURL, "", h, body)
				return resp, st.recV2.since(mark)
			}

			// Before 2026-07-28 the headers are not trusted: refused before the server.
			for _, version := range []string{"2025-06-18", ""} {
				headers := map[string]string{"Mcp-Method": "tools/call", "Mcp-Name": "echo"}
				if version != "" {
					headers["MCP-Protocol-Version"] = version
				}
				resp, got := send(base, getSum(""), headers)
				if resp.StatusCode != http.StatusBadRequest || len(got) != 0 {
					t.Errorf("MCP-Protocol-Version %q, Mcp-Name echo, body get-sum: %d %s, %d requests at the MCP server; want 400 and none",
						version, resp.StatusCode, resp.Body, len(got))
				}
			}

			// A tools/call whose name the headers do not give cannot be matched against the
			// rules: the gateway refuses it whatever the version.
			if resp, got := send(base, getSum(modern), map[string]string{"Mcp-Method": "tools/call", "MCP-Protocol-Version": "2026-07-28"}); resp.StatusCode != http.StatusBadRequest || len(got) != 0 {
				t.Errorf("tools/call without Mcp-Name, body get-sum: %d %s, %d requests at the MCP server; want 400 and none", resp.StatusCode, resp.Body, len(got))
			}

			// From 2026-07-28 on the gateway decides on the headers; the server must refuse.
			for _, c := range []struct {
				what    string
				headers map[string]string
				body    string
				status  int
				code    int // of the JSON-RPC error, or noError, or anyError
			}{
				{"Mcp-Name echo", map[string]string{"Mcp-Method": "tools/call", "Mcp-Name": "echo"}, getSum(modern), 400, -32020},
				{"Mcp-Method tools/list", map[string]string{"Mcp-Method": "tools/list"}, getSum(modern), 400, -32020},
				{"Mcp-Name echo, the body's _meta names 2025-11-25", map[string]string{"Mcp-Method": "tools/call", "Mcp-Name": "echo"}, getSum(envelope("2025-11-25")), 400, -32020},
				{"Mcp-Name echo, a 2025 body (no _meta)", map[string]string{"Mcp-Method": "tools/call", "Mcp-Name": "echo"}, getSum(""), 400, -32602},
				{"Mcp-Name echo, a batch of the 2025 call", map[string]string{"Mcp-Method": "tools/call", "Mcp-Name": "echo"}, "[" + getSum("") + "]", 400, anyError},
				{"Mcp-Name echo, the call as a notification", map[string]string{"Mcp-Method": "tools/call", "Mcp-Name": "echo"},
					`{"jsonrpc":"2.0","method":"tools/call","params":{"name":"get-sum","arguments":{"a":2,"b":3}` + modern + `}}`, 202, noError},
			} {
				c.headers["MCP-Protocol-Version"] = "2026-07-28"
				resp, got := send(base, c.body, c.headers)
				if len(got) != 1 {
					t.Errorf("%s: %d %s; %d requests at the MCP server, want 1 (the gateway decides on the headers)", c.what, resp.StatusCode, resp.Body, len(got))
					continue
				}
				var rpc struct {
					Error *struct {
						Code    int
						Message string
					}
				}
				_ = json.Unmarshal([]byte(resp.Body), &rpc)
				codeOK := rpc.Error == nil
				switch c.code {
				case noError:
				case anyError:
					codeOK = rpc.Error != nil
				default:
					codeOK = rpc.Error != nil && rpc.Error.Code == c.code
				}
				if resp.StatusCode != c.status || !codeOK {
					t.Errorf("%s: the MCP server answered %d %s, want %d and JSON-RPC error %d (%d: none, %d: any)",
						c.what, resp.StatusCode, resp.Body, c.status, c.code, noError, anyError)
				} else {
					t.Logf("%s: the MCP server answered %d %s", c.what, resp.StatusCode, strings.TrimSpace(resp.Body))
				}
			}

			// Controls: the same call with honest headers is the gateway's to refuse without
			// mcp:admin, and runs with it.
			honest := map[string]string{"Mcp-Method": "tools/call", "Mcp-Name": "get-sum", "MCP-Protocol-Version": "2026-07-28"}
			if resp, got := send(base, control, honest); resp.StatusCode != http.StatusForbidden || len(got) != 0 {
				t.Errorf("control: honest get-sum with mcp:tools: %d %s, %d requests at the MCP server; want 403 and none", resp.StatusCode, resp.Body, len(got))
			}
			admin, err := st.as.ClientCredentials(ctx, serviceClient, mcpURL, "mcp:tools mcp:admin")
			if err != nil {
				t.Fatal(err)
			}
			if resp, _ := send(admin, control, honest); resp.StatusCode != http.StatusOK || !strings.Contains(resp.Body, "The sum of 20 and 22 is 42.") {
				t.Errorf("control: honest get-sum with mcp:admin: %d %s; want 200 and the sum", resp.StatusCode, resp.Body)
			}
		})
	}

	// The server ran get-sum for the two honest controls only. Its output is read in order,
	// so once the last control's run is seen, a refused request that ran would be seen too.
	var ran []toolRun
	st.v2.waitUntil(t, "the controls' get-sum runs", func() bool {
		ran = st.v2ToolRuns(t)[runsBefore:]
		return len(ran) > 0 && ran[len(ran)-1].Endpoint == "/any-era/mcp" && ran[len(ran)-1].Args["a"] == 20.0
	})
	for _, r := range ran {
		if r.Tool != adminTool || r.Args["a"] != 20.0 {
			t.Errorf("a refused request ran on the MCP server: %+v", r)
		}
	}
	if len(ran) != 2 {
		t.Errorf("the MCP server ran %+v, want the two controls", ran)
	}
}

// testRevisionForms: what an MCP 2026-07-28 client sends besides Mcp-Method/Mcp-Name on a
// call passes the gateway through nginx (which does not show it the body) on a resource with
// rules: a notification without Mcp-Method (the SDK v2 client posts notifications/cancelled
// that way when it closes a subscriptions/listen), and the task methods with params.taskId in
// Mcp-Name (SEP-2663). They reach the MCP server, which answers them; nginx's 500 (its answer
// to a 400 of the gateway) would mean the gateway refused them. A request without Mcp-Method
// from a 2025 client is still refused before the server, and a request without a token gets
// the 401 challenge whatever its headers.
func testRevisionForms(t *testing.T, st *stack, f *front) {
	mcpURL := f.resourceURL("/v2/mcp")
	tok, err := st.as.ClientCredentials(context.Background(), serviceClient, mcpURL, "mcp:tools")
	if err != nil {
		t.Fatal(err)
	}
	auth := "Bearer " + tok
	const v = "2026-07-28"
	const meta = `"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":{"name":"e2e-go","version":"0"},"io.modelcontextprotocol/clientCapabilities":{}}`
	for _, c := range []struct {
		what    string
		headers map[string]string
		body    string
	}{
		{"notifications/cancelled without Mcp-Method", map[string]string{"MCP-Protocol-Version": v},
			`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":3,"reason":"closed"}}`},
		{"tasks/get with the task id in Mcp-Name", map[string]string{"MCP-Protocol-Version": v, "Mcp-Method": "tasks/get", "Mcp-Name": "task-1"},
			`{"jsonrpc":"2.0","id":21,"method":"tasks/get","params":{"taskId":"task-1",` + meta + `}}`},
		{"tasks/cancel with the task id in Mcp-Name", map[string]string{"MCP-Protocol-Version": v, "Mcp-Method": "tasks/cancel", "Mcp-Name": "task-1"},
			`{"jsonrpc":"2.0","id":22,"method":"tasks/cancel","params":{"taskId":"task-1",` + meta + `}}`},
	} {
		mark := st.recV2.len()
		c.headers["Authorization"] = auth
		resp := st.send(t, http.MethodPost, mcpURL, "", c.headers, c.body)
		if got := st.recV2.since(mark); len(got) != 1 || resp.StatusCode == http.StatusInternalServerError {
			t.Errorf("%s: %d %s, %d requests at the MCP server; want it let through", c.what, resp.StatusCode, resp.Body, len(got))
		} else {
			t.Logf("%s: the MCP server answered %d %s", c.what, resp.StatusCode, strings.TrimSpace(resp.Body))
		}
	}
	mark := st.recV2.len()
	old := st.send(t, http.MethodPost, mcpURL, "", map[string]string{"Authorization": auth, "MCP-Protocol-Version": "2025-11-25"},
		`{"jsonrpc":"2.0","id":23,"method":"tools/call","params":{"name":"get-sum","arguments":{"a":1,"b":2}}}`)
	if got := st.recV2.since(mark); old.StatusCode != http.StatusBadRequest || len(got) != 0 {
		t.Errorf("a 2025 request without Mcp-Method: %d %s, %d requests at the MCP server; want the gateway's 400 and none",
			old.StatusCode, old.Body, len(got))
	}
	anon := st.send(t, http.MethodPost, mcpURL, "", map[string]string{"MCP-Protocol-Version": v, "Mcp-Name": "x"}, `{"jsonrpc":"2.0","id":24,"method":"tools/list"}`)
	if anon.StatusCode != http.StatusUnauthorized || !strings.Contains(anon.Header.Get("WWW-Authenticate"), "resource_metadata=") {
		t.Errorf("no token, Mcp-Name without Mcp-Method: %d %q, want the 401 challenge", anon.StatusCode, anon.Header.Get("WWW-Authenticate"))
	}
}

// testPublicPaths: the resource's public path (GET and HEAD /mcp/health) reaches the MCP
// server without a token, and without the identity headers a client sent; every other
// method, and every other spelling a server might read as that path, is refused and never
// reaches it.
func testPublicPaths(t *testing.T, st *stack, f *front) {
	host := "127.0.0.1:" + f.port
	forged := map[string]string{"X-Extauthz-Subject": "admin", "Authorization": "Basic YWRtaW46YWRtaW4="}
	for _, method := range []string{http.MethodGet, http.MethodHead} {
		mark := st.rec.len()
		resp := st.send(t, method, f.url+"/mcp/health", host, forged, "")
		got := st.rec.since(mark)
		if len(got) != 1 || got[0].Path != "/mcp/health" {
			t.Fatalf("%s /mcp/health without a token: %d, reached the server as %v; want it passed on", method, resp.StatusCode, got)
		}
		if h := got[0].Header; h.Get("X-Extauthz-Subject") != "" || h.Get("Authorization") != "" {
			t.Errorf("%s /mcp/health: the server got identity or Authorization headers: %v", method, h)
		}
	}
	mark := st.rec.len()
	for _, v := range []struct {
		method, path string
		want         int
	}{
		{http.MethodPost, "/mcp/health", http.StatusUnauthorized},
		{http.MethodDelete, "/mcp/health", http.StatusUnauthorized},
		{http.MethodGet, "/mcp/health;x", http.StatusBadRequest},
		{http.MethodGet, "/mcp/HEALTH", http.StatusBadRequest},
		{http.MethodGet, "/mcp/health/..%2Ftools", 0},
		{http.MethodGet, "/mcp/%68ealth/../x", 0},
		{http.MethodGet, "/mcp/healthz", http.StatusUnauthorized},
	} {
		resp := st.send(t, v.method, f.url+v.path, host, nil, "")
		if resp.StatusCode < 400 || v.want != 0 && resp.StatusCode != v.want {
			t.Errorf("%s %s without a token: %d %s, want %d", v.method, v.path, resp.StatusCode, resp.Body, v.want)
		}
	}
	if got := st.rec.since(mark); len(got) != 0 {
		t.Errorf("near misses of the public path reached the MCP server: %v", got)
	}
}

// testForeignToken: tokens whose audience is another resource are refused with 401
// invalid_token; a token for this resource from the same client passes.
func testForeignToken(t *testing.T, st *stack, f *front) {
	ctx := context.Background()
	mcpURL := f.resourceURL("/mcp")
	mark := st.rec.len()
	for _, other := range []string{f.resourceURL("/other"), f.resourceURL("/admin/mcp")} {
		tok, err := st.as.ClientCredentials(ctx, serviceClient, other, "mcp:tools")
		if err != nil {
			t.Fatal(err)
		}
		resp := st.post(t, mcpURL, tok, initializeBody, nil)
		www := resp.Header.Get("WWW-Authenticate")
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(www, `error="invalid_token"`) ||
			!strings.Contains(www, `resource_metadata="`+f.url+`/.well-known/oauth-protected-resource/mcp"`) {
			t.Errorf("token for %s sent to %s: %d, WWW-Authenticate %q; want 401 invalid_token with resource_metadata", other, mcpURL, resp.StatusCode, www)
		}
	}
	if got := st.rec.since(mark); len(got) != 0 {
		t.Errorf("refused requests reached the MCP server: %v", got)
	}
	tok, err := st.as.ClientCredentials(ctx, serviceClient, mcpURL, "mcp:tools")
	if err != nil {
		t.Fatal(err)
	}
	if resp := st.post(t, mcpURL, tok, initializeBody, nil); resp.StatusCode != http.StatusOK {
		t.Errorf("control: token for %s: %d %s", mcpURL, resp.StatusCode, resp.Body)
	}
}

// testHostDoesNotChoose: resource "other" is the same path on another host
// (localhost). A token issued for it, sent to nginx's /mcp location with
// Host: localhost, is decided as the resource that location names (mcp), so
// its audience is wrong: 401, and nothing reaches the MCP server. Were the
// resource chosen by the Host header, the token would run tools/call on the
// /mcp upstream.
func testHostDoesNotChoose(t *testing.T, st *stack, f *front) {
	tok, err := st.as.ClientCredentials(context.Background(), serviceClient, f.otherResource, "mcp:tools")
	if err != nil {
		t.Fatal(err)
	}
	mark := st.rec.len()
	for _, host := range []string{f.otherHost, strings.ToUpper(f.otherHost), "localhost.:" + f.port} {
		resp := st.send(t, http.MethodPost, f.resourceURL("/mcp"), host, map[string]string{"Authorization": "Bearer " + tok}, toolsCallBody("echo"))
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="invalid_token"`) {
			t.Errorf("Host %s, a token for %s on nginx's /mcp: %d %q; want 401 invalid_token (decided as resource mcp)", host, f.otherResource, resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
		}
	}
	if got := st.rec.since(mark); len(got) != 0 {
		t.Errorf("requests with another resource's token reached the MCP server: %v", got)
	}
}

// testPathVariants: spellings of /mcp that nginx or the MCP server (Express
// routes case-insensitively) may take for the MCP endpoint, sent without a
// token, some through nginx's catch-all location (decided by host and path,
// with unmatched: allow). None may reach the MCP server.
func testPathVariants(t *testing.T, st *stack, f *front) {
	mark := st.rec.len()
	host := "127.0.0.1:" + f.port
	for _, v := range []struct{ host, path string }{
		{host, "/MCP"},
		{host, "/Mcp"},
		{host, "/%6Dcp"},
		{host, "/x/..%2Fmcp"},
		{host, "/mcp%2F"},
		{host, "/mcp;x"},
		{host, "/x/%2E%2E/mcp"},
		{"localhost.:" + f.port, "/MCP"},
		{"LOCALHOST:" + f.port, "/mcp"},
	} {
		resp := st.send(t, http.MethodPost, f.url+v.path, v.host, nil, toolsCallBody("echo"))
		if resp.StatusCode < 400 {
			t.Errorf("Host %s POST %s without a token: %d %s", v.host, v.path, resp.StatusCode, resp.Body)
		}
	}
	if got := st.rec.since(mark); len(got) != 0 {
		t.Errorf("path variants without a token reached the MCP server: %v", got)
	}
	// Control: the catch-all passes what is not protected.
	if resp := st.send(t, http.MethodGet, f.url+"/public", host, nil, ""); resp.StatusCode >= 500 || len(st.rec.since(mark)) != 1 {
		t.Errorf("control: GET /public through the catch-all: %d, %d requests at the server; want it passed on", resp.StatusCode, len(st.rec.since(mark)))
	}
}

// testSessionCookieStripped: a browser session cookie is sent to every path
// of the host (Path=/); it works as the user, so no upstream may see it —
// not on a Bearer request, not on an unprotected path, not on a preflight.
func testSessionCookieStripped(t *testing.T, st *stack, f *front) {
	tok, err := st.as.ClientCredentials(context.Background(), serviceClient, f.resourceURL("/mcp"), "mcp:tools")
	if err != nil {
		t.Fatal(err)
	}
	sid := strings.Repeat("S", 43)
	cookie := "theme=dark; " + sessionCookie + "=" + sid + "; " + sessionCookie + "-state-0123456789abcdef=x; lang=en"
	host := "127.0.0.1:" + f.port
	for _, c := range []struct {
		what, method, url string
		headers           map[string]string
		body, want        string
	}{
		{"Bearer request", http.MethodPost, f.resourceURL("/mcp"), map[string]string{"Authorization": "Bearer " + tok, "Cookie": cookie}, initializeBody, "theme=dark; lang=en"},
		{"Bearer request, session only", http.MethodPost, f.resourceURL("/mcp"), map[string]string{"Authorization": "Bearer " + tok, "Cookie": sessionCookie + "=" + sid}, initializeBody, ""},
		{"unprotected path", http.MethodGet, f.url + "/public", map[string]string{"Cookie": cookie}, "", "theme=dark; lang=en"},
		{"forwarded preflight", http.MethodOptions, f.resourceURL("/admin/mcp"), map[string]string{"Cookie": cookie, "Origin": f.url, "Access-Control-Request-Method": "POST"}, "", "theme=dark; lang=en"},
		{"no session", http.MethodGet, f.url + "/public", map[string]string{"Cookie": "theme=dark"}, "", "theme=dark"},
	} {
		mark := st.rec.len()
		resp := st.send(t, c.method, c.url, host, c.headers, c.body)
		got := st.rec.since(mark)
		if len(got) != 1 {
			t.Errorf("%s: %d %s; the MCP server received %d requests, want 1", c.what, resp.StatusCode, resp.Body, len(got))
			continue
		}
		if v := got[0].Header.Values("Cookie"); strings.Join(v, "; ") != c.want || strings.Contains(strings.Join(v, ""), sid) {
			t.Errorf("%s: the MCP server received Cookie %q, want %q", c.what, v, c.want)
		}
	}
}

// testPreflightWithBody: an OPTIONS that looks like a CORS preflight but
// carries a body is no preflight; without a token it stops at the gateway.
func testPreflightWithBody(t *testing.T, st *stack) {
	mark := st.rec.len()
	resp := st.send(t, http.MethodOptions, st.resourceURL("/mcp"), "", map[string]string{
		"Origin": st.nginxURL, "Access-Control-Request-Method": "POST", "Content-Type": "application/json",
	}, toolsCallBody("echo"))
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("OPTIONS with a preflight's headers and a body: %d %s, want 401", resp.StatusCode, resp.Body)
	}
	if got := st.rec.since(mark); len(got) != 0 {
		t.Errorf("it reached the MCP server: %v", got)
	}
}

func toolsCallBody(tool string) string {
	return `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"` + tool + `","arguments":{"message":"x"}}}`
}

const initializeBody = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"e2e-go","version":"0"}}}`

// ---------------------------------------------------------------------------
// The stack
// ---------------------------------------------------------------------------

type stack struct {
	root, e2eDir string
	node         string
	nginxURL     string // http://127.0.0.1:PORT
	nginxPort    string
	nginx        *proc // running deploy/nginx/nginx.conf
	nginxBin     string
	gatewayHTTP  string // the gateway's HTTP listener, host:port
	// downIssuer is the issuer of resource "unavailable": a closed port.
	downIssuer string
	// The proxies in front: nginx (ng, the same as nginxURL...) and Caddy, each with its
	// own gateway whose public_url is the proxy's address.
	ng, caddy *front
	// grpc is the Envoy stand-in (internal/envoyfront) before its own
	// gateway's gRPC Check (grpcpath_test.go).
	grpc      *front
	caddyProc *proc
	caddyBin  string
	// otherResource is a resource on the same path as /mcp, told apart
	// only by its host (otherHost, localhost:PORT).
	otherResource, otherHost string
	as                       *oidctest.Server
	rec                      *recorder // in front of server-everything
	recV2                    *recorder // in front of server-v2.mjs
	v2                       *proc     // server-v2.mjs, whose output says which tools ran
	http                     *http.Client

	mdOnce sync.Once
	md     oidctest.Metadata
	mdErr  error
}

func (st *stack) resourceURL(path string) string { return st.nginxURL + path }

// front is a proxy in front of the MCP servers, with its own gateway.
type front struct {
	name, url, port string // url is http://127.0.0.1:PORT, the gateway's public_url
	// otherResource is a resource on the same path as /mcp, told apart only by its host
	// (otherHost, localhost:PORT).
	otherResource, otherHost string
}

func (f *front) resourceURL(path string) string { return f.url + path }

// toolRun is a tool server-v2.mjs ran (one of its E2E_TOOL lines).
type toolRun struct {
	Endpoint, Era, Tool string
	Args                map[string]any
}

// v2ToolRuns lists the tools server-v2.mjs has run, in order.
func (st *stack) v2ToolRuns(t *testing.T) []toolRun {
	t.Helper()
	var out []toolRun
	for _, line := range st.v2.lines("E2E_TOOL ") {
		var r toolRun
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("server-v2 printed E2E_TOOL %s: %v", line, err)
		}
		out = append(out, r)
	}
	return out
}

// startStack starts every part on 127.0.0.1 and returns once nginx answers. Everything is
// stopped by PID when t ends; the logs of every process are printed if t failed.
func startStack(t *testing.T) *stack {
	began := time.Now()
	st := &stack{http: &http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: 10 * time.Second}}
	t.Cleanup(st.http.CloseIdleConnections)
	var err error
	if st.root, err = testkit.RepoRoot(); err != nil {
		t.Fatal(err)
	}
	st.e2eDir = filepath.Join(st.root, "test", "e2e")
	st.node = checkNodeDeps(t, st.e2eDir)
	nginx := findNginx(t)
	caddyBin := caddy(t)

	// The gateway binary builds while the other parts start.
	gatewayBin := filepath.Join(t.TempDir(), "extauthz")
	buildCtx, cancelBuild := context.WithCancel(context.Background())
	built := make(chan error, 1)
	go func() { built <- buildGateway(buildCtx, st.root, gatewayBin) }()
	buildWaited := false
	t.Cleanup(func() { // a start that failed early stops the build and waits for it
		cancelBuild()
		if !buildWaited {
			<-built //nolint:errcheck // the build was cancelled: its error says only that
		}
	})

	nginxPort, releaseNginxPort := reservePort(t)
	st.nginxURL = fmt.Sprintf("http://127.0.0.1:%d", nginxPort)
	st.nginxPort = strconv.Itoa(nginxPort)
	st.otherHost = "localhost:" + st.nginxPort
	st.otherResource = "http://" + st.otherHost + "/mcp"
	caddyPort, releaseCaddyPort := reservePort(t)
	st.caddy = &front{name: "caddy", url: fmt.Sprintf("http://127.0.0.1:%d", caddyPort), port: strconv.Itoa(caddyPort)}
	st.caddy.otherHost = "localhost:" + st.caddy.port
	st.caddy.otherResource = "http://" + st.caddy.otherHost + "/mcp"
	st.ng = &front{name: "nginx", url: st.nginxURL, port: st.nginxPort, otherHost: st.otherHost, otherResource: st.otherResource}
	frontLn := listenFront(t)
	st.grpc = newFront("grpc", frontLn)

	// The MCP server, forced onto 127.0.0.1 by the preload, on a port of its choosing.
	everything := startProc(t, "server-everything", exec.Command(st.node, "--import", "./loopback.mjs",
		"node_modules/@modelcontextprotocol/server-everything/dist/index.js", "streamableHttp"), st.e2eDir, "PORT=0")
	var listening struct{ Address string }
	var everythingPort int
	everything.waitLine(t, "E2E_LISTENING ", func(rest string) bool {
		var l struct {
			Address string
			Port    int
		}
		if json.Unmarshal([]byte(rest), &l) != nil || l.Port == 0 {
			return false
		}
		listening.Address, everythingPort = l.Address, l.Port
		return true
	})
	if listening.Address != "127.0.0.1" {
		t.Fatalf("server-everything listens on %s, want 127.0.0.1", listening.Address)
	}

	st.rec = startRecorder(t, fmt.Sprintf("127.0.0.1:%d", everythingPort))

	// The SDK v2 server listens on 127.0.0.1 by itself and prints the port it was given.
	st.v2 = startProc(t, "server-v2", exec.Command(st.node, "server-v2.mjs"), st.e2eDir)
	var v2Port int
	st.v2.waitLine(t, "E2E_LISTENING ", func(rest string) bool {
		var l struct {
			Address string
			Port    int
		}
		if json.Unmarshal([]byte(rest), &l) != nil || l.Port == 0 || l.Address != "127.0.0.1" {
			return false
		}
		v2Port = l.Port
		return true
	})
	st.recV2 = startRecorder(t, fmt.Sprintf("127.0.0.1:%d", v2Port))

	webClient := oidctest.Client{
		ID: "extauthz-web", Secret: "web-secret-" + randomHex(t, 16), AuthMethod: "client_secret_basic",
		GrantTypes: []string{"authorization_code", "refresh_token"}, RedirectURIs: []string{st.nginxURL + "/oauth/callback", st.caddy.url + "/oauth/callback"},
	}
	var resources []oidctest.Resource
	for _, f := range []*front{st.ng, st.caddy, st.grpc} {
		resources = append(resources,
			oidctest.Resource{Resource: f.url + "/mcp", Scope: "mcp:tools"},
			oidctest.Resource{Resource: f.url + "/admin/mcp", Scope: "mcp:tools mcp:admin"},
			oidctest.Resource{Resource: f.url + "/v2/mcp", Scope: "mcp:tools mcp:admin"},
			oidctest.Resource{Resource: f.url + "/v2/any-era/mcp", Scope: "mcp:tools mcp:admin"},
			oidctest.Resource{Resource: f.url + "/other", Scope: "mcp:tools"},
			oidctest.Resource{Resource: f.otherResource, Scope: "mcp:tools"},
			oidctest.Resource{Resource: f.url + mintedPath, Scope: "mcp:tools"},
			oidctest.Resource{Resource: f.url + mintedCCPath, Scope: "mcp:tools"},
			oidctest.Resource{Resource: f.url + dpopPath, Scope: "mcp:tools"},
			oidctest.Resource{Resource: f.url + dpopNoncePath, Scope: "mcp:tools"},
		)
	}
	st.as = oidctest.Start(t, oidctest.Options{
		Clients:                  []oidctest.Client{serviceClient, webClient, minterClient},
		Resources:                resources,
		RegistrationIgnoresScope: true,
		TokenExchange:            oidctest.TokenExchange{Targets: []oidctest.ExchangeTarget{mintedTarget}},
	})

	err = <-built
	buildWaited = true
	if err != nil {
		t.Fatalf("building the gateway: %v", err)
	}
	downPort, releaseDownPort := reservePort(t)
	releaseDownPort() // a closed port: connections are refused
	st.downIssuer = fmt.Sprintf("http://127.0.0.1:%d", downPort)
	// One gateway per proxy, each with the proxy's address as its public_url.
	startGateway := func(f *front) string {
		gwDir := t.TempDir()
		cfgPath := filepath.Join(gwDir, "extauthz.yaml")
		writeFile(t, cfgPath, gatewayConfig(f.url, st.as.Issuer, f.otherResource, webClient.ID, st.downIssuer))
		gateway := startProc(t, "extauthz for "+f.name, exec.Command(gatewayBin, "serve", "--config", cfgPath), gwDir,
			"EXTAUTHZ_E2E_SESSION_KEY="+randomHex(t, 32), "EXTAUTHZ_E2E_WEB_SECRET="+webClient.Secret, minterEnv(),
			"EXTAUTHZ_E2E_DPOP_NONCE_KEY="+randomHex(t, 32))
		gateway.alsoShow(cfgPath)
		var gatewayHTTP string
		gateway.waitLine(t, "{", func(line string) bool {
			var l struct{ Msg, HTTP string }
			if json.Unmarshal([]byte("{"+line), &l) != nil || l.Msg != "serving" {
				return false
			}
			gatewayHTTP = l.HTTP
			return true
		})
		gateway.waitUntil(t, "readiness (the issuer's keys loaded; only the unreachable one missing)", func() bool {
			return st.readyExcept("http://"+gatewayHTTP+"/readyz", st.downIssuer)
		})
		return gatewayHTTP
	}
	gatewayHTTP := startGateway(st.ng)
	caddyGateway := startGateway(st.caddy)

	// nginx runs deploy/nginx/nginx.conf, only its addresses changed.
	st.nginx = startNginx(t, nginx, st.root, nginxPort, gatewayHTTP, st.rec.addr, st.recV2.addr, releaseNginxPort)
	st.nginx.waitUntil(t, "the protected resource metadata through nginx", func() bool {
		return st.status(st.nginxURL+"/.well-known/oauth-protected-resource/mcp") == http.StatusOK
	})
	st.nginxBin, st.gatewayHTTP = nginx, gatewayHTTP
	// Caddy runs deploy/caddy/Caddyfile, only its addresses changed.
	st.caddyBin = caddyBin
	st.caddyProc = startCaddy(t, caddyBin, st.root, caddyPort, caddyGateway, st.rec.addr, st.recV2.addr, releaseCaddyPort)
	st.caddyProc.waitUntil(t, "the protected resource metadata through Caddy", func() bool {
		return st.status(st.caddy.url+"/.well-known/oauth-protected-resource/mcp") == http.StatusOK
	})
	st.startGRPCPath(t, gatewayBin, frontLn)
	t.Logf("stack up in %v: nginx %s (gateway %s), Caddy %s (gateway %s), authorization server %s, recorders %s and %s, server-everything 127.0.0.1:%d, server-v2 127.0.0.1:%d",
		time.Since(began).Round(time.Millisecond), st.nginxURL, gatewayHTTP, st.caddy.url, caddyGateway, st.as.Issuer, st.rec.addr, st.recV2.addr, everythingPort, v2Port)
	return st
}

// gatewayConfig is the gateway behind nginx: the resources nginx's locations
// name (admin, v2 and v2-any-era with the step-up rule), one more on the same
// path of another host (so that only the route, never the Host header, may
// choose between them), unprotected paths let through (nginx's catch-all
// location asks by host and path), and the browser login enabled on mcp so
// that its session cookie exists to strip; one whose issuer cannot be
// reached (its keys never load), reached through the catch-all location;
// and "minted" and "minted-cc" (upstream_test.go), also reached through the
// catch-all, whose upstream gets a token the gateway mints; and "dpop" and
// "dpop-nonce" (dpop_test.go), through the catch-all too, which accept
// DPoP-bound tokens, the second only with proofs carrying its nonce (a new
// one every 2 s).
// mcp's CORS preflights are answered by the gateway (nginx sends them to
// /authz/nginx-preflight); admin's are forwarded to the MCP server
// (preflight: forward).
func gatewayConfig(nginxURL, issuer, otherResource, webClientID, downIssuer string) string {
	return fmt.Sprintf(`listen: {grpc: "127.0.0.1:0", http: "127.0.0.1:0", admin: "off"}
public_url: %[1]q
unmatched: allow
log: {level: debug}
login: {session_key: {env: EXTAUTHZ_E2E_SESSION_KEY}}
dpop: {nonce_key: {env: EXTAUTHZ_E2E_DPOP_NONCE_KEY}, nonce_lifetime: 2s}
resources:
  - name: mcp
    resource: "%[1]s/mcp"
    required_scopes: ["mcp:tools"]
    authorization_servers: [{issuer: %[2]q}]
    public: [{path: /mcp/health, methods: [GET, HEAD]}]
    login:
      enabled: true
      client_id: %[5]q
      client_secret: {env: EXTAUTHZ_E2E_WEB_SECRET}
      scopes: [openid, "mcp:tools"]
  - name: admin
    resource: "%[1]s/admin/mcp"
    required_scopes: ["mcp:tools"]
    preflight: forward
    rules:
      - {method: tools/call, name: %[3]q, scopes: ["mcp:admin"]}
    authorization_servers: [{issuer: %[2]q}]
  - name: v2
    resource: "%[1]s/v2/mcp"
    required_scopes: ["mcp:tools"]
    rules:
      - {method: tools/call, name: %[3]q, scopes: ["mcp:admin"]}
    authorization_servers: [{issuer: %[2]q}]
  - name: v2-any-era
    resource: "%[1]s/v2/any-era/mcp"
    required_scopes: ["mcp:tools"]
    rules:
      - {method: tools/call, name: %[3]q, scopes: ["mcp:admin"]}
    authorization_servers: [{issuer: %[2]q}]
  - name: other
    resource: %[4]q
    required_scopes: ["mcp:tools"]
    authorization_servers: [{issuer: %[2]q}]
  - name: unavailable
    resource: "%[1]s/unavailable/mcp"
    required_scopes: ["mcp:tools"]
    authorization_servers: [{issuer: %[6]q, jwks_uri: "%[6]s/jwks"}]
`, nginxURL, issuer, adminTool, otherResource, webClientID, downIssuer) + mintedResourceConfig(nginxURL, issuer) + dpopResourceConfig(nginxURL, issuer)
}
