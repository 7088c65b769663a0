package telemetry

import (
	"context"
	"fmt"
	"math"

	"go.opentelemetry.io/otel/metric"
)

// LogLinesDropped registers extauthz_log_lines_dropped_total, the log
// lines the process dropped rather than wait for its output (a stalled
// stderr, see logging.AsyncWriter), read from dropped when /metrics is
// scraped; nil reports 0, for a log that drops nothing. Call it once.
func (t *Telemetry) LogLinesDropped(dropped func() uint64) error {
	if dropped == nil {
		dropped = func() uint64 { return 0 }
	}
	_, err := t.meters.Meter("github.com/extauthz/extauthz").Int64ObservableCounter("extauthz_log_lines_dropped",
		metric.WithUnit("{line}"),
		metric.WithDescription("Log lines dropped because the process's log output did not keep up (audit lines first: warn and error lines have a reserve)."),
		metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
			o.Observe(int64(min(dropped(), math.MaxInt64)))
			return nil
		}))
	if err != nil {
		return fmt.Errorf("telemetry: %w", err)
	}
	return nil
}
