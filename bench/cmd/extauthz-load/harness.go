package main

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/extauthz/extauthz/internal/redisproc"
)

// pairedTuned is the target name of the floor-tuned server measured
// within the hit scenario, interleaved with each of its runs
// (measureInterleaved).
const pairedTuned = "floor-tuned, interleaved"

// pairedHit is the target name of the hit measured within the dpop,
// redis and hit-audit scenarios, interleaved with their own runs.
const pairedHit = "hit, interleaved"

// pairedSameTokens is the target name of the in-process hit measured within
// the redis scenario: a gateway configured as the Redis-tier one, but whose
// in-process tier holds the scenario's tokens, sent the same requests.
const pairedSameTokens = "hit, same tokens"

// pairedFloorTokens, pairedFloorGet and pairedFloorGoRedis are the redis
// scenario's measured limit: floor-tuned, and floor-tuned with one GET per
// Check (floor-get-server) through rueidis and through go-redis, sent the
// scenario's tokens in the same window.
const (
	pairedFloorTokens  = "floor-tuned, same tokens"
	pairedFloorGet     = "floor-get, same tokens"
	pairedFloorGoRedis = "floor-get go-redis, same tokens"
)

// pairedFloor is the target name of the floor-tuned server measured
// within each full-* scenario, sent the same stream of requests as the
// gateway, interleaved with it.
const pairedFloor = "floor-tuned, same stream"

// pairedVerify is the target name of floor-verify-server measured in the
// window of a full-* run: the limit of a verifying server, measured.
const pairedVerify = "floor-verify, same stream"

// Scenario names.
const (
	scFloor         = "floor"
	scFloorTuned    = "floor-tuned"
	scHit           = "hit"
	scHitAudit      = "hit-audit"
	scHitUpstream   = "hit-upstream"
	scDPoP          = "dpop"
	scRedis         = "redis"
	scRedisShared   = "redis-shared"
	scFullRS256     = "full-rs256"
	scFullES256     = "full-es256"
	scFullEdDSA     = "full-eddsa"
	scIntrospection = "introspection"
	scIntroHit      = "introspection-hit"
	scWS10k         = "ws-10k"
	scWS1m          = "ws-1m"
	scRevocation    = "revocation"
	scExternal      = "external"
)

// allScenarios is "all", in the order they run; ws-1m only with "all+1m".
var allScenarios = []string{scFloor, scFloorTuned, scHit, scHitAudit, scHitUpstream, scDPoP, scRedis, scRedisShared, scFullRS256, scFullES256, scFullEdDSA, scIntrospection, scIntroHit, scWS10k, scRevocation}

var knownScenarios = append(append([]string(nil), allScenarios...), scWS1m, scExternal)

// Options are the harness's settings; the flags map onto them.
type Options struct {
	Server      string // extauthz binary
	Scenarios   []string
	Concurrency []int
	Duration    time.Duration
	MaxRequests int
	Rounds      int
	// Slice is the length of a slice of an interleaved measurement (see
	// measureInterleaved): a scenario and its reference alternate.
	Slice time.Duration

	Addr       string        // external ext_authz server ("" none)
	IssuerAddr string        // where the issuer is served for it
	Wait       time.Duration // how long to wait for it to allow a token

	FullRS256Tokens int // distinct tokens for full-rs256 (and external distinct runs)
	FullES256Tokens int // distinct tokens for full-es256
	FullEdDSATokens int // distinct tokens for full-eddsa
	OpaqueTokens    int // distinct opaque tokens for introspection
	RedisTokens     int // working set of the redis scenario
	WS10kTokens     int // working set of ws-10k
	WS1mTokens      int // working set of ws-1m
	WarmTokens      int // distinct tokens that warm a server before a full-* run

	Revocations      int // session-revoked SETs pushed per revocation run
	RevocationTokens int // working set of the revocation scenario: users, each with a session

	SharedTokens      int // redis-shared: distinct tokens A verifies, then B is sent
	SharedConcurrency int // redis-shared: concurrency of both phases

	IntrospectDelay time.Duration // the local introspection endpoint's fixed service time

	// ProfileDir, unless empty, is where a CPU profile of every measured
	// part on an extauthz serve is written: the servers run with their
	// admin listener on loopback and admin.pprof on.
	ProfileDir string

	// DecodeMessages decodes every answer into Go protobuf messages instead
	// of reading its framing and status (see answer).
	DecodeMessages bool

	Self     string    // this executable, re-run as floor-server, floor-tuned-server and jwx-server
	Progress io.Writer // one line per step; nil: none
	Command  string    // the command line, as printed
}

// Report is everything a harness run measured.
type Report struct {
	Machine   Machine
	Command   string
	Opts      Options
	Scenarios []*Scenario
	Procs     []ProcInfo // every process started, all stopped by the end
	Started   time.Time
	Elapsed   time.Duration
	External  string // how to configure the external server, when --addr
	Err       string // why the harness stopped early, if it did
}

// Scenario is one scenario's results.
type Scenario struct {
	Name    string
	Title   string
	Status  string // non-empty: not measured ("skipped: …", "failed: …")
	Notes   []string
	Series  []*Series
	Compare bool // full-*: a table of extauthz relative to jwx-floor
	Elapsed time.Duration
}

// Series is one server's runs in a scenario: by concurrency, one per round.
type Series struct {
	Target string
	Runs   map[int][]*Result
}

// Result is one measured run.
type Result struct {
	Concurrency int
	Requests    int
	Elapsed     time.Duration
	Throughput  float64 // Checks/s
	P50, P90    time.Duration
	P99, P999   time.Duration
	Errors      int
	ErrSample   []string
	WarmErrors  int
	Stop        string  // duration, max-requests, tokens ran out, interrupted
	Slices      int     // the runs it adds up: 1, or an interleaved window's slices of it
	ServerCPU   float64 // µs of server CPU per Check (the gateway's, plus redis-server's if any); < 0 unknown
	// MainCPU and AuxCPU split ServerCPU: the gateway's and redis-server's
	// (only when there is one; < 0 otherwise or unknown).
	MainCPU, AuxCPU float64
	ClientCPU       float64 // µs of this tool's CPU per Check
	PeakRSS         int64   // the gateway's VmHWM; 0 unknown
	RSS             int64   // its VmRSS after the run
	AuxPeakRSS      int64   // redis-server's VmHWM (redis scenario)
	RedisHits       float64 // Redis keyspace hits per Check (redis scenario); < 0 n/a
	RedisMisses     float64
	RedisCmdsRead   float64 // commands redis-server processed per read event: the read batches' size; < 0 n/a
	// Introspections is calls to the introspection endpoint per Check
	// (introspection scenarios); < 0 n/a.
	Introspections float64
	// IntrospectConns is the TCP connections the endpoint accepted per
	// call during the run (how well the gateway reuses them); < 0 n/a.
	IntrospectConns float64
	// Exchanges is the calls to the token endpoint during the measured
	// run, and WarmExchanges during its warm-up (hit-upstream); < 0 n/a.
	Exchanges, WarmExchanges int64
	// Verified is the answers checked in full (pattern.verify) and found
	// right during the measured run.
	Verified int
	// Expected is the refusals pattern.expected expected (revocation: of a
	// token revoked while its Check was in flight); not errors.
	Expected int
	// Revocation is what the revocation scenario's run measured beside
	// the load; nil for the others.
	Revocation *revocationRun
	// Shared is what the redis-shared scenario read from Redis and the
	// replicas' metrics; nil for the others.
	Shared *sharedRun
	// OutputLines and OutputBytes are what the server wrote to its
	// stdout and stderr per Check during the measured part, when the
	// tool drains them (hit-audit); < 0 n/a.
	OutputLines, OutputBytes float64
	// RawVerify is the CPU µs of one raw signature check in this tool,
	// timed right before the run (dpop: ecdsa.VerifyASN1; full-*: the
	// scenario's algorithm, see rawVerifyCPU); < 0 n/a.
	RawVerify float64
	// The machine during the run, in cores (< 0 unknown): idle, the CPU of
	// other processes (a lower bound: processes that ended during the run
	// are missed), and steal (time a hypervisor gave to other guests).
	IdleCores, OtherCores, Steal float64
}

func (s *Scenario) series(target string) *Series {
	for _, x := range s.Series {
		if x.Target == target {
			return x
		}
	}
	x := &Series{Target: target, Runs: map[int][]*Result{}}
	s.Series = append(s.Series, x)
	return x
}

func (s *Scenario) note(format string, args ...any) {
	n := fmt.Sprintf(format, args...)
	for _, have := range s.Notes {
		if have == n {
			return
		}
	}
	s.Notes = append(s.Notes, n)
}

// harness holds what lives for a whole Run.
type harness struct {
	o       Options
	dir     string
	reg     *procs
	rs, es  *issuer
	ed      *issuer // EdDSA, for full-eddsa only
	ext     *issuer // served on IssuerAddr for --addr
	in      *introspectionServer
	ex      *exchangeServer // hit-upstream's token endpoint
	dp      *dpopClient     // dpop's client: its key, bound token and proofs
	tr      *transmitter    // revocation's Shared Signals transmitter
	opaque  []byte          // the request of introspection-hit's one opaque token
	hitTok  string
	hitReq  []byte
	hitLen  int
	sets    map[string]*tokenSet
	lat     []time.Duration
	clk     float64 // clock ticks per second
	haveRed bool

	// revTokens is revocation's working set, with each token's session.
	revTokens *revocationTokens

	// profiles counts the profiles written under each name (--profile).
	profiles map[string]int
}

func (h *harness) progress(format string, args ...any) {
	if h.o.Progress != nil {
		fmt.Fprintf(h.o.Progress, "extauthz-load: "+format+"\n", args...)
	}
}

// needsServer reports whether any scenario runs extauthz serve.
func needsServer(scs []string) bool {
	for _, s := range scs {
		switch s {
		case scHit, scHitAudit, scHitUpstream, scDPoP, scRedis, scRedisShared, scFullRS256, scFullES256, scFullEdDSA, scIntrospection, scIntroHit, scWS10k, scWS1m, scRevocation:
			return true
		}
	}
	return false
}

// Validate checks the options and fills the defaults of those left zero.
func (o *Options) Validate() error {
	if len(o.Scenarios) == 0 {
		return errors.New("no scenarios")
	}
	for _, s := range o.Scenarios {
		if s == "jwx-floor" {
			return errors.New(`jwx-floor is not run alone: it is measured within full-rs256, full-es256 and full-eddsa, on the same tokens as extauthz`)
		}
		if !contains(knownScenarios, s) {
			return fmt.Errorf("unknown scenario %q (known: %s, all, all+1m)", s, strings.Join(knownScenarios, ", "))
		}
	}
	if o.ProfileDir != "" {
		if fi, err := os.Stat(o.ProfileDir); err != nil || !fi.IsDir() {
			return fmt.Errorf("--profile: %q is not an existing directory", o.ProfileDir)
		}
	}
	if contains(o.Scenarios, scExternal) && o.Addr == "" {
		return errors.New(`scenario "external" needs --addr HOST:PORT`)
	}
	if o.Addr != "" {
		if err := requireLoopback(o.Addr); err != nil {
			return fmt.Errorf("--addr: %w", err)
		}
		if o.IssuerAddr == "" {
			o.IssuerAddr = "127.0.0.1:18443"
		}
		if err := requireLoopback(o.IssuerAddr); err != nil {
			return fmt.Errorf("--issuer-addr: %w", err)
		}
	}
	if len(o.Concurrency) == 0 {
		return errors.New("--concurrency: empty")
	}
	for _, c := range o.Concurrency {
		if c < 1 || c > 4096 {
			return fmt.Errorf("--concurrency: %d is not in 1..4096", c)
		}
	}
	if o.Duration <= 0 || o.Duration > time.Hour {
		return fmt.Errorf("--duration: %v is not in (0, 1h]", o.Duration)
	}
	if o.MaxRequests < 1 || o.MaxRequests > 50_000_000 {
		return fmt.Errorf("--max-requests: %d is not in 1..50,000,000", o.MaxRequests)
	}
	if o.Rounds < 1 || o.Rounds > 100 {
		return fmt.Errorf("--rounds: %d is not in 1..100", o.Rounds)
	}
	if o.Slice == 0 {
		o.Slice = 250 * time.Millisecond
	}
	if o.Slice < 10*time.Millisecond || o.Slice > time.Minute {
		return fmt.Errorf("--slice: %v is not in [10ms, 1m]", o.Slice)
	}
	if o.IntrospectDelay < 0 || o.IntrospectDelay > 5*time.Second {
		return fmt.Errorf("--introspect-delay: %v is not in [0, 5s]", o.IntrospectDelay)
	}
	def := func(p *int, v int) {
		if *p <= 0 {
			*p = v
		}
	}
	def(&o.FullRS256Tokens, 20_000)
	def(&o.FullES256Tokens, 50_000)
	def(&o.FullEdDSATokens, 50_000)
	def(&o.SharedTokens, 20_000)
	def(&o.SharedConcurrency, 64)
	if o.SharedTokens > 1_000_000 {
		return fmt.Errorf("--shared-tokens: %d is not in 1..1,000,000", o.SharedTokens)
	}
	if o.SharedConcurrency > 4096 {
		return fmt.Errorf("--shared-concurrency: %d is not in 1..4096", o.SharedConcurrency)
	}
	def(&o.OpaqueTokens, 200_000)
	def(&o.RedisTokens, 2_000)
	def(&o.WS10kTokens, 10_000)
	def(&o.WS1mTokens, 1_000_000)
	def(&o.WarmTokens, 200)
	def(&o.Revocations, 200)
	def(&o.RevocationTokens, 5_000)
	if o.Revocations > 10_000 {
		return fmt.Errorf("--revocations: %d is not in 1..10,000", o.Revocations)
	}
	if 2*o.Revocations > o.RevocationTokens {
		return fmt.Errorf("--revocation-tokens: %d tokens for %d revocations: at least twice as many are needed, so that the load keeps most of its working set", o.RevocationTokens, o.Revocations)
	}
	if o.Wait <= 0 {
		o.Wait = 2 * time.Minute
	}
	if needsServer(o.Scenarios) {
		if o.Server == "" {
			o.Server = "bin/extauthz"
		}
		if st, err := os.Stat(o.Server); err != nil || st.IsDir() {
			return fmt.Errorf("server binary %s not found: build it first with `make build` "+
				"(go build -o bin/extauthz ./cmd/extauthz), or pass --server PATH", o.Server)
		}
	}
	if o.Self == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("finding this executable (to run the floor server): %w", err)
		}
		o.Self = exe
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Run runs the matrix and returns what it measured. It stops every process
// it started before returning, also when ctx is cancelled; the Report is
// complete as far as it got.
func Run(ctx context.Context, o Options) (*Report, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	// The floor is what every other figure is relative to.
	if !contains(o.Scenarios, scFloor) {
		o.Scenarios = append([]string{scFloor}, o.Scenarios...)
	}
	rep := &Report{Command: o.Command, Opts: o, Started: time.Now()}
	srvPath := ""
	if needsServer(o.Scenarios) {
		srvPath = o.Server
	}
	rep.Machine = machineInfo(srvPath)
	h := &harness{o: o, reg: &procs{}, sets: map[string]*tokenSet{}, clk: float64(rep.Machine.ClockTick)}
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		h.progress("no /proc: server CPU and memory will not be reported")
	}
	var err error
	if h.dir, err = os.MkdirTemp("", "extauthz-load-"); err != nil {
		return nil, err
	}
	defer func() {
		h.reg.stopAll()
		rep.Procs = h.reg.list()
		for _, iss := range []*issuer{h.rs, h.es, h.ed, h.ext} {
			if iss != nil {
				iss.close()
			}
		}
		if h.in != nil {
			h.in.close()
		}
		if h.ex != nil {
			h.ex.close()
		}
		if h.tr != nil {
			h.tr.close()
		}
		_ = os.RemoveAll(h.dir)
		rep.Machine.LoadEnd = loadAvg()
		rep.Elapsed = time.Since(rep.Started)
	}()
	if contains(o.Scenarios, scRedis) || contains(o.Scenarios, scRevocation) || contains(o.Scenarios, scRedisShared) {
		if rv := redisproc.Version(""); rv != "" {
			h.haveRed = true
			rep.Machine.Redis = rv
		}
	}

	h.progress("starting the issuers (RS256, ES256) on loopback")
	if h.rs, err = startIssuer("RS256"); err != nil {
		return rep, err
	}
	if h.es, err = startIssuer("ES256"); err != nil {
		return rep, err
	}
	if contains(o.Scenarios, scFullEdDSA) {
		h.progress("starting the EdDSA (Ed25519) issuer on loopback")
		if h.ed, err = startIssuer("EdDSA"); err != nil {
			return rep, err
		}
	}
	if o.Addr != "" {
		if h.ext, err = serveIssuerAt(o.IssuerAddr); err != nil {
			return rep, err
		}
		rep.External = externalHowTo(h.ext, o.Addr)
		h.progress("%s", rep.External)
	}
	tok, err := mintToken(h.rs)
	if err == nil {
		h.hitReq, err = buildRequest(tok)
	}
	if err != nil {
		return rep, err
	}
	h.hitTok, h.hitLen = tok, len(tok)
	if contains(o.Scenarios, scIntrospection) || contains(o.Scenarios, scIntroHit) {
		h.progress("starting the introspection endpoint on loopback (service delay %v)", o.IntrospectDelay)
		if h.in, err = startIntrospection(h.dir, o.IntrospectDelay); err != nil {
			return rep, fmt.Errorf("introspection endpoint: %w", err)
		}
		if h.opaque, err = buildRequest(h.in.mint()); err != nil {
			return rep, err
		}
	}

	if contains(o.Scenarios, scHitUpstream) {
		h.progress("starting the RFC 8693 token endpoint on loopback")
		if h.ex, err = startExchange(h.dir); err != nil {
			return rep, fmt.Errorf("token endpoint: %w", err)
		}
	}

	if contains(o.Scenarios, scRevocation) {
		h.progress("starting the Shared Signals transmitter on loopback")
		if h.tr, err = startTransmitter(); err != nil {
			return rep, fmt.Errorf("transmitter: %w", err)
		}
	}

	if contains(o.Scenarios, scDPoP) {
		if h.dp, err = newDPoPClient(h.rs); err != nil {
			return rep, fmt.Errorf("dpop client: %w", err)
		}
		// A proof is signed before its run starts and must still be
		// fresh (iat within dpop.max_age, 60 s by default) at its end:
		// the run is interleaved with a hit's, twice --duration, with
		// raw verifies timed between (measureInterleaved).
		if 2*o.Duration+30*time.Second > time.Minute {
			h.dp.maxAge = (2*o.Duration + time.Minute).Round(time.Second)
		}
	}

	scs := map[string]*Scenario{}
	for _, name := range o.Scenarios {
		sc := &Scenario{Name: name, Title: scenarioTitle(name, h)}
		scs[name] = sc
		rep.Scenarios = append(rep.Scenarios, sc)
	}
	for round := 1; round <= o.Rounds; round++ {
		for _, name := range o.Scenarios {
			if ctx.Err() != nil {
				rep.Err = "interrupted"
				return rep, nil
			}
			sc := scs[name]
			if sc.Status != "" {
				continue // skipped, unavailable or failed in an earlier round
			}
			t0 := time.Now()
			h.progress("round %d/%d: scenario %s", round, o.Rounds, name)
			if err := h.scenario(ctx, sc, round); err != nil {
				if ctx.Err() != nil {
					rep.Err = "interrupted"
					sc.Elapsed += time.Since(t0)
					return rep, nil
				}
				sc.Status = "failed: " + err.Error()
				h.progress("scenario %s failed: %v", name, err)
			}
			sc.Elapsed += time.Since(t0)
		}
	}
	return rep, nil
}

func scenarioTitle(name string, h *harness) string {
	switch name {
	case scFloor:
		return "floor — an always-allow ext_authz server (default grpc.NewServer()): the cost of gRPC alone"
	case scFloorTuned:
		return "floor-tuned — the same always-allow server with the gateway's gRPC server options (stream workers, keepalive, bounds) and GC headroom"
	case scHit:
		return fmt.Sprintf("hit — extauthz serve, one RS256 token (%d bytes), warmed: in-process cache hits, audit lines off (log.audit.enabled false)", h.hitLen)
	case scHitAudit:
		return fmt.Sprintf("hit-audit — hit with the default audit setting (log.audit.enabled true, allow_sample_rate 1.0, log.level info): an audit line per Check, drained by this tool through a pipe (%d-byte token)", h.hitLen)
	case scRedisShared:
		return fmt.Sprintf("redis-shared — replicas A and B sharing their own redis-server: A verifies %s never-seen RS256 tokens at c=%d, then B (fresh) is sent the same tokens: how much of what A verified B finds in Redis", thousands(h.o.SharedTokens), h.o.SharedConcurrency)
	case scHitUpstream:
		return fmt.Sprintf("hit-upstream — one RS256 token (%d bytes), warmed, on a resource with upstream_token mode exchange: in-process hits of the verdict and of the minted token", h.hitLen)
	case scDPoP:
		return fmt.Sprintf("dpop — one RS256 token (%d bytes) bound to the client's ES256 key, warmed, on a resource with dpop mode allowed: in-process hits of the verdict, a new ES256 DPoP proof verified on every Check", len(h.dp.token))
	case scRedis:
		return fmt.Sprintf("redis — extauthz serve with its own redis-server, cache.max_entries 1, %s RS256 tokens at random: Redis hits", thousands(h.o.RedisTokens))
	case scFullRS256:
		return fmt.Sprintf("full-rs256 — every Check a never-seen RS256 token (%s pre-minted): full verification", thousands(h.o.FullRS256Tokens))
	case scFullES256:
		return fmt.Sprintf("full-es256 — every Check a never-seen ES256 token (%s pre-minted): full verification", thousands(h.o.FullES256Tokens))
	case scFullEdDSA:
		return fmt.Sprintf("full-eddsa — every Check a never-seen EdDSA (Ed25519) token (%s pre-minted): full verification", thousands(h.o.FullEdDSATokens))
	case scIntrospection:
		return fmt.Sprintf("introspection — every Check a never-seen opaque token (%s pre-minted, %d bytes): one RFC 7662 introspection per Check", thousands(h.o.OpaqueTokens), opaqueTokenLen)
	case scIntroHit:
		return fmt.Sprintf("introspection-hit — one opaque token (%d bytes), warmed: cached introspection results", opaqueTokenLen)
	case scWS10k:
		return fmt.Sprintf("ws-10k — %s distinct RS256 tokens, warmed, at random: cache hits on a large working set", thousands(h.o.WS10kTokens))
	case scWS1m:
		return fmt.Sprintf("ws-1m — %s distinct ES256 tokens, warmed, at random: cache hits and the memory they take", thousands(h.o.WS1mTokens))
	case scRevocation:
		return fmt.Sprintf("revocation — two replicas sharing their own redis-server, B under load on %s RS256 tokens of distinct users and sessions, warmed: a CAEP session-revoked SET pushed to A, the delay until B refuses that session's cached token", thousands(h.o.RevocationTokens))
	case scExternal:
		return "external — the ext_authz server at " + h.o.Addr
	}
	return name
}

// tokens returns a named token set, minting it the first time.
func (h *harness) tokens(ctx context.Context, sc *Scenario, name string, iss *issuer, n int) (*tokenSet, error) {
	return h.tokenSet(sc, name, iss.alg, n, func() (*tokenSet, error) { return mintSet(ctx, iss, n) })
}

// opaqueTokens returns a named set of the introspection endpoint's opaque
// tokens, minting it the first time.
func (h *harness) opaqueTokens(ctx context.Context, sc *Scenario, name string, n int) (*tokenSet, error) {
	return h.tokenSet(sc, name, "opaque", n, func() (*tokenSet, error) { return opaqueSet(ctx, h.in, n) })
}

func (h *harness) tokenSet(sc *Scenario, name, alg string, n int, mint func() (*tokenSet, error)) (*tokenSet, error) {
	if ts := h.sets[name]; ts != nil {
		return ts, nil
	}
	h.progress("minting %d %s tokens (%s) on %d cores", n, alg, name, runtime.NumCPU())
	ts, err := mint()
	if err != nil {
		return nil, fmt.Errorf("minting %s tokens: %w", name, err)
	}
	sc.note("Minted %s %s tokens (%s; %d bytes each, CheckRequest %d bytes) in %s, on all cores, before measuring.",
		thousands(n), alg, name, ts.tokenLen, ts.reqLen, fmtDur(ts.took))
	h.sets[name] = ts
	return ts, nil
}

// server is a running target: its gRPC address and the processes whose CPU
// and memory count.
type server struct {
	addr string
	main int // 0: unknown (an external server not found by port)
	aux  int // redis-server, 0 none
	p    *proc
	// admin is the admin listener's address ("": off); with --profile it
	// serves /debug/pprof/.
	admin string
	// sink, unless nil, receives the server's stdout and stderr through a
	// pipe, counted and discarded (hit-audit).
	sink *drain
}

func (s *server) stop() {
	if s.p != nil {
		s.p.stop()
	}
}

// startExtauthz runs `extauthz serve` with a generated config.
func (h *harness) startExtauthz(ctx context.Context, redisURL string, maxEntries int) (*server, error) {
	return h.startExtauthzWith(ctx, redisURL, maxEntries, nil, nil, nil)
}

// startExtauthzWith runs `extauthz serve` with a generated config whose
// resource also trusts the introspection endpoint in, unless nil, mints
// its upstream credential at ex, unless nil, and accepts DPoP, unless dp
// is nil.
func (h *harness) startExtauthzWith(ctx context.Context, redisURL string, maxEntries int, in *introspectionServer, ex *exchangeServer, dp *dpopClient) (*server, error) {
	return h.startExtauthzSpec(ctx, configSpec{issuers: h.issuers(), in: in, ex: ex, dp: dp, redisURL: redisURL, maxEntries: maxEntries}, nil)
}

// startExtauthzSpec runs `extauthz serve` with the policy spec says (its
// grpc address filled in); unless sink is nil, the server's output goes to
// it through a pipe instead of to a log file.
func (h *harness) startExtauthzSpec(ctx context.Context, spec configSpec, sink *drain) (*server, error) {
	srv, _, err := h.startWithPort(ctx, "extauthz", sink, func(grpcAddr, otherAddr string) configSpec {
		c := spec
		c.grpc = grpcAddr
		if h.o.ProfileDir != "" && c.admin == "" {
			c.admin = otherAddr // --profile: the admin listener serves pprof
		}
		return c
	})
	return srv, err
}

// issuers is the JWT issuers every generated policy trusts: RS256 and
// ES256, and EdDSA when full-eddsa runs.
func (h *harness) issuers() []*issuer {
	if h.ed != nil {
		return []*issuer{h.rs, h.es, h.ed}
	}
	return []*issuer{h.rs, h.es}
}

// extauthzConfig is the policy file for a scenario: one resource trusting
// the JWT issuers and, unless in is nil, the introspection endpoint's
// authorization server as well; unless ex is nil, it mints its upstream
// credential at that token endpoint; unless dp is nil, it accepts DPoP.
func extauthzConfig(grpcAddr string, issuers []*issuer, in *introspectionServer, ex *exchangeServer, dp *dpopClient, redisURL string, maxEntries int) string {
	return serverConfig(configSpec{grpc: grpcAddr, issuers: issuers, in: in, ex: ex, dp: dp, redisURL: redisURL, maxEntries: maxEntries})
}

// configSpec is what a generated policy file says; see extauthzConfig.
type configSpec struct {
	grpc       string
	http       string // the HTTP listener's address; "": off
	issuers    []*issuer
	in         *introspectionServer
	ex         *exchangeServer
	dp         *dpopClient
	tr         *transmitter // unless nil, an ssf section trusting it to revoke issuers[0]'s tokens
	redisURL   string
	maxEntries int
	// admin is the admin listener's address (/metrics); "": off.
	admin string
	// pprof turns admin.pprof on (--profile).
	pprof bool
	// audit: the product's default audit setting (log.audit enabled,
	// allow_sample_rate 1.0, log.level info) instead of audit lines off
	// and level warn.
	audit bool
}

func serverConfig(c configSpec) string {
	grpcAddr, issuers, in, ex, dp, redisURL, maxEntries := c.grpc, c.issuers, c.in, c.ex, c.dp, c.redisURL, c.maxEntries
	httpAddr := c.http
	if httpAddr == "" {
		httpAddr = "off"
	}
	adminAddr := c.admin
	if adminAddr == "" {
		adminAddr = "off"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# generated by extauthz-load\n")
	fmt.Fprintf(&b, "listen: {grpc: %q, http: %q, admin: %q}\n", grpcAddr, httpAddr, adminAddr)
	if c.audit {
		// The product's defaults, spelled out: an audit line for every
		// decision, at level info (hit-audit).
		fmt.Fprintf(&b, "log: {level: info, format: json, audit: {enabled: true, allow_sample_rate: 1.0}}\n")
	} else {
		// Audit lines off: the figures are the decision path's; hit-audit
		// measures the product's default audit setting beside hit.
		fmt.Fprintf(&b, "log: {level: warn, format: json, audit: {enabled: false}}\n")
	}
	fmt.Fprintf(&b, "cache:\n  max_ttl: 1h\n  max_entries: %d\n", maxEntries)
	if redisURL != "" {
		fmt.Fprintf(&b, "  redis_url: %q\n", redisURL)
	}
	if c.pprof {
		b.WriteString("admin: {pprof: true}\n")
	}
	fmt.Fprintf(&b, "resources:\n  - name: mcp\n    resource: %q\n    authorization_servers:\n", resourceURI)
	for _, iss := range issuers {
		fmt.Fprintf(&b, "      - {issuer: %q, jwks_uri: %q}\n", iss.Issuer(), iss.JWKSURL())
	}
	if in != nil {
		b.WriteString(in.config())
	}
	fmt.Fprintf(&b, "    scopes_supported: [%q]\n    required_scopes: [%q]\n", requiredScope, requiredScope)
	if ex != nil {
		b.WriteString(ex.config())
	}
	if dp != nil {
		b.WriteString(dp.config())
	}
	if c.tr != nil {
		b.WriteString(c.tr.config(issuers[0].Issuer()))
	}
	return b.String()
}

// startSub runs this tool as floor-server, floor-tuned-server,
// floor-verify-server or jwx-server, with extra flags after its own.
// floor-tuned-server and floor-verify-server read the policy extauthz serve
// would be given for hit, for its grpc and runtime sections.
func (h *harness) startSub(ctx context.Context, sub string, iss *issuer, extra ...string) (*server, error) {
	p, err := startServer(ctx, h.reg, sub, h.dir, func(addr string) []string {
		argv := []string{h.o.Self, sub, "--listen", addr}
		if sub == floorTunedCmd || sub == floorVerifyCmd || sub == floorGetCmd {
			path := filepath.Join(h.dir, sub+"-"+strings.ReplaceAll(addr, ":", "_")+".yaml")
			_ = os.WriteFile(path, []byte(serverConfig(configSpec{grpc: addr, issuers: h.issuers(), maxEntries: 100_000})), 0o600)
			argv = append(argv, "--config", path)
		}
		if iss != nil {
			argv = append(argv, "--jwks", iss.JWKSURL(), "--issuer", iss.Issuer(), "--audience", resourceURI)
		}
		return append(argv, extra...)
	})
	if err != nil {
		return nil, err
	}
	return &server{addr: p.addr, main: p.pid(), p: p}, nil
}

func dial(addr string) (*grpc.ClientConn, error) {
	return grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
}

// warmDuration is how long a server is driven with the measured pattern
// before the measurement.
func (h *harness) warmDuration() time.Duration {
	return min(time.Second, h.o.Duration/5)
}

// measurement describes one run on one server.
type measurement struct {
	sc      *Scenario
	target  string
	conc    int
	srv     *server
	conn    *grpc.ClientConn
	pass    [][]byte // warm-up: each sent once (a working set, or warm tokens)
	passC   int      // concurrency of that pass (0: conc)
	steady  bool     // warm-up: then drive the measured pattern for warmDuration
	pat     pattern
	isRedis string               // redis-server address, to count its hits
	in      *introspectionServer // introspection endpoint, to count its calls
	ex      *exchangeServer      // token endpoint, to count its calls
	// duration replaces --duration for the measured part (0: --duration).
	duration time.Duration
	// during, when set, runs beside the measured part: started as it
	// starts, told when it will end at the latest; the part ends when
	// during returns (stop says why), and is read only after that.
	during func(ctx context.Context, end time.Time)
	stop   string
}

// measure warms the server as described, then measures one run and files it.
func (h *harness) measure(ctx context.Context, m measurement) (*Result, error) {
	r := newResult(m.conc)
	var ex0, exRefused0 int64
	if m.ex != nil {
		ex0, exRefused0 = m.ex.calls.Load(), m.ex.refused.Load()
	}
	if err := h.warm(ctx, &m, r); err != nil {
		return nil, err
	}
	var inactive0, refused0 int64
	if m.in != nil {
		inactive0, refused0 = m.in.inactive.Load(), m.in.refused.Load()
	}
	dur := h.measuredDuration(&m)
	var (
		stop       chan struct{}
		duringCtx  context.Context
		duringStop context.CancelFunc
	)
	if m.during != nil {
		stop = make(chan struct{})
		duringCtx, duringStop = context.WithCancel(ctx)
		defer duringStop()
	}
	var r0, r1 reading
	r0.redis(&m)
	var profiled chan error
	h.progress("%s: %s c=%d: measuring for up to %v", m.sc.Name, m.target, m.conc, dur)
	res := h.driveUntil(ctx, m.conn, m.conc, dur, h.o.MaxRequests, m.pat,
		func() {
			profiled = h.startProfile(ctx, &m, dur)
			r0.take(&m)
			if m.during != nil {
				end := time.Now().Add(dur)
				go func() {
					defer close(stop)
					m.during(duringCtx, end)
				}()
			}
		},
		func() {
			if m.during != nil {
				duringStop()
				<-stop
			}
			r1.take(&m)
		}, stop, m.stop)
	r1.redis(&m)
	h.endProfile(&m, profiled)
	h.file(&m, r, res, &r0, &r1, res.elapsed)
	if m.in != nil {
		if n := m.in.inactive.Load() - inactive0; n > 0 {
			m.sc.note("%s c=%d: the introspection endpoint answered active:false %d times", m.target, m.conc, n)
		}
		if n := m.in.refused.Load() - refused0; n > 0 {
			m.sc.note("%s c=%d: the introspection endpoint refused %d calls (client credentials or request)", m.target, m.conc, n)
		}
	}
	if m.ex != nil {
		r.WarmExchanges, r.Exchanges = r0.ex-ex0, r1.ex-r0.ex
		m.sc.note("%s c=%d: %d token exchange(s) during the warm-up, **%d during the measured part**.", m.target, m.conc, r.WarmExchanges, r.Exchanges)
		if n := m.ex.tokenLen.Load(); n > 0 {
			m.sc.note("The minted token is %d bytes: the authorization header set upstream is %d.", n, n+int64(len("Bearer ")))
		}
		if n := m.ex.refused.Load() - exRefused0; n > 0 {
			m.sc.note("%s c=%d: the token endpoint refused %d calls (client credentials or request)", m.target, m.conc, n)
		}
	}
	return r, nil
}

// newResult is a Result with every optional figure unknown.
func newResult(conc int) *Result {
	return &Result{Concurrency: conc, ServerCPU: -1, MainCPU: -1, AuxCPU: -1, OutputLines: -1, OutputBytes: -1, RedisHits: -1, RedisMisses: -1, RedisCmdsRead: -1, Introspections: -1, IntrospectConns: -1,
		Exchanges: -1, WarmExchanges: -1, RawVerify: -1, IdleCores: -1, OtherCores: -1, Steal: -1}
}

// measuredDuration is how long m's measured part runs.
func (h *harness) measuredDuration(m *measurement) time.Duration {
	if m.duration > 0 {
		return m.duration
	}
	return h.o.Duration
}

// warm runs m's warm-up (its pass, then its steady load), adding its
// errors to r.
func (h *harness) warm(ctx context.Context, m *measurement, r *Result) error {
	warmErr := func(res loadResult) {
		r.WarmErrors += res.errors
		for _, e := range res.errSample {
			m.sc.note("%s c=%d warm-up error: %s", m.target, m.conc, e)
		}
	}
	if len(m.pass) > 0 {
		c := m.passC
		if c == 0 {
			c = m.conc
		}
		res := h.drive(ctx, m.conn, c, 30*time.Minute, len(m.pass), pattern{reqs: m.pass, distinct: true}, nil, nil)
		warmErr(res)
		if res.requests < len(m.pass) && ctx.Err() == nil {
			return fmt.Errorf("warm-up pass: %d of %d requests sent (%s)", res.requests, len(m.pass), res.stop)
		}
	}
	if m.steady {
		warmErr(h.drive(ctx, m.conn, m.conc, h.warmDuration(), h.o.MaxRequests, m.pat, nil, nil))
	}
	return ctx.Err()
}

// reading is what a measurement reads of its server, its helpers and the
// machine just before and just after its measured part.
type reading struct {
	cpu, aux     uint64 // the server's CPU ticks (main and aux), and aux's alone
	cpuOK        bool
	idle, steal  uint64 // the machine's
	idleOK       bool
	procs        procSample
	out          [2]int64 // the sink's lines and bytes
	calls, conns int64    // the introspection endpoint's
	ex           int64    // the token endpoint's calls
	hits, misses int64    // redis-server's keyspace hits and misses
	cmds, reads  int64    // redis-server's commands processed and read events
}

// take reads everything but Redis's counters (redis): those are read
// outside the measured part, as asking costs redis-server's CPU.
func (g *reading) take(m *measurement) {
	var err error
	g.idle, g.steal, err = machineIdle()
	g.idleOK = err == nil
	g.procs = sampleProcs()
	g.cpuOK = m.srv.main != 0
	g.cpu = 0
	for _, pid := range []int{m.srv.main, m.srv.aux} {
		if pid == 0 {
			continue
		}
		t, err := procTimes(pid)
		if err != nil {
			g.cpuOK = false
		}
		g.cpu += t
		if pid == m.srv.aux {
			g.aux = t
		}
	}
	if m.srv.sink != nil {
		g.out = m.srv.sink.counts()
	}
	if m.in != nil {
		g.calls, g.conns = m.in.calls.Load(), m.in.conns.Load()
	}
	if m.ex != nil {
		g.ex = m.ex.calls.Load()
	}
}

// redis reads redis-server's keyspace counters, when m counts them.
func (g *reading) redis(m *measurement) {
	if m.isRedis != "" {
		g.hits, g.misses, g.cmds, g.reads = redisStats(m.isRedis)
	}
}

// startProfile starts fetching a CPU profile of m's server over the next
// dur, with --profile; endProfile waits for it.
func (h *harness) startProfile(ctx context.Context, m *measurement, dur time.Duration) chan error {
	if h.o.ProfileDir == "" || m.srv.admin == "" {
		return nil
	}
	profiled := make(chan error, 1)
	go func() { profiled <- h.profile(ctx, *m, dur) }()
	return profiled
}

func (h *harness) endProfile(m *measurement, profiled chan error) {
	if profiled == nil {
		return
	}
	if err := <-profiled; err != nil {
		m.sc.note("%s c=%d: no CPU profile: %v", m.target, m.conc, err)
	}
}

// file fills r from what the client saw (res) and the readings before
// and after the measured part, which lasted window (res.elapsed, or more
// when it was interleaved with another), and files it in m's series.
//
// others are the PIDs of servers measured in the same window, whose CPU
// is no other process's.
func (h *harness) file(m *measurement, r *Result, res loadResult, r0, r1 *reading, window time.Duration, others ...int) {
	r.Requests, r.Elapsed, r.Errors, r.ErrSample, r.Stop = res.requests, res.elapsed, res.errors, res.errSample, res.stop
	r.Verified, r.Expected = res.verified, res.expected
	r.Slices = max(1, res.slices)
	if res.elapsed > 0 {
		r.Throughput = float64(res.requests) / res.elapsed.Seconds()
	}
	r.P50 = percentile(res.sorted, 5000)
	r.P90 = percentile(res.sorted, 9000)
	r.P99 = percentile(res.sorted, 9900)
	r.P999 = percentile(res.sorted, 9990)
	if res.requests > 0 {
		if r0.cpuOK && r1.cpuOK && h.clk > 0 {
			per := func(ticks uint64) float64 { return float64(ticks) / h.clk * 1e6 / float64(res.requests) }
			r.ServerCPU = per(r1.cpu - r0.cpu)
			if m.srv.aux != 0 {
				r.AuxCPU = per(r1.aux - r0.aux)
				r.MainCPU = r.ServerCPU - r.AuxCPU
			} else {
				r.MainCPU = r.ServerCPU
			}
		}
		if m.srv.sink != nil {
			r.OutputLines = float64(r1.out[0]-r0.out[0]) / float64(res.requests)
			r.OutputBytes = float64(r1.out[1]-r0.out[1]) / float64(res.requests)
		}
		r.ClientCPU = float64(res.clientCPU) / h.clk * 1e6 / float64(res.requests)
	}
	if r0.idleOK && r1.idleOK && h.clk > 0 && window > 0 {
		ticks := h.clk * window.Seconds()
		r.IdleCores = float64(r1.idle-r0.idle) / ticks
		r.Steal = float64(r1.steal-r0.steal) / ticks
		r.OtherCores = float64(otherTicks(r0.procs, r1.procs, append([]int{selfPID, m.srv.main, m.srv.aux}, others...)...)) / ticks
	}
	if m.srv.main != 0 {
		r.PeakRSS, r.RSS, _ = procMemory(m.srv.main)
	}
	if m.srv.aux != 0 {
		r.AuxPeakRSS, _, _ = procMemory(m.srv.aux)
	}
	if m.isRedis != "" && res.requests > 0 {
		r.RedisHits = float64(r1.hits-r0.hits) / float64(res.requests)
		r.RedisMisses = float64(r1.misses-r0.misses) / float64(res.requests)
		if r1.reads > r0.reads {
			r.RedisCmdsRead = float64(r1.cmds-r0.cmds) / float64(r1.reads-r0.reads)
		}
	}
	if m.in != nil {
		if res.requests > 0 {
			r.Introspections = float64(r1.calls-r0.calls) / float64(res.requests)
		}
		if r1.calls > r0.calls {
			r.IntrospectConns = float64(r1.conns-r0.conns) / float64(r1.calls-r0.calls)
		}
	}
	for _, e := range res.errSample {
		m.sc.note("%s c=%d error: %s", m.target, m.conc, e)
	}
	if m.srv.p != nil && m.srv.p.exited() {
		m.sc.note("%s exited during the run (%v); its log ends:\n\n```\n%s\n```", m.target, m.srv.p.ExitStatus(), m.srv.p.logTail())
	}
	s := m.sc.series(m.target)
	s.Runs[m.conc] = append(s.Runs[m.conc], r)
	h.progress("%s: %s c=%d: %s Checks in %s (%s): %.0f/s, p50 %s, p99 %s, %d errors",
		m.sc.Name, m.target, m.conc, thousands(r.Requests), fmtDur(r.Elapsed), r.Stop, r.Throughput, fmtLat(r.P50), fmtLat(r.P99), r.Errors)
}

// profile fetches a CPU profile of m's server over the measured part
// (whole seconds: at least dur) from its admin listener and writes it under
// --profile, named after the scenario, the target and the concurrency.
func (h *harness) profile(ctx context.Context, m measurement, dur time.Duration) error {
	secs := int((dur + time.Second - 1) / time.Second)
	ctx, cancel := context.WithTimeout(ctx, dur+30*time.Second)
	defer cancel()
	url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", m.srv.admin, secs)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	base := profileName(m.sc.Name, m.target, m.conc)
	if h.profiles == nil {
		h.profiles = map[string]int{}
	}
	h.profiles[base]++
	path := filepath.Join(h.o.ProfileDir, fmt.Sprintf("%s-%d.pprof", base, h.profiles[base]))
	if err := os.WriteFile(path, body, 0o644); err != nil {
		return err
	}
	h.progress("%s: %s c=%d: CPU profile in %s", m.sc.Name, m.target, m.conc, path)
	return nil
}

// profileName is a file name for a profile of target in scenario sc at
// concurrency conc: letters, digits and dashes only.
func profileName(sc, target string, conc int) string {
	var b strings.Builder
	dash := false
	for _, r := range sc + "-" + target + "-c" + strconv.Itoa(conc) {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
			dash = false
		} else if !dash {
			b.WriteByte('-')
			dash = true
		}
	}
	return strings.Trim(b.String(), "-")
}

// drive runs one load on conn, reusing the latency buffer.
func (h *harness) drive(ctx context.Context, conn *grpc.ClientConn, conc int, d time.Duration, maxReq int, pat pattern, onStart, onEnd func()) loadResult {
	return h.driveUntil(ctx, conn, conc, d, maxReq, pat, onStart, onEnd, nil, "")
}

// driveUntil is drive that also ends when stop, unless nil, is closed.
func (h *harness) driveUntil(ctx context.Context, conn *grpc.ClientConn, conc int, d time.Duration, maxReq int, pat pattern, onStart, onEnd func(), stop <-chan struct{}, reason string) loadResult {
	l := &load{conn: conn, concurrency: conc, duration: d, maxRequests: maxReq, pat: pat, lat: h.lat, onStart: onStart, onEnd: onEnd,
		decodeMessages: h.o.DecodeMessages, stop: stop, stopReason: reason}
	res := l.run(ctx)
	if cap(l.lat) <= 2*h.o.MaxRequests { // keep the buffer unless a huge warm pass grew it
		h.lat = l.lat
	}
	return res
}

func redisStats(addr string) (hits, misses, cmds, reads int64) {
	info, err := redisproc.Info(addr, "stats")
	if err != nil {
		return 0, 0, 0, 0
	}
	n := func(k string) int64 {
		v, _ := strconv.ParseInt(info[k], 10, 64)
		return v
	}
	return n("keyspace_hits"), n("keyspace_misses"), n("total_commands_processed"), n("total_reads_processed")
}

// withServer starts a server, dials it, runs f and stops it again.
func (h *harness) withServer(ctx context.Context, start func() (*server, error), f func(*server, *grpc.ClientConn) error) error {
	srv, err := start()
	if err != nil {
		return err
	}
	defer srv.stop()
	conn, err := dial(srv.addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	return f(srv, conn)
}

// withServers starts two servers, dials both, runs f and stops them
// again (for measureInterleaved).
func (h *harness) withServers(ctx context.Context, start, startRef func() (*server, error), f func(srv, ref *server, conn, refConn *grpc.ClientConn) error) error {
	return h.withServer(ctx, start, func(srv *server, conn *grpc.ClientConn) error {
		return h.withServer(ctx, startRef, func(ref *server, refConn *grpc.ClientConn) error {
			return f(srv, ref, conn, refConn)
		})
	})
}

// scenario runs one round of a scenario: every concurrency.
func (h *harness) scenario(ctx context.Context, sc *Scenario, round int) error {
	hit := pattern{reqs: [][]byte{h.hitReq}}
	switch sc.Name {
	case scIntrospection, scIntroHit:
		return h.introspection(ctx, sc)

	case scHitUpstream:
		return h.hitUpstream(ctx, sc)

	case scDPoP:
		return h.dpopScenario(ctx, sc, round)

	case scRevocation:
		return h.revocationScenario(ctx, sc)

	case scFloor:
		for _, c := range h.o.Concurrency {
			err := h.withServer(ctx, func() (*server, error) { return h.startSub(ctx, floorCmd, nil) },
				func(srv *server, conn *grpc.ClientConn) error {
					_, err := h.measure(ctx, measurement{sc: sc, target: "floor", conc: c, srv: srv, conn: conn, steady: true, pat: hit})
					return err
				})
			if err != nil {
				return err
			}
		}

	case scFloorTuned:
		sc.note("floor-tuned-server reads the policy file extauthz serve gets in hit, defaults included, and serves with the options extauthz serve builds from its grpc section (max_recv_msg_bytes, keepalive, a 64 KiB header list bound, max_concurrent_streams when set, stream_workers) and keeps runtime.gc_headroom_bytes (internal/gctune) as extauthz serve does. It still decodes every request with protobuf (default codec) and answers the same always-allow response as floor: the Check codec and the decision are the gateway's own work, not the floor's.")
		for _, c := range h.o.Concurrency {
			err := h.withServer(ctx, func() (*server, error) { return h.startSub(ctx, floorTunedCmd, nil) },
				func(srv *server, conn *grpc.ClientConn) error {
					_, err := h.measure(ctx, measurement{sc: sc, target: "floor-tuned", conc: c, srv: srv, conn: conn, steady: true, pat: hit})
					return err
				})
			if err != nil {
				return err
			}
		}

	case scHitAudit:
		return h.hitAudit(ctx, sc, hit)

	case scRedisShared:
		return h.redisShared(ctx, sc)

	case scHit:
		sc.note("Audit lines off (log: {level: warn, audit: {enabled: false}}); hit-audit is the same with the default audit setting.")
		sc.note("%s is the floor-tuned server, sent the same request, measured in one window with hit, alternating in slices of %v (--slice): the floor hit is compared with below.", pairedTuned, h.sliceOf(h.o.Duration))
		for _, c := range h.o.Concurrency {
			err := h.withServers(ctx, h.startHit(ctx), func() (*server, error) { return h.startSub(ctx, floorTunedCmd, nil) },
				func(srv, ref *server, conn, refConn *grpc.ClientConn) error {
					_, _, err := h.measureInterleaved(ctx,
						measurement{sc: sc, target: "extauthz serve", conc: c, srv: srv, conn: conn, steady: true, pat: hit},
						measurement{sc: sc, target: pairedTuned, conc: c, srv: ref, conn: refConn, steady: true, pat: hit}, nil)
					return err
				})
			if err != nil {
				return err
			}
		}

	case scRedis:
		if !h.haveRed {
			sc.Status = "skipped: redis-server not installed"
			return nil
		}
		ts, err := h.tokens(ctx, sc, "redis working set", h.rs, h.o.RedisTokens)
		if err != nil {
			return err
		}
		rs, stop, err := h.startRedis(ctx, sc)
		if rs == nil || err != nil {
			return err // nil when skipped: redis-server not installed
		}
		defer stop()
		sc.note("The gateway's own redis-server on a loopback port, started for each round (no persistence); server CPU is the gateway's plus redis-server's; cache.redis.timeout is the default 25ms, so a slow Redis answer becomes a local verification, not an error.")
		h.notePairedHit(sc)
		sc.note("%s is extauthz serve configured as the Redis-tier gateway (the same redis-server) but with cache.max_entries %s, warmed with the scenario's tokens and sent the same requests, in the same window: the in-process hit of these very Checks, which the Redis-tier hit is compared with (the one-token hit's requests stay in the CPU's caches, and their cost differs from the tokens' by more than the Redis tier).", pairedSameTokens, thousands(h.sameTokensEntries()))
		redisTier := func() (*server, error) {
			s, err := h.startExtauthz(ctx, "redis://"+rs.Addr()+"/0", 1)
			if s != nil {
				s.aux = rs.PID()
			}
			return s, err
		}
		// Its CPU is its own: redis-server's, read over the whole window, is the Redis
		// tier's.
		sameTokens := func() (*server, error) {
			return h.startExtauthz(ctx, "redis://"+rs.Addr()+"/0", h.sameTokensEntries())
		}
		// The limit measured: floor-tuned, and floor-tuned with one GET per Check from a
		// redis-server of its own (floor-get-server), so that redis-server's CPU read for the
		// gateway stays the gateway's.
		frs, stopFloorRedis, err := h.startRedis(ctx, sc)
		if frs == nil || err != nil {
			return err
		}
		defer stopFloorRedis()
		sc.note("%s is floor-tuned sent the same requests, and %s is floor-tuned that reads one value from a redis-server of its own for each Check, through rueidis (a client that pipelines concurrent commands on one connection), keyed by the token's last %d characters, with no hashing, decoding or in-process tier: the issue's limit (the in-process hit plus one pipelined GET) measured, all in the same window as the gateway. %s is the same through go-redis (a round trip of its own per GET, on a pooled connection), reading the same redis-server. A token's first sight (the warm-up pass) sets a %d-byte value.", pairedFloorTokens, pairedFloorGet, floorGetKeyChars, pairedFloorGoRedis, floorGetValueBytes)
		floorGet := func() (*server, error) {
			return h.startSub(ctx, floorGetCmd, nil, "--redis", frs.Addr(), "--client", floorGetRueidis)
		}
		floorGoRedis := func() (*server, error) {
			return h.startSub(ctx, floorGetCmd, nil, "--redis", frs.Addr(), "--client", floorGetGoRedis)
		}
		floorTuned := func() (*server, error) { return h.startSub(ctx, floorTunedCmd, nil) }
		for i, c := range h.o.Concurrency {
			err := h.withServers(ctx, redisTier, h.startHit(ctx), func(srv, ref *server, conn, refConn *grpc.ClientConn) error {
				return h.withServers(ctx, sameTokens, floorTuned, func(same, floor *server, sameConn, floorConn *grpc.ClientConn) error {
					return h.withServers(ctx, floorGet, floorGoRedis, func(fg, fgr *server, fgConn, fgrConn *grpc.ClientConn) error {
						m := measurement{sc: sc, target: "extauthz serve + redis", conc: c, srv: srv, conn: conn, steady: true,
							pat: pattern{reqs: ts.reqs}, isRedis: rs.Addr()}
						if i == 0 {
							m.pass = ts.reqs // warmed once: every verdict into Redis
						}
						local := measurement{sc: sc, target: pairedSameTokens, conc: c, srv: same, conn: sameConn, steady: true,
							pat: pattern{reqs: ts.reqs}, pass: ts.reqs}
						fl := measurement{sc: sc, target: pairedFloorTokens, conc: c, srv: floor, conn: floorConn, steady: true,
							pat: pattern{reqs: ts.reqs}}
						get := measurement{sc: sc, target: pairedFloorGet, conc: c, srv: fg, conn: fgConn, steady: true,
							pat: pattern{reqs: ts.reqs}}
						goRedis := measurement{sc: sc, target: pairedFloorGoRedis, conc: c, srv: fgr, conn: fgrConn, steady: true,
							pat: pattern{reqs: ts.reqs}}
						if i == 0 {
							get.pass = ts.reqs // every token's value into its Redis
						}
						_, err := h.measureInterleavedN(ctx, []measurement{m, h.hitRef(sc, c, ref, refConn), local, fl, get, goRedis}, nil)
						return err
					})
				})
			})
			if err != nil {
				return err
			}
		}

	case scFullRS256, scFullES256, scFullEdDSA:
		iss, n := h.rs, h.o.FullRS256Tokens
		switch sc.Name {
		case scFullES256:
			iss, n = h.es, h.o.FullES256Tokens
		case scFullEdDSA:
			iss, n = h.ed, h.o.FullEdDSATokens
		}
		warm, err := h.tokens(ctx, sc, "warm-up "+iss.alg, iss, h.o.WarmTokens)
		if err != nil {
			return err
		}
		ts, err := h.tokens(ctx, sc, sc.Name, iss, n)
		if err != nil {
			return err
		}
		key, err := x509.MarshalPKIXPublicKey(iss.dev.PublicKey(iss.ActiveKID()))
		if err != nil {
			return err
		}
		verifyArgs := []string{"--verify-alg", iss.alg, "--verify-key", base64.StdEncoding.EncodeToString(key)}
		sc.Compare = true
		sc.note("Each run starts a fresh server, warms it with %d other new tokens, then sends the same stream of never-seen tokens, each once; a run also ends when they run out. %s is the floor-tuned server and %s floor-tuned checking each token's signature and nothing else (floor-verify-server), each sent the same requests as the gateway in one window with it, alternating in slices of %v (--slice): the floor of the limit below, and the limit measured. The raw verify is timed up to %d times between the slices, while no server is sent anything; the figure is the median.", len(warm.reqs), pairedFloor, pairedVerify, h.sliceOf(h.o.Duration), maxBetween)
		for _, c := range h.o.Concurrency {
			err := h.withServers(ctx, func() (*server, error) { return h.startExtauthz(ctx, "", 100_000) },
				func() (*server, error) { return h.startSub(ctx, floorTunedCmd, nil) },
				func(srv, ref *server, conn, refConn *grpc.ClientConn) error {
					return h.withServer(ctx, func() (*server, error) { return h.startSub(ctx, floorVerifyCmd, nil, verifyArgs...) },
						func(fv *server, fvConn *grpc.ClientConn) error {
							// The limit's other half: one raw signature check,
							// timed between the slices (see rawVerifyCPU).
							var raws []float64
							timeRaw := func() error {
								raw, err := rawVerifyCPU(iss.alg, rawVerifyRounds)
								raws = append(raws, raw)
								return err
							}
							pat := pattern{reqs: ts.reqs, distinct: true}
							rs, err := h.measureInterleavedN(ctx, []measurement{
								{sc: sc, target: "extauthz serve", conc: c, srv: srv, conn: conn, pass: warm.reqs, pat: pat},
								{sc: sc, target: pairedFloor, conc: c, srv: ref, conn: refConn, pass: warm.reqs, pat: pattern{reqs: ts.reqs}},
								{sc: sc, target: pairedVerify, conc: c, srv: fv, conn: fvConn, pass: warm.reqs, pat: pattern{reqs: ts.reqs}},
							}, timeRaw)
							if rs != nil && len(raws) > 0 {
								rs[0].RawVerify = median(raws)
							}
							return err
						})
				})
			if err != nil {
				return err
			}
			err = h.withServer(ctx, func() (*server, error) { return h.startSub(ctx, jwxCmd, iss) },
				func(srv *server, conn *grpc.ClientConn) error {
					_, err := h.measure(ctx, measurement{sc: sc, target: "jwx-floor", conc: c, srv: srv, conn: conn,
						pass: warm.reqs, pat: pattern{reqs: ts.reqs, distinct: true}})
					return err
				})
			if err != nil {
				return err
			}
		}

	case scWS10k:
		ts, err := h.tokens(ctx, sc, "ws-10k working set", h.rs, h.o.WS10kTokens)
		if err != nil {
			return err
		}
		sc.note("Each run starts a fresh server and warms it with one pass over the working set (at concurrency max(c, 16)).")
		for _, c := range h.o.Concurrency {
			err := h.withServer(ctx, func() (*server, error) { return h.startExtauthz(ctx, "", 100_000) },
				func(srv *server, conn *grpc.ClientConn) error {
					_, err := h.measure(ctx, measurement{sc: sc, target: "extauthz serve", conc: c, srv: srv, conn: conn,
						pass: ts.reqs, passC: max(c, 16), steady: true, pat: pattern{reqs: ts.reqs}})
					return err
				})
			if err != nil {
				return err
			}
		}

	case scWS1m:
		return h.ws1m(ctx, sc)

	case scExternal:
		return h.external(ctx, sc)
	}
	return nil
}

// introspection runs introspection (a never-seen opaque token on every
// Check: one call to the endpoint each) or introspection-hit (one opaque
// token: the endpoint is called once, then the cache answers). Each run
// starts a fresh server, as full-* do.
func (h *harness) introspection(ctx context.Context, sc *Scenario) error {
	sc.note("The introspection endpoint runs inside this tool (net/http on %s, a fixed service delay of %v before each answer, --introspect-delay): it checks the gateway's client_secret_basic credentials on every call and recognises its own opaque tokens by an HMAC tag, without a table; its CPU counts as the client's, not the server's. The gateway's introspection.timeout is %v, cache_ttl 60s; the resource also trusts the RS256 and ES256 issuers (jwt mode), as in the other scenarios.",
		h.in.issuer, h.in.delay, introspectionTimeout(h.in.delay))
	start := func() (*server, error) { return h.startExtauthzWith(ctx, "", 100_000, h.in, nil, nil) }
	if sc.Name == scIntroHit {
		for _, c := range h.o.Concurrency {
			err := h.withServer(ctx, start, func(srv *server, conn *grpc.ClientConn) error {
				_, err := h.measure(ctx, measurement{sc: sc, target: "extauthz serve", conc: c, srv: srv, conn: conn, steady: true,
					pat: pattern{reqs: [][]byte{h.opaque}}, in: h.in})
				return err
			})
			if err != nil {
				return err
			}
		}
		return nil
	}
	warm, err := h.opaqueTokens(ctx, sc, "warm-up opaque", h.o.WarmTokens)
	if err != nil {
		return err
	}
	ts, err := h.opaqueTokens(ctx, sc, sc.Name, h.o.OpaqueTokens)
	if err != nil {
		return err
	}
	sc.note("Each run starts a fresh server, warms it with %d other new opaque tokens, then sends the same stream of never-seen opaque tokens, each once; a run also ends when they run out (--opaque-tokens).", len(warm.reqs))
	for _, c := range h.o.Concurrency {
		err := h.withServer(ctx, start, func(srv *server, conn *grpc.ClientConn) error {
			_, err := h.measure(ctx, measurement{sc: sc, target: "extauthz serve", conc: c, srv: srv, conn: conn,
				pass: warm.reqs, pat: pattern{reqs: ts.reqs, distinct: true}, in: h.in})
			return err
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// hitUpstream runs hit on a resource whose allowed requests carry an
// upstream credential minted by RFC 8693 exchange at the local token
// endpoint. Each run starts a fresh server (in-process tiers only, as for
// hit), whose warm-up mints the credential of every token of the working
// set; the measured part is then hits of both caches, and the token
// endpoint's calls during it are counted.
func (h *harness) hitUpstream(ctx context.Context, sc *Scenario) error {
	sc.note("The token endpoint runs inside this tool (net/http on %s): it checks the gateway's client_secret_basic credentials on every call and answers each RFC 8693 exchange with an ES256 JWT for audience %s (token_type Bearer, issued_token_type access_token, expires_in %s), signed by a key it serves at the configured jwks_uri; its CPU counts as the client's. The resource's upstream_token sets mode exchange, issuer, token_endpoint and jwks_uri (nothing discovered); no Redis: the verdict and the minted token are both in-process hits.",
		h.ex.issuer, upstreamAudience, fmtDur(exchangeTTL))
	sc.note("Besides its status, each caller's first answer of every run and every %dth after it is decoded in full and checked: exactly one authorization header set upstream (OVERWRITE_IF_EXISTS_OR_ADD, not removed), Bearer, a token the endpoint minted, not the client's.", verifyEvery)
	verify := h.ex.answerCheck(h.hitTok)
	working := [][]byte{h.hitReq} // hit's working set: one token
	for _, c := range h.o.Concurrency {
		err := h.withServer(ctx, func() (*server, error) { return h.startExtauthzWith(ctx, "", 100_000, nil, h.ex, nil) },
			func(srv *server, conn *grpc.ClientConn) error {
				_, err := h.measure(ctx, measurement{sc: sc, target: "extauthz serve", conc: c, srv: srv, conn: conn,
					pass: working, steady: true, pat: pattern{reqs: working, verify: verify}, ex: h.ex})
				return err
			})
		if err != nil {
			return err
		}
	}
	return nil
}

// ws1m keeps one server for every concurrency: warming a million tokens
// takes minutes.
func (h *harness) ws1m(ctx context.Context, sc *Scenario) error {
	// Say why not RS256, with this machine's own RS256 signing rate.
	const probe = 20
	t0 := time.Now()
	for range probe {
		if _, err := mintToken(h.rs); err != nil {
			return err
		}
	}
	perRS := time.Since(t0) / probe
	sc.note("ES256, not RS256: an RS256 token takes %s to mint here (2048-bit RSA signing), so %s of them would take about %s on all %d cores before the warm-up even starts; ES256 signs in tens of microseconds.",
		fmtLat(perRS), thousands(h.o.WS1mTokens), fmtDur(perRS*time.Duration(h.o.WS1mTokens)/time.Duration(max(1, runtime.NumCPU()))), runtime.NumCPU())
	ts, err := h.tokens(ctx, sc, "ws-1m working set", h.es, h.o.WS1mTokens)
	if err != nil {
		return err
	}
	return h.withServer(ctx, func() (*server, error) { return h.startExtauthz(ctx, "", h.o.WS1mTokens+h.o.WS1mTokens/10) },
		func(srv *server, conn *grpc.ClientConn) error {
			_, before, err := procMemory(srv.main)
			if err != nil {
				return err
			}
			h.progress("ws-1m: warming with one pass over %d tokens (RSS before: %s)", len(ts.reqs), fmtBytes(before))
			t0 := time.Now()
			warm := &load{conn: conn, concurrency: 64, duration: 30 * time.Minute, maxRequests: len(ts.reqs),
				pat: pattern{reqs: ts.reqs, distinct: true}, lat: h.lat, decodeMessages: h.o.DecodeMessages,
				tick: func(n int) {
					h.progress("ws-1m: warm-up: %s of %s Checks sent after %s", thousands(n), thousands(len(ts.reqs)), fmtDur(time.Since(t0)))
				}}
			res := warm.run(ctx)
			took := time.Since(t0)
			if ctx.Err() != nil {
				return ctx.Err()
			}
			_, after, err := procMemory(srv.main)
			if err != nil {
				return err
			}
			for _, e := range res.errSample {
				sc.note("warm-up error: %s", e)
			}
			sc.note("Warm-up: one pass over %s tokens at concurrency 64 in %s (%.0f Checks/s, every one a full ES256 verification), %d errors.",
				thousands(res.requests), fmtDur(took), float64(res.requests)/took.Seconds(), res.errors)
			sc.note("Server RSS before warm-up %s, after %s: **%s bytes of RSS per cached token** ((after − before) / %s). RSS also holds garbage not yet collected and heap not yet returned to the OS, so this may overstate what the entries themselves need.",
				fmtBytes(before), fmtBytes(after), thousands(int((after-before)/int64(h.o.WS1mTokens))), thousands(h.o.WS1mTokens))
			if res.requests < len(ts.reqs) {
				return fmt.Errorf("warm-up pass: %d of %d requests sent (%s)", res.requests, len(ts.reqs), res.stop)
			}
			for i, c := range h.o.Concurrency {
				r, err := h.measure(ctx, measurement{sc: sc, target: "extauthz serve", conc: c, srv: srv, conn: conn, steady: true, pat: pattern{reqs: ts.reqs}})
				if err != nil {
					return err
				}
				if i == 0 {
					r.WarmErrors += res.errors // the big pass, counted once
				}
			}
			sc.note("One server for every concurrency here (not one per run): peak RSS is that process's high-water mark so far.")
			return nil
		})
}

// external drives a server this tool did not start: it never stops it, and
// reads its CPU and memory only if it can find its process by port.
func (h *harness) external(ctx context.Context, sc *Scenario) error {
	tok, err := mintToken(h.ext)
	if err != nil {
		return err
	}
	req, err := buildRequest(tok)
	if err != nil {
		return err
	}
	conn, err := dial(h.o.Addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := h.waitAllowed(ctx, conn, req); err != nil {
		return err
	}
	srv := &server{addr: h.o.Addr, main: pidListening(h.o.Addr)}
	if srv.main == 0 {
		sc.note("No process this user may inspect listens on %s: server CPU and memory are not reported.", h.o.Addr)
	} else {
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", srv.main))
		sc.note("Server CPU and memory are those of PID %d (%s), found listening on %s.", srv.main, strings.TrimSpace(string(comm)), h.o.Addr)
	}
	warm, err := h.tokens(ctx, sc, "external warm-up", h.ext, h.o.WarmTokens)
	if err != nil {
		return err
	}
	sc.note("Two patterns: one token again and again (cache hits, if it caches), and never-seen RS256 tokens minted afresh for each run (%s per run; the run also ends when they run out).", thousands(h.o.FullRS256Tokens))
	for _, c := range h.o.Concurrency {
		if _, err := h.measure(ctx, measurement{sc: sc, target: "external, one token", conc: c, srv: srv, conn: conn,
			steady: true, pat: pattern{reqs: [][]byte{req}}}); err != nil {
			return err
		}
		h.progress("external: minting %d fresh RS256 tokens for c=%d", h.o.FullRS256Tokens, c)
		fresh, err := mintSet(ctx, h.ext, h.o.FullRS256Tokens)
		if err != nil {
			return err
		}
		if _, err := h.measure(ctx, measurement{sc: sc, target: "external, never-seen RS256 tokens", conc: c, srv: srv, conn: conn,
			pass: warm.reqs, pat: pattern{reqs: fresh.reqs, distinct: true}}); err != nil {
			return err
		}
	}
	return nil
}

// waitAllowed polls the external server with a valid token until it allows
// it: until then it does not trust the issuer yet.
func (h *harness) waitAllowed(ctx context.Context, conn *grpc.ClientConn, req []byte) error {
	deadline := time.Now().Add(h.o.Wait)
	var lastSaid time.Time
	for {
		resp := new(answer)
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := conn.Invoke(cctx, checkMethod, &rawRequest{req}, resp, forceRaw)
		cancel()
		var said string
		switch {
		case err != nil:
			said = "gRPC error: " + err.Error()
		case resp.ok():
			h.progress("external server at %s allows the issuer's tokens: measuring", h.o.Addr)
			return nil
		default:
			said = resp.String()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the server at %s did not allow a token of issuer %s within %v (--wait); last answer: %s",
				h.o.Addr, h.ext.Issuer(), h.o.Wait, said)
		}
		if time.Since(lastSaid) > 5*time.Second {
			h.progress("waiting for %s to allow a token of %s (last answer: %s)", h.o.Addr, h.ext.Issuer(), said)
			lastSaid = time.Now()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// externalHowTo says how to configure another server to trust the issuer.
func externalHowTo(iss *issuer, addr string) string {
	return fmt.Sprintf(`driving the ext_authz server at %[1]s. Configure it to trust this tool's issuer:
  issuer          %[2]s
  jwks_uri        %[3]s
  metadata        %[2]s/.well-known/oauth-authorization-server
  resource (aud)  %[4]s   (requests: POST %[4]s, :authority mcp.example.com)
  required scope  %[5]s   (tokens carry "mcp:tools mcp:resources openid profile")
  algorithm       RS256, key generated for this run (kid %[6]s): the server must fetch the JWKS after this tool started
extauthz itself would be configured with:
  resources: [{name: mcp, resource: %[4]q, authorization_servers: [{issuer: %[2]q, jwks_uri: %[3]q}], scopes_supported: [%[5]q], required_scopes: [%[5]q]}]`,
		addr, iss.Issuer(), iss.JWKSURL(), resourceURI, requiredScope, iss.ActiveKID())
}

// hitAudit runs hit with the product's default audit setting: one audit
// line for every allowed Check (allow_sample_rate 1.0) at level info. The
// gateway's stdout and stderr are one pipe this tool reads as fast as it is
// written and discards (counting lines and bytes), as a container runtime
// reads a container's output; the reading is this tool's CPU, not the
// server's.
func (h *harness) hitAudit(ctx context.Context, sc *Scenario, hit pattern) error {
	sc.note("log: {level: info, format: json, audit: {enabled: true, allow_sample_rate: 1.0}} (the product's defaults, spelled out); hit is the same server and traffic with audit lines off. The gateway's stdout and stderr are one pipe read by this tool and discarded at once (its cost is the client's CPU); the lines and bytes it wrote per Check while measuring are given with the table.")
	h.notePairedHit(sc)
	for _, c := range h.o.Concurrency {
		err := h.withServers(ctx, func() (*server, error) {
			return h.startExtauthzSpec(ctx, configSpec{issuers: h.issuers(), maxEntries: 100_000, audit: true}, &drain{})
		}, h.startHit(ctx), func(srv, ref *server, conn, refConn *grpc.ClientConn) error {
			r, _, err := h.measureInterleaved(ctx,
				measurement{sc: sc, target: "extauthz serve, audit on", conc: c, srv: srv, conn: conn, steady: true, pat: hit},
				h.hitRef(sc, c, ref, refConn), nil)
			if err == nil && r.Requests > 0 && r.OutputLines < 0.99 {
				sc.note("c=%d: **%.3f output lines per Check**: fewer than one audit line per allowed Check (lines dropped, or the audit trail off)", c, r.OutputLines)
			}
			return err
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// sameTokensEntries is the in-process tier of the redis scenario's
// same-token hit: room for every token of --redis-tokens, twice over (a
// shard of the tier holds its share of the entries).
func (h *harness) sameTokensEntries() int { return max(2*h.o.RedisTokens, 1000) }

// startHit starts hit's server: a fresh extauthz serve, audit lines off.
func (h *harness) startHit(ctx context.Context) func() (*server, error) {
	return func() (*server, error) { return h.startExtauthz(ctx, "", 100_000) }
}

// notePairedHit says in sc what its pairedHit is.
func (h *harness) notePairedHit(sc *Scenario) {
	sc.note("%s is hit (a fresh extauthz serve, one token, audit lines off), measured in one window with this scenario's own run, alternating in slices of %v (--slice): the hit it is compared with below.", pairedHit, h.sliceOf(h.o.Duration))
}

// hitRef is the measurement of pairedHit, on srv (startHit's), within sc
// at concurrency c.
func (h *harness) hitRef(sc *Scenario, c int, srv *server, conn *grpc.ClientConn) measurement {
	return measurement{sc: sc, target: pairedHit, conc: c, srv: srv, conn: conn, steady: true,
		pat: pattern{reqs: [][]byte{h.hitReq}}}
}

// startRedis starts a redis-server of the harness's own (never the machine's), registered to
// be stopped by PID, and returns it with the function that stops it. Without redis-server
// installed it marks sc skipped and returns a nil server and no error.
func (h *harness) startRedis(ctx context.Context, sc *Scenario) (*redisproc.Server, func(), error) {
	rs, err := redisproc.Start(ctx, redisproc.Options{Dir: h.dir})
	if err != nil {
		if errors.Is(err, redisproc.ErrNotInstalled) {
			sc.Status = "skipped: redis-server not installed"
			return nil, nil, nil
		}
		return nil, nil, fmt.Errorf("starting redis-server: %w", err)
	}
	h.reg.add("redis-server", rs.PID(), rs.Stop)
	pid := rs.PID()
	return rs, func() { rs.Stop(); h.reg.done(pid) }, nil
}
