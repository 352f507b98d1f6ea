package dataplane

import (
	"bufio"
	"bytes"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/meshgate/meshgate/ir"
	"github.com/meshgate/meshgate/obs"
	"github.com/meshgate/meshgate/proxy"
	"github.com/meshgate/meshgate/ratelimit"
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
	// The head nginx sends for a static file (the bench backend).
	resp := []byte("HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Thu, 26 Nov 2026 07:00:00 GMT\r\n" +
		"Content-Type: text/plain\r\nContent-Length: 19\r\nLast-Modified: Wed, 25 Nov 2026 21:00:00 GMT\r\n" +
		"Connection: keep-alive\r\nETag: \"6925a3b0-13\"\r\nAccept-Ranges: bytes\r\n\r\nhello from backend\n")
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

// policyChainListener is the listener of bench/policy-overhead.sh as the
// translator compiles it (GET /config): bare.test with no filters, and
// chain.test with a header set, a FaultInjection with delay and abort at 0%,
// a RequestMirror at 0%, a local ClientIP rate limit far above any rate
// reached, and a retry policy (2 attempts on 502/503/504), both to origin.
func policyChainListener(origin, shadow string) *ir.Listener {
	backend := func(name, addr string) *ir.Backend {
		return &ir.Backend{Name: "backend/default/" + name, Protocol: ir.BackendHTTP1, Endpoints: []ir.Endpoint{{Address: addr}}}
	}
	target := backend("origin", origin)
	all := ir.Match{Path: ir.PathMatch{Type: ir.PathPrefix, Value: "/"}}
	bare := &ir.Route{
		Name: "default/bare", Hostnames: []string{"bare.test"}, Match: all,
		Backends: []ir.WeightedBackend{{Weight: 1, Target: target}},
	}
	chain := &ir.Route{
		Name: "default/chain", Hostnames: []string{"chain.test"}, Match: all,
		Filters: []ir.Filter{
			{Type: ir.FilterRequestHeaderModifier, RequestHeaderModifier: &ir.HeaderModifier{Set: []ir.Header{{Name: "x-policy-chain", Value: "on"}}}},
			{Type: ir.FilterRequestMirror, RequestMirror: &ir.Mirror{Target: backend("shadow", shadow), Percent: 0}},
		},
		Backends: []ir.WeightedBackend{{Weight: 1, Target: target}},
		Retry: &ir.Retry{Attempts: 2, Codes: []int{502, 503, 504}, BackoffBase: 25 * time.Millisecond,
			BackoffMax: 250 * time.Millisecond, BudgetPercent: 20, MinRetryConcurrency: 3},
		Fault: &ir.Fault{Name: "default/zero-faults",
			Delay: &ir.FaultDelay{Duration: time.Second, Percent: 0},
			Abort: &ir.FaultAbort{HTTPStatus: 503, Percent: 0}},
		RateLimits: []*ir.RateLimit{{Name: "default/chain-policy/local/0", Key: ir.RateLimitClientIP,
			Requests: 10_000_000, Period: time.Second}},
		Policies: []string{"default/chain-policy"},
	}
	return &ir.Listener{Name: "bench", Address: "127.0.0.1:8080", Protocol: ir.ProtocolHTTP,
		Hosts: []*ir.ListenerHost{{Name: "default/bench/http", Routes: []*ir.Route{bare, chain}}}}
}

// benchmarkHandlerHost proxies GET / with Host host through a handler
// serving policyChainListener, set up as the Dataplane sets one up (rate
// limiter, mirrorer), so the bare and chain figures differ by the route only.
func benchmarkHandlerHost(b *testing.B, host string) {
	addr := cannedUpstream(b)
	table, err := router.Compile(policyChainListener(addr, cannedUpstream(b)))
	if err != nil {
		b.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	fw, bal := proxy.NewForwarder(), &upstream.Balancer{}
	h := &listenerHandler{forwarder: fw, balancer: bal, forwarded: &proxy.ForwardedPolicy{}, obs: &obs.Observers{},
		log: log, limiter: &ratelimit.Limiter{}, mirror: newMirrorer(fw, bal, log)}
	h.table.Store(table)
	defer h.forwarder.Close()
	req, _ := http.NewRequest("GET", "http://"+host+"/", nil)
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
	if host == "chain.test" && req.Header.Get("X-Policy-Chain") != "on" {
		b.Fatal("the chain route did not set x-policy-chain")
	}
}

// BenchmarkHandlerBare is BenchmarkProxyHTTP1 on a host-routed route with
// no filters or policy: the base of BenchmarkHandlerPolicyChain.
func BenchmarkHandlerBare(b *testing.B) { benchmarkHandlerHost(b, "bare.test") }

// BenchmarkHandlerPolicyChain is the same request on a route with the five
// features of bench/policy-overhead.sh (header modifier, rate limit, fault
// at 0%, mirror at 0%, retry policy); compare with BenchmarkHandlerBare.
func BenchmarkHandlerPolicyChain(b *testing.B) { benchmarkHandlerHost(b, "chain.test") }
