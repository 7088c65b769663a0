package telemetry

import (
	"context"
	"hash/maphash"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/extauthz/extauthz/pkg/authz"
	"github.com/extauthz/extauthz/pkg/logging"
	"github.com/extauthz/extauthz/pkg/token"
)

// Decider decides a request; *authz.Engine implements it, and so does
// what Instrument returns.
type Decider interface {
	Check(ctx context.Context, r *authz.Request) authz.Decision
}

// Transports label where a Check came from.
const (
	TransportGRPC = "grpc" // Envoy's ext_authz gRPC service
	TransportHTTP = "http" // the HTTP authorization mode (nginx, Traefik, Envoy http_service)
)

// Span attribute keys of the Check span.
const (
	AttrDecision = "extauthz.decision"
	AttrReason   = "extauthz.reason"
	AttrResource = "extauthz.resource"
	AttrTier     = "extauthz.cache.tier"
	AttrIssuer   = "extauthz.issuer"
	AttrStatus   = "http.response.status_code"
)

// Instrument wraps next so that every decision gets a span (when tracing
// is on), is counted and timed, and is written to the audit log (when
// audit is not nil). transport is TransportGRPC or TransportHTTP.
func (t *Telemetry) Instrument(next Decider, transport string, audit *Audit) Decider {
	return &instrumented{next: next, transport: transport, t: t, audit: audit}
}

type instrumented struct {
	next      Decider
	transport string
	t         *Telemetry
	audit     *Audit
}

func (i *instrumented) Check(ctx context.Context, r *authz.Request) authz.Decision {
	start := time.Now()
	var span trace.Span
	if i.t.Tracing() {
		ctx, span = i.startSpan(ctx, r)
	}
	d := i.next.Check(ctx, r)
	end := time.Now() // the audit line's time too: one clock read fewer
	took := end.Sub(start)

	decision := "deny"
	if d.Allow {
		decision = "allow"
	}
	i.t.Metrics.Decision(decisionKey{
		transport: i.transport, decision: decision, reason: string(d.Reason),
		resource: d.Resource, source: sourceLabel(d.Source),
	}, took)
	if span != nil {
		attrs := []attribute.KeyValue{
			attribute.String(AttrDecision, decision),
			attribute.String(AttrReason, string(d.Reason)),
			attribute.String(AttrResource, d.Resource),
			attribute.String(AttrTier, sourceLabel(d.Source)),
			attribute.Int(AttrStatus, d.Status),
		}
		if d.Claims != nil && d.Claims.Grant != nil {
			attrs = append(attrs, attribute.String(AttrIssuer, d.Claims.Issuer))
		}
		span.SetAttributes(attrs...)
		if d.Status >= http.StatusInternalServerError {
			span.SetStatus(codes.Error, string(d.Reason))
		}
		span.End()
	}
	if i.audit != nil {
		i.audit.record(ctx, end, i.transport, r, &d, took)
	}
	return d
}

// Refused returns what a server calls for a request it refused before
// any decision (check.Server.OnRefused): counted, timed and audited like
// a decision, with no span of its own (nothing was decided).
func (t *Telemetry) Refused(transport string, audit *Audit) func(ctx context.Context, d *authz.Decision, took time.Duration) {
	return func(ctx context.Context, d *authz.Decision, took time.Duration) {
		t.Metrics.Decision(decisionKey{transport: transport, decision: "deny", reason: string(d.Reason),
			resource: d.Resource, source: sourceLabel(d.Source)}, took)
		if audit != nil {
			audit.record(ctx, time.Now(), transport, &authz.Request{}, d, took)
		}
	}
}

// startSpan starts the Check span. Its parent is the trace context Envoy
// put in the checked request's headers (traceparent, tracestate): the
// span then sits inside the user's request trace. The gRPC call's own
// span, if any, becomes a link.
func (i *instrumented) startSpan(ctx context.Context, r *authz.Request) (context.Context, trace.Span) {
	opts := []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindServer)}
	parent := i.t.prop.Extract(ctx, headerCarrier(r.Headers))
	if outer := trace.SpanContextFromContext(ctx); outer.IsValid() && !outer.Equal(trace.SpanContextFromContext(parent)) {
		opts = append(opts, trace.WithLinks(trace.Link{SpanContext: outer}))
	}
	return i.t.tracer.Start(parent, "extauthz.Check", opts...)
}

func sourceLabel(s authz.Source) string {
	if s == authz.SourceNone {
		return "none"
	}
	return string(s)
}

// headerCarrier reads trace context from a checked request's headers
// (lower-case names).
type headerCarrier map[string]string

var _ propagation.TextMapCarrier = headerCarrier(nil)

func (h headerCarrier) Get(key string) string { return h[strings.ToLower(key)] }
func (h headerCarrier) Set(string, string)    {}
func (h headerCarrier) Keys() []string {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	return keys
}

// Audit writes one structured line per decision: every denial, and a
// sample of allows. It is safe for concurrent use.
type Audit struct {
	log     *slog.Logger   // with log=audit
	lines   *logging.Lines // the process log's direct path; nil: through log
	memo    auditMemo      // the direct path's encoded fields
	enabled atomic.Bool
	rate    atomic.Uint64 // math.Float64bits of the allow sample rate
}

// NewAudit writes audit lines to log at info level, each with log=audit,
// while enabled. allowSampleRate (0 to 1) is the fraction of allowed
// requests written; denials are always written.
//
// When log is the process logger over an AsyncWriter (logging.LinesOf),
// lines take its direct path, which writes the same bytes at a fraction
// of slog's cost: at the default setting every request writes one.
func NewAudit(log *slog.Logger, enabled bool, allowSampleRate float64) *Audit {
	a := &Audit{log: log.With(slog.String("log", "audit")), lines: logging.LinesOf(log)}
	a.memo.seed = maphash.MakeSeed()
	a.Set(enabled, allowSampleRate)
	return a
}

// Set changes whether lines are written and the allow sample rate (a
// config reload).
func (a *Audit) Set(enabled bool, allowSampleRate float64) {
	a.rate.Store(math.Float64bits(min(max(allowSampleRate, 0), 1)))
	a.enabled.Store(enabled)
}

// record writes the line of a decision that ended at now.
func (a *Audit) record(ctx context.Context, now time.Time, transport string, r *authz.Request, d *authz.Decision, took time.Duration) {
	if !a.enabled.Load() {
		return
	}
	if d.Allow {
		rate := math.Float64frombits(a.rate.Load())
		if rate <= 0 || (rate < 1 && rand.Float64() >= rate) { //nolint:gosec // sampling, not secrecy
			return
		}
	}
	if a.lines != nil {
		if !a.lines.Enabled(slog.LevelInfo) {
			return
		}
		l := a.lines.Start(now, slog.LevelInfo, "decision")
		l.String(keyLog, "audit") // where log.With puts it: first
		// The same fields as auditFields, in the same order; those that
		// repeat from one decision to the next are encoded once (memo).
		l.Fragment(a.memo.head(transport, d))
		l.Int(keyLatency, took.Microseconds())
		if d.Claims != nil {
			l.Fragment(a.memo.identity(d.Claims))
		}
		if d.Operation.Method != "" {
			l.Fragment(a.memo.operation(d.Operation.Method, d.Operation.Name))
		}
		afterOperationFields(ctx, &auditSink{line: l}, r, d)
		l.End()
		return
	}
	if !a.log.Enabled(ctx, slog.LevelInfo) {
		return
	}
	var s auditSink
	auditFields(ctx, &s, transport, r, d, took)
	// The record is built here rather than by LogAttrs, which would look
	// up the caller's program counter for nothing (no handler prints the
	// source).
	rec := slog.NewRecord(now, slog.LevelInfo, "decision", 0)
	rec.AddAttrs(s.attrs[:s.n]...)
	rec.AddAttrs(s.more...)
	_ = a.log.Handler().Handle(ctx, rec) // as Logger.LogAttrs, which drops the error
}

// auditSink is where auditFields puts a line's fields: the direct path's
// Line, or attributes for a slog.Record. One list of fields serves both,
// so the two cannot write different lines.
type auditSink struct {
	line  *logging.Line
	attrs [16]slog.Attr // on the stack: every field fits
	n     int
	more  []slog.Attr
}

func (s *auditSink) str(k logging.Key, v string) {
	if s.line != nil {
		s.line.String(k, v)
		return
	}
	s.add(slog.String(k.Name(), v))
}

func (s *auditSink) int(k logging.Key, v int64) {
	if s.line != nil {
		s.line.Int(k, v)
		return
	}
	s.add(slog.Int64(k.Name(), v))
}

func (s *auditSink) add(a slog.Attr) {
	if s.n < len(s.attrs) {
		s.attrs[s.n] = a
		s.n++
		return
	}
	s.more = append(s.more, a)
}

// The audit line's attribute names, prepared once for the direct path.
var (
	keyLog       = logging.NewKey("log")
	keyDecision  = logging.NewKey("decision")
	keyStatus    = logging.NewKey("status")
	keyReason    = logging.NewKey("reason")
	keyResource  = logging.NewKey("resource")
	keyTransport = logging.NewKey("transport")
	keyTier      = logging.NewKey("tier")
	keyLatency   = logging.NewKey("latency_us")
	keySubject   = logging.NewKey("subject")
	keyClientID  = logging.NewKey("client_id")
	keyIssuer    = logging.NewKey("issuer")
	keyMCPMethod = logging.NewKey("mcp_method")
	keyMCPName   = logging.NewKey("mcp_name")
	keyUpstream  = logging.NewKey("upstream_credential")
	keyTraceID   = logging.NewKey("trace_id")
	keyDetail    = logging.NewKey("detail")
)

// auditFields writes the fields of a decision's audit line, in order
// (docs/operating.md lists them): headFields, the latency,
// identityFields, tailFields. The direct path writes the same parts,
// the head, the identity and the operation encoded from auditMemo.
func auditFields(ctx context.Context, s *auditSink, transport string, r *authz.Request, d *authz.Decision, took time.Duration) {
	headFields(s, transport, d)
	s.int(keyLatency, took.Microseconds())
	if d.Claims != nil {
		identityFields(s, d.Claims)
	}
	tailFields(ctx, s, r, d)
}

// headFields are the fields before the latency: what was decided, where.
func headFields(s *auditSink, transport string, d *authz.Decision) {
	decision := "deny"
	if d.Allow {
		decision = "allow"
	}
	s.str(keyDecision, decision)
	s.int(keyStatus, int64(d.Status))
	s.str(keyReason, string(d.Reason))
	s.str(keyResource, d.Resource)
	s.str(keyTransport, transport)
	s.str(keyTier, sourceLabel(d.Source))
}

// identityFields are whose token it was.
func identityFields(s *auditSink, c *token.Claims) {
	s.str(keySubject, c.Subject)
	if c.Grant != nil {
		s.str(keyClientID, c.ClientID)
		s.str(keyIssuer, c.Issuer)
	}
}

// tailFields are the fields after the identity: the MCP operation, the
// upstream credential, the trace, the detail of a refusal.
func tailFields(ctx context.Context, s *auditSink, r *authz.Request, d *authz.Decision) {
	if d.Operation.Method != "" {
		operationFields(s, d.Operation.Method, d.Operation.Name)
	}
	afterOperationFields(ctx, s, r, d)
}

// operationFields are the MCP operation's method and name (when it has
// one).
func operationFields(s *auditSink, method, name string) {
	s.str(keyMCPMethod, method)
	if name != "" {
		s.str(keyMCPName, name)
	}
}

// afterOperationFields are the last fields: the upstream credential, the
// trace, the detail of a refusal.
func afterOperationFields(ctx context.Context, s *auditSink, r *authz.Request, d *authz.Decision) {
	if d.UpstreamCredential != "" {
		// Where the minted upstream credential came from (local, redis,
		// minted); never the credential.
		s.str(keyUpstream, d.UpstreamCredential)
	}
	if id := traceID(ctx, r); id != "" {
		s.str(keyTraceID, id)
	}
	if d.Err != nil {
		s.str(keyDetail, d.Err.Error())
	}
}

// traceID is the trace the decision belongs to: the Check span's, or,
// with tracing off, the one the request's traceparent names, so that the
// audit line can still be joined with the proxy's logs.
func traceID(ctx context.Context, r *authz.Request) string {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		return sc.TraceID().String()
	}
	// traceparent: version "-" trace-id (32 hex) "-" parent-id "-" flags.
	tp := r.Headers["traceparent"]
	if len(tp) < 55 || tp[2] != '-' || tp[35] != '-' {
		return ""
	}
	// A trace-id is 32 lower-case hex digits, not all zero (W3C Trace
	// Context §3.2.2.3): what trace.TraceIDFromHex accepts, and then the
	// very text its String writes back, so it is used as it is.
	id := tp[3:35]
	zero := true
	for i := range len(id) {
		c := id[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return ""
		}
		zero = zero && c == '0'
	}
	if zero {
		return ""
	}
	return id
}
