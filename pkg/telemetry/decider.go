package telemetry

import (
	"context"
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
	took := time.Since(start)

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
		i.audit.record(ctx, i.transport, r, &d, took)
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
			audit.record(ctx, transport, &authz.Request{}, d, took)
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
	log     *slog.Logger
	enabled atomic.Bool
	rate    atomic.Uint64 // math.Float64bits of the allow sample rate
}

// NewAudit writes audit lines to log at info level, each with log=audit,
// while enabled. allowSampleRate (0 to 1) is the fraction of allowed
// requests written; denials are always written.
func NewAudit(log *slog.Logger, enabled bool, allowSampleRate float64) *Audit {
	a := &Audit{log: log.With(slog.String("log", "audit"))}
	a.Set(enabled, allowSampleRate)
	return a
}

// Set changes whether lines are written and the allow sample rate (a
// config reload).
func (a *Audit) Set(enabled bool, allowSampleRate float64) {
	a.rate.Store(math.Float64bits(min(max(allowSampleRate, 0), 1)))
	a.enabled.Store(enabled)
}

func (a *Audit) record(ctx context.Context, transport string, r *authz.Request, d *authz.Decision, took time.Duration) {
	if !a.enabled.Load() {
		return
	}
	if d.Allow {
		rate := math.Float64frombits(a.rate.Load())
		if rate <= 0 || (rate < 1 && rand.Float64() >= rate) { //nolint:gosec // sampling, not secrecy
			return
		}
	}
	if !a.log.Enabled(ctx, slog.LevelInfo) {
		return
	}
	decision := "deny"
	if d.Allow {
		decision = "allow"
	}
	attrs := make([]slog.Attr, 0, 14)
	attrs = append(attrs,
		slog.String("decision", decision),
		slog.Int("status", d.Status),
		slog.String("reason", string(d.Reason)),
		slog.String("resource", d.Resource),
		slog.String("transport", transport),
		slog.String("tier", sourceLabel(d.Source)),
		slog.Int64("latency_us", took.Microseconds()),
	)
	if c := d.Claims; c != nil {
		attrs = append(attrs, slog.String("subject", c.Subject))
		if c.Grant != nil {
			attrs = append(attrs, slog.String("client_id", c.ClientID), slog.String("issuer", c.Issuer))
		}
	}
	if d.Operation.Method != "" {
		attrs = append(attrs, slog.String("mcp_method", d.Operation.Method))
		if d.Operation.Name != "" {
			attrs = append(attrs, slog.String("mcp_name", d.Operation.Name))
		}
	}
	if d.UpstreamCredential != "" {
		// Where the minted upstream credential came from (local, redis,
		// minted); never the credential.
		attrs = append(attrs, slog.String("upstream_credential", d.UpstreamCredential))
	}
	if id := traceID(ctx, r); id != "" {
		attrs = append(attrs, slog.String("trace_id", id))
	}
	if d.Err != nil {
		attrs = append(attrs, slog.String("detail", d.Err.Error()))
	}
	a.log.LogAttrs(ctx, slog.LevelInfo, "decision", attrs...)
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
	id, err := trace.TraceIDFromHex(tp[3:35])
	if err != nil {
		return ""
	}
	return id.String()
}
