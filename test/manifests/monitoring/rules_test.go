package monitoring_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/promqltest"
	"github.com/prometheus/prometheus/rules"
)

// scenario is a short recorded series (promqltest's load notation, one
// sample a minute from time 0) and whether an alert fires on it by the end.
type scenario struct {
	alert string
	fires bool
	what  string
	load  string
	until time.Duration // evaluated every minute from 0 to until
}

// Every series carries the labels a Kubernetes scrape adds.
const scraped = `namespace="auth", job="extauthz"`

func series(name, labels, values string) string {
	if labels != "" {
		labels = ", " + labels
	}
	return fmt.Sprintf("  %s{%s%s} %s\n", name, scraped, labels, values)
}

// bucketSeries is a histogram whose observations all fall in the bucket
// bounded by le (each bound in bounds at or above it counts them).
func bucketSeries(name, labels string, bounds []string, le string, perMinute, minutes int) string {
	var b strings.Builder
	at := slices.Index(bounds, le)
	for i, bound := range bounds {
		values := fmt.Sprintf("0x%d", minutes)
		if i >= at {
			values = fmt.Sprintf("0+%dx%d", perMinute, minutes)
		}
		b.WriteString(series(name+"_bucket", labels+`, le="`+bound+`"`, values))
	}
	b.WriteString(series(name+"_count", labels, fmt.Sprintf("0+%dx%d", perMinute, minutes)))
	return b.String()
}

var (
	checkBounds       = []string{"0.001", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "+Inf"}
	propagationBounds = []string{"0.1", "1", "10", "60", "300", "900", "+Inf"}
)

func scenarios() []scenario {
	const a, b = `instance="10.0.0.1:9090"`, `instance="10.0.0.2:9090"`
	const iss = `issuer="https://auth.example.com"`
	return []scenario{
		{alert: "ExtauthzIssuerKeysUnavailable", fires: true, what: "fetches failing, no keys ever held", until: 20 * time.Minute,
			load: series("extauthz_jwks_refreshes_total", a+", "+iss+`, result="error"`, "0+1x30") +
				series("extauthz_jwks_refreshes_total", a+", "+iss+`, result="success"`, "0x30")},
		{alert: "ExtauthzIssuerKeysUnavailable", fires: false, what: "fetches failing, last good keys held", until: 20 * time.Minute,
			load: series("extauthz_jwks_refreshes_total", a+", "+iss+`, result="error"`, "0+1x30") +
				series("extauthz_jwks_keys_age_seconds", a+", "+iss, "600+60x30")},

		{alert: "ExtauthzIssuerKeysStale", fires: true, what: "keys three hours old", until: 25 * time.Minute,
			load: series("extauthz_jwks_keys_age_seconds", a+", "+iss, "10800+60x30")},
		{alert: "ExtauthzIssuerKeysStale", fires: false, what: "keys refreshed every hour", until: 25 * time.Minute,
			load: series("extauthz_jwks_keys_age_seconds", a+", "+iss, "0+60x30")},

		{alert: "ExtauthzChecksUnavailable", fires: true, what: "9% answered 503", until: 15 * time.Minute,
			load: series("extauthz_check_decisions_total", a+`, decision="deny", reason="unavailable", resource="mcp", transport="grpc"`, "0+600x30") +
				series("extauthz_check_decisions_total", a+`, decision="allow", reason="allowed", resource="mcp", transport="grpc"`, "0+6000x30")},
		{alert: "ExtauthzChecksUnavailable", fires: false, what: "1% answered 503, the rest 401", until: 15 * time.Minute,
			load: series("extauthz_check_decisions_total", a+`, decision="deny", reason="unavailable", resource="mcp", transport="grpc"`, "0+60x30") +
				series("extauthz_check_decisions_total", a+`, decision="deny", reason="expired", resource="mcp", transport="grpc"`, "0+3000x30") +
				series("extauthz_check_decisions_total", a+`, decision="allow", reason="allowed", resource="mcp", transport="grpc"`, "0+3000x30")},

		{alert: "ExtauthzRedisDown", fires: true, what: "circuit open", until: 10 * time.Minute,
			load: series("extauthz_redis_circuit_open", a, "1x30")},
		{alert: "ExtauthzRedisDown", fires: false, what: "circuit open two minutes, then closed", until: 10 * time.Minute,
			load: series("extauthz_redis_circuit_open", a, "1 1 1 0x27")},

		{alert: "ExtauthzRedisErrors", fires: true, what: "one failed get a second", until: 20 * time.Minute,
			load: series("extauthz_redis_errors_total", a+`, op="get"`, "0+60x30") + series("extauthz_redis_errors_total", a+`, op="set"`, "0x30")},
		{alert: "ExtauthzRedisErrors", fires: false, what: "one failed get every ten seconds", until: 20 * time.Minute,
			load: series("extauthz_redis_errors_total", a+`, op="get"`, "0+6x30")},

		{alert: "ExtauthzRedisSlow", fires: true, what: "Checks from Redis take 25 to 50 ms", until: 20 * time.Minute,
			load: bucketSeries("extauthz_check_duration_seconds", a+`, decision="allow", source="redis", transport="grpc"`, checkBounds, "0.05", 600, 30)},
		{alert: "ExtauthzRedisSlow", fires: false, what: "Checks from Redis under a millisecond", until: 20 * time.Minute,
			load: bucketSeries("extauthz_check_duration_seconds", a+`, decision="allow", source="redis", transport="grpc"`, checkBounds, "0.001", 600, 30)},

		{alert: "ExtauthzCacheHitRatioCollapsing", fires: true, what: "90% cached for an hour, then nothing", until: 90 * time.Minute,
			load: series("extauthz_check_duration_seconds_count", a+`, decision="allow", source="local", transport="grpc"`, "0+5400x60 324000x30") +
				series("extauthz_check_duration_seconds_count", a+`, decision="allow", source="verified", transport="grpc"`, "0+600x60 36000+6000x30")},
		{alert: "ExtauthzCacheHitRatioCollapsing", fires: false, what: "90% cached throughout", until: 90 * time.Minute,
			load: series("extauthz_check_duration_seconds_count", a+`, decision="allow", source="local", transport="grpc"`, "0+5400x90") +
				series("extauthz_check_duration_seconds_count", a+`, decision="allow", source="verified", transport="grpc"`, "0+600x90")},

		{alert: "ExtauthzConfigReloadFailing", fires: true, what: "last load refused", until: 10 * time.Minute,
			load: series("extauthz_config_last_reload_successful", a, "0x30")},
		{alert: "ExtauthzConfigReloadFailing", fires: false, what: "loads fine", until: 10 * time.Minute,
			load: series("extauthz_config_last_reload_successful", a, "1x30")},

		{alert: "ExtauthzConfigRestartRequired", fires: true, what: "restart pending for 40 minutes", until: 40 * time.Minute,
			load: series("extauthz_config_restart_required", a, "1x45")},
		{alert: "ExtauthzConfigRestartRequired", fires: false, what: "nothing pending", until: 40 * time.Minute,
			load: series("extauthz_config_restart_required", a, "0x45")},

		{alert: "ExtauthzRevocationPropagationIncomplete", fires: true, what: "one replica a watermark short", until: 20 * time.Minute,
			load: series("extauthz_revocation_watermarks", a, "3x30") + series("extauthz_revocation_watermarks", b, "2x30")},
		{alert: "ExtauthzRevocationPropagationIncomplete", fires: false, what: "one replica a minute late, then in step", until: 20 * time.Minute,
			load: series("extauthz_revocation_watermarks", a, "3x30") + series("extauthz_revocation_watermarks", b, "2 3x29")},

		{alert: "ExtauthzRevocationPropagationSlow", fires: true, what: "watermarks arriving after minutes", until: 25 * time.Minute,
			load: bucketSeries("extauthz_revocation_propagation_delay_seconds", a+`, source="admin"`, propagationBounds, "300", 2, 30)},
		{alert: "ExtauthzRevocationPropagationSlow", fires: false, what: "watermarks arriving within 100 ms", until: 25 * time.Minute,
			load: bucketSeries("extauthz_revocation_propagation_delay_seconds", a+`, source="admin"`, propagationBounds, "0.1", 2, 30)},

		{alert: "ExtauthzCheckLatencyHigh", fires: true, what: "Checks taking 250 to 500 ms", until: 20 * time.Minute,
			load: bucketSeries("extauthz_check_duration_seconds", a+`, decision="allow", source="verified", transport="grpc"`, checkBounds, "0.5", 600, 30)},
		{alert: "ExtauthzCheckLatencyHigh", fires: false, what: "Checks under 5 ms", until: 20 * time.Minute,
			load: bucketSeries("extauthz_check_duration_seconds", a+`, decision="allow", source="verified", transport="grpc"`, checkBounds, "0.005", 600, 30)},

		{alert: "ExtauthzSharedCacheWritesDropped", fires: true, what: "ten writes a second dropped, queue full", until: 30 * time.Minute,
			load: series("extauthz_cache_shared_dropped_total", a+`, op="add", reason="queue_full"`, "0+600x40") +
				series("extauthz_cache_shared_dropped_total", a+`, op="add", reason="shutdown"`, "0x40")},
		{alert: "ExtauthzSharedCacheWritesDropped", fires: false, what: "only writes dropped at shutdown", until: 30 * time.Minute,
			load: series("extauthz_cache_shared_dropped_total", a+`, op="add", reason="shutdown"`, "0+6000x40") +
				series("extauthz_cache_shared_dropped_total", a+`, op="add", reason="queue_full"`, "0x40")},

		{alert: "ExtauthzLogLinesDropped", fires: true, what: "lines dropped every minute", until: 20 * time.Minute,
			load: series("extauthz_log_lines_dropped_total", a, "0+50x30")},
		{alert: "ExtauthzLogLinesDropped", fires: false, what: "none dropped", until: 20 * time.Minute,
			load: series("extauthz_log_lines_dropped_total", a, "0x30")},
	}
}

// TestAlertsFireOnRecordedSeries evaluates each rule with Prometheus's
// rule engine, minute by minute, on a series that shows its trouble and on
// one that does not; every alert of the file has both.
func TestAlertsFireOnRecordedSeries(t *testing.T) {
	var defined []string
	for _, g := range readRules(t).Groups {
		for _, r := range g.Rules {
			defined = append(defined, r.Alert)
		}
	}
	covered := map[string][2]bool{}
	for _, sc := range scenarios() {
		t.Run(fmt.Sprintf("%s/%s", sc.alert, sc.what), func(t *testing.T) {
			rule := newAlertingRule(t, sc.alert)
			storage := promqltest.LoadedStorage(t, "load 1m\n"+sc.load)
			engine := promqltest.NewTestEngine(t, false, 0, 1_000_000)
			query := rules.EngineQueryFunc(engine, storage)
			start := time.Unix(0, 0).UTC()
			fired := false
			for at := time.Duration(0); at <= sc.until; at += time.Minute {
				if _, err := rule.Eval(context.Background(), 0, start.Add(at), query, nil, 0); err != nil {
					t.Fatalf("at %v: %v", at, err)
				}
				for _, a := range rule.ActiveAlerts() {
					if a.State == rules.StateFiring {
						fired = true
					}
				}
			}
			if fired != sc.fires {
				t.Errorf("%s on %q: fired %v, want %v", sc.alert, sc.what, fired, sc.fires)
			}
		})
		c := covered[sc.alert]
		if sc.fires {
			c[0] = true
		} else {
			c[1] = true
		}
		covered[sc.alert] = c
	}
	for _, name := range defined {
		if c := covered[name]; !c[0] || !c[1] {
			t.Errorf("alert %s: scenarios where it fires %v and where it stays quiet %v; want both", name, c[0], c[1])
		}
	}
}

// newAlertingRule builds the named alert of the rules file as Prometheus's
// rule manager would.
func newAlertingRule(t *testing.T, name string) *rules.AlertingRule {
	t.Helper()
	for _, g := range readRules(t).Groups {
		for _, r := range g.Rules {
			if r.Alert != name {
				continue
			}
			expr, err := promql.ParseExpr(r.Expr)
			if err != nil {
				t.Fatal(err)
			}
			return rules.NewAlertingRule(r.Alert, expr, time.Duration(r.For), time.Duration(r.KeepFiringFor),
				labels.FromMap(r.Labels), labels.FromMap(r.Annotations), labels.EmptyLabels(), "", false,
				slog.New(slog.NewTextHandler(io.Discard, nil)))
		}
	}
	t.Fatalf("no alert %s in %s", name, rulesFile)
	return nil
}
