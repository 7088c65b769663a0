package oauthflow

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/extauthz/extauthz/pkg/token"
)

func TestValidReturnPath(t *testing.T) {
	good := []string{
		"/", "/mcp", "/mcp/x?y=1&z=%2F", "/mcp/caf%C3%A9#frag", "/a//b", "/a/../b", "/@evil.example",
		"/javascript:alert(1)", "/%20x", "/x?next=//evil", "/x?u=https://evil",
	}
	bad := []string{
		"", "mcp", "//evil.example", "///evil", "/\\evil", "\\\\evil", "\\/evil", "https://evil", "http:/evil",
		"javascript:alert(1)", "/\tx", "/\nx", "/\rx", "/x\x00", "/x\x7f", "/ x", "/x\\y", "/é",
		"/%2F%2Fevil", "/%2f%2fevil", "/%2F/evil", "/%5Cevil", "/%5cevil", "/x/%5C..", "/%09x", "/%0a",
		"/%252F%252Fevil", "/%25252F%25252Fevil", "/%zz", "/%", "/" + strings.Repeat("a", maxReturnPath),
	}
	for _, rd := range good {
		if !validReturnPath(rd) {
			t.Errorf("validReturnPath(%q) = false, want true", rd)
		}
	}
	for _, rd := range bad {
		if validReturnPath(rd) {
			t.Errorf("validReturnPath(%q) = true, want false", rd)
		}
	}
}

type noVerifier struct{}

func (noVerifier) Verify(context.Context, string, map[string]struct{}) (*token.Claims, error) {
	return nil, token.ErrMalformed
}

func testOptions(t *testing.T, publicURL string) Options {
	t.Helper()
	var k Key
	k[0] = 1
	s, err := NewStore(StoreOptions{Key: k})
	if err != nil {
		t.Fatal(err)
	}
	md := func(context.Context) (*Metadata, error) { return &Metadata{}, nil }
	return Options{
		Clients: map[string]*Client{"mcp": {
			ResourceURI: "https://gw.example/mcp", Issuer: "https://as.example", Metadata: md,
			ClientID: "gw", ClientSecret: "s",
		}},
		Route:     func(_, p string) (string, bool) { return "mcp", strings.HasPrefix(p, "/mcp") },
		Sessions:  s,
		Verifier:  noVerifier{},
		PublicURL: publicURL,
	}
}

func TestNew(t *testing.T) {
	for name, tc := range map[string]struct {
		url        string
		edit       func(*Options)
		cookie     string
		secure     bool
		wantErrSub string
	}{
		"https":              {url: "https://gw.example", cookie: "__Host-extauthz-session", secure: true},
		"https slash":        {url: "https://gw.example/", cookie: "__Host-extauthz-session", secure: true},
		"http loopback":      {url: "http://127.0.0.1:8080", cookie: "extauthz-session"},
		"http localhost":     {url: "http://localhost:8080", cookie: "extauthz-session"},
		"http ipv6 loopback": {url: "http://[::1]:8080", cookie: "extauthz-session"},
		"custom cookie":      {url: "https://gw.example", edit: func(o *Options) { o.CookieName = "__Host-sid" }, cookie: "__Host-sid", secure: true},
		"custom http cookie": {url: "http://127.0.0.1:8080", edit: func(o *Options) { o.CookieName = "sid" }, cookie: "sid"},
		"no __Host- on https": {url: "https://gw.example", edit: func(o *Options) { o.CookieName = "sid" },
			wantErrSub: "must start with __Host-"},
		"__Secure- on https": {url: "https://gw.example", edit: func(o *Options) { o.CookieName = "__Secure-sid" },
			wantErrSub: "must start with __Host-"},
		"http elsewhere": {url: "http://gw.example", wantErrSub: "must be https"},
		"path":           {url: "https://gw.example/base", wantErrSub: "without path"},
		"no scheme":      {url: "gw.example", wantErrSub: "scheme://host"},
		"__Host- on http": {url: "http://127.0.0.1:1", edit: func(o *Options) { o.CookieName = "__Host-x" },
			wantErrSub: "needs Secure"},
		"bad cookie name": {url: "https://gw.example", edit: func(o *Options) { o.CookieName = "a b" }, wantErrSub: "cookie name"},
		"same paths": {url: "https://gw.example", edit: func(o *Options) { o.LogoutPath = "/oauth/login" },
			wantErrSub: "must differ"},
		"bad success redirect": {url: "https://gw.example", edit: func(o *Options) { o.SuccessRedirect = "//evil" },
			wantErrSub: "success redirect"},
		"no secret": {url: "https://gw.example", edit: func(o *Options) { o.Clients["mcp"].ClientSecret = "" },
			wantErrSub: "client secret"},
		"pkjwt without signer": {url: "https://gw.example", edit: func(o *Options) { o.Clients["mcp"].AuthMethod = "private_key_jwt" },
			wantErrSub: "private_key_jwt needs a private key"},
		"unknown method": {url: "https://gw.example", edit: func(o *Options) { o.Clients["mcp"].AuthMethod = "none" },
			wantErrSub: "unknown client authentication"},
		"resource mismatch": {url: "https://gw.example", edit: func(o *Options) { o.Clients["mcp"].Resource = "other" },
			wantErrSub: "client is for resource"},
		"no store": {url: "https://gw.example", edit: func(o *Options) { o.Sessions = nil }, wantErrSub: "session store"},
	} {
		t.Run(name, func(t *testing.T) {
			o := testOptions(t, tc.url)
			if tc.edit != nil {
				tc.edit(&o)
			}
			h, err := New(o)
			if tc.wantErrSub != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErrSub) {
					t.Fatalf("New: %v, want an error with %q", err, tc.wantErrSub)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if h.cookieName != tc.cookie || h.secure != tc.secure {
				t.Errorf("cookie %q secure %v, want %q %v", h.cookieName, h.secure, tc.cookie, tc.secure)
			}
			if h.redirectURI != strings.TrimSuffix(tc.url, "/")+"/oauth/callback" {
				t.Errorf("redirect URI %q", h.redirectURI)
			}
			if c := h.clients["mcp"]; c.Resource != "mcp" || c.AuthMethod != "client_secret_basic" ||
				len(c.Trusted) != 1 {
				t.Errorf("client defaults %+v", c)
			}
		})
	}
}

// TestSecureCookies: on https, the cookies are Secure with the __Host- prefix.
func TestSecureCookies(t *testing.T) {
	h, err := New(testOptions(t, "https://gw.example"))
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	h.setCookie(rec, h.cookieName, "id", time.Hour)
	h.clearCookie(rec, h.cookieName)
	got := rec.Header().Values("Set-Cookie")
	want := []string{
		"__Host-extauthz-session=id; Path=/; Max-Age=3600; HttpOnly; Secure; SameSite=Lax",
		"__Host-extauthz-session=; Path=/; Max-Age=0; HttpOnly; Secure; SameSite=Lax",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("Set-Cookie:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if !strings.HasPrefix(h.stateCookieName("s"), "__Host-extauthz-session-state-") {
		t.Errorf("binding cookie name %q", h.stateCookieName("s"))
	}
}

func TestStripCookie(t *testing.T) {
	h, err := New(testOptions(t, "https://gw.example"))
	if err != nil {
		t.Fatal(err)
	}
	id, _ := NewID()
	for in, want := range map[string]string{
		"":                                 "",
		"a=1":                              "a=1",
		"__Host-extauthz-session=" + id:    "",
		"a=1; __Host-extauthz-session=x":   "a=1",
		"__Host-extauthz-session=x;a=1;b=": "a=1; b=",
		"a=1; __Host-extauthz-session=x; __Host-extauthz-session-state-0123456789abcdef=s; b=2": "a=1; b=2",
		"__Host-extauthz-sessionX=1": "__Host-extauthz-sessionX=1",
		// Two Cookie headers merged with "," by a proxy.
		"a=1,__Host-extauthz-session=x":        "a=1",
		"a=1; b=2,__Host-extauthz-session=x,c": "a=1; b=2,c",
		"theme=a,b":                            "theme=a,b",
	} {
		if got := h.StripCookie(in); got != want {
			t.Errorf("StripCookie(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestLoginURLHosts(t *testing.T) {
	h, err := New(testOptions(t, "https://GW.example"))
	if err != nil {
		t.Fatal(err)
	}
	for host, ok := range map[string]bool{
		"gw.example": true, "GW.EXAMPLE": true, "gw.example:443": true, "gw.example.": true,
		"gw.example:8443": false, "other.example": false, "": false, "gw.example.evil": false,
	} {
		got := h.LoginURL(host, "/mcp/x")
		if (got != "") != ok {
			t.Errorf("LoginURL(%q) = %q, want a URL: %v", host, got, ok)
		}
		if ok && got != "https://GW.example/oauth/login?rd=%2Fmcp%2Fx" {
			t.Errorf("LoginURL(%q) = %q", host, got)
		}
	}
}

func TestTokenResponseLifetimes(t *testing.T) {
	for in, want := range map[string]time.Duration{
		`{"expires_in":300}`:   300 * time.Second,
		`{"expires_in":"300"}`: 300 * time.Second,
		`{"expires_in":null}`:  0,
		`{}`:                   0,
	} {
		var tr tokenResponse
		if err := json.Unmarshal([]byte(in), &tr); err != nil || tr.ExpiresIn.duration() != want {
			t.Errorf("%s: %v %v, want %v", in, tr.ExpiresIn.duration(), err, want)
		}
	}
	var tr tokenResponse
	if err := json.Unmarshal([]byte(`{"expires_in":-1}`), &tr); err == nil {
		t.Error("a negative expires_in was accepted")
	}
}

func TestOAuthErrorCode(t *testing.T) {
	for in, want := range map[string]string{
		"access_denied": "access_denied", "": "invalid", "a\"b": "invalid", "x\ny": "invalid",
		strings.Repeat("a", 65): "invalid", "<b>": "<b>", // escaped when shown
	} {
		if got := oauthErrorCode(in); got != want {
			t.Errorf("oauthErrorCode(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestNotFoundAndMethods(t *testing.T) {
	h, err := New(testOptions(t, "https://gw.example"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		method, path string
		want         int
	}{
		{http.MethodGet, "/oauth/other", http.StatusNotFound},
		{http.MethodPost, "/oauth/login", http.StatusMethodNotAllowed},
		{http.MethodPost, "/oauth/callback", http.StatusMethodNotAllowed},
		{http.MethodPut, "/oauth/logout", http.StatusMethodNotAllowed},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(tc.method, "https://gw.example"+tc.path, nil))
		if rec.Code != tc.want || rec.Header().Get("Cache-Control") != "no-store" {
			t.Errorf("%s %s: HTTP %d, Cache-Control %q; want %d", tc.method, tc.path, rec.Code,
				rec.Header().Get("Cache-Control"), tc.want)
		}
	}
}

// With an error page configured, failures redirect there with the error
// in the query instead of rendering the built-in page.
func TestErrorPageRedirect(t *testing.T) {
	h := &Handler{errorPage: "/signin-failed?from=gw", successRedirect: "/"}
	for _, tc := range []struct {
		status        int
		detail, wantQ string
	}{
		{400, "access_denied", "error=access_denied"},
		{400, "", "error=invalid_request"},
		{502, "", "error=temporarily_unavailable"},
	} {
		rec := httptest.NewRecorder()
		h.page(rec, tc.status, "Sign-in failed", "The authorization server refused the sign-in.", tc.detail)
		loc := rec.Header().Get("Location")
		if rec.Code != http.StatusSeeOther || !strings.HasPrefix(loc, "/signin-failed?from=gw&") || !strings.Contains(loc, tc.wantQ) ||
			!strings.Contains(loc, "error_description=The+authorization+server+refused+the+sign-in.") {
			t.Errorf("status %d detail %q: %d %q", tc.status, tc.detail, rec.Code, loc)
		}
	}
	if rec := httptest.NewRecorder(); true {
		(&Handler{successRedirect: "/"}).page(rec, 400, "T", "M", "")
		if rec.Code != 400 || !strings.Contains(rec.Body.String(), "<h1>T</h1>") {
			t.Errorf("built-in page: %d %s", rec.Code, rec.Body.String())
		}
	}
}
