package e2e

// The OAuth facade (issue #22) end to end, every part on 127.0.0.1:
//
//	SDK 1.x client (client.mjs) ──▶ nginx (deploy/nginx/nginx.conf) ──auth_request──▶ extauthz serve
//	SDK 2.x client (client-v2.mjs)    │  /.well-known/…, /oauth/… ──────────────────▶ (the facade:
//	                                  │                                               issuer /oauth)
//	                                  └─ /mcp ──▶ recorder ──▶ server-everything
//	oidc-provider (internal/oidctest), registration disabled, one static confidential
//	client: the gateway's. The SDK never talks to it; the browser signs in there.
//
// The SDK clients are the suite's, unmodified: they find the facade through the resource's
// metadata, register at the gateway (the provider would refuse them), authorize with PKCE,
// sign in at the provider, approve on the gateway's consent page, and call tools through
// nginx with the facade's token.

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"flag"
	"fmt"
	"image"
	"image/png"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/extauthz/extauthz/internal/oidctest"
	"github.com/extauthz/extauthz/internal/testkit"
)

// facadeGatewayClient is the gateway's client at the provider: the only client there.
const facadeGatewayClientID = "extauthz-gateway"

// facadeStack is the stack of TestFacadeE2E.
type facadeStack struct {
	*stack
	issuer   string // the facade's: nginxURL + /oauth
	resource string // nginxURL + /mcp
	gateway  *proc
	// docs serves the clients' Client ID Metadata Documents over https on 127.0.0.1 (the
	// gateway trusts its certificate, and its config lets 127.0.0.1/32 through the fetcher's
	// address policy); docFetches counts the documents it served.
	docs       *httptest.Server
	docFetches atomic.Int64
}

func TestFacadeE2E(t *testing.T) {
	fs := startFacadeStack(t)

	t.Run("SDKv1RegistersAtTheFacadeAndCallsToolsThroughNginx", func(t *testing.T) { testFacadeSDK(t, fs, "client.mjs", "/mcp", fs.rec, "") })
	t.Run("SDKv2RegistersAtTheFacadeAndCallsToolsThroughNginx", func(t *testing.T) { testFacadeSDK(t, fs, "client-v2.mjs", "/v2/mcp", fs.recV2, "") })
	t.Run("SDKv1WithAClientIDMetadataDocument", func(t *testing.T) {
		testFacadeSDK(t, fs, "client.mjs", "/mcp", fs.rec, fs.docs.URL+"/clients/v1.json")
	})
	t.Run("SDKv2WithAClientIDMetadataDocument", func(t *testing.T) {
		testFacadeSDK(t, fs, "client-v2.mjs", "/v2/mcp", fs.recV2, fs.docs.URL+"/clients/v2.json")
	})
	t.Run("WrongRedirectURIShowsAnErrorPage", func(t *testing.T) { testFacadeWrongRedirect(t, fs) })
	t.Run("CodeReplayAndRefreshReuseRefused", func(t *testing.T) { testFacadeReplays(t, fs) })
	t.Run("ConsentPageInChromium", func(t *testing.T) { testFacadeConsentInChromium(t, fs) })
}

// startFacadeStack starts the provider (registration disabled), the MCP server behind a
// recorder, the gateway with the facade on resource mcp, and nginx as shipped.
func startFacadeStack(t *testing.T) *facadeStack {
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
	gatewayBin := filepath.Join(t.TempDir(), "extauthz")
	built := make(chan error, 1)
	go func() { built <- buildGateway(context.Background(), st.root, gatewayBin) }()

	nginxPort, releaseNginxPort := reservePort(t)
	st.nginxURL = fmt.Sprintf("http://127.0.0.1:%d", nginxPort)
	st.nginxPort = strconv.Itoa(nginxPort)
	fs := &facadeStack{stack: st, issuer: st.nginxURL + "/oauth", resource: st.nginxURL + "/mcp"}

	everything := startProc(t, "server-everything", exec.Command(st.node, "--import", "./loopback.mjs",
		"node_modules/@modelcontextprotocol/server-everything/dist/index.js", "streamableHttp"), st.e2eDir, "PORT=0")
	var everythingPort int
	everything.waitLine(t, "E2E_LISTENING ", func(rest string) bool {
		var l struct {
			Address string
			Port    int
		}
		if json.Unmarshal([]byte(rest), &l) != nil || l.Port == 0 || l.Address != "127.0.0.1" {
			return false
		}
		everythingPort = l.Port
		return true
	})
	st.rec = startRecorder(t, fmt.Sprintf("127.0.0.1:%d", everythingPort))
	// The SDK 2.x client pins MCP 2026-07-28: it talks to server-v2.mjs, at /v2/mcp.
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

	gatewayClient := oidctest.Client{
		ID: facadeGatewayClientID, Secret: "gateway-secret-" + randomHex(t, 16), AuthMethod: "client_secret_basic",
		GrantTypes: []string{"authorization_code", "refresh_token"}, RedirectURIs: []string{st.nginxURL + "/oauth/callback"},
	}
	st.as = oidctest.Start(t, oidctest.Options{
		DisableRegistration: true,
		Clients:             []oidctest.Client{gatewayClient},
		Resources: []oidctest.Resource{
			{Resource: fs.resource, Scope: "mcp:tools"}, {Resource: st.nginxURL + "/v2/mcp", Scope: "mcp:tools"},
		},
	})
	if md := st.authServerMetadata(t); md.RegistrationEndpoint != "" {
		t.Fatalf("the provider offers registration at %s; the facade's test needs a provider without it", md.RegistrationEndpoint)
	}

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-built; err != nil {
		t.Fatalf("building the gateway: %v", err)
	}
	// The clients' metadata documents: each names its own URL as client_id and the redirect
	// URI flow.mjs's browser stops at.
	fs.docs = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || !strings.HasPrefix(r.URL.Path, "/clients/") {
			http.NotFound(w, r)
			return
		}
		fs.docFetches.Add(1)
		doc, _ := json.Marshal(map[string]any{
			"client_id": fs.docs.URL + r.URL.Path, "client_name": "e2e client " + strings.TrimPrefix(r.URL.Path, "/clients/"),
			"redirect_uris": []string{"http://127.0.0.1:9/e2e/callback"}, "grant_types": []string{"authorization_code", "refresh_token"},
			"response_types": []string{"code"}, "token_endpoint_auth_method": "none",
		})
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(doc)
	}))
	t.Cleanup(fs.docs.Close)
	gwDir := t.TempDir()
	caFile := filepath.Join(gwDir, "documents-ca.pem")
	writeFile(t, caFile, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: fs.docs.Certificate().Raw})))
	cfgPath := filepath.Join(gwDir, "extauthz.yaml")
	writeFile(t, cfgPath, facadeGatewayConfig(st.nginxURL, st.as.Issuer))
	fs.gateway = startProc(t, "extauthz (facade)", exec.Command(gatewayBin, "serve", "--config", cfgPath), gwDir,
		"EXTAUTHZ_E2E_SESSION_KEY="+randomHex(t, 32), "EXTAUTHZ_E2E_GATEWAY_SECRET="+gatewayClient.Secret,
		"EXTAUTHZ_E2E_FACADE_KEY="+string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"SSL_CERT_FILE="+caFile) // Go's system roots: the document server's certificate only
	fs.gateway.alsoShow(cfgPath)
	fs.gateway.waitLine(t, "{", func(line string) bool {
		var l struct{ Msg, HTTP string }
		if json.Unmarshal([]byte("{"+line), &l) != nil || l.Msg != "serving" {
			return false
		}
		st.gatewayHTTP = l.HTTP
		return true
	})
	fs.gateway.waitUntil(t, "readiness", func() bool { return st.status("http://"+st.gatewayHTTP+"/readyz") == http.StatusOK })

	st.nginx = startNginx(t, nginx, st.root, nginxPort, st.gatewayHTTP, st.rec.addr, st.recV2.addr, releaseNginxPort)
	st.nginx.waitUntil(t, "the facade's metadata through nginx", func() bool {
		return st.status(st.nginxURL+"/.well-known/oauth-authorization-server/oauth") == http.StatusOK
	})
	t.Logf("facade stack up in %v: nginx %s, gateway %s, provider %s", time.Since(began).Round(time.Millisecond), st.nginxURL, st.gatewayHTTP, st.as.Issuer)
	return fs
}

// facadeGatewayConfig: two resources, mcp (server-everything) and v2 (server-v2.mjs), each
// with the facade in front of the provider.
func facadeGatewayConfig(public, issuer string) string {
	return fmt.Sprintf(`listen: {grpc: "127.0.0.1:0", http: "127.0.0.1:0", admin: "off"}
public_url: %[1]q
unmatched: deny
log: {level: debug}
login: {session_key: {env: EXTAUTHZ_E2E_SESSION_KEY}}
oauth_facade:
  signing_keys: [{env: EXTAUTHZ_E2E_FACADE_KEY}]
  client_documents: {allow_networks: [127.0.0.1/32]}   # the test's document server
resources:
  - name: mcp
    resource: "%[1]s/mcp"
    required_scopes: ["mcp:tools"]
    authorization_servers: [{issuer: %[2]q}]
    oauth_facade:
      enabled: true
      client_id: %[3]q
      client_secret: {env: EXTAUTHZ_E2E_GATEWAY_SECRET}
      scopes: [openid, offline_access, "mcp:tools"]
  - name: v2
    resource: "%[1]s/v2/mcp"
    required_scopes: ["mcp:tools"]
    authorization_servers: [{issuer: %[2]q}]
    oauth_facade:
      enabled: true
      client_id: %[3]q
      client_secret: {env: EXTAUTHZ_E2E_GATEWAY_SECRET}
      scopes: [openid, offline_access, "mcp:tools"]
`, public, issuer, facadeGatewayClientID)
}

// testFacadeSDK: an unmodified SDK client finds the facade, registers with it (or, given
// docURL, uses that Client ID Metadata Document's URL as its client_id: no registration),
// signs in at the provider through it, approves on its consent page, and calls tools through
// nginx.
func testFacadeSDK(t *testing.T, fs *facadeStack, script, path string, rec *recorder, docURL string) {
	mcpURL := fs.nginxURL + path
	mark, fetchesBefore := rec.len(), fs.docFetches.Load()
	cfg := map[string]any{"url": mcpURL, "scenario": "echo", "login": "dora"}
	identify := step{"registration at the facade", func(e event) bool {
		return e.is("http") && e.s("method") == "POST" && e.s("url") == fs.issuer+"/register" && e.status() == 201
	}}
	if docURL != "" {
		cfg["clientMetadataUrl"] = docURL
		identify = step{"the document's URL taken as client_id", func(e event) bool {
			return e.is("client_registered") && e.s("client_id") == docURL
		}}
	}
	run := fs.runScript(t, script, cfg, true)
	md := fs.authServerMetadata(t)

	isBrowserAt := func(u string) func(event) bool {
		return func(e event) bool { return e.is("http") && e.s("actor") == "browser" && e.s("url") == u }
	}
	steps := run.inOrder(t,
		step{"the unauthenticated request gets 401", func(e event) bool {
			return e.is("http") && e.s("actor") == "sdk" && e.s("url") == mcpURL && e.status() == 401
		}},
		step{"protected resource metadata", func(e event) bool {
			return e.is("http") && e.s("url") == fs.nginxURL+"/.well-known/oauth-protected-resource"+path && e.status() == 200
		}},
		step{"the facade's metadata", func(e event) bool {
			return e.is("http") && e.s("url") == fs.nginxURL+"/.well-known/oauth-authorization-server/oauth" && e.status() == 200
		}},
		identify,
		step{"authorization request built", func(e event) bool { return e.is("redirect_to_authorization") }},
		step{"the facade's authorize endpoint opened", isBrowserAt(fs.issuer + "/authorize")},
		step{"sent on to the provider", isBrowserAt(md.AuthorizationEndpoint)},
		step{"provider login form", func(e event) bool { return e.is("form") && e.s("page") == "login" }},
		step{"back at the gateway's callback", isBrowserAt(fs.nginxURL + "/oauth/callback")},
		step{"the gateway's consent page", func(e event) bool {
			return e.is("http") && e.s("actor") == "browser" && e.s("method") == "GET" && e.s("url") == fs.issuer+"/consent" && e.status() == 200
		}},
		step{"approved", func(e event) bool {
			return e.is("http") && e.s("actor") == "browser" && e.s("method") == "POST" && e.s("url") == fs.issuer+"/consent" && e.status() == 303
		}},
		step{"code received", func(e event) bool { return e.is("authorization_code") }},
		step{"code exchanged at the facade", func(e event) bool {
			return e.is("http") && e.s("method") == "POST" && e.s("url") == fs.issuer+"/token" && e.status() == 200
		}},
		step{"tokens saved", func(e event) bool { return e.is("tokens_saved") }},
		step{"connected", func(e event) bool { return e.is("connected") }},
		step{"tools/call succeeds", func(e event) bool {
			return e.is("http") && e.s("url") == mcpURL && e.jsonrpcMethod() == "tools/call" && e.status() == 200
		}},
	)
	// The SDK never spoke to the provider itself: only the browser did.
	for _, e := range run.filter(func(e event) bool { return e.is("http") && e.s("actor") == "sdk" }) {
		if strings.HasPrefix(e.s("url"), fs.as.Issuer) {
			t.Errorf("the SDK requested the provider's %s %s", e.s("method"), e.s("url"))
		}
	}
	if got := str(steps[11]["iss"]); got != fs.issuer {
		t.Errorf("authorization response iss = %q, want the facade %s (RFC 9207)", got, fs.issuer)
	}
	clientID := str(run.one(t, "client_registered")["client_id"])
	if docURL != "" {
		if regs := run.filter(func(e event) bool { return e.is("http") && strings.HasSuffix(e.s("url"), "/register") }); len(regs) > 0 {
			t.Errorf("the client registered although it has a metadata document: %v", regs)
		}
		if fs.docFetches.Load() == fetchesBefore {
			t.Errorf("the gateway never fetched %s", docURL)
		}
	}
	q := steps[4].m("query")
	if str(q["client_id"]) != clientID || str(q["resource"]) != mcpURL || str(q["code_challenge_method"]) != "S256" {
		t.Errorf("authorization request = %v, want client_id %s, resource %s, S256", q, clientID, mcpURL)
	}
	if got := str(steps[6].m("query")["client_id"]); got != facadeGatewayClientID {
		t.Errorf("the provider was asked by client %q, want the gateway's %s", got, facadeGatewayClientID)
	}
	claims := steps[13].m("claims")
	if str(claims["iss"]) != fs.issuer || str(claims["aud"]) != mcpURL || str(claims["sub"]) != "dora" ||
		str(claims["client_id"]) != clientID || !slices.Contains(strings.Fields(str(claims["scope"])), "mcp:tools") {
		t.Errorf("access token claims = %v, want iss %s, aud %s, sub dora, client_id %s, scope with mcp:tools", claims, fs.issuer, mcpURL, clientID)
	}
	if r := run.toolResult(t, "echo"); r.s("text") != "Echo: upstream headers" {
		t.Errorf("echo result = %v", r)
	}
	// The MCP server got the user and the MCP client, never the token.
	got := rec.since(mark)
	if len(got) == 0 {
		t.Fatal("the MCP server received nothing")
	}
	for _, r := range got {
		if r.Header.Get("Authorization") != "" || r.Header.Get("X-Extauthz-Subject") != "dora" || r.Header.Get("X-Extauthz-Client-Id") != clientID {
			t.Errorf("%s reached the MCP server with Authorization present %t, subject %q, client %q; want none, dora, %s",
				r, r.Header.Get("Authorization") != "", r.Header.Get("X-Extauthz-Subject"), r.Header.Get("X-Extauthz-Client-Id"), clientID)
		}
	}
}

// facadeBrowser is a cookie-keeping client that follows no redirect, for the Go-driven legs.
func facadeBrowser(t *testing.T) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{
		Jar: jar, Transport: &http.Transport{Proxy: nil}, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

const facadeRedirect = "http://127.0.0.1:9/cb"

// register registers a public client at the facade through nginx.
func (fs *facadeStack) register(t *testing.T, name string) string {
	t.Helper()
	resp := fs.send(t, http.MethodPost, fs.issuer+"/register", "", nil,
		`{"client_name":"`+name+`","redirect_uris":["`+facadeRedirect+`"],"grant_types":["authorization_code","refresh_token"]}`)
	var reg struct {
		ClientID string `json:"client_id"`
	}
	if resp.StatusCode != http.StatusCreated || json.Unmarshal([]byte(resp.Body), &reg) != nil || reg.ClientID == "" {
		t.Fatalf("registration through nginx: %d %s", resp.StatusCode, resp.Body)
	}
	return reg.ClientID
}

// pkce returns a verifier and its S256 challenge.
func pkce(t *testing.T) (verifier, challenge string) {
	verifier = randomHex(t, 32)
	sum := sha256.Sum256([]byte(verifier))
	return verifier, base64.RawURLEncoding.EncodeToString(sum[:])
}

// authorizeURL is an authorization request at the facade.
func (fs *facadeStack) authorizeURL(clientID, redirect, challenge, state string) *url.URL {
	u, _ := url.Parse(fs.issuer + "/authorize?" + url.Values{
		"response_type": {"code"}, "client_id": {clientID}, "redirect_uri": {redirect}, "scope": {"mcp:tools"},
		"code_challenge": {challenge}, "code_challenge_method": {"S256"}, "resource": {fs.resource}, "state": {state},
	}.Encode())
	return u
}

// tokenRequest posts a form to the facade's token endpoint through nginx.
func (fs *facadeStack) tokenRequest(t *testing.T, form url.Values) (int, map[string]any) {
	t.Helper()
	resp, err := fs.http.PostForm(fs.issuer+"/token", form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out map[string]any
	_ = json.Unmarshal(b, &out)
	return resp.StatusCode, out
}

// testFacadeWrongRedirect: a redirect URI the client did not register is answered with an
// error page, never a redirect (RFC 6749 §4.1.2.1): neither to it nor to the registered one.
func testFacadeWrongRedirect(t *testing.T, fs *facadeStack) {
	clientID := fs.register(t, "wrong redirect test")
	_, challenge := pkce(t)
	for _, redirect := range []string{"http://127.0.0.1:9/other", "https://attacker.example/cb", facadeRedirect + "/"} {
		resp := fs.send(t, http.MethodGet, fs.authorizeURL(clientID, redirect, challenge, "s1").String(), "", map[string]string{"Accept": "text/html"}, "")
		if resp.StatusCode < 400 || resp.Header.Get("Location") != "" || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
			t.Errorf("authorize with redirect_uri %s: %d, Location %q, Content-Type %q; want an error page and no redirect",
				redirect, resp.StatusCode, resp.Header.Get("Location"), resp.Header.Get("Content-Type"))
		}
	}
}

// testFacadeReplays: a code works once (a second redemption is invalid_grant and revokes
// what the first started), and a spent refresh token is refused and kills its family.
func testFacadeReplays(t *testing.T, fs *facadeStack) {
	clientID := fs.register(t, "replay test")
	verifier, challenge := pkce(t)
	browser := facadeBrowser(t)
	back := oidctest.SignIn(t, browser, fs.authorizeURL(clientID, facadeRedirect, challenge, "st-1"), "erin", "/cb", false)
	q := back.Query()
	if back.Host != "127.0.0.1:9" || q.Get("code") == "" || q.Get("state") != "st-1" || q.Get("iss") != fs.issuer {
		t.Fatalf("authorization response %s: want code, state st-1 and iss %s at %s", back.Redacted(), fs.issuer, facadeRedirect)
	}
	redeem := url.Values{"grant_type": {"authorization_code"}, "code": {q.Get("code")}, "redirect_uri": {facadeRedirect},
		"code_verifier": {verifier}, "client_id": {clientID}, "resource": {fs.resource}}
	status, tok := fs.tokenRequest(t, redeem)
	at, rt := str(tok["access_token"]), str(tok["refresh_token"])
	if status != 200 || at == "" || rt == "" {
		t.Fatalf("code redemption: %d %v", status, tok)
	}
	if resp := fs.post(t, fs.resource, at, initializeBody, nil); resp.StatusCode != 200 {
		t.Fatalf("initialize with the facade's token through nginx: %d %s", resp.StatusCode, resp.Body)
	}

	// The code again: refused.
	if status, out := fs.tokenRequest(t, redeem); status != 400 || out["error"] != "invalid_grant" {
		t.Errorf("the code redeemed twice: %d %v, want 400 invalid_grant", status, out)
	}
	// The replay revoked the family the code started: its refresh token is dead.
	if status, out := fs.tokenRequest(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {clientID}}); status != 400 || out["error"] != "invalid_grant" {
		t.Errorf("refresh after the code's replay: %d %v, want 400 invalid_grant", status, out)
	}

	// A fresh sign-in (consent remembered: no page this time), then refresh-token reuse.
	verifier, challenge = pkce(t)
	back = oidctest.SignIn(t, browser, fs.authorizeURL(clientID, facadeRedirect, challenge, "st-2"), "erin", "/cb", false)
	status, tok = fs.tokenRequest(t, url.Values{"grant_type": {"authorization_code"}, "code": {back.Query().Get("code")},
		"redirect_uri": {facadeRedirect}, "code_verifier": {verifier}, "client_id": {clientID}})
	rt1 := str(tok["refresh_token"])
	if status != 200 || rt1 == "" {
		t.Fatalf("second code redemption: %d %v", status, tok)
	}
	refresh := func(rt string) (int, map[string]any) {
		return fs.tokenRequest(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {clientID}})
	}
	status, tok = refresh(rt1)
	rt2 := str(tok["refresh_token"])
	if status != 200 || rt2 == "" || rt2 == rt1 || str(tok["access_token"]) == "" {
		t.Fatalf("refresh: %d %v, want a new access and refresh token", status, tok)
	}
	if status, out := refresh(rt1); status != 400 || out["error"] != "invalid_grant" {
		t.Errorf("the spent refresh token again: %d %v, want 400 invalid_grant", status, out)
	}
	if status, out := refresh(rt2); status != 400 || out["error"] != "invalid_grant" {
		t.Errorf("the newest refresh token after a reuse: %d %v, want 400 invalid_grant (the family is revoked)", status, out)
	}
}

// updateConsentScreenshot rewrites docs/oauth-facade-consent.png from the Chromium run.
var updateConsentScreenshot = flag.Bool("update-consent-screenshot", false, "rewrite docs/oauth-facade-consent.png from TestFacadeE2E's Chromium run")

// consentScreenshot is the consent page's picture in the docs (docs/oauth-facade.md).
const consentScreenshot = "docs/oauth-facade-consent.png"

// testFacadeConsentInChromium: Debian's Chromium signs in at the provider and stops on the
// facade's consent page, which must name the client (as it calls itself, and its client_uri
// host), the host the browser will be sent to, the resource and the scopes; Allow then sends
// the browser to the client's redirect URI with a code, the state and the facade as iss.
func testFacadeConsentInChromium(t *testing.T, fs *facadeStack) {
	if fi, err := os.Stat(chromiumPath); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		t.Fatalf("Chromium not found at %s (%v): %s", chromiumPath, err, chromiumHint)
	}
	const clientName = "Acme Notes"
	resp := fs.send(t, http.MethodPost, fs.issuer+"/register", "", nil,
		`{"client_name":"`+clientName+`","client_uri":"https://notes.acme.example/","redirect_uris":["`+facadeRedirect+`"],"grant_types":["authorization_code","refresh_token"]}`)
	var reg struct {
		ClientID string `json:"client_id"`
	}
	if resp.StatusCode != http.StatusCreated || json.Unmarshal([]byte(resp.Body), &reg) != nil {
		t.Fatalf("registration: %d %s", resp.StatusCode, resp.Body)
	}
	_, challenge := pkce(t)
	shot := filepath.Join(t.TempDir(), "consent.png")
	events := runFacadeConsent(t, fs, map[string]any{
		"authorize": fs.authorizeURL(reg.ClientID, facadeRedirect, challenge, "chromium-state").String(),
		"issuer":    fs.as.Issuer, "login": "frank", "redirect": facadeRedirect, "screenshot": shot,
	})

	var page, answer event
	for _, e := range events {
		switch {
		case e.is("page") && e.s("page") == "facade_consent":
			page = e
		case e.is("authorization_response"):
			answer = e
		}
	}
	if page == nil || answer == nil {
		t.Fatalf("facade-consent.mjs printed no consent page or no authorization response: %v", events)
	}
	if page.s("url") != fs.issuer+"/consent" {
		t.Errorf("consent page at %s, want %s/consent", page.s("url"), fs.issuer)
	}
	texts := htmlTexts(t, page.s("html"))
	if h1 := texts["h1"]; len(h1) != 1 || !strings.Contains(h1[0], clientName) {
		t.Errorf("consent page heading %q, want it to name %q", h1, clientName)
	}
	for _, want := range []string{clientName, "127.0.0.1:9"} {
		if !slices.Contains(texts["strong"], want) {
			t.Errorf("consent page: no <strong>%s</strong> (the client's name and the redirect host); strong texts %q", want, texts["strong"])
		}
	}
	if !slices.Contains(texts["p"], "An application calling itself "+clientName+" (notes.acme.example) asks for access to "+fs.resource+" on your behalf.") {
		t.Errorf("consent page paragraphs %q: want the client's name, its client_uri host and the resource", texts["p"])
	}
	if !slices.Equal(texts["li"], []string{"mcp:tools"}) {
		t.Errorf("consent page scope list %q, want [mcp:tools]", texts["li"])
	}
	if answer.s("url") != facadeRedirect || answer.s("code") != "(set)" || answer.s("state") != "chromium-state" || answer.s("iss") != fs.issuer || answer.s("error") != "" {
		t.Errorf("authorization response %v: want %s with a code, state chromium-state and iss %s", answer, facadeRedirect, fs.issuer)
	}

	shotPNG := readFile(t, shot)
	bounds, err := decodePNG(shotPNG)
	if err != nil || bounds.Dx() < 600 || bounds.Dy() < 300 {
		t.Fatalf("the screenshot is not a page-sized PNG: %v %v", bounds, err)
	}
	docPath := filepath.Join(fs.root, consentScreenshot)
	if *updateConsentScreenshot {
		writeFile(t, docPath, string(shotPNG))
		t.Logf("wrote %s", consentScreenshot)
	}
	if _, err := os.Stat(docPath); err != nil {
		t.Errorf("%s: %v (go test ./test/e2e/ -run TestFacadeE2E/ConsentPageInChromium -update-consent-screenshot writes it)", consentScreenshot, err)
	}
}

// runFacadeConsent runs facade-consent.mjs to completion; a failure fails the test.
func runFacadeConsent(t *testing.T, fs *facadeStack, cfg map[string]any) []event {
	t.Helper()
	arg, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	home := t.TempDir() // the browser's profile and whatever Chromium writes in HOME
	ctx, cancel := context.WithTimeout(context.Background(), browserTimeout)
	defer cancel()
	var stdout, stderr testkit.LockedBuffer
	cmd := exec.CommandContext(ctx, fs.node, "facade-consent.mjs", string(arg))
	cmd.Dir = fs.e2eDir
	cmd.Env = append(os.Environ(), "TMPDIR="+home, "HOME="+home, "XDG_CONFIG_HOME="+filepath.Join(home, ".config"),
		"XDG_CACHE_HOME="+filepath.Join(home, ".cache"))
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.SysProcAttr = sysProcAttr()
	cmd.WaitDelay = stopTimeout
	runErr := cmd.Run()
	var out []event
	for _, line := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
		var e event
		if json.Unmarshal([]byte(line), &e) == nil {
			out = append(out, e)
		}
	}
	if runErr != nil {
		t.Fatalf("facade-consent.mjs: %v\n==== stdout:\n%s\n==== stderr:\n%s", runErr, stdout.String(), stderr.String())
	}
	return out
}

// htmlTexts parses a page and returns the text of its h1, p, strong and li elements, by
// element name, whitespace collapsed.
func htmlTexts(t *testing.T, page string) map[string][]string {
	t.Helper()
	doc, err := html.Parse(strings.NewReader(page))
	if err != nil {
		t.Fatalf("the consent page is not HTML: %v", err)
	}
	out := map[string][]string{}
	var text func(n *html.Node) string
	text = func(n *html.Node) string {
		if n.Type == html.TextNode {
			return n.Data
		}
		var b strings.Builder
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			b.WriteString(text(c))
		}
		return b.String()
	}
	var walk func(n *html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode && slices.Contains([]string{"h1", "p", "strong", "li"}, n.Data) {
			out[n.Data] = append(out[n.Data], strings.Join(strings.Fields(text(n)), " "))
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)
	return out
}

// decodePNG returns a PNG's bounds.
func decodePNG(b []byte) (image.Rectangle, error) {
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		return image.Rectangle{}, err
	}
	return img.Bounds(), nil
}
