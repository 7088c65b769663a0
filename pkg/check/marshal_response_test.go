package check

import (
	"bytes"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/encoding"
	grpcproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/extauthz/extauthz/pkg/authz"
	"github.com/extauthz/extauthz/pkg/check/internal/wire"
	"github.com/extauthz/extauthz/pkg/token"
)

// TestAllowedMarshalSchema pins the fields of the messages wire.AppendAllowed
// writes: a new field (a dependency upgrade) must be handled, or checked
// for in wire.AllowedSize, before this passes again.
func TestAllowedMarshalSchema(t *testing.T) {
	want := map[protoreflect.FullName][]protoreflect.FieldNumber{
		"envoy.service.auth.v3.CheckResponse":    {1, 2, 3, 4, 5},
		"google.rpc.Status":                      {1, 2, 3},
		"envoy.service.auth.v3.OkHttpResponse":   {2, 3, 5, 6, 7, 8},
		"envoy.config.core.v3.HeaderValueOption": {1, 2, 3, 4},
		"envoy.config.core.v3.HeaderValue":       {1, 2, 3},
	}
	for _, m := range []proto.Message{&authv3.CheckResponse{}, &status.Status{}, &authv3.OkHttpResponse{}, &corev3.HeaderValueOption{}, &corev3.HeaderValue{}} {
		d := m.ProtoReflect().Descriptor()
		var got []protoreflect.FieldNumber
		for i := range d.Fields().Len() {
			got = append(got, d.Fields().Get(i).Number())
		}
		slices.Sort(got)
		if !slices.Equal(got, want[d.FullName()]) {
			t.Errorf("%s has fields %v, wire.AppendAllowed knows %v", d.FullName(), got, want[d.FullName()])
		}
	}
}

// marshalBoth marshals m with ServerCodec's codec and with the protobuf
// codec, and fails unless both give the same bytes or both fail; hand says
// whether the hand encoder is expected to be used.
func marshalBoth(t *testing.T, m *authv3.CheckResponse, hand bool) {
	t.Helper()
	if got := wire.AllowedSize(m) >= 0; got != hand {
		t.Fatalf("hand-encoded: %v, want %v: %v", got, hand, m)
	}
	c := serverCodec{proto: encoding.GetCodecV2(grpcproto.Name)}
	got, gerr := c.Marshal(m)
	want, werr := proto.Marshal(m)
	det, derr := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if (gerr != nil) != (werr != nil) || (werr != nil) != (derr != nil) {
		t.Fatalf("errors: codec %v, proto.Marshal %v, deterministic %v", gerr, werr, derr)
	}
	if gerr != nil {
		return
	}
	if hand && wire.AllowedSize(m) != len(want) {
		t.Fatalf("allowedSize %d, proto.Marshal wrote %d bytes", wire.AllowedSize(m), len(want))
	}
	gb := got.Materialize()
	got.Free()
	if !bytes.Equal(gb, want) || !bytes.Equal(gb, det) {
		t.Fatalf("codec wrote\n%x\nproto.Marshal\n%x\ndeterministic\n%x\nfor %v", gb, want, det, m)
	}
}

func TestAllowedMarshalDifferential(t *testing.T) {
	exp := time.Unix(1795772079, 0)
	rng := rand.New(rand.NewPCG(1, 2))
	str := func() string {
		switch rng.IntN(6) {
		case 0:
			return ""
		case 1:
			return strings.Repeat("v", rng.IntN(20000)) // lengths of 1 to 3 varint bytes, pooled buffers
		case 2:
			return "ünïcødé"
		default:
			return "x-" + strings.Repeat("a", rng.IntN(140))
		}
	}
	for i := range 3000 {
		d := authz.Decision{Allow: true, Status: 200, Resource: str()}
		for range rng.IntN(5) {
			d.Upstream = append(d.Upstream, authz.Header{Name: str(), Value: str()})
		}
		for range rng.IntN(4) {
			d.Remove = append(d.Remove, str())
		}
		if rng.IntN(3) > 0 {
			d.Claims = &token.Claims{Subject: str(), Expiry: exp, Grant: &token.Grant{Issuer: str(), ClientID: str(), Scope: str(), Scopes: []string{str()}}}
		}
		m := Answer(&d)
		if i%7 == 0 {
			m.Status.Code = []int32{1, -1, 127, 128, 1 << 30, -1 << 31}[rng.IntN(6)]
		}
		if i%5 == 0 && len(m.GetOkResponse().Headers) > 0 {
			m.GetOkResponse().Headers[0].AppendAction = corev3.HeaderValueOption_HeaderAppendAction(rng.IntN(200) - 10)
		}
		marshalBoth(t, m, true)
	}
}

// TestAllowedMarshalFallback: every field wire.AppendAllowed does not write, and
// every string proto.Marshal rejects, sends the message to the protobuf
// codec, which then writes the same bytes or fails as proto.Marshal does.
func TestAllowedMarshalFallback(t *testing.T) {
	base := func() *authv3.CheckResponse {
		d := authz.Decision{Allow: true, Status: 200, Upstream: []authz.Header{{Name: "x-user", Value: "alice"}}, Remove: []string{"authorization"}}
		return Answer(&d)
	}
	ok := func(m *authv3.CheckResponse) *authv3.OkHttpResponse { return m.GetOkResponse() }
	hvo := func(m *authv3.CheckResponse) *corev3.HeaderValueOption { return ok(m).Headers[0] }
	unknown := []byte{0xf8, 0x06, 0x01} // field 111, varint 1
	edits := map[string]func(m *authv3.CheckResponse){
		"no status":            func(m *authv3.CheckResponse) { m.Status = nil },
		"status message":       func(m *authv3.CheckResponse) { m.Status.Message = "m" },
		"status details":       func(m *authv3.CheckResponse) { m.Status.Details = []*anypb.Any{{TypeUrl: "t"}} },
		"status empty details": func(m *authv3.CheckResponse) { m.Status.Details = []*anypb.Any{} },
		"status unknown":       func(m *authv3.CheckResponse) { m.Status.ProtoReflect().SetUnknown(unknown) },
		"denied": func(m *authv3.CheckResponse) {
			m.HttpResponse = &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{Body: "b"}}
		},
		"error response": func(m *authv3.CheckResponse) {
			m.HttpResponse = &authv3.CheckResponse_ErrorResponse{ErrorResponse: &authv3.DeniedHttpResponse{}}
		},
		"nil ok":              func(m *authv3.CheckResponse) { m.HttpResponse = &authv3.CheckResponse_OkResponse{} },
		"no http response":    func(m *authv3.CheckResponse) { m.HttpResponse = nil },
		"dynamic metadata":    func(m *authv3.CheckResponse) { m.DynamicMetadata = &structpb.Struct{} },
		"ok dynamic metadata": func(m *authv3.CheckResponse) { ok(m).DynamicMetadata = &structpb.Struct{} },
		"ok response headers": func(m *authv3.CheckResponse) { ok(m).ResponseHeadersToAdd = []*corev3.HeaderValueOption{{}} },
		"ok query set":        func(m *authv3.CheckResponse) { ok(m).QueryParametersToSet = []*corev3.QueryParameter{{Key: "k"}} },
		"ok query remove":     func(m *authv3.CheckResponse) { ok(m).QueryParametersToRemove = []string{"q"} },
		"ok unknown":          func(m *authv3.CheckResponse) { ok(m).ProtoReflect().SetUnknown(unknown) },
		"nil option":          func(m *authv3.CheckResponse) { ok(m).Headers = append(ok(m).Headers, nil) },
		"no header":           func(m *authv3.CheckResponse) { hvo(m).Header = nil },
		"append":              func(m *authv3.CheckResponse) { hvo(m).Append = wrapperspb.Bool(false) },
		"keep empty":          func(m *authv3.CheckResponse) { hvo(m).KeepEmptyValue = true },
		"option unknown":      func(m *authv3.CheckResponse) { hvo(m).ProtoReflect().SetUnknown(unknown) },
		"raw value":           func(m *authv3.CheckResponse) { hvo(m).Header.RawValue = []byte{} },
		"header unknown":      func(m *authv3.CheckResponse) { hvo(m).Header.ProtoReflect().SetUnknown(unknown) },
		"invalid key":         func(m *authv3.CheckResponse) { hvo(m).Header.Key = "\xff" },
		"invalid value":       func(m *authv3.CheckResponse) { hvo(m).Header.Value = "a\xc0" },
		"invalid remove":      func(m *authv3.CheckResponse) { ok(m).HeadersToRemove = []string{"ok", "\xed\xa0\x80"} },
	}
	marshalBoth(t, base(), true)
	for name, edit := range edits {
		t.Run(name, func(t *testing.T) {
			m := base()
			edit(m)
			marshalBoth(t, m, false)
		})
	}
	// Fields proto3 leaves out when empty stay hand-encoded.
	m := base()
	ok(m).Headers, ok(m).HeadersToRemove = []*corev3.HeaderValueOption{}, []string{}
	marshalBoth(t, m, true)
	marshalBoth(t, &authv3.CheckResponse{Status: &status.Status{}, HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{}}}, true)
	var nilResp *authv3.CheckResponse
	c := serverCodec{proto: encoding.GetCodecV2(grpcproto.Name)}
	if _, err := c.Marshal(nilResp); err != nil {
		t.Logf("nil response: %v", err) // whatever the protobuf codec does
	}
}

func BenchmarkMarshalAllowed(b *testing.B) {
	d := authz.Decision{Allow: true, Status: 200, Resource: "mcp", Remove: []string{"authorization"},
		Upstream: []authz.Header{{Name: "x-user", Value: "alice"}, {Name: "x-client-id", Value: "c1"}},
		Claims: &token.Claims{Subject: "alice", Expiry: time.Unix(1795772079, 0),
			Grant: &token.Grant{Issuer: "https://auth.example.com", ClientID: "c1", Scope: "mcp:tools", Scopes: []string{"mcp:tools"}}}}
	m := Answer(&d)
	for _, c := range []struct {
		name  string
		codec encoding.CodecV2
	}{{"proto", encoding.GetCodecV2(grpcproto.Name)}, {"server", serverCodec{proto: encoding.GetCodecV2(grpcproto.Name)}}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				bs, err := c.codec.Marshal(m)
				if err != nil {
					b.Fatal(err)
				}
				bs.Free()
			}
		})
	}
}
