package ssf

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/extauthz/extauthz/pkg/revocation"
)

// ContentType is the media type of a pushed SET (RFC 8935 §2.1).
const ContentType = "application/secevent+jwt"

// The ways a SET is delivered: the metric's delivery label.
const (
	deliveryPush = "push"
	deliveryPoll = "poll"
)

// outcome is what became of one SET, for the answer, the log and the
// metric.
type outcome struct {
	tr     *transmitter // nil until the SET's issuer is known
	label  string       // the event's metric label
	result string       // the metric's result label
}

// ServeHTTP receives one SET pushed as RFC 8935 says: POST, Content-Type
// application/secevent+jwt, the SET as the body. It answers 202 Accepted
// with no body once the SET's revocation is stored (or the SET is one
// with nothing to revoke); 400 with {"err", "description"} for a SET it
// refuses (RFC 8935 §2.3, the codes of §2.4); 401 or 403 when the push
// is not authenticated as the SET's transmitter; and 503 with Retry-After
// when it cannot judge the SET or store its revocation now, so that the
// transmitter sends it again and nothing is lost.
func (r *Receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	o := outcome{label: labelNone}
	err := r.receive(req, &o)
	if err == nil {
		r.observe(req.Context(), deliveryPush, &o, nil)
		w.WriteHeader(http.StatusAccepted)
		return
	}
	a := r.observe(req.Context(), deliveryPush, &o, err)
	if a.status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", r.retryAfter)
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(a.status)
		_, _ = io.WriteString(w, "the SET could not be processed now; retry later\n")
		return
	}
	if a.status == http.StatusUnauthorized {
		challenge := "Bearer"
		if req.Header.Get("Authorization") != "" {
			challenge = `Bearer error="invalid_token"`
		}
		w.Header().Set("WWW-Authenticate", challenge)
	}
	body, _ := json.Marshal(struct {
		Err         string `json:"err"`
		Description string `json:"description"`
	}{a.code, description(err)})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(a.status)
	_, _ = w.Write(body)
}

// observe counts one SET's outcome, logs a refusal, and returns the
// refusal's answer.
func (r *Receiver) observe(ctx context.Context, delivery string, o *outcome, err error) answer {
	transmitterLabel := "unknown"
	if o.tr != nil {
		transmitterLabel = o.tr.issuer
	}
	result := o.result
	var a answer
	if err != nil {
		a = answerFor(err)
		result = a.result
	}
	r.events.Add(ctx, 1, metric.WithAttributes(attribute.String("transmitter", transmitterLabel),
		attribute.String("event", o.label), attribute.String("result", result), attribute.String("delivery", delivery)))
	if err == nil {
		return a
	}
	level := slog.LevelInfo
	switch {
	case a.status == http.StatusServiceUnavailable:
		level = slog.LevelWarn
	case o.tr == nil:
		// Anyone can post garbage: not worth more than a debug line.
		level = slog.LevelDebug
	}
	r.log.Log(ctx, level, "ssf: SET refused", "transmitter", transmitterLabel, "delivery", delivery, "status", a.status, "err", err)
	return a
}

// description is the human-readable part of a refusal: the error without
// the package's prefixes.
func description(err error) string {
	s := err.Error()
	for {
		t, ok := strings.CutPrefix(s, "ssf: ")
		if !ok {
			return s
		}
		s = t
	}
}

// receive judges one push and, when it is good, applies its event.
func (r *Receiver) receive(req *http.Request, o *outcome) error {
	authAs, err := r.authenticate(req)
	if err != nil {
		return err
	}
	mt, _, err := mime.ParseMediaType(req.Header.Get("Content-Type"))
	if err != nil || !strings.EqualFold(mt, ContentType) {
		return fmt.Errorf("%w (RFC 8935 §2.1)", ErrContentType)
	}
	raw, err := r.readBody(req)
	if err != nil {
		return err
	}
	return r.process(req.Context(), raw, "", o, func(tr *transmitter) error {
		switch {
		case authAs != nil && authAs != tr:
			return fmt.Errorf("%w: the push is authenticated as transmitter %s, the SET is from another", ErrAccessDenied, authAs.issuer)
		case tr.hasToken && authAs == nil:
			return fmt.Errorf("%w: this transmitter's pushes must carry its bearer token", ErrAuthentication)
		}
		return nil
	})
}

// process judges one SET, however it was delivered, and when it is good
// applies its event. admit says whether the delivery may carry a SET of
// the transmitter its iss names (checked before the signature); jti, when
// set, is the jti the delivery said the SET has (RFC 8936 keys SETs by
// it).
func (r *Receiver) process(ctx context.Context, raw, jti string, o *outcome, admit func(*transmitter) error) error {
	t, err := parse(raw)
	if err != nil {
		return err
	}
	tr, ok := r.transmitters[t.iss]
	if !ok {
		return fmt.Errorf("%w: iss is not a configured transmitter", ErrIssuer)
	}
	o.tr = tr
	if err := admit(tr); err != nil {
		return err
	}
	if err := t.verifySignature(ctx, tr); err != nil {
		return err
	}
	c, err := t.checkClaims(r.audience, r.now(), r.leeway, r.maxAge)
	if err != nil {
		return err
	}
	if jti != "" && c.jti != jti {
		return fmt.Errorf("%w: the SET's jti is not the one it was delivered under", ErrMalformed)
	}
	if kind, ok := eventKinds[c.eventType]; ok {
		o.label = kind.label
	} else {
		o.label = labelOther
	}
	key := replayKey(tr.issuer, c.jti)
	seen, err := r.replay.Seen(ctx, key)
	switch {
	case err != nil:
		return fmt.Errorf("%w: replay store: %v", ErrUnavailable, err)
	case seen:
		return fmt.Errorf("%w: this jti was received before", ErrReplayed)
	}
	a, err := tr.decide(c, r.leeway)
	if err != nil {
		return err
	}
	switch a.effect {
	case ignore:
		o.result = "ignored"
		r.log.Info("ssf: event of an unknown type acknowledged and ignored", "transmitter", tr.issuer, "event", quote(c.eventType), "jti", c.jti)
	case acknowledge:
		o.result = "acknowledged"
		r.log.Info("ssf: verification event acknowledged", "transmitter", tr.issuer, "jti", c.jti)
	default:
		if o.result, err = r.revoke(ctx, tr, c, a.watermark); err != nil {
			return err
		}
	}
	// Only now, with the event applied, is the SET remembered (see
	// ReplayStore). A failure here leaves a replay possible, whose
	// effect would be the one already applied.
	if err := r.replay.Remember(ctx, key, r.maxAge+r.leeway); err != nil {
		r.log.Warn("ssf: SET applied but its jti not remembered", "transmitter", tr.issuer, "jti", c.jti, "err", err)
	}
	return nil
}

// revoke stores the watermark and names the result: "revoked" (stored
// for the fleet) or "revoked_local" (no shared tier is configured: held
// on this replica, as configured).
func (r *Receiver) revoke(ctx context.Context, tr *transmitter, c *claims, w revocation.Watermark) (string, error) {
	err := r.revoker.Revoke(ctx, w)
	result := "revoked"
	switch {
	case errors.Is(err, revocation.ErrNoSharedTier):
		result = "revoked_local"
	case err != nil:
		return "", fmt.Errorf("%w: storing the revocation: %v", ErrUnavailable, err)
	}
	r.log.Info("ssf: revocation stored", "transmitter", tr.issuer, "event", c.eventType, "jti", c.jti,
		"selector", selectors(w), "before", w.Before, "result", result)
	return result, nil
}

// selectors names which selectors a watermark sets, for the log line
// (the values are the revocation's audit line's to write).
func selectors(w revocation.Watermark) string {
	var s []string
	for _, f := range []struct{ name, v string }{
		{"issuer", w.Issuer}, {"subject", w.Subject}, {"session", w.SessionID}, {"client", w.ClientID}, {"claim:" + w.Claim, w.Value},
	} {
		if f.v != "" {
			s = append(s, f.name)
		}
	}
	return strings.Join(s, ",")
}

// readBody reads the SET, at most maxBytes.
func (r *Receiver) readBody(req *http.Request) (string, error) {
	if req.ContentLength > r.maxBytes {
		return "", fmt.Errorf("%w: larger than %d bytes", ErrTooLarge, r.maxBytes)
	}
	b, err := io.ReadAll(io.LimitReader(req.Body, r.maxBytes+1))
	if err != nil {
		return "", fmt.Errorf("%w: reading the body: %v", ErrMalformed, err)
	}
	if int64(len(b)) > r.maxBytes {
		return "", fmt.Errorf("%w: larger than %d bytes", ErrTooLarge, r.maxBytes)
	}
	// RFC 8935 §2.1: the body is the SET; surrounding whitespace is
	// tolerated, anything else is not a SET.
	return strings.TrimSpace(string(b)), nil
}

// authenticate finds the transmitter whose push token the request
// carries (Authorization: Bearer, RFC 6750 §2.1), comparing with every
// transmitter's in constant time. No Authorization is nil, no error: the
// SET's transmitter decides whether it needed one. One that matches no
// transmitter's token is refused.
func (r *Receiver) authenticate(req *http.Request) (*transmitter, error) {
	values := req.Header.Values("Authorization")
	switch {
	case len(values) == 0:
		return nil, nil
	case len(values) > 1:
		return nil, fmt.Errorf("%w: more than one Authorization header", ErrAuthentication)
	}
	scheme, tok, ok := strings.Cut(values[0], " ")
	tok = strings.TrimLeft(tok, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return nil, fmt.Errorf("%w: Authorization is not a Bearer token", ErrAuthentication)
	}
	sum := sha256.Sum256([]byte(tok))
	var found *transmitter
	for _, tr := range r.transmitters {
		if tr.hasToken && subtle.ConstantTimeCompare(sum[:], tr.pushToken[:]) == 1 {
			found = tr
		}
	}
	if found == nil {
		return nil, fmt.Errorf("%w: the bearer token is no transmitter's", ErrAuthentication)
	}
	return found, nil
}
