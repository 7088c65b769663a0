package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jwt"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"

	"github.com/extauthz/extauthz/internal/gctune"
	"github.com/extauthz/extauthz/pkg/config"
)

// Hidden subcommands: the reference servers the harness re-executes itself
// as, so that they run in their own process like extauthz does.
const (
	floorCmd       = "floor-server"
	floorTunedCmd  = "floor-tuned-server"
	floorVerifyCmd = "floor-verify-server"
	floorGetCmd    = "floor-get-server"
	jwxCmd         = "jwx-server"
)

// floorServer always allows: the cost of the gRPC round trip and nothing
// else. Default grpc.NewServer() settings.
type floorServer struct {
	authv3.UnimplementedAuthorizationServer
}

var allowed = &authv3.CheckResponse{Status: &rpcstatus.Status{Code: int32(codes.OK)}}

func (floorServer) Check(context.Context, *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	return allowed, nil
}

// jwxServer verifies every token with jwx v3 and nothing else: no cache, no
// policy, no translation beyond reading one header. It is the reference for
// what full verification costs with the library extauthz builds on.
type jwxServer struct {
	authv3.UnimplementedAuthorizationServer
	set      jwk.Set
	issuer   string
	audience string
}

func (s *jwxServer) Check(_ context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	h := req.GetAttributes().GetRequest().GetHttp().GetHeaders()["authorization"]
	tok, ok := strings.CutPrefix(h, "Bearer ")
	if !ok {
		return denied("no bearer token"), nil
	}
	if _, err := jwt.ParseString(tok,
		jwt.WithKeySet(s.set),
		jwt.WithValidate(true),
		jwt.WithIssuer(s.issuer),
		jwt.WithAudience(s.audience),
		jwt.WithAcceptableSkew(time.Minute),
	); err != nil {
		return denied(err.Error()), nil
	}
	return allowed, nil
}

func denied(msg string) *authv3.CheckResponse {
	return &authv3.CheckResponse{Status: &rpcstatus.Status{Code: int32(codes.Unauthenticated), Message: msg}}
}

// runSubserver runs a hidden subcommand until SIGTERM or SIGINT.
func runSubserver(name string, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:0", "gRPC listen address (loopback)")
	jwksURL := fs.String("jwks", "", "jwx-server: JWKS URL, fetched once at start")
	issuer := fs.String("issuer", "", "jwx-server: required iss")
	audience := fs.String("audience", "", "jwx-server: required aud")
	configPath := fs.String("config", "", "floor-tuned-server, floor-verify-server, floor-get-server: the gateway's policy file, whose grpc and runtime sections (defaults included) it is served with")
	var v verifyFlags
	fs.StringVar(&v.alg, "verify-alg", "", "floor-verify-server: RS256, ES256 or EdDSA")
	fs.StringVar(&v.key, "verify-key", "", "floor-verify-server: the public key, base64 of its PKIX DER")
	fs.StringVar(&v.header, "verify-header", "authorization", "floor-verify-server: the header holding the JWS: authorization (after its scheme) or dpop")
	fs.StringVar(&v.redis, "redis", "", "floor-get-server: the redis-server (host:port, loopback) it reads from")
	fs.StringVar(&v.client, "client", floorGetRueidis, "floor-get-server: the Redis client, rueidis or go-redis")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := serveSub(ctx, name, *listen, *jwksURL, *issuer, *audience, *configPath, v); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 1
	}
	return 0
}

func serveSub(ctx context.Context, name, listen, jwksURL, issuer, audience, configPath string, v verifyFlags) error {
	if err := requireLoopback(listen); err != nil {
		return err
	}
	var opts []grpc.ServerOption
	if name == floorTunedCmd || name == floorVerifyCmd || name == floorGetCmd {
		if configPath == "" {
			return errors.New("--config is required")
		}
		cfg, err := config.Load(configPath)
		if err != nil {
			return err
		}
		opts = tunedServerOptions(cfg)
		// The gateway's GC headroom (runtime.gc_headroom_bytes), as
		// extauthz serve keeps it.
		defer gctune.Start(uint64(cfg.Runtime.GCHeadroomBytes)).Stop() //nolint:gosec // validated by config.Load: 0 to 1 TiB
	}
	var impl authv3.AuthorizationServer = floorServer{}
	if name == floorVerifyCmd {
		fv, err := newFloorVerifyServer(v)
		if err != nil {
			return err
		}
		impl = fv
	}
	if name == floorGetCmd {
		fg, err := newFloorGetServer(v.redis, v.client)
		if err != nil {
			return err
		}
		defer fg.Close()
		impl = fg
	}
	if name == jwxCmd {
		if jwksURL == "" || issuer == "" || audience == "" {
			return errors.New("--jwks, --issuer and --audience are required")
		}
		fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		set, err := jwk.Fetch(fctx, jwksURL)
		cancel()
		if err != nil {
			return fmt.Errorf("fetching %s: %w", jwksURL, err)
		}
		impl = &jwxServer{set: set, issuer: issuer, audience: audience}
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	gs := grpc.NewServer(opts...)
	authv3.RegisterAuthorizationServer(gs, impl)
	hs := health.NewServer()
	healthpb.RegisterHealthServer(gs, hs)
	go func() {
		<-ctx.Done()
		gs.Stop()
	}()
	return gs.Serve(ln)
}

// tunedServerOptions are the gRPC server options extauthz serve builds
// from its configuration (cmd/extauthz's app.go), but for the Check codec
// (the floor decodes its requests with protobuf, as floor-server does) and
// tracing (off in every generated policy): the receive bound, keepalive
// parameters and policy, the header list bound, max_concurrent_streams
// when set, and the long-lived stream workers (grpc.stream_workers).
func tunedServerOptions(cfg *config.Config) []grpc.ServerOption {
	ka := cfg.GRPC.Keepalive
	opts := []grpc.ServerOption{
		grpc.MaxRecvMsgSize(cfg.GRPC.MaxRecvMsgBytes),
		grpc.KeepaliveParams(keepalive.ServerParameters{
			Time:             ka.Time.D(),
			Timeout:          ka.Timeout.D(),
			MaxConnectionAge: ka.MaxConnectionAge.D(),
		}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{
			MinTime:             ka.MinTime.D(),
			PermitWithoutStream: ka.PermitsWithoutStream(),
		}),
		grpc.MaxHeaderListSize(64 << 10),
	}
	if cfg.GRPC.MaxConcurrentStreams > 0 {
		opts = append(opts, grpc.MaxConcurrentStreams(cfg.GRPC.MaxConcurrentStreams))
	}
	if cfg.GRPC.StreamWorkers > 0 {
		opts = append(opts, grpc.NumStreamWorkers(uint32(cfg.GRPC.StreamWorkers))) //nolint:gosec // validated by config.Load: 1 to 65536
	}
	return opts
}
