package wire

import "github.com/extauthz/extauthz/pkg/authz"

// Bounds on the request headers a decision looks at. Envoy sends at most
// 100 headers and 60 KiB of them by default (max_headers_count,
// max_request_headers_kb); these leave room for raised Envoy limits and
// for the largest token tokens.max_bytes accepts (1 MiB), and stop a
// CheckRequest sent straight to the gRPC listener from making one decision
// build and scan a map of a million headers.
const (
	// MaxHeaders is the most header names a request may have, counted
	// once merged (repeated headers are one name), pseudo-headers
	// included.
	MaxHeaders = 256
	// MaxHeaderBytes is the most bytes of header names and values, once
	// merged, a request may have.
	MaxHeaderBytes = 1<<20 + 64<<10
)

// HeaderLimits reports whether a translated request is within MaxHeaders
// and MaxHeaderBytes; authz.ErrHeaderLimits (a 400, from the denial
// table) when not. DecodeRequest fails with authz.ErrHeaderLimits exactly
// when HeaderLimits refuses what Translate gives for the same message.
func HeaderLimits(r *authz.Request) error {
	if len(r.Headers) > MaxHeaders || headerBytes(r.Headers) > MaxHeaderBytes {
		return authz.ErrHeaderLimits
	}
	return nil
}

func headerBytes(h map[string]string) int {
	n := 0
	for k, v := range h {
		n += len(k) + len(v)
	}
	return n
}
