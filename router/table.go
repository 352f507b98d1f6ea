package router

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"

	"github.com/meshgate/meshgate/ir"
)

// Table is the compiled, immutable routing table of one listener socket.
// It is safe for concurrent use.
type Table struct {
	name  string
	hosts hostIndex[*vhost]
}

// vhost is one listener hostname's routes, bucketed by the route hostname
// that matches the request, each bucket sorted by precedence.
type vhost struct {
	name string
	// hostname is the listener hosts' hostname, normalized ("" for
	// none, "*.example.com" a wildcard).
	hostname string
	routes   hostIndex[[]*Route]
}

// Compile builds the table for l. It fails, naming the listener host and
// route, on anything it cannot compile: an invalid regular expression, an
// unknown match or filter type, an invalid filter.
//
// Listener hosts with the same hostname (two Gateways sharing a port) are
// merged into one. A route without hostnames takes its listener's
// hostname, as the translator's intersection would.
//
// Precedence, continuing on ties, applies per request host:
//
//  1. Route hostname: a route is filed under each of its hostnames, and
//     the bucket of an exact hostname is tried before the wildcard buckets
//     (longest first), then routes with no hostname. This is "most
//     characters in a matching non-wildcard hostname, then in a matching
//     hostname", evaluated for the hostname that matched, so a route with
//     [a.example.com, *.example.com] counts as exact for a.example.com.
//  2. Within a bucket: Exact path, then PathPrefix by length (longest
//     first), then RegularExpression by pattern length (our choice: regex
//     last; Gateway API leaves it to implementations), then a method match,
//     then more header matches, then more query param matches, then the
//     oldest CreationTimestamp, then "namespace/name" alphabetically, then
//     RuleIndex, then MatchIndex.
func Compile(l *ir.Listener) (*Table, error) {
	if l == nil {
		return nil, errors.New("router: nil listener")
	}
	port, err := listenerPort(l.Address)
	if err != nil {
		return nil, fmt.Errorf("router: listener %q: %w", l.Name, err)
	}
	tls := l.Protocol == ir.ProtocolHTTPS
	t := &Table{name: l.Name}
	compiled := make(map[*ir.Route]*Route)
	var all []*vhost

	for _, lh := range l.Hosts {
		if lh == nil {
			continue
		}
		lhName := normalizeHostname(lh.Hostname)
		vh, ok := t.hosts.get(lhName)
		if ok {
			vh.name += "," + lh.Name
		} else {
			vh = &vhost{name: lh.Name, hostname: lhName}
			t.hosts.put(lhName, vh)
			all = append(all, vh)
		}
		for _, r := range lh.Routes {
			if r == nil {
				continue
			}
			rt, ok := compiled[r]
			if !ok {
				rt, err = compileRoute(r, port, tls)
				if err != nil {
					return nil, fmt.Errorf("router: listener %q host %q: route %s rule %d match %d: %w",
						l.Name, lh.Name, r.Name, r.RuleIndex, r.MatchIndex, err)
				}
				rt.Listener = lh.Name
				compiled[r] = rt
			}
			for _, h := range routeHostnames(r, lhName) {
				bucket, _ := vh.routes.get(h)
				vh.routes.put(h, append(bucket, rt))
			}
		}
	}
	for _, vh := range all {
		vh.sortRoutes()
	}
	return t, nil
}

// listenerPort extracts the port redirects fall back to.
func listenerPort(addr string) (int, error) {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return 0, fmt.Errorf("address %q: %w", addr, err)
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return 0, fmt.Errorf("address %q: bad port", addr)
	}
	return port, nil
}

// routeHostnames is the normalized, deduplicated hostnames r is filed
// under; the listener's hostname when r has none.
func routeHostnames(r *ir.Route, listenerHostname string) []string {
	if len(r.Hostnames) == 0 {
		return []string{listenerHostname}
	}
	out := make([]string, 0, len(r.Hostnames))
	for _, h := range r.Hostnames {
		h = normalizeHostname(h)
		if !slices.Contains(out, h) {
			out = append(out, h)
		}
	}
	return out
}

// sortRoutes orders every bucket by precedence.
func (vh *vhost) sortRoutes() {
	x := &vh.routes
	for k, rs := range x.exact {
		slices.SortStableFunc(rs, comparePrecedence)
		x.exact[k] = rs
	}
	for k, rs := range x.wild {
		slices.SortStableFunc(rs, comparePrecedence)
		x.wild[k] = rs
	}
	slices.SortStableFunc(x.any, comparePrecedence)
}

// Match finds the route for r: the most specific listener host for r.Host,
// then the first route by precedence whose hostname and match conditions r
// satisfies. The host is compared without its port, case-insensitively and
// without a trailing dot; the path is r.URL.Path (decoded). It allocates
// nothing, except for a regex match on a repeated header or on a query value
// that needs unescaping.
func (t *Table) Match(r *http.Request) (*Route, bool) {
	if r == nil || r.URL == nil {
		return nil, false
	}
	var buf [maxHost]byte
	host, fits := requestHost(r.Host, &buf)
	vh, ok := t.hosts.lookup(host, fits)
	if !ok {
		return nil, false
	}
	rt := vh.match(host, fits, r)
	return rt, rt != nil
}

// Hostname is the normalized hostname ("" for none) of the listener host
// that Match picks for a request with this Host; false when none serves
// it. Pre-routing checks use it to find the listener host's policies the
// way routing will.
func (t *Table) Hostname(host string) (string, bool) {
	var buf [maxHost]byte
	h, fits := requestHost(host, &buf)
	vh, ok := t.hosts.lookup(h, fits)
	if !ok {
		return "", false
	}
	return vh.hostname, true
}

// Misdirected reports whether a TLS request's Host picks a different
// listener of this socket than its SNI did: the connection was set up (its
// certificate, later its client-certificate policy) for one listener, and
// a request for another must be answered 421 Misdirected Request (RFC 9110
// §15.5.20) so the client opens a connection for the right one. An empty
// SNI (a client that sent none) is not judged.
func (t *Table) Misdirected(sni, host string) bool {
	if sni == "" {
		return false
	}
	var b1, b2 [maxHost]byte
	s, sfits := requestHost(sni, &b1)
	h, hfits := requestHost(host, &b2)
	vs, _ := t.hosts.lookup(s, sfits)
	vh, _ := t.hosts.lookup(h, hfits)
	return vs != vh
}

// match walks the route buckets the host matches, most specific first.
func (vh *vhost) match(host []byte, fits bool, r *http.Request) *Route {
	x := &vh.routes
	if fits {
		if rs, ok := x.exact[string(host)]; ok {
			if rt := firstMatch(rs, r); rt != nil {
				return rt
			}
		}
		for i := x.nextWild(host, 0); i >= 0; i = x.nextWild(host, i+1) {
			if rs, ok := x.wild[string(host[i:])]; ok {
				if rt := firstMatch(rs, r); rt != nil {
					return rt
				}
			}
		}
	}
	return firstMatch(x.any, r)
}

// firstMatch returns the first route of a sorted bucket that r satisfies.
func firstMatch(rs []*Route, r *http.Request) *Route {
	for _, rt := range rs {
		if rt.m.matches(r) {
			return rt
		}
	}
	return nil
}
