package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/extauthz/extauthz/internal/redistest"
	"github.com/extauthz/extauthz/internal/testkit"
	"github.com/extauthz/extauthz/pkg/config"
	"github.com/extauthz/extauthz/pkg/devissuer"
)

// syncBuffer is an io.Writer safe to read while a command writes to it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// waitFor polls until f returns true; a wait, not a timing assertion.
func waitFor(t *testing.T, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// runCmd runs the CLI in-process and returns its exit code and output.
func runCmd(ctx context.Context, args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(ctx, args, &out, &errb)
	return code, out.String(), errb.String()
}

func startIssuer(t *testing.T, audience string) (*devissuer.Issuer, *httptest.Server) {
	t.Helper()
	return testkit.Issuer(t, "RS256", "/realms/test", audience, nil)
}

func TestServeAndCheckCommand(t *testing.T) {
	iss, _ := startIssuer(t, "https://mcp.example.com/mcp")
	cfgPath := filepath.Join(t.TempDir(), "extauthz.yaml")
	cfg := fmt.Sprintf(`
listen: {grpc: "127.0.0.1:0", http: "127.0.0.1:0", admin: "127.0.0.1:0"}
public_url: "https://mcp.example.com"
cache: {redis_url: "", max_ttl: 5m, negative_ttl: 10s}
grpc: {stream_workers: 0} # a goroutine per Check; every other test runs the default workers
# A headroom far above this process's heap, which the package's other tests share (under
# -race the compact cache tier is on the Go heap too): the default 32 MiB can be below it.
runtime: {gc_headroom_bytes: 1073741824}
resources:
  - name: mcp
    resource: "https://mcp.example.com/mcp"
    hosts: ["mcp.example.com"]
    path_prefix: /mcp
    authorization_servers:
      - issuer: %q
    scopes_supported: ["mcp:tools"]
    required_scopes: ["mcp:tools"]
`, iss.Issuer())
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var logs syncBuffer
	done := make(chan int)
	go func() { done <- run(ctx, []string{"serve", "--config", cfgPath}, io.Discard, &logs) }()
	defer func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("serve exited %d after SIGTERM-equivalent; logs:\n%s", code, logs.String())
		}
	}()

	var addrs struct{ GRPC, HTTP, Admin string }
	waitFor(t, "the serving log line", func() bool {
		for _, line := range strings.Split(logs.String(), "\n") {
			var l map[string]any
			if json.Unmarshal([]byte(line), &l) == nil && l["msg"] == "serving" {
				addrs.GRPC, addrs.HTTP, addrs.Admin = l["grpc"].(string), l["http"].(string), l["admin"].(string)
				return true
			}
		}
		return false
	})
	waitFor(t, "readiness", func() bool {
		resp, err := http.Get("http://" + addrs.HTTP + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})

	t.Run("gRPC health is SERVING once keys are loaded", func(t *testing.T) {
		conn, err := grpc.NewClient(addrs.GRPC, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		waitFor(t, "SERVING", func() bool {
			r, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: "envoy.service.auth.v3.Authorization"})
			return err == nil && r.Status == healthpb.HealthCheckResponse_SERVING
		})
	})

	tok, err := iss.Mint(devissuer.Token{Subject: "alice", ClientID: "cli", Scopes: []string{"mcp:tools"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Run("allowed", func(t *testing.T) {
		code, out, errOut := runCmd(ctx, "check", "--addr", addrs.GRPC, "--url", "https://mcp.example.com/mcp", "--method", "POST", "--token", tok)
		if code != 0 {
			t.Fatalf("exit %d: %s%s", code, out, errOut)
		}
		for _, want := range []string{"decision: ALLOW", "x-extauthz-subject: alice", "x-extauthz-client-id: cli", "x-extauthz-scopes: mcp:tools", "upstream request headers removed: authorization"} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
	})
	t.Run("no token", func(t *testing.T) {
		code, out, _ := runCmd(ctx, "check", "--addr", addrs.GRPC, "--url", "https://mcp.example.com/mcp", "--raw-headers")
		want := "www-authenticate: Bearer scope=\"mcp:tools\", resource_metadata=\"https://mcp.example.com/.well-known/oauth-protected-resource/mcp\""
		if code != 1 || !strings.Contains(out, "status: 401") || !strings.Contains(out, want) {
			t.Fatalf("exit %d, output:\n%s", code, out)
		}
	})
	t.Run("unreachable address", func(t *testing.T) {
		code, _, errOut := runCmd(ctx, "check", "--addr", "127.0.0.1:1", "--url", "https://mcp.example.com/mcp", "--timeout", "2s")
		if code != 2 || errOut == "" {
			t.Fatalf("exit %d, stderr %q; want 2 with an error", code, errOut)
		}
	})
	t.Run("metadata on the HTTP listener", func(t *testing.T) {
		for _, p := range []string{"/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource"} {
			req, _ := http.NewRequest("GET", "http://"+addrs.HTTP+p, nil)
			req.Host = "mcp.example.com"
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var doc map[string]any
			if resp.StatusCode != 200 || json.Unmarshal(body, &doc) != nil || doc["resource"] != "https://mcp.example.com/mcp" {
				t.Errorf("%s: %d %s", p, resp.StatusCode, body)
			}
		}
	})
	t.Run("admin listener", func(t *testing.T) {
		resp, err := http.Get("http://" + addrs.Admin + "/healthz")
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("admin healthz: %v %v", resp, err)
		}
		resp.Body.Close()
	})
	t.Run("GC headroom in force", func(t *testing.T) {
		// runtime.gc_headroom_bytes (1 GiB) over this heap raises the GC
		// percentage well above GOGC's 100.
		resp, err := http.Get("http://" + addrs.Admin + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var pct float64
		for _, line := range strings.Split(string(body), "\n") {
			if v, ok := strings.CutPrefix(line, "go_gc_gogc_percent "); ok {
				pct, _ = strconv.ParseFloat(v, 64)
			}
		}
		if pct <= 100 {
			t.Errorf("go_gc_gogc_percent = %v while serving, want above 100", pct)
		}
	})
}

// devBannerRun is what a dev banner tells a user to run.
type devBannerRun struct {
	withToken    map[string][]string // check commands with a token, by the URL's path
	withoutToken []string
	metadataURL  string
}

// startDev runs dev with args until the test ends and reads its banner.
func startDev(t *testing.T, args ...string) devBannerRun {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	var stderr syncBuffer
	go func() {
		code := run(ctx, append([]string{"dev", "--grpc", "127.0.0.1:0", "--http", "127.0.0.1:0", "--admin", "off", "--log-level", "warn"}, args...), pw, &stderr)
		pw.Close() // ends the banner's reading below if dev fails to start
		done <- code
	}()
	t.Cleanup(func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("dev exited %d\n%s", code, stderr.String())
		}
	})
	b := devBannerRun{withToken: map[string][]string{}}
	sc := bufio.NewScanner(pr)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "Stop with Ctrl-C." {
			break
		}
		if i := strings.Index(line, " check --addr "); i >= 0 {
			args := strings.Fields(line[i+1:])
			if !strings.Contains(line, "--token") {
				b.withoutToken = args
				continue
			}
			for k, a := range args {
				if a == "--url" && k+1 < len(args) {
					if u, err := url.Parse(args[k+1]); err == nil {
						b.withToken[u.Path] = args
					}
				}
			}
		}
		if strings.HasPrefix(line, "curl http") && strings.Contains(line, "oauth-protected-resource") {
			b.metadataURL = strings.TrimPrefix(line, "curl ")
		}
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	return b
}

func TestDevPrintsAWorkingTokenAndCommand(t *testing.T) {
	b := startDev(t)
	withToken := b.withToken["/mcp"]
	if withToken == nil || b.withoutToken == nil || b.metadataURL == "" {
		t.Fatal("the banner does not print both check commands and the metadata URL")
	}
	ctx := context.Background()
	code, out, errOut := runCmd(ctx, withToken...)
	if code != 0 || !strings.Contains(out, "decision: ALLOW") || !strings.Contains(out, "x-extauthz-subject: dev-user") ||
		!strings.Contains(out, "upstream request headers removed: authorization") {
		t.Fatalf("the printed command with the printed token: exit %d\n%s%s", code, out, errOut)
	}
	code, out, _ = runCmd(ctx, b.withoutToken...)
	if code != 1 || !strings.Contains(out, "status: 401") || !regexp.MustCompile(`resource_metadata="http://127\.0\.0\.1:\d+/\.well-known/oauth-protected-resource/mcp"`).MatchString(out) {
		t.Fatalf("the printed command without a token: exit %d\n%s", code, out)
	}
	resp, err := http.Get(b.metadataURL)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET %s: %v %v", b.metadataURL, resp, err)
	}
	resp.Body.Close()
}

// upstreamCredential is how check describes the credential dev's second
// resource mints: an exchange of dev-user's token for the upstream API,
// with the gateway's client as the actor.
var upstreamCredential = regexp.MustCompile(`(?m)^  authorization: Bearer \[redacted upstream credential: \d+ bytes, sha256 [0-9a-f]{12}…; ` +
	`JWT iss http://127\.0\.0\.1:\d+/dev, sub dev-user, aud "https://upstream\.example/api", exp [0-9TZ:-]+, act \{"sub":"extauthz-dev"\}\]$`)

// TestDevUpstreamCredential: the banner's command for the second resource
// is allowed, and the MCP server behind it gets a token minted for it by
// exchange at the dev issuer — never the client's, which stays refused
// there — whether the cache is in process or on Redis; and the secrets dev
// made up for the run are off the disk once it serves.
func TestDevUpstreamCredential(t *testing.T) {
	for _, tc := range []struct {
		name string
		args func(t *testing.T) []string
	}{
		{"in process", func(*testing.T) []string { return nil }},
		{"on Redis", func(t *testing.T) []string { return []string{"--redis", "redis://" + redistest.Start(t).Addr()} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tmp := t.TempDir()
			t.Setenv("TMPDIR", tmp) // where dev writes its secrets
			b := startDev(t, tc.args(t)...)
			cmd := b.withToken["/mcp-upstream"]
			if cmd == nil {
				t.Fatal("the banner prints no check command for /mcp-upstream")
			}
			ctx := context.Background()
			for range 2 { // minted, then from the cache
				code, out, errOut := runCmd(ctx, cmd...)
				if code != 0 || !strings.Contains(out, "decision: ALLOW") || !upstreamCredential.MatchString(out) ||
					strings.Contains(out, "headers removed: authorization") {
					t.Fatalf("the printed command for /mcp-upstream: exit %d\n%s%s", code, out, errOut)
				}
			}
			// Two resources apart: /mcp's token is not for /mcp-upstream.
			other := append([]string(nil), b.withToken["/mcp"]...)
			for k := range other {
				if strings.HasSuffix(other[k], "/mcp") && other[k-1] == "--url" {
					other[k] += "-upstream"
				}
			}
			if code, out, _ := runCmd(ctx, other...); code != 1 || !strings.Contains(out, "status: 401") {
				t.Errorf("/mcp's token at /mcp-upstream: exit %d\n%s", code, out)
			}
			if left, err := os.ReadDir(tmp); err != nil || len(left) != 0 {
				t.Errorf("dev left %v in its temporary directory (%v)", left, err)
			}
		})
	}
}

func TestCheckConfigCommand(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	for path, text := range map[string]string{
		good: "resources:\n  - name: mcp\n    resource: https://mcp.example.com/mcp\n    authorization_servers: [{issuer: https://auth.example.com}]\n",
		bad:  "resources:\n  - name: mcp\n    resource: https://mcp.example.com/mcp\n    authorization_servers: [{isuer: https://auth.example.com}]\n",
	} {
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if code, out, _ := runCmd(context.Background(), "check-config", good); code != 0 || !strings.Contains(out, "ok") {
		t.Errorf("good config: exit %d %q", code, out)
	}
	code, _, errOut := runCmd(context.Background(), "check-config", bad)
	if code != 1 || !strings.Contains(errOut, "resources[0].authorization_servers[0].isuer: unknown key") {
		t.Errorf("bad config: exit %d, stderr:\n%s", code, errOut)
	}
	if code, _, _ := runCmd(context.Background(), "check-config", filepath.Join(dir, "missing.yaml")); code != 1 {
		t.Errorf("missing file: exit %d", code)
	}

	// Two resources told apart only by host: valid, with a warning that the
	// Host header chooses between them unless routes name them; none once
	// the routes must.
	byHost := filepath.Join(dir, "by-host.yaml")
	const twoHosts = "resources:\n" +
		"  - name: a\n    resource: https://a.example.com/mcp\n    authorization_servers: [{issuer: https://auth.example.com}]\n" +
		"  - name: b\n    resource: https://b.example.com/mcp\n    authorization_servers: [{issuer: https://auth.example.com}]\n"
	if err := os.WriteFile(byHost, []byte(twoHosts), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCmd(context.Background(), "check-config", byHost)
	if code != 0 || !strings.Contains(out, "ok") || !strings.Contains(errOut, "warning: resources[0] and resources[1] differ only by host") {
		t.Errorf("resources differing only by host: exit %d, stdout %q, stderr %q; want ok with a warning", code, out, errOut)
	}
	if err := os.WriteFile(byHost, []byte("require_explicit_resource: true\n"+twoHosts), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := runCmd(context.Background(), "check-config", byHost); code != 0 || strings.Contains(errOut, "warning") {
		t.Errorf("with require_explicit_resource: exit %d, stderr %q; want no warning", code, errOut)
	}
}

func TestVersionAndUsage(t *testing.T) {
	if code, out, _ := runCmd(context.Background(), "version"); code != 0 || !strings.HasPrefix(out, "extauthz ") {
		t.Errorf("version: %d %q", code, out)
	}
	if code, _, errOut := runCmd(context.Background(), "frobnicate"); code != 2 || !strings.Contains(errOut, "unknown command") {
		t.Errorf("unknown command: %d %q", code, errOut)
	}
	if code, _, errOut := runCmd(context.Background(), "serve"); code != 1 || !strings.Contains(errOut, "--config") {
		t.Errorf("serve without config: %d %q", code, errOut)
	}
}

// TestShutdownDrainsInFlightChecks: a Check still waiting on a JWKS fetch
// when the shutdown signal arrives gets its answer.
func TestShutdownDrainsInFlightChecks(t *testing.T) {
	iss, srv := startIssuer(t, "https://mcp.example.com/mcp")
	var gated atomic.Bool
	release := make(chan struct{})
	fetching := make(chan struct{}, 1)
	inner := srv.Config.Handler
	srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/jwks.json") && gated.Load() {
			select {
			case fetching <- struct{}{}:
			default:
			}
			<-release
		}
		inner.ServeHTTP(w, r)
	})
	cfg := &config.Config{
		Listen: config.Listen{GRPC: "127.0.0.1:0", HTTP: "off", Admin: "off"},
		Resources: []config.Resource{{Name: "mcp", Resource: "https://mcp.example.com/mcp",
			AuthorizationServers: []config.AuthorizationServer{{Issuer: iss.Issuer(), JWKSURI: iss.JWKSURL()}}}},
	}
	cfg.ApplyDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	var now atomic.Int64
	now.Store(time.Now().UnixNano())
	clock := func() time.Time { return time.Unix(0, now.Load()) }
	a, err := newApp(cfg, newLogger(io.Discard, "error", "json"), appOptions{now: clock})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error)
	go func() { served <- a.run(ctx) }()
	waitFor(t, "keys", func() bool { ok, _ := a.ready(); return ok })

	// The issuer rotates; the first token with the new kid makes the
	// gateway refetch the key set, and that fetch hangs.
	kid, err := iss.AddKey("RS256")
	if err != nil {
		t.Fatal(err)
	}
	iss.Use(kid)
	tok, _ := iss.Mint(devissuer.Token{Subject: "alice"})
	gated.Store(true)
	now.Add(int64(time.Minute)) // past the unknown-kid refetch interval
	type result struct {
		code int
		out  string
	}
	results := make(chan result)
	go func() {
		code, out, errOut := runCmd(context.Background(), "check", "--addr", a.lnGRPC.Addr().String(), "--url", "https://mcp.example.com/mcp", "--token", tok, "--timeout", "20s")
		results <- result{code, out + errOut}
	}()
	<-fetching // the Check is in flight, waiting for keys
	cancel()   // SIGTERM
	waitFor(t, "the health status to turn NOT_SERVING", func() bool {
		return healthStatus(a) == healthpb.HealthCheckResponse_NOT_SERVING
	})
	close(release)
	r := <-results
	if r.code != 0 || !strings.Contains(r.out, "decision: ALLOW") {
		t.Fatalf("in-flight Check during shutdown: exit %d\n%s", r.code, r.out)
	}
	if err := <-served; err != nil {
		t.Fatalf("run: %v", err)
	}
}

func healthStatus(a *app) healthpb.HealthCheckResponse_ServingStatus {
	r, err := a.health.Check(context.Background(), &healthpb.HealthCheckRequest{})
	if err != nil {
		return healthpb.HealthCheckResponse_UNKNOWN
	}
	return r.Status
}

// TestCheckConfigOnTestdata runs the command on every file of the config
// package's testdata: valid ones exit 0, invalid ones exit 1 and print
// exactly the errors the parser reports (whose texts that package's tests
// pin down one by one).
func TestCheckConfigOnTestdata(t *testing.T) {
	files, err := filepath.Glob("../../pkg/config/testdata/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			code, out, errOut := runCmd(context.Background(), "check-config", f)
			_, loadErr := config.Load(f)
			switch {
			case strings.HasPrefix(filepath.Base(f), "valid-"):
				if code != 0 || out != f+": ok\n" {
					t.Errorf("exit %d, stdout %q, stderr %q", code, out, errOut)
				}
			case strings.HasPrefix(filepath.Base(f), "invalid-"):
				if code != 1 || loadErr == nil || errOut != f+": invalid\n"+loadErr.Error()+"\n" {
					t.Errorf("exit %d, stderr %q", code, errOut)
				}
			}
		})
	}
}

// TestProviderExamples: every provider example docs/configuration.md and
// docs/upstream-credentials.md point to exists and passes check-config, and
// the upstream credential examples are shown in their page as they are.
func TestProviderExamples(t *testing.T) {
	for _, name := range []string{"auth0", "okta", "entra-id", "cognito", "keycloak", "upstream-keycloak", "upstream-okta", "upstream-entra-id"} {
		f := filepath.Join("..", "..", "examples", name+".yaml")
		code, out, errOut := runCmd(context.Background(), "check-config", f)
		if code != 0 || out != f+": ok\n" {
			t.Errorf("%s: exit %d, stdout %q, stderr %q", f, code, out, errOut)
		}
	}
}

func TestUpstreamExamplesShownAsTheyAre(t *testing.T) {
	page, err := os.ReadFile(filepath.Join("..", "..", "docs", "upstream-credentials.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"upstream-keycloak", "upstream-okta", "upstream-entra-id"} {
		b, err := os.ReadFile(filepath.Join("..", "..", "examples", name+".yaml"))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(page), "```yaml\n"+string(b)+"```") {
			t.Errorf("docs/upstream-credentials.md does not show examples/%s.yaml as it is", name)
		}
	}
}
