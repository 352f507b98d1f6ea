package server

import (
	"sync/atomic"
	"testing"
	"time"
)

// TestIdleTrim: a wave of parked connections leads to one trim once the
// wave is over; a few parked connections lead to none.
func TestIdleTrim(t *testing.T) {
	var calls atomic.Int32
	tr := &idleTrim{free: func() { calls.Add(1) }}
	for range trimAfterParked - 1 {
		tr.parked()
	}
	time.Sleep(trimQuiet + 500*time.Millisecond)
	if n := calls.Load(); n != 0 {
		t.Fatalf("%d trims after %d parked connections, want none", n, trimAfterParked-1)
	}
	for range 2 * trimAfterParked {
		tr.parked()
	}
	deadline := time.Now().Add(trimMaxWait + 5*time.Second)
	for calls.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("%d trims after a wave of parked connections, want 1", n)
	}
	if tr.count.Load() != 0 || tr.scheduled.Load() {
		t.Fatal("the trim did not reset its count and schedule")
	}
}
