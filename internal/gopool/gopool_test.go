package gopool

import (
	"runtime"
	"sync"
	"testing"
	"time"
)

// TestPool: work runs at once however much is running (nothing waits for
// other work to end), work handed over one piece after another reuses one
// goroutine, and no more than MaxIdle goroutines stay waiting.
func TestPool(t *testing.T) {
	p := &Pool[int]{MaxIdle: 4}
	const n = 40
	var entered sync.WaitGroup
	entered.Add(n)
	release := make(chan struct{})
	var done sync.WaitGroup
	done.Add(n)
	block := func(int) { entered.Done(); <-release; done.Done() }
	for i := range n {
		p.Go(i, block)
	}
	all := make(chan struct{})
	go func() { entered.Wait(); close(all) }()
	select {
	case <-all:
	case <-time.After(20 * time.Second):
		t.Fatal("not every piece of work was running at once")
	}
	close(release)
	done.Wait()
	waitFor(t, func() bool { return p.Waiting() == 4 }, "4 goroutines waiting (MaxIdle)")

	started := p.Started()
	ran := make(chan int, 1)
	for i := range 50 {
		p.Go(i, func(v int) { ran <- v })
		if v := <-ran; v != i {
			t.Fatalf("ran %d, want %d", v, i)
		}
		// The goroutine goes back to waiting before the next piece.
		waitFor(t, func() bool { return p.Waiting() == 4 }, "the goroutine back to waiting")
	}
	if more := p.Started() - started; more != 0 {
		t.Errorf("50 pieces handed over one after another started %d goroutines, want 0", more)
	}
}

// TestPoolZeroValue: a zero Pool works, with DefaultMaxIdle.
func TestPoolZeroValue(t *testing.T) {
	var p Pool[string]
	got := make(chan string)
	p.Go("x", func(s string) { got <- s })
	if s := <-got; s != "x" {
		t.Fatalf("got %q", s)
	}
	waitFor(t, func() bool { return p.Waiting() == 1 }, "one goroutine waiting")
}

// TestPoolAllocs: handing work to a waiting goroutine allocates nothing.
func TestPoolAllocs(t *testing.T) {
	var p Pool[int]
	done := make(chan struct{})
	run := func(int) { done <- struct{}{} }
	p.Go(0, run)
	<-done
	waitFor(t, func() bool { return p.Waiting() == 1 }, "one goroutine waiting")
	n := testing.AllocsPerRun(100, func() {
		p.Go(1, run)
		<-done
		for p.Waiting() != 1 {
			runtime.Gosched()
		}
	})
	if n != 0 {
		t.Errorf("Go allocates %v times", n)
	}
}

func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("never: %s", what)
		}
		time.Sleep(100 * time.Microsecond)
	}
}
