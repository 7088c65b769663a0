package monitoring_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql/parser"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/extauthz/extauthz/internal/childproc"
	"github.com/extauthz/extauthz/internal/redistest"
	"github.com/extauthz/extauthz/internal/testkit"
	"github.com/extauthz/extauthz/pkg/check"
	"github.com/extauthz/extauthz/pkg/devissuer"
)

const (
	jwtResource    = "https://mcp.example.com/mcp"
	opaqueResource = "https://mcp.example.com/opaque"
	// The introspection endpoint's answers, by token.
	opaqueActive = "opaque-active-token"
	opaqueBroken = "opaque-token-the-server-fails-on"
)

// exposition is what one scrape of /metrics showed: the label names of
// each sample name (a histogram's _bucket, _sum and _count each, a
// summary's quantiles under its own name).
type exposition map[string]map[string]bool

// scrapedLabels are added by Prometheus (and the Prometheus Operator) at
// scrape time, never by the gateway.
var scrapedLabels = map[string]bool{"job": true, "instance": true, "namespace": true}

// TestEveryMetricExists starts the gateway as an operator runs it (the
// built binary, its config file, Redis, a JWT issuer and an introspecting
// one), sends it Checks — allowed, denied, a cache hit, an introspection
// that works and one that fails — and a revocation, scrapes its admin
// listener's /metrics, and checks that every metric each panel's and each
// alert's query names is there, with every label the query selects or
// groups by.
func TestEveryMetricExists(t *testing.T) {
	exp := runGatewayWithTraffic(t)
	var qs []query
	qs = append(qs, dashboardQueries(t)...)
	qs = append(qs, ruleQueries(t)...)
	for _, q := range qs {
		expr, err := promql.ParseExpr(q.expr)
		if err != nil {
			t.Errorf("%s: %v", q.where, err)
			continue
		}
		for _, problem := range exp.check(expr) {
			t.Errorf("%s: %s\n%s", q.where, problem, q.expr)
		}
	}
}

// check lists what in expr a gateway does not expose.
func (e exposition) check(expr parser.Expr) []string {
	var out []string
	parser.Inspect(expr, func(node parser.Node, _ []parser.Node) error {
		switch n := node.(type) {
		case *parser.VectorSelector:
			name := selectorName(n)
			have, ok := e[name]
			if !ok {
				out = append(out, fmt.Sprintf("metric %s is not on /metrics", name))
				return nil
			}
			for _, m := range n.LabelMatchers {
				if m.Name != model.MetricNameLabel && !have[m.Name] && !scrapedLabels[m.Name] {
					out = append(out, fmt.Sprintf("%s has no label %s", name, m.Name))
				}
			}
		case *parser.AggregateExpr:
			if !n.Without {
				out = append(out, e.labelsOn(n.Grouping, n.Expr, "by")...)
			}
		case *parser.BinaryExpr:
			if n.VectorMatching != nil && n.VectorMatching.On {
				out = append(out, e.labelsOn(n.VectorMatching.MatchingLabels, n, "on")...)
			}
		}
		return nil
	})
	return out
}

// labelsOn lists the labels of a by () or on () clause that no metric
// under node carries.
func (e exposition) labelsOn(names []string, node parser.Node, clause string) []string {
	var selectors []string
	parser.Inspect(node, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			selectors = append(selectors, selectorName(vs))
		}
		return nil
	})
	var out []string
	for _, l := range names {
		found := scrapedLabels[l]
		for _, s := range selectors {
			found = found || e[s][l]
		}
		if !found {
			out = append(out, fmt.Sprintf("%s (%s) groups by a label none of %v carries", clause, l, selectors))
		}
	}
	return out
}

func selectorName(vs *parser.VectorSelector) string {
	if vs.Name != "" {
		return vs.Name
	}
	for _, m := range vs.LabelMatchers {
		if m.Name == model.MetricNameLabel {
			return m.Value
		}
	}
	return ""
}

// runGatewayWithTraffic builds and starts the gateway, drives it, and
// returns what its /metrics then shows.
func runGatewayWithTraffic(t *testing.T) exposition {
	t.Helper()
	root, err := os.Getwd() // TestMain: the repository's root
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "extauthz")
	build := exec.Command("go", "build", "-o", bin, "./cmd/extauthz")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the gateway: %v\n%s", err, out)
	}

	redis := redistest.Start(t)
	iss, _ := testkit.Issuer(t, "ES256", "/realms/example", jwtResource, nil)
	// The introspecting issuer: an RFC 7662 endpoint that knows one
	// token, and fails on another.
	introspection := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		switch r.PostForm.Get("token") {
		case opaqueBroken:
			w.WriteHeader(http.StatusInternalServerError)
		case opaqueActive:
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(map[string]any{
				"active": true, "sub": "opaque-user", "client_id": "cli", "scope": "mcp:tools",
				"aud": opaqueResource, "exp": time.Now().Add(time.Hour).Unix(), "token_type": "Bearer",
			})
		default:
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"active":false}`))
		}
	}))
	t.Cleanup(introspection.Close)

	dir := t.TempDir()
	cfg := filepath.Join(dir, "extauthz.yaml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, `listen: {grpc: "127.0.0.1:0", http: "127.0.0.1:0", admin: "127.0.0.1:0"}
admin: {token: {env: EXTAUTHZ_MONITORING_ADMIN_TOKEN}}
cache: {redis_url: "redis://%s"}
resources:
  - name: mcp
    resource: %q
    path_prefix: /mcp
    required_scopes: ["mcp:tools"]
    authorization_servers: [{issuer: %q, jwks_uri: %q}]
  - name: opaque
    resource: %q
    path_prefix: /opaque
    required_scopes: ["mcp:tools"]
    authorization_servers:
      - issuer: %q
        token_mode: introspection
        introspection: {endpoint: %q, client_id: gateway, client_secret: {env: EXTAUTHZ_MONITORING_INTROSPECTION_SECRET}}
`, redis.Addr(), jwtResource, iss.Issuer(), iss.JWKSURL(), opaqueResource, introspection.URL, introspection.URL+"/introspect"), 0o600); err != nil {
		t.Fatal(err)
	}
	const adminToken = "monitoring-test-admin-token"
	logFile := filepath.Join(dir, "gateway.log")
	gw, err := childproc.Start([]string{bin, "serve", "--config", cfg}, childproc.Options{
		Dir: dir, Log: logFile,
		Env: append(os.Environ(), "EXTAUTHZ_MONITORING_ADMIN_TOKEN="+adminToken, "EXTAUTHZ_MONITORING_INTROSPECTION_SECRET=secret"),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		gw.Stop(10 * time.Second)
		if t.Failed() {
			t.Logf("gateway output:\n%s", gw.Output())
		}
	})
	var grpcAddr, adminAddr string
	ctx := context.Background()
	err = gw.Poll(ctx, 60*time.Second, 20*time.Millisecond, func(context.Context) error {
		for _, line := range strings.Split(gw.Output(), "\n") {
			var l struct{ Msg, GRPC, Admin string }
			if json.Unmarshal([]byte(line), &l) == nil && l.Msg == "serving" {
				grpcAddr, adminAddr = l.GRPC, l.Admin
			}
		}
		if adminAddr == "" {
			return fmt.Errorf("no serving line yet")
		}
		resp, err := http.Get("http://" + adminAddr + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("/readyz: %d", resp.StatusCode)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("the gateway did not become ready: %v\n%s", err, gw.Output())
	}

	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	client := authv3.NewAuthorizationClient(conn)
	decide := func(url, tok string) int {
		t.Helper()
		var headers [][2]string
		if tok != "" {
			headers = [][2]string{{"authorization", "Bearer " + tok}}
		}
		req, err := check.EnvoyRequest{Method: "POST", URL: url, Headers: headers}.Proto()
		if err != nil {
			t.Fatal(err)
		}
		resp, err := client.Check(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.GetStatus().GetCode() == 0 {
			return http.StatusOK
		}
		return int(resp.GetDeniedResponse().GetStatus().GetCode())
	}
	mint := func(sub string, iat time.Time) string {
		t.Helper()
		tok, err := iss.Mint(devissuer.Token{Subject: sub, Scopes: []string{"mcp:tools"}, IssuedAt: iat})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}

	alice := mint("alice", time.Time{})
	for _, step := range []struct {
		what, url, tok string
		want           int
	}{
		{"a valid token, verified", jwtResource, alice, 200},
		{"the same token, a cache hit", jwtResource, alice, 200},
		{"no token", jwtResource, "", 401},
		{"a malformed token", jwtResource, "not-a-token", 401},
		{"an opaque token the server knows", opaqueResource, opaqueActive, 200},
		{"an opaque token the server fails on", opaqueResource, opaqueBroken, 503},
	} {
		if got := decide(step.url, step.tok); got != step.want {
			t.Fatalf("%s: %d, want %d", step.what, got, step.want)
		}
	}
	// A revocation, and the revoked user's token refused.
	mallory := mint("mallory", time.Now().Add(-time.Minute))
	req, _ := http.NewRequest(http.MethodPost, "http://"+adminAddr+"/revocations", strings.NewReader(`{"sub":"mallory"}`))
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /revocations: %d %s", resp.StatusCode, body)
	}
	if got := decide(jwtResource, mallory); got != 401 {
		t.Fatalf("a revoked user's token: %d, want 401", got)
	}

	return scrape(t, "http://"+adminAddr+"/metrics")
}

// scrape reads /metrics as Prometheus would, in its text format.
func scrape(t *testing.T, url string) exposition {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d %v", resp.StatusCode, err)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	exp := exposition{}
	add := func(name string, m *dto.Metric, extra ...string) {
		if exp[name] == nil {
			exp[name] = map[string]bool{}
		}
		for _, l := range m.GetLabel() {
			exp[name][l.GetName()] = true
		}
		for _, l := range extra {
			exp[name][l] = true
		}
	}
	for name, f := range families {
		for _, m := range f.GetMetric() {
			switch f.GetType() {
			case dto.MetricType_HISTOGRAM:
				add(name+"_bucket", m, "le")
				add(name+"_sum", m)
				add(name+"_count", m)
			case dto.MetricType_SUMMARY:
				add(name, m, "quantile")
				add(name+"_sum", m)
				add(name+"_count", m)
			default:
				add(name, m)
			}
		}
	}
	var names []string
	for n := range exp {
		if strings.HasPrefix(n, "extauthz_") {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	t.Logf("the gateway exposes %d extauthz_* sample names: %s", len(names), strings.Join(names, " "))
	return exp
}
