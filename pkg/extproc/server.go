package extproc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	filterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/extauthz/extauthz/pkg/authz"
)

// PolicySource gives the policy in force (authz.Engine does): a reload
// applies to the next listing.
type PolicySource interface {
	Policy() *authz.Policy
}

// Options configure a Server.
type Options struct {
	// MaxBodyBytes bounds a JSON body and a single event (ext_proc.max_body_bytes).
	MaxBodyBytes int
	// Meter makes the metrics; nil: none.
	Meter metric.Meter
	// Log gets the replaced responses, at debug; nil: discarded.
	Log *slog.Logger
	// Now is the clock of the latency metric; nil: time.Now.
	Now func() time.Time
}

// Server is the ExternalProcessor. Each stream is one HTTP exchange.
type Server struct {
	extprocv3.UnimplementedExternalProcessorServer
	policies PolicySource
	max      int
	log      *slog.Logger
	now      func() time.Time

	removed  metric.Int64Counter     // extauthz_extproc_entries_removed_total{kind}
	replaced metric.Int64Counter     // extauthz_extproc_responses_replaced_total{reason}
	took     metric.Float64Histogram // extauthz_extproc_duration_seconds{form}
}

// durationBuckets resolve microseconds (a small listing) to the tens of
// milliseconds a megabyte takes, in seconds.
var durationBuckets = []float64{0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1}

// New builds a Server.
func New(p PolicySource, o Options) (*Server, error) {
	if p == nil || o.MaxBodyBytes <= 0 {
		return nil, errors.New("extproc: a policy source and a positive MaxBodyBytes are required")
	}
	s := &Server{policies: p, max: o.MaxBodyBytes, log: o.Log, now: o.Now}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if o.Meter != nil {
		var err error
		if s.removed, err = o.Meter.Int64Counter("extauthz_extproc_entries_removed", metric.WithUnit("{entry}"),
			metric.WithDescription("Entries removed from MCP listings by the external processor, by kind (tools, prompts, resources, resource_templates).")); err != nil {
			return nil, fmt.Errorf("extproc: %w", err)
		}
		if s.replaced, err = o.Meter.Int64Counter("extauthz_extproc_responses_replaced", metric.WithUnit("{response}"),
			metric.WithDescription("Responses (or server-sent events) replaced by a JSON-RPC error rather than passed unfiltered, by reason (no_caller, too_large, encoded, ambiguous, not_json).")); err != nil {
			return nil, fmt.Errorf("extproc: %w", err)
		}
		if s.took, err = o.Meter.Float64Histogram("extauthz_extproc_duration", metric.WithUnit("s"),
			metric.WithDescription("Processing time the external processor adds to one response (every message of its stream), by form (json, sse)."),
			metric.WithExplicitBucketBoundaries(durationBuckets...)); err != nil {
			return nil, fmt.Errorf("extproc: %w", err)
		}
	}
	return s, nil
}

// Register registers s as envoy.service.ext_proc.v3.ExternalProcessor.
func (s *Server) Register(g grpc.ServiceRegistrar) {
	extprocv3.RegisterExternalProcessorServer(g, s)
}

// form is how a response body is read.
type form int

const (
	formNone form = iota // not read: passed untouched
	formJSON
	formSSE
)

// exchange is the state of one stream.
type exchange struct {
	s        *Server
	ctx      context.Context
	resource string
	caller   *authz.Caller
	known    bool // the dynamic metadata was read
	headers  bool // the response headers were seen
	form     form
	encoded  bool // a content encoding hides the body
	body     []byte
	over     bool
	sse      *sseFilter
	spent    time.Duration
	removed  Removed
	reasons  []error
}

// Process serves one stream: the messages of one HTTP exchange, answered
// in order, one answer per message (observability mode aside).
func (s *Server) Process(stream extprocv3.ExternalProcessor_ProcessServer) error {
	x := &exchange{s: s, ctx: stream.Context()}
	defer x.record()
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			if st, ok := status.FromError(err); ok && st.Code() == codes.Canceled {
				return nil
			}
			return err
		}
		t0 := s.now()
		resp := x.handle(req)
		x.spent += s.now().Sub(t0)
		if resp == nil || req.GetObservabilityMode() {
			continue
		}
		if err := stream.Send(resp); err != nil {
			return err
		}
	}
}

func (x *exchange) handle(req *extprocv3.ProcessingRequest) *extprocv3.ProcessingResponse {
	if !x.known && req.GetMetadataContext() != nil {
		x.resource, x.caller, x.known = callerFrom(req.GetMetadataContext())
	}
	switch r := req.GetRequest().(type) {
	case *extprocv3.ProcessingRequest_RequestHeaders:
		// Skipped by the shipped configuration; continue if sent anyway.
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestHeaders{RequestHeaders: &extprocv3.HeadersResponse{}}}
	case *extprocv3.ProcessingRequest_RequestBody:
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestBody{RequestBody: &extprocv3.BodyResponse{}}}
	case *extprocv3.ProcessingRequest_RequestTrailers:
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestTrailers{RequestTrailers: &extprocv3.TrailersResponse{}}}
	case *extprocv3.ProcessingRequest_ResponseHeaders:
		return x.responseHeaders(r.ResponseHeaders)
	case *extprocv3.ProcessingRequest_ResponseBody:
		return x.responseBody(r.ResponseBody)
	case *extprocv3.ProcessingRequest_ResponseTrailers:
		// A JSON body still held here never saw its end of stream (it
		// came with trailers): it is dropped, never passed unfiltered.
		x.body = nil
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseTrailers{ResponseTrailers: &extprocv3.TrailersResponse{}}}
	}
	return nil // nothing to answer (a message without a phase)
}

// filters reports whether this exchange's responses need reading: not
// when the Check's resource is known and its rules tell no operation from
// another.
func (x *exchange) filters() bool {
	if !x.known {
		return true
	}
	l := x.s.policies.Policy().Listing(x.resource)
	return !l.Found || l.Filters
}

// keep is the decision on each entry; nil when there is no caller, so a
// listing is refused.
func (x *exchange) keep() keepFunc {
	if !x.known {
		return nil
	}
	p := x.s.policies.Policy()
	l := p.Listing(x.resource)
	switch {
	case !l.Found:
		return nil
	case !l.Filters:
		return func(Kind, string) bool { return true }
	}
	return func(k Kind, name string) bool {
		allowed, decidable := p.WouldAllow(x.ctx, x.resource, x.caller, listings[k].method, name)
		return allowed && decidable // undecidable: hidden
	}
}

func (x *exchange) responseHeaders(h *extprocv3.HttpHeaders) *extprocv3.ProcessingResponse {
	x.headers = true
	resp := &extprocv3.HeadersResponse{}
	out := &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseHeaders{ResponseHeaders: resp}}
	switch mediaType(headerValue(h.GetHeaders(), "content-type")) {
	case "application/json", "":
		x.form = formJSON
	case "text/event-stream":
		x.form = formSSE
	default:
		x.form = formNone
	}
	if h.GetEndOfStream() || !x.filters() {
		x.form = formNone
	}
	mode := &filterv3.ProcessingMode{
		RequestHeaderMode:   filterv3.ProcessingMode_SKIP,
		ResponseHeaderMode:  filterv3.ProcessingMode_SEND,
		RequestBodyMode:     filterv3.ProcessingMode_NONE,
		ResponseBodyMode:    filterv3.ProcessingMode_NONE,
		RequestTrailerMode:  filterv3.ProcessingMode_SKIP,
		ResponseTrailerMode: filterv3.ProcessingMode_SKIP,
	}
	out.ModeOverride = mode
	if x.form == formNone {
		return out
	}
	// The body may change: its length goes (RFC 9110 §8.6; Envoy then
	// frames the response itself).
	remove := []string{"content-length"}
	if ce := strings.ToLower(strings.TrimSpace(headerValue(h.GetHeaders(), "content-encoding"))); ce != "" && ce != "identity" {
		// Compressed: unreadable here, so replaced by an error, which is
		// not compressed.
		x.encoded = true
		remove = append(remove, "content-encoding")
	}
	resp.Response = &extprocv3.CommonResponse{HeaderMutation: &extprocv3.HeaderMutation{RemoveHeaders: remove}}
	if x.form == formJSON {
		mode.ResponseBodyMode = filterv3.ProcessingMode_BUFFERED
	} else {
		mode.ResponseBodyMode = filterv3.ProcessingMode_STREAMED
		x.sse = newSSEFilter(x.keep(), x.s.max)
	}
	return out
}

func (x *exchange) responseBody(b *extprocv3.HttpBody) *extprocv3.ProcessingResponse {
	if !x.headers {
		// Envoy was configured to send the body without the headers:
		// read it as JSON, the form that can be checked whole.
		x.headers, x.form = true, formJSON
	}
	var out []byte
	switch x.form {
	case formNone:
		return bodyResponse(nil, b.GetBody())
	case formJSON:
		out = x.jsonBody(b.GetBody(), b.GetEndOfStream())
	case formSSE:
		if x.encoded && !x.sse.failed {
			x.sse.fail(ErrEncoded)
			out = sseError(ErrEncoded)
		} else {
			out = x.sse.feed(b.GetBody(), b.GetEndOfStream())
		}
	}
	return bodyResponse(out, b.GetBody())
}

// jsonBody holds the body until its end of stream (in BUFFERED mode the
// one message is the whole body), then answers it filtered.
func (x *exchange) jsonBody(chunk []byte, end bool) []byte {
	if !x.over {
		if len(x.body)+len(chunk) > x.s.max {
			x.over, x.body = true, nil
		} else {
			x.body = append(x.body, chunk...)
		}
	}
	if !end {
		return []byte{} // held: nothing passes yet
	}
	body := x.body
	x.body = nil
	var err error
	switch {
	case x.over:
		err = ErrTooLarge
	case x.encoded:
		err = ErrEncoded
	case len(bytes.TrimSpace(body)) == 0:
		return body
	}
	if err == nil {
		out, changed, removed, ferr := filterMessage(body, x.keep())
		if ferr == nil {
			for k := range removed {
				x.removed[k] += removed[k]
			}
			if !changed {
				return body
			}
			return out
		}
		err = ferr
	}
	x.reasons = append(x.reasons, err)
	x.s.log.Debug("extproc: response replaced by a JSON-RPC error", "resource", x.resource, "error", err)
	id := "null"
	if !x.over && !x.encoded {
		id = messageID(body)
	}
	return errorMessage(id, err)
}

// bodyResponse answers a body message: no mutation when out is in (or
// nil), else the chunk replaced by out (cleared when out is empty).
func bodyResponse(out, in []byte) *extprocv3.ProcessingResponse {
	resp := &extprocv3.BodyResponse{}
	if out != nil && !bytes.Equal(out, in) {
		m := &extprocv3.BodyMutation{}
		if len(out) == 0 {
			m.Mutation = &extprocv3.BodyMutation_ClearBody{ClearBody: true}
		} else {
			m.Mutation = &extprocv3.BodyMutation_Body{Body: out}
		}
		resp.Response = &extprocv3.CommonResponse{BodyMutation: m}
	}
	return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseBody{ResponseBody: resp}}
}

// record adds the exchange to the metrics.
func (x *exchange) record() {
	s := x.s
	if x.sse != nil {
		for k := range x.sse.removed {
			x.removed[k] += x.sse.removed[k]
		}
		x.reasons = append(x.reasons, x.sse.errs...)
	}
	if s.removed == nil || x.form == formNone {
		return
	}
	ctx := context.WithoutCancel(x.ctx)
	for k, n := range x.removed {
		if n > 0 {
			s.removed.Add(ctx, int64(n), metric.WithAttributes(attribute.String("kind", Kind(k).String())))
		}
	}
	for _, err := range x.reasons {
		s.replaced.Add(ctx, 1, metric.WithAttributes(attribute.String("reason", reason(err))))
	}
	f := "json"
	if x.form == formSSE {
		f = "sse"
	}
	s.took.Record(ctx, x.spent.Seconds(), metric.WithAttributes(attribute.String("form", f)))
}

func reason(err error) string {
	switch {
	case errors.Is(err, ErrNoCaller), errors.Is(err, ErrUnknownResource):
		return "no_caller"
	case errors.Is(err, ErrTooLarge):
		return "too_large"
	case errors.Is(err, ErrEncoded):
		return "encoded"
	case errors.Is(err, ErrAmbiguous):
		return "ambiguous"
	}
	return "not_json"
}

// headerValue returns the value of the header named name (lower case, as
// Envoy sends them), from raw_value or value.
func headerValue(h *corev3.HeaderMap, name string) string {
	for _, v := range h.GetHeaders() {
		if v.GetKey() == name {
			if len(v.GetRawValue()) > 0 {
				return string(v.GetRawValue())
			}
			return v.GetValue()
		}
	}
	return ""
}

// mediaType returns the lower-case media type of a Content-Type, "" when
// absent; an unparsable one is read as JSON would be, to be checked.
func mediaType(ct string) string {
	if strings.TrimSpace(ct) == "" {
		return ""
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return ""
	}
	return mt
}
