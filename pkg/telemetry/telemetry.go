// Package telemetry holds the gateway's OpenTelemetry plumbing: the meter
// provider exported to Prometheus, the tracer provider configured by the
// standard OTEL_* environment variables, the instruments every component
// reports to (Metrics), and the per-decision observation — span, metrics
// and audit line — wrapped around the decision engine (Instrument).
//
// It is not where decisions are made, and it never sees a token: what it
// records comes from authz.Decision, whose fields are bounded labels.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// ServiceName is the default service.name of the gateway's telemetry;
// OTEL_SERVICE_NAME overrides it.
const ServiceName = "extauthz"

// Options configures New.
type Options struct {
	// Version is reported as service.version and in extauthz_build_info.
	Version string
	// Getenv reads the OTEL_* variables (nil: os.Getenv).
	Getenv func(string) string
	// SpanExporter, when set, receives the spans instead of the exporter
	// the environment names, and turns tracing on; spans are then exported
	// synchronously (tests use an in-memory exporter).
	SpanExporter sdktrace.SpanExporter
}

// Telemetry is the process's metrics and tracing. Build one with New and
// pass it to what reports; there is no global provider.
type Telemetry struct {
	Metrics *Metrics

	registry *prometheus.Registry
	meters   *sdkmetric.MeterProvider
	tracers  trace.TracerProvider
	sdkTrace *sdktrace.TracerProvider // nil when tracing is off
	tracer   trace.Tracer
	prop     propagation.TextMapPropagator
	exporter string // what receives spans: "off", "otlp/grpc", "otlp/http", "custom"
}

// New builds the providers and the instruments. Tracing is off unless the
// environment configures it (see TracesExporter) or o.SpanExporter is set.
func New(ctx context.Context, o Options) (*Telemetry, error) {
	if o.Getenv == nil {
		o.Getenv = os.Getenv
	}
	if o.Version == "" {
		o.Version = "dev"
	}
	t := &Telemetry{
		registry: prometheus.NewRegistry(),
		prop:     propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}),
	}
	t.registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	// The per-Check metrics are aggregated by the gateway itself and
	// produced at collection time (see decisionStats).
	stats := &decisionStats{start: time.Now()}
	exp, err := otelprom.New(
		otelprom.WithRegisterer(t.registry),
		otelprom.WithoutScopeInfo(),
		otelprom.WithoutTargetInfo(),
		otelprom.WithProducer(stats),
	)
	if err != nil {
		return nil, fmt.Errorf("telemetry: prometheus exporter: %w", err)
	}
	t.meters = sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp))
	if t.Metrics, err = newMetrics(t.meters.Meter("github.com/extauthz/extauthz"), o.Version, stats); err != nil {
		return nil, err
	}

	spanExp, kind, err := spanExporter(ctx, o)
	if err != nil {
		return nil, err
	}
	t.exporter = kind
	if spanExp == nil {
		t.tracers = noop.NewTracerProvider()
	} else {
		res, err := resource.New(ctx,
			resource.WithAttributes(semconv.ServiceName(ServiceName), semconv.ServiceVersion(o.Version)),
			resource.WithFromEnv(), // OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES
		)
		if err != nil && res == nil {
			return nil, fmt.Errorf("telemetry: resource: %w", err)
		}
		opts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res)}
		if o.SpanExporter != nil {
			opts = append(opts, sdktrace.WithSyncer(spanExp))
		} else {
			// OTEL_BSP_* tune the batcher, OTEL_TRACES_SAMPLER the sampler.
			opts = append(opts, sdktrace.WithBatcher(spanExp))
		}
		t.sdkTrace = sdktrace.NewTracerProvider(opts...)
		t.tracers = t.sdkTrace
	}
	t.tracer = t.tracers.Tracer("github.com/extauthz/extauthz")
	return t, nil
}

// spanExporter returns the exporter the options or the environment ask
// for, nil for none. Tracing follows the OpenTelemetry environment
// specification: OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none turn
// it off; OTEL_TRACES_EXPORTER=otlp, or an OTLP endpoint set while
// OTEL_TRACES_EXPORTER is unset, turn it on. The protocol is
// OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, else OTEL_EXPORTER_OTLP_PROTOCOL,
// else http/protobuf; the exporters read the endpoint, headers, TLS and
// timeout variables themselves.
func spanExporter(ctx context.Context, o Options) (sdktrace.SpanExporter, string, error) {
	if o.SpanExporter != nil {
		return o.SpanExporter, "custom", nil
	}
	env := func(k string) string { return strings.TrimSpace(o.Getenv(k)) }
	if strings.EqualFold(env("OTEL_SDK_DISABLED"), "true") {
		return nil, "off", nil
	}
	switch names := strings.ToLower(env("OTEL_TRACES_EXPORTER")); names {
	case "none":
		return nil, "off", nil
	case "":
		if env("OTEL_EXPORTER_OTLP_ENDPOINT") == "" && env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") == "" {
			return nil, "off", nil
		}
	case "otlp":
	default:
		return nil, "", fmt.Errorf("telemetry: OTEL_TRACES_EXPORTER=%q: only \"otlp\" and \"none\" are supported", names)
	}
	protocol := env("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
	if protocol == "" {
		protocol = env("OTEL_EXPORTER_OTLP_PROTOCOL")
	}
	switch protocol {
	case "grpc":
		e, err := otlptracegrpc.New(ctx)
		if err != nil {
			return nil, "", fmt.Errorf("telemetry: OTLP gRPC trace exporter: %w", err)
		}
		return e, "otlp/grpc", nil
	case "", "http/protobuf":
		e, err := otlptracehttp.New(ctx)
		if err != nil {
			return nil, "", fmt.Errorf("telemetry: OTLP HTTP trace exporter: %w", err)
		}
		return e, "otlp/http", nil
	default:
		return nil, "", fmt.Errorf("telemetry: OTLP protocol %q: use \"grpc\" or \"http/protobuf\"", protocol)
	}
}

// MetricsHandler serves the Prometheus exposition of every metric.
func (t *Telemetry) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(t.registry, promhttp.HandlerOpts{})
}

// Gather collects every metric as /metrics would serve it at this moment,
// for pages that show a few of the same figures (the admin status page):
// what they show can then never disagree with what Prometheus scrapes.
func (t *Telemetry) Gather() ([]*dto.MetricFamily, error) { return t.registry.Gather() }

// Tracing reports whether spans are recorded and exported. When it is
// false the decision path skips tracing entirely.
func (t *Telemetry) Tracing() bool { return t.sdkTrace != nil }

// TracerProvider is the provider for instrumentation libraries (otelgrpc,
// otelhttp); a no-op one when tracing is off.
func (t *Telemetry) TracerProvider() trace.TracerProvider { return t.tracers }

// Tracer is the gateway's own tracer.
func (t *Telemetry) Tracer() trace.Tracer { return t.tracer }

// Propagator reads and writes W3C traceparent, tracestate and baggage.
func (t *Telemetry) Propagator() propagation.TextMapPropagator { return t.prop }

// MeterProvider is the provider behind Metrics, for callbacks that others
// register (it is exported at /metrics).
func (t *Telemetry) MeterProvider() metric.MeterProvider { return t.meters }

// Shutdown flushes buffered spans and stops the providers.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	var errs []error
	if t.sdkTrace != nil {
		errs = append(errs, t.sdkTrace.Shutdown(ctx))
	}
	errs = append(errs, t.meters.Shutdown(ctx))
	return errors.Join(errs...)
}

// goVersion is reported in extauthz_build_info.
var goVersion = runtime.Version()
