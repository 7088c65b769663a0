// Package redistest starts real redis-server processes for tests: a standalone server, a Redis
// Cluster, or a master watched by a Sentinel, each on free loopback ports, in its own temporary
// directory, without persistence, and stopped by PID when the test ends.
//
// It exists so that tests exercise the Redis the cache really talks to, including the failures
// (a server that dies, restarts, or stops answering) that a fake cannot show honestly. It is not
// for the shared development Redis on 127.0.0.1:6379, which tests must never stop or flush.
//
// A missing redis-server is a test failure, never a skip: a skipped test would hide that the
// service it needs is absent. It is test support only: nothing outside _test.go files should
// import it.
package redistest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/extauthz/extauthz/internal/childproc"
	"github.com/extauthz/extauthz/internal/redisproc"
)

// startTimeout bounds how long a process may take to answer after it was started; generous,
// because it only ends a test whose server never came up, and a loaded CI machine is slow.
const startTimeout = 30 * time.Second

// pollInterval is how often a condition on a process (answers PING, cluster is ok) is re-checked.
const pollInterval = 10 * time.Millisecond

// Server is one redis-server process (a standalone server, a cluster node or a sentinel).
type Server struct {
	tb   testing.TB
	bin  string
	dir  string
	port int
	argv []string // complete, port included, so that Restart brings back the same server

	mu   sync.Mutex
	proc *childproc.Proc // nil while stopped
}

// Start starts a standalone redis-server on 127.0.0.1 and a free port, with no persistence and
// its own temporary directory, and returns once it answers PING. args are extra redis-server
// options, such as "--requirepass", "secret". The server is stopped when the test ends.
func Start(tb testing.TB, args ...string) *Server {
	tb.Helper()
	bin := lookPath(tb, "redis-server")
	dir := tb.TempDir()
	extra := append([]string(nil), args...)
	return startServer(tb, bin, dir, func(port int) []string {
		return append(baseArgs(port, dir), extra...)
	})
}

// baseArgs are the options every server started here gets: loopback only, no RDB snapshots or
// AOF (a test's data is thrown away), logging to stdout, which goes to a file in dir.
func baseArgs(port int, dir string) []string {
	return []string{
		"--port", strconv.Itoa(port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--dir", dir,
		"--daemonize", "no",
		"--logfile", "",
	}
}

// startServer starts a process whose arguments argv builds for a port, picking a new free port
// whenever the one picked was taken before redis-server could bind it.
func startServer(tb testing.TB, bin, dir string, argv func(port int) []string) *Server {
	tb.Helper()
	s := &Server{tb: tb, bin: bin, dir: dir}
	// Registered before the process exists, so that a Fatal half-way through start still stops
	// whatever was started; the temporary directory (registered earlier by the caller) is
	// removed after this runs, as cleanups run last-in first-out.
	tb.Cleanup(s.Stop)
	var lastErr error
	for range 5 {
		s.port = freePort(tb)
		s.argv = argv(s.port)
		err := s.launch()
		if err == nil {
			return s
		}
		lastErr = err
		if !errors.Is(err, errAddrInUse) {
			break
		}
	}
	tb.Fatalf("redistest: %v", lastErr)
	return nil
}

// errAddrInUse marks a start that failed only because the port was taken.
var errAddrInUse = errors.New("address already in use")

// launch starts the process and waits until it answers PING, or fails if it exits first.
func (s *Server) launch() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, err := childproc.Start(append([]string{s.bin}, s.argv...), childproc.Options{
		Dir: s.dir,
		Log: filepath.Join(s.dir, "redis-"+strconv.Itoa(s.port)+".log"),
	})
	if err != nil {
		return err
	}
	s.proc = p
	err = p.Poll(context.Background(), startTimeout, pollInterval, func(context.Context) error {
		return answers(s.Addr())
	})
	switch {
	case err == nil:
		return nil
	case errors.Is(err, childproc.ErrExited):
		s.proc = nil
		out := p.Output() // this start's part of the log
		if strings.Contains(out, "Address already in use") {
			return fmt.Errorf("%s on port %d: %w", s.bin, s.port, errAddrInUse)
		}
		return fmt.Errorf("%s %s exited during start (%s); its log:\n%s",
			s.bin, strings.Join(s.argv, " "), p.ExitStatus(), out)
	default:
		p.Stop(0)
		s.proc = nil
		return fmt.Errorf("%s on port %d did not answer PING within %v; its log:\n%s",
			s.bin, s.port, startTimeout, p.Output())
	}
}

// answers returns nil if a server answers PING at addr. An error reply counts: a server
// started with --requirepass answers NOAUTH, and it is up all the same.
func answers(addr string) error {
	_, err := doTimeout(addr, time.Second, "PING")
	var re redisproc.ReplyError
	if err == nil || errors.As(err, &re) {
		return nil
	}
	return err
}

// Addr is the server's "127.0.0.1:port".
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// Stop kills the process (SIGKILL, as a crash would) and waits for it to exit. Stopping a
// stopped server does nothing. A frozen server is stopped too.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return
	}
	s.proc.Stop(0)
	s.proc = nil
}

// Restart stops the server if it runs and starts it again on the same port with the same
// arguments, retrying the bind for a while if the port is not free yet. Data is lost: there is
// no persistence.
func (s *Server) Restart() {
	s.tb.Helper()
	s.Stop()
	deadline := time.Now().Add(startTimeout)
	for {
		err := s.launch()
		if err == nil {
			return
		}
		if !errors.Is(err, errAddrInUse) || time.Now().After(deadline) {
			s.tb.Fatalf("redistest: restart: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Freeze suspends the process (SIGSTOP): it keeps accepting connections, as the kernel does that,
// but answers nothing until Thaw. This is a Redis that has become slow, not one that is down.
func (s *Server) Freeze() { s.signal(syscall.SIGSTOP) }

// Thaw resumes a frozen process (SIGCONT).
func (s *Server) Thaw() { s.signal(syscall.SIGCONT) }

func (s *Server) signal(sig os.Signal) {
	s.tb.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		s.tb.Fatalf("redistest: signal %v: server %s is not running", sig, s.Addr())
	}
	if err := s.proc.Signal(sig); err != nil {
		s.tb.Fatalf("redistest: signal %v to %s: %v", sig, s.Addr(), err)
	}
}

// lookPath finds a Redis binary or fails the test saying what to install.
func lookPath(tb testing.TB, name string) string {
	tb.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		tb.Fatalf("redistest: %s not found in PATH (%v): these tests need a real Redis 7; "+
			"install it (Debian/Ubuntu: apt-get install redis-server, which also provides redis-cli)",
			name, err)
	}
	return p
}

// freePort returns a loopback TCP port that was free a moment ago. Another process may take it
// before redis-server binds it; startServer retries with a new one when that happens.
func freePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("redistest: finding a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Do sends one command to addr on a new connection and returns the reply: a string for simple
// and bulk strings, an int64, nil for a null, []any for an array, or an error for an error
// reply. It is for readiness checks and test assertions (PING, CLUSTER INFO, PUBSUB NUMSUB),
// without going through the client under test.
func Do(addr string, args ...string) (any, error) {
	return doTimeout(addr, 5*time.Second, args...)
}

// doTimeout is Do with a deadline for the whole exchange. The RESP client is
// redisproc's: one implementation for the tests and the load harness.
func doTimeout(addr string, timeout time.Duration, args ...string) (any, error) {
	return redisproc.Do(addr, timeout, args...)
}
