package dataplane

import (
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
// GCs.
const (
	// applyTrimDelay is how long after the last Apply the trim runs: a
	// burst of reloads is trimmed once, after it.
	applyTrimDelay = 2 * time.Second
	// applyTrimInterval is the least time between two trims.
	applyTrimInterval = 30 * time.Second
)

// applyTrim schedules the trim after Applies.
type applyTrim struct {
	mu    sync.Mutex
	timer *time.Timer
	last  time.Time
	// free returns memory to the OS; memtrim.Release unless a test
	// counts calls.
	free func()
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
	if t.timer != nil {
		t.timer.Reset(wait)
		return
	}
	t.timer = time.AfterFunc(wait, t.run)
}

func (t *applyTrim) run() {
	t.mu.Lock()
	t.last = time.Now()
	free := t.free
	t.mu.Unlock()
	if free == nil {
		free = memtrim.Release
	}
	free()
}

// stop cancels a trim not yet run.
func (t *applyTrim) stop() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.timer != nil {
		t.timer.Stop()
	}
}
