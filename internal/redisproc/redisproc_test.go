package redisproc

import (
	"context"
	"errors"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

func TestStartStop(t *testing.T) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatalf("redis-server is needed: %v", err)
	}
	s, err := Start(context.Background(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	if _, err := Do(s.Addr(), 5*time.Second, "SET", "k", "v"); err != nil {
		t.Fatal(err)
	}
	if v, err := Do(s.Addr(), 5*time.Second, "GET", "k"); err != nil || v != "v" {
		t.Fatalf("GET = %v, %v", v, err)
	}
	info, err := Info(s.Addr(), "stats")
	if err != nil || info["keyspace_hits"] != "1" {
		t.Fatalf("INFO stats keyspace_hits = %q, %v; want 1", info["keyspace_hits"], err)
	}
	pid, addr := s.PID(), s.Addr()
	s.Stop()
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("process %d still exists after Stop: %v", pid, err)
	}
	if _, err := Do(addr, time.Second, "PING"); err == nil {
		t.Fatal("server still answers after Stop")
	}
}

func TestRefusesSharedRedis(t *testing.T) {
	if _, err := Do("127.0.0.1:6379", time.Second, "PING"); err == nil {
		t.Fatal("Do talked to 127.0.0.1:6379")
	}
}

func TestNotInstalled(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	if _, err := Start(context.Background(), Options{}); !errors.Is(err, ErrNotInstalled) {
		t.Fatalf("Start with no redis-server in PATH = %v, want ErrNotInstalled", err)
	}
}
