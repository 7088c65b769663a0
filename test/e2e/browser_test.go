package e2e

// The browser login (issue #8) in a real browser, every part listening on 127.0.0.1:
//
//	Chromium (browser.mjs, playwright-core) ──▶ extauthz serve, HTTP listener = public_url
//	    │                                         /oauth/login, /oauth/callback, /oauth/logout
//	    └──▶ oidc-provider (internal/oidctest): development login and consent pages
//	this test ──gRPC Check (Envoy-shaped)──▶ extauthz serve
//
// Debian's Chromium signs in through the gateway; the session cookie it ends up with is then
// sent in Envoy-shaped Checks, which must allow the request with the user's identity. Another
// site's page that POSTs to /oauth/logout by itself signs nobody out, and neither does a GET
// of /oauth/logout, which only asks; after the browser confirms, the same cookie must no
// longer be a credential. It runs twice: with public_url http://127.0.0.1:PORT, and with
// http://localhost:PORT (the browser maps localhost to 127.0.0.1), where the authorization
// server's redirect back is cross-site.

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/extauthz/extauthz/internal/oidctest"
	"github.com/extauthz/extauthz/internal/testkit"
	"github.com/extauthz/extauthz/pkg/check"
)

const (
	chromiumPath   = "/usr/bin/chromium" // Debian's; nothing is downloaded
	browserTimeout = 3 * time.Minute     // one run of browser.mjs, start to exit; its launch alone may take 90 s (chromium.mjs)
	browserUser    = "alice"
	returnPath     = "/mcp/app"
	sessionCookie  = "extauthz-session" // the name on a plain-http loopback public_url
	chromiumHint   = "run `make e2e-deps` (apt-get install -y chromium when /usr/bin/chromium is missing; " +
		"npm ci --prefix test/e2e for playwright-core)"
)

// requiredChromiumFlags must all be on the browser's command line (the launch flags,
// plus no QUIC).
var requiredChromiumFlags = []string{
	"--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
	"--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
}

func TestBrowserLogin(t *testing.T) {
	root, err := testkit.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	e2eDir := filepath.Join(root, "test", "e2e")
	node := checkNodeDeps(t, e2eDir)
	if fi, err := os.Stat(chromiumPath); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		t.Fatalf("Chromium not found at %s (%v): %s", chromiumPath, err, chromiumHint)
	}
	gatewayBin := filepath.Join(t.TempDir(), "extauthz")
	began := time.Now()
	if err := buildGateway(context.Background(), root, gatewayBin); err != nil {
		t.Fatalf("building the gateway: %v", err)
	}
	t.Logf("gateway built in %v", time.Since(began).Round(time.Millisecond))

	// The authorization server is at 127.0.0.1. With the gateway there too, both share a
	// host: one site, and one cookie jar (cookies ignore ports). With the gateway at
	// localhost, the redirect back to the callback is a cross-site navigation, which the
	// SameSite=Lax login-state cookie must survive, and the two hosts' cookies stay apart.
	for _, host := range []string{"127.0.0.1", "localhost"} {
		t.Run("GatewayAt_"+host, func(t *testing.T) { testBrowserLogin(t, node, e2eDir, gatewayBin, host) })
	}
}

func testBrowserLogin(t *testing.T, node, e2eDir, gatewayBin, host string) {
	began := time.Now()
	// public_url is the gateway's own HTTP listener, so its port is chosen first.
	port, releasePort := reservePort(t)
	public := fmt.Sprintf("http://%s:%d", host, port)
	crossSite := host != "127.0.0.1"
	resource := public + "/mcp"
	webClient := oidctest.Client{
		ID: "extauthz-web", Secret: "web-secret-" + randomHex(t, 16), AuthMethod: "client_secret_basic",
		GrantTypes: []string{"authorization_code", "refresh_token"}, RedirectURIs: []string{public + "/oauth/callback"},
	}
	as := oidctest.Start(t, oidctest.Options{
		Clients:   []oidctest.Client{webClient},
		Resources: []oidctest.Resource{{Resource: resource, Scope: "mcp:tools", Format: "jwt"}},
	})

	gwDir := t.TempDir()
	cfgPath := filepath.Join(gwDir, "extauthz.yaml")
	writeFile(t, cfgPath, fmt.Sprintf(`listen: {grpc: "127.0.0.1:0", http: "127.0.0.1:%[1]d", admin: "off"}
public_url: %[2]q
log: {level: debug}
login: {session_key: {env: EXTAUTHZ_E2E_SESSION_KEY}}
resources:
  - name: mcp
    resource: %[3]q
    required_scopes: ["mcp:tools"]
    authorization_servers: [{issuer: %[4]q}]
    login:
      enabled: true
      client_id: %[5]q
      client_secret: {env: EXTAUTHZ_E2E_WEB_SECRET}
      scopes: [openid, offline_access, "mcp:tools"]
`, port, public, resource, as.Issuer, webClient.ID))
	releasePort()
	gateway := startProc(t, "extauthz", exec.Command(gatewayBin, "serve", "--config", cfgPath), gwDir,
		"EXTAUTHZ_E2E_SESSION_KEY="+randomHex(t, 32), "EXTAUTHZ_E2E_WEB_SECRET="+webClient.Secret)
	gateway.alsoShow(cfgPath)
	var grpcAddr, httpAddr string
	gateway.waitLine(t, "{", func(line string) bool {
		var l struct{ Msg, GRPC, HTTP string }
		if json.Unmarshal([]byte("{"+line), &l) != nil || l.Msg != "serving" {
			return false
		}
		grpcAddr, httpAddr = l.GRPC, l.HTTP
		return true
	})
	if want := fmt.Sprintf("127.0.0.1:%d", port); httpAddr != want {
		t.Fatalf("the gateway's HTTP listener is %s, want %s", httpAddr, want)
	}
	plain := &http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: 5 * time.Second}
	t.Cleanup(plain.CloseIdleConnections)
	gateway.waitUntil(t, "readiness (the issuer's keys loaded)", func() bool {
		resp, err := plain.Get("http://" + httpAddr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	envoy := &envoyCheck{client: authv3.NewAuthorizationClient(conn), url: public + returnPath}
	t.Logf("gateway %s (gRPC %s), authorization server %s: up in %v", public, grpcAddr, as.Issuer, time.Since(began).Round(time.Millisecond))

	// Before signing in, a navigation is sent to the login.
	loginURL := envoy.signInRedirect(t, "a navigation without a session", [][2]string{{"accept", "text/html"}})

	// The browser signs in.
	b := startBrowser(t, node, e2eDir, map[string]any{
		"public": public, "issuer": as.Issuer, "login": browserUser, "rd": returnPath, "executablePath": chromiumPath,
	})
	launched := b.await(t, "browser")
	checkBrowserLaunch(t, launched)
	login := b.await(t, "page")
	if login.s("page") != "login" || !strings.HasPrefix(login.s("url"), as.Issuer+"/interaction/") {
		t.Fatalf("first page %v, want the authorization server's login form", login)
	}
	if consent := b.await(t, "page"); consent.s("page") != "consent" || !strings.HasPrefix(consent.s("url"), as.Issuer+"/interaction/") {
		t.Fatalf("second page %v, want the authorization server's consent form", consent)
	}
	if back := b.await(t, "page"); back.s("page") != "returned" || back.s("url") != public+returnPath {
		t.Fatalf("after consent the browser is at %v, want %s", back, public+returnPath)
	}
	signedIn := b.await(t, "signed_in")
	checkNavigations(t, b.all("navigation"), public, as.Issuer, webClient.ID, resource, crossSite)

	// The session cookie, as the browser keeps it.
	var cookie event
	for _, c := range signedIn["cookies"].([]any) {
		switch c := event(c.(map[string]any)); {
		case c.s("name") == sessionCookie:
			cookie = c
		case strings.HasPrefix(c.s("name"), sessionCookie):
			t.Errorf("cookie %s is left after the callback, which clears the login state's cookie", c.s("name"))
		}
	}
	if cookie == nil {
		t.Fatalf("no %s cookie in the browser: %v", sessionCookie, signedIn["cookies"])
	}
	sid := cookie.s("value")
	if cookie["httpOnly"] != true || cookie.s("sameSite") != "Lax" || cookie["secure"] != false ||
		cookie.s("domain") != host || cookie.s("path") != "/" || len(sid) != 43 || strings.Contains(sid, ".") ||
		strings.Trim(sid, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") != "" {
		t.Errorf("session cookie %v: want HttpOnly, SameSite Lax, not Secure (plain-http loopback), host %s, path /, a 43-character base64url id", cookie, host)
	}
	if ttl := time.Until(time.Unix(int64(cookie.f("expires")), 0)); ttl < time.Minute {
		t.Errorf("session cookie expires in %v, want a persistent cookie of the session's lifetime", ttl)
	}
	if names := strs(signedIn["document_cookie_names"]); slices.Contains(names, sessionCookie) {
		t.Errorf("document.cookie shows %s: the cookie is not HttpOnly", sessionCookie)
	}

	// The cookie is the credential of a Check, for the user who signed in; the upstream never
	// gets it.
	resp := envoy.check(t, [][2]string{{"accept", "text/html"}, {"cookie", sessionCookie + "=" + sid}})
	ok := resp.GetOkResponse()
	if resp.GetStatus().GetCode() != 0 || ok == nil {
		t.Fatalf("Check of GET %s with the browser's session cookie: %v, want allowed", envoy.url, resp)
	}
	if got := header(ok.GetHeaders(), "x-extauthz-subject"); got != browserUser {
		t.Errorf("x-extauthz-subject = %q, want %q", got, browserUser)
	}
	if got := header(ok.GetHeaders(), "x-extauthz-client-id"); got != webClient.ID {
		t.Errorf("x-extauthz-client-id = %q, want the gateway's web client %q", got, webClient.ID)
	}
	if !slices.Contains(ok.GetHeadersToRemove(), "cookie") || header(ok.GetHeaders(), "cookie") != "" || header(ok.GetHeaders(), "authorization") != "" {
		t.Errorf("allowed Check: headers %v, removed %v; want the Cookie header removed and no token added", ok.GetHeaders(), ok.GetHeadersToRemove())
	}
	// Without the cookie the same navigation is sent to sign in again.
	if again := envoy.signInRedirect(t, "the same navigation without the cookie", [][2]string{{"accept", "text/html"}}); again != loginURL {
		t.Errorf("sign-in URL %q, earlier %q", again, loginURL)
	}

	stillSignedIn := func(after string) {
		t.Helper()
		if resp := envoy.check(t, [][2]string{{"accept", "text/html"}, {"cookie", sessionCookie + "=" + sid}}); resp.GetOkResponse() == nil {
			t.Errorf("Check with the session cookie after %s: %v, want allowed (signed in still)", after, resp)
		}
	}

	// Another site's page posts a sign-out form by itself (login CSRF's twin): refused. With
	// the gateway on 127.0.0.1 that page is same-site (sites ignore ports), so the browser
	// even sends the SameSite=Lax session cookie along: only the Origin check stops it.
	attacker := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!DOCTYPE html><title>Win a prize</title><form method="post" action="%s/oauth/logout?rd=/pwned">`+
			`<input type="hidden" name="x" value="1"></form><script>document.forms[0].submit()</script>`, public)
	}))
	t.Cleanup(attacker.Close)
	b.send(t, "attack "+attacker.URL+"/")
	if got := b.await(t, "page"); got.s("page") != "cross_site_logout" || got.s("url") != public+"/oauth/logout" || got.s("heading") != "Sign-out refused" {
		t.Errorf("after another site's sign-out form the browser shows %v, want the gateway's refusal", got)
	}
	forged := b.filter(func(n event) bool {
		return n.is("navigation") && n.s("method") == http.MethodPost && n.s("url") == public+"/oauth/logout"
	})
	if len(forged) != 1 || forged[0].status() != http.StatusForbidden || len(strs(forged[0]["set_cookie"])) != 0 {
		t.Errorf("the cross-site POST /oauth/logout: %v, want one 403 that sets no cookie", forged)
	} else if sent := slices.Contains(strs(forged[0]["cookies_sent"]), sessionCookie); sent == crossSite {
		t.Errorf("the cross-site POST carried the session cookie: %v; want it sent only when the sites match (gateway on 127.0.0.1)", sent)
	}
	stillSignedIn("another site's sign-out form")

	// A GET of /oauth/logout (a link) only asks.
	b.send(t, "logout")
	if got := b.await(t, "page"); got.s("page") != "logout_confirm" || got.s("url") != public+"/oauth/logout" ||
		got.f("status") != http.StatusOK || got.s("heading") != "Sign out" {
		t.Errorf("GET /oauth/logout shows %v, want the confirmation page", got)
	}
	stillSignedIn("GET /oauth/logout")

	// The browser confirms (a same-origin POST); the old cookie is no credential any more.
	b.send(t, "confirm")
	if out := b.await(t, "page"); out.s("page") != "signed_out" || out.s("url") != public+"/" {
		t.Errorf("after signing out the browser is at %v, want %s/ (the default success_redirect)", out, public)
	}
	signedOut := b.await(t, "signed_out")
	for _, c := range signedOut["cookies"].([]any) {
		if event(c.(map[string]any)).s("name") == sessionCookie {
			t.Errorf("the browser still has %s after signing out", sessionCookie)
		}
	}
	b.send(t, "close")
	b.await(t, "done")
	b.wait(t)
	resp = envoy.check(t, [][2]string{{"accept", "text/html"}, {"cookie", sessionCookie + "=" + sid}})
	if resp.GetOkResponse() != nil || resp.GetStatus().GetCode() == 0 {
		t.Fatalf("Check with the cookie after sign-out: %v, want a denial", resp)
	}
	if code := resp.GetDeniedResponse().GetStatus().GetCode(); code != 302 && code != 401 {
		t.Errorf("Check with the cookie after sign-out: HTTP %d, want 302 (to sign in) or 401", code)
	}
	if resp := envoy.check(t, [][2]string{{"accept", "application/json, text/event-stream"}, {"cookie", sessionCookie + "=" + sid}}); resp.GetDeniedResponse().GetStatus().GetCode() != 401 {
		t.Errorf("API-style Check with the cookie after sign-out: %v, want 401", resp)
	}

	// No request left 127.0.0.1 (the pages' web font cannot be resolved), and the gateway
	// logged the sign-in and the sign-out, never the session id.
	for _, e := range b.all("offsite_request") {
		if failed := b.filter(func(f event) bool { return f.is("offsite") && f.s("url") == e.s("url") }); len(failed) == 0 {
			t.Errorf("the browser requested %s and it did not fail", e.s("url"))
		}
	}
	// The gateway's log reaches its stderr a moment after the request (an asynchronous
	// writer): wait for the sign-out's line before reading the log.
	gateway.waitUntil(t, "its logout line", func() bool {
		return logHas(gateway.logs.String(), map[string]string{"event": "logout", "subject": browserUser, "resource": "mcp"})
	})
	logs := gateway.logs.String()
	if strings.Contains(logs, sid) {
		t.Errorf("the gateway logged the session id")
	}
	for _, want := range []string{"login", "logout"} {
		if !logHas(logs, map[string]string{"event": want, "subject": browserUser, "resource": "mcp"}) {
			t.Errorf("the gateway logged no event=%s for %s", want, browserUser)
		}
	}
	t.Logf("signed in and out with Chromium %s: signed in %v after the script started, browser run %v; subtest %v", launched.s("version"),
		time.Duration(signedIn.f("t"))*time.Millisecond, b.elapsed.Round(time.Millisecond), time.Since(began).Round(time.Millisecond))
}

// checkBrowserLaunch: the browser is Debian's Chromium, launched with the required flags and
// a fresh profile in the test's temporary directory.
func checkBrowserLaunch(t *testing.T, e event) {
	t.Helper()
	cmdline := strs(e["cmdline"])
	if len(cmdline) == 0 {
		t.Fatalf("browser.mjs could not read the browser's command line: %v", e)
	}
	if cmdline[0] != "/usr/lib/chromium/chromium" && cmdline[0] != chromiumPath {
		t.Errorf("the browser is %s, want Debian's Chromium", cmdline[0])
	}
	for _, f := range requiredChromiumFlags {
		if !slices.Contains(cmdline, f) {
			t.Errorf("the browser was launched without %s: %q", f, cmdline)
		}
	}
	profile := ""
	for _, a := range cmdline {
		if p, ok := strings.CutPrefix(a, "--user-data-dir="); ok {
			profile = p
		}
	}
	if tmp := e.s("tmpdir"); tmp == "" || !strings.HasPrefix(profile, tmp+string(filepath.Separator)) {
		t.Errorf("the browser's --user-data-dir is %q, want a fresh directory in %q", profile, tmp)
	}
}

// checkNavigations checks the top-level navigations of the sign-in: the gateway's redirect to
// the authorization endpoint with PKCE, resource, scopes and prompt=consent; the server's
// redirect back to the callback, which carries the login state's cookie (SameSite=Lax:
// sent on this cross-origin top-level GET) and sets the session cookie; the callback's
// redirect to the return path.
func checkNavigations(t *testing.T, navs []event, public, issuer, clientID, resource string, crossSite bool) {
	t.Helper()
	dump := func() string {
		var b strings.Builder
		for _, n := range navs {
			fmt.Fprintf(&b, "\n  %s %s -> %d %v sent %v set %v", n.s("method"), n.s("url"), n.status(), n["location"], n["cookies_sent"], n["set_cookie"])
		}
		return b.String()
	}
	find := func(what string, match func(event) bool) event {
		for _, n := range navs {
			if match(n) {
				return n
			}
		}
		t.Fatalf("no navigation: %s; the navigations were:%s", what, dump())
		return nil
	}
	start := find("the gateway's /oauth/login", func(n event) bool { return n.s("url") == public+"/oauth/login" })
	if start.status() != http.StatusFound || !strings.HasPrefix(start.m("location").s("url"), issuer+"/") {
		t.Errorf("/oauth/login answered %d to %v, want 302 to the authorization server", start.status(), start["location"])
	}
	if set := strs(start["set_cookie"]); len(set) != 1 || !strings.HasPrefix(set[0], sessionCookie+"-state-") {
		t.Errorf("/oauth/login set cookies %q, want one login-state cookie", set)
	}
	authz := find("the authorization request", func(n event) bool {
		return strings.HasPrefix(n.s("url"), issuer+"/") && n.m("query").s("response_type") != ""
	})
	q := authz.m("query")
	for k, want := range map[string]string{
		"response_type": "code", "client_id": clientID, "redirect_uri": public + "/oauth/callback",
		"code_challenge": "(set)", "code_challenge_method": "S256", "state": "(set)", "nonce": "(set)",
		"resource": resource, "prompt": "consent",
	} {
		if got := q.s(k); got != want {
			t.Errorf("authorization request %s = %q, want %q", k, got, want)
		}
	}
	if got := strings.Fields(q.s("scope")); !sameSet(got, []string{"openid", "offline_access", "mcp:tools"}) {
		t.Errorf("authorization request scope = %q, want openid offline_access mcp:tools", got)
	}
	callback := find("the callback", func(n event) bool { return n.s("url") == public+"/oauth/callback" })
	cq := callback.m("query")
	if callback.s("method") != http.MethodGet || cq.s("code") != "(set)" || cq.s("state") != "(set)" || cq.s("iss") != issuer {
		t.Errorf("callback %s %v, want a GET with code, state and iss %s", callback.s("method"), cq, issuer)
	}
	// The login-state cookie came back with the redirect from the authorization server. On a
	// shared host the browser also sends the server's own cookies (cookies ignore ports).
	sent := strs(callback["cookies_sent"])
	state := slices.DeleteFunc(slices.Clone(sent), func(n string) bool { return !strings.HasPrefix(n, sessionCookie+"-state-") })
	if len(state) != 1 {
		t.Errorf("the browser sent cookies %q to the callback, want one login-state cookie among them", sent)
	}
	if crossSite && len(sent) != 1 {
		t.Errorf("the browser sent cookies %q to the callback on another host than the server's, want the login-state cookie alone", sent)
	}
	if crossSite {
		for _, n := range navs {
			if strings.HasPrefix(n.s("url"), issuer+"/") && slices.ContainsFunc(strs(n["cookies_sent"]), func(c string) bool { return strings.HasPrefix(c, sessionCookie) }) {
				t.Errorf("the gateway's cookies went to the authorization server: %s %s sent %v", n.s("method"), n.s("url"), n["cookies_sent"])
			}
		}
	}
	if callback.status() != http.StatusFound || callback.m("location").s("url") != public+returnPath {
		t.Errorf("callback answered %d to %v, want 302 to %s", callback.status(), callback["location"], returnPath)
	}
	set := strs(callback["set_cookie"])
	var session string
	for _, c := range set {
		if strings.HasPrefix(c, sessionCookie+"=") {
			session = c
		}
	}
	if attrs := strings.Split(session, "; "); session == "" || !slices.Contains(attrs, "HttpOnly") || !slices.Contains(attrs, "SameSite=Lax") ||
		slices.Contains(attrs, "Secure") || !slices.Contains(attrs, "Path=/") {
		t.Errorf("callback Set-Cookie %q: want %s with HttpOnly, SameSite=Lax, Path=/ and no Secure", set, sessionCookie)
	}
	// The return path is not behind the gateway's HTTP listener: 404 there, and the
	// browser sends the session cookie with it.
	final := find("the return path", func(n event) bool { return n.s("url") == public+returnPath })
	if final.status() != http.StatusNotFound || !slices.Contains(strs(final["cookies_sent"]), sessionCookie) {
		t.Errorf("GET %s: %d with cookies %v; want the HTTP listener's 404, the session cookie sent", returnPath, final.status(), final["cookies_sent"])
	}
	if t.Failed() {
		t.Logf("navigations:%s", dump())
	}
}

// ---------------------------------------------------------------------------
// Envoy's Check
// ---------------------------------------------------------------------------

type envoyCheck struct {
	client authv3.AuthorizationClient
	url    string
}

// check sends the Check Envoy sends for a GET of c.url with headers.
func (c *envoyCheck) check(t *testing.T, headers [][2]string) *authv3.CheckResponse {
	t.Helper()
	req, err := check.EnvoyRequest{Method: http.MethodGet, URL: c.url, Headers: headers}.Proto()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := c.client.Check(ctx, req)
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	return resp
}

// signInRedirect checks that the Check denies with a 302 to the gateway's login with the
// request's path as rd, and returns the Location.
func (c *envoyCheck) signInRedirect(t *testing.T, what string, headers [][2]string) string {
	t.Helper()
	resp := c.check(t, headers)
	loc := header(resp.GetDeniedResponse().GetHeaders(), "location")
	u, _ := url.Parse(c.url)
	public := u.Scheme + "://" + u.Host
	if resp.GetDeniedResponse().GetStatus().GetCode() != http.StatusFound || !strings.HasPrefix(loc, public+"/oauth/login?rd=") {
		t.Fatalf("%s: %v, want 302 to %s/oauth/login?rd=…", what, resp, public)
	}
	if l, err := url.Parse(loc); err != nil || l.Query().Get("rd") != u.RequestURI() {
		t.Errorf("%s: sign-in URL %q, want rd=%s", what, loc, u.RequestURI())
	}
	return loc
}

func header(hs []*corev3.HeaderValueOption, name string) string {
	for _, h := range hs {
		if strings.EqualFold(h.GetHeader().GetKey(), name) {
			return h.GetHeader().GetValue()
		}
	}
	return ""
}

// ---------------------------------------------------------------------------
// browser.mjs
// ---------------------------------------------------------------------------

// browserRun is a running browser.mjs: its events arrive as it prints them, and it reads
// commands on stdin.
type browserRun struct {
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	stdout  testkit.LockedBuffer
	stderr  testkit.LockedBuffer
	lines   chan event // closed once the script has exited
	seen    []event    // every event received so far
	done    chan struct{}
	err     error
	began   time.Time
	elapsed time.Duration
	pid     int // the browser's, from the "browser" event
}

func startBrowser(t *testing.T, node, dir string, cfg map[string]any) *browserRun {
	t.Helper()
	arg, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// The browser's profile (Playwright's fresh --user-data-dir) and whatever Chromium writes
	// in HOME go into the test's temporary directory.
	home := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), browserTimeout)
	b := &browserRun{lines: make(chan event, 1024), done: make(chan struct{}), began: time.Now()}
	b.cmd = exec.CommandContext(ctx, node, "browser.mjs", string(arg))
	b.cmd.Dir = dir
	b.cmd.Env = append(os.Environ(), "TMPDIR="+home, "HOME="+home, "XDG_CONFIG_HOME="+filepath.Join(home, ".config"),
		"XDG_CACHE_HOME="+filepath.Join(home, ".cache"))
	b.cmd.Stderr = &b.stderr
	b.cmd.SysProcAttr = sysProcAttr()
	b.cmd.WaitDelay = stopTimeout
	if b.stdin, err = b.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := b.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := b.cmd.Start(); err != nil {
		cancel()
		t.Fatalf("starting browser.mjs: %v", err)
	}
	go func() {
		sc := bufio.NewScanner(io.TeeReader(stdout, &b.stdout))
		sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
		for sc.Scan() {
			var e event
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				e = event{"event": "not_json", "line": sc.Text()}
			}
			b.lines <- e
		}
		_, _ = io.Copy(io.Discard, stdout)
		// Wait only once stdout is read to its end, as exec.Cmd requires.
		b.err = b.cmd.Wait()
		b.elapsed = time.Since(b.began)
		close(b.done)
		close(b.lines)
	}()
	t.Cleanup(func() {
		go func() { // events nobody awaits any more
			for range b.lines {
			}
		}()
		_ = b.stdin.Close() // browser.mjs fails and closes the browser when stdin ends early
		select {
		case <-b.done:
		case <-time.After(stopTimeout):
			cancel() // SIGKILL
			<-b.done
		}
		cancel()
		if b.pid > 0 {
			killBrowser(b.pid) // in case node died without closing it
		}
		if t.Failed() || os.Getenv("E2E_VERBOSE") != "" {
			t.Logf("==== browser.mjs %s (%v, %v) stdout:\n%s\n==== stderr:\n%s", arg, b.elapsed.Round(time.Millisecond), b.err, b.stdout.String(), b.stderr.String())
		}
	})
	return b
}

// await returns the next event named name; an "error" event, the end of the script or the
// timeout fails the test.
func (b *browserRun) await(t *testing.T, name string) event {
	t.Helper()
	deadline := time.After(time.Until(b.began.Add(browserTimeout)))
	for {
		select {
		case e, ok := <-b.lines:
			if !ok {
				<-b.done
				t.Fatalf("browser.mjs ended (%v) before printing %q", b.err, name)
			}
			b.seen = append(b.seen, e)
			switch {
			case e.is("browser"):
				b.pid = int(e.f("pid"))
			case e.is("error"):
				t.Fatalf("browser.mjs failed while waiting for %q: %s (page: %v)", name, e.s("message"), e["page"])
			case e.is("not_json"):
				t.Fatalf("browser.mjs printed a line that is not JSON: %q", e.s("line"))
			}
			if e.is(name) {
				return e
			}
		case <-deadline:
			t.Fatalf("browser.mjs: no %q within %v", name, browserTimeout)
		}
	}
}

func (b *browserRun) send(t *testing.T, command string) {
	t.Helper()
	if _, err := io.WriteString(b.stdin, command+"\n"); err != nil {
		t.Fatalf("browser.mjs stdin: %v", err)
	}
}

// wait waits for browser.mjs to exit, and fails the test unless it succeeded.
func (b *browserRun) wait(t *testing.T) {
	t.Helper()
	for e := range b.lines {
		b.seen = append(b.seen, e)
	}
	<-b.done
	if b.err != nil {
		t.Fatalf("browser.mjs exited with %v", b.err)
	}
}

func (b *browserRun) filter(keep func(event) bool) []event {
	var out []event
	for _, e := range b.seen {
		if keep(e) {
			out = append(out, e)
		}
	}
	return out
}

func (b *browserRun) all(name string) []event {
	return b.filter(func(e event) bool { return e.is(name) })
}

// ---------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// logHas reports whether a JSON log line has every field of want.
func logHas(logs string, want map[string]string) bool {
	for _, line := range strings.Split(logs, "\n") {
		var l map[string]any
		if json.Unmarshal([]byte(line), &l) != nil {
			continue
		}
		match := true
		for k, v := range want {
			if str(l[k]) != v {
				match = false
				break
			}
		}
		if match {
			return true
		}
	}
	return false
}
