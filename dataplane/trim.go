package dataplane

import (
	"log/slog"
	"sync"
	"time"

	"github.com/meshgate/meshgate/internal/memtrim"
)

// Building a config (translation, route tables, certificates, compiled
// policies) makes garbage several times the size of what it keeps, and
// the Go runtime returns freed pages to the OS only slowly: a gateway that
// has just started or reloaded and then sits idle would hold that memory
// for minutes, and the binary's pages that the build touched stay mapped.
// So after an Apply the data plane gives both back (memtrim.Release), once
// the reloads have settled and at most once per applyTrimInterval, which
// bounds what a config that churns (endpoints in a busy cluster) costs in
// GCs. The trim also waits until no request has started for a moment
// (Dataplane.activity): under load it would make the requests in flight
// fault the binary's code back in, so a gateway that is never quiet keeps
// its memory.
const (
	// applyTrimDelay is how long after the last Apply the trim runs: a
	// burst of reloads is trimmed once, after it.
	applyTrimDelay = 2 * time.Second
	// applyTrimInterval is the least time between two trims.
	applyTrimInterval = 30 * time.Second
	// applyTrimRecheck is how long a trim that found the gateway serving
	// waits before looking again: it runs after that long without a
	// request starting.
	applyTrimRecheck = 250 * time.Millisecond
)

// applyTrim schedules the trim after Applies.
type applyTrim struct {
	mu    sync.Mutex
	timer *time.Timer
	last  time.Time
	// activity is the gateway's (Dataplane.activity); mark is what it said
	// when the trim was last scheduled. The trim waits for a moment when
	// no request has started since. nil: always quiet.
	activity memtrim.Activity
	mark     int64
	// free returns memory to the OS; memtrim.Release unless a test
	// counts calls.
	free func() memtrim.Result
	// log gets one line per trim; none when nil (tests).
	log *slog.Logger
}

// applied notes one more Apply: the trim runs applyTrimDelay after the
// last of a burst, and no sooner than applyTrimInterval after the one
// before.
func (t *applyTrim) applied() {
	t.mu.Lock()
	defer t.mu.Unlock()
	wait := applyTrimDelay
	if !t.last.IsZero() {
		wait = max(wait, time.Until(t.last.Add(applyTrimInterval)))
	}
	t.schedule(wait)
}

// schedule (re)arms the trim's timer; t.mu is held.
func (t *applyTrim) schedule(wait time.Duration) {
	t.mark = t.activity.Mark()
	if t.timer != nil {
		t.timer.Reset(wait)
		return
	}
	t.timer = time.AfterFunc(wait, t.run)
}

func (t *applyTrim) run() {
	t.mu.Lock()
	if !t.activity.Quiet(&t.mark) {
		// Serving: look again in a moment.
		t.schedule(applyTrimRecheck)
		t.mu.Unlock()
		return
	}
	t.last = time.Now()
	free, log := t.free, t.log
	t.mu.Unlock()
	if free == nil {
		free = memtrim.Release
	}
	r := free()
	if log != nil {
		r.Log(log, "config applied")
	}
}

// stop cancels a trim not yet run.
func (t *applyTrim) stop() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.timer != nil {
		t.timer.Stop()
	}
}
