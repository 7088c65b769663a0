package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/extauthz/extauthz/internal/dpoptest"
	"github.com/extauthz/extauthz/internal/oidctest"
	"github.com/extauthz/extauthz/internal/redistest"
	"github.com/extauthz/extauthz/pkg/check"
)

// The DPoP resources, one per mode, on the same host as jwtResource and
// opaqueResource (the routes tell them apart by path).
const (
	dpopRequiredResource = "http://127.0.0.1:1/required"
	dpopNonceResource    = "http://127.0.0.1:1/nonce"
	dpopOffResource      = "http://127.0.0.1:1/off"
	dpopAlgs             = `algs="ES256 ES384 EdDSA RS256 PS256"`
)

// dpopAS is oidc-provider issuing DPoP-bound tokens (its default) for
// every DPoP resource, JWT except the opaque one, and a confidential
// client for the gateway's introspection.
func dpopAS(t *testing.T) (*oidctest.Server, oidctest.Client) {
	t.Helper()
	app := oidctest.Client{ID: "app", Secret: "app-secret-0123456789", Scope: "mcp:tools"}
	s := oidctest.Start(t, oidctest.Options{
		Clients: []oidctest.Client{app, {ID: "gateway-basic", Secret: "basic-secret-0123456789"}},
		Resources: []oidctest.Resource{
			{Resource: jwtResource, Scope: "mcp:tools"},
			{Resource: opaqueResource, Scope: "mcp:tools", Format: "opaque"},
			{Resource: dpopRequiredResource, Scope: "mcp:tools"},
			{Resource: dpopNonceResource, Scope: "mcp:tools"},
			{Resource: dpopOffResource, Scope: "mcp:tools"},
		},
	})
	t.Setenv("EXTAUTHZ_TEST_BASIC_SECRET", "basic-secret-0123456789")
	t.Setenv("EXTAUTHZ_TEST_DPOP_NONCE_KEY", "a-dpop-nonce-key-of-at-least-32-bytes!!")
	return s, app
}

// dpopGateway runs a gateway on the Redis at redisAddr with the resources
// mcp (allowed), opaque (allowed, introspected), required, nonce (allowed
// with server nonces) and off.
func dpopGateway(t *testing.T, as *oidctest.Server, redisAddr string) *gateway {
	t.Helper()
	server := fmt.Sprintf(`{issuer: %q, token_mode: auto, introspection: {client_id: gateway-basic, client_secret: {env: EXTAUTHZ_TEST_BASIC_SECRET}, cache_ttl: 1m, timeout: 5s}}`, as.Issuer)
	g := startGateway(t, fmt.Sprintf(`
cache: {redis_url: "redis://%s", redis: {timeout: 500ms}}
dpop: {nonce_key: {env: EXTAUTHZ_TEST_DPOP_NONCE_KEY}}
resources:
  - {name: mcp, resource: %q, required_scopes: ["mcp:tools"], authorization_servers: [%s], dpop: {mode: allowed}}
  - {name: opaque, resource: %q, required_scopes: ["mcp:tools"], authorization_servers: [%s], dpop: {mode: allowed}}
  - {name: required, resource: %q, required_scopes: ["mcp:tools"], authorization_servers: [%s], dpop: {mode: required}}
  - {name: nonce, resource: %q, required_scopes: ["mcp:tools"], authorization_servers: [%s], dpop: {mode: allowed, nonce: true}}
  - {name: "off", resource: %q, required_scopes: ["mcp:tools"], authorization_servers: [%s], dpop: {mode: "off"}}
`, redisAddr, jwtResource, server, opaqueResource, server, dpopRequiredResource, server, dpopNonceResource, server, dpopOffResource, server))
	g.waitReady(t)
	return g
}

// dpopAnswer is what a Check tells the client (denied) or the upstream
// (allowed).
type dpopAnswer struct {
	status  int
	headers map[string]string // the denial's, or the headers the upstream gets
	removed []string          // allowed: the headers taken off the request
}

func (a dpopAnswer) String() string {
	return fmt.Sprintf("%d %v removed %v", a.status, a.headers, a.removed)
}

// dpopCheck sends a POST to url with headers (from dpoptest.Headers, or
// a Bearer authorization) through the gRPC Check.
func (g *gateway) dpopCheck(t *testing.T, url string, raw bool, headers [][2]string) dpopAnswer {
	t.Helper()
	req, err := check.EnvoyRequest{Method: "POST", URL: url, Headers: headers, RawHeaders: raw,
		Body: []byte(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`)}.Proto()
	if err != nil {
		t.Fatal(err)
	}
	resp, err := g.client.Check(context.Background(), req)
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	a := dpopAnswer{headers: map[string]string{}}
	if resp.GetStatus().GetCode() == 0 {
		a.status = 200
		for _, h := range resp.GetOkResponse().GetHeaders() {
			a.headers[h.GetHeader().GetKey()] = h.GetHeader().GetValue()
		}
		a.removed = resp.GetOkResponse().GetHeadersToRemove()
		return a
	}
	dr := resp.GetDeniedResponse()
	a.status = int(dr.GetStatus().GetCode())
	for _, h := range dr.GetHeaders() {
		a.headers[strings.ToLower(h.GetHeader().GetKey())] = h.GetHeader().GetValue()
	}
	return a
}

func newDPoPKey(t *testing.T) (*ecdsa.PrivateKey, *dpoptest.Key) {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k, err := dpoptest.KeyFrom(priv)
	if err != nil {
		t.Fatal(err)
	}
	return priv, k
}

// challenges splits a WWW-Authenticate value into its Bearer and DPoP
// challenges (each from its scheme name to the next scheme's).
func challenges(www string) (bearer, dpop string) {
	i := strings.Index(www, "DPoP ")
	if i < 0 {
		return www, ""
	}
	return strings.TrimSuffix(strings.TrimSpace(www[:i]), ","), www[i:]
}

// TestDPoPThroughTheCheck: tokens bound by oidc-provider to a client's
// key, presented with proofs made by the test's DPoP client through the
// gRPC Check of two replicas on one Redis: a good proof is allowed once
// and refused when replayed to the other replica; every kind of bad proof
// is refused with the DPoP challenge RFC 9449 §7.1 describes; a bound
// token is refused as Bearer; required refuses Bearer; nonces are handed
// out and accepted by either replica.
func TestDPoPThroughTheCheck(t *testing.T) {
	as, app := dpopAS(t)
	rs := redistest.Start(t)
	a := dpopGateway(t, as, rs.Addr())
	b := dpopGateway(t, as, rs.Addr())
	ctx := context.Background()
	priv, key := newDPoPKey(t)
	_, other := newDPoPKey(t)

	tok, err := as.ClientCredentialsDPoP(ctx, app, jwtResource, "mcp:tools", priv)
	if err != nil {
		t.Fatal(err)
	}
	if jkt := jwtClaims(t, tok)["cnf"].(map[string]any)["jkt"]; jkt != key.JKT() {
		t.Fatalf("the token's cnf.jkt is %v, want the key's thumbprint %s", jkt, key.JKT())
	}
	proof := func(p dpoptest.Proof) string {
		if p.Method == "" {
			p.Method = "POST"
		}
		if p.URL == "" {
			p.URL = jwtResource
		}
		if p.AccessToken == "" {
			p.AccessToken = tok
		}
		return key.MustSign(t, p)
	}

	// wantDPoPError: 401, the Bearer challenge first without an error
	// (allowed mode, RFC 9449 §7.2), then the DPoP one with the error and
	// the algorithms.
	wantDPoPError := func(t *testing.T, got dpopAnswer, code, description string) {
		t.Helper()
		bearer, dpop := challenges(got.headers["www-authenticate"])
		if got.status != 401 || strings.Contains(bearer, "error=") || !strings.HasPrefix(bearer, "Bearer ") ||
			!strings.Contains(dpop, `error="`+code+`"`) || !strings.Contains(dpop, dpopAlgs) ||
			!strings.Contains(dpop, `resource_metadata="`) || !strings.Contains(dpop, description) {
			t.Errorf("got %s; want 401 with WWW-Authenticate: Bearer …, DPoP error=%q, %s, %q in it", got, code, dpopAlgs, description)
		}
	}

	good := proof(dpoptest.Proof{})
	t.Run("a good proof is allowed", func(t *testing.T) {
		got := a.dpopCheck(t, jwtResource, false, dpoptest.Headers(tok, good))
		if got.status != 200 || got.headers["x-extauthz-client-id"] != app.ID || !strings.Contains(strings.Join(got.removed, " "), "authorization") {
			t.Errorf("got %s; want 200 for client %s, the token removed", got, app.ID)
		}
	})
	t.Run("the same proof replayed to the other replica", func(t *testing.T) {
		wantDPoPError(t, b.dpopCheck(t, jwtResource, false, dpoptest.Headers(tok, good)), "invalid_dpop_proof", "")
		// And to the first, a fresh proof still passes on the second.
		wantDPoPError(t, a.dpopCheck(t, jwtResource, false, dpoptest.Headers(tok, good)), "invalid_dpop_proof", "")
		if got := b.dpopCheck(t, jwtResource, false, dpoptest.Headers(tok, proof(dpoptest.Proof{}))); got.status != 200 {
			t.Errorf("a fresh proof on the second replica: %s", got)
		}
	})

	bad := []struct {
		name  string
		proof string
	}{
		{"wrong htm", proof(dpoptest.Proof{Method: "GET"})},
		{"wrong htu", proof(dpoptest.Proof{URL: opaqueResource})},
		{"htu of another origin", proof(dpoptest.Proof{URL: "https://127.0.0.1:1/mcp"})},
		{"stale iat", proof(dpoptest.Proof{IssuedAt: time.Now().Add(-5 * time.Minute)})},
		{"iat in the future", proof(dpoptest.Proof{IssuedAt: time.Now().Add(5 * time.Minute)})},
		{"wrong ath", proof(dpoptest.Proof{ATH: dpoptest.ATH(tok + "x")})},
		{"no ath", proof(dpoptest.Proof{Omit: []string{"ath"}})},
		{"private members in the jwk", proof(dpoptest.Proof{PrivateJWK: true})},
		{"alg none", proof(dpoptest.Proof{Alg: "none"})},
		{"alg HS256", proof(dpoptest.Proof{Alg: "HS256"})},
		{"typ JWT", proof(dpoptest.Proof{Typ: "JWT"})},
		{"another key in the jwk than the signer's", proof(dpoptest.Proof{JWK: other.PublicJWK()})},
		{"not a JWS", "not-a-proof"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			wantDPoPError(t, a.dpopCheck(t, jwtResource, false, dpoptest.Headers(tok, tt.proof)), "invalid_dpop_proof", "")
		})
	}
	t.Run("no proof", func(t *testing.T) {
		wantDPoPError(t, a.dpopCheck(t, jwtResource, false, dpoptest.Headers(tok)), "invalid_dpop_proof", "")
	})

	t.Run("a proof by another key", func(t *testing.T) {
		// A thief with the token and a key of its own: the proof is good,
		// the binding is not (RFC 9449 §7.1: invalid_token).
		p := other.MustSign(t, dpoptest.Proof{Method: "POST", URL: jwtResource, AccessToken: tok})
		wantDPoPError(t, a.dpopCheck(t, jwtResource, false, dpoptest.Headers(tok, p)), "invalid_token", "key binding")
	})

	t.Run("two DPoP headers", func(t *testing.T) {
		for _, raw := range []bool{false, true} {
			got := a.dpopCheck(t, jwtResource, raw, dpoptest.Headers(tok, proof(dpoptest.Proof{}), proof(dpoptest.Proof{})))
			if got.status != 400 || !strings.Contains(got.headers["www-authenticate"], `error="invalid_request"`) {
				t.Errorf("raw header_map %t: got %s; want 400 invalid_request", raw, got)
			}
		}
	})

	t.Run("the bound token as Bearer", func(t *testing.T) {
		for _, g := range []*gateway{a, b} {
			got := g.dpopCheck(t, jwtResource, false, [][2]string{{"authorization", "Bearer " + tok}, {"dpop", proof(dpoptest.Proof{})}})
			bearer, dpop := challenges(got.headers["www-authenticate"])
			if got.status != 401 || !strings.Contains(bearer, `error="invalid_token"`) || dpop != "DPoP "+dpopAlgs {
				t.Errorf("got %s; want 401, Bearer error=\"invalid_token\" and DPoP %s", got, dpopAlgs)
			}
		}
	})

	t.Run("an unbound token with the DPoP scheme", func(t *testing.T) {
		plain, err := as.ClientCredentials(ctx, app, jwtResource, "mcp:tools")
		if err != nil {
			t.Fatal(err)
		}
		p := key.MustSign(t, dpoptest.Proof{Method: "POST", URL: jwtResource, AccessToken: plain})
		wantDPoPError(t, a.dpopCheck(t, jwtResource, false, dpoptest.Headers(plain, p)), "invalid_token", "")
		if got := a.dpopCheck(t, jwtResource, false, [][2]string{{"authorization", "Bearer " + plain}}); got.status != 200 {
			t.Errorf("the same token as Bearer: %s, want 200 (allowed mode)", got)
		}
	})

	t.Run("an opaque bound token, introspected", func(t *testing.T) {
		opaque, err := as.ClientCredentialsDPoP(ctx, app, opaqueResource, "mcp:tools", priv)
		if err != nil {
			t.Fatal(err)
		}
		p := key.MustSign(t, dpoptest.Proof{Method: "POST", URL: opaqueResource, AccessToken: opaque})
		if got := a.dpopCheck(t, opaqueResource, false, dpoptest.Headers(opaque, p)); got.status != 200 {
			t.Errorf("good proof: %s", got)
		}
		p = other.MustSign(t, dpoptest.Proof{Method: "POST", URL: opaqueResource, AccessToken: opaque})
		wantDPoPError(t, b.dpopCheck(t, opaqueResource, false, dpoptest.Headers(opaque, p)), "invalid_token", "key binding")
		if got := b.dpopCheck(t, opaqueResource, false, [][2]string{{"authorization", "Bearer " + opaque}}); got.status != 401 {
			t.Errorf("as Bearer: %s, want 401", got)
		}
	})

	t.Run("required", func(t *testing.T) {
		bound, err := as.ClientCredentialsDPoP(ctx, app, dpopRequiredResource, "mcp:tools", priv)
		if err != nil {
			t.Fatal(err)
		}
		plain, err := as.ClientCredentials(ctx, app, dpopRequiredResource, "mcp:tools")
		if err != nil {
			t.Fatal(err)
		}
		got := a.dpopCheck(t, dpopRequiredResource, false, [][2]string{{"authorization", "Bearer " + plain}})
		www := got.headers["www-authenticate"]
		if got.status != 401 || !strings.HasPrefix(www, "DPoP ") || strings.Contains(www, "Bearer") ||
			!strings.Contains(www, `error="invalid_token"`) || !strings.Contains(www, dpopAlgs) {
			t.Errorf("a Bearer token: %s; want 401 with a DPoP challenge only, invalid_token and %s", got, dpopAlgs)
		}
		got = a.dpopCheck(t, dpopRequiredResource, false, nil)
		if www := got.headers["www-authenticate"]; got.status != 401 || !strings.HasPrefix(www, "DPoP ") || strings.Contains(www, "Bearer") ||
			strings.Contains(www, "error=") || !strings.Contains(www, dpopAlgs) || !strings.Contains(www, `resource_metadata="`) {
			t.Errorf("no credential: %s; want 401 with DPoP %s, resource_metadata, no error", got, dpopAlgs)
		}
		p := key.MustSign(t, dpoptest.Proof{Method: "POST", URL: dpopRequiredResource, AccessToken: bound})
		if got := a.dpopCheck(t, dpopRequiredResource, false, dpoptest.Headers(bound, p)); got.status != 200 {
			t.Errorf("a bound token with a good proof: %s", got)
		}
		status, body := a.get(t, "http://"+a.app.lnHTTP.Addr().String()+"/.well-known/oauth-protected-resource/required")
		var doc struct {
			Algs     []string `json:"dpop_signing_alg_values_supported"`
			Required bool     `json:"dpop_bound_access_tokens_required"`
		}
		if status != 200 || json.Unmarshal(body, &doc) != nil || !doc.Required || len(doc.Algs) == 0 {
			t.Errorf("metadata: %d %s; want dpop_bound_access_tokens_required and the algorithms", status, body)
		}
	})

	t.Run("off", func(t *testing.T) {
		bound, err := as.ClientCredentialsDPoP(ctx, app, dpopOffResource, "mcp:tools", priv)
		if err != nil {
			t.Fatal(err)
		}
		p := key.MustSign(t, dpoptest.Proof{Method: "POST", URL: dpopOffResource, AccessToken: bound})
		for name, hs := range map[string][][2]string{
			"DPoP":   dpoptest.Headers(bound, p),
			"Bearer": {{"authorization", "Bearer " + bound}},
		} {
			got := a.dpopCheck(t, dpopOffResource, false, hs)
			if www := got.headers["www-authenticate"]; got.status != 401 || !strings.HasPrefix(www, "Bearer ") || strings.Contains(www, "DPoP") {
				t.Errorf("%s: %s; want 401 with a Bearer challenge only", name, got)
			}
		}
	})

	t.Run("nonce", func(t *testing.T) {
		bound, err := as.ClientCredentialsDPoP(ctx, app, dpopNonceResource, "mcp:tools", priv)
		if err != nil {
			t.Fatal(err)
		}
		sign := func(nonce string) string {
			return key.MustSign(t, dpoptest.Proof{Method: "POST", URL: dpopNonceResource, AccessToken: bound, Nonce: nonce})
		}
		got := a.dpopCheck(t, dpopNonceResource, false, dpoptest.Headers(bound, sign("")))
		wantDPoPError(t, got, "use_dpop_nonce", "")
		nonce := got.headers["dpop-nonce"]
		if nonce == "" || got.headers["cache-control"] != "no-store" {
			t.Fatalf("use_dpop_nonce without a DPoP-Nonce header or no-store: %s", got)
		}
		if got := a.dpopCheck(t, dpopNonceResource, false, dpoptest.Headers(bound, sign(nonce))); got.status != 200 {
			t.Errorf("retry with the nonce: %s", got)
		}
		// Stateless nonces under the shared key: the other replica takes it.
		if got := b.dpopCheck(t, dpopNonceResource, false, dpoptest.Headers(bound, sign(nonce))); got.status != 200 {
			t.Errorf("the nonce at the other replica: %s", got)
		}
		got = b.dpopCheck(t, dpopNonceResource, false, dpoptest.Headers(bound, sign("made-up")))
		wantDPoPError(t, got, "use_dpop_nonce", "")
		if got.headers["dpop-nonce"] != nonce {
			t.Errorf("a made-up nonce: DPoP-Nonce %q, want the current %q", got.headers["dpop-nonce"], nonce)
		}
	})
}
