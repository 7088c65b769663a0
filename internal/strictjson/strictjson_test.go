package strictjson_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/extauthz/extauthz/internal/strictjson"
)

func accept(string, []byte) error { return nil }

func TestMembers(t *testing.T) {
	r := strictjson.NewReader(8)
	valid := []string{
		`{}`, ` { } `, "\t{\"a\":1}\r\n", `{"a":{"a":{"a":[]}}}`, `{"a":1,"b":2}`,
		`{"a":-0.5e+10,"b":0,"c":-0,"d":1E3,"e":[true,false,null]}`,
		`{"a":"\"\\\/\b\f\n\r\t\u0041\ud83d\ude00"}`, `{"é":"ü","\u00e9x":1}`,
		`{"a":{"b":1},"b":{"a":1}}`, `{"":1}`, `{"a":[[],{},""]}`,
	}
	for _, s := range valid {
		if err := r.Members([]byte(s), accept); err != nil {
			t.Errorf("%q: %v", s, err)
		}
	}
	invalid := []struct {
		in   string
		want error
	}{
		{``, strictjson.ErrNotObject}, {` `, strictjson.ErrNotObject}, {`[]`, strictjson.ErrNotObject},
		{`"a"`, strictjson.ErrNotObject}, {`1`, strictjson.ErrNotObject}, {`null`, strictjson.ErrNotObject},
		{`}`, strictjson.ErrNotObject},
		{`{`, strictjson.ErrSyntax}, {`{"a"}`, strictjson.ErrSyntax}, {`{"a":}`, strictjson.ErrSyntax},
		{`{"a":1,}`, strictjson.ErrSyntax}, {`{,}`, strictjson.ErrSyntax}, {`{"a":1 "b":2}`, strictjson.ErrSyntax},
		{`{a:1}`, strictjson.ErrSyntax}, {`{"a":tru}`, strictjson.ErrSyntax}, {`{"a":True}`, strictjson.ErrSyntax},
		{`{"a":1.}`, strictjson.ErrSyntax}, {`{"a":.5}`, strictjson.ErrSyntax}, {`{"a":+1}`, strictjson.ErrSyntax},
		{`{"a":1e}`, strictjson.ErrSyntax}, {`{"a":-}`, strictjson.ErrSyntax}, {`{"a":00}`, strictjson.ErrSyntax},
		{`{"a":"\x"}`, strictjson.ErrSyntax}, {`{"a":"\u12"}`, strictjson.ErrSyntax},
		{`{"a":"\u12g4"}`, strictjson.ErrSyntax}, {`{"a":"` + "\x00" + `"}`, strictjson.ErrSyntax},
		{`{"a":[1,]}`, strictjson.ErrSyntax}, {`{"a":[,1]}`, strictjson.ErrSyntax},
		{`{"a":"unterminated}`, strictjson.ErrSyntax}, {`{"a":"\ud800\u12"}`, strictjson.ErrSyntax},
		{`{"a":1}x`, strictjson.ErrTrailing}, {`{"a":1}{}`, strictjson.ErrTrailing}, {`{} ,`, strictjson.ErrTrailing},
		{`{"a":1,"a":2}`, strictjson.ErrDuplicate}, {`{"a":1,"\u0061":2}`, strictjson.ErrDuplicate},
		{`{"x":[{"a":1,"a":1}]}`, strictjson.ErrDuplicate}, {`{"x":{"b":{"c":1,"c":1}}}`, strictjson.ErrDuplicate},
		{"{\"a\":\"\xff\"}", strictjson.ErrUTF8}, {"{\"\xc3\":1}", strictjson.ErrUTF8},
		{`{"a":"\ud800x"}`, strictjson.ErrUTF8}, {`{"a":"\ud800\u0041"}`, strictjson.ErrUTF8},
		{`{"a":"\udc00"}`, strictjson.ErrUTF8},
		{`{"a":` + strings.Repeat(`[`, 8) + strings.Repeat(`]`, 8) + `}`, strictjson.ErrDepth},
	}
	for _, c := range invalid {
		if err := r.Members([]byte(c.in), accept); !errors.Is(err, c.want) {
			t.Errorf("%q: %v, want %v", c.in, err, c.want)
		}
	}
}

// TestDepth: the bound counts the top-level object; one level more is
// refused.
func TestDepth(t *testing.T) {
	for _, depth := range []int{1, 2, 16, 64} {
		r := strictjson.NewReader(depth)
		nested := func(levels int) []byte { // an object holding levels-1 arrays
			return []byte(`{"a":` + strings.Repeat("[", levels-1) + "1" + strings.Repeat("]", levels-1) + `}`)
		}
		if err := r.Members(nested(depth), accept); err != nil {
			t.Errorf("depth %d: %d levels: %v", depth, depth, err)
		}
		over := []byte(`{"a":` + strings.Repeat("[", depth) + strings.Repeat("]", depth) + `}`)
		if err := r.Members(over, accept); !errors.Is(err, strictjson.ErrDepth) {
			t.Errorf("depth %d: %d levels: %v", depth, depth+1, err)
		}
	}
}

// TestMembersHandsOver: names unescaped, values raw, in order; fn's error
// stops the scan and is returned as is.
func TestMembersHandsOver(t *testing.T) {
	r := strictjson.NewReader(8, "iss")
	var got []string
	err := r.Members([]byte(`{"\u0069ss" : "x" ,"n":[1, 2], "o":{"p":null}}`), func(n string, v []byte) error {
		got = append(got, n+"="+string(v))
		return nil
	})
	if err != nil || strings.Join(got, " ") != `iss="x" n=[1, 2] o={"p":null}` {
		t.Errorf("members %q, %v", got, err)
	}
	stop := errors.New("stop")
	calls := 0
	err = r.Members([]byte(`{"a":1,"b":2,"b":3}`), func(string, []byte) error {
		calls++
		return stop
	})
	if err != stop || calls != 1 { //nolint:errorlint // returned as is
		t.Errorf("fn's error: %v after %d calls", err, calls)
	}
}

// TestManyMembers: past a few members the set of names is a map, and
// still finds a repeat, wherever it is.
func TestManyMembers(t *testing.T) {
	r := strictjson.NewReader(8)
	for _, n := range []int{7, 8, 9, 15, 16, 17, 24, 25, 100} {
		for _, repeat := range []int{0, 7, 8, 15, 16, n - 1} {
			if repeat >= n {
				continue
			}
			var b strings.Builder
			b.WriteString(`{`)
			for i := range n {
				fmt.Fprintf(&b, `"m%d":%d,`, i, i)
			}
			fmt.Fprintf(&b, `"m%d":0}`, repeat)
			if err := r.Members([]byte(b.String()), accept); !errors.Is(err, strictjson.ErrDuplicate) {
				t.Errorf("%d members, m%d repeated: %v", n, repeat, err)
			}
			distinct := strings.Replace(b.String(), fmt.Sprintf(`"m%d":0}`, repeat), `"last":0}`, 1)
			if err := r.Members([]byte(distinct), accept); err != nil {
				t.Errorf("%d distinct members: %v", n+1, err)
			}
		}
	}
}

func TestString(t *testing.T) {
	r := strictjson.NewReader(8, "ES256", "dpop+jwt")
	for raw, want := range map[string]string{
		`"ES256"`: "ES256", `"ES\u0032\u00356"`: "ES256", `""`: "", `"a\"b\\c"`: `a"b\c`,
		`"\ud83d\ude00é"`: "\U0001F600é",
	} {
		if got, ok := r.String([]byte(raw)); !ok || got != want {
			t.Errorf("String(%s) = %q, %v; want %q", raw, got, ok, want)
		}
	}
	for _, raw := range []string{`1`, `null`, `["a"]`, `{}`, `"`, ``} {
		if got, ok := r.String([]byte(raw)); ok {
			t.Errorf("String(%s) = %q, a string", raw, got)
		}
	}
}

// TestBytes: the same values as String, a string without escapes read in
// place, without allocating.
func TestBytes(t *testing.T) {
	r := strictjson.NewReader(8)
	for raw, want := range map[string]string{
		`"ES256"`: "ES256", `"ES\u0032\u00356"`: "ES256", `""`: "", `"a\"b\\c"`: `a"b\c`,
		`"\ud83d\ude00é"`: "\U0001F600é", `"https://mcp.example.com/mcp"`: "https://mcp.example.com/mcp",
	} {
		got, ok := r.Bytes([]byte(raw))
		if s, sok := r.String([]byte(raw)); !ok || string(got) != want || s != want || !sok {
			t.Errorf("Bytes(%s) = %q, %v; String %q, %v; want %q", raw, got, ok, s, sok, want)
		}
	}
	for _, raw := range []string{`1`, `null`, `["a"]`, `{}`, `"`, ``, `"\u12"`, "\"\xff\""} {
		if got, ok := r.Bytes([]byte(raw)); ok {
			t.Errorf("Bytes(%s) = %q, a string", raw, got)
		}
	}
	raw := []byte(`"https://mcp.example.com/mcp"`)
	if n := testing.AllocsPerRun(100, func() { _, _ = r.Bytes(raw) }); n != 0 {
		t.Errorf("%v allocations", n)
	}
	if got, _ := r.Bytes(raw); &got[0] != &raw[1] {
		t.Error("not read in place")
	}
}

// TestKnownStringsDoNotAllocate: an object made of known names and values
// is read without allocating; other strings are decoded as usual.
func TestKnownStringsDoNotAllocate(t *testing.T) {
	r := strictjson.NewReader(8, "typ", "alg", "dpop+jwt", "ES256")
	data := []byte(`{"typ":"dpop+jwt","alg":"ES256"}`)
	var typ, alg string
	read := func(name string, v []byte) error {
		switch name {
		case "typ":
			typ, _ = r.String(v)
		case "alg":
			alg, _ = r.String(v)
		}
		return nil
	}
	if n := testing.AllocsPerRun(100, func() { _ = r.Members(data, read) }); n != 0 {
		t.Errorf("%v allocations", n)
	}
	if typ != "dpop+jwt" || alg != "ES256" {
		t.Errorf("typ %q alg %q", typ, alg)
	}
	// A name that is a known string's prefix, or longer than all of them,
	// is no known string.
	var got []string
	_ = r.Members([]byte(`{"ty":1,"typx":2,"a-much-longer-name":3}`), func(n string, _ []byte) error {
		got = append(got, n)
		return nil
	})
	if strings.Join(got, ",") != "ty,typx,a-much-longer-name" {
		t.Errorf("names %q", got)
	}
}

func TestCaseVariant(t *testing.T) {
	for _, c := range []struct {
		name string
		want bool
	}{{"iss", false}, {"ISS", true}, {"Iss", true}, {"is", false}, {"ſub", true}, {"sub", false}, {"other", false}} {
		if got := strictjson.CaseVariant(c.name, "iss", "sub"); got != c.want {
			t.Errorf("CaseVariant(%q) = %v", c.name, got)
		}
	}
}

// FuzzMembers compares Members with encoding/json. What Members accepts,
// encoding/json reads as an object with the same members, each value valid
// JSON. And an object encoding/json reads that holds nothing Members
// refuses on purpose (a repeated name, invalid UTF-8, an escape — which
// could hide an unpaired surrogate — or too deep a nesting) is accepted.
func FuzzMembers(f *testing.F) {
	for _, s := range []string{
		`{}`, `{"a":1,"b":[true,null,{"c":"d"}]}`, `{"a":1,"a":2}`, `{"\u0061":1,"a":2}`,
		`{"a":"\ud800"}`, "{\"a\":\"\xff\"}", `{"a":[[[[[[[[[[]]]]]]]]]]}`, ` {"x":-0.1e5} `, `{"a":1}x`,
	} {
		f.Add([]byte(s))
	}
	const depth = 8
	r := strictjson.NewReader(depth, "a", "b")
	f.Fuzz(func(t *testing.T, data []byte) {
		var names []string
		var values [][]byte
		err := r.Members(data, func(n string, v []byte) error {
			names = append(names, n)
			values = append(values, v)
			return nil
		})
		var m map[string]json.RawMessage
		jerr := json.Unmarshal(data, &m)
		if err == nil {
			if jerr != nil || m == nil {
				t.Fatalf("accepted; encoding/json: %v", jerr)
			}
			if len(m) != len(names) {
				t.Fatalf("accepted %d members; encoding/json reads %d", len(names), len(m))
			}
			for i, n := range names {
				if !bytes.Equal(m[n], values[i]) || !json.Valid(values[i]) {
					t.Fatalf("member %q: %q; encoding/json reads %q", n, values[i], m[n])
				}
			}
			return
		}
		if jerr != nil || m == nil || !utf8.Valid(data) || bytes.IndexByte(data, '\\') >= 0 {
			return
		}
		if ok, deep := unambiguous(data); ok && deep <= depth {
			t.Fatalf("refused an unambiguous object (depth %d): %v", deep, err)
		}
	})
}

// unambiguous reports whether no object in the JSON text data repeats a
// name, and how deep it nests, by encoding/json's tokens.
func unambiguous(data []byte) (ok bool, depth int) {
	d := json.NewDecoder(bytes.NewReader(data))
	type level struct {
		object bool
		names  map[string]bool
		key    bool // the next token of an object is a name
	}
	var stack []*level
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return true, depth
		}
		if err != nil {
			return false, depth
		}
		var top *level
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if top != nil && top.object && top.key {
			if name, isName := tok.(string); isName {
				if top.names[name] {
					return false, depth
				}
				top.names[name] = true
				top.key = false
				continue
			}
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			if top != nil && top.object {
				top.key = true
			}
			stack = append(stack, &level{object: tok == json.Delim('{'), names: map[string]bool{}, key: true})
			depth = max(depth, len(stack))
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
		default:
			if top != nil && top.object {
				top.key = true
			}
		}
	}
}
