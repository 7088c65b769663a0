package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRevocationScenario runs the revocation scenario briefly against the
// real binary and a redis-server of its own, as a user would: every
// revocation pushed to A is measured until B refuses that token, B still
// refuses every revoked token afterwards and allows every other, the load
// on B saw no refusal of a token not being revoked, and every process
// started is gone.
func TestRevocationScenario(t *testing.T) {
	t.Parallel()
	if !redisInstalled() {
		t.Fatal("redis-server is not installed: the revocation scenario needs it")
	}
	const revocations, tokens = 12, 60
	o := Options{
		Server: serverBin, Scenarios: []string{scRevocation}, Concurrency: []int{4},
		Duration: 600 * time.Millisecond, MaxRequests: 2_000_000, Rounds: 1,
		Revocations: revocations, RevocationTokens: tokens,
		Progress: testWriter{t}, Command: "go test",
	}
	rep, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Err != "" {
		t.Fatalf("harness stopped early: %s", rep.Err)
	}
	var sc *Scenario
	for _, s := range rep.Scenarios {
		if s.Name == scRevocation {
			sc = s
		}
	}
	if sc == nil || sc.Status != "" || len(sc.Series) != 1 {
		t.Fatalf("revocation scenario: %+v", sc)
	}
	runs := sc.Series[0].Runs[4]
	if len(runs) != 1 {
		t.Fatalf("%d runs at c=4, want 1", len(runs))
	}
	r := runs[0]
	rv := r.Revocation
	if rv == nil {
		t.Fatal("no revocation figures")
	}
	if len(rv.Delays) != revocations || rv.Planned != revocations || rv.Failed != 0 || rv.NotStarted != 0 {
		t.Errorf("%d delays measured of %d planned, %d failed (%q), %d not started; want all %d measured",
			len(rv.Delays), rv.Planned, rv.Failed, rv.FailSample, rv.NotStarted, revocations)
	}
	for i, d := range rv.Delays {
		if d <= 0 || (i > 0 && d < rv.Delays[i-1]) {
			t.Errorf("delays %v: not positive and ascending", rv.Delays)
			break
		}
	}
	if rv.Probes < revocations {
		t.Errorf("%d probe Checks for %d revocations", rv.Probes, revocations)
	}
	if rv.SweepRevoked != revocations || rv.SweepAllowed != tokens-revocations || rv.SweepWrong != 0 {
		t.Errorf("final check: %d revoked refused, %d allowed, %d wrong (%q); want %d, %d, 0",
			rv.SweepRevoked, rv.SweepAllowed, rv.SweepWrong, rv.SweepSample, revocations, tokens-revocations)
	}
	if r.Requests <= 0 || r.Errors != 0 || r.WarmErrors != 0 {
		t.Errorf("load on B: %d Checks, %d errors, %d in warm-up; notes %q", r.Requests, r.Errors, r.WarmErrors, sc.Notes)
	}
	if r.Stop != "revocations done" {
		t.Errorf("the load ended by %q, want revocations done", r.Stop)
	}
	if r.Expected > revocations*o.Concurrency[0] {
		t.Errorf("%d load Checks refused in flight: more than the Checks that can be in flight at each revocation", r.Expected)
	}
	if r.ServerCPU < 0 || r.PeakRSS <= 0 {
		t.Errorf("B's CPU %v, peak RSS %d: not read", r.ServerCPU, r.PeakRSS)
	}

	// floor (added by Run), redis-server, A and B.
	var names []string
	for _, p := range rep.Procs {
		names = append(names, p.Name)
		if !pidGone(p.PID, p.StartTime) {
			t.Errorf("%s (PID %d) still runs after the harness returned", p.Name, p.PID)
		}
	}
	if got := strings.Join(names, ","); got != "floor-server,redis-server,extauthz-a,extauthz-b" {
		t.Errorf("processes started: %s", got)
	}

	var md bytes.Buffer
	rep.WriteMarkdown(&md)
	for _, want := range []string{
		"## revocation — two replicas sharing their own redis-server",
		"| concurrency | revocations | p50 | p90 | p99 | max | target p99 ≤ 1.00 s | failed | load Checks refused in flight |",
		"| 4 | 12 | ",
		"Final check on B after each run (every token once): c=4 12 revoked tokens refused as revoked, 48 others allowed, 0 wrong.",
	} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, md.String())
		}
	}
	if !rep.clean() {
		t.Errorf("report not clean:\n%s", md.String())
	}
}

// TestReplicaConfig: the replicas' policy file, with its HTTP listener,
// shared Redis and ssf section, passes extauthz's own parser.
func TestReplicaConfig(t *testing.T) {
	t.Parallel()
	rs, err := startIssuer("RS256")
	if err != nil {
		t.Fatal(err)
	}
	defer rs.close()
	tr, err := startTransmitter()
	if err != nil {
		t.Fatal(err)
	}
	defer tr.close()
	conf := serverConfig(configSpec{grpc: "127.0.0.1:1", http: "127.0.0.1:2", issuers: []*issuer{rs}, tr: tr, redisURL: "redis://127.0.0.1:3/0", maxEntries: 10})
	path := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(serverBin, "check-config", path).CombinedOutput(); err != nil {
		t.Errorf("check-config: %v\n%s\n%s", err, out, conf)
	}
	for _, want := range []string{`http: "127.0.0.1:2"`, "ssf:", tr.issuer, rs.Issuer()} {
		if !strings.Contains(conf, want) {
			t.Errorf("config lacks %q:\n%s", want, conf)
		}
	}
}
