package tracing

import (
	"compress/gzip"
	"context"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/meshgate/meshgate/obs"
)

const (
	incomingTrace  = "4bf92f3577b34da6a3ce929d0e0e4736"
	incomingParent = "00f067aa0ba902b7"
)

// receiver collects the spans an OTLP exporter sends, with the resource
// they came with.
type receiver struct {
	mu       sync.Mutex
	spans    []*tracepb.Span
	resource map[string]string
	requests int
	discard  bool
}

func (rc *receiver) add(req *collectortrace.ExportTraceServiceRequest) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.requests++
	if rc.discard {
		return
	}
	for _, rs := range req.GetResourceSpans() {
		if rc.resource == nil {
			rc.resource = map[string]string{}
		}
		for _, kv := range rs.GetResource().GetAttributes() {
			rc.resource[kv.GetKey()] = kv.GetValue().GetStringValue()
		}
		for _, ss := range rs.GetScopeSpans() {
			rc.spans = append(rc.spans, ss.GetSpans()...)
		}
	}
}

func (rc *receiver) snapshot() []*tracepb.Span {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]*tracepb.Span(nil), rc.spans...)
}

// wait polls until at least n spans have arrived, for at most 5 seconds.
func (rc *receiver) wait(t *testing.T, n int) []*tracepb.Span {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		s := rc.snapshot()
		if len(s) >= n {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("got %d spans, want %d", len(s), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type grpcReceiver struct {
	collectortrace.UnimplementedTraceServiceServer
	rc *receiver
}

func (g grpcReceiver) Export(_ context.Context, req *collectortrace.ExportTraceServiceRequest) (*collectortrace.ExportTraceServiceResponse, error) {
	g.rc.add(req)
	return &collectortrace.ExportTraceServiceResponse{}, nil
}

// startGRPC runs an OTLP/gRPC receiver on loopback and returns its address.
func startGRPC(t *testing.T, rc *receiver) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	collectortrace.RegisterTraceServiceServer(srv, grpcReceiver{rc: rc})
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	return ln.Addr().String()
}

// startHTTP runs an OTLP/HTTP receiver (protobuf) on loopback and returns
// its URL.
func startHTTP(t *testing.T, rc *receiver) string {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/traces", func(w http.ResponseWriter, r *http.Request) {
		if ct := r.Header.Get("Content-Type"); ct != "application/x-protobuf" {
			http.Error(w, "content type "+ct, http.StatusUnsupportedMediaType)
			return
		}
		var body io.Reader = r.Body
		if r.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			body = zr
		}
		b, err := io.ReadAll(body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var req collectortrace.ExportTraceServiceRequest
		if err := proto.Unmarshal(b, &req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		rc.add(&req)
		out, _ := proto.Marshal(&collectortrace.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.Write(out)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL
}

var protocols = []string{ProtocolGRPC, ProtocolHTTP}

// newTracer starts a receiver for protocol and a Tracer sending to it.
func newTracer(t *testing.T, protocol string, opts Options) (*Tracer, *receiver) {
	t.Helper()
	rc := &receiver{}
	opts.Protocol = protocol
	if protocol == ProtocolGRPC {
		opts.Endpoint = startGRPC(t, rc)
		opts.Insecure = true
	} else {
		opts.Endpoint = startHTTP(t, rc)
	}
	tr, err := New(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		tr.Shutdown(ctx)
	})
	return tr, rc
}

func flush(t *testing.T, tr *Tracer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := tr.ForceFlush(ctx); err != nil {
		t.Fatal(err)
	}
}

func newRequest(h map[string]string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "http://example.test:8080/api/items?id=1", nil)
	r.RemoteAddr = "192.0.2.1:51234"
	r.Header.Set("User-Agent", "test/1")
	for k, v := range h {
		r.Header.Set(k, v)
	}
	return r
}

// record is what the data plane would fill for r.
func record(r *http.Request, traceID string) *obs.Request {
	rec := &obs.Request{}
	rec.Reset()
	rec.Start = time.Now()
	rec.Duration = 3 * time.Millisecond
	rec.Listener = "127.0.0.1:8080"
	rec.Gateway = "default/gw/http"
	rec.Route = "default/items"
	rec.Rule = 0
	rec.Backend = "default/items-svc"
	rec.Endpoint = "10.0.0.7:9090"
	rec.Method = r.Method
	rec.Host = r.Host
	rec.Path = r.URL.Path
	rec.Proto = r.Proto
	rec.Client = r.RemoteAddr
	rec.Status = 200
	rec.BytesSent = 42
	rec.UpstreamFirstByte = 2 * time.Millisecond
	rec.TraceID = traceID
	return rec
}

// traceparent splits a W3C traceparent into trace ID, span ID and flags.
func traceparent(t *testing.T, v string) (traceID, spanID, flags string) {
	t.Helper()
	p := strings.Split(v, "-")
	if len(p) != 4 || p[0] != "00" || len(p[1]) != 32 || len(p[2]) != 16 || len(p[3]) != 2 {
		t.Fatalf("traceparent %q is malformed", v)
	}
	return p[1], p[2], p[3]
}

func attrs(s *tracepb.Span) map[string]*commonpb.AnyValue {
	m := map[string]*commonpb.AnyValue{}
	for _, kv := range s.GetAttributes() {
		m[kv.GetKey()] = kv.GetValue()
	}
	return m
}

func wantString(t *testing.T, s *tracepb.Span, key, want string) {
	t.Helper()
	v, ok := attrs(s)[key]
	if !ok {
		t.Errorf("span %q: no attribute %s (want %q)", s.GetName(), key, want)
		return
	}
	if got := v.GetStringValue(); got != want {
		t.Errorf("span %q: %s = %q, want %q", s.GetName(), key, got, want)
	}
}

func wantInt(t *testing.T, s *tracepb.Span, key string, want int64) {
	t.Helper()
	v, ok := attrs(s)[key]
	if !ok {
		t.Errorf("span %q: no attribute %s (want %d)", s.GetName(), key, want)
		return
	}
	if got := v.GetIntValue(); got != want {
		t.Errorf("span %q: %s = %d, want %d", s.GetName(), key, got, want)
	}
}

func wantAbsent(t *testing.T, s *tracepb.Span, key string) {
	t.Helper()
	if v, ok := attrs(s)[key]; ok {
		t.Errorf("span %q: attribute %s = %v, want none", s.GetName(), key, v)
	}
}

func byKind(t *testing.T, spans []*tracepb.Span, kind tracepb.Span_SpanKind) []*tracepb.Span {
	t.Helper()
	var out []*tracepb.Span
	for _, s := range spans {
		if s.GetKind() == kind {
			out = append(out, s)
		}
	}
	return out
}

func hexID(b []byte) string { return hex.EncodeToString(b) }

func TestServerAndUpstreamSpans(t *testing.T) {
	for _, protocol := range protocols {
		t.Run(protocol, func(t *testing.T) {
			tr, rc := newTracer(t, protocol, Options{SampleRatio: 1, ServiceVersion: "v9"})
			r := newRequest(map[string]string{
				"Traceparent": "00-" + incomingTrace + "-" + incomingParent + "-01",
				"Tracestate":  "vendor=x",
			})
			ctx, sp := tr.Start(r.Context(), r)
			if got := sp.TraceID(); got != incomingTrace {
				t.Fatalf("TraceID() = %q, want %q", got, incomingTrace)
			}
			if got := trace.SpanContextFromContext(ctx).TraceID().String(); got != incomingTrace {
				t.Errorf("context carries trace %q, want %q", got, incomingTrace)
			}
			// The data plane injects into the request it forwards.
			up := r.Header.Clone()
			sp.Inject(up)
			tid, childID, flags := traceparent(t, up.Get("Traceparent"))
			if tid != incomingTrace || flags != "01" {
				t.Errorf("injected traceparent %q: want trace %s, sampled", up.Get("Traceparent"), incomingTrace)
			}
			if childID == incomingParent {
				t.Error("injected the caller's span ID, want the gateway's client span")
			}
			if got := up.Get("Tracestate"); got != "vendor=x" {
				t.Errorf("tracestate = %q, want it carried on", got)
			}
			if got := up.Get("B3"); got != "" {
				t.Errorf("b3 header %q written without the b3 propagator", got)
			}
			rec := record(r, sp.TraceID())
			rec.GRPCStatus = "0"
			sp.End(rec)
			flush(t, tr)

			spans := rc.wait(t, 2)
			if len(spans) != 2 {
				t.Fatalf("got %d spans, want 2", len(spans))
			}
			servers, clients := byKind(t, spans, tracepb.Span_SPAN_KIND_SERVER), byKind(t, spans, tracepb.Span_SPAN_KIND_CLIENT)
			if len(servers) != 1 || len(clients) != 1 {
				t.Fatalf("got %d server and %d client spans, want 1 and 1", len(servers), len(clients))
			}
			srv, cli := servers[0], clients[0]
			if got := hexID(srv.GetTraceId()); got != incomingTrace {
				t.Errorf("server span trace %s, want %s", got, incomingTrace)
			}
			if got := hexID(srv.GetParentSpanId()); got != incomingParent {
				t.Errorf("server span parent %s, want %s", got, incomingParent)
			}
			if srv.GetName() != "GET default/items" {
				t.Errorf("server span name %q, want %q", srv.GetName(), "GET default/items")
			}
			wantString(t, srv, "http.request.method", "GET")
			wantString(t, srv, "url.path", "/api/items")
			wantString(t, srv, "url.scheme", "http")
			wantString(t, srv, "server.address", "example.test")
			wantInt(t, srv, "server.port", 8080)
			wantString(t, srv, "network.protocol.version", "1.1")
			wantString(t, srv, "client.address", "192.0.2.1")
			wantString(t, srv, "user_agent.original", "test/1")
			wantInt(t, srv, "http.response.status_code", 200)
			wantString(t, srv, "http.route", "default/items")
			wantString(t, srv, "meshgate.backend", "default/items-svc")
			wantString(t, srv, "meshgate.endpoint", "10.0.0.7:9090")
			wantString(t, srv, "meshgate.gateway_listener", "default/gw/http")
			wantInt(t, srv, "rpc.grpc.status_code", 0)
			wantInt(t, srv, "http.response.body.size", 42)
			wantAbsent(t, srv, "meshgate.reason")
			if c := srv.GetStatus().GetCode(); c == tracepb.Status_STATUS_CODE_ERROR {
				t.Errorf("server span status %v, want not an error", c)
			}

			if hexID(cli.GetTraceId()) != incomingTrace {
				t.Errorf("client span trace %s, want %s", hexID(cli.GetTraceId()), incomingTrace)
			}
			if !bytesEqual(cli.GetParentSpanId(), srv.GetSpanId()) {
				t.Errorf("client span parent %s, want the server span %s", hexID(cli.GetParentSpanId()), hexID(srv.GetSpanId()))
			}
			if got := hexID(cli.GetSpanId()); got != childID {
				t.Errorf("client span ID %s, but the upstream was told %s", got, childID)
			}
			if cli.GetName() != "upstream" {
				t.Errorf("client span name %q", cli.GetName())
			}
			wantString(t, cli, "network.peer.address", "10.0.0.7")
			wantInt(t, cli, "network.peer.port", 9090)
			wantString(t, cli, "server.address", "10.0.0.7")
			wantInt(t, cli, "http.response.status_code", 200)
			wantString(t, cli, "meshgate.backend", "default/items-svc")
			if ev := cli.GetEvents(); len(ev) != 1 || ev[0].GetName() != "first_byte" {
				t.Errorf("client span events %v, want first_byte", ev)
			}

			rc.mu.Lock()
			res := rc.resource
			rc.mu.Unlock()
			if res["service.name"] != DefaultServiceName || res["service.version"] != "v9" {
				t.Errorf("resource %v, want service.name %s and service.version v9", res, DefaultServiceName)
			}
		})
	}
}

func bytesEqual(a, b []byte) bool { return hex.EncodeToString(a) == hex.EncodeToString(b) }

func TestNewRootAndOneChildPerInject(t *testing.T) {
	tr, rc := newTracer(t, ProtocolGRPC, Options{SampleRatio: 1})
	r := newRequest(nil)
	_, sp := tr.Start(r.Context(), r)
	if len(sp.TraceID()) != 32 || sp.TraceID() == strings.Repeat("0", 32) {
		t.Fatalf("TraceID() = %q, want a new trace", sp.TraceID())
	}
	var ids []string
	for i := 0; i < 2; i++ {
		h := http.Header{}
		sp.Inject(h)
		tid, sid, _ := traceparent(t, h.Get("Traceparent"))
		if tid != sp.TraceID() {
			t.Errorf("attempt %d: injected trace %s, want %s", i, tid, sp.TraceID())
		}
		ids = append(ids, sid)
	}
	if ids[0] == ids[1] {
		t.Error("two attempts share a span ID")
	}
	sp.End(record(r, sp.TraceID()))
	flush(t, tr)
	spans := rc.wait(t, 3)
	srv := byKind(t, spans, tracepb.Span_SPAN_KIND_SERVER)
	cli := byKind(t, spans, tracepb.Span_SPAN_KIND_CLIENT)
	if len(srv) != 1 || len(cli) != 2 {
		t.Fatalf("got %d server and %d client spans, want 1 and 2", len(srv), len(cli))
	}
	if len(srv[0].GetParentSpanId()) != 0 {
		t.Errorf("root span has parent %s", hexID(srv[0].GetParentSpanId()))
	}
	for _, c := range cli {
		if !bytesEqual(c.GetParentSpanId(), srv[0].GetSpanId()) {
			t.Errorf("client span %s not a child of the server span", hexID(c.GetSpanId()))
		}
	}
}

func TestErrorOutcomes(t *testing.T) {
	for _, protocol := range protocols {
		t.Run(protocol, func(t *testing.T) {
			tr, rc := newTracer(t, protocol, Options{SampleRatio: 1})
			cases := []struct {
				status int
				reason string
				grpc   string
				inject bool
				err    bool
			}{
				{503, "upstream_connect_failure", "14", true, true},
				{0, "aborted", "", true, true},
				{502, "", "", true, true},
				{404, "no_route", "", false, false},
				{499, "client_canceled", "", true, false},
			}
			ids := map[string]int{}
			for i, c := range cases {
				r := newRequest(nil)
				_, sp := tr.Start(r.Context(), r)
				if c.inject {
					sp.Inject(http.Header{})
				}
				rec := record(r, sp.TraceID())
				rec.Status, rec.Reason, rec.GRPCStatus = c.status, c.reason, c.grpc
				if !c.inject {
					rec.Route, rec.Rule, rec.Backend, rec.Endpoint = "", -1, "", ""
				}
				sp.End(rec)
				ids[sp.TraceID()] = i
			}
			flush(t, tr)
			spans := rc.wait(t, 9)
			for _, s := range byKind(t, spans, tracepb.Span_SPAN_KIND_SERVER) {
				i, ok := ids[hexID(s.GetTraceId())]
				if !ok {
					t.Fatalf("unknown trace %s", hexID(s.GetTraceId()))
				}
				c := cases[i]
				isErr := s.GetStatus().GetCode() == tracepb.Status_STATUS_CODE_ERROR
				if isErr != c.err {
					t.Errorf("status %d reason %q: error status %v, want %v", c.status, c.reason, isErr, c.err)
				}
				if c.reason != "" {
					wantString(t, s, "meshgate.reason", c.reason)
				}
				if c.status == 0 {
					wantAbsent(t, s, "http.response.status_code")
				} else {
					wantInt(t, s, "http.response.status_code", int64(c.status))
				}
				if c.grpc != "" {
					wantInt(t, s, "rpc.grpc.status_code", 14)
				}
				if !c.inject {
					if s.GetName() != "HTTP GET" {
						t.Errorf("unrouted span named %q, want %q", s.GetName(), "HTTP GET")
					}
					wantAbsent(t, s, "http.route")
				}
				if c.err {
					if s.GetStatus().GetMessage() == "" {
						t.Errorf("status %d: error status without a message", c.status)
					}
				}
			}
			for _, s := range byKind(t, spans, tracepb.Span_SPAN_KIND_CLIENT) {
				c := cases[ids[hexID(s.GetTraceId())]]
				isErr := s.GetStatus().GetCode() == tracepb.Status_STATUS_CODE_ERROR
				if isErr != c.err {
					t.Errorf("upstream span, status %d reason %q: error %v, want %v", c.status, c.reason, isErr, c.err)
				}
			}
		})
	}
}

func TestB3(t *testing.T) {
	const (
		b3Trace  = "80f198ee56343ba864fe8b2a57d3eff7"
		b3Parent = "e457b5a2e4d86bd1"
	)
	for _, protocol := range protocols {
		t.Run(protocol, func(t *testing.T) {
			tr, rc := newTracer(t, protocol, Options{SampleRatio: 1, Propagators: []string{"tracecontext", "b3"}})
			incoming := []map[string]string{
				{"X-B3-TraceId": b3Trace, "X-B3-SpanId": b3Parent, "X-B3-Sampled": "1", "X-B3-ParentSpanId": "05e3ac9a4f6e3b90"},
				{"B3": b3Trace + "-" + b3Parent + "-1"},
			}
			for _, h := range incoming {
				r := newRequest(h)
				_, sp := tr.Start(r.Context(), r)
				if sp.TraceID() != b3Trace {
					t.Fatalf("headers %v: TraceID() = %s, want %s", h, sp.TraceID(), b3Trace)
				}
				up := r.Header.Clone()
				sp.Inject(up)
				_, childID, _ := traceparent(t, up.Get("Traceparent"))
				if got, want := up.Get("B3"), b3Trace+"-"+childID+"-1"; got != want {
					t.Errorf("b3 = %q, want %q", got, want)
				}
				if up.Get("X-B3-TraceId") != b3Trace || up.Get("X-B3-SpanId") != childID || up.Get("X-B3-Sampled") != "1" {
					t.Errorf("b3 multi headers: trace %q span %q sampled %q, want %s %s 1",
						up.Get("X-B3-TraceId"), up.Get("X-B3-SpanId"), up.Get("X-B3-Sampled"), b3Trace, childID)
				}
				if v := up.Get("X-B3-ParentSpanId"); v != "" {
					t.Errorf("stale X-B3-ParentSpanId %q forwarded", v)
				}
				sp.End(record(r, sp.TraceID()))
			}
			flush(t, tr)
			spans := rc.wait(t, 4)
			for _, s := range byKind(t, spans, tracepb.Span_SPAN_KIND_SERVER) {
				if hexID(s.GetTraceId()) != b3Trace || hexID(s.GetParentSpanId()) != b3Parent {
					t.Errorf("server span trace %s parent %s, want %s %s",
						hexID(s.GetTraceId()), hexID(s.GetParentSpanId()), b3Trace, b3Parent)
				}
			}

			// A traceparent wins over B3 when a request carries both.
			r := newRequest(map[string]string{
				"Traceparent": "00-" + incomingTrace + "-" + incomingParent + "-01",
				"B3":          b3Trace + "-" + b3Parent + "-1",
			})
			_, sp := tr.Start(r.Context(), r)
			if sp.TraceID() != incomingTrace {
				t.Errorf("with both headers TraceID() = %s, want the traceparent's %s", sp.TraceID(), incomingTrace)
			}
			sp.End(record(r, sp.TraceID()))
		})
	}
}

func TestB3IgnoredUnlessConfigured(t *testing.T) {
	tr, _ := newTracer(t, ProtocolGRPC, Options{SampleRatio: 1})
	r := newRequest(map[string]string{"B3": "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1"})
	_, sp := tr.Start(r.Context(), r)
	if sp.TraceID() == "80f198ee56343ba864fe8b2a57d3eff7" {
		t.Error("B3 header extracted without the b3 propagator")
	}
	sp.End(record(r, sp.TraceID()))
}

func TestSampleRatioZero(t *testing.T) {
	for _, protocol := range protocols {
		t.Run(protocol, func(t *testing.T) {
			tr, rc := newTracer(t, protocol, Options{SampleRatio: 0, Propagators: []string{"b3"}})

			// An unsampled caller: its trace ID goes on, unsampled.
			r := newRequest(map[string]string{"Traceparent": "00-" + incomingTrace + "-" + incomingParent + "-00"})
			_, sp := tr.Start(r.Context(), r)
			if sp.TraceID() != incomingTrace {
				t.Errorf("TraceID() = %s, want %s", sp.TraceID(), incomingTrace)
			}
			up := r.Header.Clone()
			sp.Inject(up)
			tid, _, flags := traceparent(t, up.Get("Traceparent"))
			if tid != incomingTrace || flags != "00" {
				t.Errorf("injected %q, want trace %s unsampled", up.Get("Traceparent"), incomingTrace)
			}
			if got := up.Get("X-B3-Sampled"); got != "0" {
				t.Errorf("X-B3-Sampled = %q, want 0", got)
			}
			sp.End(record(r, sp.TraceID()))

			// No caller context: a new trace, propagated unsampled.
			r = newRequest(nil)
			_, sp = tr.Start(r.Context(), r)
			up = http.Header{}
			sp.Inject(up)
			tid, _, flags = traceparent(t, up.Get("Traceparent"))
			if tid != sp.TraceID() || flags != "00" {
				t.Errorf("injected %q, want trace %s unsampled", up.Get("Traceparent"), sp.TraceID())
			}
			sp.End(record(r, sp.TraceID()))
			flush(t, tr)

			// A sampled caller is followed (parent-based); its spans are
			// the marker that everything before has been exported.
			const marker = "0af7651916cd43dd8448eb211c80319c"
			r = newRequest(map[string]string{"Traceparent": "00-" + marker + "-b7ad6b7169203331-01"})
			_, sp = tr.Start(r.Context(), r)
			sp.End(record(r, sp.TraceID()))
			flush(t, tr)
			spans := rc.wait(t, 1)
			for _, s := range spans {
				if hexID(s.GetTraceId()) != marker {
					t.Errorf("exported span %q of trace %s, want only the sampled caller's", s.GetName(), hexID(s.GetTraceId()))
				}
			}
		})
	}
}

func TestShutdownFlushes(t *testing.T) {
	for _, protocol := range protocols {
		t.Run(protocol, func(t *testing.T) {
			tr, rc := newTracer(t, protocol, Options{SampleRatio: 1})
			for i := 0; i < 3; i++ {
				r := newRequest(nil)
				_, sp := tr.Start(r.Context(), r)
				sp.Inject(http.Header{})
				sp.End(record(r, sp.TraceID()))
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := tr.Shutdown(ctx); err != nil {
				t.Fatal(err)
			}
			if n := len(rc.snapshot()); n != 6 {
				t.Errorf("after Shutdown the receiver has %d spans, want 6", n)
			}
			// Requests after Shutdown are served without spans.
			r := newRequest(nil)
			_, sp := tr.Start(r.Context(), r)
			h := http.Header{}
			sp.Inject(h)
			sp.End(record(r, sp.TraceID()))
		})
	}
}

func TestOptionErrors(t *testing.T) {
	for name, o := range map[string]Options{
		"no endpoint": {SampleRatio: 1},
		"protocol":    {Endpoint: "127.0.0.1:4317", Protocol: "thrift"},
		"propagator":  {Endpoint: "127.0.0.1:4317", Propagators: []string{"jaeger"}},
		"ratio":       {Endpoint: "127.0.0.1:4317", SampleRatio: 1.5},
		"scheme":      {Endpoint: "ftp://127.0.0.1:4317"},
		"no port":     {Endpoint: "collector"},
	} {
		if tr, err := New(context.Background(), o); err == nil {
			tr.Shutdown(context.Background())
			t.Errorf("%s: New(%+v) succeeded, want an error", name, o)
		}
	}
}

func BenchmarkSpan(b *testing.B) {
	for _, bc := range []struct {
		name  string
		ratio float64
	}{{"sampled", 1}, {"unsampled", 0}} {
		b.Run(bc.name, func(b *testing.B) {
			rc := &receiver{discard: true}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			srv := grpc.NewServer()
			collectortrace.RegisterTraceServiceServer(srv, grpcReceiver{rc: rc})
			go srv.Serve(ln)
			defer srv.Stop()
			tr, err := New(context.Background(), Options{Endpoint: ln.Addr().String(), Insecure: true, SampleRatio: bc.ratio})
			if err != nil {
				b.Fatal(err)
			}
			defer tr.Shutdown(context.Background())
			flags := "-00"
			if bc.ratio > 0 {
				flags = "-01"
			}
			r := newRequest(map[string]string{"Traceparent": "00-" + incomingTrace + "-" + incomingParent + flags})
			rec := record(r, incomingTrace)
			h := http.Header{}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				_, sp := tr.Start(r.Context(), r)
				sp.Inject(h)
				sp.End(rec)
			}
		})
	}
}
