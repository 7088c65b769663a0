package cache

import "sync/atomic"

// Counters is an Observer that counts cache events. It is what tests read
// and what the metrics exporter will read; it holds no labels beyond the
// two fixed tiers.
type Counters struct {
	localHits, localMisses atomic.Int64
	redisHits, redisMisses atomic.Int64
	errors, evictions      atomic.Int64
	circuitOpen            atomic.Bool
}

// CounterSnapshot is a copy of the counts at one moment.
type CounterSnapshot struct {
	LocalHits, LocalMisses int64
	RedisHits, RedisMisses int64
	Errors, Evictions      int64
	CircuitOpen            bool
}

// Lookup implements Observer.
func (c *Counters) Lookup(tier string, hit bool) {
	switch {
	case tier == "local" && hit:
		c.localHits.Add(1)
	case tier == "local":
		c.localMisses.Add(1)
	case hit:
		c.redisHits.Add(1)
	default:
		c.redisMisses.Add(1)
	}
}

// Error implements Observer.
func (c *Counters) Error(string, string) { c.errors.Add(1) }

// Evicted implements Observer.
func (c *Counters) Evicted(string) { c.evictions.Add(1) }

// CircuitOpen implements Observer.
func (c *Counters) CircuitOpen(open bool) { c.circuitOpen.Store(open) }

// Snapshot returns the current counts.
func (c *Counters) Snapshot() CounterSnapshot {
	return CounterSnapshot{
		LocalHits: c.localHits.Load(), LocalMisses: c.localMisses.Load(),
		RedisHits: c.redisHits.Load(), RedisMisses: c.redisMisses.Load(),
		Errors: c.errors.Load(), Evictions: c.evictions.Load(),
		CircuitOpen: c.circuitOpen.Load(),
	}
}
