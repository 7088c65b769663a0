package logging

import (
	"context"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// BufferBytes bounds the log lines an AsyncWriter holds at once, those
// waiting and those being written: 4 MiB, some ten thousand audit lines,
// enough to ride out a stall of a quarter of a second of the process's
// output at 40,000 lines a second. Warn and error lines may use
// UrgentReserveBytes more.
const BufferBytes = 4 << 20

// UrgentReserveBytes is the room kept above BufferBytes for warn and error
// lines (see New): when a flood of info lines — the audit trail, one line
// per decision — fills the buffer, those are dropped first, and the lines
// that say something went wrong still get through.
const UrgentReserveBytes = 256 << 10

// Lines are held in chunks of chunkBytes (a line longer than that gets a
// chunk of its own), each written with one Write: large writes, no
// copying between buffers. Up to keepChunks written chunks are kept for
// reuse, so that under a steady load a line costs no allocation, and a
// burst's memory is let go once it has been written.
const (
	chunkBytes = 64 << 10
	keepChunks = 16
)

// gatherDelay is how long the flusher lets lines gather before it writes
// a batch that is still small: a write, and the wake-up that precedes it,
// then carry tens of lines at a busy replica's rate rather than a few (the
// system call and the wake-up, not the copy, are what cost). A line
// reaches the real writer at most about this much later; an idle process
// pays nothing (the flusher sleeps until a line comes).
const gatherDelay = 2 * time.Millisecond

// gatherBytes ends a gathering early: once this much is held, a write is
// worth its system call, and a burst must not fill the buffer while the
// flusher waits.
const gatherBytes = chunkBytes / 2

// AsyncWriter takes log lines off the callers' path: Write copies the line
// into memory and returns, and one background goroutine writes what has
// gathered to the real writer, as soon as there is anything, in as few
// writes as it can. A caller never waits for the real writer: a decision
// does not pay a system call for its audit line, and a stalled output
// (a full pipe, a slow log collector) stalls no request.
//
// Each Write must be one whole line, as slog's handlers write them: a line
// is kept or dropped whole, and lines never interleave or split. They reach
// the real writer in the order their Writes returned.
//
// Memory is bounded: at most BufferBytes of lines are held
// (UrgentReserveBytes more for warn and error lines, see New), in chunks
// filled to within a line of their size, plus up to keepChunks empty
// chunks (1 MiB) kept for reuse. A line that does not fit is dropped —
// the newest, not older ones, which are already on their way; the
// writer cannot tell an audit line from another, but the reserve lets
// warnings and errors through a flood of info lines — and counted
// (Dropped, extauthz_log_lines_dropped_total). Write still reports
// success: a caller could do nothing better with an error, and slog
// ignores it. Close writes everything held before the process exits.
type AsyncWriter struct {
	out     io.Writer
	dropped atomic.Uint64
	done    chan struct{} // closed when the flusher has written everything and stopped
	kick    chan struct{} // ends a gathering early (gatherBytes held, or Close)

	mu        sync.Mutex
	wake      sync.Cond // the flusher waits on it for lines or for Close
	pending   [][]byte  // chunks of lines waiting for the flusher, the last one filling
	spare     [][]byte  // the flusher's last list of chunks, for reuse
	free      [][]byte  // written chunks, empty, for reuse
	held      int       // bytes of lines pending or being written
	closing   bool      // Close was called: the flusher stops once nothing is pending
	gathering bool      // the flusher waits for gatherDelay or a kick
	closed    bool      // the flusher has stopped: Write writes directly
}

// NewAsyncWriter starts the goroutine that writes to out; Close stops it.
func NewAsyncWriter(out io.Writer) *AsyncWriter {
	w := &AsyncWriter{out: out, done: make(chan struct{}), kick: make(chan struct{}, 1)}
	w.wake.L = &w.mu
	go w.flush()
	return w
}

// Write holds a copy of the line p for the background writer, or drops
// it if BufferBytes are already held. It never waits for the real writer,
// and it always reports len(p), nil. After Close has finished, it writes
// p directly.
func (w *AsyncWriter) Write(p []byte) (int, error) {
	return w.write(p, BufferBytes)
}

// urgent is the AsyncWriter as warn and error lines reach it: with
// UrgentReserveBytes more room.
type urgent struct{ w *AsyncWriter }

func (u urgent) Write(p []byte) (int, error) {
	return u.w.write(p, BufferBytes+UrgentReserveBytes)
}

func (w *AsyncWriter) write(p []byte, limit int) (int, error) {
	w.mu.Lock()
	if w.closed {
		// Nothing is held any more, and the lock keeps these in order.
		defer w.mu.Unlock()
		return w.out.Write(p)
	}
	if w.held+len(p) > limit {
		w.mu.Unlock()
		w.dropped.Add(1)
		return len(p), nil
	}
	n := len(w.pending)
	if n == 0 {
		w.wake.Signal()
	}
	if n == 0 || len(w.pending[n-1])+len(p) > cap(w.pending[n-1]) {
		w.pending = append(w.pending, w.chunk(len(p)))
		n++
	}
	w.pending[n-1] = append(w.pending[n-1], p...)
	w.held += len(p)
	if w.gathering && w.held >= gatherBytes {
		w.gathering = false
		select {
		case w.kick <- struct{}{}:
		default:
		}
	}
	w.mu.Unlock()
	return len(p), nil
}

// chunk returns an empty chunk with room for at least n bytes.
func (w *AsyncWriter) chunk(n int) []byte {
	if n > chunkBytes {
		return make([]byte, 0, n)
	}
	if k := len(w.free); k > 0 {
		c := w.free[k-1]
		w.free[k-1] = nil
		w.free = w.free[:k-1]
		return c
	}
	return make([]byte, 0, chunkBytes)
}

// flush is the background goroutine: it takes every chunk pending and
// writes them, one Write each, while new lines gather in new chunks, and
// repeats until Close finds nothing pending.
func (w *AsyncWriter) flush() {
	defer close(w.done)
	w.mu.Lock()
	defer w.mu.Unlock()
	for {
		for len(w.pending) == 0 && !w.closing {
			w.wake.Wait()
		}
		if len(w.pending) == 0 {
			w.closed = true
			return
		}
		if !w.closing && w.held < gatherBytes {
			select { // a kick left over from a gathering that ended by time
			case <-w.kick:
			default:
			}
			w.gathering = true
			w.mu.Unlock()
			t := time.NewTimer(gatherDelay)
			select {
			case <-t.C:
			case <-w.kick:
				t.Stop()
			}
			w.mu.Lock()
			w.gathering = false
		}
		batch := w.pending
		w.pending, w.spare = w.spare[:0], nil
		w.mu.Unlock()
		written := 0
		for _, c := range batch {
			// A failed write loses its lines: there is nowhere else to
			// report it (this is where errors would be logged), and slog's
			// handlers ignore the error of a direct write the same way.
			_, _ = w.out.Write(c)
			written += len(c)
		}
		w.mu.Lock()
		w.held -= written
		for i, c := range batch {
			if cap(c) == chunkBytes && len(w.free) < keepChunks {
				w.free = append(w.free, c[:0])
			}
			batch[i] = nil
		}
		w.spare = batch[:0]
	}
}

// Close writes every line held and stops the background goroutine; lines
// written after it are written directly, so that nothing logged while the
// process stops is lost. It waits for the real writer until ctx is done,
// and then returns ctx.Err() (the lines still held are written if the
// writer comes back before the process exits). Close may be called more
// than once.
func (w *AsyncWriter) Close(ctx context.Context) error {
	w.mu.Lock()
	w.closing = true
	if w.gathering {
		w.gathering = false
		select {
		case w.kick <- struct{}{}:
		default:
		}
	}
	w.wake.Signal()
	w.mu.Unlock()
	select {
	case <-w.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Dropped is the number of lines dropped so far because the buffer was
// full.
func (w *AsyncWriter) Dropped() uint64 { return w.dropped.Load() }
