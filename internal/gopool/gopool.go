// Package gopool runs work on goroutines that outlive one piece of it.
//
// A goroutine started per request (HTTP/2 handlers) or per burst (HTTP/2
// write batches) begins with the runtime's small stack, and the proxy path
// or TLS outgrows it each time: the runtime then copies the stack and
// adjusts every frame. A pooled goroutine keeps the stack it grew.
package gopool

import (
	"sync"
	"sync/atomic"
	"time"
)

// Pool hands each piece of work to a goroutine waiting for one, or starts
// a new goroutine when none waits, so work never queues behind other
// work. A goroutine that got nothing for Idle ends, and at most MaxIdle
// wait at once, which bounds the stacks kept. The zero value is ready to
// use; set MaxIdle before the first Go.
type Pool[T any] struct {
	// MaxIdle is how many goroutines may wait for work; DefaultMaxIdle
	// when 0.
	MaxIdle int32

	once    sync.Once
	work    chan item[T] // unbuffered: a send succeeds only to a waiting goroutine
	idle    atomic.Int32 // goroutines waiting
	started atomic.Int64 // goroutines started
}

// DefaultMaxIdle is Pool.MaxIdle's default: 256 goroutines, with the 16-32
// KiB stacks of the proxy path about 8 MiB at most.
const DefaultMaxIdle = 256

// Idle is how long a pooled goroutine waits for work before it ends.
const Idle = 10 * time.Second

type item[T any] struct {
	v   T
	run func(T)
}

// Go runs run(v) on a pooled goroutine. run is a function, not a closure
// made per call, so handing work over allocates nothing.
func (p *Pool[T]) Go(v T, run func(T)) {
	p.once.Do(func() { p.work = make(chan item[T]) })
	it := item[T]{v: v, run: run}
	select {
	case p.work <- it:
	default:
		p.started.Add(1)
		go p.serve(it)
	}
}

// Started reports how many goroutines the pool has started.
func (p *Pool[T]) Started() int64 { return p.started.Load() }

// Waiting reports how many goroutines wait for work.
func (p *Pool[T]) Waiting() int32 { return p.idle.Load() }

// serve runs it, then whatever Go hands it, until it has had nothing for a
// whole Idle. The timer is re-armed once per idle period, not per piece
// of work: it fires, and the goroutine ends only if nothing came since.
func (p *Pool[T]) serve(it item[T]) {
	it.run(it.v)
	t := time.NewTimer(Idle)
	defer t.Stop()
	maxIdle := p.MaxIdle
	if maxIdle <= 0 {
		maxIdle = DefaultMaxIdle
	}
	busy := false
	for {
		if p.idle.Add(1) > maxIdle {
			p.idle.Add(-1)
			return
		}
		select {
		case it = <-p.work:
			p.idle.Add(-1)
			it.run(it.v)
			it = item[T]{} // hold nothing of the work while waiting
			busy = true
		case <-t.C:
			p.idle.Add(-1)
			if !busy {
				return
			}
			busy = false
			t.Reset(Idle)
		}
	}
}
