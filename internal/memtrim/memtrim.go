// Package memtrim gives back to the OS the memory an idle gateway holds
// but does not use: the heap's free pages, and the resident pages of the
// binary's read-only mappings (code and read-only data).
//
// The Go runtime returns freed heap pages only some minutes after a GC;
// Release runs one and returns them at once (debug.FreeOSMemory).
//
// The gateway's binary is large (the Kubernetes client, CEL and the
// protocol stacks), and starting it touches much of it once: package
// initialisers, the first config build, certificate loading. The kernel
// maps what a fault touches in large pieces (fault-around, large
// folios), so a gateway that has started and sits idle keeps tens of
// megabytes of its binary mapped that it will not run again. Unmapping
// them (MADV_DONTNEED) drops them from the process's resident set but not
// from the page cache: they stay shared and reclaimable, and what the
// gateway runs again is mapped back by a minor fault.
//
// Only mappings that are read-only and backed by the binary's own file
// are released: a private writable mapping (.data) holds the process's
// own changes, which MADV_DONTNEED would discard. That needs Linux's
// /proc/self/maps; elsewhere Release returns only the heap.
package memtrim

import (
	"log/slog"
	"runtime/debug"
	"time"
)

// Result is what one Release did, for the log line an operator reads when
// the gateway's RSS drops.
type Result struct {
	// RSSBefore and RSSAfter are the process's resident set in bytes
	// (0 where /proc/self/statm is not there).
	RSSBefore, RSSAfter int64
	// ExeUnmapped is the size of the binary's read-only mappings released.
	ExeUnmapped int64
	// Took is how long the GC and the unmapping took.
	Took time.Duration
	// Err is why unmapping stopped early: pages stay mapped, nothing else.
	Err error
}

// Log writes r as one line at Info: trims run at most a few times a
// minute (their callers bound them), and an RSS that halves unexplained
// looks like a leak's cure or a restart.
func (r Result) Log(log *slog.Logger, why string) {
	attrs := []any{"after", why, "rss_before_bytes", r.RSSBefore, "rss_after_bytes", r.RSSAfter,
		"binary_unmapped_bytes", r.ExeUnmapped, "took", r.Took.String()}
	if r.Err != nil {
		attrs = append(attrs, "unmap_error", r.Err)
	}
	log.Info("memory trimmed", attrs...)
}

// Release returns the heap's free memory to the OS and unmaps the
// binary's resident read-only pages. It costs a full GC, so callers run it
// when the gateway has gone quiet (after reloads, after a wave of
// connections has parked, once load has gone; see Activity), not on a
// timer. A failure to unmap only leaves pages mapped (Result.Err).
func Release() Result {
	start := time.Now()
	r := Result{RSSBefore: RSS()}
	debug.FreeOSMemory()
	r.ExeUnmapped, r.Err = ReleaseExePages()
	r.RSSAfter = RSS()
	r.Took = time.Since(start)
	return r
}

// Activity reports how many requests the gateway has started and whether
// one is in flight. A trim waits until it is quiet: unmapping the
// binary's code under load makes the requests in flight fault it back in.
type Activity func() (started int64, busy bool)

// Mark returns the count of started requests, for a later Quiet; 0 for a
// nil Activity.
func (a Activity) Mark() int64 {
	if a == nil {
		return 0
	}
	started, _ := a()
	return started
}

// Quiet reports whether no request has started since *mark and none is in
// flight, and moves *mark to now. A nil Activity is always quiet.
func (a Activity) Quiet(mark *int64) bool {
	if a == nil {
		return true
	}
	started, busy := a()
	quiet := !busy && started == *mark
	*mark = started
	return quiet
}
