package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/extauthz/extauthz/internal/testkit"
	"github.com/extauthz/extauthz/pkg/devissuer"
)

// heldOutput is a process's stderr that can stop taking lines, as a pipe
// whose reader has stalled does, until released.
type heldOutput struct {
	testkit.LockedBuffer
	mu     sync.Mutex
	gate   chan struct{} // nil: open
	writes int
}

func (h *heldOutput) Write(p []byte) (int, error) {
	h.mu.Lock()
	gate := h.gate
	h.writes++
	h.mu.Unlock()
	if gate != nil {
		<-gate
	}
	return h.LockedBuffer.Write(p)
}

func (h *heldOutput) hold() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.gate = make(chan struct{})
}

func (h *heldOutput) release() {
	h.mu.Lock()
	defer h.mu.Unlock()
	close(h.gate)
	h.gate = nil
}

// TestAuditLinesSurviveGracefulStop: serve writes its log through a
// buffer, off the decisions' path: with stderr stalled, decisions go on,
// their audit lines held; when serve stops, every one of them has reached
// stderr, whole and once, before it returns.
func TestAuditLinesSurviveGracefulStop(t *testing.T) {
	iss, _ := startIssuer(t, obsResource)
	path := filepath.Join(t.TempDir(), "extauthz.yaml")
	if err := os.WriteFile(path, []byte(strings.Replace(obsConfig(iss, "mcp:tools"), "{level: debug}", "{level: info}", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	out := &heldOutput{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int, 1)
	go func() { done <- run(ctx, []string{"serve", "--config", path}, io.Discard, out) }()
	s := &served{}
	waitFor(t, "the serving log line", func() bool {
		for _, line := range strings.Split(out.String(), "\n") {
			var l map[string]any
			if json.Unmarshal([]byte(line), &l) == nil && l["msg"] == "serving" {
				s.grpc, s.http, s.admin = l["grpc"].(string), l["http"].(string), l["admin"].(string)
				return true
			}
		}
		return false
	})
	waitFor(t, "readiness", func() bool {
		resp, err := http.Get("http://" + s.http + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	conn, err := grpc.NewClient(s.grpc, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	s.client = authv3.NewAuthorizationClient(conn)
	tok, err := iss.Mint(devissuer.Token{Subject: "alice", ClientID: "cli", Scopes: []string{"mcp:tools"}})
	if err != nil {
		t.Fatal(err)
	}

	out.hold()
	const allows, denials, workers = 300, 100, 8
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < allows+denials; i += workers {
				if i < allows {
					if st := s.check(t, [2]string{"authorization", "Bearer " + tok}); st != http.StatusOK {
						t.Errorf("allowed request: %d", st)
					}
				} else if st := s.check(t); st != http.StatusUnauthorized {
					t.Errorf("request without a token: %d", st)
				}
			}
		})
	}
	wg.Wait()
	mf := s.scrape(t)
	if got := mustValue(t, mf, "extauthz_log_lines_dropped_total", nil); got != 0 {
		t.Errorf("extauthz_log_lines_dropped_total = %v, want 0", got)
	}
	if got := mustValue(t, mf, "extauthz_check_decisions_total", nil); got != allows+denials {
		t.Fatalf("%v decisions counted, want %d", got, allows+denials)
	}

	cancel()
	// Released once serve is stopping: its lines are then still held,
	// and only the flush on the way out writes them.
	time.Sleep(200 * time.Millisecond)
	out.release()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("serve exited %d", code)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("serve did not stop")
	}
	logs := out.String()
	if !strings.HasSuffix(logs, "\n") {
		t.Fatalf("the log ends inside a line: %q", logs[max(0, len(logs)-200):])
	}
	var gotAllows, gotDenials int
	for _, line := range strings.Split(strings.TrimSuffix(logs, "\n"), "\n") {
		var l map[string]any
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatalf("not a whole JSON line: %q", line)
		}
		if l["log"] != "audit" {
			continue
		}
		switch l["decision"] {
		case "allow":
			gotAllows++
		case "deny":
			gotDenials++
		}
	}
	if gotAllows != allows || gotDenials != denials {
		t.Errorf("audit lines after the stop: %d allows, %d denials; want %d and %d", gotAllows, gotDenials, allows, denials)
	}
	// The lines were gathered: far fewer writes than lines.
	if out.writes >= (allows+denials)/2 {
		t.Errorf("%d writes for more than %d lines", out.writes, allows+denials)
	}
}
