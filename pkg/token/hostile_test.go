package token

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/extauthz/extauthz/pkg/jwks"
)

// A signer of raw bytes: hostile tokens need headers and claims that no
// JSON encoder writes (repeated members, invalid UTF-8), properly signed,
// so that what refuses them is the parsing, not the signature. The key is
// derived from a fixed seed and Ed25519 signatures are deterministic, so
// the tokens of the fuzz corpus verify on every run.
const (
	rawIssuer = "https://auth.example.com"
	rawKID    = "k1"
)

var rawKey = ed25519.NewKeyFromSeed([]byte("extauthz-token-hostile-test-seed"))

// rawNow is the fixed clock of the raw signer's verifier.
var rawNow = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

type fixedKey struct{}

func (fixedKey) Key(_ context.Context, kid, _ string) (crypto.PublicKey, error) {
	if kid == rawKID {
		return rawKey.Public(), nil
	}
	return nil, jwks.ErrKeyNotFound
}

func rawVerifier(tb testing.TB) *IssuerSet {
	tb.Helper()
	v, err := NewIssuerSet(Options{
		Issuers:    map[string]Issuer{rawIssuer: {Keys: fixedKey{}}},
		Algorithms: []string{"EdDSA"},
		Leeway:     time.Minute,
		Now:        func() time.Time { return rawNow },
	})
	if err != nil {
		tb.Fatal(err)
	}
	return v
}

var rawTrusted = map[string]struct{}{rawIssuer: {}}

func enc(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// signRaw signs header and claims given as JSON text, byte for byte.
func signRaw(header, claims string) string {
	in := enc(header) + "." + enc(claims)
	return in + "." + base64.RawURLEncoding.EncodeToString(ed25519.Sign(rawKey, []byte(in)))
}

const rawHeader = `{"alg":"EdDSA","kid":"k1","typ":"at+jwt"}`

// rawClaims are valid claims for the raw verifier, with extra members
// (JSON text, each beginning with a comma) inserted after the standard ones.
func rawClaims(extra string) string {
	return fmt.Sprintf(`{"iss":%q,"sub":"alice","aud":"https://mcp.example.com/mcp","exp":%d%s}`,
		rawIssuer, rawNow.Add(time.Hour).Unix(), extra)
}

func TestRawSignerVerifies(t *testing.T) {
	c, err := rawVerifier(t).Verify(context.Background(), signRaw(rawHeader, rawClaims(`,"scope":"a b","act":{"sub":"x"},"n":[1.5e3,-0,true,null,"\u00e9\ud83d\ude00"]`)), rawTrusted)
	if err != nil {
		t.Fatal(err)
	}
	if c.Subject != "alice" || c.Scope != "a b" || c.Issuer != rawIssuer {
		t.Errorf("claims %+v", c)
	}
}

// TestAmbiguousTokensRefused: properly signed tokens whose header or
// claims different JSON parsers would read differently. Each was accepted
// (read by encoding/json's rules: last member wins, names matched
// case-insensitively, invalid UTF-8 replaced) before the strict parsing.
func TestAmbiguousTokensRefused(t *testing.T) {
	v := rawVerifier(t)
	exp := rawNow.Add(time.Hour).Unix()
	good := signRaw(rawHeader, rawClaims(""))
	h64, rest, _ := strings.Cut(good, ".")
	p64, s64, _ := strings.Cut(rest, ".")
	sig, _ := base64.RawURLEncoding.DecodeString(s64)
	cases := []struct {
		name           string
		header, claims string
		tok            string // instead of header and claims
	}{
		{name: "header: alg twice, the same", header: `{"alg":"EdDSA","alg":"EdDSA","kid":"k1"}`},
		{name: "header: alg none then EdDSA", header: `{"alg":"none","kid":"k1","alg":"EdDSA"}`},
		{name: "header: alg twice, one escaped", header: `{"alg":"EdDSA","kid":"k1","\u0061lg":"none"}`},
		{name: "header: kid twice", header: `{"alg":"EdDSA","kid":"other","kid":"k1"}`},
		{name: "header: ALG beside alg", header: `{"alg":"EdDSA","kid":"k1","ALG":"none"}`},
		{name: "header: Alg only", header: `{"Alg":"EdDSA","kid":"k1"}`},
		{name: "header: KID only", header: `{"alg":"EdDSA","KID":"k1"}`},
		{name: "header: Crit", header: `{"alg":"EdDSA","kid":"k1","Crit":["x"]}`},
		{name: "header: invalid UTF-8", header: "{\"alg\":\"EdDSA\",\"kid\":\"k1\",\"x\":\"\xff\"}"},
		{name: "header: alg not a string", header: `{"alg":["EdDSA"],"kid":"k1"}`},
		{name: "header: trailing comma", header: `{"alg":"EdDSA","kid":"k1",}`},
		{name: "header: cty JWT, JSON claims", header: `{"alg":"EdDSA","kid":"k1","cty":"JWT"}`},
		{name: "header: cty jwt", header: `{"alg":"EdDSA","kid":"k1","cty":"jwt"}`},
		{name: "header: cty application/jwt", header: `{"alg":"EdDSA","kid":"k1","cty":"application/jwt"}`},
		{name: "nested JWT", header: `{"alg":"EdDSA","kid":"k1","cty":"JWT"}`, claims: good},
		{name: "claims: iss twice", claims: fmt.Sprintf(`{"iss":"https://evil.example","sub":"alice","exp":%d,"iss":%q}`, exp, rawIssuer)},
		{name: "claims: iss twice, one escaped", claims: rawClaims(`,"\u0069ss":"https://evil.example"`)},
		{name: "claims: sub twice", claims: rawClaims(`,"sub":"admin"`)},
		{name: "claims: aud twice", claims: rawClaims(`,"aud":"https://other.example"`)},
		{name: "claims: exp twice", claims: rawClaims(fmt.Sprintf(`,"exp":%d`, exp+1e6))},
		{name: "claims: scope twice", claims: rawClaims(`,"scope":"a","scope":"admin"`)},
		{name: "claims: nested member twice", claims: rawClaims(`,"act":{"sub":"a","sub":"b"}`)},
		{name: "claims: ISS beside iss", claims: rawClaims(`,"ISS":"https://evil.example"`)},
		{name: "claims: Exp beside exp", claims: rawClaims(`,"Exp":4102444800`)},
		{name: "claims: SID beside sid", claims: rawClaims(`,"sid":"s1","SID":"s2"`)},
		{name: "claims: sid twice", claims: rawClaims(`,"sid":"s1","sid":"s2"`)},
		{name: "claims: Iss only", claims: fmt.Sprintf(`{"Iss":%q,"sub":"alice","exp":%d}`, rawIssuer, exp)},
		{name: "claims: ſcope (folds to scope)", claims: rawClaims(`,"ſcope":"admin"`)},
		{name: "claims: sub not UTF-8", tok: signRaw(rawHeader, strings.Replace(rawClaims(""), `"alice"`, "\"alice\xff\"", 1))},
		{name: "claims: overlong UTF-8", tok: signRaw(rawHeader, strings.Replace(rawClaims(""), `"alice"`, "\"\xc0\xafalice\"", 1))},
		{name: "claims: UTF-8 encoded surrogate", tok: signRaw(rawHeader, strings.Replace(rawClaims(""), `"alice"`, "\"\xed\xa0\x80alice\"", 1))},
		{name: "claims: invalid UTF-8 in a member name", tok: signRaw(rawHeader, rawClaims(",\"\xfe\":1"))},
		{name: "claims: unpaired high surrogate escape", claims: strings.Replace(rawClaims(""), `"alice"`, `"alice\ud800"`, 1)},
		{name: "claims: unpaired low surrogate escape", claims: strings.Replace(rawClaims(""), `"alice"`, `"\udc00alice"`, 1)},
		{name: "claims: surrogates reversed", claims: strings.Replace(rawClaims(""), `"alice"`, `"\udc00\ud800"`, 1)},
		{name: "claims: nested too deeply", claims: rawClaims(`,"x":` + strings.Repeat("[", 64) + strings.Repeat("]", 64))},
		{name: "claims: control character", claims: strings.Replace(rawClaims(""), `"alice"`, "\"al\x01ice\"", 1)},
		{name: "claims: leading zero", claims: rawClaims(`,"n":01`)},
		{name: "claims: NaN", claims: rawClaims(`,"n":NaN`)},
		{name: "claims: single quotes", claims: rawClaims(`,'n':1`)},
		{name: "claims: trailing data", claims: rawClaims("") + `{}`},
		{name: "claims: two objects", claims: rawClaims("") + " " + rawClaims("")},
		{name: "claims: not an object", claims: `["iss"]`},
		{name: "claims: exp as a string", claims: fmt.Sprintf(`{"iss":%q,"sub":"alice","exp":"%d"}`, rawIssuer, exp)},
		// Other spellings of the good token's own bytes.
		{name: "signature: padded", tok: good + "=="},
		{name: "signature: standard alphabet", tok: h64 + "." + p64 + "." + base64.RawStdEncoding.EncodeToString(sig)},
		{name: "signature: standard alphabet, padded", tok: h64 + "." + p64 + "." + base64.StdEncoding.EncodeToString(sig)},
		{name: "signature: non-zero trailing bits", tok: good[:len(good)-1] + string(flipLowBits(good[len(good)-1]))},
		{name: "signature: line break inside", tok: h64 + "." + p64 + "." + s64[:20] + "\n" + s64[20:]},
		{name: "header: padded", tok: h64 + "=." + p64 + "." + s64},
		{name: "header: line break inside", tok: h64[:5] + "\r\n" + h64[5:] + "." + p64 + "." + s64},
		{name: "claims: space inside", tok: h64 + "." + p64[:5] + " " + p64[5:] + "." + s64},
		{name: "empty header", tok: "." + p64 + "." + s64},
		{name: "empty claims", tok: h64 + ".." + s64},
		{name: "JWE", tok: enc(`{"alg":"RSA-OAEP","enc":"A256GCM"}`) + ".ZW5jcnlwdGVka2V5.aXY.Y2lwaGVydGV4dA.dGFn"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tok := c.tok
			if tok == "" {
				h, cl := c.header, c.claims
				if h == "" {
					h = rawHeader
				}
				if cl == "" {
					cl = rawClaims("")
				}
				tok = signRaw(h, cl)
			}
			got, err := v.Verify(context.Background(), tok, rawTrusted)
			if !errors.Is(err, ErrMalformed) || got != nil {
				t.Fatalf("got %+v, %v; want ErrMalformed", got, err)
			}
		})
	}
}

// flipLowBits sets or clears the lowest bit of a base64url character:
// when it ends an encoding that does not end on a 3-byte boundary (an
// Ed25519 signature's 64 bytes), that bit is padding, and lenient
// decoders read the same bytes.
func flipLowBits(c byte) byte {
	v := b64URLValue[c] ^ 0x01
	return "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"[v]
}

func TestMembers(t *testing.T) {
	valid := []string{
		`{}`, ` { } `, "\t{\"a\":1}\r\n", `{"a":{"a":{"a":[]}}}`, `{"a":1,"b":2}`,
		`{"a":-0.5e+10,"b":0,"c":-0,"d":1E3,"e":[true,false,null]}`,
		`{"a":"\"\\\/\b\f\n\r\t\u0041\ud83d\ude00"}`, `{"é":"ü","\u00e9x":1}`,
		`{"a":{"b":1},"b":{"a":1}}`, `{"":1}`,
	}
	for _, s := range valid {
		if err := members([]byte(s), func(string, []byte) error { return nil }); err != nil {
			t.Errorf("%q: %v", s, err)
		}
	}
	invalid := []string{
		``, ` `, `[]`, `"a"`, `1`, `null`, `{`, `}`, `{"a"}`, `{"a":}`, `{"a":1,}`, `{,}`, `{"a":1 "b":2}`,
		`{"a":1}x`, `{"a":1}{}`, `{a:1}`, `{"a":tru}`, `{"a":True}`, `{"a":1.}`, `{"a":.5}`, `{"a":+1}`,
		`{"a":1e}`, `{"a":-}`, `{"a":00}`, `{"a":"\x"}`, `{"a":"\u12"}`, `{"a":"\u12g4"}`, `{"a":"` + "\x00" + `"}`,
		`{"a":1,"a":2}`, `{"a":1,"\u0061":2}`, `{"x":[{"a":1,"a":1}]}`, "{\"a\":\"\xff\"}", `{"a":"\ud800x"}`,
		`{"a":"\ud800\u0041"}`, `{"a":[1,]}`, `{"a":[,1]}`, `{"a":"unterminated}`,
		`{"a":` + strings.Repeat(`{"a":`, 64) + `1` + strings.Repeat(`}`, 65),
	}
	for _, s := range invalid {
		if err := members([]byte(s), func(string, []byte) error { return nil }); err == nil {
			t.Errorf("%q accepted", s)
		}
	}
	// Names are unescaped; values are handed over raw.
	var got []string
	_ = members([]byte(`{"\u0069ss" : "x" ,"n":[1, 2]}`), func(n string, v []byte) error {
		got = append(got, n+"="+string(v))
		return nil
	})
	if strings.Join(got, " ") != `iss="x" n=[1, 2]` {
		t.Errorf("members %q", got)
	}
	// Many members: the set switches to a map and still finds repeats.
	var b strings.Builder
	b.WriteString(`{`)
	for i := range 100 {
		fmt.Fprintf(&b, `"m%d":%d,`, i, i)
	}
	b.WriteString(`"m7":0}`)
	if err := members([]byte(b.String()), func(string, []byte) error { return nil }); !errors.Is(err, errDuplicate) {
		t.Errorf("repeat among 100 members: %v", err)
	}
}

// TestKeptClaimsCaseVariant: a configured claim name is matched exactly,
// and a case variant of it is ambiguous.
func TestKeptClaimsCaseVariant(t *testing.T) {
	for _, tc := range []struct {
		claims string
		ok     bool
	}{
		{`{"groups":["a"],"tenant":"t"}`, true},
		{`{"groups":["a"],"Groups":["admin"]}`, false},
		{`{"Roles":"admin"}`, false},
		{`{"roles":"a","roles":"admin"}`, false},
	} {
		p, err := ParsePayload([]byte(tc.claims), ClaimNames{Scope: "roles", Keep: []string{"groups"}})
		if (err == nil) != tc.ok {
			t.Errorf("%s: %+v, %v", tc.claims, p, err)
		}
	}
}

// TestUnverifiedExpiryStrict: the bookkeeping reader follows the same
// rules (a revocation must not outlast what it was given for by reading
// a repeated exp differently).
func TestUnverifiedExpiryStrict(t *testing.T) {
	if _, ok := UnverifiedExpiry(signRaw(rawHeader, rawClaims(""))); !ok {
		t.Error("valid token: no expiry")
	}
	if _, ok := UnverifiedExpiry(signRaw(rawHeader, rawClaims(`,"exp":1`))); ok {
		t.Error("repeated exp read")
	}
}

// FuzzParseToken feeds arbitrary strings through Verify, the path every
// token on a cache miss takes: splitting, base64url, the strict JSON of
// header and claims, algorithm and key selection, signature, claims. It
// must never panic, and must verify nothing but a token the test key
// signed, spelled exactly as signed: the header and claims as given, the
// signature in the one canonical encoding (Ed25519 signatures are
// deterministic, so it can be recomputed).
func FuzzParseToken(f *testing.F) {
	v := rawVerifier(f)
	good := signRaw(rawHeader, rawClaims(`,"scope":"a b","client_id":"c"`))
	for _, s := range []string{
		good, good + "==", signRaw(`{"alg":"EdDSA","kid":"k1","alg":"none"}`, rawClaims("")),
		signRaw(rawHeader, rawClaims(`,"sub":"admin"`)), signRaw(`{"alg":"EdDSA","kid":"k1","cty":"JWT"}`, good),
		enc(`{"alg":"none"}`) + "." + enc(rawClaims("")) + ".", "a.b.c.d.e", "",
		signRaw(rawHeader, rawClaims(`,"cnf":{"jkt":"0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}`)),
		signRaw(rawHeader, rawClaims(`,"cnf":{"x5t#S256":"bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"}`)),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		c, err := v.Verify(context.Background(), raw, rawTrusted)
		if err != nil {
			if c != nil {
				t.Fatalf("claims %+v with error %v", c, err)
			}
			if !Definitive(err) && !errors.Is(err, ErrUnknownKey) && !errors.Is(err, ErrNotYetValid) {
				t.Fatalf("not a failure class of the package: %v", err)
			}
			return
		}
		h64, rest, _ := strings.Cut(raw, ".")
		p64, s64, _ := strings.Cut(rest, ".")
		in := h64 + "." + p64
		if want := base64.RawURLEncoding.EncodeToString(ed25519.Sign(rawKey, []byte(in))); s64 != want {
			t.Fatalf("verified with a signature spelled %q, signed as %q", s64, want)
		}
		hb, err1 := base64.RawURLEncoding.Strict().DecodeString(h64)
		pb, err2 := base64.RawURLEncoding.Strict().DecodeString(p64)
		if err1 != nil || err2 != nil || !utf8.Valid(hb) || !utf8.Valid(pb) || !json.Valid(hb) || !json.Valid(pb) {
			t.Fatalf("verified a token whose header or claims are not UTF-8 JSON: %q %q", hb, pb)
		}
		if distinctMembers(hb) != memberCount(hb) || distinctMembers(pb) != memberCount(pb) {
			t.Fatalf("verified a token with a repeated member: %q %q", hb, pb)
		}
		if c == nil || c.Issuer != rawIssuer || c.Expiry.IsZero() {
			t.Fatalf("verified with claims %+v", c)
		}
		if want := independentJKT(t, pb); c.JKT != want {
			t.Fatalf("verified bound to %q; a map decoding of %q reads %q", c.JKT, pb, want)
		}
	})
}

// independentJKT reads the binding of a verified claims set with
// encoding/json, independently of the package's scanner: "" without cnf,
// else the jkt of a cnf that has no other member, and it fails the test
// for any other cnf, which must not have verified.
func independentJKT(t *testing.T, claims []byte) string {
	t.Helper()
	var m map[string]json.RawMessage
	if json.Unmarshal(claims, &m) != nil {
		t.Fatalf("claims %q are not an object", claims)
	}
	raw, ok := m["cnf"]
	if !ok {
		return ""
	}
	var cnf map[string]json.RawMessage
	var jkt string
	if json.Unmarshal(raw, &cnf) != nil || len(cnf) != 1 || json.Unmarshal(cnf["jkt"], &jkt) != nil || len(jkt) != 43 {
		t.Fatalf("verified with cnf %s", raw)
	}
	if b, err := base64.RawURLEncoding.Strict().DecodeString(jkt); err != nil || len(b) != 32 || strings.ContainsAny(jkt, "\r\n") {
		t.Fatalf("verified with cnf.jkt %q, not a canonical SHA-256 thumbprint", jkt)
	}
	return jkt
}

// distinctMembers and memberCount count a JSON object's top-level
// members with encoding/json, independently of the package's scanner: the
// distinct names, and all of them.
func distinctMembers(b []byte) int {
	var m map[string]json.RawMessage
	if json.Unmarshal(b, &m) != nil {
		return -1
	}
	return len(m)
}

func memberCount(b []byte) int {
	dec := json.NewDecoder(bytes.NewReader(b))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return -2
	}
	n := 0
	for dec.More() {
		var v json.RawMessage
		if _, err := dec.Token(); err != nil || dec.Decode(&v) != nil {
			return -2
		}
		n++
	}
	return n
}

// FuzzParsePayload: whatever ParsePayload accepts is one valid UTF-8 JSON
// object without a repeated member, and ParsePayload reads the claims the
// same way whatever ClaimNames ask for beyond the standard ones.
func FuzzParsePayload(f *testing.F) {
	for _, s := range []string{
		rawClaims(""), rawClaims(`,"scp":["a"],"azp":"z","nbf":1,"iat":2.5`), `{"aud":["a","b"],"groups":{"x":[1]}}`,
		`{"iss":"a","iss":"b"}`, "{\"sub\":\"\xff\"}", `{"Iss":"x"}`, `{"a":"\ud800"}`,
		`{"cnf":{"jkt":"0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}}`, `{"cnf":{"jkt":"0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4J"}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParsePayload(data, ClaimNames{})
		// Verify's one scan and later read (claimValues) is ParsePayload
		// with the standard names, in two steps.
		var cv claimValues
		q, qerr := (*Payload)(nil), cv.scan(data)
		if qerr == nil {
			// iss is read first, as parseJWT reads it.
			var iss string
			if cv.iss != nil && readString(cv.iss, &iss) != nil {
				qerr = errors.New(`claim "iss" has the wrong type`)
			} else {
				q, qerr = cv.payload(iss)
			}
		}
		if (err == nil) != (qerr == nil) || (err == nil && !reflect.DeepEqual(p, q)) {
			t.Fatalf("ParsePayload %+v, %v; scan and read %+v, %v", p, err, q, qerr)
		}
		if err != nil {
			return
		}
		if !utf8.Valid(data) || !json.Valid(data) || distinctMembers(data) != memberCount(data) {
			t.Fatalf("accepted %q", data)
		}
		var m map[string]json.RawMessage
		if json.Unmarshal(data, &m) != nil {
			t.Fatalf("accepted %q, not an object", data)
		}
		var iss string
		if raw, ok := m["iss"]; ok {
			_ = json.Unmarshal(raw, &iss)
		}
		if p.Issuer != iss {
			t.Fatalf("iss %q, a map decoding reads %q", p.Issuer, iss)
		}
		if _, cnf := m["cnf"]; cnf != p.Confirmation {
			t.Fatalf("Confirmation %v for %q", p.Confirmation, data)
		}
		if p.JKT != "" {
			if want := independentJKT(t, data); p.JKT != want {
				t.Fatalf("JKT %q, a map decoding reads %q", p.JKT, want)
			}
		}
		q, err = ParsePayload(data, ClaimNames{Keep: []string{"x"}})
		if err == nil && (q.Issuer != p.Issuer || q.Subject != p.Subject || !q.Expiry.Equal(p.Expiry)) {
			t.Fatalf("claims differ with Keep: %+v, %+v", p, q)
		}
	})
}
