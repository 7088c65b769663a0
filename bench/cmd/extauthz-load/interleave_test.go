package main

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
)

// recordingServer allows every Check and counts each authorization
// header it was sent.
type recordingServer struct {
	authv3.UnimplementedAuthorizationServer
	mu   sync.Mutex
	seen map[string]int
}

func (s *recordingServer) Check(_ context.Context, r *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	s.mu.Lock()
	s.seen[r.GetAttributes().GetRequest().GetHttp().GetHeaders()["authorization"]]++
	s.mu.Unlock()
	return allowed, nil
}

func startRecording(t *testing.T) (*recordingServer, *grpc.ClientConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rs := &recordingServer{seen: map[string]int{}}
	gs := grpc.NewServer()
	authv3.RegisterAuthorizationServer(gs, rs)
	go func() { _ = gs.Serve(ln) }()
	t.Cleanup(gs.Stop)
	conn, err := dial(ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return rs, conn
}

// distinctRequests are n CheckRequests, each with a token of its own
// ("token-<i>").
func distinctRequests(t *testing.T, n int) [][]byte {
	t.Helper()
	reqs := make([][]byte, n)
	for i := range reqs {
		req, err := buildRequest(fmt.Sprintf("token-%d", i))
		if err != nil {
			t.Fatal(err)
		}
		reqs[i] = req
	}
	return reqs
}

// TestInterleavedDistinct: a distinct pattern measured in slices sends
// each request at most once over the whole window — a slice that ends by
// time leaves unsent requests in its workers' chunks, and the next slice
// must start past them, not resend them (a full-* token sent twice would
// be a cache hit counted as a verification). The reference, which ran
// beside it, is filed too, with its slices counted.
func TestInterleavedDistinct(t *testing.T) {
	a, connA := startRecording(t)
	b, connB := startRecording(t)
	reqs := distinctRequests(t, 200_000)
	h := &harness{o: Options{Duration: 400 * time.Millisecond, Slice: 50 * time.Millisecond, MaxRequests: 1_000_000}, clk: 100}
	sc := &Scenario{Name: "test"}
	betweens := 0
	ra, rb, err := h.measureInterleaved(context.Background(),
		measurement{sc: sc, target: "a", conc: 8, srv: &server{}, conn: connA, pat: pattern{reqs: reqs, distinct: true}},
		measurement{sc: sc, target: "b", conc: 8, srv: &server{}, conn: connB, pat: pattern{reqs: reqs[:1]}},
		func() error { betweens++; return nil })
	if err != nil {
		t.Fatal(err)
	}
	for tok, n := range a.seen {
		if n != 1 {
			t.Fatalf("%q sent %d times", tok, n)
		}
	}
	if len(a.seen) != ra.Requests || ra.Requests == 0 {
		t.Errorf("a: %d distinct requests seen, %d counted", len(a.seen), ra.Requests)
	}
	if ra.Stop != "duration" || ra.Slices != 8 || rb.Slices != 8 {
		t.Errorf("a ended by %q after %d slices, b after %d; want duration, 8 and 8", ra.Stop, ra.Slices, rb.Slices)
	}
	if n := b.seen["Bearer token-0"]; n != rb.Requests || n == 0 {
		t.Errorf("b: %d requests seen, %d counted", n, rb.Requests)
	}
	if betweens < 1 || betweens > maxBetween {
		t.Errorf("between ran %d times, want 1..%d", betweens, maxBetween)
	}
	for _, r := range []*Result{ra, rb} {
		if r.Elapsed < 350*time.Millisecond || r.Elapsed > 600*time.Millisecond {
			t.Errorf("measured for %v, want about 400ms", r.Elapsed)
		}
	}
	if len(sc.series("a").Runs[8]) != 1 || len(sc.series("b").Runs[8]) != 1 {
		t.Error("a result not filed")
	}
}

// A distinct stream that runs out within the window is sent almost whole:
// a slice's end passes over at most sliceChunk requests per worker.
func TestInterleavedRunsOut(t *testing.T) {
	a, connA := startRecording(t)
	_, connB := startRecording(t)
	reqs := distinctRequests(t, 40_000)
	h := &harness{o: Options{Duration: 20 * time.Second, Slice: 100 * time.Millisecond, MaxRequests: 1_000_000}, clk: 100}
	sc := &Scenario{Name: "test"}
	ra, rb, err := h.measureInterleaved(context.Background(),
		measurement{sc: sc, target: "a", conc: 8, srv: &server{}, conn: connA, pat: pattern{reqs: reqs, distinct: true}},
		measurement{sc: sc, target: "b", conc: 8, srv: &server{}, conn: connB, pat: pattern{reqs: reqs[:1]}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ra.Stop != "tokens ran out" || rb.Requests == 0 {
		t.Fatalf("a ended by %q, b sent %d", ra.Stop, rb.Requests)
	}
	t.Logf("%d of %d sent in %d slices", len(a.seen), len(reqs), ra.Slices)
	if lost := len(reqs) - len(a.seen); lost > 8*sliceChunk*ra.Slices || len(a.seen) != ra.Requests {
		t.Errorf("%d of %d requests sent (%d counted) in %d slices", len(a.seen), len(reqs), ra.Requests, ra.Slices)
	}
}
