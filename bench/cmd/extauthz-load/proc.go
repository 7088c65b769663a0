package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

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

// proc is one gRPC server process: extauthz serve, or this tool's own
// floor-server or jwx-server.
type proc struct {
	name    string
	addr    string
	logPath string
	cmd     *exec.Cmd
	done    chan struct{}
	reg     *procs
	once    sync.Once
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// startServer starts argv(addr) on a free loopback port and returns once
// the gRPC health service answers SERVING. A port taken between picking and
// binding is retried with another.
func startServer(ctx context.Context, reg *procs, name, dir string, argv func(addr string) []string) (*proc, error) {
	var lastErr error
	for attempt := range 5 {
		port, err := redisproc.FreePort()
		if err != nil {
			return nil, err
		}
		addr := "127.0.0.1:" + strconv.Itoa(port)
		p, err := launch(ctx, reg, name, filepath.Join(dir, fmt.Sprintf("%s-%d-%d.log", name, port, attempt)), addr, argv(addr))
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

func launch(ctx context.Context, reg *procs, name, logPath, addr string, argv []string) (*proc, error) {
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("%s: starting %s: %w", name, argv[0], err)
	}
	p := &proc{name: name, addr: addr, logPath: logPath, cmd: cmd, done: make(chan struct{}), reg: reg}
	go func() {
		_ = cmd.Wait()
		logFile.Close()
		close(p.done)
	}()
	reg.add(name, cmd.Process.Pid, p.stop)
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
	deadline := time.Now().Add(startTimeout)
	var last string // the last health answer, for the error
	for {
		select {
		case <-p.done:
			return fmt.Errorf("%s exited during start (%v); its log ends:\n%s", p.name, p.cmd.ProcessState, p.logTail())
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		resp, err := hc.Check(cctx, &healthpb.HealthCheckRequest{})
		cancel()
		if err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			return nil
		}
		if err != nil {
			last = err.Error()
		} else {
			last = resp.GetStatus().String()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s on %s not serving after %v (last health answer: %s); its log ends:\n%s",
				p.name, p.addr, startTimeout, last, p.logTail())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop ends the process by PID: SIGTERM, SIGKILL after stopGrace, and waits
// until it has been reaped.
func (p *proc) stop() {
	p.once.Do(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(stopGrace):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		p.reg.done(p.pid())
	})
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// logTail is the end of the process's output, for error messages.
func (p *proc) logTail() string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > 20 {
		lines = lines[len(lines)-20:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}
