package check_test

import (
	"context"
	"crypto"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"hash"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwe"
	"github.com/lestrrat-go/jwx/v3/jws"

	"github.com/extauthz/extauthz/internal/testkit"
	"github.com/extauthz/extauthz/pkg/authz"
	"github.com/extauthz/extauthz/pkg/check"
	"github.com/extauthz/extauthz/pkg/check/internal/wire"
	"github.com/extauthz/extauthz/pkg/config"
	"github.com/extauthz/extauthz/pkg/devissuer"
	"github.com/extauthz/extauthz/pkg/jwks"
	"github.com/extauthz/extauthz/pkg/metadata"
	"github.com/extauthz/extauthz/pkg/token"
	"github.com/extauthz/extauthz/pkg/verdict"
)

// The hostile corpus: tokens and requests an attacker crafts, each sent
// through gRPC Check as Envoy would send it, each with the answer of the
// answer table of docs/decision.md.

// What a client is told (error_description), per row of the table.
const (
	dMalformed = "the access token is malformed"
	dAlgorithm = "the access token's algorithm is not accepted"
	dCritical  = "the access token has unsupported critical headers"
	dKey       = "the access token's signing key is unknown"
	dSignature = "the access token's signature is invalid"
	dNotYet    = "the access token is not yet valid"
	dIssuer    = "the access token's issuer is not trusted"
	dAudience  = "the access token is not meant for this resource"
	rHeader    = "the Authorization header must carry exactly one Bearer token"
	rQuery     = "access tokens are accepted only in the Authorization header, not in the query string"
	rBody      = "access tokens are accepted only in the Authorization header, not in the body"
	// The answer to a request over the header limits (LIMITS.md).
	limitsBody = `{"error":"invalid_request","error_description":"the request has too many headers, or headers too large"}`
)

// hostileCase is one request and the answer it must get: allowed (200),
// or denied with status and, for 401 and 400, the error_description of
// the Bearer challenge.
type hostileCase struct {
	name   string
	req    check.EnvoyRequest
	status int
	desc   string
}

// runHostile sends each case through g and checks the answer a client
// observes.
func runHostile(t *testing.T, g *gateway, cases []hostileCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := g.check(t, c.req)
			if c.status == 200 {
				if !a.allowed {
					t.Fatalf("denied %d (body %s), want allowed", a.status, a.body)
				}
				return
			}
			if a.allowed || a.status != c.status {
				t.Fatalf("allowed=%v status=%d (body %s), want denied with %d", a.allowed, a.status, a.body, c.status)
			}
			code := map[int]string{401: "invalid_token", 400: "invalid_request"}[c.status]
			want := `Bearer error="` + code + `", scope="mcp:tools mcp:write", resource_metadata="` + prmURL + `", error_description="` + c.desc + `"` + dpopAllowed
			if got := a.headers["www-authenticate"]; got != want {
				t.Errorf("WWW-Authenticate\n got %s\nwant %s", got, want)
			}
			var body struct {
				Error       string `json:"error"`
				Description string `json:"error_description"`
			}
			if err := json.Unmarshal([]byte(a.body), &body); err != nil || body.Error != code || body.Description != c.desc {
				t.Errorf("body %s, want error %q, description %q", a.body, code, c.desc)
			}
			if a.headers["cache-control"] != "no-store" {
				t.Errorf("Cache-Control = %q", a.headers["cache-control"])
			}
		})
	}
}

func b64std(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// joseSign signs header and claims, given as JSON text, byte for byte:
// RS* with an RSA key, HS* with a secret.
func joseSign(t testing.TB, alg string, key any, header, claims string) string {
	t.Helper()
	in := b64([]byte(header)) + "." + b64([]byte(claims))
	var h func() hash.Hash
	var ch crypto.Hash
	switch alg[2:] {
	case "256":
		h, ch = sha256.New, crypto.SHA256
	case "384":
		h, ch = sha512.New384, crypto.SHA384
	case "512":
		h, ch = sha512.New, crypto.SHA512
	}
	var sig []byte
	switch alg[:2] {
	case "HS":
		m := hmac.New(h, key.([]byte))
		m.Write([]byte(in))
		sig = m.Sum(nil)
	case "RS":
		d := h()
		d.Write([]byte(in))
		var err error
		if sig, err = rsa.SignPKCS1v15(rand.Reader, key.(*rsa.PrivateKey), ch, d.Sum(nil)); err != nil {
			t.Fatal(err)
		}
	}
	return in + "." + b64(sig)
}

func jsonText(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// rsaJWK is the public JWK of key.
func rsaJWK(pub *rsa.PublicKey, kid string) map[string]any {
	return map[string]any{
		"kty": "RSA", "kid": kid, "alg": "RS256", "use": "sig",
		"n": b64(pub.N.Bytes()), "e": b64(big.NewInt(int64(pub.E)).Bytes()),
	}
}

// counting is a server that counts every request it gets and answers
// with body: where a jku or x5u header points. Nothing may ever ask.
func counting(t *testing.T, body []byte) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		_, _ = w.Write(body)
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

// attackerChain is a certificate for the attacker's key, issued by the
// attacker's own CA: an x5c or x5u chain.
func attackerChain(t *testing.T, key *rsa.PrivateKey) [][]byte {
	t.Helper()
	ca, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Totally Trusted CA"}, IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &ca.PublicKey, ca)
	if err != nil {
		t.Fatal(err)
	}
	leafTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "auth.example.com"},
		KeyUsage: x509.KeyUsageDigitalSignature, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, caTmpl, &key.PublicKey, ca)
	if err != nil {
		t.Fatal(err)
	}
	return [][]byte{leafDER, caDER}
}

// segments splits a compact token.
func segments(tok string) (h, p, s string) {
	h, rest, _ := strings.Cut(tok, ".")
	p, s, _ = strings.Cut(rest, ".")
	return h, p, s
}

// mintUntil mints tokens until one satisfies ok (a signature or claims
// segment with a given character, say), with a varying jti.
func mintUntil(t *testing.T, iss *devissuer.Issuer, ok func(h, p, s string) bool) string {
	t.Helper()
	for i := range 200 {
		// ~, ? and non-ASCII bytes make '-' and '_' likely in the claims.
		tok := mint(t, iss, devissuer.Token{Extra: map[string]any{"jti": fmt.Sprint("j", i), "note": "~?>ÿ~?>ÿ"}})
		if ok(segments(tok)) {
			return tok
		}
	}
	t.Fatal("no token with the property in 200 tries")
	return ""
}

func urlOnly(s string) bool { return strings.ContainsAny(s, "-_") }

func TestHostileTokens(t *testing.T) {
	g := startGateway(t)
	now := time.Now()
	const url = resourceURI
	req := func(tok string) check.EnvoyRequest { return check.EnvoyRequest{URL: url, Headers: bearer(tok)} }
	mainKID := g.main.ActiveKID()
	pub := g.main.PublicKey(mainKID).(*rsa.PublicKey)
	claimsText := jsonText(t, validClaims(g.main))
	valid := mint(t, g.main, devissuer.Token{})

	var cases []hostileCase

	// Key confusion: HS* properly signed with the issuer's RSA public key,
	// in every form an attacker can get it in, as the HMAC secret. A
	// verifier that takes alg from the token and "the key" from the JWKS
	// would check the HMAC with those very bytes.
	pkix, _ := x509.MarshalPKIXPublicKey(pub)
	pkcs1 := x509.MarshalPKCS1PublicKey(pub)
	resp, err := http.Get(g.main.JWKSURL())
	if err != nil {
		t.Fatal(err)
	}
	jwksDoc, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	secrets := map[string][]byte{
		"PEM (PKIX)":            pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pkix}),
		"PEM (PKIX), trimmed":   []byte(strings.TrimSpace(string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pkix})))),
		"PEM (PKCS #1)":         pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: pkcs1}),
		"DER (PKIX)":            pkix,
		"DER (PKCS #1)":         pkcs1,
		"JWK":                   []byte(jsonText(t, rsaJWK(pub, mainKID))),
		"JWKS document, served": jwksDoc,
		"modulus":               pub.N.Bytes(),
	}
	for _, alg := range []string{"HS256", "HS384", "HS512"} {
		for form, secret := range secrets {
			tok := joseSign(t, alg, secret, jsonText(t, map[string]any{"alg": alg, "typ": "at+jwt", "kid": mainKID}), claimsText)
			// The token is what the attack needs: its HMAC verifies.
			a, _ := jwa.LookupSignatureAlgorithm(alg)
			if _, err := jws.Verify([]byte(tok), jws.WithKey(a, secret)); err != nil {
				t.Fatalf("%s with %s: not a properly signed token: %v", alg, form, err)
			}
			cases = append(cases, hostileCase{alg + " signed with the issuer's public key, " + form, req(tok), 401, dAlgorithm})
		}
	}

	// Keys named by the token: never fetched, never trusted.
	attacker, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	chain := attackerChain(t, attacker)
	jku, jkuHits := counting(t, []byte(jsonText(t, map[string]any{"keys": []any{rsaJWK(&attacker.PublicKey, "attacker-1")}})))
	x5u, x5uHits := counting(t, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: chain[0]}))
	attackerSigned := func(hdr map[string]any) string {
		h := map[string]any{"alg": "RS256", "typ": "at+jwt"}
		for k, v := range hdr {
			h[k] = v
		}
		return joseSign(t, "RS256", attacker, jsonText(t, h), claimsText)
	}
	x5c := []string{b64std(chain[0]), b64std(chain[1])}
	for _, kc := range []struct {
		name string
		kid  any // nil: no kid
		desc string
	}{
		{"the attacker's kid", "attacker-1", dKey},
		{"the issuer's kid", mainKID, dSignature},
		{"no kid", nil, dSignature}, // the issuer's only RS256 key is tried, and fails
	} {
		for _, hc := range []struct {
			name string
			hdr  map[string]any
		}{
			{"jku to the attacker's key set", map[string]any{"jku": jku.URL + "/jwks.json"}},
			{"x5u to the attacker's certificate", map[string]any{"x5u": x5u.URL + "/cert.pem"}},
			{"jwk holding the attacker's key", map[string]any{"jwk": rsaJWK(&attacker.PublicKey, "attacker-1")}},
			{"x5c with the attacker's chain", map[string]any{"x5c": x5c}},
			{"jku, x5u, jwk and x5c at once", map[string]any{"jku": jku.URL, "x5u": x5u.URL, "jwk": rsaJWK(&attacker.PublicKey, "attacker-1"), "x5c": x5c}},
		} {
			if kc.kid != nil {
				hc.hdr["kid"] = kc.kid
			}
			cases = append(cases, hostileCase{hc.name + ", " + kc.name, req(attackerSigned(hc.hdr)), 401, kc.desc})
		}
	}

	// crit and b64 (RFC 7515 §4.1.11, RFC 7797): refused, whatever they list.
	junk := "c2lnbmF0dXJl"
	cases = append(cases,
		hostileCase{"crit lists a header that is absent", req(sign(t, g.main, validClaims(g.main), map[string]any{"crit": []string{"exp-ext"}})), 401, dCritical},
		hostileCase{"crit lists b64, b64 false", req(unsigned(map[string]any{"alg": "RS256", "kid": mainKID, "b64": false, "crit": []string{"b64"}}, validClaims(g.main), junk)), 401, dCritical},
		hostileCase{"b64 false without crit", req(unsigned(map[string]any{"alg": "RS256", "kid": mainKID, "b64": false}, validClaims(g.main), junk)), 401, dCritical},
		hostileCase{"crit empty", req(unsigned(map[string]any{"alg": "RS256", "kid": mainKID, "crit": []string{}}, validClaims(g.main), junk)), 401, dCritical},
	)

	// Encrypted and nested tokens: not JWS access tokens.
	jweTok, err := jwe.Encrypt([]byte(claimsText), jwe.WithKey(jwa.RSA_OAEP(), pub), jwe.WithContentEncryption(jwa.A256GCM()))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(string(jweTok), ".") != 4 {
		t.Fatalf("JWE %q is not 5 segments", jweTok)
	}
	cases = append(cases,
		hostileCase{"JWE (RSA-OAEP, A256GCM) to the issuer's key", req(string(jweTok)), 401, dMalformed},
		hostileCase{"cty JWT over JSON claims", req(sign(t, g.main, validClaims(g.main), map[string]any{"cty": "JWT"})), 401, dMalformed},
	)

	// Time.
	with := func(k string, v any) map[string]any { c := validClaims(g.main); c[k] = v; return c }
	cases = append(cases,
		hostileCase{"iat a day ahead", req(sign(t, g.main, with("iat", now.Add(24*time.Hour).Unix()), nil)), 401, dNotYet},
		hostileCase{"nbf a day ahead", req(sign(t, g.main, with("nbf", now.Add(24*time.Hour).Unix()), nil)), 401, dNotYet},
		hostileCase{"exp as a string", req(sign(t, g.main, with("exp", fmt.Sprint(now.Add(time.Hour).Unix())), nil)), 401, dMalformed},
		hostileCase{"exp beyond year 5138", req(sign(t, g.main, with("exp", 1e12), nil)), 401, dMalformed},
	)

	// Issuers that are nearly ours.
	iss := g.main.Issuer() // http://127.0.0.1:port/tenant
	for name, v := range map[string]string{
		"issuer with a trailing slash":   iss + "/",
		"issuer with upper-cased scheme": "HTTP" + strings.TrimPrefix(iss, "http"),
		"issuer with upper-cased path":   strings.TrimSuffix(iss, "/tenant") + "/TENANT",
		"issuer with a zero-padded port": strings.Replace(iss, "127.0.0.1:", "127.0.0.1:0", 1),
		"issuer with a trailing space":   iss + " ",
	} {
		cases = append(cases, hostileCase{name, req(sign(t, g.main, with("iss", v), nil)), 401, dIssuer})
	}

	// Audiences that are nearly ours (RFC 7519 §4.1.3: compared as strings).
	for name, v := range map[string]any{
		"audience a prefix of ours":           "https://mcp.example.com/mc",
		"audience extending ours with a path": "https://mcp.example.com/mcp/extra",
		"audience extending ours":             "https://mcp.example.com/mcpx",
		"audience ending with ours":           "https://evil.example/?r=https://mcp.example.com/mcp",
		"audience with ours after a space":    "https://evil.example https://mcp.example.com/mcp",
		"audience upper-cased":                "HTTPS://MCP.EXAMPLE.COM/mcp",
		"audiences near ours, as an array":    []string{"https://mcp.example.com/mc", "https://mcp.example.com/mcp/"},
	} {
		cases = append(cases, hostileCase{name, req(sign(t, g.main, with("aud", v), nil)), 401, dAudience})
	}

	// Base64url. A b64token (the Authorization grammar) may hold '+', '/'
	// and trailing '=', so those reach the verifier, which refuses any
	// spelling of a segment but the canonical one; spaces and '=' inside
	// break the grammar itself (400).
	stdSig := mintUntil(t, g.main, func(_, _, s string) bool { return urlOnly(s) })
	h, p, s := segments(stdSig)
	sig, _ := b64dec(s)
	stdClaims := mintUntil(t, g.main, func(_, p, _ string) bool { return urlOnly(p) })
	ch, cp, cs := segments(stdClaims)
	claimsBytes, _ := b64dec(cp)
	vh, vp, vs := segments(valid)
	last := vs[len(vs)-1]
	flipped := strings.IndexByte(b64alphabet, last) ^ 1 // a padding bit of the last character
	cases = append(cases,
		hostileCase{"signature in standard base64", req(h + "." + p + "." + base64.RawStdEncoding.EncodeToString(sig)), 401, dMalformed},
		hostileCase{"signature padded", req(valid + "=="), 401, dMalformed},
		hostileCase{"signature with non-zero padding bits", req(vh + "." + vp + "." + vs[:len(vs)-1] + string(b64alphabet[flipped])), 401, dMalformed},
		hostileCase{"claims in standard base64", req(ch + "." + base64.RawStdEncoding.EncodeToString(claimsBytes) + "." + cs), 401, dMalformed},
		hostileCase{"header padded", req(vh + "==." + vp + "." + vs), 400, rHeader},
		hostileCase{"space inside", req(vh + "." + vp[:10] + " " + vp[10:] + "." + vs), 400, rHeader},
		hostileCase{"tab inside", req(vh + "." + vp + "\t." + vs), 400, rHeader},
		hostileCase{"empty header segment", req("." + vp + "." + vs), 401, dMalformed},
		hostileCase{"empty claims segment", req(vh + ".." + vs), 401, dMalformed},
		hostileCase{"empty signature segment", req(vh + "." + vp + "."), 401, dMalformed},
		hostileCase{"only dots", req(".."), 401, dMalformed},
		hostileCase{"four segments", req(valid + ".e30"), 401, dMalformed},
	)

	// Size: refused unparsed; and bounded (TestOversizedInputsBoundedMemory).
	cases = append(cases,
		hostileCase{"1 MiB token", req(strings.Repeat("a", 1<<20)), 401, dMalformed},
		hostileCase{"1 MiB header of spaces and commas", req(strings.Repeat("a, b ", 1<<20/5)), 400, rHeader},
	)

	runHostile(t, g, cases)

	t.Run("jku and x5u never fetched", func(t *testing.T) {
		if n, m := jkuHits.Load(), x5uHits.Load(); n != 0 || m != 0 {
			t.Fatalf("the jku server was asked %d times, the x5u server %d; want never", n, m)
		}
	})
}

// b64alphabet is the base64url alphabet, in order.
const b64alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

// TestCredentialPlacement: where the token may be (RFC 6750 §2.1 header
// only, scheme case-insensitive) and where not (§2.2 form body, §2.3
// query: refused, OAuth 2.1 and MCP forbid them).
func TestCredentialPlacement(t *testing.T) {
	g := startGateway(t)
	tok := mint(t, g.main, devissuer.Token{})
	const url = resourceURI
	form := func(ct, body string, hdrs ...[2]string) check.EnvoyRequest {
		return check.EnvoyRequest{Method: "POST", URL: url, Headers: append([][2]string{{"content-type", ct}}, hdrs...), Body: []byte(body)}
	}
	runHostile(t, g, []hostileCase{
		{"token in a form body", form("application/x-www-form-urlencoded", "access_token="+tok), 400, rBody},
		{"token in a form body and the header", form("application/x-www-form-urlencoded", "x=1&access_token="+tok, bearer(tok)...), 400, rBody},
		{"token in a form body, content type with parameters and capitals", form("Application/X-WWW-Form-Urlencoded; charset=UTF-8", "access_token="+tok), 400, rBody},
		{"token in a form body, name percent-encoded", form("application/x-www-form-urlencoded", "access%5Ftoken="+tok), 400, rBody},
		{"empty access_token in the query", check.EnvoyRequest{URL: url + "?access_token=", Headers: bearer(tok)}, 400, rQuery},
		{"access_token in the query, name percent-encoded", check.EnvoyRequest{URL: url + "?access%5Ftoken=" + tok}, 400, rQuery},
		{"access_token in the query after a semicolon", check.EnvoyRequest{URL: url + "?a=1;access_token=" + tok, Headers: bearer(tok)}, 400, rQuery},
		// Only access_token is defined (RFC 6750 §2.3): other names are
		// the application's.
		{"a parameter named token", check.EnvoyRequest{URL: url + "?token=abc", Headers: bearer(tok)}, 200, ""},
		{"a form body without access_token", form("application/x-www-form-urlencoded", "token=abc", bearer(tok)...), 200, ""},
		{"scheme in lower case", check.EnvoyRequest{URL: url, Headers: [][2]string{{"authorization", "bearer " + tok}}}, 200, ""},
		{"scheme in upper case", check.EnvoyRequest{URL: url, Headers: [][2]string{{"authorization", "BEARER " + tok}}}, 200, ""},
		// "Bearer" 1*SP b64token: more than one space is the grammar.
		{"two spaces after the scheme", check.EnvoyRequest{URL: url, Headers: [][2]string{{"authorization", "Bearer  " + tok}}}, 200, ""},
		{"a space after the token", check.EnvoyRequest{URL: url, Headers: [][2]string{{"authorization", "Bearer " + tok + " "}}}, 400, rHeader},
		{"two tokens, comma-separated", check.EnvoyRequest{URL: url, Headers: [][2]string{{"authorization", "Bearer " + tok + ", Bearer " + tok}}}, 400, rHeader},
	})
}

// rawIssuer is an authorization server whose test holds its key, to sign
// headers and claims no JSON encoder writes: repeated members, invalid
// UTF-8. Discovery and JWKS are served as devissuer serves them.
type rawIssuer struct {
	url string
	key *rsa.PrivateKey
}

const rawKID = "raw-1"

func startRawIssuer(t *testing.T) *rawIssuer {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ri := &rawIssuer{key: key}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/oauth-authorization-server", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{"issuer": ri.url, "jwks_uri": ri.url + "/jwks.json", "response_types_supported": []string{}})
	})
	mux.HandleFunc("GET /jwks.json", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": []any{rsaJWK(&key.PublicKey, rawKID)}})
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	ri.url = srv.URL
	return ri
}

func (ri *rawIssuer) sign(t *testing.T, header, claims string) string {
	t.Helper()
	return joseSign(t, "RS256", ri.key, header, claims)
}

// startRawGateway is startGateway's "mcp" resource trusting a rawIssuer.
func startRawGateway(t *testing.T) (*gateway, *rawIssuer) {
	t.Helper()
	return startRawGatewayTyp(t, true)
}

// startRawGatewayTyp is startRawGateway with the issuer's require_typ.
func startRawGatewayTyp(t *testing.T, requireTyp bool) (*gateway, *rawIssuer) {
	t.Helper()
	ri := startRawIssuer(t)
	g := &gateway{clock: testkit.NewClock()}
	cfg := &config.Config{Resources: []config.Resource{{
		Name: "mcp", Resource: resourceURI, Hosts: []string{"mcp.example.com"},
		AuthorizationServers: []config.AuthorizationServer{{Issuer: ri.url, RequireTyp: &requireTyp}},
		ScopesSupported:      []string{"mcp:tools", "mcp:write"},
		RequiredScopes:       []string{"mcp:tools", "mcp:write"},
	}}}
	cfg.ApplyDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	src := jwks.New(func(ctx context.Context) (string, error) {
		md, err := metadata.Discover(ctx, http.DefaultClient, ri.url)
		if err != nil {
			return "", err
		}
		return md.JWKSURI, nil
	}, jwks.Options{Now: g.clock.Now, Timeout: 2 * time.Second})
	v, err := token.NewIssuerSet(token.Options{Issuers: map[string]token.Issuer{ri.url: {Keys: src, AllowUntyped: !requireTyp}}, Leeway: time.Minute, Now: g.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	p, err := authz.NewPolicy(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e, err := authz.NewEngine(p, authz.Options{Verifier: v, Cache: verdict.LocalCache(1000, g.clock.Now), MaxTTL: time.Minute, NegativeTTL: time.Minute, Now: g.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	g.client, g.engine = checkClient(t, e), e
	return g, ri
}

// TestAmbiguousTokens: properly signed tokens whose header or claims JSON
// parsers read differently — a repeated member (first wins, last wins or
// refused, by parser), a name that differs only in case (encoding/json
// matches it), invalid UTF-8 (replaced, kept or refused). An authorizer
// must refuse them: it cannot know how the next reader will read them.
func TestAmbiguousTokens(t *testing.T) {
	g, ri := startRawGateway(t)
	now := time.Now()
	exp := now.Add(time.Hour).Unix()
	claims := func(extra string) string {
		return fmt.Sprintf(`{"iss":%q,"sub":"alice","aud":%q,"scope":"mcp:tools mcp:write","exp":%d,"iat":%d%s}`, ri.url, resourceURI, exp, now.Unix(), extra)
	}
	hdr := fmt.Sprintf(`{"alg":"RS256","typ":"at+jwt","kid":%q}`, rawKID)
	req := func(header, cl string) check.EnvoyRequest {
		return check.EnvoyRequest{URL: resourceURI, Headers: bearer(ri.sign(t, header, cl))}
	}
	inner := ri.sign(t, hdr, claims(""))
	cases := []hostileCase{
		{"control: the raw issuer's token is allowed", req(hdr, claims("")), 200, ""},
		{"header: alg twice", req(`{"alg":"RS256","alg":"RS256","kid":"raw-1"}`, claims("")), 401, dMalformed},
		{"header: alg none, then RS256", req(`{"alg":"none","kid":"raw-1","alg":"RS256"}`, claims("")), 401, dMalformed},
		{"header: alg RS256, then none, escaped", req(`{"alg":"RS256","kid":"raw-1","\u0061lg":"none"}`, claims("")), 401, dMalformed},
		{"header: kid twice", req(`{"alg":"RS256","kid":"other","kid":"raw-1"}`, claims("")), 401, dMalformed},
		{"header: Alg for alg", req(`{"Alg":"RS256","kid":"raw-1"}`, claims("")), 401, dMalformed},
		{"header: KID for kid", req(`{"alg":"RS256","KID":"raw-1"}`, claims("")), 401, dMalformed},
		{"header: invalid UTF-8", req("{\"alg\":\"RS256\",\"kid\":\"raw-1\",\"typ\":\"at+jwt\xff\"}", claims("")), 401, dMalformed},
		{"claims: iss twice", req(hdr, claims(`,"iss":"https://evil.example"`)), 401, dMalformed},
		{"claims: iss twice, the trusted one last", req(hdr, fmt.Sprintf(`{"iss":"https://evil.example","sub":"alice","aud":%q,"scope":"mcp:tools mcp:write","exp":%d,"iss":%q}`, resourceURI, exp, ri.url)), 401, dMalformed},
		{"claims: aud twice", req(hdr, claims(`,"aud":"https://other.example"`)), 401, dMalformed},
		{"claims: exp twice", req(hdr, claims(`,"exp":4102444800`)), 401, dMalformed},
		{"claims: sub twice", req(hdr, claims(`,"sub":"admin"`)), 401, dMalformed},
		{"claims: scope twice, the second escaped", req(hdr, claims(`,"\u0073cope":"mcp:admin"`)), 401, dMalformed},
		{"claims: ISS beside iss", req(hdr, claims(`,"ISS":"https://evil.example"`)), 401, dMalformed},
		{"claims: Exp beside exp", req(hdr, claims(`,"Exp":4102444800`)), 401, dMalformed},
		{"claims: Iss for iss", req(hdr, fmt.Sprintf(`{"Iss":%q,"sub":"alice","aud":%q,"scope":"mcp:tools mcp:write","exp":%d}`, ri.url, resourceURI, exp)), 401, dMalformed},
		{"claims: sub not UTF-8", req(hdr, strings.Replace(claims(""), `"alice"`, "\"alice\xff\xfe\"", 1)), 401, dMalformed},
		{"claims: sub with an unpaired surrogate", req(hdr, strings.Replace(claims(""), `"alice"`, `"alice\udc00"`, 1)), 401, dMalformed},
		{"claims: a member name not UTF-8", req(hdr, claims(",\"\xc0\xae\":1")), 401, dMalformed},
		{"nested JWT (cty JWT)", req(fmt.Sprintf(`{"alg":"RS256","kid":%q,"cty":"JWT"}`, rawKID), inner), 401, dMalformed},
	}
	runHostile(t, g, cases)
}

// allocated is how many bytes f allocates (all goroutines: an upper
// bound for f's own).
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestOversizedInputsBoundedMemory: a 1 MiB token, or a 1 MiB
// Authorization header of junk, is refused at the cost of about one copy
// of it, whatever tokens.max_bytes: decided on its length or grammar,
// never parsed. Measured on the server's own path (wire bytes in, answer
// out), not gRPC's buffers.
func TestOversizedInputsBoundedMemory(t *testing.T) {
	g := startGateway(t)
	s := check.NewServer(g.engine, nil)
	for i, tc := range []struct {
		name   string
		value  string
		status int
	}{
		{"1 MiB token", "Bearer " + strings.Repeat("a", 1<<20), 401},
		{"1 MiB token, another", "Bearer " + strings.Repeat("b", 1<<20), 401},
		{"1 MiB of spaces and commas", "Bearer " + strings.Repeat("a, ", 1<<20/3), 400},
		{"1 MiB of commas after a token", "Bearer x" + strings.Repeat(",", 1<<20), 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := envoyBytes(t, check.EnvoyRequest{URL: resourceURI, Headers: [][2]string{{"authorization", tc.value}, {"x-case", fmt.Sprint(i)}}})
			var resp *authv3.CheckResponse
			n := allocated(func() { resp = s.CheckWire(context.Background(), b) })
			if got := resp.GetDeniedResponse().GetStatus().GetCode(); int(got) != tc.status {
				t.Fatalf("status %d, want %d", got, tc.status)
			}
			t.Logf("%d bytes allocated for a %d-byte request", n, len(b))
			if n > 4<<20 {
				t.Errorf("one Check allocated %d bytes, want under 4 MiB", n)
			}
		})
	}
}

// manyHeaders builds n headers x-h-0… with values of size bytes.
func manyHeaders(n, size int) [][2]string {
	hs := make([][2]string, n)
	for i := range hs {
		hs[i] = [2]string{fmt.Sprintf("x-h-%d", i), strings.Repeat("v", size)}
	}
	return hs
}

// TestHeaderLimits: a request over MaxHeaders or MaxHeaderBytes is
// refused (400, before routing, so without a challenge), on the wire path
// and the proto path alike; one at the limits is decided as usual.
func TestHeaderLimits(t *testing.T) {
	g := startGateway(t)
	tok := mint(t, g.main, devissuer.Token{})
	s := check.NewServer(g.engine, nil)
	// EnvoyRequest adds 6: the pseudo-headers, x-forwarded-proto and
	// x-request-id; authorization is one more.
	const own = 7
	big := strings.Repeat("v", 600<<10)
	for _, raw := range []bool{false, true} {
		for _, tc := range []struct {
			name    string
			headers [][2]string
			allowed bool
		}{
			{"MaxHeaders headers", manyHeaders(wire.MaxHeaders-own, 8), true},
			{"one more than MaxHeaders", manyHeaders(wire.MaxHeaders-own+1, 8), false},
			{"a thousand headers", manyHeaders(1000, 1), false},
			{"1.2 MB of headers", [][2]string{{"x-a", big}, {"x-b", big}}, false},
			{"1.2 MB in one header, repeated", [][2]string{{"x-a", big}, {"x-a", big}}, false},
			{"1 MiB of headers", [][2]string{{"x-a", strings.Repeat("v", 1<<20-64)}}, true},
		} {
			t.Run(fmt.Sprintf("raw=%v/%s", raw, tc.name), func(t *testing.T) {
				er := check.EnvoyRequest{URL: resourceURI, Headers: append(bearer(tok), tc.headers...), RawHeaders: raw}
				a := g.check(t, er)
				req, err := er.Proto()
				if err != nil {
					t.Fatal(err)
				}
				viaProto, _ := s.Check(context.Background(), req)
				if tc.allowed {
					if !a.allowed || viaProto.GetStatus().GetCode() != 0 {
						t.Fatalf("wire: allowed=%v %d %s; proto: %v", a.allowed, a.status, a.body, viaProto.GetDeniedResponse())
					}
					return
				}
				if a.allowed || a.status != 400 || a.body != limitsBody || a.headers["www-authenticate"] != "" {
					t.Fatalf("wire: allowed=%v status=%d body %s headers %v; want the 400 of the limits", a.allowed, a.status, a.body, a.headers)
				}
				d := viaProto.GetDeniedResponse()
				if viaProto.GetStatus().GetCode() != 3 || d.GetStatus().GetCode() != 400 || d.GetBody() != limitsBody {
					t.Fatalf("proto: %v; want the 400 of the limits (INVALID_ARGUMENT)", viaProto)
				}
			})
		}
	}
}

// TestRevokedTokenCannotBeRespelled: a revocation is keyed by the token's
// SHA-256, so another spelling of the same token — the signature padded,
// in the standard alphabet, with other padding bits, all of which the
// signature library decodes to the same bytes — was a different token to
// the cache and a valid one to the verifier: the revocation was bypassed.
func TestRevokedTokenCannotBeRespelled(t *testing.T) {
	g := startGateway(t)
	tok := mintUntil(t, g.main, func(_, _, s string) bool { return urlOnly(s) })
	if _, err := g.engine.Revoke(context.Background(), authz.Revocation{Token: tok}); err != nil {
		t.Fatal(err)
	}
	h, pl, s := segments(tok)
	sig, _ := b64dec(s)
	last := strings.IndexByte(b64alphabet, s[len(s)-1])
	req := func(tok string) check.EnvoyRequest { return check.EnvoyRequest{URL: resourceURI, Headers: bearer(tok)} }
	runHostile(t, g, []hostileCase{
		{"the revoked token", req(tok), 401, "the access token has been revoked"},
		{"padded", req(tok + "=="), 401, dMalformed},
		{"standard alphabet", req(h + "." + pl + "." + base64.RawStdEncoding.EncodeToString(sig)), 401, dMalformed},
		{"standard alphabet, padded", req(h + "." + pl + "." + base64.StdEncoding.EncodeToString(sig)), 401, dMalformed},
		{"other padding bits", req(h + "." + pl + "." + s[:len(s)-1] + string(b64alphabet[last^1])), 401, dMalformed},
	})
}
