package router

import (
	"errors"
	"fmt"
	"math/rand/v2"

	"github.com/meshgate/meshgate/filters"
	"github.com/meshgate/meshgate/ir"
)

// Route is one compiled route match: the ir it came from plus everything
// the proxy needs to act on it, built once at Compile time.
//
// A Route is shared by every request that matches it and must not be
// modified.
type Route struct {
	// IR is the source route; read Timeouts and DirectResponse from it.
	IR *ir.Route
	// Listener is the Gateway listener ("namespace/gateway/listener") the
	// route was installed on, for metrics and logs.
	Listener string
	// RequestHeaders and ResponseHeaders are the rule's header modifier
	// filters, in filter order.
	RequestHeaders  []*filters.HeaderModifier
	ResponseHeaders []*filters.HeaderModifier
	// Redirect is the rule's RequestRedirect filter, or nil. A route with a
	// redirect answers without forwarding.
	Redirect *filters.Redirect
	// Rewrite is the rule's URLRewrite filter, or nil.
	Rewrite *filters.URLRewrite
	// Mirrors are the rule's RequestMirror filters that have a target.
	Mirrors []*filters.Mirror
	// UsesClientIP says whether serving the route needs the client's
	// address (a rate limit, or hashing on the source IP), so it is
	// worked out only for such routes.
	UsesClientIP bool
	// Fault is the rule's FaultInjection, or nil.
	Fault *filters.Fault
	// CORS is the rule's CORS filter, or nil. It answers preflight
	// requests and adds CORS headers to the responses of allowed origins.
	CORS *filters.CORS
	// Session and Sessions are the rule's session persistence and the
	// index resolving its tokens to a backend and endpoint; nil without
	// session persistence.
	Session  *filters.Session
	Sessions *filters.SessionIndex
	// Backends parallels IR.Backends: Backends[i].IR == &IR.Backends[i].
	// Each carries the backendRef's own header filters, which the proxy
	// applies after the rule's.
	Backends []Backend

	m matcher
	// cum holds the running weight totals of the backends with a positive
	// weight, whose indexes into Backends are in pick.
	cum   []int64
	pick  []int
	total int64
}

// Backend is one compiled backendRef of a Route.
type Backend struct {
	// IR is the backendRef; IR.Target is nil for an unresolved reference,
	// whose requests get 500.
	IR *ir.WeightedBackend
	// RequestHeaders and ResponseHeaders are the backendRef's own header
	// modifier filters, applied after the rule's, in filter order.
	RequestHeaders  []*filters.HeaderModifier
	ResponseHeaders []*filters.HeaderModifier
}

// compileRoute builds a Route. port and tls describe the listener, which
// redirects need.
func compileRoute(r *ir.Route, port int, tls bool) (*Route, error) {
	m, err := compileMatch(&r.Match)
	if err != nil {
		return nil, err
	}
	rt := &Route{IR: r, m: m}
	for i, f := range r.Filters {
		if err := rt.addFilter(f, port, tls); err != nil {
			return nil, fmt.Errorf("filter %d: %w", i, err)
		}
	}
	if r.Fault != nil {
		f, err := filters.CompileFault(r.Fault)
		if err != nil {
			return nil, fmt.Errorf("fault %s: %w", r.Fault.Name, err)
		}
		rt.Fault = f
	}
	if r.SessionPersistence != nil {
		rt.Session = filters.CompileSession(r.SessionPersistence)
		rt.Sessions = filters.NewSessionIndex(r.Backends)
	}
	rt.UsesClientIP = len(r.RateLimits) > 0
	for _, wb := range r.Backends {
		if t := wb.Target; t != nil && t.LoadBalancer != nil && t.LoadBalancer.HashOn == ir.HashSourceIP {
			rt.UsesClientIP = true
		}
	}
	rt.Backends = make([]Backend, len(r.Backends))
	for i := range r.Backends {
		wb := &r.Backends[i]
		b := Backend{IR: wb}
		for j, f := range wb.Filters {
			hm, resp, err := headerFilter(f)
			if err != nil {
				return nil, fmt.Errorf("backend %d filter %d: %w", i, j, err)
			}
			if resp {
				b.ResponseHeaders = append(b.ResponseHeaders, hm)
			} else {
				b.RequestHeaders = append(b.RequestHeaders, hm)
			}
		}
		rt.Backends[i] = b
		if wb.Weight > 0 {
			rt.total += int64(wb.Weight)
			rt.cum = append(rt.cum, rt.total)
			rt.pick = append(rt.pick, i)
		}
	}
	return rt, nil
}

// addFilter compiles one rule-level filter into rt.
func (rt *Route) addFilter(f ir.Filter, port int, tls bool) error {
	switch f.Type {
	case ir.FilterRequestHeaderModifier, ir.FilterResponseHeaderModifier:
		hm, resp, err := headerFilter(f)
		if err != nil {
			return err
		}
		if resp {
			rt.ResponseHeaders = append(rt.ResponseHeaders, hm)
		} else {
			rt.RequestHeaders = append(rt.RequestHeaders, hm)
		}
	case ir.FilterRequestMirror:
		if m := filters.NewMirror(f.RequestMirror); m != nil {
			rt.Mirrors = append(rt.Mirrors, m)
		}
	case ir.FilterRequestRedirect:
		if rt.Redirect != nil {
			return errors.New("more than one RequestRedirect")
		}
		rd, err := filters.NewRedirect(f.RequestRedirect, port, tls)
		if err != nil {
			return err
		}
		rt.Redirect = rd
	case ir.FilterURLRewrite:
		if rt.Rewrite != nil {
			return errors.New("more than one URLRewrite")
		}
		rw, err := filters.NewURLRewrite(f.URLRewrite)
		if err != nil {
			return err
		}
		rt.Rewrite = rw
	case ir.FilterCORS:
		if rt.CORS != nil {
			return errors.New("more than one CORS")
		}
		c, err := filters.NewCORS(f.CORS)
		if err != nil {
			return err
		}
		rt.CORS = c
	default:
		return fmt.Errorf("unsupported filter type %q", f.Type)
	}
	return nil
}

// headerFilter compiles a Request- or ResponseHeaderModifier filter; resp
// says which. Backend-level filters may only be these two: anything else is
// an error rather than silently ignored.
func headerFilter(f ir.Filter) (hm *filters.HeaderModifier, resp bool, err error) {
	switch f.Type {
	case ir.FilterRequestHeaderModifier:
		hm, err = filters.NewHeaderModifier(f.RequestHeaderModifier)
	case ir.FilterResponseHeaderModifier:
		hm, err = filters.NewHeaderModifier(f.ResponseHeaderModifier)
		resp = true
	default:
		err = fmt.Errorf("unsupported filter type %q here", f.Type)
	}
	return hm, resp, err
}

// MatchedPrefix is the path value to pass to Redirect.Location/Serve and
// Rewrite.Apply: the PathPrefix or Exact value as configured, or "" for a
// RegularExpression match (ReplacePrefixMatch then leaves the path alone).
func (rt *Route) MatchedPrefix() string {
	switch rt.m.kind {
	case pathExact, pathPrefix:
		if rt.IR.Match.Path.Value == "" {
			return "/"
		}
		return rt.IR.Match.Path.Value
	}
	return ""
}

// Pick chooses a backend at random in proportion to the weights. Backends
// with weight 0 are never chosen. It returns nil when there is no backend or
// every weight is 0: the proxy answers 500 then.
func (rt *Route) Pick() *Backend {
	if rt.total <= 0 {
		return nil
	}
	n := rand.Int64N(rt.total)
	// Routes have few backends (at most 16 per rule), so a linear scan beats
	// a binary search.
	for i, c := range rt.cum {
		if n < c {
			return &rt.Backends[rt.pick[i]]
		}
	}
	return &rt.Backends[rt.pick[len(rt.pick)-1]] // unreachable
}

// PickBackend is Pick returning only the backendRef; use Pick to get the
// backend's own filters too.
func (rt *Route) PickBackend() *ir.WeightedBackend {
	if b := rt.Pick(); b != nil {
		return b.IR
	}
	return nil
}
