package authz

import (
	"errors"
	"strings"
	"testing"
)

// parseBearer is the whole of the credential grammar, as the decision
// applies it: bearerCandidate, then isB64Token.
func parseBearer(v string) (string, error) {
	tok, err := bearerCandidate(v)
	if err != nil {
		return "", err
	}
	if !isB64Token(tok) {
		return "", errMalformedCredential
	}
	return tok, nil
}

func TestParseBearer(t *testing.T) {
	cases := []struct {
		in      string
		tok     string
		wantErr error
	}{
		{"Bearer abc.def.ghi", "abc.def.ghi", nil},
		{"bearer abc", "abc", nil},
		{"BEARER abc", "abc", nil},
		{"Bearer   abc", "abc", nil},
		{"Bearer a-b_c~d+e/f==", "a-b_c~d+e/f==", nil},
		{"Bearer", "", errMalformedCredential},
		{"Bearer ", "", errMalformedCredential},
		{"Bearer abc ", "", errMalformedCredential},
		{"Bearer abc,Bearer def", "", errMalformedCredential},
		{"Bearer abc, def", "", errMalformedCredential},
		{"Bearer a=b", "", errMalformedCredential},
		{"Bearer =", "", errMalformedCredential},
		{"Bearer ab\"c", "", errMalformedCredential},
		{"Bearer\tabc", "", errNotBearer},
		{"Basic YWxhZGRpbjpvcGVuc2VzYW1l", "", errNotBearer},
		{"DPoP abc", "", errNotBearer},
		{"Bearerabc", "", errNotBearer},
		{"", "", errNotBearer},
	}
	for _, c := range cases {
		tok, err := parseBearer(c.in)
		if tok != c.tok || !errors.Is(err, c.wantErr) || (c.wantErr == nil) != (err == nil) {
			t.Errorf("parseBearer(%q) = %q, %v; want %q, %v", c.in, tok, err, c.tok, c.wantErr)
		}
	}
}

func TestQueryHasToken(t *testing.T) {
	cases := map[string]bool{
		"":                   false,
		"a=1&b=2":            false,
		"access_token=x":     true,
		"a=1&access_token=":  true,
		"access%5Ftoken=x":   true,
		"not_access_token=x": false,
		"q=access_token":     false,
		"%zz&access_token=x": true,
		"x=%41":              false,
	}
	for q, want := range cases {
		if got := queryHasToken(q); got != want {
			t.Errorf("queryHasToken(%q) = %v, want %v", q, got, want)
		}
	}
}

// FuzzParseBearer: the parser never panics, and whatever it accepts is a
// single RFC 6750 b64token that round-trips.
func FuzzParseBearer(f *testing.F) {
	for _, s := range []string{"Bearer abc", "bearer a.b.c", "Bearer a,Bearer b", "Basic x", "Bearer  x==", "Bearer =a"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		tok, err := parseBearer(in)
		if err != nil {
			if tok != "" {
				t.Fatalf("error %v with token %q", err, tok)
			}
			return
		}
		if tok == "" || !isB64Token(tok) || strings.ContainsAny(tok, " ,\t\r\n\"") {
			t.Fatalf("accepted %q from %q", tok, in)
		}
		if again, err := parseBearer("Bearer " + tok); err != nil || again != tok {
			t.Fatalf("round trip of %q: %q, %v", tok, again, err)
		}
	})
}
