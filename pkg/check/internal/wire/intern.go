package wire

import "strings"

// Common header names, so that decoding them allocates nothing: a switch on
// string(b) compares without converting.
const (
	hAuthority          = ":authority"
	hMethod             = ":method"
	hPath               = ":path"
	hScheme             = ":scheme"
	hAccept             = "accept"
	hAcceptEncoding     = "accept-encoding"
	hAuthorization      = "authorization"
	hContentType        = "content-type"
	hContentLength      = "content-length"
	hCookie             = "cookie"
	hHost               = "host"
	hOrigin             = "origin"
	hUserAgent          = "user-agent"
	hMCPMethod          = "mcp-method"
	hMCPName            = "mcp-name"
	hMCPProtocolVersion = "mcp-protocol-version"
	hMCPSessionID       = "mcp-session-id"
	hXForwardedFor      = "x-forwarded-for"
	hXForwardedProto    = "x-forwarded-proto"
	hXRequestID         = "x-request-id"
	hXEnvoyRqTimeout    = "x-envoy-expected-rq-timeout-ms"
	hTraceparent        = "traceparent"
	hTracestate         = "tracestate"
)

// maxInterned is the length of the longest common name.
const maxInterned = len(hXEnvoyRqTimeout)

// commonName is b as one of the common names, exactly, or "" if it is none.
func commonName(b []byte) string {
	switch string(b) {
	case hAuthority:
		return hAuthority
	case hMethod:
		return hMethod
	case hPath:
		return hPath
	case hScheme:
		return hScheme
	case hAccept:
		return hAccept
	case hAcceptEncoding:
		return hAcceptEncoding
	case hAuthorization:
		return hAuthorization
	case hContentType:
		return hContentType
	case hContentLength:
		return hContentLength
	case hCookie:
		return hCookie
	case hHost:
		return hHost
	case hOrigin:
		return hOrigin
	case hUserAgent:
		return hUserAgent
	case hMCPMethod:
		return hMCPMethod
	case hMCPName:
		return hMCPName
	case hMCPProtocolVersion:
		return hMCPProtocolVersion
	case hMCPSessionID:
		return hMCPSessionID
	case hXForwardedFor:
		return hXForwardedFor
	case hXForwardedProto:
		return hXForwardedProto
	case hXRequestID:
		return hXRequestID
	case hXEnvoyRqTimeout:
		return hXEnvoyRqTimeout
	case hTraceparent:
		return hTraceparent
	case hTracestate:
		return hTracestate
	}
	return ""
}

// headerName is string(b), shared when it is a common name.
func headerName(b []byte) string {
	if s := commonName(b); s != "" {
		return s
	}
	return string(b)
}

// lowerHeaderName is strings.ToLower(string(b)), shared when it is a common
// name. A short ASCII name is lower-cased on the stack to be looked up;
// anything else goes through strings.ToLower, whose Unicode rules are then
// kept as they are.
func lowerHeaderName(b []byte) string {
	if len(b) <= maxInterned {
		var buf [maxInterned]byte
		for i, c := range b {
			if c >= 0x80 {
				return strings.ToLower(string(b))
			}
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			buf[i] = c
		}
		if s := commonName(buf[:len(b)]); s != "" {
			return s
		}
	}
	return strings.ToLower(string(b))
}
