package dataplane

import (
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshgate/meshgate/internal/memtrim"
)

// TestApplyTrim: a burst of Applies leads to one trim after the burst, and
// an Apply soon after a trim waits for the interval to pass.
func TestApplyTrim(t *testing.T) {
	var calls atomic.Int32
	tr := &applyTrim{free: func() memtrim.Result { calls.Add(1); return memtrim.Result{} }}
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
	tr := &applyTrim{free: func() memtrim.Result { calls.Add(1); return memtrim.Result{} }}
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

// TestApplyTrimLogs: each trim is one Info line saying what it followed
// and what it did, so an operator can tell a trim from a leak's cure.
func TestApplyTrimLogs(t *testing.T) {
	lines := make(lineWriter, 4)
	tr := &applyTrim{
		log: slog.New(slog.NewTextHandler(lines, nil)),
		free: func() memtrim.Result {
			return memtrim.Result{RSSBefore: 60 << 20, RSSAfter: 20 << 20, ExeUnmapped: 30 << 20, Err: errors.New("madvise: EINVAL")}
		},
	}
	tr.applied()
	var line string
	select {
	case line = <-lines:
	case <-time.After(10 * time.Second):
		t.Fatal("no trim logged within 10 s of an Apply")
	}
	for _, want := range []string{"level=INFO", `msg="memory trimmed"`, `after="config applied"`, "rss_before_bytes=62914560", "rss_after_bytes=20971520", "binary_unmapped_bytes=31457280", `unmap_error="madvise: EINVAL"`} {
		if !strings.Contains(line, want) {
			t.Errorf("log line %q lacks %s", line, want)
		}
	}
}

// lineWriter hands each log line written by the trim's timer goroutine to
// the test.
type lineWriter chan string

func (w lineWriter) Write(p []byte) (int, error) {
	w <- string(p)
	return len(p), nil
}
