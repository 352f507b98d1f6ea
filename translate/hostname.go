package translate

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"
)

// validHostname reports whether h matches Gateway API's Hostname pattern,
// `^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`:
// a lowercase RFC 1123 name, optionally prefixed by a "*." wildcard label.
// It is written out because the regular expression was a tenth of the
// translation of 10,000 routes.
func validHostname(h string) bool {
	h = strings.TrimPrefix(h, "*.")
	for {
		label, rest, more := strings.Cut(h, ".")
		if label == "" || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			if c := label[i]; (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
				return false
			}
		}
		if !more {
			return true
		}
		h = rest
	}
}

// checkHostname validates a Gateway API Hostname (wildcard true) or
// PreciseHostname (wildcard false). The files provider has no API server
// to enforce the CRD's validation, so the translator repeats it.
func checkHostname(h string, wildcard bool) error {
	if len(h) > 253 {
		return fmt.Errorf("%q is longer than 253 characters", h)
	}
	if _, err := netip.ParseAddr(h); err == nil {
		return fmt.Errorf("%q is an IP address; a hostname is required", h)
	}
	if !wildcard && strings.HasPrefix(h, "*") {
		return fmt.Errorf("%q: a wildcard is not allowed here", h)
	}
	if !validHostname(h) {
		return fmt.Errorf("%q is not a valid hostname (lowercase RFC 1123 labels, optionally starting with \"*.\")", h)
	}
	return nil
}

func isWildcard(h string) bool { return strings.HasPrefix(h, "*.") }

func labelCount(h string) int { return strings.Count(h, ".") + 1 }

// wildcardMatches reports whether host (exact or wildcard) is covered by the
// wildcard w: "*.example.com" covers "a.example.com", "a.b.example.com" and
// "*.b.example.com", but not "example.com".
func wildcardMatches(w, host string) bool {
	suffix := w[1:] // ".example.com"
	return len(host) > len(suffix) && strings.HasSuffix(host, suffix) && host[:len(host)-len(suffix)] != "*"
}

// intersectHostname returns the set of names matched by both a listener
// hostname and a route hostname, expressed as the more specific of the two,
// and false when they share no name. An empty hostname matches anything.
func intersectHostname(listener, route string) (string, bool) {
	switch {
	case listener == "":
		return route, true
	case route == "":
		return listener, true
	case listener == route:
		return listener, true
	}
	lw, rw := isWildcard(listener), isWildcard(route)
	switch {
	case lw && wildcardMatches(listener, route):
		return route, true
	case rw && wildcardMatches(route, listener):
		return listener, true
	}
	return "", false
}

// routeHostnames intersects a route's hostnames with a listener's hostname.
// The result is nil with ok true when the route names no hostname (it takes
// whatever the listener accepts), and ok false when nothing intersects.
func routeHostnames(listener string, route []string) (hosts []string, ok bool) {
	if len(route) == 0 {
		return nil, true
	}
	seen := map[string]bool{}
	for _, h := range route {
		if x, ok := intersectHostname(listener, h); ok && !seen[x] {
			seen[x] = true
			hosts = append(hosts, x)
		}
	}
	sort.Strings(hosts)
	return hosts, len(hosts) > 0
}

// hostOverlap indexes the HTTPRoutes (or GRPCRoutes) installed on one
// listener by their hostnames there, so a route of the other kind finds the
// first one whose hostnames overlap its own without comparing against
// each: a listener with 10,000 HTTPRoutes and 10,000 GRPCRoutes would
// otherwise cost 10^8 comparisons. The index is built on the first
// question, so a listener without routes of the other kind never pays for
// it.
type hostOverlap struct {
	routes  []installedRoute
	indexed int // how many of routes are in the maps below
	// firstAny is the first route taking any hostname (no hostnames),
	// -1 for none.
	firstAny int
	// equal has the first route with each hostname, exact or wildcard.
	equal map[string]int
	// covered has, for each ".suffix" a wildcard "*.suffix" covers, the
	// first route with a hostname it covers (a.suffix, *.b.suffix).
	covered map[string]int
}

// add records r, installed after every route added before.
func (x *hostOverlap) add(r installedRoute) { x.routes = append(x.routes, r) }

// index adds the routes not indexed yet to the maps.
func (x *hostOverlap) index() {
	if x.equal == nil {
		x.firstAny, x.equal, x.covered = -1, map[string]int{}, map[string]int{}
	}
	first := func(m map[string]int, k string, i int) {
		if _, ok := m[k]; !ok {
			m[k] = i
		}
	}
	for ; x.indexed < len(x.routes); x.indexed++ {
		i, r := x.indexed, x.routes[x.indexed]
		if len(r.hosts) == 0 && x.firstAny < 0 {
			x.firstAny = i
		}
		for _, h := range r.hosts {
			if h == "" && x.firstAny < 0 {
				x.firstAny = i
			}
			first(x.equal, h, i)
			for j := 1; j < len(h); j++ {
				if h[j] == '.' && h[:j] != "*" {
					first(x.covered, h[j:], i)
				}
			}
		}
	}
}

// first returns the first route added whose hostnames overlap hosts, as
// the first r with hostSetsOverlap(r.hosts, hosts) would.
func (x *hostOverlap) first(hosts []string) (installedRoute, bool) {
	if x == nil || len(x.routes) == 0 {
		return installedRoute{}, false
	}
	if len(hosts) == 0 {
		return x.routes[0], true
	}
	x.index()
	best := x.firstAny
	consider := func(m map[string]int, k string) {
		if i, ok := m[k]; ok && (best < 0 || i < best) {
			best = i
		}
	}
	for _, h := range hosts {
		if h == "" {
			return x.routes[0], true
		}
		consider(x.equal, h)
		// Wildcards covering h.
		for j := 1; j < len(h); j++ {
			if h[j] == '.' && h[:j] != "*" {
				consider(x.equal, "*"+h[j:])
			}
		}
		// Hostnames h covers.
		if isWildcard(h) {
			consider(x.covered, h[1:])
		}
	}
	if best < 0 {
		return installedRoute{}, false
	}
	return x.routes[best], true
}
