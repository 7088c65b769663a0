package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/extauthz/extauthz/pkg/introspect"
	"github.com/extauthz/extauthz/pkg/token"
)

// serverBin is extauthz, built once for these tests.
var serverBin string

// mainEnv makes the test binary run main() itself, so that a test can send
// the real harness a real SIGINT.
const mainEnv = "EXTAUTHZ_LOAD_TEST_MAIN"

func TestMain(m *testing.M) {
	// The harness re-executes itself (here: this test binary) as its
	// reference servers.
	if len(os.Args) > 1 && isSubserver(os.Args[1]) {
		os.Exit(runSubserver(os.Args[1], os.Args[2:], os.Stderr))
	}
	if os.Getenv(mainEnv) == "1" {
		main()
		return
	}
	// The reference servers are this race-enabled binary: without this,
	// each would sleep a second on exit (the race runtime's default).
	os.Setenv("GORACE", strings.TrimPrefix(os.Getenv("GORACE")+" atexit_sleep_ms=0", " "))
	dir, err := os.MkdirTemp("", "extauthz-load-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	serverBin = filepath.Join(dir, "extauthz")
	goBin, err := exec.LookPath("go")
	if err == nil {
		var out []byte
		out, err = exec.Command(goBin, "build", "-o", serverBin, "github.com/extauthz/extauthz/cmd/extauthz").CombinedOutput()
		if err != nil {
			err = fmt.Errorf("%v\n%s", err, out)
		}
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "building cmd/extauthz: %v\n", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// testWriter sends the harness's progress lines to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(time.Now().Format("05.000"), strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func redisInstalled() bool {
	_, err := exec.LookPath("redis-server")
	return err == nil
}

// TestHarness runs a tiny matrix end to end, as a user would, and checks
// what the report says: every run measured Checks, all allowed, with
// ordered percentiles and the server's memory; and every process started is
// gone afterwards.
func TestHarness(t *testing.T) {
	t.Parallel()
	scenarios := []string{scFloor, scHit, scHitUpstream, scDPoP, scFullES256, scRedis, scIntrospection, scIntroHit}
	o := Options{
		Server: serverBin, Scenarios: scenarios, Concurrency: []int{1, 4},
		Duration: 300 * time.Millisecond, MaxRequests: 200_000, Rounds: 1,
		FullES256Tokens: 300, WarmTokens: 20, RedisTokens: 40, OpaqueTokens: 300,
		IntrospectDelay: 100 * time.Microsecond,
		Progress:        testWriter{t}, Command: "go test",
	}
	rep, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Err != "" {
		t.Fatalf("harness stopped early: %s", rep.Err)
	}

	wantSeries := map[string][]string{
		scFloor:         {"floor"},
		scHit:           {"extauthz serve", pairedTuned},
		scHitUpstream:   {"extauthz serve"},
		scDPoP:          {"extauthz serve", pairedHit, pairedFloorProofs, pairedVerifyProofs},
		scFullES256:     {"extauthz serve", pairedFloor, pairedVerify, "jwx-floor"},
		scRedis:         {"extauthz serve + redis", pairedHit, pairedSameTokens, pairedFloorTokens, pairedFloorGet, pairedFloorGoRedis},
		scIntrospection: {"extauthz serve"},
		scIntroHit:      {"extauthz serve"},
	}
	var got []string
	for _, sc := range rep.Scenarios {
		got = append(got, sc.Name)
		switch {
		case sc.Name == scRedis && !redisInstalled():
			if sc.Status != "skipped: redis-server not installed" {
				t.Errorf("redis without redis-server: status %q", sc.Status)
			}
			continue
		case sc.Status != "":
			t.Errorf("%s: %s", sc.Name, sc.Status)
			continue
		}
		var targets []string
		for _, s := range sc.Series {
			targets = append(targets, s.Target)
			for _, c := range o.Concurrency {
				runs := s.Runs[c]
				if len(runs) != 1 {
					t.Errorf("%s/%s c=%d: %d runs, want 1", sc.Name, s.Target, c, len(runs))
					continue
				}
				r := runs[0]
				name := fmt.Sprintf("%s/%s c=%d", sc.Name, s.Target, c)
				if r.Requests <= 0 {
					t.Errorf("%s: %d requests", name, r.Requests)
				}
				if r.Errors != 0 || r.WarmErrors != 0 {
					t.Errorf("%s: %d errors, %d in warm-up; notes: %q", name, r.Errors, r.WarmErrors, sc.Notes)
				}
				if !(0 < r.P50 && r.P50 <= r.P90 && r.P90 <= r.P99 && r.P99 <= r.P999) {
					t.Errorf("%s: percentiles out of order: p50 %v p90 %v p99 %v p99.9 %v", name, r.P50, r.P90, r.P99, r.P999)
				}
				if r.PeakRSS <= 0 || r.RSS <= 0 || r.RSS > r.PeakRSS {
					t.Errorf("%s: peak RSS %d, RSS %d", name, r.PeakRSS, r.RSS)
				}
				if r.ServerCPU < 0 {
					t.Errorf("%s: server CPU not read", name)
				}
				switch {
				case sc.Name == scFullES256 && s.Target != pairedFloor && s.Target != pairedVerify: // the floors pick among them at random
					if r.Requests > o.FullES256Tokens {
						t.Errorf("%s: %d requests from %d distinct tokens", name, r.Requests, o.FullES256Tokens)
					}
				case sc.Name == scIntrospection:
					if r.Requests > o.OpaqueTokens {
						t.Errorf("%s: %d requests from %d distinct tokens", name, r.Requests, o.OpaqueTokens)
					}
				case sc.Name == scDPoP && s.Target == "extauthz serve":
					// A pool of proofs sized from the warm-up's rate: the
					// run ends by its duration unless the pool ran out.
					if r.Stop != "duration" && r.Stop != "tokens ran out" {
						t.Errorf("%s: ended by %q, want duration or tokens ran out", name, r.Stop)
					}
				case r.Stop != "duration":
					t.Errorf("%s: ended by %q, want duration", name, r.Stop)
				}
				// Every never-seen token is introspected exactly once; one
				// token, once per server, before the measurement.
				switch sc.Name {
				case scIntrospection:
					if r.Introspections != 1 {
						t.Errorf("%s: %v introspection calls per Check, want 1", name, r.Introspections)
					}
				case scIntroHit:
					if r.Introspections != 0 {
						t.Errorf("%s: %v introspection calls per Check, want 0 (cached)", name, r.Introspections)
					}
				default:
					if r.Introspections != -1 {
						t.Errorf("%s: introspection calls per Check %v, want -1 (n/a)", name, r.Introspections)
					}
				}
				// The credential of the one token is minted once per
				// server, in the warm-up; the measured part only hits,
				// and its sampled answers carry the minted token.
				if sc.Name == scHitUpstream {
					if r.WarmExchanges != 1 || r.Exchanges != 0 {
						t.Errorf("%s: %d token exchanges in the warm-up, %d measured; want 1, 0", name, r.WarmExchanges, r.Exchanges)
					}
				} else if r.Exchanges != -1 {
					t.Errorf("%s: %d token exchanges, want -1 (n/a)", name, r.Exchanges)
				}
				// Sampled answers are checked in full where the scenario
				// says what they must carry: the minted credential, the
				// DPoP token's subject.
				switch {
				case sc.Name == scHitUpstream, sc.Name == scDPoP && s.Target == "extauthz serve":
					// Each run (each slice of an interleaved one) checks
					// each caller's first answer.
					if want := r.Requests/verifyEvery + c*r.Slices; r.Verified < 1 || r.Verified > want {
						t.Errorf("%s: %d answers checked in full of %d Checks, want 1..%d", name, r.Verified, r.Requests, want)
					}
				default:
					if r.Verified != 0 {
						t.Errorf("%s: %d answers checked in full, want 0", name, r.Verified)
					}
				}
				// dpop, and full verification's gateway runs, time the raw
				// signature check beside their runs.
				timesRaw := (sc.Name == scDPoP || sc.Name == scFullES256) && s.Target == "extauthz serve"
				if timesRaw != (r.RawVerify > 0) {
					t.Errorf("%s: raw verify %v µs", name, r.RawVerify)
				}
				if sc.Name == scRedis && s.Target == "extauthz serve + redis" {
					if r.AuxPeakRSS <= 0 {
						t.Errorf("%s: redis-server RSS %d", name, r.AuxPeakRSS)
					}
					if r.RedisHits <= 0 {
						t.Errorf("%s: %v Redis hits per Check: the in-process tier answered, not Redis", name, r.RedisHits)
					}
				}
			}
		}
		if !slices.Equal(targets, wantSeries[sc.Name]) {
			t.Errorf("%s: servers %q, want %q", sc.Name, targets, wantSeries[sc.Name])
		}
	}
	if !slices.Equal(got, scenarios) {
		t.Errorf("scenarios %q, want %q", got, scenarios)
	}

	// floor: 2 runs; hit: 4 (its own and the paired floor-tuned);
	// hit-upstream: 2; dpop: 8 (its own, the paired hit, floor-tuned and
	// floor-verify); full-es256: 8 (the gateway, the paired floor-tuned
	// and floor-verify, jwx-floor); introspection: 2; introspection-hit:
	// 2; redis: 12 (its own, the paired hit, the same tokens' hit,
	// floor-tuned and the two floor-get servers) + two redis-servers (the
	// gateways' and the floor-get servers').
	want := 28
	if redisInstalled() {
		want += 14
	}
	if len(rep.Procs) != want {
		t.Errorf("%d processes started, want %d: %+v", len(rep.Procs), want, rep.Procs)
	}
	for _, p := range rep.Procs {
		if p.PID <= 0 || p.StartTime == 0 {
			t.Errorf("process %+v not identified", p)
		} else if !pidGone(p.PID, p.StartTime) {
			t.Errorf("%s (PID %d) still runs after the harness returned", p.Name, p.PID)
		}
	}

	var md bytes.Buffer
	rep.WriteMarkdown(&md)
	for _, want := range []string{
		"## Machine", "## Command", "| concurrency | Checks/s | ×floor | p50 | p90 | p99 | p99.9 | p99 ×floor | CPU µs/Check | peak RSS | errors |",
		"### extauthz serve relative to jwx-floor", "## introspection — every Check a never-seen opaque token",
		"## introspection-hit — one opaque token", "Introspection calls per Check: c=1 1.0000 (",
		"## hit-upstream — one RS256 token (", "Token exchanges while measuring (all rounds): c=1 0, c=4 0.",
		"extauthz serve c=4: 1 token exchange(s) during the warm-up, **0 during the measured part**.",
		"## dpop — one RS256 token (", "**Raw ecdsa.VerifyASN1 (P-256, SHA-256 digest given), CPU µs per verify**, timed in this tool between the slices of each run (the median of each run): c=1 ",
		"**Full verification (ES256) against the limit, same run** (the limit: the server CPU per Check of floor-tuned, sent the same requests in one window with the gateway in each round, alternating slices (floor-tuned, same stream) + one raw ecdsa.VerifyASN1",
		"**Cache hit against floor-tuned, interleaved** (floor-tuned, interleaved, measured in one window with hit in each round, alternating slices; target: throughput ≥ 0.95× its):",
		"Target (server CPU µs per Check ≤ hit's + one raw verify + 10 µs, medians of this run): c=1 ",
		"**A proof check measured in a server** (floor-verify, same proofs less floor-tuned, same proofs,",
		"**The limit measured** (floor-verify, same stream: floor-tuned checking each token's ES256 signature and nothing else",
	} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, md.String())
		}
	}
	if !rep.clean() {
		t.Errorf("report not clean:\n%s", md.String())
	}
}

// TestInterrupt sends the real command a SIGINT in the middle of a run: it
// must print what it measured, say it was interrupted, and leave no process
// behind.
func TestInterrupt(t *testing.T) {
	t.Parallel()
	cmd := exec.Command(os.Args[0], "--server", serverBin, "--scenarios", "hit,floor", "--concurrency", "2", "--duration", "60s")
	cmd.Env = append(os.Environ(), mainEnv+"=1")
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	measuring := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		sc := bufio.NewScanner(stderr)
		once := sync.Once{}
		for sc.Scan() {
			log.WriteString(sc.Text() + "\n")
			if strings.Contains(sc.Text(), "hit: extauthz serve and floor-tuned, interleaved c=2: measuring") {
				once.Do(func() { close(measuring) })
			}
		}
		once.Do(func() { close(measuring) })
	}()
	<-measuring
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	err = cmd.Wait()
	out := stdout.String()
	if code := cmd.ProcessState.ExitCode(); code != 1 {
		t.Errorf("exit code %d (%v), want 1; stderr:\n%s", code, err, log.String())
	}
	if !strings.Contains(out, "Stopped early: interrupted") {
		t.Errorf("report does not say it was interrupted:\n%s\nstderr:\n%s", out, log.String())
	}
	m := regexp.MustCompile(`Processes started \(all stopped by PID\): (.*)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("report lists no processes:\n%s", out)
	}
	pids := regexp.MustCompile(`PID (\d+)`).FindAllStringSubmatch(m[1], -1)
	// hit runs first (floor is listed after it): interrupted in its first
	// run, hit's server and the floor-tuned one interleaved with it.
	if len(pids) != 2 || !strings.HasPrefix(m[1], "extauthz PID") || !strings.Contains(m[1], "floor-tuned-server PID") {
		t.Fatalf("report lists %q, want the extauthz and the floor-tuned server started", m[1])
	}
	if !strings.Contains(out, "c=2 ") || !strings.Contains(out, "(interrupted)") {
		t.Errorf("report does not show the interrupted run:\n%s", out)
	}
	for _, p := range pids {
		pid, _ := strconv.Atoi(p[1])
		if err := syscall.Kill(pid, 0); err != syscall.ESRCH {
			t.Errorf("PID %d still exists after the harness exited (%v)", pid, err)
		}
	}
}

func TestPercentile(t *testing.T) {
	seq := func(n int) []time.Duration {
		s := make([]time.Duration, n)
		for i := range s {
			s[i] = time.Duration(i + 1)
		}
		return s
	}
	for _, tc := range []struct {
		n, bp int
		want  time.Duration
	}{
		{0, 5000, 0},
		{1, 5000, 1}, {1, 9990, 1},
		{2, 5000, 1}, {2, 5001, 2},
		{10, 5000, 5}, {10, 9000, 9}, {10, 9900, 10},
		{100, 5000, 50}, {100, 9900, 99}, {100, 9990, 100},
		{1000, 9900, 990}, {1000, 9990, 999}, // 99.9 % of 1000 is exactly 999: no float rounding up
		{1001, 9990, 1000},
		{3, 0, 1}, {3, 10000, 3},
	} {
		if got := percentile(seq(tc.n), tc.bp); got != tc.want {
			t.Errorf("percentile(1..%d, %d bp) = %d, want %d", tc.n, tc.bp, got, tc.want)
		}
	}
}

func TestRequireLoopback(t *testing.T) {
	for addr, ok := range map[string]bool{
		"127.0.0.1:9001": true, "127.1.2.3:1": true, "[::1]:9001": true, "localhost:9001": true,
		"10.0.0.1:9001": false, "0.0.0.0:9001": false, ":9001": false, "example.com:9001": false,
		"[::]:9001": false, "127.0.0.1": false, "127.0.0.1:99999": false,
	} {
		if err := requireLoopback(addr); (err == nil) != ok {
			t.Errorf("requireLoopback(%q) = %v, want ok=%v", addr, err, ok)
		}
	}
}

func TestFlags(t *testing.T) {
	o, _, err := parseFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(o.Scenarios, allScenarios) || slices.Contains(o.Scenarios, scWS1m) {
		t.Errorf("default scenarios %q", o.Scenarios)
	}
	if !slices.Equal(o.Concurrency, []int{1, 16, 64}) || o.Duration != 5*time.Second || o.MaxRequests != 2_000_000 || o.Rounds != 1 || o.Server != "bin/extauthz" {
		t.Errorf("defaults: %+v", o)
	}
	if o.FullEdDSATokens != 50_000 || o.SharedTokens != 20_000 || o.SharedConcurrency != 64 {
		t.Errorf("defaults: full-eddsa-tokens %d, shared-tokens %d, shared-concurrency %d", o.FullEdDSATokens, o.SharedTokens, o.SharedConcurrency)
	}
	for _, sc := range []string{scFloorTuned, scHitAudit, scRedisShared, scFullEdDSA} {
		if !slices.Contains(o.Scenarios, sc) {
			t.Errorf("%s not in the default scenarios", sc)
		}
	}
	if o, _, _ := parseFlags([]string{"--scenarios", "all+1m"}, io.Discard); !slices.Contains(o.Scenarios, scWS1m) {
		t.Errorf("all+1m: %q", o.Scenarios)
	}
	if o, _, _ := parseFlags([]string{"--addr", "127.0.0.1:9001"}, io.Discard); !slices.Equal(o.Scenarios, []string{scFloor, scExternal}) {
		t.Errorf("--addr: scenarios %q", o.Scenarios)
	}

	var stdout, stderr bytes.Buffer
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--addr", "10.1.2.3:9001"}, "not a loopback address"},
		{[]string{"--issuer-addr", "0.0.0.0:18443", "--addr", "127.0.0.1:1"}, "--issuer-addr"},
		{[]string{"--scenarios", "nope"}, `unknown scenario "nope"`},
		{[]string{"--scenarios", "external"}, "needs --addr"},
		{[]string{"--scenarios", "jwx-floor"}, "within full-rs256, full-es256 and full-eddsa"},
		{[]string{"--shared-tokens", "2000000"}, "--shared-tokens"},
		{[]string{"--shared-concurrency", "5000"}, "--shared-concurrency"},
		{[]string{"--server", filepath.Join(t.TempDir(), "absent"), "--scenarios", "hit"}, "make build"},
		{[]string{"--concurrency", "0"}, "--concurrency"},
		{[]string{"--client-decode", "json"}, "--client-decode"},
		{[]string{"--profile", filepath.Join(t.TempDir(), "absent"), "--scenarios", "hit"}, "--profile"},
		{[]string{"--scenarios", "revocation", "--revocations", "40", "--revocation-tokens", "60"}, "at least twice as many"},
	} {
		stdout.Reset()
		stderr.Reset()
		if code := run(context.Background(), tc.args, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("run %q = %d, stderr %q; want 2 and %q", tc.args, code, stderr.String(), tc.want)
		}
	}
	stdout.Reset()
	if code := run(context.Background(), []string{"-h"}, &stdout, &stderr); code != 0 || !strings.Contains(stdout.String(), "--max-requests N") {
		t.Errorf("-h = %d, %q", code, stdout.String())
	}
}

// TestGeneratedConfig: the policy files the harness writes pass extauthz's
// own parser, with and without Redis.
func TestGeneratedConfig(t *testing.T) {
	t.Parallel()
	rs, err := startIssuer("RS256")
	if err != nil {
		t.Fatal(err)
	}
	defer rs.close()
	in, err := startIntrospection(t.TempDir(), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer in.close()
	ex, err := startExchange(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer ex.close()
	dp, err := newDPoPClient(rs)
	if err != nil {
		t.Fatal(err)
	}
	dpLong, err := newDPoPClient(rs)
	if err != nil {
		t.Fatal(err)
	}
	dpLong.maxAge = 95 * time.Second
	for _, tc := range []struct {
		redis string
		in    *introspectionServer
		ex    *exchangeServer
		dp    *dpopClient
	}{{"", nil, nil, nil}, {"redis://127.0.0.1:1/0", nil, nil, nil}, {"", in, nil, nil}, {"", nil, ex, nil}, {"", nil, nil, dp}, {"", nil, nil, dpLong}} {
		path := filepath.Join(t.TempDir(), "c.yaml")
		conf := extauthzConfig("127.0.0.1:1", []*issuer{rs}, tc.in, tc.ex, tc.dp, tc.redis, 1)
		if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(serverBin, "check-config", path).CombinedOutput()
		if err != nil {
			t.Errorf("check-config (redis %q, introspection %v, upstream_token %v, dpop %v): %v\n%s", tc.redis, tc.in != nil, tc.ex != nil, tc.dp != nil, err, out)
		}
		if tc.dp != nil && tc.dp.maxAge > 0 && !strings.Contains(conf, "max_age: 1m35s") {
			t.Errorf("dpop max_age %v not in the config:\n%s", tc.dp.maxAge, conf)
		}
	}
}

// flakyServer denies every third Check and fails every third with a gRPC
// error, by arrival order.
type flakyServer struct {
	authv3.UnimplementedAuthorizationServer
	n atomic.Int64
}

func (s *flakyServer) Check(context.Context, *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	switch s.n.Add(1) % 3 {
	case 0:
		return denied("no"), nil
	case 1:
		return nil, status.Error(codes.Unavailable, "down")
	}
	return allowed, nil
}

// TestLoadCountsErrors: every answer but ALLOWED is an error, none is
// dropped, and every Check's latency is kept.
func TestLoadCountsErrors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	authv3.RegisterAuthorizationServer(gs, &flakyServer{})
	go func() { _ = gs.Serve(ln) }()
	defer gs.Stop()
	conn, err := dial(ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	req, err := buildRequest("t")
	if err != nil {
		t.Fatal(err)
	}
	reqs := make([][]byte, 99)
	for i := range reqs {
		reqs[i] = req
	}
	l := &load{conn: conn, concurrency: 4, duration: time.Minute, maxRequests: 1000, pat: pattern{reqs: reqs, distinct: true}}
	res := l.run(context.Background())
	if res.requests != 99 || len(res.sorted) != 99 || res.stop != "tokens ran out" {
		t.Errorf("%d requests, %d latencies, ended by %q; want 99, 99, tokens ran out", res.requests, len(res.sorted), res.stop)
	}
	if res.errors != 66 {
		t.Errorf("%d errors, want 66", res.errors)
	}
	if !slices.IsSorted(res.sorted) || res.sorted[0] <= 0 {
		t.Errorf("latencies not sorted or zero: %v", res.sorted[:3])
	}
	var denials, rpcErrs bool
	for _, e := range res.errSample {
		denials = denials || strings.Contains(e, "status code 16")
		rpcErrs = rpcErrs || strings.Contains(e, "Unavailable")
	}
	if !denials || !rpcErrs {
		t.Errorf("error samples %q lack a denial or a gRPC error", res.errSample)
	}

	// Bounded by --max-requests as well.
	l = &load{conn: conn, concurrency: 3, duration: time.Minute, maxRequests: 10, pat: pattern{reqs: [][]byte{req}}}
	if res := l.run(context.Background()); res.requests != 10 || res.stop != "max-requests" {
		t.Errorf("%d requests, ended by %q; want 10, max-requests", res.requests, res.stop)
	}
}

// TestIntrospectionEndpoint: the local endpoint answers the gateway's own
// RFC 7662 client with the claims the scenarios need for its tokens, says
// active:false for any other, and refuses wrong client credentials.
func TestIntrospectionEndpoint(t *testing.T) {
	t.Parallel()
	in, err := startIntrospection(t.TempDir(), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer in.close()
	client := func(secret string) *introspect.Client {
		c, err := introspect.New(introspect.Options{
			Issuer:       in.issuer,
			Endpoint:     func(context.Context) (string, error) { return in.endpoint, nil },
			ClientID:     introspectClientID,
			ClientSecret: secret,
			Timeout:      5 * time.Second,
		})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	ctx := context.Background()
	tok := in.mint()
	if len(tok) != opaqueTokenLen || tok == in.mint() {
		t.Fatalf("token %q: length %d, want %d, and distinct", tok, len(tok), opaqueTokenLen)
	}
	claims, err := client(in.secret).Introspect(ctx, tok)
	if err != nil {
		t.Fatal(err)
	}
	if claims.Issuer != in.issuer || !slices.Equal(claims.Audience, []string{resourceURI}) ||
		!slices.Contains(claims.Scopes, requiredScope) || claims.Subject == "" || claims.ClientID == "" ||
		time.Until(claims.Expiry) < 2*time.Hour {
		t.Errorf("claims %+v, grant %+v", claims, claims.Grant)
	}
	// A token of another endpoint (another key), one altered, and junk.
	other, err := startIntrospection(t.TempDir(), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer other.close()
	altered := []byte(tok)
	altered[0] ^= 1
	for _, bad := range []string{other.mint(), string(altered), "opaque", tok + "A"} {
		if _, err := client(in.secret).Introspect(ctx, bad); !errors.Is(err, token.ErrInactive) {
			t.Errorf("token %q: %v, want inactive", bad, err)
		}
	}
	if _, err := client("wrong").Introspect(ctx, tok); !errors.Is(err, token.ErrUnavailable) {
		t.Errorf("wrong secret: %v, want unavailable", err)
	}
	if got, want := in.calls.Load(), int64(6); got != want {
		t.Errorf("%d calls, want %d", got, want)
	}
	if in.inactive.Load() != 4 || in.refused.Load() != 1 {
		t.Errorf("%d inactive, %d refused; want 4, 1", in.inactive.Load(), in.refused.Load())
	}
	b, err := os.ReadFile(in.secretFile)
	if err != nil || strings.TrimSpace(string(b)) != in.secret {
		t.Errorf("secret file: %q, %v", b, err)
	}
}

// TestAnswerDecode: both ways of reading an answer agree on allowed and
// denied responses (an allowed one with headers and dynamic metadata), a
// denial is described with its HTTP status, and malformed bytes are an
// error rather than an allow.
func TestAnswerDecode(t *testing.T) {
	meta, err := structpb.NewStruct(map[string]any{"sub": "alice", "scope": []any{"a", "b"}, "exp": 1.7e9})
	if err != nil {
		t.Fatal(err)
	}
	allowed := &authv3.CheckResponse{
		Status: &rpcstatus.Status{},
		HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{
			HeadersToRemove: []string{"authorization"},
			Headers:         []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: "x-user", Value: "alice"}}},
		}},
		DynamicMetadata: meta,
	}
	denied := &authv3.CheckResponse{
		Status: &rpcstatus.Status{Code: 16, Message: "no token"},
		HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
			Status: &typev3.HttpStatus{Code: typev3.StatusCode_Unauthorized},
		}},
	}
	// A denial whose status comes after the other fields, then is set
	// again: the last code read wins, as in a protobuf merge.
	reordered, err := proto.Marshal(&authv3.CheckResponse{Status: &rpcstatus.Status{Code: 0}})
	if err != nil {
		t.Fatal(err)
	}
	deniedBytes, err := proto.Marshal(denied)
	if err != nil {
		t.Fatal(err)
	}
	reordered = append(reordered, deniedBytes...)
	allowedBytes, err := proto.Marshal(allowed)
	if err != nil {
		t.Fatal(err)
	}

	for _, messages := range []bool{false, true} {
		a := &answer{messages: messages}
		if err := a.decode(allowedBytes); err != nil || !a.ok() {
			t.Errorf("messages=%v: allowed answer: ok=%v err=%v", messages, a.ok(), err)
		}
		for _, b := range [][]byte{deniedBytes, reordered} {
			if err := a.decode(b); err != nil || a.ok() {
				t.Errorf("messages=%v: denied answer: ok=%v err=%v", messages, a.ok(), err)
			}
			if got := a.String(); got != "status code 16, http 401: no token" {
				t.Errorf("messages=%v: denial described as %q", messages, got)
			}
		}
		// A later status without a code does not clear an earlier one.
		laterStatus, err := proto.Marshal(&authv3.CheckResponse{Status: &rpcstatus.Status{Message: "later"}})
		if err != nil {
			t.Fatal(err)
		}
		if err := a.decode(append(slices.Clone(deniedBytes), laterStatus...)); err != nil || a.ok() {
			t.Errorf("messages=%v: denial then a status without code: ok=%v err=%v", messages, a.ok(), err)
		}
		if !messages {
			if n := testing.AllocsPerRun(100, func() { _ = a.decode(allowedBytes) }); n != 0 {
				t.Errorf("reading an allowed answer allocates %v times", n)
			}
		}
		for _, bad := range [][]byte{allowedBytes[:len(allowedBytes)-3], {0x0a, 0x05, 0x08}, {0xff}} {
			if err := a.decode(bad); err == nil {
				t.Errorf("messages=%v: malformed %x decoded without error (ok=%v)", messages, bad, a.ok())
			}
		}
	}
}

// TestRedisServerInstalled fails the suite when redis-server is missing: the
// redis, redis-shared and revocation scenarios then report themselves
// skipped, and their tests accept that, so without this a missing
// redis-server would pass unnoticed (.ci/run installs it).
func TestRedisServerInstalled(t *testing.T) {
	if !redisInstalled() {
		t.Fatal("redis-server is not on PATH: the Redis scenarios' tests cannot run (apt-get install redis-server)")
	}
}
