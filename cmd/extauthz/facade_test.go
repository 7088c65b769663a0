package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/extauthz/extauthz/internal/oidctest"
	"github.com/extauthz/extauthz/pkg/config"
)

// TestOAuthFacadeThroughTheCheck runs the OAuth facade as configured, in
// front of an oidc-provider that registers no clients: an MCP client
// registers with the gateway, signs its user in through the gateway's own
// client, gets the user's consent and a token minted by the gateway, which
// the Check then allows on the resource; refresh rotates, reuse revokes.
func TestOAuthFacadeThroughTheCheck(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	public := "http://" + ln.Addr().String()
	resource := public + "/mcp"
	gatewayClient := oidctest.Client{
		ID: "extauthz-gateway", Secret: "gateway-secret-0123456789", AuthMethod: "client_secret_basic",
		GrantTypes: []string{"authorization_code", "refresh_token"}, RedirectURIs: []string{public + "/oauth/callback"},
	}
	as := oidctest.Start(t, oidctest.Options{
		DisableRegistration: true,
		Clients:             []oidctest.Client{gatewayClient},
		Resources:           []oidctest.Resource{{Resource: resource, Scope: "mcp:tools", Format: "jwt"}},
	})
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "facade.pem")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("EXTAUTHZ_TEST_SESSION_KEY", strings.Repeat("cd", 32))
	t.Setenv("EXTAUTHZ_TEST_GATEWAY_SECRET", gatewayClient.Secret)
	cfg, err := config.Parse([]byte(fmt.Sprintf(`
listen: {grpc: "127.0.0.1:0", admin: "off"}
public_url: %q
login: {session_key: {env: EXTAUTHZ_TEST_SESSION_KEY}}
oauth_facade:
  signing_keys: [{file: %q}]
resources:
  - name: mcp
    resource: %q
    required_scopes: ["mcp:tools"]
    authorization_servers: [{issuer: %q}]
    oauth_facade:
      enabled: true
      client_id: extauthz-gateway
      client_secret: {env: EXTAUTHZ_TEST_GATEWAY_SECRET}
      scopes: [openid, offline_access, "mcp:tools"]
`, public, keyFile, resource, as.Issuer)))
	if err != nil {
		t.Fatal(err)
	}
	g := runGateway(t, cfg, appOptions{lnHTTP: ln})
	g.waitReady(t)
	issuer := public + "/oauth"

	// Discovery: the resource names the facade first; the facade's metadata.
	status, body := g.get(t, public+"/.well-known/oauth-protected-resource/mcp")
	var prm struct {
		AuthorizationServers []string `json:"authorization_servers"`
	}
	if err := json.Unmarshal(body, &prm); status != 200 || err != nil || len(prm.AuthorizationServers) == 0 || prm.AuthorizationServers[0] != issuer {
		t.Fatalf("protected-resource metadata: %d %s", status, body)
	}
	status, body = g.get(t, public+"/.well-known/oauth-authorization-server/oauth")
	var raw map[string]any
	if err := json.Unmarshal(body, &raw); status != 200 || err != nil || raw["issuer"] != issuer || raw["registration_endpoint"] != issuer+"/register" {
		t.Fatalf("facade metadata: %d %s", status, body)
	}

	// Registration.
	redirect := "http://127.0.0.1:33418/callback"
	resp, err := http.Post(issuer+"/register", "application/json",
		strings.NewReader(`{"client_name":"Test MCP client","redirect_uris":["`+redirect+`"],"grant_types":["authorization_code","refresh_token"]}`))
	if err != nil {
		t.Fatal(err)
	}
	var reg struct {
		ClientID string `json:"client_id"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&reg); err != nil || resp.StatusCode != 201 {
		t.Fatalf("register: %d %v", resp.StatusCode, err)
	}
	resp.Body.Close()

	// Authorize, sign in at the provider, consent.
	vb := make([]byte, 32)
	_, _ = rand.Read(vb)
	verifier := base64.RawURLEncoding.EncodeToString(vb)
	sum := sha256.Sum256([]byte(verifier))
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(u string) *http.Response {
		t.Helper()
		r, err := browser.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	authz := issuer + "/authorize?" + url.Values{
		"response_type": {"code"}, "client_id": {reg.ClientID}, "redirect_uri": {redirect}, "state": {"s1"},
		"code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"},
		"resource": {resource}, "scope": {"mcp:tools"},
	}.Encode()
	r := get(authz)
	r.Body.Close()
	up, err := url.Parse(r.Header.Get("Location"))
	if err != nil || r.StatusCode != http.StatusFound || !strings.HasPrefix(up.String(), as.Issuer) {
		t.Fatalf("authorize: %d to %q", r.StatusCode, r.Header.Get("Location"))
	}
	cb := oidctest.SignIn(t, browser, up, "alice", "/oauth/callback", false)
	r = get(cb.String())
	r.Body.Close()
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/oauth/consent" {
		t.Fatalf("callback: %d to %q", r.StatusCode, r.Header.Get("Location"))
	}
	r = get(public + "/oauth/consent")
	page, _ := io.ReadAll(r.Body)
	r.Body.Close()
	m := regexp.MustCompile(`name="csrf_token" value="([^"]*)"`).FindSubmatch(page)
	if r.StatusCode != 200 || m == nil || !strings.Contains(string(page), "Test MCP client") {
		t.Fatalf("consent page: %d %s", r.StatusCode, page)
	}
	r, err = browser.PostForm(public+"/oauth/consent", url.Values{"csrf_token": {html.UnescapeString(string(m[1]))}, "decision": {"approve"}})
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	back, err := url.Parse(r.Header.Get("Location"))
	if err != nil || r.StatusCode != http.StatusSeeOther || back.Query().Get("state") != "s1" || back.Query().Get("iss") != issuer {
		t.Fatalf("consent answer: %d to %q", r.StatusCode, r.Header.Get("Location"))
	}

	// The token, and the Check.
	tokenReq := func(form url.Values) (int, map[string]any) {
		t.Helper()
		resp, err := http.PostForm(issuer+"/token", form)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out := map[string]any{}
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	status, tok := tokenReq(url.Values{
		"grant_type": {"authorization_code"}, "code": {back.Query().Get("code")}, "redirect_uri": {redirect},
		"code_verifier": {verifier}, "client_id": {reg.ClientID}, "resource": {resource},
	})
	at, _ := tok["access_token"].(string)
	rt, _ := tok["refresh_token"].(string)
	if status != 200 || at == "" || rt == "" {
		t.Fatalf("token: %d %v", status, tok)
	}
	d := g.check(t, resource, at)
	if d.status != 200 || d.upstream["x-extauthz-subject"] != "alice" || d.upstream["x-extauthz-client-id"] != reg.ClientID {
		t.Fatalf("Check with the facade's token: %+v", d)
	}
	// A token for this resource changed by one character is refused.
	if d := g.check(t, resource, at[:len(at)-2]+"AA"); d.status != 401 {
		t.Errorf("a changed token: %+v", d)
	}

	// Refresh, then reuse of the spent refresh token.
	status, ref := tokenReq(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {reg.ClientID}})
	at2, _ := ref["access_token"].(string)
	if status != 200 || at2 == "" {
		t.Fatalf("refresh: %d %v", status, ref)
	}
	if d := g.check(t, resource, at2); d.status != 200 {
		t.Errorf("Check with the refreshed token: %+v", d)
	}
	if status, out := tokenReq(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {reg.ClientID}}); status != 400 || out["error"] != "invalid_grant" {
		t.Errorf("reuse: %d %v", status, out)
	}

	// RFC 7009: the access token revoked at the facade is refused by the
	// Check; only its own client may revoke it.
	revoke := func(form url.Values) (int, map[string]any) {
		t.Helper()
		resp, err := http.PostForm(issuer+"/revoke", form)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out := map[string]any{}
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	if status, out := revoke(url.Values{"token": {at2}, "client_id": {"another-client"}}); status != 400 || out["error"] != "unauthorized_client" {
		t.Errorf("revoking another client's access token: %d %v", status, out)
	}
	if d := g.check(t, resource, at2); d.status != 200 {
		t.Fatalf("a refused revocation revoked the token: %+v", d)
	}
	if status, out := revoke(url.Values{"token": {at2}, "client_id": {reg.ClientID}, "token_type_hint": {"access_token"}}); status != 200 {
		t.Fatalf("revoking the access token: %d %v", status, out)
	}
	if d := g.check(t, resource, at2); d.status != 401 {
		t.Errorf("Check with the revoked access token: %+v", d)
	}

	// A Client ID Metadata Document at a private address is never fetched.
	r = get(issuer + "/authorize?" + url.Values{
		"response_type": {"code"}, "client_id": {"https://10.0.0.1/client.json"}, "redirect_uri": {"https://10.0.0.1/cb"},
		"code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"}, "resource": {resource},
	}.Encode())
	r.Body.Close()
	if r.StatusCode < 400 || r.Header.Get("Location") != "" {
		t.Errorf("CIMD at a private address: %d to %q", r.StatusCode, r.Header.Get("Location"))
	}

	// The facade's events are counted.
	rec := httptest.NewRecorder()
	g.app.tel.MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for _, want := range []string{
		`extauthz_oauth_facade_events_total{event="client_registered"} 1`, `extauthz_oauth_facade_events_total{event="consent_approved"} 1`,
		`extauthz_oauth_facade_events_total{event="token_code"} 1`, `extauthz_oauth_facade_events_total{event="token_refresh"} 1`,
		`extauthz_oauth_facade_events_total{event="token_refused"} 2`, `extauthz_oauth_facade_events_total{event="authorize_refused"} 1`, // the reuse, another client's revocation
		`extauthz_oauth_facade_events_total{event="revoked"} 1`,
	} {
		if !strings.Contains(rec.Body.String(), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}
