package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"google.golang.org/protobuf/proto"

	"github.com/extauthz/extauthz/pkg/config"
)

// TestNewScenarios runs floor-tuned, hit-audit, full-eddsa, redis and
// redis-shared end to end on a tiny matrix: every run allowed every Check,
// the audit lines were drained, and redis-shared read Redis and both
// replicas' metrics.
func TestNewScenarios(t *testing.T) {
	t.Parallel()
	scenarios := []string{scFloor, scFloorTuned, scHit, scHitAudit, scFullEdDSA, scRedis, scRedisShared}
	o := Options{
		Server: serverBin, Scenarios: scenarios, Concurrency: []int{2},
		Duration: 300 * time.Millisecond, MaxRequests: 200_000, Rounds: 1,
		FullEdDSATokens: 300, WarmTokens: 20, RedisTokens: 40, SharedTokens: 60, SharedConcurrency: 8,
		Progress: testWriter{t}, Command: "go test",
	}
	rep, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Err != "" {
		t.Fatalf("harness stopped early: %s", rep.Err)
	}
	wantSeries := map[string][]string{
		scFloor:       {"floor"},
		scFloorTuned:  {"floor-tuned"},
		scHit:         {"extauthz serve", pairedTuned},
		scHitAudit:    {"extauthz serve, audit on", pairedHit},
		scFullEdDSA:   {"extauthz serve", pairedFloor, pairedVerify, "jwx-floor"},
		scRedis:       {"extauthz serve + redis", pairedHit, pairedSameTokens, pairedFloorTokens, pairedFloorGet, pairedFloorGoRedis},
		scRedisShared: {"A: verifies every token", "B (fresh): the same tokens"},
	}
	for _, sc := range rep.Scenarios {
		if (sc.Name == scRedis || sc.Name == scRedisShared) && !redisInstalled() {
			if sc.Status != "skipped: redis-server not installed" {
				t.Errorf("%s without redis-server: status %q", sc.Name, sc.Status)
			}
			continue
		}
		if sc.Status != "" {
			t.Errorf("%s: %s", sc.Name, sc.Status)
			continue
		}
		var targets []string
		for _, s := range sc.Series {
			targets = append(targets, s.Target)
			for c, runs := range s.Runs {
				for _, r := range runs {
					if r.Requests == 0 || r.Errors != 0 || r.WarmErrors != 0 {
						t.Errorf("%s / %s c=%d: %d Checks, %d errors (+%d in warm-up): %v", sc.Name, s.Target, c, r.Requests, r.Errors, r.WarmErrors, r.ErrSample)
					}
					switch name := sc.Name; {
					case s.Target == pairedHit, s.Target == pairedSameTokens, s.Target == pairedFloorTokens, s.Target == pairedFloorGet, s.Target == pairedFloorGoRedis:
						if r.OutputLines >= 0 || r.AuxCPU >= 0 {
							t.Errorf("%s / %s c=%d: output counted (%v) or CPU split (%v): a plain hit", name, s.Target, c, r.OutputLines, r.AuxCPU)
						}
					case name == scHitAudit:
						// One audit line per allowed Check, drained.
						if r.OutputLines < 0.99 || r.OutputBytes < 100 {
							t.Errorf("hit-audit c=%d: %.3f lines, %.0f bytes of output per Check; want an audit line each", c, r.OutputLines, r.OutputBytes)
						}
					case name == scHit && s.Target != pairedTuned:
						if r.OutputLines >= 0 {
							t.Errorf("hit c=%d: output counted (%v) though it goes to a log file", c, r.OutputLines)
						}
					case name == scRedis, name == scRedisShared:
						if r.ServerCPU >= 0 && (r.AuxCPU < 0 || r.MainCPU < 0 || r.MainCPU+r.AuxCPU-r.ServerCPU > 1e-6) {
							t.Errorf("%s c=%d: CPU %v not split into %v + %v", sc.Name, c, r.ServerCPU, r.MainCPU, r.AuxCPU)
						}
					}
				}
			}
		}
		if strings.Join(targets, "|") != strings.Join(wantSeries[sc.Name], "|") {
			t.Errorf("%s: series %q, want %q", sc.Name, targets, wantSeries[sc.Name])
		}
		if sc.Name == scRedisShared {
			a := sc.Series[0].Runs[o.SharedConcurrency]
			if len(a) != 1 || a[0].Shared == nil {
				t.Fatalf("redis-shared: no shared figures on A's run: %+v", a)
			}
			sr := a[0].Shared
			if sr.KeysErr != "" || sr.AMetricsErr != "" || sr.BMetricsErr != "" {
				t.Fatalf("redis-shared: %q %q %q", sr.KeysErr, sr.AMetricsErr, sr.BMetricsErr)
			}
			if sr.KeysBefore < 1 {
				t.Errorf("redis-shared: no verdict key in Redis after the warm-up (pattern %s)", verdictKeyPattern)
			}
			// Every one of B's Checks is a miss of its fresh in-process
			// tier, then a Redis hit or miss.
			if sr.BLocalHit != 0 || sr.BRedisHit+sr.BRedisMiss != float64(o.SharedTokens) {
				t.Errorf("redis-shared: B's lookups: local hits %v, Redis hits %v + misses %v, want 0 and %d in all", sr.BLocalHit, sr.BRedisHit, sr.BRedisMiss, o.SharedTokens)
			}
			// What B found in Redis, A put there.
			if written := sr.KeysAfter - sr.KeysBefore; sr.BRedisHit > float64(written) {
				t.Errorf("redis-shared: B had %v Redis hits, but only %d verdict keys were written", sr.BRedisHit, written)
			}
		}
	}
	var md bytes.Buffer
	rep.WriteMarkdown(&md)
	out := md.String()
	for _, want := range []string{"| ×tuned |", "p99 ×tuned", "Default audit setting against audit off", "Redis-tier hit against the in-process hit", "The Redis-tier hit against its limit measured", "| 2 | rueidis |", "| 2 | go-redis |", "Sharing under saturation", droppedMetric,
		"**Full verification (EdDSA) against the limit, same run**", "**The limit measured** (floor-verify, same stream", "Raw ed25519.Verify (800-byte message), CPU µs per verify"} {
		if !redisInstalled() && (strings.Contains(want, "Redis") || strings.Contains(want, "Sharing") || want == droppedMetric) {
			continue
		}
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if t.Failed() {
		t.Log(out)
	}
	for _, p := range rep.Procs {
		if !pidGone(p.PID, p.StartTime) {
			t.Errorf("%s PID %d still running", p.Name, p.PID)
		}
	}
}

// TestEdDSATokens: the EdDSA issuer's tokens verify with jwx against its
// own JWKS (jwx-floor's code path) and with the gateway's (check-config
// accepts the policy; TestNewScenarios sends them to extauthz serve).
func TestEdDSATokens(t *testing.T) {
	t.Parallel()
	ed := testIssuer(t, "EdDSA")
	tok, err := mintToken(ed)
	if err != nil {
		t.Fatal(err)
	}
	hdr, _, _ := strings.Cut(tok, ".")
	if !strings.HasPrefix(hdr, "eyJ") {
		t.Fatalf("not a JWS: %q", tok)
	}
	set, err := jwk.Fetch(context.Background(), ed.JWKSURL())
	if err != nil {
		t.Fatal(err)
	}
	srv := &jwxServer{set: set, issuer: ed.Issuer(), audience: resourceURI}
	raw, err := buildRequest(tok)
	if err != nil {
		t.Fatal(err)
	}
	req := new(authv3.CheckRequest)
	if err := proto.Unmarshal(raw, req); err != nil {
		t.Fatal(err)
	}
	resp, err := srv.Check(context.Background(), req)
	if err != nil || resp.GetStatus().GetCode() != 0 {
		t.Fatalf("jwx refused an EdDSA token: %v %v", resp.GetStatus(), err)
	}
	// A token of another issuer's key is refused: the check is real.
	rs := testIssuer(t, "RS256")
	other, _ := mintToken(rs)
	raw, _ = buildRequest(other)
	req = new(authv3.CheckRequest)
	_ = proto.Unmarshal(raw, req)
	if resp, _ := srv.Check(context.Background(), req); resp.GetStatus().GetCode() == 0 {
		t.Fatal("jwx allowed an RS256 token against the EdDSA key set")
	}
	if k, ok := set.Key(0); !ok || k.KeyType().String() != "OKP" {
		t.Fatalf("EdDSA key set: %v", k)
	}
}

// TestGeneratedConfigAuditAdmin: the policies hit-audit, redis-shared and
// floor-tuned use are valid, say what they should, and floor-tuned-server
// reads the gateway's gRPC and runtime defaults from them.
func TestGeneratedConfigAuditAdmin(t *testing.T) {
	t.Parallel()
	rs := testIssuer(t, "RS256")
	for _, spec := range []configSpec{
		{grpc: "127.0.0.1:1", issuers: []*issuer{rs}, maxEntries: 100_000, audit: true},
		{grpc: "127.0.0.1:1", issuers: []*issuer{rs}, maxEntries: 100_000},
		{grpc: "127.0.0.1:1", admin: "127.0.0.1:2", issuers: []*issuer{rs}, redisURL: "redis://127.0.0.1:3/0", maxEntries: 40_400},
		{grpc: "127.0.0.1:1", admin: "127.0.0.1:2", pprof: true, issuers: []*issuer{rs}, maxEntries: 100_000},
	} {
		conf := serverConfig(spec)
		path := filepath.Join(t.TempDir(), "c.yaml")
		if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(serverBin, "check-config", path).CombinedOutput(); err != nil {
			t.Errorf("check-config: %v\n%s\n%s", err, out, conf)
		}
		cfg, err := config.Parse([]byte(conf))
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Log.AuditEnabled() != spec.audit {
			t.Errorf("audit %v: the policy says log.audit enabled %v", spec.audit, cfg.Log.AuditEnabled())
		}
		if spec.audit && (cfg.Log.Audit.AllowSampleRate != 1 || cfg.Log.Level != "info") {
			t.Errorf("audit: allow_sample_rate %v, level %q; want 1 and info", cfg.Log.Audit.AllowSampleRate, cfg.Log.Level)
		}
		if cfg.Admin.PProf != spec.pprof {
			t.Errorf("pprof %v: the policy says admin.pprof %v", spec.pprof, cfg.Admin.PProf)
		}
		if want := spec.admin; want != "" && cfg.Listen.Admin != want {
			t.Errorf("admin listener %q, want %q", cfg.Listen.Admin, want)
		}
		// floor-tuned-server's options come from these defaults.
		if cfg.GRPC.StreamWorkers <= 0 || cfg.Runtime.GCHeadroomBytes <= 0 {
			t.Errorf("stream_workers %d, gc_headroom_bytes %d: the gateway's defaults should be on", cfg.GRPC.StreamWorkers, cfg.Runtime.GCHeadroomBytes)
		}
		if n := len(tunedServerOptions(cfg)); n != 5 {
			t.Errorf("%d tuned server options, want 5 (recv bound, keepalive params and policy, header list, stream workers)", n)
		}
	}
}

func TestParseProm(t *testing.T) {
	const text = `# HELP extauthz_cache_lookups_total Verdict cache lookups by tier and result (hit or miss).
# TYPE extauthz_cache_lookups_total counter
extauthz_cache_lookups_total{result="hit",tier="local"} 12
extauthz_cache_lookups_total{result="hit",tier="redis"} 3.5e+03
extauthz_cache_lookups_total{result="miss",tier="redis"} 7
extauthz_redis_circuit_open 1
extauthz_redis_errors_total{op="add"} 4 1700000000000
extauthz_redis_errors_total{op="get"} 5
weird{a="x,y}",b="q\"uote\\"} +Inf

go_gc_gogc_percent NaN
`
	ss, err := parseProm(text)
	if err != nil {
		t.Fatal(err)
	}
	if len(ss) != 8 {
		t.Fatalf("%d samples, want 8: %v", len(ss), ss)
	}
	for _, tc := range []struct {
		name  string
		match map[string]string
		want  float64
		ok    bool
	}{
		{"extauthz_cache_lookups_total", map[string]string{"tier": "redis", "result": "hit"}, 3500, true},
		{"extauthz_cache_lookups_total", map[string]string{"tier": "redis"}, 3507, true},
		{"extauthz_cache_lookups_total", nil, 3519, true},
		{"extauthz_redis_errors_total", nil, 9, true},
		{"extauthz_redis_circuit_open", nil, 1, true},
		{droppedMetric, nil, 0, false},
		{"extauthz_cache_lookups_total", map[string]string{"tier": "nowhere"}, 0, false},
	} {
		got, ok := sumMetric(ss, tc.name, tc.match)
		if got != tc.want || ok != tc.ok {
			t.Errorf("sumMetric(%s, %v) = %v, %v; want %v, %v", tc.name, tc.match, got, ok, tc.want, tc.ok)
		}
	}
	if w := ss[6]; w.labels["a"] != "x,y}" || w.labels["b"] != `q"uote\` {
		t.Errorf("escaped labels: %q", w.labels)
	}
	for _, bad := range []string{"novalue", `m{a="b"`, `m{a=b} 1`, `m{a="b"} x`, `m 1 2 3`} {
		if _, err := parseProm(bad); err == nil {
			t.Errorf("parseProm(%q): no error", bad)
		}
	}
}

func TestDrain(t *testing.T) {
	d := &drain{}
	for i := range 1000 {
		if _, err := d.Write([]byte(strings.Repeat("x", i%50) + "\n")); err != nil {
			t.Fatal(err)
		}
	}
	if c := d.counts(); c[0] != 1000 {
		t.Errorf("%d lines, want 1000", c[0])
	}
	_, _ = d.Write([]byte("last line\n"))
	tail := d.tail(3)
	if !strings.HasSuffix(tail, "\nlast line") || strings.Count(tail, "\n") != 2 {
		t.Errorf("tail: %q", tail)
	}
	if len(d.last) > drainKeep {
		t.Errorf("keeps %d bytes, at most %d", len(d.last), drainKeep)
	}
	big := bytes.Repeat([]byte("y"), 3*drainKeep)
	_, _ = d.Write(big)
	if len(d.last) != drainKeep {
		t.Errorf("after a big write: keeps %d bytes", len(d.last))
	}
}

// TestReportComparisons renders the new comparison tables from figures
// given by hand.
func TestReportComparisons(t *testing.T) {
	var b bytes.Buffer
	hit := map[int]row{16: {conc: 16, throughput: 20_000, p99: 2 * time.Millisecond, cpu: 30}}
	// The Redis-tier hit is held to the same tokens' in-process hit; the one-token hit is shown.
	same := map[int]row{16: {conc: 16, throughput: 20_000, p99: 2 * time.Millisecond, cpu: 30, mainCPU: -1, auxCPU: -1, roundCPU: []float64{30, 31}}}
	oneToken := map[int]row{16: {conc: 16, throughput: 22_000, p99: 2 * time.Millisecond, cpu: 28}}
	writeRedisVsHit(&b, []row{
		{conc: 16, throughput: 15_000, p99: 2500 * time.Microsecond, cpu: 50, mainCPU: 38, auxCPU: 12, redisHits: 1, roundMain: []float64{38, 42.5, 39}},
		{conc: 64, throughput: 15_000, p99: time.Millisecond, cpu: 50, mainCPU: 38, auxCPU: 12, redisHits: 1},
	}, same, oneToken)
	writeRedisVsHit(&b, []row{{conc: 16, throughput: 5_000, p99: 9 * time.Millisecond, cpu: 130, mainCPU: 130, auxCPU: 0, redisHits: 0}}, same, nil)
	writeRedisVsHit(&b, []row{{conc: 16, mainCPU: 38}}, nil, oneToken)
	writeAuditVsHit(&b, []row{{conc: 16, throughput: 18_000, p99: 2 * time.Millisecond, cpu: 36}}, hit)
	sc := &Scenario{Name: scRedisShared}
	s := sc.series("A")
	s.Runs[64] = []*Result{{Shared: &sharedRun{Tokens: 20_000, KeysBefore: 200, KeysAfter: 20_200, Settle: 600 * time.Millisecond,
		AErrors: map[string]float64{"get": 3, "add": 1}, AErrorsTotal: 4, OpenSamples: 0, Samples: 20, Dropped: -1, BRedisHit: 19_990, BRedisMiss: 10}}}
	writeShared(&b, sc)
	// Three interleaved rounds, the second missing the raw verify.
	writeVerifyLimit(&b, "RS256", []row{{conc: 64, cpu: 46, rawVerify: 22, roundCPU: []float64{46, 50, 44}, roundRaw: []float64{22, -1, 23}}},
		map[int]row{64: {conc: 64, cpu: 20, roundCPU: []float64{20, 22, 18}}}, true,
		map[int]row{64: {conc: 64, cpu: 41, roundCPU: []float64{40, 43, -1}}})
	// Over 1.15× the measured limit.
	writeVerifyLimit(&b, "ES256", []row{{conc: 16, cpu: 120, rawVerify: 70}},
		map[int]row{16: {conc: 16, cpu: 20}}, true, map[int]row{16: {conc: 16, cpu: 100}})
	writeVerifyLimit(&b, "EdDSA", []row{{conc: 64, cpu: 46, rawVerify: 22}}, nil, false, nil)
	// Two rounds of DPoP, the hit's second figure missing.
	writeDPoPTarget(&b, []row{{conc: 64, cpu: 92, rawVerify: 61, roundCPU: []float64{92, 95}, roundRaw: []float64{61, 62}}},
		map[int]row{64: {conc: 64, cpu: 22, roundCPU: []float64{22, -1}}},
		map[int]row{64: {conc: 64, cpu: 23, roundCPU: []float64{23, 24}}},
		map[int]row{64: {conc: 64, cpu: 87, roundCPU: []float64{87, 88}}})
	out := b.String()
	for _, want := range []string{
		"Full verification against the limit (floor-tuned + one raw verify): floor-tuned not measured in this run",
		"(the limit: the server CPU per Check of floor-tuned, sent the same requests in one window with the gateway in each round, alternating slices (floor-tuned, same stream) + one raw rsa.VerifyPKCS1v15",
		"| 64 | 46.0 | 20.0 | 22.0 | 42.0 | 1.10 | +4.0 | 1.10, –, 1.07 |",
		"**The limit measured** (floor-verify, same stream: floor-tuned checking each token's RS256 signature and nothing else",
		"| 64 | 46.0 | 41.0 | -1.0 | 1.12 | +5.0 | 1.15, 1.16, – |",
		"| 16 | 120.0 | 100.0 | +10.0 | 1.20 (**over 1.15×**) | +20.0 |  |",
		"| 16 | 38.0 | 30.0 | +8.0 | 12.0 | 0.75 | 2.50 ms | 2.00 ms | 1.25 | 28.0 | +10.0 | +8.0, +11.5, – |", // within both targets
		"| 16 | 130.0 | 30.0 | +100.0 (**over target**) | 0.0 |",
		"| 16 | 130.0 | 30.0 | +100.0 (**over target**) | 0.0 | 0.25 | 9.00 ms | 2.00 ms | 4.50 (**over target**) | n/a | n/a |  |",
		"Redis-tier hit against the in-process hit: hit, same tokens not measured in this run.",
		"4.50 (**over target**)",
		"**Not a Redis-tier figure where Redis served fewer than 90 % of the Checks** (Redis hits per Check: c=16 0.00)",
		"| 16 | 0.90 (**under target**) | 1.00 | 36.0 | 30.0 | +6.0 |",
		"c=64 92.0 against 22.0 + 61.0 + 10 = 93.0 (70.0 over hit, 9.0 beyond the raw verify; each round, beyond hit + the raw verify: +9.0, –): met",
		"| 64 | 92.0 | 22.0 | 23.0 | 87.0 | 64.0 | 61.0 | 96.0 | met (+6.0 beyond hit + the check) | +6.0, – |",
		"| 1 | 20,000 | 20,000 (settled after 600ms; 200 before) | 100.0 % | add 1, get 3; 4 since start | 0; 0 of 20; 0 | absent | 19,990 | 100.0 % | 10 | 0 |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
	if strings.Count(out, "Not a Redis-tier figure") != 1 {
		t.Errorf("the warning must appear once, for the run without Redis hits:\n%s", out)
	}
}

// TestProfile: with --profile, every measured part on extauthz serve
// leaves a CPU profile, named after the scenario, the target and the
// concurrency; the floor, which is not extauthz, leaves none.
func TestProfile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	o := Options{
		Server: serverBin, Scenarios: []string{scFloor, scHit}, Concurrency: []int{2},
		Duration: 300 * time.Millisecond, MaxRequests: 200_000, Rounds: 2, WarmTokens: 20,
		ProfileDir: dir, Progress: testWriter{t}, Command: "go test",
	}
	rep, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Err != "" {
		t.Fatalf("harness stopped early: %s", rep.Err)
	}
	for _, sc := range rep.Scenarios {
		for _, n := range sc.Notes {
			if strings.Contains(n, "no CPU profile") {
				t.Errorf("%s: %s", sc.Name, n)
			}
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b { // a profile is gzipped protobuf
			t.Errorf("%s is not a gzipped profile (%d bytes)", e.Name(), len(b))
		}
	}
	if want := []string{"hit-extauthz-serve-c2-1.pprof", "hit-extauthz-serve-c2-2.pprof"}; !slices.Equal(names, want) {
		t.Errorf("profiles %q, want %q", names, want)
	}
}

func TestProfileName(t *testing.T) {
	for _, c := range []struct {
		sc, target string
		conc       int
		want       string
	}{
		{"hit", "extauthz serve", 64, "hit-extauthz-serve-c64"},
		{"redis", "extauthz serve + redis", 16, "redis-extauthz-serve-redis-c16"},
		{"hit-audit", "extauthz serve, audit on", 1, "hit-audit-extauthz-serve-audit-on-c1"},
		{"x", "../../etc/passwd", 1, "x-etc-passwd-c1"},
	} {
		if got := profileName(c.sc, c.target, c.conc); got != c.want {
			t.Errorf("profileName(%q, %q, %d) = %q, want %q", c.sc, c.target, c.conc, got, c.want)
		}
	}
}
