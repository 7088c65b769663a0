package cache

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
)

// DropObserver is an [Observer] that is also told of the writes to the shared tier that a
// [Tiered] store with a write queue never sent: op is set or add; reason is queue_full (the
// queue was full), circuit_open (the circuit breaker kept the batch from Redis) or shutdown
// (Close ran out of time, or the write came after it). Tiered checks for it with a type
// assertion, so that an Observer without it still works.
type DropObserver interface {
	Dropped(op, reason string)
}

// Reasons a queued write is dropped, reported to [DropObserver.Dropped].
const (
	DropQueueFull   = "queue_full"
	DropCircuitOpen = "circuit_open"
	DropShutdown    = "shutdown"
)

// writeBatchMax is the most writes one round trip carries. A batch is what has queued up while
// the previous round trip was under way, so under light load it is one write; this only keeps
// a burst from making one pipeline that outlasts the write budget.
const writeBatchMax = 256

// errWriterClosed refuses a write queued after Close.
var errWriterClosed = errors.New("cache: the shared tier's writer is closed")

// batchWriter is a shared tier that sends several writes in one round trip (*Redis).
type batchWriter interface {
	WriteBatch(ctx context.Context, ops []WriteOp)
}

// queuedWrite is one entry of the write queue.
type queuedWrite struct {
	op  WriteOp
	key Key
	// done receives the outcome of a write someone waits for (Replace, Delete) and of a
	// barrier; nil for a verdict's write, which nobody waits for.
	done chan error
	// barrier writes nothing: it completes once everything queued before it has been sent.
	barrier bool
}

// writer is a Tiered store's queue of shared-tier writes and the goroutine that drains it.
//
// One goroutine sends the queue's contents in order, one batch (one round trip) at a time, and
// Redis applies a batch's commands in order: so the shared tier sees writes in the order they
// were queued. That is what keeps a revocation or a removal from being overtaken by an older
// write of the same key: Replace, Delete and Invalidate queue behind everything already queued
// and wait for their turn, rather than going to Redis beside the queue. They wait for room in a
// full queue (bounded by their context) instead of being dropped: only a verdict's own write,
// which the next verification can redo, is ever dropped.
type writer struct {
	q        chan queuedWrite
	mu       sync.RWMutex // held shared to send on q, exclusively to close it
	closed   bool
	stopping chan struct{} // closed when Close starts: wakes senders waiting for room
	once     sync.Once
	done     chan struct{}   // closed when the goroutine has sent (or dropped) everything
	ctx      context.Context //nolint:containedctx // the goroutine's; cancelled when Close runs out of time
	abandon  context.CancelFunc
}

func newWriter(size int) *writer {
	ctx, cancel := context.WithCancel(context.Background())
	return &writer{
		q:        make(chan queuedWrite, size),
		stopping: make(chan struct{}),
		done:     make(chan struct{}),
		ctx:      ctx,
		abandon:  cancel,
	}
}

// offer queues w unless the queue is full or closed, and never blocks.
func (w *writer) offer(qw queuedWrite) (reason string, ok bool) {
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.closed {
		return DropShutdown, false
	}
	select {
	case w.q <- qw:
		return "", true
	default:
		return DropQueueFull, false
	}
}

// do queues qw, waiting for room, and waits for its outcome, both within ctx.
func (w *writer) do(ctx context.Context, qw queuedWrite) error {
	qw.done = make(chan error, 1)
	if err := w.put(ctx, qw); err != nil {
		return err
	}
	select {
	case err := <-qw.done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("cache: shared write still queued: %w", ctx.Err())
	}
}

func (w *writer) put(ctx context.Context, qw queuedWrite) error {
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.closed {
		return errWriterClosed
	}
	select {
	case w.q <- qw:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("cache: shared write not queued: %w", ctx.Err())
	case <-w.stopping:
		return errWriterClosed
	}
}

// run drains the queue until it is closed and empty.
func (t *Tiered[V]) run(w *writer) {
	defer close(w.done)
	items := make([]queuedWrite, 0, writeBatchMax)
	ops := make([]WriteOp, 0, writeBatchMax)
	for first := range w.q {
		items = append(items[:0], first)
	more:
		for len(items) < writeBatchMax {
			select {
			case qw, ok := <-w.q:
				if !ok {
					break more
				}
				items = append(items, qw)
			default:
				break more
			}
		}
		t.send(w, items, ops[:0])
		clear(items) // let the values go
	}
}

// send writes one batch and settles each of its writes.
func (t *Tiered[V]) send(w *writer, items []queuedWrite, ops []WriteOp) {
	for _, it := range items {
		if !it.barrier {
			ops = append(ops, it.op)
		}
	}
	if w.ctx.Err() != nil {
		setErr(ops, errWriterClosed)
	} else if bw, ok := t.o.Shared.(batchWriter); ok {
		bw.WriteBatch(w.ctx, ops)
	} else {
		t.writeEach(w.ctx, ops)
	}
	j := 0
	for i, it := range items {
		if it.barrier {
			it.done <- nil
			continue
		}
		op := &ops[j]
		j++
		if it.done != nil {
			it.done <- op.Err
			continue
		}
		switch {
		case op.Err == nil:
			if op.Kind == WriteAdd && !op.Added && !laterWriteOf(items[i+1:], op.Key) {
				t.keepHeld(w.ctx, it.key, op)
			}
		case errors.Is(op.Err, ErrCircuitOpen):
			t.dropped(op.Kind.op(), DropCircuitOpen)
		case w.ctx.Err() != nil:
			t.dropped(op.Kind.op(), DropShutdown)
		}
		// Any other error is Redis's, already reported by the shared tier.
	}
	clear(ops)
}

// laterWriteOf reports whether items write key: then what an earlier add found held is stale.
func laterWriteOf(items []queuedWrite, key string) bool {
	for _, it := range items {
		if !it.barrier && it.op.Key == key {
			return true
		}
	}
	return false
}

// keepHeld settles an add that lost to a live entry, as the synchronous Add does: the value in
// force (a revocation, above all) replaces this replica's copy of the one that lost; if it
// cannot be read, the copy that lost is dropped, so that the next lookup asks the shared tier.
func (t *Tiered[V]) keepHeld(ctx context.Context, key Key, op *WriteOp) {
	if op.Held != nil {
		if v, err := t.o.Codec.Decode(op.Held); err == nil {
			t.fill(ctx, key, v, op.HeldExpiry.Sub(t.o.Now()))
			return
		}
		t.o.Observer.Error(tierRedis, opDecode)
	}
	mu := t.lock(key)
	defer mu.Unlock()
	for i, l := range t.o.Local {
		if !slices.Contains(t.o.Sticky, i) {
			_ = l.Delete(ctx, key)
		}
	}
}

// writeEach is WriteBatch for a shared tier that cannot batch: one call per write, in order.
func (t *Tiered[V]) writeEach(ctx context.Context, ops []WriteOp) {
	for i := range ops {
		op := &ops[i]
		ttl := op.ExpiresAt.Sub(t.o.Now())
		switch op.Kind {
		case WriteSet:
			op.Err = t.o.Shared.Set(ctx, op.Key, op.Value, ttl)
		case WriteDelete:
			op.Err = t.o.Shared.Delete(ctx, op.Key)
		case WriteAdd:
			if ttl <= 0 {
				continue
			}
			op.Added, op.Err = t.o.Shared.Add(ctx, op.Key, op.Value, ttl)
			if op.Err == nil && !op.Added {
				if b, exp, ok, err := t.o.Shared.GetExpiry(ctx, op.Key); err == nil && ok {
					op.Held, op.HeldExpiry = b, exp
				}
			}
		}
	}
}

// enqueue queues a verdict's write, or drops and counts it.
func (t *Tiered[V]) enqueue(key Key, op WriteOp) {
	if reason, ok := t.w.offer(queuedWrite{op: op, key: key}); !ok {
		t.dropped(op.Kind.op(), reason)
	}
}

// writeWait queues a write that must not be lost or reordered and waits for its outcome (up to
// AckTimeout or ctx). After Close, it goes to the shared tier directly.
func (t *Tiered[V]) writeWait(ctx context.Context, key Key, op WriteOp, barrier bool) error {
	wctx, cancel := context.WithTimeout(ctx, t.o.AckTimeout)
	defer cancel()
	err := t.w.do(wctx, queuedWrite{op: op, key: key, barrier: barrier})
	if !errors.Is(err, errWriterClosed) {
		return err
	}
	switch {
	case barrier:
		return nil
	case op.Kind == WriteDelete:
		return t.o.Shared.Delete(ctx, op.Key)
	default:
		return t.o.Shared.Set(ctx, op.Key, op.Value, op.ExpiresAt.Sub(t.o.Now()))
	}
}

func (t *Tiered[V]) dropped(op, reason string) {
	if d, ok := t.o.Observer.(DropObserver); ok {
		d.Dropped(op, reason)
	}
}

// Flush waits until the shared writes queued before it have been sent (or
// dropped), up to AckTimeout or ctx. Without a write queue it returns at
// once: every write has been sent when its call returned.
func (t *Tiered[V]) Flush(ctx context.Context) error {
	if t.w == nil {
		return nil
	}
	err := t.writeWait(ctx, Key{}, WriteOp{}, true)
	if errors.Is(err, errWriterClosed) {
		return nil
	}
	return err
}

// Close stops queuing writes for the shared tier and sends those already queued, waiting for
// them until ctx ends; what is still queued then is dropped (and counted). Writes after Close
// are dropped too, except Replace's and Delete's, which then go to the shared tier directly.
// Without a write queue, Close does nothing. It may be called more than once.
func (t *Tiered[V]) Close(ctx context.Context) error {
	w := t.w
	if w == nil {
		return nil
	}
	w.once.Do(func() {
		close(w.stopping)
		w.mu.Lock()
		w.closed = true
		close(w.q)
		w.mu.Unlock()
	})
	select {
	case <-w.done:
		return nil
	case <-ctx.Done():
		w.abandon()
		<-w.done
		return fmt.Errorf("cache: shared writes not all sent before shutdown: %w", ctx.Err())
	}
}
