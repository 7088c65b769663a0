package check_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"

	"github.com/extauthz/extauthz/internal/testkit"
	"github.com/extauthz/extauthz/pkg/authz"
	"github.com/extauthz/extauthz/pkg/check"
	"github.com/extauthz/extauthz/pkg/config"
	"github.com/extauthz/extauthz/pkg/devissuer"
	"github.com/extauthz/extauthz/pkg/jwks"
	"github.com/extauthz/extauthz/pkg/metadata"
	"github.com/extauthz/extauthz/pkg/token"
	"github.com/extauthz/extauthz/pkg/verdict"
)

const (
	resourceURI = "https://mcp.example.com/mcp"
	prmURL      = "https://mcp.example.com/.well-known/oauth-protected-resource/mcp"
	// dpopAllowed is the challenge that follows Bearer's at a resource
	// with the default dpop mode, allowed (RFC 9449 §7.1): the proof
	// algorithms accepted.
	dpopAllowed = `, DPoP algs="ES256 ES384 EdDSA RS256 PS256"`
)

// issuerServer starts a devissuer on a loopback httptest server.
func issuerServer(t testing.TB, alg, path string) (*devissuer.Issuer, *httptest.Server) {
	t.Helper()
	return testkit.Issuer(t, alg, path, resourceURI, nil)
}

// gateway is the Check service under test, reached over real gRPC.
type gateway struct {
	client authv3.AuthorizationClient
	engine *authz.Engine // what client reaches, for in-process measurements
	clock  *testkit.Clock
	main   *devissuer.Issuer // trusted for "mcp"
	down   *devissuer.Issuer // trusted for "down"; its JWKS endpoint fails
	other  *devissuer.Issuer // trusted by nobody
	srcs   map[string]*jwks.Source
}

func startGateway(t *testing.T) *gateway {
	t.Helper()
	g := &gateway{clock: testkit.NewClock(), srcs: map[string]*jwks.Source{}}
	g.main, _ = issuerServer(t, "RS256", "/tenant")
	g.down, _ = issuerServer(t, "ES256", "")
	g.down.SetJWKSStatus(http.StatusServiceUnavailable)
	g.other, _ = issuerServer(t, "RS256", "")

	cfg := &config.Config{
		Resources: []config.Resource{
			{
				Name:                 "mcp",
				Resource:             resourceURI,
				Hosts:                []string{"mcp.example.com"},
				AuthorizationServers: []config.AuthorizationServer{{Issuer: g.main.Issuer()}},
				ScopesSupported:      []string{"mcp:tools", "mcp:write"},
				RequiredScopes:       []string{"mcp:tools", "mcp:write"},
			},
			{
				Name:                 "down",
				Resource:             "https://down.example.com/mcp",
				AuthorizationServers: []config.AuthorizationServer{{Issuer: g.down.Issuer()}},
				RequiredScopes:       []string{"mcp:tools"},
			},
		},
	}
	cfg.ApplyDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	issuers := map[string]token.Issuer{}
	for _, iss := range []*devissuer.Issuer{g.main, g.down} {
		// Discovery, as in production: RFC 8414 with path insertion.
		issuer := iss.Issuer()
		src := jwks.New(func(ctx context.Context) (string, error) {
			md, err := metadata.Discover(ctx, http.DefaultClient, issuer)
			if err != nil {
				return "", err
			}
			return md.JWKSURI, nil
		}, jwks.Options{Now: g.clock.Now, UnknownKIDInterval: 10 * time.Second, Timeout: 2 * time.Second})
		issuers[issuer] = token.Issuer{Keys: src}
		g.srcs[issuer] = src
	}
	v, err := token.NewIssuerSet(token.Options{Issuers: issuers, Leeway: time.Minute, MaxBytes: 16 << 10, Now: g.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	p, err := authz.NewPolicy(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e, err := authz.NewEngine(p, authz.Options{
		Verifier:    v,
		Cache:       verdict.LocalCache(1000, g.clock.Now),
		MaxTTL:      5 * time.Minute,
		NegativeTTL: 10 * time.Second,
		Now:         g.clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	g.client, g.engine = checkClient(t, e), e
	return g
}

// checkClient serves the engine's Check over loopback gRPC, registered as
// the gateway registers it (wire decoding, hand-encoded answers), and
// returns a client of it.
func checkClient(t *testing.T, e *authz.Engine) authv3.AuthorizationClient {
	t.Helper()
	conn := serve(t, func(g *grpc.Server) { check.Register(g, check.NewServer(e, nil)) }, check.ServerCodec())
	return authv3.NewAuthorizationClient(conn)
}

// answer is what a client behind Envoy observes.
type answer struct {
	allowed  bool
	status   int
	headers  map[string]string // response headers (denied) or upstream headers set (allowed)
	removed  []string
	body     string
	metadata map[string]any
}

func (g *gateway) check(t *testing.T, er check.EnvoyRequest) answer {
	t.Helper()
	req, err := er.Proto()
	if err != nil {
		t.Fatal(err)
	}
	resp, err := g.client.Check(context.Background(), req)
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	a := answer{headers: map[string]string{}}
	if resp.GetStatus().GetCode() == 0 {
		a.allowed, a.status = true, 200
		for _, h := range resp.GetOkResponse().GetHeaders() {
			a.headers[h.GetHeader().GetKey()] = h.GetHeader().GetValue()
		}
		a.removed = resp.GetOkResponse().GetHeadersToRemove()
		if md := resp.GetDynamicMetadata(); md != nil {
			a.metadata = md.AsMap()
		}
		return a
	}
	d := resp.GetDeniedResponse()
	a.status = int(d.GetStatus().GetCode())
	for _, h := range d.GetHeaders() {
		a.headers[h.GetHeader().GetKey()] = h.GetHeader().GetValue()
	}
	a.body = d.GetBody()
	return a
}

func bearer(tok string) [][2]string { return [][2]string{{"authorization", "Bearer " + tok}} }

func mint(t *testing.T, iss *devissuer.Issuer, tk devissuer.Token) string {
	t.Helper()
	if tk.Scopes == nil {
		tk.Scopes = []string{"mcp:tools", "mcp:write"}
	}
	if tk.Subject == "" {
		tk.Subject, tk.ClientID = "alice", "client-1"
	}
	s, err := iss.Mint(tk)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func sign(t *testing.T, iss *devissuer.Issuer, claims, header map[string]any) string {
	t.Helper()
	s, err := iss.Sign(claims, header)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func validClaims(iss *devissuer.Issuer) map[string]any {
	now := time.Now()
	return map[string]any{
		"iss": iss.Issuer(), "sub": "alice", "aud": resourceURI, "scope": "mcp:tools mcp:write",
		"exp": now.Add(time.Hour).Unix(), "iat": now.Unix(),
	}
}

// unsigned builds a token with the given header and claims and a junk
// signature (for alg none and HS256, which must be refused before any key
// is consulted).
func unsigned(header, claims map[string]any, sig string) string {
	enc := func(v any) string {
		b, _ := json.Marshal(v)
		return b64(b)
	}
	return enc(header) + "." + enc(claims) + "." + sig
}

func TestDenialTable(t *testing.T) {
	g := startGateway(t)
	now := time.Now()
	valid := mint(t, g.main, devissuer.Token{})
	noExp := validClaims(g.main)
	delete(noExp, "exp")
	// Tampered inside the signature: its last character stays, so the
	// signature is still canonical base64url (otherwise the token is
	// malformed, not badly signed).
	tampered := valid[:len(valid)-7] + strings.Map(func(r rune) rune {
		if r == 'A' {
			return 'B'
		}
		return 'A'
	}, valid[len(valid)-7:len(valid)-1]) + valid[len(valid)-1:]
	attacker, attackerSrv := issuerServer(t, "RS256", "")
	_ = attackerSrv

	const url = "https://mcp.example.com/mcp"
	noError := `Bearer scope="mcp:tools mcp:write", resource_metadata="` + prmURL + `"` + dpopAllowed
	invalid := func(desc string) string {
		return `Bearer error="invalid_token", scope="mcp:tools mcp:write", resource_metadata="` + prmURL + `", error_description="` + desc + `"` + dpopAllowed
	}
	badRequest := func(desc string) string {
		return `Bearer error="invalid_request", scope="mcp:tools mcp:write", resource_metadata="` + prmURL + `", error_description="` + desc + `"` + dpopAllowed
	}

	cases := []struct {
		name      string
		req       check.EnvoyRequest
		status    int
		challenge string // exact WWW-Authenticate; "-" for none
		error     string // the JSON body's error
	}{
		{"no credential", check.EnvoyRequest{URL: url}, 401, noError, "unauthorized"},
		{"another scheme", check.EnvoyRequest{URL: url, Headers: [][2]string{{"authorization", "Basic YWxpY2U6c2VjcmV0"}}}, 401, noError, "unauthorized"},
		{"malformed token", check.EnvoyRequest{URL: url, Headers: bearer("not-a-jwt")}, 401, invalid("the access token is malformed"), "invalid_token"},
		{"bad signature", check.EnvoyRequest{URL: url, Headers: bearer(tampered)}, 401, invalid("the access token's signature is invalid"), "invalid_token"},
		{"expired", check.EnvoyRequest{URL: url, Headers: bearer(mint(t, g.main, devissuer.Token{TTL: -2 * time.Minute, IssuedAt: now.Add(-time.Hour)}))}, 401, invalid("the access token expired"), "invalid_token"},
		{"not yet valid", check.EnvoyRequest{URL: url, Headers: bearer(mint(t, g.main, devissuer.Token{TTL: 2 * time.Hour, NotBefore: now.Add(10 * time.Minute)}))}, 401, invalid("the access token is not yet valid"), "invalid_token"},
		{"no expiry", check.EnvoyRequest{URL: url, Headers: bearer(sign(t, g.main, noExp, nil))}, 401, invalid("the access token has no expiry"), "invalid_token"},
		{"untrusted issuer", check.EnvoyRequest{URL: url, Headers: bearer(mint(t, g.other, devissuer.Token{}))}, 401, invalid("the access token's issuer is not trusted"), "invalid_token"},
		{"issuer of another resource", check.EnvoyRequest{URL: url, Headers: bearer(mint(t, g.down, devissuer.Token{}))}, 401, invalid("the access token's issuer is not trusted"), "invalid_token"},
		{"wrong audience", check.EnvoyRequest{URL: url, Headers: bearer(mint(t, g.main, devissuer.Token{Audience: []string{"https://mcp.example.com/other"}}))}, 401, invalid("the access token is not meant for this resource"), "invalid_token"},
		{"audience with trailing slash", check.EnvoyRequest{URL: url, Headers: bearer(mint(t, g.main, devissuer.Token{Audience: []string{resourceURI + "/"}}))}, 401, invalid("the access token is not meant for this resource"), "invalid_token"},
		{"no audience", check.EnvoyRequest{URL: url, Headers: bearer(mint(t, g.main, devissuer.Token{Audience: []string{}}))}, 401, invalid("the access token is not meant for this resource"), "invalid_token"},
		{"alg none", check.EnvoyRequest{URL: url, Headers: bearer(unsigned(map[string]any{"alg": "none", "typ": "JWT"}, validClaims(g.main), "e30"))}, 401, invalid("the access token's algorithm is not accepted"), "invalid_token"},
		{"alg HS256", check.EnvoyRequest{URL: url, Headers: bearer(unsigned(map[string]any{"alg": "HS256", "typ": "JWT"}, validClaims(g.main), "c2lnbmF0dXJl"))}, 401, invalid("the access token's algorithm is not accepted"), "invalid_token"},
		{"unknown crit header", check.EnvoyRequest{URL: url, Headers: bearer(sign(t, g.main, validClaims(g.main), map[string]any{"crit": []string{"exp-ext"}, "exp-ext": 1}))}, 401, invalid("the access token has unsupported critical headers"), "invalid_token"},
		{"key from jku is ignored", check.EnvoyRequest{URL: url, Headers: bearer(sign(t, attacker, validClaims(g.main), map[string]any{"jku": attacker.JWKSURL()}))}, 401, invalid("the access token's signing key is unknown"), "invalid_token"},
		{"oversized token", check.EnvoyRequest{URL: url, Headers: bearer(strings.Repeat("a", 17<<10))}, 401, invalid("the access token is malformed"), "invalid_token"},
		{"missing scope", check.EnvoyRequest{URL: url, Headers: bearer(mint(t, g.main, devissuer.Token{Scopes: []string{"mcp:tools"}}))}, 403,
			`Bearer error="insufficient_scope", scope="mcp:tools mcp:write", resource_metadata="` + prmURL + `", error_description="the access token lacks a required scope"` + dpopAllowed, "insufficient_scope"},
		{"token in query", check.EnvoyRequest{URL: url + "?access_token=" + valid}, 400, badRequest("access tokens are accepted only in the Authorization header, not in the query string"), "invalid_request"},
		{"token in query and header", check.EnvoyRequest{URL: url + "?x=1&access_token=abc", Headers: bearer(valid)}, 400, badRequest("access tokens are accepted only in the Authorization header, not in the query string"), "invalid_request"},
		{"two authorization headers (map)", check.EnvoyRequest{URL: url, Headers: append(bearer(valid), bearer(valid)...)}, 400, badRequest("the Authorization header must carry exactly one Bearer token"), "invalid_request"},
		{"two authorization headers (header_map)", check.EnvoyRequest{URL: url, RawHeaders: true, Headers: append(bearer(valid), bearer(valid)...)}, 400, badRequest("the Authorization header must carry exactly one Bearer token"), "invalid_request"},
		{"bearer without token", check.EnvoyRequest{URL: url, Headers: [][2]string{{"authorization", "Bearer"}}}, 400, badRequest("the Authorization header must carry exactly one Bearer token"), "invalid_request"},
		{"encoded path that decodes into the resource", check.EnvoyRequest{URL: "https://mcp.example.com/public%2F..%2Fmcp"}, 400, "-", "invalid_request"},
		{"cannot verify: JWKS unreachable", check.EnvoyRequest{URL: "https://down.example.com/mcp", Headers: bearer(mint(t, g.down, devissuer.Token{Audience: []string{"https://down.example.com/mcp"}}))}, 503, "-", "temporarily_unavailable"},
		{"no resource matches", check.EnvoyRequest{URL: "https://mcp.example.com/admin", Headers: bearer(valid)}, 403, "-", "forbidden"},
		{"route names an unknown resource", check.EnvoyRequest{URL: url, Headers: bearer(valid), ContextExtensions: map[string]string{"resource": "nope"}}, 403, "-", "forbidden"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := g.check(t, c.req)
			if a.allowed || a.status != c.status {
				t.Fatalf("allowed=%v status=%d, want denied with %d (body %s)", a.allowed, a.status, c.status, a.body)
			}
			got, has := a.headers["www-authenticate"]
			if c.challenge == "-" {
				if has {
					t.Errorf("WWW-Authenticate = %q, want none", got)
				}
			} else if got != c.challenge {
				t.Errorf("WWW-Authenticate\n got %s\nwant %s", got, c.challenge)
			}
			if a.headers["cache-control"] != "no-store" {
				t.Errorf("Cache-Control = %q, want no-store", a.headers["cache-control"])
			}
			var body struct {
				Error       string `json:"error"`
				Description string `json:"error_description"`
			}
			if err := json.Unmarshal([]byte(a.body), &body); err != nil || body.Error != c.error || body.Description == "" {
				t.Errorf("body %q, want JSON error %q with a description", a.body, c.error)
			}
			if c.status == 503 && a.headers["retry-after"] == "" {
				t.Error("503 without Retry-After")
			}
			if c.challenge != "-" {
				// What an MCP client parses must be a Bearer challenge
				// first, pointing at the metadata, with a non-empty scope;
				// then the DPoP one naming the proof algorithms (dpop
				// allowed, the default).
				chs, err := metadata.ParseChallenges(got)
				if err != nil || len(chs) != 2 || !strings.EqualFold(chs[0].Scheme, "Bearer") || chs[0].Params["resource_metadata"] != prmURL || chs[0].Params["scope"] == "" ||
					!strings.EqualFold(chs[1].Scheme, "DPoP") || chs[1].Params["algs"] == "" {
					t.Errorf("challenge %q does not parse as a Bearer challenge with resource_metadata and scope, then a DPoP one: %v", got, err)
				}
			}
		})
	}
}

func TestAllowed(t *testing.T) {
	g := startGateway(t)
	tok := mint(t, g.main, devissuer.Token{Scopes: []string{"mcp:tools", "mcp:write", "extra"}})
	spoofed := append(bearer(tok), [2]string{"x-extauthz-subject", "mallory"})
	for _, raw := range []bool{false, true} {
		for _, path := range []string{"/mcp", "/mcp/", "/mcp?session=1", "/other/../mcp"} {
			t.Run(fmt.Sprintf("raw=%v%s", raw, path), func(t *testing.T) {
				a := g.check(t, check.EnvoyRequest{Method: "POST", URL: "https://mcp.example.com" + path, Headers: spoofed, RawHeaders: raw})
				if !a.allowed {
					t.Fatalf("denied %d: %s", a.status, a.body)
				}
				want := map[string]string{"x-extauthz-subject": "alice", "x-extauthz-client-id": "client-1", "x-extauthz-scopes": "mcp:tools mcp:write extra"}
				for k, v := range want {
					if a.headers[k] != v {
						t.Errorf("upstream %s = %q, want %q", k, a.headers[k], v)
					}
				}
				if strings.Join(a.removed, ",") != "authorization" {
					t.Errorf("removed %v, want [authorization]", a.removed)
				}
				if a.metadata["sub"] != "alice" || a.metadata["resource"] != "mcp" || a.metadata["iss"] != g.main.Issuer() {
					t.Errorf("dynamic metadata %v", a.metadata)
				}
			})
		}
	}
	t.Run("host is matched without port and case", func(t *testing.T) {
		if a := g.check(t, check.EnvoyRequest{URL: "https://MCP.Example.com:8443/mcp", Headers: bearer(tok)}); !a.allowed {
			t.Fatalf("denied %d: %s", a.status, a.body)
		}
	})
	t.Run("context extension selects the resource", func(t *testing.T) {
		a := g.check(t, check.EnvoyRequest{URL: "https://internal.svc/anything", Headers: bearer(tok), ContextExtensions: map[string]string{"resource": "mcp"}})
		if !a.allowed {
			t.Fatalf("denied %d: %s", a.status, a.body)
		}
	})
	t.Run("identity headers the token lacks are removed, not passed through", func(t *testing.T) {
		noClient := sign(t, g.main, map[string]any{"iss": g.main.Issuer(), "sub": "svc", "aud": resourceURI, "scope": "mcp:tools mcp:write", "exp": time.Now().Add(time.Hour).Unix()}, nil)
		a := g.check(t, check.EnvoyRequest{URL: "https://mcp.example.com/mcp", Headers: append(bearer(noClient), [2]string{"x-extauthz-client-id", "forged"})})
		if !a.allowed {
			t.Fatalf("denied %d: %s", a.status, a.body)
		}
		if _, set := a.headers["x-extauthz-client-id"]; set || !contains(a.removed, "x-extauthz-client-id") {
			t.Errorf("client id header: set=%v removed=%v; want removed", set, a.removed)
		}
	})
	t.Run("CORS preflight needs no token and is answered by the gateway", func(t *testing.T) {
		a := g.check(t, check.EnvoyRequest{Method: "OPTIONS", URL: "https://mcp.example.com/mcp", Headers: [][2]string{{"origin", "https://mcp.example.com"}, {"access-control-request-method", "POST"}}})
		if a.allowed || a.status != 204 || a.headers["access-control-allow-origin"] != "https://mcp.example.com" {
			t.Fatalf("preflight: allowed=%v %d %v, want a 204 answer for the origin", a.allowed, a.status, a.headers)
		}
	})
	t.Run("a preflight from an origin not allowed is refused", func(t *testing.T) {
		a := g.check(t, check.EnvoyRequest{Method: "OPTIONS", URL: "https://mcp.example.com/mcp", Headers: [][2]string{{"origin", "https://evil.example"}, {"access-control-request-method", "POST"}}})
		if a.allowed || a.status != 403 {
			t.Fatalf("preflight from another origin: allowed=%v status %d, want 403", a.allowed, a.status)
		}
	})
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

func TestMetadataAnsweredByCheck(t *testing.T) {
	g := startGateway(t)
	for _, path := range []string{"/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource"} {
		t.Run(path, func(t *testing.T) {
			a := g.check(t, check.EnvoyRequest{URL: "https://mcp.example.com" + path})
			if a.allowed || a.status != 200 {
				t.Fatalf("allowed=%v status=%d, want a direct 200", a.allowed, a.status)
			}
			var doc map[string]any
			if err := json.Unmarshal([]byte(a.body), &doc); err != nil {
				t.Fatal(err)
			}
			if doc["resource"] != resourceURI {
				t.Errorf("resource = %v, want exactly %s", doc["resource"], resourceURI)
			}
			if fmt.Sprint(doc["authorization_servers"]) != "["+g.main.Issuer()+"]" || fmt.Sprint(doc["bearer_methods_supported"]) != "[header]" ||
				fmt.Sprint(doc["scopes_supported"]) != "[mcp:tools mcp:write]" {
				t.Errorf("document %s", a.body)
			}
			if a.headers["content-type"] != "application/json" || a.headers["access-control-allow-origin"] != "*" {
				t.Errorf("headers %v", a.headers)
			}
		})
	}
	t.Run("unknown suffix falls through to routing", func(t *testing.T) {
		if a := g.check(t, check.EnvoyRequest{URL: "https://mcp.example.com/.well-known/oauth-protected-resource/nope"}); a.status != 403 {
			t.Fatalf("status %d, want 403 (unmatched)", a.status)
		}
	})
}

func TestKeyRotationWithoutRestart(t *testing.T) {
	g := startGateway(t)
	old := mint(t, g.main, devissuer.Token{})
	if a := g.check(t, check.EnvoyRequest{URL: "https://mcp.example.com/mcp", Headers: bearer(old)}); !a.allowed {
		t.Fatalf("old key token denied: %d %s", a.status, a.body)
	}
	oldKid := kidOf(t, old)

	// The issuer rotates: publishes a new key and signs with it.
	newKid, err := g.main.AddKey("RS256")
	if err != nil {
		t.Fatal(err)
	}
	g.main.Use(newKid)
	fresh := mint(t, g.main, devissuer.Token{})
	g.clock.Advance(11 * time.Second) // past the unknown-kid refetch interval
	if a := g.check(t, check.EnvoyRequest{URL: "https://mcp.example.com/mcp", Headers: bearer(fresh)}); !a.allowed {
		t.Fatalf("token with the new kid denied: %d %s", a.status, a.body)
	}

	// The old key is retired. Tokens it signed stop working once the set is refetched.
	g.main.Publish(newKid)
	g.clock.Advance(11 * time.Second)
	other := sign(t, g.main, validClaims(g.main), map[string]any{"kid": "never-published"})
	if a := g.check(t, check.EnvoyRequest{URL: "https://mcp.example.com/mcp", Headers: bearer(other)}); a.status != 401 {
		t.Fatalf("unknown kid: status %d", a.status)
	}
	oldUncached := sign(t, g.main, validClaims(g.main), map[string]any{"kid": oldKid})
	if a := g.check(t, check.EnvoyRequest{URL: "https://mcp.example.com/mcp", Headers: bearer(oldUncached)}); a.status != 401 {
		t.Fatalf("retired kid: status %d, want 401", a.status)
	}
}

func TestRandomKidFloodIsBounded(t *testing.T) {
	g := startGateway(t)
	warm := mint(t, g.main, devissuer.Token{})
	if a := g.check(t, check.EnvoyRequest{URL: "https://mcp.example.com/mcp", Headers: bearer(warm)}); !a.allowed {
		t.Fatalf("warm-up denied: %d", a.status)
	}
	before := g.main.JWKSFetches()
	g.clock.Advance(11 * time.Second)
	toks := make([]string, 1000)
	for i := range toks {
		toks[i] = sign(t, g.main, validClaims(g.main), map[string]any{"kid": fmt.Sprintf("random-%d", i)})
	}
	var wg sync.WaitGroup
	var allowed, unauthorized atomic.Int64
	work := make(chan string)
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for tok := range work {
				a := g.check(t, check.EnvoyRequest{URL: "https://mcp.example.com/mcp", Headers: bearer(tok)})
				if a.allowed {
					allowed.Add(1)
				} else if a.status == 401 {
					unauthorized.Add(1)
				}
			}
		}()
	}
	for _, tok := range toks {
		work <- tok
	}
	close(work)
	wg.Wait()
	fetches := g.main.JWKSFetches() - before
	t.Logf("1000 random kids: %d JWKS fetches", fetches)
	if allowed.Load() != 0 || unauthorized.Load() != 1000 {
		t.Errorf("allowed %d, 401 %d; want 0 and 1000", allowed.Load(), unauthorized.Load())
	}
	if fetches > 2 {
		t.Errorf("%d JWKS fetches for 1000 random kids within one interval; want at most 2", fetches)
	}
}

func TestLastGoodKeysServeThroughAnOutage(t *testing.T) {
	g := startGateway(t)
	tok := mint(t, g.main, devissuer.Token{})
	if a := g.check(t, check.EnvoyRequest{URL: "https://mcp.example.com/mcp", Headers: bearer(tok)}); !a.allowed {
		t.Fatalf("denied %d", a.status)
	}
	g.main.SetJWKSStatus(http.StatusInternalServerError)
	// A different token signed by the same (known) key: verified afresh
	// with the keys held, while the endpoint is down.
	other := mint(t, g.main, devissuer.Token{Subject: "bob"})
	g.clock.Advance(11 * time.Second)
	if a := g.check(t, check.EnvoyRequest{URL: "https://mcp.example.com/mcp", Headers: bearer(other)}); !a.allowed {
		t.Fatalf("known key during outage denied: %d %s", a.status, a.body)
	}
	// A kid we do not hold and cannot fetch: cannot verify now.
	unknown := sign(t, g.main, validClaims(g.main), map[string]any{"kid": "rotated-during-outage"})
	if a := g.check(t, check.EnvoyRequest{URL: "https://mcp.example.com/mcp", Headers: bearer(unknown)}); a.status != 503 {
		t.Fatalf("unknown kid during outage: status %d, want 503", a.status)
	}
}

func kidOf(t *testing.T, tok string) string {
	t.Helper()
	h, _, _ := strings.Cut(tok, ".")
	b, err := b64dec(h)
	if err != nil {
		t.Fatal(err)
	}
	var hdr struct {
		Kid string `json:"kid"`
	}
	if err := json.Unmarshal(b, &hdr); err != nil {
		t.Fatal(err)
	}
	return hdr.Kid
}

// TestScopesNeverBorrowedFromAnotherToken: tokens with equal issuer, client, audiences and
// scopes share one interned grant, in verification and in the cache. A token whose one scp
// entry spells the two scopes of another token with a control character between them must not
// be given that token's grant, on its first Check nor once its verdict is cached. Such an
// entry is no scope-token (RFC 6749 §3.3): the token is refused as malformed before any grant
// is looked for (TestIdentityHeadersAreFieldValues); the grant key stays injective on its own
// (pkg/token's TestGrantKeyIsInjective).
func TestScopesNeverBorrowedFromAnotherToken(t *testing.T) {
	g := startGateway(t)
	claims := func(scp []string) map[string]any {
		return map[string]any{"iss": g.main.Issuer(), "sub": "alice", "client_id": "client-1", "aud": resourceURI,
			"scp": scp, "exp": time.Now().Add(time.Hour).Unix()}
	}
	granted := sign(t, g.main, claims([]string{"mcp:tools", "mcp:write"}), nil)
	spliced := sign(t, g.main, claims([]string{"mcp:tools\x01mcp:write"}), nil)
	req := func(tok string) check.EnvoyRequest {
		return check.EnvoyRequest{Method: "POST", URL: "https://mcp.example.com/mcp", Headers: bearer(tok)}
	}
	for i := range 2 { // the second Check of each is a cache hit
		if a := g.check(t, req(granted)); !a.allowed {
			t.Fatalf("Check %d of the token holding both scopes: denied %d: %s", i+1, a.status, a.body)
		}
	}
	for i := range 2 {
		if a := g.check(t, req(spliced)); a.allowed || a.status != http.StatusUnauthorized {
			t.Fatalf("Check %d of the token whose one scope spells both: allowed=%v status %d, want 401", i+1, a.allowed, a.status)
		}
	}
}

// TestIdentityHeadersAreFieldValues: the subject, client id and scopes go upstream as header
// values, where the proxy and the upstream read them with their own parsers. A token whose
// values would read otherwise there is refused (401 invalid_token), on its first Check and
// once its verdict is cached, and nothing of it is set upstream: a line break that would end
// the header, a space that a parser strips, a space inside one scp entry that makes it two
// scopes once joined (here "admin", which the gateway never granted), a tab that a parser
// would take for a separator.
func TestIdentityHeadersAreFieldValues(t *testing.T) {
	g := startGateway(t)
	claims := func(edit func(map[string]any)) map[string]any {
		c := map[string]any{"iss": g.main.Issuer(), "sub": "alice", "client_id": "client-1", "aud": resourceURI,
			"scope": "mcp:tools mcp:write", "exp": time.Now().Add(time.Hour).Unix()}
		edit(c)
		return c
	}
	for _, c := range []struct {
		name string
		edit func(map[string]any)
	}{
		{"CRLF in sub", func(c map[string]any) { c["sub"] = "alice\r\nx-extauthz-role: admin" }},
		{"NUL in sub", func(c map[string]any) { c["sub"] = "al\x00ice" }},
		{"a leading space in sub", func(c map[string]any) { c["sub"] = " alice" }},
		{"CRLF in client_id", func(c map[string]any) { c["client_id"] = "client-1\r\nx-a: b" }},
		{"a space inside one scp entry", func(c map[string]any) {
			delete(c, "scope")
			c["scp"] = []string{"mcp:tools", "mcp:write", "admin other"}
		}},
		{"a tab between scopes", func(c map[string]any) { c["scope"] = "mcp:tools mcp:write\tadmin" }},
	} {
		t.Run(c.name, func(t *testing.T) {
			tok := sign(t, g.main, claims(c.edit), nil)
			for i := range 2 { // the second is answered from the cache
				a := g.check(t, check.EnvoyRequest{Method: "POST", URL: "https://mcp.example.com/mcp", Headers: bearer(tok)})
				if a.allowed || a.status != http.StatusUnauthorized || !strings.Contains(a.headers["www-authenticate"], `error="invalid_token"`) {
					t.Fatalf("Check %d: allowed=%v status %d, challenge %q; want 401 invalid_token", i+1, a.allowed, a.status, a.headers["www-authenticate"])
				}
				for k, v := range a.headers {
					if strings.HasPrefix(k, "x-extauthz-") {
						t.Errorf("Check %d: %s: %q set", i+1, k, v)
					}
				}
			}
		})
	}
	// The same claims, spelled as a header carries them, are allowed.
	tok := sign(t, g.main, claims(func(map[string]any) {}), nil)
	if a := g.check(t, check.EnvoyRequest{Method: "POST", URL: "https://mcp.example.com/mcp", Headers: bearer(tok)}); !a.allowed ||
		a.headers["x-extauthz-subject"] != "alice" || a.headers["x-extauthz-scopes"] != "mcp:tools mcp:write" {
		t.Fatalf("the plain token: allowed=%v status %d headers %q", a.allowed, a.status, a.headers)
	}
}
