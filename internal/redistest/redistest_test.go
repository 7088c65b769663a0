package redistest

import (
	"errors"
	"fmt"
	"net"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestStartStopRestart(t *testing.T) {
	t.Parallel()
	s := Start(t)
	if _, err := Do(s.Addr(), "SET", "k", "v"); err != nil {
		t.Fatal(err)
	}
	if v, err := Do(s.Addr(), "GET", "k"); err != nil || v != "v" {
		t.Fatalf("GET = %v, %v; want v", v, err)
	}
	// The options Start promises: no persistence, loopback only.
	for param, want := range map[string]string{"save": "", "appendonly": "no", "bind": "127.0.0.1"} {
		reply, err := Do(s.Addr(), "CONFIG", "GET", param)
		kv, _ := reply.([]any)
		if err != nil || len(kv) != 2 || kv[1] != want {
			t.Errorf("CONFIG GET %s = %v, %v; want %q", param, reply, err, want)
		}
	}

	addr := s.Addr()
	s.Stop()
	if _, err := Do(addr, "PING"); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("PING after Stop: %v, want connection refused", err)
	}
	s.Stop() // a second Stop is harmless

	s.Restart()
	if s.Addr() != addr {
		t.Fatalf("Restart moved the server from %s to %s", addr, s.Addr())
	}
	if v, err := Do(s.Addr(), "GET", "k"); err != nil || v != nil {
		t.Fatalf("GET after Restart = %v, %v; want nil (nothing persisted)", v, err)
	}
	// Restart of a running server stops it first.
	s.Restart()
	if v, err := Do(s.Addr(), "PING"); err != nil || v != "PONG" {
		t.Fatalf("PING after second Restart = %v, %v", v, err)
	}
}

func TestStartArgs(t *testing.T) {
	t.Parallel()
	s := Start(t, "--requirepass", "s3cret")
	_, err := Do(s.Addr(), "GET", "k")
	if err == nil || !strings.Contains(err.Error(), "NOAUTH") {
		t.Fatalf("GET without AUTH: %v, want NOAUTH", err)
	}
	s.Restart() // the arguments survive a restart
	if _, err := Do(s.Addr(), "GET", "k"); err == nil || !strings.Contains(err.Error(), "NOAUTH") {
		t.Fatalf("GET without AUTH after Restart: %v, want NOAUTH", err)
	}
}

func TestStoppedAtCleanup(t *testing.T) {
	t.Parallel()
	var addrs []string
	t.Run("inner", func(t *testing.T) {
		addrs = append(addrs, Start(t).Addr())
		addrs = append(addrs, StartCluster(t, 3).Addrs()...)
		sen := StartSentinel(t)
		addrs = append(addrs, sen.Master().Addr())
		addrs = append(addrs, sen.SentinelAddrs()...)
	})
	if len(addrs) != 6 {
		t.Fatalf("got %d addresses, want 6", len(addrs))
	}
	for _, a := range addrs {
		if _, err := Do(a, "PING"); !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("PING %s after the test ended: %v, want connection refused", a, err)
		}
	}
}

func TestFreezeThaw(t *testing.T) {
	t.Parallel()
	s := Start(t)
	s.Freeze()
	// The kernel still accepts the connection; the reply never comes.
	_, err := doTimeout(s.Addr(), 200*time.Millisecond, "PING")
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("PING to a frozen server: %v, want a timeout", err)
	}
	s.Thaw()
	if v, err := Do(s.Addr(), "PING"); err != nil || v != "PONG" {
		t.Fatalf("PING after Thaw = %v, %v", v, err)
	}
}

func TestCluster(t *testing.T) {
	t.Parallel()
	c := StartCluster(t, 3)
	if len(c.Addrs()) != 3 || len(c.Nodes()) != 3 {
		t.Fatalf("Addrs() = %v, want 3 nodes", c.Addrs())
	}
	for _, a := range c.Addrs() {
		info, err := Do(a, "CLUSTER", "INFO")
		s, _ := info.(string)
		if err != nil || !strings.Contains(s, "cluster_state:ok") ||
			!strings.Contains(s, "cluster_slots_assigned:16384") || !strings.Contains(s, "cluster_size:3") {
			t.Errorf("CLUSTER INFO on %s: %v\n%s", a, err, s)
		}
	}
	// A key lands on exactly one node; the others redirect.
	var owners int
	for _, a := range c.Addrs() {
		_, err := Do(a, "SET", "k", "v")
		switch {
		case err == nil:
			owners++
		case !strings.Contains(err.Error(), "MOVED"):
			t.Errorf("SET on %s: %v", a, err)
		}
	}
	if owners != 1 {
		t.Fatalf("%d nodes accepted the key, want 1", owners)
	}
}

func TestSentinel(t *testing.T) {
	t.Parallel()
	s := StartSentinel(t)
	if len(s.SentinelAddrs()) != 1 {
		t.Fatalf("SentinelAddrs() = %v", s.SentinelAddrs())
	}
	reply, err := Do(s.SentinelAddrs()[0], "SENTINEL", "GET-MASTER-ADDR-BY-NAME", s.MasterName())
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(reply); got != fmt.Sprint([]any{"127.0.0.1", s.Master().Addr()[len("127.0.0.1:"):]}) {
		t.Fatalf("sentinel reports master %v, want %s", got, s.Master().Addr())
	}
	if role, err := Do(s.Master().Addr(), "ROLE"); err != nil || fmt.Sprint(role.([]any)[0]) != "master" {
		t.Fatalf("ROLE of the master = %v, %v", role, err)
	}
}

// fatalTB records a Fatal or a Skip instead of acting on the real test, so that what Start does
// without redis-server can be observed. Both end the calling goroutine, as the real ones do.
type fatalTB struct {
	testing.TB
	fatal, skip string
}

func (f *fatalTB) Helper() {}
func (f *fatalTB) Fatalf(format string, args ...any) {
	f.fatal = fmt.Sprintf(format, args...)
	runtime.Goexit()
}
func (f *fatalTB) Fatal(args ...any) { f.Fatalf("%s", fmt.Sprint(args...)) }
func (f *fatalTB) Skipf(format string, args ...any) {
	f.skip = fmt.Sprintf(format, args...)
	runtime.Goexit()
}
func (f *fatalTB) Skip(args ...any) { f.Skipf("%s", fmt.Sprint(args...)) }
func (f *fatalTB) SkipNow()         { f.Skipf("SkipNow") }

// Without redis-server the test fails, saying what is missing: a skip would hide it.
func TestMissingRedisServerIsFatal(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	for name, start := range map[string]func(testing.TB){
		"Start":         func(tb testing.TB) { Start(tb) },
		"StartCluster":  func(tb testing.TB) { StartCluster(tb, 3) },
		"StartSentinel": func(tb testing.TB) { StartSentinel(tb) },
	} {
		t.Run(name, func(t *testing.T) {
			f := &fatalTB{TB: t}
			done := make(chan struct{})
			go func() {
				defer close(done)
				start(f)
			}()
			<-done
			if f.skip != "" {
				t.Fatalf("skipped (%q), want a failure", f.skip)
			}
			if !strings.Contains(f.fatal, "redis-server not found") || !strings.Contains(f.fatal, "install") {
				t.Fatalf("Fatal message %q does not say redis-server is missing and how to install it", f.fatal)
			}
		})
	}
}
