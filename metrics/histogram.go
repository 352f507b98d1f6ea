package metrics

import (
	"maps"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// histogramVec is a Prometheus histogram family recorded far more cheaply
// than the client library's HistogramVec: every request records four
// histograms, and the library's Observe (a hot and a cold copy so a scrape
// reads count, sum and buckets from one instant, a float bucket search, a
// compare-and-swap loop for the float sum, native-histogram checks) cost
// about 100 instructions and four atomic operations each. Here a series is
// a bucket array and an integer sum; an observation is an integer bucket
// search and two atomic adds. The count is the sum of the buckets, so a
// scrape never shows a count that disagrees with its buckets; only the sum
// may be an observation or two ahead of them.
//
// Series are created once per label combination (the request path caches
// them) and never removed, as with the library's vectors.
type histogramVec struct {
	desc   *prometheus.Desc
	bounds []float64 // upper bounds as exposed, ascending
	// limits are bounds in the recorded unit: a value x falls in the
	// first bucket with x <= limits[i].
	limits []int64
	// per is how many recorded units make one exposed unit (1e9
	// nanoseconds to the second, 1 byte to the byte).
	per float64

	mu     sync.Mutex
	series map[string]*histogram // by label values joined with "\xff"
}

// histogram is one series of a histogramVec.
type histogram struct {
	vec    *histogramVec
	values []string
	// counts has one counter per bound and a last one for +Inf; they are
	// not cumulative (the scrape adds them up).
	counts []atomic.Uint64
	// sum is the sum of observations in the recorded unit. In nanoseconds
	// it wraps after 584 years of request time (213 days of one route
	// serving 100,000 requests a second of 10 ms each); Prometheus takes
	// the wrap for a counter reset, which loses that one scrape interval's
	// increase of the sum, nothing more.
	sum atomic.Uint64
}

// newHistogramVec builds a family whose observations are integers, per
// of them to one exposed unit. Every bound must be a whole number of
// recorded units.
func newHistogramVec(name, help string, bounds []float64, per float64, labels ...string) *histogramVec {
	v := &histogramVec{
		desc:   prometheus.NewDesc(name, help, labels, nil),
		bounds: slices.Clone(bounds),
		limits: make([]int64, len(bounds)),
		per:    per,
		series: map[string]*histogram{},
	}
	for i, b := range bounds {
		v.limits[i] = int64(math.Round(b * per))
	}
	return v
}

// with returns the series for the label values, creating it on first use.
func (v *histogramVec) with(values ...string) *histogram {
	k := strings.Join(values, "\xff")
	v.mu.Lock()
	defer v.mu.Unlock()
	if h := v.series[k]; h != nil {
		return h
	}
	h := &histogram{vec: v, values: slices.Clone(values), counts: make([]atomic.Uint64, len(v.bounds)+1)}
	v.series[k] = h
	return h
}

// observe records x, in the vector's recorded unit; a negative x counts
// as 0.
func (h *histogram) observe(x int64) {
	x = max(x, 0)
	limits := h.vec.limits
	i := 0
	for i < len(limits) && x > limits[i] {
		i++
	}
	h.counts[i].Add(1)
	h.sum.Add(uint64(x))
}

// Describe implements prometheus.Collector.
func (v *histogramVec) Describe(ch chan<- *prometheus.Desc) { ch <- v.desc }

// Collect implements prometheus.Collector: one constant histogram per
// series, its buckets made cumulative here (the registry sorts the
// series of a scrape).
func (v *histogramVec) Collect(ch chan<- prometheus.Metric) {
	v.mu.Lock()
	series := slices.Collect(maps.Values(v.series))
	v.mu.Unlock()
	for _, h := range series {
		buckets := make(map[float64]uint64, len(v.bounds))
		var n uint64
		for i, b := range v.bounds {
			n += h.counts[i].Load()
			buckets[b] = n
		}
		n += h.counts[len(v.bounds)].Load()
		sum := float64(h.sum.Load()) / v.per
		m, err := prometheus.NewConstHistogram(v.desc, n, sum, buckets, h.values...)
		if err != nil {
			m = prometheus.NewInvalidMetric(v.desc, err)
		}
		ch <- m
	}
}
