// Package tracing implements obs.Tracer with OpenTelemetry: one SERVER
// span per request, continuing the caller's W3C (and optionally B3) trace
// context, and one CLIENT child span per upstream attempt, whose context is
// what the upstream receives. Spans go to an OTLP collector over gRPC or
// HTTP through the SDK's batch span processor, which drops rather than
// blocks when the collector falls behind.
//
// Nothing here touches OpenTelemetry's global state: the provider and the
// propagators live on the Tracer.
package tracing

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/contrib/propagators/b3"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/meshgate/meshgate/obs"
)

// Protocols accepted in Options.Protocol.
const (
	ProtocolGRPC = "grpc"
	ProtocolHTTP = "http/protobuf"
)

// DefaultServiceName is the service.name of the spans unless set.
const DefaultServiceName = "meshgate"

// instrumentationName names the tracer in exported spans.
const instrumentationName = "github.com/meshgate/meshgate/tracing"

// Options configure a Tracer.
type Options struct {
	// Endpoint is the collector: "host:port" (e.g. "127.0.0.1:4317"), or a
	// URL ("http://127.0.0.1:4318"); "http://" means plaintext and
	// "https://" TLS. For HTTP a URL without a path posts to /v1/traces.
	Endpoint string
	// Protocol is "grpc" (the default) or "http/protobuf".
	Protocol string
	// Insecure sends to the collector in plaintext.
	Insecure bool
	// SampleRatio is the fraction of new traces sampled, in [0, 1]; the
	// sampler is parent-based, so a caller's sampled flag is followed
	// whatever the ratio. Note the zero value samples no new traces; the
	// gateway's flag defaults to 1 (DefaultSampleRatio).
	SampleRatio float64
	// Propagators are the trace context formats read and written besides
	// W3C "tracecontext" (always on): "b3" adds B3, single header and
	// multiple headers.
	Propagators []string
	// ServiceName is service.name; "" means DefaultServiceName.
	ServiceName string
	// ServiceVersion, if set, is service.version.
	ServiceVersion string
	// Headers are sent with every export (e.g. an API key).
	Headers map[string]string
}

// DefaultSampleRatio is the ratio the gateway samples at unless told.
const DefaultSampleRatio = 1.0

// Tracer is an obs.Tracer. Its methods are safe for concurrent use.
type Tracer struct {
	provider *sdktrace.TracerProvider
	tracer   trace.Tracer
	prop     propagation.TextMapPropagator
	// clear are the header fields removed before injecting, so nothing
	// stale from the client's request reaches the upstream.
	clear []string
}

// New builds the exporter and the tracer provider. The exporter connects
// lazily: a collector that is down does not fail New, its spans are
// dropped.
func New(ctx context.Context, opts Options) (*Tracer, error) {
	if math.IsNaN(opts.SampleRatio) || opts.SampleRatio < 0 || opts.SampleRatio > 1 {
		return nil, fmt.Errorf("tracing sample ratio %v: want 0 <= ratio <= 1", opts.SampleRatio)
	}
	t := &Tracer{clear: []string{"Traceparent", "Tracestate"}}
	props := []propagation.TextMapPropagator{}
	for _, p := range opts.Propagators {
		switch strings.ToLower(strings.TrimSpace(p)) {
		case "tracecontext", "":
		case "b3":
			props = append(props, b3.New(b3.WithInjectEncoding(b3.B3SingleHeader|b3.B3MultipleHeader)))
			t.clear = append(t.clear, "B3", "X-B3-Traceid", "X-B3-Spanid", "X-B3-Parentspanid", "X-B3-Sampled", "X-B3-Flags")
		default:
			return nil, fmt.Errorf("tracing propagator %q: want tracecontext or b3", p)
		}
	}
	// Last wins on extraction: a traceparent is preferred to B3.
	props = append(props, propagation.TraceContext{})
	t.prop = propagation.NewCompositeTextMapPropagator(props...)

	exp, err := newExporter(ctx, opts)
	if err != nil {
		return nil, err
	}
	name := opts.ServiceName
	if name == "" {
		name = DefaultServiceName
	}
	attrs := []attribute.KeyValue{attribute.String("service.name", name)}
	if opts.ServiceVersion != "" {
		attrs = append(attrs, attribute.String("service.version", opts.ServiceVersion))
	}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(attrs...))
	if err != nil {
		return nil, fmt.Errorf("tracing resource: %w", err)
	}
	t.provider = sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(opts.SampleRatio))),
		sdktrace.WithResource(res),
	)
	t.tracer = t.provider.Tracer(instrumentationName)
	return t, nil
}

func newExporter(ctx context.Context, opts Options) (sdktrace.SpanExporter, error) {
	if opts.Endpoint == "" {
		return nil, errors.New("tracing endpoint is empty")
	}
	host, path, insecure := opts.Endpoint, "", opts.Insecure
	if strings.Contains(opts.Endpoint, "://") {
		u, err := url.Parse(opts.Endpoint)
		if err != nil {
			return nil, fmt.Errorf("tracing endpoint: %w", err)
		}
		switch u.Scheme {
		case "http":
			insecure = true
		case "https":
		default:
			return nil, fmt.Errorf("tracing endpoint %q: scheme must be http or https", opts.Endpoint)
		}
		host, path = u.Host, u.Path
	}
	if _, _, err := net.SplitHostPort(host); err != nil {
		return nil, fmt.Errorf("tracing endpoint %q: want host:port: %w", opts.Endpoint, err)
	}
	switch opts.Protocol {
	case "", ProtocolGRPC:
		o := []otlptracegrpc.Option{otlptracegrpc.WithEndpoint(host)}
		if insecure {
			o = append(o, otlptracegrpc.WithInsecure())
		}
		if len(opts.Headers) > 0 {
			o = append(o, otlptracegrpc.WithHeaders(opts.Headers))
		}
		return otlptracegrpc.New(ctx, o...)
	case ProtocolHTTP:
		if path == "" || path == "/" {
			path = "/v1/traces"
		}
		o := []otlptracehttp.Option{otlptracehttp.WithEndpoint(host), otlptracehttp.WithURLPath(path)}
		if insecure {
			o = append(o, otlptracehttp.WithInsecure())
		}
		if len(opts.Headers) > 0 {
			o = append(o, otlptracehttp.WithHeaders(opts.Headers))
		}
		return otlptracehttp.New(ctx, o...)
	default:
		return nil, fmt.Errorf("tracing protocol %q: want grpc or http/protobuf", opts.Protocol)
	}
}

// ForceFlush exports the spans ended so far.
func (t *Tracer) ForceFlush(ctx context.Context) error { return t.provider.ForceFlush(ctx) }

// Shutdown exports the remaining spans and stops the exporter; spans
// started later are not recorded.
func (t *Tracer) Shutdown(ctx context.Context) error { return t.provider.Shutdown(ctx) }

// Start opens the request's SERVER span, continuing the trace its headers
// carry. The span is named "HTTP <METHOD>" until End knows the route.
func (t *Tracer) Start(ctx context.Context, r *http.Request) (context.Context, obs.Span) {
	ctx = t.prop.Extract(ctx, propagation.HeaderCarrier(r.Header))
	ctx, server := t.tracer.Start(ctx, startName(r.Method), trace.WithSpanKind(trace.SpanKindServer))
	s := &span{t: t, ctx: ctx, server: server, traceID: server.SpanContext().TraceID().String()}
	if server.IsRecording() {
		server.SetAttributes(requestAttributes(r)...)
	}
	return ctx, s
}

// span is one request's server span and its upstream children.
type span struct {
	t        *Tracer
	ctx      context.Context
	server   trace.Span
	traceID  string
	upstream []trace.Span
}

func (s *span) TraceID() string { return s.traceID }

// Inject opens a CLIENT child for this upstream attempt and writes its
// context into h, replacing any trace headers the client sent. When the
// trace is not sampled no child is made, and h carries the server span's
// context with the sampled flag off.
func (s *span) Inject(h http.Header) {
	for _, k := range s.t.clear {
		delete(h, k)
	}
	ctx := s.ctx
	if s.server.IsRecording() {
		var child trace.Span
		ctx, child = s.t.tracer.Start(s.ctx, "upstream", trace.WithSpanKind(trace.SpanKindClient))
		s.upstream = append(s.upstream, child)
	}
	s.t.prop.Inject(ctx, propagation.HeaderCarrier(h))
}

// End closes the upstream children and the server span with r's outcome.
func (s *span) End(r *obs.Request) {
	if !s.server.IsRecording() {
		s.server.End()
		return
	}
	end := trace.WithTimestamp(r.Start.Add(r.Duration))
	if r.Start.IsZero() {
		end = trace.WithTimestamp(time.Now())
	}
	failed, why := outcome(r)
	for _, c := range s.upstream {
		c.SetAttributes(upstreamAttributes(r)...)
		if r.UpstreamFirstByte > 0 && !r.Start.IsZero() {
			c.AddEvent("first_byte", trace.WithTimestamp(r.Start.Add(r.UpstreamFirstByte)))
		}
		if failed {
			c.SetStatus(codes.Error, why)
		}
		c.End(end)
	}
	if r.Route != "" {
		s.server.SetName(r.Method + " " + r.Route)
	}
	s.server.SetAttributes(responseAttributes(r)...)
	if failed {
		s.server.SetAttributes(attribute.String("error.type", errorType(r)))
		s.server.SetStatus(codes.Error, why)
	}
	s.server.End(end)
}

// outcome says whether the request failed on the gateway's side, and why.
// 4xx answers are the client's doing and not errors of the server span.
func outcome(r *obs.Request) (bool, string) {
	switch {
	case upstreamFailure(r.Reason):
		return true, r.Reason
	case r.Status == 0:
		if r.Reason != "" {
			return true, r.Reason
		}
		return true, "no response sent"
	case r.Status >= 500:
		if r.Reason != "" {
			return true, r.Reason
		}
		return true, "HTTP " + strconv.Itoa(r.Status)
	}
	return false, ""
}

// upstreamFailure reports whether reason blames the upstream (or the lack
// of one).
func upstreamFailure(reason string) bool {
	return strings.HasPrefix(reason, "upstream_") || reason == "no_healthy_upstream" || reason == "no_valid_backend"
}

var _ obs.Tracer = (*Tracer)(nil)
