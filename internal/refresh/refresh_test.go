package refresh

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"
)

func TestBackoffDoublesFromStartToLimit(t *testing.T) {
	b := Backoff{Start: time.Second, Limit: time.Minute}
	want := []time.Duration{1, 2, 4, 8, 16, 32, 60, 60, 60}
	var prev time.Duration
	for i, w := range want {
		prev = b.Next(prev)
		if prev != w*time.Second {
			t.Fatalf("wait %d = %v, want %v", i+1, prev, w*time.Second)
		}
	}
	// After a success the caller passes 0 again: the backoff starts over.
	if got := b.Next(0); got != time.Second {
		t.Fatalf("Next(0) = %v, want the start, 1s", got)
	}
}

func TestBackoffLimitBelowStartCapsEveryWait(t *testing.T) {
	b := Backoff{Start: time.Second, Limit: 300 * time.Millisecond}
	var prev time.Duration
	for i := range 4 {
		prev = b.Next(prev)
		if prev != 300*time.Millisecond {
			t.Fatalf("wait %d = %v, want the limit, 300ms", i+1, prev)
		}
	}
}

func TestBackoffNeverOverflows(t *testing.T) {
	b := Backoff{Start: time.Second, Limit: math.MaxInt64}
	var prev time.Duration
	for i := range 100 {
		next := b.Next(prev)
		if next <= 0 || next < prev || next > b.Limit {
			t.Fatalf("wait %d after %v = %v: not in [%v, %v]", i+1, prev, next, prev, b.Limit)
		}
		prev = next
	}
	if prev != b.Limit {
		t.Fatalf("after 100 failures the wait is %v, want the limit %v", prev, b.Limit)
	}
	if got := b.Next(math.MaxInt64/2 + 1); got != b.Limit {
		t.Fatalf("Next(MaxInt64/2+1) = %v, want the limit", got)
	}
}

// outcome is one scripted result of an attempt.
type outcome struct {
	next time.Duration
	err  error
}

// TestRunSchedule drives Run through failures and successes and checks each
// wait it asks for: the backoff while failing, the success's own interval,
// and the backoff starting over after a success.
func TestRunSchedule(t *testing.T) {
	fail := outcome{err: errors.New("unreachable")}
	script := []outcome{fail, fail, fail, {next: 10 * time.Minute}, fail, fail, {next: time.Hour}}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 10 * time.Minute,
		time.Second, 2 * time.Second, time.Hour}

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	attempts := 0
	attempt := func(context.Context) (time.Duration, error) {
		o := script[attempts]
		attempts++
		return o.next, o.err
	}
	var got []time.Duration
	wait := func(ctx context.Context, d time.Duration) error {
		got = append(got, d)
		if len(got) == len(want) {
			cancel()
			return ctx.Err()
		}
		return nil
	}
	Run(ctx, Backoff{Start: time.Second, Limit: time.Minute}, wait, attempt)

	if attempts != len(script) {
		t.Fatalf("%d attempts, want %d", attempts, len(script))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("waits = %v, want %v", got, want)
		}
	}
}

// TestRunStopsWhenCancelledDuringAnAttempt: Run returns once the attempt
// gives up on the cancelled ctx, and asks for no wait.
func TestRunStopsWhenCancelledDuringAnAttempt(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	started := make(chan struct{})
	attempts := 0
	attempt := func(ctx context.Context) (time.Duration, error) {
		attempts++
		close(started)
		<-ctx.Done()
		return 0, ctx.Err()
	}
	wait := func(context.Context, time.Duration) error {
		t.Error("Run waited after its ctx ended")
		return nil
	}
	done := make(chan struct{})
	go func() {
		Run(ctx, Backoff{Start: time.Second, Limit: time.Minute}, wait, attempt)
		close(done)
	}()
	<-started
	cancel()
	<-done
	if attempts != 1 {
		t.Fatalf("%d attempts, want 1", attempts)
	}
}

// TestRunStartsNoAttemptAfterCancel: an attempt that succeeds as the ctx
// ends (here: ends it itself) is the last, even with a zero wait.
func TestRunStartsNoAttemptAfterCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	attempts := 0
	attempt := func(context.Context) (time.Duration, error) {
		attempts++
		cancel()
		return 0, nil
	}
	Run(ctx, Backoff{Start: time.Second, Limit: time.Minute}, nil, attempt)
	if attempts != 1 {
		t.Fatalf("%d attempts, want 1", attempts)
	}
}

// TestRunStopsWhenCancelledDuringAWait uses the production Sleep with an
// hour's wait: only the cancellation can end it.
func TestRunStopsWhenCancelledDuringAWait(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	attempted := make(chan struct{}, 1)
	attempts := 0
	attempt := func(context.Context) (time.Duration, error) {
		attempts++
		attempted <- struct{}{}
		return time.Hour, nil
	}
	done := make(chan struct{})
	go func() {
		Run(ctx, Backoff{Start: time.Second, Limit: time.Minute}, Sleep, attempt)
		close(done)
	}()
	<-attempted
	cancel()
	<-done
	if attempts != 1 {
		t.Fatalf("%d attempts, want 1", attempts)
	}
}

func TestSleep(t *testing.T) {
	if err := Sleep(t.Context(), 0); err != nil {
		t.Fatalf("Sleep(0) = %v, want nil", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := Sleep(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Fatalf("Sleep on a cancelled ctx = %v, want context.Canceled", err)
	}
}
