// Package childproc starts and stops the helper processes that tests and the
// load harness run (redis-server, the oidc-provider authorization server, the
// gateway itself): one way to start a child, capture its output, wait until
// it is ready, and stop it by PID.
//
// A child gets its own process group, so that a Ctrl-C in the terminal
// reaches only its parent, which then stops it; on Linux the kernel also
// kills it (SIGKILL) if the parent dies without doing so (a crash, or go
// test's -timeout). Stop signals the child's PID only, never a group, and
// returns once the child has been reaped.
//
// It is for internal/redisproc, internal/redistest, internal/oidctest and
// the load harness; it is not part of the gateway.
package childproc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// ErrExited is wrapped by the error of a wait for readiness that ended
// because the process exited.
var ErrExited = errors.New("exited before it was ready")

// ErrTimeout is wrapped by the error of a wait for readiness that ran out of
// time.
var ErrTimeout = errors.New("not ready in time")

// waitDelay bounds how long reaping a child may wait for its output pipes to
// close after it exited: a grandchild may hold them open.
const waitDelay = 5 * time.Second

// Options configure Start. The zero value runs the command in the current
// directory with the parent's environment and discards its output.
type Options struct {
	// Dir is the working directory ("" is the parent's).
	Dir string
	// Env is the environment (nil is the parent's).
	Env []string
	// Log, if set, is a file that receives stdout and stderr together,
	// appended to (created if need be). Output reads back what this process
	// wrote to it.
	Log string
	// Stdout and Stderr receive the output when Log is empty; nil discards.
	Stdout, Stderr io.Writer
}

// Proc is one started child process. Its methods are safe for concurrent
// use.
type Proc struct {
	name     string
	cmd      *exec.Cmd
	log      string
	logStart int64
	done     chan struct{} // closed once the process has exited and been reaped
	waitErr  error         // cmd.Wait's result, read after done
}

// Start starts argv[0] with the arguments argv[1:] and returns at once; see
// Poll and Await to wait until it is ready.
func Start(argv []string, o Options) (*Proc, error) {
	if len(argv) == 0 {
		return nil, errors.New("childproc: no command")
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir, cmd.Env = o.Dir, o.Env
	cmd.SysProcAttr = sysProcAttr()
	cmd.WaitDelay = waitDelay
	p := &Proc{name: argv[0], cmd: cmd, log: o.Log, done: make(chan struct{})}
	var logFile *os.File
	if o.Log != "" {
		f, err := os.OpenFile(o.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return nil, err
		}
		p.logStart, _ = f.Seek(0, io.SeekEnd)
		logFile = f
		cmd.Stdout, cmd.Stderr = f, f
	} else {
		cmd.Stdout, cmd.Stderr = o.Stdout, o.Stderr
	}
	if err := cmd.Start(); err != nil {
		if logFile != nil {
			logFile.Close()
		}
		return nil, fmt.Errorf("starting %s: %w", argv[0], err)
	}
	go func() {
		p.waitErr = cmd.Wait()
		if logFile != nil {
			logFile.Close()
		}
		close(p.done)
	}()
	return p, nil
}

// PID is the process id. It stays the same after the process has exited.
func (p *Proc) PID() int { return p.cmd.Process.Pid }

// Done is closed once the process has exited and been reaped.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited and been reaped.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// ExitStatus describes how the process ended ("exit status 1", "signal:
// killed"), or is "running".
func (p *Proc) ExitStatus() string {
	if !p.Exited() {
		return "running"
	}
	if p.cmd.ProcessState != nil {
		return p.cmd.ProcessState.String()
	}
	return fmt.Sprint(p.waitErr)
}

// Signal sends sig to the process (its PID only). Signalling a process that
// has been reaped is an error.
func (p *Proc) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// Stop ends the process and returns once it has been reaped: SIGTERM, then
// SIGKILL if it is still running after grace; with grace 0, SIGKILL at once
// (as a crash would). Stopping a process that has exited does nothing.
func (p *Proc) Stop(grace time.Duration) {
	if p.Exited() {
		return
	}
	if grace > 0 {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		t := time.NewTimer(grace)
		defer t.Stop()
		select {
		case <-p.done:
			return
		case <-t.C:
		}
	}
	_ = p.cmd.Process.Kill()
	<-p.done
}

// Output is what the process wrote to its Log so far ("" without one),
// for error messages.
func (p *Proc) Output() string {
	if p.log == "" {
		return ""
	}
	b, err := os.ReadFile(p.log)
	if err != nil {
		return "(log unreadable: " + err.Error() + ")"
	}
	if p.logStart > int64(len(b)) {
		return string(b)
	}
	return string(b[p.logStart:])
}

// OutputTail is the last n lines of Output.
func (p *Proc) OutputTail(n int) string {
	lines := strings.Split(strings.TrimRight(p.Output(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Poll calls ready every interval until it returns nil, and then returns
// nil. It gives up with an error wrapping ErrExited if the process exits
// first, with ctx's error if ctx ends, and with an error wrapping ErrTimeout
// and ready's last error once timeout has passed. It never stops the
// process: that is the caller's choice.
func (p *Proc) Poll(ctx context.Context, timeout, interval time.Duration, ready func(context.Context) error) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		if p.Exited() {
			return p.exitedErr()
		}
		err := ready(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-p.done:
			return p.exitedErr()
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline.C:
			return fmt.Errorf("%s %w within %v (last check: %v)", p.name, ErrTimeout, timeout, err)
		case <-tick.C:
		}
	}
}

// Await waits until ready is closed or receives, and then returns nil. It
// gives up as Poll does.
func Await[T any](ctx context.Context, p *Proc, timeout time.Duration, ready <-chan T) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-ready:
		return nil
	case <-p.done:
		return p.exitedErr()
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return fmt.Errorf("%s %w within %v (%s)", p.name, ErrTimeout, timeout, Activity(p.PID()))
	}
}

func (p *Proc) exitedErr() error {
	return fmt.Errorf("%s %w (%s)", p.name, ErrExited, p.ExitStatus())
}
