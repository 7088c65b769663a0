package e2e

// The end-to-end suite. One stack is started for all scenarios, every part on 127.0.0.1:
//
//	SDK client (client.mjs) ──▶ nginx ──auth_request──▶ extauthz serve (/authz/nginx)
//	                              │
//	                              └──▶ recorder (this test) ──▶ server-everything (streamableHttp)
//	oidc-provider (internal/oidctest) ◀── the SDK's discovery, registration, authorization
//	                                      and token requests; the gateway's JWKS fetches
//
// The recorder is a streaming reverse proxy that keeps the headers of every request the MCP
// server receives. The Node client prints one JSON line per HTTP request it makes and per
// step of its scenario; the assertions read those lines and the recorder.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
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

	t.Run("DiscoveryRegistrationPKCEAndToolsThroughNginx", func(t *testing.T) { testToolsFlow(t, st) })
	t.Run("UpstreamGetsIdentityHeadersNeverTheToken", func(t *testing.T) { testUpstreamHeaders(t, st) })
	t.Run("StepUpOnInsufficientScope", func(t *testing.T) { testStepUp(t, st) })
	t.Run("TokenForAnotherResourceIsRefused", func(t *testing.T) { testForeignToken(t, st) })
	t.Run("HostHeaderDoesNotChooseTheResource", func(t *testing.T) { testHostDoesNotChoose(t, st) })
	t.Run("PathAndHostVariantsNeverReachTheServer", func(t *testing.T) { testPathVariants(t, st) })
	t.Run("SessionCookieNeverReachesTheServer", func(t *testing.T) { testSessionCookieStripped(t, st) })
	t.Run("PreflightWithABodyNeedsAToken", func(t *testing.T) { testPreflightWithBody(t, st) })
}

// ---------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------

// testToolsFlow: the first request gets 401 with resource_metadata; the SDK fetches the
// metadata at the path-suffixed URL, then the authorization server's metadata, registers,
// authorizes with PKCE and resource, exchanges the code, and then initialize, tools/list and
// tools/call succeed through nginx, with progress notifications streamed as they are sent.
func testToolsFlow(t *testing.T, st *stack) {
	mcpURL := st.resourceURL("/mcp")
	run := st.runClient(t, map[string]any{"url": mcpURL, "scenario": "tools", "login": "alice"})

	md := st.authServerMetadata(t)
	prm := st.nginxURL + "/.well-known/oauth-protected-resource/mcp"
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
		return e.is("http") && e.s("url") == st.nginxURL+"/.well-known/oauth-protected-resource"
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
func testUpstreamHeaders(t *testing.T, st *stack) {
	mcpURL := st.resourceURL("/mcp")
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

// testStepUp: a rule demands mcp:admin for one tool; the call gets 403 insufficient_scope
// naming every scope it needs, the SDK re-authorizes with those scopes (no new
// registration), and the call succeeds.
func testStepUp(t *testing.T, st *stack) {
	mcpURL := st.resourceURL("/admin/mcp")
	mark := st.rec.len()
	run := st.runClient(t, map[string]any{"url": mcpURL, "scenario": "stepup", "login": "carol", "adminTool": adminTool, "mcpHeaders": true})
	md := st.authServerMetadata(t)

	isCall := func(e event, status int) bool {
		return e.is("http") && e.s("actor") == "sdk" && e.s("url") == mcpURL && e.jsonrpcMethod() == "tools/call" &&
			e.jsonrpcName() == adminTool && e.status() == status
	}
	steps := run.inOrder(t,
		step{"first authorization", func(e event) bool { return e.is("tokens_saved") }},
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

	www := steps[2].s("www_authenticate")
	prm := st.nginxURL + "/.well-known/oauth-protected-resource/admin/mcp"
	if strings.Count(strings.ToLower(www), "bearer") != 1 || !strings.Contains(www, `error="insufficient_scope"`) ||
		!strings.Contains(www, `resource_metadata="`+prm+`"`) {
		t.Errorf("403 WWW-Authenticate = %q, want one Bearer challenge with insufficient_scope and resource_metadata %s", www, prm)
	}
	challenged := scopeParam(www)
	if !slices.Contains(challenged, "mcp:admin") || !slices.Contains(challenged, "mcp:tools") {
		t.Errorf("403 challenge scope = %v, want mcp:admin and mcp:tools", challenged)
	}
	if got := strings.Fields(str(steps[3].m("query")["scope"])); !sameSet(got, challenged) {
		t.Errorf("re-authorization scope = %v, want the challenged %v", got, challenged)
	}
	if n := len(run.all("client_registered")); n != 1 {
		t.Errorf("client registered %d times, want once (the same client steps up)", n)
	}
	if got := strings.Fields(str(steps[8].m("claims")["scope"])); !slices.Contains(got, "mcp:admin") || !slices.Contains(got, "mcp:tools") {
		t.Errorf("stepped-up token scope = %v, want mcp:admin and mcp:tools", got)
	}
	if got := steps[10].s("text"); got != "The sum of 2 and 3 is 5." {
		t.Errorf("%s result = %q", adminTool, got)
	}
	if r := run.toolResult(t, "echo"); r.s("text") != "Echo: before step-up" {
		t.Errorf("echo result = %v", r)
	}

	// The MCP server saw the guarded tool called once, with the admin scope; and the
	// operation headers the gateway decided on agree with the bodies the server acted on.
	calls := 0
	for _, r := range st.rec.since(mark) {
		if r.RPCMethod == "tools/call" && r.RPCName == adminTool {
			calls++
			if !slices.Contains(strings.Fields(r.Header.Get("X-Extauthz-Scopes")), "mcp:admin") {
				t.Errorf("%s reached the MCP server with scopes %q", adminTool, r.Header.Get("X-Extauthz-Scopes"))
			}
		}
		if r.Method == http.MethodPost && r.RPCMethod != "" && (r.Header.Get("Mcp-Method") != r.RPCMethod || r.Header.Get("Mcp-Name") != r.RPCName) {
			t.Errorf("Mcp-Method/Mcp-Name %q/%q disagree with the body's %q/%q", r.Header.Get("Mcp-Method"), r.Header.Get("Mcp-Name"), r.RPCMethod, r.RPCName)
		}
	}
	if calls != 1 {
		t.Errorf("the MCP server received %s %d times, want once (after the step-up)", adminTool, calls)
	}

	// nginx cannot show the body to the gateway: a POST without Mcp-Method to a resource with
	// rules cannot be decided and is refused (the gateway's 400 becomes nginx's 500).
	tok, err := st.as.ClientCredentials(context.Background(), serviceClient, mcpURL, "mcp:tools mcp:admin")
	if err != nil {
		t.Fatal(err)
	}
	mark = st.rec.len()
	if resp := st.post(t, mcpURL, tok, initializeBody, nil); resp.StatusCode != http.StatusInternalServerError {
		t.Errorf("POST without Mcp-Method to a resource with rules: %d %s, want 500 (nginx's answer to the gateway's 400)", resp.StatusCode, resp.Body)
	}
	if got := st.rec.since(mark); len(got) != 0 {
		t.Errorf("the refused request reached the MCP server: %v", got)
	}
}

// testForeignToken: tokens whose audience is another resource are refused with 401
// invalid_token; a token for this resource from the same client passes.
func testForeignToken(t *testing.T, st *stack) {
	ctx := context.Background()
	mcpURL := st.resourceURL("/mcp")
	mark := st.rec.len()
	for _, other := range []string{st.resourceURL("/other"), st.resourceURL("/admin/mcp")} {
		tok, err := st.as.ClientCredentials(ctx, serviceClient, other, "mcp:tools")
		if err != nil {
			t.Fatal(err)
		}
		resp := st.post(t, mcpURL, tok, initializeBody, nil)
		www := resp.Header.Get("WWW-Authenticate")
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(www, `error="invalid_token"`) ||
			!strings.Contains(www, `resource_metadata="`+st.nginxURL+`/.well-known/oauth-protected-resource/mcp"`) {
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
func testHostDoesNotChoose(t *testing.T, st *stack) {
	tok, err := st.as.ClientCredentials(context.Background(), serviceClient, st.otherResource, "mcp:tools")
	if err != nil {
		t.Fatal(err)
	}
	mark := st.rec.len()
	for _, host := range []string{st.otherHost, strings.ToUpper(st.otherHost), "localhost.:" + st.nginxPort} {
		resp := st.send(t, http.MethodPost, st.resourceURL("/mcp"), host, map[string]string{"Authorization": "Bearer " + tok}, toolsCallBody("echo"))
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="invalid_token"`) {
			t.Errorf("Host %s, a token for %s on nginx's /mcp: %d %q; want 401 invalid_token (decided as resource mcp)", host, st.otherResource, resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
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
func testPathVariants(t *testing.T, st *stack) {
	mark := st.rec.len()
	host := "127.0.0.1:" + st.nginxPort
	for _, v := range []struct{ host, path string }{
		{host, "/MCP"},
		{host, "/Mcp"},
		{host, "/%6Dcp"},
		{host, "/x/..%2Fmcp"},
		{host, "/mcp%2F"},
		{host, "/mcp;x"},
		{host, "/x/%2E%2E/mcp"},
		{"localhost.:" + st.nginxPort, "/MCP"},
		{"LOCALHOST:" + st.nginxPort, "/mcp"},
	} {
		resp := st.send(t, http.MethodPost, st.nginxURL+v.path, v.host, nil, toolsCallBody("echo"))
		if resp.StatusCode < 400 {
			t.Errorf("Host %s POST %s without a token: %d %s", v.host, v.path, resp.StatusCode, resp.Body)
		}
	}
	if got := st.rec.since(mark); len(got) != 0 {
		t.Errorf("path variants without a token reached the MCP server: %v", got)
	}
	// Control: the catch-all passes what is not protected.
	if resp := st.send(t, http.MethodGet, st.nginxURL+"/public", host, nil, ""); resp.StatusCode >= 500 || len(st.rec.since(mark)) != 1 {
		t.Errorf("control: GET /public through the catch-all: %d, %d requests at the server; want it passed on", resp.StatusCode, len(st.rec.since(mark)))
	}
}

// testSessionCookieStripped: a browser session cookie is sent to every path
// of the host (Path=/); it works as the user, so no upstream may see it —
// not on a Bearer request, not on an unprotected path, not on a preflight.
func testSessionCookieStripped(t *testing.T, st *stack) {
	tok, err := st.as.ClientCredentials(context.Background(), serviceClient, st.resourceURL("/mcp"), "mcp:tools")
	if err != nil {
		t.Fatal(err)
	}
	sid := strings.Repeat("S", 43)
	cookie := "theme=dark; " + sessionCookie + "=" + sid + "; " + sessionCookie + "-state-0123456789abcdef=x; lang=en"
	host := "127.0.0.1:" + st.nginxPort
	for _, c := range []struct {
		what, method, url string
		headers           map[string]string
		body, want        string
	}{
		{"Bearer request", http.MethodPost, st.resourceURL("/mcp"), map[string]string{"Authorization": "Bearer " + tok, "Cookie": cookie}, initializeBody, "theme=dark; lang=en"},
		{"Bearer request, session only", http.MethodPost, st.resourceURL("/mcp"), map[string]string{"Authorization": "Bearer " + tok, "Cookie": sessionCookie + "=" + sid}, initializeBody, ""},
		{"unprotected path", http.MethodGet, st.nginxURL + "/public", map[string]string{"Cookie": cookie}, "", "theme=dark; lang=en"},
		{"forwarded preflight", http.MethodOptions, st.resourceURL("/mcp"), map[string]string{"Cookie": cookie, "Origin": st.nginxURL, "Access-Control-Request-Method": "POST"}, "", "theme=dark; lang=en"},
		{"no session", http.MethodGet, st.nginxURL + "/public", map[string]string{"Cookie": "theme=dark"}, "", "theme=dark"},
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
	// otherResource is a resource on the same path as /mcp, told apart
	// only by its host (otherHost, localhost:PORT).
	otherResource, otherHost string
	as           *oidctest.Server
	rec          *recorder
	http         *http.Client

	mdOnce sync.Once
	md     oidctest.Metadata
	mdErr  error
}

func (st *stack) resourceURL(path string) string { return st.nginxURL + path }

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

	webClient := oidctest.Client{
		ID: "extauthz-web", Secret: "web-secret-" + randomHex(t, 16), AuthMethod: "client_secret_basic",
		GrantTypes: []string{"authorization_code", "refresh_token"}, RedirectURIs: []string{st.nginxURL + "/oauth/callback"},
	}
	st.as = oidctest.Start(t, oidctest.Options{
		Clients: []oidctest.Client{serviceClient, webClient},
		Resources: []oidctest.Resource{
			{Resource: st.resourceURL("/mcp"), Scope: "mcp:tools"},
			{Resource: st.resourceURL("/admin/mcp"), Scope: "mcp:tools mcp:admin"},
			{Resource: st.resourceURL("/other"), Scope: "mcp:tools"},
			{Resource: st.otherResource, Scope: "mcp:tools"},
		},
		RegistrationIgnoresScope: true,
	})

	err = <-built
	buildWaited = true
	if err != nil {
		t.Fatalf("building the gateway: %v", err)
	}
	gwDir := t.TempDir()
	cfgPath := filepath.Join(gwDir, "extauthz.yaml")
	writeFile(t, cfgPath, gatewayConfig(st.nginxURL, st.as.Issuer, st.otherResource, webClient.ID))
	gateway := startProc(t, "extauthz", exec.Command(gatewayBin, "serve", "--config", cfgPath), gwDir,
		"EXTAUTHZ_E2E_SESSION_KEY="+randomHex(t, 32), "EXTAUTHZ_E2E_WEB_SECRET="+webClient.Secret)
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
	gateway.waitUntil(t, "readiness (the issuer's keys loaded)", func() bool {
		return st.status("http://"+gatewayHTTP+"/readyz") == http.StatusOK
	})

	ngDir := t.TempDir()
	for _, d := range []string{"logs", "tmp"} {
		if err := os.MkdirAll(filepath.Join(ngDir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, filepath.Join(ngDir, "nginx.conf"), nginxConfig(ngDir, nginxPort, gatewayHTTP, st.rec.addr))
	writeFile(t, filepath.Join(ngDir, "mcp_auth.conf"), mcpAuthConf)
	writeFile(t, filepath.Join(ngDir, "extauthz_subrequest.conf"), extauthzSubrequestConf)
	releaseNginxPort()
	ng := startProc(t, "nginx", exec.Command(nginx, "-p", ngDir, "-c", filepath.Join(ngDir, "nginx.conf"), "-e", "stderr", "-g", "daemon off;"), ngDir)
	ng.alsoShow(filepath.Join(ngDir, "nginx.conf"))
	ng.alsoShow(filepath.Join(ngDir, "mcp_auth.conf"))
	ng.alsoShow(filepath.Join(ngDir, "extauthz_subrequest.conf"))
	ng.alsoShow(filepath.Join(ngDir, "logs", "access.log"))
	ng.waitUntil(t, "the protected resource metadata through nginx", func() bool {
		return st.status(st.nginxURL+"/.well-known/oauth-protected-resource/mcp") == http.StatusOK
	})
	t.Logf("stack up in %v: nginx %s, gateway %s, authorization server %s, recorder %s, server-everything 127.0.0.1:%d",
		time.Since(began).Round(time.Millisecond), st.nginxURL, gatewayHTTP, st.as.Issuer, st.rec.addr, everythingPort)
	return st
}

// gatewayConfig is the gateway behind nginx: the resources nginx's locations
// name, one more on the same path of another host (so that only the route,
// never the Host header, may choose between them), unprotected paths let
// through (nginx's catch-all location asks by host and path), and the
// browser login enabled on mcp so that its session cookie exists to strip.
func gatewayConfig(nginxURL, issuer, otherResource, webClientID string) string {
	return fmt.Sprintf(`listen: {grpc: "127.0.0.1:0", http: "127.0.0.1:0", admin: "off"}
public_url: %[1]q
unmatched: allow
log: {level: debug}
login: {session_key: {env: EXTAUTHZ_E2E_SESSION_KEY}}
resources:
  - name: mcp
    resource: "%[1]s/mcp"
    required_scopes: ["mcp:tools"]
    authorization_servers: [{issuer: %[2]q}]
    preflight: forward
    login:
      enabled: true
      client_id: %[5]q
      client_secret: {env: EXTAUTHZ_E2E_WEB_SECRET}
      scopes: [openid, "mcp:tools"]
  - name: admin
    resource: "%[1]s/admin/mcp"
    required_scopes: ["mcp:tools"]
    rules:
      - {method: tools/call, name: %[3]q, scopes: ["mcp:admin"]}
    authorization_servers: [{issuer: %[2]q}]
  - name: other
    resource: %[4]q
    required_scopes: ["mcp:tools"]
    authorization_servers: [{issuer: %[2]q}]
`, nginxURL, issuer, adminTool, otherResource, webClientID)
}

// nginxConfig is nginx in front of the MCP server with auth_request to the gateway: the
// configuration of the README's "HTTP authorization mode" section, plus what running a
// private instance needs (paths inside dir, one process, loopback only).
func nginxConfig(dir string, port int, gatewayHTTP, upstream string) string {
	return fmt.Sprintf(`# extauthz end-to-end test: a private nginx, everything under %[1]s.
master_process off;          # one process: nothing outlives it when it is killed
pid %[1]s/nginx.pid;
error_log stderr info;
events { worker_connections 256; }

http {
    log_format e2e '$remote_addr "$request" $status $body_bytes_sent upstream=$upstream_status '
                   'subject="$extauthz_sub" scopes="$extauthz_scopes" $request_time s';
    access_log %[1]s/logs/access.log e2e;
    client_body_temp_path %[1]s/tmp/client_body;
    proxy_temp_path       %[1]s/tmp/proxy;
    fastcgi_temp_path     %[1]s/tmp/fastcgi;
    uwsgi_temp_path       %[1]s/tmp/uwsgi;
    scgi_temp_path        %[1]s/tmp/scgi;

    upstream extauthz_http { server %[3]s; keepalive 8; }
    upstream mcp_server    { server %[4]s; keepalive 8; }

    server {
        listen 127.0.0.1:%[2]d;

        # Each protected location names its resource in the subrequest's
        # path: the Host header a client writes never chooses it.
        location /mcp {
            auth_request /_extauthz/mcp;        # the resource this location serves: resources[].name
            include mcp_auth.conf;
            proxy_pass http://mcp_server;
        }
        # A second resource, whose rules need the Mcp-Method / Mcp-Name headers.
        location /admin/mcp {
            auth_request /_extauthz/admin;
            include mcp_auth.conf;
            proxy_pass http://mcp_server/mcp;
        }
        # Everything else: decided by host and path (the gateway lets
        # unprotected paths through, unmatched: allow).
        location / {
            auth_request /_extauthz_by_host;
            include mcp_auth.conf;
            proxy_pass http://mcp_server;
        }

        location /_extauthz/ {
            internal;
            proxy_pass http://extauthz_http/authz/nginx/;   # /_extauthz/mcp -> /authz/nginx/mcp
            include extauthz_subrequest.conf;
        }
        location = /_extauthz_by_host {
            internal;
            proxy_pass http://extauthz_http/authz/nginx;
            include extauthz_subrequest.conf;
        }
        location @extauthz_forbidden {
            add_header WWW-Authenticate $extauthz_www always;
            return 403 '{"error":"insufficient_scope"}';
        }
        location /.well-known/oauth-protected-resource {
            proxy_pass http://extauthz_http;
            proxy_set_header Host $http_host;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
`, dir, port, gatewayHTTP, upstream)
}

// mcpAuthConf is included by every protected location (mcp_auth.conf, next to nginx.conf).
const mcpAuthConf = `auth_request_set $extauthz_sub    $upstream_http_x_extauthz_subject;
auth_request_set $extauthz_client $upstream_http_x_extauthz_client_id;
auth_request_set $extauthz_scopes $upstream_http_x_extauthz_scopes;
auth_request_set $extauthz_cookie $upstream_http_cookie;
auth_request_set $extauthz_www    $upstream_http_www_authenticate;
error_page 403 = @extauthz_forbidden;       # nginx copies WWW-Authenticate on 401 only
proxy_set_header Authorization "";          # never pass the token to the MCP server
proxy_set_header Cookie $extauthz_cookie;   # the session cookie removed (no header when empty)
proxy_set_header X-Extauthz-Subject   $extauthz_sub;
proxy_set_header X-Extauthz-Client-Id $extauthz_client;
proxy_set_header X-Extauthz-Scopes    $extauthz_scopes;
proxy_http_version 1.1;
proxy_set_header Connection "";
proxy_buffering off;                        # streamable HTTP answers with SSE
proxy_read_timeout 1h;
`

// extauthzSubrequestConf describes the original request to the gateway
// (extauthz_subrequest.conf, next to nginx.conf).
const extauthzSubrequestConf = `proxy_pass_request_body off;
proxy_set_header Content-Length "";
proxy_set_header Host $http_host;
proxy_set_header X-Original-Method $request_method;
proxy_set_header X-Original-URI $request_uri;
proxy_set_header X-Original-Content-Length $http_content_length;        # whether the request has a body
proxy_set_header X-Original-Transfer-Encoding $http_transfer_encoding;
proxy_http_version 1.1;
proxy_set_header Connection "";
`
