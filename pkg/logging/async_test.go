package logging

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// lockedBuffer is a concurrency-safe output that records each Write.
type lockedBuffer struct {
	mu     sync.Mutex
	b      bytes.Buffer
	writes int
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.writes++
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// stalled is an output that blocks every Write until released, as a full
// pipe nobody reads does.
type stalled struct {
	release chan struct{}
	out     lockedBuffer
}

func (s *stalled) Write(p []byte) (int, error) {
	<-s.release
	return s.out.Write(p)
}

// within fails the test if f has not returned after a generous while: f
// must not wait for the output.
func within(t *testing.T, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("%s blocked", what)
	}
}

func TestAsyncWriterKeepsLinesWholeAndInOrder(t *testing.T) {
	var out lockedBuffer
	w := NewAsyncWriter(&out)
	// About 3 MB in all, under BufferBytes: however the flusher is scheduled
	// (a loaded machine may not run it at all until the end), nothing may drop.
	const writers, lines = 8, 1500
	var wg sync.WaitGroup
	for g := range writers {
		wg.Go(func() {
			for n := range lines {
				// Lines of varied lengths, some longer than a chunk.
				pad := strings.Repeat("x", (g*131+n*17)%300)
				if n%997 == 0 {
					pad = strings.Repeat("y", chunkBytes+n)
				}
				_, _ = fmt.Fprintf(w, "%d %d %s\n", g, n, pad)
			}
		})
	}
	wg.Wait()
	if err := w.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if w.Dropped() != 0 {
		t.Fatalf("%d lines dropped below the bound", w.Dropped())
	}
	next := make([]int, writers)
	got := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	for _, l := range got {
		var g, n int
		var pad string
		if _, err := fmt.Sscanf(l, "%d %d %s", &g, &n, &pad); err != nil && !strings.HasSuffix(l, " ") {
			t.Fatalf("a line split or interleaved: %.80q", l)
		}
		if g < 0 || g >= writers || n != next[g] {
			t.Fatalf("line %d of writer %d out of order (want %d)", n, g, next[g])
		}
		if want := (g*131 + n*17) % 300; n%997 != 0 && len(pad) != want {
			t.Fatalf("line %d of writer %d cut: %d bytes of padding, want %d", n, g, len(pad), want)
		}
		next[g]++
	}
	if len(got) != writers*lines {
		t.Fatalf("%d lines written, want %d", len(got), writers*lines)
	}
	if out.writes >= len(got) {
		t.Errorf("%d writes for %d lines: nothing gathered", out.writes, len(got))
	}
}

// A stalled output neither blocks the callers nor grows memory without
// bound: once BufferBytes are held, lines are dropped and counted, warn
// and error lines keep their reserve, and everything held is written once
// the output takes it.
func TestAsyncWriterDropsWhenFullAndNeverBlocks(t *testing.T) {
	out := &stalled{release: make(chan struct{})}
	w := NewAsyncWriter(out)
	lg, _ := New(w, "info", "json")
	line := []byte(strings.Repeat("a", 999) + "\n")
	const n = 5000
	fits := BufferBytes / len(line)
	within(t, "Write on a stalled output", func() {
		for range n {
			_, _ = w.Write(line)
		}
	})
	if got, want := w.Dropped(), uint64(n-fits); got != want {
		t.Fatalf("dropped %d lines, want %d", got, want)
	}
	within(t, "logging on a stalled output", func() {
		lg.Info("an info line past the bound", "pad", strings.Repeat("p", len(line))) // longer than the room left
		lg.Warn("a warning past the bound")
		lg.Error("an error past the bound")
	})
	if got, want := w.Dropped(), uint64(n-fits+1); got != want {
		t.Fatalf("dropped %d lines, want %d: the info line and not the warning and error", got, want)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := w.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close on a stalled output: %v, want the context's deadline", err)
	}
	close(out.release)
	if err := w.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := out.out.String()
	if c := strings.Count(got, string(line)); c != fits {
		t.Errorf("%d lines written, want the %d held", c, fits)
	}
	if strings.Contains(got, "an info line") || !strings.Contains(got, "a warning") || !strings.Contains(got, "an error") {
		t.Errorf("want the warning and the error after the held lines, not the info line; got the tail %q", got[len(got)-400:])
	}
}

// Close writes everything held, and what is written after it goes
// straight to the output: nothing logged while the process stops is lost.
func TestAsyncWriterCloseWritesEverything(t *testing.T) {
	var out lockedBuffer
	w := NewAsyncWriter(&out)
	for i := range 1000 {
		_, _ = fmt.Fprintf(w, "line %d\n", i)
	}
	if err := w.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if c := strings.Count(out.String(), "\n"); c != 1000 {
		t.Fatalf("%d lines after Close, want 1000", c)
	}
	_, _ = fmt.Fprintf(w, "after close\n")
	if !strings.HasSuffix(out.String(), "line 999\nafter close\n") {
		t.Errorf("a line written after Close is missing or out of order")
	}
	if err := w.Close(context.Background()); err != nil {
		t.Errorf("a second Close: %v", err)
	}
}

// BenchmarkAsyncWriter is what a caller pays for one line, many writing at
// once; the output discards.
func BenchmarkAsyncWriter(b *testing.B) {
	w := NewAsyncWriter(discardWriter{})
	line := []byte(strings.Repeat("a", 299) + "\n")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			_, _ = w.Write(line)
		}
	})
	_ = w.Close(context.Background())
	b.ReportMetric(float64(w.Dropped())/float64(b.N), "dropped/op")
}

type discardWriter struct{}

func (discardWriter) Write(p []byte) (int, error) { return len(p), nil }
