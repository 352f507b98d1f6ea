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
// own changes, which MADV_DONTNEED would discard.
package memtrim

import (
	"bufio"
	"fmt"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
)

// Release returns the heap's free memory to the OS and unmaps the
// binary's resident read-only pages. It costs a full GC, so callers run it
// when the gateway has gone quiet (after a reload, after a wave of
// connections has parked), not on a timer. A failure to unmap only leaves
// pages mapped, so it is not reported.
func Release() {
	debug.FreeOSMemory()
	ReleaseExePages() //nolint:errcheck // best effort, see above
}

// ReleaseExePages unmaps the resident pages of the binary's read-only
// mappings and returns how many bytes of address space it advised.
func ReleaseExePages() (int64, error) {
	exe, err := os.Executable()
	if err != nil {
		return 0, fmt.Errorf("memtrim: %w", err)
	}
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return 0, fmt.Errorf("memtrim: %w", err)
	}
	defer f.Close()
	var ranges [][2]uintptr
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if lo, hi, ok := readOnlyMapping(sc.Text(), exe); ok {
			ranges = append(ranges, [2]uintptr{lo, hi})
		}
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("memtrim: read /proc/self/maps: %w", err)
	}
	var total int64
	for _, r := range ranges {
		if _, _, errno := syscall.Syscall(syscall.SYS_MADVISE, r[0], r[1]-r[0], syscall.MADV_DONTNEED); errno != 0 {
			return total, fmt.Errorf("memtrim: madvise %#x-%#x: %w", r[0], r[1], errno)
		}
		total += int64(r[1] - r[0])
	}
	return total, nil
}

// readOnlyMapping parses one line of /proc/self/maps and reports the range
// of a private, non-writable mapping of the file exe.
func readOnlyMapping(line, exe string) (lo, hi uintptr, ok bool) {
	// "start-end perms offset dev inode path"
	fields := strings.Fields(line)
	if len(fields) != 6 || fields[5] != exe {
		return 0, 0, false
	}
	perms := fields[1]
	if len(perms) < 4 || perms[0] != 'r' || perms[1] != '-' || perms[3] != 'p' {
		return 0, 0, false
	}
	start, end, found := strings.Cut(fields[0], "-")
	if !found {
		return 0, 0, false
	}
	s, err1 := strconv.ParseUint(start, 16, 64)
	e, err2 := strconv.ParseUint(end, 16, 64)
	if err1 != nil || err2 != nil || e <= s {
		return 0, 0, false
	}
	return uintptr(s), uintptr(e), true
}
