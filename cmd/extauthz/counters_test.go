package main

import "sync/atomic"

// counters is a cache.Observer that counts cache events, for the tests of
// the shared tier to read; it holds no labels beyond the two fixed tiers.
type counters struct {
	localHits, localMisses atomic.Int64
	redisHits, redisMisses atomic.Int64
	errors, evictions      atomic.Int64
	circuitOpen            atomic.Bool
}

// counterSnapshot is a copy of the counts at one moment.
type counterSnapshot struct {
	LocalHits, LocalMisses int64
	RedisHits, RedisMisses int64
	Errors, Evictions      int64
	CircuitOpen            bool
}

// Lookup implements cache.Observer.
func (c *counters) Lookup(tier string, hit bool) {
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

// Error implements cache.Observer.
func (c *counters) Error(string, string) { c.errors.Add(1) }

// Evicted implements cache.Observer.
func (c *counters) Evicted(string) { c.evictions.Add(1) }

// CircuitOpen implements cache.Observer.
func (c *counters) CircuitOpen(open bool) { c.circuitOpen.Store(open) }

// snapshot returns the current counts.
func (c *counters) snapshot() counterSnapshot {
	return counterSnapshot{
		LocalHits: c.localHits.Load(), LocalMisses: c.localMisses.Load(),
		RedisHits: c.redisHits.Load(), RedisMisses: c.redisMisses.Load(),
		Errors: c.errors.Load(), Evictions: c.evictions.Load(),
		CircuitOpen: c.circuitOpen.Load(),
	}
}
