package upstream

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/meshgate/meshgate/ir"
)

// TestConcurrentUse runs Pick/Done, retries, connections, health marks,
// Stats and Update together (run with -race), then checks every counter
// came back to zero.
func TestConcurrentUse(t *testing.T) {
	clk := newFakeClock()
	bl := &Balancer{now: clk.now} // default random source: goroutine-safe
	algos := []ir.LoadBalancerType{ir.LBRoundRobin, ir.LBRandom, ir.LBLeastRequest, ir.LBRingHash, ir.LBMaglev}
	config := func(gen int) []*ir.Backend {
		var bs []*ir.Backend
		for k, lb := range algos {
			n := 3 + (gen+k)%4
			w := make([]int32, n)
			for i := range w {
				w[i] = int32(1 + i%3)
			}
			b := mkBackend(string(lb), lb, w...)
			b.Endpoints[0].Draining = gen%2 == 0
			b.LoadBalancer.SlowStart = time.Second
			b.PanicThreshold = 30
			b.Outlier = &ir.OutlierDetection{Consecutive5xx: 2, ConsecutiveGatewayErrors: 2, BaseEjectionTime: 50 * time.Millisecond, MaxEjectionPercent: 50}
			b.CircuitBreaker = &ir.CircuitBreaker{MaxRequests: 50, MaxRetries: 5, MaxConnections: 4}
			bs = append(bs, b)
		}
		return bs
	}
	var cur sync.Map // name -> *ir.Backend (a request may hold an old one)
	publish := func(bs []*ir.Backend) {
		bl.Update(bs)
		for _, b := range bs {
			cur.Store(b.Name, b)
		}
	}
	publish(config(0))
	const workers, rounds = 8, 2000
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range rounds {
				lb := algos[(w+i)%len(algos)]
				v, _ := cur.Load(string(lb))
				b := v.(*ir.Backend)
				in := PickInput{Hash: uint64(i * 7919), HasHash: i%3 != 0}
				if i%5 == 0 {
					in.Avoid = addr(1)
				}
				if i%7 == 0 {
					in.Prefer = addr(2)
				}
				p, err := bl.Pick(b, in)
				if err != nil {
					continue
				}
				if i%11 == 0 {
					if rel, ok := bl.AcquireRetry(b, &ir.Retry{BudgetPercent: 20, MinRetryConcurrency: 2}); ok {
						rel()
					}
				}
				if i%13 == 0 {
					ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
					if rel, err := bl.AcquireConn(ctx, b); err == nil {
						rel()
					}
					cancel()
				}
				o := Outcome{Status: 200}
				switch i % 9 {
				case 1, 2:
					o = Outcome{Status: 503, GatewayError: true}
				case 3:
					o = Outcome{Local: true}
				}
				p.Done(o)
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for gen := 1; gen < 60; gen++ {
			publish(config(gen))
			clk.advance(20 * time.Millisecond)
			bl.SetHealth(string(algos[gen%len(algos)]), addr(gen%3), gen%4 != 0)
			_ = bl.Stats()
		}
	}()
	wg.Wait()
	for _, st := range bl.Stats() {
		if st.InFlight != 0 || st.RetriesInFlight != 0 || st.Connections != 0 || st.PendingConnections != 0 {
			t.Errorf("%s: counters not back to zero: %+v", st.Name, st)
		}
	}
}

// TestPickDoneAllocs proves the hot path allocates nothing, for every
// algorithm and with every feature that runs per request switched on.
func TestPickDoneAllocs(t *testing.T) {
	for _, lb := range []ir.LoadBalancerType{"", ir.LBRoundRobin, ir.LBRandom, ir.LBLeastRequest, ir.LBRingHash, ir.LBMaglev} {
		for _, weighted := range []bool{false, true} {
			name := fmt.Sprintf("%s/weighted=%v", lb, weighted)
			t.Run(name, func(t *testing.T) {
				var bl Balancer
				w := []int32{1, 1, 1, 1, 1, 1, 1, 1}
				if weighted {
					w = []int32{1, 2, 3, 4, 5, 6, 7, 8}
				}
				b := mkBackend("b", lb, w...)
				b.Outlier = &ir.OutlierDetection{Consecutive5xx: 5, ConsecutiveGatewayErrors: 5, MaxEjectionPercent: 10}
				b.CircuitBreaker = &ir.CircuitBreaker{MaxRequests: 1000, MaxRetries: 10}
				b.PanicThreshold = 50
				bl.Update([]*ir.Backend{b})
				retry := &ir.Retry{BudgetPercent: 20, MinRetryConcurrency: 3}
				// Addresses are made outside the measured function:
				// fmt.Sprintf allocates, the balancer must not.
				addrs := make([]string, 8)
				for k := range addrs {
					addrs[k] = addr(k)
				}
				i := 0
				n := testing.AllocsPerRun(1000, func() {
					i++
					in := PickInput{Hash: uint64(i) * 0x9e3779b97f4a7c15, HasHash: i%4 != 0}
					if i%3 == 0 {
						in.Prefer = addrs[i%8]
					}
					if i%5 == 0 {
						in.Avoid = addrs[i%8]
					}
					p, err := bl.Pick(b, in)
					if err != nil {
						t.Fatal(err)
					}
					if rel, ok := bl.AcquireRetry(b, retry); ok {
						rel()
					}
					// Failures run the outlier counting and the
					// ejection check; 10% of 8 endpoints allows no
					// ejection, so no view is rebuilt.
					o := Outcome{Status: 200}
					if i%2 == 0 {
						o = Outcome{Status: 503, GatewayError: true}
					}
					p.Done(o)
				})
				if n != 0 {
					t.Errorf("Pick+Done allocates %v times", n)
				}
			})
		}
	}
}

func BenchmarkPick(b *testing.B) {
	for _, lb := range []ir.LoadBalancerType{ir.LBRoundRobin, ir.LBRandom, ir.LBLeastRequest, ir.LBRingHash, ir.LBMaglev} {
		for _, weighted := range []bool{false, true} {
			b.Run(fmt.Sprintf("%s/weighted=%v", lb, weighted), func(b *testing.B) {
				var bl Balancer
				w := make([]int32, 16)
				for i := range w {
					w[i] = 1
					if weighted {
						w[i] = int32(1 + i%5)
					}
				}
				be := mkBackend("b", lb, w...)
				bl.Update([]*ir.Backend{be})
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					var i uint64
					for pb.Next() {
						i++
						p, err := bl.Pick(be, PickInput{Hash: i * 0x9e3779b97f4a7c15, HasHash: true})
						if err != nil {
							b.Fatal(err)
						}
						p.Done(Outcome{Status: 200})
					}
				})
			})
		}
	}
}
