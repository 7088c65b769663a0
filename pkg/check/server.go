package check

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/extauthz/extauthz/pkg/authz"
	"github.com/extauthz/extauthz/pkg/check/internal/wire"
)

// Decider decides a request; *authz.Engine implements it.
type Decider interface {
	Check(ctx context.Context, r *authz.Request) authz.Decision
}

// Server implements the Envoy v3 Authorization service.
type Server struct {
	authv3.UnimplementedAuthorizationServer
	decider Decider
	log     *slog.Logger
	// refused is told of the requests refused before the decider sees
	// them (undecodable, over the header limits); nil: nobody.
	refused func(ctx context.Context, d *authz.Decision, took time.Duration)
}

// OnRefused sets what is told of every request this server refuses itself,
// before any decision — an undecodable CheckRequest or one over the header
// limits — so that metrics and the audit trail count them too. Call it
// before serving.
func (s *Server) OnRefused(f func(ctx context.Context, d *authz.Decision, took time.Duration)) {
	s.refused = f
}

// refuse reports a refusal and returns its response.
func (s *Server) refuse(ctx context.Context, d *authz.Decision, start time.Time) *authv3.CheckResponse {
	if s.refused != nil {
		s.refused(ctx, d, time.Since(start))
	}
	return Answer(d)
}

// NewServer builds a Check server over a decider.
func NewServer(d Decider, log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{decider: d, log: log}
}

// Check answers one CheckRequest. It always answers with a CheckResponse,
// never a gRPC error: Envoy's failure_mode_allow turns errors into allowed
// requests, and nothing here may fail open. A panic below becomes a 503.
//
// Check takes the typed path: the request is a message already, and
// wire.Translate reads it. The gRPC service registered by Register does
// not come through here: it decodes the request's wire bytes with
// wire.DecodeRequest instead (the same authz.Request, no protobuf
// reflection). Check serves in-process callers and an interceptor that
// hands the handler a *authv3.CheckRequest.
func (s *Server) Check(ctx context.Context, req *authv3.CheckRequest) (resp *authv3.CheckResponse, _ error) {
	defer s.recoverDenial(&resp)
	start := time.Now()
	r := wire.Translate(req)
	if err := wire.HeaderLimits(&r); err != nil {
		s.log.Warn("CheckRequest over the header limits; denying", "err", err, "headers", len(r.Headers))
		d := authz.Refusal(err)
		return s.refuse(ctx, &d, start), nil
	}
	return s.decide(ctx, &r), nil
}

// decide runs the decider on a translated request.
func (s *Server) decide(ctx context.Context, r *authz.Request) *authv3.CheckResponse {
	d := s.decider.Check(ctx, r)
	if !d.Allow && s.log.Enabled(ctx, slog.LevelDebug) {
		s.log.Debug("denied", "status", d.Status, "reason", string(d.Reason), "resource", d.Resource, "err", d.Err)
	}
	return Answer(&d)
}

// recoverDenial, deferred, turns a panic into a 503 denial in *resp.
func (s *Server) recoverDenial(resp **authv3.CheckResponse) {
	if p := recover(); p != nil {
		s.log.Error("check panicked; denying", "panic", fmt.Sprint(p))
		d := authz.Refusal(authz.ErrInternal)
		*resp = Answer(&d)
	}
}
