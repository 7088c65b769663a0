package telemetry

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// durationBuckets resolve tens of microseconds (a cache hit) up to the
// seconds a stalled verification may take, in seconds.
var durationBuckets = [...]float64{
	0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005,
	0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
}

// Metrics are the gateway's instruments. Every label is bounded: decision,
// reason, resource (from the config), tier, issuer (from the config),
// result, event. Never a token, subject or path. docs/operating.md lists each
// metric with its labels; the names below gain the exporter's suffixes
// (_total for counters, _seconds for durations).
type Metrics struct {
	decisions     *decisionStats          // extauthz_check_decisions_total, extauthz_check_duration_seconds
	cacheLookups  [2][2]atomic.Int64      // extauthz_cache_lookups_total [local, redis][miss, hit]
	cacheEvicted  [2]atomic.Int64         // extauthz_cache_evictions_total [local, redis]
	redisErrors   metric.Int64Counter     // extauthz_redis_errors_total
	sharedDropped metric.Int64Counter     // extauthz_cache_shared_dropped_total
	jwksRefreshes metric.Int64Counter     // extauthz_jwks_refreshes_total
	introspection metric.Float64Histogram // extauthz_introspection_duration_seconds
	introErrors   metric.Int64Counter     // extauthz_introspection_errors_total
	reloads       metric.Int64Counter     // extauthz_config_reloads_total
	loginEvents   metric.Int64Counter     // extauthz_login_events_total
	facadeEvents  metric.Int64Counter     // extauthz_oauth_facade_events_total
	upstreamMints metric.Float64Histogram // extauthz_upstream_token_mint_duration_seconds
	// extauthz_upstream_token_lookups_total, by resource: [local, redis][miss, hit]
	upstreamLookups sync.Map                // string → *[2][2]atomic.Int64
	revocations     metric.Int64Counter     // extauthz_revocations_total
	revocationDelay metric.Float64Histogram // extauthz_revocation_propagation_delay_seconds
	refusedByMark   atomic.Int64            // extauthz_revocation_tokens_refused_total

	circuitOpen    atomic.Bool
	reloadOK       atomic.Bool
	reloadAt       atomic.Int64 // unix seconds of the last successful (re)load
	restartPending atomic.Bool

	mu         sync.Mutex
	keyAges    map[string]func() (time.Time, bool) // by issuer
	entries    map[string]func() int               // by kind: valid, invalid, revoked
	watermarks func() int                          // revocation watermarks held; nil: none
}

// propagationBuckets resolve a watermark's way from its cause to a
// replica: milliseconds through Redis's pub/sub, up to the minutes a
// transmitter's retries or a resubscription can take, in seconds.
var propagationBuckets = [...]float64{
	0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900,
}

func newMetrics(m metric.Meter, version string, decisions *decisionStats) (*Metrics, error) {
	x := &Metrics{decisions: decisions, keyAges: map[string]func() (time.Time, bool){}, entries: map[string]func() int{}}
	x.reloadOK.Store(true)
	x.reloadAt.Store(time.Now().Unix())
	var err error
	counter := func(name, unit, desc string) metric.Int64Counter {
		c, e := m.Int64Counter(name, metric.WithUnit(unit), metric.WithDescription(desc))
		if e != nil && err == nil {
			err = e
		}
		return c
	}
	x.redisErrors = counter("extauthz_redis_errors", "{error}", "Failed operations on the shared Redis tier, by operation.")
	x.sharedDropped = counter("extauthz_cache_shared_dropped", "{write}", "Verdict writes to the shared Redis tier never sent, by operation and reason (queue_full, circuit_open, shutdown).")
	x.jwksRefreshes = counter("extauthz_jwks_refreshes", "{fetch}", "JWKS fetch attempts by issuer and result (success or error).")
	x.introErrors = counter("extauthz_introspection_errors", "{call}", "Introspection calls that gave no usable answer (a 503), by issuer.")
	x.reloads = counter("extauthz_config_reloads", "{reload}", "Config reload attempts by result (success or failure).")
	x.loginEvents = counter("extauthz_login_events", "{event}", "Browser login flow events.")
	x.facadeEvents = counter("extauthz_oauth_facade_events", "{event}", "OAuth facade events: registrations, authorizations, consents, tokens, revocations.")
	x.revocations = counter("extauthz_revocations", "{watermark}", "Revocation watermarks made through this replica, by source (admin, ssf, other).")
	if err != nil {
		return nil, fmt.Errorf("telemetry: %w", err)
	}
	x.zeroSeries()
	if x.introspection, err = m.Float64Histogram("extauthz_introspection_duration", metric.WithUnit("s"),
		metric.WithDescription("RFC 7662 introspection calls by issuer and result."),
		metric.WithExplicitBucketBoundaries(durationBuckets[:]...)); err != nil {
		return nil, fmt.Errorf("telemetry: %w", err)
	}
	if x.revocationDelay, err = m.Float64Histogram("extauthz_revocation_propagation_delay", metric.WithUnit("s"),
		metric.WithDescription("From a revocation watermark's cause (an admin call, a security event's iat) to the watermark refusing tokens on this replica, by source."),
		metric.WithExplicitBucketBoundaries(propagationBuckets[:]...)); err != nil {
		return nil, fmt.Errorf("telemetry: %w", err)
	}
	if _, err := m.Int64ObservableCounter("extauthz_revocation_tokens_refused", metric.WithUnit("{token}"),
		metric.WithDescription("Tokens refused because a revocation watermark matched them (on a cache hit or after a verification)."),
		metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
			o.Observe(x.refusedByMark.Load())
			return nil
		})); err != nil {
		return nil, fmt.Errorf("telemetry: %w", err)
	}
	if x.upstreamMints, err = m.Float64Histogram("extauthz_upstream_token_mint_duration", metric.WithUnit("s"),
		metric.WithDescription("Calls to a token endpoint for a resource's upstream credential (RFC 8693 exchange or client credentials), by resource, mode and result (ok, refused, error)."),
		metric.WithExplicitBucketBoundaries(durationBuckets[:]...)); err != nil {
		return nil, fmt.Errorf("telemetry: %w", err)
	}
	if _, err := m.Int64ObservableCounter("extauthz_upstream_token_lookups", metric.WithUnit("{lookup}"),
		metric.WithDescription("Lookups of minted upstream credentials by resource, tier and result (hit or miss)."),
		metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
			x.upstreamLookups.Range(func(k, v any) bool {
				c := v.(*[2][2]atomic.Int64)
				for i, tier := range []string{"local", "redis"} {
					for j, result := range []string{"miss", "hit"} {
						o.Observe(c[i][j].Load(), metric.WithAttributes(attribute.String("resource", k.(string)),
							attribute.String("tier", tier), attribute.String("result", result)))
					}
				}
				return true
			})
			return nil
		})); err != nil {
		return nil, fmt.Errorf("telemetry: %w", err)
	}
	// Evictions are counted as lookups are, in plain atomics read at export: a full tier
	// evicts on every insert, and an instrument's Add with attributes costs an allocation.
	if _, err := m.Int64ObservableCounter("extauthz_cache_evictions", metric.WithUnit("{entry}"),
		metric.WithDescription("Entries evicted to keep a cache tier within its bound."),
		metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
			o.Observe(x.cacheEvicted[0].Load(), metric.WithAttributes(attribute.String("tier", "local")))
			if n := x.cacheEvicted[1].Load(); n != 0 {
				o.Observe(n, metric.WithAttributes(attribute.String("tier", "redis")))
			}
			return nil
		})); err != nil {
		return nil, fmt.Errorf("telemetry: %w", err)
	}
	if _, err := m.Int64ObservableCounter("extauthz_cache_lookups", metric.WithUnit("{lookup}"),
		metric.WithDescription("Verdict cache lookups by tier and result (hit or miss)."),
		metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
			for i, tier := range []string{"local", "redis"} {
				for j, result := range []string{"miss", "hit"} {
					o.Observe(x.cacheLookups[i][j].Load(), metric.WithAttributes(attribute.String("tier", tier), attribute.String("result", result)))
				}
			}
			return nil
		})); err != nil {
		return nil, fmt.Errorf("telemetry: %w", err)
	}

	gauges := []struct {
		name, unit, desc string
		cb               metric.Int64Callback
	}{
		{"extauthz_build_info", "", "Always 1; the labels name the version.", func(_ context.Context, o metric.Int64Observer) error {
			o.Observe(1, metric.WithAttributes(attribute.String("version", version), attribute.String("go_version", goVersion)))
			return nil
		}},
		{"extauthz_redis_circuit_open", "", "1 while the shared tier's circuit breaker is open (Redis skipped).", func(_ context.Context, o metric.Int64Observer) error {
			o.Observe(boolInt(x.circuitOpen.Load()))
			return nil
		}},
		{"extauthz_config_last_reload_successful", "", "1 if the last config (re)load succeeded, 0 if the last attempt was refused.", func(_ context.Context, o metric.Int64Observer) error {
			o.Observe(boolInt(x.reloadOK.Load()))
			return nil
		}},
		{"extauthz_config_last_reload_success_timestamp_seconds", "s", "Unix time of the last successful config (re)load.", func(_ context.Context, o metric.Int64Observer) error {
			o.Observe(x.reloadAt.Load())
			return nil
		}},
		{"extauthz_config_restart_required", "", "1 when the file on disk changes settings a reload cannot apply (listeners, Redis, cache sizes, login, admin).", func(_ context.Context, o metric.Int64Observer) error {
			o.Observe(boolInt(x.restartPending.Load()))
			return nil
		}},
		{"extauthz_cache_entries", "{entry}", "Entries held in the in-process cache, by kind (valid, invalid, revoked tokens).", func(_ context.Context, o metric.Int64Observer) error {
			x.mu.Lock()
			defer x.mu.Unlock()
			for kind, n := range x.entries {
				o.Observe(int64(n()), metric.WithAttributes(attribute.String("kind", kind)))
			}
			return nil
		}},
		{"extauthz_revocation_watermarks", "{watermark}", "Revocation watermarks held on this replica.", func(_ context.Context, o metric.Int64Observer) error {
			x.mu.Lock()
			n := x.watermarks
			x.mu.Unlock()
			if n != nil {
				o.Observe(int64(n()))
			}
			return nil
		}},
	}
	for _, g := range gauges {
		if _, err := m.Int64ObservableGauge(g.name, metric.WithUnit(g.unit), metric.WithDescription(g.desc), metric.WithInt64Callback(g.cb)); err != nil {
			return nil, fmt.Errorf("telemetry: %w", err)
		}
	}
	if _, err := m.Float64ObservableGauge("extauthz_jwks_keys_age", metric.WithUnit("s"),
		metric.WithDescription("Seconds since each issuer's key set was last fetched successfully (absent before the first success)."),
		metric.WithFloat64Callback(func(_ context.Context, o metric.Float64Observer) error {
			x.mu.Lock()
			defer x.mu.Unlock()
			now := time.Now()
			for iss, f := range x.keyAges {
				if at, ok := f(); ok {
					o.Observe(now.Sub(at).Seconds(), metric.WithAttributes(attribute.String("issuer", iss)))
				}
			}
			return nil
		})); err != nil {
		return nil, fmt.Errorf("telemetry: %w", err)
	}
	return x, nil
}

// The fixed label values of counters that start at zero (zeroSeries).
var (
	reloadResults    = []string{"success", "failure"}
	loginEventNames  = []string{"login", "login_failed", "refresh", "refresh_failed", "logout", "logout_failed"}
	revocationKinds  = []string{"admin", "ssf", "other"}
	redisOps         = []string{"get", "set", "add", "delete", "publish", "subscribe", "decode"}
	jwksFetchResults = []string{"success", "error"}
)

// zeroSeries exports the counters whose label values are known in advance
// at zero from the start. A series that first appears at 1 hides that
// first event from rate() and increase(), and from the alert rules built
// on them; and a dashboard panel would show "no data" where the truth is
// "none".
func (x *Metrics) zeroSeries() {
	ctx := context.Background()
	for _, r := range reloadResults {
		x.reloads.Add(ctx, 0, metric.WithAttributes(attribute.String("result", r)))
	}
	for _, e := range loginEventNames {
		x.loginEvents.Add(ctx, 0, metric.WithAttributes(attribute.String("event", e)))
	}
	for _, k := range revocationKinds {
		x.revocations.Add(ctx, 0, metric.WithAttributes(attribute.String("source", k)))
	}
	for _, op := range redisOps {
		x.redisErrors.Add(ctx, 0, metric.WithAttributes(attribute.String("op", op)))
	}
	for _, op := range []string{"add", "set"} {
		for _, r := range []string{"queue_full", "circuit_open", "shutdown"} {
			x.sharedDropped.Add(ctx, 0, metric.WithAttributes(attribute.String("op", op), attribute.String("reason", r)))
		}
	}
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// decisionKey is one label set of the decision metrics.
type decisionKey struct {
	transport, decision, reason, resource, source string
}

// Decision counts one Check and records how long it took.
func (x *Metrics) Decision(k decisionKey, took time.Duration) { x.decisions.record(k, took) }

// Lookup implements cache.Observer.
func (x *Metrics) Lookup(tier string, hit bool) {
	i, j := 0, 0
	if tier != "local" {
		i = 1
	}
	if hit {
		j = 1
	}
	x.cacheLookups[i][j].Add(1)
}

// Error implements cache.Observer: a failed Redis operation.
func (x *Metrics) Error(_, op string) {
	x.redisErrors.Add(context.Background(), 1, metric.WithAttributes(attribute.String("op", op)))
}

// Dropped implements cache.DropObserver: a verdict's write to the shared
// tier that was never sent.
func (x *Metrics) Dropped(op, reason string) {
	x.sharedDropped.Add(context.Background(), 1, metric.WithAttributes(attribute.String("op", op), attribute.String("reason", reason)))
}

// Evicted implements cache.Observer.
func (x *Metrics) Evicted(tier string) {
	i := 0
	if tier != "local" {
		i = 1
	}
	x.cacheEvicted[i].Add(1)
}

// CircuitOpen implements cache.Observer.
func (x *Metrics) CircuitOpen(open bool) { x.circuitOpen.Store(open) }

// CacheEntries registers how to count the entries of one in-process tier:
// kind is valid, invalid or revoked.
func (x *Metrics) CacheEntries(kind string, n func() int) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.entries[kind] = n
}

// JWKSFetch counts one JWKS fetch attempt of issuer.
func (x *Metrics) JWKSFetch(issuer string, err error) {
	result := "success"
	if err != nil {
		result = "error"
	}
	x.jwksRefreshes.Add(context.Background(), 1, metric.WithAttributes(attribute.String("issuer", issuer), attribute.String("result", result)))
}

// KeysAge registers how to read when issuer's keys were last fetched
// (ok false: never), and starts the issuer's fetch counters at zero.
func (x *Metrics) KeysAge(issuer string, lastSuccess func() (time.Time, bool)) {
	for _, r := range jwksFetchResults {
		x.jwksRefreshes.Add(context.Background(), 0, metric.WithAttributes(attribute.String("issuer", issuer), attribute.String("result", r)))
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	x.keyAges[issuer] = lastSuccess
}

// ForgetIssuer drops an issuer's key-age gauge (after a reload removed it).
func (x *Metrics) ForgetIssuer(issuer string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	delete(x.keyAges, issuer)
}

// Introspection records one introspection call of issuer.
func (x *Metrics) Introspection(issuer, result string, took time.Duration) {
	ctx := context.Background()
	x.introspection.Record(ctx, took.Seconds(), metric.WithAttributes(attribute.String("issuer", issuer), attribute.String("result", result)))
	if result == "error" {
		x.introErrors.Add(ctx, 1, metric.WithAttributes(attribute.String("issuer", issuer)))
	}
}

// UpstreamMint records one call to a token endpoint for resource's
// upstream credential.
func (x *Metrics) UpstreamMint(resource, mode, result string, took time.Duration) {
	x.upstreamMints.Record(context.Background(), took.Seconds(), metric.WithAttributes(
		attribute.String("resource", resource), attribute.String("mode", mode), attribute.String("result", result)))
}

// UpstreamLookup counts one lookup of a minted upstream credential in tier
// ("local" or "redis"; any other tier is not counted). It is on the path
// of every allowed request of a minting resource: two atomic operations.
func (x *Metrics) UpstreamLookup(resource, tier string, hit bool) {
	v, ok := x.upstreamLookups.Load(resource)
	if !ok {
		v, _ = x.upstreamLookups.LoadOrStore(resource, new([2][2]atomic.Int64))
	}
	c := v.(*[2][2]atomic.Int64)
	i := 0
	switch tier {
	case "local":
	case "redis":
		i = 1
	default:
		return
	}
	c[i][boolInt(hit)].Add(1)
}

// Reload records a config (re)load attempt; restartRequired says that the
// file also changes settings only a restart applies.
func (x *Metrics) Reload(ok, restartRequired bool) {
	result := "success"
	if !ok {
		result = "failure"
	}
	x.reloads.Add(context.Background(), 1, metric.WithAttributes(attribute.String("result", result)))
	x.reloadOK.Store(ok)
	if ok {
		x.reloadAt.Store(time.Now().Unix())
		x.restartPending.Store(restartRequired)
	}
}

// RevocationWatermarks registers how to count the revocation watermarks
// held.
func (x *Metrics) RevocationWatermarks(n func() int) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.watermarks = n
}

// Revocation implements revocation.Observer: one watermark made through
// this replica, by source kind.
func (x *Metrics) Revocation(source string) {
	x.revocations.Add(context.Background(), 1, metric.WithAttributes(attribute.String("source", source)))
}

// WatermarkLive implements revocation.Observer.
func (x *Metrics) WatermarkLive(source string, delay time.Duration) {
	x.revocationDelay.Record(context.Background(), max(delay, 0).Seconds(), metric.WithAttributes(attribute.String("source", source)))
}

// RefusedByWatermark implements revocation.Observer. It runs on the
// decision path: one atomic add.
func (x *Metrics) RefusedByWatermark() { x.refusedByMark.Add(1) }

// FacadeEvent counts one OAuth facade event (a bounded set of names, see
// docs/operating.md).
func (x *Metrics) FacadeEvent(event string) {
	x.facadeEvents.Add(context.Background(), 1, metric.WithAttributes(attribute.String("event", event)))
}

// LoginEvent counts one browser login flow event.
func (x *Metrics) LoginEvent(event string) {
	x.loginEvents.Add(context.Background(), 1, metric.WithAttributes(attribute.String("event", event)))
}
