package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/extauthz/extauthz/internal/childproc"
	"github.com/extauthz/extauthz/internal/redisproc"
)

// startTimeout bounds how long a server may take to answer its health check;
// generous, because only a broken start should ever reach it.
const startTimeout = 30 * time.Second

// stopGrace is how long a server gets to exit after SIGTERM before SIGKILL.
const stopGrace = 10 * time.Second

// ProcInfo identifies a process the harness started, so that callers (and
// the tests) can check by PID that it is gone.
type ProcInfo struct {
	Name      string
	PID       int
	StartTime uint64 // /proc/PID/stat starttime, to tell a reused PID apart
}

// procs is every process the harness started; stopAll ends whichever are
// still running, whatever happened before.
type procs struct {
	mu      sync.Mutex
	started []ProcInfo
	live    map[int]func()
}

func (r *procs) add(name string, pid int, stop func()) {
	st, _ := procStartTime(pid)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.started = append(r.started, ProcInfo{Name: name, PID: pid, StartTime: st})
	if r.live == nil {
		r.live = map[int]func(){}
	}
	r.live[pid] = stop
}

func (r *procs) done(pid int) {
	r.mu.Lock()
	delete(r.live, pid)
	r.mu.Unlock()
}

func (r *procs) stopAll() {
	r.mu.Lock()
	stops := make([]func(), 0, len(r.live))
	for _, s := range r.live {
		stops = append(stops, s)
	}
	r.mu.Unlock()
	for _, s := range stops {
		s()
	}
}

func (r *procs) list() []ProcInfo {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]ProcInfo(nil), r.started...)
}

// proc is one gRPC server process: extauthz serve, or one of this tool's
// own reference servers (floor-server, floor-tuned-server,
// floor-verify-server, jwx-server).
type proc struct {
	name string
	addr string
	*childproc.Proc
	reg  *procs
	once sync.Once
	sink *drain // unless nil, where its output went instead of a log file
}

func (p *proc) pid() int { return p.PID() }

// startServer starts argv(addr) on a free loopback port and returns once
// the gRPC health service answers SERVING. A port taken between picking and
// binding is retried with another.
func startServer(ctx context.Context, reg *procs, name, dir string, argv func(addr string) []string) (*proc, error) {
	return startServerSink(ctx, reg, name, dir, nil, argv)
}

// startServerSink is startServer that, unless sink is nil, sends the
// server's stdout and stderr to sink through a pipe instead of to a log
// file.
func startServerSink(ctx context.Context, reg *procs, name, dir string, sink *drain, argv func(addr string) []string) (*proc, error) {
	var lastErr error
	for attempt := range 5 {
		port, err := redisproc.FreePort()
		if err != nil {
			return nil, err
		}
		addr := "127.0.0.1:" + strconv.Itoa(port)
		p, err := launch(ctx, reg, name, filepath.Join(dir, fmt.Sprintf("%s-%d-%d.log", name, port, attempt)), sink, addr, argv(addr))
		if err == nil {
			return p, nil
		}
		lastErr = err
		if !errors.Is(err, errAddrInUse) {
			break
		}
	}
	return nil, lastErr
}

var errAddrInUse = errors.New("address already in use")

func launch(ctx context.Context, reg *procs, name, logPath string, sink *drain, addr string, argv []string) (*proc, error) {
	opts := childproc.Options{Log: logPath}
	if sink != nil {
		// One writer for both: os/exec then makes a single pipe, read by
		// one goroutine of this process.
		opts = childproc.Options{Stdout: sink, Stderr: sink}
	}
	cp, err := childproc.Start(argv, opts)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	p := &proc{name: name, addr: addr, Proc: cp, reg: reg, sink: sink}
	reg.add(name, cp.PID(), p.stop)
	if err := p.waitServing(ctx); err != nil {
		p.stop()
		if strings.Contains(p.logTail(), "address already in use") {
			return nil, fmt.Errorf("%s on %s: %w", name, addr, errAddrInUse)
		}
		return nil, err
	}
	return p, nil
}

// waitServing polls grpc.health.v1 until the server reports SERVING, which
// for extauthz means every issuer's keys are loaded.
func (p *proc) waitServing(ctx context.Context) error {
	// The server may not listen yet: reconnect quickly rather than with
	// gRPC's default backoff, which starts at a second.
	conn, err := grpc.NewClient(p.addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 10 * time.Millisecond, Multiplier: 1.6, MaxDelay: 200 * time.Millisecond},
			MinConnectTimeout: time.Second,
		}))
	if err != nil {
		return err
	}
	defer conn.Close()
	hc := healthpb.NewHealthClient(conn)
	err = p.Poll(ctx, startTimeout, 20*time.Millisecond, func(ctx context.Context) error {
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		resp, err := hc.Check(cctx, &healthpb.HealthCheckRequest{})
		if err != nil {
			return err
		}
		if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			return errors.New(resp.GetStatus().String())
		}
		return nil
	})
	if err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s on %s: %w; its log ends:\n%s", p.name, p.addr, err, p.logTail())
	}
	return err
}

// stop ends the process by PID: SIGTERM, SIGKILL after stopGrace, and waits
// until it has been reaped.
func (p *proc) stop() {
	p.once.Do(func() {
		p.Stop(stopGrace)
		p.reg.done(p.pid())
	})
}

func (p *proc) exited() bool { return p.Exited() }

// logTail is the end of the process's output, for error messages.
func (p *proc) logTail() string {
	if p.sink != nil {
		return p.sink.tail(20)
	}
	return p.OutputTail(20)
}

// drain is where a server's output goes when the tool reads it from a pipe
// and discards it, as fast as the server writes: it counts lines and bytes
// and keeps the last few KiB, for error messages.
type drain struct {
	lines, bytes atomic.Int64
	mu           sync.Mutex
	last         []byte
}

// drainKeep is how much of the output's end a drain keeps.
const drainKeep = 8 << 10

func (d *drain) Write(p []byte) (int, error) {
	d.lines.Add(int64(bytes.Count(p, []byte{'\n'})))
	d.bytes.Add(int64(len(p)))
	d.mu.Lock()
	if len(p) >= drainKeep {
		d.last = append(d.last[:0], p[len(p)-drainKeep:]...)
	} else {
		if n := len(d.last) + len(p) - drainKeep; n > 0 {
			d.last = append(d.last[:0], d.last[n:]...)
		}
		d.last = append(d.last, p...)
	}
	d.mu.Unlock()
	return len(p), nil
}

// counts is the lines and bytes written so far.
func (d *drain) counts() [2]int64 { return [2]int64{d.lines.Load(), d.bytes.Load()} }

// tail is the last n lines kept.
func (d *drain) tail(n int) string {
	d.mu.Lock()
	s := strings.TrimRight(string(d.last), "\n")
	d.mu.Unlock()
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
