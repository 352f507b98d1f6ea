package dataplane

import (
	"sync/atomic"
	"testing"
	"time"
)

// TestApplyTrim: a burst of Applies leads to one trim after the burst, and
// an Apply soon after a trim waits for the interval to pass.
func TestApplyTrim(t *testing.T) {
	var calls atomic.Int32
	tr := &applyTrim{free: func() { calls.Add(1) }}
	defer tr.stop()
	for range 5 {
		tr.applied()
		time.Sleep(100 * time.Millisecond)
	}
	if n := calls.Load(); n != 0 {
		t.Fatalf("%d trims during a burst of applies, want none yet", n)
	}
	deadline := time.Now().Add(applyTrimDelay + 5*time.Second)
	for calls.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("%d trims after a burst of applies, want 1", n)
	}
	tr.applied()
	time.Sleep(applyTrimDelay + time.Second)
	if n := calls.Load(); n != 1 {
		t.Fatalf("%d trims within the interval after a trim, want still 1", n)
	}
	tr.mu.Lock()
	pending := tr.timer.Stop()
	tr.mu.Unlock()
	if !pending {
		t.Fatal("the apply within the interval scheduled no trim for after it")
	}
}

// TestApplyTrimWaitsForQuiet: the trim after an Apply waits while
// requests start or are in flight, then runs once the gateway is quiet.
func TestApplyTrimWaitsForQuiet(t *testing.T) {
	var calls, started atomic.Int32
	var busy atomic.Bool
	tr := &applyTrim{free: func() { calls.Add(1) }}
	tr.activity = func() (int64, bool) { return int64(started.Load()), busy.Load() }
	defer tr.stop()
	tr.applied()
	stop := make(chan struct{})
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
				started.Add(1)
			}
		}
	}()
	time.Sleep(applyTrimDelay + 4*applyTrimRecheck)
	close(stop)
	if n := calls.Load(); n != 0 {
		t.Fatalf("%d trims while requests kept starting, want none", n)
	}
	busy.Store(true)
	time.Sleep(4 * applyTrimRecheck)
	if n := calls.Load(); n != 0 {
		t.Fatalf("%d trims with a request in flight, want none", n)
	}
	busy.Store(false)
	deadline := time.Now().Add(5 * time.Second)
	for calls.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("%d trims once the gateway went quiet, want 1", n)
	}
}
