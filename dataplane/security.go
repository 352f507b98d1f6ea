package dataplane

import (
	"net"
	"net/http"
	"strings"

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
//  2. After matching, a held failure answers unless the route's own policy
//     sets the same section (most specific wins); then the route's and
//     rule's sections run.
//
// An external authorization section of the listener is not asked when an
// earlier listener section already failed; it is asked after matching when
// the route overrides that failed section.

// security is one socket's compiled policies.
type security struct {
	// hosts are the listener hosts with a policy, by hostname ("" is any,
	// "*.example.com" a wildcard).
	exact    map[string]*auth.Policy
	wildcard []wildPolicy // longest suffix first
	any      *auth.Policy
	routes   map[*ir.Route]*auth.Policy
}

type wildPolicy struct {
	suffix string // ".example.com"
	p      *auth.Policy
}

// compileSecurity builds l's policies; nil when it has none.
func compileSecurity(l *ir.Listener) (*security, error) {
	s := &security{exact: map[string]*auth.Policy{}, routes: map[*ir.Route]*auth.Policy{}}
	found := false
	for _, h := range l.Hosts {
		if h == nil {
			continue
		}
		if !h.Security.Empty() {
			p, err := auth.Compile(h.Security)
			if err != nil {
				return nil, err
			}
			found = true
			name := strings.ToLower(h.Hostname)
			switch {
			case name == "":
				if s.any == nil {
					s.any = p
				}
			case strings.HasPrefix(name, "*."):
				s.wildcard = append(s.wildcard, wildPolicy{name[1:], p})
			default:
				if s.exact[name] == nil {
					s.exact[name] = p
				}
			}
		}
		for _, r := range h.Routes {
			if r == nil || r.Security.Empty() || s.routes[r] != nil {
				continue
			}
			p, err := auth.Compile(r.Security)
			if err != nil {
				return nil, err
			}
			found = true
			s.routes[r] = p
		}
	}
	if !found {
		return nil, nil
	}
	for i := 1; i < len(s.wildcard); i++ {
		for j := i; j > 0 && len(s.wildcard[j].suffix) > len(s.wildcard[j-1].suffix); j-- {
			s.wildcard[j], s.wildcard[j-1] = s.wildcard[j-1], s.wildcard[j]
		}
	}
	return s, nil
}

// host is the listener policy for a request host.
func (s *security) host(h string) *auth.Policy {
	if host, _, err := net.SplitHostPort(h); err == nil {
		h = host
	}
	h = strings.ToLower(strings.TrimSuffix(h, "."))
	if p := s.exact[h]; p != nil {
		return p
	}
	for _, w := range s.wildcard {
		if strings.HasSuffix(h, w.suffix) && len(h) > len(w.suffix) {
			return w.p
		}
	}
	return s.any
}

// preAuth is the outcome of step 1.
type preAuth struct {
	host     *auth.Policy
	clientIP string
	failed   [auth.Sections]*auth.Denial
	ran      [auth.Sections]bool
	anyFail  bool
}

// beforeRouting runs step 1; nil when the socket has no policies.
func (h *listenerHandler) beforeRouting(r *http.Request) *preAuth {
	s := h.security.Load()
	if s == nil {
		return nil
	}
	pa := &preAuth{host: s.host(r.Host), clientIP: h.forwarded.ClientIP(r.RemoteAddr, r.Header)}
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

// authorize runs step 2 for the matched route; false when it answered.
func (h *listenerHandler) authorize(w http.ResponseWriter, r *http.Request, rec *obs.Request, pa *preAuth, route *router.Route) bool {
	if pa == nil {
		return true
	}
	rp := h.security.Load().routes[route.IR]
	for sec := auth.Section(0); sec < auth.Sections; sec++ {
		if d := pa.failed[sec]; d != nil && !rp.Has(sec) {
			h.deny(w, r, rec, d)
			return false
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
		d, err := p.Check(r.Context(), sec, r, pa.clientIP)
		if err != nil {
			h.log.Warn("authorization service unavailable, failing open", "policy", p.PolicyOf(sec), "section", sec.String(), "error", err.Error())
		}
		if d != nil {
			h.deny(w, r, rec, d)
			return false
		}
	}
	return true
}

// deny answers a refused request and logs which policy and section refused
// it (never the credentials).
func (h *listenerHandler) deny(w http.ResponseWriter, r *http.Request, rec *obs.Request, d *auth.Denial) {
	rec.Reason = d.Reason
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
