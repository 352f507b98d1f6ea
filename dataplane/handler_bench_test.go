package dataplane

import (
	"bufio"
	"bytes"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"

	"github.com/meshgate/meshgate/ir"
	"github.com/meshgate/meshgate/obs"
	"github.com/meshgate/meshgate/proxy"
	"github.com/meshgate/meshgate/router"
	"github.com/meshgate/meshgate/upstream"
)

// cannedUpstream answers every request on every connection with the same
// bytes and allocates nothing per request, so the benchmark counts the
// gateway's allocations only.
func cannedUpstream(tb testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ln.Close() })
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 19\r\n\r\nhello from backend\n")
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					// Requests in the benchmark have no body: read to the blank line.
					for {
						line, err := br.ReadSlice('\n')
						if err != nil {
							return
						}
						if len(bytes.TrimSpace(line)) == 0 {
							break
						}
					}
					if _, err := c.Write(resp); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

type benchWriter struct {
	h      http.Header
	status int
}

func (w *benchWriter) Header() http.Header         { return w.h }
func (w *benchWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *benchWriter) WriteHeader(s int)           { w.status = s }

// BenchmarkProxyHTTP1 measures the gateway's own work per proxied HTTP/1.1
// request: routing, header handling, forwarding and response copy (the
// downstream net/http server is not included).
func BenchmarkProxyHTTP1(b *testing.B) {
	addr := cannedUpstream(b)
	table, err := router.Compile(&ir.Listener{Name: "bench", Address: "127.0.0.1:8080", Protocol: ir.ProtocolHTTP,
		Hosts: []*ir.ListenerHost{{Name: "default/bench/http", Routes: []*ir.Route{{
			Name:     "default/all",
			Match:    ir.Match{Path: ir.PathMatch{Type: ir.PathPrefix, Value: "/"}},
			Backends: []ir.WeightedBackend{{Weight: 1, Target: &ir.Backend{Name: "backend/default/origin", Protocol: ir.BackendHTTP1, Endpoints: []ir.Endpoint{{Address: addr}}}}},
		}}}}})
	if err != nil {
		b.Fatal(err)
	}
	h := &listenerHandler{forwarder: proxy.NewForwarder(), balancer: &upstream.Balancer{}, forwarded: &proxy.ForwardedPolicy{}, obs: &obs.Observers{},
		log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	h.table.Store(table)
	defer h.forwarder.Close()
	req, _ := http.NewRequest("GET", "http://example.com/", nil)
	req.RequestURI = "/"
	req.RemoteAddr = "127.0.0.1:40000"
	w := &benchWriter{h: http.Header{}}
	hdr := http.Header{"Accept": {"*/*"}, "User-Agent": {"wrk"}}
	b.ReportAllocs()
	for b.Loop() {
		clear(w.h)
		req.Header = hdr.Clone()
		h.ServeHTTP(w, req)
		if w.status != 200 {
			b.Fatalf("status %d", w.status)
		}
	}
}
