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

// distinctRequests are n (at most 200,000) CheckRequests, each with a
// token of its own ("token-<i>"): the first n of one set built once for
// every test.
func distinctRequests(t *testing.T, n int) [][]byte {
	t.Helper()
	distinct.once.Do(func() {
		distinct.reqs = make([][]byte, 200_000)
		for i := range distinct.reqs {
			if distinct.reqs[i], distinct.err = buildRequest(fmt.Sprintf("token-%d", i)); distinct.err != nil {
				return
			}
		}
	})
	if distinct.err != nil {
		t.Fatal(distinct.err)
	}
	return distinct.reqs[:n:n]
}

var distinct struct {
	once sync.Once
	reqs [][]byte
	err  error
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

// TestInterleavedThree: three servers measured in one window each get as
// many slices and as much time, and each result is filed under its own
// target; the first's distinct stream is still sent once.
func TestInterleavedThree(t *testing.T) {
	a, connA := startRecording(t)
	_, connB := startRecording(t)
	c, connC := startRecording(t)
	reqs := distinctRequests(t, 200_000)
	h := &harness{o: Options{Duration: 400 * time.Millisecond, Slice: 50 * time.Millisecond, MaxRequests: 1_000_000}, clk: 100}
	sc := &Scenario{Name: "test"}
	rs, err := h.measureInterleavedN(context.Background(), []measurement{
		{sc: sc, target: "a", conc: 8, srv: &server{}, conn: connA, pat: pattern{reqs: reqs, distinct: true}},
		{sc: sc, target: "b", conc: 8, srv: &server{}, conn: connB, pat: pattern{reqs: reqs[:1]}},
		{sc: sc, target: "c", conc: 8, srv: &server{}, conn: connC, pat: pattern{reqs: reqs[1:2]}},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for tok, n := range a.seen {
		if n != 1 {
			t.Fatalf("%q sent %d times", tok, n)
		}
	}
	if n := c.seen["Bearer token-1"]; n != rs[2].Requests || n == 0 {
		t.Errorf("c: %d requests seen, %d counted", n, rs[2].Requests)
	}
	for i, r := range rs {
		if r.Slices != 8 || r.Elapsed < 350*time.Millisecond || r.Elapsed > 600*time.Millisecond {
			t.Errorf("part %d: %d slices, %v measured; want 8 and about 400ms", i, r.Slices, r.Elapsed)
		}
	}
	for _, target := range []string{"a", "b", "c"} {
		if len(sc.series(target).Runs[8]) != 1 {
			t.Errorf("%s: not filed", target)
		}
	}
}
