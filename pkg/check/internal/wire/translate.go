package wire

import (
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/extauthz/extauthz/pkg/authz"
)

// Translate is the typed translation of what Envoy sent, through
// go-control-plane's generated messages. It is the reference DecodeRequest
// is held to (the differential tests, FuzzDecodeRequest), and the path of
// a request that is a message already (check.Server.Check); the gRPC
// service decodes wire bytes with DecodeRequest instead.
//
// Envoy describes headers either as the headers map (lower-case names, repeated headers merged with ",") or, with
// encode_raw_headers, as header_map: a list of raw entries that may repeat
// and whose values are bytes. Both end up as the same map; repeated entries
// are merged as the map form does, so two Authorization headers read as one
// malformed value either way.
func Translate(req *authv3.CheckRequest) authz.Request {
	attrs := req.GetAttributes()
	h := attrs.GetRequest().GetHttp()
	r := authz.Request{
		Method:            h.GetMethod(),
		Scheme:            h.GetScheme(),
		Host:              h.GetHost(),
		Path:              h.GetPath(),
		Headers:           h.GetHeaders(),
		ContextExtensions: attrs.GetContextExtensions(),
	}
	if r.Headers == nil {
		r.Headers = headerMap(h.GetHeaderMap().GetHeaders())
	}
	if body := h.GetRawBody(); len(body) > 0 {
		r.Body = body
	} else if h.GetBody() != "" {
		r.Body = []byte(h.GetBody())
	}
	pseudoHeaderFallbacks(&r)
	return r
}

// pseudoHeaderFallbacks fills the request line from the pseudo-headers
// where the attributes left it empty: Envoy fills the attributes; the
// pseudo-headers are a fallback for clients that only send headers.
func pseudoHeaderFallbacks(r *authz.Request) {
	if r.Method == "" {
		r.Method = r.Headers[":method"]
	}
	if r.Host == "" {
		if r.Host = r.Headers[":authority"]; r.Host == "" {
			r.Host = r.Headers["host"]
		}
	}
	if r.Path == "" {
		r.Path = r.Headers[":path"]
	}
	if r.Scheme == "" {
		r.Scheme = r.Headers[":scheme"]
	}
}

// headerMap merges header_map entries. Repeated names are joined in a
// buffer: n entries of one name cost one pass, not n copies of the growing
// value. Nothing is dropped here, whatever the count: a request over the
// limits is refused whole (HeaderLimits), never decided on part of its
// headers.
func headerMap(hs []*corev3.HeaderValue) map[string]string {
	m := make(map[string]string, min(len(hs), MaxHeaders))
	var joined map[string]*strings.Builder
	for _, hv := range hs {
		k := strings.ToLower(hv.GetKey())
		v := hv.GetValue()
		if raw := hv.GetRawValue(); len(raw) > 0 {
			v = string(raw)
		}
		prev, ok := m[k]
		if !ok {
			m[k] = v
			continue
		}
		if joined == nil {
			joined = make(map[string]*strings.Builder)
		}
		b := joined[k]
		if b == nil {
			b = &strings.Builder{}
			b.WriteString(prev)
			joined[k] = b
		}
		b.WriteByte(',')
		b.WriteString(v)
	}
	for k, b := range joined {
		m[k] = b.String()
	}
	return m
}
