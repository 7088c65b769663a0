package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// selfPID is this process, whose CPU is the client's.
var selfPID = os.Getpid()

// checkMethod is the full gRPC method name Envoy calls.
const checkMethod = "/envoy.service.auth.v3.Authorization/Check"

// rawRequest is a CheckRequest already marshalled; rawCodec sends its bytes
// as they are, reads an *answer as answer.decode says, and decodes anything
// else with the ordinary proto codec.
type rawRequest struct{ b []byte }

type rawCodec struct{ proto encoding.CodecV2 }

func (c rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	if r, ok := v.(*rawRequest); ok {
		return mem.BufferSlice{mem.SliceBuffer(r.b)}, nil
	}
	return c.proto.Marshal(v)
}

func (c rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	if a, ok := v.(*answer); ok {
		if len(data) == 1 {
			return a.decode(data[0].ReadOnlyData())
		}
		b := data.Materialize()
		return a.decode(b)
	}
	return c.proto.Unmarshal(data, v)
}

func (rawCodec) Name() string { return "proto" }

// answer is a CheckResponse as the load loop reads it.
//
// By default (messages false) the client reads an answer the way a proxy
// uses it: it walks the framing of every top-level field (a malformed
// answer is an error) and reads status.code, without building Go messages.
// A CheckResponse that carries dynamic metadata is a google.protobuf.Struct
// of maps and lists; decoding one into Go messages costs the client about
// 8 µs and 80 allocations per Check, a cost of the Go protobuf runtime in
// this tool and not of the server measured, which on two shared cores would
// otherwise be charged against the server that sends the richer answer.
// An answer that is not OK is decoded in full for the error report.
//
// With messages true (--client-decode messages) every answer is decoded
// into *authv3.CheckResponse, as an ordinary grpc-go client would.
type answer struct {
	messages bool
	// whole: decode the next answer in full even if it allows (a sampled
	// answer that pattern.verify checks).
	whole bool
	code  int32
	full  *authv3.CheckResponse // the whole answer, when decoded
	msg   *authv3.CheckResponse // reused by decodeAll
}

// CheckResponse field numbers, and google.rpc.Status's code.
const (
	checkResponseStatus = 1
	statusCode          = 1
)

func (a *answer) decode(b []byte) error {
	a.code, a.full = 0, nil
	if a.messages || a.whole {
		return a.decodeAll(b)
	}
	// Every occurrence of status counts, and within them the last code
	// wins, as in a protobuf merge.
	err := eachField(b, func(num protowire.Number, typ protowire.Type, val []byte) error {
		if num != checkResponseStatus || typ != protowire.BytesType {
			return nil
		}
		st, _ := protowire.ConsumeBytes(val) // framing checked by eachField
		return eachField(st, func(num protowire.Number, typ protowire.Type, val []byte) error {
			if num == statusCode && typ == protowire.VarintType {
				v, _ := protowire.ConsumeVarint(val)
				a.code = int32(v) //nolint:gosec // int32 on the wire, sign-extended to 64 bits
			}
			return nil
		})
	})
	if err != nil {
		return err
	}
	if a.code != 0 {
		return a.decodeAll(b)
	}
	return nil
}

// eachField walks message b, checking the framing of every field, and
// calls f with each field's number, wire type and encoded value.
func eachField(b []byte, f func(protowire.Number, protowire.Type, []byte) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
			return protowire.ParseError(n)
		}
		if err := f(num, typ, b[:n]); err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

func (a *answer) decodeAll(b []byte) error {
	if a.msg == nil {
		a.msg = new(authv3.CheckResponse)
	}
	if err := proto.Unmarshal(b, a.msg); err != nil {
		return err
	}
	a.full, a.code = a.msg, a.msg.GetStatus().GetCode()
	return nil
}

// ok reports whether the answer allowed the request.
func (a *answer) ok() bool { return a.code == 0 }

// String describes a denial for the error report.
func (a *answer) String() string {
	if a.full == nil {
		return fmt.Sprintf("status code %d", a.code)
	}
	return fmt.Sprintf("status code %d, http %d: %s", a.code,
		a.full.GetDeniedResponse().GetStatus().GetCode(), a.full.GetStatus().GetMessage())
}

var forceRaw = grpc.ForceCodecV2(rawCodec{proto: encoding.GetCodecV2("proto")})

// pattern says which request each Check sends.
type pattern struct {
	reqs [][]byte
	// distinct: request i of the run is reqs[i], each used once, and the run
	// ends when they run out. Otherwise each Check picks one uniformly at
	// random (one request: always that one).
	distinct bool
	// verify, when set, checks more of an allowed answer than its status:
	// each caller's first answer of a run and every verifyEvery-th after
	// it are decoded in full and given to it; an error counts as the
	// Check's.
	verify func(*authv3.CheckResponse) error
	// skip, when set, says request i is not to be sent any more: a Check
	// picking it at random picks again (at least one request must stay).
	skip func(i int) bool
	// expected, when set, says a refusal of request i is what the run
	// expects (a token being revoked while the Check was in flight): it is
	// counted apart, not as an error.
	expected func(i int, a *answer) bool
	// chunk, when set, is how many requests a worker claims at a time
	// instead of chunkSize's: a distinct pattern sent in slices
	// (measureInterleaved) passes over what its workers claimed and did
	// not send when a slice ends, so it claims few at a time.
	chunk int
}

// verifyEvery is how often pattern.verify sees an answer: rarely enough
// that decoding it in full (several µs of the client's CPU) does not
// weigh on the run, often enough that every run checks hundreds.
const verifyEvery = 256

// load is one measured run: concurrency goroutines on one connection doing
// unary Checks back to back until the duration, maxRequests or (distinct)
// the requests run out, whichever comes first.
type load struct {
	conn        *grpc.ClientConn
	concurrency int
	duration    time.Duration
	maxRequests int
	pat         pattern
	// decodeMessages: decode every answer into Go messages (see answer).
	decodeMessages bool
	lat            []time.Duration // preallocated, len ≥ maxRequests; reused between runs
	// onStart and onEnd run just as the workers are released and just after
	// the last one finished: the server's CPU is read there.
	onStart, onEnd func()
	// tick, when set, is told every 30 s how many Checks have been started.
	tick func(started int)
	// stop, when set, ends the run once closed, for stopReason.
	stop       <-chan struct{}
	stopReason string
}

// loadResult is what the client saw.
type loadResult struct {
	requests  int
	elapsed   time.Duration
	verified  int // answers pattern.verify accepted
	expected  int // refusals pattern.expected expected
	errors    int
	errSample []string
	stop      string          // why the run ended
	sorted    []time.Duration // every latency, ascending (a view of load.lat)
	// claimed is how many of a distinct pattern's requests the run used
	// or passed over: the next run on the rest starts there. Workers claim
	// requests in chunks, and a run that ends by time leaves the end of
	// some unsent, so it can be more than requests; a request below it is
	// never to be sent again.
	claimed int
	// slices is how many runs this result adds up (measureInterleaved's
	// slices); 0 for one run.
	slices    int
	clientCPU uint64 // this process's CPU ticks during the run
}

// chunkSize is how many request slots a worker claims at a time: its own
// run of the shared, preallocated latency array, so that workers never
// write next to each other.
func chunkSize(limit, concurrency int) int {
	c := limit / (concurrency * 16)
	return max(1, min(c, 1024))
}

func (l *load) run(ctx context.Context) loadResult {
	limit := l.maxRequests
	stopTokens := false
	if l.pat.distinct && len(l.pat.reqs) < limit {
		limit, stopTokens = len(l.pat.reqs), true
	}
	if len(l.lat) < limit {
		l.lat = make([]time.Duration, limit)
	}
	chunk := chunkSize(limit, l.concurrency)
	if l.pat.chunk > 0 {
		chunk = l.pat.chunk
	}

	// A call outlives the run's end by at most this, then counts as an
	// error. Not derived from ctx: an interrupted run lets the calls in
	// flight finish rather than counting them as failed.
	callCtx, cancel := context.WithTimeout(context.Background(), l.duration+30*time.Second)
	defer cancel()

	type span struct{ start, n int }
	var (
		next      atomic.Int64
		timedOut  atomic.Bool
		errCount  atomic.Int64
		verified  atomic.Int64
		expected  atomic.Int64
		stopped   atomic.Bool
		mu        sync.Mutex
		spans     []span
		errSample []string
		wg        sync.WaitGroup
		gate      = make(chan struct{})
	)
	noteErr := func(msg string) {
		errCount.Add(1)
		mu.Lock()
		if len(errSample) < 5 && !slices.Contains(errSample, msg) {
			errSample = append(errSample, msg)
		}
		mu.Unlock()
	}
	var deadline time.Time
	for w := range l.concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w)+1, uint64(time.Now().UnixNano())))
			resp := &answer{messages: l.decodeMessages}
			var mine []span
			pos, end := 0, 0
			calls := 0 // this caller's
			defer func() {
				if end > 0 {
					mine[len(mine)-1].n = pos - mine[len(mine)-1].start
				}
				mu.Lock()
				spans = append(spans, mine...)
				mu.Unlock()
			}()
			<-gate
			for {
				if pos == end {
					if end > 0 {
						mine[len(mine)-1].n = pos - mine[len(mine)-1].start
					}
					s := int(next.Add(int64(chunk)) - int64(chunk))
					if s >= limit {
						return
					}
					pos, end = s, min(s+chunk, limit)
					mine = append(mine, span{start: s})
				}
				var idx int
				switch {
				case l.pat.distinct:
					idx = pos
				case len(l.pat.reqs) == 1:
				default:
					idx = rng.IntN(len(l.pat.reqs))
					for l.pat.skip != nil && l.pat.skip(idx) {
						idx = rng.IntN(len(l.pat.reqs))
					}
				}
				req := l.pat.reqs[idx]
				sampled := l.pat.verify != nil && calls%verifyEvery == 0
				resp.whole = sampled
				calls++
				t0 := time.Now()
				err := l.conn.Invoke(callCtx, checkMethod, &rawRequest{req}, resp, forceRaw)
				t1 := time.Now()
				l.lat[pos] = t1.Sub(t0)
				pos++
				switch {
				case err != nil:
					noteErr("gRPC error: " + err.Error())
				case !resp.ok():
					if l.pat.expected != nil && l.pat.expected(idx, resp) {
						expected.Add(1)
					} else {
						noteErr("not allowed: " + resp.String())
					}
				case sampled:
					if err := l.pat.verify(resp.full); err != nil {
						noteErr(err.Error())
					} else {
						verified.Add(1)
					}
				}
				if t1.After(deadline) {
					timedOut.Store(true)
					return
				}
				if ctx.Err() != nil {
					return
				}
				if l.stop != nil {
					select {
					case <-l.stop:
						stopped.Store(true)
						return
					default:
					}
				}
			}
		}()
	}
	if l.onStart != nil {
		l.onStart()
	}
	if l.tick != nil {
		stop := make(chan struct{})
		defer close(stop)
		go func() {
			t := time.NewTicker(30 * time.Second)
			defer t.Stop()
			for {
				select {
				case <-stop:
					return
				case <-t.C:
					l.tick(min(int(next.Load()), limit))
				}
			}
		}()
	}
	cpu0, _ := procTimes(selfPID)
	start := time.Now()
	deadline = start.Add(l.duration)
	close(gate)
	wg.Wait()
	elapsed := time.Since(start)
	cpu1, _ := procTimes(selfPID)
	if l.onEnd != nil {
		l.onEnd()
	}

	// Move every worker's filled part of its chunks together.
	sort.Slice(spans, func(i, j int) bool { return spans[i].start < spans[j].start })
	n := 0
	for _, s := range spans {
		n += copy(l.lat[n:], l.lat[s.start:s.start+s.n])
	}
	sorted := l.lat[:n]
	slices.Sort(sorted)

	r := loadResult{requests: n, claimed: min(int(next.Load()), limit), elapsed: elapsed, verified: int(verified.Load()), expected: int(expected.Load()), errors: int(errCount.Load()), errSample: errSample, sorted: sorted, clientCPU: cpu1 - cpu0}
	switch {
	case ctx.Err() != nil && errors.Is(ctx.Err(), context.Canceled):
		r.stop = "interrupted"
	case stopped.Load():
		r.stop = l.stopReason
	case timedOut.Load():
		r.stop = "duration"
	case stopTokens:
		r.stop = "tokens ran out"
	default:
		r.stop = "max-requests"
	}
	return r
}

// percentile is the exact nearest-rank percentile of an ascending slice:
// the smallest value such that at least p per cent of the values are at or
// below it. p is in hundredths of a per cent (9990 is p99.9), so the rank
// is computed in integers and never off by one through rounding.
func percentile(sorted []time.Duration, basisPoints int) time.Duration {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	rank := (basisPoints*n + 9999) / 10000 // ceil(p·n)
	rank = max(1, min(rank, n))
	return sorted[rank-1]
}
