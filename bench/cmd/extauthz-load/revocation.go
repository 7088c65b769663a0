package main

import (
	"context"
	"crypto/rand"
	"fmt"
	mrand "math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"

	"github.com/extauthz/extauthz/internal/redisproc"
	"github.com/extauthz/extauthz/pkg/devissuer"
	"github.com/extauthz/extauthz/pkg/revocation"
)

// The revocation scenario's bounds.
const (
	// revocationWindow bounds a run's measured part: the load on B and
	// the revocations beside it.
	revocationWindow = 30 * time.Second
	// revocationSpread bounds the time the revocations are paced over
	// (--duration, at most this).
	revocationSpread = 20 * time.Second
	// probeTimeout is how long a revoked token may stay allowed on B
	// before its revocation counts as failed.
	probeTimeout = 5 * time.Second
	// probeInterval is the probe's period: one Check at a time, started
	// every millisecond until B refuses the token.
	probeInterval = time.Millisecond
	// ssfPath is where the gateways receive SETs: ssf.path's default.
	ssfPath = "/ssf/events"
	// delayTarget is issue #24's bound on the p99 delay.
	delayTarget = time.Second
)

// revocationRun is what one run of the revocation scenario measured
// beside the load on B.
type revocationRun struct {
	Planned int             // revocations the run was to make (--revocations)
	Delays  []time.Duration // push to refusal on B, ascending, one per revocation that worked
	// Failed is the revocations that did not end in B's refusal: a push
	// not answered 202, a probe answered otherwise, a token still allowed
	// after probeTimeout; FailSample says why, for a few.
	Failed     int
	FailSample []string
	NotStarted int           // left out: the window would have closed before their probe
	Probes     int           // the probe's Checks
	Pace       time.Duration // one revocation started every Pace at most
	// The final check on B, after the run: every token once.
	SweepRevoked, SweepAllowed, SweepWrong int
	SweepSample                            []string
}

// failures counts everything that makes the run not clean.
func (r *revocationRun) failures() int { return r.Failed + r.SweepWrong }

// revocationTokens is the scenario's working set: n RS256 tokens, each of
// its own user (sub) and session (sid), minted once per harness.
type revocationTokens struct {
	set  *tokenSet
	sids []string
}

func (h *harness) revocationTokens(ctx context.Context, sc *Scenario) (*revocationTokens, error) {
	if h.revTokens != nil {
		return h.revTokens, nil
	}
	n := h.o.RevocationTokens
	var prefix [4]byte
	if _, err := rand.Read(prefix[:]); err != nil {
		return nil, err
	}
	tag := fmt.Sprintf("%x", prefix)
	sids := make([]string, n)
	for i := range sids {
		sids[i] = fmt.Sprintf("sess-%s-%06d", tag, i)
	}
	ts, err := h.tokenSet(sc, "revocation working set", h.rs.alg, n, func() (*tokenSet, error) {
		return buildSet(ctx, h.rs.alg, n, func(i int) (string, error) {
			return h.rs.Mint(devissuer.Token{
				Subject:  fmt.Sprintf("user-%s-%06d", tag, i),
				ClientID: "mcp-client-0a1b2c3d",
				Scopes:   []string{"mcp:tools", "mcp:resources", "openid", "profile"},
				TTL:      3 * time.Hour,
				Extra:    map[string]any{"auth_time": time.Now().Unix(), "sid": sids[i], "acr": "urn:mace:incommon:iap:silver"},
			})
		})
	})
	if err != nil {
		return nil, err
	}
	h.revTokens = &revocationTokens{set: ts, sids: sids}
	return h.revTokens, nil
}

// revocationScenario runs the revocation scenario: at each concurrency,
// a fresh redis-server and two fresh replicas A and B sharing it, B
// warmed with every token and kept under load while session-revoked SETs
// are pushed to A, one at a time, each timed until B refuses that
// session's cached token.
func (h *harness) revocationScenario(ctx context.Context, sc *Scenario) error {
	if !h.haveRed {
		sc.Status = "skipped: redis-server not installed"
		return nil
	}
	toks, err := h.revocationTokens(ctx, sc)
	if err != nil {
		return err
	}
	pace := min(h.o.Duration, revocationSpread) / time.Duration(h.o.Revocations)
	sc.note("Each run starts its own redis-server (no persistence) and two replicas, A and B, sharing it (cache.redis_url; watermarks stored in Redis and pushed to every replica on the channel %s), each with its HTTP listener on a loopback port and an ssf section trusting a transmitter served by this tool over http on loopback (its SSF configuration document and ES256 key set, discovered by the gateways), to revoke the issuer's tokens.", revocation.DefaultChannel)
	sc.note("B is warmed with one pass over the working set (each token's verdict cached), then with the load for %s; A is sent one SSF verification SET first, so that it has fetched the transmitter's keys. The table above is the load on B while the revocations are made: Checks at random over the tokens not revoked yet, every one of which must be ALLOWED (any other answer is an error). A Check already in flight for a token whose revocation starts may be refused: that is counted apart, not as an error.", fmtDur(h.warmDuration()))
	sc.note("%d revocations per run, one at a time, at most one every %s (--duration %s spread over --revocations %d; the run ends with the last one, and lasts at most %s): a token not revoked yet is chosen at random and dropped from the load; a CAEP session-revoked SET for its session (a complex subject whose session is the opaque id of the token's sid, event_timestamp now, ES256) is signed; t0 is read and the SET pushed to A (RFC 8935, answered 202 once the watermark is stored in Redis and published); meanwhile a probe on a gRPC connection of its own sends B that token, one Check every %s, until B refuses it with the revoked row (401 invalid_token, \"the access token has been revoked\"): t1 is when that answer arrived. The **delay is t1 − t0**: A's verification and storing of the SET, Redis's delivery to B, and the probe's own cost: it overstates the delay by up to one probe period (%s) plus one Check's round trip. A token still allowed %s after its push is a failed revocation.",
		h.o.Revocations, fmtDur(pace), fmtDur(h.o.Duration), h.o.Revocations, fmtDur(revocationWindow), fmtDur(probeInterval), fmtDur(probeInterval), fmtDur(probeTimeout))
	sc.note("After each run every token of the working set is sent to B once more: each revoked one must be refused with the revoked row, every other allowed. Server CPU and memory are B's.")
	for _, c := range h.o.Concurrency {
		if err := h.revocationRun(ctx, sc, toks, c, pace); err != nil {
			return err
		}
	}
	return nil
}

// revocationRun is one run: its own redis-server and replicas.
func (h *harness) revocationRun(ctx context.Context, sc *Scenario, toks *revocationTokens, c int, pace time.Duration) error {
	rs, stop, err := h.startRedis(ctx, sc)
	if rs == nil || err != nil {
		return err // nil when skipped: redis-server not installed
	}
	defer stop()
	redisURL := "redis://" + rs.Addr() + "/0"

	a, aHTTP, err := h.startReplica(ctx, "extauthz-a", redisURL)
	if err != nil {
		return err
	}
	defer a.stop()
	b, _, err := h.startReplica(ctx, "extauthz-b", redisURL)
	if err != nil {
		return err
	}
	defer b.stop()
	if err := waitSubscribers(ctx, rs.Addr(), 2); err != nil {
		return err
	}
	pushURL := "http://" + aHTTP + ssfPath
	if err := h.warmReceiver(ctx, pushURL); err != nil {
		return fmt.Errorf("replica A: %w", err)
	}

	conn, err := dial(b.addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	probe, err := dial(b.addr)
	if err != nil {
		return err
	}
	defer probe.Close()

	rv := newRevoker(h.tr, pushURL, probe, toks, h.o.Revocations, pace)
	r, err := h.measure(ctx, measurement{sc: sc, target: "extauthz serve B, under load", conc: c, srv: b, conn: conn,
		pass: toks.set.reqs, passC: max(c, 16), steady: true,
		pat:      pattern{reqs: toks.set.reqs, skip: rv.isRevoked, expected: rv.refusedInFlight},
		duration: revocationWindow, during: rv.run, stop: "revocations done"})
	if err != nil {
		return err
	}
	rv.sweep(ctx)
	r.Revocation = rv.result()
	rr := r.Revocation
	h.progress("revocation c=%d: %d of %d revocations, delay p50 %s, p99 %s, max %s; %d failed; final check %d revoked refused, %d allowed, %d wrong",
		c, len(rr.Delays), rr.Planned, fmtLat(percentile(rr.Delays, 5000)), fmtLat(percentile(rr.Delays, 9900)), fmtLat(maxDelay(rr.Delays)),
		rr.Failed, rr.SweepRevoked, rr.SweepAllowed, rr.SweepWrong)
	for _, e := range rr.FailSample {
		sc.note("c=%d failed revocation: %s", c, e)
	}
	for _, e := range rr.SweepSample {
		sc.note("c=%d final check: %s", c, e)
	}
	if a.p.exited() {
		sc.note("replica A exited during the run (%v); its log ends:\n\n```\n%s\n```", a.p.ExitStatus(), a.p.logTail())
	}
	return nil
}

func maxDelay(sorted []time.Duration) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[len(sorted)-1]
}

// startReplica runs `extauthz serve` sharing Redis at redisURL, with its
// HTTP listener (where SETs are pushed) on a free loopback port of its
// own, and returns it with that listener's address.
func (h *harness) startReplica(ctx context.Context, name, redisURL string) (*server, string, error) {
	return h.startWithPort(ctx, name, nil, func(grpcAddr, httpAddr string) configSpec {
		return configSpec{grpc: grpcAddr, http: httpAddr, issuers: []*issuer{h.rs}, tr: h.tr, redisURL: redisURL, maxEntries: 100_000}
	})
}

// waitSubscribers waits until n replicas follow the revocation channel:
// before that, a watermark published would not reach them all.
func waitSubscribers(ctx context.Context, addr string, n int64) error {
	deadline := time.Now().Add(startTimeout)
	var last any
	for {
		reply, err := redisproc.Do(addr, time.Second, "PUBSUB", "NUMSUB", revocation.DefaultChannel)
		if arr, ok := reply.([]any); err == nil && ok && len(arr) == 2 && arr[1] == n {
			return nil
		}
		last = reply
		if err != nil {
			last = err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d replicas did not subscribe to %s within %v (PUBSUB NUMSUB: %v)", n, revocation.DefaultChannel, startTimeout, last)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// warmReceiver pushes SSF verification SETs to url until one is answered
// 202: the HTTP listener answers, and the transmitter's keys are fetched.
func (h *harness) warmReceiver(ctx context.Context, url string) error {
	deadline := time.Now().Add(startTimeout)
	for {
		set, err := h.tr.verification(time.Now())
		if err != nil {
			return err
		}
		st, body, err := h.tr.push(ctx, url, set)
		if err == nil && st == 202 {
			return nil
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = fmt.Errorf("answered %d %s", st, body)
			}
			return fmt.Errorf("a verification SET pushed to %s: %w", url, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// revoker makes one run's revocations, beside the load, and checks B's
// answers afterwards.
type revoker struct {
	tr      *transmitter
	pushURL string
	probe   *grpc.ClientConn // to B, for the probe and the final check
	reqs    [][]byte
	sids    []string
	order   []int // the tokens to revoke, in order
	pace    time.Duration
	// revoked[i]: token i's revocation has started (the load no longer
	// sends it, and a refusal of it is expected).
	revoked []atomic.Bool

	// Written by run, read once it has returned.
	delays     []time.Duration
	failed     int
	failSample []string
	notStarted int
	probes     int

	sweepRevoked, sweepAllowed, sweepWrong int
	sweepSample                            []string
}

func newRevoker(tr *transmitter, pushURL string, probe *grpc.ClientConn, toks *revocationTokens, n int, pace time.Duration) *revoker {
	order := mrand.Perm(len(toks.sids))[:n]
	return &revoker{tr: tr, pushURL: pushURL, probe: probe, reqs: toks.set.reqs, sids: toks.sids, order: order, pace: pace,
		revoked: make([]atomic.Bool, len(toks.sids))}
}

func (r *revoker) isRevoked(i int) bool { return r.revoked[i].Load() }

// refusedInFlight: a load Check of token i refused because its
// revocation started while the Check was in flight.
func (r *revoker) refusedInFlight(i int, a *answer) bool {
	return r.revoked[i].Load() && revokedRow(a)
}

// revokedRow reports whether a refusal is the revoked row of the answer
// table: 401, Bearer error="invalid_token", "the access token has been
// revoked".
func revokedRow(a *answer) bool {
	den := a.full.GetDeniedResponse()
	if a.ok() || den.GetStatus().GetCode() != 401 {
		return false
	}
	for _, h := range den.GetHeaders() {
		if strings.EqualFold(h.GetHeader().GetKey(), "www-authenticate") {
			v := h.GetHeader().GetValue()
			return strings.Contains(v, `error="invalid_token"`) && strings.Contains(v, "has been revoked")
		}
	}
	return false
}

func (r *revoker) fail(format string, args ...any) {
	r.failed++
	if len(r.failSample) < 5 {
		r.failSample = append(r.failSample, fmt.Sprintf(format, args...))
	}
}

// run makes the revocations, one at a time, revocation k starting no
// earlier than k paces after the first; it leaves out those that could
// not be probed to the end before end.
func (r *revoker) run(ctx context.Context, end time.Time) {
	start := time.Now()
	for k := range r.order {
		if wait := time.Until(start.Add(time.Duration(k) * r.pace)); wait > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(wait):
			}
		}
		if ctx.Err() != nil || time.Until(end) < probeTimeout+time.Second {
			r.notStarted = len(r.order) - k
			return
		}
		r.revoke(ctx, r.order[k])
	}
}

// revoke pushes a session-revoked SET for token i's session to A and
// probes B with the token until B refuses it.
func (r *revoker) revoke(ctx context.Context, i int) {
	set, err := r.tr.sessionRevoked(r.sids[i], time.Now())
	if err != nil {
		r.fail("signing the SET: %v", err)
		return
	}
	r.revoked[i].Store(true)
	pushed := make(chan error, 1)
	t0 := time.Now()
	go func() {
		st, body, err := r.tr.push(ctx, r.pushURL, set)
		if err == nil && st != 202 {
			err = fmt.Errorf("replica A answered %d %s", st, strings.TrimSpace(body))
		}
		pushed <- err
	}()
	var (
		pushErr  error
		pushDone bool
	)
	awaitPush := func() error {
		if !pushDone {
			pushErr, pushDone = <-pushed, true
		}
		return pushErr
	}
	a := &answer{}
	deadline := t0.Add(probeTimeout)
	for {
		sent := time.Now()
		cctx, cancel := context.WithTimeout(ctx, probeTimeout)
		err := r.probe.Invoke(cctx, checkMethod, &rawRequest{r.reqs[i]}, a, forceRaw)
		cancel()
		t1 := time.Now()
		r.probes++
		switch {
		case ctx.Err() != nil:
			_ = awaitPush()
			r.fail("interrupted while probing")
			return
		case err != nil:
			_ = awaitPush()
			r.fail("probe: gRPC error: %v", err)
			return
		case !a.ok() && revokedRow(a):
			if err := awaitPush(); err != nil {
				r.fail("refused on B, but the push failed: %v", err)
				return
			}
			r.delays = append(r.delays, t1.Sub(t0))
			return
		case !a.ok():
			_ = awaitPush()
			r.fail("probe: refused otherwise than as revoked: %s", a.String())
			return
		}
		if !pushDone {
			select {
			case pushErr = <-pushed:
				pushDone = true
			default:
			}
		}
		if pushDone && pushErr != nil {
			r.fail("push: %v", pushErr)
			return
		}
		if t1.After(deadline) {
			_ = awaitPush()
			r.fail("token still allowed on B %s after its SET was pushed", fmtDur(t1.Sub(t0)))
			return
		}
		if wait := time.Until(sent.Add(probeInterval)); wait > 0 {
			time.Sleep(wait)
		}
	}
}

// sweep sends every token to B once: each revoked one must be refused
// with the revoked row, every other allowed.
func (r *revoker) sweep(ctx context.Context) {
	var (
		next             atomic.Int64
		revoked, allowed atomic.Int64
		mu               sync.Mutex
		wg               sync.WaitGroup
		wrong            int
		sample           []string
	)
	bad := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		wrong++
		if len(sample) < 5 {
			sample = append(sample, fmt.Sprintf(format, args...))
		}
	}
	for range 8 {
		wg.Go(func() {
			a := &answer{}
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= len(r.reqs) {
					return
				}
				cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				err := r.probe.Invoke(cctx, checkMethod, &rawRequest{r.reqs[i]}, a, forceRaw)
				cancel()
				want := r.revoked[i].Load()
				switch {
				case err != nil:
					bad("token %d: gRPC error: %v", i, err)
				case want && revokedRow(a):
					revoked.Add(1)
				case !want && a.ok():
					allowed.Add(1)
				case want:
					bad("revoked token %d: %s", i, answerText(a))
				default:
					bad("token %d, never revoked: %s", i, answerText(a))
				}
			}
		})
	}
	wg.Wait()
	if ctx.Err() != nil {
		bad("interrupted")
	}
	r.sweepRevoked, r.sweepAllowed, r.sweepWrong, r.sweepSample = int(revoked.Load()), int(allowed.Load()), wrong, sample
}

func answerText(a *answer) string {
	if a.ok() {
		return "ALLOWED"
	}
	return a.String()
}

func (r *revoker) result() *revocationRun {
	d := slices.Clone(r.delays)
	slices.Sort(d)
	return &revocationRun{Planned: len(r.order), Delays: d, Failed: r.failed, FailSample: r.failSample, NotStarted: r.notStarted,
		Probes: r.probes, Pace: r.pace, SweepRevoked: r.sweepRevoked, SweepAllowed: r.sweepAllowed, SweepWrong: r.sweepWrong, SweepSample: r.sweepSample}
}
