package mcp

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// TestExtractRevision20260728 covers the header forms of MCP 2026-07-28
// (SEP-2243) and its task methods (SEP-2663), and the near misses an
// attacker would try: a header that names one thing while the body does
// another must never come out as an operation.
func TestExtractRevision20260728(t *testing.T) {
	const (
		taskGet    = `{"jsonrpc":"2.0","id":9,"method":"tasks/get","params":{"taskId":"t-42"}}`
		taskCancel = `{"jsonrpc":"2.0","id":9,"method":"tasks/cancel","params":{"taskId":"t-42"}}`
		taskUpdate = `{"jsonrpc":"2.0","id":9,"method":"tasks/update","params":{"taskId":"t-42","inputResponses":{}}}`
		taskNoID   = `{"jsonrpc":"2.0","id":9,"method":"tasks/get","params":{}}`
		cancelled  = `{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":3}}`
	)
	ok := func(method, name string, notif bool) Operation {
		return Operation{Method: method, Name: name, Known: true, Notification: notif}
	}
	tests := []struct {
		name string
		in   Input
		want Operation
		err  error
	}{
		// SEP-2663: Mcp-Name carries params.taskId.
		{"tasks/get headers only", hdr("tasks/get", "t-42", ""), ok("tasks/get", "t-42", false), nil},
		{"tasks/update headers only", hdr("tasks/update", "t-42", ""), ok("tasks/update", "t-42", false), nil},
		{"tasks/cancel headers only", hdr("tasks/cancel", "t-42", ""), ok("tasks/cancel", "t-42", false), nil},
		{"tasks/get without Mcp-Name", hdr("tasks/get", "-", ""), ok("tasks/get", "", false), nil},
		{"tasks/get encoded id", hdr("tasks/get", b64name("tâche"), ""), ok("tasks/get", "tâche", false), nil},
		{"tasks/get agrees", hdr("tasks/get", "t-42", taskGet), ok("tasks/get", "t-42", false), nil},
		{"tasks/cancel agrees", hdr("tasks/cancel", "t-42", taskCancel), ok("tasks/cancel", "t-42", false), nil},
		{"tasks/update agrees", hdr("tasks/update", "t-42", taskUpdate), ok("tasks/update", "t-42", false), nil},
		{"tasks/get body only", bodyOnly(taskGet), ok("tasks/get", "t-42", false), nil},
		{"tasks/get body without taskId", bodyOnly(taskNoID), ok("tasks/get", "", false), nil},
		{"tasks/get other id", hdr("tasks/get", "t-43", taskGet), Operation{}, ErrMismatch},
		{"tasks/get id missing in header", hdr("tasks/get", "-", taskGet), Operation{}, ErrMismatch},
		{"tasks/get id missing in body", hdr("tasks/get", "t-42", taskNoID), Operation{}, ErrMismatch},
		{"tasks/get taskId case variant", bodyOnly(`{"id":1,"method":"tasks/get","params":{"taskId":"a","taskid":"b"}}`), Operation{}, ErrBadBody},
		{"tasks/get taskId not a string", bodyOnly(`{"id":1,"method":"tasks/get","params":{"taskId":7}}`), Operation{}, ErrBadBody},
		{"tasks/list takes no name", hdr("tasks/list", "t-42", ""), Operation{}, ErrBadHeader},

		// Notifications: no Mcp-Method needed, read from the body.
		{"notification body only", bodyOnly(cancelled), ok("notifications/cancelled", "", true), nil},
		{"notification with Mcp-Method", hdr("notifications/cancelled", "-", cancelled), ok("notifications/cancelled", "", true), nil},
		{"notification other Mcp-Method", hdr("notifications/initialized", "-", cancelled), Operation{}, ErrMismatch},
		{"call as notification", bodyOnly(`{"jsonrpc":"2.0","method":"tools/call","params":{"name":"x"}}`), ok("tools/call", "x", true), nil},

		// Values are case-sensitive, names are trimmed of OWS only.
		{"method case differs", hdr("Tools/Call", "get_weather", callBody), Operation{}, ErrMismatch},
		{"method upper case", hdr("TOOLS/CALL", "get_weather", callBody), Operation{}, ErrMismatch},
		{"name case differs", hdr("tools/call", "Get_Weather", callBody), Operation{}, ErrMismatch},
		{"OWS around both", hdr("\t tools/call \t", "  get_weather\t", callBody), ok("tools/call", "get_weather", false), nil},
		{"name with inner space differs", hdr("tools/call", "get _weather", callBody), Operation{}, ErrMismatch},
		{"CR in value", hdr("tools/call\r", "get_weather", callBody), Operation{}, ErrBadHeader},
		{"LF in name", hdr("tools/call", "get\nweather", callBody), Operation{}, ErrBadHeader},
		{"NUL after name", hdr("tools/call", "get_weather\x00", callBody), Operation{}, ErrBadHeader},
		{"two Mcp-Method values joined", hdr("tools/call,tools/call", "get_weather", callBody), Operation{}, ErrMismatch},
		{"two Mcp-Name values joined", hdr("tools/call", "get_weather,get_weather", callBody), Operation{}, ErrMismatch},

		// The base64 sentinel.
		{"encoded name agrees", hdr("tools/call", b64name("get_weather"), callBody), ok("tools/call", "get_weather", false), nil},
		{"encoded name differs", hdr("tools/call", b64name("get_weathe"), callBody), Operation{}, ErrMismatch},
		{"invalid base64", hdr("tools/call", "=?base64?!!!?=", callBody), Operation{}, ErrBadHeader},
		{"unpadded base64", hdr("tools/call", "=?base64?Z2V0X3dlYXRoZXI?=", callBody), Operation{}, ErrBadHeader},
		{"non-zero padding bits", hdr("tools/call", "=?base64?Z2V0X3dlYXRoZXJ=?=", callBody), Operation{}, ErrBadHeader},
		{"miscased sentinel", hdr("tools/call", "=?BASE64?Z2V0X3dlYXRoZXI=?=", callBody), Operation{}, ErrBadHeader},
		{"unterminated sentinel", hdr("tools/call", "=?base64?Z2V0X3dlYXRoZXI=", callBody), Operation{}, ErrBadHeader},
		{"encoded non-UTF-8", hdr("tools/call", "=?base64?/w==?=", callBody), Operation{}, ErrBadHeader},
		{"encoded control", hdr("tools/call", b64name("get\nweather"), callBody), Operation{}, ErrBadHeader},
		{"encoded method refused", hdr(b64name("tools/call"), "get_weather", callBody), Operation{}, ErrBadHeader},

		// Mismatched names of every kind.
		{"Mcp-Name on tools/list", hdr("tools/list", "x", listBody), Operation{}, ErrMismatch},
		{"Mcp-Name missing on tools/call", hdr("tools/call", "-", callBody), Operation{}, ErrMismatch},
		{"Mcp-Method names another method", hdr("tools/list", "-", callBody), Operation{}, ErrMismatch},
		{"Mcp-Method on a response", hdr("tools/call", "get_weather", resultBody), Operation{}, ErrMismatch},
		{"uri differs only by escape", hdr("resources/read", "file:///etc/host%73", readBody), Operation{}, ErrMismatch},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Extract(tc.in, 1<<20)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("Extract = %+v, %v; want %v", got, err, tc.err)
				}
				if got != (Operation{}) {
					t.Fatalf("error with operation %+v", got)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("Extract = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

func TestRequestID(t *testing.T) {
	long := `"` + strings.Repeat("a", MaxIDBytes) + `"`
	for _, tc := range []struct{ body, want string }{
		{`{"jsonrpc":"2.0","id":7,"method":"tools/call"}`, `7`},
		{`{"id":-1.5e3,"method":"x"}`, `-1.5e3`},
		{`{"id":"a\"b\u00e9","method":"x"}`, `"a\"b\u00e9"`},
		{` { "method":"x" , "id" : "s" } `, `"s"`},
		{`{"method":"notifications/cancelled"}`, `null`},
		{`{"id":null,"method":"x"}`, `null`},
		{`{"id":true,"method":"x"}`, `null`},
		{`{"id":{"a":1},"method":"x"}`, `null`},
		{`{"id":[1],"method":"x"}`, `null`},
		{`{"id":1,"id":2,"method":"x"}`, `null`},
		{`{"id":` + long + `}`, `null`},
		{`[{"id":1}]`, `null`},
		{`{"id":1`, `null`},
		{``, `null`},
		{`{"params":{"id":3},"method":"x"}`, `null`},
	} {
		if got := RequestID([]byte(tc.body)); got != tc.want {
			t.Errorf("RequestID(%s) = %s, want %s", tc.body, got, tc.want)
		}
	}
}

// FuzzRequestID: whatever the body, the id written into an error answer is
// null or one JSON string or number of bounded size, never more JSON.
func FuzzRequestID(f *testing.F) {
	for _, b := range []string{callBody, notifBody, `{"id":"a\"},\"x\":{"}`, `{"id":1,"id":2}`, `{"id":[1]}`, `{"id":1e999}`, "{\"id\":\"\xff\"}"} {
		f.Add([]byte(b))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		id := RequestID(body)
		if id == "null" {
			return
		}
		var v any
		dec := json.NewDecoder(strings.NewReader(id))
		dec.UseNumber()
		if len(id) > MaxIDBytes || dec.Decode(&v) != nil || dec.More() {
			t.Fatalf("RequestID = %q", id)
		}
		switch v.(type) {
		case string, json.Number:
		default:
			t.Fatalf("RequestID = %q, a %T", id, v)
		}
	})
}
