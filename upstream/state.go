package upstream

import (
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshgate/meshgate/ir"
)

// Defaults for zero config values.
const (
	// defaultBaseEjection is the first ejection's length when
	// OutlierDetection.BaseEjectionTime is zero (Envoy's default).
	defaultBaseEjection = 30 * time.Second
	// defaultMaxEjection caps ejections when MaxEjectionTime is zero.
	defaultMaxEjection = 300 * time.Second
	// slowStartSteps is how many times a ramping endpoint's weight is
	// recomputed over the slow-start window.
	slowStartSteps = 20
	// slowStartScale multiplies every weight while an endpoint ramps, so a
	// ramping weight keeps 1% precision in integers.
	slowStartScale = 100
	// slowStartMin is a new endpoint's share of its weight when it
	// appears; it grows linearly to 1 over the window.
	slowStartMin = 0.1
)

// backendState is everything kept about one backend across reloads.
type backendState struct {
	name string
	// nowFn and base make the clock: nanoseconds since base, monotonic
	// with the real clock.
	nowFn func() time.Time
	base  time.Time

	// mu serialises view rebuilds and guards eps.
	mu sync.Mutex
	// eps is the state of every endpoint of the current config, by
	// address. Guarded by mu.
	eps map[string]*endpointState
	// view is what Pick reads; never nil once apply ran.
	view atomic.Pointer[view]
	// alias is another *ir.Backend found equal to view's source, so that
	// Pick does not compare them again (lazy mode only).
	alias atomic.Pointer[ir.Backend]

	// rr is the round-robin position.
	rr atomic.Uint64
	// inFlight counts Picks not yet Done; retries counts retries holding
	// a retry slot.
	inFlight atomic.Int64
	retries  atomic.Int64
	// Cumulative counters for Stats.
	breakerRejections atomic.Uint64
	budgetRejections  atomic.Uint64
	ejections         atomic.Uint64

	conns connLimiter
	// releaseRetry and releaseConn are method values made once, so that
	// handing them out does not allocate.
	releaseRetry func()
	releaseConn  func()
}

// endpointState is what is kept about one endpoint across reloads.
type endpointState struct {
	addr string
	// added is when a new endpoint appeared (clock time), for slow start;
	// isNew is false for the backend's first endpoints.
	added int64
	isNew bool

	inFlight atomic.Int64
	// Consecutive failures for outlier detection.
	c5xx atomic.Int64
	cgw  atomic.Int64
	// unhealthy is set by active health checks.
	unhealthy atomic.Bool
	// ejectedUntil is the clock time an ejection ends, 0 when not
	// ejected. Written under the backend's mu.
	ejectedUntil atomic.Int64
	// ejectionCount is how many times the endpoint was ejected; under mu.
	ejectionCount int64
}

func (es *endpointState) resetFailures() {
	es.c5xx.Store(0)
	es.cgw.Store(0)
}

// clock returns the state's time: nanoseconds since it was created, never
// negative (a fake clock may go back), so 0 can mean "none" for deadlines
// that are always in the future.
func (st *backendState) clock() int64 {
	d := int64(st.nowFn().Sub(st.base))
	if d < 0 {
		return 0
	}
	return d
}

// layout is the part of a view that comes from config: it changes only
// with Update (or a lazy recompile).
type layout struct {
	src *ir.Backend
	// fromUpdate: src was given by Update, so Pick serves these endpoints
	// to any *ir.Backend of the name.
	fromUpdate bool

	lb          ir.LoadBalancerType
	slowStart   int64
	hasOutlier  bool
	outlier     ir.OutlierDetection
	maxRequests int64
	maxRetries  int64
	maxConns    int64
	maxPending  int64
	panicAt     float64

	eps   []viewEndpoint
	index map[string]int32
}

// viewEndpoint is one (deduplicated) endpoint of the config.
type viewEndpoint struct {
	ep       *ir.Endpoint
	pos      int // index in src.Endpoints
	st       *endpointState
	weight   uint64
	draining bool
}

// view is an immutable snapshot Pick reads: the layout plus what health,
// ejections and slow start make of it.
type view struct {
	*layout

	panic bool
	// usable[i]: eps[i] may be chosen through PickInput.Prefer.
	usable []bool
	// active are the eps indices in rotation; activePos[i] is eps[i]'s
	// position in active, or -1.
	active    []int32
	activePos []int32
	// weights are the active endpoints' effective weights; cum their
	// running sums (cum[p] includes weights[p]); equal says all are the
	// same.
	weights []uint64
	cum     []uint64
	total   uint64
	equal   bool
	// Round robin over unequal weights: rrOrder lists active positions by
	// weight, heaviest first; rrSegs the schedule (see rrAt).
	rrOrder []int32
	rrSegs  []rrSeg
	rrTotal uint64
	// ring (RingHash) and maglev (Maglev) map hashes to active positions.
	ring   []ringPoint
	maglev []uint16
	// deadline is when the view must be rebuilt (an ejection ends or a
	// slow-start step), 0 for never.
	deadline int64
}

// viewFor returns the view Pick must use for b, compiling b when the state
// was not given it by Update.
func (st *backendState) viewFor(b *ir.Backend) *view {
	v := st.view.Load()
	if v != nil && (v.src == b || v.fromUpdate || st.alias.Load() == b) {
		return v
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	v = st.view.Load()
	if v != nil && (v.src == b || v.fromUpdate) {
		return v
	}
	if v != nil && sameBackend(v.src, b) {
		st.alias.Store(b)
		return v
	}
	return st.apply(b, false)
}

// refresh rebuilds the view if its deadline has passed and nobody else is
// rebuilding it; otherwise the current view serves.
func (st *backendState) refresh(now int64) *view {
	if !st.mu.TryLock() {
		return st.view.Load()
	}
	defer st.mu.Unlock()
	v := st.view.Load()
	if v.deadline != 0 && now >= v.deadline {
		v = st.rebuild(v.layout, now)
	}
	return v
}

// apply makes b the state's config. Call with mu held.
func (st *backendState) apply(b *ir.Backend, fromUpdate bool) *view {
	prev := st.view.Load()
	if prev != nil && prev.src == b && (prev.fromUpdate || !fromUpdate) {
		return prev
	}
	if prev != nil && sameBackend(prev.src, b) {
		// Same content in a new config: keep everything derived, point
		// at the new config's endpoints.
		l := *prev.layout
		l.src, l.fromUpdate = b, fromUpdate
		l.eps = make([]viewEndpoint, len(prev.eps))
		for i, e := range prev.eps {
			e.ep = &b.Endpoints[e.pos]
			l.eps[i] = e
		}
		nv := *prev
		nv.layout = &l
		st.view.Store(&nv)
		st.alias.Store(nil)
		return &nv
	}
	now := st.clock()
	l := newLayout(b, fromUpdate)
	eps := make(map[string]*endpointState, len(b.Endpoints))
	for i := range b.Endpoints {
		e := &b.Endpoints[i]
		if _, dup := l.index[e.Address]; dup {
			continue
		}
		es := st.eps[e.Address]
		if es == nil {
			es = &endpointState{addr: e.Address}
			if prev != nil {
				es.added, es.isNew = now, true
			}
		}
		eps[e.Address] = es
		w := uint64(1)
		if e.Weight > 1 {
			w = uint64(e.Weight)
		}
		l.index[e.Address] = int32(len(l.eps))
		l.eps = append(l.eps, viewEndpoint{ep: e, pos: i, st: es, weight: w, draining: e.Draining})
	}
	st.eps = eps
	st.alias.Store(nil)
	return st.rebuild(l, now)
}

// newLayout reads b's settings; endpoints are added by apply.
func newLayout(b *ir.Backend, fromUpdate bool) *layout {
	l := &layout{
		src:        b,
		fromUpdate: fromUpdate,
		lb:         ir.LBRoundRobin,
		panicAt:    b.PanicThreshold,
		index:      make(map[string]int32, len(b.Endpoints)),
		eps:        make([]viewEndpoint, 0, len(b.Endpoints)),
	}
	if lb := b.LoadBalancer; lb != nil {
		switch lb.Type {
		case ir.LBLeastRequest, ir.LBRandom, ir.LBRingHash, ir.LBMaglev:
			l.lb = lb.Type
		}
		if lb.SlowStart > 0 && l.lb != ir.LBRingHash && l.lb != ir.LBMaglev {
			l.slowStart = int64(lb.SlowStart)
		}
	}
	if od := b.Outlier; od != nil && (od.Consecutive5xx > 0 || od.ConsecutiveGatewayErrors > 0) {
		l.hasOutlier = true
		l.outlier = *od
		if l.outlier.BaseEjectionTime <= 0 {
			l.outlier.BaseEjectionTime = defaultBaseEjection
		}
		if l.outlier.MaxEjectionTime <= 0 {
			l.outlier.MaxEjectionTime = defaultMaxEjection
		}
	}
	if cb := b.CircuitBreaker; cb != nil {
		l.maxRequests = int64(max(cb.MaxRequests, 0))
		l.maxRetries = int64(max(cb.MaxRetries, 0))
		l.maxConns = int64(max(cb.MaxConnections, 0))
		l.maxPending = int64(max(cb.MaxPendingRequests, 0))
	}
	return l
}

// sameBackend reports whether a and b (of one name) would compile to the
// same layout.
func sameBackend(a, b *ir.Backend) bool {
	if a == b {
		return true
	}
	if a == nil || b == nil || len(a.Endpoints) != len(b.Endpoints) || a.PanicThreshold != b.PanicThreshold ||
		!equalPtr(a.LoadBalancer, b.LoadBalancer) || !equalPtr(a.Outlier, b.Outlier) ||
		!equalPtr(a.CircuitBreaker, b.CircuitBreaker) {
		return false
	}
	for i := range a.Endpoints {
		if a.Endpoints[i] != b.Endpoints[i] {
			return false
		}
	}
	return true
}

func equalPtr[T comparable](a, b *T) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// rebuild derives a new view from l and the endpoints' health at now, and
// publishes it. Call with mu held.
func (st *backendState) rebuild(l *layout, now int64) *view {
	n := len(l.eps)
	v := &view{layout: l, usable: make([]bool, n), activePos: make([]int32, n)}
	healthy := 0
	for i := range l.eps {
		es := l.eps[i].st
		if u := es.ejectedUntil.Load(); u != 0 {
			if u > now {
				v.deadline = earliest(v.deadline, u)
				continue
			}
			// Back from ejection with a clean slate.
			es.ejectedUntil.Store(0)
			es.resetFailures()
		}
		if !es.unhealthy.Load() {
			v.usable[i] = true
			healthy++
		}
	}
	v.panic = l.panicAt > 0 && float64(healthy)*100 < l.panicAt*float64(n)
	if v.panic {
		for i := range v.usable {
			v.usable[i] = true
		}
	}
	// In rotation: usable endpoints that are not draining, or the
	// draining ones when no other is usable.
	for i := range l.eps {
		v.activePos[i] = -1
		if v.usable[i] && !l.eps[i].draining {
			v.active = append(v.active, int32(i))
		}
	}
	if len(v.active) == 0 {
		for i := range l.eps {
			if v.usable[i] {
				v.active = append(v.active, int32(i))
			}
		}
	}
	for p, i := range v.active {
		v.activePos[i] = int32(p)
	}
	v.weights = make([]uint64, len(v.active))
	for p, i := range v.active {
		v.weights[p] = l.eps[i].weight
	}
	if l.slowStart > 0 {
		v.deadline = earliest(v.deadline, st.slowStart(v, now))
	}
	v.cum = make([]uint64, len(v.weights))
	v.equal = true
	for p, w := range v.weights {
		v.total += w
		v.cum[p] = v.total
		if w != v.weights[0] {
			v.equal = false
		}
	}
	switch l.lb {
	case ir.LBRingHash:
		v.ring = buildRing(v)
	case ir.LBMaglev:
		v.maglev = buildMaglev(v)
	case ir.LBRandom, ir.LBLeastRequest:
	default:
		if !v.equal {
			buildRR(v)
		}
	}
	st.view.Store(v)
	return v
}

// slowStart scales the weights of active endpoints still in their
// slow-start window and returns when they must be recomputed (0: none
// ramps).
func (st *backendState) slowStart(v *view, now int64) int64 {
	window := v.slowStart
	ramping := false
	for _, i := range v.active {
		if es := v.eps[i].st; es.isNew && now-es.added < window {
			ramping = true
			break
		}
	}
	if !ramping {
		return 0
	}
	step := max(window/slowStartSteps, int64(time.Millisecond))
	var deadline int64
	for p, i := range v.active {
		v.weights[p] *= slowStartScale
		es := v.eps[i].st
		if !es.isNew {
			continue
		}
		elapsed := max(now-es.added, 0)
		if elapsed >= window {
			continue
		}
		f := slowStartMin + (1-slowStartMin)*float64(elapsed)/float64(window)
		v.weights[p] = max(1, uint64(math.Round(float64(v.weights[p])*f)))
		deadline = earliest(deadline, min(now+step, es.added+window))
	}
	return deadline
}

// earliest returns the earlier of two deadlines, 0 meaning none.
func earliest(a, b int64) int64 {
	if a == 0 || (b != 0 && b < a) {
		return b
	}
	return a
}
