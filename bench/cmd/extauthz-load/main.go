// Command extauthz-load is the reproducible load harness for extauthz: it
// drives envoy.service.auth.v3.Authorization/Check over gRPC at fixed
// concurrency for a fixed duration, against servers it starts itself on
// 127.0.0.1, and prints what it measured as Markdown, with the machine it
// ran on. It is for comparing figures between versions, machines and other
// ext_authz servers; the in-process micro-benchmarks are in pkg/check
// (go test -bench), and it is not a soak or failure test.
//
// Usage:
//
//	make load LOADFLAGS="[flags]"   (from the repository root)
//	cd bench && go run ./cmd/extauthz-load --server ../bin/extauthz [flags]   (after make build)
//
//	--server PATH        extauthz binary to benchmark (default bin/extauthz; `make build` builds it)
//	--scenarios LIST     comma list, "all" (default: every scenario but ws-1m) or "all+1m"
//	--concurrency LIST   concurrent callers on the one connection (default "1,16,64")
//	--duration D         per scenario and concurrency (default 5s)
//	--max-requests N     per run (default 2,000,000); a run stops at whichever bound comes first
//	--rounds N           repeat the whole matrix N times, interleaved; report medians (default 1)
//	--slice D            a scenario and the reference it is compared with (hit's floor-tuned,
//	                     the full-* limits' floor, the hit of hit-audit, redis and dpop) are
//	                     measured in one window, alternating in slices of D (default 250ms)
//	--addr HOST:PORT     drive this external ext_authz server (loopback only) with the "external"
//	                     scenario, next to the floor; the tool serves its issuer on --issuer-addr
//	--issuer-addr H:P    where that issuer's metadata and JWKS are served (default 127.0.0.1:18443)
//	--wait D             how long to wait for the external server to accept the issuer (default 2m)
//	--out FILE           also write the results as Markdown to FILE
//	--full-rs256-tokens N, --full-es256-tokens N, --full-eddsa-tokens N, --redis-tokens N,
//	--opaque-tokens N    sizes of the token sets (defaults 20,000, 50,000, 50,000, 2,000 and 200,000)
//	--shared-tokens N    redis-shared: tokens A verifies, then B is sent (default 20,000)
//	--shared-concurrency N  redis-shared: concurrency of both phases (default 64)
//	--revocations N      session-revoked SETs per revocation run (default 200)
//	--revocation-tokens N  the revocation scenario's working set (default 5,000)
//	--introspect-delay D fixed service time of the local introspection endpoint (default 0)
//	--profile DIR        write a CPU profile of every measured part on extauthz serve into DIR
//	--client-decode M    wire (default): read each answer's framing and status code, as a proxy
//	                     uses it; messages: decode every answer into Go protobuf messages
//
// Scenarios, each starting its own server process(es), waiting until they
// answer, warming them, measuring, and stopping them:
//
//	floor          an always-allow ext_authz server built into this tool: the cost of gRPC alone;
//	               every other figure is also given relative to it, at the same concurrency
//	floor-tuned    the same server (a process of its own) with extauthz serve's gRPC server options
//	               (stream workers, keepalive, bounds) and GC headroom, read from the policy file
//	               extauthz serve gets; figures are also given relative to it when it ran
//	hit            extauthz serve, one RS256 token of about 950 bytes: in-process cache hits,
//	               audit lines off
//	hit-audit      hit with the default audit setting (an audit line per Check, level info), the
//	               gateway's output a pipe this tool reads and discards
//	hit-upstream   hit on a resource with upstream_token mode exchange, minted at a local RFC 8693
//	               token endpoint served by this tool, warmed: hits of the minted token too
//	dpop           hit with DPoP (RFC 9449) on a resource with dpop mode allowed: the token bound to
//	               the client's ES256 key, a new ES256 proof on every Check (signed before the
//	               measured part), verified by the gateway; also times one raw ecdsa.VerifyASN1
//	redis          extauthz serve with its own redis-server and cache.max_entries 1, 2,000 RS256
//	               tokens at random: almost every Check is served by Redis; compared with hit
//	redis-shared   replicas A and B sharing their own redis-server: A verifies 20,000 never-seen
//	               tokens at c=64, then B (fresh) is sent them: verdicts in Redis, B's Redis hits,
//	               A's Redis errors, circuit breaker and dropped writes (from /metrics)
//	full-rs256     a never-seen token on every Check (pre-minted): full verification, for
//	full-es256     extauthz serve and for jwx-floor, a bare jwx v3 verify-every-request server;
//	full-eddsa     floor-tuned and floor-verify (floor-tuned checking each token's signature
//	               and nothing else) are sent the same tokens in the same window
//	introspection  extauthz serve in token_mode introspection against a local RFC 7662 endpoint
//	               served by this tool, a never-seen opaque token on every Check: one
//	               introspection call per Check (the uncached cost)
//	introspection-hit  the same, one opaque token: the cached introspection result
//	ws-10k         10,000 RS256 tokens, warmed, at random: cache hits on a large working set
//	ws-1m          1,000,000 ES256 tokens (only with "all+1m"): also the RSS per cached token
//	revocation     two extauthz serve replicas A and B sharing their own redis-server, each with
//	               an ssf section trusting a transmitter served by this tool; B under load on 5,000
//	               warmed tokens of distinct users and sessions while CAEP session-revoked SETs
//	               are pushed to A, one at a time: the delay until B refuses the session's cached
//	               token (p50/p90/p99/max, issue #24's 1 s target), every other token still allowed
//	external       with --addr: the external server, one token and never-seen tokens
//
// Every answer must be ALLOWED (but revocation's revoked tokens); anything
// else is counted and reported as an error. The harness stops every process it started, by PID, when it ends,
// fails or receives SIGINT or SIGTERM. It never uses the machine's shared
// Redis: the redis and revocation scenarios start a redis-server of their
// own on a free loopback port, and report "skipped" when none is installed.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const usage = `extauthz-load — load harness for extauthz's ext_authz Check (issue "Benchmarks")

Usage:
  make load LOADFLAGS="[flags]"   (from the repository root)
  cd bench && go run ./cmd/extauthz-load --server ../bin/extauthz [flags]   (after make build)

Drives envoy.service.auth.v3.Authorization/Check over one gRPC connection at
fixed concurrency for a fixed duration, against servers it starts itself on
127.0.0.1, checks every answer, and prints Markdown: the machine, the command,
then one table per scenario (Checks/s, latency percentiles, server CPU per
Check, peak RSS, errors, and ratios to the always-allow floor server).

Flags:
  --server PATH        extauthz binary to benchmark (default bin/extauthz; build it with
                       "make build")
  --scenarios LIST     comma list, "all" (every scenario but ws-1m; the default) or
                       "all+1m" (with ws-1m)
  --concurrency LIST   concurrent callers on the one connection (default "1,16,64")
  --duration D         per scenario and concurrency (default 5s)
  --max-requests N     per run (default 2,000,000); a run stops at whichever bound
                       comes first
  --rounds N           repeat the whole matrix N times, interleaved; report medians
                       (default 1)
  --slice D            a scenario and the reference it is compared with (hit's
                       floor-tuned, the full-* limits' floor, the hit of hit-audit, redis
                       and dpop) are measured in one window, alternating in slices of D
                       (default 250ms; at most a quarter of --duration)
  --addr HOST:PORT     instead of starting extauthz, drive this external ext_authz
                       server (loopback only) with the "external" scenario, next to the
                       floor; the tool serves its issuer's JWKS and metadata on
                       --issuer-addr and prints the issuer URL and resource to configure
                       the other server with; this is how to compare with another server
  --issuer-addr H:P    where that issuer is served (default 127.0.0.1:18443; loopback only)
  --wait D             how long to wait for the external server to allow the issuer's
                       tokens (default 2m)
  --out FILE           also write the results as Markdown to FILE
  --full-rs256-tokens N  never-seen RS256 tokens for full-rs256 and external (default 20000)
  --full-es256-tokens N  never-seen ES256 tokens for full-es256 (default 50000)
  --full-eddsa-tokens N  never-seen EdDSA (Ed25519) tokens for full-eddsa (default 50000)
  --shared-tokens N      redis-shared: distinct tokens A verifies, then B is sent
                         (default 20000)
  --shared-concurrency N redis-shared: concurrency of both phases (default 64)
  --redis-tokens N       working set of the redis scenario (default 2000)
  --opaque-tokens N      never-seen opaque tokens for introspection (default 200000)
  --revocations N        session-revoked SETs pushed per revocation run (default 200;
                         at most half of --revocation-tokens)
  --revocation-tokens N  working set of the revocation scenario (default 5000)
  --introspect-delay D   fixed service time the local introspection endpoint waits
                         before each answer, standing in for the authorization server's
                         own work (default 0; at most 5s)
  --profile DIR          run every extauthz serve with its admin listener on loopback and
                         admin.pprof on, and write a CPU profile of each measured part
                         into DIR (an existing directory), named after the scenario,
                         the target and the concurrency, e.g.
                         full-rs256-extauthz-serve-c64-1.pprof; read it with
                         go tool pprof -top bin/extauthz DIR/<file>. The profiler
                         costs the server about 1 % while it runs
  --client-decode MODE   how the client reads each answer: "wire" (the default) walks
                         the framing of every field and reads the status code, as a
                         proxy uses the answer; "messages" decodes it into Go protobuf
                         messages as a plain grpc-go client would, which for an answer
                         with dynamic metadata (a Struct) costs the client about 8 µs
                         per Check on these two shared cores

Scenarios (each starts its own server process(es), waits until it answers, warms
it, measures, stops it):
  floor          an always-allow ext_authz server built into this tool (default
                 grpc.NewServer()): the cost of gRPC alone; the others are also given
                 relative to it at the same concurrency (throughput and p99)
  floor-tuned    the same always-allow server, run as its own process, with the gRPC
                 server options extauthz serve builds from its policy file (the one
                 hit uses, defaults included: stream_workers, keepalive,
                 max_recv_msg_bytes, header list bound) and its GC headroom
                 (runtime.gc_headroom_bytes); when it ran, the others are also given
                 relative to it (×tuned, p99 ×tuned)
  hit            extauthz serve, one RS256 token (about 950 bytes), warmed: cache hits,
                 audit lines off (log.audit.enabled false, level warn)
  hit-audit      the same with the product's default audit setting (log.audit enabled,
                 allow_sample_rate 1.0, level info): an audit line per Check; the
                 gateway's stdout and stderr are one pipe this tool reads and discards
                 as fast as it is written (lines and bytes per Check reported); compared
                 with hit
  hit-upstream   the same, on a resource with upstream_token (mode exchange, no
                 Redis) against a local RFC 8693 token endpoint served by this tool
                 on 127.0.0.1 (client_secret_basic checked on every call, an ES256
                 JWT for the configured audience, its JWKS served too), warmed so
                 that the credential is minted before measuring: hits of the
                 verdict and of the minted token; reports the exchanges made while
                 measuring (0) and checks, on a sample of answers, that the
                 authorization header set upstream is the minted Bearer token
  dpop           the same traffic as hit, on a resource with dpop: {mode: allowed}
                 (no Redis: the replay table is in process): the token is bound to
                 the client's ES256 key (cnf.jkt) and sent as "Authorization: DPoP",
                 with a new ES256 proof on every Check (typ dpop+jwt, jwk, unique jti,
                 htm, htu, iat, ath), each sent once; the proofs are signed on all
                 cores before each measured part, in a pool sized from the warm-up's
                 rate. Prints the CPU time of one raw ecdsa.VerifyASN1 (P-256) on
                 this machine, timed between the slices of each run, and compares
                 the server's CPU per Check with hit's + that + 10 µs; checks a sample of
                 answers, and that a proof sent again is refused. In the same window
                 floor-tuned and floor-verify (floor-tuned checking each proof's
                 signature with the client's key, nothing else) are sent the same
                 proofs: their difference is one proof check measured in a server
  redis          extauthz serve with its own redis-server, cache.max_entries 1, 2,000
                 RS256 tokens at random: almost every Check is served by Redis; the
                 gateway's and redis-server's CPU are given apart, and compared with
                 the in-process hit of the same tokens ("hit, same tokens": the same
                 configuration with room for them all, warmed) and with the one-token
                 hit ("hit, interleaved", as for hit-audit and dpop): CPU
                 difference (target: against the same tokens'), p99 ratio, and
                 redis-server's commands per read (the gateway's batch size); its
                 limit measured: floor-tuned, and floor-tuned reading one value per
                 Check from a redis-server of its own through rueidis (pipelined)
                 and through go-redis (floor-get), sent the same tokens; the six
                 measured in one window, alternating slices of --slice
  redis-shared   two extauthz serve replicas, A and B, sharing a redis-server of their
                 own, each with cache.max_entries of twice the tokens and its admin
                 listener on loopback; A is sent --shared-tokens never-seen RS256 tokens
                 at --shared-concurrency, then B (fresh) the same tokens. Reports the
                 verdict keys that reached Redis (SCAN), A's extauthz_redis_errors_total
                 and extauthz_redis_circuit_open (read every 250 ms),
                 extauthz_cache_shared_dropped_total ("absent" if not exposed), and B's
                 extauthz_cache_lookups_total by tier: its share served from Redis. Each
                 phase ends when the tokens run out, or after 2 minutes
  full-rs256     every Check carries a never-seen token (pre-minted on all cores; the
  full-es256     run also ends when they run out), against extauthz serve and against
  full-eddsa     jwx-floor, a bare jwx v3 verify-every-request server: "our pipeline vs
                 bare jwx"; full-eddsa's tokens are EdDSA (Ed25519), of an issuer of
                 its own. In each round the floor-tuned server is sent the same
                 requests in one window with extauthz serve, alternating slices
                 ("floor-tuned, same stream"): with one raw signature check timed
                 between the slices, the limit the gateway's CPU per Check is set
                 against (issue #20: at most 1.15×). So is floor-verify, floor-tuned
                 checking each token's signature and nothing else ("floor-verify,
                 same stream"): the limit measured, with what a signature check
                 costs inside a busy server
  introspection  extauthz serve with an authorization server in token_mode
                 introspection: a local RFC 7662 endpoint served by this tool on
                 127.0.0.1 (client_secret_basic checked on every call, active:true
                 for its own opaque tokens, optional --introspect-delay); every
                 Check carries a never-seen opaque token (43 characters: a random
                 nonce and its HMAC tag; the run also ends when they run out): one
                 introspection call per Check, the uncached cost
  introspection-hit  the same server, one opaque token, warmed: served from the
                 cache after the first call
  ws-10k         10,000 distinct RS256 tokens, warmed, at random: hits on a large set
  ws-1m          1,000,000 ES256 tokens (minting as many RS256 would take too long),
                 cache.max_entries 1,100,000, one warm-up pass; reports RSS before and
                 after it and the bytes of RSS per cached token (only with "all+1m")
  revocation     two extauthz serve replicas, A and B, sharing a redis-server of
                 their own (watermarks stored there and pushed to both), each with
                 its HTTP listener on loopback and an ssf section trusting a Shared
                 Signals transmitter served by this tool (SSF configuration and
                 ES256 key set on 127.0.0.1). B is warmed with 5,000 RS256 tokens,
                 each of its own user and session (sid), and kept under load on
                 those not revoked yet; one at a time, paced over --duration, a
                 CAEP session-revoked SET for one token's session is pushed to A
                 (RFC 8935) while a probe sends B that token every millisecond
                 until B refuses it: the delay from the push to that refusal
                 (p50, p90, p99, max; issue #24's target: p99 within 1 s). Every
                 other token must stay allowed; afterwards every token is sent once
                 more, each revoked one refused, every other allowed. A run ends
                 with its last revocation, within 30 s
  external       with --addr: one token, and never-seen RS256 tokens

Every answer must be ALLOWED (status code 0), but revocation's revoked tokens;
anything else is an error, counted and reported. Every process started is stopped by PID at the end, on failure and
on SIGINT/SIGTERM. The machine's shared Redis (127.0.0.1:6379) is never used.
`

func main() {
	if len(os.Args) > 1 && isSubserver(os.Args[1]) {
		os.Exit(runSubserver(os.Args[1], os.Args[2:], os.Stderr))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func isSubserver(name string) bool {
	return name == floorCmd || name == floorTunedCmd || name == floorVerifyCmd || name == floorGetCmd || name == jwxCmd
}

// run parses the flags, runs the harness and prints the report; it returns
// the exit code: 0 measured without errors, 1 errors or a failed scenario,
// 2 bad usage.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, outFile, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, usage)
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "extauthz-load: %v\n", err)
		return 2
	}
	o.Progress = stderr
	o.Command = commandLine(args)
	rep, err := Run(ctx, o)
	if rep == nil {
		fmt.Fprintf(stderr, "extauthz-load: %v\n", err)
		return 2
	}
	if err != nil {
		rep.Err = err.Error()
	}
	rep.WriteMarkdown(stdout)
	if outFile != "" {
		f, ferr := os.Create(outFile)
		if ferr == nil {
			rep.WriteMarkdown(f)
			ferr = f.Close()
		}
		if ferr != nil {
			fmt.Fprintf(stderr, "extauthz-load: --out: %v\n", ferr)
			return 1
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "extauthz-load: %v\n", err)
		return 1
	}
	if rep.Err != "" || !rep.clean() {
		return 1
	}
	return 0
}

// clean reports whether every scenario ran (or was skipped as documented)
// and every answer was ALLOWED.
func (rep *Report) clean() bool {
	for _, sc := range rep.Scenarios {
		if strings.HasPrefix(sc.Status, "failed") {
			return false
		}
		for _, s := range sc.Series {
			for _, runs := range s.Runs {
				for _, r := range runs {
					if r.Errors > 0 || r.WarmErrors > 0 {
						return false
					}
					if r.Revocation != nil && r.Revocation.failures() > 0 {
						return false
					}
				}
			}
		}
	}
	return true
}

func parseFlags(args []string, stderr io.Writer) (Options, string, error) {
	var o Options
	fs := flag.NewFlagSet("extauthz-load", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	fs.StringVar(&o.Server, "server", "bin/extauthz", "")
	scenarios := fs.String("scenarios", "all", "")
	conc := fs.String("concurrency", "1,16,64", "")
	fs.DurationVar(&o.Duration, "duration", 5*time.Second, "")
	maxReq := fs.String("max-requests", "2,000,000", "")
	fs.IntVar(&o.Rounds, "rounds", 1, "")
	fs.DurationVar(&o.Slice, "slice", 250*time.Millisecond, "")
	fs.StringVar(&o.Addr, "addr", "", "")
	fs.StringVar(&o.IssuerAddr, "issuer-addr", "127.0.0.1:18443", "")
	fs.DurationVar(&o.Wait, "wait", 2*time.Minute, "")
	out := fs.String("out", "", "")
	fs.IntVar(&o.FullRS256Tokens, "full-rs256-tokens", 20_000, "")
	fs.IntVar(&o.FullES256Tokens, "full-es256-tokens", 50_000, "")
	fs.IntVar(&o.FullEdDSATokens, "full-eddsa-tokens", 50_000, "")
	fs.IntVar(&o.SharedTokens, "shared-tokens", 20_000, "")
	fs.IntVar(&o.SharedConcurrency, "shared-concurrency", 64, "")
	fs.IntVar(&o.RedisTokens, "redis-tokens", 2_000, "")
	fs.IntVar(&o.OpaqueTokens, "opaque-tokens", 200_000, "")
	fs.IntVar(&o.Revocations, "revocations", 200, "")
	fs.IntVar(&o.RevocationTokens, "revocation-tokens", 5_000, "")
	fs.DurationVar(&o.IntrospectDelay, "introspect-delay", 0, "")
	fs.StringVar(&o.ProfileDir, "profile", "", "")
	clientDecode := fs.String("client-decode", "wire", "")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return o, "", err
		}
		return o, "", fmt.Errorf("%v (see --help)", err)
	}
	if fs.NArg() > 0 {
		return o, "", fmt.Errorf("unexpected argument %q (see --help)", fs.Arg(0))
	}
	scenariosSet := false
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "scenarios" {
			scenariosSet = true
		}
	})
	switch {
	case o.Addr != "" && !scenariosSet:
		o.Scenarios = []string{scFloor, scExternal}
	case *scenarios == "all":
		o.Scenarios = append([]string(nil), allScenarios...)
	case *scenarios == "all+1m":
		o.Scenarios = append(append([]string(nil), allScenarios...), scWS1m)
	default:
		for _, s := range strings.Split(*scenarios, ",") {
			if s = strings.TrimSpace(s); s != "" && !contains(o.Scenarios, s) {
				o.Scenarios = append(o.Scenarios, s)
			}
		}
	}
	for _, s := range strings.Split(*conc, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			return o, "", fmt.Errorf("--concurrency: %q is not a number", s)
		}
		o.Concurrency = append(o.Concurrency, n)
	}
	n, err := strconv.Atoi(strings.NewReplacer(",", "", "_", "").Replace(*maxReq))
	if err != nil {
		return o, "", fmt.Errorf("--max-requests: %q is not a number", *maxReq)
	}
	o.MaxRequests = n
	switch *clientDecode {
	case "wire":
	case "messages":
		o.DecodeMessages = true
	default:
		return o, "", fmt.Errorf("--client-decode: %q is neither wire nor messages", *clientDecode)
	}
	return o, *out, nil
}

// commandLine is how to run this again: "go run" builds into a temporary
// directory that is gone afterwards.
func commandLine(args []string) string {
	cmd := os.Args[0]
	if strings.Contains(cmd, "go-build") {
		cmd = "go run ./cmd/extauthz-load"
	}
	parts := []string{cmd}
	for _, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\"'$\\*?;&|<>()") {
			a = strconv.Quote(a)
		}
		parts = append(parts, a)
	}
	return strings.Join(parts, " ")
}
