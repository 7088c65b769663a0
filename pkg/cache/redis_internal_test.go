package cache

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"math"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/extauthz/extauthz/internal/redistest"

	"github.com/extauthz/extauthz/internal/testkit"
)

func TestEnvelopeRoundTrip(t *testing.T) {
	exp := time.Date(2026, 1, 2, 3, 4, 5, 678_900_000, time.UTC)
	for _, payload := range [][]byte{nil, {}, []byte("x"), bytes.Repeat([]byte{0xff}, 1000)} {
		env := encodeEnvelope(exp, payload)
		if len(env) != envelopeHeaderSize+len(payload) || env[0] != envelopeVersion {
			t.Fatalf("envelope %x: wrong size or version", env)
		}
		got, gotExp, ok := decodeEnvelope(env)
		if !ok || !bytes.Equal(got, payload) {
			t.Fatalf("decode(encode(%x)) = %x, %v", payload, got, ok)
		}
		// Truncated to the millisecond: never later than asked.
		if want := exp.Truncate(time.Millisecond); !gotExp.Equal(want) {
			t.Fatalf("expiry %v, want %v", gotExp, want)
		}
	}
	for _, bad := range [][]byte{nil, {}, {1}, {1, 0, 0, 0, 0, 0, 0, 0}, {2, 0, 0, 0, 0, 0, 0, 0, 0}, {0, 0, 0, 0, 0, 0, 0, 0, 0, 'x'}} {
		if _, _, ok := decodeEnvelope(bad); ok {
			t.Errorf("decodeEnvelope(%x) accepted", bad)
		}
	}
}

func TestRedisTTLRoundsUp(t *testing.T) {
	for ttl, want := range map[time.Duration]time.Duration{
		time.Nanosecond:                         time.Millisecond,
		time.Millisecond:                        time.Millisecond,
		time.Millisecond + time.Nanosecond:      2 * time.Millisecond,
		1500 * time.Microsecond:                 2 * time.Millisecond,
		time.Second:                             time.Second,
		time.Duration(math.MaxInt64 / 2):        time.Duration(math.MaxInt64/2).Truncate(time.Millisecond) + time.Millisecond,
		90*time.Minute + 999*time.Microsecond:   90*time.Minute + time.Millisecond,
		90*time.Minute + 1000*time.Microsecond:  90*time.Minute + time.Millisecond,
		90*time.Minute + 1001*time.Microsecond:  90*time.Minute + 2*time.Millisecond,
		25*time.Hour + 250*time.Millisecond - 1: 25*time.Hour + 250*time.Millisecond,
		time.Duration(math.MaxInt64):            time.Duration(math.MaxInt64).Truncate(time.Millisecond),
	} {
		if got := redisTTL(ttl); got != want {
			t.Errorf("redisTTL(%v) = %v, want %v", ttl, got, want)
		}
	}
}

func TestCallerGaveUp(t *testing.T) {
	if callerGaveUp(context.Background()) {
		t.Fatal("a background context gave up")
	}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	if !callerGaveUp(cancelled) {
		t.Fatal("a cancelled context did not give up")
	}
	// A deadline in the past counts even before the context's timer has fired: go-redis can fail
	// a read on the socket deadline first. WithDeadline of a past time is done at once, so build
	// the "not yet marked done" case with a context that only reports a deadline.
	if !callerGaveUp(deadlineOnly{time.Now().Add(-time.Millisecond)}) {
		t.Fatal("a context past its deadline did not give up")
	}
	if callerGaveUp(deadlineOnly{time.Now().Add(time.Hour)}) {
		t.Fatal("a context an hour before its deadline gave up")
	}
}

// deadlineOnly reports a deadline but is never done, like a context whose timer has not run yet.
type deadlineOnly struct{ d time.Time }

func (c deadlineOnly) Deadline() (time.Time, bool) { return c.d, true }
func (deadlineOnly) Done() <-chan struct{}         { return nil }
func (deadlineOnly) Err() error                    { return nil }
func (deadlineOnly) Value(any) any                 { return nil }

// logCounter counts log records by message.
type logCounter struct {
	mu   sync.Mutex
	msgs []string
}

func (l *logCounter) Enabled(context.Context, slog.Level) bool { return true }
func (l *logCounter) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	l.msgs = append(l.msgs, r.Message)
	l.mu.Unlock()
	return nil
}
func (l *logCounter) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logCounter) WithGroup(string) slog.Handler      { return l }

func (l *logCounter) count(substr string) int {
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

func newTestCircuit(threshold int32, cooldown time.Duration) (*circuit, *testkit.Clock, *countingObserver, *logCounter) {
	clock := testkit.NewClockAt(ClockStart)
	obs := newCountingObserver()
	logs := &logCounter{}
	return &circuit{threshold: threshold, cooldown: cooldown, now: clock.Now, obs: obs, log: slog.New(logs)}, clock, obs, logs
}

var errTest = errors.New("redis down")

// call is one call through c with the given outcome: "ok", "fail" or "neutral". It returns
// whether the call was allowed.
func call(c *circuit, outcome string) bool {
	probe, ok := c.allow()
	if !ok {
		return false
	}
	switch outcome {
	case "ok":
		c.success(probe)
	case "fail":
		c.failure(probe, errTest)
	default:
		c.neutral(probe)
	}
	return true
}

func TestCircuitTransitions(t *testing.T) {
	c, clock, obs, logs := newTestCircuit(3, time.Second)

	call(c, "fail")
	call(c, "fail")
	call(c, "ok") // not consecutive any more
	call(c, "fail")
	call(c, "fail")
	if c.state.Load() != circuitClosed {
		t.Fatal("opened on failures split by a success")
	}
	call(c, "fail")
	if c.state.Load() != circuitOpen {
		t.Fatal("closed after 3 consecutive failures")
	}
	// Late failures of calls that started while closed do not report or log again.
	c.failure(false, errTest)
	c.failure(false, errTest)
	if len(obs.circuit) != 1 || !obs.circuit[0] || logs.count("circuit opened") != 1 {
		t.Fatalf("open reported %v and logged %d times, want once", obs.circuit, logs.count("circuit opened"))
	}

	clock.Advance(time.Second - time.Nanosecond)
	if call(c, "ok") {
		t.Fatal("call allowed before the cooldown ended")
	}
	clock.Advance(time.Nanosecond)

	// A probe whose caller gave up decides nothing: the next call probes at once.
	if !call(c, "neutral") {
		t.Fatal("probe refused after the cooldown")
	}
	if c.state.Load() != circuitOpen {
		t.Fatalf("state %d after a neutral probe, want open", c.state.Load())
	}
	// A failed probe re-opens for a whole cooldown.
	if !call(c, "fail") {
		t.Fatal("second probe refused after a neutral one")
	}
	if call(c, "ok") {
		t.Fatal("call allowed right after a failed probe")
	}
	clock.Advance(time.Second - time.Nanosecond)
	if call(c, "ok") {
		t.Fatal("call allowed before the cooldown after a failed probe ended")
	}
	clock.Advance(time.Nanosecond)

	// Half-open: while the probe is out, a success of an older call does not close the circuit.
	probe, ok := c.allow()
	if !probe || !ok {
		t.Fatal("no probe after the cooldown")
	}
	c.success(false)
	if c.state.Load() != circuitHalfOpen {
		t.Fatal("a non-probe success changed the half-open state")
	}
	c.success(true)
	if c.state.Load() != circuitClosed || c.failures.Load() != 0 {
		t.Fatal("successful probe did not close the circuit and reset the count")
	}
	if len(obs.circuit) != 2 || obs.circuit[1] || logs.count("circuit closed") != 1 {
		t.Fatalf("circuit events %v, closes logged %d; want [true false], 1", obs.circuit, logs.count("circuit closed"))
	}
	// Closed again, with a fresh count.
	call(c, "fail")
	call(c, "fail")
	if c.state.Load() != circuitClosed {
		t.Fatal("opened on 2 failures after closing")
	}
}

// Of many callers that find the cooldown over at once, exactly one becomes the probe.
func TestCircuitOneProbe(t *testing.T) {
	for round := range 20 {
		c, clock, _, _ := newTestCircuit(1, time.Second)
		call(c, "fail")
		clock.Advance(time.Second)
		var probes, allowed atomic.Int32
		var wg sync.WaitGroup
		start := make(chan struct{})
		for range 32 {
			wg.Go(func() {
				<-start
				probe, ok := c.allow()
				if ok {
					allowed.Add(1)
				}
				if probe {
					probes.Add(1)
				}
			})
		}
		close(start)
		wg.Wait()
		if probes.Load() != 1 || allowed.Load() != 1 {
			t.Fatalf("round %d: %d probes, %d calls allowed; want 1 and 1", round, probes.Load(), allowed.Load())
		}
	}
}

// The closed path allocates nothing and writes nothing shared.
func TestCircuitClosedPathAllocs(t *testing.T) {
	c, _, _, _ := newTestCircuit(5, time.Second)
	allocs := testing.AllocsPerRun(1000, func() {
		probe, ok := c.allow()
		if !ok {
			t.Fatal("refused")
		}
		c.success(probe)
	})
	if allocs != 0 {
		t.Fatalf("closed path allocates %v times", allocs)
	}
}

// blackhole is a TCP proxy that can break the connections it carries without closing them, as
// a network partition or a vanished peer does: the client sees a healthy connection that never
// answers. Connections made after the break work.
type blackhole struct {
	l      net.Listener
	target string
	mu     sync.Mutex
	links  []*link
}

// link is one proxied connection; once broken, it drops whatever either side sends.
type link struct {
	client, server net.Conn
	broken         atomic.Bool
}

func newBlackhole(t *testing.T, target string) *blackhole {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &blackhole{l: l, target: target}
	t.Cleanup(func() {
		l.Close()
		b.mu.Lock()
		defer b.mu.Unlock()
		for _, k := range b.links {
			k.client.Close()
			k.server.Close()
		}
	})
	go b.serve()
	return b
}

func (b *blackhole) serve() {
	for {
		in, err := b.l.Accept()
		if err != nil {
			return
		}
		out, err := net.Dial("tcp", b.target)
		if err != nil {
			in.Close()
			continue
		}
		k := &link{client: in, server: out}
		b.mu.Lock()
		b.links = append(b.links, k)
		b.mu.Unlock()
		go k.pipe(in, out)
		go k.pipe(out, in)
	}
}

// pipe copies src to dst until src ends, then closes dst, so that a close on one side reaches
// the other (as it would not across a real partition, but a broken link never gets that far).
func (k *link) pipe(src, dst net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !k.broken.Load() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				src.Close()
				return
			}
		}
		if err != nil {
			dst.Close()
			return
		}
	}
}

// breakAll breaks every connection made so far.
func (b *blackhole) breakAll() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, k := range b.links {
		k.broken.Store(true)
	}
}

func (b *blackhole) addr() string { return b.l.Addr().String() }

// pingCalls is how many PINGs the server at addr has processed.
func pingCalls(t *testing.T, addr string) int {
	t.Helper()
	reply, err := redistest.Do(addr, "INFO", "commandstats")
	if err != nil {
		t.Fatal(err)
	}
	s, _ := reply.(string)
	_, rest, ok := strings.Cut(s, "cmdstat_ping:calls=")
	if !ok {
		return 0
	}
	digits, _, _ := strings.Cut(rest, ",")
	n, err := strconv.Atoi(digits)
	if err != nil {
		t.Fatalf("INFO commandstats: %q", s)
	}
	return n
}

// A subscription whose connection silently stops delivering (no close, no error) is noticed by
// its unanswered PING and replaced, and the caller is told it may have missed messages; a quiet
// but healthy subscription is PINGed and left alone.
func TestRedisSubscribeDetectsSilentConnectionLoss(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	proxy := newBlackhole(t, srv.Addr())
	client, err := NewRedisClient(RedisClientOptions{URL: "redis://" + proxy.addr(), Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	obs := newCountingObserver()
	r := NewRedis(client, RedisOptions{Timeout: time.Second, Observer: obs})
	r.subscribeHealth = 100 * time.Millisecond

	const channel = "extauthz:v1:test"
	msgs := make(chan string, 100)
	resubs := make(chan struct{}, 100)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.Subscribe(ctx, channel, func(b []byte) { msgs <- string(b) }, func() { resubs <- struct{}{} })
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Error("Subscribe did not return after cancel")
		}
	})

	publish := func(msg string) int64 {
		t.Helper()
		n, err := redistest.Do(srv.Addr(), "PUBLISH", channel, msg)
		if err != nil {
			t.Fatal(err)
		}
		return n.(int64)
	}
	wait := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 30s", what)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	receive := func(want string) {
		t.Helper()
		for {
			select {
			case got := <-msgs:
				if got == "lost" {
					t.Fatal("received the message sent into the partition: the test shows nothing")
				}
				if got == want {
					return
				}
			case <-time.After(30 * time.Second):
				t.Fatalf("no message %q within 30s", want)
			}
		}
	}

	wait("subscribed", func() bool { return publish("hello") == 1 })
	receive("hello")

	// Quiet but healthy: PINGed, answered, kept.
	pings := pingCalls(t, srv.Addr())
	wait("two health-check PINGs", func() bool { return pingCalls(t, srv.Addr()) >= pings+2 })
	if len(resubs) != 0 || obs.errorCount("redis/subscribe") != 0 {
		t.Fatal("a healthy quiet subscription was replaced")
	}
	if publish("still-here") != 1 {
		t.Fatal("the subscription was dropped")
	}
	receive("still-here")

	proxy.breakAll()
	// The server still sees its subscriber and sends the message into the partition.
	if n := publish("lost"); n != 1 {
		t.Fatalf("PUBLISH into the partition reached %d subscribers, want 1", n)
	}
	select {
	case <-resubs:
	case <-time.After(30 * time.Second):
		t.Fatal("the silently broken subscription was not replaced")
	}
	// The old subscriber is gone from the server once the replaced connection was closed
	// through the proxy; the new one gets messages.
	wait("one subscriber again", func() bool { return publish("after") == 1 })
	receive("after")
	if obs.errorCount("redis/subscribe") == 0 {
		t.Fatal("the lost subscription was not reported as an error")
	}
}

// The envelope comes back from a Redis that other processes write too: decoding any bytes must
// not panic, and whatever decodes re-encodes to the same bytes.
func FuzzDecodeEnvelope(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{1, 0, 0, 1, 0x9b, 0x5c, 0x2a, 0x4e, 0x00, 'v'})
	f.Add(encodeEnvelope(time.UnixMilli(1767323045000), []byte(`{"sub":"alice"}`)))
	f.Fuzz(func(t *testing.T, b []byte) {
		v, exp, ok := decodeEnvelope(b)
		if !ok {
			return
		}
		if again := encodeEnvelope(exp, v); !bytes.Equal(again, b) {
			t.Fatalf("decode then encode of %x gave %x", b, again)
		}
	})
}
