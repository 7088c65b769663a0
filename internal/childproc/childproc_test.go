package childproc

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// start starts argv with its output in a log file in a temporary directory, and stops it
// (SIGKILL) when the test ends.
func start(t *testing.T, argv ...string) *Proc {
	t.Helper()
	p, err := Start(argv, Options{Log: filepath.Join(t.TempDir(), "out.log")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Stop(0) })
	return p
}

// gone reports whether no process has pid any more (it has been reaped).
func gone(pid int) bool {
	return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}

func TestStopTerminatesThenReaps(t *testing.T) {
	p := start(t, "sleep", "1000")
	if p.Exited() {
		t.Fatal("exited at once")
	}
	if got := p.ExitStatus(); got != "running" {
		t.Fatalf("ExitStatus = %q, want running", got)
	}
	p.Stop(time.Minute)
	if !p.Exited() {
		t.Fatal("Stop returned before the process was reaped")
	}
	if got := p.ExitStatus(); got != "signal: terminated" {
		t.Fatalf("ExitStatus = %q, want it ended by SIGTERM", got)
	}
	if !gone(p.PID()) {
		t.Fatalf("pid %d still exists after Stop", p.PID())
	}
	p.Stop(time.Minute) // a second Stop does nothing
}

func TestStopKillsAChildThatIgnoresSIGTERM(t *testing.T) {
	// The shell ignores SIGTERM, says so, and becomes sleep, which inherits the ignoring.
	p := start(t, "sh", "-c", `trap "" TERM; echo ignoring; exec sleep 1000`)
	waitOutput(t, p, "ignoring")
	p.Stop(10 * time.Millisecond)
	if got := p.ExitStatus(); got != "signal: killed" {
		t.Fatalf("ExitStatus = %q, want it ended by SIGKILL", got)
	}
	if !gone(p.PID()) {
		t.Fatalf("pid %d still exists after Stop", p.PID())
	}
}

func TestStopWithoutGraceKills(t *testing.T) {
	p := start(t, "sleep", "1000")
	p.Stop(0)
	if got := p.ExitStatus(); got != "signal: killed" {
		t.Fatalf("ExitStatus = %q, want it ended by SIGKILL", got)
	}
}

func TestConcurrentStops(t *testing.T) {
	p := start(t, "sleep", "1000")
	done := make(chan struct{})
	for range 4 {
		go func() {
			p.Stop(time.Minute)
			done <- struct{}{}
		}()
	}
	for range 4 {
		<-done
	}
	if !p.Exited() || !gone(p.PID()) {
		t.Fatal("not stopped")
	}
}

func TestOwnProcessGroup(t *testing.T) {
	p := start(t, "sleep", "1000")
	pgid, err := syscall.Getpgid(p.PID())
	if err != nil {
		t.Fatal(err)
	}
	if pgid != p.PID() || pgid == syscall.Getpgrp() {
		t.Fatalf("child pgid %d, want its own group %d (parent's is %d)", pgid, p.PID(), syscall.Getpgrp())
	}
}

func TestOutputIsThisProcessesPartOfTheLog(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "out.log")
	if err := os.WriteFile(log, []byte("an earlier start\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := Start([]string{"sh", "-c", `echo "$GREETING"; pwd; echo to-stderr >&2`},
		Options{Log: log, Dir: dir, Env: []string{"GREETING=hello"}})
	if err != nil {
		t.Fatal(err)
	}
	<-p.Done()
	want := "hello\n" + dir + "\nto-stderr\n"
	if got := p.Output(); got != want {
		t.Fatalf("Output = %q, want %q", got, want)
	}
	if got := p.OutputTail(2); got != dir+"\nto-stderr" {
		t.Fatalf("OutputTail(2) = %q", got)
	}
	if got := p.ExitStatus(); got != "exit status 0" {
		t.Fatalf("ExitStatus = %q", got)
	}
}

func TestOutputToWriters(t *testing.T) {
	var out, errOut strings.Builder
	p, err := Start([]string{"sh", "-c", "echo out; echo err >&2"}, Options{Stdout: &out, Stderr: &errOut})
	if err != nil {
		t.Fatal(err)
	}
	<-p.Done()
	if out.String() != "out\n" || errOut.String() != "err\n" {
		t.Fatalf("stdout %q, stderr %q", out.String(), errOut.String())
	}
	if p.Output() != "" {
		t.Fatalf("Output without a Log = %q", p.Output())
	}
}

func TestStartFailure(t *testing.T) {
	if _, err := Start([]string{filepath.Join(t.TempDir(), "no-such-binary")}, Options{}); err == nil {
		t.Fatal("started a binary that does not exist")
	}
	if _, err := Start(nil, Options{}); err == nil {
		t.Fatal("started no command")
	}
}

func TestPollReady(t *testing.T) {
	p := start(t, "sleep", "1000")
	calls := 0
	err := p.Poll(t.Context(), time.Hour, time.Millisecond, func(context.Context) error {
		calls++
		if calls < 3 {
			return errors.New("not yet")
		}
		return nil
	})
	if err != nil || calls != 3 {
		t.Fatalf("Poll = %v after %d checks, want nil after 3", err, calls)
	}
}

func TestPollProcessExits(t *testing.T) {
	p := start(t, "sh", "-c", "exit 3")
	err := p.Poll(t.Context(), time.Hour, time.Millisecond, func(context.Context) error { return errors.New("never ready") })
	if !errors.Is(err, ErrExited) || !strings.Contains(err.Error(), "exit status 3") {
		t.Fatalf("Poll = %v, want ErrExited with the exit status", err)
	}
}

func TestPollTimeout(t *testing.T) {
	p := start(t, "sleep", "1000")
	err := p.Poll(t.Context(), 20*time.Millisecond, time.Millisecond, func(context.Context) error { return errors.New("refused") })
	if !errors.Is(err, ErrTimeout) || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("Poll = %v, want ErrTimeout with the last check's error", err)
	}
	if p.Exited() {
		t.Fatal("Poll stopped the process")
	}
}

func TestPollCancelled(t *testing.T) {
	p := start(t, "sleep", "1000")
	ctx, cancel := context.WithCancel(t.Context())
	err := p.Poll(ctx, time.Hour, time.Millisecond, func(context.Context) error {
		cancel()
		return errors.New("not yet")
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Poll = %v, want context.Canceled", err)
	}
}

func TestAwait(t *testing.T) {
	p := start(t, "sleep", "1000")
	ready := make(chan string, 1)
	ready <- "ready"
	if err := Await(t.Context(), p, time.Hour, ready); err != nil {
		t.Fatalf("Await = %v", err)
	}

	never := make(chan struct{})
	if err := Await(t.Context(), p, 20*time.Millisecond, never); !errors.Is(err, ErrTimeout) {
		t.Fatalf("Await = %v, want ErrTimeout", err)
	}

	q := start(t, "sh", "-c", "exit 4")
	if err := Await(t.Context(), q, time.Hour, never); !errors.Is(err, ErrExited) {
		t.Fatalf("Await = %v, want ErrExited", err)
	}
}

// waitOutput waits until the process has written want to its log.
func waitOutput(t *testing.T, p *Proc, want string) {
	t.Helper()
	err := p.Poll(t.Context(), time.Minute, time.Millisecond, func(context.Context) error {
		if !strings.Contains(p.Output(), want) {
			return errors.New("not written yet")
		}
		return nil
	})
	if err != nil {
		t.Fatalf("waiting for %q: %v; output: %q", want, err, p.Output())
	}
}
