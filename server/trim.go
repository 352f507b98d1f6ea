package server

import (
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshgate/meshgate/internal/memtrim"
)

// Parked connections give back what they no longer need (h1.go,
// waitIdle), but that memory is only garbage: with no requests there is
// no allocation, so no GC runs for up to two minutes, and the Go runtime
// returns freed pages to the OS only after a GC. Idle connections come in
// waves at the edge (a burst of clients that keep their connections
// open), so after a wave the listener runs one GC and returns the freed
// memory (memtrim.Release), at most once per trimInterval; and once load
// that opened many connections has gone and none is open. The GC also
// shrinks the parked goroutines' stacks. Either trim waits for a moment
// when the gateway serves no request (SetActivity): it unmaps the
// binary's code, which requests in flight would fault back in.
const (
	// trimAfterParked is how many connections must have parked since the
	// last trim for another: a handful going idle is not worth a GC.
	trimAfterParked = 256
	// trimQuiet is how long no further connection must have parked
	// before the trim: a wave finishes parking first.
	trimQuiet = time.Second
	// trimMaxWait bounds the wait for quiet, for a steady trickle.
	trimMaxWait = 10 * time.Second
	// trimInterval is the least time between two trims.
	trimInterval = 10 * time.Second
	// trimAfterConns is how many connections must have opened since the
	// last trim for the listener going empty to trim: a health check's
	// connection coming and going is not worth a GC.
	trimAfterConns = 16
	// trimRecheck is how long a trim that found the gateway serving
	// waits before looking again: it runs after that long without a
	// request starting.
	trimRecheck = 250 * time.Millisecond
)

// idleTrim schedules memory trims after waves of parked connections and
// once load has gone.
type idleTrim struct {
	count     atomic.Int64 // connections parked since the last trim
	conns     atomic.Int64 // connections opened since the last trim
	lastPark  atomic.Int64 // unix nanoseconds of the latest park
	scheduled atomic.Bool
	mu        sync.Mutex
	last      time.Time
	// activity, when set (SetActivity), tells whether the gateway is
	// serving: a trim waits until no request has started for a while.
	activity atomic.Pointer[memtrim.Activity]
	// free returns memory to the OS; memtrim.Release unless a test
	// counts calls.
	free func() memtrim.Result
	// log gets one line per trim; none when nil (tests).
	log *slog.Logger
}

// parked notes one more parked connection and schedules a trim once
// enough have parked.
func (t *idleTrim) parked() {
	t.lastPark.Store(time.Now().UnixNano())
	if t.count.Add(1) < trimAfterParked || !t.scheduled.CompareAndSwap(false, true) {
		return
	}
	wait := t.wait()
	start := time.Now()
	mark := t.gateway().Mark()
	var check func()
	check = func() {
		quiet := time.Since(time.Unix(0, t.lastPark.Load()))
		if quiet < trimQuiet && time.Since(start) < trimMaxWait {
			time.AfterFunc(trimQuiet-quiet, check)
			return
		}
		if !t.gateway().Quiet(&mark) {
			// The gateway is serving: look again in a moment.
			time.AfterFunc(trimRecheck, check)
			return
		}
		t.run("idle connections parked")
	}
	time.AfterFunc(wait, check)
}

// gateway returns the gateway's activity (SetActivity), nil until set.
func (t *idleTrim) gateway() memtrim.Activity {
	if a := t.activity.Load(); a != nil {
		return *a
	}
	return nil
}

// wait is how long a trim scheduled now waits: trimQuiet, and until
// trimInterval has passed since the last trim.
func (t *idleTrim) wait() time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	return max(trimQuiet, time.Until(t.last.Add(trimInterval)))
}

// opened notes one more accepted connection.
func (t *idleTrim) opened() { t.conns.Add(1) }

// emptied notes that the listener's last connection closed. When the load
// that opened many connections has gone (a burst of clients, a load
// test), the listener trims once, trimQuiet later, unless a connection is
// open again by then (open reports how many are); the next emptying then
// tries again. It does not run either while the gateway serves requests
// on other listeners.
func (t *idleTrim) emptied(open func() int64) {
	if t.conns.Load() < trimAfterConns || !t.scheduled.CompareAndSwap(false, true) {
		return
	}
	mark := t.gateway().Mark()
	time.AfterFunc(t.wait(), func() {
		if open() != 0 || !t.gateway().Quiet(&mark) {
			t.scheduled.Store(false)
			return
		}
		t.run("listener emptied")
	})
}

// run trims; why says what it followed, for the log.
func (t *idleTrim) run(why string) {
	t.mu.Lock()
	t.last = time.Now()
	t.mu.Unlock()
	t.count.Store(0)
	t.conns.Store(0)
	free := t.free
	if free == nil {
		free = memtrim.Release
	}
	r := free()
	if t.log != nil {
		r.Log(t.log, why)
	}
	t.scheduled.Store(false)
}
