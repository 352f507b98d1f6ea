package upstream

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshgate/meshgate/ir"
)

// fakeClock is a clock tests step by hand; safe for concurrent use.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	return c
}

func (c *fakeClock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) advance(d time.Duration) { c.ns.Add(int64(d)) }
func (c *fakeClock) set(t time.Time)         { c.ns.Store(t.UnixNano()) }

// newTestBalancer returns a Balancer with a fake clock and, for
// single-goroutine tests, a seeded random source.
func newTestBalancer(seed uint64) (*Balancer, *fakeClock) {
	clk := newFakeClock()
	return &Balancer{now: clk.now, random: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)).Uint64}, clk
}

// mkBackend builds a backend whose endpoints are e0, e1, ... with the
// given weights.
func mkBackend(name string, lb ir.LoadBalancerType, weights ...int32) *ir.Backend {
	b := &ir.Backend{Name: name}
	if lb != "" {
		b.LoadBalancer = &ir.LoadBalancer{Type: lb}
	}
	for i, w := range weights {
		b.Endpoints = append(b.Endpoints, ir.Endpoint{Address: addr(i), Weight: w})
	}
	return b
}

func addr(i int) string { return fmt.Sprintf("10.0.0.%d:80", i) }

// clone copies b deeply, as a reload would rebuild it.
func clone(b *ir.Backend) *ir.Backend {
	c := *b
	c.Endpoints = append([]ir.Endpoint(nil), b.Endpoints...)
	if b.LoadBalancer != nil {
		lb := *b.LoadBalancer
		c.LoadBalancer = &lb
	}
	if b.Outlier != nil {
		od := *b.Outlier
		c.Outlier = &od
	}
	if b.CircuitBreaker != nil {
		cb := *b.CircuitBreaker
		c.CircuitBreaker = &cb
	}
	return &c
}

// mustPick picks and fails the test on error.
func mustPick(t testing.TB, bl *Balancer, b *ir.Backend, in PickInput) Pick {
	t.Helper()
	p, err := bl.Pick(b, in)
	if err != nil {
		t.Fatalf("Pick(%s): %v", b.Name, err)
	}
	return p
}

// countPicks picks n times, finishing each pick with o, and counts the
// endpoints chosen.
func countPicks(t testing.TB, bl *Balancer, b *ir.Backend, n int, in func(i int) PickInput, o Outcome) map[string]int {
	t.Helper()
	got := map[string]int{}
	for i := range n {
		var pi PickInput
		if in != nil {
			pi = in(i)
		}
		p := mustPick(t, bl, b, pi)
		got[p.Endpoint.Address]++
		p.Done(o)
	}
	return got
}

// binomialTolerance is k standard deviations of the count of successes in
// n trials of probability p.
func binomialTolerance(n int, p, k float64) float64 {
	return k * math.Sqrt(float64(n)*p*(1-p))
}

func keyHash(i int) uint64 { return HashString(fmt.Sprintf("user-%d", i)) }
