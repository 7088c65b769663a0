package httpauthz_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/extauthz/extauthz/internal/testkit"
	"github.com/extauthz/extauthz/pkg/authz"
	"github.com/extauthz/extauthz/pkg/config"
	"github.com/extauthz/extauthz/pkg/devissuer"
	"github.com/extauthz/extauthz/pkg/httpauthz"
	"github.com/extauthz/extauthz/pkg/jwks"
	"github.com/extauthz/extauthz/pkg/token"
	"github.com/extauthz/extauthz/pkg/verdict"
)

const resourceURI = "https://mcp.example.com/mcp"

// server is the HTTP authorization endpoint over a real engine, on a
// loopback port, with a resource that has one step-up rule.
func server(t *testing.T) (*httptest.Server, *devissuer.Issuer) {
	return serverWith(t, "", nil)
}

// serverWith adds top-level YAML to the configuration, and a browser
// login (nil: none) to the engine.
func serverWith(t *testing.T, top string, bl authz.BrowserLogin) (*httptest.Server, *devissuer.Issuer) {
	t.Helper()
	iss, _ := testkit.Issuer(t, "ES256", "", resourceURI, nil)
	return serve(t, iss, bl, top+fmt.Sprintf(`
resources:
  - name: mcp
    resource: %q
    required_scopes: ["mcp:tools"]
    scopes_supported: ["mcp:tools", "mcp:admin"]
    rules: [{method: tools/call, name: "delete_*", scopes: ["mcp:admin"]}]
    authorization_servers: [{issuer: %q, jwks_uri: %q}]
`, resourceURI, iss.Issuer(), iss.JWKSURL())), iss
}

// serve runs the HTTP authorization endpoint on a loopback port over a real
// engine built from the YAML configuration yml, verifying iss's tokens
// against its JWKS, with a browser login (nil: none).
func serve(t *testing.T, iss *devissuer.Issuer, bl authz.BrowserLogin, yml string) *httptest.Server {
	t.Helper()
	cfg, err := config.Parse([]byte(yml))
	if err != nil {
		t.Fatal(err)
	}
	src := jwks.New(func(context.Context) (string, error) { return iss.JWKSURL(), nil }, jwks.Options{})
	v, err := token.NewIssuerSet(token.Options{Issuers: map[string]token.Issuer{iss.Issuer(): {Keys: src}}})
	if err != nil {
		t.Fatal(err)
	}
	p, err := authz.NewPolicy(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e, err := authz.NewEngine(p, authz.Options{Verifier: v, Cache: verdict.LocalCache(100, nil), MaxTTL: time.Minute, BrowserLogin: bl})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(httpauthz.New(e, httpauthz.Options{}))
	t.Cleanup(srv.Close)
	return srv
}

type answer struct {
	status int
	header http.Header
	body   string
}

func do(t *testing.T, method, url string, header [][2]string, body string) answer {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range header {
		if strings.EqualFold(h[0], "host") {
			req.Host = h[1]
			continue
		}
		req.Header.Add(h[0], h[1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	a := answer{resp.StatusCode, resp.Header, string(b)}
	if strings.Contains(url, "/authz/nginx/") || strings.HasSuffix(url, "/authz/nginx") {
		return nginxRelayed(t, a)
	}
	// Traefik, Caddy and Envoy relay any status with its body, and nginx
	// proxies a preflight to /authz/nginx-preflight: their answers are the
	// real ones, without nginx's relay headers.
	if a.header.Get(httpauthz.StatusHeader) != "" || a.header.Get(httpauthz.BodyHeader) != "" {
		t.Errorf("%s answered with nginx's relay headers: %v", url, a.header)
	}
	return a
}

// nginxRelayed checks an answer of the nginx endpoint against what
// auth_request accepts (2xx, 401, 403; the body is lost) and returns the
// answer the shipped nginx.conf rebuilds from its headers.
func nginxRelayed(t *testing.T, a answer) answer {
	t.Helper()
	if a.status == http.StatusOK {
		if a.header.Get(httpauthz.StatusHeader) != "" {
			t.Errorf("an allow carries %s", httpauthz.StatusHeader)
		}
		return a
	}
	real, err := strconv.Atoi(a.header.Get(httpauthz.StatusHeader))
	if err != nil {
		t.Fatalf("nginx denial %d without a status in %s: %v", a.status, httpauthz.StatusHeader, a.header)
	}
	if want := map[bool]int{true: 401, false: 403}[real == 401]; a.status != want {
		t.Errorf("nginx denial of status %d answered %d, want %d", real, a.status, want)
	}
	if got := a.header.Get(httpauthz.BodyHeader); got != a.body {
		t.Errorf("%s = %q, the body is %q", httpauthz.BodyHeader, got, a.body)
	}
	a.status = real
	return a
}

func TestConventions(t *testing.T) {
	srv, iss := server(t)
	mint := func(scopes ...string) string {
		tok, err := iss.Mint(devissuer.Token{Subject: "alice", ClientID: "app", Scopes: scopes})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	tools, admin := mint("mcp:tools"), mint("mcp:tools", "mcp:admin")
	bearer := func(tok string) [2]string { return [2]string{"Authorization", "Bearer " + tok} }
	nginx := func(method, uri string, extra ...[2]string) (string, string, [][2]string) {
		return "GET", srv.URL + "/authz/nginx", append([][2]string{{"Host", "mcp.example.com"}, {"X-Original-Method", method}, {"X-Original-URI", uri}}, extra...)
	}
	traefik := func(method, uri string, extra ...[2]string) (string, string, [][2]string) {
		return "GET", srv.URL + "/authz/traefik", append([][2]string{
			{"X-Forwarded-Method", method}, {"X-Forwarded-Proto", "https"}, {"X-Forwarded-Host", "mcp.example.com"}, {"X-Forwarded-Uri", uri}}, extra...)
	}
	envoy := func(method, uri string, extra ...[2]string) (string, string, [][2]string) {
		return method, srv.URL + "/authz/envoy" + uri, append([][2]string{{"Host", "mcp.example.com"}}, extra...)
	}
	type conv func(method, uri string, extra ...[2]string) (string, string, [][2]string)
	for name, c := range map[string]conv{"nginx": nginx, "traefik": traefik, "envoy": envoy} {
		t.Run(name, func(t *testing.T) {
			run := func(method, uri string, extra ...[2]string) answer {
				m, u, h := c(method, uri, extra...)
				return do(t, m, u, h, "")
			}
			// MCP 2026-07-28 clients declare it; the Mcp-* headers decide
			// without the body only for them.
			v := [2]string{"MCP-Protocol-Version", "2026-07-28"}
			a := run("POST", "/mcp", bearer(tools), v, [2]string{"Mcp-Method", "tools/list"})
			if a.status != 200 || a.header.Get("X-Extauthz-Subject") != "alice" || a.header.Get("X-Extauthz-Client-Id") != "app" ||
				a.header.Get("X-Extauthz-Scopes") != "mcp:tools" {
				t.Errorf("allowed: %d %v", a.status, a.header)
			}
			a = run("POST", "/mcp")
			if a.status != 401 || a.header.Get("WWW-Authenticate") != `Bearer scope="mcp:tools", resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource/mcp", DPoP algs="ES256 ES384 EdDSA RS256 PS256"` {
				t.Errorf("no token: %d %q", a.status, a.header.Get("WWW-Authenticate"))
			}
			a = run("POST", "/mcp", bearer(tools), v, [2]string{"Mcp-Method", "tools/call"}, [2]string{"Mcp-Name", "delete_all"})
			if a.status != 403 || !strings.Contains(a.header.Get("WWW-Authenticate"), `error="insufficient_scope", scope="mcp:tools mcp:admin"`) {
				t.Errorf("step-up: %d %q", a.status, a.header.Get("WWW-Authenticate"))
			}
			a = run("POST", "/mcp", bearer(admin), v, [2]string{"Mcp-Method", "tools/call"}, [2]string{"Mcp-Name", "delete_all"})
			if a.status != 200 {
				t.Errorf("step-up satisfied: %d %s", a.status, a.body)
			}
			a = run("POST", "/mcp", bearer(admin), [2]string{"MCP-Protocol-Version", "2025-06-18"}, [2]string{"Mcp-Method", "tools/call"}, [2]string{"Mcp-Name", "echo"})
			if a.status != 400 || a.header.Get("WWW-Authenticate") != "" || !strings.Contains(a.body, "2026-07-28") {
				t.Errorf("headers only, MCP 2025-06-18: %d %q %s, want 400 without a challenge", a.status, a.header.Get("WWW-Authenticate"), a.body)
			}
			a = run("POST", "/mcp?access_token="+tools)
			if a.status != 400 || !strings.Contains(a.header.Get("WWW-Authenticate"), `error="invalid_request"`) {
				t.Errorf("token in the query: %d %q", a.status, a.header.Get("WWW-Authenticate"))
			}
			a = run("POST", "/mcp", bearer(tools), bearer(tools), v, [2]string{"Mcp-Method", "tools/list"})
			if a.status != 400 {
				t.Errorf("two Authorization headers: %d", a.status)
			}
			a = run("POST", "/other", bearer(tools))
			if a.status != 403 {
				t.Errorf("unmatched path: %d", a.status)
			}
		})
	}

	t.Run("envoy mode decides the path the proxy asked about, not a client's header", func(t *testing.T) {
		a := do(t, "POST", srv.URL+"/authz/envoy/mcp", [][2]string{{"Host", "mcp.example.com"}, {"X-Original-URI", "/public"}}, "")
		if a.status != 401 {
			t.Errorf("status %d, want 401 for /mcp", a.status)
		}
	})
	t.Run("envoy mode reads a forwarded JSON-RPC body for the rules", func(t *testing.T) {
		body := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete_all"}}`
		a := do(t, "POST", srv.URL+"/authz/envoy/mcp", [][2]string{{"Host", "mcp.example.com"}, bearer(tools)}, body)
		if a.status != 403 || !strings.Contains(a.header.Get("WWW-Authenticate"), "insufficient_scope") {
			t.Errorf("status %d %q", a.status, a.header.Get("WWW-Authenticate"))
		}
	})
	t.Run("a misconfigured proxy is told so and denied", func(t *testing.T) {
		for _, u := range []string{"/authz/nginx", "/authz/traefik", "/authz/unknown", "/authz/nginx/extra"} {
			a := do(t, "GET", srv.URL+u, [][2]string{bearer(admin)}, "")
			if a.status != 400 || !strings.Contains(a.body, "invalid_request") {
				t.Errorf("%s: %d %s", u, a.status, a.body)
			}
		}
	})
}

// With mcp.require_body, headers alone never decide a resource with rules:
// a POST whose body did not reach the gateway is refused, one whose body
// did is checked against the headers.
func TestRequireBody(t *testing.T) {
	srv, iss := serverWith(t, "mcp: {require_body: true}\n", nil)
	tok, err := iss.Mint(devissuer.Token{Subject: "alice", Scopes: []string{"mcp:tools"}})
	if err != nil {
		t.Fatal(err)
	}
	hdr := [][2]string{{"Host", "mcp.example.com"}, {"Authorization", "Bearer " + tok}, {"Mcp-Method", "tools/call"}, {"Mcp-Name", "echo"}}
	// nginx cannot forward the body: refused, with the reason.
	a := do(t, "GET", srv.URL+"/authz/nginx", append(hdr[1:], [2]string{"Host", "mcp.example.com"}, [2]string{"X-Original-Method", "POST"}, [2]string{"X-Original-URI", "/mcp"}), "")
	if a.status != 400 || !strings.Contains(a.body, "require_body") {
		t.Errorf("header-only POST: %d %s", a.status, a.body)
	}
	// The header names a harmless tool, the body a destructive one.
	a = do(t, "POST", srv.URL+"/authz/envoy/mcp", hdr, `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete_all"}}`)
	if a.status != 400 {
		t.Errorf("lying header: %d %s", a.status, a.body)
	}
	a = do(t, "POST", srv.URL+"/authz/envoy/mcp", hdr, `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}}`)
	if a.status != 200 {
		t.Errorf("honest header and body: %d %s", a.status, a.body)
	}
}

// TestResourceNamedByTheProxy: the per-resource endpoints decide for the
// resource in their path, whatever Host or URI the request carries; a
// segment naming no resource is refused, never read as "choose by host".
func TestResourceNamedByTheProxy(t *testing.T) {
	srv, iss := server(t)
	other, err := iss.Mint(devissuer.Token{Subject: "alice", Scopes: []string{"mcp:tools"}, Audience: []string{"https://other.example.com/mcp"}})
	if err != nil {
		t.Fatal(err)
	}
	bearer := [2]string{"Authorization", "Bearer " + other}
	for _, c := range []struct {
		what, method, url string
		header            [][2]string
		want              int
	}{
		{"nginx, another resource's host", "GET", "/authz/nginx/mcp", [][2]string{{"Host", "other.example.com"}, {"X-Original-Method", "GET"}, {"X-Original-URI", "/mcp"}, bearer}, 401},
		{"traefik, another resource's host", "GET", "/authz/traefik/mcp", [][2]string{{"X-Forwarded-Method", "GET"}, {"X-Forwarded-Host", "other.example.com"}, {"X-Forwarded-Uri", "/elsewhere"}, bearer}, 401},
		{"envoy, another path", "GET", "/authz/envoy-resource/mcp/elsewhere", [][2]string{{"Host", "other.example.com"}, bearer}, 401},
		{"unknown resource", "GET", "/authz/nginx/nope", [][2]string{{"Host", "mcp.example.com"}, {"X-Original-Method", "GET"}, {"X-Original-URI", "/mcp"}}, 403},
		{"empty resource", "GET", "/authz/nginx/", [][2]string{{"Host", "mcp.example.com"}, {"X-Original-Method", "GET"}, {"X-Original-URI", "/mcp"}}, 403},
		{"escaped resource", "GET", "/authz/traefik/m%63p", [][2]string{{"X-Forwarded-Method", "GET"}, {"X-Forwarded-Host", "mcp.example.com"}, {"X-Forwarded-Uri", "/mcp"}}, 403},
	} {
		a := do(t, c.method, srv.URL+c.url, c.header, "")
		if a.status != c.want {
			t.Errorf("%s: %d %s, want %d", c.what, a.status, a.body, c.want)
		}
		if c.want == 401 && !strings.Contains(a.header.Get("WWW-Authenticate"), `resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource/mcp"`) {
			t.Errorf("%s: challenge %q, want resource mcp's", c.what, a.header.Get("WWW-Authenticate"))
		}
	}
}

// TestDirectAnswersAreNeverAllows: every proxy reads 2xx as "allow". An
// answer the pipeline gives directly (the metadata document, a CORS
// preflight answered by the gateway) must not be 2xx here, or a described
// request (a forged X-Forwarded-Uri naming the metadata path) would let
// the real one through.
func TestDirectAnswersAreNeverAllows(t *testing.T) {
	srv, _ := server(t)
	for _, c := range []struct {
		what   string
		header [][2]string
	}{
		{"metadata document", [][2]string{{"X-Forwarded-Method", "GET"}, {"X-Forwarded-Host", "mcp.example.com"}, {"X-Forwarded-Uri", "/.well-known/oauth-protected-resource/mcp"}}},
		{"preflight", [][2]string{{"X-Forwarded-Method", "OPTIONS"}, {"X-Forwarded-Host", "mcp.example.com"}, {"X-Forwarded-Uri", "/mcp"},
			{"Origin", "https://mcp.example.com"}, {"Access-Control-Request-Method", "POST"}}},
	} {
		a := do(t, "GET", srv.URL+"/authz/traefik", c.header, "")
		if a.status < 300 {
			t.Errorf("%s: %d, a proxy would let the request through", c.what, a.status)
		}
		if a.status != http.StatusForbidden {
			t.Errorf("%s: %d %s, want 403", c.what, a.status, a.body)
		}
	}
}

// cookieLogin knows the login cookie "sid"; it stands for no token.
type cookieLogin struct{}

func (cookieLogin) AccessToken(context.Context, string, string) (string, bool, error) {
	return "", false, nil
}
func (cookieLogin) LoginURL(string, string) string { return "" }
func (cookieLogin) StripCookie(c string) string {
	var kept []string
	for part := range strings.SplitSeq(c, ";") {
		if part = strings.TrimSpace(part); part != "" && !strings.HasPrefix(part, "sid=") {
			kept = append(kept, part)
		}
	}
	return strings.Join(kept, "; ")
}

// TestCookieForTheUpstream: an allowed answer carries the Cookie the
// upstream may see — without the login cookie, empty when nothing is left,
// as sent when there was no login cookie in it — for the proxy to copy over the
// request's; none when the request had none.
func TestCookieForTheUpstream(t *testing.T) {
	srv, iss := serverWith(t, "unmatched: allow\n", cookieLogin{})
	tok, err := iss.Mint(devissuer.Token{Subject: "alice", Scopes: []string{"mcp:tools"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		what, uri, cookie string
		hasCookie         bool
		want              string
	}{
		{"Bearer request with a login cookie", "/mcp", "a=1; sid=SECRET; b=2", true, "a=1; b=2"},
		{"Bearer request, login cookie only", "/mcp", "sid=SECRET", true, ""},
		{"unprotected path", "/public", "sid=SECRET; a=1", true, "a=1"},
		{"no login cookie", "/mcp", "a=1", true, "a=1"},
		{"no cookie", "/mcp", "", false, ""},
	} {
		h := [][2]string{{"Host", "mcp.example.com"}, {"X-Original-Method", "GET"}, {"X-Original-URI", c.uri}, {"Authorization", "Bearer " + tok}}
		if c.hasCookie {
			h = append(h, [2]string{"Cookie", c.cookie})
		}
		a := do(t, "GET", srv.URL+"/authz/nginx", h, "")
		if a.status != 200 {
			t.Fatalf("%s: %d %s", c.what, a.status, a.body)
		}
		got, has := a.header["Cookie"]
		if has != c.hasCookie || has && (len(got) != 1 || got[0] != c.want) {
			t.Errorf("%s: answer's Cookie %q (present %v), want %q (present %v)", c.what, got, has, c.want, c.hasCookie)
		}
	}
}
