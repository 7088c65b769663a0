package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// A comparison of two servers measured one after the other reads the
// machine at two moments, and this machine's speed drifts: the same
// server, measured twice a minute apart, has read 20 % apart in CPU per
// Check. measureInterleaved measures the two in one window instead, in
// alternating slices of --slice (a few hundred ms), so that whatever the
// machine does during the window weighs on both alike.
//
// The order is A B B A, repeated: a drift that is linear over a cycle
// weighs on both exactly alike, not only on average. Three or more servers
// go A B C C B A, for the same reason.
//
// A server's CPU is read once before the window and once after it. It is
// idle while the others' slices run, so the difference is the CPU of
// its own slices: no reading at each slice, and none of the 10 ms tick
// rounding that per-slice readings would add up.

// interleaveOrder is which of n measurements each slice of a cycle goes
// to: each in turn, then each again in reverse (A B B A for two, A B C C B
// A for three), so that a drift linear over a cycle weighs on all alike.
func interleaveOrder(n int) []int {
	order := make([]int, 0, 2*n)
	for i := range n {
		order = append(order, i)
	}
	for i := n - 1; i >= 0; i-- {
		order = append(order, i)
	}
	return order
}

// sliceOf is the length of a slice for a measured part of dur: --slice,
// or a quarter of dur when that is shorter, so that every part has at
// least two slices of each.
func (h *harness) sliceOf(dur time.Duration) time.Duration {
	return max(min(h.o.Slice, dur/4), time.Millisecond)
}

// interleavedPart is one of the measurements of an interleaved window
// and what its slices have added up to.
type interleavedPart struct {
	m      *measurement
	r      *Result
	res    loadResult
	lat    []time.Duration // every latency of its slices
	off    int             // a distinct pattern's next request
	r0, r1 reading
	done   bool // its distinct requests ran out, or --max-requests was reached
	prof   chan error
}

// sliceChunk is how many of a distinct pattern's requests a worker claims
// at a time in a slice: a cache line of latencies, so that workers still
// never write next to each other, and a slice's end passes over at most
// this many per worker.
const sliceChunk = 8

// maxBetween bounds how often measureInterleaved runs its between: each
// run lengthens the window (a raw verify is timed for 0.25 s).
const maxBetween = 5

// measureInterleaved warms m, then ref, and measures the two in one window
// of alternating slices (see above), each for m's duration in all.
// between, unless nil, runs after a cycle of slices, up to maxBetween
// times spread over the window, while no server is sent anything (the
// full-* and dpop scenarios time a raw signature check there). The window
// ends early, for both, when either's distinct requests run out. Both
// results are filed, as measure files one.
//
// What measure does beside the load — during, an introspection or token
// endpoint counted — is not done here.
func (h *harness) measureInterleaved(ctx context.Context, m, ref measurement, between func() error) (*Result, *Result, error) {
	rs, err := h.measureInterleavedN(ctx, []measurement{m, ref}, between)
	if rs == nil {
		return nil, nil, err
	}
	return rs[0], rs[1], err
}

// measureInterleavedN is measureInterleaved for any number of
// measurements: each is warmed in turn, then all are measured in one
// window, each for the first one's duration, in the order of
// interleaveOrder.
func (h *harness) measureInterleavedN(ctx context.Context, ms []measurement, between func() error) ([]*Result, error) {
	parts := make([]*interleavedPart, len(ms))
	for i := range ms {
		x := &ms[i]
		if x.during != nil || x.in != nil || x.ex != nil {
			return nil, fmt.Errorf("%s: an interleaved measurement counts no endpoint and runs nothing beside", x.target)
		}
		parts[i] = &interleavedPart{m: x, r: newResult(x.conc)}
	}
	for _, p := range parts {
		if err := h.warm(ctx, p.m, p.r); err != nil {
			return nil, err
		}
	}
	dur := h.measuredDuration(&ms[0])
	slice := h.sliceOf(dur)
	cycles := max(1, int((dur+slice)/(2*slice))) // 2 slices of each per cycle
	order := interleaveOrder(len(parts))
	targets := make([]string, len(ms))
	for i := range ms {
		targets[i] = ms[i].target
	}
	h.progress("%s: %s c=%d: measuring in alternating slices of %v, for up to %v each",
		ms[0].sc.Name, strings.Join(targets[:len(targets)-1], ", ")+" and "+targets[len(targets)-1], ms[0].conc, slice, time.Duration(2*cycles)*slice)
	window := time.Duration(len(order)*cycles)*slice + time.Second // what a profile must span
	if between != nil {
		window += maxBetween * rawVerifyMinCPU // about what each between takes
	}
	for _, p := range parts {
		p.r0.redis(p.m)
		p.prof = h.startProfile(ctx, p.m, window)
		p.r0.take(p.m)
	}
	start := time.Now()
	var stopErr error
	betweens, betweenEvery := 0, max(1, cycles/maxBetween)
run:
	for k := range cycles {
		for _, which := range order {
			p := parts[which]
			p.add(h.drive(ctx, p.m.conn, p.m.conc, slice, h.o.MaxRequests-p.res.requests, p.rest(), nil, nil))
			if ctx.Err() != nil {
				break run
			}
			if p.done {
				break run
			}
		}
		if between != nil && (k+1)%betweenEvery == 0 && betweens < maxBetween {
			betweens++
			if stopErr = between(); stopErr != nil {
				break
			}
		}
	}
	// A window ended early by one part's requests running out can leave
	// the others with less time measured (none, when that happens in the
	// first slice): each makes the difference up, at once.
	var ended time.Duration
	for _, p := range parts {
		if p.done {
			ended = max(ended, p.res.elapsed)
		}
	}
	for _, p := range parts {
		if short := ended - p.res.elapsed; !p.done && short > 0 && stopErr == nil && ctx.Err() == nil {
			p.add(h.drive(ctx, p.m.conn, p.m.conc, short, h.o.MaxRequests-p.res.requests, p.rest(), nil, nil))
		}
	}
	if between != nil && stopErr == nil && betweens == 0 && ctx.Err() == nil {
		stopErr = between() // the window ended before its first cycle did
	}
	took := time.Since(start)
	for _, p := range parts {
		p.r1.take(p.m)
		p.r1.redis(p.m)
	}
	results := make([]*Result, len(parts))
	for i, p := range parts {
		var others []int
		for j, o := range parts {
			if j != i {
				others = append(others, o.m.srv.main, o.m.srv.aux)
			}
		}
		h.endProfile(p.m, p.prof)
		slices.Sort(p.lat)
		p.res.sorted = p.lat
		if p.res.stop == "" {
			p.res.stop = "duration"
		}
		h.file(p.m, p.r, p.res, &p.r0, &p.r1, took, others...)
		results[i] = p.r
	}
	if stopErr == nil {
		stopErr = ctx.Err()
	}
	if errors.Is(stopErr, context.Canceled) {
		stopErr = nil // interrupted: what was measured is filed, as measure does
	}
	return results, stopErr
}

// rest is the part's pattern for its next slice: a distinct pattern's
// requests not yet claimed.
func (p *interleavedPart) rest() pattern {
	pat := p.m.pat
	if pat.distinct {
		pat.reqs = pat.reqs[p.off:]
		pat.chunk = sliceChunk
	}
	return pat
}

// add counts one slice's run into the part.
func (p *interleavedPart) add(res loadResult) {
	p.res.requests += res.requests
	p.res.slices++
	p.res.elapsed += res.elapsed
	p.res.verified += res.verified
	p.res.expected += res.expected
	p.res.errors += res.errors
	p.res.clientCPU += res.clientCPU
	for _, e := range res.errSample {
		if len(p.res.errSample) < 5 && !slices.Contains(p.res.errSample, e) {
			p.res.errSample = append(p.res.errSample, e)
		}
	}
	p.lat = append(p.lat, res.sorted...)
	p.off += res.claimed
	switch res.stop {
	case "duration":
	case "max-requests", "tokens ran out":
		p.done = true
		p.res.stop = res.stop
	default: // interrupted
		p.res.stop = res.stop
	}
}
