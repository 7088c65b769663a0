package ssf

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/extauthz/extauthz/internal/ssftest"
)

// FuzzParseSET: whatever a push's body, reading it as a SET — the parse,
// the claims' checks and the event's mapping, everything a SET goes
// through but the signature — never panics, fails only with one of the
// failure classes, and what it accepts is what it should be: three
// canonical base64url parts whose header and claims are valid UTF-8 JSON
// objects, an iss, a jti, one event, and a watermark that selects
// something.
func FuzzParseSET(f *testing.F) {
	now := time.Unix(1900000000, 0)
	tr := ssftest.New(f, ssftest.Options{Audience: "aud", Now: func() time.Time { return now }})
	for _, s := range []ssftest.SET{
		{Event: EventSessionRevoked, Subject: ssftest.Complex(ssftest.IssSub("https://i", "u"), ssftest.Opaque("s"))},
		{Event: EventCredentialChange, Subject: ssftest.Email("a@example.com"), Payload: map[string]any{"event_timestamp": now.Unix() - 5}},
		{Event: EventAccountDisabled, Payload: map[string]any{"subject": ssftest.Opaque("x")}},
		{Event: EventVerification, Payload: map[string]any{"state": "s"}},
		{Event: "urn:x", Audience: []string{"a", "aud"}},
		{Event: EventSessionsRevoked, Subject: map[string]any{"format": "phone_number"}},
	} {
		f.Add(tr.Sign(f, s))
	}
	b64 := base64.RawURLEncoding.EncodeToString
	f.Add(b64([]byte(`{"alg":"ES256","typ":"secevent+jwt","alg":"x"}`)) + "." + b64([]byte(`{"iss":"a"}`)) + ".AA")
	f.Add(b64([]byte(`{"alg":"ES256"}`)) + "." + b64([]byte(`{"iss":"a","iss":"b"}`)) + ".AA")
	f.Add(b64([]byte(`{}`)) + "." + b64([]byte(`{"iss":"a","events":{"e":{"subject":{"user":{"format":"complex"}}}}}`)) + ".AA")
	f.Add("a.b.c")
	f.Add("")

	rcv := &transmitter{issuer: tr.Issuer, subjects: SubjectClaims{Email: claimEmail, Opaque: claimSub}}
	classes := []error{ErrMalformed, ErrAudience}
	f.Fuzz(func(t *testing.T, raw string) {
		tok, err := parse(raw)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("parse: %v is of no class", err)
			}
			return
		}
		parts := strings.Split(raw, ".")
		for i, p := range parts[:2] {
			b, err := base64.RawURLEncoding.DecodeString(p)
			if err != nil || b64(b) != p {
				t.Fatalf("part %d accepted but not canonical base64url", i)
			}
			if !utf8.Valid(b) || !json.Valid(b) || !strings.HasPrefix(strings.TrimLeft(string(b), " \t\r\n"), "{") {
				t.Fatalf("part %d accepted but not a UTF-8 JSON object: %q", i, b)
			}
		}
		if tok.iss == "" {
			t.Fatal("accepted without iss")
		}
		c, err := tok.checkClaims("aud", now, time.Minute, time.Hour)
		if err != nil {
			ok := false
			for _, cl := range classes {
				ok = ok || errors.Is(err, cl)
			}
			if !ok {
				t.Fatalf("checkClaims: %v is of no class", err)
			}
			return
		}
		if c.jti == "" || c.eventType == "" && c.event == nil || c.iat.After(now.Add(time.Minute)) {
			t.Fatalf("claims accepted: %+v", c)
		}
		a, err := rcv.decide(c, time.Minute)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("decide: %v is of no class", err)
			}
			return
		}
		if a.effect == revokeSubject || a.effect == revokeSession {
			w := a.watermark
			if w.Subject == "" && w.SessionID == "" && w.ClientID == "" && w.Claim == "" {
				t.Fatalf("a watermark that selects no token: %+v", w)
			}
			if w.Before.After(c.iat.Add(time.Minute)) || w.Source != "ssf:"+tr.Issuer || w.Event != c.eventType {
				t.Fatalf("watermark %+v for claims %+v", w, c)
			}
		}
	})
}
