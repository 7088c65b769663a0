package e2e

// The gRPC Check path. No Envoy binary runs here, so a stand-in
// (internal/envoyfront) does what envoy/envoy.yaml asks Envoy to do: it
// sends each request's CheckRequest, body included (with_request_body), to a
// second gateway over gRPC, applies the answer, and proxies allowed requests:
//
//	SDK 1.x / 2.x client ──▶ envoyfront ──gRPC Check──▶ extauthz serve (no public_url)
//	                           ├─ /mcp ──────────────▶ recorder ──▶ server-everything
//	                           ├─ /v2/mcp ───────────▶ recorder ──▶ server-v2.mjs /mcp
//	                           ├─ /v2/any-era/mcp ───▶ recorder ──▶ server-v2.mjs /any-era/mcp
//	                           ├─ /minted/mcp, ──────▶ recorder ──▶ server-everything /mcp
//	                           │  /minted-cc/mcp
//	                           │   (Authorization: a token the gateway minted, upstream_test.go)
//	                           └─ /.well-known/oauth-protected-resource…: answered by the Check
//
// The front's gateway is a deployment of its own, like nginx's and Caddy's:
// its resources are the front's URLs, and RFC 9728 metadata URLs come from
// the resources' own origin (no public_url). The scenarios are the nginx
// ones (e2e_test.go) run through the front, plus what only a gateway that
// sees the body can do: refuse a client whose Mcp-Name lies, and step up a
// 2025 client (no Mcp-* headers) on a ruled tool.

import (
	"encoding/json"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/extauthz/extauthz/internal/envoyfront"
	"github.com/extauthz/extauthz/internal/testkit"
)

// envoyMutable is decoder_header_mutation_rules.allow_expression of
// envoy/envoy.yaml: the front fails a request (500) whose answer changes any
// other header, as Envoy would.
var envoyMutable = regexp.MustCompile(`x[-_]extauthz[-_](subject|client[-_]id|scopes)|authorization|cookie`)

func TestGRPCPath(t *testing.T) {
	st := startStack(t)
	f := st.grpc

	t.Run("DiscoveryRegistrationPKCEAndToolsV1Client", func(t *testing.T) { testToolsFlow(t, st, f) })
	t.Run("UpstreamGetsIdentityHeadersNeverTheToken", func(t *testing.T) { testUpstreamHeaders(t, st, f) })
	t.Run("StepUpV2ClientOnV2Server", func(t *testing.T) { testStepUp(t, st, f) })
	t.Run("StepUpV1ClientOnV2Server", func(t *testing.T) { testStepUpV1(t, st, f) })
	t.Run("LyingMcpNameRefusedByTheGateway", func(t *testing.T) { testLyingName(t, st, f) })
	// /minted/mcp goes to server-everything's /mcp, which answers the initialize; the
	// front refuses header names with "_", as Envoy does with envoy/envoy.yaml.
	t.Run("UpstreamGetsTheMintedToken", func(t *testing.T) { testMintedUpstreamToken(t, st, f, "/mcp", true) })
	t.Run("UpstreamGetsTheGatewaysToken", func(t *testing.T) { testMintedClientCredentials(t, st, f, "/mcp") })
	t.Run("TokenEndpointDown", func(t *testing.T) { testMintUnavailable(t, st, f) })
}

// testStepUpV1: SDK 1.x speaks MCP 2025-11-25 and sends no Mcp-* headers. Behind nginx a
// resource with rules refuses it (testLegacyHeadersRefused); here the gateway reads the
// tool from the body, so the rule applies: 403 insufficient_scope, re-authorization, and
// the call succeeds on the v2 server's any-era endpoint.
func testStepUpV1(t *testing.T, st *stack, f *front) {
	mcpURL := f.resourceURL("/v2/any-era/mcp")
	runsBefore := len(st.v2ToolRuns(t))
	run := st.runClient(t, map[string]any{"url": mcpURL, "scenario": "stepup", "login": "erin", "adminTool": adminTool})
	isCall := func(e event, status int) bool {
		return e.is("http") && e.s("url") == mcpURL && e.jsonrpcMethod() == "tools/call" && e.jsonrpcName() == adminTool &&
			e.status() == status && e.s("mcp_method") == "" && e.s("mcp_name") == ""
	}
	steps := run.inOrder(t,
		step{"the unauthenticated initialize gets 401", func(e event) bool {
			return e.is("http") && e.s("url") == mcpURL && e.jsonrpcMethod() == "initialize" && e.status() == 401
		}},
		step{"first authorization", func(e event) bool { return e.is("tokens_saved") }},
		step{"echo allowed with mcp:tools", func(e event) bool { return e.is("tool_result") && e.s("tool") == "echo" }},
		step{adminTool + " without Mcp-* headers refused with 403", func(e event) bool { return isCall(e, 403) }},
		step{"new tokens saved", func(e event) bool { return e.is("tokens_saved") }},
		step{adminTool + " retried and allowed", func(e event) bool { return isCall(e, 200) }},
		step{adminTool + " result", func(e event) bool { return e.is("tool_result") && e.s("tool") == adminTool }},
	)
	if www := steps[3].s("www_authenticate"); !strings.Contains(www, `error="insufficient_scope"`) ||
		!slices.Contains(scopeParam(www), "mcp:admin") || !slices.Contains(scopeParam(www), "mcp:tools") {
		t.Errorf("403 WWW-Authenticate = %q, want insufficient_scope with mcp:tools and mcp:admin", www)
	}
	if got := steps[6].s("text"); got != "The sum of 2 and 3 is 5." {
		t.Errorf("%s result = %q", adminTool, got)
	}
	var ran []string
	st.v2.waitUntil(t, "the last echo's run", func() bool { return len(st.v2ToolRuns(t)) >= runsBefore+3 })
	for _, r := range st.v2ToolRuns(t)[runsBefore:] {
		ran = append(ran, r.Endpoint+" "+r.Tool)
	}
	if want := []string{"/any-era/mcp echo", "/any-era/mcp " + adminTool, "/any-era/mcp echo"}; !slices.Equal(ran, want) {
		t.Errorf("the MCP server ran %q, want %q", ran, want)
	}
}

// testLyingName: an SDK 2.x client whose Mcp-Name header names echo while the body calls
// the guarded tool, with a token that lacks mcp:admin. The gateway sees the body: 400
// before the MCP server, which never runs the tool.
func testLyingName(t *testing.T, st *stack, f *front) {
	mcpURL := f.resourceURL("/v2/mcp")
	mark, runsBefore := st.recV2.len(), len(st.v2ToolRuns(t))
	run := st.runClientV2(t, map[string]any{"url": mcpURL, "scenario": "lie", "login": "frank", "adminTool": adminTool})
	run.one(t, "refused")
	lies := run.filter(func(e event) bool {
		return e.is("http") && e.s("url") == mcpURL && e.jsonrpcMethod() == "tools/call" && e.jsonrpcName() == adminTool
	})
	if len(lies) == 0 {
		t.Fatalf("the client sent no tools/call of %s", adminTool)
	}
	for _, e := range lies {
		if e.s("mcp_name") != "echo" || e.status() != http.StatusBadRequest {
			t.Errorf("tools/call %s with Mcp-Name %q: %d, want Mcp-Name echo refused with 400", adminTool, e.s("mcp_name"), e.status())
		}
	}
	for _, r := range st.recV2.since(mark) {
		if r.RPCName == adminTool {
			t.Errorf("the lying call reached the MCP server: %v", r)
		}
	}
	st.v2.waitUntil(t, "the echo's run", func() bool { return len(st.v2ToolRuns(t)) >= runsBefore+1 })
	for _, r := range st.v2ToolRuns(t)[runsBefore:] {
		if r.Tool != "echo" {
			t.Errorf("the MCP server ran %+v", r)
		}
	}
}

// ---------------------------------------------------------------------------
// The second gateway and the front
// ---------------------------------------------------------------------------

// listenFront holds the front's port from the start: the resources and the
// authorization server need its URL before the front can serve.
func listenFront(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	return ln
}

// newFront describes the front that will serve on ln.
func newFront(name string, ln net.Listener) *front {
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	f := &front{name: name, url: "http://127.0.0.1:" + port, port: port, otherHost: "localhost:" + port}
	f.otherResource = "http://" + f.otherHost + "/mcp"
	return f
}

// startGateway runs `extauthz serve` with the configuration at cfgPath and
// returns its gRPC and HTTP addresses once it is ready.
func (st *stack) startGateway(t *testing.T, name, bin, cfgPath string, env ...string) (grpcAddr, httpAddr string) {
	t.Helper()
	gateway := startProc(t, name, exec.Command(bin, "serve", "--config", cfgPath), filepath.Dir(cfgPath), env...)
	gateway.alsoShow(cfgPath)
	gateway.waitLine(t, "{", func(line string) bool {
		var l struct{ Msg, GRPC, HTTP string }
		if json.Unmarshal([]byte("{"+line), &l) != nil || l.Msg != "serving" {
			return false
		}
		grpcAddr, httpAddr = l.GRPC, l.HTTP
		return true
	})
	gateway.waitUntil(t, "readiness (the issuer's keys loaded)", func() bool {
		return st.status("http://"+httpAddr+"/readyz") == http.StatusOK
	})
	return grpcAddr, httpAddr
}

// startGRPCPath starts the second gateway and the front on frontLn.
func (st *stack) startGRPCPath(t *testing.T, gatewayBin string, frontLn net.Listener) {
	t.Helper()
	cfgPath := filepath.Join(t.TempDir(), "extauthz-grpc.yaml")
	writeFile(t, cfgPath, grpcGatewayConfig(st.grpc.url, st.as.Issuer))
	grpcAddr, _ := st.startGateway(t, "extauthz-grpc", gatewayBin, cfgPath, minterEnv())

	everything := &url.URL{Scheme: "http", Host: st.rec.addr}
	v2 := &url.URL{Scheme: "http", Host: st.recV2.addr}
	var errLog testkit.LockedBuffer
	front, err := envoyfront.Serve(frontLn, envoyfront.Options{
		Check: grpcAddr,
		Routes: []envoyfront.Route{
			{Prefix: "/mcp", Resource: "mcp", Upstream: everything},
			{Prefix: "/v2/mcp", Resource: "v2", Upstream: v2, PrefixRewrite: "/mcp"},
			{Prefix: "/v2/any-era/mcp", Resource: "v2-any-era", Upstream: v2, PrefixRewrite: "/any-era/mcp"},
			{Prefix: mintedPath, Resource: "minted", Upstream: everything, PrefixRewrite: "/mcp"},
			{Prefix: mintedCCPath, Resource: "minted-cc", Upstream: everything, PrefixRewrite: "/mcp"},
			{Prefix: "/.well-known/oauth-protected-resource"}, // answered by the Check
		},
		Mutable:  envoyMutable,
		ErrorLog: log.New(&errLog, "", log.Lmicroseconds),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = front.Close()
		if t.Failed() {
			t.Logf("==== envoyfront %s errors:\n%s", front.URL, errLog.String())
		}
	})
	if got := st.status(st.grpc.url + "/.well-known/oauth-protected-resource/mcp"); got != http.StatusOK {
		t.Fatalf("the protected resource metadata through the front: %d, want 200", got)
	}
}

// grpcGatewayConfig is the gateway behind the front: no public_url (the
// metadata URL is the resource's own origin), each MCP route names its
// resource (context_extensions), and a POST whose body the front did not send
// is refused (mcp.require_body), as docs/operating.md advises for Envoy with
// with_request_body.
func grpcGatewayConfig(frontURL, issuer string) string {
	return fmt.Sprintf(`listen: {grpc: "127.0.0.1:0", http: "127.0.0.1:0", admin: "off"}
log: {level: debug}
mcp: {require_body: true}
resources:
  - name: mcp
    resource: "%[1]s/mcp"
    required_scopes: ["mcp:tools"]
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
`, frontURL, issuer, adminTool) + mintedResourceConfig(frontURL, issuer)
}
