package authz

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/extauthz/extauthz/internal/testkit"
	"github.com/extauthz/extauthz/pkg/config"
	"github.com/extauthz/extauthz/pkg/devissuer"
	"github.com/extauthz/extauthz/pkg/verdict"
)

// fakeLogin knows one login cookie value and the token it holds.
type fakeLogin struct {
	id, tok string
	err     error
	asked   int
}

func (f *fakeLogin) AccessToken(_ context.Context, resource, cookie string) (string, bool, error) {
	f.asked++
	if f.err != nil {
		return "", false, f.err
	}
	if resource == "a" && strings.Contains(cookie, "sid="+f.id) {
		return f.tok, true, nil
	}
	return "", false, nil
}

func (f *fakeLogin) StripCookie(cookie string) string {
	var keep []string
	for _, c := range strings.Split(cookie, ";") {
		if c = strings.TrimSpace(c); c != "" && !strings.HasPrefix(c, "sid=") {
			keep = append(keep, c)
		}
	}
	return strings.Join(keep, "; ")
}

func (f *fakeLogin) LoginURL(host, path string) string {
	return "https://" + host + "/oauth/login?rd=" + path
}

func TestLoginCookies(t *testing.T) {
	clock := testkit.NewClock()
	iss, _ := testkit.Issuer(t, "ES256", "", testResource, clock.Now)
	cfg := &config.Config{
		PublicURL: "https://mcp.example.com",
		Login:     config.Login{SessionKey: config.Secret{Env: "K"}},
		Resources: []config.Resource{
			{Name: "a", Resource: testResource, AuthorizationServers: []config.AuthorizationServer{{Issuer: iss.Issuer(), JWKSURI: iss.JWKSURL()}},
				Login: config.ResourceLogin{Enabled: true, ClientID: "web", ClientSecret: config.Secret{Env: "S"}}},
			{Name: "b", Resource: testResource + "2", Hosts: []string{"mcp.example.com"}, PathPrefix: "/mcp2", Audiences: []string{testResource},
				AuthorizationServers: []config.AuthorizationServer{{Issuer: iss.Issuer(), JWKSURI: iss.JWKSURL()}}},
		},
	}
	p := validPolicy(t, cfg)
	v := issuerVerifier(t, iss, clock)
	tok, err := iss.Mint(devissuer.Token{Subject: "alice", ClientID: "web"})
	if err != nil {
		t.Fatal(err)
	}
	bl := &fakeLogin{id: "s3ss10n", tok: tok}
	e, err := NewEngine(p, Options{Verifier: v, Cache: verdict.LocalCache(10, clock.Now), MaxTTL: time.Minute, Now: clock.Now, BrowserLogin: bl})
	if err != nil {
		t.Fatal(err)
	}
	check := func(method, path string, headers map[string]string) Decision {
		return e.Check(context.Background(), &Request{Method: method, Host: "mcp.example.com", Path: path, Headers: headers})
	}

	d := check("POST", "/mcp", map[string]string{"cookie": "theme=dark; sid=s3ss10n; lang=en"})
	if !d.Allow || d.Claims.Subject != "alice" {
		t.Fatalf("login cookie: allow=%v %v", d.Allow, d.Err)
	}
	var cookie string
	for _, h := range d.Upstream {
		if h.Name == "cookie" {
			cookie = h.Value
		}
	}
	if cookie != "theme=dark; lang=en" {
		t.Errorf("upstream cookie %q: the login cookie must be stripped, the rest kept", cookie)
	}
	if d := check("POST", "/mcp", map[string]string{"cookie": "sid=s3ss10n"}); !d.Allow || !contains(d.Remove, "cookie") {
		t.Errorf("only the login cookie: allow=%v remove=%v", d.Allow, d.Remove)
	}

	// No valid login cookie: a browser navigation is sent to sign in, an API client
	// gets the challenge.
	d = check("GET", "/mcp/page?x=1", map[string]string{"accept": "text/html,application/xhtml+xml", "cookie": "sid=unknown"})
	if d.Allow || d.Status != http.StatusFound || len(d.Extra) == 0 || d.Extra[0].Value != "https://mcp.example.com/oauth/login?rd=/mcp/page?x=1" {
		t.Errorf("navigation without a valid login cookie: %d %v", d.Status, d.Extra)
	}
	if d := check("POST", "/mcp", map[string]string{"accept": "application/json, text/event-stream"}); d.Status != 401 || d.Challenge == "" {
		t.Errorf("API client without a login cookie: %d %q", d.Status, d.Challenge)
	}
	// A Bearer token wins over any cookie.
	if d := check("POST", "/mcp", map[string]string{"authorization": "Bearer garbage", "cookie": "sid=s3ss10n"}); d.Status != 401 {
		t.Errorf("bad Bearer with a good cookie: %d", d.Status)
	}
	// A resource without login ignores cookies, even good ones.
	before := bl.asked
	if d := check("POST", "/mcp2", map[string]string{"cookie": "sid=s3ss10n"}); d.Status != 401 || bl.asked != before {
		t.Errorf("resource without login: %d, the login asked %d times", d.Status, bl.asked-before)
	}
	// The login's store unreadable: cannot decide, never allow.
	bl.err = errors.New("redis down")
	if d := check("POST", "/mcp", map[string]string{"cookie": "sid=s3ss10n"}); d.Status != 503 {
		t.Errorf("login unavailable: %d", d.Status)
	}
}
