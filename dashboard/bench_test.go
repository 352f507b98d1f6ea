package dashboard

import (
	"testing"
	"time"
)

// BenchmarkObserveRequest is what the dashboard adds to every request on
// a keep-alive connection: the record's previous request took the same
// path, so its series comes from the record's memo.
func BenchmarkObserveRequest(b *testing.B) {
	d := New(Options{})
	r := req("default/web", "default/web-v1", "10.0.0.1:8080", 200, 3*time.Millisecond)
	r.Start = time.Now()
	d.ObserveRequest(r)
	b.ReportAllocs()
	for b.Loop() {
		d.ObserveRequest(r)
	}
}
