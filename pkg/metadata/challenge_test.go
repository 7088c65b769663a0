package metadata

import (
	"strings"
	"testing"
)

func TestChallengeString(t *testing.T) {
	cases := []struct {
		c    Challenge
		want string
	}{
		{Challenge{ResourceMetadata: "https://h/.well-known/oauth-protected-resource/mcp", Scope: "a b"},
			`Bearer scope="a b", resource_metadata="https://h/.well-known/oauth-protected-resource/mcp"`},
		{Challenge{ResourceMetadata: "https://h/x"}, `Bearer resource_metadata="https://h/x"`},
		{Challenge{Error: "invalid_token", Scope: "s", ResourceMetadata: "https://h/x", ErrorDescription: "expired"},
			`Bearer error="invalid_token", scope="s", resource_metadata="https://h/x", error_description="expired"`},
		{Challenge{Error: "insufficient_scope", ErrorDescription: "say \"hi\" \\ bye\r\nSet-Cookie: x"},
			`Bearer error="insufficient_scope", error_description="say \"hi\" \\ byeSet-Cookie: x"`},
		{Challenge{}, `Bearer`},
	}
	for _, c := range cases {
		if got := c.c.String(); got != c.want {
			t.Errorf("got  %s\nwant %s", got, c.want)
		}
	}
}

func TestParseChallenges(t *testing.T) {
	chs, err := ParseChallenges(`Newauth realm="apps", type=1, title="Login to \"apps\"", Basic realm="simple", Bearer error=invalid_token`)
	if err != nil {
		t.Fatal(err)
	}
	if len(chs) != 3 || chs[0].Scheme != "Newauth" || chs[0].Params["title"] != `Login to "apps"` || chs[0].Params["type"] != "1" ||
		chs[1].Params["realm"] != "simple" || chs[2].Scheme != "Bearer" || chs[2].Params["error"] != "invalid_token" {
		t.Errorf("parsed %+v", chs)
	}
	for _, bad := range []string{``, `Bearer x="unterminated`, `Bearer a="1", a="2"`, `Bearer x="a` + "\x01" + `"`, `=x`} {
		if _, err := ParseChallenges(bad); err == nil {
			t.Errorf("ParseChallenges(%q) accepted", bad)
		}
	}
}

// sanitize is what the builder promises to keep of a value.
func sanitize(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '\t' || (c >= 0x20 && c < 0x7f) {
			b.WriteByte(c)
		}
	}
	return b.String()
}

// FuzzChallenge: whatever goes in, the header is one line of visible ASCII
// that an RFC 9110 parser reads back as exactly one Bearer challenge with
// the (sanitized) values.
func FuzzChallenge(f *testing.F) {
	f.Add("invalid_token", "mcp:tools mcp:write", "https://h/.well-known/oauth-protected-resource/mcp", "the token expired")
	f.Add("", "", "", "")
	f.Add("x\"y", "a\\b", "\r\nX-Injected: 1", "é\x00")
	f.Fuzz(func(t *testing.T, e, scope, rm, desc string) {
		h := Challenge{Error: e, Scope: scope, ResourceMetadata: rm, ErrorDescription: desc}.String()
		for i := 0; i < len(h); i++ {
			if c := h[i]; c != '\t' && (c < 0x20 || c >= 0x7f) {
				t.Fatalf("header %q has byte %#x", h, c)
			}
		}
		chs, err := ParseChallenges(h)
		if err != nil || len(chs) != 1 || chs[0].Scheme != "Bearer" {
			t.Fatalf("%q parsed as %+v, %v", h, chs, err)
		}
		want := map[string]string{"error": sanitize(e), "scope": sanitize(scope), "resource_metadata": sanitize(rm), "error_description": sanitize(desc)}
		for k, v := range want {
			got, ok := chs[0].Params[k]
			if v == "" && ok || v != "" && got != v {
				t.Fatalf("%s: got %q (present %v), want %q; header %q", k, got, ok, v, h)
			}
		}
	})
}

func FuzzParseChallenges(f *testing.F) {
	f.Add(`Bearer error="invalid_token", scope="a b", resource_metadata="https://h/x"`)
	f.Add(`Basic realm=x, Bearer`)
	f.Fuzz(func(t *testing.T, s string) {
		_, _ = ParseChallenges(s) // must not panic or hang
	})
}
