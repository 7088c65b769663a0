package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"

	"github.com/extauthz/extauthz/internal/redisproc"
)

// The redis-shared scenario's bounds and names.
const (
	// sharedWindow bounds each phase (A verifying the tokens, then B sent
	// them): it also ends when its tokens run out.
	sharedWindow = 2 * time.Minute
	// sharedSettle bounds the wait, after A's phase, for the verdict keys
	// in Redis to stop changing (writes still on their way).
	sharedSettle = 5 * time.Second
	// sharedWarmConcurrency bounds the warm-ups' concurrency.
	sharedWarmConcurrency = 4
	// sharedPoll is how often A's circuit breaker gauge is read during
	// its phase.
	sharedPoll = 250 * time.Millisecond
	// verdictKeyPattern matches the keys the gateway stores verdicts
	// under in Redis for the generated resource (named "mcp"):
	// pkg/cache's "extauthz:v1:" + namespace + ":" + hex SHA-256, where
	// the namespace is the resource's name, "~" and a digest of what its
	// verification depends on (pkg/authz).
	verdictKeyPattern = "extauthz:v1:mcp*"
	// droppedMetric counts writes to the shared tier that were dropped
	// (issue #20); older gateways do not expose it.
	droppedMetric = "extauthz_cache_shared_dropped_total"
)

// sharedRun is what one redis-shared run read beside its two loads.
type sharedRun struct {
	Tokens int // the distinct tokens A was sent, then B

	// Verdict keys in Redis: after the warm-ups, and after A's phase
	// once they stopped changing (Settle later).
	KeysBefore, KeysAfter int64
	Settle                time.Duration
	KeysErr               string // why they could not be counted

	// A's metrics over its phase: extauthz_redis_errors_total by op
	// (increase), extauthz_redis_circuit_open read every sharedPoll
	// (OpenSamples of Samples read 1) and at the end, and the dropped
	// writes (increase; Dropped < 0: the metric is absent).
	AErrors      map[string]float64
	AErrorsTotal float64 // extauthz_redis_errors_total since A started (warm-up and start included)
	OpenAtStart  float64 // the circuit gauge as A's phase starts
	OpenSamples  int
	Samples      int
	OpenAtEnd    float64
	Dropped      float64
	AOtherShared []string // any other extauthz_cache_shared* series of A, as read at the end
	AMetricsErr  string

	// B's extauthz_cache_lookups_total over its phase (increase), by
	// tier and result.
	BLocalHit, BLocalMiss, BRedisHit, BRedisMiss float64
	BMetricsErr                                  string
}

// redisShared runs the saturation-sharing scenario: its own redis-server
// and two fresh replicas sharing it; A verifies SharedTokens never-seen
// tokens at SharedConcurrency, then B, which never saw them, is sent the
// same tokens: every one B finds in Redis is a verification saved.
func (h *harness) redisShared(ctx context.Context, sc *Scenario) error {
	if !h.haveRed {
		sc.Status = "skipped: redis-server not installed"
		return nil
	}
	n := h.o.SharedTokens
	name := "redis-shared"
	if n == h.o.FullRS256Tokens {
		name = scFullRS256 // the same tokens as full-rs256: minted once (each run has its own Redis and replicas)
	}
	ts, err := h.tokens(ctx, sc, name, h.rs, n)
	if err != nil {
		return err
	}
	warm, err := h.tokens(ctx, sc, "warm-up "+h.rs.alg, h.rs, h.o.WarmTokens)
	if err != nil {
		return err
	}
	rs, stop, err := h.startRedis(ctx, sc)
	if rs == nil || err != nil {
		return err // nil when skipped: redis-server not installed
	}
	defer stop()
	redisURL := "redis://" + rs.Addr() + "/0"
	maxEntries := max(100_000, 2*(n+len(warm.reqs)))
	c := h.o.SharedConcurrency
	warmC := min(c, sharedWarmConcurrency)
	sc.note("Each run starts its own redis-server (no persistence) on a loopback port and two replicas, A and B, sharing it (cache.redis_url, the default cache.redis timeout and circuit breaker), each with cache.max_entries %s (at least twice the tokens: B's in-process tier can only have a token from Redis) and its admin listener on a loopback port, whose /metrics this tool reads. Both are warmed, gently (concurrency %d, so that the circuit breaker starts closed), with the same %d other new tokens (A verifies them, B finds them in Redis or verifies them).", thousands(maxEntries), warmC, len(warm.reqs))
	sc.note("Then A is sent the %s tokens, each once, at concurrency %d (every Check a full RS256 verification and a write to Redis); once the verdict keys in Redis (SCAN MATCH %s) have not changed for 500 ms (at most %s), B is sent the same tokens in the same order at the same concurrency. Each phase ends when its tokens run out, or after %s. Server CPU is the replica's plus redis-server's (split below); --duration does not bound these phases.", thousands(n), c, verdictKeyPattern, fmtDur(sharedSettle), fmtDur(sharedWindow))

	a, aAdmin, err := h.startSharedReplica(ctx, "extauthz-a", redisURL, maxEntries)
	if err != nil {
		return err
	}
	defer a.stop()
	a.aux = rs.PID()
	b, bAdmin, err := h.startSharedReplica(ctx, "extauthz-b", redisURL, maxEntries)
	if err != nil {
		return err
	}
	defer b.stop()
	b.aux = rs.PID()
	connA, err := dial(a.addr)
	if err != nil {
		return err
	}
	defer connA.Close()
	connB, err := dial(b.addr)
	if err != nil {
		return err
	}
	defer connB.Close()

	warmErrs := 0
	for _, x := range []struct {
		name string
		conn *grpc.ClientConn
	}{{"A", connA}, {"B", connB}} {
		res := h.drive(ctx, x.conn, warmC, time.Minute, len(warm.reqs), pattern{reqs: warm.reqs, distinct: true}, nil, nil)
		warmErrs += res.errors
		for _, e := range res.errSample {
			sc.note("replica %s warm-up error: %s", x.name, e)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}

	run := &sharedRun{Tokens: n, Dropped: -1}
	run.KeysBefore, err = countKeys(rs.Addr(), verdictKeyPattern)
	if err != nil {
		run.KeysErr = err.Error()
	}
	a0, errA0 := scrape(aAdmin)
	run.OpenAtStart, _ = sumMetric(a0, "extauthz_redis_circuit_open", nil)
	rA, err := h.measure(ctx, measurement{sc: sc, target: "A: verifies every token", conc: c, srv: a, conn: connA,
		pat: pattern{reqs: ts.reqs, distinct: true}, duration: sharedWindow,
		during: func(ctx context.Context, _ time.Time) {
			t := time.NewTicker(sharedPoll)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
				if ss, err := scrape(aAdmin); err == nil {
					run.Samples++
					if v, ok := sumMetric(ss, "extauthz_redis_circuit_open", nil); ok && v > 0 {
						run.OpenSamples++
					}
				}
			}
		}})
	if err != nil {
		return err
	}
	rA.WarmErrors += warmErrs
	rA.Shared = run
	a1, errA1 := scrape(aAdmin)
	if err := errors.Join(errA0, errA1); err != nil {
		run.AMetricsErr = err.Error()
	} else {
		run.AErrors = map[string]float64{}
		for _, s := range a1 {
			if s.name == "extauthz_redis_errors_total" {
				before, _ := sumMetric(a0, s.name, s.labels)
				if d := s.value - before; d != 0 {
					run.AErrors[s.labels["op"]] += d
				}
			}
			if strings.HasPrefix(s.name, "extauthz_cache_shared") && s.name != droppedMetric {
				run.AOtherShared = append(run.AOtherShared, s.String())
			}
		}
		run.OpenAtEnd, _ = sumMetric(a1, "extauthz_redis_circuit_open", nil)
		run.AErrorsTotal, _ = sumMetric(a1, "extauthz_redis_errors_total", nil)
		if after, ok := sumMetric(a1, droppedMetric, nil); ok {
			before, _ := sumMetric(a0, droppedMetric, nil)
			run.Dropped = after - before
		}
	}
	if run.KeysErr == "" {
		run.KeysAfter, run.Settle, err = settleKeys(ctx, rs.Addr())
		if err != nil {
			run.KeysErr = err.Error()
		}
	}

	b0, errB0 := scrape(bAdmin)
	if _, err := h.measure(ctx, measurement{sc: sc, target: "B (fresh): the same tokens", conc: c, srv: b, conn: connB,
		pat: pattern{reqs: ts.reqs, distinct: true}, duration: sharedWindow}); err != nil {
		return err
	}
	b1, errB1 := scrape(bAdmin)
	if err := errors.Join(errB0, errB1); err != nil {
		run.BMetricsErr = err.Error()
	} else {
		d := func(tier, result string) float64 {
			m := map[string]string{"tier": tier, "result": result}
			x1, _ := sumMetric(b1, "extauthz_cache_lookups_total", m)
			x0, _ := sumMetric(b0, "extauthz_cache_lookups_total", m)
			return x1 - x0
		}
		run.BLocalHit, run.BLocalMiss, run.BRedisHit, run.BRedisMiss = d("local", "hit"), d("local", "miss"), d("redis", "hit"), d("redis", "miss")
	}
	h.progress("redis-shared: %s tokens; verdict keys in Redis +%d; A's Redis errors %v, circuit open in %d of %d samples; B: %.0f Redis hits, %.0f Redis misses",
		thousands(n), run.KeysAfter-run.KeysBefore, run.AErrors, run.OpenSamples, run.Samples, run.BRedisHit, run.BRedisMiss)
	for _, x := range []struct {
		name string
		s    *server
	}{{"A", a}, {"B", b}} {
		if x.s.p.exited() {
			sc.note("replica %s exited during the run (%v); its log ends:\n\n```\n%s\n```", x.name, x.s.p.ExitStatus(), x.s.p.logTail())
		}
	}
	return nil
}

// startSharedReplica runs `extauthz serve` sharing Redis at redisURL, with
// its admin listener on a free loopback port of its own, and returns it
// with that listener's address.
func (h *harness) startSharedReplica(ctx context.Context, name, redisURL string, maxEntries int) (*server, string, error) {
	return h.startWithPort(ctx, name, nil, func(grpcAddr, adminAddr string) configSpec {
		return configSpec{grpc: grpcAddr, admin: adminAddr, issuers: h.issuers(), redisURL: redisURL, maxEntries: maxEntries}
	})
}

// startWithPort runs `extauthz serve` with the config spec returns for its
// gRPC address and a second free loopback port (an admin or HTTP
// listener, or none), and returns it with that second address. Its admin
// listener, if any, serves pprof with --profile. Unless sink is nil, the
// server's output goes to it (see startServerSink).
func (h *harness) startWithPort(ctx context.Context, name string, sink *drain, spec func(grpcAddr, otherAddr string) configSpec) (*server, string, error) {
	var other, admin string
	var portErr error
	p, err := startServerSink(ctx, h.reg, name, h.dir, sink, func(addr string) []string {
		port, err := redisproc.FreePort()
		if err != nil {
			portErr = err
		}
		other = "127.0.0.1:" + strconv.Itoa(port)
		c := spec(addr, other)
		c.pprof = h.o.ProfileDir != "" && c.admin != ""
		admin = c.admin
		path := filepath.Join(h.dir, name+"-"+strings.ReplaceAll(addr, ":", "_")+".yaml")
		_ = os.WriteFile(path, []byte(serverConfig(c)), 0o600)
		return []string{h.o.Server, "serve", "--config", path}
	})
	if err != nil {
		return nil, "", err
	}
	srv := &server{addr: p.addr, main: p.pid(), p: p, admin: admin, sink: sink}
	if portErr != nil {
		srv.stop()
		return nil, "", portErr
	}
	return srv, other, nil
}

// countKeys counts the keys matching pattern in the Redis at addr (SCAN,
// never KEYS: this tool's own redis-server only).
func countKeys(addr, pattern string) (int64, error) {
	cursor := "0"
	var n int64
	for range 1_000_000 {
		reply, err := redisproc.Do(addr, 5*time.Second, "SCAN", cursor, "MATCH", pattern, "COUNT", "1000")
		if err != nil {
			return 0, err
		}
		arr, ok := reply.([]any)
		if !ok || len(arr) != 2 {
			return 0, fmt.Errorf("SCAN: unexpected reply %v", reply)
		}
		next, ok1 := arr[0].(string)
		keys, ok2 := arr[1].([]any)
		if !ok1 || !ok2 {
			return 0, fmt.Errorf("SCAN: unexpected reply %v", reply)
		}
		n += int64(len(keys))
		if cursor = next; cursor == "0" {
			return n, nil
		}
	}
	return 0, errors.New("SCAN: did not finish")
}

// settleKeys counts the verdict keys until the count has not changed for
// 500 ms, or sharedSettle has passed: writes may still be on their way
// when A's last answer arrives.
func settleKeys(ctx context.Context, addr string) (int64, time.Duration, error) {
	t0 := time.Now()
	last, err := countKeys(addr, verdictKeyPattern)
	if err != nil {
		return 0, 0, err
	}
	stable := time.Now()
	for time.Since(t0) < sharedSettle && time.Since(stable) < 500*time.Millisecond {
		select {
		case <-ctx.Done():
			return last, time.Since(t0), ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		n, err := countKeys(addr, verdictKeyPattern)
		if err != nil {
			return 0, 0, err
		}
		if n != last {
			last, stable = n, time.Now()
		}
	}
	return last, time.Since(t0), nil
}

// promSample is one series of a Prometheus text exposition.
type promSample struct {
	name   string
	labels map[string]string
	value  float64
}

func (s promSample) String() string {
	keys := make([]string, 0, len(s.labels))
	for k := range s.labels {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	b.WriteString(s.name)
	if len(keys) > 0 {
		b.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, "%s=%q", k, s.labels[k])
		}
		b.WriteByte('}')
	}
	fmt.Fprintf(&b, " %s", strconv.FormatFloat(s.value, 'g', -1, 64))
	return b.String()
}

// scrape reads the Prometheus metrics of the admin listener at addr
// (loopback only).
func scrape(addr string) ([]promSample, error) {
	if err := requireLoopback(addr); err != nil {
		return nil, err
	}
	cl := &http.Client{Timeout: 5 * time.Second}
	resp, err := cl.Get("http://" + addr + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics on %s: %s", addr, resp.Status)
	}
	return parseProm(string(body))
}

// parseProm reads the Prometheus text exposition format: one sample per
// line, `name{label="value",...} value [timestamp]`; comments and blank
// lines are skipped.
func parseProm(text string) ([]promSample, error) {
	var out []promSample
	for i, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		s, err := parsePromLine(line)
		if err != nil {
			return nil, fmt.Errorf("metrics line %d: %w: %q", i+1, err, line)
		}
		out = append(out, s)
	}
	return out, nil
}

func parsePromLine(line string) (promSample, error) {
	s := promSample{labels: map[string]string{}}
	end := strings.IndexAny(line, "{ \t")
	if end <= 0 {
		return s, errors.New("no value")
	}
	s.name, line = line[:end], line[end:]
	if line[0] == '{' {
		line = line[1:]
		for {
			line = strings.TrimLeft(line, " \t,")
			if line == "" {
				return s, errors.New("unterminated labels")
			}
			if line[0] == '}' {
				line = line[1:]
				break
			}
			eq := strings.IndexByte(line, '=')
			if eq <= 0 || eq+1 >= len(line) || line[eq+1] != '"' {
				return s, errors.New("bad label")
			}
			key := strings.TrimSpace(line[:eq])
			line = line[eq+2:]
			var val strings.Builder
			closed := false
			for j := 0; j < len(line); j++ {
				c := line[j]
				if c == '\\' && j+1 < len(line) {
					j++
					switch line[j] {
					case 'n':
						val.WriteByte('\n')
					default:
						val.WriteByte(line[j])
					}
					continue
				}
				if c == '"' {
					line, closed = line[j+1:], true
					break
				}
				val.WriteByte(c)
			}
			if !closed {
				return s, errors.New("unterminated label value")
			}
			s.labels[key] = val.String()
		}
	}
	fields := strings.Fields(line)
	if len(fields) == 0 || len(fields) > 2 {
		return s, errors.New("no value")
	}
	v, err := strconv.ParseFloat(fields[0], 64)
	if err != nil {
		return s, err
	}
	s.value = v
	return s, nil
}

// sumMetric adds up the series named name whose labels include every pair
// of match; ok is false when there is none.
func sumMetric(ss []promSample, name string, match map[string]string) (sum float64, ok bool) {
outer:
	for _, s := range ss {
		if s.name != name {
			continue
		}
		for k, v := range match {
			if s.labels[k] != v {
				continue outer
			}
		}
		sum += s.value
		ok = true
	}
	return sum, ok
}
