package check_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding"
	grpcproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/extauthz/extauthz/pkg/authz"
	"github.com/extauthz/extauthz/pkg/check"
	"github.com/extauthz/extauthz/pkg/config"
	"github.com/extauthz/extauthz/pkg/devissuer"
	"github.com/extauthz/extauthz/pkg/jwks"
	"github.com/extauthz/extauthz/pkg/token"
	"github.com/extauthz/extauthz/pkg/verdict"
)

// serve starts a gRPC server with opts, lets register add services, and
// returns a connection to it.
func serve(t *testing.T, register func(*grpc.Server), opts ...grpc.ServerOption) *grpc.ClientConn {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(opts...)
	register(srv)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// testEngine is an engine over one issuer, with a cache and rules.
func testEngine(t *testing.T) (*authz.Engine, *devissuer.Issuer) {
	t.Helper()
	iss, _ := issuerServer(t, "RS256", "")
	cfg := &config.Config{Resources: []config.Resource{{
		Name: "mcp", Resource: resourceURI, Hosts: []string{"mcp.example.com"},
		AuthorizationServers: []config.AuthorizationServer{{Issuer: iss.Issuer(), JWKSURI: iss.JWKSURL()}},
		ScopesSupported:      []string{"mcp:tools", "mcp:admin"}, RequiredScopes: []string{"mcp:tools"},
		Rules: []config.Rule{{Method: "tools/call", Name: "delete_*", Scopes: []string{"mcp:admin"}}},
	}}}
	cfg.ApplyDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	src := jwks.New(func(context.Context) (string, error) { return iss.JWKSURL(), nil }, jwks.Options{})
	v, err := token.NewIssuerSet(token.Options{Issuers: map[string]token.Issuer{iss.Issuer(): {Keys: src}}, Leeway: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	p, err := authz.NewPolicy(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e, err := authz.NewEngine(p, authz.Options{Verifier: v, Cache: verdict.LocalCache(1000, nil), MaxTTL: 5 * time.Minute, NegativeTTL: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return e, iss
}

// TestRegisterAnswersAsGenerated sends the same requests to the service
// Register installs and to the generated one, both over one engine: the
// answers must be the same.
func TestRegisterAnswersAsGenerated(t *testing.T) {
	e, iss := testEngine(t)
	s := check.NewServer(e, nil)
	generated := authv3.NewAuthorizationClient(serve(t, func(g *grpc.Server) { authv3.RegisterAuthorizationServer(g, s) }))
	wire := authv3.NewAuthorizationClient(serve(t, func(g *grpc.Server) { check.Register(g, s) }, check.ServerCodec()))

	tok := mint(t, iss, devissuer.Token{Scopes: []string{"mcp:tools"}})
	noScope := mint(t, iss, devissuer.Token{Scopes: []string{"other"}})
	var reqs []check.EnvoyRequest
	for _, raw := range []bool{false, true} {
		reqs = append(reqs,
			check.EnvoyRequest{URL: resourceURI, RawHeaders: raw},
			check.EnvoyRequest{URL: resourceURI, RawHeaders: raw, Headers: bearer(tok)},
			check.EnvoyRequest{URL: resourceURI, RawHeaders: raw, Headers: bearer(noScope)},
			check.EnvoyRequest{URL: resourceURI, RawHeaders: raw, Headers: bearer("not.a.jwt")},
			check.EnvoyRequest{URL: resourceURI, RawHeaders: raw, Headers: [][2]string{{"Authorization", "Bearer " + tok}, {"authorization", "Bearer " + tok}}},
			check.EnvoyRequest{URL: resourceURI + "?access_token=" + tok, RawHeaders: raw},
			check.EnvoyRequest{URL: prmURL, RawHeaders: raw},
			check.EnvoyRequest{URL: "https://unknown.example.com/x", RawHeaders: raw, Headers: bearer(tok)},
			check.EnvoyRequest{URL: "https://unknown.example.com/x", RawHeaders: raw, Headers: bearer(tok), ContextExtensions: map[string]string{"resource": "mcp"}},
			check.EnvoyRequest{Method: "OPTIONS", URL: resourceURI, RawHeaders: raw, Headers: [][2]string{{"origin", "https://app.example"}, {"access-control-request-method", "POST"}}},
			check.EnvoyRequest{Method: "POST", URL: resourceURI, RawHeaders: raw, Headers: append(bearer(tok), [2]string{"content-type", "application/json"}),
				Body: []byte(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete_all"}}`)},
			check.MCPToolCall(resourceURI, tok),
		)
	}
	for i, er := range reqs {
		req, err := er.Proto()
		if err != nil {
			t.Fatal(err)
		}
		want, err := generated.Check(context.Background(), req)
		if err != nil {
			t.Fatalf("%d: generated: %v", i, err)
		}
		got, err := wire.Check(context.Background(), req)
		if err != nil {
			t.Fatalf("%d: Register: %v", i, err)
		}
		if !proto.Equal(want, got) {
			t.Errorf("%d %+v: answers differ\ngenerated: %v\nRegister:  %v", i, er, want, got)
		}
	}
}

// rawCodec sends []byte as the request as it is, so a test can send what
// no CheckRequest marshals to.
type rawCodec struct{ encoding.CodecV2 }

func (c rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	if b, ok := v.([]byte); ok {
		return mem.BufferSlice{mem.SliceBuffer(b)}, nil
	}
	return c.CodecV2.Marshal(v)
}

// TestUndecodableRequestDenied: a CheckRequest proto.Unmarshal rejects.
// The generated service answers a gRPC error (INTERNAL), which Envoy's
// failure_mode_allow lets through; the service Register installs denies it
// with a 400 instead.
func TestUndecodableRequestDenied(t *testing.T) {
	e, _ := testEngine(t)
	s := check.NewServer(e, nil)
	generated := serve(t, func(g *grpc.Server) { authv3.RegisterAuthorizationServer(g, s) })
	wire := serve(t, func(g *grpc.Server) { check.Register(g, s) }, check.ServerCodec())
	codec := grpc.ForceCodecV2(rawCodec{encoding.GetCodecV2(grpcproto.Name)})

	for _, b := range [][]byte{
		{0x0a, 0x80},                          // truncated
		withHTTP(fstr(2, "G\xffET")),          // method not UTF-8
		{0x0f, 0x00},                          // reserved wire type
		withAttrs(fbytes(1, fstr(2, "\xff"))), // a string translate ignores
	} {
		var resp authv3.CheckResponse
		err := generated.Invoke(context.Background(), authv3.Authorization_Check_FullMethodName, b, &resp, codec)
		if status.Code(err) != codes.Internal {
			t.Errorf("%x: generated service: %v, want INTERNAL", b, err)
		}
		resp.Reset()
		if err := wire.Invoke(context.Background(), authv3.Authorization_Check_FullMethodName, b, &resp, codec); err != nil {
			t.Fatalf("%x: %v", b, err)
		}
		d := resp.GetDeniedResponse()
		if resp.GetStatus().GetCode() != int32(codes.InvalidArgument) || d.GetStatus().GetCode() != http.StatusBadRequest ||
			d.GetBody() != `{"error":"invalid_request","error_description":"the authorization request cannot be decoded"}` {
			t.Errorf("%x: %v, want a 400 denial", b, &resp)
		}
	}
	// What decodes is decided: an empty request is not a decode error.
	var resp authv3.CheckResponse
	if err := wire.Invoke(context.Background(), authv3.Authorization_Check_FullMethodName, []byte{}, &resp, codec); err != nil {
		t.Fatal(err)
	}
	if body := resp.GetDeniedResponse().GetBody(); strings.Contains(body, "cannot be decoded") || resp.GetStatus().GetCode() == 0 {
		t.Errorf("empty request: %v", &resp)
	}
}

// TestHealthThroughServerCodec: the other services keep the protobuf codec.
func TestHealthThroughServerCodec(t *testing.T) {
	e, _ := testEngine(t)
	hs := health.NewServer()
	hs.SetServingStatus(authv3.Authorization_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	conn := serve(t, func(g *grpc.Server) {
		check.Register(g, check.NewServer(e, nil))
		healthpb.RegisterHealthServer(g, hs)
	}, check.ServerCodec())
	for svc, want := range map[string]healthpb.HealthCheckResponse_ServingStatus{
		"": healthpb.HealthCheckResponse_SERVING, authv3.Authorization_ServiceDesc.ServiceName: healthpb.HealthCheckResponse_SERVING,
	} {
		resp, err := healthpb.NewHealthClient(conn).Check(context.Background(), &healthpb.HealthCheckRequest{Service: svc})
		if err != nil || resp.GetStatus() != want {
			t.Errorf("health %q: %v %v", svc, resp, err)
		}
	}
	if _, err := healthpb.NewHealthClient(conn).Check(context.Background(), &healthpb.HealthCheckRequest{Service: "nope"}); status.Code(err) != codes.NotFound {
		t.Errorf("unknown service: %v", err)
	}
}

// TestInterceptorsStillRun: a unary interceptor sees the Check call, may
// pass the request on, or hand the handler a CheckRequest of its own.
func TestInterceptorsStillRun(t *testing.T) {
	e, iss := testEngine(t)
	tok := mint(t, iss, devissuer.Token{Scopes: []string{"mcp:tools"}})
	allowed, err := check.EnvoyRequest{URL: resourceURI, Headers: bearer(tok)}.Proto()
	if err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int32
	var replace atomic.Bool
	conn := serve(t, func(g *grpc.Server) { check.Register(g, check.NewServer(e, nil)) }, check.ServerCodec(),
		grpc.UnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
			calls.Add(1)
			if info.FullMethod != authv3.Authorization_Check_FullMethodName {
				return nil, fmt.Errorf("method %s", info.FullMethod)
			}
			if replace.Load() {
				return handler(ctx, allowed)
			}
			return handler(ctx, req)
		}))
	client := authv3.NewAuthorizationClient(conn)
	noToken, _ := check.EnvoyRequest{URL: resourceURI}.Proto()
	resp, err := client.Check(context.Background(), noToken)
	if err != nil || resp.GetDeniedResponse().GetStatus().GetCode() != http.StatusUnauthorized {
		t.Fatalf("passed on: %v %v", resp, err)
	}
	replace.Store(true)
	resp, err = client.Check(context.Background(), noToken)
	if err != nil || resp.GetStatus().GetCode() != 0 {
		t.Fatalf("replaced by the interceptor: %v %v", resp, err)
	}
	if calls.Load() != 2 {
		t.Errorf("interceptor ran %d times", calls.Load())
	}
}

// TestCheckWireMatchesCheck: the in-process wire path against Check.
func TestCheckWireMatchesCheck(t *testing.T) {
	e, iss := testEngine(t)
	s := check.NewServer(e, nil)
	tok := mint(t, iss, devissuer.Token{Scopes: []string{"mcp:tools"}})
	for _, er := range []check.EnvoyRequest{check.MCPToolCall(resourceURI, tok), {URL: resourceURI, RawHeaders: true, Headers: bearer(tok)}} {
		req, err := er.Proto()
		if err != nil {
			t.Fatal(err)
		}
		want, _ := s.Check(context.Background(), req)
		b, err := proto.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		if got := s.CheckWire(context.Background(), b); !proto.Equal(want, got) {
			t.Errorf("CheckWire %v, Check %v", got, want)
		}
	}
}
