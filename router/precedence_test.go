package router

import (
	"net/http"
	"testing"
	"time"

	"github.com/meshgate/meshgate/ir"
)

// TestPrecedence checks each tie-breaker of the HTTPRouteSpec.Hostnames and
// HTTPRouteRule.Matches doc comments. Every case lists routes that all match
// the request, in an order where the expected winner is not first, and
// names the rule that decides.
func TestPrecedence(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		routes  []*ir.Route
		host    string
		method  string
		target  string
		headers []string
		want    string
	}{
		{
			name: "hostnames: most characters in a matching non-wildcard hostname (exact beats wildcard)",
			routes: []*ir.Route{
				newRoute("ns/wild", exactPath("/x"), hostnames("*.example.com")),
				newRoute("ns/exact", prefixPath("/"), hostnames("a.example.com")),
			},
			host: "a.example.com", target: "/x", want: "ns/exact",
		},
		{
			name: "hostnames: most characters in a matching hostname (longer wildcard wins)",
			routes: []*ir.Route{
				newRoute("ns/short", exactPath("/x"), hostnames("*.example.com")),
				newRoute("ns/long", prefixPath("/"), hostnames("*.b.example.com")),
			},
			host: "a.b.example.com", target: "/x", want: "ns/long",
		},
		{
			name: "hostnames: any matching hostname beats no hostname",
			routes: []*ir.Route{
				newRoute("ns/none", exactPath("/x")),
				newRoute("ns/wild", prefixPath("/"), hostnames("*.example.com")),
			},
			host: "a.example.com", target: "/x", want: "ns/wild",
		},
		{
			name: "hostnames: specificity is per matching hostname (route with exact and wildcard counts as exact)",
			routes: []*ir.Route{
				newRoute("ns/wild", exactPath("/x"), hostnames("*.example.com"), created(-time.Hour)),
				newRoute("ns/both", prefixPath("/"), hostnames("b.example.com", "*.example.com")),
			},
			host: "b.example.com", target: "/x", want: "ns/both",
		},
		{
			name: "hostnames: ...and as a wildcard for other hosts",
			routes: []*ir.Route{
				newRoute("ns/both", prefixPath("/"), hostnames("b.example.com", "*.example.com")),
				newRoute("ns/c-exact", prefixPath("/"), hostnames("c.example.com")),
			},
			host: "c.example.com", target: "/x", want: "ns/c-exact",
		},
		{
			name: "hostnames: falls through to less specific hostnames when nothing more specific matches",
			routes: []*ir.Route{
				newRoute("ns/exact", exactPath("/only"), hostnames("a.example.com")),
				newRoute("ns/wild", prefixPath("/"), hostnames("*.example.com")),
			},
			host: "a.example.com", target: "/x", want: "ns/wild",
		},
		{
			name: "matches: Exact path match before PathPrefix",
			routes: []*ir.Route{
				newRoute("ns/a", prefixPath("/foo/bar")),
				newRoute("ns/b", exactPath("/foo")),
				newRoute("ns/c", exactPath("/foo/bar")),
			},
			target: "/foo/bar", want: "ns/c",
		},
		{
			name: "matches: PathPrefix with the largest number of characters",
			routes: []*ir.Route{
				newRoute("ns/a", prefixPath("/")),
				newRoute("ns/b", prefixPath("/foo")),
				newRoute("ns/c", prefixPath("/foo/bar")),
			},
			target: "/foo/bar/baz", want: "ns/c",
		},
		{
			name: "matches: RegularExpression after PathPrefix (implementation-specific: our choice)",
			routes: []*ir.Route{
				newRoute("ns/a", regexPath("/foo/.*"), created(-time.Hour)),
				newRoute("ns/b", prefixPath("/")),
			},
			target: "/foo/bar", want: "ns/b",
		},
		{
			name: "matches: longer RegularExpression first (implementation-specific)",
			routes: []*ir.Route{
				newRoute("ns/a", regexPath("/.*")),
				newRoute("ns/b", regexPath("/foo/.*")),
			},
			target: "/foo/bar", want: "ns/b",
		},
		{
			name: "matches: method match",
			routes: []*ir.Route{
				newRoute("ns/a", withHeaders(prefixPath("/"), "a", "1")),
				newRoute("ns/b", withMethod(prefixPath("/"), "GET")),
			},
			target: "/", headers: []string{"a", "1"}, want: "ns/b",
		},
		{
			name: "matches: largest number of header matches",
			routes: []*ir.Route{
				newRoute("ns/a", withQuery(withHeaders(prefixPath("/"), "a", "1"), "q", "1", "r", "2")),
				newRoute("ns/b", withHeaders(prefixPath("/"), "a", "1", "b", "2")),
			},
			target: "/?q=1&r=2", headers: []string{"a", "1", "b", "2"}, want: "ns/b",
		},
		{
			name: "matches: duplicate header names count once",
			routes: []*ir.Route{
				newRoute("ns/a", withHeaders(prefixPath("/"), "a", "1", "A", "1")),
				newRoute("ns/b", withQuery(withHeaders(prefixPath("/"), "b", "2"), "q", "1")),
			},
			target: "/?q=1", headers: []string{"a", "1", "b", "2"}, want: "ns/b",
		},
		{
			name: "matches: largest number of query param matches",
			routes: []*ir.Route{
				newRoute("ns/a", withQuery(prefixPath("/"), "q", "1")),
				newRoute("ns/b", withQuery(prefixPath("/"), "q", "1", "r", "2")),
			},
			target: "/?q=1&r=2", want: "ns/b",
		},
		{
			name: "path beats method: PathPrefix length before method match",
			routes: []*ir.Route{
				newRoute("ns/a", withMethod(prefixPath("/"), "GET")),
				newRoute("ns/b", prefixPath("/foo")),
			},
			target: "/foo", want: "ns/b",
		},
		{
			name: "across routes: oldest creation timestamp",
			routes: []*ir.Route{
				newRoute("ns/a", prefixPath("/")),
				newRoute("ns/b", prefixPath("/"), created(-time.Minute)),
			},
			target: "/", want: "ns/b",
		},
		{
			name: "across routes: alphabetical namespace/name",
			routes: []*ir.Route{
				newRoute("ns/b", prefixPath("/")),
				newRoute("ns/a", prefixPath("/")),
				newRoute("aa/z", prefixPath("/")),
			},
			target: "/", want: "aa/z",
		},
		{
			name: "within a route: first matching rule in list order",
			routes: []*ir.Route{
				newRoute("ns/r", prefixPath("/"), rule(2, 0)),
				newRoute("ns/r", prefixPath("/"), rule(1, 0)),
			},
			target: "/", want: "ns/r#1.0",
		},
		{
			name: "within a rule: first match in list order",
			routes: []*ir.Route{
				newRoute("ns/r", prefixPath("/"), rule(1, 1)),
				newRoute("ns/r", prefixPath("/"), rule(1, 0)),
			},
			target: "/", want: "ns/r#1.0",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tb := mustCompile(t, listenerOf(tc.routes...))
			host := tc.host
			if host == "" {
				host = "example.com"
			}
			method := tc.method
			if method == "" {
				method = http.MethodGet
			}
			got := id(tb.Match(request(method, host, tc.target, tc.headers...)))
			if got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
			// Precedence must not depend on input order.
			rev := make([]*ir.Route, len(tc.routes))
			for i, r := range tc.routes {
				rev[len(rev)-1-i] = r
			}
			tb = mustCompile(t, listenerOf(rev...))
			if got := id(tb.Match(request(method, host, tc.target, tc.headers...))); got != tc.want {
				t.Errorf("reversed input: got %q, want %q", got, tc.want)
			}
		})
	}
}
