package telemetry

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/extauthz/extauthz/pkg/authz"
	"github.com/extauthz/extauthz/pkg/logging"
	"github.com/extauthz/extauthz/pkg/revocation"
	"github.com/extauthz/extauthz/pkg/token"
)

func TestTracingFollowsTheEnvironment(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		want string // exporter, or "error"
	}{
		{"nothing set: off", nil, "off"},
		{"an OTLP endpoint turns it on (http/protobuf by default)", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, "otlp/http"},
		{"a traces endpoint alone", map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, "otlp/http"},
		{"grpc protocol", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "otlp/grpc"},
		{"the traces protocol wins", map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc"}, "otlp/grpc"},
		{"exporter none", map[string]string{"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, "off"},
		{"SDK disabled", map[string]string{"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, "off"},
		{"an exporter we do not ship", map[string]string{"OTEL_TRACES_EXPORTER": "zipkin"}, "error"},
		{"an unknown protocol", map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, "error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The exporters read the process environment themselves.
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			tel, err := New(context.Background(), Options{Getenv: func(k string) string { return tc.env[k] }})
			if tc.want == "error" {
				if err == nil {
					t.Fatal("accepted")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = tel.Shutdown(context.Background()) }()
			if tel.Exporter() != tc.want || tel.Tracing() != (tc.want != "off") {
				t.Errorf("exporter %s, tracing %v; want %s", tel.Exporter(), tel.Tracing(), tc.want)
			}
		})
	}
}

// fixed answers every Check with the same decision.
type fixed authz.Decision

func (f fixed) Check(context.Context, *authz.Request) authz.Decision { return authz.Decision(f) }

var (
	allowed = fixed(authz.Decision{Allow: true, Status: 200, Reason: authz.ReasonAllowed, Resource: "mcp", Source: authz.SourceLocal,
		Claims: &token.Claims{Subject: "alice", Grant: &token.Grant{Issuer: "https://as.example.com", ClientID: "cli"}}})
	denied = fixed(authz.Decision{Status: 401, Reason: authz.ReasonNoCredential, Resource: "mcp"})
)

func auditLines(t *testing.T, buf *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		if line == "" {
			continue
		}
		var l map[string]any
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatalf("not JSON: %q", line)
		}
		out = append(out, l)
	}
	return out
}

func TestAuditSampling(t *testing.T) {
	tel, err := New(context.Background(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	req := &authz.Request{Method: "POST", Path: "/mcp", Headers: map[string]string{
		"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}}
	for _, tc := range []struct {
		name            string
		enabled         bool
		rate            float64
		allows, denials int
	}{
		{"every allow", true, 1, 10, 10},
		{"no allows; denials still", true, 0, 0, 10},
		{"disabled", false, 1, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			audit := NewAudit(slog.New(slog.NewJSONHandler(&buf, nil)), tc.enabled, tc.rate)
			for range 10 {
				tel.Instrument(allowed, TransportGRPC, audit).Check(context.Background(), req)
				tel.Instrument(denied, TransportHTTP, audit).Check(context.Background(), req)
			}
			var allows, denials int
			for _, l := range auditLines(t, &buf) {
				if l["log"] != "audit" || l["msg"] != "decision" {
					t.Fatalf("not an audit line: %v", l)
				}
				switch l["decision"] {
				case "allow":
					allows++
					if l["subject"] != "alice" || l["client_id"] != "cli" || l["issuer"] != "https://as.example.com" || l["tier"] != "local" || l["transport"] != "grpc" {
						t.Errorf("allow line: %v", l)
					}
				case "deny":
					denials++
					if l["reason"] != "no_credential" || l["status"] != float64(401) || l["transport"] != "http" {
						t.Errorf("deny line: %v", l)
					}
				}
				if l["trace_id"] != "4bf92f3577b34da6a3ce929d0e0e4736" {
					t.Errorf("trace_id %v, want the traceparent's", l["trace_id"])
				}
			}
			if allows != tc.allows || denials != tc.denials {
				t.Errorf("%d allow and %d deny lines, want %d and %d", allows, denials, tc.allows, tc.denials)
			}
		})
	}
}

func TestTraceIDFromMalformedTraceparent(t *testing.T) {
	for _, tp := range []string{"", "00-xyz", "00-00000000000000000000000000000000-00f067aa0ba902b7-01", "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01"} {
		if id := traceID(context.Background(), &authz.Request{Headers: map[string]string{"traceparent": tp}}); id != "" {
			t.Errorf("traceparent %q gave trace id %q", tp, id)
		}
	}
}

func TestMetricsHandlerServesPrometheusText(t *testing.T) {
	tel, err := New(context.Background(), Options{Version: "1.2.3"})
	if err != nil {
		t.Fatal(err)
	}
	tel.Instrument(allowed, TransportGRPC, nil).Check(context.Background(), &authz.Request{})
	rec := &recorder{header: http.Header{}}
	r, _ := http.NewRequest("GET", "/metrics", nil)
	tel.MetricsHandler().ServeHTTP(rec, r)
	body := rec.body.String()
	for _, want := range []string{
		`extauthz_check_decisions_total{decision="allow",reason="allowed",resource="mcp",transport="grpc"} 1`,
		`extauthz_build_info{go_version=`,
		`version="1.2.3"`,
		`extauthz_check_duration_seconds_bucket{decision="allow",source="local",transport="grpc",le="1e-05"}`,
		`go_goroutines`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

var _ revocation.Observer = (*Metrics)(nil)

func TestRevocationMetrics(t *testing.T) {
	tel, err := New(context.Background(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	m := tel.Metrics
	m.RevocationWatermarks(func() int { return 7 })
	m.Revocation("admin")
	m.WatermarkLive("ssf", 30*time.Millisecond)
	m.RefusedByWatermark()
	m.RefusedByWatermark()
	rec := &recorder{header: http.Header{}}
	r, _ := http.NewRequest("GET", "/metrics", nil)
	tel.MetricsHandler().ServeHTTP(rec, r)
	body := rec.body.String()
	for _, want := range []string{
		`extauthz_revocation_watermarks 7`,
		`extauthz_revocations_total{source="admin"} 1`,
		`extauthz_revocation_propagation_delay_seconds_bucket{source="ssf",le="0.05"} 1`,
		`extauthz_revocation_propagation_delay_seconds_bucket{source="ssf",le="0.025"} 0`,
		`extauthz_revocation_tokens_refused_total 2`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

type recorder struct {
	header http.Header
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header         { return r.header }
func (r *recorder) Write(b []byte) (int, error) { return r.body.Write(b) }
func (r *recorder) WriteHeader(int)             {}

// BenchmarkInstrumentedCheck is the cost the instrumentation adds to a
// decision: metrics always, the audit line at the given sample rate.
func BenchmarkInstrumentedCheck(b *testing.B) {
	tel, err := New(context.Background(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	req := &authz.Request{Headers: map[string]string{}}
	for _, bc := range []struct {
		name  string
		audit *Audit
	}{
		{"bare", nil},
		{"metrics", nil},
		{"metrics+audit-all", NewAudit(slog.New(slog.NewJSONHandler(io.Discard, nil)), true, 1)},
		{"metrics+audit-none", NewAudit(slog.New(slog.NewJSONHandler(io.Discard, nil)), true, 0)},
		// The default setting as serve runs it: every allow written, through
		// the process logger's redaction, to its AsyncWriter.
		{"metrics+audit-default", NewAudit(serveLogger(b), true, 1)},
	} {
		d := Decider(allowed)
		if bc.name != "bare" {
			d = tel.Instrument(allowed, TransportGRPC, bc.audit)
		}
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				ctx := context.Background()
				for pb.Next() {
					d.Check(ctx, req)
				}
			})
		})
	}
}

// serveLogger is the logger serve builds, its output discarded.
func serveLogger(b *testing.B) *slog.Logger {
	w := logging.NewAsyncWriter(io.Discard)
	b.Cleanup(func() { _ = w.Close(context.Background()) })
	l, _ := logging.New(w, "info", "json")
	return l
}

// Exporter names what receives spans: "off", "otlp/grpc", "otlp/http"
// or "custom".
func (t *Telemetry) Exporter() string { return t.exporter }

// TestCountersStartAtZero: before anything happens, /metrics already has
// the counters whose label values are known, at 0, so that an alert on
// increase() sees the first event; and Gather reads the same figures.
func TestCountersStartAtZero(t *testing.T) {
	tel, err := New(context.Background(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	tel.Metrics.KeysAge("https://as.example.com", func() (time.Time, bool) { return time.Time{}, false })
	rec := &recorder{header: http.Header{}}
	r, _ := http.NewRequest("GET", "/metrics", nil)
	tel.MetricsHandler().ServeHTTP(rec, r)
	body := rec.body.String()
	want := []string{
		`extauthz_config_reloads_total{result="failure"} 0`,
		`extauthz_config_reloads_total{result="success"} 0`,
		`extauthz_login_events_total{event="login_failed"} 0`,
		`extauthz_login_events_total{event="logout"} 0`,
		`extauthz_revocations_total{source="admin"} 0`,
		`extauthz_revocations_total{source="ssf"} 0`,
		`extauthz_redis_errors_total{op="get"} 0`,
		`extauthz_redis_errors_total{op="subscribe"} 0`,
		`extauthz_cache_evictions_total{tier="local"} 0`,
		`extauthz_jwks_refreshes_total{issuer="https://as.example.com",result="error"} 0`,
		`extauthz_jwks_refreshes_total{issuer="https://as.example.com",result="success"} 0`,
	}
	for _, w := range want {
		if !strings.Contains(body, w) {
			t.Errorf("/metrics lacks %s", w)
		}
	}
	// The first failure then counts 1, and Gather says the same.
	tel.Metrics.Reload(false, false)
	mfs, err := tel.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "extauthz_config_reloads_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				got[l.GetValue()] = m.GetCounter().GetValue()
			}
		}
	}
	if got["failure"] != 1 || got["success"] != 0 {
		t.Errorf("Gather: reloads %v, want failure 1 and success 0", got)
	}
	// Evictions are counted as they happen, by tier.
	tel.Metrics.Evicted("local")
	tel.Metrics.Evicted("local")
	rec = &recorder{header: http.Header{}}
	tel.MetricsHandler().ServeHTTP(rec, r)
	if w := `extauthz_cache_evictions_total{tier="local"} 2`; !strings.Contains(rec.body.String(), w) {
		t.Errorf("after two evictions /metrics lacks %s", w)
	}
}
