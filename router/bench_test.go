package router

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/meshgate/meshgate/ir"
)

// manyRoutes builds n routes, each a distinct host and path, on one
// catch-all listener host.
func manyRoutes(n int) *ir.Listener {
	routes := make([]*ir.Route, n)
	for i := range routes {
		routes[i] = newRoute(fmt.Sprintf("ns/r%d", i), prefixPath(fmt.Sprintf("/path%d", i)),
			hostnames(fmt.Sprintf("host%d.example.com", i)))
	}
	return listenerOf(routes...)
}

// TestMatchAllocs verifies the hot path allocates nothing, across the
// lookup paths and match conditions.
func TestMatchAllocs(t *testing.T) {
	tb := mustCompile(t, fuzzListener())
	big := mustCompile(t, manyRoutes(1000))
	tests := []struct {
		name string
		tb   *Table
		req  *http.Request
	}{
		{name: "exact route hostname", tb: tb, req: request(http.MethodGet, "a.example.com", "/a")},
		{name: "uppercase host with port and dot", tb: tb, req: request(http.MethodGet, "A.EXAMPLE.COM.:8080", "/b/x")},
		{name: "wildcard listener", tb: tb, req: request(http.MethodGet, "x.y.wild.test", "/z")},
		{name: "headers and query", tb: tb, req: request(http.MethodGet, "other", "/?z=2&q=1", "x", "1")},
		{name: "regex path", tb: tb, req: request(http.MethodGet, "other", "/c/123")},
		{name: "regex header", tb: tb, req: request(http.MethodPost, "other", "/", "x", "abc")},
		{name: "no match", tb: big, req: request(http.MethodGet, "nohost.example.com", "/")},
		{name: "1000 routes last", tb: big, req: request(http.MethodGet, "host999.example.com", "/path999/x")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if allocs := testing.AllocsPerRun(100, func() { tc.tb.Match(tc.req) }); allocs != 0 {
				t.Errorf("Match allocates %v times, want 0", allocs)
			}
		})
	}
}

func BenchmarkMatch(b *testing.B) {
	for _, n := range []int{10, 1000, 10000} {
		b.Run(fmt.Sprintf("routes=%d", n), func(b *testing.B) {
			tb := mustCompile(b, manyRoutes(n))
			last := n - 1
			req := request(http.MethodGet, fmt.Sprintf("host%d.example.com", last), fmt.Sprintf("/path%d/x", last))
			if rt, ok := tb.Match(req); !ok || rt.IR.Name != fmt.Sprintf("ns/r%d", last) {
				b.Fatalf("did not match the last route")
			}
			b.ReportAllocs()
			for b.Loop() {
				tb.Match(req)
			}
		})
	}
}

// BenchmarkMatchPrecedence measures a single host with many path routes,
// where the request falls through to the least specific one.
func BenchmarkMatchPrecedence(b *testing.B) {
	routes := make([]*ir.Route, 100)
	for i := range routes {
		routes[i] = newRoute(fmt.Sprintf("ns/r%d", i), prefixPath(fmt.Sprintf("/p%d", i)))
	}
	routes = append(routes, newRoute("ns/root", prefixPath("/")))
	tb := mustCompile(b, listenerOf(routes...))
	req := request(http.MethodGet, "example.com", "/nothing")
	b.ReportAllocs()
	for b.Loop() {
		tb.Match(req)
	}
}

func BenchmarkPickBackend(b *testing.B) {
	r := newRoute("ns/r", ir.Match{})
	r.Backends = []ir.WeightedBackend{{Weight: 1}, {Weight: 2}, {Weight: 0}, {Weight: 3}}
	rt, err := compileRoute(r, 80, false)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		rt.PickBackend()
	}
}
