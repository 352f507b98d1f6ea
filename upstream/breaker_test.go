package upstream

import (
	"context"
	"errors"
	"runtime"
	"testing"

	"github.com/meshgate/meshgate/ir"
)

func TestCircuitBreakerMaxRequests(t *testing.T) {
	bl, _ := newTestBalancer(1)
	b := mkBackend("b", ir.LBLeastRequest, 1, 1)
	b.CircuitBreaker = &ir.CircuitBreaker{MaxRequests: 2}
	bl.Update([]*ir.Backend{b})
	p1 := mustPick(t, bl, b, PickInput{})
	p2 := mustPick(t, bl, b, PickInput{})
	for range 3 {
		if _, err := bl.Pick(b, PickInput{}); !errors.Is(err, ErrCircuitOpen) {
			t.Fatalf("third request in flight: error %v, want ErrCircuitOpen", err)
		}
	}
	p1.Done(Outcome{Status: 200})
	mustPick(t, bl, b, PickInput{}).Done(Outcome{Status: 200})
	p2.Done(Outcome{Status: 200})
	st := bl.Stats()[0]
	if st.BreakerRejections != 3 || st.InFlight != 0 {
		t.Errorf("stats %+v, want 3 rejections and nothing in flight", st)
	}
}

func TestAcquireRetry(t *testing.T) {
	tests := []struct {
		name     string
		cb       *ir.CircuitBreaker
		retry    *ir.Retry
		inFlight int  // requests held in flight first
		want     int  // retries granted before the first refusal
		budget   bool // the refusal is the budget's (else the breaker's)
	}{
		{name: "breaker max retries", cb: &ir.CircuitBreaker{MaxRetries: 2}, want: 2},
		{name: "budget minimum on an idle backend", retry: &ir.Retry{BudgetPercent: 20, MinRetryConcurrency: 3}, want: 3, budget: true},
		{name: "budget percent of requests in flight", retry: &ir.Retry{BudgetPercent: 50, MinRetryConcurrency: 1}, inFlight: 10, want: 5, budget: true},
		{name: "minimum wins over a small percent", retry: &ir.Retry{BudgetPercent: 10, MinRetryConcurrency: 4}, inFlight: 10, want: 4, budget: true},
		{name: "unset budget takes the defaults", retry: &ir.Retry{Attempts: 2}, inFlight: 20, want: 4, budget: true},
		{name: "unset budget minimum", retry: &ir.Retry{Attempts: 2}, want: defaultMinRetryConcurrency, budget: true},
		{name: "breaker caps the budget", cb: &ir.CircuitBreaker{MaxRetries: 1}, retry: &ir.Retry{BudgetPercent: 100, MinRetryConcurrency: 10}, want: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bl, _ := newTestBalancer(1)
			b := mkBackend("b", "", 1)
			b.CircuitBreaker = tc.cb
			bl.Update([]*ir.Backend{b})
			var held []Pick
			for range tc.inFlight {
				held = append(held, mustPick(t, bl, b, PickInput{}))
			}
			var releases []func()
			for {
				rel, ok := bl.AcquireRetry(b, tc.retry)
				if !ok {
					break
				}
				releases = append(releases, rel)
				if len(releases) > 100 {
					t.Fatal("no limit")
				}
			}
			if len(releases) != tc.want {
				t.Fatalf("granted %d retries, want %d", len(releases), tc.want)
			}
			st := bl.Stats()[0]
			if st.RetriesInFlight != int64(tc.want) || (st.RetryBudgetRejections == 1) != tc.budget || (st.BreakerRejections == 1) == tc.budget {
				t.Errorf("stats %+v", st)
			}
			// A release frees a slot.
			releases[0]()
			rel, ok := bl.AcquireRetry(b, tc.retry)
			if !ok {
				t.Fatal("slot not freed by release")
			}
			rel()
			for _, r := range releases[1:] {
				r()
			}
			for _, p := range held {
				p.Done(Outcome{})
			}
			if st := bl.Stats()[0]; st.RetriesInFlight != 0 {
				t.Errorf("retries in flight %d after release", st.RetriesInFlight)
			}
		})
	}
}

// waitFor yields until cond holds (the test's own timeout bounds it).
func waitFor(cond func() bool) {
	for !cond() {
		runtime.Gosched()
	}
}

func TestAcquireConn(t *testing.T) {
	ctx := context.Background()
	t.Run("no caps", func(t *testing.T) {
		var bl Balancer
		b := mkBackend("b", "", 1)
		b.CircuitBreaker = &ir.CircuitBreaker{MaxRequests: 5}
		for range 10 {
			if _, err := bl.AcquireConn(ctx, b); err != nil {
				t.Fatal(err)
			}
		}
		if n := testing.AllocsPerRun(100, func() {
			rel, _ := bl.AcquireConn(ctx, b)
			rel()
		}); n != 0 {
			t.Errorf("AcquireConn without caps allocates %v", n)
		}
	})
	t.Run("waits, then pending overflow", func(t *testing.T) {
		var bl Balancer
		b := mkBackend("b", "", 1)
		b.CircuitBreaker = &ir.CircuitBreaker{MaxConnections: 1, MaxPendingRequests: 1}
		bl.Update([]*ir.Backend{b})
		rel1, err := bl.AcquireConn(ctx, b)
		if err != nil {
			t.Fatal(err)
		}
		got := make(chan error)
		var rel2 func()
		go func() {
			var err error
			rel2, err = bl.AcquireConn(ctx, b)
			got <- err
		}()
		waitFor(func() bool { return bl.Stats()[0].PendingConnections == 1 })
		// The queue is full: refused at once.
		if _, err := bl.AcquireConn(ctx, b); !errors.Is(err, ErrCircuitOpen) {
			t.Fatalf("overflow: error %v, want ErrCircuitOpen", err)
		}
		rel1()
		if err := <-got; err != nil {
			t.Fatalf("waiter: %v", err)
		}
		st := bl.Stats()[0]
		if st.Connections != 1 || st.PendingConnections != 0 || st.BreakerRejections != 1 {
			t.Errorf("stats %+v", st)
		}
		rel2()
		if st := bl.Stats()[0]; st.Connections != 0 {
			t.Errorf("connections %d after release", st.Connections)
		}
		// A free slot costs no allocation.
		if n := testing.AllocsPerRun(100, func() {
			rel, _ := bl.AcquireConn(ctx, b)
			rel()
		}); n != 0 {
			t.Errorf("AcquireConn with a free slot allocates %v", n)
		}
	})
	t.Run("waiter gives up with its context", func(t *testing.T) {
		var bl Balancer
		b := mkBackend("b", "", 1)
		b.CircuitBreaker = &ir.CircuitBreaker{MaxConnections: 1}
		rel1, _ := bl.AcquireConn(ctx, b)
		cctx, cancel := context.WithCancel(ctx)
		got := make(chan error)
		go func() {
			_, err := bl.AcquireConn(cctx, b)
			got <- err
		}()
		waitFor(func() bool { return bl.Stats()[0].PendingConnections == 1 })
		cancel()
		if err := <-got; !errors.Is(err, context.Canceled) {
			t.Fatalf("error %v, want context.Canceled", err)
		}
		rel1()
		if st := bl.Stats()[0]; st.Connections != 0 || st.PendingConnections != 0 {
			t.Errorf("stats %+v", st)
		}
	})
	t.Run("waiters served in order", func(t *testing.T) {
		var bl Balancer
		b := mkBackend("b", "", 1)
		b.CircuitBreaker = &ir.CircuitBreaker{MaxConnections: 1}
		rel, _ := bl.AcquireConn(ctx, b)
		order := make(chan int, 3)
		for i := range 3 {
			waitFor(func() bool { return bl.Stats()[0].PendingConnections == i })
			go func() {
				r, err := bl.AcquireConn(ctx, b)
				if err != nil {
					t.Error(err)
				}
				order <- i
				r()
			}()
		}
		waitFor(func() bool { return bl.Stats()[0].PendingConnections == 3 })
		rel()
		for want := range 3 {
			if got := <-order; got != want {
				t.Fatalf("waiter %d served in place %d", got, want)
			}
		}
	})
}
