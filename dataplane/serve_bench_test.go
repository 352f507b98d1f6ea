package dataplane

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/meshgate/meshgate/ir"
	"github.com/meshgate/meshgate/obs"
	"github.com/meshgate/meshgate/proxy"
	"github.com/meshgate/meshgate/router"
	"github.com/meshgate/meshgate/server"
	"github.com/meshgate/meshgate/upstream"
)

// proxiedH1 starts a gateway HTTP/1.1 listener, routing everything to a
// canned upstream, and returns a function making one keep-alive request
// through it on one raw client connection. The client and the upstream
// allocate nothing per request, so allocations measured around the
// function are the gateway's own: Meshgate's server loop (request parsing,
// response writing), routing, header handling, the pooled upstream client
// and the response copy.
func proxiedH1(tb testing.TB) (roundTrip func()) {
	addr := cannedUpstream(tb)
	table, err := router.Compile(&ir.Listener{Name: "bench", Address: "127.0.0.1:0", Protocol: ir.ProtocolHTTP,
		Hosts: []*ir.ListenerHost{{Name: "default/bench/http", Routes: []*ir.Route{{
			Name:     "default/all",
			Match:    ir.Match{Path: ir.PathMatch{Type: ir.PathPrefix, Value: "/"}},
			Backends: []ir.WeightedBackend{{Weight: 1, Target: &ir.Backend{Name: "backend/default/origin", Protocol: ir.BackendHTTP1, Endpoints: []ir.Endpoint{{Address: addr}}}}},
		}}}}})
	if err != nil {
		tb.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	h := &listenerHandler{forwarder: proxy.NewForwarder(), balancer: &upstream.Balancer{}, forwarded: &proxy.ForwardedPolicy{}, obs: &obs.Observers{}, log: log}
	h.table.Store(table)
	tb.Cleanup(h.forwarder.Close)
	l, err := server.Listen("127.0.0.1:0", h, server.Limits{}, log)
	if err != nil {
		tb.Fatal(err)
	}
	l.Serve()
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		l.Shutdown(ctx)
	})
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	req := []byte("GET /bench HTTP/1.1\r\nHost: example.com\r\nUser-Agent: wrk\r\nAccept: */*\r\n\r\n")
	br := bufio.NewReaderSize(c, 8192)
	roundTrip = func() {
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write(req); err != nil {
			tb.Fatal(err)
		}
		status, length := 0, -1
		for {
			line, err := br.ReadSlice('\n')
			if err != nil {
				tb.Fatal(err)
			}
			if status == 0 {
				if len(line) < 12 {
					tb.Fatalf("bad status line %q", line)
				}
				status = int(line[9]-'0')*100 + int(line[10]-'0')*10 + int(line[11]-'0')
				continue
			}
			line = bytes.TrimRight(line, "\r\n")
			if len(line) == 0 {
				break
			}
			if name, value, ok := bytes.Cut(line, []byte(":")); ok && bytes.EqualFold(name, []byte("Content-Length")) {
				n, err := strconv.Atoi(string(bytes.TrimSpace(value)))
				if err != nil {
					tb.Fatal(err)
				}
				length = n
			}
		}
		if status != 200 || length < 0 {
			tb.Fatalf("status %d, content length %d", status, length)
		}
		if _, err := br.Discard(length); err != nil {
			tb.Fatal(err)
		}
	}
	roundTrip() // connect upstream and warm the pools
	return roundTrip
}

// BenchmarkServeProxyHTTP1 is one proxied HTTP/1.1 keep-alive request
// through everything the gateway runs for it (see proxiedH1); its
// allocs/op is the figure issue 9 bounds at 5.
func BenchmarkServeProxyHTTP1(b *testing.B) {
	roundTrip := proxiedH1(b)
	b.ReportAllocs()
	for b.Loop() {
		roundTrip()
	}
}

// TestServeProxyHTTP1Allocs holds a repeated proxied HTTP/1.1 request,
// with the response head nginx sends, to no allocation (1 allowed for a
// pool refill after a GC): the request head's strings are the last
// request's when its bytes are the same (server's headBuf.last), the
// response head goes to the client as header lines (proxy.RawHeadSink),
// header value slices come from the connection (internal/hdrvals) and so
// does the Forwarded value (proxy.ForwardedMemo).
func TestServeProxyHTTP1Allocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts differ under the race detector; make test runs this test again without it")
	}
	roundTrip := proxiedH1(t)
	if allocs := testing.AllocsPerRun(2000, roundTrip); allocs > 1 {
		t.Errorf("a proxied request allocates %.2f times, want 0 (at most 1)", allocs)
	}
}
