package dpop_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"

	"github.com/extauthz/extauthz/internal/rsasig"
	"github.com/extauthz/extauthz/internal/testkit"
	"github.com/extauthz/extauthz/pkg/dpop"
)

// edited is a proof by k for the test request, its header and claims
// changed by edit first.
func edited(t *testing.T, f *fixture, k *testKey, edit func(h, c map[string]any)) string {
	t.Helper()
	h, c := k.header(), f.claims()
	if edit != nil {
		edit(h, c)
	}
	return k.proof(t, h, c)
}

// raw is a proof by k of the given header and claims JSON, verbatim.
func raw(t *testing.T, k *testKey, header, claims string) string {
	t.Helper()
	return k.sign(t, []byte(header), []byte(claims))
}

// jsonOf is the JSON of v, for splicing into hand-written JSON.
func jsonOf(t *testing.T, v any) string { return string(mustJSON(t, v)) }

// Every hostile proof, each refused for its own reason: the error must
// wrap the sentinel and name the reason, so that a case cannot pass by
// failing some other check first.
func TestVerifyRefuses(t *testing.T) {
	t.Parallel()
	es := newKey(t, "ES256")
	rs := newKey(t, "RS256")
	ed := newKey(t, "EdDSA")
	goodClaims := func(f *fixture) string { return jsonOf(t, f.claims()) }
	goodHeader := func(k *testKey) string { return jsonOf(t, k.header()) }
	jwkJSON := jsonOf(t, es.jwk())
	jwkWith := func(k *testKey, member, value string) string {
		j := jsonOf(t, k.jwk())
		return j[:len(j)-1] + `,"` + member + `":` + value + `}`
	}

	tests := []struct {
		name  string
		proof func(t *testing.T, f *fixture) string
		want  string // in the error message
	}{
		// Form.
		{"empty", func(*testing.T, *fixture) string { return "" }, "empty"},
		{"too long", func(t *testing.T, f *fixture) string {
			return edited(t, f, es, func(h, _ map[string]any) { h["pad"] = strings.Repeat("a", dpop.MaxProofBytes) })
		}, "longer than"},
		{"two parts", func(t *testing.T, f *fixture) string {
			p := edited(t, f, es, nil)
			return p[:strings.LastIndexByte(p, '.')]
		}, "compact serialization"},
		{"five parts (JWE)", func(t *testing.T, f *fixture) string { return edited(t, f, es, nil) + ".a.b" }, "compact serialization"},
		{"unsigned", func(t *testing.T, f *fixture) string {
			p := edited(t, f, es, nil)
			return p[:strings.LastIndexByte(p, '.')+1]
		}, "unsigned"},
		{"padded header", func(t *testing.T, f *fixture) string {
			h := []byte(goodHeader(es) + " ") // a length that needs padding
			for len(h)%3 == 0 {
				h = append(h, ' ')
			}
			p := es.sign(t, h, []byte(goodClaims(f)))
			head, rest, _ := strings.Cut(p, ".")
			return head + "=." + rest
		}, "header: not canonical"},
		{"standard base64 alphabet in the signature", func(t *testing.T, f *fixture) string {
			for {
				p := edited(t, f, es, nil)
				dot := strings.LastIndexByte(p, '.')
				if sig := p[dot+1:]; strings.ContainsAny(sig, "-_") {
					return p[:dot+1] + strings.NewReplacer("-", "+", "_", "/").Replace(sig)
				}
			}
		}, "signature: not canonical"},
		{"non-canonical trailing bits", func(t *testing.T, f *fixture) string {
			p := edited(t, f, es, nil)
			head, rest, _ := strings.Cut(p, ".")
			for len(head)%4 == 0 { // need a final partial group
				h := []byte(goodHeader(es) + strings.Repeat(" ", 1+len(head)%3))
				p = es.sign(t, h, []byte(goodClaims(f)))
				head, rest, _ = strings.Cut(p, ".")
			}
			last := head[len(head)-1]
			const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
			bumped := alphabet[strings.IndexByte(alphabet, last)+1] // sets a low bit
			return head[:len(head)-1] + string(bumped) + "." + rest
		}, "header: not canonical"},
		{"whitespace around the proof", func(t *testing.T, f *fixture) string { return " " + edited(t, f, es, nil) }, "header: not canonical"},

		// Strict JSON.
		{"header not an object", func(t *testing.T, f *fixture) string { return raw(t, es, `["dpop+jwt"]`, goodClaims(f)) }, "not a JSON object"},
		{"duplicate alg", func(t *testing.T, f *fixture) string {
			return raw(t, es, `{"typ":"dpop+jwt","alg":"HS256","alg":"ES256","jwk":`+jwkJSON+`}`, goodClaims(f))
		}, "duplicate member"},
		{"duplicate htu: which one is signed?", func(t *testing.T, f *fixture) string {
			c := goodClaims(f)
			return raw(t, es, goodHeader(es), c[:len(c)-1]+`,"htu":"https://evil.example/"}`)
		}, "duplicate member"},
		{"duplicate by escape", func(t *testing.T, f *fixture) string {
			c := goodClaims(f)
			return raw(t, es, goodHeader(es), c[:len(c)-1]+`,"\u0068tu":"https://evil.example/"}`)
		}, "duplicate member"},
		{"duplicate inside the jwk", func(t *testing.T, f *fixture) string {
			return raw(t, es, `{"typ":"dpop+jwt","alg":"ES256","jwk":`+jwkWith(es, "x", `"AAAA"`)+`}`, goodClaims(f))
		}, "duplicate member"},
		{"duplicate among many members", func(t *testing.T, f *fixture) string {
			c := goodClaims(f)
			var extra strings.Builder
			for i := range 400 {
				fmt.Fprintf(&extra, `,"c%d":0`, i)
			}
			return raw(t, es, goodHeader(es), c[:len(c)-1]+extra.String()+`,"c7":1}`)
		}, "duplicate member"},
		{"claim name differing in case", func(t *testing.T, f *fixture) string {
			return edited(t, f, es, func(_, c map[string]any) { c["HTU"] = "https://evil.example/" })
		}, `"HTU" differs`},
		{"header name differing in case", func(t *testing.T, f *fixture) string {
			return edited(t, f, es, func(h, _ map[string]any) { h["Alg"] = "none" })
		}, `"Alg" differs`},
		{"jwk member differing in case (D)", func(t *testing.T, f *fixture) string {
			return edited(t, f, es, func(h, _ map[string]any) { h["jwk"].(map[string]any)["D"] = "AAAA" })
		}, `"D" differs`},
		{"invalid UTF-8", func(t *testing.T, f *fixture) string {
			c := goodClaims(f)
			return raw(t, es, goodHeader(es), c[:len(c)-1]+`,"x":"`+"\xff"+`"}`)
		}, "UTF-8"},
		{"lone surrogate", func(t *testing.T, f *fixture) string {
			c := goodClaims(f)
			return raw(t, es, goodHeader(es), c[:len(c)-1]+`,"x":"\ud800"}`)
		}, "surrogate"},
		{"trailing data", func(t *testing.T, f *fixture) string { return raw(t, es, goodHeader(es), goodClaims(f)+`{}`) }, "trailing data"},

		// typ.
		{"no typ", func(t *testing.T, f *fixture) string {
			return edited(t, f, es, func(h, _ map[string]any) { delete(h, "typ") })
		}, "no typ"},
		{"typ JWT", func(t *testing.T, f *fixture) string {
			return edited(t, f, es, func(h, _ map[string]any) { h["typ"] = "JWT" })
		}, `typ "JWT"`},
		{"typ at+jwt (an access token)", func(t *testing.T, f *fixture) string {
			return edited(t, f, es, func(h, _ map[string]any) { h["typ"] = "at+jwt" })
		}, `typ "at+jwt"`},
		{"typ with a parameter", func(t *testing.T, f *fixture) string {
			return edited(t, f, es, func(h, _ map[string]any) { h["typ"] = "dpop+jwt;q=1" })
		}, "is not dpop+jwt"},
		{"typ with the Kelvin sign", func(t *testing.T, f *fixture) string {
			return edited(t, f, es, func(h, _ map[string]any) { h["typ"] = "dpop+jwt"[:7] + "\u212a" })
		}, "is not dpop+jwt"},
		{"typ not a string", func(t *testing.T, f *fixture) string {
			return edited(t, f, es, func(h, _ map[string]any) { h["typ"] = 1 })
		}, `"typ" has the wrong type`},

		// alg.
		{"alg none", func(t *testing.T, f *fixture) string {
			return edited(t, f, es, func(h, _ map[string]any) { h["alg"] = "none" })
		}, `alg "none" is not accepted`},
		{"alg HS256, MAC keyed with the public key", func(t *testing.T, f *fixture) string {
			h := es.header()
			h["alg"] = "HS256"
			input := b64(mustJSON(t, h)) + "." + b64(mustJSON(t, f.claims()))
			m := hmac.New(sha256.New, []byte(jwkJSON))
			m.Write([]byte(input))
			return input + "." + b64(m.Sum(nil))
		}, `alg "HS256" is not accepted`},
		{"alg not configured (ES512)", func(t *testing.T, f *fixture) string {
			return newKey(t, "ES512").proof(t, newKey(t, "ES512").header(), f.claims())
		}, `alg "ES512" is not accepted`},
		{"alg ES256 with an RSA key", func(t *testing.T, f *fixture) string {
			return edited(t, f, rs, func(h, _ map[string]any) { h["alg"] = "ES256" })
		}, `kty "RSA" cannot verify alg ES256`},
		{"alg ES384 with a P-256 key", func(t *testing.T, f *fixture) string {
			return edited(t, f, es, func(h, _ map[string]any) { h["alg"] = "ES384" })
		}, `crv "P-256" cannot verify alg ES384`},
		{"alg RS256 with an EC key", func(t *testing.T, f *fixture) string {
			return edited(t, f, es, func(h, _ map[string]any) { h["alg"] = "RS256" })
		}, `kty "EC" cannot verify alg RS256`},
		{"alg EdDSA with an EC key", func(t *testing.T, f *fixture) string {
			return edited(t, f, es, func(h, _ map[string]any) { h["alg"] = "EdDSA" })
		}, `kty "EC" cannot verify alg EdDSA`},

		// Header parameters that would change the proof's meaning.
		{"crit", func(t *testing.T, f *fixture) string {
			return edited(t, f, es, func(h, _ map[string]any) { h["crit"] = []string{"exp"}; h["exp"] = 1 })
		}, `"crit" is present`},
		{"crit empty", func(t *testing.T, f *fixture) string {
			return edited(t, f, es, func(h, _ map[string]any) { h["crit"] = []string{} })
		}, `"crit" is present`},
		{"b64 false", func(t *testing.T, f *fixture) string {
			return edited(t, f, es, func(h, _ map[string]any) { h["b64"] = false })
		}, `"b64" is not allowed`},
		{"cty", func(t *testing.T, f *fixture) string {
			return edited(t, f, es, func(h, _ map[string]any) { h["cty"] = "JWT" })
		}, `"cty" is not allowed`},
		{"jku", func(t *testing.T, f *fixture) string {
			return edited(t, f, es, func(h, _ map[string]any) { h["jku"] = "https://evil.example/jwks" })
		}, `"jku" is not allowed`},
		{"x5c", func(t *testing.T, f *fixture) string {
			return edited(t, f, es, func(h, _ map[string]any) { h["x5c"] = []string{"MIIB"} })
		}, `"x5c" is not allowed`},

		// jwk.
		{"no jwk", func(t *testing.T, f *fixture) string {
			return edited(t, f, es, func(h, _ map[string]any) { delete(h, "jwk") })
		}, "no jwk"},
		{"jwk not an object", func(t *testing.T, f *fixture) string {
			return edited(t, f, es, func(h, _ map[string]any) { h["jwk"] = jwkJSON })
		}, `"jwk" has the wrong type`},
		{"private EC key (d)", func(t *testing.T, f *fixture) string {
			return edited(t, f, es, func(h, _ map[string]any) { h["jwk"].(map[string]any)["d"] = b64(make([]byte, 32)) })
		}, `private key member "d"`},
		{"private RSA key (p)", func(t *testing.T, f *fixture) string {
			return edited(t, f, rs, func(h, _ map[string]any) { h["jwk"].(map[string]any)["p"] = "AQAB" })
		}, `private key member "p"`},
		{"private RSA key (q)", func(t *testing.T, f *fixture) string {
			return edited(t, f, rs, func(h, _ map[string]any) { h["jwk"].(map[string]any)["q"] = "AQAB" })
		}, `private key member "q"`},
		{"private RSA key (dp)", func(t *testing.T, f *fixture) string {
			return edited(t, f, rs, func(h, _ map[string]any) { h["jwk"].(map[string]any)["dp"] = "AQAB" })
		}, `private key member "dp"`},
		{"private RSA key (dq)", func(t *testing.T, f *fixture) string {
			return edited(t, f, rs, func(h, _ map[string]any) { h["jwk"].(map[string]any)["dq"] = "AQAB" })
		}, `private key member "dq"`},
		{"private RSA key (qi)", func(t *testing.T, f *fixture) string {
			return edited(t, f, rs, func(h, _ map[string]any) { h["jwk"].(map[string]any)["qi"] = "AQAB" })
		}, `private key member "qi"`},
		{"private RSA key (oth)", func(t *testing.T, f *fixture) string {
			return edited(t, f, rs, func(h, _ map[string]any) { h["jwk"].(map[string]any)["oth"] = []any{} })
		}, `private key member "oth"`},
		{"private Ed25519 key (d, null)", func(t *testing.T, f *fixture) string {
			return edited(t, f, ed, func(h, _ map[string]any) { h["jwk"].(map[string]any)["d"] = nil })
		}, `private key member "d"`},
		{"symmetric key member (k)", func(t *testing.T, f *fixture) string {
			return edited(t, f, es, func(h, _ map[string]any) { h["jwk"].(map[string]any)["k"] = "c2VjcmV0" })
		}, `private key member "k"`},
		{"kty oct", func(t *testing.T, f *fixture) string {
			return edited(t, f, es, func(h, _ map[string]any) { h["jwk"] = map[string]any{"kty": "oct"} })
		}, "symmetric key"},
		{"no kty", func(t *testing.T, f *fixture) string {
			return edited(t, f, es, func(h, _ map[string]any) { delete(h["jwk"].(map[string]any), "kty") })
		}, "no kty"},
		{"point not on the curve", func(t *testing.T, f *fixture) string {
			return edited(t, f, es, func(h, _ map[string]any) {
				y, _ := b64dec(h["jwk"].(map[string]any)["y"].(string))
				y[len(y)-1] ^= 1 // (x, y±1) is on the curve with probability ~2^-256
				h["jwk"].(map[string]any)["y"] = b64(y)
			})
		}, "not on the curve"},
		{"short x", func(t *testing.T, f *fixture) string {
			return edited(t, f, es, func(h, _ map[string]any) { h["jwk"].(map[string]any)["x"] = b64(make([]byte, 31)) })
		}, "x is not 32 bytes"},
		{"RSA modulus with a leading zero", func(t *testing.T, f *fixture) string {
			return edited(t, f, rs, func(h, _ map[string]any) {
				n, _ := b64dec(h["jwk"].(map[string]any)["n"].(string))
				h["jwk"].(map[string]any)["n"] = b64(append([]byte{0}, n...))
			})
		}, "n is not a minimal"},
		{"RSA-1024", func(t *testing.T, f *fixture) string {
			return edited(t, f, rs, func(h, _ map[string]any) {
				h["jwk"].(map[string]any)["n"] = b64(append([]byte{0xc1}, make([]byte, 127)...))
			})
		}, "modulus of 1024 bits"},
		{"RSA even exponent", func(t *testing.T, f *fixture) string {
			return edited(t, f, rs, func(h, _ map[string]any) { h["jwk"].(map[string]any)["e"] = "AQAC" })
		}, "odd exponent"},
		{"RSA key with an EC member", func(t *testing.T, f *fixture) string {
			return edited(t, f, rs, func(h, _ map[string]any) { h["jwk"].(map[string]any)["crv"] = "P-256" })
		}, "RSA key with EC"},
		{"jwk alg differs", func(t *testing.T, f *fixture) string {
			return edited(t, f, es, func(h, _ map[string]any) { h["jwk"].(map[string]any)["alg"] = "ES384" })
		}, `key is for alg "ES384"`},
		{"jwk use enc", func(t *testing.T, f *fixture) string {
			return edited(t, f, es, func(h, _ map[string]any) { h["jwk"].(map[string]any)["use"] = "enc" })
		}, `key use "enc"`},
		{"jwk key_ops without verify", func(t *testing.T, f *fixture) string {
			return edited(t, f, es, func(h, _ map[string]any) { h["jwk"].(map[string]any)["key_ops"] = []string{"sign"} })
		}, "key_ops lacks"},

		// Signature.
		{"signed by another key", func(t *testing.T, f *fixture) string {
			other := freshKey(t, "ES256")
			return other.proof(t, es.header(), f.claims())
		}, "signature does not verify"},
		{"claims changed after signing", func(t *testing.T, f *fixture) string {
			p := edited(t, f, es, nil)
			parts := strings.Split(p, ".")
			c := f.claims()
			c["jti"] = "another"
			return parts[0] + "." + b64(mustJSON(t, c)) + "." + parts[2]
		}, "signature does not verify"},
		{"truncated signature", func(t *testing.T, f *fixture) string {
			p := edited(t, f, es, nil)
			dot := strings.LastIndexByte(p, '.')
			sig, _ := b64dec(p[dot+1:])
			return p[:dot+1] + b64(sig[:len(sig)-1])
		}, "signature does not verify"},
		{"Ed25519 signature by another key", func(t *testing.T, f *fixture) string {
			return freshKey(t, "EdDSA").proof(t, ed.header(), f.claims())
		}, "signature does not verify"},

		// Claims.
		{"no jti", func(t *testing.T, f *fixture) string {
			return edited(t, f, es, func(_, c map[string]any) { delete(c, "jti") })
		}, "no jti"},
		{"empty jti", func(t *testing.T, f *fixture) string {
			return edited(t, f, es, func(_, c map[string]any) { c["jti"] = "" })
		}, "empty jti"},
		{"jti a number", func(t *testing.T, f *fixture) string {
			return edited(t, f, es, func(_, c map[string]any) { c["jti"] = 7 })
		}, `"jti" has the wrong type`},
		{"jti too long", func(t *testing.T, f *fixture) string {
			return edited(t, f, es, func(_, c map[string]any) { c["jti"] = strings.Repeat("j", dpop.MaxJTIBytes+1) })
		}, "jti longer than"},
		{"no htm", func(t *testing.T, f *fixture) string {
			return edited(t, f, es, func(_, c map[string]any) { delete(c, "htm") })
		}, "no htm"},
		{"htm another method", func(t *testing.T, f *fixture) string {
			return edited(t, f, es, func(_, c map[string]any) { c["htm"] = "GET" })
		}, `htm "GET" is not`},
		{"htm in lower case", func(t *testing.T, f *fixture) string {
			return edited(t, f, es, func(_, c map[string]any) { c["htm"] = "post" })
		}, `htm "post" is not`},
		{"no htu", func(t *testing.T, f *fixture) string {
			return edited(t, f, es, func(_, c map[string]any) { delete(c, "htu") })
		}, "no htu"},
		{"htu another path", func(t *testing.T, f *fixture) string {
			return edited(t, f, es, func(_, c map[string]any) { c["htu"] = "https://mcp.example.com/admin" })
		}, "is not the request URI"},
		{"htu another host", func(t *testing.T, f *fixture) string {
			return edited(t, f, es, func(_, c map[string]any) { c["htu"] = "https://evil.example/mcp" })
		}, "is not the request URI"},
		{"htu http for https", func(t *testing.T, f *fixture) string {
			return edited(t, f, es, func(_, c map[string]any) { c["htu"] = "http://mcp.example.com/mcp" })
		}, "is not the request URI"},
		{"htu another port", func(t *testing.T, f *fixture) string {
			return edited(t, f, es, func(_, c map[string]any) { c["htu"] = "https://mcp.example.com:8443/mcp" })
		}, "is not the request URI"},
		{"htu with a trailing slash", func(t *testing.T, f *fixture) string {
			return edited(t, f, es, func(_, c map[string]any) { c["htu"] = testURI + "/" })
		}, "is not the request URI"},
		{"htu path case", func(t *testing.T, f *fixture) string {
			return edited(t, f, es, func(_, c map[string]any) { c["htu"] = "https://mcp.example.com/MCP" })
		}, "is not the request URI"},
		{"htu with dot-dot", func(t *testing.T, f *fixture) string {
			return edited(t, f, es, func(_, c map[string]any) { c["htu"] = "https://mcp.example.com/admin/../mcp" })
		}, "dot segment"},
		{"htu with an encoded dot-dot", func(t *testing.T, f *fixture) string {
			return edited(t, f, es, func(_, c map[string]any) { c["htu"] = "https://mcp.example.com/admin/%2E%2e/mcp" })
		}, "dot segment"},
		{"htu with a dot", func(t *testing.T, f *fixture) string {
			return edited(t, f, es, func(_, c map[string]any) { c["htu"] = "https://mcp.example.com/./mcp" })
		}, "dot segment"},
		{"htu with user information", func(t *testing.T, f *fixture) string {
			return edited(t, f, es, func(_, c map[string]any) { c["htu"] = "https://mcp.example.com@evil.example/mcp" })
		}, "user information"},
		{"htu relative", func(t *testing.T, f *fixture) string {
			return edited(t, f, es, func(_, c map[string]any) { c["htu"] = "/mcp" })
		}, "htu: no scheme"},
		{"no iat", func(t *testing.T, f *fixture) string {
			return edited(t, f, es, func(_, c map[string]any) { delete(c, "iat") })
		}, "no iat"},
		{"iat a string", func(t *testing.T, f *fixture) string {
			return edited(t, f, es, func(_, c map[string]any) { c["iat"] = "1777636800" })
		}, `"iat" is not a number`},
		{"iat huge", func(t *testing.T, f *fixture) string {
			return edited(t, f, es, func(_, c map[string]any) { c["iat"] = json.RawMessage("1e400") })
		}, `"iat" is not a number`},
		{"iat negative", func(t *testing.T, f *fixture) string {
			return edited(t, f, es, func(_, c map[string]any) { c["iat"] = -1 })
		}, `"iat" is not a number`},
		{"iat too old", func(t *testing.T, f *fixture) string {
			return edited(t, f, es, func(_, c map[string]any) { c["iat"] = t0.Add(-dpop.DefaultMaxAge - time.Second).Unix() })
		}, "is older than"},
		{"iat too far in the future", func(t *testing.T, f *fixture) string {
			return edited(t, f, es, func(_, c map[string]any) { c["iat"] = t0.Add(dpop.DefaultLeeway + time.Second).Unix() })
		}, "in the future"},
		{"no ath", func(t *testing.T, f *fixture) string {
			return edited(t, f, es, func(_, c map[string]any) { delete(c, "ath") })
		}, "no ath"},
		{"ath of another token", func(t *testing.T, f *fixture) string {
			return edited(t, f, es, func(_, c map[string]any) { c["ath"] = ath(testToken + "x") })
		}, "ath is not the hash"},
		{"ath padded", func(t *testing.T, f *fixture) string {
			return edited(t, f, es, func(_, c map[string]any) { c["ath"] = ath(testToken) + "=" })
		}, "ath is not the hash"},
		{"ath a number", func(t *testing.T, f *fixture) string {
			return edited(t, f, es, func(_, c map[string]any) { c["ath"] = 1 })
		}, `"ath" has the wrong type`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, dpop.Options{})
			res, err := f.verify(tt.proof(t, f))
			if !errors.Is(err, dpop.ErrInvalidProof) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Verify = %+v, %v; want ErrInvalidProof saying %q", res, err, tt.want)
			}
			if errors.Is(err, dpop.ErrUseNonce) || errors.Is(err, dpop.ErrUnavailable) {
				t.Fatalf("Verify error %v wraps more than one class", err)
			}
			if n := f.store.Len(); n != 0 {
				t.Fatalf("a refused proof left %d entries in the replay store", n)
			}
		})
	}
}

// Good proofs of every supported algorithm are accepted, and the result
// carries the key's thumbprint as jwx computes it, the jti and the iat.
func TestVerifyAccepts(t *testing.T) {
	t.Parallel()
	all := []string{"ES256", "ES384", "ES512", "EdDSA", "Ed25519", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}
	for _, alg := range all {
		t.Run(alg, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, dpop.Options{Algorithms: all})
			k := newKey(t, alg)
			c := f.claims()
			res, err := f.verify(k.proof(t, k.header(), c))
			if err != nil {
				t.Fatal(err)
			}
			want := jwxThumbprint(t, k.jwk())
			if res.JKT != want || res.JTI != c["jti"] || !res.IssuedAt.Equal(t0) {
				t.Fatalf("Result = %+v; want JKT %s, JTI %s, IssuedAt %s", res, want, c["jti"], t0)
			}
		})
	}
}

// What a client may legitimately vary is accepted: typ spellings,
// equivalent htu forms, extra claims and header parameters, a
// fractional iat, the edges of the iat window.
func TestVerifyAcceptsVariants(t *testing.T) {
	t.Parallel()
	es := newKey(t, "ES256")
	tests := []struct {
		name string
		edit func(h, c map[string]any)
	}{
		{"typ in capitals", func(h, _ map[string]any) { h["typ"] = "DPoP+JWT" }},
		{"typ with application/", func(h, _ map[string]any) { h["typ"] = "Application/dpop+jwt" }},
		{"kid beside jwk", func(h, _ map[string]any) { h["kid"] = "k1" }},
		{"jwk alg, use and key_ops that fit", func(h, _ map[string]any) {
			j := h["jwk"].(map[string]any)
			j["alg"], j["use"], j["key_ops"] = "ES256", "sig", []string{"verify"}
		}},
		{"extra claims", func(_, c map[string]any) { c["exp"] = 1; c["custom"] = map[string]any{"a": []int{1}} }},
		{"400 extra claims", func(_, c map[string]any) {
			for i := range 400 {
				c[fmt.Sprint("c", i)] = 0
			}
		}},
		{"htu with query and fragment", func(_, c map[string]any) { c["htu"] = testURI + "?a=b#frag" }},
		{"htu scheme and host in capitals", func(_, c map[string]any) { c["htu"] = "HTTPS://MCP.Example.COM/mcp" }},
		{"htu with the default port", func(_, c map[string]any) { c["htu"] = "https://mcp.example.com:443/mcp" }},
		{"htu with an empty port", func(_, c map[string]any) { c["htu"] = "https://mcp.example.com:/mcp" }},
		{"htu with encoded unreserved characters", func(_, c map[string]any) { c["htu"] = "https://mcp.example.com/%6D%63p" }},
		{"iat fractional", func(_, c map[string]any) { c["iat"] = float64(t0.Unix()) + 0.25 }},
		{"iat exactly MaxAge old", func(_, c map[string]any) { c["iat"] = t0.Add(-dpop.DefaultMaxAge).Unix() }},
		{"iat exactly Leeway ahead", func(_, c map[string]any) { c["iat"] = t0.Add(dpop.DefaultLeeway).Unix() }},
		{"iat in exponent form", func(_, c map[string]any) { c["iat"] = json.RawMessage("1.7776368e9") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, dpop.Options{})
			if _, err := f.verify(edited(t, f, es, tt.edit)); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// A caller that lost the request method cannot have an empty htm match it.
func TestVerifyNeedsMethod(t *testing.T) {
	t.Parallel()
	f := newFixture(t, dpop.Options{})
	k := newKey(t, "ES256")
	c := f.claims()
	c["htm"] = ""
	_, err := f.v.Verify(t.Context(), dpop.Proof{Header: k.proof(t, k.header(), c), URI: testURI, AccessToken: testToken})
	if !errors.Is(err, dpop.ErrInvalidProof) || !strings.Contains(err.Error(), "no request method") {
		t.Fatalf("empty htm, empty method: %v", err)
	}
}

// A request without an access token (AccessToken "") does not need ath;
// one with a token always does.
func TestVerifyAthOnlyWithToken(t *testing.T) {
	t.Parallel()
	f := newFixture(t, dpop.Options{})
	k := newKey(t, "ES256")
	c := f.claims()
	delete(c, "ath")
	_, err := f.v.Verify(t.Context(), dpop.Proof{Header: k.proof(t, k.header(), c), Method: testMethod, URI: testURI})
	if err != nil {
		t.Fatalf("no token, no ath: %v", err)
	}
}

// A proof made with jwx, an independent JWS implementation, is accepted.
func TestVerifyJWXProof(t *testing.T) {
	t.Parallel()
	f := newFixture(t, dpop.Options{})
	k := newKey(t, "ES256")
	priv, err := jwk.Import(k.priv)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := priv.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	hdr := jws.NewHeaders()
	for name, v := range map[string]any{"typ": "dpop+jwt", "jwk": pub} {
		if err := hdr.Set(name, v); err != nil {
			t.Fatal(err)
		}
	}
	signed, err := jws.Sign(mustJSON(t, f.claims()), jws.WithKey(jwa.ES256(), priv, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		t.Fatal(err)
	}
	res, err := f.verify(string(signed))
	if err != nil {
		t.Fatal(err)
	}
	if want := jwxThumbprint(t, k.jwk()); res.JKT != want {
		t.Fatalf("JKT = %s, want %s", res.JKT, want)
	}
}

// A proof is accepted once: the same proof again is a replay, and so is
// the other valid spelling of its ECDSA signature. The same jti under
// another key is another proof.
func TestVerifyReplay(t *testing.T) {
	t.Parallel()
	f := newFixture(t, dpop.Options{})
	k := newKey(t, "ES256")
	c := f.claims()
	p := k.proof(t, k.header(), c)
	if _, err := f.verify(p); err != nil {
		t.Fatal(err)
	}
	if _, err := f.verify(p); !errors.Is(err, dpop.ErrInvalidProof) || !strings.Contains(err.Error(), "replayed") {
		t.Fatalf("the same proof again: %v; want a replay", err)
	}
	twin, _ := testkit.OtherECDSASpelling(t, p, testkit.ECDSACurve(t, "ES256"))
	if _, err := f.verify(twin); !errors.Is(err, dpop.ErrInvalidProof) || !strings.Contains(err.Error(), "replayed") {
		t.Fatalf("the other spelling of its signature: %v; want a replay", err)
	}
	other := freshKey(t, "ES256")
	if _, err := f.verify(other.proof(t, other.header(), c)); err != nil {
		t.Fatalf("the same jti under another key: %v", err)
	}
	// Within the window the proof stays refused; after it, the proof is
	// stale anyway.
	f.clock.Advance(dpop.DefaultMaxAge)
	if _, err := f.verify(p); !strings.Contains(err.Error(), "replayed") {
		t.Fatalf("at the end of the window: %v; want a replay", err)
	}
	f.clock.Advance(time.Second)
	if _, err := f.verify(p); !strings.Contains(err.Error(), "is older than") {
		t.Fatalf("after the window: %v; want stale", err)
	}
}

// Proof.JKT (the token's cnf.jkt) must be the proof key's thumbprint, and
// a proof by another key never reaches the replay store.
func TestVerifyKeyBinding(t *testing.T) {
	t.Parallel()
	f := newFixture(t, dpop.Options{})
	k, thief := newKey(t, "ES256"), freshKey(t, "ES256")
	bound := jwxThumbprint(t, k.jwk())
	verify := func(p string) error {
		_, err := f.v.Verify(t.Context(), dpop.Proof{Header: p, Method: testMethod, URI: testURI, AccessToken: testToken, JKT: bound})
		return err
	}
	if err := verify(thief.proof(t, thief.header(), f.claims())); !errors.Is(err, dpop.ErrKeyMismatch) || !errors.Is(err, dpop.ErrInvalidProof) {
		t.Fatalf("a proof by another key: %v; want ErrKeyMismatch", err)
	}
	if n := f.store.Len(); n != 0 {
		t.Fatalf("the mismatched proof took %d replay entries", n)
	}
	if err := verify(k.proof(t, k.header(), f.claims())); err != nil {
		t.Fatal(err)
	}
}

// Verify is concurrent-safe, and of many concurrent copies of one proof
// exactly one is accepted.
func TestVerifyConcurrentReplay(t *testing.T) {
	t.Parallel()
	f := newFixture(t, dpop.Options{})
	k := newKey(t, "ES256")
	p := k.proof(t, k.header(), f.claims())
	const n = 16
	errs := make(chan error, n)
	for range n {
		go func() {
			_, err := f.verify(p)
			errs <- err
		}()
	}
	accepted := 0
	for range n {
		if err := <-errs; err == nil {
			accepted++
		} else if !strings.Contains(err.Error(), "replayed") {
			t.Errorf("unexpected error: %v", err)
		}
	}
	if accepted != 1 {
		t.Fatalf("%d of %d copies accepted; want exactly 1", accepted, n)
	}
}

func TestNewVerifierRefuses(t *testing.T) {
	t.Parallel()
	store := dpop.NewMemoryReplay(1, nil)
	for _, tt := range []struct {
		name string
		o    dpop.Options
		want string
	}{
		{"none", dpop.Options{Algorithms: []string{"ES256", "none"}, Replay: store}, `"none" is never accepted`},
		{"HS256", dpop.Options{Algorithms: []string{"HS256"}, Replay: store}, `"HS256" is never accepted`},
		{"unknown", dpop.Options{Algorithms: []string{"ES256K"}, Replay: store}, `unsupported algorithm "ES256K"`},
		{"no replay store", dpop.Options{}, "replay store is required"},
		{"negative MaxAge", dpop.Options{MaxAge: -time.Second, Replay: store}, "MaxAge is negative"},
		{"negative Leeway", dpop.Options{Leeway: -time.Second, Replay: store}, "Leeway is negative"},
	} {
		if _, err := dpop.NewVerifier(tt.o); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: NewVerifier error %v; want %q", tt.name, err, tt.want)
		}
	}
	v, err := dpop.NewVerifier(dpop.Options{Replay: store})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(v.Algorithms(), " "); got != "ES256 ES384 EdDSA RS256 PS256" {
		t.Errorf("default algorithms %q", got)
	}
	if v.ReplayTTL() != dpop.DefaultMaxAge+dpop.DefaultLeeway {
		t.Errorf("ReplayTTL %s", v.ReplayTTL())
	}
}

// jwxThumbprint is a public JWK's RFC 7638 thumbprint as jwx computes it.
func jwxThumbprint(t *testing.T, pub map[string]any) string {
	t.Helper()
	k, err := jwk.ParseKey(mustJSON(t, pub))
	if err != nil {
		t.Fatal(err)
	}
	tp, err := k.Thumbprint(cryptoSHA256)
	if err != nil {
		t.Fatal(err)
	}
	return b64(tp)
}

// A caller that has already hashed the access token (the engine's cache
// key, token.CacheHashAsSent) hands the hash over, and ath is compared
// with that hash: the right one accepts the proof, another refuses it
// even though the token itself would match.
func TestVerifyATHWithTheCallersHash(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		sum  [sha256.Size]byte
		ok   bool
	}{
		{"the token's hash", sha256.Sum256([]byte(testToken)), true},
		{"another token's hash", sha256.Sum256([]byte(testToken + "x")), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, dpop.Options{})
			k := newKey(t, "ES256")
			proof := k.proof(t, k.header(), f.claims())
			sum := tc.sum
			_, err := f.v.Verify(context.Background(), dpop.Proof{Header: proof, Method: testMethod, URI: testURI,
				AccessToken: testToken, AccessTokenSHA256: &sum})
			if tc.ok != (err == nil) || err != nil && !strings.Contains(err.Error(), "ath is not the hash") {
				t.Fatalf("Verify: %v; want accepted %v", err, tc.ok)
			}
		})
	}
}

// TestFirstSeenKeysLeaveNothingPrepared: an RSA, P-256 or Ed25519 proof
// key seen for the first time, which anyone can send, is checked by
// crypto/rsa, crypto/ecdsa or crypto/ed25519 and leaves no prepared key
// behind; only a key whose
// proof was accepted, kept in the header cache, is prepared, on its next
// proof.
func TestFirstSeenKeysLeaveNothingPrepared(t *testing.T) {
	prepared := func() int { return rsasig.Held() + dpop.PreparedHeld() }
	held := func() int {
		// Settled: keys of earlier tests, collected, leave their entries.
		for range 3 {
			runtime.GC()
			time.Sleep(20 * time.Millisecond)
		}
		return prepared()
	}
	for _, alg := range []string{"RS256", "ES256", "EdDSA"} {
		t.Run(alg, func(t *testing.T) {
			f := newFixture(t, dpop.Options{})
			before := held()
			// No collection while the refused proofs are checked: a key
			// prepared for one of them would still be counted below.
			defer debug.SetGCPercent(debug.SetGCPercent(-1))
			// One key will do: this verifier has kept no header yet, so
			// each proof's jwk is read into a key of its own.
			k := newKey(t, alg)
			for range 5 {
				_, err := f.v.Verify(t.Context(), dpop.Proof{Header: k.proof(t, k.header(), f.claims()), Method: testMethod, URI: testURI, AccessToken: testToken, JKT: "not-this-key"})
				if !errors.Is(err, dpop.ErrKeyMismatch) {
					t.Fatalf("want a key mismatch, got %v", err)
				}
			}
			if got := prepared(); got > before {
				t.Fatalf("%d keys prepared after five refused proofs with new keys, %d before", got, before)
			}
			for i := range 2 {
				if _, err := f.v.Verify(t.Context(), dpop.Proof{Header: k.proof(t, k.header(), f.claims()), Method: testMethod, URI: testURI, AccessToken: testToken}); err != nil {
					t.Fatalf("proof %d: %v", i, err)
				}
				want := before + i // prepared on its second proof, its header kept
				if got := held(); got != want {
					t.Fatalf("after accepted proof %d: %d keys prepared, want %d", i, got, want)
				}
			}
			runtime.KeepAlive(f)
		})
	}
}
