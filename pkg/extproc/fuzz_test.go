package extproc

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"
)

// denyPrefixed is the decision of these tests: entries whose name starts
// with "deny" are hidden.
func denyPrefixed(_ Kind, name string) bool { return !strings.HasPrefix(name, "deny") }

// leaks reports whether msg, read by encoding/json as a client would read
// it, is a listing that still shows a denied entry.
func leaks(msg []byte) bool {
	var batch []json.RawMessage
	if json.Unmarshal(msg, &batch) == nil {
		for _, m := range batch {
			if leaks(m) {
				return true
			}
		}
		return false
	}
	var m struct {
		Result map[string]json.RawMessage `json:"result"`
	}
	if json.Unmarshal(msg, &m) != nil {
		return false
	}
	for k := range Kind(numKinds) {
		var entries []map[string]any
		if json.Unmarshal(m.Result[listings[k].member], &entries) != nil {
			continue
		}
		for _, e := range entries {
			if s, ok := e[listings[k].key].(string); ok && strings.HasPrefix(s, "deny") {
				return true
			}
		}
	}
	return false
}

// events splits a stream as an EventSource does (CRLF, LF or CR line
// ends; a leading BOM dropped) and returns each message event's data.
func events(b []byte) [][]byte {
	b = bytes.TrimPrefix(b, []byte(bom))
	var out [][]byte
	var data []byte
	n, typ := 0, ""
	for len(b) > 0 {
		j := bytes.IndexAny(b, "\r\n")
		if j < 0 {
			break // an incomplete last line: never dispatched
		}
		line := b[:j]
		if b[j] == '\r' && j+1 < len(b) && b[j+1] == '\n' {
			j++
		}
		b = b[j+1:]
		if len(line) == 0 {
			if n > 0 && (typ == "" || typ == "message") {
				out = append(out, data)
			}
			data, n, typ = nil, 0, ""
			continue
		}
		name, value := field(line)
		switch string(name) {
		case "data":
			if n > 0 {
				data = append(data, '\n')
			}
			data = append(data, value...)
			n++
		case "event":
			typ = string(value)
		}
	}
	return out
}

func FuzzSSE(f *testing.F) {
	for _, name := range []string{"everything-tools-list.sse", "everything-prompts-list.sse"} {
		b, err := os.ReadFile("testdata/" + name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, uint8(7))
	}
	f.Add([]byte("data: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"tools\":[{\"name\":\"deny\"}]}}\r\r"), uint8(1))
	f.Add([]byte(bom+"data: {\"id\":1,\"result\":\ndata: {\"tools\":[{\"name\":\"deny\"}]}}\n\n"), uint8(3))
	f.Add([]byte("event: other\ndata: x\n\n: c\nid: 1\ndata\n\n"), uint8(2))
	f.Fuzz(func(t *testing.T, stream []byte, step uint8) {
		n := int(step%64) + 1
		whole := newSSEFilter(denyPrefixed, 1<<20).feed(stream, true)
		chunked := newSSEFilter(denyPrefixed, 1<<20)
		var got []byte
		for i := 0; i < len(stream); i += n {
			end := min(i+n, len(stream))
			got = append(got, chunked.feed(stream[i:end], end == len(stream))...)
		}
		if len(stream) == 0 {
			got = append(got, chunked.feed(nil, true)...)
		}
		if !bytes.Equal(got, whole) {
			t.Fatalf("chunks of %d give\n%q\nwhole\n%q", n, got, whole)
		}
		for _, data := range events(got) {
			if leaks(data) {
				t.Fatalf("a denied entry passed: %q", data)
			}
		}
	})
}

func FuzzFilterMessage(f *testing.F) {
	b, err := os.ReadFile("testdata/everything-tools-list.json")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte(`{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"deny"},{"name":"ok"}],"nextCursor":"x"}}`))
	f.Add([]byte(`{"id":1,"result":{"tools":[{"name":"ok","name":"deny"}]},"result":{"prompts":[{"name":"deny"}]}}`))
	f.Add([]byte(`[{"id":1,"result":{"resources":[{"uri":"deny:x"}]}},3]`))
	f.Add([]byte(`{"id":1,"result":{"resourceTemplates":[{"uriTemplate":"deny/{x}","Name":"ok"}]}}`))
	f.Fuzz(func(t *testing.T, msg []byte) {
		out, changed, _, err := filterMessage(msg, denyPrefixed)
		switch {
		case err != nil:
			if !json.Valid(errorMessage(messageID(msg), err)) {
				t.Fatalf("the error for %q is not JSON", msg)
			}
			return
		case !changed && !bytes.Equal(out, msg):
			t.Fatal("unchanged but different")
		case changed && !json.Valid(out):
			t.Fatalf("filtered %q is not JSON: %q", msg, out)
		}
		if leaks(out) {
			t.Fatalf("a denied entry passed: %q → %q", msg, out)
		}
	})
}
