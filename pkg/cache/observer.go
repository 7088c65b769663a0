package cache

// Observer receives cache events for metrics. Tier names: "local", "redis".
//
// Each event is reported once, by the layer that knows it: a lookup by the store the caller
// looks up through (the tiered store), since only it knows whether a miss in one tier became a
// hit in the next; an error, an eviction or a circuit change by the tier store it happened in.
// So [Memory] reports only Evicted, and [Redis] only Error and CircuitOpen.
//
// Methods may be called concurrently, and Evicted is called while the in-process store holds a
// lock: an implementation must be quick (increment a counter) and must not call the cache.
type Observer interface {
	// Lookup reports a lookup in tier and whether it was a hit.
	Lookup(tier string, hit bool)
	// Error reports a failed operation. op is one of get, set, add, delete, publish,
	// subscribe, decode.
	Error(tier, op string)
	// Evicted reports an entry dropped to stay within the size bound, not because it expired.
	Evicted(tier string)
	// CircuitOpen reports that the shared tier's circuit breaker opened (true) or closed again
	// (false).
	CircuitOpen(open bool)
}

// NopObserver is an [Observer] that ignores every event.
type NopObserver struct{}

// Lookup implements [Observer].
func (NopObserver) Lookup(string, bool) {}

// Error implements [Observer].
func (NopObserver) Error(string, string) {}

// Evicted implements [Observer].
func (NopObserver) Evicted(string) {}

// CircuitOpen implements [Observer].
func (NopObserver) CircuitOpen(bool) {}
