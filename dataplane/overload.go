package dataplane

import (
	"context"
	"os"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// loadShedder turns new requests away with 503 while the process uses more
// memory than its limit, so that under overload the gateway answers quickly
// and recovers instead of being killed for memory with every connection
// lost. Requests already running continue.
type loadShedder struct {
	limit    uint64 // bytes; 0: off
	shedding atomic.Bool
	shed     atomic.Uint64
	used     func() uint64
}

// memoryInUse is the memory the Go runtime holds from the OS, minus what it
// has released back: the figure a container's memory limit counts.
func memoryInUse() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/total:bytes"}, {Name: "/memory/classes/heap/released:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64() - s[1].Value.Uint64()
}

// run samples memory every interval until ctx ends.
func (s *loadShedder) run(ctx context.Context, interval time.Duration) {
	if s.limit == 0 {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		s.check()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// check updates the shedding state from one sample.
func (s *loadShedder) check() {
	used := s.used
	if used == nil {
		used = memoryInUse
	}
	s.shedding.Store(used() > s.limit)
}

// cgroupMemoryLimit reads the memory limit of the process's cgroup (v2),
// 0 when there is none.
func cgroupMemoryLimit() uint64 {
	b, err := os.ReadFile("/sys/fs/cgroup/memory.max")
	if err != nil {
		return 0
	}
	v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil { // "max"
		return 0
	}
	return v
}

// DefaultMemoryLimit is 90% of the cgroup memory limit, or 0 (no
// shedding) outside a memory-limited cgroup.
func DefaultMemoryLimit() uint64 {
	return cgroupMemoryLimit() / 10 * 9
}
