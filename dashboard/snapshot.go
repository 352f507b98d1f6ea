package dashboard

import (
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	mgv1alpha1 "github.com/meshgate/meshgate/api/v1alpha1"
	"github.com/meshgate/meshgate/dataplane"
	"github.com/meshgate/meshgate/ir"
	"github.com/meshgate/meshgate/rollout"
	"github.com/meshgate/meshgate/upstream"
)

// Snapshot is the whole dashboard view at one moment, as sent to browsers.
type Snapshot struct {
	Time time.Time `json:"time"`
	// WindowSeconds is the window of every rate, error rate and p99.
	WindowSeconds int `json:"windowSeconds"`
	// Generation is the config generation of the last successful reload
	// (0 when none was reported).
	Generation int64       `json:"generation"`
	Totals     Totals      `json:"totals"`
	Listeners  []*Listener `json:"listeners"`
	// Rollouts are the Rollouts of the config in force, by
	// namespace/name (empty without Options.Rollouts).
	Rollouts []*Rollout `json:"rollouts"`
	// Errors are the last failed requests, Reloads the last reload
	// attempts, newest first.
	Errors  []ErrorEntry  `json:"errors"`
	Reloads []ReloadEntry `json:"reloads"`
}

// Metrics are one edge's numbers over the window.
type Metrics struct {
	// Requests and Errors are counts in the window; Rate is requests per
	// second.
	Requests uint64  `json:"requests"`
	Errors   uint64  `json:"errors"`
	Rate     float64 `json:"rate"`
	// ErrorPct is nil when there were no requests; P99Ms when none was
	// timed.
	ErrorPct *float64 `json:"errorPct"`
	P99Ms    *float64 `json:"p99Ms"`
}

// Totals are the numbers of every listener together plus the data plane's
// gauges (nil when Options.Stats is not set).
type Totals struct {
	Metrics
	// Connections are the open client connections of every listener.
	Connections *int64 `json:"connections"`
	// Tunnels are the open WebSocket tunnels.
	Tunnels *int `json:"tunnels"`
	// MirrorsDropped counts request copies not sent.
	MirrorsDropped *uint64 `json:"mirrorsDropped"`
}

// Listener is one bound socket.
type Listener struct {
	Address  string `json:"address"`
	Protocol string `json:"protocol"`
	Metrics
	// Unmatched are the requests in the window that matched no route.
	Unmatched uint64 `json:"unmatched"`
	// Gauges are the socket's counters from Options.Stats.
	Gauges       []Gauge        `json:"gauges"`
	Hosts        []Host         `json:"hosts"`
	Certificates []Certificate  `json:"certificates"`
	Routes       []*Route       `json:"routes"`
	L4Routes     []*L4RouteView `json:"l4Routes"`
}

// Gauge is a named number.
type Gauge struct {
	Name  string `json:"name"`
	Value int64  `json:"value"`
}

// Host is a Gateway listener served on the socket.
type Host struct {
	Name     string `json:"name"`
	Hostname string `json:"hostname,omitempty"`
	TLSMode  string `json:"tlsMode,omitempty"`
}

// Certificate is a served certificate: its name, names and expiry only.
type Certificate struct {
	Name      string     `json:"name"`
	Hostnames []string   `json:"hostnames"`
	NotAfter  *time.Time `json:"notAfter"`
}

// Route is one rule of an HTTPRoute or GRPCRoute on a listener, with all
// its matches.
type Route struct {
	// ID is unique in the snapshot: "listener|name#rule".
	ID       string `json:"id"`
	Name     string `json:"name"`
	Rule     int    `json:"rule"`
	RuleName string `json:"ruleName,omitempty"`
	// Hosts are the Gateway listeners it is attached to.
	Hosts     []string `json:"hosts"`
	Hostnames []string `json:"hostnames"`
	// Matches summarise each match ("PathPrefix /api", "GET", headers).
	Matches []string `json:"matches"`
	Filters []string `json:"filters"`
	// DirectResponse is the fixed status of a rule the translator found
	// invalid (0 when none).
	DirectResponse int `json:"directResponse,omitempty"`
	Metrics
	Backends []*Backend `json:"backends"`
}

// L4RouteView is one rule of a TCPRoute, TLSRoute or UDPRoute.
type L4RouteView struct {
	ID        string   `json:"id"`
	Name      string   `json:"name"`
	Rule      int      `json:"rule"`
	Hostnames []string `json:"hostnames"`
	Metrics
	Backends []*Backend `json:"backends"`
}

// Backend is one weighted backend of a route rule.
type Backend struct {
	// Name is "invalid reference" when Valid is false (the backendRef
	// could not be resolved; its share of requests gets a 500).
	Name     string `json:"name"`
	Valid    bool   `json:"valid"`
	Protocol string `json:"protocol,omitempty"`
	// TLS is the server name verified when the endpoints speak TLS.
	TLS    string `json:"tls,omitempty"`
	Weight int32  `json:"weight"`
	// ConfiguredPct is Weight as a share of the rule's weights;
	// ObservedPct the share of the rule's requests this backend got in
	// the window (nil when there were none).
	ConfiguredPct float64  `json:"configuredPct"`
	ObservedPct   *float64 `json:"observedPct"`
	Metrics
	// Ejected endpoints (outlier detection) and Unhealthy ones (failing
	// active health checks) now, and Panic mode, from Options.Stats; nil
	// when the balancer has no state for the backend (or without Stats).
	Ejected   *int        `json:"ejected,omitempty"`
	Unhealthy *int        `json:"unhealthy,omitempty"`
	Panic     bool        `json:"panic,omitempty"`
	Endpoints []*Endpoint `json:"endpoints"`
}

// Endpoint is one upstream address of a backend.
type Endpoint struct {
	Address string `json:"address"`
	Metrics
	// Health is "unhealthy" when it fails its active health checks,
	// "failing" when every request to it in the window failed, else
	// "healthy".
	Health string `json:"health"`
	// Ejection is "not ejected" when no endpoint of the backend is
	// ejected by outlier detection, "unknown" when some are (the
	// balancer counts ejected endpoints per backend, not which).
	Ejection string `json:"ejection"`
}

// Rollout is one Rollout's progress and the figures of its last judged
// window.
type Rollout struct {
	// Name is "namespace/name".
	Name string `json:"name"`
	// Target is the route ("HTTPRoute app"), Rule its rule name.
	Target string `json:"target"`
	Rule   string `json:"rule,omitempty"`
	// StableBackend and CanaryBackend are the Services' names.
	StableBackend string `json:"stableBackend"`
	CanaryBackend string `json:"canaryBackend"`
	// Phase is Progressing, Paused, Succeeded or RolledBack ("" before
	// the engine has seen it).
	Phase string `json:"phase"`
	// Step counts from 1 (status counts from 0), of Steps.
	Step         int   `json:"step"`
	Steps        int   `json:"steps"`
	CanaryWeight int32 `json:"canaryWeight"`
	// StepStartedAt is when the current step's window began.
	StepStartedAt *time.Time `json:"stepStartedAt"`
	Message       string     `json:"message"`
	// Canary and Stable are the figures of the current step's window, or
	// of the window that was judged last when the rollout stopped (nil
	// before the first judgement).
	Canary *RolloutFigures `json:"canary"`
	Stable *RolloutFigures `json:"stable"`
	// RollbackReason is the RolledBack condition's reason
	// (ThresholdBreached, Aborted) and RollbackMessage what it says (the
	// breached threshold with the measured figures), when RolledBack.
	RollbackReason  string `json:"rollbackReason,omitempty"`
	RollbackMessage string `json:"rollbackMessage,omitempty"`
}

// RolloutFigures are one backend's figures over a rollout step's window.
type RolloutFigures struct {
	Requests int64 `json:"requests"`
	Errors   int64 `json:"errors"`
	// ErrorPct is the error rate in percent; P99 the p99 latency as a
	// duration ("8.74ms", "" when nothing was measured).
	ErrorPct float64 `json:"errorPct"`
	P99      string  `json:"p99"`
}

func rollouts(views []rollout.View) []*Rollout {
	out := make([]*Rollout, 0, len(views))
	for _, v := range views {
		st := &v.Status
		r := &Rollout{
			Name:          v.Namespace + "/" + v.Name,
			Target:        v.Target,
			Rule:          v.RuleName,
			StableBackend: v.Stable,
			CanaryBackend: v.Canary,
			Phase:         string(st.Phase),
			Step:          int(st.Step) + 1,
			Steps:         v.Steps,
			CanaryWeight:  st.CanaryWeight,
			Message:       truncate(st.Message, 1000),
			Canary:        figures(st.Canary),
			Stable:        figures(st.Stable),
		}
		if st.StepStartedAt != nil {
			t := st.StepStartedAt.Time
			r.StepStartedAt = &t
		}
		if st.Phase == mgv1alpha1.RolloutRolledBack {
			if c := meta.FindStatusCondition(st.Conditions, mgv1alpha1.RolloutConditionRolledBack); c != nil && c.Status == metav1.ConditionTrue {
				r.RollbackReason, r.RollbackMessage = c.Reason, truncate(c.Message, 1000)
			} else {
				r.RollbackMessage = r.Message
			}
		}
		out = append(out, r)
	}
	return out
}

func figures(m *mgv1alpha1.RolloutMeasurement) *RolloutFigures {
	if m == nil {
		return nil
	}
	f := &RolloutFigures{Requests: m.Requests, Errors: m.Errors, P99: m.P99}
	if p, err := strconv.ParseFloat(m.ErrorRate, 64); err == nil {
		f.ErrorPct = round(p)
	}
	return f
}

// Snapshot computes the current view.
func (d *Dashboard) Snapshot() *Snapshot {
	now := d.now()
	sec := now.Unix()
	window := d.buckets
	edges, listeners := d.collect(sec)

	b := &builder{window: window, edges: edges, rules: map[ruleKey]*agg{}, backends: map[backendKey]*agg{}}
	for k, a := range edges {
		rk := ruleKey{k.listener, k.route, k.rule}
		addTo(b.rules, rk, a)
		addTo(b.backends, backendKey{rk, k.backend}, a)
	}

	snap := &Snapshot{
		Time:          now,
		WindowSeconds: window,
		Generation:    d.generation.Load(),
		Errors:        d.errors.newestFirst(),
		Reloads:       d.reloads.newestFirst(),
		Listeners:     []*Listener{},
		Rollouts:      []*Rollout{},
	}
	if d.opts.Rollouts != nil {
		snap.Rollouts = rollouts(d.opts.Rollouts())
	}
	var stats *dataplane.Stats
	if d.opts.Stats != nil {
		st := d.opts.Stats()
		stats = &st
		b.upstreams = make(map[string]upstream.BackendStats, len(st.Backends))
		for _, bs := range st.Backends {
			b.upstreams[bs.Name] = bs
		}
		b.health = make(map[[2]string]bool, len(st.Health))
		for _, h := range st.Health {
			b.health[[2]string{h.Backend, h.Address}] = h.Healthy
		}
	}

	var total agg
	for _, a := range listeners {
		total.merge(a)
	}
	snap.Totals.Metrics = metrics(&total, window, true)

	cfg := d.opts.Config()
	d.certs.reset(cfg)
	if cfg != nil {
		for _, l := range cfg.Listeners {
			snap.Listeners = append(snap.Listeners, b.listener(l, listeners[l.Address], stats, &d.certs))
		}
	}
	if stats != nil {
		var conns int64
		for _, s := range stats.HTTP {
			conns += s.H1 + s.H2
		}
		for _, s := range stats.L4 {
			conns += s.Active
		}
		tunnels, dropped := stats.Tunnels, stats.MirrorsDropped
		snap.Totals.Connections, snap.Totals.Tunnels, snap.Totals.MirrorsDropped = &conns, &tunnels, &dropped
	}
	return snap
}

// snapshotJSON is the snapshot as sent to clients.
func (d *Dashboard) snapshotJSON() ([]byte, error) {
	return json.Marshal(d.Snapshot())
}

// collect sums every series over the window ending at second sec, and
// forgets series with nothing in the window.
func (d *Dashboard) collect(sec int64) (map[edgeKey]*agg, map[string]*agg) {
	type edge struct {
		k edgeKey
		s *series
	}
	type lst struct {
		addr string
		s    *series
	}
	var es []edge
	for k, s := range d.edges.All() {
		es = append(es, edge{k, s})
	}
	var ls []lst
	for a, s := range d.listeners.All() {
		ls = append(ls, lst{a, s})
	}

	edges := make(map[edgeKey]*agg, len(es))
	var staleEdges []edge
	for _, e := range es {
		a := new(agg)
		if e.s.read(sec, a) {
			staleEdges = append(staleEdges, e)
			continue
		}
		edges[e.k] = a
	}
	listeners := make(map[string]*agg, len(ls))
	var staleListeners []lst
	for _, l := range ls {
		a := new(agg)
		if l.s.read(sec, a) {
			staleListeners = append(staleListeners, l)
			continue
		}
		listeners[l.addr] = a
	}
	// Every request counted in an edge counts for its listener too.
	for k, a := range edges {
		la := listeners[k.listener]
		if la == nil {
			la = new(agg)
			listeners[k.listener] = la
		}
		la.merge(a)
	}
	if len(staleEdges)+len(staleListeners) > 0 {
		n := int64(d.buckets)
		d.mu.Lock()
		// A request may have arrived since the read: check again. (One
		// that got the series just before it is dropped here is lost;
		// the series had been idle for a whole window.)
		for _, e := range staleEdges {
			if cur, _ := d.edges.Load(e.k); cur == e.s && e.s.lastSec() <= sec-n {
				d.edges.Delete(e.k)
				d.dropped.Add(1)
			}
		}
		for _, l := range staleListeners {
			if cur, _ := d.listeners.Load(l.addr); cur == l.s && l.s.lastSec() <= sec-n {
				d.listeners.Delete(l.addr)
			}
		}
		d.mu.Unlock()
	}
	return edges, listeners
}

func (s *series) lastSec() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

type ruleKey struct {
	listener, route string
	rule            int
}

type backendKey struct {
	ruleKey
	backend string
}

type builder struct {
	window   int
	edges    map[edgeKey]*agg
	rules    map[ruleKey]*agg
	backends map[backendKey]*agg
	// upstreams and health are the balancer's state by backend name and
	// the active health checks by backend and address (nil without
	// Options.Stats).
	upstreams map[string]upstream.BackendStats
	health    map[[2]string]bool
}

func addTo[K comparable](m map[K]*agg, k K, a *agg) {
	if m[k] == nil {
		m[k] = new(agg)
	}
	m[k].merge(a)
}

func (b *builder) listener(l *ir.Listener, a *agg, stats *dataplane.Stats, certs *certCache) *Listener {
	if a == nil {
		a = new(agg)
	}
	v := &Listener{
		Address:      l.Address,
		Protocol:     string(l.Protocol),
		Metrics:      metrics(a, b.window, isHTTP(l.Protocol)),
		Gauges:       gauges(l, stats),
		Hosts:        []Host{},
		Certificates: []Certificate{},
		Routes:       []*Route{},
		L4Routes:     []*L4RouteView{},
	}
	if u := b.edges[edgeKey{listener: l.Address, rule: -1}]; u != nil {
		v.Unmatched = u.requests
	}
	if u := b.edges[edgeKey{listener: l.Address}]; u != nil {
		v.Unmatched += u.requests
	}
	for _, c := range l.Certificates {
		v.Certificates = append(v.Certificates, Certificate{
			Name:      c.Name,
			Hostnames: nonNil(c.Hostnames),
			NotAfter:  certs.notAfter(c),
		})
	}
	routes := map[ruleKey]*Route{}
	routeIR := map[ruleKey]*ir.Route{}
	seenMatch := map[ruleKey]map[string]bool{}
	for _, h := range l.Hosts {
		v.Hosts = append(v.Hosts, Host{Name: h.Name, Hostname: h.Hostname, TLSMode: string(h.TLSMode)})
		for _, r := range h.Routes {
			rk := ruleKey{l.Address, r.Name, r.RuleIndex}
			rv := routes[rk]
			if rv == nil {
				rv = &Route{
					ID:             fmt.Sprintf("%s|%s#%d", l.Address, r.Name, r.RuleIndex),
					Name:           r.Name,
					Rule:           r.RuleIndex,
					RuleName:       r.RuleName,
					Hosts:          []string{},
					Hostnames:      []string{},
					Matches:        []string{},
					Filters:        filterSummary(r.Filters),
					DirectResponse: directStatus(r.DirectResponse),
				}
				routes[rk] = rv
				routeIR[rk] = r
				seenMatch[rk] = map[string]bool{}
			}
			rv.Hosts = appendUnique(rv.Hosts, h.Name)
			for _, hn := range r.Hostnames {
				rv.Hostnames = appendUnique(rv.Hostnames, hn)
			}
			if m := matchSummary(r.Match); !seenMatch[rk][m] {
				seenMatch[rk][m] = true
				rv.Matches = append(rv.Matches, m)
			}
		}
		for _, r := range h.L4Routes {
			rk := ruleKey{l.Address, r.Name, r.RuleIndex}
			ra := b.rules[rk]
			if ra == nil {
				ra = new(agg)
			}
			lv := &L4RouteView{
				ID:        fmt.Sprintf("%s|%s#%d", l.Address, r.Name, r.RuleIndex),
				Name:      r.Name,
				Rule:      r.RuleIndex,
				Hostnames: nonNil(r.Hostnames),
				Metrics:   metrics(ra, b.window, false),
				Backends:  b.backendViews(rk, r.Backends, false),
			}
			v.L4Routes = append(v.L4Routes, lv)
		}
	}
	for rk, rv := range routes {
		ra := b.rules[rk]
		if ra == nil {
			ra = new(agg)
		}
		rv.Metrics = metrics(ra, b.window, true)
		rv.Backends = b.backendViews(rk, routeIR[rk].Backends, true)
		v.Routes = append(v.Routes, rv)
	}
	sort.Slice(v.Routes, func(i, j int) bool {
		if v.Routes[i].Name != v.Routes[j].Name {
			return v.Routes[i].Name < v.Routes[j].Name
		}
		return v.Routes[i].Rule < v.Routes[j].Rule
	})
	sort.SliceStable(v.L4Routes, func(i, j int) bool {
		if v.L4Routes[i].Name != v.L4Routes[j].Name {
			return v.L4Routes[i].Name < v.L4Routes[j].Name
		}
		return v.L4Routes[i].Rule < v.L4Routes[j].Rule
	})
	return v
}

// backendViews builds a rule's backends. Requests that reached no backend
// (Backend "") are the invalid references' share when the rule has any.
func (b *builder) backendViews(rk ruleKey, wbs []ir.WeightedBackend, timed bool) []*Backend {
	out := make([]*Backend, 0, len(wbs))
	var weights int64
	for _, wb := range wbs {
		weights += int64(max(wb.Weight, 0))
	}
	var observed uint64
	counted := map[string]bool{}
	invalidSeen := false
	aggs := make([]*agg, len(wbs))
	for i, wb := range wbs {
		name := ""
		if wb.Target != nil {
			name = wb.Target.Name
		} else if invalidSeen {
			aggs[i] = new(agg)
			continue
		} else {
			invalidSeen = true
		}
		a := b.backends[backendKey{rk, name}]
		if a == nil {
			a = new(agg)
		}
		aggs[i] = a
		if !counted[name] {
			counted[name] = true
			observed += a.requests
		}
	}
	for i, wb := range wbs {
		bv := &Backend{Weight: wb.Weight, Endpoints: []*Endpoint{}}
		if weights > 0 && wb.Weight > 0 {
			bv.ConfiguredPct = round(100 * float64(wb.Weight) / float64(weights))
		}
		a := aggs[i]
		bv.Metrics = metrics(a, b.window, timed)
		if observed > 0 {
			p := round(100 * float64(a.requests) / float64(observed))
			bv.ObservedPct = &p
		}
		t := wb.Target
		if t == nil {
			bv.Name = "invalid reference"
			out = append(out, bv)
			continue
		}
		bv.Name, bv.Valid, bv.Protocol = t.Name, true, string(t.Protocol)
		if t.TLS != nil {
			bv.TLS = t.TLS.ServerName
		}
		us, hasUS := b.upstreams[t.Name]
		if hasUS {
			bv.Ejected, bv.Panic = &us.Ejected, us.Panic
			unhealthy := 0
			bv.Unhealthy = &unhealthy
		}
		for _, ep := range t.Endpoints {
			ea := b.edges[edgeKey{rk.listener, rk.route, rk.rule, t.Name, ep.Address}]
			if ea == nil {
				ea = new(agg)
			}
			ev := &Endpoint{Address: ep.Address, Metrics: metrics(ea, b.window, timed), Health: "healthy", Ejection: "not ejected"}
			if ea.requests > 0 && ea.errors == ea.requests {
				ev.Health = "failing"
			}
			if healthy, checked := b.health[[2]string{t.Name, ep.Address}]; checked && !healthy {
				ev.Health = "unhealthy"
				if bv.Unhealthy != nil {
					*bv.Unhealthy++
				}
			}
			if hasUS && us.Ejected > 0 {
				ev.Ejection = "unknown"
			}
			bv.Endpoints = append(bv.Endpoints, ev)
		}
		out = append(out, bv)
	}
	return out
}

func metrics(a *agg, window int, timed bool) Metrics {
	m := Metrics{Requests: a.requests, Errors: a.errors, Rate: round(float64(a.requests) / float64(window))}
	if a.requests > 0 {
		p := round(100 * float64(a.errors) / float64(a.requests))
		m.ErrorPct = &p
	}
	if timed {
		if q, ok := a.quantile(0.99); ok {
			v := ms(q)
			m.P99Ms = &v
		}
	}
	return m
}

func isHTTP(p ir.Protocol) bool { return p == ir.ProtocolHTTP || p == ir.ProtocolHTTPS }

// gauges are a listener's counters from the data plane's stats.
func gauges(l *ir.Listener, stats *dataplane.Stats) []Gauge {
	out := []Gauge{}
	if stats == nil {
		return out
	}
	if s, ok := stats.HTTP[l.Address]; ok {
		out = append(out, Gauge{"HTTP/1 connections", s.H1}, Gauge{"HTTP/2 connections", s.H2})
		if l.Protocol == ir.ProtocolHTTPS {
			out = append(out, Gauge{"TLS handshake errors", clampInt(s.TLSHandshakeErrors)})
		}
	}
	if s, ok := stats.L4[l.Address]; ok {
		if l.Protocol == ir.ProtocolUDP {
			out = append(out, Gauge{"UDP sessions", s.UDPSessionsActive}, Gauge{"sessions created", clampInt(s.Accepted)})
		} else {
			out = append(out, Gauge{"open connections", s.Active}, Gauge{"accepted", clampInt(s.Accepted)})
		}
		out = append(out,
			Gauge{"no route", clampInt(s.NoRoute)},
			Gauge{"no backend", clampInt(s.NoBackend)},
			Gauge{"connect failed", clampInt(s.ConnectFailed)})
	}
	return out
}

func clampInt(u uint64) int64 {
	if u > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(u)
}

// sensitiveHeader says whether a header match's value is better not shown
// (a credential configured as a match).
func sensitiveHeader(name string) bool {
	n := strings.ToLower(name)
	switch n {
	case "authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key", "api-key":
		return true
	}
	return strings.Contains(n, "token") || strings.Contains(n, "secret") || strings.Contains(n, "password")
}

// matchSummary describes one match: path, method, headers, query.
func matchSummary(m ir.Match) string {
	parts := []string{}
	typ, val := m.Path.Type, m.Path.Value
	if typ == "" {
		typ, val = ir.PathPrefix, "/"
	}
	parts = append(parts, string(typ)+" "+val)
	if m.Method != "" {
		parts = append(parts, m.Method)
	}
	str := func(kind string, s ir.StringMatch, redact bool) string {
		op := "="
		if s.Type == ir.MatchRegularExpression {
			op = "~"
		}
		v := s.Value
		if redact {
			v = "…"
		}
		return kind + " " + s.Name + op + v
	}
	for _, h := range m.Headers {
		parts = append(parts, str("header", h, sensitiveHeader(h.Name)))
	}
	for _, q := range m.QueryParams {
		parts = append(parts, str("query", q, sensitiveHeader(q.Name)))
	}
	return strings.Join(parts, " · ")
}

// filterSummary names a rule's filters (no header values).
func filterSummary(fs []ir.Filter) []string {
	out := []string{}
	for _, f := range fs {
		switch {
		case f.RequestRedirect != nil:
			code := f.RequestRedirect.StatusCode
			if code == 0 {
				code = 302
			}
			out = append(out, fmt.Sprintf("redirect %d", code))
		case f.URLRewrite != nil:
			out = append(out, "rewrite")
		case f.RequestMirror != nil:
			s := fmt.Sprintf("mirror %g%%", f.RequestMirror.Percent)
			if f.RequestMirror.Target != nil {
				s += " → " + f.RequestMirror.Target.Name
			}
			out = append(out, s)
		case f.RequestHeaderModifier != nil:
			out = append(out, "request headers")
		case f.ResponseHeaderModifier != nil:
			out = append(out, "response headers")
		default:
			out = append(out, string(f.Type))
		}
	}
	return out
}

func directStatus(dr *ir.DirectResponse) int {
	if dr == nil {
		return 0
	}
	return dr.StatusCode
}

func appendUnique(s []string, v string) []string {
	for _, x := range s {
		if x == v {
			return s
		}
	}
	return append(s, v)
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return append([]string(nil), s...)
}

func round(f float64) float64 { return math.Round(f*100) / 100 }

func ms(d time.Duration) float64 { return round(float64(d) / float64(time.Millisecond)) }

// certCache remembers the expiry read from each certificate of the config
// in force. Only NotAfter leaves it: never the PEM.
type certCache struct {
	mu  sync.Mutex
	cfg *ir.Config
	m   map[*ir.Certificate]*time.Time
}

func (c *certCache) reset(cfg *ir.Config) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cfg != cfg {
		c.cfg, c.m = cfg, map[*ir.Certificate]*time.Time{}
	}
}

func (c *certCache) notAfter(cert *ir.Certificate) *time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t, ok := c.m[cert]; ok {
		return t
	}
	var t *time.Time
	if block, _ := pem.Decode(cert.CertPEM); block != nil {
		if leaf, err := x509.ParseCertificate(block.Bytes); err == nil {
			na := leaf.NotAfter.UTC()
			t = &na
		}
	}
	c.m[cert] = t
	return t
}
