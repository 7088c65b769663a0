package oauthflow_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/extauthz/extauthz/internal/oidctest"
	"github.com/extauthz/extauthz/internal/redistest"
	"github.com/extauthz/extauthz/internal/testkit"
	"github.com/extauthz/extauthz/pkg/cache"
	"github.com/extauthz/extauthz/pkg/jwks"
	"github.com/extauthz/extauthz/pkg/metadata"
	"github.com/extauthz/extauthz/pkg/oauthflow"
	"github.com/extauthz/extauthz/pkg/token"
)

// facadeEnv is the facade in front of an oidc-provider that allows no dynamic registration
// and knows one client, the gateway's: the gateway's listener serves the browser login's
// paths and the facade's.
type facadeEnv struct {
	ctx         context.Context
	as          *oidctest.Server
	gw          *httptest.Server
	resourceURI string
	otherURI    string
	facade      *oauthflow.Facade
	// verifier verifies the facade's tokens as a Check does: its key set over HTTP.
	verifier token.Verifier
	logs     *testkit.LockedBuffer
}

const facadeRedirect = "http://127.0.0.1:8123/callback"

// newFacadeEnv starts the provider and the gateway; the facade's store is in a private
// redis-server when inRedis, else in process.
func newFacadeEnv(t *testing.T, inRedis bool) *facadeEnv {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	e := &facadeEnv{ctx: ctx, logs: &testkit.LockedBuffer{}}
	var login *oauthflow.Handler
	e.gw = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/oauth/login", "/oauth/callback", "/oauth/logout":
			login.ServeHTTP(w, r)
		default:
			e.facade.ServeHTTP(w, r)
		}
	}))
	t.Cleanup(e.gw.Close)
	e.resourceURI = e.gw.URL + "/mcp"
	e.otherURI = e.gw.URL + "/other"

	gateway := oidctest.Client{
		ID: "gateway", Secret: "gateway-secret", AuthMethod: "client_secret_basic",
		GrantTypes: []string{"authorization_code", "refresh_token"}, RedirectURIs: []string{e.gw.URL + "/oauth/callback"},
	}
	e.as = oidctest.Start(t, oidctest.Options{
		DisableRegistration: true,
		Clients:             []oidctest.Client{gateway},
		Resources:           []oidctest.Resource{{Resource: e.resourceURI, Scope: "mcp:tools"}},
	})
	asmd, err := metadata.Discover(ctx, &http.Client{Timeout: 10 * time.Second}, e.as.Issuer)
	if err != nil {
		t.Fatal(err)
	}
	if asmd.RegistrationEndpoint != "" {
		t.Fatalf("the provider offers registration at %s; the test needs it without", asmd.RegistrationEndpoint)
	}
	md := &oauthflow.Metadata{
		Issuer: asmd.Issuer, AuthorizationEndpoint: asmd.AuthorizationEndpoint, TokenEndpoint: asmd.TokenEndpoint,
		CodeChallengeMethodsSupported:              asmd.CodeChallengeMethodsSupported,
		AuthorizationResponseIssParameterSupported: asmd.AuthorizationResponseIssParameterSupported,
	}
	issuer := e.gw.URL + "/oauth"
	keys := func(uri string) token.Issuer {
		return token.Issuer{Mode: token.ModeJWT, Keys: jwks.New(func(context.Context) (string, error) { return uri, nil }, jwks.Options{})}
	}
	providerVerifier, err := token.NewIssuerSet(token.Options{Issuers: map[string]token.Issuer{e.as.Issuer: keys(asmd.JWKSURI)}})
	if err != nil {
		t.Fatal(err)
	}
	e.verifier, err = token.NewIssuerSet(token.Options{Issuers: map[string]token.Issuer{issuer: keys(issuer + "/jwks")}})
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	login, err = oauthflow.New(oauthflow.Options{
		Route:     func(string, string) (string, bool) { return "", false },
		Sessions:  newStore(t, nil, 3),
		Verifier:  providerVerifier,
		PublicURL: e.gw.URL,
		Logger:    logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	var k oauthflow.Key
	for i := range k {
		k[i] = byte(i) + 7
	}
	so := oauthflow.FacadeStoreOptions{Key: k}
	if inRedis {
		srv := redistest.Start(t)
		rc, err := cache.NewRedisClient(cache.RedisClientOptions{URL: "redis://" + srv.Addr(), Timeout: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = rc.Close() })
		so.Redis = rc
	}
	store, err := oauthflow.NewFacadeStore(so)
	if err != nil {
		t.Fatal(err)
	}
	docs, err := oauthflow.NewClientDocuments(oauthflow.ClientDocumentsOptions{})
	if err != nil {
		t.Fatal(err)
	}
	resolver, err := oauthflow.NewClientResolver(oauthflow.ClientResolverOptions{Store: store, Documents: docs})
	if err != nil {
		t.Fatal(err)
	}
	sk, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := oauthflow.NewTokenSigner(oauthflow.TokenSignerOptions{Issuer: issuer, Keys: []oauthflow.SigningKey{{Signer: sk}}})
	if err != nil {
		t.Fatal(err)
	}
	fmd, err := oauthflow.NewFacadeMetadata(oauthflow.FacadeMetadataOptions{Issuer: issuer, ScopesSupported: []string{"mcp:tools", "mcp:admin"}})
	if err != nil {
		t.Fatal(err)
	}
	reg, err := oauthflow.NewRegistration(oauthflow.RegistrationOptions{Store: store})
	if err != nil {
		t.Fatal(err)
	}
	upstream := func(uri string) *oauthflow.Client {
		return &oauthflow.Client{
			ResourceURI: uri, Issuer: e.as.Issuer,
			Metadata: func(context.Context) (*oauthflow.Metadata, error) { m := *md; return &m, nil },
			ClientID: gateway.ID, ClientSecret: gateway.Secret, Scopes: scopes,
		}
	}
	e.facade, err = oauthflow.NewFacade(oauthflow.FacadeOptions{
		Login: login, Store: store, Clients: resolver, Signer: signer, Metadata: fmd, Registration: reg,
		Resources: []oauthflow.FacadeResource{
			{Name: "mcp", URI: e.resourceURI, ScopesSupported: []string{"mcp:tools", "mcp:admin"}, DefaultScopes: []string{"mcp:tools"}, Upstream: upstream(e.resourceURI)},
			{Name: "other", URI: e.otherURI, ScopesSupported: []string{"mcp:tools"}, Upstream: upstream(e.otherURI)},
			{Name: "entra", URI: e.gw.URL + "/entra", ScopesSupported: []string{"mcp:tools"}, Upstream: func() *oauthflow.Client {
				c := upstream("api://gateway")
				c.AudienceScope = "api://gateway/.default"
				return c
			}()},
		},
		Logger: logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// register registers a public client with redirectURI and returns its client_id.
func (e *facadeEnv) register(t *testing.T, name string) string {
	t.Helper()
	body := `{"client_name":"` + name + `","client_uri":"https://client.example/about","redirect_uris":["` + facadeRedirect + `"],"grant_types":["authorization_code","refresh_token"]}`
	resp, err := http.Post(e.gw.URL+"/oauth/register", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		ClientID string `json:"client_id"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("registration: HTTP %d, %v", resp.StatusCode, err)
	}
	return out.ClientID
}

// pkcePair is a code verifier and its S256 challenge.
func pkcePair(t *testing.T) (verifier, challenge string) {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	verifier = base64.RawURLEncoding.EncodeToString(b)
	sum := sha256.Sum256([]byte(verifier))
	return verifier, base64.RawURLEncoding.EncodeToString(sum[:])
}

// authorizeURL is an authorization request of clientID with params over the defaults
// (S256 challenge, state, the mcp resource, code).
func (e *facadeEnv) authorizeURL(clientID, challenge string, params map[string]string) string {
	q := url.Values{
		"response_type": {"code"}, "client_id": {clientID}, "redirect_uri": {facadeRedirect},
		"code_challenge": {challenge}, "code_challenge_method": {"S256"}, "state": {"client-state"},
		"resource": {e.resourceURI},
	}
	for k, v := range params {
		if v == "" {
			q.Del(k)
		} else {
			q.Set(k, v)
		}
	}
	return e.gw.URL + "/oauth/authorize?" + q.Encode()
}

// toClient asserts r redirects to the client's redirect URI and returns its query.
func (e *facadeEnv) toClient(t *testing.T, r *response) url.Values {
	t.Helper()
	if r.status != http.StatusFound && r.status != http.StatusSeeOther {
		t.Fatalf("HTTP %d, want a redirect to the client: %s", r.status, r.body)
	}
	loc := r.location(t)
	if got := loc.Scheme + "://" + loc.Host + loc.Path; got != facadeRedirect {
		t.Fatalf("redirected to %s, want the client's %s", loc, facadeRedirect)
	}
	q := loc.Query()
	if q.Get("iss") != e.facade.Issuer() {
		t.Errorf("iss = %q, want %q (RFC 9207)", q.Get("iss"), e.facade.Issuer())
	}
	return q
}

// signIn runs an authorization request through the provider's login to the gateway's
// callback and returns the callback's response.
func (e *facadeEnv) signIn(t *testing.T, b *browser, authz string) *response {
	t.Helper()
	r := b.get(authz)
	if r.status != http.StatusFound {
		t.Fatalf("authorize: HTTP %d, want a redirect to the provider: %s", r.status, r.body)
	}
	up := r.location(t)
	if !strings.HasPrefix(up.String(), e.as.Issuer) {
		t.Fatalf("authorize redirected to %s, not to the provider", up)
	}
	if up.Query().Get("client_id") != "gateway" || up.Query().Get("code_challenge_method") != "S256" {
		t.Fatalf("the upstream request is not the gateway's with PKCE: %s", up.RawQuery)
	}
	cb := oidctest.SignIn(t, b.c, up, userName, "/oauth/callback", false)
	return b.get(cb.String())
}

// code runs an authorization to its answer at the client, allowing the client on the
// consent page if it is shown, and returns the client's query.
func (e *facadeEnv) code(t *testing.T, b *browser, clientID, challenge string) url.Values {
	t.Helper()
	cb := e.signIn(t, b, e.authorizeURL(clientID, challenge, nil))
	if cb.status == http.StatusSeeOther && cb.location(t).Path == "/oauth/consent" {
		_, cb = e.consent(t, b, cb, "approve")
	}
	return e.toClient(t, cb)
}

var csrfRE = regexp.MustCompile(`name="csrf_token" value="([^"]*)"`)

// consent opens the consent page and answers it with decision; it returns the page and the
// answer's response.
func (e *facadeEnv) consent(t *testing.T, b *browser, cb *response, decision string) (page, answer *response) {
	t.Helper()
	if cb.status != http.StatusSeeOther || cb.location(t).Path != "/oauth/consent" {
		t.Fatalf("callback: HTTP %d to %q, want the consent page", cb.status, cb.header.Get("Location"))
	}
	page = b.get(e.gw.URL + "/oauth/consent")
	if page.status != http.StatusOK {
		t.Fatalf("consent page: HTTP %d: %s", page.status, page.body)
	}
	m := csrfRE.FindStringSubmatch(page.body)
	if m == nil {
		t.Fatalf("no CSRF token on the consent page: %s", page.body)
	}
	answer = b.postWith(e.gw.URL+"/oauth/consent", url.Values{"csrf_token": {html.UnescapeString(m[1])}, "decision": {decision}}, nil)
	return page, answer
}

type tokenReply struct {
	status int
	header http.Header
	body   map[string]any
}

func (r tokenReply) str(k string) string { s, _ := r.body[k].(string); return s }

func (e *facadeEnv) token(t *testing.T, path string, form url.Values) tokenReply {
	t.Helper()
	resp, err := http.Post(e.gw.URL+path, "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	out := tokenReply{status: resp.StatusCode, header: resp.Header, body: map[string]any{}}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &out.body); err != nil {
			t.Fatalf("%s: HTTP %d, not JSON: %s", path, resp.StatusCode, raw)
		}
	}
	return out
}

func wantOAuthError(t *testing.T, r tokenReply, status int, code string) {
	t.Helper()
	if r.status != status || r.str("error") != code {
		t.Fatalf("HTTP %d %v, want %d %s", r.status, r.body, status, code)
	}
}

func TestFacadeFlow(t *testing.T) {
	for _, inRedis := range []bool{false, true} {
		name := "in process"
		if inRedis {
			name = "in Redis"
		}
		t.Run(name, func(t *testing.T) { testFacadeFlow(t, newFacadeEnv(t, inRedis)) })
	}
}

func testFacadeFlow(t *testing.T, e *facadeEnv) {
	clientA := e.register(t, "Client A")
	clientB := e.register(t, "Client B")

	t.Run("register, authorize, consent, code, token, refresh, reuse", func(t *testing.T) {
		b := newBrowser(t)
		verifier, challenge := pkcePair(t)
		cb := e.signIn(t, b, e.authorizeURL(clientA, challenge, nil))
		page, answer := e.consent(t, b, cb, "approve")
		for k, want := range map[string]string{"X-Frame-Options": "DENY", "Cache-Control": "no-store"} {
			if got := page.header.Get(k); got != want {
				t.Errorf("consent page %s = %q, want %q", k, got, want)
			}
		}
		if csp := page.header.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") || strings.Contains(page.body, "<script") {
			t.Errorf("consent page CSP %q (or it has a script)", csp)
		}
		for _, want := range []string{"Client A", "client.example", "127.0.0.1:8123", "mcp:tools", e.resourceURI} {
			if !strings.Contains(page.body, want) {
				t.Errorf("the consent page does not show %q: %s", want, page.body)
			}
		}
		q := e.toClient(t, answer)
		if q.Get("state") != "client-state" || q.Get("code") == "" {
			t.Fatalf("the client got %v, want a code and its state", q)
		}
		code := q.Get("code")

		tok := e.token(t, "/oauth/token", url.Values{
			"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {facadeRedirect},
			"code_verifier": {verifier}, "client_id": {clientA}, "resource": {e.resourceURI},
		})
		if tok.status != http.StatusOK || tok.str("token_type") != "Bearer" || tok.str("refresh_token") == "" {
			t.Fatalf("token: HTTP %d %v", tok.status, tok.body)
		}
		if tok.header.Get("Cache-Control") != "no-store" {
			t.Errorf("token response Cache-Control %q", tok.header.Get("Cache-Control"))
		}
		if exp, _ := tok.body["expires_in"].(float64); exp < 3500 || exp > 3600 {
			t.Errorf("expires_in = %v, want an hour", tok.body["expires_in"])
		}
		claims, err := e.verifier.Verify(e.ctx, tok.str("access_token"), map[string]struct{}{e.facade.Issuer(): {}})
		if err != nil {
			t.Fatalf("the minted token does not verify: %v", err)
		}
		if claims.Subject != userName || claims.ClientID != clientA || !slices.Equal(claims.Scopes, []string{"mcp:tools"}) ||
			!claims.HasAudience(map[string]struct{}{e.resourceURI: {}}) {
			t.Errorf("claims: sub %q, grant %+v", claims.Subject, claims.Grant)
		}

		// Refresh: asks the provider, rotates.
		rt1 := tok.str("refresh_token")
		ref := e.token(t, "/oauth/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt1}, "client_id": {clientA}})
		if ref.status != http.StatusOK || ref.str("refresh_token") == "" || ref.str("refresh_token") == rt1 || ref.str("access_token") == "" {
			t.Fatalf("refresh: HTTP %d %v", ref.status, ref.body)
		}
		rt2 := ref.str("refresh_token")
		// Another client cannot use it.
		wantOAuthError(t, e.token(t, "/oauth/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt2}, "client_id": {clientB}}),
			http.StatusBadRequest, "invalid_grant")
		// The spent one again: reuse, the family is revoked, the newest token with it.
		wantOAuthError(t, e.token(t, "/oauth/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt1}, "client_id": {clientA}}),
			http.StatusBadRequest, "invalid_grant")
		wantOAuthError(t, e.token(t, "/oauth/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt2}, "client_id": {clientA}}),
			http.StatusBadRequest, "invalid_grant")
		// The code is spent.
		wantOAuthError(t, e.token(t, "/oauth/token", url.Values{
			"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {facadeRedirect},
			"code_verifier": {verifier}, "client_id": {clientA},
		}), http.StatusBadRequest, "invalid_grant")

		// The same user and client again: the consent is remembered, the callback answers
		// the client at once.
		_, challenge2 := pkcePair(t)
		q = e.toClient(t, e.signIn(t, b, e.authorizeURL(clientA, challenge2, nil)))
		if q.Get("code") == "" {
			t.Fatalf("second authorization: %v", q)
		}
		// More scopes than consented to: asked again.
		cb = e.signIn(t, b, e.authorizeURL(clientA, challenge2, map[string]string{"scope": "mcp:tools mcp:admin"}))
		if cb.status != http.StatusSeeOther || cb.location(t).Path != "/oauth/consent" {
			t.Fatalf("wider scopes: HTTP %d to %q, want the consent page", cb.status, cb.header.Get("Location"))
		}
	})

	t.Run("a code redeemed by another client, or with a wrong verifier or redirect", func(t *testing.T) {
		b := newBrowser(t)
		for _, c := range []struct {
			name string
			form func(code, verifier string) url.Values
		}{
			{"another client", func(code, v string) url.Values {
				return url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {facadeRedirect}, "code_verifier": {v}, "client_id": {clientB}}
			}},
			{"wrong verifier", func(code, _ string) url.Values {
				other, _ := pkcePair(t)
				return url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {facadeRedirect}, "code_verifier": {other}, "client_id": {clientA}}
			}},
			{"other redirect", func(code, v string) url.Values {
				return url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {"http://127.0.0.1:8123/other"}, "code_verifier": {v}, "client_id": {clientA}}
			}},
		} {
			verifier, challenge := pkcePair(t)
			q := e.code(t, b, clientA, challenge)
			wantOAuthError(t, e.token(t, "/oauth/token", c.form(q.Get("code"), verifier)), http.StatusBadRequest, "invalid_grant")
			// Spent by the failed attempt.
			wantOAuthError(t, e.token(t, "/oauth/token", url.Values{
				"grant_type": {"authorization_code"}, "code": {q.Get("code")}, "redirect_uri": {facadeRedirect}, "code_verifier": {verifier}, "client_id": {clientA},
			}), http.StatusBadRequest, "invalid_grant")
		}
	})

	t.Run("a replayed code revokes the refresh family it started", func(t *testing.T) {
		b := newBrowser(t)
		verifier, challenge := pkcePair(t)
		q := e.code(t, b, clientA, challenge)
		form := url.Values{
			"grant_type": {"authorization_code"}, "code": {q.Get("code")}, "redirect_uri": {facadeRedirect}, "code_verifier": {verifier}, "client_id": {clientA},
		}
		tok := e.token(t, "/oauth/token", form)
		if tok.status != http.StatusOK {
			t.Fatalf("token: HTTP %d %v", tok.status, tok.body)
		}
		wantOAuthError(t, e.token(t, "/oauth/token", form), http.StatusBadRequest, "invalid_grant")
		wantOAuthError(t, e.token(t, "/oauth/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.str("refresh_token")}, "client_id": {clientA}}),
			http.StatusBadRequest, "invalid_grant")
	})

	t.Run("authorization requests refused", func(t *testing.T) {
		b := newBrowser(t)
		_, challenge := pkcePair(t)
		// Client or redirect URI faults: a page, never a redirect.
		for name, u := range map[string]string{
			"wrong redirect_uri": e.authorizeURL(clientA, challenge, map[string]string{"redirect_uri": "http://127.0.0.1:8123/elsewhere"}),
			"https look-alike":   e.authorizeURL(clientA, challenge, map[string]string{"redirect_uri": "https://attacker.example/callback"}),
			"no redirect_uri":    e.authorizeURL(clientA, challenge, map[string]string{"redirect_uri": ""}),
			"unknown client":     e.authorizeURL("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", challenge, nil),
			"no client":          e.authorizeURL("", challenge, nil),
			"CIMD at loopback":   e.authorizeURL("https://127.0.0.1/client.json", challenge, nil),
		} {
			r := b.get(u)
			if r.status < 400 || r.header.Get("Location") != "" {
				t.Errorf("%s: HTTP %d Location %q, want an error page", name, r.status, r.header.Get("Location"))
			}
		}
		// Request faults: back to the client with the error, its state and iss.
		for name, c := range map[string]struct {
			params map[string]string
			code   string
		}{
			"no PKCE":               {map[string]string{"code_challenge": "", "code_challenge_method": ""}, "invalid_request"},
			"plain PKCE":            {map[string]string{"code_challenge_method": "plain"}, "invalid_request"},
			"no method":             {map[string]string{"code_challenge_method": ""}, "invalid_request"},
			"bad challenge":         {map[string]string{"code_challenge": "short"}, "invalid_request"},
			"another resource":      {map[string]string{"resource": "https://elsewhere.example/mcp"}, "invalid_target"},
			"no resource":           {map[string]string{"resource": ""}, "invalid_target"},
			"unsupported scope":     {map[string]string{"scope": "mcp:tools root"}, "invalid_scope"},
			"scopes split by a tab": {map[string]string{"scope": "mcp:tools\tmcp:tools"}, "invalid_scope"},
			"token response type":   {map[string]string{"response_type": "token"}, "unsupported_response_type"},
			"other resource scope":  {map[string]string{"resource": e.otherURI, "scope": "mcp:admin"}, "invalid_scope"},
		} {
			q := e.toClient(t, b.get(e.authorizeURL(clientA, challenge, c.params)))
			if q.Get("error") != c.code || q.Get("state") != "client-state" || q.Has("code") {
				t.Errorf("%s: the client got %v, want error %s with its state", name, q, c.code)
			}
		}
	})

	t.Run("the audience named as a scope", func(t *testing.T) {
		_, challenge := pkcePair(t)
		clientID := e.register(t, "Entra-style")
		r := newBrowser(t).get(e.authorizeURL(clientID, challenge, map[string]string{"resource": e.gw.URL + "/entra"}))
		if r.status != http.StatusFound {
			t.Fatalf("authorize: HTTP %d %s", r.status, r.body)
		}
		up := r.location(t).Query()
		if up.Has("resource") || !slices.Contains(strings.Fields(up.Get("scope")), "api://gateway/.default") {
			t.Errorf("upstream request: scope %q, resource %q; want the audience scope and no resource", up.Get("scope"), up.Get("resource"))
		}
	})

	t.Run("consent CSRF and deny", func(t *testing.T) {
		b := newBrowser(t)
		_, challenge := pkcePair(t)
		cb := e.signIn(t, b, e.authorizeURL(clientB, challenge, nil))
		if cb.status != http.StatusSeeOther {
			t.Fatalf("callback: HTTP %d", cb.status)
		}
		for name, form := range map[string]url.Values{
			"no token":    {"decision": {"approve"}},
			"wrong token": {"decision": {"approve"}, "csrf_token": {"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}},
		} {
			r := b.postWith(e.gw.URL+"/oauth/consent", form, nil)
			if r.status != http.StatusForbidden || r.header.Get("Location") != "" {
				t.Errorf("%s: HTTP %d Location %q, want 403", name, r.status, r.header.Get("Location"))
			}
		}
		// Another browser (no consent cookie) with the right token gets nowhere either.
		page := b.get(e.gw.URL + "/oauth/consent")
		tok := html.UnescapeString(csrfRE.FindStringSubmatch(page.body)[1])
		other := newBrowser(t)
		if r := other.postWith(e.gw.URL+"/oauth/consent", url.Values{"decision": {"approve"}, "csrf_token": {tok}}, nil); r.status != http.StatusBadRequest {
			t.Errorf("another browser: HTTP %d, want 400", r.status)
		}
		// The real page still works: deny.
		q := e.toClient(t, b.postWith(e.gw.URL+"/oauth/consent", url.Values{"decision": {"deny"}, "csrf_token": {tok}}, nil))
		if q.Get("error") != "access_denied" || q.Get("state") != "client-state" || q.Has("code") {
			t.Errorf("deny: the client got %v", q)
		}
		// Answered: a second answer finds nothing.
		if r := b.postWith(e.gw.URL+"/oauth/consent", url.Values{"decision": {"approve"}, "csrf_token": {tok}}, nil); r.status != http.StatusBadRequest {
			t.Errorf("second answer: HTTP %d, want 400", r.status)
		}
	})

	t.Run("user cancels at the provider", func(t *testing.T) {
		b := newBrowser(t)
		_, challenge := pkcePair(t)
		r := b.get(e.authorizeURL(clientA, challenge, nil))
		cb := oidctest.SignIn(t, b.c, r.location(t), userName, "/oauth/callback", true)
		q := e.toClient(t, b.get(cb.String()))
		if q.Get("error") != "access_denied" || q.Get("state") != "client-state" {
			t.Errorf("the client got %v", q)
		}
	})

	t.Run("revocation", func(t *testing.T) {
		b := newBrowser(t)
		verifier, challenge := pkcePair(t)
		q := e.code(t, b, clientA, challenge)
		tok := e.token(t, "/oauth/token", url.Values{
			"grant_type": {"authorization_code"}, "code": {q.Get("code")}, "redirect_uri": {facadeRedirect}, "code_verifier": {verifier}, "client_id": {clientA},
		})
		rt := tok.str("refresh_token")
		wantOAuthError(t, e.token(t, "/oauth/revoke", url.Values{"token": {rt}, "client_id": {clientB}}), http.StatusBadRequest, "unauthorized_client")
		wantOAuthError(t, e.token(t, "/oauth/revoke", url.Values{"token": {tok.str("access_token")}, "client_id": {clientA}}), http.StatusBadRequest, "unsupported_token_type")
		if r := e.token(t, "/oauth/revoke", url.Values{"token": {rt}, "client_id": {clientA}}); r.status != http.StatusOK {
			t.Fatalf("revoke: HTTP %d %v", r.status, r.body)
		}
		wantOAuthError(t, e.token(t, "/oauth/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {clientA}}),
			http.StatusBadRequest, "invalid_grant")
	})

	t.Run("token endpoint refusals", func(t *testing.T) {
		wantOAuthError(t, e.token(t, "/oauth/token", url.Values{"grant_type": {"authorization_code"}, "code": {"x"}}), http.StatusUnauthorized, "invalid_client")
		wantOAuthError(t, e.token(t, "/oauth/token", url.Values{"grant_type": {"password"}, "client_id": {clientA}}), http.StatusBadRequest, "unsupported_grant_type")
		wantOAuthError(t, e.token(t, "/oauth/token", url.Values{"grant_type": {"authorization_code"}, "client_id": {clientA}}), http.StatusBadRequest, "invalid_request")
		form := "grant_type=refresh_token&grant_type=authorization_code&client_id=" + clientA
		resp, err := http.Post(e.gw.URL+"/oauth/token", "application/x-www-form-urlencoded", strings.NewReader(form))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("repeated grant_type: HTTP %d", resp.StatusCode)
		}
	})
}
