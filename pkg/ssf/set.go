package ssf

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v3/jws"

	"github.com/extauthz/extauthz/internal/mediatype"
	"github.com/extauthz/extauthz/internal/strictjson"
	"github.com/extauthz/extauthz/pkg/jwks"
)

// maxJTIBytes bounds a SET's jti: it is remembered (hashed) for MaxAge,
// and a transmitter's identifiers are short.
const maxJTIBytes = 1024

// header is the part of a SET's JOSE header this package reads.
// Everything else, notably jku, x5u, jwk and x5c, is ignored on purpose:
// keys come only from the transmitter's configured key set.
type header struct {
	alg, kid, typ, cty string
	hasTyp, crit, b64  bool
}

// headerNames are the header parameters read here; a parameter that
// differs from one of them only in case is refused.
var headerNames = []string{"alg", "kid", "typ", "cty", "crit", "b64"}

// claimNames are the claims read here (RFC 8417 §2.2, SSF 1.0 sub_id).
var claimNames = []string{"iss", "aud", "iat", "exp", "jti", "events", "sub_id", "toe", "txn"}

// token is a SET in JWS compact serialization whose header and claims are
// readable, strictly checked JSON objects. Nothing in it is verified yet.
type token struct {
	raw    string
	header header
	claims map[string]json.RawMessage
	iss    string
}

// parse splits a SET and reads its header and claims (RFC 8417 §2: a JWT,
// here signed, RFC 7515 compact serialization). Each part must be
// canonical unpadded base64url (RFC 7515 §2), so one SET has one
// spelling; a JWE (five parts) is refused: SETs here are signed, not
// encrypted.
func parse(raw string) (*token, error) {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 || parts[2] == "" {
		return nil, fmt.Errorf("%w: not a signed JWT in compact serialization", ErrMalformed)
	}
	hb, err := b64(parts[0])
	if err != nil {
		return nil, fmt.Errorf("%w: header: %v", ErrMalformed, err)
	}
	pb, err := b64(parts[1])
	if err != nil {
		return nil, fmt.Errorf("%w: claims: %v", ErrMalformed, err)
	}
	if _, err := b64(parts[2]); err != nil {
		return nil, fmt.Errorf("%w: signature: %v", ErrMalformed, err)
	}
	t := &token{raw: raw}
	if t.header, err = parseHeader(hb); err != nil {
		return nil, fmt.Errorf("%w: header: %v", ErrMalformed, err)
	}
	if t.claims, err = strictObject(pb); err != nil {
		return nil, fmt.Errorf("%w: claims: %v", ErrMalformed, err)
	}
	for name := range t.claims {
		if strictjson.CaseVariant(name, claimNames...) {
			return nil, fmt.Errorf("%w: claims: %s differs from a SET claim only in case", ErrMalformed, quote(name))
		}
	}
	v, ok := t.claims["iss"]
	if !ok {
		return nil, fmt.Errorf("%w: no iss", ErrMalformed)
	}
	if err := json.Unmarshal(v, &t.iss); err != nil || t.iss == "" {
		return nil, fmt.Errorf("%w: iss is not a non-empty string", ErrMalformed)
	}
	return t, nil
}

// b64 decodes one part of a compact JWS: unpadded base64url whose unused
// trailing bits are zero, and nothing else — encoding/base64 skips \r and
// \n, which would give one SET several spellings.
func b64(s string) ([]byte, error) {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_':
		default:
			return nil, errors.New("invalid base64url")
		}
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil {
		return nil, errors.New("invalid base64url")
	}
	return b, nil
}

// parseHeader reads a JOSE header, strictly (see strictObject).
func parseHeader(data []byte) (header, error) {
	var h header
	m, err := strictObject(data)
	if err != nil {
		return h, err
	}
	for name, v := range m {
		var err error
		switch name {
		case "alg":
			err = str(v, &h.alg)
		case "kid":
			err = str(v, &h.kid)
		case "typ":
			h.hasTyp = true
			err = str(v, &h.typ)
		case "cty":
			err = str(v, &h.cty)
		case "crit":
			h.crit = true
		case "b64":
			h.b64 = true
		default:
			if strictjson.CaseVariant(name, headerNames...) {
				return h, fmt.Errorf("%s differs from a header parameter only in case", quote(name))
			}
		}
		if err != nil {
			return h, fmt.Errorf("%s is not a string", quote(name))
		}
	}
	return h, nil
}

// str decodes a JSON string, refusing null (which encoding/json would
// read as "").
func str(v json.RawMessage, dst *string) error {
	if string(v) == "null" {
		return errors.New("null")
	}
	return json.Unmarshal(v, dst)
}

// verifySignature checks the header a transmitter's SETs must have and
// the signature, with the transmitter's keys. Nothing in the claims is
// trusted before it returns nil.
func (t *token) verifySignature(ctx context.Context, tr *transmitter) error {
	h := t.header
	switch {
	case h.crit || h.b64:
		// RFC 7515 §4.1.11: an extension not understood is refused.
		return fmt.Errorf("%w: header has crit or b64", ErrMalformed)
	case h.cty != "":
		// A SET's claims are its own (RFC 8417 §2.3 sets no cty); a
		// nested JWT would hide them from this reader.
		return fmt.Errorf("%w: header has cty", ErrMalformed)
	case !h.hasTyp || !mediatype.IsApplication(h.typ, "secevent+jwt"):
		// RFC 8417 §2.3 explicit typing, required by SSF 1.0: a SET is
		// never mistaken for an ID or access token, nor one of those for
		// a SET.
		return fmt.Errorf("%w: typ is not secevent+jwt", ErrMalformed)
	}
	alg, ok := tr.algs[h.alg]
	if !ok {
		return fmt.Errorf("%w: algorithm %s is not accepted", ErrKey, quote(h.alg))
	}
	key, err := tr.keys.Key(ctx, h.kid, h.alg)
	if err != nil {
		if errors.Is(err, jwks.ErrUnavailable) || ctx.Err() != nil {
			return fmt.Errorf("%w: the transmitter's keys: %v", ErrUnavailable, err)
		}
		// The key set may predate the key: a transmitter that rotated its
		// keys signs with one the set last fetched does not have, and the
		// refetch an unknown kid causes is rate-limited. A 400 would lose
		// the SET for good (the transmitter does not retry it), so a SET
		// issued after the set was fetched is told to come back. Its iat is
		// not verified: a forger can only turn its 400 into a 503.
		if iat, ok, _ := numericDate(t.claims, "iat"); ok && tr.keys.Status().LastSuccess.Before(iat) {
			return fmt.Errorf("%w: no key for kid %s in the key set fetched before the SET was issued", ErrUnavailable, quote(h.kid))
		}
		return fmt.Errorf("%w: no key for kid %s and %s", ErrKey, quote(h.kid), h.alg)
	}
	if _, err := jws.VerifyCompactFast(key, []byte(t.raw), alg); err != nil {
		return fmt.Errorf("%w: the signature does not verify", ErrKey)
	}
	return nil
}

// claims are a verified SET's claims, as the receiver uses them.
type claims struct {
	iat       time.Time
	jti       string
	eventType string
	event     map[string]json.RawMessage
	// subID is the SSF 1.0 sub_id claim, nil when absent.
	subID json.RawMessage
}

// checkClaims reads the claims of a SET whose signature has verified:
// aud names the receiver (RFC 8417 §2.2; RFC 7519 §4.1.3), iat is within
// [now − maxAge, now + leeway], exp (optional for SETs) has not passed,
// jti is present, and events holds exactly one event (SSF 1.0: one event
// per SET), an object.
func (t *token) checkClaims(audience string, now time.Time, leeway, maxAge time.Duration) (*claims, error) {
	if !audienceHas(t.claims["aud"], audience) {
		return nil, fmt.Errorf("%w: aud does not contain the receiver's audience", ErrAudience)
	}
	c := &claims{}
	iat, ok, err := numericDate(t.claims, "iat")
	switch {
	case err != nil:
		return nil, err
	case !ok:
		return nil, fmt.Errorf("%w: no iat", ErrMalformed)
	case iat.After(now.Add(leeway)):
		return nil, fmt.Errorf("%w: iat is in the future", ErrMalformed)
	case iat.Before(now.Add(-maxAge)):
		return nil, fmt.Errorf("%w: iat is older than %s", ErrMalformed, maxAge)
	}
	c.iat = iat
	exp, ok, err := numericDate(t.claims, "exp")
	if err != nil {
		return nil, err
	}
	if ok && !now.Before(exp.Add(leeway)) {
		return nil, fmt.Errorf("%w: expired", ErrMalformed)
	}
	if err := json.Unmarshal(t.claims["jti"], &c.jti); err != nil || c.jti == "" {
		return nil, fmt.Errorf("%w: jti is not a non-empty string", ErrMalformed)
	}
	if len(c.jti) > maxJTIBytes {
		return nil, fmt.Errorf("%w: jti longer than %d bytes", ErrMalformed, maxJTIBytes)
	}
	var events map[string]json.RawMessage
	if err := json.Unmarshal(t.claims["events"], &events); err != nil || events == nil {
		return nil, fmt.Errorf("%w: events is not an object", ErrMalformed)
	}
	if len(events) != 1 {
		return nil, fmt.Errorf("%w: events holds %d events (one per SET)", ErrMalformed, len(events))
	}
	for typ, ev := range events {
		c.eventType = typ
		if err := json.Unmarshal(ev, &c.event); err != nil || c.event == nil {
			return nil, fmt.Errorf("%w: the event is not an object", ErrMalformed)
		}
	}
	if v, ok := t.claims["sub_id"]; ok {
		c.subID = v
	}
	return c, nil
}

// audienceHas reports whether an aud claim (a string, or an array of
// strings) contains want.
func audienceHas(raw json.RawMessage, want string) bool {
	if raw == nil {
		return false
	}
	var one string
	if json.Unmarshal(raw, &one) == nil {
		return one == want
	}
	var many []string
	if json.Unmarshal(raw, &many) != nil {
		return false
	}
	for _, a := range many {
		if a == want {
			return true
		}
	}
	return false
}

// maxNumericDate is the last second of year 9999: later dates, and
// negative ones, are refused.
const maxNumericDate = 253402300799

// numericDate reads an optional NumericDate member (RFC 7519 §2: seconds
// since the epoch, fractions allowed) of an object.
func numericDate(m map[string]json.RawMessage, name string) (time.Time, bool, error) {
	v, ok := m[name]
	if !ok {
		return time.Time{}, false, nil
	}
	var f float64 // a JSON number: encoding/json refuses a string here
	if err := json.Unmarshal(v, &f); err != nil || string(v) == "null" {
		return time.Time{}, false, fmt.Errorf("%w: %s is not a number", ErrMalformed, name)
	}
	if f < 0 || f > maxNumericDate {
		return time.Time{}, false, fmt.Errorf("%w: %s is not a date", ErrMalformed, name)
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)).UTC(), true, nil
}
