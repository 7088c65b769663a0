package upstream

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Failure classes. Every error Token returns wraps exactly one of them.
var (
	// ErrUnavailable: no credential now — the token endpoint is down,
	// slow, overloaded or answered something unusable, or the gateway's
	// own client is refused. It says nothing about the request: never
	// cached; the engine answers 503 with RetryAfter.
	ErrUnavailable = errors.New("upstream: no upstream credential now")
	// ErrRefused: the authorization server refused, definitively, to
	// issue a credential for this request (invalid_grant, invalid_target,
	// unauthorized_client, invalid_scope, access_denied; invalid_request
	// for an exchange, see refusalCode). Cached for RefusalTTL; the engine
	// answers 403.
	ErrRefused = errors.New("upstream: the authorization server refused an upstream credential")
)

// refusals are the errors of the codes that refuse definitively, built
// once: a cached refusal is answered without allocating. The message
// holds the code (a constant, never the server's text).
var refusals = func() map[string]error {
	m := map[string]error{}
	for _, code := range []string{"invalid_grant", "invalid_target", "unauthorized_client", "invalid_scope", "access_denied", "invalid_request"} {
		m[code] = fmt.Errorf("%w: %s", ErrRefused, code)
	}
	return m
}()

// unavailableError is an ErrUnavailable, with the server's Retry-After
// when it sent one.
type unavailableError struct {
	msg        string
	retryAfter time.Duration
	hasRetry   bool
}

func (e *unavailableError) Error() string { return ErrUnavailable.Error() + ": " + e.msg }
func (e *unavailableError) Unwrap() error { return ErrUnavailable }

// RetryAfter is the package's RetryAfter of e, for a caller that finds it
// with errors.As (interface{ RetryAfter() time.Duration }) through its own
// wrapping.
func (e *unavailableError) RetryAfter() time.Duration { return RetryAfter(e) }

func unavailable(format string, args ...any) error {
	return &unavailableError{msg: fmt.Sprintf(format, args...)}
}

// Bounds of RetryAfter.
const (
	minRetryAfter     = time.Second
	maxRetryAfter     = time.Minute
	defaultRetryAfter = 5 * time.Second
)

// RetryAfter is the Retry-After to answer an ErrUnavailable with: the
// authorization server's own, from a 429 or 503, bounded to 1s..60s (a
// server asking for an hour must not make a client wait that long for a
// gateway that may recover sooner, nor "0" make it hammer us); 5s
// otherwise. It is 0 for an error that is not an ErrUnavailable.
func RetryAfter(err error) time.Duration {
	var ue *unavailableError
	if errors.As(err, &ue) && ue.hasRetry {
		return min(max(ue.retryAfter, minRetryAfter), maxRetryAfter)
	}
	if errors.Is(err, ErrUnavailable) {
		return defaultRetryAfter
	}
	return 0
}

// parseRetryAfter reads a Retry-After value (RFC 9110 §10.2.3):
// delta-seconds or an HTTP-date.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if v[0] >= '0' && v[0] <= '9' {
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			if len(v) > 10 && strings.Trim(v, "0123456789") == "" {
				return maxRetryAfter, true // a huge number: the longest we allow
			}
			return 0, false
		}
		return min(time.Duration(n)*time.Second, maxRetryAfter), true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return max(t.Sub(now), 0), true
}
