package e2e

// The admin status page (issue #25) in a real browser:
//
//	this test ──gRPC Checks──▶ extauthz serve (the built binary) ──▶ a private redis-server
//	          ──POST /revocations──▶ its admin listener
//	Chromium (Debian's, headless) ──GET /──▶ its admin listener: a screenshot
//
// After some traffic — allowed Checks (verified, then cached), denials of every common kind,
// a revocation — Debian's headless Chromium takes a screenshot of the status page, and the
// same page's HTML must carry the figures that traffic produced. The screenshot is compared
// with nothing pixel for pixel: it must exist, be a PNG of the window's size, and the one
// checked in as docs/status-page.png must be one too. `go test ./test/e2e/ -run
// TestStatusPageScreenshot -update` writes this run's screenshot there.

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"image/png"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"golang.org/x/net/html"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/extauthz/extauthz/internal/redistest"
	"github.com/extauthz/extauthz/internal/testkit"
	"github.com/extauthz/extauthz/pkg/check"
	"github.com/extauthz/extauthz/pkg/devissuer"
)

var updateScreenshot = flag.Bool("update", false, "write the status page's screenshot to docs/status-page.png")

const (
	statusShot        = "docs/status-page.png" // from the repository's root
	statusShotWidth   = 1280
	statusShotHeight  = 1100
	screenshotTimeout = 2 * time.Minute // the first launch after install can be slow (chromium.mjs)
)

func TestStatusPageScreenshot(t *testing.T) {
	root, err := testkit.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(chromiumPath); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		t.Fatalf("Chromium not found at %s (%v): %s", chromiumPath, err, chromiumHint)
	}
	gatewayBin := filepath.Join(t.TempDir(), "extauthz")
	if err := buildGateway(context.Background(), root, gatewayBin); err != nil {
		t.Fatalf("building the gateway: %v", err)
	}

	const resource, tools = "https://mcp.example.com/mcp", "https://mcp.example.com/tools"
	redis := redistest.Start(t)
	iss, _ := testkit.Issuer(t, "ES256", "/realms/example", resource, nil)
	adminToken := randomHex(t, 16)
	gwDir := t.TempDir()
	cfgPath := filepath.Join(gwDir, "extauthz.yaml")
	writeFile(t, cfgPath, fmt.Sprintf(`listen: {grpc: "127.0.0.1:0", http: "127.0.0.1:0", admin: "127.0.0.1:0"}
admin: {token: {env: EXTAUTHZ_E2E_ADMIN_TOKEN}}
cache: {redis_url: "redis://%s"}
resources:
  - name: mcp
    resource: %q
    path_prefix: /mcp
    required_scopes: ["mcp:tools"]
    authorization_servers: [{issuer: %q, jwks_uri: %q}]
  - name: tools
    resource: %q
    path_prefix: /tools
    required_scopes: ["mcp:tools", "mcp:admin"]
    authorization_servers: [{issuer: %q, jwks_uri: %q}]
`, redis.Addr(), resource, iss.Issuer(), iss.JWKSURL(), tools, iss.Issuer(), iss.JWKSURL()))
	gateway := startProc(t, "extauthz", exec.Command(gatewayBin, "serve", "--config", cfgPath), gwDir,
		"EXTAUTHZ_E2E_ADMIN_TOKEN="+adminToken)
	gateway.alsoShow(cfgPath)
	var grpcAddr, adminAddr string
	gateway.waitLine(t, "{", func(line string) bool {
		var l struct{ Msg, GRPC, Admin string }
		if json.Unmarshal([]byte("{"+line), &l) != nil || l.Msg != "serving" {
			return false
		}
		grpcAddr, adminAddr = l.GRPC, l.Admin
		return true
	})
	plain := &http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: 10 * time.Second}
	t.Cleanup(plain.CloseIdleConnections)
	gateway.waitUntil(t, "readiness", func() bool {
		resp, err := plain.Get("http://" + adminAddr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	client := authv3.NewAuthorizationClient(conn)
	checkStatus := func(url, tok string) int {
		t.Helper()
		var headers [][2]string
		if tok != "" {
			headers = [][2]string{{"authorization", "Bearer " + tok}}
		}
		req, err := check.EnvoyRequest{Method: "POST", URL: url, Headers: headers}.Proto()
		if err != nil {
			t.Fatal(err)
		}
		resp, err := client.Check(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.GetStatus().GetCode() == 0 {
			return http.StatusOK
		}
		return int(resp.GetDeniedResponse().GetStatus().GetCode())
	}
	mint := func(tok devissuer.Token) string {
		t.Helper()
		if tok.Scopes == nil {
			tok.Scopes = []string{"mcp:tools"}
		}
		s, err := iss.Mint(tok)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}

	// The traffic: 5 users, 40 allowed Checks (5 verified, 35 from the cache); 19 denials.
	allowed := 0
	for i := range 5 {
		tok := mint(devissuer.Token{Subject: fmt.Sprintf("user-%d", i)})
		for range 8 {
			if st := checkStatus(resource, tok); st != http.StatusOK {
				t.Fatalf("user-%d: %d", i, st)
			}
			allowed++
		}
	}
	denials := []struct {
		reason, url, tok string
		n, status        int
	}{
		{"no_credential", resource, "", 6, 401},
		{"malformed", resource, "not-a-jwt", 4, 401},
		{"expired", resource, mint(devissuer.Token{Subject: "late", IssuedAt: time.Now().Add(-2 * time.Hour), TTL: -time.Hour}), 3, 401},
		{"wrong_audience", resource, mint(devissuer.Token{Subject: "lost", Audience: []string{"https://elsewhere.example.com"}}), 2, 401},
		{"insufficient_scope", tools, mint(devissuer.Token{Subject: "narrow", Audience: []string{tools}}), 3, 403},
	}
	want := map[string]string{}
	denied := 0
	for _, d := range denials {
		for range d.n {
			if st := checkStatus(d.url, d.tok); st != d.status {
				t.Fatalf("%s: %d, want %d", d.reason, st, d.status)
			}
		}
		want[d.reason] = strconv.Itoa(d.n)
		denied += d.n
	}
	// A revocation, and the revoked user's token refused.
	revoked := mint(devissuer.Token{Subject: "mallory", IssuedAt: time.Now().Add(-time.Minute)})
	if st := checkStatus(resource, revoked); st != http.StatusOK {
		t.Fatalf("mallory before the revocation: %d", st)
	}
	allowed++
	req, _ := http.NewRequest(http.MethodPost, "http://"+adminAddr+"/revocations", strings.NewReader(`{"sub":"mallory"}`))
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := plain.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /revocations: %d %s", resp.StatusCode, body)
	}
	if st := checkStatus(resource, revoked); st != 401 {
		t.Fatalf("mallory after the revocation: %d", st)
	}
	want["revoked"] = "1"
	denied++

	// The page's figures, as its HTML carries them.
	resp, err = plain.Get("http://" + adminAddr + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET / on the admin listener: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	doc, err := html.Parse(bytes.NewReader(page))
	if err != nil {
		t.Fatal(err)
	}
	if got := textOf(byID(doc, "allowed")); got != strconv.Itoa(allowed) {
		t.Errorf("allowed %q, want %d", got, allowed)
	}
	if got := textOf(byID(doc, "denied")); got != strconv.Itoa(denied) {
		t.Errorf("denied %q, want %d", got, denied)
	}
	got := map[string]string{}
	if tbl := byID(doc, "recent-denials"); tbl != nil {
		for tr := range elements(tbl, "tr") {
			var cells []string
			for td := range elements(tr, "td") {
				cells = append(cells, textOf(td))
			}
			if len(cells) == 2 {
				got[cells[0]] = cells[1]
			}
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("recent denials by reason %v, want %v", got, want)
	}
	if got := textOf(byID(doc, "watermarks")); got != "1" {
		t.Errorf("watermarks %q, want 1", got)
	}
	if got := textOf(byID(doc, "tier-local")); !strings.HasPrefix(got, "local") || !strings.Contains(got, "%") {
		t.Errorf("the local tier's row %q: want a hit ratio", got)
	}
	if got := textOf(byID(doc, "redis-ping")); !strings.HasPrefix(got, "answered in") {
		t.Errorf("Redis: %q", got)
	}
	if !strings.Contains(string(page), iss.ActiveKID()) {
		t.Errorf("the page does not list the issuer's key id %s", iss.ActiveKID())
	}
	for _, secret := range []string{revoked, "mallory", "user-0", adminToken} {
		if strings.Contains(string(page), secret) {
			t.Errorf("the page shows %q", secret)
		}
	}

	// The screenshot, by Debian's Chromium, headless, with the end-to-end suite's flags.
	shot := filepath.Join(t.TempDir(), "status.png")
	screenshot(t, "http://"+adminAddr+"/", shot)
	f, err := os.Open(shot)
	if err != nil {
		t.Fatalf("no screenshot: %v", err)
	}
	cfg, err := png.DecodeConfig(f)
	f.Close()
	if err != nil || cfg.Width != statusShotWidth || cfg.Height != statusShotHeight {
		t.Fatalf("the screenshot is not a %dx%d PNG: %+v, %v", statusShotWidth, statusShotHeight, cfg, err)
	}
	checkedIn := filepath.Join(root, filepath.FromSlash(statusShot))
	if *updateScreenshot {
		b, err := os.ReadFile(shot)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(checkedIn, b, 0o644); err != nil { //nolint:gosec // a picture for the docs
			t.Fatal(err)
		}
		t.Logf("wrote %s", statusShot)
	}
	f, err = os.Open(checkedIn)
	if err != nil {
		t.Fatalf("%s: %v (write it with -update)", statusShot, err)
	}
	defer f.Close()
	if cfg, err := png.DecodeConfig(f); err != nil || cfg.Width != statusShotWidth || cfg.Height != statusShotHeight {
		t.Errorf("%s is not a %dx%d PNG: %+v, %v (write it with -update)", statusShot, statusShotWidth, statusShotHeight, cfg, err)
	}
}

// screenshot has headless Chromium load url and write a PNG of its window to out. The
// browser runs in its own process group, killed whole if it outlives its time.
func screenshot(t *testing.T, url, out string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), screenshotTimeout)
	defer cancel()
	args := append(slices.Clone(requiredChromiumFlags),
		"--no-proxy-server",
		"--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
		"--hide-scrollbars",
		"--user-data-dir="+t.TempDir(),
		fmt.Sprintf("--window-size=%d,%d", statusShotWidth, statusShotHeight),
		"--screenshot="+out,
		url)
	cmd := exec.CommandContext(ctx, chromiumPath, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = stopTimeout
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium --screenshot: %v\n%s", err, logs.String())
	}
}

// byID is the element with the id, nil if none.
func byID(n *html.Node, id string) *html.Node {
	if n.Type == html.ElementNode {
		for _, a := range n.Attr {
			if a.Key == "id" && a.Val == id {
				return n
			}
		}
	}
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		if f := byID(c, id); f != nil {
			return f
		}
	}
	return nil
}

// elements yields n's descendants named tag.
func elements(n *html.Node, tag string) func(func(*html.Node) bool) {
	return func(yield func(*html.Node) bool) {
		var walk func(*html.Node) bool
		walk = func(n *html.Node) bool {
			for c := n.FirstChild; c != nil; c = c.NextSibling {
				if c.Type == html.ElementNode && c.Data == tag && !yield(c) {
					return false
				}
				if !walk(c) {
					return false
				}
			}
			return true
		}
		walk(n)
	}
}

// textOf is an element's text, whitespace collapsed; "" for nil.
func textOf(n *html.Node) string {
	if n == nil {
		return ""
	}
	var b strings.Builder
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.TextNode {
			b.WriteString(n.Data)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return strings.Join(strings.Fields(b.String()), " ")
}
