package router

import (
	"net/http"
	"testing"

	"github.com/meshgate/meshgate/ir"
)

// TestMatchTypes covers each match condition on its own.
func TestMatchTypes(t *testing.T) {
	t.Parallel()
	regexHeader := ir.Match{Headers: []ir.StringMatch{{Type: ir.MatchRegularExpression, Name: "x-version", Value: "v[0-9]+"}}}
	regexQuery := ir.Match{QueryParams: []ir.StringMatch{{Type: ir.MatchRegularExpression, Name: "q", Value: "a b|c"}}}
	tests := []struct {
		name    string
		match   ir.Match
		method  string
		target  string
		headers []string
		want    bool
	}{
		{name: "default match is prefix /", match: ir.Match{}, target: "/anything", want: true},
		{name: "exact: equal", match: exactPath("/abc"), target: "/abc", want: true},
		{name: "exact: trailing slash differs", match: exactPath("/abc"), target: "/abc/", want: false},
		{name: "exact: case-sensitive", match: exactPath("/abc"), target: "/Abc", want: false},
		{name: "exact: longer", match: exactPath("/abc"), target: "/abcd", want: false},
		{name: "prefix: equal", match: prefixPath("/abc"), target: "/abc", want: true},
		{name: "prefix: trailing slash", match: prefixPath("/abc"), target: "/abc/", want: true},
		{name: "prefix: sub path", match: prefixPath("/abc"), target: "/abc/def", want: true},
		{name: "prefix: not on segment boundary", match: prefixPath("/abc"), target: "/abcd", want: false},
		{name: "prefix: case-sensitive", match: prefixPath("/abc"), target: "/ABC", want: false},
		{name: "prefix with slash: trailing slash ignored, matches bare", match: prefixPath("/abc/"), target: "/abc", want: true},
		{name: "prefix with slash: sub path", match: prefixPath("/abc/"), target: "/abc/x", want: true},
		{name: "prefix with slash: not /abcd", match: prefixPath("/abc/"), target: "/abcd", want: false},
		{name: "prefix: / matches all", match: prefixPath("/"), target: "/x/y", want: true},
		{name: "prefix: matches decoded path", match: prefixPath("/a b"), target: "/a%20b/c", want: true},
		{name: "regex: full match", match: regexPath("/v[0-9]+/.*"), target: "/v2/users", want: true},
		{name: "regex: anchored at start", match: regexPath("/v[0-9]+"), target: "/x/v2", want: false},
		{name: "regex: anchored at end", match: regexPath("/v[0-9]+"), target: "/v2/users", want: false},
		{name: "regex: alternation anchored as a whole", match: regexPath("/a|/b"), target: "/b/c", want: false},
		{name: "method: equal", match: withMethod(ir.Match{}, "POST"), method: "POST", target: "/", want: true},
		{name: "method: differs", match: withMethod(ir.Match{}, "POST"), method: "GET", target: "/", want: false},
		{name: "header: exact", match: withHeaders(ir.Match{}, "version", "one"), target: "/", headers: []string{"Version", "one"}, want: true},
		{name: "header: name case-insensitive", match: withHeaders(ir.Match{}, "VERSION", "one"), target: "/", headers: []string{"version", "one"}, want: true},
		{name: "header: value case-sensitive", match: withHeaders(ir.Match{}, "version", "one"), target: "/", headers: []string{"version", "One"}, want: false},
		{name: "header: missing", match: withHeaders(ir.Match{}, "version", "one"), target: "/", want: false},
		{name: "header: all must match", match: withHeaders(ir.Match{}, "a", "1", "b", "2"), target: "/", headers: []string{"a", "1"}, want: false},
		{name: "header: both match", match: withHeaders(ir.Match{}, "a", "1", "b", "2"), target: "/", headers: []string{"a", "1", "b", "2"}, want: true},
		{name: "header: repeated compared joined", match: withHeaders(ir.Match{}, "a", "1,2"), target: "/", headers: []string{"a", "1", "a", "2"}, want: true},
		{name: "header: repeated does not match first only", match: withHeaders(ir.Match{}, "a", "1"), target: "/", headers: []string{"a", "1", "a", "2"}, want: false},
		{name: "header: duplicate names, first entry wins", match: withHeaders(ir.Match{}, "a", "1", "A", "2"), target: "/", headers: []string{"a", "1"}, want: true},
		{name: "header: host", match: withHeaders(ir.Match{}, "host", "example.com"), target: "/", want: true},
		{name: "header: regex", match: regexHeader, target: "/", headers: []string{"X-Version", "v12"}, want: true},
		{name: "header: regex anchored", match: regexHeader, target: "/", headers: []string{"X-Version", "xv12"}, want: false},
		{name: "header: regex repeated", match: ir.Match{Headers: []ir.StringMatch{{Type: ir.MatchRegularExpression, Name: "a", Value: "1,.*"}}}, target: "/", headers: []string{"a", "1", "a", "2"}, want: true},
		{name: "query: exact", match: withQuery(ir.Match{}, "animal", "whale"), target: "/?animal=whale", want: true},
		{name: "query: value differs", match: withQuery(ir.Match{}, "animal", "whale"), target: "/?animal=dolphin", want: false},
		{name: "query: name case-sensitive", match: withQuery(ir.Match{}, "animal", "whale"), target: "/?Animal=whale", want: false},
		{name: "query: first value wins", match: withQuery(ir.Match{}, "animal", "whale"), target: "/?animal=whale&animal=dolphin", want: true},
		{name: "query: not first value", match: withQuery(ir.Match{}, "animal", "whale"), target: "/?animal=dolphin&animal=whale", want: false},
		{name: "query: among others", match: withQuery(ir.Match{}, "animal", "whale"), target: "/?x=1&&animal=whale&y", want: true},
		{name: "query: unescaped", match: withQuery(ir.Match{}, "a b", "c&d"), target: "/?a+b=c%26d", want: true},
		{name: "query: missing", match: withQuery(ir.Match{}, "animal", "whale"), target: "/?x=whale", want: false},
		{name: "query: key without value", match: withQuery(ir.Match{}, "animal", "whale"), target: "/?animal", want: false},
		{name: "query: all must match", match: withQuery(ir.Match{}, "a", "1", "b", "2"), target: "/?b=2", want: false},
		{name: "query: regex unescaped", match: regexQuery, target: "/?q=a+b", want: true},
		{name: "query: regex plain", match: regexQuery, target: "/?q=c", want: true},
		{name: "query: regex anchored", match: regexQuery, target: "/?q=cc", want: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tb := mustCompile(t, listenerOf(newRoute("ns/r", tc.match)))
			method := tc.method
			if method == "" {
				method = http.MethodGet
			}
			_, ok := tb.Match(request(method, "example.com", tc.target, tc.headers...))
			if ok != tc.want {
				t.Errorf("matched = %v, want %v", ok, tc.want)
			}
		})
	}
}

// TestConformanceMatching replays the routing expectations of Gateway API
// conformance tests.
func TestConformanceMatching(t *testing.T) {
	t.Parallel()
	type req struct {
		host, path string
		headers    []string
		want       string
	}
	tests := []struct {
		name   string
		routes []*ir.Route
		reqs   []req
	}{
		{
			name: "httproute-path-match-order",
			routes: []*ir.Route{
				newRoute("ns/order", exactPath("/match"), rule(0, 0)),
				newRoute("ns/order", exactPath("/match/exact"), rule(1, 0)),
				newRoute("ns/order", exactPath("/match/exact/one"), rule(2, 0)),
				newRoute("ns/order", prefixPath("/match/"), rule(3, 0)),
				newRoute("ns/order", prefixPath("/match/prefix/"), rule(4, 0)),
				newRoute("ns/order", prefixPath("/match/prefix/one"), rule(5, 0)),
			},
			reqs: []req{
				{path: "/match/exact/one", want: "ns/order#2.0"},
				{path: "/match/exact", want: "ns/order#1.0"},
				{path: "/match", want: "ns/order"},
				{path: "/match/prefix/one/any", want: "ns/order#5.0"},
				{path: "/match/prefix/any", want: "ns/order#4.0"},
				{path: "/match/any", want: "ns/order#3.0"},
			},
		},
		{
			name: "httproute-matching",
			routes: []*ir.Route{
				newRoute("ns/matching", prefixPath("/"), rule(0, 0)),
				newRoute("ns/matching", withHeaders(prefixPath("/"), "version", "one"), rule(0, 1)),
				newRoute("ns/matching", prefixPath("/v2"), rule(1, 0)),
				newRoute("ns/matching", withHeaders(prefixPath("/"), "version", "two"), rule(1, 1)),
			},
			reqs: []req{
				{path: "/", want: "ns/matching"},
				{path: "/example", want: "ns/matching"},
				{path: "/", headers: []string{"Version", "one"}, want: "ns/matching#0.1"},
				{path: "/v2", want: "ns/matching#1.0"},
				{path: "/v2/example", want: "ns/matching#1.0"},
				{path: "/", headers: []string{"Version", "two"}, want: "ns/matching#1.1"},
				{path: "/v2/", want: "ns/matching#1.0"},
				{path: "/v2example", want: "ns/matching"},
				{path: "/foo/v2/example", want: "ns/matching"},
			},
		},
		{
			name: "httproute-matching-across-routes",
			routes: []*ir.Route{
				newRoute("ns/matching-part1", prefixPath("/"), hostnames("example.com", "example.net")),
				newRoute("ns/matching-part1", withHeaders(prefixPath("/"), "version", "one"), hostnames("example.com", "example.net"), rule(0, 1)),
				newRoute("ns/matching-part2", prefixPath("/v2"), hostnames("example.com")),
				newRoute("ns/matching-part2", withHeaders(prefixPath("/"), "version", "two"), hostnames("example.com"), rule(0, 1)),
			},
			reqs: []req{
				{host: "example.com", path: "/", want: "ns/matching-part1"},
				{host: "example.com", path: "/example", want: "ns/matching-part1"},
				{host: "example.net", path: "/example", want: "ns/matching-part1"},
				{host: "example.com", path: "/example", headers: []string{"Version", "one"}, want: "ns/matching-part1#0.1"},
				{host: "example.com", path: "/v2", want: "ns/matching-part2"},
				{host: "example.net", path: "/v2", want: "ns/matching-part1"},
				{host: "example.com", path: "/v2/example", want: "ns/matching-part2"},
				{host: "example.com", path: "/", headers: []string{"Version", "two"}, want: "ns/matching-part2#0.1"},
				{host: "example.org", path: "/", want: ""},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tb := mustCompile(t, listenerOf(tc.routes...))
			for _, rq := range tc.reqs {
				host := rq.host
				if host == "" {
					host = "gw.example"
				}
				got := id(tb.Match(request(http.MethodGet, host, rq.path, rq.headers...)))
				if got != rq.want {
					t.Errorf("%s %s %v: got %q, want %q", host, rq.path, rq.headers, got, rq.want)
				}
			}
		})
	}
}

func TestEqualJoined(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		vals []string
		want string
		ok   bool
	}{
		{name: "one", vals: []string{"a"}, want: "a", ok: true},
		{name: "two", vals: []string{"a", "b"}, want: "a,b", ok: true},
		{name: "missing comma", vals: []string{"a", "b"}, want: "ab", ok: false},
		{name: "short", vals: []string{"a", "b"}, want: "a,", ok: false},
		{name: "long", vals: []string{"a", "b"}, want: "a,b,", ok: false},
		{name: "empty values", vals: []string{"", ""}, want: ",", ok: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := equalJoined(tc.vals, tc.want); got != tc.ok {
				t.Errorf("got %v, want %v", got, tc.ok)
			}
		})
	}
}
