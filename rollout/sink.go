// Package rollout drives Meshgate Rollouts: it measures the canary and
// stable backends of each Rollout from the gateway's own request records
// (an obs.Sink), and an Engine moves the canary weight step by step,
// rolling back at once when a threshold is breached. Progress is kept in
// Rollout status (in a cluster) or a state file (with --config), and fed
// back to the pure translator through the Rollout objects of the snapshot
// (Engine.Prepare), so a restart continues where it stopped.
package rollout

import (
	"math"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshgate/meshgate/obs"
)

// bounds are the latency histogram's bucket upper bounds: 100 µs growing by
// 20% per bucket up to about 2 minutes; one more bucket holds the rest.
var bounds = func() []time.Duration {
	var b []time.Duration
	for d := 100.0 * float64(time.Microsecond); d < float64(2*time.Minute); d *= 1.2 {
		b = append(b, time.Duration(d))
	}
	return b
}()

// counters are one backend's cumulative figures; a step's window is the
// difference between two readings.
type counters struct {
	requests atomic.Int64
	errors   atomic.Int64
	buckets  []atomic.Int64 // len(bounds)+1
}

func newCounters() *counters { return &counters{buckets: make([]atomic.Int64, len(bounds)+1)} }

// reading is a copy of counters at one moment.
type reading struct {
	requests, errors int64
	buckets          []int64
}

func (c *counters) read() reading {
	r := reading{requests: c.requests.Load(), errors: c.errors.Load(), buckets: make([]int64, len(c.buckets))}
	for i := range c.buckets {
		r.buckets[i] = c.buckets[i].Load()
	}
	return r
}

// Figures are one backend's measurements over a window.
type Figures struct {
	Requests, Errors int64
	// P99 is the 99th percentile latency (0 with no requests).
	P99 time.Duration
}

// ErrorRate is the error percentage (0 with no requests).
func (f Figures) ErrorRate() float64 {
	if f.Requests == 0 {
		return 0
	}
	return 100 * float64(f.Errors) / float64(f.Requests)
}

// since is the window from base to r.
func (r reading) since(base reading) Figures {
	f := Figures{Requests: r.requests - base.requests, Errors: r.errors - base.errors}
	if f.Requests <= 0 {
		return Figures{}
	}
	counts := make([]int64, len(r.buckets))
	var total int64
	for i := range counts {
		var b int64
		if i < len(base.buckets) {
			b = base.buckets[i]
		}
		counts[i] = r.buckets[i] - b
		total += counts[i]
	}
	f.P99 = quantile(counts, total, 0.99)
	return f
}

// quantile interpolates the q quantile within its bucket.
func quantile(counts []int64, total int64, q float64) time.Duration {
	if total == 0 {
		return 0
	}
	rank := int64(math.Ceil(q * float64(total)))
	var seen int64
	for i, c := range counts {
		if c == 0 {
			continue
		}
		if seen+c >= rank {
			lo := time.Duration(0)
			if i > 0 {
				lo = bounds[i-1]
			}
			hi := lo * 2
			if i < len(bounds) {
				hi = bounds[i]
			}
			frac := float64(rank-seen) / float64(c)
			return lo + time.Duration(frac*float64(hi-lo))
		}
		seen += c
	}
	return bounds[len(bounds)-1]
}

func bucketOf(d time.Duration) int {
	return sort.Search(len(bounds), func(i int) bool { return d <= bounds[i] })
}

// key identifies one backend of one route rule as obs.Request names them
// (the backend name without the "~policies" suffix).
type key struct {
	route   string
	rule    int
	backend string
}

// Sink aggregates requests per tracked route rule backend. It allocates
// nothing per request: one read of an immutable map, a few atomic adds.
type Sink struct {
	mu sync.Mutex // serialises Track
	m  atomic.Pointer[map[key]*counters]
}

// NewSink returns a Sink tracking nothing yet.
func NewSink() *Sink { return &Sink{} }

// ObserveRequest counts r if its route rule and backend are tracked.
func (s *Sink) ObserveRequest(r *obs.Request) {
	mp := s.m.Load()
	if mp == nil || len(*mp) == 0 || r.Backend == "" {
		return
	}
	b, _, _ := strings.Cut(r.Backend, "~")
	c := (*mp)[key{r.Route, r.Rule, b}]
	if c == nil || r.Reason == "client_canceled" {
		return
	}
	c.requests.Add(1)
	if isError(r) {
		c.errors.Add(1)
	}
	c.buckets[bucketOf(r.Duration)].Add(1)
}

// isError: a 5xx, a gRPC status other than OK, or a request the gateway
// could not complete upstream.
func isError(r *obs.Request) bool {
	return r.Status >= 500 || r.Status == 0 || (r.GRPC && r.GRPCStatus != "" && r.GRPCStatus != "0")
}

// track makes sure k is counted and returns its counters.
func (s *Sink) track(k key) *counters {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.m.Load()
	if old != nil {
		if c := (*old)[k]; c != nil {
			return c
		}
	}
	next := map[key]*counters{}
	if old != nil {
		for kk, c := range *old {
			next[kk] = c
		}
	}
	c := newCounters()
	next[k] = c
	s.m.Store(&next)
	return c
}

// retain drops every tracked key not in keep.
func (s *Sink) retain(keep map[key]bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.m.Load()
	if old == nil {
		return
	}
	next := map[key]*counters{}
	for k, c := range *old {
		if keep[k] {
			next[k] = c
		}
	}
	if len(next) != len(*old) {
		s.m.Store(&next)
	}
}
