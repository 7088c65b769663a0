package cache_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/extauthz/extauthz/internal/redistest"
	"github.com/extauthz/extauthz/pkg/cache"
	"github.com/extauthz/extauthz/pkg/cache/cachetest"

	"github.com/extauthz/extauthz/internal/testkit"
)

var (
	_ cache.Store[[]byte] = (*cache.Redis)(nil)
	_ cachetest.Expirer   = (*cache.Redis)(nil)
	_ cachetest.Adder     = (*cache.Redis)(nil)
)

// sharedRedisAddr is the development and CI machine's Redis. Tests share it with everyone else:
// they use keys under a random prefix, delete them afterwards, and never flush or reconfigure it.
const sharedRedisAddr = "127.0.0.1:6379"

// semanticsTimeout is the per-call timeout where a test checks what a store does, not how fast:
// the production 25ms is a latency budget, and a loaded machine running tests under -race can
// miss it, which would make the suite fail for a reason it is not about. The budget itself is
// tested on its own (TestRedisSlowRedisIsAMiss).
const semanticsTimeout = 5 * time.Second

// waitGuard bounds how long a test waits for something that should happen promptly (a message,
// a reconnection), so that a bug ends the test with a message instead of hanging it. It is not
// an assertion about speed.
const waitGuard = 30 * time.Second

// newClient builds a client with NewRedisClient, closed when the test ends.
func newClient(tb testing.TB, o cache.RedisClientOptions) redis.UniversalClient {
	tb.Helper()
	if o.Timeout == 0 {
		o.Timeout = semanticsTimeout
	}
	c, err := cache.NewRedisClient(o)
	if err != nil {
		tb.Fatalf("NewRedisClient: %v", err)
	}
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

// sharedClient is a client of the shared Redis, which must be there: a test never skips
// because a service it needs is missing.
func sharedClient(tb testing.TB) redis.UniversalClient {
	tb.Helper()
	c := newClient(tb, cache.RedisClientOptions{URL: "redis://" + sharedRedisAddr})
	if err := c.Ping(context.Background()).Err(); err != nil {
		tb.Fatalf("the shared Redis at %s does not answer (%v): these tests need it (.ci/run starts one)",
			sharedRedisAddr, err)
	}
	return c
}

// trackedRedis records every key written through it, so that a test on the shared Redis can
// delete exactly its own keys afterwards: the conformance suite chooses the keys, and a pattern
// delete could hit someone else's.
type trackedRedis struct {
	*cache.Redis
	mu   sync.Mutex
	keys map[string]struct{}
}

func newTrackedRedis(tb testing.TB, c redis.UniversalClient, r *cache.Redis) *trackedRedis {
	s := &trackedRedis{Redis: r, keys: map[string]struct{}{}}
	tb.Cleanup(func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		for k := range s.keys {
			// t.Context is already cancelled when cleanups run.
			if err := c.Del(context.Background(), k).Err(); err != nil {
				tb.Errorf("deleting test key %q from the shared Redis: %v", k, err)
			}
		}
	})
	return s
}

func (s *trackedRedis) track(key string) {
	s.mu.Lock()
	s.keys[key] = struct{}{}
	s.mu.Unlock()
}

func (s *trackedRedis) Set(ctx context.Context, key string, v []byte, ttl time.Duration) error {
	s.track(key)
	return s.Redis.Set(ctx, key, v, ttl)
}

func (s *trackedRedis) Add(ctx context.Context, key string, v []byte, ttl time.Duration) (bool, error) {
	s.track(key)
	return s.Redis.Add(ctx, key, v, ttl)
}

// uniqueKey is a key under a random prefix, for tests that write the shared Redis directly.
func uniqueKey(name string) string {
	return "extauthz:v1:cachetest-" + strconv.FormatUint(rand.Uint64(), 36) + ":" + name
}

// conformance runs the shared suite on a Redis store over client, with a fake clock per case:
// entry expiry follows the envelope, so the suite needs no waiting even against a real Redis.
func conformance(t *testing.T, client redis.UniversalClient, track bool) {
	cachetest.Run(t, func(t *testing.T) cachetest.Harness {
		t.Parallel()
		clock := testkit.NewClockAt(cache.ClockStart)
		r := cache.NewRedis(client, cache.RedisOptions{Timeout: semanticsTimeout, Now: clock.Now})
		var s cache.Store[[]byte] = r
		if track {
			s = newTrackedRedis(t, client, r)
		}
		return cachetest.Harness{Store: s, Advance: clock.Advance, Now: clock.Now}
	})
}

func TestRedisConformanceShared(t *testing.T) {
	t.Parallel()
	conformance(t, sharedClient(t), true)
}

func TestRedisConformanceCluster(t *testing.T) {
	t.Parallel()
	cl := redistest.StartCluster(t, 3)
	conformance(t, newClient(t, cache.RedisClientOptions{ClusterAddrs: cl.Addrs()}), false)
}

func TestRedisConformanceSentinel(t *testing.T) {
	t.Parallel()
	s := redistest.StartSentinel(t)
	client := newClient(t, cache.RedisClientOptions{SentinelMaster: s.MasterName(), SentinelAddrs: s.SentinelAddrs()})
	// Writes go to the master that the sentinel names.
	r := cache.NewRedis(client, cache.RedisOptions{Timeout: semanticsTimeout})
	if err := r.Set(t.Context(), "where", []byte("v"), time.Minute); err != nil {
		t.Fatal(err)
	}
	if n, err := redistest.Do(s.Master().Addr(), "EXISTS", "where"); err != nil || n != int64(1) {
		t.Fatalf("EXISTS on the master = %v, %v; want 1", n, err)
	}
	conformance(t, client, false)
}

// Redis never keeps an entry longer than the caller asked, and the stored bytes have the
// documented envelope layout (other replicas, of other versions, read it).
func TestRedisStoredEntry(t *testing.T) {
	t.Parallel()
	client := sharedClient(t)
	clock := testkit.NewClockAt(cache.ClockStart)
	r := cache.NewRedis(client, cache.RedisOptions{Timeout: semanticsTimeout, Now: clock.Now})
	ctx := t.Context()

	for _, ttl := range []time.Duration{time.Millisecond, 1500 * time.Millisecond, time.Second, 90 * time.Minute, math.MaxInt64} {
		t.Run(ttl.String(), func(t *testing.T) {
			key := uniqueKey("pttl")
			t.Cleanup(func() { client.Del(context.Background(), key) })
			if err := r.Set(ctx, key, []byte("payload"), ttl); err != nil {
				t.Fatal(err)
			}
			pttl, err := client.PTTL(ctx, key).Result()
			if err != nil {
				t.Fatal(err)
			}
			// PTTL is -2 once a 1ms entry is gone, which is fine: it did not outlive its TTL.
			if pttl > ttl || pttl == -1 {
				t.Fatalf("PTTL after Set with ttl %v = %v; want at most %v", ttl, pttl, ttl)
			}

			if err := r.Set(ctx, key, []byte("payload"), ttl); err != nil {
				t.Fatal(err)
			}
			raw, err := client.Get(ctx, key).Bytes()
			if errors.Is(err, redis.Nil) && ttl == time.Millisecond {
				return // already reclaimed
			}
			if err != nil {
				t.Fatal(err)
			}
			want := make([]byte, 9, 9+len("payload"))
			want[0] = 1
			binary.BigEndian.PutUint64(want[1:], uint64(clock.Now().Add(ttl).UnixMilli()))
			want = append(want, "payload"...)
			if !bytes.Equal(raw, want) {
				t.Fatalf("stored bytes %x, want %x (version 1, expiry ms big-endian, payload)", raw, want)
			}
		})
	}
}

// A value this version did not write is a miss and a decode error, not a failure of Redis, and
// Add replaces it.
func TestRedisMalformedEntry(t *testing.T) {
	t.Parallel()
	client := sharedClient(t)
	obs := newRecorder()
	clock := testkit.NewClockAt(cache.ClockStart)
	r := cache.NewRedis(client, cache.RedisOptions{Timeout: semanticsTimeout, Now: clock.Now, Observer: obs, CircuitFailures: 1})
	ctx := t.Context()
	far := make([]byte, 8)
	binary.BigEndian.PutUint64(far, uint64(clock.Now().Add(time.Hour).UnixMilli()))

	for name, raw := range map[string][]byte{
		"empty":     {},
		"short":     {1, 0, 0},
		"version 2": append([]byte{2}, far...),
		"text":      []byte(`{"sub":"alice"}`),
	} {
		t.Run(name, func(t *testing.T) {
			key := uniqueKey("malformed")
			t.Cleanup(func() { client.Del(context.Background(), key) })
			if err := client.Set(ctx, key, raw, time.Minute).Err(); err != nil {
				t.Fatal(err)
			}
			before := obs.errorCount("redis/decode")
			v, exp, ok, err := r.GetExpiry(ctx, key)
			if err != nil || ok || v != nil || !exp.IsZero() {
				t.Fatalf("GetExpiry of %x = %q, %v, %v, %v; want a plain miss", raw, v, exp, ok, err)
			}
			if got := obs.errorCount("redis/decode") - before; got != 1 {
				t.Fatalf("decode errors reported: %d, want 1", got)
			}
			if added, err := r.Add(ctx, key, []byte("fresh"), time.Minute); err != nil || !added {
				t.Fatalf("Add over a malformed entry = %v, %v; want true", added, err)
			}
			if v, ok, err := r.Get(ctx, key); err != nil || !ok || string(v) != "fresh" {
				t.Fatalf("Get after Add = %q, %v, %v", v, ok, err)
			}
		})
	}
	if r.CircuitOpen() {
		t.Fatal("malformed entries opened the circuit: Redis answered, it did not fail")
	}
}

// recorder is an Observer that records what it is told.
type recorder struct {
	mu      sync.Mutex
	errors  map[string]int // "tier/op"
	circuit []bool
	other   int
}

func newRecorder() *recorder { return &recorder{errors: map[string]int{}} }

func (r *recorder) Lookup(string, bool) { r.mu.Lock(); r.other++; r.mu.Unlock() }
func (r *recorder) Evicted(string)      { r.mu.Lock(); r.other++; r.mu.Unlock() }
func (r *recorder) Error(tier, op string) {
	r.mu.Lock()
	r.errors[tier+"/"+op]++
	r.mu.Unlock()
}
func (r *recorder) CircuitOpen(open bool) {
	r.mu.Lock()
	r.circuit = append(r.circuit, open)
	r.mu.Unlock()
}

func (r *recorder) errorCount(key string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.errors[key]
}

func (r *recorder) totalErrors() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, c := range r.errors {
		n += c
	}
	return n
}

func (r *recorder) circuitEvents() []bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]bool(nil), r.circuit...)
}

// networkCounter counts what a go-redis client sends and dials, to show that a call did not
// touch the network.
type networkCounter struct{ dials, commands atomic.Int64 }

func (h *networkCounter) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		h.dials.Add(1)
		return next(ctx, network, addr)
	}
}

func (h *networkCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.commands.Add(1)
		return next(ctx, cmd)
	}
}

func (h *networkCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.commands.Add(int64(len(cmds)))
		return next(ctx, cmds)
	}
}

func (h *networkCounter) total() int64 { return h.dials.Load() + h.commands.Load() }

// logRecorder keeps log records' messages.
type logRecorder struct {
	mu   sync.Mutex
	msgs []string
}

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	l.msgs = append(l.msgs, r.Level.String()+" "+r.Message)
	l.mu.Unlock()
	return nil
}
func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logRecorder) WithGroup(string) slog.Handler      { return l }

func (l *logRecorder) count(substr string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, m := range l.msgs {
		if strings.Contains(m, substr) {
			n++
		}
	}
	return n
}

// allOps calls every circuit-guarded operation and returns their errors.
func allOps(ctx context.Context, r *cache.Redis, key string) map[string]error {
	_, _, err1 := r.Get(ctx, key)
	_, _, _, err2 := r.GetExpiry(ctx, key)
	err3 := r.Set(ctx, key, []byte("v"), time.Minute)
	err4 := r.Set(ctx, key, nil, 0) // a delete by Set
	_, err5 := r.Add(ctx, key, []byte("v"), time.Minute)
	err6 := r.Delete(ctx, key)
	_, err7 := r.Publish(ctx, "extauthz:v1:cachetest", []byte("m"))
	return map[string]error{
		"Get": err1, "GetExpiry": err2, "Set": err3, "Set(ttl 0)": err4,
		"Add": err5, "Delete": err6, "Publish": err7,
	}
}

// The circuit opens after CircuitFailures consecutive failures, answers ErrCircuitOpen without
// touching the network while open, lets one probe through after the cooldown by the injected
// clock, stays open if the probe fails and closes when one succeeds; each change is reported
// and logged once.
func TestRedisCircuitBreaker(t *testing.T) {
	t.Parallel()
	const failures, cooldown = 3, 2 * time.Second
	srv := redistest.Start(t)
	client := newClient(t, cache.RedisClientOptions{URL: "redis://" + srv.Addr()})
	counter := &networkCounter{}
	client.AddHook(counter)
	clock := testkit.NewClockAt(cache.ClockStart)
	obs := newRecorder()
	logs := &logRecorder{}
	r := cache.NewRedis(client, cache.RedisOptions{
		Timeout: semanticsTimeout, CircuitFailures: failures, CircuitCooldown: cooldown,
		Now: clock.Now, Observer: obs, Logger: slog.New(logs),
	})
	ctx := t.Context()
	const key = "k"

	if err := r.Set(ctx, key, []byte("v"), time.Minute); err != nil {
		t.Fatal(err)
	}
	srv.Stop()

	for i := 1; i <= failures; i++ {
		if r.CircuitOpen() {
			t.Fatalf("circuit open after %d failures, want it open only after %d", i-1, failures)
		}
		v, ok, err := r.Get(ctx, key)
		if err == nil || ok || v != nil || errors.Is(err, cache.ErrCircuitOpen) {
			t.Fatalf("Get #%d with Redis down = %q, %v, %v; want a miss with a Redis error", i, v, ok, err)
		}
	}
	if !r.CircuitOpen() {
		t.Fatalf("circuit closed after %d consecutive failures", failures)
	}
	if got := obs.errorCount("redis/get"); got != failures {
		t.Fatalf("get errors reported: %d, want %d", got, failures)
	}
	if got := obs.circuitEvents(); len(got) != 1 || !got[0] {
		t.Fatalf("CircuitOpen events %v, want [true]", got)
	}

	// Open: every operation refuses at once, with no dial and no command.
	wantRefused := func(when string) {
		t.Helper()
		netBefore, errsBefore := counter.total(), obs.totalErrors()
		for op, err := range allOps(ctx, r, key) {
			if !errors.Is(err, cache.ErrCircuitOpen) {
				t.Errorf("%s %s: %v, want ErrCircuitOpen", when, op, err)
			}
		}
		if n := counter.total() - netBefore; n != 0 {
			t.Errorf("%s: %d dials and commands while the circuit is open, want none", when, n)
		}
		if n := obs.totalErrors() - errsBefore; n != 0 {
			t.Errorf("%s: %d errors reported for refused calls, want none (the circuit state says it)", when, n)
		}
	}
	wantRefused("open")
	clock.Advance(cooldown - time.Nanosecond)
	wantRefused("a nanosecond before the cooldown ends")

	// Half-open, Redis still down: the probe reaches the network, fails, and the circuit stays
	// open for another cooldown.
	clock.Advance(time.Nanosecond)
	netBefore := counter.total()
	if _, _, err := r.Get(ctx, key); err == nil || errors.Is(err, cache.ErrCircuitOpen) {
		t.Fatalf("probe with Redis down: %v, want a Redis error", err)
	}
	if counter.total() == netBefore {
		t.Fatal("the probe did not reach the network")
	}
	if !r.CircuitOpen() {
		t.Fatal("circuit closed after a failed probe")
	}
	wantRefused("after a failed probe")

	// Redis is back, but the cooldown restarted with the failed probe.
	srv.Restart()
	clock.Advance(cooldown - time.Nanosecond)
	wantRefused("Redis back, cooldown not over")
	clock.Advance(time.Nanosecond)
	v, ok, err := r.Get(ctx, key)
	if err != nil || ok {
		t.Fatalf("probe with Redis back = %q, %v, %v; want a miss (the restart lost the data) without error", v, ok, err)
	}
	if r.CircuitOpen() {
		t.Fatal("circuit still open after a successful probe")
	}
	for op, err := range allOps(ctx, r, key) {
		if err != nil {
			t.Errorf("%s after the circuit closed: %v", op, err)
		}
	}
	if got := obs.circuitEvents(); len(got) != 2 || !got[0] || got[1] {
		t.Fatalf("CircuitOpen events %v, want [true false]", got)
	}
	if o, c := logs.count("circuit opened"), logs.count("circuit closed"); o != 1 || c != 1 {
		t.Fatalf("logged %d opens and %d closes, want one each; log: %q", o, c, logs.msgs)
	}

	// Failures must be consecutive: a success in between starts the count again.
	srv.Stop()
	for range failures - 1 {
		_, _, _ = r.Get(ctx, key)
	}
	srv.Restart()
	if _, _, err := r.Get(ctx, key); err != nil {
		t.Fatalf("Get with Redis back: %v", err)
	}
	srv.Stop()
	for range failures - 1 {
		_, _, _ = r.Get(ctx, key)
	}
	if r.CircuitOpen() {
		t.Fatalf("circuit opened on %d failures split by a success", 2*(failures-1))
	}
}

// A Redis that has become slow (frozen: it accepts connections and never answers) costs a call
// the store's Timeout, not the caller's patience; the call is a miss with an error, and counts
// as a failure. A caller that gives up first is not Redis's failure.
func TestRedisSlowRedisIsAMiss(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	// The client's own socket timeouts are an hour, so only the store's deadline can end a call.
	client := newClient(t, cache.RedisClientOptions{URL: "redis://" + srv.Addr(), Timeout: time.Hour, DialTimeout: time.Hour})
	obs := newRecorder()
	r := cache.NewRedis(client, cache.RedisOptions{CircuitFailures: 2, Observer: obs}) // default Timeout
	ctx := t.Context()
	// Warm a pooled connection up (with time to spare), so that the calls below meet a Redis
	// that stops answering on an established connection, as a slow one does.
	warm := cache.NewRedis(client, cache.RedisOptions{Timeout: semanticsTimeout})
	if err := warm.Set(ctx, "k", []byte("v"), time.Minute); err != nil {
		t.Fatal(err)
	}
	srv.Freeze()

	get := func(ctx context.Context) ([]byte, bool, error) {
		type result struct {
			v   []byte
			ok  bool
			err error
		}
		done := make(chan result, 1)
		go func() {
			v, ok, err := r.Get(ctx, "k")
			done <- result{v, ok, err}
		}()
		select {
		case res := <-done:
			return res.v, res.ok, res.err
		case <-time.After(waitGuard):
			t.Fatal("Get on a frozen Redis did not return: no deadline applied")
			return nil, false, nil
		}
	}

	// The caller's deadline comes first (the store's is 25ms): not a Redis failure, however often.
	for range 3 {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Millisecond)
		v, ok, err := get(cctx)
		cancel()
		if err == nil || ok || v != nil {
			t.Fatalf("Get past the caller's deadline = %q, %v, %v; want a miss with an error", v, ok, err)
		}
	}
	if r.CircuitOpen() || obs.totalErrors() != 0 {
		t.Fatalf("the caller's own deadline counted against Redis: circuit open %v, errors %v", r.CircuitOpen(), obs.errors)
	}

	// No deadline from the caller: the store's own ends the call, and that may be Redis's
	// failure: the circuit asks Redis (a PING, in the background), which does not answer
	// either, and opens.
	for i := range 2 {
		v, ok, err := get(ctx)
		var ne net.Error
		if ok || v != nil || !(errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()) {
			t.Fatalf("Get #%d on a frozen Redis = %q, %v, %v; want a miss with a timeout", i, v, ok, err)
		}
	}
	if got := obs.errorCount("redis/get"); got != 2 {
		t.Fatalf("after 2 timeouts: get errors %d, want 2", got)
	}
	poll(t, "circuit open after 2 timeouts and an unanswered PING", r.CircuitOpen)
}

// waitFor waits for a value from ch, failing the test after waitGuard.
func waitFor[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(waitGuard):
		t.Fatalf("no %s within %v", what, waitGuard)
		var zero T
		return zero
	}
}

// poll calls cond until it is true, failing the test after waitGuard.
func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitGuard)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, waitGuard)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// subscriber runs Subscribe in the background and collects what it delivers.
type subscriber struct {
	msgs   chan string
	resubs chan struct{}
	done   chan struct{}
	cancel context.CancelFunc
}

func subscribe(t *testing.T, r *cache.Redis, channel string) *subscriber {
	ctx, cancel := context.WithCancel(context.Background())
	s := &subscriber{msgs: make(chan string, 100), resubs: make(chan struct{}, 100), done: make(chan struct{}), cancel: cancel}
	go func() {
		defer close(s.done)
		r.Subscribe(ctx, channel,
			func(b []byte) { s.msgs <- string(b) },
			func() { s.resubs <- struct{}{} })
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-s.done:
		case <-time.After(waitGuard):
			t.Errorf("Subscribe did not return within %v of its context ending", waitGuard)
		}
	})
	return s
}

// numsub is the number of subscribers of channel on the node at addr.
func numsub(t *testing.T, addr, channel string) int64 {
	t.Helper()
	reply, err := redistest.Do(addr, "PUBSUB", "NUMSUB", channel)
	if err != nil {
		t.Fatal(err)
	}
	kv, _ := reply.([]any)
	if len(kv) != 2 {
		t.Fatalf("PUBSUB NUMSUB reply %v", reply)
	}
	n, _ := kv[1].(int64)
	return n
}

func TestRedisSubscribe(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	client := newClient(t, cache.RedisClientOptions{URL: "redis://" + srv.Addr()})
	r := cache.NewRedis(client, cache.RedisOptions{Timeout: semanticsTimeout, CircuitFailures: 1000})
	ctx := t.Context()
	const channel = "extauthz:v1:test"
	sub := subscribe(t, r, channel)

	poll(t, "subscription active", func() bool { return numsub(t, srv.Addr(), channel) == 1 })
	if n, err := r.Publish(ctx, channel, []byte("m1")); err != nil || n != 1 {
		t.Fatalf("Publish = %d, %v; want 1 receiver", n, err)
	}
	if got := waitFor(t, sub.msgs, "message m1"); got != "m1" {
		t.Fatalf("received %q, want m1", got)
	}
	if len(sub.resubs) != 0 {
		t.Fatal("onResubscribe called for the first subscription")
	}

	// The server restarts: messages in between may be lost, so the subscriber is told.
	srv.Restart()
	waitFor(t, sub.resubs, "onResubscribe after the restart")
	// The confirmation came after the server registered the subscription, so this PUBLISH reaches
	// it; Publish may need a retry, since the pool's old connection died with the server.
	poll(t, "Publish after restart", func() bool {
		n, err := r.Publish(ctx, channel, []byte("m2"))
		return err == nil && n == 1
	})
	if got := waitFor(t, sub.msgs, "message m2"); got != "m2" {
		t.Fatalf("received %q, want m2", got)
	}

	// Subscribe returns when its context ends, even with Redis down.
	srv.Stop()
	sub.cancel()
	waitFor(t, sub.done, "Subscribe returning after cancel")
	if len(sub.msgs) != 0 {
		t.Fatalf("unexpected messages: %d", len(sub.msgs))
	}
}

// SubscribeConfirmed reports every confirmation, the first one included, and after it the
// subscription is in place: what a caller reads then, and what is published after, it has all.
func TestRedisSubscribeConfirmed(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	client := newClient(t, cache.RedisClientOptions{URL: "redis://" + srv.Addr()})
	r := cache.NewRedis(client, cache.RedisOptions{Timeout: semanticsTimeout, CircuitFailures: 1000})
	const channel = "extauthz:v1:test-confirmed"
	ctx, cancel := context.WithCancel(context.Background())
	msgs, confirmed, done := make(chan string, 10), make(chan bool, 10), make(chan struct{})
	go func() {
		defer close(done)
		r.SubscribeConfirmed(ctx, channel, func(b []byte) { msgs <- string(b) }, func(first bool) {
			// Published from inside the callback: the subscription must
			// already receive it.
			if _, err := r.Publish(ctx, channel, []byte(fmt.Sprint("confirmed ", first))); err != nil {
				t.Errorf("Publish: %v", err)
			}
			confirmed <- first
		})
	}()
	t.Cleanup(func() { cancel(); <-done })

	if first := waitFor(t, confirmed, "the first confirmation"); !first {
		t.Fatal("the first confirmation came with first false")
	}
	if got := waitFor(t, msgs, "the message published on confirmation"); got != "confirmed true" {
		t.Fatalf("received %q", got)
	}
	srv.Restart()
	if first := waitFor(t, confirmed, "the confirmation after the restart"); first {
		t.Fatal("the confirmation after a restart came with first true")
	}
	if got := waitFor(t, msgs, "the message published on the second confirmation"); got != "confirmed false" {
		t.Fatalf("received %q", got)
	}
}

// In a cluster, a message published on any node reaches a subscriber wherever the cluster
// client placed its subscription.
func TestRedisSubscribeCluster(t *testing.T) {
	t.Parallel()
	cl := redistest.StartCluster(t, 3)
	client := newClient(t, cache.RedisClientOptions{ClusterAddrs: cl.Addrs()})
	r := cache.NewRedis(client, cache.RedisOptions{Timeout: semanticsTimeout})
	const channel = "extauthz:v1:test"
	sub := subscribe(t, r, channel)

	var subNode string
	poll(t, "subscription active on some node", func() bool {
		for _, a := range cl.Addrs() {
			if numsub(t, a, channel) == 1 {
				subNode = a
				return true
			}
		}
		return false
	})
	for _, a := range cl.Addrs() {
		if a == subNode {
			continue
		}
		msg := "via " + a
		// The node has no subscriber of its own (0 receivers); the cluster bus carries the message.
		if n, err := redistest.Do(a, "PUBLISH", channel, msg); err != nil || n != int64(0) {
			t.Fatalf("PUBLISH on %s = %v, %v", a, n, err)
		}
		if got := waitFor(t, sub.msgs, "message published on another node"); got != msg {
			t.Fatalf("received %q, want %q", got, msg)
		}
	}
	if _, err := r.Publish(t.Context(), channel, []byte("via client")); err != nil {
		t.Fatal(err)
	}
	if got := waitFor(t, sub.msgs, "message published through the cluster client"); got != "via client" {
		t.Fatalf("received %q, want %q", got, "via client")
	}
	if len(sub.resubs) != 0 {
		t.Fatal("onResubscribe called without a reconnection")
	}
}

func BenchmarkRedisGetHit(b *testing.B) {
	client := sharedClient(b)
	// A latency measurement, not a budget: calls are not cut short at 25ms here.
	r := cache.NewRedis(client, cache.RedisOptions{Timeout: semanticsTimeout})
	ctx := context.Background()
	key := uniqueKey("bench") + ":" + strings.Repeat("0", 64) // a token key's length
	b.Cleanup(func() { client.Del(context.Background(), key) })
	if err := r.Set(ctx, key, []byte(`{"sub":"alice","scope":"read write","exp":1767323045}`), time.Hour); err != nil {
		b.Fatal(err)
	}
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, ok, err := r.Get(ctx, key); !ok || err != nil {
				b.Fatalf("Get = %v, %v", ok, err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, ok, err := r.Get(ctx, key); !ok || err != nil {
					b.Errorf("Get = %v, %v", ok, err)
					return
				}
			}
		})
	})
}

func ExampleNewRedisClient() {
	client, err := cache.NewRedisClient(cache.RedisClientOptions{
		URL:      "redis://redis.cache.svc:6379/0",
		Password: "from-a-secret", // kept out of the URL
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer client.Close()
	store := cache.NewRedis(client, cache.RedisOptions{})
	_ = store
	fmt.Println(client.(*redis.Client).Options().Addr)
	// Output: redis.cache.svc:6379
}

// Calls that time out on our side while Redis answers (here a budget no round trip can meet,
// standing for a process too busy to read its replies in time) do not open the circuit: a PING
// shows Redis answering. The same timeouts with Redis hung, or calls refused with Redis
// stopped, do open it.
func TestRedisCircuitTellsSaturationFromRedisDown(t *testing.T) {
	t.Parallel()
	const failures = 3
	for _, tc := range []struct {
		name     string
		redis    func(*redistest.Server) // what happens to Redis before the calls
		wantOpen bool
	}{
		{"Redis answers", func(*redistest.Server) {}, false},
		{"Redis hung", (*redistest.Server).Freeze, true},
		{"Redis stopped", (*redistest.Server).Stop, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := redistest.Start(t)
			client := newClient(t, cache.RedisClientOptions{URL: "redis://" + srv.Addr()})
			logs := &logRecorder{}
			obs := newRecorder()
			// A microsecond: no call can finish in time, Redis healthy or not.
			r := cache.NewRedis(client, cache.RedisOptions{Timeout: time.Microsecond, CircuitFailures: failures, Observer: obs, Logger: slog.New(logs)})
			ctx := t.Context()
			warm := cache.NewRedis(client, cache.RedisOptions{Timeout: semanticsTimeout})
			if err := warm.Set(ctx, "k", []byte("v"), time.Minute); err != nil {
				t.Fatal(err)
			}
			tc.redis(srv)
			if tc.name == "Redis hung" {
				t.Cleanup(srv.Thaw)
			}
			for i := range 10 * failures {
				if _, ok, err := r.Get(ctx, "k"); ok || err == nil {
					t.Fatalf("Get #%d = %v, %v; want a miss with an error", i, ok, err)
				}
			}
			if tc.wantOpen {
				poll(t, "circuit open", r.CircuitOpen)
				return
			}
			poll(t, "a PING answered", func() bool { return logs.count("Redis answers a probe") > 0 })
			if r.CircuitOpen() || len(obs.circuitEvents()) != 0 {
				t.Fatalf("circuit opened (events %v) though Redis answers", obs.circuitEvents())
			}
			// The failures still show, by operation.
			if obs.errorCount("redis/get") != 10*failures {
				t.Fatalf("get errors %d, want %d", obs.errorCount("redis/get"), 10*failures)
			}
		})
	}
}
