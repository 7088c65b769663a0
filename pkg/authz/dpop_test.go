package authz

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/extauthz/extauthz/internal/testkit"
	"github.com/extauthz/extauthz/pkg/config"
	"github.com/extauthz/extauthz/pkg/devissuer"
	"github.com/extauthz/extauthz/pkg/dpop"
	"github.com/extauthz/extauthz/pkg/metadata"
	"github.com/extauthz/extauthz/pkg/verdict"
)

// proofKey is a DPoP client's ES256 key.
type proofKey struct {
	priv *ecdsa.PrivateKey
	jwk  map[string]string
	jkt  string
}

func newProofKey(t *testing.T) *proofKey {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	b64 := base64.RawURLEncoding.EncodeToString
	x, y := make([]byte, 32), make([]byte, 32)
	priv.X.FillBytes(x)
	priv.Y.FillBytes(y)
	k := &proofKey{priv: priv, jwk: map[string]string{"kty": "EC", "crv": "P-256", "x": b64(x), "y": b64(y)}}
	// RFC 7638 §3: the required members in lexicographic order.
	sum := sha256.Sum256([]byte(`{"crv":"P-256","kty":"EC","x":"` + k.jwk["x"] + `","y":"` + k.jwk["y"] + `"}`))
	k.jkt = b64(sum[:])
	return k
}

// proof signs a DPoP proof for method and uri, bound to tok (ath), with
// claims overriding the defaults.
func (k *proofKey) proof(t *testing.T, method, uri, tok string, claims map[string]any) string {
	t.Helper()
	b64 := base64.RawURLEncoding.EncodeToString
	ath := sha256.Sum256([]byte(tok))
	jti := make([]byte, 12)
	_, _ = rand.Read(jti)
	c := map[string]any{"jti": b64(jti), "htm": method, "htu": uri, "iat": time.Now().Unix(), "ath": b64(ath[:])}
	for n, v := range claims {
		if v == nil {
			delete(c, n)
		} else {
			c[n] = v
		}
	}
	h, _ := json.Marshal(map[string]any{"typ": "dpop+jwt", "alg": "ES256", "jwk": k.jwk})
	p, _ := json.Marshal(c)
	input := b64(h) + "." + b64(p)
	digest := sha256.Sum256([]byte(input))
	r, s, err := ecdsa.Sign(rand.Reader, k.priv, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return input + "." + b64(sig)
}

const dpopURI = "https://mcp.example.com/mcp"

// dpopFixture: one resource per mode on its own path, all trusting iss.
func dpopFixture(t *testing.T, nonces *dpop.Nonces) (*Engine, *devissuer.Issuer) {
	t.Helper()
	clock := testkit.NewClock()
	iss, _ := testkit.Issuer(t, "ES256", "", testResource, clock.Now)
	as := []config.AuthorizationServer{{Issuer: iss.Issuer(), JWKSURI: iss.JWKSURL()}}
	res := func(name, path, mode string, nonce bool) config.Resource {
		return config.Resource{Name: name, Resource: testResource + path, Hosts: []string{"mcp.example.com"}, PathPrefix: "/mcp" + path,
			Audiences: []string{testResource}, RequiredScopes: []string{"mcp:tools"}, AuthorizationServers: as,
			DPoP: config.DPoP{Mode: mode, Nonce: nonce}}
	}
	cfg := &config.Config{Resources: []config.Resource{
		{Name: "allowed", Resource: testResource, RequiredScopes: []string{"mcp:tools"}, AuthorizationServers: as, DPoP: config.DPoP{Mode: "allowed"}},
		res("required", "/required", "required", false),
		res("off", "/off", "off", false),
		res("nonce", "/nonce", "allowed", true),
	}}
	// The key is read by the caller (cmd); the engine gets the nonces.
	cfg.DPoP.NonceKey = config.Secret{Env: "UNUSED"}
	e, err := NewEngine(validPolicy(t, cfg), Options{Verifier: issuerVerifier(t, iss, clock), Cache: verdict.LocalCache(100, clock.Now),
		MaxTTL: time.Minute, NegativeTTL: time.Second, Now: clock.Now, DPoPNonces: nonces})
	if err != nil {
		t.Fatal(err)
	}
	return e, iss
}

func boundToken(t *testing.T, iss *devissuer.Issuer, jkt string) string {
	t.Helper()
	tok, err := iss.Mint(devissuer.Token{Subject: "alice", Scopes: []string{"mcp:tools"}, TTL: time.Hour,
		Extra: map[string]any{"cnf": map[string]any{"jkt": jkt}}})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func dpopRequest(path, scheme, tok string, proofs ...string) *Request {
	r := &Request{Method: http.MethodPost, Scheme: "https", Host: "mcp.example.com", Path: path,
		Headers: map[string]string{"authorization": scheme + " " + tok}}
	if len(proofs) > 0 {
		r.Headers["dpop"] = strings.Join(proofs, ",")
	}
	return r
}

func challenges(t *testing.T, d Decision) map[string]map[string]string {
	t.Helper()
	cs, err := metadata.ParseChallenges(d.Challenge)
	if err != nil {
		t.Fatalf("challenge %q: %v", d.Challenge, err)
	}
	out := map[string]map[string]string{}
	for _, c := range cs {
		out[c.Scheme] = c.Params
	}
	return out
}

// A bound token with a good proof passes; the attacker's variations of the
// proof (RFC 9449 §4.3), a replay, another key, the token as Bearer or a
// plain token with the DPoP scheme, do not.
func TestDPoPProofs(t *testing.T) {
	e, iss := dpopFixture(t, nil)
	key, other := newProofKey(t), newProofKey(t)
	tok := boundToken(t, iss, key.jkt)
	ctx := context.Background()

	good := key.proof(t, "POST", dpopURI, tok, nil)
	if d := e.Check(ctx, dpopRequest("/mcp", "DPoP", tok, good)); !d.Allow {
		t.Fatalf("good proof: %d %s %v", d.Status, d.Reason, d.Err)
	} else if h, _ := headerValue(d.Upstream, "x-extauthz-subject"); h != "alice" {
		t.Errorf("subject header %q", h)
	}
	if d := e.Check(ctx, dpopRequest("/mcp", "dpop", tok, key.proof(t, "POST", dpopURI, tok, nil))); !d.Allow {
		t.Errorf("scheme name in lower case: %d %s %v", d.Status, d.Reason, d.Err)
	}

	plain, err := iss.Mint(devissuer.Token{Subject: "bob", Scopes: []string{"mcp:tools"}, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		req    *Request
		status int
		reason Reason
		error  string // in the scheme's challenge
		scheme string
	}{
		{"replayed proof", dpopRequest("/mcp", "DPoP", tok, good), 401, ReasonDPoPProof, "invalid_dpop_proof", "DPoP"},
		{"no proof", dpopRequest("/mcp", "DPoP", tok), 401, ReasonDPoPProof, "invalid_dpop_proof", "DPoP"},
		{"two proofs", dpopRequest("/mcp", "DPoP", tok, key.proof(t, "POST", dpopURI, tok, nil), key.proof(t, "POST", dpopURI, tok, nil)), 400, ReasonInvalidRequest, "invalid_request", "DPoP"},
		{"wrong htm", dpopRequest("/mcp", "DPoP", tok, key.proof(t, "GET", dpopURI, tok, nil)), 401, ReasonDPoPProof, "invalid_dpop_proof", "DPoP"},
		{"wrong htu", dpopRequest("/mcp", "DPoP", tok, key.proof(t, "POST", "https://mcp.example.com/mcp/other", tok, nil)), 401, ReasonDPoPProof, "invalid_dpop_proof", "DPoP"},
		{"htu of another host", dpopRequest("/mcp", "DPoP", tok, key.proof(t, "POST", "https://evil.example.com/mcp", tok, nil)), 401, ReasonDPoPProof, "invalid_dpop_proof", "DPoP"},
		{"stale iat", dpopRequest("/mcp", "DPoP", tok, key.proof(t, "POST", dpopURI, tok, map[string]any{"iat": time.Now().Add(-10 * time.Minute).Unix()})), 401, ReasonDPoPProof, "invalid_dpop_proof", "DPoP"},
		{"wrong ath", dpopRequest("/mcp", "DPoP", tok, key.proof(t, "POST", dpopURI, "another token", nil)), 401, ReasonDPoPProof, "invalid_dpop_proof", "DPoP"},
		{"no ath", dpopRequest("/mcp", "DPoP", tok, key.proof(t, "POST", dpopURI, tok, map[string]any{"ath": nil})), 401, ReasonDPoPProof, "invalid_dpop_proof", "DPoP"},
		{"another key", dpopRequest("/mcp", "DPoP", tok, other.proof(t, "POST", dpopURI, tok, nil)), 401, ReasonDPoPBinding, "invalid_token", "DPoP"},
		{"bound token as Bearer", dpopRequest("/mcp", "Bearer", tok), 401, ReasonNotAccessToken, "invalid_token", "Bearer"},
		{"bound token as Bearer with a proof", dpopRequest("/mcp", "Bearer", tok, key.proof(t, "POST", dpopURI, tok, nil)), 401, ReasonNotAccessToken, "invalid_token", "Bearer"},
		{"plain token with the DPoP scheme", dpopRequest("/mcp", "DPoP", plain, key.proof(t, "POST", dpopURI, plain, nil)), 401, ReasonDPoPBinding, "invalid_token", "DPoP"},
		{"required: a Bearer token", dpopRequest("/mcp/required", "Bearer", plain), 401, ReasonDPoPRequired, "invalid_token", "DPoP"},
		{"off: the DPoP scheme is no credential", dpopRequest("/mcp/off", "DPoP", tok, key.proof(t, "POST", dpopURI+"/off", tok, nil)), 401, ReasonNoCredential, "", "Bearer"},
		{"off: the bound token as Bearer", dpopRequest("/mcp/off", "Bearer", tok), 401, ReasonNotAccessToken, "invalid_token", "Bearer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := e.Check(ctx, tt.req)
			if d.Allow || d.Status != tt.status || d.Reason != tt.reason {
				t.Fatalf("allow %v status %d reason %s (%v); want %d %s", d.Allow, d.Status, d.Reason, d.Err, tt.status, tt.reason)
			}
			cs := challenges(t, d)
			if cs[tt.scheme]["error"] != tt.error {
				t.Errorf("challenge %q: the %s challenge's error is not %q", d.Challenge, tt.scheme, tt.error)
			}
			if cs[tt.scheme]["resource_metadata"] == "" {
				t.Errorf("challenge %q: no resource_metadata in the %s challenge", d.Challenge, tt.scheme)
			}
		})
	}

	// The htu is the resource's origin, not one the request names: with the
	// route naming the resource, a Host and X-Forwarded-Proto of the
	// client's choosing must not make a proof made for another server pass.
	evil := dpopRequest("/mcp", "DPoP", tok, key.proof(t, "POST", "https://evil.example/mcp", tok, nil))
	evil.Host, evil.Headers["x-forwarded-proto"] = "evil.example", "https"
	evil.ContextExtensions = map[string]string{"resource": "allowed"}
	if d := e.Check(ctx, evil); d.Allow || d.Reason != ReasonDPoPProof {
		t.Errorf("a proof for the Host the client named: allow %v reason %s", d.Allow, d.Reason)
	}

	// The proof does not reach the upstream, like the token.
	d := e.Check(ctx, dpopRequest("/mcp", "DPoP", tok, key.proof(t, "POST", dpopURI, tok, nil)))
	if !d.Allow || !slices.Contains(d.Remove, "dpop") || !slices.Contains(d.Remove, "authorization") {
		t.Errorf("allowed DPoP request: allow %v, removes %v; want authorization and dpop removed", d.Allow, d.Remove)
	}

	// A plain token as Bearer still passes where DPoP is allowed or off.
	for _, path := range []string{"/mcp", "/mcp/off"} {
		if d := e.Check(ctx, dpopRequest(path, "Bearer", plain)); !d.Allow {
			t.Errorf("%s: plain Bearer token refused: %d %s", path, d.Status, d.Reason)
		}
	}
}

// The challenges of each mode (RFC 9449 §7.1, §7.2) and the metadata
// document's DPoP members (RFC 9728 §2).
func TestDPoPChallengesAndMetadata(t *testing.T) {
	e, _ := dpopFixture(t, nil)
	ctx := context.Background()
	noCred := func(path string) Decision {
		return e.Check(ctx, &Request{Method: "POST", Scheme: "https", Host: "mcp.example.com", Path: path, Headers: map[string]string{}})
	}
	algs := "ES256 ES384 EdDSA RS256 PS256"
	if got := noCred("/mcp").Challenge; !strings.HasPrefix(got, "Bearer ") || !strings.HasSuffix(got, `, DPoP algs="`+algs+`"`) {
		t.Errorf("allowed: %s", got)
	}
	if got := challenges(t, noCred("/mcp/required")); got["Bearer"] != nil || got["DPoP"]["algs"] != algs || got["DPoP"]["resource_metadata"] == "" {
		t.Errorf("required: %v", got)
	}
	if got := noCred("/mcp/off").Challenge; strings.Contains(got, "DPoP") {
		t.Errorf("off: %s", got)
	}
	doc := func(path string) map[string]any {
		d := e.Check(ctx, &Request{Method: "GET", Scheme: "https", Host: "mcp.example.com", Path: "/.well-known/oauth-protected-resource" + path, Headers: map[string]string{}})
		var m map[string]any
		if err := json.Unmarshal(d.Body, &m); err != nil {
			t.Fatalf("%s: %v %s", path, err, d.Body)
		}
		return m
	}
	if m := doc("/mcp/required"); m["dpop_bound_access_tokens_required"] != true || m["dpop_signing_alg_values_supported"] == nil {
		t.Errorf("required document: %v", m)
	}
	if m := doc("/mcp"); m["dpop_bound_access_tokens_required"] != nil || m["dpop_signing_alg_values_supported"] == nil {
		t.Errorf("allowed document: %v", m)
	}
	if m := doc("/mcp/off"); m["dpop_signing_alg_values_supported"] != nil {
		t.Errorf("off document: %v", m)
	}
}

// Nonces (RFC 9449 §9): a proof without the current one is answered 401
// use_dpop_nonce with the nonce to use; with it, the request passes.
func TestDPoPNonce(t *testing.T) {
	nonces, err := dpop.NewNonces([]byte(strings.Repeat("k", 32)), time.Minute, nil)
	if err != nil {
		t.Fatal(err)
	}
	e, iss := dpopFixture(t, nonces)
	key := newProofKey(t)
	tok := boundToken(t, iss, key.jkt)
	ctx := context.Background()
	d := e.Check(ctx, dpopRequest("/mcp/nonce", "DPoP", tok, key.proof(t, "POST", dpopURI+"/nonce", tok, nil)))
	if d.Status != 401 || d.Reason != ReasonDPoPNonce || challenges(t, d)["DPoP"]["error"] != "use_dpop_nonce" {
		t.Fatalf("without a nonce: %d %s %q", d.Status, d.Reason, d.Challenge)
	}
	nonce, _ := headerValue(d.Extra, "dpop-nonce")
	if nonce == "" {
		t.Fatalf("no DPoP-Nonce header in %v", d.Extra)
	}
	if d := e.Check(ctx, dpopRequest("/mcp/nonce", "DPoP", tok, key.proof(t, "POST", dpopURI+"/nonce", tok, map[string]any{"nonce": nonce}))); !d.Allow {
		t.Errorf("with the nonce: %d %s %v", d.Status, d.Reason, d.Err)
	}
	if d := e.Check(ctx, dpopRequest("/mcp/nonce", "DPoP", tok, key.proof(t, "POST", dpopURI+"/nonce", tok, map[string]any{"nonce": "made-up"}))); d.Allow || d.Reason != ReasonDPoPNonce {
		t.Errorf("a made-up nonce: allow %v %s", d.Allow, d.Reason)
	}
}

// A proof carrying the previous slot's nonce, still accepted, is allowed
// with the current nonce for the client's response (RFC 9449 §8.2); one
// carrying the current nonce gets none.
func TestDPoPNextNonce(t *testing.T) {
	slots := testkit.NewClock()
	nonces, err := dpop.NewNonces([]byte(strings.Repeat("k", 32)), time.Minute, slots.Now)
	if err != nil {
		t.Fatal(err)
	}
	e, iss := dpopFixture(t, nonces)
	key := newProofKey(t)
	tok := boundToken(t, iss, key.jkt)
	ctx := context.Background()
	issued := nonces.Current()
	d := e.Check(ctx, dpopRequest("/mcp/nonce", "DPoP", tok, key.proof(t, "POST", dpopURI+"/nonce", tok, map[string]any{"nonce": issued})))
	if !d.Allow || len(d.Respond) != 0 {
		t.Fatalf("with the current nonce: allow %v %s, respond %v (want allowed, no new nonce)", d.Allow, d.Reason, d.Respond)
	}
	slots.Advance(time.Minute)
	d = e.Check(ctx, dpopRequest("/mcp/nonce", "DPoP", tok, key.proof(t, "POST", dpopURI+"/nonce", tok, map[string]any{"nonce": issued})))
	if got, _ := headerValue(d.Respond, "dpop-nonce"); !d.Allow || got != nonces.Current() || got == issued {
		t.Fatalf("with the previous slot's nonce: allow %v %s, respond %v (want allowed with dpop-nonce %q)", d.Allow, d.Reason, d.Respond, nonces.Current())
	}
	if len(d.Extra) != 0 {
		t.Errorf("an allowed answer with denial headers %v", d.Extra)
	}
}

// failingReplay is a replay store that cannot answer (Redis down).
type failingReplay struct{}

func (failingReplay) Claim(context.Context, string, time.Duration) (bool, error) {
	return false, errors.New("redis down")
}

// A replay store that cannot answer is a 503, never an unchecked accept.
func TestDPoPReplayStoreDown(t *testing.T) {
	clock := testkit.NewClock()
	iss, _ := testkit.Issuer(t, "ES256", "", testResource, clock.Now)
	cfg := &config.Config{Resources: []config.Resource{{Name: "a", Resource: testResource, RequiredScopes: []string{"mcp:tools"},
		AuthorizationServers: []config.AuthorizationServer{{Issuer: iss.Issuer(), JWKSURI: iss.JWKSURL()}}, DPoP: config.DPoP{Mode: "allowed"}}}}
	e, err := NewEngine(validPolicy(t, cfg), Options{Verifier: issuerVerifier(t, iss, clock), Now: clock.Now, DPoPReplay: failingReplay{}})
	if err != nil {
		t.Fatal(err)
	}
	key := newProofKey(t)
	tok := boundToken(t, iss, key.jkt)
	d := e.Check(context.Background(), dpopRequest("/mcp", "DPoP", tok, key.proof(t, "POST", dpopURI, tok, nil)))
	if d.Allow || d.Status != 503 || d.Reason != ReasonDPoPUnavailable || d.RetryAfter == 0 {
		t.Errorf("allow %v status %d reason %s retry %d", d.Allow, d.Status, d.Reason, d.RetryAfter)
	}
}
