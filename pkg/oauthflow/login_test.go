package oauthflow_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/extauthz/extauthz/internal/oidctest"
	"github.com/extauthz/extauthz/internal/redistest"
	"github.com/extauthz/extauthz/internal/testkit"
	"github.com/extauthz/extauthz/pkg/cache"
	"github.com/extauthz/extauthz/pkg/introspect"
	"github.com/extauthz/extauthz/pkg/jwks"
	"github.com/extauthz/extauthz/pkg/metadata"
	"github.com/extauthz/extauthz/pkg/oauthflow"
	"github.com/extauthz/extauthz/pkg/token"
)

const (
	userName        = "alice"
	successRedirect = "/mcp/home"
	devCookie       = "extauthz-session"
)

var scopes = []string{"openid", "offline_access", "mcp:tools"}

// env is one authorization server (oidc-provider), a counting reverse proxy in front of its
// token and revocation endpoints, and the gateway's HTTP listener serving whichever Handler the
// subtest installs.
type env struct {
	t                 *testing.T
	ctx               context.Context
	as                *oidctest.Server
	gw                *httptest.Server
	publicURL, gwHost string
	resourceURI       string // the "mcp" resource
	wrongURI          string // a resource whose tokens the server issues for another audience
	md                oauthflow.Metadata
	verifier          token.Verifier
	counts            *counter
	logs              *testkit.LockedBuffer

	basic, post, pkjwt oidctest.Client
	signer             *introspect.AssertionSigner

	current atomic.Pointer[oauthflow.Handler]
}

// counter counts the calls that reach the authorization server through the proxy.
type counter struct {
	mu          sync.Mutex
	grants      map[string]int // token endpoint calls by grant_type
	revocations []string       // token_type_hint of each revocation call
}

func (c *counter) grant(g string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.grants[g]
}

func (c *counter) revoked() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.revocations)
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	e := &env{t: t, ctx: ctx, counts: &counter{grants: map[string]int{}}, logs: &testkit.LockedBuffer{}}

	// The gateway's listener first: its URL is the redirect URI to register.
	e.gw = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/oauth/") {
			if h := e.current.Load(); h != nil {
				h.ServeHTTP(w, r)
				return
			}
		}
		_, _ = io.WriteString(w, "the resource")
	}))
	t.Cleanup(e.gw.Close)
	e.publicURL = e.gw.URL
	e.gwHost = strings.TrimPrefix(e.gw.URL, "http://")
	e.resourceURI = e.publicURL + "/mcp"
	e.wrongURI = e.publicURL + "/wrong"

	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	e.signer, err = introspect.NewAssertionSigner(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), "k1")
	if err != nil {
		t.Fatal(err)
	}

	redirect := []string{e.publicURL + "/oauth/callback"}
	grants := []string{"authorization_code", "refresh_token"}
	e.basic = oidctest.Client{ID: "gateway", Secret: "gateway-secret", AuthMethod: "client_secret_basic", GrantTypes: grants, RedirectURIs: redirect}
	e.post = oidctest.Client{ID: "gateway-post", Secret: "post-secret", AuthMethod: "client_secret_post", GrantTypes: grants, RedirectURIs: redirect}
	e.pkjwt = oidctest.Client{ID: "gateway-jwt", AuthMethod: "private_key_jwt", JWKS: oidctest.PublicJWKS(t, "k1", &key.PublicKey), GrantTypes: grants, RedirectURIs: redirect}
	e.as = oidctest.Start(t, oidctest.Options{
		Clients: []oidctest.Client{e.basic, e.post, e.pkjwt},
		Resources: []oidctest.Resource{
			{Resource: e.resourceURI, Scope: "mcp:tools"},
			{Resource: e.wrongURI, Scope: "mcp:tools", Audience: "https://elsewhere.example/mcp"},
		},
	})

	// Metadata as the gateway would discover it, with the token and revocation endpoints
	// behind the counting proxy.
	hc := &http.Client{Timeout: 10 * time.Second}
	asmd, err := metadata.Discover(ctx, hc, e.as.Issuer)
	if err != nil {
		t.Fatal(err)
	}
	full, err := e.as.Metadata(ctx)
	if err != nil {
		t.Fatal(err)
	}
	target, _ := url.Parse(e.as.Issuer)
	rp := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) { pr.SetURL(target); pr.Out.Host = target.Host }}
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		form, _ := url.ParseQuery(string(body))
		r.Body = io.NopCloser(bytes.NewReader(body))
		e.counts.mu.Lock()
		switch {
		case strings.HasSuffix(full.TokenEndpoint, r.URL.Path):
			e.counts.grants[form.Get("grant_type")]++
		case strings.HasSuffix(full.RevocationEndpoint, r.URL.Path):
			e.counts.revocations = append(e.counts.revocations, form.Get("token_type_hint"))
		}
		e.counts.mu.Unlock()
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(proxy.Close)
	viaProxy := func(endpoint string) string {
		u, err := url.Parse(endpoint)
		if err != nil {
			t.Fatal(err)
		}
		return proxy.URL + u.Path
	}
	e.md = oauthflow.Metadata{
		Issuer:                        asmd.Issuer,
		AuthorizationEndpoint:         asmd.AuthorizationEndpoint,
		TokenEndpoint:                 viaProxy(asmd.TokenEndpoint),
		RevocationEndpoint:            viaProxy(full.RevocationEndpoint),
		CodeChallengeMethodsSupported: asmd.CodeChallengeMethodsSupported,
		AuthorizationResponseIssParameterSupported: asmd.AuthorizationResponseIssParameterSupported,
	}
	if !e.md.AuthorizationResponseIssParameterSupported || !slices.Contains(e.md.CodeChallengeMethodsSupported, "S256") {
		t.Fatalf("oidc-provider metadata %+v: want S256 and iss support", asmd)
	}

	keys := jwks.New(func(context.Context) (string, error) { return asmd.JWKSURI, nil }, jwks.Options{})
	v, err := token.NewIssuerSet(token.Options{Issuers: map[string]token.Issuer{
		e.as.Issuer: {Mode: token.ModeJWT, Keys: keys},
	}})
	if err != nil {
		t.Fatal(err)
	}
	e.verifier = v
	return e
}

// options are the Handler options of most subtests: an in-process store, resources "mcp"
// (client_secret_basic), "post" (client_secret_post), "pkjwt" (private_key_jwt), "wrong"
// (whose tokens come for another audience), and "other" (routed, without login).
func (e *env) options(t *testing.T) oauthflow.Options {
	t.Helper()
	md := func(context.Context) (*oauthflow.Metadata, error) { m := e.md; return &m, nil }
	client := func(name, uri string, c oidctest.Client) *oauthflow.Client {
		lc := &oauthflow.Client{
			Resource: name, ResourceURI: uri, Issuer: e.as.Issuer, Metadata: md,
			ClientID: c.ID, AuthMethod: c.AuthMethod, ClientSecret: c.Secret, Scopes: scopes,
		}
		if c.AuthMethod == "private_key_jwt" {
			lc.Signer = e.signer
		}
		return lc
	}
	return oauthflow.Options{
		Clients: map[string]*oauthflow.Client{
			"mcp":   client("mcp", e.resourceURI, e.basic),
			"post":  client("post", e.resourceURI, e.post),
			"pkjwt": client("pkjwt", e.resourceURI, e.pkjwt),
			"wrong": client("wrong", e.wrongURI, e.basic),
		},
		Route:           route,
		Sessions:        newStore(t, nil, 1),
		Verifier:        e.verifier,
		PublicURL:       e.publicURL,
		SuccessRedirect: successRedirect,
		Logger:          slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
}

// serve builds a Handler from o and makes the gateway's listener serve it.
func (e *env) serve(t *testing.T, o oauthflow.Options) *oauthflow.Handler {
	t.Helper()
	h, err := oauthflow.New(o)
	if err != nil {
		t.Fatal(err)
	}
	e.current.Store(h)
	return h
}

// errNoSession stands for found == false in these tests: accessToken folds the three answers
// of [oauthflow.Handler.AccessToken] into a token or one error to compare.
var errNoSession = errors.New("no valid session")

func accessToken(ctx context.Context, h *oauthflow.Handler, resource, cookieHeader string) (string, error) {
	tok, found, err := h.AccessToken(ctx, resource, cookieHeader)
	switch {
	case (err != nil || !found) && tok != "":
		return "", fmt.Errorf("AccessToken answered a token with found=%v, err=%v", found, err)
	case err != nil && found:
		return "", fmt.Errorf("AccessToken answered found with an error: %w", err)
	case err != nil:
		return "", err
	case !found:
		return "", errNoSession
	}
	return tok, nil
}

// route is the gateway's router in these tests.
func route(_, path string) (string, bool) {
	for _, name := range []string{"mcp", "post", "pkjwt", "wrong", "other"} {
		if path == "/"+name || strings.HasPrefix(path, "/"+name+"/") {
			return name, true
		}
	}
	return "", false
}

func newStore(t *testing.T, rc redis.UniversalClient, seed byte) *oauthflow.Store {
	t.Helper()
	var k oauthflow.Key
	for i := range k {
		k[i] = seed + byte(i)*3 + 1
	}
	s, err := oauthflow.NewStore(oauthflow.StoreOptions{Key: k, Redis: rc})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestLogin(t *testing.T) {
	e := newEnv(t)

	t.Run("full flow", func(t *testing.T) {
		for _, tc := range []struct{ resource, method string }{
			{"mcp", "client_secret_basic"},
			{"post", "client_secret_post"},
			{"pkjwt", "private_key_jwt"},
		} {
			t.Run(tc.method, func(t *testing.T) { e.testFullFlow(t, tc.resource) })
		}
	})
	t.Run("state replay", e.testStateReplay)
	t.Run("state cookie", e.testStateCookie)
	t.Run("iss", e.testIss)
	t.Run("error response", e.testErrorResponse)
	t.Run("no S256", e.testNoS256)
	t.Run("return paths", e.testReturnPaths)
	t.Run("another browser", e.testAnotherBrowser)
	t.Run("token for another resource", e.testWrongAudience)
	t.Run("tampered cookies", e.testTamperedCookies)
	t.Run("expired session", e.testExpiredSession)
	t.Run("login URL", e.testLoginURL)
	t.Run("refresh", e.testRefresh)
	t.Run("refresh refused", e.testRefreshRefused)
	t.Run("logout", e.testLogout)
	t.Run("two replicas", e.testReplicas)
	t.Run("logs", e.testLogs)
}

func (e *env) testFullFlow(t *testing.T, resource string) {
	o := e.options(t)
	h := e.serve(t, o)
	b := newBrowser(t)

	// /oauth/login redirects to the authorization endpoint with every parameter.
	start := b.get(e.loginURL("/" + resource + "/x?y=1"))
	if start.status != http.StatusFound {
		t.Fatalf("login: HTTP %d %s", start.status, start.body)
	}
	if cc := start.header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("login Cache-Control = %q", cc)
	}
	authz := start.location(t)
	if got := authz.Scheme + "://" + authz.Host + authz.Path; got != e.md.AuthorizationEndpoint {
		t.Fatalf("redirect to %s, want the authorization endpoint %s", got, e.md.AuthorizationEndpoint)
	}
	q := authz.Query()
	c := o.Clients[resource]
	for k, want := range map[string]string{
		"response_type":         "code",
		"client_id":             c.ClientID,
		"redirect_uri":          e.publicURL + "/oauth/callback",
		"scope":                 "openid offline_access mcp:tools",
		"code_challenge_method": "S256",
		"resource":              e.resourceURI,
		"prompt":                "consent", // offline_access (OIDC Core §11)
	} {
		if q.Get(k) != want {
			t.Errorf("authorization request %s = %q, want %q", k, q.Get(k), want)
		}
	}
	for _, k := range []string{"state", "code_challenge", "nonce"} {
		if len(q.Get(k)) != 43 {
			t.Errorf("authorization request %s = %q, want 43 base64url characters", k, q.Get(k))
		}
	}
	bind := start.cookie(devCookie + "-state-")
	if bind == nil || !bind.HttpOnly || bind.SameSite != http.SameSiteLaxMode || bind.Path != "/" || bind.Secure || bind.MaxAge != 600 {
		t.Fatalf("login-state cookie %+v, want HttpOnly, SameSite=Lax, Path=/, Max-Age=600", bind)
	}
	// Sealed: nothing of the sign-in shows, neither as it is nor once the
	// base64url is decoded, and it is small. (Not any three letters: a
	// ciphertext's base64url spells "mcp" about once in 750 cookies.)
	sealed, decErr := base64.RawURLEncoding.DecodeString(bind.Value)
	if len(bind.Value) < 100 || len(bind.Name)+len(bind.Value) > 1024 || decErr != nil ||
		strings.Contains(bind.Value, q.Get("state")) || bytes.Contains(sealed, []byte(q.Get("state"))) ||
		bytes.Contains(sealed, []byte("mcp:tools")) || bytes.Contains(sealed, []byte(e.resourceURI)) ||
		bytes.Contains(sealed, []byte(c.ClientID)) {
		t.Errorf("login-state cookie %s=%s: want a sealed base64url value, without the state, under 1 KB (decoding: %v)", bind.Name, bind.Value, decErr)
	}

	cb := b.throughAS(t, authz, false)
	if cb.Query().Get("iss") != e.as.Issuer || cb.Query().Get("code") == "" {
		t.Fatalf("callback %s: want code and iss", cb.Redacted())
	}
	done := b.get(cb.String())
	if done.status != http.StatusFound || done.header.Get("Location") != "/"+resource+"/x?y=1" {
		t.Fatalf("callback: HTTP %d Location %q %s", done.status, done.header.Get("Location"), done.body)
	}
	ck := done.cookie(devCookie)
	if ck == nil {
		t.Fatalf("callback set no session cookie: %q", done.header.Values("Set-Cookie"))
	}
	if len(ck.Value) != 43 || strings.Contains(ck.Value, ".") {
		t.Errorf("session cookie value %q: want a 43-character id, no token", ck.Value)
	}
	if !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode || ck.Path != "/" || ck.Secure || ck.Domain != "" ||
		ck.MaxAge <= 0 || ck.MaxAge > int((8*time.Hour).Seconds()) {
		t.Errorf("session cookie %+v: want HttpOnly, SameSite=Lax, Path=/, not Secure (plain-http loopback), 0 < Max-Age <= 8h", ck)
	}
	raw := strings.Join(done.header.Values("Set-Cookie"), "\n")
	if !strings.Contains(raw, "HttpOnly") || !strings.Contains(raw, "SameSite=Lax") {
		t.Errorf("Set-Cookie %q", raw)
	}
	if cleared := done.cookie(devCookie + "-state-"); cleared == nil || cleared.MaxAge >= 0 {
		t.Errorf("binding cookie not cleared by the callback: %+v", cleared)
	}

	// The Check's side: the session's access token, verified as a Check would.
	header := "a=1; " + devCookie + "=" + ck.Value + "; b=2"
	tok, err := accessToken(e.ctx, h, resource, header)
	if err != nil {
		t.Fatal(err)
	}
	claims, err := e.verifier.Verify(e.ctx, tok, map[string]struct{}{e.as.Issuer: {}})
	if err != nil {
		t.Fatal(err)
	}
	if !claims.HasAudience(map[string]struct{}{e.resourceURI: {}}) || claims.Subject != userName || claims.ClientID != c.ClientID {
		t.Errorf("claims %+v %+v: want aud %s, sub %s, client %s", claims, claims.Grant, e.resourceURI, userName, c.ClientID)
	}
	if got := h.StripCookie(header); got != "a=1; b=2" {
		t.Errorf("StripCookie = %q", got)
	}
	if got := h.StripCookie(devCookie + "=" + ck.Value); got != "" {
		t.Errorf("StripCookie of the session cookie alone = %q", got)
	}
	// The browser's jar now has the session: the cookie goes with the next request.
	if got := b.jarCookie(e.publicURL, devCookie); got != ck.Value {
		t.Errorf("jar has session cookie %q", got)
	}
	// A session is for its resource only.
	other := "mcp"
	if resource == "mcp" {
		other = "post"
	}
	if _, err := accessToken(e.ctx, h, other, header); !errors.Is(err, errNoSession) {
		t.Errorf("AccessToken for another resource: %v, want no session", err)
	}
}

func (e *env) testStateReplay(t *testing.T) {
	e.serve(t, e.options(t))
	b := newBrowser(t)
	cb, _ := e.toCallback(t, b, "/mcp/x")
	bindName, bindValue := b.bindingCookie(t, e.publicURL)
	if r := b.get(cb.String()); r.status != http.StatusFound {
		t.Fatalf("first callback: HTTP %d %s", r.status, r.body)
	}
	before := e.counts.grant("authorization_code")
	// Replayed by the same browser (the login-state cookie is gone by now)…
	r := b.get(cb.String())
	if r.status != http.StatusBadRequest || r.header.Get("Location") != "" || !strings.Contains(r.body, "expired") {
		t.Errorf("replayed callback: HTTP %d %s", r.status, r.body)
	}
	// …and with the cookie put back (captured with the URL): the state is recorded as used,
	// and the code is not even presented to the server again.
	r = newBrowser(t).getWithCookie(cb.String(), bindName+"="+bindValue)
	if r.status != http.StatusBadRequest || r.header.Get("Location") != "" || r.cookie(devCookie) != nil ||
		!strings.Contains(r.body, "already completed") {
		t.Errorf("replayed callback with the login-state cookie: HTTP %d %s", r.status, r.body)
	}
	e.checkPage(t, r)
	if n := e.counts.grant("authorization_code") - before; n != 0 {
		t.Errorf("the replays reached the token endpoint %d times, want 0", n)
	}
}

// testStateCookie: a callback is refused (400, the code never exchanged) unless the browser
// sends the login-state cookie sealed for that very state, unchanged, under this key, before
// it expires; and none of those failures spends the real sign-in.
func (e *env) testStateCookie(t *testing.T) {
	o := e.options(t)
	clock := testkit.NewClock()
	o.Now = clock.Now
	e.serve(t, o)
	b := newBrowser(t)
	cb, _ := e.toCallback(t, b, "/mcp/x")
	name, value := b.bindingCookie(t, e.publicURL)
	other := newBrowser(t)
	_, _ = e.toCallback(t, other, "/mcp/y")
	otherName, otherValue := other.bindingCookie(t, e.publicURL)
	flipped := []byte(value) // another base64url character in the middle
	if flipped[len(flipped)/2] == 'A' {
		flipped[len(flipped)/2] = 'B'
	} else {
		flipped[len(flipped)/2] = 'A'
	}
	otherKey := e.options(t)
	otherKey.Sessions = newStore(t, nil, 7)
	otherKey.Now = clock.Now

	before := e.counts.grant("authorization_code")
	for _, tc := range []struct {
		name, cookie, wantBody string
		handler                *oauthflow.Options // served for this case only
		advance                time.Duration
	}{
		{name: "missing", cookie: "", wantBody: "another browser"},
		{name: "tampered", cookie: name + "=" + string(flipped), wantBody: "not started in this browser"},
		{name: "truncated", cookie: name + "=" + value[:len(value)-8], wantBody: "not started in this browser"},
		{name: "issued for another state", cookie: name + "=" + otherValue, wantBody: "not started in this browser"},
		{name: "another state's cookie under its own name", cookie: otherName + "=" + otherValue, wantBody: "another browser"},
		{name: "sealed under another key", cookie: name + "=" + value, wantBody: "not started in this browser", handler: &otherKey},
		{name: "expired", cookie: name + "=" + value, wantBody: "has expired", advance: 10*time.Minute + time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.handler != nil {
				e.serve(t, *tc.handler)
				defer e.serve(t, o)
			}
			if tc.advance != 0 {
				clock.Advance(tc.advance)
				defer clock.Advance(-tc.advance)
			}
			r := newBrowser(t).getWithCookie(cb.String(), tc.cookie)
			if r.status != http.StatusBadRequest || r.cookie(devCookie) != nil || !strings.Contains(r.body, tc.wantBody) {
				t.Errorf("callback with cookie %q: HTTP %d %s; want 400 with %q", tc.cookie, r.status, r.body, tc.wantBody)
			}
			if n := e.counts.grant("authorization_code") - before; n != 0 {
				t.Errorf("the code was exchanged %d times", n)
			}
		})
	}
	// Just before it expires, the real browser still completes its sign-in.
	clock.Advance(10*time.Minute - 2*time.Second)
	if r := b.get(cb.String()); r.status != http.StatusFound || r.cookie(devCookie) == nil {
		t.Errorf("the real callback after the forged ones: HTTP %d %s", r.status, r.body)
	}
}

func (e *env) testIss(t *testing.T) {
	e.serve(t, e.options(t))
	for name, edit := range map[string]func(q url.Values){
		"wrong":   func(q url.Values) { q.Set("iss", "http://evil.example") },
		"missing": func(q url.Values) { q.Del("iss") },
		"slash":   func(q url.Values) { q.Set("iss", e.as.Issuer+"/") },
	} {
		t.Run(name, func(t *testing.T) {
			b := newBrowser(t)
			cb, _ := e.toCallback(t, b, "/mcp/x")
			q := cb.Query()
			edit(q)
			cb.RawQuery = q.Encode()
			before := e.counts.grant("authorization_code")
			r := b.get(cb.String())
			if r.status != http.StatusBadRequest || r.cookie(devCookie) != nil {
				t.Errorf("callback with %s iss: HTTP %d %s", name, r.status, r.body)
			}
			if e.counts.grant("authorization_code") != before {
				t.Errorf("the code was exchanged despite the %s iss", name)
			}
		})
	}
}

func (e *env) testErrorResponse(t *testing.T) {
	e.serve(t, e.options(t))
	b := newBrowser(t)
	start := b.get(e.loginURL("/mcp/x"))
	cb := b.throughAS(t, start.location(t), true) // the user cancels at the authorization server
	if cb.Query().Get("error") != "access_denied" {
		t.Fatalf("callback %s: want error=access_denied", cb.Redacted())
	}
	r := b.get(cb.String())
	if r.status != http.StatusBadRequest || !strings.Contains(r.body, "<code>access_denied</code>") {
		t.Errorf("error callback: HTTP %d %s", r.status, r.body)
	}
	e.checkPage(t, r)
	// The state was consumed.
	if r := b.get(cb.String()); r.status != http.StatusBadRequest || !strings.Contains(r.body, "expired") {
		t.Errorf("error callback again: HTTP %d %s", r.status, r.body)
	}
	// Whatever the error says is escaped.
	r = b.get(e.publicURL + "/oauth/callback?error=" + url.QueryEscape("<script>alert(1)</script>"))
	if r.status != http.StatusBadRequest || strings.Contains(r.body, "<script>") ||
		!strings.Contains(r.body, html.EscapeString("<script>alert(1)</script>")) {
		t.Errorf("error without state: HTTP %d %s", r.status, r.body)
	}
}

func (e *env) testNoS256(t *testing.T) {
	o := e.options(t)
	for _, c := range o.Clients {
		c.Metadata = func(context.Context) (*oauthflow.Metadata, error) {
			m := e.md
			m.CodeChallengeMethodsSupported = []string{"plain"}
			return &m, nil
		}
	}
	e.serve(t, o)
	r := newBrowser(t).get(e.loginURL("/mcp/x"))
	if r.status != http.StatusBadGateway || r.header.Get("Location") != "" || !strings.Contains(r.body, "S256") {
		t.Errorf("login without S256 support: HTTP %d Location %q %s", r.status, r.header.Get("Location"), r.body)
	}
	e.checkPage(t, r)
}

func (e *env) testReturnPaths(t *testing.T) {
	e.serve(t, e.options(t))
	for _, rd := range []string{
		"//evil.example", "/\\evil", "https://evil", "/%2F%2Fevil", "/%2f%5cevil", "\\\\evil", "/\tx", "/\nx",
		"javascript:alert(1)", "/%252F%252Fevil", "evil", "/mcp/x\\..\\..", "/mcp/%zz",
		`/mcp/"x"`, // no URI has a raw double quote
		"/mcp/" + strings.Repeat("a", 1024-len("/mcp/")+1), // longer than 1024 bytes
		"/other/x", // routed, but without a login client
		"/nowhere", // not routed
	} {
		r := newBrowser(t).get(e.publicURL + "/oauth/login?" + url.Values{"rd": {rd}}.Encode())
		if r.status != http.StatusBadRequest || r.header.Get("Location") != "" {
			t.Errorf("rd %q: HTTP %d Location %q, want 400", rd, r.status, r.header.Get("Location"))
			continue
		}
		e.checkPage(t, r)
	}
	for _, rd := range []string{"/mcp/x?a=b&c=%2F%2F", "/mcp/caf%C3%A9#top", "/mcp//x", "/mcp/<a>&'%22",
		"/mcp/" + strings.Repeat("a", 1024-len("/mcp/"))} {
		b := newBrowser(t)
		cb, _ := e.toCallback(t, b, rd)
		if r := b.get(cb.String()); r.status != http.StatusFound || r.header.Get("Location") != rd {
			t.Errorf("rd %q: callback HTTP %d Location %q", rd, r.status, r.header.Get("Location"))
		}
	}
	// No rd, or an empty one: SuccessRedirect.
	for _, start := range []string{e.publicURL + "/oauth/login", e.publicURL + "/oauth/login?rd="} {
		b := newBrowser(t)
		r := b.get(start)
		if r.status != http.StatusFound {
			t.Fatalf("%s: HTTP %d %s", start, r.status, r.body)
		}
		cb := b.throughAS(t, r.location(t), false)
		if r := b.get(cb.String()); r.status != http.StatusFound || r.header.Get("Location") != successRedirect {
			t.Errorf("%s: callback HTTP %d Location %q, want %s", start, r.status, r.header.Get("Location"), successRedirect)
		}
	}
	if r := newBrowser(t).get(e.publicURL + "/oauth/login?rd=/mcp/a&rd=/mcp/b"); r.status != http.StatusBadRequest {
		t.Errorf("two rd: HTTP %d", r.status)
	}
}

// testAnotherBrowser: a callback delivered to a browser that did not start the sign-in (login
// CSRF) is refused, and gives that browser no session. (It writes nothing either, so the
// attacker can still finish the sign-in in the attacker's own browser: which signs in only
// the attacker.)
func (e *env) testAnotherBrowser(t *testing.T) {
	e.serve(t, e.options(t))
	attacker := newBrowser(t)
	cb, _ := e.toCallback(t, attacker, "/mcp/x")
	victim := newBrowser(t)
	before := e.counts.grant("authorization_code")
	r := victim.get(cb.String())
	if r.status != http.StatusBadRequest || r.cookie(devCookie) != nil || !strings.Contains(r.body, "another browser") {
		t.Errorf("callback in another browser: HTTP %d %s", r.status, r.body)
	}
	if n := e.counts.grant("authorization_code") - before; n != 0 {
		t.Errorf("the victim's callback exchanged the code (%d calls)", n)
	}
	if victim.jarCookie(e.publicURL, devCookie) != "" {
		t.Error("the victim's browser has a session")
	}
}

func (e *env) testWrongAudience(t *testing.T) {
	e.serve(t, e.options(t))
	b := newBrowser(t)
	cb, _ := e.toCallback(t, b, "/wrong/x")
	r := b.get(cb.String())
	if r.status != http.StatusBadGateway || r.cookie(devCookie) != nil ||
		!strings.Contains(r.body, "returned a token for another resource") {
		t.Errorf("token for another audience: HTTP %d %s", r.status, r.body)
	}
}

func (e *env) testTamperedCookies(t *testing.T) {
	o := e.options(t)
	h := e.serve(t, o)
	id := e.signIn(t, newBrowser(t), "/mcp/x")
	if _, err := accessToken(e.ctx, h, "mcp", devCookie+"="+id); err != nil {
		t.Fatal(err)
	}
	flip := []byte(id)
	flip[10] ^= 1
	for _, header := range []string{
		"",
		"other=1",
		devCookie + "=" + string(flip),
		devCookie + "=" + id[:42],
		devCookie + "=" + id + "A",
		devCookie + "=" + id[:20] + "." + id[21:],
		devCookie + "=eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln",
		strings.ToUpper(devCookie) + "=" + id,
	} {
		if tok, err := accessToken(e.ctx, h, "mcp", header); !errors.Is(err, errNoSession) || tok != "" {
			t.Errorf("Cookie %q: %q, %v; want no session", header, tok, err)
		}
	}
	// The real cookie after a forged one of the same name is still found.
	if _, err := accessToken(e.ctx, h, "mcp", devCookie+"=forged; "+devCookie+"="+id); err != nil {
		t.Errorf("a forged cookie before the real one: %v", err)
	}
}

func (e *env) testExpiredSession(t *testing.T) {
	o := e.options(t)
	clock := testkit.NewClock()
	o.Now = clock.Now
	o.SessionTTL = time.Hour
	h := e.serve(t, o)
	id := e.signIn(t, newBrowser(t), "/mcp/x")
	if _, err := accessToken(e.ctx, h, "mcp", devCookie+"="+id); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Hour + time.Second)
	if _, err := accessToken(e.ctx, h, "mcp", devCookie+"="+id); !errors.Is(err, errNoSession) {
		t.Errorf("after SessionTTL: %v, want no session", err)
	}
	if _, ok, _ := o.Sessions.Get(e.ctx, id); ok {
		t.Error("the expired session is still stored")
	}
}

func (e *env) testLoginURL(t *testing.T) {
	h := e.serve(t, e.options(t))
	want := e.publicURL + "/oauth/login?rd=" + url.QueryEscape("/mcp/x?y=1")
	for _, tc := range []struct{ host, path, want string }{
		{e.gwHost, "/mcp/x?y=1", want},
		{strings.ToUpper(e.gwHost), "/mcp/x?y=1", want},
		{"other.example", "/mcp/x", ""},                 // the cookie would not reach this host
		{strings.Split(e.gwHost, ":")[0], "/mcp/x", ""}, // another port
		{e.gwHost, "/other/x", ""},                      // no login client
		{e.gwHost, "/nowhere", ""},                      // not routed
		{e.gwHost, "//evil/mcp", ""},                    // not a return path
	} {
		if got := h.LoginURL(tc.host, tc.path); got != tc.want {
			t.Errorf("LoginURL(%q, %q) = %q, want %q", tc.host, tc.path, got, tc.want)
		}
	}
}

func (e *env) testRefresh(t *testing.T) {
	o := e.options(t)
	h := e.serve(t, o)
	id := e.signIn(t, newBrowser(t), "/mcp/x")
	header := devCookie + "=" + id
	old, err := accessToken(e.ctx, h, "mcp", header)
	if err != nil {
		t.Fatal(err)
	}
	before := e.counts.grant("refresh_token")
	e.expire(t, o.Sessions, id, -time.Minute)
	tok, err := accessToken(e.ctx, h, "mcp", header)
	if err != nil {
		t.Fatal(err)
	}
	if tok == old {
		t.Error("the expired access token was returned, not a refreshed one")
	}
	e.mustVerify(t, tok)
	if n := e.counts.grant("refresh_token") - before; n != 1 {
		t.Errorf("%d refresh requests, want 1", n)
	}
	// Now fresh: no further refresh.
	for range 3 {
		if again, err := accessToken(e.ctx, h, "mcp", header); err != nil || again != tok {
			t.Errorf("AccessToken after the refresh: %v (same token: %v)", err, again == tok)
		}
	}
	if n := e.counts.grant("refresh_token") - before; n != 1 {
		t.Errorf("%d refresh requests after more calls, want 1", n)
	}
	sess, ok, err := o.Sessions.Get(e.ctx, id)
	if err != nil || !ok || sess.AccessToken != tok || time.Until(sess.Expiry) < 4*time.Minute || sess.RefreshToken == "" {
		t.Errorf("stored session after the refresh: %v %v %+v", ok, err, sess)
	}
	// Within 30s of expiry counts as expired.
	e.expire(t, o.Sessions, id, 20*time.Second)
	if tok2, err := accessToken(e.ctx, h, "mcp", header); err != nil || tok2 == tok {
		t.Errorf("token expiring in 20s: %v (refreshed: %v)", err, tok2 != tok)
	}
}

func (e *env) testRefreshRefused(t *testing.T) {
	o := e.options(t)
	h := e.serve(t, o)
	id := e.signIn(t, newBrowser(t), "/mcp/x")
	sess, ok, err := o.Sessions.Get(e.ctx, id)
	if err != nil || !ok || sess.RefreshToken == "" {
		t.Fatalf("session %v %v: want one with a refresh token", ok, err)
	}
	if err := e.as.Revoke(e.ctx, e.basic, sess.RefreshToken); err != nil {
		t.Fatal(err)
	}
	e.expire(t, o.Sessions, id, -time.Second)
	before := e.counts.grant("refresh_token")
	if tok, err := accessToken(e.ctx, h, "mcp", devCookie+"="+id); !errors.Is(err, errNoSession) {
		t.Errorf("refresh with a revoked refresh token: %q, %v; want no session", tok, err)
	}
	if n := e.counts.grant("refresh_token") - before; n != 1 {
		t.Errorf("%d refresh requests, want 1", n)
	}
	if _, ok, _ := o.Sessions.Get(e.ctx, id); ok {
		t.Error("the session survived a refused refresh")
	}
	if !strings.Contains(e.logs.String(), `"event":"refresh_failed"`) {
		t.Error("no refresh_failed event logged")
	}
}

func (e *env) testLogout(t *testing.T) {
	o := e.options(t)
	h := e.serve(t, o)
	b := newBrowser(t)
	id := e.signIn(t, b, "/mcp/x")
	sess, _, _ := o.Sessions.Get(e.ctx, id)
	before := len(e.counts.revoked())
	// stillSignedIn: the session works, nothing was revoked, the browser keeps its cookie.
	stillSignedIn := func(t *testing.T, what string, r *response) {
		t.Helper()
		if ck := r.cookie(devCookie); ck != nil {
			t.Errorf("%s: Set-Cookie %+v, want the session cookie left alone", what, ck)
		}
		if _, err := accessToken(e.ctx, h, "mcp", devCookie+"="+id); err != nil {
			t.Errorf("%s: the session ended: %v", what, err)
		}
		if got := e.counts.revoked()[before:]; len(got) != 0 {
			t.Errorf("%s: revocation calls %q, want none", what, got)
		}
	}

	// A GET (a link, an image, a cross-site navigation) only asks: a page with a form that
	// POSTs to the same path, rd kept.
	t.Run("GET asks", func(t *testing.T) {
		r := b.get(e.publicURL + "/oauth/logout?rd=/mcp/bye")
		if r.status != http.StatusOK || r.header.Get("Location") != "" {
			t.Fatalf("GET logout: HTTP %d Location %q %s", r.status, r.header.Get("Location"), r.body)
		}
		e.checkPage(t, r)
		if csp := r.header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") ||
			!strings.Contains(csp, "form-action 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
			t.Errorf("confirmation page CSP %q", csp)
		}
		// same-origin: the button's POST carries the page's Origin (no-referrer would make it
		// "null").
		if r.header.Get("X-Content-Type-Options") != "nosniff" || r.header.Get("Referrer-Policy") != "same-origin" {
			t.Errorf("confirmation page headers %v", r.header)
		}
		if !strings.Contains(r.body, `<form method="post" action="/oauth/logout?rd=%2Fmcp%2Fbye">`) {
			t.Errorf("confirmation page without the POST form to /oauth/logout?rd=…: %s", r.body)
		}
		stillSignedIn(t, "GET logout", r)
		// The values on the page are escaped.
		rd := `/mcp/<b>&x='y'`
		r = b.get(e.publicURL + "/oauth/logout?" + url.Values{"rd": {rd}}.Encode())
		if r.status != http.StatusOK || strings.Contains(r.body, "<b>") || strings.Contains(r.body, "'y'") ||
			!strings.Contains(r.body, html.EscapeString("/oauth/logout?"+url.Values{"rd": {rd}}.Encode())) {
			t.Errorf("confirmation page for rd %q: HTTP %d %s", rd, r.status, r.body)
		}
		stillSignedIn(t, "GET logout with an odd rd", r)
	})

	// A POST from another site (a form on an attacker's page) is refused, whatever it sends.
	t.Run("cross-site POST refused", func(t *testing.T) {
		for name, hdr := range map[string]map[string]string{
			"another origin":                 {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
			"another origin, same-origin":    {"Origin": "https://evil.example", "Sec-Fetch-Site": "same-origin"},
			"another port":                   {"Origin": "http://" + strings.Split(e.gwHost, ":")[0] + ":1"},
			"https twin":                     {"Origin": "https://" + e.gwHost},
			"null origin":                    {"Origin": "null"},
			"null origin, cross-site":        {"Origin": "null", "Sec-Fetch-Site": "cross-site"},
			"origin with a path":             {"Origin": e.publicURL + "/x"},
			"two origins":                    {"Origin": e.publicURL + ", https://evil.example"},
			"no origin, cross-site":          {"Sec-Fetch-Site": "cross-site"},
			"no origin, same-site":           {"Sec-Fetch-Site": "same-site"},
			"no origin, no Sec-Fetch-Site":   {},
			"no origin, unknown fetch value": {"Sec-Fetch-Site": "same-origin, none"},
		} {
			t.Run(name, func(t *testing.T) {
				r := b.postWith(e.publicURL+"/oauth/logout?rd=/mcp/bye", nil, hdr)
				if r.status != http.StatusForbidden || r.header.Get("Location") != "" {
					t.Errorf("HTTP %d Location %q, want 403", r.status, r.header.Get("Location"))
				}
				e.checkPage(t, r)
				stillSignedIn(t, name, r)
			})
		}
	})

	t.Run("same-origin POST signs out", func(t *testing.T) {
		r := b.postWith(e.publicURL+"/oauth/logout?rd=/mcp/bye", nil, map[string]string{"Origin": e.publicURL})
		if r.status != http.StatusFound || r.header.Get("Location") != "/mcp/bye" {
			t.Fatalf("logout: HTTP %d Location %q %s", r.status, r.header.Get("Location"), r.body)
		}
		ck := r.cookie(devCookie)
		if ck == nil || ck.MaxAge >= 0 || ck.Value != "" || !ck.HttpOnly || ck.Path != "/" || ck.SameSite != http.SameSiteLaxMode {
			t.Errorf("logout cookie %+v: want it cleared (Max-Age=0) with the same attributes", ck)
		}
		if b.jarCookie(e.publicURL, devCookie) != "" {
			t.Error("the browser still has the session cookie")
		}
		if got := e.counts.revoked()[before:]; !slices.Equal(got, []string{"refresh_token", "access_token"}) {
			t.Errorf("revocation calls %q, want the refresh token then the access token", got)
		}
		if _, ok, _ := o.Sessions.Get(e.ctx, id); ok {
			t.Error("the session survived the logout")
		}
		if _, err := accessToken(e.ctx, h, "mcp", devCookie+"="+id); !errors.Is(err, errNoSession) {
			t.Errorf("AccessToken after logout: %v", err)
		}
		// The refresh token is dead at the server.
		if status, body := e.refreshDirect(t, sess.RefreshToken); status != http.StatusBadRequest || !strings.Contains(body, "invalid_grant") {
			t.Errorf("refresh with the revoked refresh token: HTTP %d %s", status, body)
		}
	})

	// Without Origin, or with "null" (a page under Referrer-Policy: no-referrer), Sec-Fetch-Site
	// same-origin (or none: typed by the user) will do; rd may come in the form too.
	t.Run("Sec-Fetch-Site and rd in the form", func(t *testing.T) {
		for name, hdr := range map[string]map[string]string{
			"same-origin":              {"Sec-Fetch-Site": "same-origin"},
			"none":                     {"Sec-Fetch-Site": "none"},
			"null origin, same-origin": {"Origin": "null", "Sec-Fetch-Site": "same-origin"},
		} {
			b2 := newBrowser(t)
			id2 := e.signIn(t, b2, "/mcp/x")
			r := b2.postWith(e.publicURL+"/oauth/logout", url.Values{"rd": {"/mcp/form"}}, hdr)
			if r.status != http.StatusFound || r.header.Get("Location") != "/mcp/form" {
				t.Errorf("%s: HTTP %d Location %q", name, r.status, r.header.Get("Location"))
			}
			if _, err := accessToken(e.ctx, h, "mcp", devCookie+"="+id2); !errors.Is(err, errNoSession) {
				t.Errorf("%s: AccessToken after logout: %v", name, err)
			}
		}
	})

	// Without a session, and with an invalid rd: still a clean sign-out to SuccessRedirect.
	t.Run("no session, invalid rd", func(t *testing.T) {
		r := newBrowser(t).postWith(e.publicURL+"/oauth/logout?rd=//evil.example", nil, map[string]string{"Origin": e.publicURL})
		if r.status != http.StatusFound || r.header.Get("Location") != successRedirect || r.cookie(devCookie) == nil {
			t.Errorf("logout without session: HTTP %d Location %q", r.status, r.header.Get("Location"))
		}
		r = newBrowser(t).get(e.publicURL + "/oauth/logout?rd=//evil.example")
		if r.status != http.StatusOK || strings.Contains(r.body, "evil") || !strings.Contains(r.body, `action="/oauth/logout"`) {
			t.Errorf("confirmation page with an invalid rd: HTTP %d %s", r.status, r.body)
		}
	})
}

// testReplicas: two gateway replicas, each with its own Store on one Redis, share sessions
// and refresh a session once between them.
func (e *env) testReplicas(t *testing.T) {
	srv := redistest.Start(t)
	newClient := func() redis.UniversalClient {
		c, err := cache.NewRedisClient(cache.RedisClientOptions{URL: "redis://" + srv.Addr(), Timeout: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	oa, ob := e.options(t), e.options(t)
	oa.Sessions, ob.Sessions = newStore(t, newClient(), 1), newStore(t, newClient(), 1)
	ha := e.serve(t, oa)
	hb, err := oauthflow.New(ob)
	if err != nil {
		t.Fatal(err)
	}

	// A session made by one replica is read by the other.
	id := e.signIn(t, newBrowser(t), "/mcp/x")
	header := devCookie + "=" + id
	old, err := accessToken(e.ctx, hb, "mcp", header)
	if err != nil {
		t.Fatal(err)
	}

	// A callback completed on one replica is refused on the other, with its cookie put back:
	// the used-state marker is shared.
	t.Run("replay on the other replica", func(t *testing.T) {
		b := newBrowser(t)
		cb, _ := e.toCallback(t, b, "/mcp/x")
		name, value := b.bindingCookie(t, e.publicURL)
		if r := b.get(cb.String()); r.status != http.StatusFound {
			t.Fatalf("callback on the first replica: HTTP %d %s", r.status, r.body)
		}
		before := e.counts.grant("authorization_code")
		req := httptest.NewRequest(http.MethodGet, cb.String(), nil)
		req.Header.Set("Cookie", name+"="+value)
		rec := httptest.NewRecorder()
		hb.ServeHTTP(rec, req)
		if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "already completed") {
			t.Errorf("replay on the second replica: HTTP %d %s", rec.Code, rec.Body.String())
		}
		if n := e.counts.grant("authorization_code") - before; n != 0 {
			t.Errorf("the replay reached the token endpoint %d times", n)
		}
	})

	t.Run("concurrent refresh", func(t *testing.T) {
		e.expire(t, oa.Sessions, id, -time.Second)
		before := e.counts.grant("refresh_token")
		const n = 20
		toks := make([]string, n)
		errs := make([]error, n)
		var ready, wg sync.WaitGroup
		ready.Add(n)
		startGun := make(chan struct{})
		for i := range n {
			wg.Go(func() {
				h := ha
				if i%2 == 1 {
					h = hb
				}
				ready.Done()
				<-startGun
				toks[i], errs[i] = accessToken(e.ctx, h, "mcp", header)
			})
		}
		ready.Wait()
		close(startGun)
		wg.Wait()
		if got := e.counts.grant("refresh_token") - before; got != 1 {
			t.Errorf("%d refresh requests reached the token endpoint, want exactly 1", got)
		}
		for i := range n {
			if errs[i] != nil {
				t.Errorf("caller %d: %v", i, errs[i])
				continue
			}
			if toks[i] == old || toks[i] != toks[0] {
				t.Errorf("caller %d got another token than the refreshed one", i)
			}
		}
		e.mustVerify(t, toks[0])
	})

	t.Run("undecryptable session", func(t *testing.T) {
		// A session written under another key (or changed in Redis) is ended.
		other := newStore(t, newClient(), 9)
		forged, _ := oauthflow.NewID()
		if err := other.Put(e.ctx, forged, &oauthflow.Session{Resource: "mcp", Issuer: e.as.Issuer, AccessToken: "x", Created: time.Now()}, time.Minute); err != nil {
			t.Fatal(err)
		}
		if _, err := accessToken(e.ctx, ha, "mcp", devCookie+"="+forged); !errors.Is(err, errNoSession) {
			t.Errorf("undecryptable session: %v, want no session", err)
		}
		if _, ok, _ := other.Get(e.ctx, forged); ok {
			t.Error("the undecryptable session was not deleted")
		}
	})

	t.Run("redis down", func(t *testing.T) {
		srv.Stop()
		if _, err := accessToken(e.ctx, ha, "mcp", header); err == nil || errors.Is(err, errNoSession) {
			t.Errorf("AccessToken with Redis down: %v, want an error, not no session", err)
		}
	})
}

// testLogs: one event per login, refresh, failure and logout, and never a secret.
func (e *env) testLogs(t *testing.T) {
	o := e.options(t)
	h := e.serve(t, o)
	b := newBrowser(t)
	cb, _ := e.toCallback(t, b, "/mcp/x")
	_, bindValue := b.bindingCookie(t, e.publicURL)
	r := b.get(cb.String())
	id := r.cookie(devCookie).Value
	sess, _, _ := o.Sessions.Get(e.ctx, id)
	e.expire(t, o.Sessions, id, -time.Second)
	tok, err := accessToken(e.ctx, h, "mcp", devCookie+"="+id)
	if err != nil {
		t.Fatal(err)
	}
	b.postWith(e.publicURL+"/oauth/logout", nil, map[string]string{"Origin": e.publicURL})

	logs := e.logs.String()
	for _, ev := range []string{"login", "login_failed", "refresh", "refresh_failed", "logout"} {
		if !strings.Contains(logs, `"event":"`+ev+`"`) {
			t.Errorf("no %s event in the logs", ev)
		}
	}
	if !strings.Contains(logs, `"subject":"`+userName+`"`) || !strings.Contains(logs, `"resource":"mcp"`) {
		t.Error("the events name no subject or resource")
	}
	q := cb.Query()
	for what, secret := range map[string]string{
		"session id": id, "access token": sess.AccessToken, "refresh token": sess.RefreshToken,
		"ID token": sess.IDToken, "refreshed token": tok, "code": q.Get("code"), "state": q.Get("state"),
		"login-state cookie": bindValue,
	} {
		if secret != "" && strings.Contains(logs, secret) {
			t.Errorf("the logs contain the %s", what)
		}
	}
	if t.Failed() {
		t.Logf("logs:\n%s", logs)
	}
}

// --- helpers ---------------------------------------------------------------------------

func (e *env) loginURL(rd string) string {
	return e.publicURL + "/oauth/login?" + url.Values{"rd": {rd}}.Encode()
}

// toCallback starts a sign-in for rd in b and walks the authorization server's pages up to
// the redirect back to the gateway, which it returns unrequested, with the state.
func (e *env) toCallback(t *testing.T, b *browser, rd string) (*url.URL, string) {
	t.Helper()
	r := b.get(e.loginURL(rd))
	if r.status != http.StatusFound {
		t.Fatalf("login for %q: HTTP %d %s", rd, r.status, r.body)
	}
	authz := r.location(t)
	return b.throughAS(t, authz, false), authz.Query().Get("state")
}

// signIn completes a sign-in for rd in b and returns the session id.
func (e *env) signIn(t *testing.T, b *browser, rd string) string {
	t.Helper()
	cb, _ := e.toCallback(t, b, rd)
	r := b.get(cb.String())
	ck := r.cookie(devCookie)
	if r.status != http.StatusFound || ck == nil {
		t.Fatalf("callback: HTTP %d %s", r.status, r.body)
	}
	return ck.Value
}

// expire makes the stored session's access token expire at now+d.
func (e *env) expire(t *testing.T, s *oauthflow.Store, id string, d time.Duration) {
	t.Helper()
	sess, ok, err := s.Get(e.ctx, id)
	if err != nil || !ok {
		t.Fatalf("session: %v %v", ok, err)
	}
	sess.Expiry = time.Now().Add(d)
	if err := s.Put(e.ctx, id, sess, time.Hour); err != nil {
		t.Fatal(err)
	}
}

func (e *env) mustVerify(t *testing.T, tok string) {
	t.Helper()
	c, err := e.verifier.Verify(e.ctx, tok, map[string]struct{}{e.as.Issuer: {}})
	if err != nil {
		t.Fatalf("the token does not verify: %v", err)
	}
	if !c.HasAudience(map[string]struct{}{e.resourceURI: {}}) || c.Subject != userName {
		t.Errorf("token aud %v sub %q", c.Audience, c.Subject)
	}
}

// refreshDirect tries a refresh grant at the authorization server itself.
func (e *env) refreshDirect(t *testing.T, rt string) (int, string) {
	t.Helper()
	md, err := e.as.Metadata(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "resource": {e.resourceURI}}
	req, _ := http.NewRequestWithContext(e.ctx, http.MethodPost, md.TokenEndpoint, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(e.basic.ID, e.basic.Secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// checkPage checks an error page's headers and that it is HTML.
func (e *env) checkPage(t *testing.T, r *response) {
	t.Helper()
	if ct := r.header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("page Content-Type %q", ct)
	}
	if cc := r.header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("page Cache-Control %q", cc)
	}
	if !strings.HasPrefix(r.body, "<!DOCTYPE html>") {
		t.Errorf("page %q", r.body)
	}
}

// browser is a cookie-keeping HTTP client that follows no redirect by itself.
type browser struct {
	t   *testing.T
	jar *cookiejar.Jar
	c   *http.Client
}

func newBrowser(t *testing.T) *browser {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &browser{t: t, jar: jar, c: &http.Client{
		Jar:           jar,
		Timeout:       10 * time.Second,
		Transport:     &http.Transport{Proxy: nil, DisableKeepAlives: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

type response struct {
	status int
	header http.Header
	body   string
	url    *url.URL
}

func (b *browser) do(req *http.Request) *response {
	b.t.Helper()
	req.Header.Set("Accept", "text/html")
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", req.Method, req.URL.Redacted(), err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		b.t.Fatal(err)
	}
	return &response{status: resp.StatusCode, header: resp.Header, body: string(body), url: req.URL}
}

func (b *browser) get(u string) *response {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		b.t.Fatal(err)
	}
	return b.do(req)
}

func (b *browser) getWithCookie(u, cookie string) *response {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Cookie", cookie)
	return b.do(req)
}

// postWith POSTs form with the given request headers (Origin, Sec-Fetch-Site: what a browser
// would send).
func (b *browser) postWith(u string, form url.Values, headers map[string]string) *response {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	return b.do(req)
}

// location is the response's Location, resolved against its URL.
func (r *response) location(t *testing.T) *url.URL {
	t.Helper()
	loc := r.header.Get("Location")
	if loc == "" {
		t.Fatalf("HTTP %d without Location: %s", r.status, r.body)
	}
	u, err := r.url.Parse(loc)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// cookie is the Set-Cookie of the response named name, or starting with name when it ends
// with "-".
func (r *response) cookie(name string) *http.Cookie {
	for _, c := range (&http.Response{Header: r.header}).Cookies() {
		if c.Name == name || (strings.HasSuffix(name, "-") && strings.HasPrefix(c.Name, name)) {
			return c
		}
	}
	return nil
}

func (b *browser) jarCookie(u, name string) string {
	pu, _ := url.Parse(u)
	for _, c := range b.jar.Cookies(pu) {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}

func (b *browser) bindingCookie(t *testing.T, u string) (string, string) {
	t.Helper()
	pu, _ := url.Parse(u)
	for _, c := range b.jar.Cookies(pu) {
		if strings.HasPrefix(c.Name, devCookie+"-state-") {
			return c.Name, c.Value
		}
	}
	t.Fatal("no binding cookie in the jar")
	return "", ""
}

// throughAS walks the authorization server's pages from authz (oidctest.SignIn) up to the
// redirect to the gateway's callback, which it returns.
func (b *browser) throughAS(t *testing.T, authz *url.URL, abort bool) *url.URL {
	t.Helper()
	return oidctest.SignIn(t, b.c, authz, userName, "/oauth/callback", abort)
}
