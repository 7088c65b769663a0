package check

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/extauthz/extauthz/pkg/authz"
)

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

// ErrHeaderLimits means the request has more headers than MaxHeaders, or more
// header bytes than MaxHeaderBytes. It is an invalid request (a 400).
var ErrHeaderLimits = fmt.Errorf("%w: request headers over the gateway's limits", authz.ErrInvalidRequest)

// HeaderLimits reports whether a translated request is within MaxHeaders
// and MaxHeaderBytes; ErrHeaderLimits when not. DecodeRequest fails with
// ErrHeaderLimits exactly when HeaderLimits refuses what Request
// translates from the same message.
func HeaderLimits(r *authz.Request) error {
	if len(r.Headers) > MaxHeaders || headerBytes(r.Headers) > MaxHeaderBytes {
		return ErrHeaderLimits
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

// overLimits is the answer to a request over the header limits. It is
// decided before the request is routed, so, like an undecodable request,
// it carries no Bearer challenge: which resource it was for is not known.
func overLimits(err error) authz.Decision {
	return authz.Decision{
		Status:      http.StatusBadRequest,
		Reason:      authz.ReasonInvalidRequest,
		ContentType: "application/json",
		Body:        []byte(`{"error":"invalid_request","error_description":"the request has too many headers, or headers too large"}`),
		Err:         err,
	}
}

// refusal is the answer to a request DecodeRequest refuses.
func refusal(err error) authz.Decision {
	if errors.Is(err, ErrHeaderLimits) {
		return overLimits(err)
	}
	return undecodable(err)
}
