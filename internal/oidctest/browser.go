package oidctest

import (
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"html"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

var (
	formRE   = regexp.MustCompile(`(?is)<form\b[^>]*\baction="([^"]*)"[^>]*>(.*?)</form>`)
	inputRE  = regexp.MustCompile(`(?i)<input\b[^>]*>`)
	nameRE   = regexp.MustCompile(`(?i)\bname="([^"]*)"`)
	valueRE  = regexp.MustCompile(`(?i)\bvalue="([^"]*)"`)
	cancelRE = regexp.MustCompile(`<a href="([^"]*)">\[ Cancel \]</a>`)
)

// SignIn plays a browser at the server's development login and consent pages: from the
// authorization request authz it fills in the login form (as user, any password) and the
// consent form — or follows the Cancel link when abort is set — until the server redirects to
// a path equal to callbackPath on another host, which it returns unrequested. client must keep
// cookies and follow no redirect by itself.
func SignIn(tb testing.TB, client *http.Client, authz *url.URL, user, callbackPath string, abort bool) *url.URL {
	tb.Helper()
	next, method := authz, http.MethodGet
	var form url.Values
	for range 20 {
		var body io.Reader
		if method == http.MethodPost {
			body = strings.NewReader(form.Encode())
		}
		req, err := http.NewRequest(method, next.String(), body)
		if err != nil {
			tb.Fatal(err)
		}
		req.Header.Set("Accept", "text/html")
		if method == http.MethodPost {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		resp, err := client.Do(req)
		if err != nil {
			tb.Fatalf("%s %s: %v", method, next.Redacted(), err)
		}
		page, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode >= 300 && resp.StatusCode < 400 {
			loc, err := next.Parse(resp.Header.Get("Location"))
			if err != nil {
				tb.Fatal(err)
			}
			if loc.Path == callbackPath && loc.Host != authz.Host {
				return loc
			}
			next, method, form = loc, http.MethodGet, nil
			continue
		}
		if resp.StatusCode != http.StatusOK {
			tb.Fatalf("authorization server: HTTP %d %s", resp.StatusCode, page)
		}
		if abort {
			m := cancelRE.FindSubmatch(page)
			if m == nil {
				tb.Fatalf("no Cancel link on %s", page)
			}
			if next, err = next.Parse(html.UnescapeString(string(m[1]))); err != nil {
				tb.Fatal(err)
			}
			continue
		}
		m := formRE.FindSubmatch(page)
		if m == nil {
			tb.Fatalf("no form on %s: %s", next, page)
		}
		form = url.Values{}
		for _, in := range inputRE.FindAll(m[2], -1) {
			n := nameRE.FindSubmatch(in)
			if n == nil {
				continue
			}
			v := ""
			if vm := valueRE.FindSubmatch(in); vm != nil {
				v = html.UnescapeString(string(vm[1]))
			}
			form.Set(html.UnescapeString(string(n[1])), v)
		}
		if form.Has("login") {
			form.Set("login", user)
			form.Set("password", "any-password")
		}
		if next, err = next.Parse(html.UnescapeString(string(m[1]))); err != nil {
			tb.Fatal(err)
		}
		method = http.MethodPost
	}
	tb.Fatal("too many steps at the authorization server")
	return nil
}

// PublicJWKS is {"keys":[pub as an RS256 signing JWK with kid]}: the jwks a
// private_key_jwt Client registers.
func PublicJWKS(tb testing.TB, kid string, pub *rsa.PublicKey) json.RawMessage {
	tb.Helper()
	b, err := json.Marshal(map[string]any{"keys": []map[string]string{{
		"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
		"n": base64.RawURLEncoding.EncodeToString(pub.N.Bytes()),
		"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(pub.E)).Bytes()),
	}}})
	if err != nil {
		tb.Fatal(err)
	}
	return b
}
