package check_test

import (
	"context"
	"net"
	"syscall"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	"github.com/extauthz/extauthz/pkg/check"
)

// BenchmarkCheckCacheHitUnmarshal is the cache-hit Check as the generated
// service runs it: proto.Unmarshal of the request bytes, then Check.
func BenchmarkCheckCacheHitUnmarshal(b *testing.B) {
	s, iss := benchServer(b, "RS256", true)
	in, err := proto.Marshal(realisticRequest(b, iss))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		var req authv3.CheckRequest
		if err := proto.Unmarshal(in, &req); err != nil {
			b.Fatal(err)
		}
		if resp, _ := s.Check(ctx, &req); resp.GetStatus().GetCode() != 0 {
			b.Fatal("denied")
		}
	}
}

// BenchmarkCheckCacheHitWire is the same as the service Register installs
// runs it: wire.DecodeRequest of the request bytes, then the decision.
func BenchmarkCheckCacheHitWire(b *testing.B) {
	s, iss := benchServer(b, "RS256", true)
	in, err := proto.Marshal(realisticRequest(b, iss))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if resp := s.CheckWire(ctx, in); resp.GetStatus().GetCode() != 0 {
			b.Fatal("denied")
		}
	}
}

// BenchmarkCheckGRPCCacheHitAB is BenchmarkCheckGRPCCacheHit against the
// generated service (protobuf reflection) and against the one Register
// installs (wire.DecodeRequest), in one binary so that -count interleaves them.
// Besides ns/op it reports cpu-ns/op: the process's CPU time (client and
// server: only the server differs) per Check, less sensitive than wall time
// to other load on the machine.
func BenchmarkCheckGRPCCacheHitAB(b *testing.B) {
	b.Run("generated", func(b *testing.B) {
		grpcCacheHit(b, func(g *grpc.Server, s *check.Server) { authv3.RegisterAuthorizationServer(g, s) })
	})
	b.Run("register", func(b *testing.B) {
		grpcCacheHit(b, func(g *grpc.Server, s *check.Server) { check.Register(g, s) }, check.ServerCodec())
	})
}

func grpcCacheHit(b *testing.B, register func(*grpc.Server, *check.Server), opts ...grpc.ServerOption) {
	s, iss := benchServer(b, "RS256", true)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	gs := grpc.NewServer(opts...)
	register(gs, s)
	go func() { _ = gs.Serve(ln) }()
	b.Cleanup(gs.Stop)
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close() })
	client := authv3.NewAuthorizationClient(conn)
	req := realisticRequest(b, iss)
	if resp, err := client.Check(context.Background(), req); err != nil || resp.GetStatus().GetCode() != 0 {
		b.Fatalf("warm-up: %v %v", resp, err)
	}
	b.ReportAllocs()
	b.SetParallelism(8) // 8 × GOMAXPROCS(2) = 16 callers
	cpu0 := cpuTime()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if resp, err := client.Check(context.Background(), req); err != nil || resp.GetStatus().GetCode() != 0 {
				b.Errorf("denied: %v %v", resp, err)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
}

// cpuTime is the process's user and system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
