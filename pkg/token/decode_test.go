package token

import (
	"encoding/json"
	"reflect"
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
	for _, scope := range []string{"a b c", "a  b", " a b", "a b ", "a\tb", "a\u00a0b", "a\u0085b", "solo", "   ", "mcp:tools mcp:resources"} {
		raw, _ := json.Marshal(map[string]any{"scope": scope, "exp": 4102444800})
		p, err := ParsePayload(raw, ClaimNames{})
		if err != nil {
			t.Fatal(err)
		}
		c, err := p.Claims(time.Unix(1700000000, 0), 0, true)
		if err != nil {
			t.Fatal(err)
		}
		if want := strings.Join(strings.Fields(scope), " "); c.Scope != want || !reflect.DeepEqual(c.Scopes, strings.Fields(scope)) {
			t.Errorf("scope %q: Scope %q, Scopes %q; want %q", scope, c.Scope, c.Scopes, want)
		}
	}
}
