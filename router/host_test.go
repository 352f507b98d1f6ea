package router

import (
	"net/http"
	"strings"
	"testing"

	"github.com/meshgate/meshgate/ir"
)

// TestListenerHostSelection checks that the listener host whose hostname
// matches most specifically wins, with no fallback to a less specific one.
func TestListenerHostSelection(t *testing.T) {
	t.Parallel()
	lh := func(name, hostname string, routes ...*ir.Route) *ir.ListenerHost {
		return &ir.ListenerHost{Name: name, Hostname: hostname, Routes: routes}
	}
	l := &ir.Listener{
		Name: "0.0.0.0:80", Address: "0.0.0.0:80", Protocol: ir.ProtocolHTTP,
		Hosts: []*ir.ListenerHost{
			lh("ns/gw/any", "", newRoute("ns/any", prefixPath("/"))),
			lh("ns/gw/wild", "*.example.com", newRoute("ns/wild", prefixPath("/"))),
			lh("ns/gw/deep", "*.b.example.com", newRoute("ns/deep", prefixPath("/"))),
			lh("ns/gw/exact", "a.example.com", newRoute("ns/exact", exactPath("/only"))),
			lh("ns/gw/upper", "UPPER.Example.com.", newRoute("ns/upper", prefixPath("/"))),
		},
	}
	tb := mustCompile(t, l)
	tests := []struct {
		name, host, path, want string
	}{
		{name: "exact listener hostname", host: "a.example.com", path: "/only", want: "ns/exact"},
		{name: "exact listener hostname: no fallback to wildcard listener", host: "a.example.com", path: "/other", want: ""},
		{name: "wildcard listener hostname", host: "x.example.com", path: "/", want: "ns/wild"},
		{name: "wildcard matches several labels", host: "x.y.example.com", path: "/", want: "ns/wild"},
		{name: "longest wildcard wins", host: "x.b.example.com", path: "/", want: "ns/deep"},
		{name: "wildcard does not match its bare domain", host: "example.com", path: "/", want: "ns/any"},
		{name: "catch-all listener", host: "other.org", path: "/", want: "ns/any"},
		{name: "port ignored", host: "a.example.com:8080", path: "/only", want: "ns/exact"},
		{name: "case-insensitive", host: "A.EXAMPLE.COM", path: "/only", want: "ns/exact"},
		{name: "trailing dot ignored", host: "a.example.com.", path: "/only", want: "ns/exact"},
		{name: "configured hostname normalized", host: "upper.example.com", path: "/", want: "ns/upper"},
		{name: "ipv6 literal", host: "[::1]:80", path: "/", want: "ns/any"},
		{name: "empty host", host: "", path: "/", want: "ns/any"},
		{name: "leading dot is not a wildcard match", host: ".example.com", path: "/", want: "ns/any"},
		{name: "over-long host only reaches catch-all", host: strings.Repeat("a", 300) + ".example.com", path: "/", want: "ns/any"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := id(tb.Match(request(http.MethodGet, tc.host, tc.path))); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// TestRouteWithoutHostnamesTakesListenerHostname: with a wildcard listener,
// a route without hostnames ties with a route naming the same wildcard, so
// match precedence decides between them.
func TestRouteWithoutHostnamesTakesListenerHostname(t *testing.T) {
	t.Parallel()
	l := &ir.Listener{
		Name: "0.0.0.0:80", Address: "0.0.0.0:80",
		Hosts: []*ir.ListenerHost{{Name: "ns/gw/wild", Hostname: "*.example.com", Routes: []*ir.Route{
			newRoute("ns/named", prefixPath("/"), hostnames("*.example.com")),
			newRoute("ns/unnamed", prefixPath("/api")),
		}}},
	}
	tb := mustCompile(t, l)
	if got := id(tb.Match(request(http.MethodGet, "x.example.com", "/api/v1"))); got != "ns/unnamed" {
		t.Errorf("got %q, want ns/unnamed", got)
	}
}

// TestNoListenerHost: a table without a catch-all rejects other hosts.
func TestNoListenerHost(t *testing.T) {
	t.Parallel()
	l := &ir.Listener{
		Name: "0.0.0.0:80", Address: "0.0.0.0:80",
		Hosts: []*ir.ListenerHost{{Name: "ns/gw/a", Hostname: "a.example.com", Routes: []*ir.Route{newRoute("ns/a", prefixPath("/"))}}},
	}
	tb := mustCompile(t, l)
	if got := id(tb.Match(request(http.MethodGet, "b.example.com", "/"))); got != "" {
		t.Errorf("got %q, want no match", got)
	}
}

// TestMergedListenerHosts: listener hosts with the same hostname share
// routes and precedence.
func TestMergedListenerHosts(t *testing.T) {
	t.Parallel()
	l := &ir.Listener{
		Name: "0.0.0.0:80", Address: "0.0.0.0:80",
		Hosts: []*ir.ListenerHost{
			{Name: "ns/gw1/http", Routes: []*ir.Route{newRoute("ns/a", prefixPath("/"))}},
			{Name: "ns/gw2/http", Routes: []*ir.Route{newRoute("ns/b", prefixPath("/b"))}},
		},
	}
	tb := mustCompile(t, l)
	for path, want := range map[string]string{"/b/x": "ns/b", "/x": "ns/a"} {
		if got := id(tb.Match(request(http.MethodGet, "h", path))); got != want {
			t.Errorf("%s: got %q, want %q", path, got, want)
		}
	}
}

func TestStripPort(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"a.com", "a.com"},
		{"a.com:80", "a.com"},
		{"[::1]:80", "::1"},
		{"[::1]", "::1"},
		{"[::1", "[::1"},
		{"", ""},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			t.Parallel()
			if got := stripPort(tc.in); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// TestTableHostname: Hostname names the listener host Match picks, with
// the same host normalization and most-specific-wins order.
func TestTableHostname(t *testing.T) {
	tb := mustCompile(t, &ir.Listener{Name: "l", Address: "127.0.0.1:8080", Hosts: []*ir.ListenerHost{
		{Name: "exact", Hostname: "Exact.Test", Routes: []*ir.Route{newRoute("ns/e", prefixPath("/"))}},
		{Name: "wild", Hostname: "*.wild.test", Routes: []*ir.Route{newRoute("ns/w", prefixPath("/"))}},
		{Name: "deeper", Hostname: "*.a.wild.test", Routes: []*ir.Route{newRoute("ns/d", prefixPath("/"))}},
	}})
	tests := []struct {
		host, want string
		ok         bool
	}{
		{"exact.test", "exact.test", true},
		{"EXACT.test.:8443", "exact.test", true},
		{"x.wild.test", "*.wild.test", true},
		{"x.a.wild.test", "*.a.wild.test", true},
		{"wild.test", "", false},
		{"other.test", "", false},
	}
	for _, tc := range tests {
		got, ok := tb.Hostname(tc.host)
		if got != tc.want || ok != tc.ok {
			t.Errorf("Hostname(%q) = %q, %v; want %q, %v", tc.host, got, ok, tc.want, tc.ok)
		}
	}
	withAny := mustCompile(t, &ir.Listener{Name: "l", Address: "127.0.0.1:8080", Hosts: []*ir.ListenerHost{
		{Name: "any", Routes: []*ir.Route{newRoute("ns/a", prefixPath("/"))}},
	}})
	if got, ok := withAny.Hostname("anything.test"); got != "" || !ok {
		t.Errorf("listener without hostname: %q, %v; want \"\", true", got, ok)
	}
}
