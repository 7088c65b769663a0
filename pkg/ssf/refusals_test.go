package ssf_test

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/extauthz/extauthz/internal/ssftest"
	"github.com/extauthz/extauthz/pkg/ssf"
)

// Every bad SET gets the exact RFC 8935 answer (§2.3: 400 and the §2.4
// code, as JSON) and revokes nothing.
func TestBadSETsRefused(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{settings: func(s *ssf.Transmitter) { s.Algorithms = []string{"ES256"} }})
	other := ssftest.New(t, ssftest.Options{Audience: audience, Now: f.clock.Now})
	good := func() ssftest.SET {
		return ssftest.SET{Event: ssf.EventSessionRevoked, Subject: ssftest.IssSub(idp, "user-1")}
	}
	with := func(change func(*ssftest.SET)) string {
		s := good()
		change(&s)
		return f.tr.Sign(t, s)
	}
	raw := func(header, claims string) string {
		return f.tr.SignRaw(t, ssftest.SET{}, []byte(header), []byte(claims))
	}
	// claimsJSON is a good SET's claims, written out, with extra text
	// spliced in before the closing brace.
	claimsJSON := func(extra string) string {
		return `{"iss":"` + f.tr.Issuer + `","aud":"` + audience + `","iat":` + itoa(f.clock.Now().Unix()) +
			`,"jti":"` + f.tr.NewJTI() + `","sub_id":{"format":"opaque","id":"u"},"events":{"` + ssf.EventAccountDisabled + `":{}}` + extra + `}`
	}
	const goodHeader = `{"alg":"ES256","kid":"es-1","typ":"secevent+jwt"}`
	b64 := base64.RawURLEncoding.EncodeToString

	for _, tc := range []struct {
		name string
		set  string
		code string
		why  string // in the description
	}{
		// The signature and the key.
		{"signed by another key, same kid", with(func(s *ssftest.SET) { s.Key = f.tr.Rogue }), ssf.CodeInvalidKey, "signature does not verify"},
		{"a kid not in the key set", with(func(s *ssftest.SET) { s.Header = map[string]any{"kid": "nope"} }), ssf.CodeInvalidKey, "no key for kid"},
		{"an algorithm not accepted from this transmitter", with(func(s *ssftest.SET) { s.Key = f.tr.RS256 }), ssf.CodeInvalidKey, "\"RS256\" is not accepted"},
		{"alg none, no signature", with(func(s *ssftest.SET) { s.Alg = "none" }), ssf.CodeInvalidRequest, "not a signed JWT"},
		{"alg none, with a signature", with(func(s *ssftest.SET) { s.Header = map[string]any{"alg": "none"} }), ssf.CodeInvalidKey, "\"none\" is not accepted"},
		{"HS256 keyed with the public key", with(func(s *ssftest.SET) { s.Alg = "HS256" }), ssf.CodeInvalidKey, "\"HS256\" is not accepted"},
		{"another SET's signature", otherSignature(with(func(*ssftest.SET) {}), with(func(*ssftest.SET) {})), ssf.CodeInvalidKey, "signature does not verify"},
		// The header.
		{"typ JWT", with(func(s *ssftest.SET) { s.Typ = "JWT" }), ssf.CodeInvalidRequest, "typ is not secevent+jwt"},
		{"typ at+jwt", with(func(s *ssftest.SET) { s.Typ = "at+jwt" }), ssf.CodeInvalidRequest, "typ is not secevent+jwt"},
		{"no typ", with(func(s *ssftest.SET) { s.Omit = []string{"typ"} }), ssf.CodeInvalidRequest, "typ is not secevent+jwt"},
		{"crit", with(func(s *ssftest.SET) { s.Header = map[string]any{"crit": []string{"exp"}} }), ssf.CodeInvalidRequest, "crit"},
		{"cty JWT (nested)", with(func(s *ssftest.SET) { s.Header = map[string]any{"cty": "JWT"} }), ssf.CodeInvalidRequest, "cty"},
		{"alg twice in the header", raw(`{"alg":"ES256","alg":"ES256","kid":"es-1","typ":"secevent+jwt"}`, claimsJSON("")), ssf.CodeInvalidRequest, "header: duplicate member"},
		{"a case variant of typ", raw(`{"alg":"ES256","kid":"es-1","typ":"secevent+jwt","TYP":"x"}`, claimsJSON("")), ssf.CodeInvalidRequest, "only in case"},
		// The claims.
		{"iss twice", raw(goodHeader, claimsJSON(`,"iss":"`+f.tr.Issuer+`"`)), ssf.CodeInvalidRequest, "duplicate member"},
		{"iss twice, once escaped", raw(goodHeader, claimsJSON(`,"\u0069ss":"`+f.tr.Issuer+`"`)), ssf.CodeInvalidRequest, "duplicate member"},
		{"a member twice inside the event", raw(goodHeader, strings.Replace(claimsJSON(""), `":{}}`, `":{"a":1,"a":2}}`, 1)), ssf.CodeInvalidRequest, "duplicate member"},
		{"a case variant of a claim", raw(goodHeader, claimsJSON(`,"JTI":"x"`)), ssf.CodeInvalidRequest, "only in case"},
		{"invalid UTF-8", raw(goodHeader, claimsJSON(`,"x":"`+"\xff"+`"`)), ssf.CodeInvalidRequest, "UTF-8"},
		{"trailing data", raw(goodHeader, claimsJSON("")+"{}"), ssf.CodeInvalidRequest, "trailing data"},
		{"wrong aud", with(func(s *ssftest.SET) { s.Audience = "https://other.example.com" }), ssf.CodeInvalidAudience, "aud"},
		{"aud list without ours", with(func(s *ssftest.SET) { s.Audience = []string{"https://a.example.com", "https://b.example.com"} }), ssf.CodeInvalidAudience, "aud"},
		{"no aud", with(func(s *ssftest.SET) { s.Omit = []string{"aud"} }), ssf.CodeInvalidAudience, "aud"},
		{"no iat", with(func(s *ssftest.SET) { s.Omit = []string{"iat"} }), ssf.CodeInvalidRequest, "no iat"},
		{"iat a string", with(func(s *ssftest.SET) { s.Claims = map[string]any{"iat": itoa(f.clock.Now().Unix())} }), ssf.CodeInvalidRequest, "iat is not a number"},
		{"iat in the future beyond leeway", with(func(s *ssftest.SET) { s.IssuedAt = f.clock.Now().Add(2 * time.Minute) }), ssf.CodeInvalidRequest, "iat is in the future"},
		{"iat older than max_age", with(func(s *ssftest.SET) { s.IssuedAt = f.clock.Now().Add(-61 * time.Minute) }), ssf.CodeInvalidRequest, "iat is older than"},
		{"exp passed", with(func(s *ssftest.SET) { s.Claims = map[string]any{"exp": f.clock.Now().Add(-2 * time.Minute).Unix()} }), ssf.CodeInvalidRequest, "expired"},
		{"no jti", with(func(s *ssftest.SET) { s.Omit = []string{"jti"} }), ssf.CodeInvalidRequest, "jti"},
		{"jti empty", with(func(s *ssftest.SET) { s.Claims = map[string]any{"jti": ""} }), ssf.CodeInvalidRequest, "jti"},
		{"no events", with(func(s *ssftest.SET) { s.Omit = []string{"events"} }), ssf.CodeInvalidRequest, "events is not an object"},
		{"two events", with(func(s *ssftest.SET) {
			s.Claims = map[string]any{"events": map[string]any{ssf.EventSessionRevoked: map[string]any{}, ssf.EventAccountDisabled: map[string]any{}}}
		}), ssf.CodeInvalidRequest, "holds 2 events"},
		{"the event not an object", with(func(s *ssftest.SET) {
			s.Claims = map[string]any{"events": map[string]any{ssf.EventSessionRevoked: true}}
		}), ssf.CodeInvalidRequest, "the event is not an object"},
		// The event.
		{"no subject", with(func(s *ssftest.SET) { s.Subject = nil }), ssf.CodeInvalidRequest, "no subject"},
		{"a subject format not supported", with(func(s *ssftest.SET) {
			s.Subject = map[string]any{"format": "phone_number", "phone_number": "+12065550100"}
		}), ssf.CodeInvalidRequest, "\"phone_number\" is not supported"},
		{"iss_sub without sub", with(func(s *ssftest.SET) { s.Subject = map[string]any{"format": "iss_sub", "iss": idp} }), ssf.CodeInvalidRequest, "needs sub"},
		{"complex inside complex", with(func(s *ssftest.SET) { s.Subject = ssftest.Complex(ssftest.Complex(nil, ssftest.Opaque("s")), nil) }), ssf.CodeInvalidRequest, "complex subject inside"},
		{"complex with only a tenant", with(func(s *ssftest.SET) {
			s.Subject = map[string]any{"format": "complex", "tenant": ssftest.Opaque("t")}
		}), ssf.CodeInvalidRequest, "names no user"},
		{"sub_id and the event's subject differ", with(func(s *ssftest.SET) { s.Payload = map[string]any{"subject": ssftest.IssSub(idp, "user-2")} }), ssf.CodeInvalidRequest, "differ"},
		{"event_timestamp after iat", with(func(s *ssftest.SET) {
			s.Payload = map[string]any{"event_timestamp": f.clock.Now().Add(5 * time.Minute).Unix()}
		}), ssf.CodeInvalidRequest, "later than iat"},
		{"event_timestamp a string", with(func(s *ssftest.SET) { s.Payload = map[string]any{"event_timestamp": "now"} }), ssf.CodeInvalidRequest, "event_timestamp is not a number"},
		// The form.
		{"the transmitter is not configured", other.Sign(t, good()), ssf.CodeInvalidIssuer, "not a configured transmitter"},
		{"no iss", with(func(s *ssftest.SET) { s.Omit = []string{"iss"} }), ssf.CodeInvalidRequest, "no iss"},
		{"not a JWT", "hello", ssf.CodeInvalidRequest, "not a signed JWT"},
		{"empty", "", ssf.CodeInvalidRequest, "not a signed JWT"},
		{"five parts (JWE)", b64([]byte(`{"alg":"RSA-OAEP","enc":"A256GCM"}`)) + ".a.b.c.d", ssf.CodeInvalidRequest, "not a signed JWT"},
		{"a line break inside a part", breakLine(with(func(*ssftest.SET) {})), ssf.CodeInvalidRequest, "base64url"},
		{"padded base64", with(func(*ssftest.SET) {}) + "=", ssf.CodeInvalidRequest, "base64url"},
		{"JSON, not a JWT", `{"iss":"` + f.tr.Issuer + `"}`, ssf.CodeInvalidRequest, "not a signed JWT"},
		{"two SETs", with(func(*ssftest.SET) {}) + "\n" + with(func(*ssftest.SET) {}), ssf.CodeInvalidRequest, "not a signed JWT"},
		{"oversize", strings.Repeat("a", ssf.DefaultMaxBytes+1), ssf.CodeInvalidRequest, "larger than 65536 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := ssftest.Push(t, f.url, tc.set, ssftest.PushOptions{})
			if r.Status != http.StatusBadRequest || r.Err != tc.code || !strings.Contains(r.Description, tc.why) {
				t.Fatalf("push: %d err=%q description=%q; want 400 %s, %q", r.Status, r.Err, r.Description, tc.code, tc.why)
			}
			if ct := r.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q; want application/json (RFC 8935 §2.3)", ct)
			}
		})
	}
	t.Cleanup(func() {
		if got := f.rec.watermarks(); len(got) != 0 {
			t.Errorf("a refused SET revoked: %+v", got)
		}
	})
}

// breakLine puts a CR LF in the middle of a SET's claims (encoding/base64
// alone would skip it).
func breakLine(set string) string {
	i := strings.IndexByte(set, '.') + 8
	return set[:i] + "\r\n" + set[i:]
}

// otherSignature is a's header and claims with b's signature.
func otherSignature(a, b string) string {
	return a[:strings.LastIndexByte(a, '.')] + b[strings.LastIndexByte(b, '.'):]
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// jtiOf reads a SET's jti.
func jtiOf(t testing.TB, set string) string {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(strings.Split(set, ".")[1])
	if err != nil {
		t.Fatal(err)
	}
	var c struct{ JTI string }
	if err := json.Unmarshal(b, &c); err != nil || c.JTI == "" {
		t.Fatalf("no jti in %s", b)
	}
	return c.JTI
}

// A SET received once is refused when it comes again (RFC 8935 has no
// code of its own for it: invalid_request), even after 202.
func TestReplayRefused(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{})
	set := f.tr.Sign(t, ssftest.SET{Event: ssf.EventAccountDisabled, Subject: ssftest.Opaque("u")})
	if r := ssftest.Push(t, f.url, set, ssftest.PushOptions{}); r.Status != http.StatusAccepted {
		t.Fatalf("first push: %d %q", r.Status, r.Body)
	}
	// Another SET with the same jti, otherwise different, is a replay too.
	for i, again := range []string{set, f.tr.Sign(t, ssftest.SET{Event: ssf.EventVerification, JTI: jtiOf(t, set)})} {
		r := ssftest.Push(t, f.url, again, ssftest.PushOptions{})
		if r.Status != http.StatusBadRequest || r.Err != ssf.CodeInvalidRequest || !strings.Contains(r.Description, "jti was received before") {
			t.Fatalf("replay %d: %d %q; want 400 invalid_request, jti received before", i, r.Status, r.Body)
		}
	}
	if got := f.rec.watermarks(); len(got) != 1 {
		t.Fatalf("watermarks %+v; want the first push's only", got)
	}
}
