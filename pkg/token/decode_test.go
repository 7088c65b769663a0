package token

import (
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// readValues are raw member values of every shape a claim can have.
var readValues = []string{
	`"alice"`, `""`, `"caf\u00e9 \ud83d\ude00"`, `"a\"b\\c\/d\n"`, `null`, `true`, `false`, `0`, `-0`, `1700000000`,
	`1700000000.5`, `1.7e9`, `1E400`, `-1`, `1e11`, `100000000001`, `[]`, `["a","b"]`, `["a",1]`, `[null]`, `{}`, `{"a":1}`,
	`"1700000000"`, `"a b  c"`, `[ "x" , "y" ]`, `99999999999`, `999999999999999`, `1000000000000000`, `123456789012345678901`, `7`,
}

// TestReadAgreesWithEncodingJSON: each reader decodes a value checked by
// members exactly as encoding/json decodes it into the same Go type, and
// fails exactly where it fails.
func TestReadAgreesWithEncodingJSON(t *testing.T) {
	for _, v := range readValues {
		checkRead(t, []byte(v))
	}
}

func checkRead(t *testing.T, v []byte) {
	t.Helper()
	// The readers see only what members hands over.
	var handed []byte
	if members([]byte(`{"v":`+string(v)+`}`), func(_ string, raw []byte) error { handed = raw; return nil }) != nil {
		return
	}
	v = handed
	var got, want string
	gerr, werr := readString(v, &got), json.Unmarshal(v, &want)
	if (gerr == nil) != (werr == nil) || got != want {
		t.Errorf("string %s: got %q, %v; encoding/json %q, %v", v, got, gerr, want, werr)
	}
	var gd *numericDate
	var store numericDate
	var wf *float64
	gerr, werr = readDate(v, &gd, &store), json.Unmarshal(v, &wf)
	if werr == nil && wf != nil {
		werr = new(numericDate).set(*wf)
	}
	if (gerr == nil) != (werr == nil) || (gerr == nil && (gd == nil) != (wf == nil)) || (gd != nil && wf != nil && werr == nil && float64(*gd) != *wf) {
		t.Errorf("date %s: got %v, %v; encoding/json %v, %v", v, gd, gerr, wf, werr)
	}
	var gl, wl stringList
	gerr = readStrings(v, (*[]string)(&gl), func(s string) []string { return []string{s} })
	werr = json.Unmarshal(v, (*[]string)(&wl))
	if len(v) > 0 && v[0] == '"' {
		var s string
		werr = json.Unmarshal(v, &s)
		wl = stringList{s}
	}
	if (gerr == nil) != (werr == nil) || (gerr == nil && !reflect.DeepEqual(gl, wl)) {
		t.Errorf("list %s: got %q, %v; encoding/json %q, %v", v, gl, gerr, wl, werr)
	}
}

func FuzzRead(f *testing.F) {
	for _, v := range readValues {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, v string) { checkRead(t, []byte(v)) })
}

// A token's Scope is its scopes joined with single spaces, however the
// scope claim spaced them; one already so spelled is taken as it is.
func TestScopeJoined(t *testing.T) {
	for _, c := range []struct {
		scope string
		want  []string
	}{
		{"a b c", []string{"a", "b", "c"}}, {"a  b", []string{"a", "b"}}, {" a b", []string{"a", "b"}},
		{"a b ", []string{"a", "b"}}, {"solo", []string{"solo"}}, {"   ", nil},
		{"mcp:tools mcp:resources", []string{"mcp:tools", "mcp:resources"}},
		{"https://api.example.com/.default openid", []string{"https://api.example.com/.default", "openid"}},
	} {
		raw, _ := json.Marshal(map[string]any{"scope": c.scope, "exp": 4102444800})
		p, err := ParsePayload(raw, ClaimNames{})
		if err != nil {
			t.Fatal(err)
		}
		cl, err := p.Claims(time.Unix(1700000000, 0), 0, true)
		if err != nil {
			t.Fatal(err)
		}
		if want := strings.Join(c.want, " "); cl.Scope != want || !slices.Equal(cl.Scopes, c.want) {
			t.Errorf("scope %q: Scope %q, Scopes %q; want %q", c.scope, cl.Scope, cl.Scopes, want)
		}
	}
}

// A scope is a scope-token (RFC 6749 §3.3) and scopes are separated by
// spaces alone: a token whose scopes would read otherwise to the upstream,
// which gets them joined in one header, or whose subject or client id is no
// header field value as it is, is malformed. Each of these was allowed,
// its value passed upstream as it was, before.
func TestClaimsNotHeaderSafe(t *testing.T) {
	base := func() map[string]any {
		return map[string]any{"sub": "alice", "client_id": "client-1", "scope": "mcp:tools", "exp": 4102444800}
	}
	for _, c := range []struct {
		name, claim string
		value       any
	}{
		{"a tab between scopes", "scope", "mcp:tools\tmcp:write"},
		{"a line break between scopes", "scope", "mcp:tools\nmcp:write"},
		{"a no-break space between scopes", "scope", "mcp:tools\u00a0mcp:write"},
		{"NEL between scopes", "scope", "mcp:tools\u0085mcp:write"},
		{"a quote in a scope", "scope", `mcp:"tools`},
		{"a backslash in a scope", "scope", `mcp:\tools`},
		{"a space inside one scp entry", "scp", []string{"mcp:tools mcp:write"}},
		{"a control character inside one scp entry", "scp", []string{"mcp:tools\x01mcp:write"}},
		{"an empty scp entry", "scp", []string{"mcp:tools", ""}},
		{"CRLF in sub", "sub", "alice\r\nx-injected: 1"},
		{"NUL in sub", "sub", "al\x00ice"},
		{"DEL in sub", "sub", "al\x7fice"},
		{"a tab in sub", "sub", "al\tice"},
		{"a leading space in sub", "sub", " alice"},
		{"a trailing space in sub", "sub", "alice "},
		{"CRLF in client_id", "client_id", "client\r\n-1"},
		{"a trailing space in azp", "azp", "client-1 "},
	} {
		t.Run(c.name, func(t *testing.T) {
			claims := base()
			if c.claim == "scp" {
				delete(claims, "scope")
			}
			if c.claim == "azp" {
				delete(claims, "client_id")
			}
			claims[c.claim] = c.value
			raw, _ := json.Marshal(claims)
			p, err := ParsePayload(raw, ClaimNames{})
			if err != nil {
				t.Fatal(err)
			}
			if cl, err := p.Claims(time.Unix(1700000000, 0), 0, true); !errors.Is(err, ErrMalformed) {
				t.Fatalf("%s: claims %+v, error %v; want ErrMalformed", raw, cl, err)
			}
		})
	}
	// What a header carries as it is stays accepted: UTF-8 beyond ASCII
	// in sub, a URL as client id, an inner space in sub.
	for _, sub := range []string{"zoë@example.com", "Alice Smith", "auth0|5f7c8ec7c33c6c004bbafe82"} {
		claims := base()
		claims["sub"], claims["client_id"] = sub, "https://client.example.com/metadata.json"
		raw, _ := json.Marshal(claims)
		p, err := ParsePayload(raw, ClaimNames{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.Claims(time.Unix(1700000000, 0), 0, true); err != nil {
			t.Errorf("sub %q: %v", sub, err)
		}
	}
}
