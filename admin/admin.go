// Package admin serves the gateway's own endpoints on a separate, by default
// loopback-only, listener: liveness and readiness, Prometheus metrics, the
// applied config, the compiled route table, an "explain" endpoint that says
// how a request would be routed, the state of every backend's endpoints
// (/upstreams: load balancing, outlier ejection, circuit breakers, retry
// budgets, active health checks), the live dashboard and, when asked for,
// the Go profiler.
package admin

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/pprof"
	"slices"
	"strings"

	"github.com/meshgate/meshgate/dataplane"
	"github.com/meshgate/meshgate/healthcheck"
	"github.com/meshgate/meshgate/ir"
	"github.com/meshgate/meshgate/translate"
	"github.com/meshgate/meshgate/upstream"
)

// Options select and feed the admin endpoints. Nil funcs and handlers leave
// their endpoints out.
type Options struct {
	// Ready reports whether a config is applied and its listeners bound.
	Ready func() bool
	// Pprof serves Go's profiler under /debug/pprof/. Off by default: a
	// profile reveals internals and costs CPU while it runs.
	Pprof bool
	// Metrics serves /metrics.
	Metrics http.Handler
	// Dashboard serves /dashboard/.
	Dashboard http.Handler
	// State is the config in force, for /config.
	State func() State
	// Tables are the HTTP listeners' route tables, for /routes and
	// /explain.
	Tables func() []dataplane.ListenerTable
	// Upstreams returns the data plane's counters (normally
	// (*dataplane.Dataplane).Stats); /upstreams shows their Backends (the
	// balancer's state of every backend) and Health (the active health
	// check status of every probed endpoint).
	Upstreams func() dataplane.Stats
}

// State is what /config shows. Certificates and keys are never part of it:
// ir.Config leaves PEM data out of its JSON, and statuses name Secrets
// without their contents.
type State struct {
	Generation int64                    `json:"generation"`
	Source     string                   `json:"source"`
	Config     *ir.Config               `json:"config"`
	Statuses   []translate.ObjectStatus `json:"statuses,omitempty"`
}

// Handler returns the admin endpoints:
//
//	/healthz        200 while the process runs
//	/ready          200 once a config is applied and at least one of its listeners is bound (or
//	                it has none), else 503; listeners that could not be bound are reported in
//	                the statuses and logs, not here
//	/metrics        Prometheus metrics
//	/config         the applied config and object statuses as JSON (no Secret data)
//	/routes         the compiled route tables in precedence order (text; ?format=json)
//	/explain        how a request would be routed: ?method=&host=&path=&header=Name:Value&listener=addr-or-port
//	/upstreams      per backend, as JSON: endpoints in rotation, ejected and in panic mode, requests,
//	                retries and connections in flight, circuit breaker and retry budget rejections,
//	                ejections, and each health-checked endpoint's last result (?backend=name for one)
//	/dashboard/     the live dashboard
//	/debug/pprof/   the Go profiler, when opts.Pprof is set
func Handler(opts Options) http.Handler {
	mux := http.NewServeMux()
	if opts.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /ready", func(w http.ResponseWriter, r *http.Request) {
		if opts.Ready == nil || !opts.Ready() {
			http.Error(w, "not ready: no config applied yet, or none of its listeners is bound", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ready\n")
	})
	if opts.Metrics != nil {
		mux.Handle("GET /metrics", opts.Metrics)
	}
	if opts.Dashboard != nil {
		mux.Handle("/dashboard/", opts.Dashboard)
		mux.Handle("GET /{$}", http.RedirectHandler("/dashboard/", http.StatusFound))
	}
	if opts.State != nil {
		mux.HandleFunc("GET /config", func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, opts.State())
		})
	}
	if opts.Tables != nil {
		mux.HandleFunc("GET /routes", func(w http.ResponseWriter, r *http.Request) {
			serveRoutes(w, r, opts.Tables())
		})
		mux.HandleFunc("GET /explain", func(w http.ResponseWriter, r *http.Request) {
			serveExplain(w, r, opts.Tables())
		})
	}
	if opts.Upstreams != nil {
		mux.HandleFunc("GET /upstreams", func(w http.ResponseWriter, r *http.Request) {
			st := opts.Upstreams()
			serveUpstreams(w, r, st.Backends, st.Health)
		})
	}
	return mux
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// listenerView is one listener of /routes.
type listenerView struct {
	Address  string          `json:"address"`
	Protocol string          `json:"protocol"`
	Hosts    []hostRouteView `json:"hosts"`
}

type hostRouteView struct {
	ListenerHost string       `json:"listenerHost"`
	Buckets      []bucketView `json:"buckets"`
}

type bucketView struct {
	Hostname string      `json:"hostname"`
	Routes   []RouteView `json:"routes"`
}

func serveRoutes(w http.ResponseWriter, r *http.Request, tables []dataplane.ListenerTable) {
	var views []listenerView
	for _, lt := range tables {
		lv := listenerView{Address: lt.Address, Protocol: string(lt.Protocol)}
		if lt.Table != nil {
			for _, hr := range lt.Table.Routes() {
				hv := hostRouteView{ListenerHost: hr.ListenerHost}
				for _, b := range hr.Buckets {
					bv := bucketView{Hostname: b.Hostname}
					for _, rt := range b.Routes {
						bv.Routes = append(bv.Routes, routeView(rt))
					}
					hv.Buckets = append(hv.Buckets, bv)
				}
				lv.Hosts = append(lv.Hosts, hv)
			}
		}
		views = append(views, lv)
	}
	if r.URL.Query().Get("format") == "json" {
		writeJSON(w, views)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	for _, lv := range views {
		fmt.Fprintf(w, "listener %s (%s)\n", lv.Address, lv.Protocol)
		for _, hv := range lv.Hosts {
			fmt.Fprintf(w, "  gateway listener %s\n", hv.ListenerHost)
			for _, bv := range hv.Buckets {
				name := bv.Hostname
				if name == "" {
					name = "(any hostname)"
				}
				fmt.Fprintf(w, "    host %s, in precedence order:\n", name)
				for i, rv := range bv.Routes {
					fmt.Fprintf(w, "      %d. %s rule %d match %d: %s\n         %s\n", i+1, rv.Route, rv.Rule, rv.Match, rv.When, describeAction(rv))
				}
			}
		}
	}
}

// describeAction is a route's effect in one line.
func describeAction(rv RouteView) string {
	var b strings.Builder
	if len(rv.Filters) > 0 {
		b.WriteString("filters " + strings.Join(rv.Filters, ", ") + "; ")
	}
	if rv.Action != "forward" {
		b.WriteString(rv.Action)
		return b.String()
	}
	b.WriteString("→ ")
	for i, bv := range rv.Backends {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %.0f%%", bv.Name, bv.Share)
	}
	return b.String()
}

// explanation is the /explain answer.
type explanation struct {
	Request struct {
		Method  string      `json:"method"`
		Host    string      `json:"host"`
		Path    string      `json:"path"`
		Headers http.Header `json:"headers,omitempty"`
	} `json:"request"`
	Listener     string          `json:"listener"`
	ListenerHost string          `json:"gatewayListener,omitempty"`
	Candidates   []candidateView `json:"candidates,omitempty"`
	Chosen       *RouteView      `json:"chosen,omitempty"`
	// Answer says in one sentence what the gateway does and why.
	Answer string `json:"answer"`
}

type candidateView struct {
	Route   string `json:"route"`
	Rule    int    `json:"rule"`
	Match   int    `json:"match"`
	Bucket  string `json:"hostname"`
	When    string `json:"when"`
	Matched bool   `json:"matched"`
}

func serveExplain(w http.ResponseWriter, r *http.Request, tables []dataplane.ListenerTable) {
	q := r.URL.Query()
	var e explanation
	e.Request.Method = q.Get("method")
	if e.Request.Method == "" {
		e.Request.Method = http.MethodGet
	}
	e.Request.Host = q.Get("host")
	e.Request.Path = q.Get("path")
	if e.Request.Path == "" {
		e.Request.Path = "/"
	}
	if !strings.HasPrefix(e.Request.Path, "/") {
		http.Error(w, "path must start with /", http.StatusBadRequest)
		return
	}
	hdr := http.Header{}
	for _, h := range q["header"] {
		name, value, ok := strings.Cut(h, ":")
		if !ok || strings.TrimSpace(name) == "" {
			http.Error(w, fmt.Sprintf("header %q: want Name:Value", h), http.StatusBadRequest)
			return
		}
		hdr.Add(strings.TrimSpace(name), strings.TrimSpace(value))
	}
	e.Request.Headers = hdr

	lt, err := pickListener(tables, q.Get("listener"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	e.Listener = lt.Address
	req, err := http.NewRequest(e.Request.Method, "http://placeholder"+e.Request.Path, nil)
	if err != nil {
		http.Error(w, "request: "+err.Error(), http.StatusBadRequest)
		return
	}
	req.Host = e.Request.Host
	req.Header = hdr
	if lt.Table == nil {
		e.Answer = "404: the listener has no route table yet"
		writeJSON(w, e)
		return
	}
	x := lt.Table.Explain(req)
	e.ListenerHost = x.ListenerHost
	for _, c := range x.Candidates {
		e.Candidates = append(e.Candidates, candidateView{Route: c.Route.IR.Name, Rule: c.Route.IR.RuleIndex, Match: c.Route.IR.MatchIndex,
			Bucket: c.Bucket, When: matchSummary(c.Route.IR.Match), Matched: c.Matched})
	}
	switch {
	case x.ListenerHost == "":
		e.Answer = fmt.Sprintf("404 no_route: no Gateway listener on %s accepts host %q", lt.Address, e.Request.Host)
	case x.Chosen == nil:
		e.Answer = fmt.Sprintf("404 no_route: listener %s accepts the host, but none of its %d candidate routes match", x.ListenerHost, len(x.Candidates))
	default:
		rv := routeView(x.Chosen)
		e.Chosen = &rv
		why := "it is the first route, in Gateway API precedence order, whose match the request satisfies"
		if n := len(x.Candidates) - 1; n > 0 {
			why = fmt.Sprintf("%d route(s) before it in precedence order did not match", n)
		}
		e.Answer = fmt.Sprintf("%s rule %d serves it (%s): %s", rv.Route, rv.Rule, why, describeAction(rv))
	}
	writeJSON(w, e)
}

// pickListener finds the listener named by address or port; with no name
// and a single listener, that one.
func pickListener(tables []dataplane.ListenerTable, want string) (dataplane.ListenerTable, error) {
	if want == "" {
		if len(tables) == 1 {
			return tables[0], nil
		}
		var addrs []string
		for _, lt := range tables {
			addrs = append(addrs, lt.Address)
		}
		return dataplane.ListenerTable{}, fmt.Errorf("listener: required when there are several HTTP listeners (%s)", strings.Join(addrs, ", "))
	}
	for _, lt := range tables {
		if lt.Address == want || strings.HasSuffix(lt.Address, ":"+want) {
			return lt, nil
		}
	}
	return dataplane.ListenerTable{}, fmt.Errorf("listener: no HTTP listener %q", want)
}

// upstreamView is one backend of /upstreams.
type upstreamView struct {
	Name string `json:"name"`
	// Endpoints in the config; Healthy of them in rotation (neither
	// ejected nor failing health checks); Ejected by outlier detection.
	Endpoints int `json:"endpoints"`
	Healthy   int `json:"healthy"`
	Ejected   int `json:"ejected"`
	// Panic: too few endpoints are healthy, so all of them take traffic.
	Panic                 bool   `json:"panic"`
	InFlight              int64  `json:"inFlight"`
	RetriesInFlight       int64  `json:"retriesInFlight"`
	Connections           int64  `json:"connections"`
	PendingConnections    int    `json:"pendingConnections"`
	BreakerRejections     uint64 `json:"circuitBreakerRejections"`
	RetryBudgetRejections uint64 `json:"retryBudgetRejections"`
	Ejections             uint64 `json:"ejections"`
	// HealthChecks are the backend's actively probed endpoints; absent
	// when the backend has no health check.
	HealthChecks []healthcheck.EndpointStatus `json:"healthChecks,omitempty"`
}

// serveUpstreams answers /upstreams: every backend the balancer knows,
// sorted by name, with its endpoints' health checks. A backend that is
// only health-checked (no balancer state yet) still appears.
func serveUpstreams(w http.ResponseWriter, r *http.Request, backends []upstream.BackendStats, health []healthcheck.EndpointStatus) {
	want := r.URL.Query().Get("backend")
	views := []upstreamView{}
	index := map[string]int{}
	for _, b := range backends {
		if want != "" && b.Name != want {
			continue
		}
		if _, dup := index[b.Name]; dup {
			continue
		}
		index[b.Name] = len(views)
		views = append(views, upstreamView{
			Name: b.Name, Endpoints: b.Endpoints, Healthy: b.Healthy, Ejected: b.Ejected, Panic: b.Panic,
			InFlight: b.InFlight, RetriesInFlight: b.RetriesInFlight, Connections: b.Connections,
			PendingConnections: b.PendingConnections, BreakerRejections: b.BreakerRejections,
			RetryBudgetRejections: b.RetryBudgetRejections, Ejections: b.Ejections,
		})
	}
	for _, h := range health {
		if want != "" && h.Backend != want {
			continue
		}
		i, ok := index[h.Backend]
		if !ok {
			i = len(views)
			index[h.Backend] = i
			views = append(views, upstreamView{Name: h.Backend})
		}
		views[i].HealthChecks = append(views[i].HealthChecks, h)
	}
	slices.SortFunc(views, func(a, b upstreamView) int { return strings.Compare(a.Name, b.Name) })
	if want != "" && len(views) == 0 {
		http.Error(w, fmt.Sprintf("backend %q: no such backend", want), http.StatusNotFound)
		return
	}
	writeJSON(w, struct {
		Backends []upstreamView `json:"backends"`
	}{views})
}
