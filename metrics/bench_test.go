package metrics

import (
	"testing"

	"github.com/meshgate/meshgate/obs"
)

// benchRequests are a few label combinations, as a gateway with a handful
// of routes sees them, including gateway-made errors, a retried request and
// a rate-limited one.
func benchRequests() []obs.Request {
	a := okRequest()
	b := okRequest()
	b.Route, b.Method, b.Proto, b.Retries = "default/api", "POST", "HTTP/2.0", 2
	c := okRequest()
	c.Status, c.Reason, c.UpstreamFirstByte, c.UpstreamConnect = 504, "upstream_timeout", 0, 0
	d := okRequest()
	d.Gateway, d.Route, d.Backend, d.Status, d.Reason = "", "", "", 404, "no_route"
	e := okRequest()
	e.Backend, e.Status, e.Reason, e.UpstreamFirstByte, e.UpstreamConnect = "", 429, "rate_limited", 0, 0
	return []obs.Request{a, b, c, d, e}
}

// BenchmarkObserveRequest is the cost the metrics sink adds to every
// request once its label combination has been seen.
func BenchmarkObserveRequest(b *testing.B) {
	m := New(Options{})
	reqs := benchRequests()
	for i := range reqs {
		m.ObserveRequest(&reqs[i])
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		m.ObserveRequest(&reqs[i%len(reqs)])
		i++
	}
}

// BenchmarkObserveRequestParallel shows that cores recording at once do
// not serialise on a lock.
func BenchmarkObserveRequestParallel(b *testing.B) {
	m := New(Options{})
	reqs := benchRequests()
	for i := range reqs {
		m.ObserveRequest(&reqs[i])
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		mine := benchRequests()
		i := 0
		for pb.Next() {
			m.ObserveRequest(&mine[i%len(mine)])
			i++
		}
	})
}

// BenchmarkObserveRequestSameLabels is the usual case on a keep-alive
// connection: the record's previous request had the same labels, so the
// series come from the record's memo.
func BenchmarkObserveRequestSameLabels(b *testing.B) {
	m := New(Options{})
	r := okRequest()
	m.ObserveRequest(&r)
	b.ReportAllocs()
	for b.Loop() {
		m.ObserveRequest(&r)
	}
}
