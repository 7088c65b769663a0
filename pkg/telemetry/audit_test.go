package telemetry

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/extauthz/extauthz/pkg/authz"
	"github.com/extauthz/extauthz/pkg/logging"
	"github.com/extauthz/extauthz/pkg/mcp"
	"github.com/extauthz/extauthz/pkg/token"
)

// auditCases are the decisions the audit line benchmarks and tests write:
// a cache hit as most requests are, one with an MCP operation and the
// request's trace, and a denial with its detail.
var auditCases = []struct {
	name string
	req  *authz.Request
	d    authz.Decision
}{
	{"hit", &authz.Request{Headers: map[string]string{}}, authz.Decision{
		Allow: true, Status: 200, Reason: authz.ReasonAllowed, Resource: "mcp", Source: authz.SourceLocal,
		Claims: &token.Claims{Subject: "alice", Grant: &token.Grant{Issuer: "https://as.example.com", ClientID: "cli"}}}},
	{"hit+mcp+trace", &authz.Request{Headers: map[string]string{
		"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}}, authz.Decision{
		Allow: true, Status: 200, Reason: authz.ReasonAllowed, Resource: "mcp", Source: authz.SourceLocal,
		Claims:             &token.Claims{Subject: "alice", Grant: &token.Grant{Issuer: "https://as.example.com", ClientID: "cli"}},
		Operation:          mcp.Operation{Method: "tools/call", Name: "get_weather", Known: true},
		UpstreamCredential: "local"}},
	{"deny", &authz.Request{Headers: map[string]string{}}, authz.Decision{
		Status: 401, Reason: authz.ReasonNoCredential, Resource: "mcp", Err: errNoToken}},
}

var errNoToken = authzErr("no credential in the request")

type authzErr string

func (e authzErr) Error() string { return string(e) }

// auditField is one field of an audit line as a reader sees it.
type auditField struct {
	key   string
	value any
}

// fieldsOf decodes one JSON line into its fields, in order.
func fieldsOf(t *testing.T, line string) []auditField {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader([]byte(line)))
	dec.UseNumber()
	var out []auditField
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("not a JSON object: %q", line)
	}
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			t.Fatalf("%v in %q", err, line)
		}
		var v any
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("%v in %q", err, line)
		}
		out = append(out, auditField{k.(string), v})
	}
	return out
}

// syncBuffer is a bytes.Buffer safe for the AsyncWriter's goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// The audit line is what docs/operating.md describes, field for field and
// in the same order, whichever way it is written: the direct path of the
// logger serve builds, or slog's handler (the text format's path).
func TestAuditLineFields(t *testing.T) {
	at := time.Date(2026, 12, 6, 13, 45, 7, 123456789, time.UTC)
	all := authz.Decision{
		Status: 403, Reason: authz.ReasonInsufficientScope, Resource: "mcp", Source: authz.SourceRedis,
		Claims:             &token.Claims{Subject: "alice", Grant: &token.Grant{Issuer: "https://as.example.com", ClientID: "cli"}},
		Operation:          mcp.Operation{Method: "tools/call", Name: "get_weather", Known: true},
		UpstreamCredential: "minted", Err: authzErr("scope \"mcp:admin\" missing; got Bearer " + "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.c2ln"),
	}
	traced := &authz.Request{Headers: map[string]string{"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}}
	head := []auditField{{"time", "2026-12-06T13:45:07.123456789Z"}, {"level", "INFO"}, {"msg", "decision"}, {"log", "audit"}}
	for _, tc := range []struct {
		name string
		req  *authz.Request
		d    authz.Decision
		want []auditField
	}{
		{"a cache hit", auditCases[0].req, auditCases[0].d, []auditField{
			{"decision", "allow"}, {"status", json.Number("200")}, {"reason", "allowed"}, {"resource", "mcp"},
			{"transport", "grpc"}, {"tier", "local"}, {"latency_us", json.Number("42")},
			{"subject", "alice"}, {"client_id", "cli"}, {"issuer", "https://as.example.com"}}},
		{"every field", traced, all, []auditField{
			{"decision", "deny"}, {"status", json.Number("403")}, {"reason", string(authz.ReasonInsufficientScope)}, {"resource", "mcp"},
			{"transport", "grpc"}, {"tier", "redis"}, {"latency_us", json.Number("42")},
			{"subject", "alice"}, {"client_id", "cli"}, {"issuer", "https://as.example.com"},
			{"mcp_method", "tools/call"}, {"mcp_name", "get_weather"}, {"upstream_credential", "minted"},
			{"trace_id", "4bf92f3577b34da6a3ce929d0e0e4736"},
			{"detail", `scope "mcp:admin" missing; got Bearer [REDACTED]`}}},
		{"a denial without a token", auditCases[2].req, auditCases[2].d, []auditField{
			{"decision", "deny"}, {"status", json.Number("401")}, {"reason", string(authz.ReasonNoCredential)}, {"resource", "mcp"},
			{"transport", "grpc"}, {"tier", "none"}, {"latency_us", json.Number("42")},
			{"detail", "no credential in the request"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := fmt.Sprint(append(append([]auditField{}, head...), tc.want...))
			var lines [2]string
			for i, async := range []bool{true, false} {
				var out syncBuffer
				var w io.Writer = &out
				aw := logging.NewAsyncWriter(&out)
				if async {
					w = aw
				}
				log, _ := logging.New(w, "info", "json")
				a := NewAudit(log, true, 1)
				if (a.lines != nil) != async {
					t.Fatalf("direct path %v, want %v", a.lines != nil, async)
				}
				d := tc.d
				a.record(context.Background(), at, TransportGRPC, tc.req, &d, 42*time.Microsecond)
				if err := aw.Close(context.Background()); err != nil {
					t.Fatal(err)
				}
				lines[i] = out.String()
				if got := fmt.Sprint(fieldsOf(t, lines[i])); got != want {
					t.Errorf("direct path %v:\n got %s\nwant %s", async, got, want)
				}
			}
			if lines[0] != lines[1] {
				t.Errorf("the two paths differ:\n%s%s", lines[0], lines[1])
			}
		})
	}
}

// BenchmarkAuditRecord is the cost of one audit line through the process
// logger's real handler chain (Redact over slog's JSON handler), written
// to io.Discard: what a decision pays for its line. "direct" is the
// logger serve builds, over an AsyncWriter (logging.LinesOf); "slog" is
// the same logger writing synchronously, the path of the text format.
func BenchmarkAuditRecord(b *testing.B) {
	aw := logging.NewAsyncWriter(io.Discard)
	b.Cleanup(func() { _ = aw.Close(context.Background()) })
	direct, _ := logging.New(aw, "info", "json")
	viaSlog, _ := logging.New(io.Discard, "info", "json")
	for _, p := range []struct {
		name string
		a    *Audit
	}{{"direct", NewAudit(direct, true, 1)}, {"slog", NewAudit(viaSlog, true, 1)}} {
		for _, c := range auditCases {
			b.Run(p.name+"/"+c.name, func(b *testing.B) {
				ctx := context.Background()
				dropped := aw.Dropped()
				b.ReportAllocs()
				for b.Loop() {
					d := c.d
					p.a.record(ctx, time.Now(), TransportGRPC, c.req, &d, 42*time.Microsecond)
				}
				// Lines written faster than a starved flusher takes them
				// are dropped; the figures are only meaningful without.
				b.ReportMetric(float64(aw.Dropped()-dropped)/float64(b.N), "dropped/op")
			})
		}
	}
}

// extauthz_log_lines_dropped_total is on /metrics from the start, at 0,
// and follows the count it reads.
func TestLogLinesDropped(t *testing.T) {
	tel, err := New(context.Background(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	var n atomic.Uint64
	if err := tel.LogLinesDropped(n.Load); err != nil {
		t.Fatal(err)
	}
	scrape := func() string {
		rec := &recorder{header: http.Header{}}
		r, _ := http.NewRequest("GET", "/metrics", nil)
		tel.MetricsHandler().ServeHTTP(rec, r)
		return rec.body.String()
	}
	if body := scrape(); !strings.Contains(body, "\nextauthz_log_lines_dropped_total 0\n") {
		t.Errorf("no extauthz_log_lines_dropped_total 0 before any drop:\n%s", body)
	}
	n.Store(7)
	if body := scrape(); !strings.Contains(body, "\nextauthz_log_lines_dropped_total 7\n") {
		t.Errorf("extauthz_log_lines_dropped_total does not follow the count")
	}
}

// The direct path keeps the fields that repeat encoded (auditMemo); a
// line is still the very line slog's handler writes for its decision,
// whatever was written before it: the same token's Claims again, rebuilt,
// the same subject under other grants, resources of one length that share
// a slot, every status and tier and transport, concurrently.
func TestAuditMemoWritesEachDecisionsOwnLine(t *testing.T) {
	at := time.Date(2026, 12, 6, 13, 45, 7, 5, time.UTC)
	// More than the identity table's slots; each subject under four
	// grants (or none); every Claims rebuilt for each line with its
	// subject copied, as the in-process tier hands them out.
	claims := make([]*token.Claims, 600)
	for i := range claims {
		claims[i] = &token.Claims{Subject: fmt.Sprintf("user-%d \"q\"", i%150),
			Grant: &token.Grant{Issuer: fmt.Sprintf("https://as%d.example.com", i%3), ClientID: fmt.Sprintf("c%d", i)}}
		if i%7 == 0 {
			claims[i].Grant = nil
		}
	}
	decision := func(i int) (string, authz.Decision) {
		d := authz.Decision{Allow: i%2 == 0, Status: []int{200, 401, 403}[i%3],
			Reason:   []authz.Reason{authz.ReasonAllowed, authz.ReasonExpired, authz.ReasonRevoked}[i%3],
			Resource: fmt.Sprintf("https://mcp%02d.example.com/mcp", i%40), // one length: one slot's worth of rivals
			Source:   []authz.Source{authz.SourceLocal, authz.SourceRedis, authz.SourceNone, authz.SourceVerified}[i%4]}
		if i%5 != 0 {
			c := *claims[(i*7)%len(claims)]
			c.Subject = strings.Clone(c.Subject)
			d.Claims = &c
		}
		if i%3 != 0 { // tools of one name length: rivals for one slot
			d.Operation = mcp.Operation{Method: []string{"tools/call", "prompts/get"}[i%2], Name: fmt.Sprintf("tool_%03d", i%97)}
			if i%11 == 0 {
				d.Operation.Name = ""
			}
		}
		return []string{TransportGRPC, TransportHTTP}[i%2], d
	}
	// The trace-id as the request spells it: well, in capitals (not one),
	// all zeros (not one), cut short.
	request := func(i int) *authz.Request {
		tp := []string{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
			"00-00000000000000000000000000000000-00f067aa0ba902b7-01", "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01", ""}[i%5]
		return &authz.Request{Headers: map[string]string{"traceparent": tp}}
	}
	var want bytes.Buffer
	viaSlog, _ := logging.New(&want, "info", "json")
	slogAudit := NewAudit(viaSlog, true, 1)
	const n = 4000
	for i := range n {
		transport, d := decision(i)
		slogAudit.record(context.Background(), at, transport, request(i), &d, time.Duration(i)*time.Microsecond)
	}
	wantLines := strings.Split(want.String(), "\n")

	var out syncBuffer
	aw := logging.NewAsyncWriter(&out)
	direct, _ := logging.New(aw, "info", "json")
	a := NewAudit(direct, true, 1)
	if a.lines == nil {
		t.Fatal("no direct path")
	}
	var wg sync.WaitGroup
	for w := range 4 { // each writer its own share, so that slots change hands
		wg.Go(func() {
			for i := w; i < n; i += 4 {
				transport, d := decision(i)
				a.record(context.Background(), at, transport, request(i), &d, time.Duration(i)*time.Microsecond)
			}
		})
	}
	wg.Wait()
	if err := aw.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := strings.Split(out.String(), "\n")
	// Lines of different writers interleave: compare as sets, each line
	// whole (its latency names its decision).
	slices.Sort(got)
	slices.Sort(wantLines)
	if len(got) != len(wantLines) {
		t.Fatalf("%d lines, want %d", len(got), len(wantLines))
	}
	for i := range got {
		if got[i] != wantLines[i] {
			t.Fatalf("a line differs:\n got %s\nwant %s", got[i], wantLines[i])
		}
	}
}

// traceID takes a traceparent's trace-id as it is when it is one, and
// that is exactly when the OpenTelemetry API reads it, giving back the
// same text.
func TestTraceIDAsTheAPIReadsIt(t *testing.T) {
	for _, id := range []string{"4bf92f3577b34da6a3ce929d0e0e4736", "4BF92F3577B34DA6A3CE929D0E0E4736", "4bf92f3577b34da6a3ce929d0e0e473g",
		"00000000000000000000000000000000", "00000000000000000000000000000001", "4bf92f3577b34da6a3ce929d0e0e47-6", "0123456789abcdefABCDEF0123456789"} {
		r := &authz.Request{Headers: map[string]string{"traceparent": "00-" + id + "-00f067aa0ba902b7-01"}}
		want := ""
		if tid, err := trace.TraceIDFromHex(id); err == nil {
			want = tid.String()
		}
		if got := traceID(context.Background(), r); got != want {
			t.Errorf("%s: %q, want %q", id, got, want)
		}
	}
}
