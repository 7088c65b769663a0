package extproc

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/extauthz/extauthz/pkg/authz"
	"github.com/extauthz/extauthz/pkg/config"
)

type fixedPolicy struct{ p *authz.Policy }

func (f fixedPolicy) Policy() *authz.Policy { return f.p }

// fiftyTools is a tools/list answer of 50 tools shaped like
// server-everything's (its echo tool, renamed), every fifth one guarded.
func fiftyTools(b *testing.B) []byte {
	raw, err := os.ReadFile("testdata/everything-tools-list.json")
	if err != nil {
		b.Fatal(err)
	}
	var m struct {
		Result struct {
			Tools []map[string]any `json:"tools"`
		} `json:"result"`
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		b.Fatal(err)
	}
	tools := make([]map[string]any, 50)
	for i := range tools {
		t := map[string]any{}
		for k, v := range m.Result.Tools[0] {
			t[k] = v
		}
		t["name"] = fmt.Sprintf("tool-%02d", i)
		if i%5 == 0 {
			t["name"] = fmt.Sprintf("admin-%02d", i)
		}
		tools[i] = t
	}
	out, err := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 2, "result": map[string]any{"tools": tools}})
	if err != nil {
		b.Fatal(err)
	}
	return out
}

// BenchmarkFilterToolsList is the external processor's cost for one
// filtered tools/list answer of 50 tools (about 30 KB): the response
// headers and the BUFFERED body of one exchange, as the gRPC handler runs
// them, without the gRPC transport.
func BenchmarkFilterToolsList(b *testing.B) {
	cfg, err := config.Parse([]byte(`
resources:
  - name: mcp
    resource: "https://mcp.example.com/mcp"
    required_scopes: ["mcp:read"]
    scope_implications: {"mcp:admin": ["mcp:read"]}
    rules:
      - {method: tools/call, name: "admin-*", scopes: ["mcp:admin"]}
      - {method: tools/call, name: "tool-4*", policy: 'token.sub != "mallory"'}
    authorization_servers: [{issuer: "https://auth.example.com"}]
`))
	if err != nil {
		b.Fatal(err)
	}
	p, err := authz.NewPolicy(cfg)
	if err != nil {
		b.Fatal(err)
	}
	s, err := New(fixedPolicy{p}, Options{MaxBodyBytes: 1 << 20})
	if err != nil {
		b.Fatal(err)
	}
	body := fiftyTools(b)
	md := &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{Namespace: {Fields: map[string]*structpb.Value{
		"resource": structpb.NewStringValue("mcp"),
		"sub":      structpb.NewStringValue("alice"),
		"scope":    structpb.NewListValue(&structpb.ListValue{Values: []*structpb.Value{structpb.NewStringValue("mcp:read")}}),
	}}}}
	headers := &extprocv3.ProcessingRequest{MetadataContext: md, Request: &extprocv3.ProcessingRequest_ResponseHeaders{ResponseHeaders: &extprocv3.HttpHeaders{
		Headers: &corev3.HeaderMap{Headers: []*corev3.HeaderValue{{Key: ":status", RawValue: []byte("200")}, {Key: "content-type", RawValue: []byte("application/json")}}}}}}
	bodyReq := &extprocv3.ProcessingRequest{MetadataContext: md, Request: &extprocv3.ProcessingRequest_ResponseBody{ResponseBody: &extprocv3.HttpBody{Body: body, EndOfStream: true}}}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	var out []byte
	for b.Loop() {
		x := &exchange{s: s, ctx: context.Background()}
		x.handle(headers)
		out = x.handle(bodyReq).GetResponseBody().GetResponse().GetBodyMutation().GetBody()
	}
	var m struct {
		Result struct {
			Tools []json.RawMessage `json:"tools"`
		} `json:"result"`
	}
	if err := json.Unmarshal(out, &m); err != nil || len(m.Result.Tools) != 40 {
		b.Fatalf("%d tools kept, want 40 (%v)", len(m.Result.Tools), err)
	}
}
