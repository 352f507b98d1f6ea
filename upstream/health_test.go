package upstream

import (
	"errors"
	"testing"
	"time"

	"github.com/meshgate/meshgate/ir"
)

// fail sends n outcomes o to endpoint i of b.
func fail(t *testing.T, bl *Balancer, b *ir.Backend, i, n int, o Outcome) {
	t.Helper()
	for range n {
		p := mustPick(t, bl, b, PickInput{Prefer: addr(i)})
		if p.Endpoint.Address != addr(i) {
			t.Fatalf("Prefer %s gave %s", addr(i), p.Endpoint.Address)
		}
		p.Done(o)
	}
}

// used reports whether endpoint i of b gets traffic, over two schedules
// of round robin.
func used(t *testing.T, bl *Balancer, b *ir.Backend, i int) bool {
	t.Helper()
	return countPicks(t, bl, b, 2*len(b.Endpoints), nil, Outcome{Local: true})[addr(i)] > 0
}

func TestOutlierDetection(t *testing.T) {
	const base = 10 * time.Second
	s500 := Outcome{Status: 500}
	gwErr := Outcome{GatewayError: true}
	ok := Outcome{Status: 200}
	type step struct {
		o       Outcome
		n       int
		advance time.Duration
		// ejected: whether e0 must be out of rotation after the step.
		ejected bool
	}
	tests := []struct {
		name  string
		od    ir.OutlierDetection
		steps []step
	}{
		{name: "ejected after N 5xx, back after base time",
			od: ir.OutlierDetection{Consecutive5xx: 3, BaseEjectionTime: base, MaxEjectionPercent: 50},
			steps: []step{
				{o: s500, n: 2}, {o: s500, n: 1, ejected: true},
				{advance: base - time.Second, ejected: true}, {advance: time.Second},
			}},
		{name: "a success resets the count",
			od:    ir.OutlierDetection{Consecutive5xx: 3, BaseEjectionTime: base, MaxEjectionPercent: 50},
			steps: []step{{o: s500, n: 2}, {o: ok, n: 1}, {o: s500, n: 2}, {o: s500, n: 1, ejected: true}}},
		{name: "4xx is a success",
			od:    ir.OutlierDetection{Consecutive5xx: 2, BaseEjectionTime: base, MaxEjectionPercent: 50},
			steps: []step{{o: s500, n: 1}, {o: Outcome{Status: 404}, n: 1}, {o: s500, n: 1}}},
		{name: "local outcomes are not counted",
			od:    ir.OutlierDetection{Consecutive5xx: 2, BaseEjectionTime: base, MaxEjectionPercent: 50},
			steps: []step{{o: s500, n: 1}, {o: Outcome{Status: 500, Local: true}, n: 5}, {o: s500, n: 1, ejected: true}}},
		{name: "gateway errors",
			od: ir.OutlierDetection{ConsecutiveGatewayErrors: 2, BaseEjectionTime: base, MaxEjectionPercent: 50},
			steps: []step{
				{o: gwErr, n: 1}, {o: s500, n: 1}, // a plain 500 resets the gateway count
				{o: gwErr, n: 1}, {o: Outcome{Status: 503}, n: 1, ejected: true},
			}},
		{name: "gateway errors count as 5xx",
			od:    ir.OutlierDetection{Consecutive5xx: 2, BaseEjectionTime: base, MaxEjectionPercent: 50},
			steps: []step{{o: gwErr, n: 1}, {o: s500, n: 1, ejected: true}}},
		{name: "ejection time grows with each ejection, up to the max",
			od: ir.OutlierDetection{Consecutive5xx: 1, BaseEjectionTime: base, MaxEjectionTime: 25 * time.Second, MaxEjectionPercent: 50},
			steps: []step{
				{o: s500, n: 1, ejected: true}, {advance: base},
				{o: s500, n: 1, ejected: true}, {advance: 2*base - time.Second, ejected: true}, {advance: time.Second},
				{o: s500, n: 1, ejected: true}, {advance: 25*time.Second - time.Second, ejected: true}, {advance: time.Second},
			}},
		{name: "zero times take the defaults",
			od: ir.OutlierDetection{Consecutive5xx: 1, MaxEjectionPercent: 50},
			steps: []step{
				{o: s500, n: 1, ejected: true}, {advance: defaultBaseEjection - time.Second, ejected: true}, {advance: time.Second},
			}},
		{name: "max ejection percent 0 ejects nothing",
			od:    ir.OutlierDetection{Consecutive5xx: 1, BaseEjectionTime: base},
			steps: []step{{o: s500, n: 5}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bl, clk := newTestBalancer(1)
			b := mkBackend("b", ir.LBRoundRobin, 1, 1, 1, 1)
			od := tc.od
			b.Outlier = &od
			bl.Update([]*ir.Backend{b})
			for k, s := range tc.steps {
				clk.advance(s.advance)
				if s.n > 0 {
					fail(t, bl, b, 0, s.n, s.o)
				}
				if got := !used(t, bl, b, 0); got != s.ejected {
					t.Fatalf("step %d: ejected %v, want %v", k, got, s.ejected)
				}
				if st := bl.Stats()[0]; (st.Ejected == 1) != s.ejected {
					t.Fatalf("step %d: stats %+v", k, st)
				}
			}
		})
	}
}

func TestOutlierMaxEjectionPercent(t *testing.T) {
	tests := []struct {
		endpoints   int
		percent     float64
		wantEjected int
	}{
		{endpoints: 4, percent: 50, wantEjected: 2},
		{endpoints: 5, percent: 50, wantEjected: 2}, // floor(2.5)
		{endpoints: 4, percent: 10, wantEjected: 0}, // floor(0.4): Envoy without always_eject_one_host
		{endpoints: 3, percent: 100, wantEjected: 3},
	}
	for _, tc := range tests {
		bl, _ := newTestBalancer(1)
		w := make([]int32, tc.endpoints)
		b := mkBackend("b", ir.LBRoundRobin, w...)
		b.Outlier = &ir.OutlierDetection{Consecutive5xx: 1, BaseEjectionTime: time.Minute, MaxEjectionPercent: tc.percent}
		bl.Update([]*ir.Backend{b})
		for i := range tc.endpoints {
			fail(t, bl, b, i, 1, Outcome{Status: 500})
		}
		st := bl.Stats()[0]
		if st.Ejected != tc.wantEjected || st.Ejections != uint64(tc.wantEjected) {
			t.Errorf("%d endpoints, %v%%: %d ejected (%d ejections), want %d", tc.endpoints, tc.percent, st.Ejected, st.Ejections, tc.wantEjected)
		}
		_, err := bl.Pick(b, PickInput{})
		if all := tc.wantEjected == tc.endpoints; all != errors.Is(err, ErrNoEndpoint) {
			t.Errorf("%d endpoints, %v%%: Pick error %v", tc.endpoints, tc.percent, err)
		}
	}
}

func TestSetHealth(t *testing.T) {
	bl, _ := newTestBalancer(1)
	b := mkBackend("b", ir.LBRoundRobin, 1, 1, 1)
	bl.Update([]*ir.Backend{b})
	bl.SetHealth("b", addr(1), false)
	bl.SetHealth("b", addr(1), false) // repeated marks are no-ops
	if used(t, bl, b, 1) {
		t.Error("unhealthy endpoint used")
	}
	if st := bl.Stats()[0]; st.Healthy != 2 || st.Endpoints != 3 {
		t.Errorf("stats %+v", st)
	}
	bl.SetHealth("b", addr(1), true)
	if !used(t, bl, b, 1) {
		t.Error("endpoint marked healthy again not used")
	}
	// Unknown names are ignored.
	bl.SetHealth("nope", addr(1), false)
	bl.SetHealth("b", "10.9.9.9:80", false)
	// Prefer does not reach an unhealthy endpoint.
	bl.SetHealth("b", addr(2), false)
	if p := mustPick(t, bl, b, PickInput{Prefer: addr(2)}); p.Endpoint.Address == addr(2) {
		t.Error("Prefer chose an unhealthy endpoint")
	} else {
		p.Done(Outcome{})
	}
	// All unhealthy without a panic threshold: no endpoint.
	bl.SetHealth("b", addr(0), false)
	bl.SetHealth("b", addr(1), false)
	if _, err := bl.Pick(b, PickInput{}); !errors.Is(err, ErrNoEndpoint) {
		t.Errorf("all unhealthy: error %v, want ErrNoEndpoint", err)
	}
}

func TestPanicMode(t *testing.T) {
	tests := []struct {
		name      string
		threshold float64
		unhealthy []int
		wantPanic bool
		wantUsed  []int // nil: ErrNoEndpoint
	}{
		{name: "healthy share above threshold", threshold: 50, unhealthy: []int{0, 1}, wantUsed: []int{2, 3}},
		{name: "healthy share below threshold", threshold: 50, unhealthy: []int{0, 1, 2}, wantPanic: true, wantUsed: []int{0, 1, 2, 3}},
		{name: "all unhealthy panics", threshold: 10, unhealthy: []int{0, 1, 2, 3}, wantPanic: true, wantUsed: []int{0, 1, 2, 3}},
		{name: "threshold 0 never panics", threshold: 0, unhealthy: []int{0, 1, 2, 3}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bl, _ := newTestBalancer(1)
			b := mkBackend("b", ir.LBRoundRobin, 1, 1, 1, 1)
			b.PanicThreshold = tc.threshold
			bl.Update([]*ir.Backend{b})
			for _, i := range tc.unhealthy {
				bl.SetHealth("b", addr(i), false)
			}
			if st := bl.Stats()[0]; st.Panic != tc.wantPanic {
				t.Errorf("panic %v, want %v", st.Panic, tc.wantPanic)
			}
			if tc.wantUsed == nil {
				if _, err := bl.Pick(b, PickInput{}); !errors.Is(err, ErrNoEndpoint) {
					t.Fatalf("error %v, want ErrNoEndpoint", err)
				}
				return
			}
			got := countPicks(t, bl, b, 4*len(tc.wantUsed), nil, Outcome{})
			if len(got) != len(tc.wantUsed) {
				t.Fatalf("used %v, want %v", got, tc.wantUsed)
			}
			for _, i := range tc.wantUsed {
				if got[addr(i)] != 4 {
					t.Errorf("used %v, want %v evenly", got, tc.wantUsed)
				}
			}
		})
	}
}

func TestDraining(t *testing.T) {
	bl, _ := newTestBalancer(1)
	b := mkBackend("b", ir.LBRoundRobin, 1, 1, 1)
	b.Endpoints[0].Draining = true
	bl.Update([]*ir.Backend{b})
	if used(t, bl, b, 0) {
		t.Error("draining endpoint used while others are usable")
	}
	// Sessions stay on a draining endpoint.
	if p := mustPick(t, bl, b, PickInput{Prefer: addr(0)}); p.Endpoint.Address != addr(0) {
		t.Errorf("Prefer of a draining endpoint gave %s", p.Endpoint.Address)
	} else {
		p.Done(Outcome{})
	}
	// With nothing else usable, draining endpoints serve.
	bl.SetHealth("b", addr(1), false)
	bl.SetHealth("b", addr(2), false)
	if !used(t, bl, b, 0) {
		t.Error("draining endpoint not used as the last resort")
	}
}
