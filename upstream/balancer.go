// Package upstream is the gateway's runtime state per backend: which
// endpoint gets the next request (load balancing, slow start, session
// preference), which endpoints are out of rotation (active health marks,
// outlier ejection, draining, panic mode) and how much load a backend may
// take (circuit breakers, retry budgets).
//
// State is keyed by ir.Backend.Name, and endpoint state by Address within
// it, never by config objects: a reload builds new *ir.Backend values, and a
// backend or endpoint that keeps its name keeps its counters, ejections and
// health marks.
//
// # API
//
//	var bl upstream.Balancer                 // zero value ready; share one per process
//	bl.Update(backends)                      // on every config apply, before the config is published
//	p, err := bl.Pick(b, upstream.PickInput{Hash: h, HasHash: true, Prefer: addr, Avoid: failedAddr})
//	// err: ErrNoEndpoint (503) or ErrCircuitOpen (503, overloaded); compare with errors.Is
//	defer p.Done(upstream.Outcome{Status: status, GatewayError: gwErr, Local: clientGone})
//	release, ok := bl.AcquireRetry(b, route.Retry) // before a retry; release when it ends
//	release, err := bl.AcquireConn(ctx, b)          // before dialing a new connection; release on close
//	bl.SetHealth(b.Name, addr, healthy)             // from active health checks
//	stats := bl.Stats()                             // for metrics and the admin API
//	h := upstream.HashString(headerValue)           // request hash for RingHash and Maglev
//
// # Design
//
// Every backend has one backendState, found through a copy-on-write map
// (atomic.Pointer), so Pick takes no lock. The state holds an
// atomic.Pointer to an immutable view: the endpoints of the current config
// and what was derived from them and from health (the endpoints in rotation,
// their effective weights, the round-robin schedule, the hash ring or the
// Maglev table). Views are rebuilt, under the backend's mutex, only when
// something changes: Update, SetHealth, an ejection, or a deadline stored in
// the view (an ejection ending, a slow-start step) found passed by a Pick.
// Counters that change per request (in flight, consecutive failures) are
// atomics in per-endpoint state objects that views point to and that
// survive rebuilds. Nothing runs in the background: no goroutine, no timer.
//
// Pick and Done allocate nothing; AcquireRetry allocates nothing; AcquireConn
// allocates only when a request must wait for a connection slot.
package upstream

import (
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshgate/meshgate/ir"
)

// ErrNoEndpoint is returned by Pick when the backend has no endpoint, or none
// that may take traffic (all ejected or failing health checks, and the
// backend is not in panic mode). The proxy answers 503.
var ErrNoEndpoint = errors.New("upstream: no usable endpoint")

// ErrCircuitOpen is returned when a circuit breaker cap of the backend is
// reached (CircuitBreaker.MaxRequests in Pick, MaxPendingRequests in
// AcquireConn). The proxy answers 503 with x-meshgate-overloaded.
var ErrCircuitOpen = errors.New("upstream: circuit breaker open")

// Balancer holds the runtime state of every backend and picks endpoints for
// requests. One Balancer is shared by the whole data plane (HTTP and layer 4)
// for the life of the process, so that state outlives reloads.
//
// The zero value is ready to use; a Balancer must not be copied after first
// use. All methods are safe for concurrent use, including Pick and Done
// running while Update replaces the config.
type Balancer struct {
	// now is the clock for ejections and slow start; time.Now when nil.
	// Tests set it to step time without sleeping.
	now func() time.Time
	// random draws for Random, LeastRequest and hash fallbacks;
	// math/rand/v2's Uint64 when nil. Tests set a seeded source.
	random func() uint64

	// mu serialises Update and the creation of states.
	mu sync.Mutex
	// states maps backend name to state; replaced whole, never mutated, so
	// Pick reads it without a lock.
	states atomic.Pointer[map[string]*backendState]
}

// PickInput is what the request contributes to choosing an endpoint. The
// zero value means: no hash, no preference.
type PickInput struct {
	// Hash is the request's hash for RingHash and Maglev: the caller hashes
	// the header, cookie or source IP named by LoadBalancer.HashOn with
	// HashString.
	Hash uint64
	// HasHash says Hash is set. A request without the hashed property
	// (header or cookie missing) has none, and hash-based algorithms fall
	// back to a weighted random endpoint.
	HasHash bool
	// Prefer is the endpoint address remembered by session persistence. It
	// is chosen if it is still an endpoint of the backend and usable
	// (healthy and not ejected; a draining endpoint keeps its sessions),
	// whatever the algorithm.
	Prefer string
	// Avoid is the address the previous attempt of this request failed on
	// (retries): another endpoint is chosen when one is in rotation.
	Avoid string
}

// Pick is the endpoint chosen for one request attempt. It is a small value
// (no allocation) that must be finished with Done exactly once, so that the
// in-flight counts used by LeastRequest, the circuit breaker and retry
// budgets stay right and outlier detection sees the result.
type Pick struct {
	// Endpoint is the chosen endpoint, a pointer into the *ir.Backend of
	// the config last given to Update (or to Pick, without Update). Read
	// only.
	Endpoint *ir.Endpoint

	st *backendState
	es *endpointState
}

// Outcome is how an attempt ended, for Done.
type Outcome struct {
	// Status is the upstream's HTTP status, 0 when there was none.
	Status int
	// GatewayError is a connect failure, reset or timeout, or a 502, 503 or
	// 504 answer (those statuses count as gateway errors even when not
	// flagged).
	GatewayError bool
	// Local means the attempt ended for a reason that is not the
	// endpoint's fault (the client went away, the gateway gave up): the
	// outcome is not counted by outlier detection.
	Local bool
}

// Done releases the in-flight slot taken by Pick and feeds outlier
// detection. Call it exactly once, when the attempt is over; on the zero
// Pick (returned with an error) it does nothing.
func (p Pick) Done(o Outcome) {
	if p.st == nil {
		return
	}
	p.es.inFlight.Add(-1)
	p.st.inFlight.Add(-1)
	if !o.Local {
		p.st.observe(p.es, o)
	}
}

// Pick chooses an endpoint of b for one attempt. It fails with
// ErrCircuitOpen when CircuitBreaker.MaxRequests requests are in flight on
// b, and with ErrNoEndpoint when no endpoint may take traffic. A backend
// Update has not seen is compiled on first use (and again when a different
// *ir.Backend of that name with different content comes); once Update has
// seen the name, Pick uses Update's endpoints whatever b it is given, so
// requests still holding an older config go to the current endpoints.
func (bl *Balancer) Pick(b *ir.Backend, in PickInput) (Pick, error) {
	if b == nil {
		return Pick{}, ErrNoEndpoint
	}
	st := bl.state(b.Name)
	v := st.viewFor(b)
	if v.deadline != 0 {
		if now := st.clock(); now >= v.deadline {
			v = st.refresh(now)
		}
	}
	if max := v.maxRequests; max > 0 {
		if st.inFlight.Add(1) > max {
			st.inFlight.Add(-1)
			st.breakerRejections.Add(1)
			return Pick{}, ErrCircuitOpen
		}
	} else {
		st.inFlight.Add(1)
	}
	i := v.choose(st, bl, in)
	if i < 0 {
		st.inFlight.Add(-1)
		return Pick{}, ErrNoEndpoint
	}
	e := &v.eps[i]
	e.st.inFlight.Add(1)
	return Pick{Endpoint: e.ep, st: st, es: e.st}, nil
}

// Update gives the Balancer the backends of a newly applied config, all of
// them. Call it before the config serves requests. Backends are matched to
// their state by Name and endpoints by Address: kept ones keep everything
// (in-flight counts, ejections, health marks, round-robin position), new
// endpoints of a known backend start their slow start now, and the state of
// backends not in the list is dropped (a later Pick of such a name starts
// afresh). Hash rings and Maglev tables are built here, not per request. A
// nil entry is skipped; of several entries with one name the first wins.
func (bl *Balancer) Update(backends []*ir.Backend) {
	bl.mu.Lock()
	defer bl.mu.Unlock()
	var old map[string]*backendState
	if m := bl.states.Load(); m != nil {
		old = *m
	}
	next := make(map[string]*backendState, len(backends))
	for _, b := range backends {
		if b == nil {
			continue
		}
		if _, dup := next[b.Name]; dup {
			continue
		}
		st := old[b.Name]
		if st == nil {
			st = bl.newState(b.Name)
		}
		st.mu.Lock()
		st.apply(b, true)
		st.mu.Unlock()
		next[b.Name] = st
	}
	bl.states.Store(&next)
}

// lookup returns the state of a backend, nil when there is none.
func (bl *Balancer) lookup(name string) *backendState {
	if m := bl.states.Load(); m != nil {
		return (*m)[name]
	}
	return nil
}

// state returns the state of a backend, creating it on first use.
func (bl *Balancer) state(name string) *backendState {
	if st := bl.lookup(name); st != nil {
		return st
	}
	bl.mu.Lock()
	defer bl.mu.Unlock()
	var old map[string]*backendState
	if m := bl.states.Load(); m != nil {
		old = *m
		if st := old[name]; st != nil {
			return st
		}
	}
	st := bl.newState(name)
	next := make(map[string]*backendState, len(old)+1)
	for k, v := range old {
		next[k] = v
	}
	next[name] = st
	bl.states.Store(&next)
	return st
}

func (bl *Balancer) newState(name string) *backendState {
	now := bl.now
	if now == nil {
		now = time.Now
	}
	st := &backendState{name: name, nowFn: now, base: now()}
	st.releaseRetry = st.endRetry
	st.releaseConn = st.conns.release
	return st
}

// draw returns a uniformly random uint64.
func (bl *Balancer) draw() uint64 {
	if bl.random != nil {
		return bl.random()
	}
	return rand.Uint64()
}

// noop is the release function of unlimited resources.
func noop() {}
