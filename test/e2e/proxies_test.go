package e2e

// The HTTP-mode proxies of docs/operating.md, run from the files in deploy/ with only their
// addresses changed, and what a client sees through them when the gateway denies.

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// nginxConfPath is the nginx.conf docs/operating.md shows and the suite runs.
const nginxConfPath = "deploy/nginx/nginx.conf"

// deployConfig reads a configuration file of deploy/ and makes each substitution (of every
// occurrence; each must occur); it fails the test unless undoing them gives the file back, so
// that the suite runs the file as shipped but for the addresses.
func deployConfig(t *testing.T, root, rel string, subs [][2]string) string {
	t.Helper()
	orig := string(readFile(t, filepath.Join(root, rel)))
	conf := orig
	for _, s := range subs {
		if !strings.Contains(conf, s[0]) {
			t.Fatalf("%s: %q does not occur", rel, s[0])
		}
		if strings.Contains(orig, s[1]) {
			t.Fatalf("%s already contains the substitute %q", rel, s[1])
		}
		conf = strings.ReplaceAll(conf, s[0], s[1])
	}
	back := conf
	for _, s := range subs {
		back = strings.ReplaceAll(back, s[1], s[0])
	}
	if back != orig {
		t.Fatalf("%s: the substitutions changed more than the addresses", rel)
	}
	return conf
}

// nginxSubstitutions are the only changes the suite makes to deploy/nginx/nginx.conf.
func nginxSubstitutions(port int, gatewayHTTP, upstream, upstreamV2 string) [][2]string {
	return [][2]string{
		{"listen 8080;", fmt.Sprintf("listen 127.0.0.1:%d;", port)},
		{"server extauthz:8080;", "server " + gatewayHTTP + ";"},
		{"server mcp-server:3000;", "server " + upstream + ";"},
		{"server mcp-v2:3000;", "server " + upstreamV2 + ";"},
	}
}

// startNginx runs deploy/nginx/nginx.conf in the foreground, one process, with its pid file
// in a private directory (the file keeps nginx's default paths otherwise); release frees the
// reserved port just before nginx binds it.
func startNginx(t *testing.T, nginx, root string, port int, gatewayHTTP, upstream, upstreamV2 string, release func()) *proc {
	t.Helper()
	dir := t.TempDir()
	conf := filepath.Join(dir, "nginx.conf")
	writeFile(t, conf, deployConfig(t, root, nginxConfPath, nginxSubstitutions(port, gatewayHTTP, upstream, upstreamV2)))
	release()
	p := startProc(t, "nginx", exec.Command(nginx, "-p", dir, "-c", conf, "-e", "stderr",
		"-g", "daemon off; master_process off; pid "+filepath.Join(dir, "nginx.pid")+";"), dir)
	p.alsoShow(conf)
	return p
}

// caddyModule is the Caddy the suite runs; bump it deliberately (and in the Makefile).
const caddyModule = "github.com/caddyserver/caddy/v2/cmd/caddy@v2.11.9"

// caddyConfPath is the Caddyfile docs/operating.md shows and the suite runs.
const caddyConfPath = "deploy/caddy/Caddyfile"

// caddyDir is where Caddy is built once and kept: beside Go's build cache (make
// caddy-installed builds it there too), since a build takes minutes.
func caddyDir(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOCACHE").Output()
	if err != nil || strings.TrimSpace(string(out)) == "" || strings.TrimSpace(string(out)) == "off" {
		t.Fatalf("go env GOCACHE: %q %v: Caddy is kept beside the build cache", out, err)
	}
	_, version, _ := strings.Cut(caddyModule, "@")
	return filepath.Join(filepath.Dir(strings.TrimSpace(string(out))), "extauthz-tools", "caddy-"+version)
}

// caddy returns the Caddy binary, building it with go install when it is not there yet (into
// a fresh directory, renamed into place, so that a broken build leaves nothing behind). A
// Caddy that cannot be built fails the test.
func caddy(t *testing.T) string {
	t.Helper()
	dir := caddyDir(t)
	bin := filepath.Join(dir, "caddy")
	// A go install build says "unknown" to caddy version: read its module version instead.
	_, version, _ := strings.Cut(caddyModule, "@")
	if out, err := exec.Command("go", "version", "-m", bin).Output(); err == nil && strings.Contains(string(out), "\tgithub.com/caddyserver/caddy/v2\t"+version+"\t") {
		return bin
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		t.Fatal(err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), "caddy-build-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	t.Logf("building %s into %s (once; it takes minutes)", caddyModule, dir)
	cmd := exec.Command("go", "install", caddyModule)
	cmd.Dir = tmp
	cmd.Env = append(os.Environ(), "GOBIN="+tmp, "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go install %s: %v\n%s (or run make caddy-installed)", caddyModule, err, out)
	}
	_ = os.RemoveAll(dir)
	if err := os.Rename(tmp, dir); err != nil {
		t.Fatal(err)
	}
	return bin
}

// startCaddy runs deploy/caddy/Caddyfile with its addresses changed, its configuration and
// data directories private; release frees the reserved port just before Caddy binds it.
func startCaddy(t *testing.T, caddy, root string, port int, gatewayHTTP, upstream, upstreamV2 string, release func()) *proc {
	t.Helper()
	dir := t.TempDir()
	conf := filepath.Join(dir, "Caddyfile")
	writeFile(t, conf, deployConfig(t, root, caddyConfPath, [][2]string{
		{"http://:8080 {", fmt.Sprintf("http://:%d {", port)},
		{"bind 0.0.0.0", "bind 127.0.0.1"},
		{"extauthz:8080", gatewayHTTP},
		{"mcp-server:3000", upstream},
		{"mcp-v2:3000", upstreamV2},
	}))
	release()
	p := startProc(t, "caddy", exec.Command(caddy, "run", "--config", conf, "--adapter", "caddyfile"), dir,
		"XDG_CONFIG_HOME="+filepath.Join(dir, "config"), "XDG_DATA_HOME="+filepath.Join(dir, "data"), "HOME="+dir)
	p.alsoShow(conf)
	return p
}

// readyExcept reports whether the gateway's /readyz lists exactly the one issuer that cannot
// be reached as not ready.
func (st *stack) readyExcept(u, issuer string) bool {
	resp, err := st.http.Get(u)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var r struct {
		IssuersNotReady []string `json:"issuers_not_ready"`
	}
	return json.NewDecoder(resp.Body).Decode(&r) == nil && len(r.IssuersNotReady) == 1 && r.IssuersNotReady[0] == issuer
}

// unverifiableToken is a well-formed access token of the unreachable issuer for the
// "unavailable" resource: its signature cannot be checked, since the keys cannot be fetched.
func unverifiableToken(issuer, audience string) string {
	enc := func(v any) string {
		b, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	now := time.Now().Unix()
	return enc(map[string]string{"alg": "ES256", "typ": "at+jwt", "kid": "e2e-unreachable"}) + "." +
		enc(map[string]any{"iss": issuer, "aud": audience, "sub": "erin", "client_id": "e2e", "scope": "mcp:tools",
			"iat": now, "exp": now + 300, "jti": "e2e-unreachable"}) + "." +
		base64.RawURLEncoding.EncodeToString(make([]byte, 64))
}

// noRedirects is a client that shows a redirect instead of following it.
func (st *stack) noRedirects() *http.Client {
	return &http.Client{Transport: st.http.Transport, Timeout: st.http.Timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// denialCheck says what a client must see for one denial.
type denialCheck struct {
	status    int
	www       string // a WWW-Authenticate substring; "" for no header at all
	errorCode string // the JSON body's error (a string, or a JSON-RPC error object when "*")
}

// checkDenial asserts a denial as a client sees it: the status, one WWW-Authenticate header
// (or none), Cache-Control: no-store, and a JSON body with an error.
func checkDenial(t *testing.T, what string, resp response, want denialCheck) {
	t.Helper()
	if resp.StatusCode != want.status {
		t.Errorf("%s: %d %s, want %d", what, resp.StatusCode, resp.Body, want.status)
		return
	}
	www := resp.Header.Values("WWW-Authenticate")
	switch {
	case want.www == "" && len(www) != 0:
		t.Errorf("%s: WWW-Authenticate %q, want none", what, www)
	case want.www != "" && (len(www) != 1 || !strings.Contains(www[0], want.www) || strings.Count(strings.ToLower(www[0]), "bearer") != 1):
		t.Errorf("%s: WWW-Authenticate %q, want one Bearer challenge with %s", what, www, want.www)
	}
	if cc := resp.Header.Values("Cache-Control"); len(cc) != 1 || cc[0] != "no-store" {
		t.Errorf("%s: Cache-Control %q, want no-store", what, cc)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("%s: Content-Type %q, want application/json", what, ct)
	}
	var body struct{ Error json.RawMessage }
	if err := json.Unmarshal([]byte(resp.Body), &body); err != nil || len(body.Error) == 0 {
		t.Errorf("%s: body %q, want a JSON object with an error", what, resp.Body)
		return
	}
	if want.errorCode == "*" {
		return
	}
	var code string
	if json.Unmarshal(body.Error, &code) != nil || code != want.errorCode {
		t.Errorf("%s: body %s, want error %q", what, resp.Body, want.errorCode)
	}
}

// testDenialsRelayed: every row of the answer table (docs/decision.md) as a client sees it through the
// proxy at front (whose gateway's public_url is front): the status, the challenge, the
// redirect, Retry-After, the JSON body and no-store; and the MCP server's own errors pass
// untouched.
func testDenialsRelayed(t *testing.T, st *stack, front string) {
	mark := st.rec.len()
	mcpURL := front + "/mcp"

	resp := st.send(t, http.MethodPost, mcpURL+"?access_token=e2e-in-the-query", "", nil, initializeBody)
	checkDenial(t, "token in the query string", resp, denialCheck{400, `error="invalid_request"`, "*"})

	resp = st.send(t, http.MethodPost, mcpURL, "", nil, initializeBody)
	checkDenial(t, "no token", resp, denialCheck{401, `resource_metadata="` + front + `/.well-known/oauth-protected-resource/mcp"`, "*"})

	// A client describing another request in the headers each proxy sets for the gateway is
	// not believed: the proxies overwrite them.
	resp = st.send(t, http.MethodPost, mcpURL, "", map[string]string{
		"X-Original-Method": "GET", "X-Original-URI": "/public", "X-Forwarded-Method": "GET", "X-Forwarded-Uri": "/public",
		"X-Forwarded-Host": "localhost", "X-Forwarded-Proto": "https",
	}, initializeBody)
	checkDenial(t, "no token, forged X-Original-*/X-Forwarded-* headers", resp, denialCheck{401, `resource_metadata="` + front + `/.well-known/oauth-protected-resource/mcp"`, "*"})

	resp = st.send(t, http.MethodPost, mcpURL, "", map[string]string{"Authorization": "Bearer not-a-token"}, initializeBody)
	checkDenial(t, "a malformed token", resp, denialCheck{401, `error="invalid_token"`, "invalid_token"})

	v2URL := front + "/v2/mcp"
	tok, err := st.as.ClientCredentials(t.Context(), serviceClient, v2URL, "mcp:tools")
	if err != nil {
		t.Fatal(err)
	}
	resp = st.send(t, http.MethodPost, v2URL, "", map[string]string{
		"Authorization": "Bearer " + tok, "MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": adminTool,
	}, toolsCallBody(adminTool))
	checkDenial(t, "a step-up tool without its scope", resp, denialCheck{403, `error="insufficient_scope"`, "insufficient_scope"})

	unavailable := front + "/unavailable/mcp"
	resp = st.send(t, http.MethodPost, unavailable, "", map[string]string{"Authorization": "Bearer " + unverifiableToken(st.downIssuer, unavailable)}, initializeBody)
	checkDenial(t, "the issuer's keys unreachable", resp, denialCheck{503, "", "temporarily_unavailable"})
	if ra := resp.Header.Values("Retry-After"); len(ra) != 1 || ra[0] != "5" {
		t.Errorf("the issuer's keys unreachable: Retry-After %q, want 5", ra)
	}

	// A browser navigation without a session: to the login, which the proxy routes to the
	// gateway, which sends the browser on to the authorization server.
	browser := st.noRedirects()
	req, err := http.NewRequest(http.MethodGet, mcpURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/html,application/xhtml+xml")
	r, err := browser.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	loc := r.Header.Get("Location")
	if r.StatusCode != http.StatusFound || !strings.HasPrefix(loc, front+"/oauth/login?rd=") || r.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("browser navigation without a session: %d Location %q Cache-Control %q; want 302 to %s/oauth/login?rd=…, no-store",
			r.StatusCode, loc, r.Header.Get("Cache-Control"), front)
	} else {
		r, err = browser.Get(loc)
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		md := st.authServerMetadata(t)
		if r.StatusCode != http.StatusFound || !strings.HasPrefix(r.Header.Get("Location"), md.AuthorizationEndpoint+"?") || len(r.Header.Values("Set-Cookie")) != 1 {
			t.Errorf("GET %s: %d Location %q Set-Cookie %q; want 302 to the authorization endpoint with one login-state cookie",
				loc, r.StatusCode, r.Header.Get("Location"), r.Header.Values("Set-Cookie"))
		}
	}
	if got := st.rec.since(mark); len(got) != 0 {
		t.Errorf("denied requests reached the MCP server: %v", got)
	}

	// The MCP server's own error statuses and bodies are its own: not rewritten as the
	// gateway's.
	for _, status := range []int{500, 502, 503, 401, 403} {
		resp := st.send(t, http.MethodGet, fmt.Sprintf("%s/e2e-upstream-status/%d", front, status), "", nil, "")
		if resp.StatusCode != status || resp.Body != upstreamStatusBody || resp.Header.Get("Retry-After") != "" {
			t.Errorf("the MCP server's own %d: the client got %d %q (Retry-After %q)", status, resp.StatusCode, resp.Body, resp.Header.Get("Retry-After"))
		}
	}
}

// testCaddyGatewayDown: the same Caddyfile with the gateway unreachable answers Caddy's own
// 502 (an empty body), and nothing reaches the MCP server.
func testCaddyGatewayDown(t *testing.T, st *stack, caddyBin string) {
	port, release := reservePort(t)
	gw, releaseGW := reservePort(t)
	releaseGW() // a closed port
	p := startCaddy(t, caddyBin, st.root, port, fmt.Sprintf("127.0.0.1:%d", gw), st.rec.addr, st.recV2.addr, release)
	front := fmt.Sprintf("http://127.0.0.1:%d", port)
	p.waitUntil(t, "Caddy to answer", func() bool { return st.status(front+"/mcp") != 0 })
	mark := st.rec.len()
	for _, path := range []string{"/mcp", "/v2/mcp", "/public"} {
		resp := st.send(t, http.MethodPost, front+path, "", map[string]string{"Authorization": "Bearer x"}, initializeBody)
		if resp.StatusCode != http.StatusBadGateway || resp.Body != "" {
			t.Errorf("POST %s with the gateway down: %d %q, want Caddy's 502 with an empty body", path, resp.StatusCode, resp.Body)
		}
	}
	if got := st.rec.since(mark); len(got) != 0 {
		t.Errorf("requests reached the MCP server with the gateway down: %v", got)
	}
}

// testGatewayDown: the same nginx.conf with the gateway unreachable answers 503 with
// Retry-After, never nginx's 500, and nothing reaches the MCP server.
func testGatewayDown(t *testing.T, st *stack) {
	port, release := reservePort(t)
	gw, releaseGW := reservePort(t)
	releaseGW() // a closed port
	ng := startNginx(t, st.nginxBin, st.root, port, fmt.Sprintf("127.0.0.1:%d", gw), st.rec.addr, st.recV2.addr, release)
	front := fmt.Sprintf("http://127.0.0.1:%d", port)
	ng.waitUntil(t, "nginx to answer", func() bool { return st.status(front+"/mcp") != 0 })
	mark := st.rec.len()
	for _, path := range []string{"/mcp", "/v2/mcp", "/public"} {
		resp := st.send(t, http.MethodPost, front+path, "", map[string]string{"Authorization": "Bearer x"}, initializeBody)
		checkDenial(t, "POST "+path+" with the gateway down", resp, denialCheck{503, "", "temporarily_unavailable"})
		if resp.Header.Get("Retry-After") != "5" {
			t.Errorf("POST %s with the gateway down: Retry-After %q, want 5", path, resp.Header.Get("Retry-After"))
		}
	}
	if got := st.rec.since(mark); len(got) != 0 {
		t.Errorf("requests reached the MCP server with the gateway down: %v", got)
	}
}

// upstreamStatusBody is what the recorder answers to /e2e-upstream-status/<status>.
const upstreamStatusBody = "the MCP server's own answer\n"
