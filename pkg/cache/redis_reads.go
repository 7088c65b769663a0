package cache

import (
	"context"
	"runtime"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// readBatcher sends concurrent GETs together: while one pipelined round trip is under way,
// the GETs that arrive queue up, and go together in the next. A lone GET is still one round
// trip, and so is a burst of them, which both the client and redis-server then pay for with one
// write and one read each instead of one per key.
//
// Where the store has a connection of its own for reads (pipe; see getPipe), every GET goes
// there: a GET that finds nothing under way on it is sent at once by its caller, on the
// caller's goroutine, with no hand-off; one that arrives while something is under way queues,
// and a goroutine started for the queue sends it in batches until none is waiting, then ends.
// A queued GET arms no timer: the pipe answers each GET of a batch by the batch's earliest
// deadline. At 64 callers on two CPUs this costs about 3 µs of CPU per Redis-tier hit less
// than batches through go-redis beside direct GETs on its pooled connections (the load
// harness's redis scenario, alternating builds on a 2-vCPU Xeon: 13.2 µs beyond the in-process
// hit, then 10.6 with the pipe, then 10.1 without the timers): go-redis's command objects,
// pool and reply reader are gone, and so is the lone GET's own round trip beside a batch. At
// two callers on two CPUs the wall time per GET is the same (BenchmarkRedisGetParallel), each
// paying for a hand-off when it queues behind the other.
//
// Without a pipe (Cluster, Sentinel), GETs go through the go-redis client: while fewer than
// GOMAXPROCS GETs are under way on their own and no batch is being sent, a GET goes at once,
// on the caller's goroutine; otherwise it queues for the batches. Once a batch is under way,
// even a free CPU does not send a GET on its own: it would be one more round trip beside the
// batch, which is what made most GETs under load a round trip each when only the count of
// direct GETs was bounded (BenchmarkRedisGetParallel at 32 goroutines per CPU: about 3.7 µs of
// client CPU and 1.7 µs of redis-server's per hit then, 3.1 and 1.1 with this rule).
//
// Each caller waits for its own reply no longer than its own deadline (the store's Timeout, or
// its context's if sooner); a reply that comes later is dropped.
type readBatcher struct {
	r *Redis
	// pipe, when set, carries the batches on a connection of the store's own (see getPipe);
	// otherwise they go through the go-redis client.
	pipe *getPipe

	// directMax is how many GETs may be under way on their own (GOMAXPROCS).
	directMax int

	mu      sync.Mutex
	direct  int        // GETs under way on their own, through go-redis
	pending []*readReq // GETs waiting for the next batch
	// running: a goroutine is sending batches, or, with a pipe, a caller its own GET.
	running bool
}

// readReq is one GET waiting for its batch.
type readReq struct {
	key      string
	deadline time.Time // the store's budget for it, by which the pipe answers it
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
	if b.pipe != nil && !b.running && !endsSooner(ctx, deadline) {
		// Nothing is under way on the pipe: this caller sends its GET there itself, with no
		// hand-off, and GETs that arrive meanwhile queue for the sender it starts after. (A
		// caller whose context ends before deadline queues instead, free to leave when it
		// ends: the pipe's deadlines are the store's, so that one caller's hurry never times
		// out the connection every other GET shares.)
		b.running = true
		b.mu.Unlock()
		req := readReqs.Get().(*readReq)
		req.key = key
		one := [1]*readReq{req}
		b.pipe.gets(ctx, deadline, one[:])
		res := <-req.done // gets has answered it
		req.key = ""
		readReqs.Put(req)
		b.mu.Lock()
		if len(b.pending) > 0 {
			go b.run()
		} else {
			b.running = false
		}
		b.mu.Unlock()
		return res.raw, res.err
	}
	if b.pipe == nil && b.direct < b.directMax && !b.running {
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
	req.key, req.deadline = key, deadline
	b.pending = append(b.pending, req)
	start := !b.running
	b.running = true
	b.mu.Unlock()
	if start {
		go b.run()
	}
	if b.pipe != nil && !endsSooner(ctx, deadline) {
		// The pipe's reply comes by deadline, no later than the context's: a plain receive,
		// cheaper than a select. (A caller whose context is cancelled meanwhile still waits
		// for it, at most the store's budget.)
		res := <-req.done
		req.key = ""
		readReqs.Put(req)
		return res.raw, res.err
	}
	// With a pipe, no timer: the pipe answers every GET of a batch by the batch's earliest
	// deadline (getPipe.gets), and a batch is sent before its GETs' deadlines (those of the
	// batch before it, queued earlier, came first), so the reply comes by this one's. Without,
	// a recycled timer, not a context with a deadline: that would cost a context, its timer
	// and its channel for every GET. (Since Go 1.23 a stopped or reset timer delivers no stale
	// tick, so a timer from the pool is as good as a new one.)
	var late <-chan time.Time // nil, which never fires, with a pipe
	if b.pipe == nil {
		t := waitTimers.Get().(*time.Timer)
		t.Reset(time.Until(deadline))
		defer func() {
			t.Stop()
			waitTimers.Put(t)
		}()
		late = t.C
	}
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
	case <-late:
		return nil, context.DeadlineExceeded
	}
}

// endsSooner reports whether ctx has a deadline before deadline.
func endsSooner(ctx context.Context, deadline time.Time) bool {
	d, ok := ctx.Deadline()
	return ok && d.Before(deadline)
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
//
// Before taking each batch it yields: every goroutine that can run then does, and those about
// to make a GET queue it for this batch rather than the next. A round trip's system calls cost
// the same for one GET as for thirty (several µs of this process's CPU, most of it the write
// that wakes redis-server), and under load the yield is what fills the batch: at 64 callers on
// two CPUs (BenchmarkCheckRedisRefill) 25 GETs a batch instead of 7, 0.7 µs less of the
// gateway's CPU and 0.5 µs less of redis-server's per GET. With nothing else to run it returns
// at once.
func (b *readBatcher) run() {
	var spare []*readReq
	for {
		runtime.Gosched()
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
	if b.pipe != nil {
		deadline := batch[0].deadline
		for _, req := range batch[1:] {
			if req.deadline.Before(deadline) {
				deadline = req.deadline
			}
		}
		b.pipe.gets(context.Background(), deadline, batch)
		return
	}
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
