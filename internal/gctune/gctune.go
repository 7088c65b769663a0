// Package gctune gives the Go garbage collector a minimum headroom: the
// heap may grow by at least a fixed number of bytes past the live data
// before the next collection starts.
//
// With GOGC's default of 100 the collector starts a cycle once the heap
// has grown by the live data (plus the stacks and globals it scans). The
// gateway's live heap is small (its largest cache lives outside the Go
// heap), so at tens of thousands of Checks per second it would collect
// many times a second: the marking itself, and every idle goroutine's stack
// shrunk at each cycle and grown again on its next request. A floor under
// the headroom makes collections rare while the live heap is small, and
// changes nothing once it is large (GOGC's own headroom is then the
// larger).
//
// How: after every collection the GC percentage is set to the smallest
// whose heap goal is the live heap plus the headroom (Target), never below
// base, the percentage in force when Start is called (100, or $GOGC). A
// process with GOGC=off is left alone. GOMEMLIMIT still applies: near the
// limit the runtime collects whatever the percentage says.
package gctune

import (
	"math"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
)

// MaxPercent bounds the percentage the tuner sets (a live heap of a few
// hundred kilobytes would otherwise ask for an absurd figure).
const MaxPercent = 100_000

const (
	mLive    = "/gc/heap/live:bytes"
	mStacks  = "/gc/scan/stack:bytes"
	mGlobals = "/gc/scan/globals:bytes"
	mPercent = "/gc/gogc:percent"
)

// Tuner keeps the headroom. Its zero value is not usable: see Start.
type Tuner struct {
	headroom uint64
	base     int

	mu      sync.Mutex
	stopped bool
	last    int
	samples []metrics.Sample
}

// Start sets the GC percentage for the current live heap and again after
// every collection until Stop. A headroom of 0, or GOGC=off, makes it a
// no-op (the returned Tuner's Stop still works).
func Start(headroom uint64) *Tuner {
	t := &Tuner{headroom: headroom, base: Percent(), samples: []metrics.Sample{{Name: mLive}, {Name: mStacks}, {Name: mGlobals}}}
	t.last = t.base
	if headroom == 0 || t.base < 0 {
		t.stopped = true
		return t
	}
	t.adjust()
	t.arm()
	return t
}

// Stop restores the percentage in force at Start and stops adjusting it.
func (t *Tuner) Stop() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		return
	}
	t.stopped = true
	if t.last != t.base {
		debug.SetGCPercent(t.base)
	}
}

// Percent is the GC percentage in force (-1: GOGC=off).
func Percent() int {
	s := []metrics.Sample{{Name: mPercent}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 100
	}
	v := s[0].Value.Uint64()
	if v > math.MaxInt32 { // the runtime reports off as its internal -1
		return -1
	}
	return int(v)
}

// sentinel is collected in the first cycle after it is made; its cleanup
// is how the tuner hears of each cycle. It holds a pointer so that it is
// never packed into a tiny block with other objects, which could delay
// the cleanup indefinitely.
type sentinel struct{ _ *byte }

// arm registers the next cycle's callback.
func (t *Tuner) arm() {
	runtime.AddCleanup(new(sentinel), func(t *Tuner) {
		if t.adjust() {
			t.arm()
		}
	}, t)
}

// adjust sets the percentage for the live heap the last cycle marked; it
// reports false once the tuner is stopped.
func (t *Tuner) adjust() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		return false
	}
	metrics.Read(t.samples)
	var roots uint64
	for _, s := range t.samples {
		if s.Value.Kind() == metrics.KindUint64 {
			roots += s.Value.Uint64()
		}
	}
	var live uint64
	if v := t.samples[0].Value; v.Kind() == metrics.KindUint64 {
		live = v.Uint64()
	}
	p := Target(t.base, t.headroom, live, roots)
	if p != t.last {
		debug.SetGCPercent(p)
		t.last = p
	}
	return true
}

// runtimeHeapMinimum is the Go runtime's smallest heap goal at GOGC=100
// (its defaultHeapMinimum); the minimum scales with the percentage, so at
// a high percentage it, not the live heap, sets the goal.
const runtimeHeapMinimum = 4 << 20

// Target is the smallest percentage whose heap goal gives at least
// headroom bytes past the live heap, never less than base, at most
// MaxPercent. roots is what the percentage multiplies: the live heap plus
// the stacks and globals scanned. The runtime's goal is the larger of
// live + roots × p/100 and runtimeHeapMinimum × p/100.
func Target(base int, headroom, live, roots uint64) int {
	if headroom > math.MaxUint64/200 || live > math.MaxUint64/200 {
		return max(base, MaxPercent)
	}
	roots = max(roots, 1)
	byRoots := (headroom*100 + roots - 1) / roots // rounded up: the goal must reach live + headroom
	byMinimum := ((live+headroom)*100 + runtimeHeapMinimum - 1) / runtimeHeapMinimum
	return max(base, int(min(byRoots, byMinimum, MaxPercent)))
}
