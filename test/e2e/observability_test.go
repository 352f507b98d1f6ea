package e2e

import (
	"bufio"
	"context"
	"encoding/hex"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
)

// otlpReceiver is an OTLP/gRPC trace receiver in the test process.
type otlpReceiver struct {
	collectortrace.UnimplementedTraceServiceServer
	mu    sync.Mutex
	spans []*tracepb.Span
}

func (o *otlpReceiver) Export(_ context.Context, req *collectortrace.ExportTraceServiceRequest) (*collectortrace.ExportTraceServiceResponse, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, rs := range req.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			o.spans = append(o.spans, ss.Spans...)
		}
	}
	return &collectortrace.ExportTraceServiceResponse{}, nil
}

func (o *otlpReceiver) find(traceID string, kind tracepb.Span_SpanKind) *tracepb.Span {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, s := range o.spans {
		if hex.EncodeToString(s.TraceId) == traceID && s.Kind == kind {
			return s
		}
	}
	return nil
}

func startOTLPReceiver(t *testing.T) (*otlpReceiver, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rcv := &otlpReceiver{}
	s := grpc.NewServer()
	collectortrace.RegisterTraceServiceServer(s, rcv)
	go s.Serve(ln)
	t.Cleanup(s.Stop)
	return rcv, ln.Addr().String()
}

func spanAttr(s *tracepb.Span, key string) string {
	for _, a := range s.Attributes {
		if a.Key == key {
			return a.Value.GetStringValue()
		}
	}
	return ""
}

// TestTracingAndAccessLog sends a request carrying a W3C traceparent through
// the gateway binary configured to export OTLP/gRPC traces to a receiver in
// this test and to write its access log to a file: the backend gets a
// traceparent of the same trace, the receiver gets the gateway's server span
// (child of the caller's) and its upstream client span, and the access log
// line carries the trace ID, route and status.
func TestTracingAndAccessLog(t *testing.T) {
	t.Parallel()
	rcv, otlpAddr := startOTLPReceiver(t)
	ip := newLoopbackIP(t)
	p := freePort(t, ip)
	be := newBackend(t, "traced")
	logPath := filepath.Join(t.TempDir(), "access.log")
	g := startGateway(t, ip, gatewayYAML(ip, listener{name: "http", port: p})+be.yaml()+simpleRoute("traced", nil, "traced"),
		"--tracing-endpoint="+otlpAddr, "--tracing-insecure", "--access-log="+logPath)

	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	const parentID = "00f067aa0ba902b7"
	r := do(t, newClient(), request{url: g.url(p, "/traced/path"), header: http.Header{"Traceparent": {"00-" + traceID + "-" + parentID + "-01"}}})
	if r.status != http.StatusOK || r.echo == nil {
		t.Fatalf("got %v", r)
	}
	tp := strings.Split(r.echo.Header.Get("Traceparent"), "-")
	if len(tp) != 4 || tp[1] != traceID || tp[2] == parentID {
		t.Fatalf("backend got traceparent %q, want trace %s with the gateway's span as parent", r.echo.Header.Get("Traceparent"), traceID)
	}

	var server, client *tracepb.Span
	pollUntil(10*time.Second, func() bool {
		server, client = rcv.find(traceID, tracepb.Span_SPAN_KIND_SERVER), rcv.find(traceID, tracepb.Span_SPAN_KIND_CLIENT)
		return server != nil && client != nil
	})
	if server == nil || client == nil {
		t.Fatalf("receiver got server span %v, client span %v", server != nil, client != nil)
	}
	if hex.EncodeToString(server.ParentSpanId) != parentID {
		t.Errorf("server span parent %x, want the caller's %s", server.ParentSpanId, parentID)
	}
	if hex.EncodeToString(client.SpanId) != tp[2] || hex.EncodeToString(client.ParentSpanId) != hex.EncodeToString(server.SpanId) {
		t.Errorf("client span %x (parent %x) is not what the backend saw (%s) under the server span %x", client.SpanId, client.ParentSpanId, tp[2], server.SpanId)
	}
	if got := spanAttr(server, "http.route"); got != "default/traced" {
		t.Errorf("server span http.route %q", got)
	}

	var line map[string]any
	pollUntil(10*time.Second, func() bool {
		f, err := os.Open(logPath)
		if err != nil {
			return false
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) == nil && m["path"] == "/traced/path" {
				line = m
				return true
			}
		}
		return false
	})
	if line == nil {
		t.Fatal("no access log line for the request")
	}
	if line["trace_id"] != traceID || line["route"] != "default/traced" || line["status"] != float64(200) || line["backend"] != "backend/default/traced" {
		t.Errorf("access log line %v", line)
	}
}
