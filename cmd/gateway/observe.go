package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/meshgate/meshgate/accesslog"
	"github.com/meshgate/meshgate/obs"
	"github.com/meshgate/meshgate/tracing"
)

// obsFlags are the access log and tracing settings of `gateway run`.
type obsFlags struct {
	accessLog, accessLogFormat, accessLogFields string
	accessLogSample                             float64
	tracingEndpoint, tracingProtocol            string
	tracingInsecure                             bool
	tracingSample                               float64
	tracingPropagators, tracingService          string
	tracingHeaders                              string
}

func (f *obsFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.accessLog, "access-log", "-", `access log: "-" for stdout, a file path (appended to), or "" for none`)
	fs.StringVar(&f.accessLogFormat, "access-log-format", "json", "access log format: json, or common (Apache common log format plus the duration in ms)")
	fs.StringVar(&f.accessLogFields, "access-log-fields", "", "comma-separated JSON fields to write (default all: "+strings.Join(accesslog.FieldNames, ",")+")")
	fs.Float64Var(&f.accessLogSample, "access-log-sample-rate", 1, "fraction of requests logged (0 < r <= 1); errors are always logged")
	fs.StringVar(&f.tracingEndpoint, "tracing-endpoint", "", `OpenTelemetry collector for traces, e.g. "127.0.0.1:4317" (grpc) or "http://127.0.0.1:4318" (http/protobuf); empty: no tracing`)
	fs.StringVar(&f.tracingProtocol, "tracing-protocol", tracing.ProtocolGRPC, "OTLP protocol: grpc or http/protobuf")
	fs.BoolVar(&f.tracingInsecure, "tracing-insecure", false, "send traces to the collector without TLS")
	fs.Float64Var(&f.tracingSample, "tracing-sample-ratio", 1, "fraction of new traces sampled (callers' sampled traces are always followed)")
	fs.StringVar(&f.tracingPropagators, "tracing-propagators", "tracecontext", "trace context formats read and written: tracecontext, and b3")
	fs.StringVar(&f.tracingService, "tracing-service-name", tracing.DefaultServiceName, "service.name of the gateway's spans")
	fs.StringVar(&f.tracingHeaders, "tracing-headers", "", "extra headers for the collector, k=v,k=v")
}

// setup builds the access log and tracer the flags ask for and adds them to
// o; the returned function flushes and closes them at shutdown.
func (f *obsFlags) setup(ctx context.Context, o *obs.Observers, version string, stdout io.Writer) (func(context.Context), error) {
	var closers []func(context.Context)
	closeAll := func(ctx context.Context) {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i](ctx)
		}
	}
	if f.accessLog != "" {
		out := stdout
		if f.accessLog != "-" {
			file, err := accesslog.Open(f.accessLog)
			if err != nil {
				return closeAll, fmt.Errorf("--access-log: %w", err)
			}
			closers = append(closers, func(context.Context) { file.Close() })
			out = file
		}
		var fields []string
		for _, s := range strings.Split(f.accessLogFields, ",") {
			if s = strings.TrimSpace(s); s != "" {
				fields = append(fields, s)
			}
		}
		al, err := accesslog.New(accesslog.Options{Output: out, Format: f.accessLogFormat, Fields: fields, SampleRate: f.accessLogSample})
		if err != nil {
			closeAll(ctx)
			return func(context.Context) {}, fmt.Errorf("--access-log: %w", err)
		}
		closers = append(closers, func(context.Context) { al.Close() })
		o.Sinks = append(o.Sinks, al)
	}
	if f.tracingEndpoint != "" {
		headers := map[string]string{}
		for _, kv := range strings.Split(f.tracingHeaders, ",") {
			if k, v, ok := strings.Cut(strings.TrimSpace(kv), "="); ok {
				headers[k] = v
			}
		}
		var props []string
		for _, p := range strings.Split(f.tracingPropagators, ",") {
			if p = strings.TrimSpace(p); p != "" {
				props = append(props, p)
			}
		}
		tr, err := tracing.New(ctx, tracing.Options{
			Endpoint: f.tracingEndpoint, Protocol: f.tracingProtocol, Insecure: f.tracingInsecure,
			SampleRatio: f.tracingSample, Propagators: props, ServiceName: f.tracingService,
			ServiceVersion: version, Headers: headers,
		})
		if err != nil {
			closeAll(ctx)
			return func(context.Context) {}, fmt.Errorf("--tracing-endpoint: %w", err)
		}
		closers = append(closers, func(ctx context.Context) { tr.Shutdown(ctx) })
		o.Tracer = tr
	}
	return closeAll, nil
}
