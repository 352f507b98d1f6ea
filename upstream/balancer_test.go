package upstream

import (
	"errors"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/meshgate/meshgate/ir"
)

// TestPickDistribution checks that every algorithm shares requests by
// weight. Round robin is exact over whole schedules; random draws are
// allowed 5 standard deviations of the binomial count; hash-based
// algorithms add the spread of the ring (a ring of K uniformly placed
// points gives an endpoint with share p of them a Beta-distributed arc of
// variance p(1-p)/(K+1)) or the granularity of the Maglev table (one entry
// per endpoint in 65537).
func TestPickDistribution(t *testing.T) {
	const draws = 100000
	type tolFunc func(p float64, weights []int32) float64
	binomial := func(p float64, _ []int32) float64 { return binomialTolerance(draws, p, 5) }
	tests := []struct {
		name    string
		lb      ir.LoadBalancerType
		weights []int32
		hashed  bool
		picks   int // default draws
		tol     tolFunc
	}{
		{name: "round robin equal", lb: "", weights: []int32{1, 1, 1}, picks: 3 * 1000},
		{name: "round robin weighted", lb: ir.LBRoundRobin, weights: []int32{1, 2, 3, 4}, picks: 10 * 1000},
		{name: "round robin zero weight means one", lb: ir.LBRoundRobin, weights: []int32{0, 1, 2}, picks: 4 * 1000},
		{name: "random equal", lb: ir.LBRandom, weights: []int32{1, 1, 1, 1}, tol: binomial},
		{name: "random weighted", lb: ir.LBRandom, weights: []int32{1, 2, 3, 4}, tol: binomial},
		{name: "least request idle follows weights", lb: ir.LBLeastRequest, weights: []int32{1, 2, 3, 4}, tol: binomial},
		{name: "least request equal", lb: ir.LBLeastRequest, weights: []int32{5, 5, 5}, tol: binomial},
		{name: "ring hash without hash is random", lb: ir.LBRingHash, weights: []int32{1, 2, 3, 4}, tol: binomial},
		{name: "ring hash weighted", lb: ir.LBRingHash, weights: []int32{1, 2, 3, 4}, hashed: true,
			tol: func(p float64, w []int32) float64 {
				var sum float64
				for _, x := range w {
					sum += float64(x)
				}
				k := ringPointsPerWeight * sum
				return 5 * draws * math.Sqrt(p*(1-p)*(1/(k+1)+1.0/draws))
			}},
		{name: "maglev weighted", lb: ir.LBMaglev, weights: []int32{1, 2, 3, 4}, hashed: true,
			tol: func(p float64, w []int32) float64 {
				return binomialTolerance(draws, p, 5) + draws*float64(len(w))/maglevSize
			}},
		{name: "maglev equal", lb: ir.LBMaglev, weights: []int32{1, 1, 1, 1, 1}, hashed: true,
			tol: func(p float64, w []int32) float64 {
				return binomialTolerance(draws, p, 5) + draws*float64(len(w))/maglevSize
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bl, _ := newTestBalancer(1)
			b := mkBackend("backend/default/x", tc.lb, tc.weights...)
			bl.Update([]*ir.Backend{b})
			n := tc.picks
			if n == 0 {
				n = draws
			}
			var in func(int) PickInput
			if tc.hashed {
				in = func(i int) PickInput { return PickInput{Hash: keyHash(i), HasHash: true} }
			}
			got := countPicks(t, bl, b, n, in, Outcome{Status: 200})
			var sum float64
			for _, w := range tc.weights {
				sum += float64(max(w, 1))
			}
			for i, w := range tc.weights {
				p := float64(max(w, 1)) / sum
				want := p * float64(n)
				tol := 0.0
				if tc.tol != nil {
					tol = tc.tol(p, tc.weights)
				}
				if c := float64(got[addr(i)]); math.Abs(c-want) > tol {
					t.Errorf("%s: %v picks, want %v ± %.0f (all: %v)", addr(i), c, want, tol, got)
				}
			}
		})
	}
}

// TestRoundRobinInterleaves checks that weighted round robin does not send
// an endpoint's whole share in one burst while others wait: within every
// round of the schedule each endpoint appears at most once.
func TestRoundRobinInterleaves(t *testing.T) {
	bl, _ := newTestBalancer(1)
	b := mkBackend("b", ir.LBRoundRobin, 3, 1, 2)
	bl.Update([]*ir.Backend{b})
	var seq []string
	for range 12 {
		p := mustPick(t, bl, b, PickInput{})
		seq = append(seq, p.Endpoint.Address)
		p.Done(Outcome{})
	}
	// Rounds: {e0 e2 e1} {e0 e2} {e0}, repeated; where in the schedule
	// the first pick falls does not matter.
	sched := []string{addr(0), addr(2), addr(1), addr(0), addr(2), addr(0)}
	for k := range sched {
		match := true
		for i := range seq {
			match = match && seq[i] == sched[(i+k)%len(sched)]
		}
		if match {
			return
		}
	}
	t.Fatalf("sequence %v is no rotation of %v repeated", seq, sched)
}

func TestLeastRequestPrefersIdle(t *testing.T) {
	tests := []struct {
		name string
		busy []int // in-flight requests held per endpoint
		// never lists endpoints that must never be chosen; more[i]
		// must be chosen more often than more[i+1].
		never []int
		more  []int
	}{
		{name: "two endpoints", busy: []int{3, 0}, never: []int{0}},
		{name: "three endpoints", busy: []int{2, 1, 0}, never: []int{0}, more: []int{2, 1}},
		{name: "busiest loses every comparison", busy: []int{5, 1, 1, 1}, never: []int{0}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bl, _ := newTestBalancer(7)
			w := make([]int32, len(tc.busy))
			for i := range w {
				w[i] = 1
			}
			b := mkBackend("b", ir.LBLeastRequest, w...)
			bl.Update([]*ir.Backend{b})
			var held []Pick
			for i, n := range tc.busy {
				for range n {
					held = append(held, mustPick(t, bl, b, PickInput{Prefer: addr(i)}))
				}
			}
			got := countPicks(t, bl, b, 3000, nil, Outcome{Status: 200})
			for _, i := range tc.never {
				if got[addr(i)] != 0 {
					t.Errorf("busy %s chosen %d times: %v", addr(i), got[addr(i)], got)
				}
			}
			for k := 1; k < len(tc.more); k++ {
				if got[addr(tc.more[k-1])] <= got[addr(tc.more[k])] {
					t.Errorf("%s not chosen more than %s: %v", addr(tc.more[k-1]), addr(tc.more[k]), got)
				}
			}
			for _, p := range held {
				p.Done(Outcome{Status: 200})
			}
		})
	}
}

func TestConsistentHashStable(t *testing.T) {
	for _, lb := range []ir.LoadBalancerType{ir.LBRingHash, ir.LBMaglev} {
		t.Run(string(lb), func(t *testing.T) {
			b := mkBackend("b", lb, 1, 2, 1, 3, 1)
			bl, _ := newTestBalancer(1)
			bl.Update([]*ir.Backend{b})
			first := map[int]string{}
			for i := range 2000 {
				p := mustPick(t, bl, b, PickInput{Hash: keyHash(i), HasHash: true})
				first[i] = p.Endpoint.Address
				p.Done(Outcome{Status: 200})
			}
			// The same key keeps its endpoint: on repeat, after a reload
			// with a new *ir.Backend, on another replica (a fresh
			// Balancer), and whatever order the endpoints are listed in.
			reordered := clone(b)
			for i, j := 0, len(reordered.Endpoints)-1; i < j; i, j = i+1, j-1 {
				reordered.Endpoints[i], reordered.Endpoints[j] = reordered.Endpoints[j], reordered.Endpoints[i]
			}
			other, _ := newTestBalancer(99)
			other.Update([]*ir.Backend{reordered})
			reloaded := clone(b)
			bl.Update([]*ir.Backend{reloaded})
			for i, want := range first {
				in := PickInput{Hash: keyHash(i), HasHash: true}
				for _, c := range []struct {
					name string
					bl   *Balancer
					b    *ir.Backend
				}{{"reloaded", bl, reloaded}, {"other replica, reordered", other, reordered}} {
					p := mustPick(t, c.bl, c.b, in)
					if p.Endpoint.Address != want {
						t.Fatalf("%s: key %d went to %s, before %s", c.name, i, p.Endpoint.Address, want)
					}
					p.Done(Outcome{Status: 200})
				}
			}
		})
	}
}

// TestConsistentHashMinimalDisruption removes one endpoint of n and checks
// that about 1/n of the keys move. The ring moves exactly the removed
// endpoint's keys, whose share is at most 1/n plus 5 standard deviations
// of the ring's arc spread and of the key sample. Maglev also moves a few
// keys between remaining endpoints (its table is refilled); the paper's
// bound is small, and we allow at most another 1/n for it.
func TestConsistentHashMinimalDisruption(t *testing.T) {
	const keys = 20000
	for _, lb := range []ir.LoadBalancerType{ir.LBRingHash, ir.LBMaglev} {
		for _, n := range []int{5, 10, 30} {
			t.Run(fmt.Sprintf("%s/n=%d", lb, n), func(t *testing.T) {
				w := make([]int32, n)
				for i := range w {
					w[i] = 1
				}
				b := mkBackend("b", lb, w...)
				bl, _ := newTestBalancer(1)
				bl.Update([]*ir.Backend{b})
				before := make([]string, keys)
				for i := range before {
					p := mustPick(t, bl, b, PickInput{Hash: keyHash(i), HasHash: true})
					before[i] = p.Endpoint.Address
					p.Done(Outcome{})
				}
				removed := addr(n / 2)
				smaller := clone(b)
				smaller.Endpoints = append(smaller.Endpoints[:n/2:n/2], smaller.Endpoints[n/2+1:]...)
				bl.Update([]*ir.Backend{smaller})
				moved, movedOthers := 0, 0
				for i := range before {
					p := mustPick(t, bl, smaller, PickInput{Hash: keyHash(i), HasHash: true})
					if p.Endpoint.Address == removed {
						t.Fatalf("key %d still goes to removed %s", i, removed)
					}
					if p.Endpoint.Address != before[i] {
						moved++
						if before[i] != removed {
							movedOthers++
						}
					}
					p.Done(Outcome{})
				}
				p := 1 / float64(n)
				k := float64(ringPointsPerWeight * n)
				spread := 5 * math.Sqrt(p*(1-p)*(1/(k+1)+1.0/keys))
				bound := p + spread
				othersBound := 0.0
				if lb == ir.LBMaglev {
					othersBound = p
				}
				if f := float64(moved) / keys; f > bound+othersBound {
					t.Errorf("%.2f%% of keys moved, want at most %.2f%%", 100*f, 100*(bound+othersBound))
				}
				if f := float64(movedOthers) / keys; f > othersBound {
					t.Errorf("%.2f%% of keys moved between remaining endpoints, want at most %.2f%%", 100*f, 100*othersBound)
				}
				t.Logf("moved %.2f%% (1/n = %.2f%%), between remaining %.2f%%", 100*float64(moved)/keys, 100*p, 100*float64(movedOthers)/keys)
			})
		}
	}
}

func TestPreferAndAvoid(t *testing.T) {
	algos := []ir.LoadBalancerType{ir.LBRoundRobin, ir.LBRandom, ir.LBLeastRequest, ir.LBRingHash, ir.LBMaglev}
	for _, lb := range algos {
		t.Run(string(lb), func(t *testing.T) {
			bl, _ := newTestBalancer(3)
			b := mkBackend("b", lb, 1, 5, 1)
			bl.Update([]*ir.Backend{b})
			for i := range 300 {
				in := PickInput{Hash: keyHash(i), HasHash: i%2 == 0}
				// Prefer wins over the algorithm.
				in.Prefer = addr(2)
				if p := mustPick(t, bl, b, in); p.Endpoint.Address != addr(2) {
					t.Fatalf("Prefer %s gave %s", addr(2), p.Endpoint.Address)
				} else {
					p.Done(Outcome{})
				}
				// Avoid is never chosen while others are usable, even
				// when preferred.
				in.Prefer, in.Avoid = addr(1), addr(1)
				if p := mustPick(t, bl, b, in); p.Endpoint.Address == addr(1) {
					t.Fatalf("Avoid %s chosen (pick %d)", addr(1), i)
				} else {
					p.Done(Outcome{})
				}
				// An unknown preference is ignored.
				in.Prefer, in.Avoid = "10.9.9.9:80", ""
				mustPick(t, bl, b, in).Done(Outcome{})
			}
			// The only endpoint is chosen even when avoided.
			one := mkBackend("one", lb, 1)
			if p := mustPick(t, bl, one, PickInput{Avoid: addr(0)}); p.Endpoint.Address != addr(0) {
				t.Fatalf("got %s", p.Endpoint.Address)
			} else {
				p.Done(Outcome{})
			}
		})
	}
}

func TestPickNoEndpoint(t *testing.T) {
	var bl Balancer
	for _, b := range []*ir.Backend{nil, {Name: "empty"}} {
		if _, err := bl.Pick(b, PickInput{}); !errors.Is(err, ErrNoEndpoint) {
			t.Errorf("Pick(%v) error %v, want ErrNoEndpoint", b, err)
		}
	}
	// The zero Pick's Done does nothing.
	Pick{}.Done(Outcome{Status: 500})
}

func TestSlowStart(t *testing.T) {
	const window = 10 * time.Second
	bl, clk := newTestBalancer(1)
	mk := func(n int) *ir.Backend {
		w := make([]int32, n)
		for i := range w {
			w[i] = 1
		}
		b := mkBackend("b", ir.LBRoundRobin, w...)
		b.LoadBalancer.SlowStart = window
		return b
	}
	// A backend's first endpoints are not new: full weight at once.
	b := mk(2)
	bl.Update([]*ir.Backend{b})
	if got := countPicks(t, bl, b, 200, nil, Outcome{}); got[addr(0)] != 100 || got[addr(1)] != 100 {
		t.Fatalf("initial endpoints ramped: %v", got)
	}
	// A third endpoint appears and ramps from 10% to 100% of its weight.
	start := clk.now()
	b = mk(3)
	bl.Update([]*ir.Backend{b})
	for _, step := range []time.Duration{0, window / 4, window / 2, 3 * window / 4, window, 2 * window} {
		clk.set(start.Add(step))
		f := math.Min(1, slowStartMin+(1-slowStartMin)*float64(step)/float64(window))
		// Weights are in hundredths while an endpoint ramps: a whole
		// number of schedules counts exactly.
		newW := int(math.Round(100 * f))
		cycle := 200 + newW
		if f == 1 {
			cycle, newW = 3, 1
		}
		got := countPicks(t, bl, b, 10*cycle, nil, Outcome{})
		if got[addr(2)] != 10*newW {
			t.Errorf("after %v: new endpoint got %d of %d picks, want %d (%v)", step, got[addr(2)], 10*cycle, 10*newW, got)
		}
	}
	// Slow start does not apply to hash-based algorithms.
	hb := mk(2)
	hb.Name, hb.LoadBalancer.Type = "h", ir.LBMaglev
	bl.Update([]*ir.Backend{b, hb})
	hb = clone(hb)
	hb.Endpoints = append(hb.Endpoints, ir.Endpoint{Address: addr(2)})
	bl.Update([]*ir.Backend{b, hb})
	if v := bl.lookup("h").view.Load(); v.deadline != 0 || v.weights[2] != 1 {
		t.Errorf("maglev endpoint ramps: weights %v deadline %d", v.weights, v.deadline)
	}
}

func TestUpdateKeepsState(t *testing.T) {
	bl, clk := newTestBalancer(1)
	b := mkBackend("b", ir.LBRoundRobin, 1, 1, 1)
	b.Outlier = &ir.OutlierDetection{Consecutive5xx: 1, BaseEjectionTime: time.Minute, MaxEjectionPercent: 50}
	bl.Update([]*ir.Backend{b, mkBackend("gone", "", 1)})
	mustPick(t, bl, b, PickInput{Prefer: addr(0)}).Done(Outcome{Status: 500})
	bl.SetHealth("b", addr(1), false)
	held := mustPick(t, bl, b, PickInput{})

	// A reload: new objects, same names, one more endpoint; "gone" is
	// not in it.
	b2 := clone(b)
	b2.Endpoints = append(b2.Endpoints, ir.Endpoint{Address: addr(3)})
	bl.Update([]*ir.Backend{b2})
	if bl.lookup("gone") != nil {
		t.Error("state of a removed backend kept")
	}
	st := bl.Stats()
	if len(st) != 1 || st[0].Name != "b" || st[0].Ejected != 1 || st[0].Healthy != 2 || st[0].InFlight != 1 || st[0].Ejections != 1 {
		t.Fatalf("stats after reload %+v", st)
	}
	got := countPicks(t, bl, b2, 100, nil, Outcome{})
	if got[addr(0)] != 0 || got[addr(1)] != 0 || got[addr(2)] != 50 || got[addr(3)] != 50 {
		t.Errorf("ejection or health mark lost in reload: %v", got)
	}
	held.Done(Outcome{})
	if s := bl.Stats()[0]; s.InFlight != 0 {
		t.Errorf("in flight %d after all Done", s.InFlight)
	}
	// A request still holding the old config is served from the new one.
	if p := mustPick(t, bl, b, PickInput{Prefer: addr(3)}); p.Endpoint != &b2.Endpoints[3] {
		t.Errorf("old config picked %p, want the new config's endpoint", p.Endpoint)
	} else {
		p.Done(Outcome{})
	}
	// An endpoint that leaves and comes back starts afresh.
	b3 := clone(b2)
	b3.Endpoints = b3.Endpoints[2:]
	bl.Update([]*ir.Backend{b3})
	bl.Update([]*ir.Backend{b2})
	clk.advance(time.Second)
	got = countPicks(t, bl, b2, 400, nil, Outcome{})
	if got[addr(0)] != 100 || got[addr(1)] != 100 {
		t.Errorf("re-added endpoints kept old marks: %v", got)
	}
}

// TestLazyBackend covers Pick on backends Update has not seen: they are
// compiled on first use and recompiled when their content changes.
func TestLazyBackend(t *testing.T) {
	var bl Balancer
	b := mkBackend("b", "", 1, 1)
	got := countPicks(t, &bl, b, 4, nil, Outcome{})
	if got[addr(0)] != 2 || got[addr(1)] != 2 {
		t.Fatalf("got %v", got)
	}
	// Same content, new object: rotation goes on.
	first := mustPick(t, &bl, clone(b), PickInput{})
	second := mustPick(t, &bl, clone(b), PickInput{})
	if first.Endpoint.Address == second.Endpoint.Address {
		t.Errorf("rotation restarted: %s twice", first.Endpoint.Address)
	}
	first.Done(Outcome{})
	second.Done(Outcome{})
	// New content is compiled.
	b3 := mkBackend("b", "", 1, 1, 1)
	if got := countPicks(t, &bl, b3, 3, nil, Outcome{}); len(got) != 3 {
		t.Errorf("new endpoint not used: %v", got)
	}
}

func TestHashString(t *testing.T) {
	// FNV-1a 64 then the MurmurHash3 finalizer, fixed forever: replicas
	// and versions must agree on where a key goes.
	for s, want := range map[string]uint64{
		"":            0xefd01f60ba992926,
		"10.1.2.3":    0xf63927748f535d54,
		"session-abc": 0xbf0e1bce1ee9ee09,
	} {
		if got := HashString(s); got != want {
			t.Errorf("HashString(%q) = %#x, want %#x", s, got, want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { _ = HashString("some-cookie-value") }); n != 0 {
		t.Errorf("HashString allocates %v", n)
	}
}
