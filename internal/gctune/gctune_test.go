package gctune_test

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"testing"

	"github.com/extauthz/extauthz/internal/gctune"
)

func TestTarget(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		base                  int
		headroom, live, roots uint64
		want                  int
	}{
		{100, 32 * mib, 6 * mib, 8 * mib, 400},
		{100, 32 * mib, 60 * mib, 64 * mib, 100}, // the live heap's own headroom is larger
		{200, 32 * mib, 30 * mib, 32 * mib, 200}, // never below $GOGC
		{100, 32 * mib, 10 * mib, 12 * mib, 267}, // rounded up
		{100, 64 * mib, mib / 8, mib / 4, 1604},  // the runtime's heap minimum sets the goal
		{100, 64 * mib, 0, 0, 1600},              // nothing scanned yet
		{100, 1 << 62, 1 << 20, 1 << 20, gctune.MaxPercent},
	} {
		if got := gctune.Target(tc.base, tc.headroom, tc.live, tc.roots); got != tc.want {
			t.Errorf("Target(%d, %d, %d, %d) = %d, want %d", tc.base, tc.headroom, tc.live, tc.roots, got, tc.want)
		}
	}
}

var sink []byte

// churn allocates n bytes of short-lived garbage and reports how many
// collections ran meanwhile.
func churn(n int) uint64 {
	s := []metrics.Sample{{Name: "/gc/cycles/total:gc-cycles"}}
	metrics.Read(s)
	before := s[0].Value.Uint64()
	for range n / (64 << 10) {
		sink = make([]byte, 64<<10)
	}
	sink = nil
	metrics.Read(s)
	return s[0].Value.Uint64() - before
}

// TestHeadroom: with a 64 MiB headroom, churning 512 MiB runs about eight
// collections; without, the small live heap of a test binary makes it run
// many times more. Stop puts the percentage back.
func TestHeadroom(t *testing.T) {
	base := gctune.Percent()
	if base != 100 {
		t.Fatalf("GOGC in force is %d; this test expects the default 100", base)
	}
	runtime.GC()
	untuned := churn(512 << 20)

	tu := gctune.Start(64 << 20)
	if p := gctune.Percent(); p <= 100 {
		t.Errorf("percentage after Start = %d, want above 100 for a small live heap", p)
	}
	// The runtime's own goal: the live heap plus the headroom, not far
	// more (a goal many times the headroom would be a runaway percentage).
	g := []metrics.Sample{{Name: "/gc/heap/goal:bytes"}, {Name: "/gc/heap/live:bytes"}}
	metrics.Read(g)
	goal, live := g[0].Value.Uint64(), g[1].Value.Uint64()
	if goal < live+64<<20 || goal > live+72<<20 {
		t.Errorf("heap goal %d bytes with %d live; want the live heap plus 64 MiB, within 8 MiB", goal, live)
	}
	tuned := churn(512 << 20)
	tu.Stop()
	t.Logf("collections while churning 512 MiB: %d with a 64 MiB headroom, %d without", tuned, untuned)
	if tuned > 16 || tuned*4 > untuned {
		t.Errorf("%d collections with the headroom, %d without: want at most 16, and at most a quarter", tuned, untuned)
	}
	if p := gctune.Percent(); p != base {
		t.Errorf("percentage after Stop = %d, want %d", p, base)
	}
	tu.Stop() // twice is harmless
}

// TestOff: GOGC=off is left alone, and a zero headroom does nothing.
func TestOff(t *testing.T) {
	old := debug.SetGCPercent(-1)
	defer debug.SetGCPercent(old)
	tu := gctune.Start(64 << 20)
	if p := gctune.Percent(); p != -1 {
		t.Errorf("with GOGC=off, percentage after Start = %d", p)
	}
	tu.Stop()
	if p := gctune.Percent(); p != -1 {
		t.Errorf("with GOGC=off, percentage after Stop = %d", p)
	}
	debug.SetGCPercent(old)

	tu = gctune.Start(0)
	if p := gctune.Percent(); p != old {
		t.Errorf("zero headroom: percentage %d, want %d", p, old)
	}
	tu.Stop()
}
