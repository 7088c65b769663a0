package check

import (
	"context"
	"errors"
	"fmt"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	grpcproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"

	"github.com/extauthz/extauthz/pkg/authz"
	"github.com/extauthz/extauthz/pkg/check/internal/wire"
)

// Register registers srv as envoy.service.auth.v3.Authorization on s, with
// a handler that decodes each CheckRequest from its wire bytes
// (wire.DecodeRequest) rather than through protobuf reflection, which is
// most of the CPU a cache-hit Check costs otherwise.
//
// The server must be built with ServerCodec(): the handler asks gRPC for
// the request's bytes, which only that codec provides. Unary interceptors
// still run; the request they see is an opaque value, not a
// *authv3.CheckRequest (a handler given a *authv3.CheckRequest by an
// interceptor decides it as Check does).
func Register(s grpc.ServiceRegistrar, srv *Server) {
	s.RegisterService(&authorizationServiceDesc, srv)
}

// ServerCodec is the server option Register needs: the standard protobuf
// codec for every message but the Check request, whose bytes it hands to
// the handler as they are, and the allowed Check response, which it writes
// by hand (the same bytes).
func ServerCodec() grpc.ServerOption {
	return grpc.ForceServerCodecV2(serverCodec{proto: encoding.GetCodecV2(grpcproto.Name)})
}

// authorizationServiceDesc is the generated Authorization service
// description with its own Check handler: the same service and method
// names, so clients, health checks and Envoy see no difference.
var authorizationServiceDesc = grpc.ServiceDesc{
	ServiceName: "envoy.service.auth.v3.Authorization",
	HandlerType: (*authv3.AuthorizationServer)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Check",
		Handler:    checkHandler,
	}},
	Streams:  []grpc.StreamDesc{},
	Metadata: "envoy/service/auth/v3/external_auth.proto",
}

// rawCheckRequest is a CheckRequest still in wire form. It holds a
// reference to gRPC's receive buffer (no copy) until release; one never
// released (an interceptor that does not call the handler) is only
// collected by the GC instead of going back to the pool.
type rawCheckRequest struct {
	buf mem.Buffer
}

func (m *rawCheckRequest) bytes() []byte {
	if m.buf == nil {
		return nil
	}
	return m.buf.ReadOnlyData()
}

// release gives the buffer back to gRPC's pool; wire.DecodeRequest copies
// what it keeps, so nothing refers to it afterwards.
func (m *rawCheckRequest) release() {
	if m.buf != nil {
		m.buf.Free()
		m.buf = nil
	}
}

// serverCodec keeps the Check request's bytes and delegates everything
// else to the protobuf codec.
type serverCodec struct {
	proto encoding.CodecV2
}

// Marshal writes an allowed CheckResponse (Response's shape) by hand,
// byte for byte what the protobuf codec writes, without its reflection;
// anything else goes to the protobuf codec. Like that codec, it takes a
// pooled buffer for a large message.
func (c serverCodec) Marshal(v any) (mem.BufferSlice, error) {
	if resp, ok := v.(*authv3.CheckResponse); ok && resp != nil {
		if size := wire.AllowedSize(resp); size >= 0 {
			if mem.IsBelowBufferPoolingThreshold(size) {
				return mem.BufferSlice{mem.SliceBuffer(wire.AppendAllowed(make([]byte, 0, size), resp))}, nil
			}
			pool := mem.DefaultBufferPool()
			buf := pool.Get(size)
			*buf = wire.AppendAllowed((*buf)[:0], resp)
			return mem.BufferSlice{mem.NewBuffer(buf, pool)}, nil
		}
	}
	return c.proto.Marshal(v)
}

func (c serverCodec) Unmarshal(data mem.BufferSlice, v any) error {
	if m, ok := v.(*rawCheckRequest); ok {
		// gRPC frees data once Unmarshal returns: take a reference of our
		// own (one buffer) or a pooled copy (a message spread over several).
		m.release()
		m.buf = data.MaterializeToBuffer(mem.DefaultBufferPool())
		return nil
	}
	return c.proto.Unmarshal(data, v)
}

func (c serverCodec) Name() string { return c.proto.Name() }

// checkHandler is the Check method handler: the generated handler's shape,
// with the request decoded by wire.DecodeRequest.
func checkHandler(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) { //nolint:revive // grpc.MethodHandler's signature
	in := new(rawCheckRequest)
	if err := dec(in); err != nil {
		// Receiving failed before any byte was decoded (transport, size
		// limit, decompression): as the generated handler does.
		in.release()
		return nil, err
	}
	s := srv.(*Server)
	if interceptor == nil {
		return s.checkRaw(ctx, in), nil
	}
	info := &grpc.UnaryServerInfo{Server: srv, FullMethod: authv3.Authorization_Check_FullMethodName}
	return interceptor(ctx, in, info, func(ctx context.Context, req any) (any, error) {
		switch req := req.(type) {
		case *rawCheckRequest:
			return s.checkRaw(ctx, req), nil
		case *authv3.CheckRequest:
			return s.Check(ctx, req)
		default:
			// A bug in an interceptor: denied, never allowed.
			s.log.Error("check: interceptor passed an unexpected request type; denying", "type", fmt.Sprintf("%T", req))
			d := authz.Refusal(authz.ErrInternal)
			return Answer(&d), nil
		}
	})
}

// checkRaw is Check on wire bytes. A request that does not decode — one
// proto.Unmarshal would reject too, or one over the header limits — is
// denied with a 400, not answered with a gRPC error, which
// failure_mode_allow would let through.
func (s *Server) checkRaw(ctx context.Context, in *rawCheckRequest) (resp *authv3.CheckResponse) {
	defer s.recoverDenial(&resp)
	defer in.release()
	start := time.Now()
	var r authz.Request
	if err := wire.DecodeRequest(in.bytes(), &r); err != nil {
		msg := "undecodable CheckRequest; denying"
		if errors.Is(err, authz.ErrHeaderLimits) {
			msg = "CheckRequest over the header limits; denying"
		}
		s.log.Warn(msg, "err", err, "bytes", len(in.bytes()))
		d := authz.Refusal(err) // authz.ErrUndecodable or authz.ErrHeaderLimits
		return s.refuse(ctx, &d, start)
	}
	in.release()
	return s.decide(ctx, &r)
}
