package metrics

import (
	"testing"

	"github.com/meshgate/meshgate/obs"
)

// benchRequests are a few label combinations, as a gateway with a handful
// of routes sees them, including a gateway-made error.
func benchRequests() []obs.Request {
	a := okRequest()
	b := okRequest()
	b.Route, b.Method, b.Proto = "default/api", "POST", "HTTP/2.0"
	c := okRequest()
	c.Status, c.Reason, c.UpstreamFirstByte, c.UpstreamConnect = 504, "upstream_timeout", 0, 0
	d := okRequest()
	d.Gateway, d.Route, d.Backend, d.Status, d.Reason = "", "", "", 404, "no_route"
	return []obs.Request{a, b, c, d}
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
		m.ObserveRequest(&reqs[i&3])
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
			m.ObserveRequest(&mine[i&3])
			i++
		}
	})
}
