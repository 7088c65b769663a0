package check

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// EnvoyRequest describes a request the way an operator thinks of it; Proto
// turns it into the CheckRequest Envoy's ext_authz filter would send for
// it. The check command, the tests and the benchmarks all use it, so they
// exercise the same shape Envoy produces.
type EnvoyRequest struct {
	Method  string // default GET
	URL     string // absolute: scheme, authority, path and query
	Headers [][2]string
	// RawHeaders sends header_map (encode_raw_headers: true) instead of the
	// headers map; repeated headers stay separate entries.
	RawHeaders bool
	// ContextExtensions as a route's per-filter config would set them.
	ContextExtensions map[string]string
	Body              []byte
	SourceAddress     string // default 127.0.0.1:50000
}

// Proto builds the CheckRequest.
func (e EnvoyRequest) Proto() (*authv3.CheckRequest, error) {
	u, err := url.Parse(e.URL)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return nil, fmt.Errorf("url %q must be absolute (scheme://host/path)", e.URL)
	}
	method := e.Method
	if method == "" {
		method = "GET"
	}
	target := u.RequestURI()
	id := requestID()
	// Envoy lists the pseudo-headers with the request's own headers.
	hs := [][2]string{
		{":authority", u.Host},
		{":method", method},
		{":path", target},
		{":scheme", u.Scheme},
		{"x-forwarded-proto", u.Scheme},
		{"x-request-id", id},
	}
	hs = append(hs, e.Headers...)
	h := &authv3.AttributeContext_HttpRequest{
		Id:       id,
		Method:   method,
		Path:     target,
		Host:     u.Host,
		Scheme:   u.Scheme,
		Protocol: "HTTP/1.1",
		Size:     int64(len(e.Body)),
	}
	if len(e.Body) > 0 {
		h.Body = string(e.Body)
	}
	if e.RawHeaders {
		hm := &corev3.HeaderMap{}
		for _, kv := range hs {
			hm.Headers = append(hm.Headers, &corev3.HeaderValue{Key: strings.ToLower(kv[0]), RawValue: []byte(kv[1])})
		}
		h.HeaderMap = hm
	} else {
		h.Headers = make(map[string]string, len(hs))
		for _, kv := range hs {
			k := strings.ToLower(kv[0])
			if prev, ok := h.Headers[k]; ok {
				h.Headers[k] = prev + "," + kv[1]
			} else {
				h.Headers[k] = kv[1]
			}
		}
	}
	src := e.SourceAddress
	if src == "" {
		src = "127.0.0.1:50000"
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source:            peer(src),
		Destination:       peer("127.0.0.1:10000"),
		Request:           &authv3.AttributeContext_Request{Time: timestamppb.New(time.Now()), Http: h},
		ContextExtensions: e.ContextExtensions,
	}}, nil
}

func peer(hostport string) *authv3.AttributeContext_Peer {
	host, port, _ := strings.Cut(hostport, ":")
	var p uint32
	_, _ = fmt.Sscan(port, &p)
	return &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
		SocketAddress: &corev3.SocketAddress{Address: host, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: p}},
	}}}
}

func requestID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// MCPToolCall is what Envoy sends for an MCP tools/call over the
// streamable HTTP transport: the headers a real client sends (protocol
// version, session, the MCP method and tool name, trace context) and the
// bearer token. The benchmarks and the load harness measure with it, so
// their figures describe the same request.
func MCPToolCall(url, token string) EnvoyRequest {
	return EnvoyRequest{Method: "POST", URL: url, Headers: [][2]string{
		{"authorization", "Bearer " + token},
		{"content-type", "application/json"},
		{"accept", "application/json, text/event-stream"},
		{"mcp-protocol-version", "2026-07-28"},
		{"mcp-session-id", "7c1f4d2a-9b8e-4f3a-a1c2-d3e4f5a6b7c8"},
		{"mcp-method", "tools/call"},
		{"mcp-name", "get_weather"},
		{"user-agent", "node"},
		{"content-length", "182"},
		{"traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
	}}
}
