package dashboard

import (
	"math"
	"math/bits"
	"sync"
	"time"
)

// Latency histogram: bucket 0 holds [0, histBase]; bucket i >= 1 holds
// (histBase·2^((i-1)/4), histBase·2^(i/4)], so a value is known to within
// 19 %. 96 buckets reach past five minutes; longer requests land in the
// last one.
const (
	histBase    = 25 * time.Microsecond
	histPerOct  = 4
	histBuckets = 96
)

// histIndex is the histogram bucket of latency d: the first whose upper
// bound is d or more. It starts at the first bucket that can hold a value
// of d's bit length (histFirst) and steps up at most a few buckets, since
// the bounds grow by 2^(1/4): a third of a binary search's instructions.
func histIndex(d time.Duration) int {
	if d <= 0 {
		return 0
	}
	i := int(histFirst[bits.Len64(uint64(d))])
	for i < histBuckets-1 && d > histBounds[i] {
		i++
	}
	return i
}

// histBounds holds histUpper(i) for every bucket i.
var histBounds = func() (b [histBuckets]time.Duration) {
	for i := range b {
		b[i] = histUpper(i)
	}
	return b
}()

// histFirst[n] is the first bucket whose upper bound is at least the
// smallest n-bit value, 2^(n-1): no value of n bits falls below it.
var histFirst = func() (f [64]uint8) {
	for n := 1; n < 64; n++ { // a positive Duration has 63 bits at most
		low := time.Duration(1) << (n - 1)
		i := 0
		for i < histBuckets-1 && histBounds[i] < low {
			i++
		}
		f[n] = uint8(i)
	}
	return f
}()

// histUpper is the upper bound of bucket i.
func histUpper(i int) time.Duration {
	return time.Duration(float64(histBase) * math.Exp2(float64(i)/histPerOct))
}

// bucket is one second of one series.
type bucket struct {
	// sec is the second (Unix time) the counters belong to.
	sec              int64
	requests, errors uint64
	// timed counts the requests in hist; maxLatency is the slowest.
	timed      uint64
	maxLatency time.Duration
	hist       [histBuckets]uint32
}

// series counts one edge's requests in a ring of one-second buckets
// covering the window.
type series struct {
	mu      sync.Mutex
	buckets []bucket
	// last is the newest second written, and cur its bucket: nearly
	// every request lands there, without the division that finds a
	// bucket in the ring.
	last int64
	cur  *bucket
}

func newSeries(n int) *series { return &series{buckets: make([]bucket, n)} }

// add counts one request in second sec. A negative latency is not timed.
func (s *series) add(sec int64, isErr bool, latency time.Duration) {
	s.mu.Lock()
	b := s.cur
	if sec != s.last || b == nil {
		if sec <= s.last-int64(len(s.buckets)) {
			// Older than the window: its bucket now holds a newer second.
			s.mu.Unlock()
			return
		}
		b = &s.buckets[mod(sec, int64(len(s.buckets)))]
		if b.sec != sec {
			*b = bucket{sec: sec}
		}
		if sec >= s.last {
			s.last, s.cur = sec, b
		}
	}
	b.requests++
	if isErr {
		b.errors++
	}
	if latency >= 0 {
		b.timed++
		b.hist[histIndex(latency)]++
		if latency > b.maxLatency {
			b.maxLatency = latency
		}
	}
	s.mu.Unlock()
}

// read sums the buckets of the window ending at second now, and reports
// whether the series had nothing newer than the window (it may be dropped).
func (s *series) read(now int64, into *agg) (stale bool) {
	n := int64(len(s.buckets))
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.buckets {
		b := &s.buckets[i]
		if b.sec <= now-n || b.sec > now {
			continue
		}
		into.addBucket(b)
	}
	return s.last <= now-n
}

func mod(a, n int64) int64 {
	m := a % n
	if m < 0 {
		m += n
	}
	return m
}

// agg is the sum of buckets over a window, possibly of several series.
type agg struct {
	requests, errors uint64
	timed            uint64
	maxLatency       time.Duration
	hist             [histBuckets]uint64
}

func (a *agg) addBucket(b *bucket) {
	a.requests += b.requests
	a.errors += b.errors
	a.timed += b.timed
	if b.maxLatency > a.maxLatency {
		a.maxLatency = b.maxLatency
	}
	if b.timed == 0 {
		return
	}
	for i, c := range b.hist {
		a.hist[i] += uint64(c)
	}
}

func (a *agg) merge(o *agg) {
	a.requests += o.requests
	a.errors += o.errors
	a.timed += o.timed
	if o.maxLatency > a.maxLatency {
		a.maxLatency = o.maxLatency
	}
	if o.timed == 0 {
		return
	}
	for i, c := range o.hist {
		a.hist[i] += c
	}
}

// quantile is the q-quantile latency (0 < q <= 1): the upper bound of the
// bucket holding it, but never more than the slowest request seen. ok is
// false when no request was timed.
func (a *agg) quantile(q float64) (d time.Duration, ok bool) {
	if a.timed == 0 {
		return 0, false
	}
	rank := uint64(math.Ceil(q * float64(a.timed)))
	if rank < 1 {
		rank = 1
	}
	var seen uint64
	for i, c := range a.hist {
		seen += c
		if seen >= rank {
			return min(histUpper(i), a.maxLatency), true
		}
	}
	return a.maxLatency, true
}
