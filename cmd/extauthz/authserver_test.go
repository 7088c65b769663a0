package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/extauthz/extauthz/internal/oidctest"
	"github.com/extauthz/extauthz/internal/testkit"
	"github.com/extauthz/extauthz/pkg/check"
	"github.com/extauthz/extauthz/pkg/config"
	"github.com/extauthz/extauthz/pkg/devissuer"
)

// The resources the real authorization server issues tokens for. Loopback
// http canonical URIs are allowed for development, as OAuth 2.1 permits.
const (
	jwtResource    = "http://127.0.0.1:1/mcp"
	otherResource  = "http://127.0.0.1:1/other"
	opaqueResource = "http://127.0.0.1:1/opaque"
)

// realAS is an oidc-provider with a JWT resource, a second JWT resource,
// an opaque-token resource, an application client, and one gateway
// client per client authentication method.
type realAS struct {
	*oidctest.Server
	app     oidctest.Client
	keyFile string // PEM private key of the private_key_jwt gateway client
}

func startRealAS(t *testing.T, issuerPath string) *realAS {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := jwk.Import(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	_ = pub.Set(jwk.AlgorithmKey, "ES256")
	_ = pub.Set(jwk.KeyIDKey, "gateway-key-1")
	jwks, err := json.Marshal(map[string]any{"keys": []any{pub}})
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "gateway.pem")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	app := oidctest.Client{ID: "app", Secret: "app-secret-0123456789", Scope: "mcp:tools"}
	s := oidctest.Start(t, oidctest.Options{
		IssuerPath: issuerPath,
		Clients: []oidctest.Client{
			app,
			{ID: "gateway-basic", Secret: "basic-secret-0123456789", AuthMethod: "client_secret_basic"},
			{ID: "gateway-post", Secret: "post-secret-0123456789", AuthMethod: "client_secret_post"},
			{ID: "gateway-jwt", AuthMethod: "private_key_jwt", JWKS: jwks},
		},
		Resources: []oidctest.Resource{
			{Resource: jwtResource, Scope: "mcp:tools", Format: "jwt"},
			{Resource: otherResource, Scope: "mcp:tools", Format: "jwt"},
			{Resource: opaqueResource, Scope: "mcp:tools", Format: "opaque"},
		},
	})
	t.Setenv("EXTAUTHZ_TEST_BASIC_SECRET", "basic-secret-0123456789")
	t.Setenv("EXTAUTHZ_TEST_POST_SECRET", "post-secret-0123456789")
	return &realAS{Server: s, app: app, keyFile: keyFile}
}

// token obtains an access token for the application client.
func (as *realAS) token(t *testing.T, resource string) string {
	t.Helper()
	tok, err := as.ClientCredentials(context.Background(), as.app, resource, "mcp:tools")
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// introspection returns the YAML of an introspection block for one of the
// gateway clients.
func (as *realAS) introspection(method, cacheTTL string) string {
	switch method {
	case "client_secret_post":
		return fmt.Sprintf(`{client_id: gateway-post, auth_method: client_secret_post, client_secret: {env: EXTAUTHZ_TEST_POST_SECRET}, cache_ttl: %s, timeout: 5s}`, cacheTTL)
	case "private_key_jwt":
		return fmt.Sprintf(`{client_id: gateway-jwt, auth_method: private_key_jwt, private_key: {file: %q}, key_id: gateway-key-1, cache_ttl: %s, timeout: 5s}`, as.keyFile, cacheTTL)
	}
	return fmt.Sprintf(`{client_id: gateway-basic, client_secret: {env: EXTAUTHZ_TEST_BASIC_SECRET}, cache_ttl: %s, timeout: 5s}`, cacheTTL)
}

// gateway is one running gateway with a gRPC client, started from YAML.
type gateway struct {
	app    *app
	client authv3.AuthorizationClient
}

func startGateway(t *testing.T, yaml string) *gateway {
	t.Helper()
	t.Setenv("EXTAUTHZ_TEST_ADMIN_TOKEN", adminToken)
	cfg, err := config.Parse([]byte(`
listen: {grpc: "127.0.0.1:0", http: "127.0.0.1:0", admin: "127.0.0.1:0"}
admin: {token: {env: EXTAUTHZ_TEST_ADMIN_TOKEN}}
` + yaml))
	if err != nil {
		t.Fatal(err)
	}
	return runGateway(t, cfg, appOptions{})
}

// runGateway builds and runs a gateway from cfg, stopped at the end of the
// test, with a gRPC client to it.
func runGateway(t *testing.T, cfg *config.Config, o appOptions) *gateway {
	t.Helper()
	g := &gateway{}
	var err error
	if g.app, err = newApp(cfg, newLogger(io.Discard, "error", "json"), o); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- g.app.run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("gateway: %v", err)
		}
	})
	conn, err := grpc.NewClient(g.app.lnGRPC.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	g.client = authv3.NewAuthorizationClient(conn)
	return g
}

// decision is what the client and the upstream would see.
type decision struct {
	status    int
	challenge string
	upstream  map[string]string
}

func (g *gateway) check(t *testing.T, url, tok string) decision {
	t.Helper()
	req, err := check.EnvoyRequest{Method: "POST", URL: url, Headers: [][2]string{{"authorization", "Bearer " + tok}}}.Proto()
	if err != nil {
		t.Fatal(err)
	}
	resp, err := g.client.Check(context.Background(), req)
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	d := decision{upstream: map[string]string{}}
	if resp.GetStatus().GetCode() == 0 {
		d.status = 200
		for _, h := range resp.GetOkResponse().GetHeaders() {
			d.upstream[h.GetHeader().GetKey()] = h.GetHeader().GetValue()
		}
		return d
	}
	dr := resp.GetDeniedResponse()
	d.status = int(dr.GetStatus().GetCode())
	for _, h := range dr.GetHeaders() {
		if h.GetHeader().GetKey() == "www-authenticate" {
			d.challenge = h.GetHeader().GetValue()
		}
	}
	return d
}

func (g *gateway) waitReady(t *testing.T) {
	t.Helper()
	waitFor(t, "the gateway to be ready", func() bool { ok, _ := g.app.ready(); return ok })
}

func (g *gateway) get(t *testing.T, url string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body
}

func (g *gateway) purge(t *testing.T, tok string) {
	t.Helper()
	b, _ := json.Marshal(map[string]string{"token": tok})
	req, _ := http.NewRequest("POST", "http://"+g.app.lnAdmin.Addr().String()+"/cache/purge", bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("purge: %d", resp.StatusCode)
	}
}

// resourcesYAML lists the three resources, all trusting the real server
// configured by serverYAML (one issuer, listed identically everywhere).
func resourcesYAML(serverYAML string) string {
	return fmt.Sprintf(`
resources:
  - {name: mcp, resource: %q, required_scopes: ["mcp:tools"], authorization_servers: [%s]}
  - {name: other, resource: %q, required_scopes: ["mcp:tools"], authorization_servers: [%s]}
  - {name: opaque, resource: %q, required_scopes: ["mcp:tools"], authorization_servers: [%s]}
`, jwtResource, serverYAML, otherResource, serverYAML, opaqueResource, serverYAML)
}

// TestRealAuthorizationServer drives the gateway with tokens from
// oidc-provider: JWT access tokens verified locally with keys found by
// discovery, opaque ones introspected with each client authentication
// method, and a revocation at the server seen through the cache TTL or at
// once after a purge.
func TestRealAuthorizationServer(t *testing.T) {
	as := startRealAS(t, "")
	for _, method := range []string{"client_secret_basic", "client_secret_post", "private_key_jwt"} {
		t.Run(method, func(t *testing.T) {
			g := startGateway(t, resourcesYAML(fmt.Sprintf(`{issuer: %q, token_mode: auto, introspection: %s}`,
				as.Issuer, as.introspection(method, "1m"))))
			g.waitReady(t)

			// A JWT for the resource, verified with keys found through
			// discovery; the same token is refused by another resource.
			jwt := as.token(t, jwtResource)
			if strings.Count(jwt, ".") != 2 {
				t.Fatalf("expected a JWT access token, got %q", jwt)
			}
			if d := g.check(t, jwtResource, jwt); d.status != 200 || d.upstream["x-extauthz-client-id"] != "app" {
				t.Fatalf("JWT at its resource: %+v", d)
			}
			if d := g.check(t, otherResource, jwt); d.status != 401 || !strings.Contains(d.challenge, `error="invalid_token"`) {
				t.Errorf("JWT at another resource: %+v", d)
			}

			// An opaque token, introspected and accepted at its resource,
			// refused at another (its aud is the opaque resource).
			opaque := as.token(t, opaqueResource)
			if strings.Contains(opaque, ".") {
				t.Fatalf("expected an opaque access token, got %q", opaque)
			}
			d := g.check(t, opaqueResource, opaque)
			if d.status != 200 || d.upstream["x-extauthz-client-id"] != "app" || d.upstream["x-extauthz-scopes"] != "mcp:tools" {
				t.Fatalf("opaque token at its resource: %+v", d)
			}
			if d := g.check(t, jwtResource, opaque); d.status != 401 || !strings.Contains(d.challenge, `error="invalid_token"`) {
				t.Errorf("opaque token at another resource: %+v", d)
			}
			// A made-up opaque token is not active.
			if d := g.check(t, opaqueResource, "made-up-token-0123456789abcdef"); d.status != 401 ||
				!strings.Contains(d.challenge, `error_description="the access token is not active"`) {
				t.Errorf("made-up token: %+v", d)
			}

			// Revoked at the server: the cached answer holds until the
			// cache TTL (1m here), a purge ends it at once.
			if err := as.Revoke(context.Background(), as.app, opaque); err != nil {
				t.Fatal(err)
			}
			if d := g.check(t, opaqueResource, opaque); d.status != 200 {
				t.Errorf("revoked token within the cache TTL: %+v (the cached answer should hold)", d)
			}
			g.purge(t, opaque)
			if d := g.check(t, opaqueResource, opaque); d.status != 401 {
				t.Errorf("revoked token after the purge: %+v", d)
			}
		})
	}

	t.Run("revocation seen after the cache TTL", func(t *testing.T) {
		g := startGateway(t, resourcesYAML(fmt.Sprintf(`{issuer: %q, token_mode: introspection, introspection: %s}`,
			as.Issuer, as.introspection("client_secret_basic", "1s"))))
		g.waitReady(t)
		opaque := as.token(t, opaqueResource)
		if d := g.check(t, opaqueResource, opaque); d.status != 200 {
			t.Fatalf("before revocation: %+v", d)
		}
		if err := as.Revoke(context.Background(), as.app, opaque); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the revocation to be seen", func() bool { return g.check(t, opaqueResource, opaque).status == 401 })
		// In introspection mode a JWT is introspected too; oidc-provider
		// cannot introspect its JWTs (unsupported_token_type, a 400): the
		// gateway cannot tell, so 503, never an allow.
		if d := g.check(t, jwtResource, as.token(t, jwtResource)); d.status != 503 {
			t.Errorf("JWT in introspection mode at a server that cannot introspect it: %+v", d)
		}
	})
}

// TestDiscoveryOfAPathIssuer: the real server mounted under /tenant1 is
// found by RFC 8414 path insertion, and its JWTs verify.
func TestDiscoveryOfAPathIssuer(t *testing.T) {
	as := startRealAS(t, "/tenant1")
	if !strings.HasSuffix(as.Issuer, "/tenant1") {
		t.Fatalf("issuer %q has no path", as.Issuer)
	}
	g := startGateway(t, resourcesYAML(fmt.Sprintf(`{issuer: %q}`, as.Issuer)))
	g.waitReady(t)
	if d := g.check(t, jwtResource, as.token(t, jwtResource)); d.status != 200 {
		t.Errorf("JWT from a path issuer: %+v", d)
	}
}

// TestDiscoveryRefusesAMismatchingIssuer: a server whose metadata names
// another issuer is never trusted — the gateway stays not ready, /readyz
// says which issuer, and Checks get 503, never an allow.
func TestDiscoveryRefusesAMismatchingIssuer(t *testing.T) {
	real := startRealAS(t, "")
	var fake *httptest.Server //nolint:staticcheck // the handler below refers to fake
	fake = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Every placement answers, each with the real server's document:
		// its issuer is not this server's URL.
		md, err := real.Metadata(r.Context())
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"issuer": md.Issuer, "jwks_uri": md.JWKSURI})
	}))
	t.Cleanup(fake.Close)
	issuer := fake.URL + "/tenant1"
	g := startGateway(t, fmt.Sprintf(`
resources:
  - {name: mcp, resource: %q, authorization_servers: [{issuer: %q}]}
`, jwtResource, issuer))
	// Ask until discovery has been tried; it must never succeed.
	waitFor(t, "a readiness answer naming the issuer", func() bool {
		st, body := g.get(t, "http://"+g.app.lnHTTP.Addr().String()+"/readyz")
		return st == http.StatusServiceUnavailable && bytes.Contains(body, []byte(issuer))
	})
	tok := real.token(t, jwtResource)
	if d := g.check(t, jwtResource, tok); d.status == 200 {
		t.Fatalf("a token was allowed through a mismatching issuer's metadata: %+v", d)
	}
}

// TestStartsWhileTheAuthorizationServerIsDown: start-up does not fail,
// /readyz reports the issuer, Checks get 503, and once the server answers
// the gateway becomes ready by itself and tokens verify.
func TestStartsWhileTheAuthorizationServerIsDown(t *testing.T) {
	var up atomic.Bool
	var handler atomic.Pointer[http.Handler]
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !up.Load() {
			http.Error(w, "starting", http.StatusServiceUnavailable)
			return
		}
		(*handler.Load()).ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	iss, err := devissuer.New(srv.URL+"/as", "ES256", nil)
	if err != nil {
		t.Fatal(err)
	}
	iss.DefaultAudience = jwtResource
	h := iss.Handler()
	handler.Store(&h)

	g := startGateway(t, fmt.Sprintf(`
resources:
  - {name: mcp, resource: %q, authorization_servers: [{issuer: %q}]}
`, jwtResource, iss.Issuer()))
	readyz := "http://" + g.app.lnHTTP.Addr().String() + "/readyz"
	if st, body := g.get(t, readyz); st != http.StatusServiceUnavailable || !bytes.Contains(body, []byte(iss.Issuer())) {
		t.Errorf("readyz while the server is down: %d %s", st, body)
	}
	tok, err := iss.Mint(devissuer.Token{Subject: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	if d := g.check(t, jwtResource, tok); d.status != 503 {
		t.Errorf("Check while the server is down: %+v", d)
	}
	up.Store(true)
	waitFor(t, "readiness after the server came up", func() bool {
		st, _ := g.get(t, readyz)
		return st == http.StatusOK
	})
	if d := g.check(t, jwtResource, tok); d.status != 200 {
		t.Errorf("Check after the server came up: %+v", d)
	}
}

// TestSeveralAuthorizationServers: a resource trusting two servers lists
// both in its metadata, and each token is verified by the server its iss
// names — a JWT from the real server, one from a second issuer, and an
// opaque token introspected at the one server that introspects.
func TestSeveralAuthorizationServers(t *testing.T) {
	as := startRealAS(t, "")
	second, _ := testkit.Issuer(t, "RS256", "", opaqueResource, nil)

	g := startGateway(t, fmt.Sprintf(`
resources:
  - name: opaque
    resource: %q
    authorization_servers:
      - {issuer: %q, token_mode: auto, introspection: %s}
      - {issuer: %q}
`, opaqueResource, as.Issuer, as.introspection("client_secret_basic", "1m"), second.Issuer()))
	g.waitReady(t)

	st, body := g.get(t, "http://"+g.app.lnHTTP.Addr().String()+"/.well-known/oauth-protected-resource/opaque")
	var doc struct {
		AuthorizationServers []string `json:"authorization_servers"`
	}
	if st != 200 || json.Unmarshal(body, &doc) != nil || !slices.Equal(doc.AuthorizationServers, []string{as.Issuer, second.Issuer()}) {
		t.Errorf("metadata: %d %s", st, body)
	}
	fromSecond, err := second.Mint(devissuer.Token{Subject: "bob", Scopes: []string{"mcp:tools"}})
	if err != nil {
		t.Fatal(err)
	}
	if d := g.check(t, opaqueResource, fromSecond); d.status != 200 || d.upstream["x-extauthz-subject"] != "bob" {
		t.Errorf("JWT from the second server: %+v", d)
	}
	if d := g.check(t, opaqueResource, as.token(t, opaqueResource)); d.status != 200 {
		t.Errorf("opaque token from the real server: %+v", d)
	}
	// A JWT naming an issuer the resource does not trust is refused
	// without being sent to the introspecting server.
	stranger, err := devissuer.New("https://stranger.example.com", "ES256", nil)
	if err != nil {
		t.Fatal(err)
	}
	stranger.DefaultAudience = opaqueResource
	tok, err := stranger.Mint(devissuer.Token{Subject: "mallory"})
	if err != nil {
		t.Fatal(err)
	}
	if d := g.check(t, opaqueResource, tok); d.status != 401 || !strings.Contains(d.challenge, "issuer is not trusted") {
		t.Errorf("JWT from an untrusted issuer: %+v", d)
	}
}

// TestRequireTypFromTheFile: require_typ in the file reaches the verifier,
// per authorization server. An issuer left at the default has its JWTs
// accepted only when typed at+jwt; one with require_typ: false also when
// typed JWT; neither accepts a refresh token's rt+jwt or a cnf-bound
// token on a Bearer request.
func TestRequireTypFromTheFile(t *testing.T) {
	const resource = "https://mcp.example.com/mcp"
	typed, _ := testkit.Issuer(t, "ES256", "/typed", resource, nil)
	untyped, _ := testkit.Issuer(t, "RS256", "/untyped", resource, nil)
	g := startGateway(t, fmt.Sprintf(`
resources:
  - name: mcp
    resource: %q
    required_scopes: ["mcp:tools"]
    authorization_servers:
      - {issuer: %q, jwks_uri: %q}
      - {issuer: %q, jwks_uri: %q, require_typ: false}
`, resource, typed.Issuer(), typed.JWKSURL(), untyped.Issuer(), untyped.JWKSURL()))
	g.waitReady(t)
	sign := func(iss *devissuer.Issuer, header, extra map[string]any) string {
		t.Helper()
		claims := map[string]any{"iss": iss.Issuer(), "sub": "alice", "aud": resource, "scope": "mcp:tools", "exp": time.Now().Add(time.Hour).Unix()}
		for k, v := range extra {
			claims[k] = v
		}
		tok, err := iss.Sign(claims, header)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	jwt := map[string]any{"typ": "JWT"}
	for _, c := range []struct {
		name   string
		tok    string
		status int
	}{
		{"default: at+jwt", sign(typed, nil, nil), 200},
		{"default: JWT", sign(typed, jwt, nil), 401},
		{"default: rt+jwt", sign(typed, map[string]any{"typ": "rt+jwt"}, nil), 401},
		{"default: at+jwt with cnf", sign(typed, nil, map[string]any{"cnf": map[string]any{"jkt": "abc"}}), 401},
		{"require_typ false: at+jwt", sign(untyped, nil, nil), 200},
		{"require_typ false: JWT", sign(untyped, jwt, nil), 200},
		{"require_typ false: rt+jwt", sign(untyped, map[string]any{"typ": "rt+jwt"}, nil), 401},
		{"require_typ false: JWT with cnf", sign(untyped, jwt, map[string]any{"cnf": map[string]any{"x5t#S256": "abc"}}), 401},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := g.check(t, resource, c.tok)
			if d.status != c.status {
				t.Fatalf("status %d, want %d (%s)", d.status, c.status, d.challenge)
			}
			if c.status == 401 && !strings.Contains(d.challenge, `error="invalid_token"`) || c.status == 401 && !strings.Contains(d.challenge, "not a bearer access token") {
				t.Errorf("challenge %s", d.challenge)
			}
		})
	}
}

// TestKeptClaimsReachPolicies: keep_claims in the file makes a claim of
// the token readable by a policy, for a JWT verified locally and for an
// opaque token's introspection answer alike.
func TestKeptClaimsReachPolicies(t *testing.T) {
	as := startRealAS(t, "")
	g := startGateway(t, fmt.Sprintf(`
resources:
  - name: mcp
    resource: %q
    policy: 'token.claims["client_id"] == "app"'
    authorization_servers:
      - {issuer: %q, token_mode: auto, keep_claims: [client_id], introspection: %s}
  - name: opaque
    resource: %q
    policy: 'token.claims["client_id"] == "app"'
    authorization_servers:
      - {issuer: %q, token_mode: auto, keep_claims: [client_id], introspection: %s}
`, jwtResource, as.Issuer, as.introspection("client_secret_basic", "1m"),
		opaqueResource, as.Issuer, as.introspection("client_secret_basic", "1m")))
	g.waitReady(t)
	if d := g.check(t, jwtResource, as.token(t, jwtResource)); d.status != 200 {
		t.Errorf("JWT whose kept claim satisfies the policy: %+v", d)
	}
	if d := g.check(t, opaqueResource, as.token(t, opaqueResource)); d.status != 200 {
		t.Errorf("introspected token whose kept claim satisfies the policy: %+v", d)
	}
}

// TestEnvoyShapedChecksWithRealTokens: the end-to-end scenarios at the
// gRPC level — CheckRequests shaped as Envoy sends them, in both header
// encodings, with the MCP operation in headers or only in the body,
// carrying tokens from the real authorization server.
func TestEnvoyShapedChecksWithRealTokens(t *testing.T) {
	user := oidctest.Client{ID: "user-app", Secret: "user-secret-0123456789", Scope: "mcp:tools"}
	adminApp := oidctest.Client{ID: "admin-app", Secret: "admin-secret-0123456789", Scope: "mcp:tools mcp:admin"}
	as := oidctest.Start(t, oidctest.Options{
		Clients: []oidctest.Client{user, adminApp},
		Resources: []oidctest.Resource{
			{Resource: jwtResource, Scope: "mcp:tools mcp:admin", Format: "jwt"},
			{Resource: otherResource, Scope: "mcp:tools mcp:admin", Format: "jwt"},
		},
	})
	g := startGateway(t, fmt.Sprintf(`
resources:
  - name: mcp
    resource: %q
    required_scopes: ["mcp:tools"]
    rules: [{method: tools/call, name: "delete_*", scopes: ["mcp:admin"]}]
    authorization_servers: [{issuer: %q}]
`, jwtResource, as.Issuer))
	g.waitReady(t)
	get := func(c oidctest.Client, resource, scope string) string {
		tok, err := as.ClientCredentials(context.Background(), c, resource, scope)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	userTok := get(user, jwtResource, "mcp:tools")
	adminTok := get(adminApp, jwtResource, "mcp:tools mcp:admin")
	otherTok := get(adminApp, otherResource, "mcp:tools mcp:admin")
	prm := "http://127.0.0.1:1/.well-known/oauth-protected-resource/mcp"

	type want struct {
		status    int
		challenge string // substring of WWW-Authenticate
	}
	for _, raw := range []bool{false, true} {
		for _, inBody := range []bool{false, true} {
			t.Run(fmt.Sprintf("raw headers %v, operation in body %v", raw, inBody), func(t *testing.T) {
				send := func(tok, method, name string) (*authv3.CheckResponse, decision) {
					h := [][2]string{{"content-type", "application/json"}, {"accept", "application/json, text/event-stream"}}
					if tok != "" {
						h = append(h, [2]string{"authorization", "Bearer " + tok})
					}
					req := check.EnvoyRequest{Method: "POST", URL: jwtResource, RawHeaders: raw, Headers: h}
					params := ""
					if name != "" {
						params = fmt.Sprintf(`,"params":{"name":%q,"arguments":{}}`, name)
					}
					if inBody {
						req.Body = []byte(fmt.Sprintf(`{"jsonrpc":"2.0","id":1,"method":%q%s}`, method, params))
					} else {
						req.Headers = append(req.Headers, [2]string{"mcp-protocol-version", "2026-07-28"}, [2]string{"mcp-method", method})
						if name != "" {
							req.Headers = append(req.Headers, [2]string{"mcp-name", name})
						}
					}
					pr, err := req.Proto()
					if err != nil {
						t.Fatal(err)
					}
					resp, err := g.client.Check(context.Background(), pr)
					if err != nil {
						t.Fatal(err)
					}
					d := decision{upstream: map[string]string{}}
					if resp.GetStatus().GetCode() == 0 {
						d.status = 200
						for _, h := range resp.GetOkResponse().GetHeaders() {
							d.upstream[h.GetHeader().GetKey()] = h.GetHeader().GetValue()
						}
						return resp, d
					}
					d.status = int(resp.GetDeniedResponse().GetStatus().GetCode())
					for _, h := range resp.GetDeniedResponse().GetHeaders() {
						if h.GetHeader().GetKey() == "www-authenticate" {
							d.challenge = h.GetHeader().GetValue()
						}
					}
					return resp, d
				}
				for _, tc := range []struct {
					name, tok, method, tool string
					want                    want
				}{
					{"no token: discovery starts here", "", "initialize", "", want{401, `Bearer scope="mcp:tools", resource_metadata="` + prm + `"`}},
					{"initialize", userTok, "initialize", "", want{200, ""}},
					{"tools/list", userTok, "tools/list", "", want{200, ""}},
					{"an ordinary tool", userTok, "tools/call", "echo", want{200, ""}},
					{"a destructive tool without mcp:admin: step up", userTok, "tools/call", "delete_all", want{403, `error="insufficient_scope", scope="mcp:tools mcp:admin"`}},
					{"the destructive tool with mcp:admin", adminTok, "tools/call", "delete_all", want{200, ""}},
					{"a token for another resource", otherTok, "tools/list", "", want{401, `error="invalid_token"`}},
				} {
					resp, d := send(tc.tok, tc.method, tc.tool)
					if d.status != tc.want.status || !strings.Contains(d.challenge, tc.want.challenge) {
						t.Errorf("%s: %d %q, want %d %q", tc.name, d.status, d.challenge, tc.want.status, tc.want.challenge)
						continue
					}
					if d.status == 200 {
						removed := resp.GetOkResponse().GetHeadersToRemove()
						if d.upstream["x-extauthz-subject"] == "" || !slices.Contains(removed, "authorization") {
							t.Errorf("%s: upstream headers %v, removed %v: want identity set and authorization removed", tc.name, d.upstream, removed)
						}
					}
				}
			})
		}
	}
}

// TestBrowserLoginThroughTheCheck: a browser navigation without a session
// is sent to sign in; after signing in at the real authorization server
// the session cookie is a credential for the Check, the upstream gets the
// identity and never the session id; API clients still get the challenge.
func TestBrowserLoginThroughTheCheck(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	public := "http://" + ln.Addr().String()
	resource := public + "/mcp"
	webClient := oidctest.Client{
		ID: "extauthz-web", Secret: "web-secret-0123456789", AuthMethod: "client_secret_basic",
		GrantTypes: []string{"authorization_code", "refresh_token"}, RedirectURIs: []string{public + "/oauth/callback"},
	}
	as := oidctest.Start(t, oidctest.Options{
		Clients:   []oidctest.Client{webClient},
		Resources: []oidctest.Resource{{Resource: resource, Scope: "mcp:tools", Format: "jwt"}},
	})
	t.Setenv("EXTAUTHZ_TEST_SESSION_KEY", strings.Repeat("ab", 32))
	t.Setenv("EXTAUTHZ_TEST_WEB_SECRET", webClient.Secret)
	cfg, err := config.Parse([]byte(fmt.Sprintf(`
listen: {grpc: "127.0.0.1:0", admin: "off"}
public_url: %q
login: {session_key: {env: EXTAUTHZ_TEST_SESSION_KEY}}
resources:
  - name: mcp
    resource: %q
    required_scopes: ["mcp:tools"]
    authorization_servers: [{issuer: %q}]
    login:
      enabled: true
      client_id: extauthz-web
      client_secret: {env: EXTAUTHZ_TEST_WEB_SECRET}
      scopes: [openid, "mcp:tools"]
`, public, resource, as.Issuer)))
	if err != nil {
		t.Fatal(err)
	}
	g := runGateway(t, cfg, appOptions{lnHTTP: ln})
	g.waitReady(t)

	decide := func(method string, headers [][2]string) *authv3.CheckResponse {
		t.Helper()
		req, err := check.EnvoyRequest{Method: method, URL: resource + "/app", Headers: headers}.Proto()
		if err != nil {
			t.Fatal(err)
		}
		resp, err := g.client.Check(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	header := func(hs []*corev3.HeaderValueOption, name string) string {
		for _, h := range hs {
			if h.GetHeader().GetKey() == name {
				return h.GetHeader().GetValue()
			}
		}
		return ""
	}

	// 1. The browser navigates without a session: sent to sign in.
	resp := decide("GET", [][2]string{{"accept", "text/html,application/xhtml+xml"}})
	loginURL := header(resp.GetDeniedResponse().GetHeaders(), "location")
	if resp.GetDeniedResponse().GetStatus().GetCode() != 302 || !strings.HasPrefix(loginURL, public+"/oauth/login?rd=") {
		t.Fatalf("navigation without a session: %v", resp)
	}
	// An API client gets the challenge instead.
	if resp := decide("POST", [][2]string{{"accept", "application/json, text/event-stream"}}); resp.GetDeniedResponse().GetStatus().GetCode() != 401 {
		t.Fatalf("API client without a session: %v", resp)
	}

	// 2. Sign in: the gateway's login, the server's pages, the callback.
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	r, err := browser.Get(loginURL)
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	authorize, err := url.Parse(r.Header.Get("Location"))
	if err != nil || r.StatusCode != http.StatusFound {
		t.Fatalf("login: %d %v", r.StatusCode, err)
	}
	callback := oidctest.SignIn(t, browser, authorize, "alice", "/oauth/callback", false)
	r, err = browser.Get(callback.String())
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != http.StatusFound || r.Header.Get("Location") != "/mcp/app" {
		t.Fatalf("callback: %d, Location %q", r.StatusCode, r.Header.Get("Location"))
	}
	var sessionCookie *http.Cookie
	for _, c := range r.Cookies() {
		if c.Name == "extauthz-session" {
			sessionCookie = c
		}
	}
	if sessionCookie == nil || !sessionCookie.HttpOnly || sessionCookie.SameSite != http.SameSiteLaxMode || strings.Contains(sessionCookie.Value, ".") {
		t.Fatalf("session cookie %+v", sessionCookie)
	}

	// 3. The cookie is a credential for the Check; the upstream gets the
	// identity, and the Cookie header without the session id.
	resp = decide("GET", [][2]string{{"accept", "text/html"}, {"cookie", "theme=dark; extauthz-session=" + sessionCookie.Value}})
	ok := resp.GetOkResponse()
	if resp.GetStatus().GetCode() != 0 || header(ok.GetHeaders(), "x-extauthz-subject") != "alice" {
		t.Fatalf("Check with the session cookie: %v", resp)
	}
	if c := header(ok.GetHeaders(), "cookie"); c != "theme=dark" {
		t.Errorf("upstream cookie %q, want the session id stripped", c)
	}
	// A forged session id is no credential.
	if resp := decide("POST", [][2]string{{"cookie", "extauthz-session=" + strings.Repeat("A", 43)}}); resp.GetDeniedResponse().GetStatus().GetCode() != 401 {
		t.Errorf("forged session: %v", resp)
	}

	// 4. Logout, a POST from the gateway's own origin, ends the session.
	logout, err := http.NewRequest(http.MethodPost, public+"/oauth/logout", nil)
	if err != nil {
		t.Fatal(err)
	}
	logout.Header.Set("Origin", public)
	r, err = browser.Do(logout)
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != http.StatusFound {
		t.Errorf("logout: HTTP %d, want 302", r.StatusCode)
	}
	if resp := decide("POST", [][2]string{{"cookie", "extauthz-session=" + sessionCookie.Value}}); resp.GetDeniedResponse().GetStatus().GetCode() != 401 {
		t.Errorf("after logout: %v", resp)
	}

	// 5. The flow's events are counted.
	rec := httptest.NewRecorder()
	g.app.tel.MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for _, want := range []string{`extauthz_login_events_total{event="login"} 1`, `extauthz_login_events_total{event="logout"} 1`} {
		if !strings.Contains(rec.Body.String(), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}
