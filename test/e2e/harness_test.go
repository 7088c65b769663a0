package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/extauthz/extauthz/internal/oidctest"
	"github.com/extauthz/extauthz/internal/testkit"
)

// ---------------------------------------------------------------------------
// Prerequisites
// ---------------------------------------------------------------------------

// checkNodeDeps returns the node binary after checking that test/e2e's packages are
// installed at the versions package.json pins, and that the authorization server's are.
func checkNodeDeps(t *testing.T, e2eDir string) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node not found in PATH (%v): the end-to-end tests need Node.js 20.19 or later; then %s", err, depsHint)
	}
	var pkg struct{ Dependencies map[string]string }
	if err := json.Unmarshal(readFile(t, filepath.Join(e2eDir, "package.json")), &pkg); err != nil {
		t.Fatalf("test/e2e/package.json: %v", err)
	}
	for name, want := range pkg.Dependencies {
		b, err := os.ReadFile(filepath.Join(e2eDir, "node_modules", name, "package.json"))
		if err != nil {
			t.Fatalf("npm package %s is not installed in test/e2e/node_modules (%v): %s", name, err, depsHint)
		}
		var got struct{ Version string }
		if json.Unmarshal(b, &got) != nil || got.Version != want {
			t.Fatalf("npm package %s is %q in test/e2e/node_modules, package.json pins %q: %s", name, got.Version, want, depsHint)
		}
	}
	if _, err := os.Stat(filepath.Join(e2eDir, "..", "authserver", "node_modules", "oidc-provider", "package.json")); err != nil {
		t.Fatalf("oidc-provider is not installed in test/authserver/node_modules (%v): %s", err, depsHint)
	}
	return node
}

// findNginx returns the nginx binary (Debian installs it in /usr/sbin, which a non-root PATH
// may lack).
func findNginx(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("nginx"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/nginx"); err == nil {
		return "/usr/sbin/nginx"
	}
	t.Fatalf("nginx not found in PATH or /usr/sbin: %s", depsHint)
	return ""
}

// buildGateway builds ./cmd/extauthz into bin: about 5 s when the build cache holds the
// dependencies (after go build or go vet), over a minute from an empty cache.
func buildGateway(ctx context.Context, root, bin string) error {
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go") //nolint:staticcheck // the toolchain running this test, when it is where it was built
	if _, err := os.Stat(goBin); err != nil {
		goBin = "go"
	}
	cmd := exec.CommandContext(ctx, goBin, "build", "-o", bin, "./cmd/extauthz")
	cmd.Dir = root
	cmd.SysProcAttr = sysProcAttr()
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%v\n%s", err, out)
	}
	return nil
}

// ---------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------

// proc is a process started for the test and stopped by PID (SIGTERM, then SIGKILL) when
// the test ends; its output is printed if the test failed (or with E2E_VERBOSE=1).
type proc struct {
	name  string
	cmd   *exec.Cmd
	logs  *testkit.LockedBuffer
	done  chan struct{}
	err   error
	files []string // shown with the output
}

func startProc(t *testing.T, name string, cmd *exec.Cmd, dir string, env ...string) *proc {
	t.Helper()
	p := &proc{name: name, cmd: cmd, logs: &testkit.LockedBuffer{}, done: make(chan struct{})}
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = p.logs, p.logs
	cmd.SysProcAttr = sysProcAttr()
	cmd.WaitDelay = stopTimeout
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() || os.Getenv("E2E_VERBOSE") != "" {
			t.Logf("%s", p.report())
		}
	})
	return p
}

func (p *proc) alsoShow(path string) { p.files = append(p.files, path) }

func (p *proc) report() string {
	var b strings.Builder
	fmt.Fprintf(&b, "==== %s (pid %d, %v) output:\n%s", p.name, p.cmd.Process.Pid, p.cmd.ProcessState, p.logs.String())
	for _, f := range p.files {
		c, err := os.ReadFile(f)
		if err != nil {
			fmt.Fprintf(&b, "\n==== %s: %v", f, err)
			continue
		}
		fmt.Fprintf(&b, "\n==== %s:\n%s", f, c)
	}
	return b.String()
}

func (p *proc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(stopTimeout):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// waitLine waits until a line of the process's output starts with prefix and ok accepts the
// rest of it.
func (p *proc) waitLine(t *testing.T, prefix string, ok func(rest string) bool) {
	t.Helper()
	p.waitUntil(t, "its ready line", func() bool {
		for _, line := range strings.Split(p.logs.String(), "\n") {
			if rest, found := strings.CutPrefix(line, prefix); found && ok(rest) {
				return true
			}
		}
		return false
	})
}

// lines returns what follows prefix on each line of the process's output that starts with it.
func (p *proc) lines(prefix string) []string {
	var out []string
	for _, line := range strings.Split(p.logs.String(), "\n") {
		if rest, found := strings.CutPrefix(line, prefix); found {
			out = append(out, rest)
		}
	}
	return out
}

// waitUntil polls ok until it is true; the test fails at once if the process exits, and after
// startTimeout.
func (p *proc) waitUntil(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(startTimeout)
	for !ok() {
		select {
		case <-p.done:
			t.Fatalf("%s exited while waiting for %s (%v):\n%s", p.name, what, p.err, p.report())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: timed out after %v waiting for %s:\n%s", p.name, startTimeout, what, p.report())
		}
	}
}

// ---------------------------------------------------------------------------
// The Node client
// ---------------------------------------------------------------------------

// event is one JSON line of client.mjs or client-v2.mjs.
type event map[string]any

func (e event) is(name string) bool { return e["event"] == name }
func (e event) s(k string) string   { return str(e[k]) }
func (e event) f(k string) float64  { v, _ := e[k].(float64); return v }
func (e event) m(k string) event    { v, _ := e[k].(map[string]any); return event(v) }
func (e event) status() int         { return int(e.f("status")) }
func (e event) jsonrpcMethod() string {
	return e.m("body").m("jsonrpc").s("method")
}
func (e event) jsonrpcName() string { return e.m("body").m("jsonrpc").s("name") }

type clientRun struct {
	events []event
	err    error // how the script exited, when it was allowed to fail
}

func (r *clientRun) filter(keep func(event) bool) []event {
	var out []event
	for _, e := range r.events {
		if keep(e) {
			out = append(out, e)
		}
	}
	return out
}

func (r *clientRun) all(name string) []event {
	return r.filter(func(e event) bool { return e.is(name) })
}

func (r *clientRun) one(t *testing.T, name string) event {
	t.Helper()
	all := r.all(name)
	if len(all) == 0 {
		t.Fatalf("the client printed no %q event", name)
	}
	return all[0]
}

func (r *clientRun) toolResult(t *testing.T, tool string) event {
	t.Helper()
	for _, e := range r.all("tool_result") {
		if e.s("tool") == tool {
			return e
		}
	}
	t.Fatalf("the client printed no result of %s", tool)
	return nil
}

type step struct {
	what  string
	match func(event) bool
}

// inOrder finds the steps, each after the previous one, and returns the matching events.
func (r *clientRun) inOrder(t *testing.T, steps ...step) []event {
	t.Helper()
	var out []event
	i := 0
	for _, s := range steps {
		for i < len(r.events) && !s.match(r.events[i]) {
			i++
		}
		if i == len(r.events) {
			t.Fatalf("step %q not found after %d earlier steps (the client's log is printed below)", s.what, len(out))
		}
		out = append(out, r.events[i])
		i++
	}
	return out
}

// runClient runs client.mjs (SDK 1.x) with cfg to completion and returns its events. Its
// output is printed if the test fails (or always, with E2E_VERBOSE=1 in the environment).
func (st *stack) runClient(t *testing.T, cfg map[string]any) *clientRun {
	t.Helper()
	return st.runScript(t, "client.mjs", cfg, true)
}

// runClientV2 runs client-v2.mjs (SDK 2.x, MCP 2026-07-28) as runClient runs client.mjs.
func (st *stack) runClientV2(t *testing.T, cfg map[string]any) *clientRun {
	t.Helper()
	return st.runScript(t, "client-v2.mjs", cfg, true)
}

// runScript runs a client script; a script that exits with an error fails the test when
// mustSucceed, and is returned with its error otherwise.
func (st *stack) runScript(t *testing.T, script string, cfg map[string]any, mustSucceed bool) *clientRun {
	t.Helper()
	arg, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), clientTimeout)
	defer cancel()
	var stdout, stderr testkit.LockedBuffer
	cmd := exec.CommandContext(ctx, st.node, script, string(arg))
	cmd.Dir = st.e2eDir
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.SysProcAttr = sysProcAttr()
	cmd.WaitDelay = stopTimeout
	began := time.Now()
	runErr := cmd.Run()
	elapsed := time.Since(began)
	t.Cleanup(func() {
		if t.Failed() || os.Getenv("E2E_VERBOSE") != "" {
			t.Logf("==== %s %s (%v, %v) stdout:\n%s\n==== stderr:\n%s", script, arg, elapsed.Round(time.Millisecond), runErr, stdout.String(), stderr.String())
		}
	})
	run := &clientRun{}
	sc := bufio.NewScanner(strings.NewReader(stdout.String()))
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	for sc.Scan() {
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("%s printed a line that is not JSON: %q", script, sc.Text())
		}
		run.events = append(run.events, e)
	}
	if runErr != nil && (mustSucceed || ctx.Err() != nil) {
		msg := ""
		if errs := run.all("error"); len(errs) > 0 {
			msg = errs[0].s("message")
		}
		t.Fatalf("%s failed after %v (%v): %s", script, elapsed.Round(time.Millisecond), runErr, msg)
	}
	run.err = runErr
	t.Logf("%s %s: %d events in %v (%v)", script, cfg["scenario"], len(run.events), elapsed.Round(time.Millisecond), runErr)
	return run
}

// ---------------------------------------------------------------------------
// The recorder between nginx and the MCP server
// ---------------------------------------------------------------------------

// recorded is a request as the MCP server received it.
type recorded struct {
	Method, Path       string
	Header             http.Header
	RPCMethod, RPCName string // of a JSON-RPC POST body
}

func (r recorded) String() string {
	return fmt.Sprintf("%s %s %s %s", r.Method, r.Path, r.RPCMethod, r.RPCName)
}

// recorder is a streaming reverse proxy that keeps every request's headers.
type recorder struct {
	addr string
	mu   sync.Mutex
	reqs []recorded
}

func startRecorder(t *testing.T, upstream string) *recorder {
	t.Helper()
	rec := &recorder{}
	target := &url.URL{Scheme: "http", Host: upstream}
	var errLog testkit.LockedBuffer
	proxy := &httputil.ReverseProxy{
		Rewrite:       func(pr *httputil.ProxyRequest) { pr.SetURL(target) },
		FlushInterval: -1, // every write at once: SSE
		ErrorLog:      log.New(&errLog, "", log.Lmicroseconds),
		// The SDK's server asks nginx not to buffer its SSE answers (X-Accel-Buffering: no);
		// without that header, nginx's own configuration must keep the stream unbuffered,
		// which is what the streaming scenario checks.
		ModifyResponse: func(r *http.Response) error {
			r.Header.Del("X-Accel-Buffering")
			return nil
		},
	}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// An MCP server's own error, for the proxies to pass on untouched.
		if s, ok := strings.CutPrefix(r.URL.Path, "/e2e-upstream-status/"); ok {
			if code, err := strconv.Atoi(s); err == nil && code >= 400 && code <= 599 {
				w.Header().Set("Content-Type", "text/plain")
				w.WriteHeader(code)
				_, _ = io.WriteString(w, upstreamStatusBody)
				return
			}
		}
		entry := recorded{Method: r.Method, Path: r.URL.RequestURI(), Header: r.Header.Clone()}
		if r.Method == http.MethodPost && r.Body != nil {
			body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			var msg struct {
				Method string
				Params struct{ Name, URI string }
			}
			if json.Unmarshal(body, &msg) == nil {
				entry.RPCMethod = msg.Method
				entry.RPCName = msg.Params.Name
				if entry.RPCName == "" {
					entry.RPCName = msg.Params.URI
				}
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		rec.mu.Lock()
		rec.reqs = append(rec.reqs, entry)
		rec.mu.Unlock()
		proxy.ServeHTTP(w, r)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rec.addr = ln.Addr().String()
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		_ = srv.Close()
		if t.Failed() || os.Getenv("E2E_VERBOSE") != "" {
			rec.mu.Lock()
			defer rec.mu.Unlock()
			var b strings.Builder
			for i, r := range rec.reqs {
				h := r.Header.Clone()
				if h.Get("Authorization") != "" {
					h.Set("Authorization", "(redacted)")
				}
				fmt.Fprintf(&b, "%3d %s %v\n", i, r, h)
			}
			t.Logf("==== recorder %s: requests received by the MCP server:\n%s==== proxy errors:\n%s", rec.addr, b.String(), errLog.String())
		}
	})
	return rec
}

func (rec *recorder) len() int {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return len(rec.reqs)
}

func (rec *recorder) since(mark int) []recorded {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return slices.Clone(rec.reqs[mark:])
}

// ---------------------------------------------------------------------------
// HTTP from the test
// ---------------------------------------------------------------------------

type response struct {
	StatusCode int
	Header     http.Header
	Body       string
}

// post sends an MCP POST with a bearer token and extra headers, as curl would.
func (st *stack) post(t *testing.T, u, token, body string, extra map[string]string) response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Authorization", "Bearer "+token)
	for k, v := range extra {
		req.Header.Set(k, v)
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

// send sends a request as a client would, with the path as written (escapes kept) and, when
// host is not empty, that Host header.
func (st *stack) send(t *testing.T, method, u, host string, headers map[string]string, body string) response {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := st.http.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		t.Fatalf("%s %s: reading the answer: %v", method, u, err)
	}
	return response{StatusCode: resp.StatusCode, Header: resp.Header, Body: string(b)}
}

// get sends a GET.
func (st *stack) get(t *testing.T, u string) response {
	t.Helper()
	resp, err := st.http.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		t.Fatalf("GET %s: reading the answer: %v", u, err)
	}
	return response{StatusCode: resp.StatusCode, Header: resp.Header, Body: string(b)}
}

// status is the status of GET u, 0 if there was no answer within a second.
func (st *stack) status(u string) int {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0
	}
	resp, err := st.http.Do(req)
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func (st *stack) authServerMetadata(t *testing.T) oidctest.Metadata {
	t.Helper()
	st.mdOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		st.md, st.mdErr = st.as.Metadata(ctx)
	})
	if st.mdErr != nil {
		t.Fatal(st.mdErr)
	}
	return st.md
}

// ---------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------

// reservePort holds a free port on 127.0.0.1 for nginx, whose address must be known before
// the authorization server and the gateway start; release frees it just before nginx binds
// it, so that no other process can be given it in the meantime.
func reservePort(t *testing.T) (port int, release func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	release = func() { once.Do(func() { _ = ln.Close() }) }
	t.Cleanup(release)
	return ln.Addr().(*net.TCPAddr).Port, release
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func str(v any) string { s, _ := v.(string); return s }

func strs(v any) []string {
	l, _ := v.([]any)
	out := make([]string, 0, len(l))
	for _, x := range l {
		out = append(out, str(x))
	}
	return out
}

var scopeRE = regexp.MustCompile(`(?:^|[\s,])scope="([^"]*)"`)

// scopeParam is the scope parameter of a WWW-Authenticate challenge, split.
func scopeParam(www string) []string {
	m := scopeRE.FindStringSubmatch(www)
	if m == nil {
		return nil
	}
	return strings.Fields(m[1])
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(slices.Compact(a), slices.Compact(b))
}
