package dataplane

import (
	"net/http"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/meshgate/meshgate/auth"
	"github.com/meshgate/meshgate/ir"
	"github.com/meshgate/meshgate/obs"
	"github.com/meshgate/meshgate/proxy"
	"github.com/meshgate/meshgate/router"
)

// SecurityPolicies are checked in two steps (see mgv1alpha1.SecurityPolicy):
//
//  1. Before route matching, the Gateway listener's sections (the request's
//     ListenerHost: Gateway-wide and listener policies). JWT claims copied
//     to headers there are what the route header matches see, which is how
//     claim-based routing works. A failing section does not answer yet.
//     Before anything else, every header a jwt section of this listener
//     host or of one of its routes copies a claim to is removed, so a
//     client can never pick a route by sending one itself.
//  2. After matching, a held failure answers unless the route's own policy
//     sets the same section (most specific wins); then the route's and
//     rule's sections run.
//
// Claim-based routing with a route-level policy: when the matched route's
// jwt section copies claims to headers and the request passes all of the
// route's sections, it is matched once more against the same route table
// with those headers set. The route found then serves the request (no
// route: 404). Its policy is checked as in step 2, except that a section
// already passed with the very same SecurityPolicy is not checked again;
// its claims may set headers but never cause another match.
//
// An external authorization section of the listener is not asked when an
// earlier listener section already failed; it is asked after matching when
// the route overrides that failed section.

// security is one socket's compiled policies.
type security struct {
	// hosts are every listener host, by normalized hostname ("" for
	// none, "*.example.com" a wildcard), as router.Table.Hostname names
	// them.
	hosts  map[string]*hostSecurity
	routes map[*ir.Route]*auth.Policy
	all    []*auth.Policy
	// prev is the config this one replaced: a request matched on its
	// route table just before a reload finds its route's policy there.
	prev atomic.Pointer[security]
}

// hostSecurity is one listener host's policy (nil for none) and the claim
// headers removed from its requests before matching.
type hostSecurity struct {
	policy *auth.Policy
	strip  []string
}

// compileSecurity builds l's policies; nil when it has none.
// External authorization connections come from conns.
func compileSecurity(l *ir.Listener, conns *auth.Conns) (*security, error) {
	s := &security{hosts: map[string]*hostSecurity{}, routes: map[*ir.Route]*auth.Policy{}}
	for _, h := range l.Hosts {
		if h == nil {
			continue
		}
		hs := &hostSecurity{}
		if !h.Security.Empty() {
			p, err := auth.Compile(h.Security, conns)
			if err != nil {
				return nil, err
			}
			hs.policy = p
			s.all = append(s.all, p)
		}
		hs.strip = addHeaders(hs.strip, hs.policy.ClaimHeaders())
		for _, r := range h.Routes {
			if r == nil || r.Security.Empty() {
				continue
			}
			p := s.routes[r]
			if p == nil {
				var err error
				if p, err = auth.Compile(r.Security, conns); err != nil {
					return nil, err
				}
				s.routes[r] = p
				s.all = append(s.all, p)
			}
			hs.strip = addHeaders(hs.strip, p.ClaimHeaders())
		}
		name := strings.TrimSuffix(strings.ToLower(h.Hostname), ".")
		if s.hosts[name] == nil {
			s.hosts[name] = hs
		}
	}
	if len(s.all) == 0 {
		return nil, nil
	}
	return s, nil
}

// addHeaders appends the names of add missing from to.
func addHeaders(to, add []string) []string {
	for _, a := range add {
		if !slices.Contains(to, a) {
			to = append(to, a)
		}
	}
	return to
}

// route is the compiled policy of a matched route; false when the route
// has a policy neither this config nor the one it replaced compiled (a
// request matched across two reloads), which is refused rather than let
// through unchecked.
func (s *security) route(r *ir.Route) (*auth.Policy, bool) {
	if p, ok := s.routes[r]; ok {
		return p, true
	}
	if prev := s.prev.Load(); prev != nil {
		if p, ok := prev.routes[r]; ok {
			return p, true
		}
	}
	return nil, r.Security.Empty()
}

// start readies every policy's checks (connections to authorization
// services); stop releases them once the checks in flight are done.
func (s *security) start() {
	for _, p := range s.all {
		p.Start()
	}
}

func (s *security) stop() {
	for _, p := range s.all {
		p.Stop()
	}
}

// setSecurity makes s the socket's policies (nil: none) and releases the
// ones it replaces; the new ones take their connections first, so those
// both use stay open.
func (h *listenerHandler) setSecurity(s *security) {
	if s != nil {
		s.start()
	}
	old := h.security.Swap(s)
	if s != nil {
		s.prev.Store(old)
	}
	if old != nil && old != s {
		old.prev.Store(nil)
		old.stop()
	}
}

// preAuth is the outcome of step 1.
type preAuth struct {
	sec      *security
	host     *auth.Policy
	clientIP string
	failed   [auth.Sections]*auth.Denial
	ran      [auth.Sections]bool
	anyFail  bool
}

// beforeRouting runs step 1 for the listener host table routes r to; nil
// when the socket has no policies.
func (h *listenerHandler) beforeRouting(r *http.Request, table *router.Table) *preAuth {
	s := h.security.Load()
	if s == nil {
		return nil
	}
	pa := &preAuth{sec: s, clientIP: h.forwarded.ClientIP(r.RemoteAddr, r.Header)}
	name, ok := table.Hostname(r.Host)
	hs := s.hosts[name]
	if !ok || hs == nil {
		return pa
	}
	for _, name := range hs.strip {
		delete(r.Header, name)
	}
	pa.host = hs.policy
	if pa.host == nil {
		return pa
	}
	for sec := auth.Section(0); sec < auth.Sections; sec++ {
		if !pa.host.Has(sec) || (sec == auth.SectionExt && pa.anyFail) {
			continue
		}
		pa.ran[sec] = true
		d, err := pa.host.Check(r.Context(), sec, r, pa.clientIP)
		if err != nil {
			h.log.Warn("authorization service unavailable, failing open", "policy", pa.host.PolicyOf(sec), "section", sec.String(), "error", err.Error())
		}
		if d != nil {
			pa.failed[sec], pa.anyFail = d, true
		}
	}
	return pa
}

// unmatched answers a request no route matched with a held denial, so
// that a refused client learns nothing about the routes; false when there
// is none.
func (h *listenerHandler) unmatched(w http.ResponseWriter, r *http.Request, rec *obs.Request, pa *preAuth) bool {
	if pa == nil || !pa.anyFail {
		return false
	}
	for _, d := range pa.failed {
		if d != nil {
			h.deny(w, r, rec, d)
			return true
		}
	}
	return false
}

// authorize runs step 2 for the matched route and, for claim-based
// routing, matches the request again in table. It returns the route to
// serve, nil when it answered.
func (h *listenerHandler) authorize(w http.ResponseWriter, r *http.Request, rec *obs.Request, pa *preAuth, table *router.Table, route *router.Route) *router.Route {
	if pa == nil {
		return route
	}
	// passed names the SecurityPolicy each section passed with.
	var passed [auth.Sections]string
	for sec := auth.Section(0); sec < auth.Sections; sec++ {
		if pa.ran[sec] && pa.failed[sec] == nil {
			passed[sec] = pa.host.PolicyOf(sec)
		}
	}
	rp, ok := h.routeChecks(w, r, rec, pa, route, &passed)
	if !ok {
		return nil
	}
	if !rp.Has(auth.SectionJWT) || len(rp.ClaimHeaders()) == 0 {
		return route
	}
	next, found := table.Match(r)
	if !found {
		h.fail(w, r, rec, http.StatusNotFound, "no_route", nil)
		return nil
	}
	if next == route {
		return route
	}
	rec.Route, rec.Rule, rec.Gateway = next.IR.Name, next.IR.RuleIndex, next.Listener
	if _, ok := h.routeChecks(w, r, rec, pa, next, &passed); !ok {
		return nil
	}
	return next
}

// routeChecks runs step 2 for route, skipping sections passed with the
// same policy and recording those it passes; false when it answered.
func (h *listenerHandler) routeChecks(w http.ResponseWriter, r *http.Request, rec *obs.Request, pa *preAuth, route *router.Route, passed *[auth.Sections]string) (*auth.Policy, bool) {
	rp, ok := pa.sec.route(route.IR)
	if !ok {
		h.fail(w, r, rec, http.StatusServiceUnavailable, "policy_unavailable", nil)
		return nil, false
	}
	for sec := auth.Section(0); sec < auth.Sections; sec++ {
		if d := pa.failed[sec]; d != nil && !rp.Has(sec) {
			h.deny(w, r, rec, d)
			return nil, false
		}
	}
	for sec := auth.Section(0); sec < auth.Sections; sec++ {
		p := rp
		if !rp.Has(sec) {
			if !pa.host.Has(sec) || pa.ran[sec] {
				continue
			}
			p = pa.host
		}
		name := p.PolicyOf(sec)
		if passed[sec] == name {
			continue
		}
		d, err := p.Check(r.Context(), sec, r, pa.clientIP)
		if err != nil {
			h.log.Warn("authorization service unavailable, failing open", "policy", name, "section", sec.String(), "error", err.Error())
		}
		if d != nil {
			h.deny(w, r, rec, d)
			return nil, false
		}
		passed[sec] = name
	}
	return rp, true
}

// deny answers a refused request and logs which policy and section refused
// it (never the credentials).
func (h *listenerHandler) deny(w http.ResponseWriter, r *http.Request, rec *obs.Request, d *auth.Denial) {
	rec.Reason, rec.DeniedPolicy, rec.DeniedSection = d.Reason, d.Policy, d.Section.String()
	h.log.Warn("request denied", "status", d.Status, "reason", d.Reason, "policy", d.Policy, "section", d.Section.String(),
		"detail", d.Detail, "method", r.Method, "host", r.Host, "path", r.URL.Path)
	if proxy.IsGRPC(r.Header) {
		proxy.WriteErrorHeaders(w, r, nil, d.Status, d.Reason, nil, d.Header)
		return
	}
	hdr := w.Header() // CORS headers already set stay
	for k, vs := range d.Header {
		hdr[k] = vs
	}
	if len(d.Body) > 0 {
		if hdr.Get("Content-Type") == "" {
			hdr.Set("Content-Type", "text/plain; charset=utf-8")
		}
		w.WriteHeader(d.Status)
		w.Write(d.Body)
		return
	}
	hdr["Content-Type"] = []string{"text/plain; charset=utf-8"}
	hdr["X-Content-Type-Options"] = []string{"nosniff"}
	w.WriteHeader(d.Status)
	w.Write([]byte(http.StatusText(d.Status) + " (" + d.Reason + ")\n"))
}
