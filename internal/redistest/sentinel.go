package redistest

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// sentinelMasterName is the name the sentinel monitors the master under. Each Sentinel is its
// own process with its own configuration, so one fixed name cannot clash between tests.
const sentinelMasterName = "extauthz-test"

// Sentinel is one master redis-server watched by one sentinel (quorum 1).
type Sentinel struct {
	master   *Server
	sentinel *Server
}

// StartSentinel starts a master and a sentinel monitoring it, and returns once the sentinel
// reports that master as a healthy master under [Sentinel.MasterName]. Both are stopped when the
// test ends.
func StartSentinel(tb testing.TB) *Sentinel {
	tb.Helper()
	master := Start(tb)
	bin := lookPath(tb, "redis-server")
	dir := tb.TempDir()
	conf := filepath.Join(dir, "sentinel.conf")
	sentinel := startServer(tb, bin, dir, func(port int) []string {
		// A sentinel rewrites its configuration file as it learns, so it must be a file of its
		// own; the command-line options a plain server gets are not all valid for a sentinel,
		// so everything goes into the file.
		cfg := fmt.Sprintf(`port %d
bind 127.0.0.1
dir %q
daemonize no
logfile ""
sentinel monitor %s 127.0.0.1 %d 1
`, port, dir, sentinelMasterName, master.port)
		if err := os.WriteFile(conf, []byte(cfg), 0o644); err != nil {
			tb.Fatalf("redistest: writing %s: %v", conf, err)
		}
		return []string{conf, "--sentinel"}
	})

	deadline := time.Now().Add(startTimeout)
	for {
		addr, err := Do(sentinel.Addr(), "SENTINEL", "GET-MASTER-ADDR-BY-NAME", sentinelMasterName)
		flags, ferr := sentinelMasterField(sentinel.Addr(), "flags")
		if err == nil && ferr == nil && flags == "master" && equalAddr(addr, master) {
			break
		}
		if time.Now().After(deadline) {
			tb.Fatalf("redistest: sentinel %s did not report master %s within %v: addr %v (%v), flags %q (%v)",
				sentinel.Addr(), master.Addr(), startTimeout, addr, err, flags, ferr)
		}
		time.Sleep(pollInterval)
	}
	return &Sentinel{master: master, sentinel: sentinel}
}

// sentinelMasterField reads one field of SENTINEL MASTER, a flat name/value array.
func sentinelMasterField(addr, field string) (string, error) {
	reply, err := Do(addr, "SENTINEL", "MASTER", sentinelMasterName)
	if err != nil {
		return "", err
	}
	kv, _ := reply.([]any)
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i] == field {
			s, _ := kv[i+1].(string)
			return s, nil
		}
	}
	return "", fmt.Errorf("redistest: SENTINEL MASTER has no %q", field)
}

// equalAddr reports whether a GET-MASTER-ADDR-BY-NAME reply names s.
func equalAddr(reply any, s *Server) bool {
	hp, _ := reply.([]any)
	return len(hp) == 2 && hp[0] == "127.0.0.1" && hp[1] == strconv.Itoa(s.port)
}

// MasterName is the name the sentinel knows the master by.
func (s *Sentinel) MasterName() string { return sentinelMasterName }

// SentinelAddrs are the sentinels' addresses (one here).
func (s *Sentinel) SentinelAddrs() []string { return []string{s.sentinel.Addr()} }

// Master is the monitored master.
func (s *Sentinel) Master() *Server { return s.master }
