package cache

import (
	"context"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// readBatcher sends concurrent GETs together: while one pipelined round trip is under way,
// the GETs that arrive queue up, and go together in the next. A lone GET is still one round
// trip, and so is a burst of them, which both the client and redis-server then pay for with one
// write and one read each instead of one per key.
//
// At low concurrency nothing changes: while fewer than GOMAXPROCS GETs are under way on their
// own and no batch is being sent, a GET goes at once, on the caller's goroutine. Otherwise it
// queues, and a goroutine sends the queue in batches until none is waiting, then ends: none
// lives on while idle. Once a batch is under way, even a free CPU does not send a GET on its
// own: it would be one more round trip beside the batch, which is what made most GETs under
// load a round trip each when only the count of direct GETs was bounded
// (BenchmarkRedisGetParallel at 32 goroutines per CPU: about 3.7 µs of client CPU and 1.7 µs
// of redis-server's per hit then, 3.1 and 1.1 with this rule; at one per CPU, both about 30 µs
// of wall time per GET). Bounding the direct GETs at one instead would make two callers queue
// behind each other through the sending goroutine: 74 µs per GET there.
//
// Each caller waits for its own reply no longer than its own deadline (the store's Timeout, or
// its context's if sooner); a reply that comes later is dropped.
type readBatcher struct {
	r *Redis

	// directMax is how many GETs may be under way on their own (GOMAXPROCS).
	directMax int

	mu      sync.Mutex
	direct  int        // GETs under way on their own
	pending []*readReq // GETs waiting for the next batch
	running bool       // a goroutine is sending batches
}

// readReq is one GET waiting for its batch.
type readReq struct {
	key string
	// done is buffered, so that the sender never waits for a caller that has given up.
	done chan readResult
}

type readResult struct {
	raw []byte
	err error
}

// get returns key's raw value (nil for a missing key) or an error, by deadline at the latest
// (context.DeadlineExceeded), sooner if ctx ends.
func (b *readBatcher) get(ctx context.Context, key string, deadline time.Time) ([]byte, error) {
	b.mu.Lock()
	if b.direct < b.directMax && !b.running {
		// Few lookups under way and no batch: this GET goes at once, on the caller's
		// goroutine and deadline, as an unbatched one would. Handing it to another goroutine
		// would cost more than it saves while every lookup can have a CPU to itself.
		b.direct++
		b.mu.Unlock()
		cctx, cancel := context.WithDeadline(ctx, deadline)
		raw, err := b.r.c.Get(cctx, key).Bytes()
		cancel()
		b.mu.Lock()
		b.direct--
		b.mu.Unlock()
		return raw, err
	}
	req := readReqs.Get().(*readReq)
	req.key = key
	b.pending = append(b.pending, req)
	start := !b.running
	b.running = true
	b.mu.Unlock()
	if start {
		go b.run()
	}
	// A recycled timer, not a context with a deadline: that would cost a context, its timer
	// and its channel for every GET. (Since Go 1.23 a stopped or reset timer delivers no stale
	// tick, so a timer from the pool is as good as a new one.)
	t := waitTimers.Get().(*time.Timer)
	t.Reset(time.Until(deadline))
	defer func() {
		t.Stop()
		waitTimers.Put(t)
	}()
	select {
	case res := <-req.done:
		// The sender is done with req once its reply is sent: it can serve another GET.
		// One whose caller gave up is left to the collector, as a late reply may still
		// come to it.
		req.key = ""
		readReqs.Put(req)
		return res.raw, res.err
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-t.C:
		return nil, context.DeadlineExceeded
	}
}

// readReqs recycles the requests whose replies were received.
var readReqs = sync.Pool{New: func() any { return &readReq{done: make(chan readResult, 1)} }}

// waitTimers recycles the timers that bound a batched GET's wait.
var waitTimers = sync.Pool{New: func() any {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return t
}}

// run sends batches until none is waiting.
func (b *readBatcher) run() {
	var spare []*readReq
	for {
		b.mu.Lock()
		batch := b.pending
		if len(batch) == 0 {
			b.running = false
			b.mu.Unlock()
			return
		}
		b.pending = spare[:0]
		b.mu.Unlock()
		b.send(batch)
		clear(batch)
		spare = batch
	}
}

// send makes one round trip for batch, within the store's read budget: the callers' own
// deadlines are no later than that, and a caller that has given up no longer needs a reply.
func (b *readBatcher) send(batch []*readReq) {
	ctx, cancel := context.WithTimeout(context.Background(), b.r.timeout)
	defer cancel()
	if len(batch) == 1 {
		raw, err := b.r.c.Get(ctx, batch[0].key).Bytes()
		batch[0].done <- readResult{raw, err}
		return
	}
	pipe := b.r.c.Pipeline()
	cmds := make([]*redis.StringCmd, len(batch))
	for i, req := range batch {
		cmds[i] = pipe.Get(ctx, req.key)
	}
	_, _ = pipe.Exec(ctx) // each command carries its own error, redis.Nil for a missing key
	for i, req := range batch {
		raw, err := cmds[i].Bytes()
		req.done <- readResult{raw, err}
	}
}
