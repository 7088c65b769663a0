package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/extauthz/extauthz/internal/oidctest"
	"github.com/extauthz/extauthz/internal/testkit"
)

// TestBrowserCORS: a browser MCP client on another origin, in Debian's Chromium, through
// the nginx configuration of docs/operating.md. Without a token it reads the 401 and its
// WWW-Authenticate, follows resource_metadata to the metadata document and reads it; with
// a token, its request with Authorization, Mcp-Method and an Mcp-Param-* header passes the
// preflight the gateway answers and reaches the MCP server; a header the resource does not
// allow makes the browser refuse the request. A page on an origin the resource does not
// allow reads nothing, and nothing of its reaches the MCP server.
//
// The MCP server is a small recorder here: what matters is what reaches it and that its own
// answer carries its own CORS headers (an MCP server that browsers call must send them).
func TestBrowserCORS(t *testing.T) {
	root, err := testkit.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	e2eDir := filepath.Join(root, "test", "e2e")
	node := checkNodeDeps(t, e2eDir)
	if fi, err := os.Stat(chromiumPath); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		t.Fatalf("Chromium not found at %s (%v): %s", chromiumPath, err, chromiumHint)
	}
	nginx := findNginx(t)
	gatewayBin := filepath.Join(t.TempDir(), "extauthz")
	var buildErr error
	built := make(chan struct{})
	go func() { buildErr = buildGateway(context.Background(), root, gatewayBin); close(built) }()
	t.Cleanup(func() { <-built }) // a failed start still waits for the build
	plain := &http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: 5 * time.Second}
	t.Cleanup(plain.CloseIdleConnections)

	nginxPort, releaseNginxPort := reservePort(t)
	nginxURL := fmt.Sprintf("http://127.0.0.1:%d", nginxPort)
	resource := nginxURL + "/mcp"

	// The page's server: one port, two origins. http://localhost:P is allowed,
	// http://127.0.0.1:P is not (the browser resolves localhost to 127.0.0.1).
	pages := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte("<!doctype html><title>browser MCP client</title>"))
	}))
	t.Cleanup(pages.Close)
	_, pagePort, _ := net.SplitHostPort(pages.Listener.Addr().String())
	allowedOrigin := "http://localhost:" + pagePort
	otherOrigin := "http://127.0.0.1:" + pagePort

	mcp := &corsUpstream{}
	upstream := httptest.NewServer(mcp)
	t.Cleanup(upstream.Close)

	as := oidctest.Start(t, oidctest.Options{
		Clients:   []oidctest.Client{serviceClient},
		Resources: []oidctest.Resource{{Resource: resource, Scope: "mcp:tools"}},
	})
	tok, err := as.ClientCredentials(context.Background(), serviceClient, resource, "mcp:tools")
	if err != nil {
		t.Fatal(err)
	}
	if <-built; buildErr != nil {
		t.Fatalf("building the gateway: %v", buildErr)
	}

	gwDir := t.TempDir()
	cfgPath := filepath.Join(gwDir, "extauthz.yaml")
	writeFile(t, cfgPath, fmt.Sprintf(`listen: {grpc: "127.0.0.1:0", http: "127.0.0.1:0", admin: "off"}
public_url: %[1]q
log: {level: debug}
resources:
  - name: mcp
    resource: %[2]q
    required_scopes: ["mcp:tools"]
    authorization_servers: [{issuer: %[3]q}]
    allowed_origins: [%[4]q]
`, nginxURL, resource, as.Issuer, allowedOrigin))
	gateway := startProc(t, "extauthz", exec.Command(gatewayBin, "serve", "--config", cfgPath), gwDir)
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
	ready := func(u string) func() bool {
		return func() bool {
			resp, err := plain.Get(u)
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == http.StatusOK
		}
	}
	gateway.waitUntil(t, "readiness (the issuer's keys loaded)", ready("http://"+gatewayHTTP+"/readyz"))

	// nginx exactly as docs/operating.md shows it (deploy/nginx/nginx.conf; the resources it names
	// besides mcp are not configured here and never asked for).
	// The file names two MCP servers; the second is never asked for here, but the suite's
	// substitutions need distinct addresses.
	unused := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(unused.Close)
	ng := startNginx(t, nginx, root, nginxPort, gatewayHTTP, upstream.Listener.Addr().String(), unused.Listener.Addr().String(), releaseNginxPort)
	ng.waitUntil(t, "the protected resource metadata through nginx", ready(nginxURL+"/.well-known/oauth-protected-resource/mcp"))

	// What the browser cannot show: the answers themselves, through nginx.
	t.Run("AnswersThroughNginx", func(t *testing.T) {
		do := func(method string, h map[string]string) *http.Response {
			t.Helper()
			req, _ := http.NewRequest(method, resource, nil)
			for k, v := range h {
				req.Header.Set(k, v)
			}
			resp, err := plain.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp
		}
		resp := do(http.MethodOptions, map[string]string{"Origin": allowedOrigin, "Access-Control-Request-Method": "POST",
			"Access-Control-Request-Headers": "authorization,content-type,mcp-method,mcp-param-region,x-unlisted"})
		ah := strings.ToLower(resp.Header.Get("Access-Control-Allow-Headers"))
		if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Access-Control-Allow-Origin") != allowedOrigin ||
			!strings.Contains(ah, "mcp-param-region") || !strings.Contains(ah, "authorization") || strings.Contains(ah, "x-unlisted") {
			t.Errorf("preflight: %d %v", resp.StatusCode, resp.Header)
		}
		resp = do(http.MethodOptions, map[string]string{"Origin": otherOrigin, "Access-Control-Request-Method": "POST"})
		if resp.StatusCode != http.StatusForbidden || resp.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("preflight from %s: %d %v, want 403 without CORS headers", otherOrigin, resp.StatusCode, resp.Header)
		}
		resp = do(http.MethodPost, map[string]string{"Origin": allowedOrigin, "Mcp-Method": "tools/list"})
		if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("Access-Control-Allow-Origin") != allowedOrigin ||
			!strings.Contains(resp.Header.Get("Access-Control-Expose-Headers"), "WWW-Authenticate") || resp.Header.Get("Vary") != "Origin" {
			t.Errorf("401 to %s: %d %v", allowedOrigin, resp.StatusCode, resp.Header)
		}
		resp = do(http.MethodPost, map[string]string{"Origin": otherOrigin, "Authorization": "Bearer " + tok, "Mcp-Method": "tools/list"})
		if resp.StatusCode != http.StatusForbidden || resp.Header.Get("Access-Control-Allow-Origin") != "" || resp.Header.Get("Access-Control-Expose-Headers") != "" {
			t.Errorf("request from %s: %d %v, want 403 without CORS headers", otherOrigin, resp.StatusCode, resp.Header)
		}
	})

	mark := mcp.len()
	lines := runCORSBrowser(t, node, e2eDir, map[string]any{
		"pages": []string{allowedOrigin + "/", otherOrigin + "/"}, "mcp": resource, "token": tok, "executablePath": chromiumPath,
	})
	var runs []corsPage
	for _, l := range lines {
		var p corsPage
		if json.Unmarshal(l, &p) == nil && p.Event == "page" {
			runs = append(runs, p)
		}
	}
	if len(runs) != 2 {
		t.Fatalf("the browser ran %d pages, want 2:\n%s", len(runs), bytes.Join(lines, []byte("\n")))
	}

	t.Run("AllowedOrigin", func(t *testing.T) {
		p := runs[0]
		if p.Origin != allowedOrigin {
			t.Fatalf("the page's origin is %s, want %s", p.Origin, allowedOrigin)
		}
		r := p.Results
		if f := r["no_token"]; f.Status != http.StatusUnauthorized ||
			!strings.Contains(f.Headers["www-authenticate"], `resource_metadata="`+nginxURL+`/.well-known/oauth-protected-resource/mcp"`) {
			t.Errorf("no token: the page sees %+v, want 401 with the challenge", f)
		}
		var doc struct{ Resource string }
		if f := r["metadata"]; f.Status != http.StatusOK || json.Unmarshal([]byte(f.Body), &doc) != nil || doc.Resource != resource {
			t.Errorf("metadata: the page sees %+v, want the document of %s", f, resource)
		}
		if f := r["bad_token"]; f.Status != http.StatusUnauthorized || !strings.Contains(f.Headers["www-authenticate"], `error="invalid_token"`) {
			t.Errorf("bad token: the page sees %+v, want 401 invalid_token", f)
		}
		if f := r["token"]; f.Status != http.StatusOK || f.Headers["mcp-session-id"] != "s-1" || !strings.Contains(f.Body, `"result"`) {
			t.Errorf("token: the page sees %+v, want the MCP server's answer", f)
		}
		if f := r["unlisted_header"]; f.Error == "" {
			t.Errorf("a header the resource does not allow: the page sees %+v, want the browser to refuse", f)
		}
	})
	t.Run("OtherOrigin", func(t *testing.T) {
		p := runs[1]
		if p.Origin != otherOrigin {
			t.Fatalf("the page's origin is %s, want %s", p.Origin, otherOrigin)
		}
		for _, name := range []string{"no_token", "bad_token", "token"} {
			if f := p.Results[name]; f.Error == "" {
				t.Errorf("%s from %s: the page sees %+v, want nothing (a network error)", name, otherOrigin, f)
			}
		}
	})
	t.Run("WhatReachedTheMCPServer", func(t *testing.T) {
		got := mcp.since(mark)
		if len(got) != 1 {
			t.Fatalf("the MCP server received %d requests, want 1 (the allowed page's request with the token): %v", len(got), got)
		}
		h := got[0].header
		if got[0].method != http.MethodPost || h.Get("Origin") != allowedOrigin || h.Get("Mcp-Method") != "tools/list" ||
			h.Get("Mcp-Param-Region") != "eu" || h.Get("Authorization") != "" || h.Get("X-Extauthz-Client-Id") != serviceClient.ID {
			t.Errorf("the MCP server received %s %v", got[0].method, h)
		}
	})
}

type corsFetch struct {
	Status  int
	Headers map[string]string
	Body    string
	Error   string
}

type corsPage struct {
	Event, URL, Origin string
	Results            map[string]corsFetch
}

// runCORSBrowser runs cors.mjs to its end and returns its output lines.
func runCORSBrowser(t *testing.T, node, dir string, cfg map[string]any) [][]byte {
	t.Helper()
	arg, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), browserTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "cors.mjs", string(arg))
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "TMPDIR="+home, "HOME="+home, "XDG_CONFIG_HOME="+filepath.Join(home, ".config"),
		"XDG_CACHE_HOME="+filepath.Join(home, ".cache"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.SysProcAttr = sysProcAttr()
	cmd.WaitDelay = stopTimeout
	out, err := cmd.Output()
	var lines [][]byte
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	for sc.Scan() {
		lines = append(lines, append([]byte(nil), sc.Bytes()...))
		var e struct {
			Event string
			PID   int
		}
		if json.Unmarshal(sc.Bytes(), &e) == nil && e.Event == "browser" && e.PID > 0 {
			// Only if the script died without closing it.
			t.Cleanup(func() { killBrowser(e.PID) })
		}
	}
	if err != nil {
		t.Fatalf("cors.mjs: %v\nstdout:\n%s\nstderr:\n%s", err, out, stderr.Bytes())
	}
	return lines
}

// corsUpstream is the MCP server behind nginx: it records what reaches it and answers
// tools/list with the CORS headers an MCP server called by browsers sends itself.
type corsUpstream struct {
	mu  sync.Mutex
	got []corsRequest
}

type corsRequest struct {
	method string
	header http.Header
}

func (u *corsUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	u.mu.Lock()
	u.got = append(u.got, corsRequest{r.Method, r.Header.Clone()})
	u.mu.Unlock()
	if o := r.Header.Get("Origin"); o != "" {
		w.Header().Set("Access-Control-Allow-Origin", o)
		w.Header().Set("Access-Control-Expose-Headers", "Mcp-Session-Id")
		w.Header().Set("Vary", "Origin")
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Mcp-Session-Id", "s-1")
	_, _ = w.Write([]byte(`{"jsonrpc":"2.0","id":1,"result":{"tools":[]}}`))
}

func (u *corsUpstream) len() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.got)
}

func (u *corsUpstream) since(mark int) []corsRequest {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]corsRequest(nil), u.got[mark:]...)
}
