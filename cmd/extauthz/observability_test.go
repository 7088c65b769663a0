package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/extauthz/extauthz/internal/testkit"
	"github.com/extauthz/extauthz/pkg/check"
	"github.com/extauthz/extauthz/pkg/config"
	"github.com/extauthz/extauthz/pkg/devissuer"
	"github.com/extauthz/extauthz/pkg/telemetry"
)

const obsResource = "https://mcp.example.com/mcp"

// obsConfig is the observability tests' config file: one resource, whose
// required scope the reload test changes.
func obsConfig(iss *devissuer.Issuer, scope string) string {
	return fmt.Sprintf(`
listen: {grpc: "127.0.0.1:0", http: "127.0.0.1:0", admin: "127.0.0.1:0"}
log: {level: debug}
resources:
  - name: mcp
    resource: %q
    authorization_servers: [{issuer: %q, jwks_uri: %q}]
    scopes_supported: ["mcp:tools", "mcp:admin"]
    required_scopes: [%q]
`, obsResource, iss.Issuer(), iss.JWKSURL(), scope)
}

// served is a gateway started by the serve command, as an operator runs it.
type served struct {
	grpc, http, admin string
	client            authv3.AuthorizationClient
	logs              *testkit.LockedBuffer
}

func serveFile(t *testing.T, path string) *served {
	t.Helper()
	s := &served{logs: &testkit.LockedBuffer{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int)
	go func() { done <- run(ctx, []string{"serve", "--config", path}, io.Discard, s.logs) }()
	t.Cleanup(func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("serve exited %d", code)
		}
	})
	waitFor(t, "the serving log line", func() bool {
		for _, line := range strings.Split(s.logs.String(), "\n") {
			var l map[string]any
			if json.Unmarshal([]byte(line), &l) == nil && l["msg"] == "serving" {
				s.grpc, s.http, s.admin = l["grpc"].(string), l["http"].(string), l["admin"].(string)
				return true
			}
		}
		return false
	})
	waitFor(t, "readiness", func() bool {
		resp, err := http.Get("http://" + s.http + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	conn, err := grpc.NewClient(s.grpc, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	s.client = authv3.NewAuthorizationClient(conn)
	return s
}

// check sends one Check with the given headers and returns the status the
// client would see (200 when allowed).
func (s *served) check(t *testing.T, headers ...[2]string) int {
	t.Helper()
	req, err := check.EnvoyRequest{Method: "POST", URL: obsResource, Headers: headers}.Proto()
	if err != nil {
		t.Fatal(err)
	}
	resp, err := s.client.Check(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetStatus().GetCode() == 0 {
		return http.StatusOK
	}
	return int(resp.GetDeniedResponse().GetStatus().GetCode())
}

// scrape reads /metrics from the admin listener.
func (s *served) scrape(t *testing.T) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get("http://" + s.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mf, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	return mf
}

// value is the sample of family name whose labels include want; found
// false when there is none.
func value(mf map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	f, ok := mf[name]
	if !ok {
		return 0, false
	}
	var sum float64
	found := false
next:
	for _, m := range f.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if have[k] != v {
				continue next
			}
		}
		found = true
		switch {
		case m.Counter != nil:
			sum += m.GetCounter().GetValue()
		case m.Gauge != nil:
			sum += m.GetGauge().GetValue()
		case m.Histogram != nil:
			sum += float64(m.GetHistogram().GetSampleCount())
		}
	}
	return sum, found
}

func mustValue(t *testing.T, mf map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	t.Helper()
	v, ok := value(mf, name, want)
	if !ok {
		t.Fatalf("no %s sample with labels %v", name, want)
	}
	return v
}

// TestMetricsMatchTheChecksSent sends scripted Checks and reads them back
// from /metrics, then reloads the config (file change, bad file, SIGHUP)
// and sees each reload there too. The logs of the whole run are then
// searched for every credential sent.
func TestMetricsMatchTheChecksSent(t *testing.T) {
	iss, _ := startIssuer(t, obsResource)
	path := filepath.Join(t.TempDir(), "extauthz.yaml")
	if err := os.WriteFile(path, []byte(obsConfig(iss, "mcp:tools")), 0o600); err != nil {
		t.Fatal(err)
	}
	s := serveFile(t, path)

	tools, err := iss.Mint(devissuer.Token{Subject: "alice", ClientID: "cli", Scopes: []string{"mcp:tools"}})
	if err != nil {
		t.Fatal(err)
	}
	forged := tools[:len(tools)-6] + "AAAAAA"
	const opaque = "opaque-7f3c9a1e5b2d4c6f8a0b"
	const cookie = "sess=c00k1e-v4lue-9d8e7f"
	const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

	// 3 allowed (1 verification, 2 in-process hits), 2 without a token,
	// 1 forged, 1 opaque (unknown to a JWT-only server).
	for range 3 {
		if st := s.check(t, [2]string{"authorization", "Bearer " + tools}, [2]string{"cookie", cookie}, [2]string{"traceparent", traceparent}); st != 200 {
			t.Fatalf("valid token: %d", st)
		}
	}
	for range 2 {
		if st := s.check(t, [2]string{"cookie", cookie}); st != 401 {
			t.Fatalf("no token: %d", st)
		}
	}
	if st := s.check(t, [2]string{"authorization", "Bearer " + forged}); st != 401 {
		t.Fatalf("forged token: %d", st)
	}
	if st := s.check(t, [2]string{"authorization", "Bearer " + opaque}); st != 401 {
		t.Fatalf("opaque token: %d", st)
	}
	// One refused before any decision: over the header limits.
	var flood [][2]string
	for i := range 300 {
		flood = append(flood, [2]string{fmt.Sprintf("x-flood-%d", i), "1"})
	}
	if st := s.check(t, flood...); st != 400 {
		t.Fatalf("300 headers: %d, want 400", st)
	}
	// One through the HTTP mode.
	req, _ := http.NewRequest("POST", "http://"+s.http+"/authz/envoy/mcp", nil)
	req.Host = "mcp.example.com"
	req.Header.Set("Authorization", "Bearer "+tools)
	req.Header.Set("Cookie", cookie)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("HTTP mode: %d", resp.StatusCode)
	}

	mf := s.scrape(t)
	grpcAllow := map[string]string{"transport": "grpc", "decision": "allow", "reason": "allowed", "resource": "mcp"}
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"extauthz_check_decisions_total", grpcAllow, 3},
		{"extauthz_check_decisions_total", map[string]string{"transport": "grpc", "decision": "deny", "reason": "no_credential", "resource": "mcp"}, 2},
		{"extauthz_check_decisions_total", map[string]string{"transport": "grpc", "decision": "deny", "resource": "mcp"}, 4},
		{"extauthz_check_decisions_total", map[string]string{"transport": "http", "decision": "allow", "resource": "mcp"}, 1},
		{"extauthz_check_decisions_total", map[string]string{"transport": "grpc", "decision": "deny", "reason": "invalid_request", "resource": ""}, 1},
		{"extauthz_check_duration_seconds", map[string]string{"transport": "grpc"}, 8},
		{"extauthz_check_duration_seconds", map[string]string{"transport": "grpc", "decision": "allow", "source": "local"}, 2},
		{"extauthz_check_duration_seconds", map[string]string{"transport": "grpc", "decision": "allow", "source": "verified"}, 1},
		{"extauthz_check_duration_seconds", map[string]string{"transport": "http", "source": "local"}, 1},
		{"extauthz_cache_lookups_total", map[string]string{"tier": "local", "result": "hit"}, 3},
		{"extauthz_config_last_reload_successful", nil, 1},
		{"extauthz_build_info", map[string]string{"version": "dev"}, 1},
		{"extauthz_cache_entries", map[string]string{"kind": "valid"}, 1},
	} {
		if got := mustValue(t, mf, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if got := mustValue(t, mf, "extauthz_jwks_refreshes_total", map[string]string{"issuer": iss.Issuer(), "result": "success"}); got < 1 {
		t.Errorf("jwks refreshes = %v, want ≥ 1", got)
	}
	if _, ok := value(mf, "extauthz_jwks_keys_age_seconds", map[string]string{"issuer": iss.Issuer()}); !ok {
		t.Error("no key age for the issuer")
	}
	// The histogram resolves tens of microseconds.
	if h := mf["extauthz_check_duration_seconds"].GetMetric()[0].GetHistogram(); h.GetBucket()[0].GetUpperBound() > 0.00001 {
		t.Errorf("first bucket %v s: too coarse for a cache hit", h.GetBucket()[0].GetUpperBound())
	}
	for name, f := range mf {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if strings.Contains(l.GetValue(), "alice") || strings.Contains(l.GetValue(), "/mcp") && l.GetName() != "resource" {
					t.Errorf("%s has a subject or path as a label: %s=%q", name, l.GetName(), l.GetValue())
				}
			}
		}
	}

	t.Run("a changed file is applied", func(t *testing.T) {
		if err := os.WriteFile(path, []byte(obsConfig(iss, "mcp:admin")), 0o600); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the reload", func() bool {
			v, _ := value(s.scrape(t), "extauthz_config_reloads_total", map[string]string{"result": "success"})
			return v == 1
		})
		if st := s.check(t, [2]string{"authorization", "Bearer " + tools}); st != 403 {
			t.Fatalf("after requiring mcp:admin, a mcp:tools token gets %d, want 403", st)
		}
	})
	t.Run("a bad file is refused and counted; the running config stays", func(t *testing.T) {
		if err := os.WriteFile(path, []byte("resources: [{name: mcp}]\nlisten: {grpc: 1}\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the refused reload", func() bool {
			v, _ := value(s.scrape(t), "extauthz_config_reloads_total", map[string]string{"result": "failure"})
			return v == 1
		})
		if got := mustValue(t, s.scrape(t), "extauthz_config_last_reload_successful", nil); got != 0 {
			t.Errorf("last_reload_successful = %v after a refused file", got)
		}
		if st := s.check(t, [2]string{"authorization", "Bearer " + tools}); st != 403 {
			t.Fatalf("the refused file changed the running config: %d", st)
		}
		// The log reaches stderr a moment later (logging.AsyncWriter).
		waitFor(t, "the refusal logged", func() bool { return strings.Contains(s.logs.String(), "config reload refused") })
	})
	t.Run("SIGHUP reloads", func(t *testing.T) {
		// The reloader is running (it applied the change above), so the
		// signal is caught rather than ending the test process.
		if err := os.WriteFile(path, []byte(obsConfig(iss, "mcp:tools")), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the SIGHUP reload", func() bool { return strings.Contains(s.logs.String(), "SIGHUP: reloading the config") })
		waitFor(t, "the restored config", func() bool {
			return s.check(t, [2]string{"authorization", "Bearer " + tools}) == 200
		})
		// The gauge is set once the reload has swapped the config in:
		// right after the Check above sees the new config, not before.
		waitFor(t, "last_reload_successful 1 after a good reload", func() bool {
			v, _ := value(s.scrape(t), "extauthz_config_last_reload_successful", nil)
			return v == 1
		})
	})

	t.Run("no credential reaches the logs", func(t *testing.T) {
		logs := s.logs.String()
		for what, secret := range map[string]string{
			"token": tools, "token signature": tools[strings.LastIndexByte(tools, '.')+1:],
			"forged token": forged, "opaque token": opaque, "cookie": "c00k1e-v4lue-9d8e7f",
		} {
			if strings.Contains(logs, secret) {
				t.Errorf("the %s appears in the logs", what)
			}
		}
	})
	t.Run("one audit line per decision", func(t *testing.T) {
		// Before the reloads: 3 + 1 allowed, 5 denied (one refused before
		// any decision); then 2 denials (403 twice), at least one allow, and
		// as many 403s as the wait for the SIGHUP's reload saw: one line
		// for each decision the metrics counted. The lines reach stderr a
		// moment after the decisions (logging.AsyncWriter): wait for them.
		mf := s.scrape(t)
		wantAllows, _ := value(mf, "extauthz_check_decisions_total", map[string]string{"decision": "allow"})
		wantDenials, _ := value(mf, "extauthz_check_decisions_total", map[string]string{"decision": "deny"})
		var allows, denials int
		var sawTrace, sawSubject bool
		count := func() bool {
			allows, denials, sawTrace, sawSubject = 0, 0, false, false
			for _, line := range strings.Split(s.logs.String(), "\n") {
				var l map[string]any
				if json.Unmarshal([]byte(line), &l) != nil || l["log"] != "audit" {
					continue
				}
				switch l["decision"] {
				case "allow":
					allows++
					sawSubject = sawSubject || (l["subject"] == "alice" && l["client_id"] == "cli")
				case "deny":
					denials++
					if l["reason"] == nil || l["status"] == nil {
						t.Errorf("denial line without reason or status: %s", line)
					}
				}
				if l["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736" {
					sawTrace = true
				}
				if _, ok := l["latency_us"]; !ok {
					t.Errorf("audit line without latency: %s", line)
				}
			}
			return float64(allows) >= wantAllows && float64(denials) >= wantDenials
		}
		waitFor(t, "the audit lines", count)
		if allows < 5 || denials < 7 || float64(allows) != wantAllows || float64(denials) != wantDenials {
			t.Errorf("audit lines: %d allows, %d denials; want ≥ 5 and ≥ 7, and the decisions counted: %v and %v", allows, denials, wantAllows, wantDenials)
		}
		if !sawTrace || !sawSubject {
			t.Errorf("audit lines lack the trace id (%v) or the subject and client (%v)", sawTrace, sawSubject)
		}
	})
}

// TestCheckSpanParentedToRequestTrace: the Check span's parent is the
// trace context Envoy put in the CheckRequest's headers.
func TestCheckSpanParentedToRequestTrace(t *testing.T) {
	iss, _ := startIssuer(t, obsResource)
	cfg, err := config.Parse([]byte(obsConfig(iss, "mcp:tools")))
	if err != nil {
		t.Fatal(err)
	}
	spans := tracetest.NewInMemoryExporter()
	tel, err := telemetry.New(context.Background(), telemetry.Options{SpanExporter: spans})
	if err != nil {
		t.Fatal(err)
	}
	a, err := newApp(cfg, newLogger(io.Discard, "error", "json"), appOptions{telemetry: tel})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- a.run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("gateway: %v", err)
		}
	})
	waitFor(t, "keys", func() bool { ok, _ := a.ready(); return ok })
	conn, err := grpc.NewClient(a.lnGRPC.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	s := &served{client: authv3.NewAuthorizationClient(conn)}

	tok, _ := iss.Mint(devissuer.Token{Subject: "alice", Scopes: []string{"mcp:tools"}})
	const traceID, parentID = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
	for range 2 {
		if st := s.check(t, [2]string{"authorization", "Bearer " + tok}, [2]string{"traceparent", "00-" + traceID + "-" + parentID + "-01"}); st != 200 {
			t.Fatalf("Check: %d", st)
		}
	}
	if st := s.check(t); st != 401 {
		t.Fatalf("no token: %d", st)
	}
	var checks []sdktrace.ReadOnlySpan
	for _, sp := range spans.GetSpans().Snapshots() {
		if sp.Name() == "extauthz.Check" {
			checks = append(checks, sp)
		}
	}
	if len(checks) != 3 {
		t.Fatalf("%d Check spans, want 3", len(checks))
	}
	wantTrace, _ := trace.TraceIDFromHex(traceID)
	wantParent, _ := trace.SpanIDFromHex(parentID)
	for i, tier := range []string{"verified", "local"} {
		sp := checks[i]
		if sp.SpanContext().TraceID() != wantTrace || sp.Parent().SpanID() != wantParent || !sp.Parent().IsRemote() {
			t.Errorf("span %d: trace %s parent %s; want trace %s parent %s (remote)", i, sp.SpanContext().TraceID(), sp.Parent().SpanID(), wantTrace, wantParent)
		}
		attrs := map[string]string{}
		for _, kv := range sp.Attributes() {
			attrs[string(kv.Key)] = kv.Value.String()
		}
		want := map[string]string{
			telemetry.AttrDecision: "allow", telemetry.AttrReason: "allowed", telemetry.AttrResource: "mcp",
			telemetry.AttrTier: tier, telemetry.AttrIssuer: iss.Issuer(), telemetry.AttrStatus: "200",
		}
		for k, v := range want {
			if attrs[k] != v {
				t.Errorf("span %d: %s = %q, want %q", i, k, attrs[k], v)
			}
		}
	}
	// Without a traceparent the span starts its own trace (under the gRPC
	// server span).
	if checks[2].SpanContext().TraceID() == wantTrace {
		t.Error("a Check without traceparent joined another request's trace")
	}
}

// TestHTTPListenersBoundHeaders: a request whose headers exceed the bound
// is refused before any handler runs, on both HTTP listeners.
func TestHTTPListenersBoundHeaders(t *testing.T) {
	iss, _ := startIssuer(t, obsResource)
	path := filepath.Join(t.TempDir(), "extauthz.yaml")
	if err := os.WriteFile(path, []byte(obsConfig(iss, "mcp:tools")), 0o600); err != nil {
		t.Fatal(err)
	}
	s := serveFile(t, path)
	for _, addr := range []string{s.http, s.admin} {
		req, _ := http.NewRequest("GET", "http://"+addr+"/healthz", nil)
		req.Header.Set("X-Filler", strings.Repeat("a", 256<<10))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("%s: 256 KiB of headers got %d, want 431", addr, resp.StatusCode)
		}
		// A token of the largest accepted size still gets through.
		req.Header.Set("X-Filler", strings.Repeat("a", 16<<10))
		if resp, err = http.DefaultClient.Do(req); err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s: 16 KiB header got %d, want 200", addr, resp.StatusCode)
		}
	}
}
