package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"sync"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	noopmetric "go.opentelemetry.io/otel/metric/noop"

	"github.com/redis/go-redis/v9"

	"github.com/extauthz/extauthz/pkg/authz"
	"github.com/extauthz/extauthz/pkg/cache"
	"github.com/extauthz/extauthz/pkg/check"
	"github.com/extauthz/extauthz/pkg/config"
	"github.com/extauthz/extauthz/pkg/httpauthz"
	"github.com/extauthz/extauthz/pkg/logging"
	"github.com/extauthz/extauthz/pkg/metadata"
	"github.com/extauthz/extauthz/pkg/oauthflow"
	"github.com/extauthz/extauthz/pkg/revocation"
	"github.com/extauthz/extauthz/pkg/ssf"
	"github.com/extauthz/extauthz/pkg/telemetry"
	"github.com/extauthz/extauthz/pkg/verdict"
)

// grantTableSize bounds the interned (issuer, client, audiences, scopes)
// combinations; beyond it new combinations are simply not shared.
const grantTableSize = 1 << 16

// shutdownGrace bounds how long in-flight Checks and HTTP requests may take
// to finish once a shutdown signal arrives (Kubernetes' default grace is 30s).
const shutdownGrace = 20 * time.Second

// app is one running gateway: every component built from a config, with
// its listeners already bound so that their addresses are known.
type app struct {
	cfg    *config.Config // as started; reloads apply only what may change while running
	log    *slog.Logger
	clock  func() time.Time
	tel    *telemetry.Telemetry
	audit  *telemetry.Audit
	engine *authz.Engine
	// issuers are the parts behind each authorization server, by issuer;
	// a reload replaces the ones whose settings changed.
	issuersMu sync.Mutex
	issuers   map[string]*issuerParts
	runCtx    context.Context    // set by run: issuer parts run until it ends
	login     *oauthflow.Handler // the browser login flow; nil when no resource enables it
	facade    *oauthflow.Facade  // the OAuth facade; nil when no resource enables it
	reloader  *reloader          // nil in dev, which has no config to reload
	// background runs alongside the servers until shutdown (discovery for
	// the login of issuers whose endpoints are configured).
	background []func(context.Context)
	cache      *cache.Tiered[verdict.Verdict]
	redis      redis.UniversalClient // nil without a shared tier
	admTok     string                // protects POST /cache/purge and /revocations; "" disables them
	health     *health.Server
	grpc       *grpc.Server
	http       *http.Server
	admin      *http.Server

	// revoker holds the revocation watermarks and shares them through
	// Redis: the engine asks it on every decision, POST /revocations
	// revokes through it, and so may any other source of revocations
	// (it is a revocation.Revoker).
	revoker *revocation.Store
	// ssf receives Security Event Tokens pushed by the configured
	// transmitters (ssf.path on the HTTP listener); nil when none are.
	ssf *ssf.Receiver
	// status is the admin listener's status page.
	status *statusPage

	lnGRPC, lnHTTP, lnAdmin net.Listener
}

// appOptions are the parts of wiring a caller may supply.
type appOptions struct {
	// Listeners already bound by the caller (dev binds first to learn the
	// ports); nil ones are bound from the config.
	lnGRPC, lnHTTP, lnAdmin net.Listener
	// extraHTTP is mounted at "/" on the HTTP listener (the dev issuer).
	extraHTTP http.Handler
	now       func() time.Time
	// observer receives cache events (nil: none); the metrics will hang here.
	observer cache.Observer
	// adminToken, when set, replaces the configured one (dev makes its own).
	adminToken string
	// configPath is the file cfg came from; with it, the gateway reloads
	// on SIGHUP and when the file changes.
	configPath string
	// fromEnv: cfg came from the environment alone (config.FromEnv); a
	// SIGHUP rebuilds it from the environment.
	fromEnv bool
	// levelVar, when set, is the logger's level, changed by reloads.
	levelVar *slog.LevelVar
	// telemetry replaces the one built from the OTEL_* environment (tests).
	telemetry *telemetry.Telemetry
	// logDropped counts the log lines the process's log output dropped
	// (logging.AsyncWriter.Dropped); nil: a log that drops none.
	logDropped func() uint64
}

func newApp(cfg *config.Config, log *slog.Logger, o appOptions) (a *app, err error) {
	if o.now == nil {
		o.now = time.Now
	}
	a = &app{cfg: cfg, log: log, clock: o.now}
	defer func() {
		if err != nil {
			a.closeListeners()
			if a.cache != nil {
				_ = a.cache.Close(context.Background()) // nothing queued yet
			}
			if a.redis != nil {
				_ = a.redis.Close()
			}
		}
	}()
	if a.admTok, err = resolveAdminToken(a); err != nil {
		return nil, err
	}
	if o.adminToken != "" {
		a.admTok = o.adminToken
	}
	if a.tel = o.telemetry; a.tel == nil {
		if a.tel, err = telemetry.New(context.Background(), telemetry.Options{Version: version}); err != nil {
			return nil, err
		}
	}
	if err = a.tel.LogLinesDropped(o.logDropped); err != nil {
		return nil, err
	}
	if o.observer == nil {
		o.observer = a.tel.Metrics
	} else {
		o.observer = teeObserver{o.observer, a.tel.Metrics}
	}
	// One table of shared grants for verifications and for verdicts read
	// from Redis alike.
	grants := verdict.NewGrants(grantTableSize)
	if a.cache, a.redis, err = newVerdictCache(cfg, log, a.tel, o.observer, grants, o.now); err != nil {
		return nil, err
	}

	if a.issuers, err = buildIssuers(cfg, log, a.tel, o.now); err != nil {
		return nil, err
	}
	registerKeyAges(a.tel, a.issuers)
	verifier, err := newVerifier(cfg, a.issuers, o.now)
	if err != nil {
		return nil, err
	}
	policy, err := authz.NewPolicy(cfg)
	if err != nil {
		return nil, err
	}
	if a.login, err = newLogin(a, verifier, a.redis, o.now); err != nil {
		return nil, err
	}
	if a.facade, err = newFacade(a, a.login, o.now); err != nil {
		return nil, err
	}
	var browserLogin authz.BrowserLogin // a nil *oauthflow.Handler must stay a nil interface
	if a.login != nil {
		browserLogin = a.login
	}
	minters, err := newUpstreamMinters(a, a.tel, o.now)
	if err != nil {
		return nil, err
	}
	var upstreamCreds authz.UpstreamCredentials // likewise for a nil *upstreamMinters
	if minters != nil {
		upstreamCreds = minters
	}
	replay, nonces, err := newDPoPParts(cfg, a.redis, o.now)
	if err != nil {
		return nil, err
	}
	if a.revoker, err = newRevoker(cfg, log, a.tel, a.redis, o.now); err != nil {
		return nil, err
	}
	if a.ssf, err = newSSFReceiver(a, o.now); err != nil {
		return nil, fmt.Errorf("ssf: %w", err)
	}
	a.engine, err = authz.NewEngine(policy, authz.Options{
		Verifier:     verifier,
		Cache:        a.cache,
		Grants:       grants,
		MaxTTL:       cfg.Cache.MaxTTL.D(),
		NegativeTTL:  cfg.Cache.NegativeTTL.D(),
		RevokedTTL:   cfg.Cache.RevokedTTL.D(),
		Leeway:       cfg.Tokens.Leeway.D(),
		Now:          o.now,
		Logger:       log,
		BrowserLogin: browserLogin,
		Upstream:     upstreamCreds,
		DPoPReplay:   replay,
		DPoPNonces:   nonces,
		DPoPLeeway:   cfg.DPoP.Leeway.D(),
		Watermarks:   a.revoker,
	})
	if err != nil {
		return nil, err
	}

	ka := cfg.GRPC.Keepalive
	gopts := []grpc.ServerOption{
		check.ServerCodec(),
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
	}
	// gRPC request headers are small (the checked request's headers travel in the
	// message, bounded by max_recv_msg_bytes).
	gopts = append(gopts, grpc.MaxHeaderListSize(64<<10))
	if cfg.GRPC.MaxConcurrentStreams > 0 {
		gopts = append(gopts, grpc.MaxConcurrentStreams(cfg.GRPC.MaxConcurrentStreams))
	}
	// A goroutine per Check starts with a small stack and grows it, by
	// copying, on every Check; long-lived workers keep theirs.
	if cfg.GRPC.StreamWorkers > 0 {
		gopts = append(gopts, grpc.NumStreamWorkers(uint32(cfg.GRPC.StreamWorkers))) //nolint:gosec // validated: 1 to 65536
	}
	if a.tel.Tracing() {
		gopts = append(gopts, grpc.StatsHandler(otelgrpc.NewServerHandler(
			otelgrpc.WithTracerProvider(a.tel.TracerProvider()),
			otelgrpc.WithPropagators(a.tel.Propagator()),
			otelgrpc.WithMeterProvider(noopmetric.NewMeterProvider()), // the gateway's own metrics cover Checks
		)))
	}
	a.audit = telemetry.NewAudit(log, cfg.Log.AuditEnabled(), cfg.Log.Audit.AllowSampleRate)
	a.grpc = grpc.NewServer(gopts...)
	checkServer := check.NewServer(a.tel.Instrument(a.engine, telemetry.TransportGRPC, a.audit), log)
	checkServer.OnRefused(a.tel.Refused(telemetry.TransportGRPC, a.audit))
	check.Register(a.grpc, checkServer)
	if err := registerExtProc(a); err != nil {
		return nil, err
	}
	a.health = health.NewServer()
	healthpb.RegisterHealthServer(a.grpc, a.health)
	a.setServing(false)

	public := a.httpHandler(o.extraHTTP)
	if a.tel.Tracing() {
		public = otelhttp.NewHandler(public, "extauthz.http",
			otelhttp.WithTracerProvider(a.tel.TracerProvider()),
			otelhttp.WithPropagators(a.tel.Propagator()),
			otelhttp.WithMeterProvider(noopmetric.NewMeterProvider()))
	}
	a.http = &http.Server{
		Handler: public,
		// Every request here is small and quick: an authorization
		// subrequest, a metadata document, a login redirect.
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute, // proxies keep connections to the auth endpoint
		MaxHeaderBytes:    maxHeaderBytes(cfg),
	}
	a.status = newStatusPage(a, o)
	a.background = append(a.background, a.status.run)
	a.admin = &http.Server{
		Handler:           a.adminHandler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		// pprof's CPU profile and trace stream for their "seconds"
		// (refused when not below this).
		WriteTimeout:   5 * time.Minute,
		IdleTimeout:    2 * time.Minute,
		MaxHeaderBytes: 64 << 10,
	}

	if a.lnGRPC = o.lnGRPC; a.lnGRPC == nil {
		if a.lnGRPC, err = net.Listen("tcp", cfg.Listen.GRPC); err != nil {
			return nil, fmt.Errorf("listen.grpc: %w", err)
		}
	}
	if a.lnHTTP = o.lnHTTP; a.lnHTTP == nil && cfg.Listen.HTTP != "off" {
		if a.lnHTTP, err = net.Listen("tcp", cfg.Listen.HTTP); err != nil {
			return nil, fmt.Errorf("listen.http: %w", err)
		}
	}
	if a.lnAdmin = o.lnAdmin; a.lnAdmin == nil && cfg.Listen.Admin != "off" {
		if a.lnAdmin, err = net.Listen("tcp", cfg.Listen.Admin); err != nil {
			return nil, fmt.Errorf("listen.admin: %w", err)
		}
	}
	if o.configPath != "" || o.fromEnv {
		a.reloader = &reloader{app: a, path: o.configPath, levelVar: o.levelVar}
	}
	return a, nil
}

// maxHeaderBytes bounds the request headers of the HTTP listener: room for
// the largest accepted token (tokens.max_bytes) and the rest of a request's
// headers, at least 64 KiB (Envoy's and nginx's own default is below it).
func maxHeaderBytes(cfg *config.Config) int {
	return max(64<<10, cfg.Tokens.MaxBytes+32<<10)
}

func (a *app) closeListeners() {
	for _, ln := range []net.Listener{a.lnGRPC, a.lnHTTP, a.lnAdmin} {
		if ln != nil {
			_ = ln.Close()
		}
	}
}

// ready reports whether every issuer can verify tokens, and which cannot.
func (a *app) ready() (bool, []string) {
	a.issuersMu.Lock()
	missing := notReady(a.issuers)
	a.issuersMu.Unlock()
	return len(missing) == 0, missing
}

func (a *app) setServing(ok bool) {
	st := healthpb.HealthCheckResponse_NOT_SERVING
	if ok {
		st = healthpb.HealthCheckResponse_SERVING
	}
	a.health.SetServingStatus("", st)
	a.health.SetServingStatus(authv3.Authorization_ServiceDesc.ServiceName, st)
}

// run serves until ctx ends, then drains: new Checks are refused while
// in-flight ones finish, within shutdownGrace.
func (a *app) run(ctx context.Context) error {
	// The watermarks Redis holds, before the first Check: a replica that
	// starts after a revocation refuses its tokens from the start. If
	// Redis cannot answer now, they are read as soon as it can.
	if err := a.revoker.Sync(ctx); err != nil {
		a.log.Warn("revocation watermarks not loaded from Redis at start; loaded once it answers", "err", err)
	}
	g, gctx := errgroup.WithContext(ctx)
	a.issuersMu.Lock()
	a.runCtx = gctx
	for _, p := range a.issuers {
		a.startIssuer(p)
	}
	a.issuersMu.Unlock()
	if a.reloader != nil {
		g.Go(func() error { a.reloader.run(gctx); return nil })
	}
	for _, f := range a.background {
		g.Go(func() error { f(gctx); return nil })
	}
	g.Go(func() error { a.watchReadiness(gctx); return nil })
	g.Go(func() error { a.cache.Run(gctx); return nil })
	g.Go(func() error { a.revoker.Run(gctx); return nil })
	g.Go(func() error {
		if err := a.grpc.Serve(a.lnGRPC); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			return fmt.Errorf("grpc: %w", err)
		}
		return nil
	})
	for _, srv := range []struct {
		s  *http.Server
		ln net.Listener
	}{{a.http, a.lnHTTP}, {a.admin, a.lnAdmin}} {
		if srv.ln == nil {
			continue
		}
		g.Go(func() error {
			if err := srv.s.Serve(srv.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		})
	}
	g.Go(func() error {
		<-gctx.Done()
		a.log.Info("shutting down; draining in-flight requests")
		a.health.Shutdown()
		sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
		defer cancel()
		done := make(chan struct{})
		go func() { a.grpc.GracefulStop(); close(done) }()
		select {
		case <-done:
		case <-sctx.Done():
			a.grpc.Stop()
		}
		_ = a.http.Shutdown(sctx)
		_ = a.admin.Shutdown(sctx)
		// The verdicts still queued for the shared tier go out before its
		// client closes (bounded by the grace period).
		if err := a.cache.Close(sctx); err != nil {
			a.log.Warn("shared cache writes dropped at shutdown", "err", err)
		}
		if a.redis != nil {
			_ = a.redis.Close()
		}
		a.stopIssuers()
		if err := a.tel.Shutdown(sctx); err != nil {
			a.log.Warn("flushing telemetry failed", "err", err)
		}
		return nil
	})
	a.log.Info("serving", "grpc", a.lnGRPC.Addr().String(), "http", addrOf(a.lnHTTP), "admin", addrOf(a.lnAdmin))
	return g.Wait()
}

// watchReadiness keeps the gRPC health status in step with readiness:
// Envoy's health checks then stop sending Checks to a replica that could
// only answer 503.
func (a *app) watchReadiness(ctx context.Context) {
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	was := false
	for {
		ok, _ := a.ready()
		if ok != was {
			a.setServing(ok)
			a.log.Info("readiness changed", "ready", ok)
			was = ok
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func addrOf(ln net.Listener) string {
	if ln == nil {
		return "off"
	}
	return ln.Addr().String()
}

// httpHandler serves the public HTTP listener: protected-resource metadata,
// health, and anything extra (the dev issuer).
func (a *app) httpHandler(extra http.Handler) http.Handler {
	mux := http.NewServeMux()
	a.healthRoutes(mux)
	metadataHandler := func(w http.ResponseWriter, r *http.Request) {
		doc, ok := a.engine.Policy().Document(r.Host, r.URL.EscapedPath())
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Access-Control-Allow-Origin", "*")
		if r.Method == http.MethodOptions {
			w.Header().Set("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS")
			w.Header().Set("Access-Control-Allow-Headers", "*")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD, OPTIONS")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "public, max-age=300")
		_, _ = w.Write(doc) //nolint:gosec // a JSON document built from the config, served as application/json
	}
	mux.HandleFunc(metadata.WellKnownPrefix, metadataHandler)
	mux.HandleFunc(metadata.WellKnownPrefix+"/", metadataHandler)
	// The HTTP authorization mode: nginx auth_request, Traefik
	// ForwardAuth, Envoy http_service.
	mux.Handle(httpauthz.Prefix, httpauthz.New(a.tel.Instrument(a.engine, telemetry.TransportHTTP, a.audit),
		httpauthz.Options{MaxBodyBytes: a.cfg.MCP.MaxBodyBytes, Logger: a.log}))
	if a.login != nil {
		// The browser login: routed here by the proxy without authorization.
		for _, p := range []string{a.cfg.Login.LoginPath, a.cfg.Login.CallbackPath, a.cfg.Login.LogoutPath} {
			mux.Handle(p, a.login)
		}
	}
	if a.facade != nil {
		// The OAuth facade's metadata and endpoints, public: MCP clients
		// reach them before they hold a token.
		for _, p := range a.facade.Paths() {
			mux.Handle(p, a.facade)
		}
	}
	if a.ssf != nil {
		// Security Event Tokens pushed by the transmitters (RFC 8935).
		mux.Handle(a.cfg.SSF.Path, a.ssf)
	}
	if extra != nil {
		mux.Handle("/", extra)
	}
	return mux
}

func (a *app) healthRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		ok, missing := a.ready()
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		status := http.StatusOK
		if !ok {
			status = http.StatusServiceUnavailable
		}
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]any{"ready": ok, "issuers_not_ready": nonNil(missing)})
	})
}

// adminHandler serves the admin listener: health, metrics, the status
// page, the cache purge and revocations, and profiling when admin.pprof
// turns it on. It binds to loopback by default; expose it only inside the
// pod (pprof is never on the public listener).
func (a *app) adminHandler() http.Handler {
	mux := http.NewServeMux()
	a.healthRoutes(mux)
	mux.Handle("GET /metrics", a.tel.MetricsHandler())
	mux.Handle("GET /{$}", a.status)
	mux.Handle("GET /status", a.status)
	if a.cfg.Admin.PProf {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	mux.Handle("/cache/purge", a.purgeHandler(a.admTok, a.redis != nil))
	mux.Handle("/revocations", a.revocationsHandler(a.admTok))
	return mux
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// newLogger builds a logger that redacts credentials: JSON by default,
// text for people.
func newLogger(w io.Writer, level, format string) *slog.Logger {
	l, _ := logging.New(w, level, format)
	return l
}
