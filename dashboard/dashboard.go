// Package dashboard is Meshgate's built-in live dashboard, served by the
// admin listener: the topology of the config in force (listeners → routes →
// backends → endpoints) with the request rate, error rate and p99 latency of
// every edge over a sliding window, the configured and observed split of
// weighted routes, endpoint health, the progress of every Rollout (and why
// one rolled back), recent errors and the history of config reloads.
//
// The Dashboard is an obs.Sink and obs.ReloadSink. ObserveRequest only adds
// to per-edge counters in one-second buckets (a short per-edge mutex, no
// allocation once an edge has been seen), so the data plane never waits
// for the dashboard. Browsers get a snapshot pushed every second over a
// WebSocket; each client has a bounded queue of two snapshots and a slow
// client loses snapshots instead of holding anything up.
//
// The page, its script and style sheet are embedded: the dashboard works
// without internet access and loads nothing from elsewhere. It never shows
// secret data: certificates appear by name and expiry only.
package dashboard

import (
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/puzpuzpuz/xsync/v4"

	"github.com/meshgate/meshgate/dataplane"
	"github.com/meshgate/meshgate/ir"
	"github.com/meshgate/meshgate/obs"
	"github.com/meshgate/meshgate/rollout"
)

// Options configure a Dashboard.
type Options struct {
	// Config returns the config in force (nil before the first one).
	Config func() *ir.Config
	// Stats, if set, returns the data plane's gauges: open connections,
	// tunnels, layer-4 counters.
	Stats func() dataplane.Stats
	// Rollouts, if set, lists the Rollouts and their progress (the
	// rollout engine's Views).
	Rollouts func() []rollout.View
	// Log receives WebSocket client errors at debug level; nil discards.
	Log *slog.Logger
	// Window is the sliding window of rates, error rates and p99; 10 s
	// when zero. It is rounded up to whole seconds.
	Window time.Duration
	// Interval is how often clients get a fresh snapshot; 1 s when zero.
	Interval time.Duration
	// MaxClients caps concurrent WebSocket clients; 32 when zero. More
	// get 503.
	MaxClients int
	// Now is the clock, for tests; time.Now when nil.
	Now func() time.Time
}

// Limits of what is kept.
const (
	// ringSize is how many recent errors and reloads are kept.
	ringSize = 50
	// maxPath is the longest path kept with an error, in bytes.
	maxPath = 200
	// maxSeries caps the edges counted; the keys come from the config, so
	// only an enormous config reaches it. Edges beyond it are not counted;
	// their listener's own series counts them for its totals.
	maxSeries = 20000
	// maxListenerSeries caps the listener addresses counted.
	maxListenerSeries = 1024
)

// Dashboard aggregates what the data plane reports and serves the page.
type Dashboard struct {
	opts    Options
	log     *slog.Logger
	now     func() time.Time
	buckets int // seconds in the window

	// edges and listeners are read on every request from every core, so
	// reading takes no lock (a mutex's reader count is a cache line all
	// cores write); mu only serializes creating and dropping series.
	mu        sync.Mutex
	edges     *xsync.Map[edgeKey, *series]
	listeners *xsync.Map[string, *series]
	maxEdges  int // maxSeries; tests lower it
	// dropped counts edge series dropped (idle for a window): a memo
	// taken before a drop is not used after it (edgeMemo).
	dropped atomic.Uint64
	// memo names the slot of obs.Request records where ObserveRequest
	// keeps its last edge.
	memo obs.MemoKey

	errors  ring[ErrorEntry]
	reloads ring[ReloadEntry]
	// generation is the config generation of the last successful reload.
	generation atomic.Int64

	certs certCache
	hub   hub
}

// edgeKey names one request path through the topology: listener address,
// route rule, backend and endpoint ("" where the request did not get that
// far).
type edgeKey struct {
	listener, route   string
	rule              int
	backend, endpoint string
}

// same is k == o, at a fraction of the cost for a memo hit (obs.Same).
func (k *edgeKey) same(o *edgeKey) bool {
	return k.rule == o.rule && obs.Same(k.endpoint, o.endpoint) && obs.Same(k.route, o.route) &&
		obs.Same(k.backend, o.backend) && obs.Same(k.listener, o.listener)
}

// New returns a Dashboard. It starts no goroutine until a browser connects.
func New(opts Options) *Dashboard {
	if opts.Config == nil {
		opts.Config = func() *ir.Config { return nil }
	}
	if opts.Window <= 0 {
		opts.Window = 10 * time.Second
	}
	if opts.Interval <= 0 {
		opts.Interval = time.Second
	}
	if opts.MaxClients <= 0 {
		opts.MaxClients = 32
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	n := int((opts.Window + time.Second - 1) / time.Second)
	d := &Dashboard{
		opts:      opts,
		log:       log,
		now:       opts.Now,
		buckets:   n,
		maxEdges:  maxSeries,
		edges:     xsync.NewMap[edgeKey, *series](),
		listeners: xsync.NewMap[string, *series](),
		errors:    ring[ErrorEntry]{buf: make([]ErrorEntry, ringSize)},
		reloads:   ring[ReloadEntry]{buf: make([]ReloadEntry, ringSize)},
	}
	d.hub.init(opts.MaxClients)
	return d
}

// isError says whether a finished request counts as an error: a 5xx, no
// response at all, or a request the gateway ended itself (except
// redirects).
func isError(r *obs.Request) bool {
	return r.Status >= 500 || r.Status == 0 || (r.Reason != "" && r.Reason != "redirect")
}

// ObserveRequest counts r (obs.Sink). It never blocks on a dashboard
// client and does not keep r.
func (d *Dashboard) ObserveRequest(r *obs.Request) {
	// The request ended at Start+Duration, just now: no clock read.
	var sec int64
	if r.Start.IsZero() {
		sec = d.now().Unix()
	} else {
		sec = endSecond(r.Start, r.Duration)
	}
	bad := isError(r)
	latency := r.Duration
	if r.Upgrade != "" || latency < 0 {
		// A tunnel's duration is its lifetime, not a latency.
		latency = -1
	}
	// A listener's figures are the sum of its edges (collect adds them
	// up), so a request updates one series; the listener's own series
	// only counts what found no edge series (over maxSeries).
	if s := d.edgeSeriesMemo(r.Memo(&d.memo), edgeKey{r.Listener, r.Route, r.Rule, r.Backend, r.Endpoint}); s != nil {
		s.add(sec, bad, latency)
	} else if s := d.listenerSeries(r.Listener); s != nil {
		s.add(sec, bad, latency)
	}
	if bad {
		now := r.Start.Add(r.Duration)
		if r.Start.IsZero() {
			now = d.now()
		}
		d.errors.add(ErrorEntry{
			Time:     now,
			Listener: strings.Clone(r.Listener),
			Route:    strings.Clone(r.Route),
			Backend:  strings.Clone(r.Backend),
			Endpoint: strings.Clone(r.Endpoint),
			Method:   strings.Clone(truncate(r.Method, 32)),
			Path:     strings.Clone(truncate(r.Path, maxPath)),
			Status:   r.Status,
			Reason:   strings.Clone(r.Reason),
		})
	}
}

// endSecond is start.Add(d).Unix() without building the time.Time, whose
// Add costs more than the rest of ObserveRequest's arithmetic.
func endSecond(start time.Time, d time.Duration) int64 {
	ns := int64(start.Nanosecond()) + int64(d)
	sec := ns / int64(time.Second)
	if ns%int64(time.Second) < 0 {
		sec-- // round toward minus infinity, as Unix does
	}
	return start.Unix() + sec
}

// edgeMemo is edgeSeriesMemo's entry in a record's memo slot.
type edgeMemo struct {
	key     edgeKey
	s       *series
	dropped uint64 // d.dropped when s was looked up
}

// edgeSeriesMemo is edgeSeries through slot, the record's memo
// (obs.Request.Memo; nil for none): when the record's last request took
// the same path and no series was dropped since, its series is taken from
// there, at a fraction of the map lookup's cost.
func (d *Dashboard) edgeSeriesMemo(slot *any, k edgeKey) *series {
	if slot == nil {
		return d.edgeSeries(k)
	}
	dropped := d.dropped.Load()
	e, _ := (*slot).(*edgeMemo)
	if e != nil && e.dropped == dropped && e.key.same(&k) {
		return e.s
	}
	s := d.edgeSeries(k)
	if s == nil {
		return nil
	}
	if e == nil {
		e = new(edgeMemo)
		*slot = e
	}
	e.key, e.s, e.dropped = k, s, dropped
	return s
}

func (d *Dashboard) edgeSeries(k edgeKey) *series {
	if s, ok := d.edges.Load(k); ok {
		return s
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if s, ok := d.edges.Load(k); ok {
		return s
	}
	if d.edges.Size() >= d.maxEdges {
		return nil
	}
	// The names come from the config; cloning keeps a key from pinning
	// a request's buffer all the same.
	k = edgeKey{strings.Clone(k.listener), strings.Clone(k.route), k.rule, strings.Clone(k.backend), strings.Clone(k.endpoint)}
	s := newSeries(d.buckets)
	d.edges.Store(k, s)
	return s
}

func (d *Dashboard) listenerSeries(addr string) *series {
	if s, ok := d.listeners.Load(addr); ok {
		return s
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if s, ok := d.listeners.Load(addr); ok {
		return s
	}
	if d.listeners.Size() >= maxListenerSeries {
		return nil
	}
	s := newSeries(d.buckets)
	d.listeners.Store(strings.Clone(addr), s)
	return s
}

// ObserveReload records a reload attempt (obs.ReloadSink).
func (d *Dashboard) ObserveReload(r *obs.Reload) {
	if r.OK {
		d.generation.Store(r.Generation)
	}
	d.reloads.add(ReloadEntry{
		Time:       r.Time,
		Generation: r.Generation,
		OK:         r.OK,
		Error:      truncate(r.Error, 1000),
		DurationMs: ms(r.Duration),
		Listeners:  r.Listeners,
		Rejected:   r.Rejected,
	})
}

// ErrorEntry is one recent failed request.
type ErrorEntry struct {
	Time     time.Time `json:"time"`
	Listener string    `json:"listener"`
	Route    string    `json:"route"`
	Backend  string    `json:"backend"`
	Endpoint string    `json:"endpoint"`
	Method   string    `json:"method"`
	// Path is cut to 200 bytes.
	Path   string `json:"path"`
	Status int    `json:"status"`
	Reason string `json:"reason"`
}

// ReloadEntry is one config reload attempt.
type ReloadEntry struct {
	Time       time.Time `json:"time"`
	Generation int64     `json:"generation"`
	OK         bool      `json:"ok"`
	Error      string    `json:"error,omitempty"`
	DurationMs float64   `json:"durationMs"`
	Listeners  int       `json:"listeners"`
	Rejected   int       `json:"rejected"`
}

// ring keeps the last len(buf) values.
type ring[T any] struct {
	mu   sync.Mutex
	buf  []T
	next int
	n    int
}

func (r *ring[T]) add(v T) {
	r.mu.Lock()
	r.buf[r.next] = v
	r.next = (r.next + 1) % len(r.buf)
	if r.n < len(r.buf) {
		r.n++
	}
	r.mu.Unlock()
}

// newestFirst copies the kept values, newest first.
func (r *ring[T]) newestFirst() []T {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]T, 0, r.n)
	for i := 1; i <= r.n; i++ {
		out = append(out, r.buf[(r.next-i+len(r.buf))%len(r.buf)])
	}
	return out
}

// truncate cuts s to at most n bytes on a rune boundary and replaces
// invalid UTF-8, so the JSON stays valid.
func truncate(s string, n int) string {
	if len(s) > n {
		cut := n
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}
