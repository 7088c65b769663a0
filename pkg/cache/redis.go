package cache

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"runtime"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrCircuitOpen is returned at once, without a network call, while Redis has been failing and
// the circuit breaker keeps calls away from it.
var ErrCircuitOpen = errors.New("cache: redis circuit open: not calling Redis while it fails")

// RedisOptions configures [NewRedis].
type RedisOptions struct {
	// Timeout bounds each call, on top of the caller's context; default 25ms. A slow Redis is
	// a miss, never a slow decision.
	Timeout time.Duration
	// CircuitFailures is how many consecutive failures open the circuit; default 5.
	CircuitFailures int
	// CircuitCooldown is how long the circuit stays open before one probe call is let through
	// (half-open); default 2s.
	CircuitCooldown time.Duration
	// WriteTimeout bounds one batch of writes ([Redis.WriteBatch]), which no decision waits
	// for; default 500ms. The client's socket timeouts (RedisClientOptions.WriteTimeout) must
	// allow it.
	WriteTimeout time.Duration
	// BatchReads sends the GETs of concurrent lookups together, one pipelined round trip for
	// all that arrive while the previous one is under way (see readBatcher), instead of one
	// round trip each on its own pooled connection.
	BatchReads bool
	// Now is the clock that decides entry expiry (written into each entry) and the circuit's
	// timing. nil: time.Now.
	Now func() time.Time
	// Observer is told of errors and of the circuit opening and closing. nil: no-op.
	Observer Observer
	// Logger gets the circuit's state changes and the subscription's losses. nil: discard.
	Logger *slog.Logger
}

// Defaults of [RedisOptions].
const (
	defaultRedisCallTimeout = 25 * time.Millisecond
	defaultCircuitFailures  = 5
	defaultCircuitCooldown  = 2 * time.Second
	defaultRedisWriteBudget = 500 * time.Millisecond
	// circuitVerifyTimeout is the budget of the PING that tells Redis's timeouts from ours
	// (see circuit): far above any scheduler delay of a saturated process, short enough that
	// a hung Redis opens the circuit within a second.
	circuitVerifyTimeout = time.Second
)

// Operation names reported to [Observer.Error].
const (
	opGet       = "get"
	opSet       = "set"
	opAdd       = "add"
	opDelete    = "delete"
	opPublish   = "publish"
	opSubscribe = "subscribe"
	opDecode    = "decode"
)

// Redis is a [Store] of []byte in Redis (standalone, Sentinel or Cluster), shared by every
// replica, with pub/sub for telling replicas what to drop.
//
// Every value is stored in an envelope: a format version byte, the absolute expiry in Unix
// milliseconds (8 bytes, big-endian) by the injected clock, then the payload. The envelope, not
// Redis's TTL, decides whether an entry is live, so that expiry follows the same clock as the
// in-process store (a fake one in tests) and a reader gets the entry's exact deadline. Redis's
// own TTL (PX, the ttl rounded up to a millisecond) only reclaims the memory.
//
// Calls fail fast: each gets its own deadline of Timeout, the client does not retry, and after
// CircuitFailures consecutive failures a circuit breaker answers ErrCircuitOpen without touching
// the network until CircuitCooldown has passed and a probe call succeeds. A caller treats any
// error as a miss. Keys are used as given.
type Redis struct {
	c            redis.UniversalClient
	timeout      time.Duration
	writeTimeout time.Duration
	now          func() time.Time
	obs          Observer
	log          *slog.Logger
	circuit      circuit
	add          *redis.Script
	addHeld      *redis.Script
	reads        *readBatcher // nil: each GET on its own pooled connection
	// subscribeHealth is subscribeHealthInterval; a field so that a test can shorten it.
	subscribeHealth time.Duration
}

// NewRedis returns a store on c, which the caller keeps and closes (build it with
// [NewRedisClient]).
func NewRedis(c redis.UniversalClient, o RedisOptions) *Redis {
	if o.Timeout <= 0 {
		o.Timeout = defaultRedisCallTimeout
	}
	if o.CircuitFailures <= 0 {
		o.CircuitFailures = defaultCircuitFailures
	}
	if o.CircuitCooldown <= 0 {
		o.CircuitCooldown = defaultCircuitCooldown
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = defaultRedisWriteBudget
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Observer == nil {
		o.Observer = NopObserver{}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	r := &Redis{
		c:            c,
		timeout:      o.Timeout,
		writeTimeout: o.WriteTimeout,
		now:          o.Now,
		obs:          o.Observer,
		log:          o.Logger,
		circuit: circuit{
			threshold: int32(min(o.CircuitFailures, 1<<30)), //nolint:gosec // bounded just above
			cooldown:  o.CircuitCooldown,
			now:       o.Now,
			obs:       o.Observer,
			log:       o.Logger,
			verify: func(ctx context.Context) error {
				return c.Ping(ctx).Err()
			},
			verifyTimeout: circuitVerifyTimeout,
		},
		add:             redis.NewScript(addScript),
		addHeld:         redis.NewScript(addHeldScript),
		subscribeHealth: subscribeHealthInterval,
	}
	if o.BatchReads {
		r.reads = &readBatcher{r: r, directMax: runtime.GOMAXPROCS(0)}
		if dial := pipeDialer(c); dial != nil {
			r.reads.pipe = &getPipe{dial: dial}
		}
	}
	return r
}

// Get implements [Store]. The returned slice is the caller's: each call returns a new one.
func (r *Redis) Get(ctx context.Context, key string) ([]byte, bool, error) {
	v, _, ok, err := r.GetExpiry(ctx, key)
	return v, ok, err
}

// GetExpiry is Get that also returns the entry's absolute expiry, so that a caller copying it
// into an in-process tier can give the copy the remaining lifetime rather than a fresh one.
// A miss, including an entry whose envelope has expired by the injected clock or is malformed
// (reported as a decode error), returns a nil value and the zero time.
func (r *Redis) GetExpiry(ctx context.Context, key string) ([]byte, time.Time, bool, error) {
	var (
		raw   []byte
		probe bool
		err   error
	)
	if r.reads != nil {
		// The batcher keeps the budget itself, without a context of its own for each GET.
		if probe, err = r.allow(ctx); err != nil {
			return nil, time.Time{}, false, err
		}
		raw, err = r.reads.get(ctx, key, time.Now().Add(r.timeout))
	} else {
		var cctx context.Context
		var cancel context.CancelFunc
		if cctx, cancel, probe, err = r.begin(ctx); err != nil {
			return nil, time.Time{}, false, err
		}
		raw, err = r.c.Get(cctx, key).Bytes()
		cancel()
	}
	if err != nil { // redis.Nil, a missing key, ends as a nil error: a miss
		return nil, time.Time{}, false, r.end(ctx, probe, opGet, err)
	}
	_ = r.end(ctx, probe, opGet, nil)
	v, expiresAt, ok := decodeEnvelope(raw)
	if !ok {
		// Not something this version wrote under a key of this layout: a miss, so that the
		// caller verifies again and overwrites it, and a metric to notice it by.
		r.obs.Error(tierRedis, opDecode)
		return nil, time.Time{}, false, nil
	}
	if !r.now().Before(expiresAt) {
		return nil, time.Time{}, false, nil
	}
	return v, expiresAt, true, nil
}

// Set implements [Store]: it overwrites value and expiry; ttl <= 0 deletes the key.
func (r *Redis) Set(ctx context.Context, key string, v []byte, ttl time.Duration) error {
	if ttl <= 0 {
		return r.del(ctx, key, opSet)
	}
	env := encodeEnvelope(r.now().Add(ttl), v)
	cctx, cancel, probe, err := r.begin(ctx)
	if err != nil {
		return err
	}
	err = r.c.Set(cctx, key, env, redisTTL(ttl)).Err()
	cancel()
	return r.end(ctx, probe, opSet, err)
}

// Add stores v for ttl only if key holds no live entry, and reports whether it did: the first
// of several replicas to Add a key wins, and the others can read the winner's value. ttl <= 0
// stores nothing and returns false.
//
// "Live" is decided as Get decides it, by the envelope and the injected clock, so it is not a
// plain SET NX: that would refuse a key whose envelope has expired while Redis still holds it
// (its PX rounds up, and replicas' clocks differ from Redis's), an entry Get already reports as
// absent. A short Lua script makes the check and the write one atomic step, in Cluster too (one
// key).
func (r *Redis) Add(ctx context.Context, key string, v []byte, ttl time.Duration) (bool, error) {
	if ttl <= 0 {
		return false, nil
	}
	now := r.now()
	env := encodeEnvelope(now.Add(ttl), v)
	cctx, cancel, probe, err := r.begin(ctx)
	if err != nil {
		return false, err
	}
	added, err := r.add.Run(cctx, r.c, []string{key}, env, redisTTL(ttl).Milliseconds(), now.UnixMilli()).Int64()
	cancel()
	if err := r.end(ctx, probe, opAdd, err); err != nil {
		return false, err
	}
	return added == 1, nil
}

// addScript is Add's check-and-set. ARGV: the envelope, the PX in milliseconds, now in Unix
// milliseconds. An existing value counts as live only if it is an envelope of version 1 (see
// envelopeVersion) whose expiry is after now; anything else is overwritten, as Get would call
// it a miss. Lua numbers are doubles: exact for millisecond timestamps for 285,000 years.
const addScript = `
local v = redis.call('GET', KEYS[1])
if v and #v >= 9 and string.byte(v, 1) == 1 then
  local exp = 0
  for i = 2, 9 do exp = exp * 256 + string.byte(v, i) end
  if exp > tonumber(ARGV[3]) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
`

// Delete implements [Store].
func (r *Redis) Delete(ctx context.Context, key string) error {
	return r.del(ctx, key, opDelete)
}

func (r *Redis) del(ctx context.Context, key, op string) error {
	cctx, cancel, probe, err := r.begin(ctx)
	if err != nil {
		return err
	}
	err = r.c.Del(cctx, key).Err()
	cancel()
	return r.end(ctx, probe, op, err)
}

// Publish sends msg on channel and returns how many subscribers received it. In Cluster mode
// the message reaches subscribers on every node, but the count is only of those connected to
// the node that took the PUBLISH.
func (r *Redis) Publish(ctx context.Context, channel string, msg []byte) (int64, error) {
	cctx, cancel, probe, err := r.begin(ctx)
	if err != nil {
		return 0, err
	}
	n, err := r.publish(cctx, channel, msg)
	cancel()
	if err := r.end(ctx, probe, opPublish, err); err != nil {
		return 0, err
	}
	return n, nil
}

// publish sends PUBLISH where its receiver count covers every subscriber.
// A Cluster propagates a message to all nodes, but PUBLISH counts only the
// subscribers of the node that took it, and go-redis sends this keyless
// command to a random node — while it opens every subscription on the
// master of the channel's slot. Publishing on that master makes the count
// cover all of them, which is what an invalidation waits for.
func (r *Redis) publish(ctx context.Context, channel string, msg []byte) (int64, error) {
	if cc, ok := r.c.(*redis.ClusterClient); ok {
		node, err := cc.MasterForKey(ctx, channel)
		if err != nil {
			return 0, err
		}
		return node.Publish(ctx, channel, msg).Result()
	}
	return r.c.Publish(ctx, channel, msg).Result()
}

// Subscription health-checking and reconnection. Not options: they trade a few idle PINGs
// against how long a silently dead connection goes unnoticed, which no deployment needs to tune.
const (
	// subscribeHealthInterval is how long the subscription may be silent before it is PINGed;
	// a PING unanswered for another interval means the connection is dead.
	subscribeHealthInterval = 3 * time.Second
	subscribeBackoffFirst   = 50 * time.Millisecond
	subscribeBackoffLast    = 2 * time.Second
)

// Subscribe receives messages on channel until ctx ends, reconnecting as needed, and returns
// then. onMessage gets each payload (a new slice, the callee's to keep).
//
// Every subscription confirmation after the first calls onResubscribe: the connection was lost
// and messages may have been missed, so the caller drops whatever it cannot trust. A connection
// that stays silent is PINGed, and one that does not answer is replaced, which also counts as a
// resubscription. The callbacks run on Subscribe's goroutine, one at a time; while one runs,
// messages wait.
//
// Subscribe does not go through the circuit breaker: it is not on the request path, and it
// backs off on its own while Redis is unreachable.
func (r *Redis) Subscribe(ctx context.Context, channel string, onMessage func([]byte), onResubscribe func()) {
	r.SubscribeConfirmed(ctx, channel, onMessage, func(first bool) {
		if !first {
			onResubscribe()
		}
	})
}

// SubscribeConfirmed is Subscribe for a caller that reads what it follows from Redis itself
// as well: onConfirmed runs on every subscription confirmation, the first one included (first
// true), so that a read made then sees everything published before it, and the subscription
// everything after.
func (r *Redis) SubscribeConfirmed(ctx context.Context, channel string, onMessage func([]byte), onConfirmed func(first bool)) {
	var (
		mu     sync.Mutex
		ps     *redis.PubSub
		closed bool
	)
	// A receive blocked on the socket does not watch ctx: closing the subscription when ctx
	// ends is what unblocks it.
	stop := context.AfterFunc(ctx, func() {
		mu.Lock()
		defer mu.Unlock()
		closed = true
		if ps != nil {
			_ = ps.Close()
		}
	})
	defer func() {
		// stop reports whether it kept the AfterFunc from running; if so, closing is left to
		// us, and nothing else touches ps any more.
		if stop() && ps != nil {
			_ = ps.Close()
		}
	}()
	subscribe := func() *redis.PubSub {
		mu.Lock()
		defer mu.Unlock()
		if closed {
			return nil
		}
		if ps != nil {
			_ = ps.Close()
		}
		// This does not wait for the confirmation, nor fail: a Redis that is down shows as an
		// error from the first receive, which retries.
		ps = r.c.Subscribe(ctx, channel)
		return ps
	}

	cur := subscribe()
	var (
		confirmed bool // a confirmation was received on some connection
		lost      bool // the subscription failed since the last confirmation
		pinged    bool // a PING is unanswered
		backoff   = subscribeBackoffFirst
	)
	for cur != nil {
		msg, err := cur.ReceiveTimeout(ctx, r.subscribeHealth)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				if !pinged {
					// A PING that cannot be written makes go-redis reconnect on the next receive.
					pinged = cur.Ping(ctx) == nil
					continue
				}
				err = fmt.Errorf("no reply to PING within %v", r.subscribeHealth)
				cur = subscribe()
				pinged = false
			}
			r.obs.Error(tierRedis, opSubscribe)
			if !lost {
				lost = true
				r.log.Warn("redis subscription lost; reconnecting", "channel", channel, "err", err)
			} else {
				r.log.Debug("redis subscription still down", "channel", channel, "err", err, "retry_in", backoff)
			}
			if !sleepCtx(ctx, backoff) {
				return
			}
			backoff = min(2*backoff, subscribeBackoffLast)
			continue
		}
		pinged = false
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind != "subscribe" || m.Channel != channel {
				continue
			}
			backoff = subscribeBackoffFirst
			if lost {
				lost = false
				r.log.Info("redis subscription re-established", "channel", channel)
			}
			onConfirmed(!confirmed)
			confirmed = true
		case *redis.Message:
			onMessage([]byte(m.Payload))
		}
	}
}

// sleepCtx waits d or until ctx ends, and reports whether ctx is still live.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// CircuitOpen reports whether the circuit breaker is keeping calls away from Redis (open, or
// half-open with its one probe in flight).
func (r *Redis) CircuitOpen() bool { return r.circuit.state.Load() != circuitClosed }

// begin starts a call: it refuses one whose context has already ended (no Redis failure, and
// nothing to do), asks the circuit breaker, and gives the call its own deadline.
func (r *Redis) begin(ctx context.Context) (context.Context, context.CancelFunc, bool, error) {
	probe, err := r.allow(ctx)
	if err != nil {
		return nil, nil, false, err
	}
	cctx, cancel := context.WithTimeout(ctx, r.timeout)
	return cctx, cancel, probe, nil
}

// allow is begin without the context: whether a call may go to Redis now (the caller has not
// given up and the circuit lets it), and whether it is the circuit's probe.
func (r *Redis) allow(ctx context.Context) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	probe, ok := r.circuit.allow()
	if !ok {
		return false, ErrCircuitOpen
	}
	return probe, nil
}

// end classifies a call's outcome for the circuit breaker and the Observer, and returns the
// error for the caller: nil for success, including redis.Nil (a missing key is an answer).
func (r *Redis) end(ctx context.Context, probe bool, op string, err error) error {
	switch {
	case err == nil || errors.Is(err, redis.Nil):
		r.circuit.success(probe)
		return nil
	case callerGaveUp(ctx):
		// The caller gave up (cancelled, or its own deadline came before ours): that says
		// nothing about Redis, so it neither opens nor closes the circuit.
		r.circuit.neutral(probe)
		return fmt.Errorf("cache: redis %s: %w", op, err)
	default:
		r.obs.Error(tierRedis, op)
		r.circuit.failure(probe, err)
		return fmt.Errorf("cache: redis %s: %w", op, err)
	}
}

// callerGaveUp reports whether the caller's context has ended. Its deadline is checked against
// the wall clock as well as through Err: go-redis sets that deadline on the socket, and the read
// can fail on it a moment before the context's own timer marks the context done. (Wall clock,
// not the injected one: deadlines are real time.)
func callerGaveUp(ctx context.Context) bool {
	if ctx.Err() != nil {
		return true
	}
	deadline, ok := ctx.Deadline()
	return ok && !time.Now().Before(deadline)
}

// Envelope layout: version, expiry in Unix milliseconds (big-endian), payload.
const (
	// envelopeVersion changes with the layout; addScript knows it too.
	envelopeVersion    = 1
	envelopeHeaderSize = 1 + 8
)

func encodeEnvelope(expiresAt time.Time, v []byte) []byte {
	b := make([]byte, envelopeHeaderSize+len(v))
	b[0] = envelopeVersion
	// Truncated to the millisecond, so the envelope never outlives what the caller asked for.
	binary.BigEndian.PutUint64(b[1:envelopeHeaderSize], uint64(expiresAt.UnixMilli()))
	copy(b[envelopeHeaderSize:], v)
	return b
}

// decodeEnvelope returns the payload (a sub-slice of b) and the expiry, or false if b is not an
// envelope of this version.
func decodeEnvelope(b []byte) ([]byte, time.Time, bool) {
	if len(b) < envelopeHeaderSize || b[0] != envelopeVersion {
		return nil, time.Time{}, false
	}
	ms := int64(binary.BigEndian.Uint64(b[1:envelopeHeaderSize])) //nolint:gosec // a negative time is just an expired entry
	return b[envelopeHeaderSize:], time.UnixMilli(ms), true
}

// redisTTL is the PX Redis gets for ttl > 0: rounded up to a whole millisecond, as PX cannot say
// less, so that Redis never drops an entry before its envelope expires.
func redisTTL(ttl time.Duration) time.Duration {
	if ttl > math.MaxInt64-time.Millisecond { // rounding up would overflow; 292 years is plenty
		return ttl.Truncate(time.Millisecond)
	}
	return (ttl + time.Millisecond - 1).Truncate(time.Millisecond)
}
