package oauthflow

import (
	"net/url"
	"strings"
	"testing"
)

func TestCheckRedirectURI(t *testing.T) {
	t.Parallel()
	accept := []string{
		"https://client.example/callback",
		"https://client.example:8443/cb?x=1",
		"https://client.example",
		"https://127.0.0.1/cb",
		"http://127.0.0.1/callback",
		"http://127.0.0.1:33418/callback",
		"http://[::1]:33418/callback",
		"http://localhost:6274/oauth/callback",
		"http://localhost/cb",
		"https://vscode.dev/redirect",
	}
	for _, u := range accept {
		if err := checkRedirectURI(u); err != nil {
			t.Errorf("checkRedirectURI(%q) = %v, want accepted", u, err)
		}
	}
	refuse := []string{
		"",
		"http://client.example/callback",         // plain http off loopback
		"http://127.0.0.2/cb",                    // loopback, but not the names RFC 8252 gives
		"http://LOCALHOST/cb",                    // not spelled exactly
		"http://localhost./cb",                   //
		"http://127.0.0.1.nip.io/cb",             // a name that resolves to loopback
		"http://[::ffff:127.0.0.1]/cb",           //
		"http://0.0.0.0:8080/cb",                 //
		"https://client.example/cb#frag",         // fragment
		"https://client.example/cb#",             // empty fragment
		"https://*.client.example/cb",            // wildcard
		"https://client.example/*",               //
		"https://user@client.example/cb",         // user information
		"https://user:pw@client.example/cb",      //
		"https://evil.example\\@client.example/", // a backslash parsers disagree on
		"https://client.example/c b",             // space
		"https://client.example/cb\x00",          // control character
		"https://client.example/cé",              // non-ASCII
		"javascript:alert(1)",                    // not a URL with a host
		"data:text/html,hi",                      //
		"com.example.app:/oauth2redirect",        // private-use scheme
		"cursor://anysphere.cursor-retrieval/cb", //
		"file:///etc/passwd",                     //
		"HTTPS://client.example/cb",              // not in its plain form
		"https://client.example:0/cb",            // port 0
		"https://client.example:65536/cb",        //
		"https://client.example:080/cb",          // leading zero
		"https://client.example:/cb",             // empty port
		"https:///cb",                            // no host
		"//client.example/cb",                    // relative
		"/cb",                                    //
		"https://client.example/%zz",             // bad escape
		"https://" + strings.Repeat("a", MaxRedirectURILen) + ".example/", // too long
	}
	for _, u := range refuse {
		if err := checkRedirectURI(u); err == nil {
			t.Errorf("checkRedirectURI(%q) accepted", u)
		}
	}
}

func TestRedirectURIMatches(t *testing.T) {
	t.Parallel()
	cases := []struct {
		registered, requested string
		want                  bool
	}{
		{"https://client.example/cb", "https://client.example/cb", true},
		{"https://client.example/cb", "https://client.example/cb/", false},
		{"https://client.example/cb", "https://client.example/CB", false},
		{"https://client.example/cb", "https://client.example:443/cb", false},
		{"https://client.example/cb", "https://client.example/cb?x=1", false},
		{"https://client.example/cb?a=1", "https://client.example/cb?a=1", true},
		// RFC 8252 §7.3: the port of a loopback IP literal is the app's to choose.
		{"http://127.0.0.1/callback", "http://127.0.0.1:53127/callback", true},
		{"http://127.0.0.1:33418/callback", "http://127.0.0.1:53127/callback", true},
		{"http://[::1]:1/callback", "http://[::1]:2/callback", true},
		{"http://127.0.0.1:33418/callback", "http://127.0.0.1:53127/callback/x", false},
		{"http://127.0.0.1:33418/callback", "http://127.0.0.1:53127/callback?x", false},
		{"http://127.0.0.1:33418/callback", "http://[::1]:33418/callback", false},
		{"http://127.0.0.1:33418/callback", "http://localhost:33418/callback", false},
		{"http://127.0.0.1:33418/callback", "http://127.0.0.1:53127/callback#x", false},
		{"http://127.0.0.1:33418/callback", "http://127.0.0.1:0/callback", false},
		{"http://127.0.0.1:33418/callback", "http://user@127.0.0.1:1/callback", false},
		// localhost: exactly as registered (RFC 8252 §8.3).
		{"http://localhost:6274/cb", "http://localhost:6274/cb", true},
		{"http://localhost:6274/cb", "http://localhost:6275/cb", false},
		// https is never port-relaxed, loopback or not.
		{"https://127.0.0.1:1/cb", "https://127.0.0.1:2/cb", false},
	}
	for _, c := range cases {
		if got := redirectURIMatches(c.registered, c.requested); got != c.want {
			t.Errorf("redirectURIMatches(%q, %q) = %v, want %v", c.registered, c.requested, got, c.want)
		}
	}
}

// FuzzRedirectURI: a redirect URI is attacker input. checkRedirectURI never panics, and what
// it accepts is https, or plain http on exactly 127.0.0.1, [::1] or localhost, with no
// fragment, wildcard or user information, in its plain form; and a requested URI matches a
// registered one only if it too would be accepted.
func FuzzRedirectURI(f *testing.F) {
	for _, s := range []string{
		"https://client.example/cb", "http://127.0.0.1:33418/cb", "http://[::1]/cb", "http://localhost:1/",
		"https://a@b/", "http://127.0.0.1.evil/", "https://x/#", "https://x/%2e%2e/", "http://[::ffff:7f00:1]/",
	} {
		f.Add(s, "http://127.0.0.1:1/cb")
	}
	f.Fuzz(func(t *testing.T, s, requested string) {
		if err := checkRedirectURI(s); err == nil {
			u, perr := url.Parse(s)
			switch {
			case perr != nil || u.String() != s:
				t.Fatalf("accepted %q, not in its plain form", s)
			case strings.ContainsAny(s, "#*\\ ") || u.User != nil || u.Host == "":
				t.Fatalf("accepted %q", s)
			case u.Scheme == "http" && !loopbackRedirectHost(u.Hostname()):
				t.Fatalf("accepted plain http %q off loopback", s)
			case u.Scheme != "http" && u.Scheme != "https":
				t.Fatalf("accepted scheme %q", u.Scheme)
			}
			if redirectURIMatches(s, requested) && requested != s && checkRedirectURI(requested) != nil {
				t.Fatalf("%q matches %q, which would not be accepted", requested, s)
			}
		}
	})
}
