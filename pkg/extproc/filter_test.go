package extproc_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	filterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/extauthz/extauthz/pkg/extproc"
)

// What each caller may see of server-everything's 13 tools under
// policyYAML: get-* needs mcp:admin, toggle-* mcp:write (implied by
// mcp:admin), and simulate-research-query's policy reads the request's
// headers, which a listing cannot know, so it is never shown.
var (
	readerTools = []string{"echo", "gzip-file-as-resource", "trigger-long-running-operation"}
	writerTools = []string{"echo", "gzip-file-as-resource", "toggle-simulated-logging", "toggle-subscriber-updates", "trigger-long-running-operation"}
	adminTools  = []string{"echo", "get-annotated-message", "get-env", "get-resource-links", "get-resource-reference",
		"get-structured-content", "get-sum", "get-tiny-image", "gzip-file-as-resource", "toggle-simulated-logging",
		"toggle-subscriber-updates", "trigger-long-running-operation"}
)

func TestToolsListJSON(t *testing.T) {
	f := start(t, 64<<10)
	body := read(t, "everything-tools-list.json")
	for _, tc := range []struct {
		scopes []string
		want   []string
	}{
		{[]string{"mcp:read"}, readerTools},
		{[]string{"mcp:read", "mcp:write"}, writerTools},
		{[]string{"mcp:admin"}, adminTools},
	} {
		t.Run(strings.Join(tc.scopes, "+"), func(t *testing.T) {
			got := f.run(t, exchange{md: f.metadata(t, "mcp", tc.scopes...), contentType: "application/json", body: body})
			if got.mode.GetResponseBodyMode() != filterv3.ProcessingMode_BUFFERED {
				t.Errorf("body mode %v, want BUFFERED", got.mode.GetResponseBodyMode())
			}
			if !slices.Contains(got.removed, "content-length") {
				t.Errorf("content-length kept (removed %q): the body changes", got.removed)
			}
			m := decode(t, got.body)
			if string(m.ID) != "2" || m.Result == nil {
				t.Fatalf("got %s", got.body)
			}
			if n := names(m.Result.Tools, "name"); !slices.Equal(n, tc.want) {
				t.Errorf("tools %q, want %q", n, tc.want)
			}
			// Entries kept are kept whole: echo's schema is still there.
			for _, tool := range m.Result.Tools {
				if tool["inputSchema"] == nil || tool["description"] == nil {
					t.Errorf("tool %v lost members", tool["name"])
				}
			}
		})
	}
}

func TestToolsListSSE(t *testing.T) {
	f := start(t, 64<<10)
	body := read(t, "everything-tools-list.sse")
	_, wantIDs := sseMessages(t, body)
	md := f.metadata(t, "mcp", "mcp:read", "mcp:write")
	for _, chunk := range []int{7, 100, 1 << 20} {
		for _, crlf := range []bool{false, true} {
			in := body
			if crlf {
				in = bytes.ReplaceAll(body, []byte("\n"), []byte("\r\n"))
			}
			t.Run(fmt.Sprintf("chunk=%d,crlf=%v", chunk, crlf), func(t *testing.T) {
				got := f.run(t, exchange{md: md, contentType: "text/event-stream", body: in, chunk: chunk})
				if got.mode.GetResponseBodyMode() != filterv3.ProcessingMode_STREAMED {
					t.Errorf("body mode %v, want STREAMED", got.mode.GetResponseBodyMode())
				}
				data, ids := sseMessages(t, got.body)
				if !slices.Equal(ids, wantIDs) {
					t.Errorf("event ids %q, want %q", ids, wantIDs)
				}
				if len(data) != 1 {
					t.Fatalf("%d message events, want 1:\n%s", len(data), got.body)
				}
				m := decode(t, data[0])
				if n := names(m.Result.Tools, "name"); !slices.Equal(n, writerTools) {
					t.Errorf("tools %q, want %q", n, writerTools)
				}
				// The priming event (an id and an empty data) passes as it came.
				first := in[:bytes.Index(in, []byte("event:"))]
				if !bytes.HasPrefix(got.body, first) {
					t.Errorf("the priming event changed:\n%q\nwant prefix\n%q", got.body[:min(len(got.body), 80)], first)
				}
			})
		}
	}
}

func TestOtherListings(t *testing.T) {
	f := start(t, 64<<10)
	md := f.metadata(t, "mcp", "mcp:read")
	for _, tc := range []struct {
		file, key string
		list      func(rpc) []map[string]any
		want      []string
	}{
		{"everything-prompts-list.sse", "name", func(m rpc) []map[string]any { return m.Result.Prompts },
			[]string{"simple-prompt", "completable-prompt", "resource-prompt"}},
		{"everything-resources-list.sse", "uri", func(m rpc) []map[string]any { return m.Result.Resources },
			[]string{"demo://resource/static/document/architecture.md", "demo://resource/static/document/extension.md",
				"demo://resource/static/document/features.md", "demo://resource/static/document/how-it-works.md",
				"demo://resource/static/document/instructions.md"}},
		{"everything-resource-templates-list.sse", "uriTemplate", func(m rpc) []map[string]any { return m.Result.ResourceTemplates },
			[]string{"demo://resource/dynamic/text/{resourceId}"}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			got := f.run(t, exchange{md: md, contentType: "text/event-stream", body: read(t, tc.file), chunk: 50})
			data, _ := sseMessages(t, got.body)
			if len(data) != 1 {
				t.Fatalf("%d message events:\n%s", len(data), got.body)
			}
			if n := names(tc.list(decode(t, data[0])), tc.key); !slices.Equal(n, tc.want) {
				t.Errorf("%q, want %q", n, tc.want)
			}
		})
	}
}

func TestPagination(t *testing.T) {
	f := start(t, 64<<10)
	md := f.metadata(t, "mcp", "mcp:read")
	for _, tc := range []struct {
		body string
		want []string
	}{
		{`{"jsonrpc":"2.0","id":"p2","result":{"tools":[{"name":"get-env"},{"name":"echo"}],"nextCursor":"c3"}}`, []string{"echo"}},
		// Every entry of the page hidden: still a page, with its cursor.
		{`{"jsonrpc":"2.0","id":"p2","result":{"tools":[{"name":"get-env"},{"name":"get-sum"}],"nextCursor":"c3"}}`, nil},
		{`{"jsonrpc":"2.0","id":"p2","result":{"tools":[],"nextCursor":"c3"}}`, nil},
	} {
		got := f.run(t, exchange{md: md, contentType: "application/json; charset=utf-8", body: []byte(tc.body)})
		m := decode(t, got.body)
		if m.Result.Tools == nil || !slices.Equal(names(m.Result.Tools, "name"), tc.want) {
			t.Errorf("%s: tools %v", tc.body, m.Result.Tools)
		}
		if m.Result.NextCursor == nil || *m.Result.NextCursor != "c3" || string(m.ID) != `"p2"` {
			t.Errorf("%s: cursor or id lost: %s", tc.body, got.body)
		}
	}
}

// TestFailClosed: a listing is never passed unfiltered; what cannot be
// filtered is replaced by a JSON-RPC error carrying the request's id.
func TestFailClosed(t *testing.T) {
	f := start(t, 4096)
	good := f.metadata(t, "mcp", "mcp:read")
	list := []byte(`{"jsonrpc":"2.0","id":7,"result":{"tools":[{"name":"get-env"},{"name":"echo"}]}}`)
	sse := append(append([]byte("id: e1\ndata: "), list...), "\n\n"...)
	wrongType := &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{extproc.Namespace: {Fields: map[string]*structpb.Value{
		"resource": structpb.NewStringValue("mcp"), "scope": structpb.NewStringValue("mcp:admin")}}}}
	unknown := &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{extproc.Namespace: {Fields: map[string]*structpb.Value{
		"resource": structpb.NewStringValue("gone"), "scope": structpb.NewListValue(&structpb.ListValue{Values: []*structpb.Value{structpb.NewStringValue("mcp:admin")}})}}}}
	// A client cannot stand in for the Check: another namespace is not read.
	otherNS := &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{"client": good.GetFilterMetadata()[extproc.Namespace]}}
	big := fmt.Appendf(nil, `{"jsonrpc":"2.0","id":7,"result":{"tools":[{"name":"echo","description":%q}]}}`, strings.Repeat("x", 5000))
	for _, tc := range []struct {
		name string
		x    exchange
		id   string
	}{
		{"no metadata, json", exchange{contentType: "application/json", body: list}, "7"},
		{"no metadata, sse", exchange{contentType: "text/event-stream", body: sse}, "7"},
		{"no metadata, no content type", exchange{body: list}, "7"},
		{"another namespace", exchange{md: otherNS, contentType: "application/json", body: list}, "7"},
		{"scope not a list", exchange{md: wrongType, contentType: "application/json", body: list}, "7"},
		{"resource not configured", exchange{md: unknown, contentType: "application/json", body: list}, "7"},
		{"json over the bound", exchange{md: good, contentType: "application/json", body: big}, "null"},
		{"event over the bound", exchange{md: good, contentType: "text/event-stream", body: append(append([]byte("data: "), big...), "\n\n"...), chunk: 1000}, "null"},
		{"not json", exchange{md: good, contentType: "application/json", body: []byte(`{"jsonrpc":"2.0","id":7,"result":{"tools":[`)}, "null"},
		{"compressed", exchange{md: good, contentType: "application/json", encoding: "gzip", body: []byte("\x1f\x8b...")}, "null"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := f.run(t, tc.x)
			msg := got.body
			if tc.x.contentType == "text/event-stream" {
				data, _ := sseMessages(t, got.body)
				if len(data) != 1 {
					t.Fatalf("%d message events:\n%s", len(data), got.body)
				}
				msg = data[0]
			}
			m := decode(t, msg)
			if m.Error == nil || m.Error.Code != -32603 || string(m.ID) != tc.id {
				t.Errorf("got %s, want a -32603 error with id %s", msg, tc.id)
			}
			if tc.x.encoding != "" && !slices.Contains(got.removed, "content-encoding") {
				t.Errorf("content-encoding kept on the uncompressed error: %q", got.removed)
			}
		})
	}
	// What is not a listing passes untouched, metadata or not.
	for _, body := range []string{
		`{"jsonrpc":"2.0","id":7,"result":{"content":[{"type":"text","text":"{\"tools\":[]}"}]}}`,
		`{"jsonrpc":"2.0","id":7,"error":{"code":-32601,"message":"no"}}`,
		`{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}`,
		``,
	} {
		got := f.run(t, exchange{contentType: "application/json", body: []byte(body)})
		if string(got.body) != body {
			t.Errorf("%s became %s", body, got.body)
		}
	}
}

func TestPassThrough(t *testing.T) {
	f := start(t, 64<<10)
	body := read(t, "everything-tools-list.json")
	for _, tc := range []struct {
		name string
		x    exchange
	}{
		// A resource whose rules tell no operation apart: nothing to hide.
		{"resource without rules", exchange{md: f.metadata(t, "open"), contentType: "application/json", body: body}},
		{"other content type", exchange{md: f.metadata(t, "mcp", "mcp:read"), contentType: "text/html", body: body}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := f.run(t, tc.x)
			if got.mode.GetResponseBodyMode() != filterv3.ProcessingMode_NONE || len(got.removed) != 0 {
				t.Errorf("mode %v, removed %q: want the body not asked for", got.mode.GetResponseBodyMode(), got.removed)
			}
			if !bytes.Equal(got.body, body) {
				t.Error("body changed")
			}
		})
	}
}

// TestEnvoyProtocol: the phases a differently configured Envoy may send
// are answered in turn, and trailers after a body.
func TestEnvoyProtocol(t *testing.T) {
	f := start(t, 64<<10)
	md := f.metadata(t, "mcp", "mcp:read")
	sse := read(t, "everything-tools-list.sse")
	got := f.run(t, exchange{md: md, contentType: "text/event-stream", body: sse, requestHeaders: true, trailers: true, chunk: 300})
	data, _ := sseMessages(t, got.body)
	if len(data) != 1 || !slices.Equal(names(decode(t, data[0]).Result.Tools, "name"), readerTools) {
		t.Errorf("with request headers and trailers: %s", got.body)
	}
	// A JSON body that ends in trailers never saw its end of stream as one
	// message: it is dropped rather than passed unread.
	got = f.run(t, exchange{md: md, contentType: "application/json", body: read(t, "everything-tools-list.json"), trailers: true})
	if len(got.body) != 0 {
		t.Errorf("a JSON body followed by trailers came through: %.80s", got.body)
	}
	// An SSE stream cut inside an event: the incomplete event is dropped,
	// as an EventSource drops it.
	cut := sse[:len(sse)-20]
	got = f.run(t, exchange{md: md, contentType: "text/event-stream", body: cut, chunk: 64})
	if bytes.Contains(got.body, []byte("get-env")) || bytes.Contains(got.body, []byte(`"tools"`)) {
		t.Errorf("an incomplete listing event came through")
	}
}

func TestBatch(t *testing.T) {
	f := start(t, 64<<10)
	md := f.metadata(t, "mcp", "mcp:read")
	body := []byte(`[{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"get-env"},{"name":"echo"}]}},{"jsonrpc":"2.0","id":2,"result":{}}]`)
	got := f.run(t, exchange{md: md, contentType: "application/json", body: body})
	var batch []json.RawMessage
	if err := json.Unmarshal(got.body, &batch); err != nil || len(batch) != 2 {
		t.Fatalf("batch: %s", got.body)
	}
	if n := names(decode(t, batch[0]).Result.Tools, "name"); !slices.Equal(n, []string{"echo"}) {
		t.Errorf("batch: %q", n)
	}
}

func TestMetrics(t *testing.T) {
	f := start(t, 64<<10)
	md := f.metadata(t, "mcp", "mcp:read")
	f.run(t, exchange{md: md, contentType: "application/json", body: read(t, "everything-tools-list.json")})
	f.run(t, exchange{md: md, contentType: "text/event-stream", body: read(t, "everything-prompts-list.sse")})
	f.run(t, exchange{contentType: "application/json", body: read(t, "everything-tools-list.json")})
	var rm metricdata.ResourceMetrics
	if err := f.reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	var durations uint64
	replaced := int64(0)
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					if m.Name == "extauthz_extproc_entries_removed" {
						k, _ := p.Attributes.Value("kind")
						got[k.AsString()] += p.Value
					}
					if m.Name == "extauthz_extproc_responses_replaced" {
						replaced += p.Value
					}
				}
			case metricdata.Histogram[float64]:
				for _, p := range d.DataPoints {
					durations += p.Count
				}
			}
		}
	}
	if want := map[string]int64{"tools": 10, "prompts": 1}; fmt.Sprint(got) != fmt.Sprint(want) || durations != 3 || replaced != 1 {
		t.Errorf("removed %v (want %v), %d durations (want 3), %d replaced (want 1)", got, want, durations, replaced)
	}
}

var update = flag.Bool("update", false, "rewrite testdata/filtered-* from the filter's output")

// TestGolden writes what a caller with mcp:read receives for each recorded
// answer to testdata/filtered-*, which test/e2e hands to the official SDK
// client, and checks the filter still writes exactly that.
func TestGolden(t *testing.T) {
	f := start(t, 64<<10)
	md := f.metadata(t, "mcp", "mcp:read")
	for _, name := range []string{"everything-tools-list.json", "everything-tools-list.sse", "everything-prompts-list.sse",
		"everything-resources-list.sse", "everything-resource-templates-list.sse"} {
		ct := "text/event-stream"
		if strings.HasSuffix(name, ".json") {
			ct = "application/json"
		}
		got := f.run(t, exchange{md: md, contentType: ct, body: read(t, name), chunk: 512})
		path := "testdata/filtered-" + name
		if *update {
			if err := os.WriteFile(path, got.body, 0o600); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if want := read(t, "filtered-"+name); !bytes.Equal(got.body, want) {
			t.Errorf("%s: the filter's output changed (go test -run TestGolden -update ./pkg/extproc/ if intended):\n%s", name, got.body)
		}
	}
}
