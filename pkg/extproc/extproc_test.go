package extproc_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	filterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/extauthz/extauthz/internal/testkit"
	"github.com/extauthz/extauthz/pkg/authz"
	"github.com/extauthz/extauthz/pkg/check"
	"github.com/extauthz/extauthz/pkg/config"
	"github.com/extauthz/extauthz/pkg/devissuer"
	"github.com/extauthz/extauthz/pkg/extproc"
	"github.com/extauthz/extauthz/pkg/jwks"
	"github.com/extauthz/extauthz/pkg/token"
	"github.com/extauthz/extauthz/pkg/verdict"
)

const resourceURI = "https://mcp.example.com/mcp"

// policyYAML guards some of server-everything's tools, prompts and
// resources behind mcp:admin, which mcp:write does not imply.
const policyYAML = `
resources:
  - name: mcp
    resource: %q
    required_scopes: ["mcp:read"]
    scope_implications:
      "mcp:admin": ["mcp:write"]
      "mcp:write": ["mcp:read"]
    rules:
      - method: tools/call
        name: "get-*"
        scopes: ["mcp:admin"]
      - method: tools/call
        name: "toggle-*"
        scopes: ["mcp:write"]
      - method: tools/call
        name: "simulate-*"
        policy: 'request.headers[?"x-tenant"].orValue("") == "lab"'
      - method: prompts/get
        name: "args-*"
        scopes: ["mcp:admin"]
      - method: resources/read
        name: "demo://resource/static/document/s*"
        scopes: ["mcp:admin"]
      - method: resources/read
        name: "demo://resource/dynamic/blob/*"
        scopes: ["mcp:admin"]
    authorization_servers: [{issuer: %q}]
  - name: open
    resource: "https://open.example.com/mcp"
    authorization_servers: [{issuer: %q}]
`

// fixture is the gateway's gRPC listener as cmd/extauthz builds it: the
// Check and the external processor on one server, reached over loopback.
type fixture struct {
	check  authv3.AuthorizationClient
	proc   extprocv3.ExternalProcessorClient
	iss    *devissuer.Issuer
	reader *sdkmetric.ManualReader
}

func start(t testing.TB, maxBody int) *fixture {
	t.Helper()
	iss, _ := testkit.Issuer(t, "ES256", "", resourceURI, nil)
	cfg, err := config.Parse(fmt.Appendf(nil, policyYAML, resourceURI, iss.Issuer(), iss.Issuer()))
	if err != nil {
		t.Fatal(err)
	}
	p, err := authz.NewPolicy(cfg)
	if err != nil {
		t.Fatal(err)
	}
	keys := jwks.New(func(context.Context) (string, error) { return iss.JWKSURL(), nil }, jwks.Options{Timeout: 2 * time.Second})
	v, err := token.NewIssuerSet(token.Options{Issuers: map[string]token.Issuer{iss.Issuer(): {Keys: keys}}, Leeway: time.Minute, MaxBytes: 16 << 10})
	if err != nil {
		t.Fatal(err)
	}
	e, err := authz.NewEngine(p, authz.Options{Verifier: v, Cache: verdict.LocalCache(100, time.Now), MaxTTL: time.Minute, NegativeTTL: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	srv, err := extproc.New(e, extproc.Options{MaxBodyBytes: maxBody, Meter: mp.Meter("test")})
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer(check.ServerCodec())
	check.Register(g, check.NewServer(e, nil))
	srv.Register(g)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = g.Serve(lis) }()
	t.Cleanup(g.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return &fixture{check: authv3.NewAuthorizationClient(conn), proc: extprocv3.NewExternalProcessorClient(conn), iss: iss, reader: reader}
}

// metadata is what Envoy forwards to ext_proc after an allowed Check of a
// listing request by a token with scopes: the Check's own dynamic metadata
// under the ext_authz filter's namespace.
func (f *fixture) metadata(t testing.TB, resource string, scopes ...string) *corev3.Metadata {
	t.Helper()
	u := resourceURI
	if resource == "open" {
		u = "https://open.example.com/mcp"
	}
	tok, err := f.iss.Mint(devissuer.Token{Subject: "alice", ClientID: "c1", Scopes: scopes, Audience: []string{u}})
	if err != nil {
		t.Fatal(err)
	}
	req, err := check.EnvoyRequest{Method: "POST", URL: u,
		Headers:           [][2]string{{"authorization", "Bearer " + tok}, {"content-type", "application/json"}},
		Body:              []byte(`{"jsonrpc":"2.0","id":2,"method":"tools/list"}`),
		ContextExtensions: map[string]string{"resource": resource}}.Proto()
	if err != nil {
		t.Fatal(err)
	}
	resp, err := f.check.Check(context.Background(), req)
	if err != nil || resp.GetStatus().GetCode() != 0 {
		t.Fatalf("the listing request was not allowed: %v %v", err, resp)
	}
	return &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{extproc.Namespace: resp.GetDynamicMetadata()}}
}

// exchange drives one stream as Envoy's ext_proc filter does with the
// shipped configuration: the response headers (request headers skipped),
// then the body as the answer's mode override asks, BUFFERED in one
// message or STREAMED in chunks, then trailers if any. It returns what the
// client receives: the headers removed and the body.
type exchange struct {
	md          *corev3.Metadata
	contentType string
	encoding    string
	body        []byte
	chunk       int  // STREAMED chunk size; 0: 7 bytes
	trailers    bool // send response trailers after the body
	// requestHeaders: also send the request headers first, as a
	// configuration that does not skip them would.
	requestHeaders bool
}

type received struct {
	removed []string
	mode    *filterv3.ProcessingMode
	body    []byte
}

func (f *fixture) run(t testing.TB, x exchange) received {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := f.proc.Process(ctx)
	if err != nil {
		t.Fatal(err)
	}
	send := func(r *extprocv3.ProcessingRequest) *extprocv3.ProcessingResponse {
		t.Helper()
		r.MetadataContext = x.md
		if err := st.Send(r); err != nil {
			t.Fatal(err)
		}
		resp, err := st.Recv()
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	if x.requestHeaders {
		resp := send(&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestHeaders{RequestHeaders: &extprocv3.HttpHeaders{
			Headers: headers(":method", "POST", ":path", "/mcp", "mcp-method", "tools/list")}}})
		if resp.GetRequestHeaders() == nil {
			t.Fatalf("request headers answered with %v", resp)
		}
	}
	h := []string{":status", "200"}
	if x.contentType != "" {
		h = append(h, "content-type", x.contentType)
	}
	if x.encoding != "" {
		h = append(h, "content-encoding", x.encoding)
	}
	h = append(h, "content-length", fmt.Sprint(len(x.body)))
	resp := send(&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseHeaders{ResponseHeaders: &extprocv3.HttpHeaders{Headers: headers(h...)}}})
	if resp.GetResponseHeaders() == nil {
		t.Fatalf("response headers answered with %v", resp)
	}
	var got received
	got.removed = resp.GetResponseHeaders().GetResponse().GetHeaderMutation().GetRemoveHeaders()
	got.mode = resp.GetModeOverride()
	apply := func(r *extprocv3.ProcessingResponse, in []byte) []byte {
		t.Helper()
		if r.GetResponseBody() == nil {
			t.Fatalf("body answered with %v", r)
		}
		m := r.GetResponseBody().GetResponse().GetBodyMutation()
		switch {
		case m == nil:
			return in
		case m.GetClearBody():
			return nil
		}
		return m.GetBody()
	}
	switch got.mode.GetResponseBodyMode() {
	case filterv3.ProcessingMode_NONE:
		got.body = x.body // Envoy passes it without asking
	case filterv3.ProcessingMode_BUFFERED:
		r := send(&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseBody{ResponseBody: &extprocv3.HttpBody{Body: x.body, EndOfStream: !x.trailers}}})
		got.body = apply(r, x.body)
	case filterv3.ProcessingMode_STREAMED:
		n := x.chunk
		if n == 0 {
			n = 7
		}
		for i := 0; i < len(x.body); i += n {
			end := min(i+n, len(x.body))
			last := end == len(x.body) && !x.trailers
			r := send(&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseBody{ResponseBody: &extprocv3.HttpBody{Body: x.body[i:end], EndOfStream: last}}})
			got.body = append(got.body, apply(r, x.body[i:end])...)
		}
	default:
		t.Fatalf("body mode %v", got.mode.GetResponseBodyMode())
	}
	if x.trailers {
		r := send(&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseTrailers{ResponseTrailers: &extprocv3.HttpTrailers{Trailers: headers("grpc-status", "0")}}})
		if r.GetResponseTrailers() == nil {
			t.Fatalf("trailers answered with %v", r)
		}
	}
	if err := st.CloseSend(); err != nil {
		t.Fatal(err)
	}
	// The server has finished with the stream (and recorded its metrics)
	// when the stream ends.
	if _, err := st.Recv(); !errors.Is(err, io.EOF) {
		t.Fatalf("stream end: %v", err)
	}
	return got
}

func headers(kv ...string) *corev3.HeaderMap {
	m := &corev3.HeaderMap{}
	for i := 0; i < len(kv); i += 2 {
		m.Headers = append(m.Headers, &corev3.HeaderValue{Key: kv[i], RawValue: []byte(kv[i+1])})
	}
	return m
}

func read(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// rpc is a JSON-RPC response as a strict client reads it.
type rpc struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Result  *struct {
		Tools             []map[string]any `json:"tools"`
		Prompts           []map[string]any `json:"prompts"`
		Resources         []map[string]any `json:"resources"`
		ResourceTemplates []map[string]any `json:"resourceTemplates"`
		NextCursor        *string          `json:"nextCursor"`
	} `json:"result"`
	Error *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func decode(t testing.TB, b []byte) rpc {
	t.Helper()
	var m rpc
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("not a JSON-RPC response: %v\n%s", err, b)
	}
	if m.JSONRPC != "2.0" || len(m.ID) == 0 || (m.Result == nil) == (m.Error == nil) {
		t.Fatalf("not a JSON-RPC 2.0 response: %s", b)
	}
	return m
}

func names(entries []map[string]any, key string) []string {
	var out []string
	for _, e := range entries {
		out = append(out, e[key].(string))
	}
	return out
}

// sseMessages returns the data of each message event of a stream, as an
// EventSource reads it, and the ids of all events.
func sseMessages(t testing.TB, b []byte) (data [][]byte, ids []string) {
	t.Helper()
	for _, ev := range strings.Split(strings.ReplaceAll(string(b), "\r\n", "\n"), "\n\n") {
		if ev == "" {
			continue
		}
		var d []string
		typ := ""
		for _, line := range strings.Split(ev, "\n") {
			name, value, _ := strings.Cut(line, ":")
			value = strings.TrimPrefix(value, " ")
			switch name {
			case "data":
				d = append(d, value)
			case "event":
				typ = value
			case "id":
				ids = append(ids, value)
			}
		}
		if (typ == "" || typ == "message") && len(d) > 0 && strings.Join(d, "\n") != "" {
			data = append(data, []byte(strings.Join(d, "\n")))
		}
	}
	return data, ids
}
