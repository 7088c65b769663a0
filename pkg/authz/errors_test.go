package authz_test

import (
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/extauthz/extauthz/pkg/authz"
)

// TestRefusal: the denials a transport gives before the engine sees the
// request come from the denial table, and are exactly what Envoy and the
// HTTP clients have always been sent: status, reason, body, no challenge,
// no resource, Retry-After only on the 503.
func TestRefusal(t *testing.T) {
	wireErr := fmt.Errorf("%w: CheckRequest: invalid wire format", authz.ErrUndecodable)
	for _, tc := range []struct {
		err        error
		status     int
		reason     authz.Reason
		body       string
		retryAfter int
	}{
		{wireErr, http.StatusBadRequest, authz.ReasonInvalidRequest,
			`{"error":"invalid_request","error_description":"the authorization request cannot be decoded"}`, 0},
		{authz.ErrHeaderLimits, http.StatusBadRequest, authz.ReasonInvalidRequest,
			`{"error":"invalid_request","error_description":"the request has too many headers, or headers too large"}`, 0},
		{authz.ErrInternal, http.StatusServiceUnavailable, authz.ReasonInternal,
			`{"error":"temporarily_unavailable","error_description":"the request cannot be authorized now; retry later"}`, 5},
		{errors.New("anything unforeseen"), http.StatusServiceUnavailable, authz.ReasonInternal,
			`{"error":"temporarily_unavailable","error_description":"the request cannot be authorized now; retry later"}`, 5},
	} {
		d := authz.Refusal(tc.err)
		if d.Allow || d.Status != tc.status || d.Reason != tc.reason || string(d.Body) != tc.body ||
			d.ContentType != "application/json" || d.RetryAfter != tc.retryAfter ||
			d.Challenge != "" || d.Resource != "" || !errors.Is(d.Err, tc.err) {
			t.Errorf("Refusal(%v) = %+v (body %s)", tc.err, d, d.Body)
		}
	}
	if !errors.Is(authz.ErrUndecodable, authz.ErrInvalidRequest) || !errors.Is(authz.ErrHeaderLimits, authz.ErrInvalidRequest) {
		t.Error("the refusals are invalid requests")
	}
}
