package dpop

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/extauthz/extauthz/internal/b64seg"
	"github.com/extauthz/extauthz/internal/mediatype"
)

// proof is a DPoP proof whose syntax has been checked; nothing in it is
// verified yet.
type proof struct {
	hdr          *cachedHeader
	h64          string // the header segment, as received
	cached       bool   // hdr is the header cache's entry for h64
	signingInput string // header.payload, as received
	sig          []byte
	jti          string
	htm          string
	htu          []byte // unescaped, often a slice of the decoded claims
	iat          time.Time
	ath          []byte // as htu
	hasAth       bool
	nonce        []byte // raw JSON value of the nonce claim, nil when absent
}

// headerNames are the JOSE header parameters this package reads or
// refuses; a member differing from one of them only in case is refused.
var headerNames = []string{"typ", "alg", "jwk", "crit", "b64", "cty", "jku", "x5u", "x5c", "x5t", "x5t#S256", "zip", "enc", "kid"}

// claimNames are the claims this package reads.
var claimNames = []string{"jti", "htm", "htu", "iat", "ath", "nonce"}

// parse checks a proof's syntax (RFC 9449 §4.2, §4.3 steps 2–5 and 7)
// into pr: a JWS in compact serialization, each part canonical base64url,
// header and claims strict JSON objects, typ dpop+jwt, an accepted alg, a
// public jwk of a type that alg uses, no crit, and the claims a proof must
// have. A header found in the header cache was read so before, and is not
// read again.
func (v *Verifier) parse(raw string, pr *proof) error {
	switch {
	case raw == "":
		return errors.New("empty")
	case len(raw) > MaxProofBytes:
		return fmt.Errorf("longer than %d bytes", MaxProofBytes)
	}
	h64, rest, ok := strings.Cut(raw, ".")
	if !ok {
		return errors.New("not a JWS in compact serialization")
	}
	p64, s64, ok := strings.Cut(rest, ".")
	if !ok || strings.IndexByte(s64, '.') >= 0 {
		return errors.New("not a JWS in compact serialization")
	}
	if s64 == "" {
		return errors.New("unsigned")
	}
	pr.h64, pr.signingInput = h64, raw[:len(h64)+1+len(p64)]
	pr.hdr, pr.cached = v.headers.get(h64)
	// One buffer for the decoded parts: they are short-lived, and one
	// allocation is cheaper than three.
	size := len(p64) + len(s64)
	if !pr.cached {
		size += len(h64)
	}
	buf := make([]byte, 0, size/4*3+3)
	var hdr []byte
	if !pr.cached {
		if buf, ok = b64seg.Append(buf, h64); !ok {
			return errors.New("header: not canonical base64url")
		}
		hdr = buf[:len(buf):len(buf)]
	}
	n := len(buf)
	if buf, ok = b64seg.Append(buf, p64); !ok {
		return errors.New("claims: not canonical base64url")
	}
	payload := buf[n:len(buf):len(buf)]
	n = len(buf)
	if buf, ok = b64seg.Append(buf, s64); !ok {
		return errors.New("signature: not canonical base64url")
	}
	pr.sig = buf[n:]
	if !pr.cached {
		h, err := v.parseHeader(hdr)
		if err != nil {
			return fmt.Errorf("header: %v", err)
		}
		pr.hdr = h
	}
	if err := parseClaims(pr, payload); err != nil {
		return fmt.Errorf("claims: %v", err)
	}
	return nil
}

// parseHeader reads the JOSE header (RFC 9449 §4.2).
func (v *Verifier) parseHeader(data []byte) (*cachedHeader, error) {
	var typ, alg string
	var hasTyp, hasAlg bool
	var jwkRaw []byte
	err := objectMembers(data, func(name string, value []byte) error {
		var ok bool
		switch name {
		case "typ":
			typ, ok = jsonString(value)
			hasTyp = true
		case "alg":
			alg, ok = jsonString(value)
			hasAlg = true
		case "jwk":
			jwkRaw, ok = value, len(value) > 0 && value[0] == '{'
		case "crit":
			// RFC 7515 §4.1.11: a recipient that does not understand an
			// extension listed there must refuse the JWS; this package
			// understands none.
			return errors.New(`"crit" is present: no extension is understood`)
		case "b64", "cty", "zip", "enc":
			// b64 (RFC 7797) changes what is signed, cty would make the
			// claims another object, zip and enc belong to encryption: a
			// reader that honoured one would read another proof.
			return fmt.Errorf("%q is not allowed in a DPoP proof", name)
		case "jku", "x5u", "x5c", "x5t", "x5t#S256":
			// The key is the jwk, and only the jwk (§4.2); another way to
			// name a key could make another reader verify with that one.
			return fmt.Errorf("%q is not allowed: the key is given by jwk alone", name)
		case "kid":
			ok = true // allowed, and meaningless next to jwk
		default:
			if caseVariant(name, headerNames) {
				return fmt.Errorf("parameter %q differs from a standard one only in case", name)
			}
			ok = true
		}
		if !ok {
			return fmt.Errorf("parameter %q has the wrong type", name)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	switch {
	case !hasTyp:
		return nil, errors.New("no typ")
	case !isDPoPType(typ):
		return nil, fmt.Errorf("typ %q is not dpop+jwt", clip(typ))
	case !hasAlg:
		return nil, errors.New("no alg")
	case jwkRaw == nil:
		return nil, errors.New("no jwk")
	}
	a, ok := v.algs[alg]
	if !ok {
		return nil, fmt.Errorf("alg %q is not accepted", clip(alg))
	}
	h := &cachedHeader{alg: a}
	if err := parseJWK(&h.key, jwkRaw, a); err != nil {
		return nil, fmt.Errorf("jwk: %v", err)
	}
	return h, nil
}

// isDPoPType reports whether a typ names the media type
// application/dpop+jwt (RFC 9449 §4.2, §11.5 of the IANA registration).
// Media types compare without regard to ASCII case (RFC 6838 §4.2), and
// RFC 7515 §4.1.9 makes the "application/" prefix optional, so
// "DPoP+JWT" and "application/dpop+jwt" are the same type; parameters
// (";…"), whitespace and non-ASCII look-alikes are not.
func isDPoPType(typ string) bool { return mediatype.IsApplication(typ, "dpop+jwt") }

// parseClaims reads the claims (RFC 9449 §4.2). Claims it does not know
// are ignored, as the RFC allows more; those it reads must have their type.
func parseClaims(pr *proof, data []byte) error {
	var hasJTI, hasHTM, hasHTU, hasIAT bool
	err := objectMembers(data, func(name string, value []byte) error {
		var ok bool
		switch name {
		case "jti":
			pr.jti, ok = jsonString(value)
			hasJTI = true
		case "htm":
			pr.htm, ok = jsonString(value)
			hasHTM = true
		case "htu":
			pr.htu, ok = jsonBytes(value)
			hasHTU = true
		case "ath":
			pr.ath, ok = jsonBytes(value)
			pr.hasAth = true
		case "iat":
			pr.iat, ok = numericDate(value)
			hasIAT = true
			if !ok {
				return errors.New(`"iat" is not a number of seconds in range`)
			}
		case "nonce":
			pr.nonce, ok = value, true // judged by Nonces, when required
		default:
			if caseVariant(name, claimNames) {
				return fmt.Errorf("claim %q differs from a DPoP claim only in case", name)
			}
			ok = true
		}
		if !ok {
			return fmt.Errorf("claim %q has the wrong type", name)
		}
		return nil
	})
	switch {
	case err != nil:
		return err
	case !hasJTI:
		return errors.New("no jti")
	case pr.jti == "":
		return errors.New("empty jti")
	case len(pr.jti) > MaxJTIBytes:
		return fmt.Errorf("jti longer than %d bytes", MaxJTIBytes)
	case !hasHTM:
		return errors.New("no htm")
	case !hasHTU:
		return errors.New("no htu")
	case !hasIAT:
		return errors.New("no iat")
	}
	return nil
}

// numericDate reads a NumericDate (RFC 7519 §2): a JSON number of
// seconds, possibly fractional.
func numericDate(raw []byte) (time.Time, bool) {
	if len(raw) == 0 || (raw[0] != '-' && (raw[0] < '0' || raw[0] > '9')) {
		return time.Time{}, false
	}
	if len(raw) <= 11 {
		// Whole seconds, as clients write them, read without ParseFloat:
		// the JSON reader has checked the number's syntax, and 11 digits
		// are exact in a float64, the value ParseFloat would give.
		var n int64
		for _, c := range raw {
			if c < '0' || c > '9' {
				n = -1
				break
			}
			n = n*10 + int64(c-'0')
		}
		if n >= 0 {
			return unixTime(float64(n))
		}
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	if err != nil {
		return time.Time{}, false
	}
	return unixTime(f)
}

// nonceString reads the nonce claim's value; ok is false when it is not a
// non-empty JSON string of at most maxNonceBytes.
func nonceString(raw []byte) (string, bool) {
	s, ok := jsonString(raw)
	return s, ok && s != "" && len(s) <= maxNonceBytes
}

// jsonStrings decodes a JSON array of strings (already checked by
// objectMembers).
func jsonStrings(raw []byte) ([]string, bool) {
	var out []string
	if len(raw) == 0 || raw[0] != '[' || json.Unmarshal(raw, &out) != nil {
		return nil, false
	}
	return out, true
}
