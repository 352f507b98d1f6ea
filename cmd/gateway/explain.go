package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/meshgate/meshgate/config"
	"github.com/meshgate/meshgate/healthcheck"
	"github.com/meshgate/meshgate/ir"
	"github.com/meshgate/meshgate/plan"
	"github.com/meshgate/meshgate/router"
	"github.com/meshgate/meshgate/translate"
)

// headerFlags collect repeated --header name=value (or name:value).
type headerFlags http.Header

func (h headerFlags) String() string { return "" }

func (h headerFlags) Set(s string) error {
	i := strings.IndexAny(s, "=:")
	if i <= 0 {
		return fmt.Errorf("%q: want name=value", s)
	}
	http.Header(h).Add(strings.TrimSpace(s[:i]), strings.TrimSpace(s[i+1:]))
	return nil
}

// explainOut is what `gateway explain` reports.
type explainOut struct {
	Request struct {
		Method  string      `json:"method"`
		Host    string      `json:"host"`
		Path    string      `json:"path"`
		Headers http.Header `json:"headers,omitempty"`
	} `json:"request"`
	Source       string          `json:"source"`
	Listener     string          `json:"listener"`
	Protocol     string          `json:"protocol"`
	GatewayHost  string          `json:"gatewayListener,omitempty"`
	Candidates   []explainCand   `json:"candidates,omitempty"`
	Route        string          `json:"route,omitempty"`
	Rule         int             `json:"rule"`
	Match        int             `json:"match"`
	RuleName     string          `json:"ruleName,omitempty"`
	When         string          `json:"when,omitempty"`
	Hostnames    []string        `json:"hostnames,omitempty"`
	Filters      []string        `json:"filters,omitempty"`
	Policies     []string        `json:"policies,omitempty"`
	Timeouts     string          `json:"timeouts,omitempty"`
	Retry        string          `json:"retry,omitempty"`
	RateLimits   []string        `json:"rateLimits,omitempty"`
	Fault        string          `json:"fault,omitempty"`
	Session      string          `json:"sessionPersistence,omitempty"`
	Backends     []explainBE     `json:"backends,omitempty"`
	Outcomes     []string        `json:"outcomes"`
	Reason       string          `json:"reason,omitempty"`
	Running      json.RawMessage `json:"runningExplain,omitempty"`
	RunningError string          `json:"runningExplainError,omitempty"`
}

type explainCand struct {
	Route   string `json:"route"`
	When    string `json:"when"`
	Bucket  string `json:"hostname"`
	Matched bool   `json:"matched"`
}

type explainBE struct {
	Name      string       `json:"name"`
	Weight    int32        `json:"weight"`
	Share     float64      `json:"sharePercent"`
	Protocol  string       `json:"protocol,omitempty"`
	Policies  string       `json:"policies,omitempty"`
	Sections  []string     `json:"sections,omitempty"`
	State     string       `json:"state,omitempty"`
	Endpoints []explainEP  `json:"endpoints,omitempty"`
	Invalid   bool         `json:"invalid,omitempty"`
	upstream  *upstreamRow `json:"-"`
}

type explainEP struct {
	Address string `json:"address"`
	State   string `json:"state"`
}

// upstreamRow is one backend of admin /upstreams.
type upstreamRow struct {
	Name              string                       `json:"name"`
	Endpoints         int                          `json:"endpoints"`
	Healthy           int                          `json:"healthy"`
	Ejected           int                          `json:"ejected"`
	Panic             bool                         `json:"panic"`
	InFlight          int64                        `json:"inFlight"`
	BreakerRejections uint64                       `json:"circuitBreakerRejections"`
	HealthChecks      []healthcheck.EndpointStatus `json:"healthChecks"`
}

// cmdExplain says which listener, route, rule, filters, policies, backend
// and endpoints would serve a request, and what would happen to it.
func cmdExplain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("gateway explain", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "manifest file or folder to explain against")
	against := fs.String("against", "", "admin URL of a running gateway (its config in force, endpoint health and ejections)")
	method := fs.String("method", http.MethodGet, "request method")
	host := fs.String("host", "", "request host")
	path := fs.String("path", "/", "request path (and query)")
	listenerFlag := fs.String("listener", "", "listener address or port (required when there are several HTTP listeners)")
	output := fs.String("output", "text", "text or json")
	hdr := headerFlags{}
	fs.Var(hdr, "header", "request header name=value (repeatable)")
	var tf translateFlags
	tf.register(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if (*cfgPath == "") == (*against == "") {
		fmt.Fprintln(stderr, "gateway explain: give exactly one of --config or --against")
		return 2
	}
	if !strings.HasPrefix(*path, "/") {
		fmt.Fprintln(stderr, "gateway explain: --path must start with /")
		return 2
	}
	var cfg *ir.Config
	var ups map[string]*upstreamRow
	var e explainOut
	if *cfgPath != "" {
		snap, err := config.LoadPath(*cfgPath)
		if err != nil {
			fmt.Fprintf(stderr, "gateway explain: %v\n", err)
			return 1
		}
		res := translate.Translate(snap, tf.options())
		cfg, e.Source = res.Config, *cfgPath
		if cfg == nil {
			fmt.Fprintln(stderr, "gateway explain: the translator produced no config")
			return 1
		}
	} else {
		base := adminURL(*against)
		st, err := fetchState(base)
		if err != nil {
			fmt.Fprintf(stderr, "gateway explain: %v\n", err)
			return 1
		}
		cfg, e.Source = st.Config, fmt.Sprintf("%s (generation %d)", base, st.Generation)
		var u struct {
			Backends []*upstreamRow `json:"backends"`
		}
		if adminGetJSON(base, "/upstreams", &u) == nil {
			ups = map[string]*upstreamRow{}
			for _, b := range u.Backends {
				ups[b.Name] = b
			}
		}
	}

	e.Request.Method, e.Request.Host, e.Request.Path, e.Request.Headers = *method, *host, *path, http.Header(hdr)
	l, err := pickIRListener(cfg, *listenerFlag)
	if err != nil {
		fmt.Fprintf(stderr, "gateway explain: %v\n", err)
		return 2
	}
	e.Listener, e.Protocol = l.Address, string(l.Protocol)
	table, err := router.Compile(l)
	if err != nil {
		fmt.Fprintf(stderr, "gateway explain: %v\n", err)
		return 1
	}
	req, err := http.NewRequest(*method, "http://placeholder"+*path, nil)
	if err != nil {
		fmt.Fprintf(stderr, "gateway explain: %v\n", err)
		return 2
	}
	req.Host, req.Header = *host, http.Header(hdr)
	x := table.Explain(req)
	e.GatewayHost = x.ListenerHost
	for _, c := range x.Candidates {
		e.Candidates = append(e.Candidates, explainCand{Route: fmt.Sprintf("%s rule %d match %d", c.Route.IR.Name, c.Route.IR.RuleIndex, c.Route.IR.MatchIndex),
			When: plan.MatchSummary(c.Route.IR.Match), Bucket: c.Bucket, Matched: c.Matched})
	}
	switch {
	case x.ListenerHost == "":
		e.Reason = "no_route"
		e.Outcomes = []string{fmt.Sprintf("404 no_route: no Gateway listener on %s accepts host %q", l.Address, *host)}
	case x.Chosen == nil && len(x.Candidates) == 0:
		e.Reason = "no_route"
		e.Outcomes = []string{fmt.Sprintf("404 no_route: %s accepts the host, but no route serves host %q", x.ListenerHost, *host)}
	case x.Chosen == nil:
		e.Reason = "no_route"
		e.Outcomes = []string{fmt.Sprintf("404 no_route: %s accepts the host, but none of its %d candidate route(s) match", x.ListenerHost, len(x.Candidates))}
	default:
		describeRoute(&e, x.Chosen, ups)
	}
	if *against != "" {
		q := url.Values{"method": {*method}, "host": {*host}, "path": {*path}, "listener": {l.Address}}
		for name, vs := range hdr {
			for _, v := range vs {
				q.Add("header", name+":"+v)
			}
		}
		var raw json.RawMessage
		if err := adminGetJSON(adminURL(*against), "/explain?"+q.Encode(), &raw); err != nil {
			e.RunningError = err.Error()
		} else {
			e.Running = raw
		}
	}
	if *output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(e)
		return 0
	}
	writeExplain(stdout, &e)
	return 0
}

// pickIRListener finds an HTTP listener by address or port; with no name
// and a single HTTP listener, that one.
func pickIRListener(cfg *ir.Config, want string) (*ir.Listener, error) {
	var https []*ir.Listener
	for _, l := range cfg.Listeners {
		if l.Protocol == ir.ProtocolHTTP || l.Protocol == ir.ProtocolHTTPS {
			https = append(https, l)
		}
	}
	if want == "" {
		if len(https) == 1 {
			return https[0], nil
		}
		var addrs []string
		for _, l := range https {
			addrs = append(addrs, l.Address)
		}
		return nil, fmt.Errorf("--listener: required when there is not exactly one HTTP listener (%s)", strings.Join(addrs, ", "))
	}
	for _, l := range https {
		if l.Address == want || strings.HasSuffix(l.Address, ":"+want) {
			return l, nil
		}
	}
	return nil, fmt.Errorf("--listener: no HTTP listener %q", want)
}

// describeRoute fills in the chosen route and what would happen, in the
// order the data plane does it.
func describeRoute(e *explainOut, rt *router.Route, ups map[string]*upstreamRow) {
	r := rt.IR
	e.Route, e.Rule, e.Match, e.RuleName, e.When, e.Hostnames = r.Name, r.RuleIndex, r.MatchIndex, r.RuleName, plan.MatchSummary(r.Match), r.Hostnames
	for _, f := range r.Filters {
		e.Filters = append(e.Filters, plan.FilterSummary(f))
	}
	e.Policies, e.Timeouts, e.Retry, e.Fault = r.Policies, plan.TimeoutsSummary(r.Timeouts), plan.RetrySummary(r.Retry), plan.FaultSummary(r.Fault)
	for _, rl := range r.RateLimits {
		e.RateLimits = append(e.RateLimits, plan.RateLimitSummary(rl))
	}
	if sp := r.SessionPersistence; sp != nil {
		e.Session = fmt.Sprintf("%s %s", sp.Type, sp.Name)
	}
	out := &e.Outcomes
	add := func(f string, a ...any) { *out = append(*out, fmt.Sprintf(f, a...)) }
	if dr := r.DirectResponse; dr != nil {
		e.Reason = "direct_response"
		add("%d direct_response: the rule answers itself (%q), nothing is forwarded", dr.StatusCode, dr.Body)
		return
	}
	for _, f := range r.Filters {
		if f.RequestRedirect != nil {
			e.Reason = "redirect"
			add("redirect: %s, nothing is forwarded", plan.FilterSummary(f))
			return
		}
	}
	for _, rl := range r.RateLimits {
		s := fmt.Sprintf("429 rate_limited once %s is exhausted", plan.RateLimitSummary(rl))
		if rl.Global && !rl.FailOpen {
			s += "; 503 rate_limit_unavailable when Redis cannot be reached"
		}
		add("%s", s)
	}
	if f := r.Fault; f != nil {
		if f.Delay != nil {
			add("fault: %g%% of requests delayed %s first", f.Delay.Percent, f.Delay.Duration)
		}
		if f.Abort != nil {
			add("%d fault_abort: %g%% of requests answered without forwarding (FaultInjection %s)", f.Abort.HTTPStatus, f.Abort.Percent, f.Name)
		}
	}
	var total int64
	for _, b := range r.Backends {
		total += int64(b.Weight)
	}
	if total == 0 {
		e.Reason = "no_valid_backend"
		add("500 no_valid_backend: the rule has no backend with weight")
		return
	}
	for _, b := range r.Backends {
		bv := explainBE{Weight: b.Weight, Share: 100 * float64(b.Weight) / float64(total), Invalid: b.Target == nil}
		if b.Target == nil {
			bv.Name = "(invalid reference)"
			if b.Weight > 0 {
				add("500 no_valid_backend for %.0f%% of requests: the backendRef could not be resolved", bv.Share)
			}
			e.Backends = append(e.Backends, bv)
			continue
		}
		t := b.Target
		bv.Name, bv.Protocol = t.Name, string(t.Protocol)
		if t.TLS != nil {
			bv.Protocol += "+TLS"
		}
		if _, p, ok := strings.Cut(t.Name, "~"); ok {
			bv.Policies = strings.ReplaceAll(p, "+", ", ")
		}
		bv.Sections = backendSections(t)
		u := ups[t.Name]
		health := map[string]healthcheck.EndpointStatus{}
		if u != nil {
			for _, h := range u.HealthChecks {
				health[h.Address] = h
			}
			bv.State = fmt.Sprintf("%d of %d endpoint(s) in rotation, %d ejected by outlier detection, %d in flight, %d circuit breaker rejection(s)",
				u.Healthy, u.Endpoints, u.Ejected, u.InFlight, u.BreakerRejections)
			if u.Panic {
				bv.State += ", PANIC mode (all endpoints used)"
			}
		}
		for _, ep := range t.Endpoints {
			st := "in config"
			if ep.Draining {
				st = "draining (used only when nothing else is)"
			}
			if h, ok := health[ep.Address]; ok {
				if h.Healthy {
					st = "healthy (active check)"
				} else {
					st = "UNHEALTHY (active check: " + h.LastError + ")"
				}
			}
			bv.Endpoints = append(bv.Endpoints, explainEP{Address: ep.Address, State: st})
		}
		e.Backends = append(e.Backends, bv)
		if b.Weight == 0 {
			continue
		}
		switch {
		case len(t.Endpoints) == 0:
			add("503 no_healthy_upstream for %.0f%% of requests: %s has no endpoints", bv.Share, t.Name)
		case u != nil && u.Healthy == 0 && !u.Panic:
			add("503 no_healthy_upstream for %.0f%% of requests: no endpoint of %s is in rotation now", bv.Share, t.Name)
		default:
			add("forward %.0f%% of requests to %s", bv.Share, t.Name)
		}
		if cb := t.CircuitBreaker; cb != nil {
			add("503 circuit_open (x-meshgate-overloaded: circuit-breaker) when %s is over its circuit breaker %s", t.Name, plan.Readable(cb))
		}
	}
	if r.Retry != nil && r.Retry.Attempts > 0 {
		add("failed attempts retried: %s", plan.RetrySummary(r.Retry))
	}
	to := plan.TimeoutsSummary(r.Timeouts)
	if to == "" {
		to = "default upstream timeout 15s per attempt"
	}
	add("504 upstream_timeout (stage connect or first-byte) past %s", to)
	add("503 upstream_connect_failure when no connection can be made; 502 upstream_protocol_error on a bad or reset answer")
}

func backendSections(b *ir.Backend) []string {
	var s []string
	add := func(name string, v any) {
		if j := plan.Readable(v); j != "" {
			s = append(s, name+" "+j)
		}
	}
	add("loadBalancer", b.LoadBalancer)
	add("healthCheck", b.HealthCheck)
	add("outlierDetection", b.Outlier)
	add("circuitBreaker", b.CircuitBreaker)
	if b.PanicThreshold > 0 {
		s = append(s, fmt.Sprintf("panicThreshold %g%%", b.PanicThreshold))
	}
	if b.ConnectTimeout > 0 {
		s = append(s, "connectTimeout "+b.ConnectTimeout.String())
	}
	if b.IdleTimeout > 0 {
		s = append(s, "idleTimeout "+b.IdleTimeout.String())
	}
	return s
}

func writeExplain(w io.Writer, e *explainOut) {
	fmt.Fprintf(w, "request:    %s %s%s", e.Request.Method, e.Request.Host, e.Request.Path)
	for name, vs := range e.Request.Headers {
		for _, v := range vs {
			fmt.Fprintf(w, " [%s: %s]", name, v)
		}
	}
	fmt.Fprintf(w, "\nsource:     %s\n", e.Source)
	fmt.Fprintf(w, "listener:   %s (%s)", e.Listener, e.Protocol)
	if e.GatewayHost != "" {
		fmt.Fprintf(w, ", Gateway listener %s", e.GatewayHost)
	}
	fmt.Fprintln(w)
	if len(e.Candidates) > 0 {
		fmt.Fprintln(w, "candidates, in precedence order:")
		for i, c := range e.Candidates {
			m := "no match"
			if c.Matched {
				m = "MATCH"
			}
			fmt.Fprintf(w, "  %d. %s (%s): %s: %s\n", i+1, c.Route, hostname(c.Bucket), c.When, m)
		}
	}
	if e.Route != "" {
		fmt.Fprintf(w, "route:      %s rule %d match %d", e.Route, e.Rule, e.Match)
		if e.RuleName != "" {
			fmt.Fprintf(w, " (rule %q)", e.RuleName)
		}
		fmt.Fprintf(w, "\nmatch:      %s\n", e.When)
		line := func(name string, vs ...string) {
			var keep []string
			for _, v := range vs {
				if v != "" {
					keep = append(keep, v)
				}
			}
			if len(keep) > 0 {
				fmt.Fprintf(w, "%-11s %s\n", name+":", strings.Join(keep, "; "))
			}
		}
		line("hostnames", strings.Join(e.Hostnames, ", "))
		line("filters", e.Filters...)
		line("policies", strings.Join(e.Policies, ", "))
		line("rate limit", e.RateLimits...)
		line("fault", e.Fault)
		line("timeouts", e.Timeouts)
		line("retry", e.Retry)
		line("session", e.Session)
		for _, b := range e.Backends {
			fmt.Fprintf(w, "backend:    %s weight %d (%.0f%%) %s", b.Name, b.Weight, b.Share, b.Protocol)
			if b.Policies != "" {
				fmt.Fprintf(w, ", shaped by %s", b.Policies)
			}
			fmt.Fprintln(w)
			for _, s := range b.Sections {
				fmt.Fprintf(w, "              %s\n", s)
			}
			if b.State != "" {
				fmt.Fprintf(w, "              now: %s\n", b.State)
			}
			for _, ep := range b.Endpoints {
				fmt.Fprintf(w, "  endpoint: %s %s\n", ep.Address, ep.State)
			}
		}
	}
	fmt.Fprintln(w, "what happens:")
	for _, o := range e.Outcomes {
		fmt.Fprintf(w, "  - %s\n", o)
	}
	if len(e.Running) > 0 {
		var r struct {
			Answer string `json:"answer"`
		}
		if json.Unmarshal(e.Running, &r) == nil && r.Answer != "" {
			fmt.Fprintf(w, "running gateway says: %s\n", r.Answer)
		}
	}
	if e.RunningError != "" {
		fmt.Fprintf(w, "running gateway /explain: %s\n", e.RunningError)
	}
}

func hostname(h string) string {
	if h == "" {
		return "any hostname"
	}
	return h
}
