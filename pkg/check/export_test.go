package check

import (
	"context"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc/mem"
)

// CheckWire answers a CheckRequest given as wire bytes as the service
// Register installs does, without gRPC around it.
func (s *Server) CheckWire(ctx context.Context, b []byte) *authv3.CheckResponse {
	return s.checkRaw(ctx, &rawCheckRequest{buf: mem.SliceBuffer(b)})
}
