package dpop_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/extauthz/extauthz/pkg/dpop"
)

func TestNormalizeURI(t *testing.T) {
	t.Parallel()
	same := []struct{ in, want string }{
		{"https://mcp.example.com/mcp", "https://mcp.example.com/mcp"},
		{"HTTPS://MCP.EXAMPLE.COM/mcp", "https://mcp.example.com/mcp"},
		{"https://mcp.example.com", "https://mcp.example.com/"},
		{"https://mcp.example.com?q", "https://mcp.example.com/"},
		{"https://mcp.example.com#f", "https://mcp.example.com/"},
		{"https://mcp.example.com/a?b=c#d", "https://mcp.example.com/a"},
		{"https://mcp.example.com:443/a", "https://mcp.example.com/a"},
		{"https://mcp.example.com:00443/a", "https://mcp.example.com/a"},
		{"https://mcp.example.com:/a", "https://mcp.example.com/a"},
		{"http://mcp.example.com:80/a", "http://mcp.example.com/a"},
		{"http://mcp.example.com:443/a", "http://mcp.example.com:443/a"},
		{"https://mcp.example.com:80/a", "https://mcp.example.com:80/a"},
		{"https://mcp.example.com:08443/a", "https://mcp.example.com:8443/a"},
		{"https://mcp.example.com/%7euser/%41b", "https://mcp.example.com/~user/Ab"},
		{"https://mcp.example.com/a%2fb", "https://mcp.example.com/a%2Fb"},
		{"https://mcp.example.com/a%3Fb", "https://mcp.example.com/a%3Fb"},
		{"https://mcp.example.com/%e2%82%ac", "https://mcp.example.com/%E2%82%AC"},
		{"https://mcp.example.com/a//b/", "https://mcp.example.com/a//b/"},
		{"https://mcp.example.com/a/.b/..c/...", "https://mcp.example.com/a/.b/..c/..."},
		{"https://mcp.example.com/:@!$&'()*+,;=", "https://mcp.example.com/:@!$&'()*+,;="},
		{"https://[::1]:8443/a", "https://[::1]:8443/a"},
		{"https://[FE80::1]:443/a", "https://[fe80::1]/a"},
		{"https://127.0.0.1/", "https://127.0.0.1/"},
	}
	for _, tt := range same {
		got, err := dpop.NormalizeURI(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("NormalizeURI(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			continue
		}
		// Idempotent: the normal form is its own normal form.
		if again, err := dpop.NormalizeURI(got); err != nil || again != got {
			t.Errorf("NormalizeURI(%q) = %q, %v; not idempotent", got, again, err)
		}
	}
	refused := []struct{ in, why string }{
		{"", "no scheme"},
		{"/mcp", "no scheme"},
		{"mcp.example.com/mcp", "no scheme"},
		{"ftp://mcp.example.com/", "not http or https"},
		{"javascript:alert(1)", "not http or https"},
		{"https:mcp.example.com/mcp", "no authority"},
		{"https:///mcp", "empty host"},
		{"https://user@mcp.example.com/", "user information"},
		{"https://mcp.example.com:99999/", "above 65535"},
		{"https://mcp.example.com:123456/", "above 65535"},
		{"https://mcp.example.com:8x/", "not a number"},
		{"https://mcp.example.com:-1/", "not a number"},
		{"https://mcp%2eexample.com/", "percent-encoded host"},
		{"https://mcp.exam ple.com/", "invalid character in host"},
		{"https://a:b:c/", "invalid character in host"},
		{"https://[fe80::1%25eth0]/", "not an IPv6 address"},
		{"https://[v1.x]/", "not an IPv6 address"},
		{"https://[::1/", "unterminated"},
		{"https://[::1]x/", "junk after"},
		{"https://[]/", "empty IP literal"},
		{"https://mcp.example.com/a/../b", "dot segment"},
		{"https://mcp.example.com/a/./b", "dot segment"},
		{"https://mcp.example.com/..", "dot segment"},
		{"https://mcp.example.com/.", "dot segment"},
		{"https://mcp.example.com/%2e%2E/b", "dot segment"},
		{"https://mcp.example.com/a/%2E", "dot segment"},
		{"https://mcp.example.com/a b", "not allowed"},
		{"https://mcp.example.com/a\\b", "not allowed"},
		{"https://mcp.example.com/é", "not allowed"},
		{"https://mcp.example.com/a\x00", "not allowed"},
		{"https://mcp.example.com/%", "two hex digits"},
		{"https://mcp.example.com/%4", "two hex digits"},
		{"https://mcp.example.com/%zz", "two hex digits"},
	}
	for _, tt := range refused {
		if got, err := dpop.NormalizeURI(tt.in); err == nil || !strings.Contains(err.Error(), tt.why) {
			t.Errorf("NormalizeURI(%q) = %q, %v; want an error saying %q", tt.in, got, err, tt.why)
		}
	}
}

// The request URI the engine gives goes through the same normalisation:
// a proof for the normal form matches a request URI in another spelling.
func TestVerifyNormalizesRequestURI(t *testing.T) {
	t.Parallel()
	f := newFixture(t, dpop.Options{})
	k := newKey(t, "ES256")
	p := k.proof(t, k.header(), f.claims())
	if _, err := f.v.Verify(t.Context(), dpop.Proof{Header: p, Method: testMethod, URI: "HTTPS://mcp.example.com:443/%6dcp", AccessToken: testToken}); err != nil {
		t.Fatal(err)
	}
	p = k.proof(t, k.header(), f.claims())
	if _, err := f.v.Verify(t.Context(), dpop.Proof{Header: p, Method: testMethod, URI: "https://mcp.example.com/x/../mcp", AccessToken: testToken}); err == nil || !strings.Contains(err.Error(), "request URI: dot segment") {
		t.Fatalf("a request URI with a dot segment: %v", err)
	}
}

// An already-normal URI costs no allocation: it is compared on every
// request.
func TestNormalizeURINoAlloc(t *testing.T) {
	if n := testing.AllocsPerRun(100, func() { _, _ = dpop.NormalizeURI(testURI) }); n != 0 {
		t.Fatalf("%v allocations for a normal URI", n)
	}
}

// An htu spelled exactly as the request URI is still checked: both are
// refused when neither can be normalised, as htu's fault.
func TestVerifyRefusesHTUEqualToBadRequestURI(t *testing.T) {
	t.Parallel()
	f := newFixture(t, dpop.Options{})
	k := newKey(t, "ES256")
	for _, uri := range []string{"https://mcp.example.com/x/../mcp", "ftp://mcp.example.com/mcp", "https://user@mcp.example.com/mcp", "/mcp"} {
		c := f.claims()
		c["htu"] = uri
		_, err := f.v.Verify(t.Context(), dpop.Proof{Header: k.proof(t, k.header(), c), Method: testMethod, URI: uri, AccessToken: testToken})
		if !errors.Is(err, dpop.ErrInvalidProof) || !strings.Contains(err.Error(), "htu: ") {
			t.Errorf("htu and request URI %q: %v", uri, err)
		}
	}
}
