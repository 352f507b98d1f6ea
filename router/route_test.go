package router

import (
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/meshgate/meshgate/ir"
)

func ptr[T any](v T) *T { return &v }

// TestRouteFilters checks that rule and backend filters are compiled in
// order and that the redirect uses the listener's port and protocol.
func TestRouteFilters(t *testing.T) {
	t.Parallel()
	hm := func(name string) *ir.HeaderModifier {
		return &ir.HeaderModifier{Add: []ir.Header{{Name: "X-Order", Value: name}}}
	}
	r := newRoute("ns/r", prefixPath("/old"), func(r *ir.Route) {
		r.Filters = []ir.Filter{
			{Type: ir.FilterRequestHeaderModifier, RequestHeaderModifier: hm("1")},
			{Type: ir.FilterResponseHeaderModifier, ResponseHeaderModifier: hm("r")},
			{Type: ir.FilterRequestHeaderModifier, RequestHeaderModifier: hm("2")},
			{Type: ir.FilterRequestRedirect, RequestRedirect: &ir.Redirect{Path: &ir.PathModifier{Type: ir.PrefixMatchReplace, Value: "/new"}}},
			{Type: ir.FilterURLRewrite, URLRewrite: &ir.URLRewrite{Hostname: ptr("up.example")}},
		}
		r.Backends = []ir.WeightedBackend{
			{Weight: 1, Target: &ir.Backend{Name: "b0"}},
			{Weight: 1, Target: &ir.Backend{Name: "b1"}, Filters: []ir.Filter{
				{Type: ir.FilterRequestHeaderModifier, RequestHeaderModifier: hm("b")},
				{Type: ir.FilterResponseHeaderModifier, ResponseHeaderModifier: hm("br")},
			}},
		}
	})
	l := listenerOf(r)
	l.Address, l.Protocol = "0.0.0.0:8443", ir.ProtocolHTTPS
	tb := mustCompile(t, l)
	req := request(http.MethodGet, "gw.example:8443", "/old/x?q=1")
	rt, ok := tb.Match(req)
	if !ok {
		t.Fatal("no match")
	}
	h := http.Header{}
	for _, m := range rt.RequestHeaders {
		m.Apply(h)
	}
	if got := strings.Join(h["X-Order"], ","); got != "1,2" {
		t.Errorf("request header filter order = %q, want 1,2", got)
	}
	if len(rt.ResponseHeaders) != 1 {
		t.Errorf("response header filters = %d, want 1", len(rt.ResponseHeaders))
	}
	if rt.MatchedPrefix() != "/old" {
		t.Errorf("MatchedPrefix = %q", rt.MatchedPrefix())
	}
	if loc := rt.Redirect.Location(req, rt.MatchedPrefix()); loc != "https://gw.example:8443/new/x?q=1" {
		t.Errorf("Location = %q", loc)
	}
	out := req.Clone(req.Context())
	rt.Rewrite.Apply(out, rt.MatchedPrefix())
	if out.Host != "up.example" {
		t.Errorf("rewritten Host = %q", out.Host)
	}
	if len(rt.Backends) != 2 || rt.Backends[1].IR != &r.Backends[1] {
		t.Fatal("Backends does not parallel IR.Backends")
	}
	if len(rt.Backends[0].RequestHeaders) != 0 || len(rt.Backends[1].RequestHeaders) != 1 || len(rt.Backends[1].ResponseHeaders) != 1 {
		t.Errorf("backend filters not compiled per backend: %+v", rt.Backends)
	}
}

func TestMatchedPrefix(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		match ir.Match
		want  string
	}{
		{name: "default", match: ir.Match{}, want: "/"},
		{name: "prefix", match: prefixPath("/a/"), want: "/a/"},
		{name: "exact", match: exactPath("/a"), want: "/a"},
		{name: "regex", match: regexPath("/a.*"), want: ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rt, err := compileRoute(newRoute("ns/r", tc.match), 80, false)
			if err != nil {
				t.Fatal(err)
			}
			if got := rt.MatchedPrefix(); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// TestPickBackendWeights draws a fixed number of times and checks each
// backend's share against its weight with a generous tolerance.
func TestPickBackendWeights(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		weights []int32
	}{
		{name: "equal", weights: []int32{1, 1}},
		{name: "skewed", weights: []int32{1, 3, 6}},
		{name: "zero never chosen", weights: []int32{0, 5, 0, 5}},
		{name: "single", weights: []int32{7}},
	}
	const draws = 20000
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := newRoute("ns/r", ir.Match{})
			r.Backends = nil
			var total int32
			for _, w := range tc.weights {
				r.Backends = append(r.Backends, ir.WeightedBackend{Weight: w, Target: &ir.Backend{}})
				total += w
			}
			rt, err := compileRoute(r, 80, false)
			if err != nil {
				t.Fatal(err)
			}
			counts := make([]int, len(tc.weights))
			for range draws {
				b := rt.PickBackend()
				if b == nil {
					t.Fatal("PickBackend returned nil")
				}
				counts[backendIndex(t, r, b)]++
			}
			for i, w := range tc.weights {
				want := float64(draws) * float64(w) / float64(total)
				if w == 0 && counts[i] != 0 {
					t.Errorf("backend %d has weight 0 but was chosen %d times", i, counts[i])
				}
				if math.Abs(float64(counts[i])-want) > 0.05*draws {
					t.Errorf("backend %d chosen %d times, want about %.0f", i, counts[i], want)
				}
			}
		})
	}
}

// backendIndex finds b in r.Backends.
func backendIndex(t *testing.T, r *ir.Route, b *ir.WeightedBackend) int {
	t.Helper()
	for i := range r.Backends {
		if &r.Backends[i] == b {
			return i
		}
	}
	t.Fatalf("backend %p not in route", b)
	return -1
}

func TestPickBackendNone(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		backends []ir.WeightedBackend
	}{
		{name: "no backends", backends: nil},
		{name: "all zero", backends: []ir.WeightedBackend{{Weight: 0}, {Weight: 0}}},
		{name: "negative treated as zero", backends: []ir.WeightedBackend{{Weight: -1}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := newRoute("ns/r", ir.Match{})
			r.Backends = tc.backends
			rt, err := compileRoute(r, 80, false)
			if err != nil {
				t.Fatal(err)
			}
			if b := rt.PickBackend(); b != nil {
				t.Errorf("got %+v, want nil", b)
			}
			if b := rt.Pick(); b != nil {
				t.Errorf("Pick got %+v, want nil", b)
			}
		})
	}
}

// TestCompileErrors checks that bad input fails Compile with the route named.
func TestCompileErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		route *ir.Route
		addr  string
	}{
		{name: "invalid path regex", route: newRoute("ns/bad", regexPath("/a("))},
		{name: "invalid header regex", route: newRoute("ns/bad", ir.Match{Headers: []ir.StringMatch{{Type: ir.MatchRegularExpression, Name: "a", Value: "["}}})},
		{name: "invalid query regex", route: newRoute("ns/bad", ir.Match{QueryParams: []ir.StringMatch{{Type: ir.MatchRegularExpression, Name: "a", Value: "*"}}})},
		{name: "unknown path type", route: newRoute("ns/bad", ir.Match{Path: ir.PathMatch{Type: "Glob", Value: "/"}})},
		{name: "unknown header type", route: newRoute("ns/bad", ir.Match{Headers: []ir.StringMatch{{Type: "Glob", Name: "a", Value: "b"}}})},
		{name: "empty header name", route: newRoute("ns/bad", ir.Match{Headers: []ir.StringMatch{{Value: "b"}}})},
		{name: "unknown filter", route: newRoute("ns/bad", ir.Match{}, func(r *ir.Route) { r.Filters = []ir.Filter{{Type: "Mirror"}} })},
		{name: "filter without config", route: newRoute("ns/bad", ir.Match{}, func(r *ir.Route) {
			r.Filters = []ir.Filter{{Type: ir.FilterRequestHeaderModifier}}
		})},
		{name: "two redirects", route: newRoute("ns/bad", ir.Match{}, func(r *ir.Route) {
			r.Filters = []ir.Filter{{Type: ir.FilterRequestRedirect, RequestRedirect: &ir.Redirect{}}, {Type: ir.FilterRequestRedirect, RequestRedirect: &ir.Redirect{}}}
		})},
		{name: "bad redirect status", route: newRoute("ns/bad", ir.Match{}, func(r *ir.Route) {
			r.Filters = []ir.Filter{{Type: ir.FilterRequestRedirect, RequestRedirect: &ir.Redirect{StatusCode: 200}}}
		})},
		{name: "redirect as backend filter", route: newRoute("ns/bad", ir.Match{}, func(r *ir.Route) {
			r.Backends[0].Filters = []ir.Filter{{Type: ir.FilterRequestRedirect, RequestRedirect: &ir.Redirect{}}}
		})},
		{name: "bad listener address", route: newRoute("ns/ok", ir.Match{}), addr: "nope"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			l := listenerOf(tc.route)
			if tc.addr != "" {
				l.Address = tc.addr
			}
			_, err := Compile(l)
			if err == nil {
				t.Fatal("want error")
			}
			if tc.addr == "" && !strings.Contains(err.Error(), tc.route.Name) {
				t.Errorf("error %q does not name the route", err)
			}
		})
	}
}

func TestCompileNil(t *testing.T) {
	t.Parallel()
	if _, err := Compile(nil); err == nil {
		t.Error("want error for nil listener")
	}
	tb := mustCompile(t, &ir.Listener{Name: "x", Address: ":80", Hosts: []*ir.ListenerHost{nil, {Routes: []*ir.Route{nil}}}})
	if _, ok := tb.Match(httptest.NewRequest(http.MethodGet, "/", nil)); ok {
		t.Error("empty table matched")
	}
	if _, ok := tb.Match(&http.Request{}); ok {
		t.Error("request without URL matched")
	}
}
