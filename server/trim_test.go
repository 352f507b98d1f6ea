package server

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshgate/meshgate/internal/memtrim"
)

// TestIdleTrim: a wave of parked connections leads to one trim once the
// wave is over; a few parked connections lead to none.
func TestIdleTrim(t *testing.T) {
	var calls atomic.Int32
	tr := &idleTrim{free: func() memtrim.Result { calls.Add(1); return memtrim.Result{} }}
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

// TestIdleTrimEmptied: the listener going empty trims once after a load
// that opened many connections, not after a few, and not when a
// connection is open again by the time the trim is due.
func TestIdleTrimEmptied(t *testing.T) {
	tests := []struct {
		name      string
		opened    int
		reopen    bool // a connection opens before the trim is due
		wantTrims int32
	}{
		{"a few connections", trimAfterConns - 1, false, 0},
		{"load that went away", trimAfterConns, false, 1},
		{"load that came back", 2 * trimAfterConns, true, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var calls atomic.Int32
			var open atomic.Int64
			tr := &idleTrim{free: func() memtrim.Result { calls.Add(1); return memtrim.Result{} }}
			for range tt.opened {
				tr.opened()
			}
			tr.emptied(open.Load)
			if tt.reopen {
				open.Store(1)
			}
			time.Sleep(trimQuiet + time.Second)
			if n := calls.Load(); n != tt.wantTrims {
				t.Fatalf("%d trims, want %d", n, tt.wantTrims)
			}
			if tr.scheduled.Load() {
				t.Fatal("a trim is still scheduled")
			}
			if tt.wantTrims > 0 && tr.conns.Load() != 0 {
				t.Fatal("the trim did not reset its connection count")
			}
		})
	}
}

// TestIdleTrimWaitsForQuiet: neither trigger trims while the gateway is
// serving requests; the parked wave's trim runs once it has gone quiet.
func TestIdleTrimWaitsForQuiet(t *testing.T) {
	var calls atomic.Int32
	var started atomic.Int64
	var busy atomic.Bool
	tr := &idleTrim{free: func() memtrim.Result { calls.Add(1); return memtrim.Result{} }}
	activity := memtrim.Activity(func() (int64, bool) { return started.Load(), busy.Load() })
	tr.activity.Store(&activity)

	// Requests keep starting: the wave's trim keeps waiting.
	for range trimAfterParked {
		tr.parked()
	}
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
	time.Sleep(trimQuiet + 4*trimRecheck)
	close(stop)
	if n := calls.Load(); n != 0 {
		t.Fatalf("%d trims while requests kept starting, want none", n)
	}
	// One request in flight, none starting: still waiting.
	busy.Store(true)
	time.Sleep(4 * trimRecheck)
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

	// The listener empties while another serves: no trim, none pending.
	tr.mu.Lock()
	tr.last = time.Time{}
	tr.mu.Unlock()
	for range trimAfterConns {
		tr.opened()
	}
	busy.Store(true)
	tr.emptied(func() int64 { return 0 })
	time.Sleep(trimQuiet + 500*time.Millisecond)
	if n := calls.Load(); n != 1 {
		t.Fatalf("%d trims after emptying while the gateway serves, want still 1", n)
	}
	if tr.scheduled.Load() {
		t.Fatal("a trim is still scheduled")
	}
}
