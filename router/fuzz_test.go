package router

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/meshgate/meshgate/ir"
)

// fuzzListener exercises every lookup path: exact, wildcard and catch-all
// listener hosts and route hostnames, each match type.
func fuzzListener() *ir.Listener {
	regexHeader := ir.Match{Headers: []ir.StringMatch{{Type: ir.MatchRegularExpression, Name: "x", Value: "a.*"}}}
	regexQuery := ir.Match{QueryParams: []ir.StringMatch{{Type: ir.MatchRegularExpression, Name: "q", Value: "a.*"}}}
	return &ir.Listener{
		Name: "0.0.0.0:80", Address: "0.0.0.0:80",
		Hosts: []*ir.ListenerHost{
			{Name: "any", Routes: []*ir.Route{
				newRoute("ns/a", exactPath("/a"), hostnames("a.example.com")),
				newRoute("ns/b", prefixPath("/b/"), hostnames("*.example.com")),
				newRoute("ns/c", regexPath("/c/[0-9]+")),
				newRoute("ns/d", withQuery(withHeaders(withMethod(prefixPath("/"), "GET"), "x", "1"), "q", "1")),
				newRoute("ns/e", regexHeader),
				newRoute("ns/f", regexQuery),
			}},
			{Name: "wild", Hostname: "*.wild.test", Routes: []*ir.Route{newRoute("ns/w", prefixPath("/"))}},
			{Name: "exact", Hostname: "exact.test", Routes: []*ir.Route{newRoute("ns/x", prefixPath("/x"))}},
		},
	}
}

// FuzzMatch checks that Match never panics on arbitrary hosts, paths,
// queries and header values.
func FuzzMatch(f *testing.F) {
	for _, s := range [][4]string{
		{"a.example.com", "/a", "", ""},
		{"A.Example.COM.:80", "/b/x", "q=1", "1"},
		{"x.wild.test", "/c/12", "q=a%zz&q=%41", "a"},
		{"[::1]:8080", "//", "&&=&", "a,b"},
		{".", "", "+%", ""},
		{"", "/x", "q", "x"},
	} {
		f.Add(s[0], s[1], s[2], s[3])
	}
	tb, err := Compile(fuzzListener())
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, host, path, rawQuery, header string) {
		r := &http.Request{
			Method: http.MethodGet,
			Host:   host,
			URL:    &url.URL{Path: path, RawQuery: rawQuery},
			Header: http.Header{"X": {header, header}},
		}
		rt, ok := tb.Match(r)
		if ok != (rt != nil) {
			t.Fatalf("ok=%v but route=%v", ok, rt)
		}
		r.Header["X"] = []string{header}
		tb.Match(r)
	})
}
