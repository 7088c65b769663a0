package oauthflow

import (
	"math"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"
)

// RateLimit is a token bucket: Burst requests at once, refilled at PerSecond requests a
// second. A zero PerSecond disables the limit.
type RateLimit struct {
	PerSecond float64
	Burst     int
}

// Defaults of [RegistrationOptions]: a client registers once, so a few a minute per address
// and a few a second overall are plenty, and an attacker fills the MaxClients slots no faster
// than Global allows.
var (
	DefaultRegistrationPerAddress = RateLimit{PerSecond: 0.2, Burst: 20}
	DefaultRegistrationGlobal     = RateLimit{PerSecond: 5, Burst: 100}
)

// defaultMaxTrackedAddresses bounds how many addresses have a bucket of their own; beyond
// it, new addresses share one bucket (overflowKey) until idle buckets are dropped.
const defaultMaxTrackedAddresses = 10000

const overflowKey = "overflow"

// limiter holds a global bucket and one per client address, in process: each replica limits
// what reaches it. It is safe for concurrent use.
type limiter struct {
	now        func() time.Time
	global     RateLimit
	perAddress RateLimit
	maxTracked int

	mu        sync.Mutex
	globalB   bucket
	addresses map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newLimiter(global, perAddress RateLimit, maxTracked int, now func() time.Time) *limiter {
	return &limiter{
		now: now, global: global, perAddress: perAddress, maxTracked: maxTracked,
		globalB:   bucket{tokens: float64(global.Burst)},
		addresses: make(map[string]*bucket),
	}
}

// refill brings b up to now under rate l.
func (b *bucket) refill(l RateLimit, now time.Time) {
	if b.last.IsZero() {
		b.tokens, b.last = float64(l.Burst), now
		return
	}
	if d := now.Sub(b.last); d > 0 {
		b.tokens = math.Min(float64(l.Burst), b.tokens+d.Seconds()*l.PerSecond)
		b.last = now
	}
}

// wait is how long until b holds a whole token under rate l.
func (b *bucket) wait(l RateLimit) time.Duration {
	if b.tokens >= 1 {
		return 0
	}
	return time.Duration((1 - b.tokens) / l.PerSecond * float64(time.Second))
}

// allow takes one token from the address's bucket and one from the global bucket, or none:
// a request refused by either costs the other nothing. When refused, it returns how long
// until both could allow a request.
func (l *limiter) allow(addr string) (bool, time.Duration) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	var ab *bucket
	if l.perAddress.PerSecond > 0 {
		ab = l.bucketFor(addr, now)
		ab.refill(l.perAddress, now)
	}
	if l.global.PerSecond > 0 {
		l.globalB.refill(l.global, now)
	}
	var wait time.Duration
	if ab != nil {
		wait = ab.wait(l.perAddress)
	}
	if l.global.PerSecond > 0 {
		wait = max(wait, l.globalB.wait(l.global))
	}
	if wait > 0 {
		return false, wait
	}
	if ab != nil {
		ab.tokens--
	}
	if l.global.PerSecond > 0 {
		l.globalB.tokens--
	}
	return true, 0
}

// bucketFor returns addr's bucket, making one if there is room; otherwise the shared
// overflow bucket. The caller holds the lock.
func (l *limiter) bucketFor(addr string, now time.Time) *bucket {
	if b := l.addresses[addr]; b != nil {
		return b
	}
	if len(l.addresses) >= l.maxTracked {
		// A bucket that has refilled completely remembers nothing: drop those.
		for k, b := range l.addresses {
			if k == overflowKey {
				continue
			}
			b.refill(l.perAddress, now)
			if b.tokens >= float64(l.perAddress.Burst) {
				delete(l.addresses, k)
			}
		}
		if len(l.addresses) >= l.maxTracked {
			addr = overflowKey
			if b := l.addresses[addr]; b != nil {
				return b
			}
		}
	}
	b := &bucket{}
	l.addresses[addr] = b
	return b
}

// retryAfterSeconds is a Retry-After value for wait: whole seconds, rounded up, at least 1.
func retryAfterSeconds(wait time.Duration) int {
	return max(1, int(math.Ceil(wait.Seconds())))
}

// RemoteAddressKey is the default client address of a rate-limited request: the IP address of
// r.RemoteAddr, IPv6 addresses cut to their /64 (one subscriber usually has a whole /64).
// Behind a proxy every request has the proxy's address: configure ClientAddress to read the
// address the proxy forwards.
func RemoteAddressKey(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	return AddressKey(host)
}

// AddressKey is the rate-limit key of an IP address written as text: the address itself for
// IPv4 (an IPv4-mapped IPv6 address counts as its IPv4 address), its /64 for IPv6. Anything
// that is not an address is its own key.
func AddressKey(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	a = a.Unmap().WithZone("")
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}
