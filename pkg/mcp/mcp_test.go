package mcp

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

// encodeName is what a conforming client puts in Mcp-Name: plain when the
// value survives as a header unchanged and unambiguously, else the sentinel.
func encodeName(name string) string {
	plain := name != "" && name[0] != ' ' && name[0] != '\t' &&
		name[len(name)-1] != ' ' && name[len(name)-1] != '\t' &&
		!(len(name) >= len(sentinelPrefix) && strings.EqualFold(name[:len(sentinelPrefix)], sentinelPrefix))
	for i := 0; plain && i < len(name); i++ {
		if c := name[i]; (c < 0x20 && c != '\t') || c >= 0x7f {
			plain = false
		}
	}
	if plain {
		return name
	}
	return sentinelPrefix + base64.StdEncoding.EncodeToString([]byte(name)) + sentinelSuffix
}

func b64name(s string) string {
	return sentinelPrefix + base64.StdEncoding.EncodeToString([]byte(s)) + sentinelSuffix
}

// hdr builds an Input with Mcp-Method (and Mcp-Name unless name is "-").
func hdr(method, name string, body string) Input {
	in := Input{MethodHeader: method, HasMethodHeader: true}
	if name != "-" {
		in.NameHeader, in.HasNameHeader = name, true
	}
	if body != "" {
		in.Body = []byte(body)
	}
	return in
}

func bodyOnly(body string) Input { return Input{Body: []byte(body)} }

const (
	callBody     = `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_weather","arguments":{"city":"Paris"}}}`
	promptBody   = `{"jsonrpc":"2.0","id":2,"method":"prompts/get","params":{"name":"summarize","arguments":{}}}`
	readBody     = `{"jsonrpc":"2.0","id":3,"method":"resources/read","params":{"uri":"file:///etc/hosts"}}`
	subBody      = `{"jsonrpc":"2.0","id":4,"method":"resources/subscribe","params":{"uri":"db://t/1"}}`
	unsubBody    = `{"jsonrpc":"2.0","id":5,"method":"resources/unsubscribe","params":{"uri":"db://t/1"}}`
	listBody     = `{"jsonrpc":"2.0","id":6,"method":"tools/list","params":{"cursor":"x"}}`
	notifBody    = `{"jsonrpc":"2.0","method":"notifications/initialized"}`
	resultBody   = `{"jsonrpc":"2.0","id":7,"result":{"content":[]}}`
	errorBody    = `{"jsonrpc":"2.0","id":8,"error":{"code":-32601,"message":"no"}}`
	unicodeBody  = `{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"tööl"}}`
	escapedBody  = `{"jsonrpc":"2.0","id":10,"method":"tools\/call","params":{"n\u0061me":"t\u00f6\u00f6l"}}`
	noRPCBody    = `{"id":11,"method":"ping"}`
	noParamsBody = `{"jsonrpc":"2.0","id":12,"method":"ping"}`
)

func TestExtract(t *testing.T) {
	tests := []struct {
		name    string
		in      Input
		maxBody int
		want    Operation
		err     error
	}{
		// Nothing at all.
		{"nothing", Input{}, 0, Operation{}, nil},
		{"empty non-nil body", Input{Body: []byte{}}, 0, Operation{}, nil},

		// Headers only.
		{"hdr tools/call", hdr("tools/call", "get_weather", ""), 0, Operation{"tools/call", "get_weather", true, false, false}, nil},
		{"hdr resources/read", hdr("resources/read", "file:///etc/hosts", ""), 0, Operation{"resources/read", "file:///etc/hosts", true, false, false}, nil},
		{"hdr tools/list", hdr("tools/list", "-", ""), 0, Operation{"tools/list", "", true, false, false}, nil},
		{"hdr OWS trimmed", hdr(" \ttools/call ", "\t get_weather  ", ""), 0, Operation{"tools/call", "get_weather", true, false, false}, nil},
		{"hdr unknown method", hdr("x/y", "-", ""), 0, Operation{"x/y", "", true, false, false}, nil},
		{"hdr sentinel name", hdr("tools/call", b64name("tööl"), ""), 0, Operation{"tools/call", "tööl", true, false, false}, nil},
		{"hdr sentinel ascii", hdr("tools/call", b64name("plain"), ""), 0, Operation{"tools/call", "plain", true, false, false}, nil},
		{"hdr name without method", Input{NameHeader: "x", HasNameHeader: true}, 0, Operation{}, ErrBadHeader},
		{"hdr name missing", hdr("tools/call", "-", ""), 0, Operation{"tools/call", "", true, false, true}, nil},
		{"hdr uri missing", hdr("resources/subscribe", "-", ""), 0, Operation{"resources/subscribe", "", true, false, true}, nil},
		{"hdr name for nameless method", hdr("tools/list", "x", ""), 0, Operation{}, ErrBadHeader},
		{"hdr empty method", hdr("", "-", ""), 0, Operation{}, ErrBadHeader},
		{"hdr blank method", hdr(" \t ", "-", ""), 0, Operation{}, ErrBadHeader},
		{"hdr method with space", hdr("tools call", "-", ""), 0, Operation{}, ErrBadHeader},
		{"hdr method control", hdr("tools/list\x00", "-", ""), 0, Operation{}, ErrBadHeader},
		{"hdr method non-ascii", hdr("tööls/list", "-", ""), 0, Operation{}, ErrBadHeader},
		{"hdr method sentinel", hdr(b64name("tools/call"), "x", ""), 0, Operation{}, ErrBadHeader},
		{"hdr method too long", hdr(strings.Repeat("a", MaxHeaderBytes+1), "-", ""), 0, Operation{}, ErrBadHeader},
		{"hdr method at limit", hdr(strings.Repeat("a", MaxHeaderBytes), "-", ""), 0, Operation{strings.Repeat("a", MaxHeaderBytes), "", true, false, false}, nil},
		{"hdr empty name", hdr("tools/call", "  ", ""), 0, Operation{}, ErrBadHeader},
		{"hdr name control", hdr("tools/call", "a\rb", ""), 0, Operation{}, ErrBadHeader},
		{"hdr name raw utf8", hdr("tools/call", "tööl", ""), 0, Operation{}, ErrBadHeader},
		{"hdr name too long", hdr("tools/call", strings.Repeat("n", MaxHeaderBytes+1), ""), 0, Operation{}, ErrBadHeader},
		{"hdr invalid sentinel base64", hdr("tools/call", "=?base64?!!!?=", ""), 0, Operation{}, ErrBadHeader},
		{"hdr sentinel not utf8", hdr("tools/call", b64name("\xff\xfe"), ""), 0, Operation{}, ErrBadHeader},
		{"hdr sentinel empty", hdr("tools/call", "=?base64??=", ""), 0, Operation{}, ErrBadHeader},
		{"hdr sentinel unterminated", hdr("tools/call", "=?base64?dMO2w7Zs", ""), 0, Operation{}, ErrBadHeader},
		{"hdr sentinel overlapping markers", hdr("tools/call", "=?base64?=", ""), 0, Operation{}, ErrBadHeader},
		{"hdr sentinel miscased", hdr("tools/call", "=?BASE64?dMO2w7Zs?=", ""), 0, Operation{}, ErrBadHeader},
		{"hdr sentinel without padding chars", hdr("tools/call", "=?base64?dMO2w7Zs?=", ""), 0, Operation{"tools/call", "tööl", true, false, false}, nil},
		{"hdr sentinel missing padding", hdr("tools/call", "=?base64?YQ?=", ""), 0, Operation{}, ErrBadHeader},
		{"hdr sentinel nonzero pad bits", hdr("tools/call", "=?base64?YR==?=", ""), 0, Operation{}, ErrBadHeader},
		{"hdr other =? prefix is plain", hdr("prompts/get", "=?utf-8?q?x?=", ""), 0, Operation{"prompts/get", "=?utf-8?q?x?=", true, false, false}, nil},

		// Body only.
		{"body tools/call", bodyOnly(callBody), 0, Operation{"tools/call", "get_weather", true, false, false}, nil},
		{"body prompts/get", bodyOnly(promptBody), 0, Operation{"prompts/get", "summarize", true, false, false}, nil},
		{"body resources/read", bodyOnly(readBody), 0, Operation{"resources/read", "file:///etc/hosts", true, false, false}, nil},
		{"body resources/subscribe", bodyOnly(subBody), 0, Operation{"resources/subscribe", "db://t/1", true, false, false}, nil},
		{"body resources/unsubscribe", bodyOnly(unsubBody), 0, Operation{"resources/unsubscribe", "db://t/1", true, false, false}, nil},
		{"body tools/list", bodyOnly(listBody), 0, Operation{"tools/list", "", true, false, false}, nil},
		{"body notification", bodyOnly(notifBody), 0, Operation{"notifications/initialized", "", true, true, false}, nil},
		{"body result", bodyOnly(resultBody), 0, Operation{"", "", true, false, false}, nil},
		{"body error", bodyOnly(errorBody), 0, Operation{"", "", true, false, false}, nil},
		{"body unicode name", bodyOnly(unicodeBody), 0, Operation{"tools/call", "tööl", true, false, false}, nil},
		{"body escapes", bodyOnly(escapedBody), 0, Operation{"tools/call", "tööl", true, false, false}, nil},
		{"body without jsonrpc", bodyOnly(noRPCBody), 0, Operation{"ping", "", true, false, false}, nil},
		{"body whitespace around", bodyOnly(" \r\n\t" + noParamsBody + "\n"), 0, Operation{"ping", "", true, false, false}, nil},
		{"body unknown method", bodyOnly(`{"jsonrpc":"2.0","id":1,"method":"x/y"}`), 0, Operation{"x/y", "", true, false, false}, nil},
		{"body uri member ignored for tools/call", bodyOnly(`{"method":"tools/call","params":{"uri":"u","name":"n"}}`), 0, Operation{"tools/call", "n", true, true, false}, nil},
		{"body name member ignored for resources/read", bodyOnly(`{"method":"resources/read","params":{"name":"n","uri":"u:x"}}`), 0, Operation{"resources/read", "u:x", true, true, false}, nil},
		{"body Name in arguments is fine", bodyOnly(`{"method":"tools/call","params":{"name":"n","arguments":{"Name":"x","name":"y"}}}`), 0, Operation{"tools/call", "n", true, true, false}, nil},
		{"body id case variant refused", bodyOnly(`{"method":"ping","id":1,"ID":2}`), 0, Operation{}, ErrBadBody},
		{"body id case variant alone refused", bodyOnly(`{"method":"ping","Id":1}`), 0, Operation{}, ErrBadBody},
		{"body id duplicate refused", bodyOnly(`{"method":"ping","id":1,"id":null}`), 0, Operation{}, ErrBadBody},
		{"body request", bodyOnly(`{"method":"ping","id":null}`), 0, Operation{"ping", "", true, false, false}, nil},
		{"body nested junk skipped", bodyOnly(`{"x":[{"a":"}]\"{"},[[]],{}],"method":"tools/call","params":{"z":{"name":"no"},"name":"yes"}}`), 0, Operation{"tools/call", "yes", true, true, false}, nil},
		{"body control char in name", bodyOnly(`{"method":"tools/call","params":{"name":"a\nb"}}`), 0, Operation{}, ErrBadBody},
		{"body tab in name", bodyOnly(`{"method":"tools/call","params":{"name":"a\tb"}}`), 0, Operation{}, ErrBadBody},
		{"body DEL in name", bodyOnly(`{"method":"prompts/get","params":{"name":"a\u007fb"}}`), 0, Operation{}, ErrBadBody},
		{"body C1 control in name", bodyOnly(`{"method":"tools/call","params":{"name":"a\u0085b"}}`), 0, Operation{}, ErrBadBody},
		{"body literal C1 control in name", bodyOnly("{\"method\":\"tools/call\",\"params\":{\"name\":\"a\u0085b\"}}"), 0, Operation{}, ErrBadBody},
		{"body U+00A0 in name is a character", bodyOnly(`{"method":"tools/call","params":{"name":"a\u00a0b"}}`), 0, Operation{"tools/call", "a\u00a0b", true, true, false}, nil},
		{"names are not case-folded", hdr("tools/call", "Delete_Repo", `{"method":"tools/call","params":{"name":"Delete_Repo"}}`), 0, Operation{"tools/call", "Delete_Repo", true, true, false}, nil},
		{"header name differing only in case", hdr("tools/call", "delete_repo", `{"method":"tools/call","params":{"name":"Delete_Repo"}}`), 0, Operation{}, ErrMismatch},
		{"hdr tab inside a plain name", hdr("tools/call", "a\tb", ""), 0, Operation{}, ErrBadHeader},
		{"hdr control in a sentinel name", hdr("tools/call", b64name("a\x1bb"), ""), 0, Operation{}, ErrBadHeader},
		{"hdr C1 control in a sentinel name", hdr("prompts/get", b64name("a\u0085b"), ""), 0, Operation{}, ErrBadHeader},

		// Resource URIs come out canonical, from either source; agreement is
		// on the values as sent.
		{"hdr uri canonicalised", hdr("resources/read", "FILE://localhost/public/../secrets/key", ""), 0, Operation{"resources/read", "file:///secrets/key", true, false, false}, nil},
		{"body uri canonicalised", bodyOnly(`{"method":"resources/subscribe","params":{"uri":"file:///./secrets/key"}}`), 0, Operation{"resources/subscribe", "file:///secrets/key", true, true, false}, nil},
		{"hdr and body agree, uri canonicalised", hdr("resources/unsubscribe", "file:///%73ecrets/key", `{"method":"resources/unsubscribe","params":{"uri":"file:///%73ecrets/key"}}`), 0, Operation{"resources/unsubscribe", "file:///secrets/key", true, true, false}, nil},
		{"hdr and body agree only once canonical", hdr("resources/read", "file:///secrets/key", `{"method":"resources/read","params":{"uri":"FILE:///secrets/key"}}`), 0, Operation{}, ErrMismatch},
		{"hdr uri refused", hdr("resources/read", "file://%6cocalhost/secrets/key", ""), 0, Operation{}, ErrBadURI},
		{"body uri refused", bodyOnly(`{"method":"resources/read","params":{"uri":"file:///a/..%2Fsecrets"}}`), 0, Operation{}, ErrBadURI},
		{"body uri with a tab refused", bodyOnly(`{"method":"resources/read","params":{"uri":"file:///se\tcrets"}}`), 0, Operation{}, ErrBadBody},
		{"tool names are not URIs", hdr("tools/call", "FILE:///x/../y", ""), 0, Operation{"tools/call", "FILE:///x/../y", true, false, false}, nil},

		{"body batch", bodyOnly(`[` + callBody + `]`), 0, Operation{}, ErrBatch},
		{"body batch with space", bodyOnly(` [ ]`), 0, Operation{}, ErrBatch},
		{"body invalid json", bodyOnly(`{"method":"tools/call",`), 0, Operation{}, ErrBadBody},
		{"body trailing data", bodyOnly(noParamsBody + `{}`), 0, Operation{}, ErrBadBody},
		{"body null", bodyOnly(`null`), 0, Operation{}, ErrBadBody},
		{"body whitespace only", bodyOnly(" \n\t "), 0, Operation{}, ErrBadBody},
		{"body string", bodyOnly(`"tools/call"`), 0, Operation{}, ErrBadBody},
		{"body empty object", bodyOnly(`{}`), 0, Operation{}, ErrBadBody},
		{"body BOM", bodyOnly("\xef\xbb\xbf" + noParamsBody), 0, Operation{}, ErrBadBody},
		{"body invalid utf8", bodyOnly("{\"method\":\"tools/call\",\"params\":{\"name\":\"a\xff\"}}"), 0, Operation{}, ErrBadBody},
		{"body method number", bodyOnly(`{"method":1}`), 0, Operation{}, ErrBadBody},
		{"body method null", bodyOnly(`{"method":null,"id":1}`), 0, Operation{}, ErrBadBody},
		{"body method empty", bodyOnly(`{"method":""}`), 0, Operation{}, ErrBadBody},
		{"body method with space", bodyOnly(`{"method":" tools/list"}`), 0, Operation{}, ErrBadBody},
		{"body method non-ascii", bodyOnly(`{"method":"tööls/list"}`), 0, Operation{}, ErrBadBody},
		{"body method sentinel-like", bodyOnly(`{"method":"=?base64?x?="}`), 0, Operation{}, ErrBadBody},
		{"body jsonrpc 1.0", bodyOnly(`{"jsonrpc":"1.0","method":"ping"}`), 0, Operation{}, ErrBadBody},
		{"body jsonrpc number", bodyOnly(`{"jsonrpc":2.0,"method":"ping"}`), 0, Operation{}, ErrBadBody},
		{"body request and response", bodyOnly(`{"method":"tools/list","result":{}}`), 0, Operation{}, ErrBadBody},
		{"body no params", bodyOnly(`{"id":1,"method":"tools/call"}`), 0, Operation{"tools/call", "", true, false, true}, nil},
		{"body params not an object", bodyOnly(`{"id":1,"method":"tools/call","params":[]}`), 0, Operation{}, ErrBadBody},
		{"body params array", bodyOnly(`{"method":"tools/call","params":["x"]}`), 0, Operation{}, ErrBadBody},
		{"body params null", bodyOnly(`{"method":"tools/call","params":null}`), 0, Operation{}, ErrBadBody},
		{"body name missing", bodyOnly(`{"id":1,"method":"tools/call","params":{"arguments":{}}}`), 0, Operation{"tools/call", "", true, false, true}, nil},
		{"body name number", bodyOnly(`{"method":"tools/call","params":{"name":5}}`), 0, Operation{}, ErrBadBody},
		{"body name empty", bodyOnly(`{"method":"tools/call","params":{"name":""}}`), 0, Operation{}, ErrBadBody},
		{"body uri missing", bodyOnly(`{"id":1,"method":"resources/read","params":{"name":"x"}}`), 0, Operation{"resources/read", "", true, false, true}, nil},
		{"body uri missing, header agrees", hdr("resources/unsubscribe", "-", `{"id":1,"method":"resources/unsubscribe","params":{}}`), 0, Operation{"resources/unsubscribe", "", true, false, true}, nil},
		{"body uri missing, header names one", hdr("resources/read", "file:///x", `{"id":1,"method":"resources/read","params":{}}`), 0, Operation{}, ErrMismatch},
		{"body lone surrogate", bodyOnly(`{"method":"tools/call","params":{"name":"x\ud800"}}`), 0, Operation{}, ErrBadBody},
		{"body literal U+FFFD", bodyOnly(`{"method":"tools/call","params":{"name":"x` + "\uFFFD" + `"}}`), 0, Operation{}, ErrBadBody},
		{"body duplicate method", bodyOnly(`{"method":"tools/list","method":"tools/call","params":{"name":"x"}}`), 0, Operation{}, ErrBadBody},
		{"body escaped duplicate method", bodyOnly(`{"method":"tools/list","m\u0065thod":"tools/list"}`), 0, Operation{}, ErrBadBody},
		{"body method case variant", bodyOnly(`{"method":"tools/call","Method":"tools/list","params":{"name":"x"}}`), 0, Operation{}, ErrBadBody},
		{"body params fold variant", bodyOnly(`{"method":"tools/call","params":{"name":"a"},"param` + "\u017f" + `":{"name":"b"}}`), 0, Operation{}, ErrBadBody},
		{"body result case variant", bodyOnly(`{"id":1,"Result":{},"method":"ping"}`), 0, Operation{}, ErrBadBody},
		{"body duplicate name", bodyOnly(`{"method":"tools/call","params":{"name":"a","name":"b"}}`), 0, Operation{}, ErrBadBody},
		{"body name case variant", bodyOnly(`{"method":"tools/call","params":{"name":"a","NAME":"b"}}`), 0, Operation{}, ErrBadBody},
		{"body uri case variant", bodyOnly(`{"method":"resources/read","params":{"URI":"b","uri":"a"}}`), 0, Operation{}, ErrBadBody},
		{"body too large", bodyOnly(callBody), len(callBody) - 1, Operation{}, ErrTooLarge},
		{"body at limit", bodyOnly(callBody), len(callBody), Operation{"tools/call", "get_weather", true, false, false}, nil},
		{"body limit checked before syntax", bodyOnly(`{{{{`), 2, Operation{}, ErrTooLarge},

		// Headers and body.
		{"both agree", hdr("tools/call", "get_weather", callBody), 0, Operation{"tools/call", "get_weather", true, false, false}, nil},
		{"both agree resources/read", hdr("resources/read", "file:///etc/hosts", readBody), 0, Operation{"resources/read", "file:///etc/hosts", true, false, false}, nil},
		{"both agree no name", hdr("tools/list", "-", listBody), 0, Operation{"tools/list", "", true, false, false}, nil},
		{"both agree notification", hdr("notifications/initialized", "-", notifBody), 0, Operation{"notifications/initialized", "", true, true, false}, nil},
		{"both agree sentinel", hdr("tools/call", b64name("tööl"), unicodeBody), 0, Operation{"tools/call", "tööl", true, false, false}, nil},
		{"both agree sentinel vs escapes", hdr("tools/call", b64name("tööl"), escapedBody), 0, Operation{"tools/call", "tööl", true, false, false}, nil},
		{"both agree OWS", hdr(" tools/call\t", " get_weather ", callBody), 0, Operation{"tools/call", "get_weather", true, false, false}, nil},
		{"body without any header", bodyOnly(callBody), 0, Operation{"tools/call", "get_weather", true, false, false}, nil},
		{"disagree method", hdr("tools/list", "-", `{"method":"tools/call","params":{"name":"x"}}`), 0, Operation{}, ErrMismatch},
		{"disagree method same name", hdr("prompts/get", "get_weather", callBody), 0, Operation{}, ErrMismatch},
		{"disagree method case", hdr("Tools/call", "get_weather", callBody), 0, Operation{}, ErrMismatch},
		{"disagree name", hdr("tools/call", "delete_all", callBody), 0, Operation{}, ErrMismatch},
		{"disagree name case", hdr("tools/call", "Get_weather", callBody), 0, Operation{}, ErrMismatch},
		{"name header absent, body has name", hdr("tools/call", "-", callBody), 0, Operation{}, ErrMismatch},
		{"name header present, body has none", hdr("tools/list", "x", listBody), 0, Operation{}, ErrMismatch},
		{"method header on a response", hdr("tools/call", "-", resultBody), 0, Operation{}, ErrMismatch},
		{"plain non-ascii tool vs sentinel of other", hdr("tools/call", b64name("tool"), unicodeBody), 0, Operation{}, ErrMismatch},
		{"name header without method header, with body", Input{NameHeader: "get_weather", HasNameHeader: true, Body: []byte(callBody)}, 0, Operation{}, ErrBadHeader},
		{"bad header wins over bad body", hdr("", "-", `[`), 0, Operation{}, ErrBadHeader},
		{"bad body wins over mismatch", hdr("tools/list", "-", `{"method":"tools/call","params":7}`), 0, Operation{}, ErrBadBody},
		{"too large with headers", hdr("tools/call", "get_weather", callBody), 10, Operation{}, ErrTooLarge},
		{"batch with headers", hdr("tools/call", "get_weather", `[`+callBody+`]`), 0, Operation{}, ErrBatch},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Extract(tc.in, tc.maxBody)
			if tc.err == nil && err != nil {
				t.Fatalf("Extract: unexpected error %v", err)
			}
			if tc.err != nil && !errors.Is(err, tc.err) {
				t.Fatalf("Extract: error %v, want %v", err, tc.err)
			}
			if got != tc.want {
				t.Fatalf("Extract = %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestExtractNoBodyAliasing checks that the result does not share memory with
// the caller's body buffer, which may be reused.
func TestExtractNoBodyAliasing(t *testing.T) {
	body := []byte(`{"method":"tools/call","params":{"name":"abc"}}`)
	op, err := Extract(Input{Body: body}, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i := range body {
		body[i] = 'x'
	}
	if op.Name != "abc" || op.Method != "tools/call" {
		t.Fatalf("result changed with the body buffer: %+v", op)
	}
}

func TestDecodeName(t *testing.T) {
	tests := []struct {
		in, want string
		err      bool
	}{
		{"get_weather", "get_weather", false},
		{"  spaced name\t", "spaced name", false},
		{b64name("tööl"), "tööl", false},
		{b64name("日本語ツール"), "日本語ツール", false},
		{b64name(" lead"), " lead", false},
		{b64name("a\x00b"), "", true},
		{b64name("a\tb"), "", true},
		{b64name("a\x7fb"), "", true},
		{b64name("a\u0085b"), "", true},
		{b64name("a\u00a0b"), "a\u00a0b", false},
		{"a\tb", "", true},
		{b64name("=?base64?x?="), "=?base64?x?=", false},
		{"=?base64?", "", true},
		{"=?base64?abc", "", true},
		{"=?base64?dMO2w7Zs?", "", true},
		{"=?base64?dMO2 w7Zs?=", "", true},
		{"=?Base64?dMO2w7Zs?=", "", true},
		{"=?base64?/w==?=", "", true}, // 0xff: not UTF-8
		{"", "", true},
		{"tööl", "", true},
		{"a\nb", "", true},
		{"a\x7fb", "", true},
		{"=?other?", "=?other?", false},
		{"a=?base64?b?=", "a=?base64?b?=", false},
	}
	for _, tc := range tests {
		got, err := DecodeName(tc.in)
		if tc.err {
			if !errors.Is(err, ErrBadHeader) {
				t.Errorf("DecodeName(%q) = %q, %v; want ErrBadHeader", tc.in, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("DecodeName(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestEncodeNameRoundTrip(t *testing.T) {
	for _, name := range []string{"a", "get_weather", "tööl", " x", "x ", "=?base64?Zm9v?=", "=?BASE64?", "file:///etc/*", "a b"} {
		got, err := DecodeName(encodeName(name))
		if err != nil || got != name {
			t.Errorf("DecodeName(encodeName(%q)) = %q, %v", name, got, err)
		}
	}
}

func TestMatch(t *testing.T) {
	tests := []struct {
		pattern, s string
		want       bool
	}{
		{"*", "", true},
		{"*", "anything/at.all", true},
		{"**", "", true},
		{"", "", true},
		{"", "a", false},
		{"a", "", false},
		{"?", "", false},
		{"delete_*", "delete_user", true},
		{"delete_*", "delete_", true},
		{"delete_*", "delete", false},
		{"delete_*", "undelete_user", false},
		{"*_admin", "grant_admin", true},
		{"*_admin", "_admin", true},
		{"*_admin", "grant_admins", false},
		{"file:///etc/*", "file:///etc/passwd", true},
		{"file:///etc/*", "file:///etc/ssl/certs/ca.pem", true},
		{"file:///etc/*", "file:///etcx/passwd", false},
		{"file:///etc/*", "file:///home/etc/x", false},
		{"a?c", "abc", true},
		{"a?c", "aöc", true},   // ö is two bytes, one rune
		{"a?c", "a日c", true},   // three bytes
		{"a?c", "a😀c", true},   // four bytes
		{"a??c", "aöc", false}, // one rune, not two
		{"a?c", "ac", false},
		{"a?c", "abbc", false},
		{"*??", "€", false},
		{"*?", "€", true},
		{"?*", "€", true},
		{"a.b", "a.b", true},
		{"a.b", "axb", false},
		{"v1.*", "v1.2", true},
		{"v1.*", "v12", false},
		{"*.*", "ab", false},
		{"*.*", "a.b", true},
		{"a*b*c", "aXbYc", true},
		{"a*b*c", "aXbYcZ", false},
		{"a*b*c", "abcbc", true},
		{"*a*", "bab", true},
		{"*a*", "bbb", false},
		{"?*?", "ab", true},
		{"?*?", "a", false},
		{"tools/*", "tools/call", true},
		{"[ab]", "[ab]", true},
		{"[ab]", "a", false},
		{`\*`, `\x`, true}, // no escapes: '\' is literal, '*' a wildcard
		{"résumé*", "résumé_v2", true},
	}
	for _, tc := range tests {
		if got := Match(tc.pattern, tc.s); got != tc.want {
			t.Errorf("Match(%q, %q) = %v, want %v", tc.pattern, tc.s, got, tc.want)
		}
		if ref := refMatch(tc.pattern, tc.s); ref != tc.want {
			t.Errorf("refMatch(%q, %q) = %v, want %v (table error?)", tc.pattern, tc.s, ref, tc.want)
		}
	}
}

func TestMatchPathological(t *testing.T) {
	s := strings.Repeat("a", 10000)
	if Match("*a*a*a*a*a*a*a*b", s) {
		t.Fatal("matched a string without b")
	}
	if !Match("*a*a*a*a*a*a*a*a", s) {
		t.Fatal("did not match")
	}
	if Match(strings.Repeat("*a", 200)+"b", s) {
		t.Fatal("matched a string without b")
	}
	if Match(strings.Repeat("?", 10001), s) || !Match(strings.Repeat("?", 10000), s) {
		t.Fatal("? count wrong")
	}
}

// refMatch is a straightforward dynamic-programming reference over runes
// for valid UTF-8 input.
func refMatch(pattern, s string) bool {
	p, r := []rune(pattern), []rune(s)
	// dp[j]: p[:i] matches r[:j]
	dp := make([]bool, len(r)+1)
	dp[0] = true
	for i := range p {
		next := make([]bool, len(r)+1)
		for j := 0; j <= len(r); j++ {
			switch p[i] {
			case '*':
				next[j] = dp[j] || (j > 0 && next[j-1])
			case '?':
				next[j] = j > 0 && dp[j-1]
			default:
				next[j] = j > 0 && dp[j-1] && r[j-1] == p[i]
			}
		}
		dp = next
	}
	return dp[len(r)]
}

func FuzzMatch(f *testing.F) {
	for _, c := range [][2]string{
		{"*", ""}, {"delete_*", "delete_user"}, {"*_admin", "x_admin"}, {"file:///etc/*", "file:///etc/passwd"},
		{"a?c", "aöc"}, {"a.b", "a.b"}, {"", ""}, {"*a*a*b", "aaaaaaaa"}, {"*??", "€"}, {"?\xff*", "\xc3\xa9\xff"},
	} {
		f.Add(c[0], c[1])
	}
	f.Fuzz(func(t *testing.T, p, s string) {
		got := Match(p, s)
		if !Match("*", s) {
			t.Fatalf("Match(*, %q) = false", s)
		}
		if !strings.ContainsAny(p, "*?") && !Match(p, p) {
			t.Fatalf("Match(%q, itself) = false", p)
		}
		if !strings.ContainsAny(p, "*?") && got != (p == s) {
			t.Fatalf("Match(%q, %q) = %v for a literal pattern", p, s, got)
		}
		if utf8.ValidString(p) && utf8.ValidString(s) && len(p) <= 64 && len(s) <= 256 {
			if ref := refMatch(p, s); got != ref {
				t.Fatalf("Match(%q, %q) = %v, reference says %v", p, s, got, ref)
			}
		}
	})
}

func FuzzExtract(f *testing.F) {
	for _, b := range []string{
		callBody, promptBody, readBody, subBody, unsubBody, listBody, notifBody, resultBody, errorBody,
		unicodeBody, escapedBody, noRPCBody, noParamsBody, `[` + callBody + `]`, `null`, ` `, `{}`,
		`{"method":"tools/call","Method":"tools/list","params":{"name":"x"}}`,
		`{"method":"tools/call","params":{"name":"x\ud800"}}`,
		`{"method":"tools/call","params":{"name":" a "}}`,
		`{"method":"tools/call","params":{"name":"=?base64?Zm9v?="}}`,
		"\xef\xbb\xbf{}",
	} {
		f.Add([]byte(b), "", "", false, false)
	}
	f.Add([]byte(callBody), "tools/call", "get_weather", true, true)
	f.Add([]byte(unicodeBody), "tools/call", b64name("tööl"), true, true)
	f.Add([]byte(listBody), "tools/list", "x", true, true)
	f.Add([]byte(nil), "tools/call", "=?base64?dMO2w7Zs?=", true, true)
	f.Add([]byte(nil), "tools/call", "=?base64?abc", true, true)
	f.Add([]byte(nil), " ping ", "", true, false)
	f.Add([]byte(`{"method":"resources/read","params":{"uri":"FILE://localhost/a/../b"}}`), "resources/read", "FILE://localhost/a/../b", true, true)
	f.Add([]byte(nil), "resources/read", "file:///a/%2e%2e/b", true, true)
	f.Fuzz(func(t *testing.T, body []byte, mh, nh string, hasM, hasN bool) {
		in := Input{MethodHeader: mh, NameHeader: nh, HasMethodHeader: hasM, HasNameHeader: hasN, Body: body}
		op, err := Extract(in, 1<<20)
		if err != nil {
			if op != (Operation{}) {
				t.Fatalf("error %v with non-zero operation %+v", err, op)
			}
			return
		}
		if op.Known != (len(body) > 0 || hasM) {
			t.Fatalf("Known = %v for %+v", op.Known, in)
		}
		if (op.Name != "" && nameMember(op.Method) == "") || (op.Name == "" && nameRequired(op.Method) != op.NameMissing) {
			t.Fatalf("name %q (missing %v) for method %q", op.Name, op.NameMissing, op.Method)
		}
		if len(body) == 0 {
			return
		}
		// The body is authoritative: with or without headers, same answer.
		alone, err := Extract(Input{Body: body}, 1<<20)
		if err != nil || alone != op {
			t.Fatalf("body alone gives %+v, %v; with headers %+v", alone, err, op)
		}
		// A resource URI comes out canonical.
		if nameMember(op.Method) == "uri" && !op.NameMissing {
			if c, err := CanonicalURI(op.Name); err != nil || c != op.Name {
				t.Fatalf("resource URI %q is not canonical: %q, %v", op.Name, c, err)
			}
		}
		// Round trip: headers as a conforming client would send them (the
		// name as the body spells it) agree.
		msg, _ := parseBody(body)
		raw := msg.name
		rt := Input{Body: body}
		if op.Method != "" {
			rt.MethodHeader, rt.HasMethodHeader = op.Method, true
		}
		if op.Name != "" {
			rt.NameHeader, rt.HasNameHeader = encodeName(string(raw)), true
		}
		again, err := Extract(rt, 1<<20)
		if errors.Is(err, ErrMismatch) {
			t.Fatalf("round trip mismatch for %+v: %v", op, err)
		}
		tooLong := len(rt.MethodHeader) > MaxHeaderBytes || len(rt.NameHeader) > MaxHeaderBytes
		if err != nil && !(errors.Is(err, ErrBadHeader) && tooLong) {
			t.Fatalf("round trip error for %+v: %v", op, err)
		}
		if err == nil && again != op {
			t.Fatalf("round trip gives %+v, want %+v", again, op)
		}
	})
}

// benchBody is a typical tools/call request of about 200 bytes.
const benchBody = `{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"name":"get_weather","arguments":{"city":"Paris","country":"FR","units":"metric","days":3},"_meta":{"progressToken":"tok-42-7f3a"}}}`

func BenchmarkExtract(b *testing.B) {
	in := Input{
		MethodHeader: "tools/call", HasMethodHeader: true,
		NameHeader: "get_weather", HasNameHeader: true,
		Body: []byte(benchBody),
	}
	b.SetBytes(int64(len(in.Body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Extract(in, 1<<20); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkExtractBodyOnly(b *testing.B) {
	in := Input{Body: []byte(benchBody)}
	b.SetBytes(int64(len(in.Body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Extract(in, 1<<20); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMatch(b *testing.B) {
	s := strings.Repeat("a", 10000)
	b.ReportAllocs()
	for b.Loop() {
		if Match("*a*a*a*a*a*a*a*b", s) {
			b.Fatal("matched")
		}
	}
}
