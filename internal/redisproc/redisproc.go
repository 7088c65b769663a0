// Package redisproc starts a private redis-server process outside of tests:
// on 127.0.0.1 and a free port, in its own directory, without persistence,
// and stopped by PID. The load harness (bench/cmd/extauthz-load) uses it so that a
// benchmark never touches a Redis it did not start.
//
// It is not a Redis client and not for the shared development Redis on
// 127.0.0.1:6379, which it never connects to: Start refuses that port. Tests
// use internal/redistest instead, which ties each server to a testing.TB.
package redisproc

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/extauthz/extauthz/internal/childproc"
)

// ErrNotInstalled is returned by Start when no redis-server is in PATH.
var ErrNotInstalled = errors.New("redis-server not installed")

// sharedPort is the machine's shared Redis, which a private server must never
// take or touch.
const sharedPort = 6379

// Options configure Start. The zero value is a standalone server found in
// PATH, in a new temporary directory.
type Options struct {
	// Bin is the redis-server binary; "" looks it up in PATH.
	Bin string
	// Dir holds the server's log; "" makes a temporary directory that Stop
	// removes.
	Dir string
	// Args are extra redis-server options, such as "--maxmemory", "1gb".
	Args []string
	// StartTimeout bounds how long the server may take to answer PING
	// (default 30s: a loaded machine is slow).
	StartTimeout time.Duration
}

// Server is one running redis-server process.
type Server struct {
	bin    string
	dir    string
	ownDir bool
	port   int

	mu   sync.Mutex
	proc *childproc.Proc // nil once stopped
}

// stopGrace is how long the server gets to exit after SIGTERM before SIGKILL.
const stopGrace = 5 * time.Second

// Start launches redis-server and returns once it answers PING. It retries
// with another port when the one it picked was taken in the meantime.
func Start(ctx context.Context, o Options) (*Server, error) {
	bin := o.Bin
	if bin == "" {
		p, err := exec.LookPath("redis-server")
		if err != nil {
			return nil, ErrNotInstalled
		}
		bin = p
	}
	if o.StartTimeout <= 0 {
		o.StartTimeout = 30 * time.Second
	}
	s := &Server{bin: bin, dir: o.Dir}
	if s.dir == "" {
		d, err := os.MkdirTemp("", "redisproc-")
		if err != nil {
			return nil, err
		}
		s.dir, s.ownDir = d, true
	}
	var lastErr error
	for range 5 {
		port, err := FreePort()
		if err != nil {
			s.removeDir()
			return nil, err
		}
		s.port = port
		lastErr = s.launch(ctx, o.Args, o.StartTimeout)
		if lastErr == nil {
			return s, nil
		}
		if !errors.Is(lastErr, errAddrInUse) {
			break
		}
	}
	s.removeDir()
	return nil, lastErr
}

var errAddrInUse = errors.New("address already in use")

func (s *Server) launch(ctx context.Context, extra []string, timeout time.Duration) error {
	argv := append([]string{s.bin,
		"--port", strconv.Itoa(s.port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--dir", s.dir,
		"--daemonize", "no",
		"--logfile", "",
	}, extra...)
	p, err := childproc.Start(argv, childproc.Options{
		Dir: s.dir,
		Log: filepath.Join(s.dir, "redis-"+strconv.Itoa(s.port)+".log"),
	})
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.proc = p
	s.mu.Unlock()

	err = p.Poll(ctx, timeout, 10*time.Millisecond, func(context.Context) error {
		_, err := Do(s.Addr(), time.Second, "PING")
		return err
	})
	switch {
	case err == nil:
		return nil
	case errors.Is(err, childproc.ErrExited):
		s.mu.Lock()
		s.proc = nil
		s.mu.Unlock()
		out := p.Output()
		if strings.Contains(out, "Address already in use") {
			return fmt.Errorf("%s on port %d: %w", s.bin, s.port, errAddrInUse)
		}
		return fmt.Errorf("%s exited during start (%s); its log:\n%s", s.bin, p.ExitStatus(), out)
	default:
		s.Stop()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("%s on port %d did not answer PING within %v", s.bin, s.port, timeout)
	}
}

// Addr is "127.0.0.1:port".
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// PID is the process id, 0 once stopped.
func (s *Server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return 0
	}
	return s.proc.PID()
}

// Stop ends the process by PID (SIGTERM, then SIGKILL after 5 s), waits
// for it, and removes the directory Start made. Stopping twice does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	p := s.proc
	s.proc = nil
	s.mu.Unlock()
	if p != nil {
		p.Stop(stopGrace)
	}
	s.removeDir()
}

func (s *Server) removeDir() {
	if s.ownDir {
		_ = os.RemoveAll(s.dir)
		s.ownDir = false
	}
}

// Version is the output of "redis-server --version", or "" if unknown.
func Version(bin string) string {
	if bin == "" {
		p, err := exec.LookPath("redis-server")
		if err != nil {
			return ""
		}
		bin = p
	}
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// FreePort returns a loopback TCP port that was free a moment ago, never
// the shared Redis port.
func FreePort() (int, error) {
	for range 10 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("finding a free port: %w", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if port != sharedPort {
			return port, nil
		}
	}
	return 0, errors.New("finding a free port: none found")
}

// Do sends one command to addr on a new connection and returns the reply: a
// string, an int64, nil, []any, or an error for an error reply. It refuses
// the shared Redis port, so a slip cannot write to the machine's Redis.
func Do(addr string, timeout time.Duration, args ...string) (any, error) {
	if _, port, err := net.SplitHostPort(addr); err == nil && port == strconv.Itoa(sharedPort) {
		return nil, fmt.Errorf("redisproc: refusing to talk to the shared Redis at %s", addr)
	}
	conn, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(timeout)); err != nil {
		return nil, err
	}
	var req bytes.Buffer
	fmt.Fprintf(&req, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&req, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := conn.Write(req.Bytes()); err != nil {
		return nil, err
	}
	reply, err := readReply(bufio.NewReader(conn))
	if err != nil {
		return nil, err
	}
	if e, ok := reply.(ReplyError); ok {
		return nil, e
	}
	return reply, nil
}

// Info returns the fields of "INFO section" as a map.
func Info(addr, section string) (map[string]string, error) {
	r, err := Do(addr, 5*time.Second, "INFO", section)
	if err != nil {
		return nil, err
	}
	s, _ := r.(string)
	m := map[string]string{}
	for _, line := range strings.Split(s, "\r\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && !strings.HasPrefix(line, "#") {
			m[k] = v
		}
	}
	return m, nil
}

// ReplyError is an error reply from the server (as opposed to a network failure).
type ReplyError string

func (e ReplyError) Error() string { return "redis: " + string(e) }

func readReply(r *bufio.Reader) (any, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	line = strings.TrimSuffix(line, "\r\n")
	if line == "" {
		return nil, errors.New("redisproc: empty reply line")
	}
	body := line[1:]
	switch line[0] {
	case '+':
		return body, nil
	case '-':
		return ReplyError(body), nil
	case ':':
		return strconv.ParseInt(body, 10, 64)
	case '$':
		n, err := strconv.Atoi(body)
		if err != nil || n < 0 {
			return nil, err
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, err
		}
		return string(buf[:n]), nil
	case '*':
		n, err := strconv.Atoi(body)
		if err != nil || n < 0 {
			return nil, err
		}
		out := make([]any, n)
		for i := range out {
			if out[i], err = readReply(r); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	return nil, fmt.Errorf("redisproc: unexpected reply %q", line)
}
