package router

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/meshgate/meshgate/ir"
)

// t0 is a fixed base CreationTimestamp.
var t0 = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// newRoute builds an ir.Route with one backend named after it. Options edit
// it further.
func newRoute(name string, m ir.Match, opts ...func(*ir.Route)) *ir.Route {
	r := &ir.Route{
		Name:              name,
		CreationTimestamp: t0,
		Match:             m,
		Backends:          []ir.WeightedBackend{{Weight: 1, Target: &ir.Backend{Name: name}}},
	}
	for _, o := range opts {
		o(r)
	}
	return r
}

func hostnames(hs ...string) func(*ir.Route) { return func(r *ir.Route) { r.Hostnames = hs } }
func rule(rule, match int) func(*ir.Route) {
	return func(r *ir.Route) { r.RuleIndex, r.MatchIndex = rule, match }
}
func created(d time.Duration) func(*ir.Route) {
	return func(r *ir.Route) { r.CreationTimestamp = t0.Add(d) }
}

func exactPath(v string) ir.Match { return ir.Match{Path: ir.PathMatch{Type: ir.PathExact, Value: v}} }
func prefixPath(v string) ir.Match {
	return ir.Match{Path: ir.PathMatch{Type: ir.PathPrefix, Value: v}}
}
func regexPath(v string) ir.Match {
	return ir.Match{Path: ir.PathMatch{Type: ir.PathRegularExpression, Value: v}}
}

// withHeaders, withQuery and withMethod add conditions to a Match.
func withHeaders(m ir.Match, kv ...string) ir.Match {
	for i := 0; i < len(kv); i += 2 {
		m.Headers = append(m.Headers, ir.StringMatch{Type: ir.MatchExact, Name: kv[i], Value: kv[i+1]})
	}
	return m
}
func withQuery(m ir.Match, kv ...string) ir.Match {
	for i := 0; i < len(kv); i += 2 {
		m.QueryParams = append(m.QueryParams, ir.StringMatch{Type: ir.MatchExact, Name: kv[i], Value: kv[i+1]})
	}
	return m
}
func withMethod(m ir.Match, method string) ir.Match { m.Method = method; return m }

// listenerOf puts routes on one catch-all listener host on port 80.
func listenerOf(routes ...*ir.Route) *ir.Listener {
	return &ir.Listener{
		Name: "0.0.0.0:80", Address: "0.0.0.0:80", Protocol: ir.ProtocolHTTP,
		Hosts: []*ir.ListenerHost{{Name: "ns/gw/http", Routes: routes}},
	}
}

// mustCompile compiles l or fails the test.
func mustCompile(t testing.TB, l *ir.Listener) *Table {
	t.Helper()
	tb, err := Compile(l)
	if err != nil {
		t.Fatal(err)
	}
	return tb
}

// request builds a request; headers are name, value pairs.
func request(method, host, target string, headers ...string) *http.Request {
	r := httptest.NewRequest(method, target, nil)
	r.Host = host
	for i := 0; i < len(headers); i += 2 {
		r.Header.Add(headers[i], headers[i+1])
	}
	return r
}

// id names a matched route for comparisons; "" is no match.
func id(rt *Route, ok bool) string {
	if !ok {
		return ""
	}
	if rt.IR.RuleIndex == 0 && rt.IR.MatchIndex == 0 {
		return rt.IR.Name
	}
	return fmt.Sprintf("%s#%d.%d", rt.IR.Name, rt.IR.RuleIndex, rt.IR.MatchIndex)
}
