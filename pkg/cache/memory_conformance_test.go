package cache_test

import (
	"testing"

	"github.com/extauthz/extauthz/pkg/cache"
	"github.com/extauthz/extauthz/pkg/cache/cachetest"

	"github.com/extauthz/extauthz/internal/testkit"
)

// *Memory is a Store; checked here rather than in the package so that the package keeps no
// package-level declarations beyond constants and types.
var (
	_ cache.Store[[]byte]     = (*cache.Memory[string, []byte])(nil)
	_ cachetest.Expirer       = (*cache.Memory[string, []byte])(nil)
	_ cachetest.Adder         = (*cache.Memory[string, []byte])(nil)
	_ cache.LocalTier[[]byte] = (*cache.Memory[cache.Key, []byte])(nil)
)

func TestMemoryConformance(t *testing.T) {
	cachetest.Run(t, func(t *testing.T) cachetest.Harness {
		t.Parallel()
		clock := testkit.NewClockAt(cache.ClockStart)
		return cachetest.Harness{
			Store:   cache.NewMemory[string, []byte](cache.MemoryOptions{MaxEntries: 1000, Now: clock.Now}),
			Advance: clock.Advance,
			Now:     clock.Now,
		}
	})
}
