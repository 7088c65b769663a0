package dpop

import (
	"strconv"
	"sync"
	"testing"
)

// An attacker sends headers without end, every one distinct: the cache
// never holds more than its bound, at any moment, with writers racing;
// the newest entries are those kept, each under its own segment.
func TestHeaderCacheBound(t *testing.T) {
	t.Parallel()
	const total, writers = 100_000, 4
	c := newHeaderCache(DefaultHeaderCacheEntries)
	entry := func(seg string) *cachedHeader { return &cachedHeader{jkt: seg} }
	var wg sync.WaitGroup
	var over sync.Once
	overBy := 0
	for w := range writers {
		wg.Go(func() {
			for i := w; i < total; i += writers {
				seg := "seg-" + strconv.Itoa(i)
				c.add(seg, entry(seg))
				if n := c.size(); n > DefaultHeaderCacheEntries {
					over.Do(func() { overBy = n })
				}
			}
		})
	}
	wg.Wait()
	if overBy != 0 {
		t.Fatalf("%d entries held, bound %d", overBy, DefaultHeaderCacheEntries)
	}
	if n := c.size(); n != DefaultHeaderCacheEntries {
		t.Fatalf("%d entries after %d distinct headers, want %d", n, total, DefaultHeaderCacheEntries)
	}
	inMap := 0
	c.m.Range(func(k, v any) bool {
		inMap++
		if v.(*cachedHeader).jkt != k.(string) {
			t.Errorf("segment %q holds the entry of %q", k, v.(*cachedHeader).jkt)
		}
		return true
	})
	if inMap != DefaultHeaderCacheEntries {
		t.Fatalf("the map holds %d entries, the ring %d", inMap, c.size())
	}

	// One writer: exactly the last bound-many are kept, the others gone.
	c = newHeaderCache(DefaultHeaderCacheEntries)
	for i := range total {
		seg := "seg-" + strconv.Itoa(i)
		c.add(seg, entry(seg))
	}
	for i := range total {
		h, ok := c.get("seg-" + strconv.Itoa(i))
		if want := i >= total-DefaultHeaderCacheEntries; ok != want || (ok && h.jkt != "seg-"+strconv.Itoa(i)) {
			t.Fatalf("seg-%d: found %v, want %v", i, ok, want)
		}
	}
}

// Adding a header already kept changes nothing: two proofs of one new key
// verified at once each try to add it.
func TestHeaderCacheAddTwice(t *testing.T) {
	t.Parallel()
	c := newHeaderCache(2)
	first, second := &cachedHeader{jkt: "first"}, &cachedHeader{jkt: "second"}
	c.add("a", first)
	c.add("a", second)
	if h, ok := c.get("a"); !ok || h != first || c.size() != 1 {
		t.Fatalf("get(a) = %v, %v; size %d", h, ok, c.size())
	}
}
