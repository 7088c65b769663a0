package main

import (
	"fmt"
	"io"
	"maps"
	"math"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"
)

// row is one concurrency's figures: the medians of its rounds.
type row struct {
	conc                int
	rounds              int
	requests            int
	throughput          float64
	p50, p90, p99, p999 time.Duration
	cpu, client         float64 // µs/Check; cpu < 0 unknown
	mainCPU, auxCPU     float64 // cpu split: the gateway's, redis-server's; < 0 n/a
	outLines, outBytes  float64 // server output per Check (hit-audit); < 0 n/a
	peak, auxPeak       int64
	errors, warmErrors  int // totals over the rounds, never medians
	stops               []string
	redisHits, redisMis float64
	redisCmdsRead       float64
	introspections      float64 // endpoint calls per Check; < 0 n/a
	introspectConns     float64 // new endpoint connections per call; < 0 n/a
	exchanges           int64   // token endpoint calls while measuring, total over the rounds; < 0 n/a
	verified            int     // answers checked in full per run (median)
	rawVerify           float64 // µs of CPU per raw ecdsa.VerifyASN1 (median); < 0 n/a
	// roundCPU and roundRaw are each round's server CPU per Check and raw
	// verify, in the order of the rounds (< 0 unknown): the rounds of the
	// scenarios are interleaved, so round i of one scenario ran beside
	// round i of another.
	roundCPU, roundRaw []float64
	roundMain          []float64 // each round's gateway CPU per Check of a split figure
	roundTP            []float64 // each round's Checks/s, in the same order
	rss                int64
	idle, other, steal float64 // cores; < 0 unknown
}

func median[T int | int64 | float64 | time.Duration](xs []T) T {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func pick[T any](runs []*Result, f func(*Result) T) []T {
	out := make([]T, len(runs))
	for i, r := range runs {
		out[i] = f(r)
	}
	return out
}

func summarize(conc int, runs []*Result) row {
	rw := row{conc: conc, rounds: len(runs)}
	rw.requests = median(pick(runs, func(r *Result) int { return r.Requests }))
	rw.throughput = median(pick(runs, func(r *Result) float64 { return r.Throughput }))
	rw.p50 = median(pick(runs, func(r *Result) time.Duration { return r.P50 }))
	rw.p90 = median(pick(runs, func(r *Result) time.Duration { return r.P90 }))
	rw.p99 = median(pick(runs, func(r *Result) time.Duration { return r.P99 }))
	rw.p999 = median(pick(runs, func(r *Result) time.Duration { return r.P999 }))
	rw.cpu = -1
	var cpus []float64
	for _, r := range runs {
		if r.ServerCPU >= 0 {
			cpus = append(cpus, r.ServerCPU)
		}
	}
	if len(cpus) > 0 {
		rw.cpu = median(cpus)
	}
	rw.client = median(pick(runs, func(r *Result) float64 { return r.ClientCPU }))
	rw.mainCPU = median(pick(runs, func(r *Result) float64 { return r.MainCPU }))
	rw.auxCPU = median(pick(runs, func(r *Result) float64 { return r.AuxCPU }))
	rw.outLines = median(pick(runs, func(r *Result) float64 { return r.OutputLines }))
	rw.outBytes = median(pick(runs, func(r *Result) float64 { return r.OutputBytes }))
	rw.peak = median(pick(runs, func(r *Result) int64 { return r.PeakRSS }))
	rw.auxPeak = median(pick(runs, func(r *Result) int64 { return r.AuxPeakRSS }))
	rw.redisHits = median(pick(runs, func(r *Result) float64 { return r.RedisHits }))
	rw.redisMis = median(pick(runs, func(r *Result) float64 { return r.RedisMisses }))
	rw.redisCmdsRead = median(pick(runs, func(r *Result) float64 { return r.RedisCmdsRead }))
	rw.introspections = median(pick(runs, func(r *Result) float64 { return r.Introspections }))
	rw.introspectConns = median(pick(runs, func(r *Result) float64 { return r.IntrospectConns }))
	rw.verified = median(pick(runs, func(r *Result) int { return r.Verified }))
	rw.rawVerify = median(pick(runs, func(r *Result) float64 { return r.RawVerify }))
	rw.roundCPU = pick(runs, func(r *Result) float64 { return r.ServerCPU })
	rw.roundMain = pick(runs, func(r *Result) float64 { return r.MainCPU })
	rw.roundRaw = pick(runs, func(r *Result) float64 { return r.RawVerify })
	rw.roundTP = pick(runs, func(r *Result) float64 { return r.Throughput })
	rw.exchanges = -1
	for _, r := range runs {
		if r.Exchanges >= 0 {
			rw.exchanges = max(rw.exchanges, 0) + r.Exchanges
		}
	}
	rw.rss = median(pick(runs, func(r *Result) int64 { return r.RSS }))
	rw.idle = median(pick(runs, func(r *Result) float64 { return r.IdleCores }))
	rw.other = median(pick(runs, func(r *Result) float64 { return r.OtherCores }))
	rw.steal = median(pick(runs, func(r *Result) float64 { return r.Steal }))
	for _, r := range runs {
		rw.errors += r.Errors
		rw.warmErrors += r.WarmErrors
		if !slices.Contains(rw.stops, r.Stop) {
			rw.stops = append(rw.stops, r.Stop)
		}
	}
	return rw
}

func (s *Series) rows(concs []int) []row {
	var out []row
	for _, c := range concs {
		if runs := s.Runs[c]; len(runs) > 0 {
			out = append(out, summarize(c, runs))
		}
	}
	return out
}

// WriteMarkdown renders the report.
func (rep *Report) WriteMarkdown(w io.Writer) {
	m := rep.Machine
	o := rep.Opts
	fmt.Fprintf(w, "# extauthz-load results\n\n")
	fmt.Fprintf(w, "## Machine\n\n")
	fmt.Fprintf(w, "- CPU: %s — %d logical CPUs (this process may use %d)\n", m.CPU, m.Cores, m.Usable)
	fmt.Fprintf(w, "- Memory: %s\n", fmtBytes(m.Memory))
	fmt.Fprintf(w, "- Kernel: %s\n", m.Kernel)
	fmt.Fprintf(w, "- Go: %s (this harness)", m.GoVersion)
	if m.ServerGo != "" {
		fmt.Fprintf(w, ", %s (%s)", m.ServerGo, o.Server)
	}
	fmt.Fprintf(w, "\n")
	if m.Redis != "" {
		fmt.Fprintf(w, "- %s\n", m.Redis)
	}
	fmt.Fprintf(w, "- Load average (1, 5, 15 min): %s at the start, %s at the end\n", m.LoadStart, m.LoadEnd)
	fmt.Fprintf(w, "- CLK_TCK %d (server CPU is read from /proc/PID/stat in ticks of %s)\n", m.ClockTick, fmtDur(time.Second/time.Duration(max(1, m.ClockTick))))
	fmt.Fprintf(w, "- Client (this tool) and servers share the machine's cores; every figure includes that competition.\n\n")

	fmt.Fprintf(w, "## Command\n\n```\n%s\n```\n\n", rep.Command)
	fmt.Fprintf(w, "Concurrency %s on one gRPC connection; each run lasts %s or %s Checks, whichever comes first; %d round(s)",
		joinInts(o.Concurrency), fmtDur(o.Duration), thousands(o.MaxRequests), o.Rounds)
	if o.Rounds > 1 {
		fmt.Fprintf(w, " interleaved: figures are medians over the rounds, errors are totals")
	}
	fmt.Fprintf(w, ". Started %s, took %s.", rep.Started.UTC().Format(time.RFC3339), fmtDur(rep.Elapsed))
	if rep.Err != "" {
		fmt.Fprintf(w, " **Stopped early: %s** — what follows is what was measured until then.", rep.Err)
	}
	fmt.Fprintf(w, "\n\nRequests are pkg/check's realisticRequest (POST %s, ten headers besides the pseudo-headers, the token in `authorization`), each built and marshalled once per token. Every answer is checked: anything but ALLOWED (status code 0) is an error. %s Latencies are exact percentiles of every Check of the run (errors included). ×floor compares with the floor at the same concurrency (throughput: higher is better; p99: lower is better). CPU µs/Check is the server process's utime+stime over the run divided by the Checks; peak RSS is its VmHWM.\n\n", resourceURI, decodeSentence(rep.Opts.DecodeMessages))
	if rep.External != "" {
		fmt.Fprintf(w, "External server:\n\n```\n%s\n```\n\n", rep.External)
	}

	floorRows := rep.seriesRows(scFloor, o.Concurrency)
	// ×tuned: relative to floor-tuned as well, when it ran.
	tunedRows := rep.seriesRows(scFloorTuned, o.Concurrency)
	if len(tunedRows) > 0 {
		fmt.Fprintf(w, "×tuned and p99 ×tuned compare the same way with floor-tuned, the floor served with the gateway's gRPC server options and GC headroom.\n\n")
	}

	for _, sc := range rep.Scenarios {
		fmt.Fprintf(w, "## %s\n\n", sc.Title)
		if sc.Status != "" && len(sc.Series) == 0 {
			fmt.Fprintf(w, "%s\n\n", sc.Status)
			continue
		}
		if sc.Status != "" {
			fmt.Fprintf(w, "**%s** (the figures below are the runs completed before)\n\n", sc.Status)
		}
		concs := o.Concurrency
		if sc.Name == scRedisShared {
			concs = []int{o.SharedConcurrency} // its own concurrency, not --concurrency
		}
		for _, s := range sc.Series {
			if len(sc.Series) > 1 {
				fmt.Fprintf(w, "### %s\n\n", s.Target)
			}
			rows := s.rows(concs)
			tuned := len(tunedRows) > 0
			if tuned {
				fmt.Fprintf(w, "| concurrency | Checks/s | ×floor | ×tuned | p50 | p90 | p99 | p99.9 | p99 ×floor | p99 ×tuned | CPU µs/Check | peak RSS | errors |\n")
				fmt.Fprintf(w, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
			} else {
				fmt.Fprintf(w, "| concurrency | Checks/s | ×floor | p50 | p90 | p99 | p99.9 | p99 ×floor | CPU µs/Check | peak RSS | errors |\n")
				fmt.Fprintf(w, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
			}
			for _, r := range rows {
				xTP, xP99 := relTo(r, floorRows)
				tTP, tP99 := relTo(r, tunedRows)
				cpu := "n/a"
				if r.cpu >= 0 {
					cpu = fmt.Sprintf("%.1f", r.cpu)
				}
				peak := "n/a"
				if r.peak > 0 {
					peak = fmtBytes(r.peak)
				}
				if r.auxPeak > 0 {
					peak += " + redis " + fmtBytes(r.auxPeak)
				}
				errs := strconv.Itoa(r.errors)
				if r.warmErrors > 0 {
					errs += fmt.Sprintf(" (+%d in warm-up)", r.warmErrors)
				}
				if tuned {
					fmt.Fprintf(w, "| %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
						r.conc, thousands(int(math.Round(r.throughput))), xTP, tTP, fmtLat(r.p50), fmtLat(r.p90), fmtLat(r.p99), fmtLat(r.p999), xP99, tP99, cpu, peak, errs)
				} else {
					fmt.Fprintf(w, "| %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
						r.conc, thousands(int(math.Round(r.throughput))), xTP, fmtLat(r.p50), fmtLat(r.p90), fmtLat(r.p99), fmtLat(r.p999), xP99, cpu, peak, errs)
				}
			}
			fmt.Fprintf(w, "\n")
			var runs, client, redis, rss, other, intro, exch, verified, raw, split, output []string
			for _, r := range rows {
				runs = append(runs, fmt.Sprintf("c=%d %s Checks (%s)", r.conc, thousands(r.requests), strings.Join(r.stops, ", ")))
				client = append(client, fmt.Sprintf("c=%d %.1f", r.conc, r.client))
				if r.rss > 0 {
					rss = append(rss, fmt.Sprintf("c=%d %s", r.conc, fmtBytes(r.rss)))
				}
				if r.idle >= 0 {
					other = append(other, fmt.Sprintf("c=%d idle %.2f, other processes ≥ %.2f, steal %.2f", r.conc, r.idle, r.other, r.steal))
				}
				if r.auxCPU >= 0 {
					split = append(split, fmt.Sprintf("c=%d %.1f + %.1f", r.conc, r.mainCPU, r.auxCPU))
				}
				if r.outLines >= 0 {
					output = append(output, fmt.Sprintf("c=%d %.3f lines, %.0f bytes", r.conc, r.outLines, r.outBytes))
				}
				if r.redisHits >= 0 {
					x := fmt.Sprintf("c=%d %.2f hits, %.2f misses", r.conc, r.redisHits, r.redisMis)
					if r.redisCmdsRead >= 0 {
						x += fmt.Sprintf(" (%.1f commands per read of redis-server's: the gateway's batches)", r.redisCmdsRead)
					}
					redis = append(redis, x)
				}
				if r.introspections >= 0 {
					s := fmt.Sprintf("c=%d %.4f", r.conc, r.introspections)
					if r.introspectConns >= 0 {
						s += fmt.Sprintf(" (%.3f new TCP connections to the endpoint per call)", r.introspectConns)
					}
					intro = append(intro, s)
				}
				if r.exchanges >= 0 {
					exch = append(exch, fmt.Sprintf("c=%d %d", r.conc, r.exchanges))
				}
				if r.verified > 0 {
					verified = append(verified, fmt.Sprintf("c=%d %s", r.conc, thousands(r.verified)))
				}
				if r.rawVerify >= 0 {
					raw = append(raw, fmt.Sprintf("c=%d %.1f", r.conc, r.rawVerify))
				}
			}
			per := "Checks per run"
			if o.Rounds > 1 {
				per += " (median)"
			}
			fmt.Fprintf(w, "%s, and what ended it: %s. Client CPU µs/Check: %s.", per, strings.Join(runs, "; "), strings.Join(client, ", "))
			if len(rss) > 0 {
				fmt.Fprintf(w, " Server RSS after the run: %s.", strings.Join(rss, ", "))
			}
			if len(other) > 0 {
				fmt.Fprintf(w, " The machine during the run, in cores: %s.", strings.Join(other, "; "))
			}
			if len(split) > 0 {
				fmt.Fprintf(w, " Server CPU µs/Check, the gateway's + redis-server's: %s.", strings.Join(split, ", "))
			}
			if len(output) > 0 {
				fmt.Fprintf(w, " The gateway's output (stdout and stderr, drained through a pipe) per Check while measuring: %s.", strings.Join(output, "; "))
			}
			if len(redis) > 0 {
				fmt.Fprintf(w, " Redis keyspace lookups per Check: %s.", strings.Join(redis, "; "))
			}
			if len(intro) > 0 {
				fmt.Fprintf(w, " Introspection calls per Check: %s.", strings.Join(intro, ", "))
			}
			if len(exch) > 0 {
				fmt.Fprintf(w, " Token exchanges while measuring (all rounds): %s.", strings.Join(exch, ", "))
			}
			if len(verified) > 0 {
				fmt.Fprintf(w, " Answers checked in full per run: %s.", strings.Join(verified, ", "))
			}
			if len(raw) > 0 {
				fmt.Fprintf(w, " **Raw %s, CPU µs per verify**, timed in this tool between the slices of each run (the median of each run): %s.", rawVerifyName(scenarioAlg(sc.Name)), strings.Join(raw, ", "))
			}
			fmt.Fprintf(w, "\n\n")
			// dpop, redis and hit-audit are compared with the hit measured
			// interleaved with them in each round, or else the hit scenario's.
			hitRows := sc.targetRows(pairedHit, o.Concurrency)
			if hitRows == nil {
				hitRows = rep.seriesRows(scHit, o.Concurrency)
			}
			if sc.Name == scDPoP && s.Target == "extauthz serve" {
				writeDPoPTarget(w, rows, hitRows, sc.targetRows(pairedFloorProofs, o.Concurrency), sc.targetRows(pairedVerifyProofs, o.Concurrency))
			}
			if sc.Name == scRevocation {
				writeRevocation(w, s, o.Concurrency)
			}
			if sc.Name == scRedis && s.Target == "extauthz serve + redis" {
				same := sc.targetRows(pairedSameTokens, o.Concurrency)
				writeRedisVsHit(w, rows, same, hitRows)
				writeRedisLimit(w, rows, same, sc.targetRows(pairedFloorTokens, o.Concurrency),
					[]namedRows{{floorGetRueidis, sc.targetRows(pairedFloorGet, o.Concurrency)}, {floorGetGoRedis, sc.targetRows(pairedFloorGoRedis, o.Concurrency)}})
			}
			if s.Target == "extauthz serve" && (sc.Name == scFullRS256 || sc.Name == scFullES256 || sc.Name == scFullEdDSA) {
				floor, paired := sc.targetRows(pairedFloor, o.Concurrency), true
				if floor == nil {
					floor, paired = rep.seriesRows(scFloorTuned, o.Concurrency), false
				}
				writeVerifyLimit(w, scenarioAlg(sc.Name), rows, floor, paired, sc.targetRows(pairedVerify, o.Concurrency))
			}
			if sc.Name == scHitAudit && s.Target != pairedHit {
				writeAuditVsHit(w, rows, hitRows)
			}
			if tuned := sc.targetRows(pairedTuned, o.Concurrency); sc.Name == scHit && s.Target != pairedTuned && tuned != nil {
				writeHitVsTuned(w, rows, tuned)
			}
			if sc.Name == scRedisShared && s == sc.Series[len(sc.Series)-1] {
				writeShared(w, sc)
			}
		}
		if ours, ref := sc.targetRows("extauthz serve", o.Concurrency), sc.targetRows("jwx-floor", o.Concurrency); sc.Compare && ours != nil && ref != nil {
			fmt.Fprintf(w, "### extauthz serve relative to jwx-floor (same token stream)\n\n")
			fmt.Fprintf(w, "| concurrency | Checks/s ratio | p99 ratio | CPU/Check ratio |\n|---:|---:|---:|---:|\n")
			for _, a := range ours {
				for _, b := range ref {
					if a.conc != b.conc {
						continue
					}
					cpu := "n/a"
					if a.cpu > 0 && b.cpu > 0 {
						cpu = fmt.Sprintf("%.2f", a.cpu/b.cpu)
					}
					fmt.Fprintf(w, "| %d | %s | %s | %s |\n", a.conc, ratio(a.throughput, b.throughput), ratio(float64(a.p99), float64(b.p99)), cpu)
				}
			}
			fmt.Fprintf(w, "\n")
		}
		for _, n := range sc.Notes {
			fmt.Fprintf(w, "- %s\n", n)
		}
		fmt.Fprintf(w, "- Scenario wall time (minting, starting, warming, measuring): %s.\n\n", fmtDur(sc.Elapsed))
	}
	var ps, left []string
	for _, p := range rep.Procs {
		ps = append(ps, fmt.Sprintf("%s PID %d", p.Name, p.PID))
		if !pidGone(p.PID, p.StartTime) {
			left = append(left, fmt.Sprintf("%s PID %d", p.Name, p.PID))
		}
	}
	if len(left) == 0 {
		fmt.Fprintf(w, "Processes started (all stopped by PID): %s.\n", strings.Join(ps, ", "))
	} else {
		fmt.Fprintf(w, "Processes started: %s. **Still running: %s.**\n", strings.Join(ps, ", "), strings.Join(left, ", "))
	}
}

// relTo is a row's throughput and p99 relative to ref's at the same
// concurrency ("–" when ref has none).
func relTo(r row, ref map[int]row) (tp, p99 string) {
	fr, ok := ref[r.conc]
	if !ok || fr.throughput <= 0 || fr.p99 <= 0 {
		return "–", "–"
	}
	return fmt.Sprintf("%.2f", r.throughput/fr.throughput), fmt.Sprintf("%.2f", float64(r.p99)/float64(fr.p99))
}

// Issue #20's targets for the Redis-tier hit and the default audit setting.
const (
	redisHitMargin   = 10.0 // µs of gateway CPU per Check over the in-process hit
	redisHitP99Ratio = 1.3  // p99 over the in-process hit's
	auditMinRatio    = 0.95 // hit-audit's throughput over hit's
	// redisHitsMin is the Redis hits per Check under which the redis
	// scenario did not measure Redis-tier hits.
	redisHitsMin = 0.9
)

// writeRedisVsHit sets the Redis-tier hit beside the in-process hit of the
// same requests in the same run (same; the targets: the gateway's CPU per
// Check minus its, redis-server's apart, and the p99 ratio), and beside the
// one-token hit (hit), shown for comparison with earlier runs.
func writeRedisVsHit(w io.Writer, rows []row, same, hit map[int]row) {
	if same == nil {
		fmt.Fprintf(w, "Redis-tier hit against the in-process hit: %s not measured in this run.\n\n", pairedSameTokens)
		return
	}
	fmt.Fprintf(w, "**Redis-tier hit against the in-process hit of the same tokens (%s), same run** (targets: gateway CPU ≤ its + %.0f µs, p99 ≤ %.1f× its), and against the one-token hit (%s):\n\n", pairedSameTokens, redisHitMargin, redisHitP99Ratio, pairedHit)
	fmt.Fprintf(w, "| concurrency | gateway CPU µs/Check | same tokens' | difference | + redis-server µs/Check | Checks/s ratio | p99 | same tokens' p99 | p99 ratio | one-token hit's CPU | difference | each round, difference with the same tokens' |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n")
	cpu := func(v float64) string {
		if v < 0 {
			return "n/a"
		}
		return fmt.Sprintf("%.1f", v)
	}
	less := func(a, b float64, target bool) string {
		if a < 0 || b < 0 {
			return "n/a"
		}
		d := fmt.Sprintf("%+.1f", a-b)
		if target && a-b > redisHitMargin {
			d += " (**over target**)"
		}
		return d
	}
	var warn []string
	for _, r := range rows {
		sr, ok := same[r.conc]
		if !ok {
			continue
		}
		p99r := ratio(float64(r.p99), float64(sr.p99))
		if sr.p99 > 0 && float64(r.p99) > redisHitP99Ratio*float64(sr.p99) {
			p99r += " (**over target**)"
		}
		hc, hd := "n/a", "n/a"
		if hr, ok := hit[r.conc]; ok {
			hc, hd = cpu(hr.cpu), less(r.mainCPU, hr.cpu, false)
		}
		rounds := excessList(r.roundMain, func(i int) float64 {
			if i >= len(sr.roundCPU) {
				return -1
			}
			return sr.roundCPU[i]
		})
		fmt.Fprintf(w, "| %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", r.conc, cpu(r.mainCPU), cpu(sr.cpu), less(r.mainCPU, sr.cpu, true), cpu(r.auxCPU),
			ratio(r.throughput, sr.throughput), fmtLat(r.p99), fmtLat(sr.p99), p99r, hc, hd, rounds)
		if r.redisHits >= 0 && r.redisHits < redisHitsMin {
			warn = append(warn, fmt.Sprintf("c=%d %.2f", r.conc, r.redisHits))
		}
	}
	fmt.Fprintf(w, "\n")
	if len(warn) > 0 {
		fmt.Fprintf(w, "**Not a Redis-tier figure where Redis served fewer than %.0f %% of the Checks** (Redis hits per Check: %s): the other Checks were verified in full, Redis skipped (its circuit breaker open after timeouts, or reads timed out).\n\n", 100*redisHitsMin, strings.Join(warn, ", "))
	}
}

// namedRows is a target's rows by concurrency, under a short name.
type namedRows struct {
	name string
	rows map[int]row
}

// writeRedisLimit sets the Redis-tier hit's cost (the gateway's CPU per Check
// beyond the in-process hit of the same tokens) beside the limit measured in
// the same window: what one GET adds to floor-tuned (a floor-get server's CPU
// per Check minus floor-tuned's), both sent the same tokens, for each client
// in gets.
func writeRedisLimit(w io.Writer, rows []row, same, floor map[int]row, gets []namedRows) {
	if same == nil || floor == nil {
		fmt.Fprintf(w, "The Redis-tier hit's limit measured: %s not measured in this run.\n\n", pairedFloorTokens)
		return
	}
	fmt.Fprintf(w, "**The Redis-tier hit against its limit measured, same run**: one GET in a gRPC handler (a floor-get server's CPU per Check less %s's), beside the gateway's Redis-tier hit less the in-process hit of the same tokens (%s):\n\n", pairedFloorTokens, pairedSameTokens)
	fmt.Fprintf(w, "| concurrency | client | floor-tuned µs/Check | floor-get µs/Check | one GET | the gateway's Redis tier | beyond one GET | floor-get's p99 over floor-tuned's | each round, one GET | each round, beyond one GET |\n|---:|---|---:|---:|---:|---:|---:|---:|---|---|\n")
	at := func(xs []float64, i int) float64 {
		if i >= len(xs) {
			return -1
		}
		return xs[i]
	}
	for _, r := range rows {
		sr, ok1 := same[r.conc]
		fr, ok2 := floor[r.conc]
		if !ok1 || !ok2 || r.mainCPU < 0 || sr.cpu < 0 || fr.cpu < 0 {
			continue
		}
		for _, g := range gets {
			gr, ok := g.rows[r.conc]
			if !ok || gr.cpu < 0 {
				continue
			}
			var oneGET, beyond []string
			for i := range r.roundMain {
				m, s, f, x := at(r.roundMain, i), at(sr.roundCPU, i), at(fr.roundCPU, i), at(gr.roundCPU, i)
				if m < 0 || s < 0 || f < 0 || x < 0 {
					oneGET, beyond = append(oneGET, "–"), append(beyond, "–")
					continue
				}
				oneGET = append(oneGET, fmt.Sprintf("%+.1f", x-f))
				beyond = append(beyond, fmt.Sprintf("%+.1f", (m-s)-(x-f)))
			}
			get, tier := gr.cpu-fr.cpu, r.mainCPU-sr.cpu
			fmt.Fprintf(w, "| %d | %s | %.1f | %.1f | %+.1f | %+.1f | %+.1f | %s | %s | %s |\n", r.conc, g.name, fr.cpu, gr.cpu, get, tier, tier-get,
				ratio(float64(gr.p99), float64(fr.p99)), strings.Join(oneGET, ", "), strings.Join(beyond, ", "))
		}
	}
	fmt.Fprintf(w, "\n")
}

// writeAuditVsHit sets hit-audit beside hit of the same run.
func writeAuditVsHit(w io.Writer, rows []row, hit map[int]row) {
	if hit == nil {
		fmt.Fprintf(w, "Against hit (audit off): hit not measured in this run (add it to --scenarios).\n\n")
		return
	}
	fmt.Fprintf(w, "**Default audit setting against audit off (hit), same run** (target: throughput ≥ %.2f× hit's):\n\n", auditMinRatio)
	writeThroughputVs(w, "hit's", rows, hit)
}

// writeHitVsTuned compares hit with the floor-tuned server measured
// interleaved with it in each round (issue #20: at least 0.95× its
// throughput).
func writeHitVsTuned(w io.Writer, rows []row, tuned map[int]row) {
	fmt.Fprintf(w, "**Cache hit against floor-tuned, interleaved** (%s, measured in one window with hit in each round, alternating slices; target: throughput ≥ %.2f× its):\n\n", pairedTuned, auditMinRatio)
	writeThroughputVs(w, "floor-tuned's", rows, tuned)
}

// writeThroughputVs is the table of rows against ref, a reference at the
// same concurrencies: throughput ratio (under auditMinRatio flagged), p99
// ratio and CPU per Check.
func writeThroughputVs(w io.Writer, refLabel string, rows []row, ref map[int]row) {
	fmt.Fprintf(w, "| concurrency | Checks/s ratio | p99 ratio | server CPU µs/Check | %s | difference | Checks/s ratio, each round |\n|---:|---:|---:|---:|---:|---:|---|\n", refLabel)
	for _, r := range rows {
		hr, ok := ref[r.conc]
		if !ok {
			continue
		}
		tp := ratio(r.throughput, hr.throughput)
		if hr.throughput > 0 && r.throughput < auditMinRatio*hr.throughput {
			tp += " (**under target**)"
		}
		cpu, hc, diff := "n/a", "n/a", "n/a"
		if r.cpu >= 0 {
			cpu = fmt.Sprintf("%.1f", r.cpu)
		}
		if hr.cpu >= 0 {
			hc = fmt.Sprintf("%.1f", hr.cpu)
		}
		if r.cpu >= 0 && hr.cpu >= 0 {
			diff = fmt.Sprintf("%+.1f", r.cpu-hr.cpu)
		}
		var rounds []string
		for i := range min(len(r.roundTP), len(hr.roundTP)) {
			rounds = append(rounds, ratio(r.roundTP[i], hr.roundTP[i]))
		}
		fmt.Fprintf(w, "| %d | %s | %s | %s | %s | %s | %s |\n", r.conc, tp, ratio(float64(r.p99), float64(hr.p99)), cpu, hc, diff, strings.Join(rounds, ", "))
	}
	fmt.Fprintf(w, "\n")
}

// writeShared is the redis-shared scenario's own table: one line per
// round, from the runs of its first series (A).
func writeShared(w io.Writer, sc *Scenario) {
	var runs []*sharedRun
	for _, s := range sc.Series {
		for _, rs := range s.Runs {
			for _, r := range rs {
				if r.Shared != nil {
					runs = append(runs, r.Shared)
				}
			}
		}
	}
	if len(runs) == 0 {
		return
	}
	fmt.Fprintf(w, "**Sharing under saturation**, one line per round (issue #20's targets: ≥ 99 %% of the verdicts written, B's share from Redis ≥ 99 %%, no write dropped):\n\n")
	fmt.Fprintf(w, "| round | tokens | verdict keys written to Redis during A's phase | of the tokens | A: extauthz_redis_errors_total (increase, by op; since start) | A: extauthz_redis_circuit_open (at the start; samples at 1; at the end) | A: %s (increase) | B: Redis hits | B's share from Redis | B: Redis misses (verified by B) | B: in-process hits |\n", droppedMetric)
	fmt.Fprintf(w, "|---:|---:|---:|---:|:---|:---|---:|---:|---:|---:|---:|\n")
	for i, r := range runs {
		keys, keyShare := "n/a ("+r.KeysErr+")", "n/a"
		if r.KeysErr == "" {
			k := r.KeysAfter - r.KeysBefore
			keys = fmt.Sprintf("%s (settled after %s; %s before)", thousands(int(k)), fmtDur(r.Settle), thousands(int(r.KeysBefore)))
			keyShare = pct(float64(k), float64(r.Tokens))
		}
		errs, circuit, dropped := "n/a ("+r.AMetricsErr+")", "n/a", "n/a"
		if r.AMetricsErr == "" {
			errs = "0"
			if len(r.AErrors) > 0 {
				var parts []string
				for _, op := range slices.Sorted(maps.Keys(r.AErrors)) {
					parts = append(parts, fmt.Sprintf("%s %s", op, thousands(int(r.AErrors[op]))))
				}
				errs = strings.Join(parts, ", ")
			}
			errs += fmt.Sprintf("; %s since start", thousands(int(r.AErrorsTotal)))
			circuit = fmt.Sprintf("%.0f; %d of %d; %.0f", r.OpenAtStart, r.OpenSamples, r.Samples, r.OpenAtEnd)
			dropped = "absent"
			if r.Dropped >= 0 {
				dropped = thousands(int(r.Dropped))
			}
		}
		bHit, bShare, bMiss, bLocal := "n/a ("+r.BMetricsErr+")", "n/a", "n/a", "n/a"
		if r.BMetricsErr == "" {
			bHit, bShare = thousands(int(r.BRedisHit)), pct(r.BRedisHit, float64(r.Tokens))
			bMiss, bLocal = thousands(int(r.BRedisMiss)), thousands(int(r.BLocalHit))
		}
		fmt.Fprintf(w, "| %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", i+1, thousands(r.Tokens), keys, keyShare, errs, circuit, dropped, bHit, bShare, bMiss, bLocal)
	}
	fmt.Fprintf(w, "\n")
	for _, r := range runs {
		if len(r.AOtherShared) > 0 {
			fmt.Fprintf(w, "A's other extauthz_cache_shared* series at the end: %s.\n\n", strings.Join(r.AOtherShared, "; "))
			break
		}
	}
}

func pct(a, b float64) string {
	if b == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.1f %%", 100*a/b)
}

// targetRows is the rows of sc's series for target by concurrency, nil
// when sc has none.
func (sc *Scenario) targetRows(target string, concs []int) map[int]row {
	for _, s := range sc.Series {
		if s.Target == target {
			return s.byConc(concs)
		}
	}
	return nil
}

// seriesRows is the rows of a scenario's first series, by concurrency;
// nil when it was not measured.
func (rep *Report) seriesRows(name string, concs []int) map[int]row {
	for _, sc := range rep.Scenarios {
		if sc.Name == name && len(sc.Series) > 0 {
			return sc.Series[0].byConc(concs)
		}
	}
	return nil
}

// byConc is s's rows by concurrency.
func (s *Series) byConc(concs []int) map[int]row {
	out := map[int]row{}
	for _, r := range s.rows(concs) {
		out[r.conc] = r
	}
	return out
}

// dpopMargin is the server CPU per Check a DPoP request may cost beyond a
// plain hit and one raw signature check (issue #23's target).
const dpopMargin = 10.0

// writeDPoPTarget compares dpop's server CPU per Check with issue #23's
// target: hit's, measured in the same run, plus one raw verify plus 10 µs.
// When the run also measured the two floors on the same proofs (floor,
// verify), it sets the same beside the proof check measured in a server:
// floor-verify's CPU per Check less floor-tuned's, in place of the raw
// verify.
func writeDPoPTarget(w io.Writer, rows []row, hit, floor, verify map[int]row) {
	if hit == nil {
		fmt.Fprintf(w, "Target (server CPU per Check ≤ hit's + one raw verify + %.0f µs): hit not measured in this run.\n\n", dpopMargin)
		return
	}
	var parts []string
	for _, r := range rows {
		hr, ok := hit[r.conc]
		if !ok || hr.cpu < 0 || r.cpu < 0 || r.rawVerify < 0 {
			continue
		}
		limit := hr.cpu + r.rawVerify + dpopMargin
		verdict := "met"
		if r.cpu > limit {
			verdict = "**not met**"
		}
		// Each round's excess, from that round's figures: how far the median moves.
		rounds := excessList(r.roundCPU, func(i int) float64 {
			if i >= len(hr.roundCPU) || i >= len(r.roundRaw) || hr.roundCPU[i] < 0 || r.roundRaw[i] < 0 {
				return -1
			}
			return hr.roundCPU[i] + r.roundRaw[i]
		})
		parts = append(parts, fmt.Sprintf("c=%d %.1f against %.1f + %.1f + %.0f = %.1f (%.1f over hit, %.1f beyond the raw verify; each round, beyond hit + the raw verify: %s): %s",
			r.conc, r.cpu, hr.cpu, r.rawVerify, dpopMargin, limit, r.cpu-hr.cpu, r.cpu-hr.cpu-r.rawVerify, rounds, verdict))
	}
	if len(parts) == 0 {
		return
	}
	fmt.Fprintf(w, "Target (server CPU µs per Check ≤ hit's + one raw verify + %.0f µs, medians of this run): %s.\n\n", dpopMargin, strings.Join(parts, "; "))
	if floor == nil || verify == nil {
		return
	}
	fmt.Fprintf(w, "**A proof check measured in a server** (%s less %s, each sent the run's proofs in the same window): what the raw verify in a quiet loop leaves out is the same check costing more in a busy server, which any verifier pays.\n\n", pairedVerifyProofs, pairedFloorProofs)
	fmt.Fprintf(w, "| concurrency | server CPU µs/Check | hit | %s | %s | the proof check in a server | raw verify | hit + the check + %.0f | | beyond hit + the check, each round |\n|---:|---:|---:|---:|---:|---:|---:|---:|---|---|\n", pairedFloorProofs, pairedVerifyProofs, dpopMargin)
	for _, r := range rows {
		hr, ok1 := hit[r.conc]
		f, ok2 := floor[r.conc]
		v, ok3 := verify[r.conc]
		if !ok1 || !ok2 || !ok3 || r.cpu < 0 || hr.cpu < 0 || f.cpu < 0 || v.cpu < 0 {
			continue
		}
		check := v.cpu - f.cpu
		limit := hr.cpu + check + dpopMargin
		verdict := "met"
		if r.cpu > limit {
			verdict = "**not met**"
		}
		rounds := excessList(r.roundCPU, func(i int) float64 {
			if i >= len(hr.roundCPU) || i >= len(f.roundCPU) || i >= len(v.roundCPU) || hr.roundCPU[i] < 0 || f.roundCPU[i] < 0 || v.roundCPU[i] < 0 {
				return -1
			}
			return hr.roundCPU[i] + v.roundCPU[i] - f.roundCPU[i]
		})
		fmt.Fprintf(w, "| %d | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %s (%+.1f beyond hit + the check) | %s |\n",
			r.conc, r.cpu, hr.cpu, f.cpu, v.cpu, check, r.rawVerify, limit, verdict, r.cpu-hr.cpu-check, rounds)
	}
	fmt.Fprintf(w, "\n")
}

// writeRevocation is the revocation scenario's own table: the delays,
// pooled over the rounds, against issue #24's target, and the final check.
func writeRevocation(w io.Writer, s *Series, concs []int) {
	fmt.Fprintf(w, "**Revocation delay**, from just before a session-revoked SET is pushed to A until B's answer refusing that session's cached token arrives (every round's revocations together):\n\n")
	fmt.Fprintf(w, "| concurrency | revocations | p50 | p90 | p99 | max | target p99 ≤ %s | failed | load Checks refused in flight |\n", fmtDur(delayTarget))
	fmt.Fprintf(w, "|---:|---:|---:|---:|---:|---:|:---|---:|---:|\n")
	var final, probes []string
	for _, c := range concs {
		var (
			delays                           []time.Duration
			planned, failed, notStarted      int
			inFlight, probeN                 int
			sweepRev, sweepAllow, sweepWrong int
		)
		for _, r := range s.Runs[c] {
			rv := r.Revocation
			if rv == nil {
				continue
			}
			delays = append(delays, rv.Delays...)
			planned += rv.Planned
			failed += rv.Failed
			notStarted += rv.NotStarted
			inFlight += r.Expected
			probeN += rv.Probes
			sweepRev, sweepAllow, sweepWrong = sweepRev+rv.SweepRevoked, sweepAllow+rv.SweepAllowed, sweepWrong+rv.SweepWrong
		}
		if planned == 0 {
			continue
		}
		slices.Sort(delays)
		p99 := percentile(delays, 9900)
		verdict := "met"
		switch {
		case len(delays) == 0:
			verdict = "n/a"
		case p99 > delayTarget:
			verdict = "**not met**"
		case failed > 0:
			verdict = "**not met** (failed revocations)"
		}
		done := thousands(len(delays))
		if len(delays) != planned {
			done = fmt.Sprintf("%s of %s", done, thousands(planned))
			if notStarted > 0 {
				done += fmt.Sprintf(" (%d not started: window closed)", notStarted)
			}
		}
		fmt.Fprintf(w, "| %d | %s | %s | %s | %s | %s | %s | %d | %d |\n", c, done,
			fmtLat(percentile(delays, 5000)), fmtLat(percentile(delays, 9000)), fmtLat(p99), fmtLat(maxDelay(delays)), verdict, failed, inFlight)
		final = append(final, fmt.Sprintf("c=%d %s revoked tokens refused as revoked, %s others allowed, %d wrong", c, thousands(sweepRev), thousands(sweepAllow), sweepWrong))
		probes = append(probes, fmt.Sprintf("c=%d %s", c, thousands(probeN)))
	}
	fmt.Fprintf(w, "\nFinal check on B after each run (every token once): %s. Probe Checks: %s.\n\n", strings.Join(final, "; "), strings.Join(probes, ", "))
}

func ratio(a, b float64) string {
	if b == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2f", a/b)
}

func joinInts(xs []int) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = strconv.Itoa(x)
	}
	return strings.Join(s, ",")
}

// thousands formats 1234567 as 1,234,567.
func thousands(n int) string {
	s := strconv.Itoa(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// fmtLat prints a latency in µs below a millisecond, else in ms.
func fmtLat(d time.Duration) string {
	us := float64(d) / float64(time.Microsecond)
	switch {
	case us < 10:
		return fmt.Sprintf("%.1f µs", us)
	case us < 1000:
		return fmt.Sprintf("%.0f µs", us)
	default:
		return fmt.Sprintf("%.2f ms", us/1000)
	}
}

func fmtDur(d time.Duration) string {
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return fmt.Sprintf("%.2f s", d.Seconds())
	default:
		return d.Round(time.Second).String()
	}
}

func fmtBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// requireLoopback refuses any address but this machine's loopback: the
// harness must never send load anywhere else.
func requireLoopback(hostport string) error {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return fmt.Errorf("%q is not HOST:PORT: %w", hostport, err)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("%q: bad port", hostport)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("%q is not a loopback address: this tool only drives servers on 127.0.0.1 (or ::1)", hostport)
}

// decodeSentence says how the client read the answers (--client-decode).
func decodeSentence(messages bool) string {
	if messages {
		return "The client decoded every answer into Go protobuf messages (--client-decode messages)."
	}
	return "The client read each answer as a proxy uses it (--client-decode wire): the framing of every field and the status code, without building Go messages; an answer that is not OK was decoded in full for the report."
}

// scenarioAlg is the signature algorithm whose raw check a scenario times.
func scenarioAlg(name string) string {
	switch name {
	case scFullRS256:
		return "RS256"
	case scFullEdDSA:
		return "EdDSA"
	}
	return "ES256"
}

// verifyLimitRatio is issue #20's target for full verification: server
// CPU per Check at most this many times the limit (the tuned floor's CPU
// per Check plus one raw signature check).
const verifyLimitRatio = 1.15

// writeVerifyLimit sets a full-verification scenario's server CPU per
// Check beside its limit: floor-tuned's CPU per Check in the same run plus
// the raw verify timed between the slices of each run. When the run also
// measured floor-verify-server (verify, by concurrency), a second table
// sets it beside that: the limit measured, a server that checks each
// token's signature and does nothing else.
func writeVerifyLimit(w io.Writer, alg string, rows []row, tuned map[int]row, paired bool, verify map[int]row) {
	if tuned == nil {
		fmt.Fprintf(w, "Full verification against the limit (floor-tuned + one raw verify): floor-tuned not measured in this run (add it to --scenarios).\n\n")
		return
	}
	floor := "floor-tuned's server CPU per Check"
	if paired {
		floor = "the server CPU per Check of floor-tuned, sent the same requests in one window with the gateway in each round, alternating slices (" + pairedFloor + ")"
	}
	fmt.Fprintf(w, "**Full verification (%s) against the limit, same run** (the limit: %s + one raw %s; target ≤ %.2f× the limit):\n\n", alg, floor, rawVerifyName(alg), verifyLimitRatio)
	fmt.Fprintf(w, "| concurrency | server CPU µs/Check | floor-tuned | raw verify | limit | × limit | beyond the limit µs | × limit, each round |\n|---:|---:|---:|---:|---:|---:|---:|---|\n")
	for _, r := range rows {
		t, ok := tuned[r.conc]
		if !ok || r.cpu < 0 || t.cpu < 0 || r.rawVerify < 0 {
			continue
		}
		limit := t.cpu + r.rawVerify
		x := fmt.Sprintf("%.2f", r.cpu/limit)
		if r.cpu > verifyLimitRatio*limit {
			x += " (**over target**)"
		}
		fmt.Fprintf(w, "| %d | %.1f | %.1f | %.1f | %.1f | %s | %+.1f | %s |\n", r.conc, r.cpu, t.cpu, r.rawVerify, limit, x, r.cpu-limit, roundRatios(r, t))
	}
	fmt.Fprintf(w, "\n")
	if verify == nil {
		return
	}
	fmt.Fprintf(w, "**The limit measured** (%s: floor-tuned checking each token's %s signature and nothing else, sent the same requests in the same window): what the sum above leaves out is the signature check costing more in a busy server than in the quiet loop, which any verifier pays.\n\n", pairedVerify, alg)
	fmt.Fprintf(w, "| concurrency | server CPU µs/Check | %s | its excess over floor-tuned + raw verify | × it | beyond it µs | × it, each round |\n|---:|---:|---:|---:|---:|---:|---|\n", pairedVerify)
	for _, r := range rows {
		t, ok1 := tuned[r.conc]
		v, ok2 := verify[r.conc]
		if !ok1 || !ok2 || r.cpu < 0 || v.cpu < 0 || t.cpu < 0 || r.rawVerify < 0 {
			continue
		}
		x := fmt.Sprintf("%.2f", r.cpu/v.cpu)
		if r.cpu > verifyLimitRatio*v.cpu {
			x += " (**over " + fmt.Sprintf("%.2f", verifyLimitRatio) + "×**)"
		}
		fmt.Fprintf(w, "| %d | %.1f | %.1f | %+.1f | %s | %+.1f | %s |\n", r.conc, r.cpu, v.cpu, v.cpu-t.cpu-r.rawVerify, x, r.cpu-v.cpu, roundRatiosTo(r, v))
	}
	fmt.Fprintf(w, "\n")
}

// roundRatiosTo is each round's server CPU per Check over ref's in the
// same round, "–" for a round that lacks a figure.
func roundRatiosTo(r, ref row) string { return ratioList(r.roundCPU, ref.roundCPU) }

// excessList is cpu[i] - ref(i) for each round, "–" where either lacks its
// figure (negative).
func excessList(cpu []float64, ref func(i int) float64) string {
	var parts []string
	for i, c := range cpu {
		if r := ref(i); c < 0 || r < 0 {
			parts = append(parts, "–")
		} else {
			parts = append(parts, fmt.Sprintf("%+.1f", c-r))
		}
	}
	return strings.Join(parts, ", ")
}

// ratioList is num[i]/den[i] for each round both have, "–" where either
// lacks its figure (negative, or a zero denominator).
func ratioList(num, den []float64) string {
	var parts []string
	for i := range min(len(num), len(den)) {
		if num[i] < 0 || den[i] <= 0 {
			parts = append(parts, "–")
			continue
		}
		parts = append(parts, fmt.Sprintf("%.2f", num[i]/den[i]))
	}
	return strings.Join(parts, ", ")
}

// roundRatios is each round's server CPU per Check over that round's
// limit (floor-tuned's CPU per Check in the same round plus the raw verify
// timed between its slices), "–" for a round that lacks a figure: how far the
// medians' ratio moves from one round to the next.
func roundRatios(r, tuned row) string {
	limits := make([]float64, min(len(r.roundRaw), len(tuned.roundCPU)))
	for i := range limits {
		limits[i] = -1
		if raw, floor := r.roundRaw[i], tuned.roundCPU[i]; raw >= 0 && floor >= 0 {
			limits[i] = floor + raw
		}
	}
	return ratioList(r.roundCPU, limits)
}
