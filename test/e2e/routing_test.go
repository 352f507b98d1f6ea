package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// TestRouting covers host matching (listener and route hostnames, exact and
// wildcard), path, method, header and query matches, precedence across
// routes, and 404 when nothing matches.
func TestRouting(t *testing.T) {
	t.Parallel()
	ip := newLoopbackIP(t)
	pAny, pHosts := freePort(t, ip), freePort(t, ip)

	names := []string{
		"exacthost", "wildhost", "exactpath", "prefix", "regex", "post", "header", "headerre", "query",
		"short", "long", "hostexact", "hostwild", "methodget", "nomethod", "old", "young",
		"wildlistener", "exactlistener",
	}
	bs := map[string]*backend{}
	var cfg strings.Builder
	cfg.WriteString(gatewayYAML(ip,
		listener{name: "any", port: pAny},
		listener{name: "wild", port: pHosts, hostname: "*.example.com"},
		listener{name: "exact", port: pHosts, hostname: "foo.example.com"},
	))
	for _, n := range names {
		bs[n] = newBackend(t, n)
		cfg.WriteString(bs[n].yaml())
	}
	route := func(name, parent, created, hostnames, rules string) {
		fmt.Fprintf(&cfg, `---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: %s
  namespace: default
  creationTimestamp: %q
spec:
  parentRefs:
  - {name: gw, sectionName: %s}
  hostnames: [%s]
  rules:
%s
`, name, created, parent, hostnames, rules)
	}
	const t0 = "2024-01-01T00:00:00Z"
	one := func(b string) string { return "  - backendRefs: [" + ref(b) + "]" }
	// Hostnames on the listener without a hostname.
	route("exact-host", "any", t0, `"exact.test"`, one("exacthost"))
	route("wild-host", "any", t0, `"*.wild.test"`, one("wildhost"))
	// Match kinds, all in one route.
	route("matches", "any", t0, `"match.test"`, `
  - matches: [{path: {type: Exact, value: /exact}}]
    backendRefs: [`+ref("exactpath")+`]
  - matches: [{path: {type: PathPrefix, value: /prefix}}]
    backendRefs: [`+ref("prefix")+`]
  - matches: [{path: {type: RegularExpression, value: "/re/[0-9]+"}}]
    backendRefs: [`+ref("regex")+`]
  - matches: [{path: {type: PathPrefix, value: /method}, method: POST}]
    backendRefs: [`+ref("post")+`]
  - matches: [{path: {type: PathPrefix, value: /hdr}, headers: [{name: X-Env, value: canary}]}]
    backendRefs: [`+ref("header")+`]
  - matches: [{path: {type: PathPrefix, value: /hdr}, headers: [{type: RegularExpression, name: X-Ver, value: "v[0-9]+"}]}]
    backendRefs: [`+ref("headerre")+`]
  - matches: [{path: {type: PathPrefix, value: /q}, queryParams: [{name: v, value: "2"}]}]
    backendRefs: [`+ref("query")+`]`)
	// Precedence across routes.
	route("prec-short", "any", t0, `"prec.test"`, `
  - matches: [{path: {type: PathPrefix, value: /prec}}]
    backendRefs: [`+ref("short")+`]`)
	route("prec-long", "any", t0, `"prec.test"`, `
  - matches: [{path: {type: PathPrefix, value: /prec/long}}]
    backendRefs: [`+ref("long")+`]`)
	route("prec-method", "any", t0, `"prec.test"`, `
  - matches: [{path: {type: PathPrefix, value: /m}, method: GET}]
    backendRefs: [`+ref("methodget")+`]`)
	route("prec-nomethod", "any", t0, `"prec.test"`, `
  - matches: [{path: {type: PathPrefix, value: /m}}]
    backendRefs: [`+ref("nomethod")+`]`)
	// An exact route hostname beats a wildcard one even with a shorter path.
	route("host-exact", "any", t0, `"a.hp.test"`, `
  - matches: [{path: {type: PathPrefix, value: /}}]
    backendRefs: [`+ref("hostexact")+`]`)
	route("host-wild", "any", t0, `"*.hp.test"`, `
  - matches: [{path: {type: PathPrefix, value: /special}}]
    backendRefs: [`+ref("hostwild")+`]`)
	// Identical matches: the older route wins, even though its name sorts
	// after the younger one's.
	route("a-young", "any", "2025-06-01T00:00:00Z", `"tie.test"`, one("young"))
	route("z-old", "any", "2020-06-01T00:00:00Z", `"tie.test"`, one("old"))
	// Listener hostnames on a shared port.
	route("on-wild-listener", "wild", t0, "", one("wildlistener"))
	route("on-exact-listener", "exact", t0, "", one("exactlistener"))

	g := startGateway(t, ip, cfg.String())

	tests := []struct {
		name   string
		method string
		port   int
		host   string
		path   string
		header http.Header
		want   string // backend name; "" for a 404
	}{
		{name: "route exact hostname", port: pAny, host: "exact.test", path: "/", want: "exacthost"},
		{name: "route hostname ignores port", port: pAny, host: "exact.test:1234", path: "/x", want: "exacthost"},
		{name: "route hostname is case-insensitive", port: pAny, host: "EXACT.Test", path: "/", want: "exacthost"},
		{name: "route wildcard hostname one label", port: pAny, host: "a.wild.test", path: "/", want: "wildhost"},
		{name: "route wildcard hostname two labels", port: pAny, host: "a.b.wild.test", path: "/", want: "wildhost"},
		{name: "route wildcard hostname not apex", port: pAny, host: "wild.test", path: "/"},
		{name: "unknown host 404", port: pAny, host: "nothing.test", path: "/"},

		{name: "path exact", port: pAny, host: "match.test", path: "/exact", want: "exactpath"},
		{name: "path exact not prefix", port: pAny, host: "match.test", path: "/exact/more"},
		{name: "path prefix itself", port: pAny, host: "match.test", path: "/prefix", want: "prefix"},
		{name: "path prefix subpath", port: pAny, host: "match.test", path: "/prefix/a/b", want: "prefix"},
		{name: "path prefix trailing slash", port: pAny, host: "match.test", path: "/prefix/", want: "prefix"},
		{name: "path prefix is segment-wise", port: pAny, host: "match.test", path: "/prefixes"},
		{name: "path regex", port: pAny, host: "match.test", path: "/re/123", want: "regex"},
		{name: "path regex no match", port: pAny, host: "match.test", path: "/re/abc"},
		{name: "method POST", method: "POST", port: pAny, host: "match.test", path: "/method", want: "post"},
		{name: "method GET does not match POST", method: "GET", port: pAny, host: "match.test", path: "/method"},
		{name: "header exact", port: pAny, host: "match.test", path: "/hdr", header: http.Header{"X-Env": {"canary"}}, want: "header"},
		{name: "header exact other value", port: pAny, host: "match.test", path: "/hdr", header: http.Header{"X-Env": {"prod"}}},
		{name: "header regex", port: pAny, host: "match.test", path: "/hdr", header: http.Header{"X-Ver": {"v42"}}, want: "headerre"},
		{name: "header missing", port: pAny, host: "match.test", path: "/hdr"},
		{name: "query param", port: pAny, host: "match.test", path: "/q?v=2", want: "query"},
		{name: "query param other value", port: pAny, host: "match.test", path: "/q?v=3"},
		{name: "no rule matches path 404", port: pAny, host: "match.test", path: "/nothing"},

		{name: "longer prefix wins across routes", port: pAny, host: "prec.test", path: "/prec/long/x", want: "long"},
		{name: "shorter prefix when longer does not match", port: pAny, host: "prec.test", path: "/prec/other", want: "short"},
		{name: "method match wins across routes", method: "GET", port: pAny, host: "prec.test", path: "/m", want: "methodget"},
		{name: "no method route for other methods", method: "DELETE", port: pAny, host: "prec.test", path: "/m", want: "nomethod"},
		{name: "exact hostname route beats wildcard route", port: pAny, host: "a.hp.test", path: "/special", want: "hostexact"},
		{name: "wildcard route for other hosts", port: pAny, host: "b.hp.test", path: "/special", want: "hostwild"},
		{name: "oldest route wins a tie", port: pAny, host: "tie.test", path: "/", want: "old"},

		{name: "exact listener hostname", port: pHosts, host: "foo.example.com", path: "/", want: "exactlistener"},
		{name: "wildcard listener hostname", port: pHosts, host: "bar.example.com", path: "/", want: "wildlistener"},
		{name: "wildcard listener two labels", port: pHosts, host: "a.b.example.com", path: "/", want: "wildlistener"},
		{name: "wildcard listener not apex", port: pHosts, host: "example.com", path: "/"},
		{name: "no listener for host", port: pHosts, host: "other.test", path: "/"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			method := tc.method
			if method == "" {
				method = "GET"
			}
			r := do(t, defaultClient, request{method: method, url: g.url(tc.port, tc.path), host: tc.host, header: tc.header})
			if tc.want == "" {
				if r.status != http.StatusNotFound {
					t.Fatalf("%s %s Host %s: got %v, want 404", method, tc.path, tc.host, r)
				}
				return
			}
			if r.status != http.StatusOK || r.backend() != tc.want {
				t.Fatalf("%s %s Host %s: got %v, want 200 from %s", method, tc.path, tc.host, r, tc.want)
			}
			if r.echo.Method != method {
				t.Errorf("backend saw method %s, want %s", r.echo.Method, method)
			}
		})
	}
}
