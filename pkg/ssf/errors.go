package ssf

import (
	"errors"
	"net/http"
)

// The SET error codes of RFC 8935 §2.4 (IANA "Security Event Token Error
// Codes"), written in the err member of a refusal.
const (
	CodeInvalidRequest       = "invalid_request"
	CodeInvalidKey           = "invalid_key"
	CodeInvalidIssuer        = "invalid_issuer"
	CodeInvalidAudience      = "invalid_audience"
	CodeAuthenticationFailed = "authentication_failed"
	CodeAccessDenied         = "access_denied"
)

// Failure classes. Every error the receiver returns wraps one of them;
// errorTable maps each to the HTTP answer and the metric's result label.
var (
	// ErrMalformed: the body is not a SET this receiver can read, or a
	// claim or the event is missing, of the wrong type, or out of its
	// time window (RFC 8935 invalid_request).
	ErrMalformed = errors.New("ssf: invalid SET")
	// ErrTooLarge: the body is larger than Options.MaxBytes.
	ErrTooLarge = errors.New("ssf: SET too large")
	// ErrContentType: the push is not application/secevent+jwt (RFC 8935
	// §2.1).
	ErrContentType = errors.New("ssf: push is not application/secevent+jwt")
	// ErrReplayed: a SET with this iss and jti was received before.
	ErrReplayed = errors.New("ssf: SET replayed")
	// ErrKey: the signing key or algorithm is not acceptable, or the
	// signature does not verify (invalid_key).
	ErrKey = errors.New("ssf: SET signature or key not acceptable")
	// ErrIssuer: iss is not a configured transmitter (invalid_issuer).
	ErrIssuer = errors.New("ssf: unknown SET issuer")
	// ErrAudience: aud does not name this receiver (invalid_audience).
	ErrAudience = errors.New("ssf: SET audience is not this receiver")
	// ErrAuthentication: the push carries no Authorization, or one that
	// is no transmitter's (authentication_failed, 401).
	ErrAuthentication = errors.New("ssf: push not authenticated")
	// ErrAccessDenied: the push is authenticated as a transmitter other
	// than the SET's issuer (access_denied, 403).
	ErrAccessDenied = errors.New("ssf: push authenticated as another transmitter")
	// ErrUnavailable: the SET cannot be judged or its revocation stored
	// now (the transmitter's keys cannot be fetched, the replay store or
	// the revocation's shared tier failed): 503, the transmitter retries.
	ErrUnavailable = errors.New("ssf: unavailable, retry later")
)

// answer is how the push endpoint answers one failure class.
type answer struct {
	status int
	code   string // RFC 8935 err; "" for a 503
	result string // the metric's result label
}

// errorTable maps each failure class to its answer. Everything about a
// SET's content is a 400 (RFC 8935 §2.3); authenticating the push itself
// follows HTTP (RFC 9110 §15.5.2, §15.5.4).
var errorTable = []struct {
	err error
	answer
}{
	{ErrTooLarge, answer{http.StatusBadRequest, CodeInvalidRequest, "too_large"}},
	{ErrContentType, answer{http.StatusUnsupportedMediaType, CodeInvalidRequest, "content_type"}},
	{ErrReplayed, answer{http.StatusBadRequest, CodeInvalidRequest, "replayed"}},
	{ErrMalformed, answer{http.StatusBadRequest, CodeInvalidRequest, CodeInvalidRequest}},
	{ErrKey, answer{http.StatusBadRequest, CodeInvalidKey, CodeInvalidKey}},
	{ErrIssuer, answer{http.StatusBadRequest, CodeInvalidIssuer, CodeInvalidIssuer}},
	{ErrAudience, answer{http.StatusBadRequest, CodeInvalidAudience, CodeInvalidAudience}},
	{ErrAuthentication, answer{http.StatusUnauthorized, CodeAuthenticationFailed, CodeAuthenticationFailed}},
	{ErrAccessDenied, answer{http.StatusForbidden, CodeAccessDenied, CodeAccessDenied}},
	{ErrUnavailable, answer{http.StatusServiceUnavailable, "", "unavailable"}},
}

// answerFor finds err's answer; an error of no class is a 503, never an
// acknowledgement.
func answerFor(err error) answer {
	for _, e := range errorTable {
		if errors.Is(err, e.err) {
			return e.answer
		}
	}
	return answer{http.StatusServiceUnavailable, "", "unavailable"}
}
