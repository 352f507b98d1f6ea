package translate

import (
	"fmt"
	"net/netip"
	"regexp"
	"sort"
	"strings"
)

// hostnameRE is Gateway API's Hostname pattern: a lowercase RFC 1123 name,
// optionally prefixed by a "*." wildcard label.
var hostnameRE = regexp.MustCompile(`^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)

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
	if !hostnameRE.MatchString(h) {
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

// hostSetsOverlap reports whether two routes' effective hostnames on one
// listener share a name; an empty set means any name the listener takes.
func hostSetsOverlap(a, b []string) bool {
	if len(a) == 0 || len(b) == 0 {
		return true
	}
	for _, x := range a {
		for _, y := range b {
			if _, ok := intersectHostname(x, y); ok {
				return true
			}
		}
	}
	return false
}
