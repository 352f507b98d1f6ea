package metrics

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// TestHistogramMatchesClientLibrary: for the same observations, every
// layout's series exposes what the client library's histogram exposes:
// the same cumulative bucket counts (values on a bound, one unit either
// side of it, zero, negative and past the last bound included), count and
// sum.
func TestHistogramMatchesClientLibrary(t *testing.T) {
	tests := []struct {
		name    string
		buckets []float64
		per     float64
	}{
		{"latency", latencyBuckets, perSecond},
		{"connect", connectBuckets, perSecond},
		{"size", sizeBuckets, perByte},
		{"reload", reloadBuckets, perSecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var xs []int64
			for _, b := range tt.buckets {
				x := int64(b * tt.per)
				xs = append(xs, x-1, x, x+1)
			}
			last := int64(tt.buckets[len(tt.buckets)-1] * tt.per)
			xs = append(xs, 0, -5, last*3)
			rng := rand.New(rand.NewPCG(1, 2))
			for range 1000 {
				xs = append(xs, rng.Int64N(last*2))
			}

			lean := newHistogramVec("lean", "h", tt.buckets, tt.per, "l")
			ref := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "ref", Help: "h", Buckets: tt.buckets})
			h := lean.with("v")
			var sum float64
			for _, x := range xs {
				h.observe(x)
				ref.Observe(float64(max(x, 0)) / tt.per)
				sum += float64(max(x, 0)) / tt.per
			}
			got, want := collectOne(t, lean).GetHistogram(), collectOne(t, ref).GetHistogram()
			if got.GetSampleCount() != want.GetSampleCount() {
				t.Errorf("count %d, library %d", got.GetSampleCount(), want.GetSampleCount())
			}
			if d := got.GetSampleSum() - want.GetSampleSum(); d > 1e-6*sum || d < -1e-6*sum {
				t.Errorf("sum %v, library %v", got.GetSampleSum(), want.GetSampleSum())
			}
			gb, wb := got.GetBucket(), want.GetBucket()
			if len(gb) != len(wb) {
				t.Fatalf("%d buckets, library %d", len(gb), len(wb))
			}
			for i := range gb {
				if gb[i].GetUpperBound() != wb[i].GetUpperBound() || gb[i].GetCumulativeCount() != wb[i].GetCumulativeCount() {
					t.Errorf("bucket le=%v: %d, library le=%v: %d", gb[i].GetUpperBound(), gb[i].GetCumulativeCount(),
						wb[i].GetUpperBound(), wb[i].GetCumulativeCount())
				}
			}
		})
	}
}

// TestHistogramSeries: with returns one series per label combination, the
// same one every time, and a scrape shows each with its labels.
func TestHistogramSeries(t *testing.T) {
	v := newHistogramVec("x_seconds", "h", latencyBuckets, perSecond, "route", "class")
	a := v.with("r1", "2xx")
	if v.with("r1", "2xx") != a {
		t.Fatal("with returned a new series for the same labels")
	}
	b := v.with("r1", "5xx")
	a.observe(int64(time.Millisecond))
	b.observe(int64(time.Second))
	b.observe(int64(time.Second))
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(v)
	for _, c := range []struct {
		class string
		count uint64
		sum   float64
	}{{"2xx", 1, 0.001}, {"5xx", 2, 2}} {
		count, sum, ok := histogramOf(t, reg, "x_seconds", map[string]string{"route": "r1", "class": c.class})
		if !ok || count != c.count || sum != c.sum {
			t.Errorf("class %s: count %d sum %v (found %v), want %d and %v", c.class, count, sum, ok, c.count, c.sum)
		}
	}
}

// collectOne is the one metric c collects.
func collectOne(t *testing.T, c prometheus.Collector) *dto.Metric {
	t.Helper()
	ch := make(chan prometheus.Metric, 2)
	c.Collect(ch)
	close(ch)
	if len(ch) != 1 {
		t.Fatalf("collected %d metrics, want 1", len(ch))
	}
	var m dto.Metric
	if err := (<-ch).Write(&m); err != nil {
		t.Fatal(err)
	}
	return &m
}
