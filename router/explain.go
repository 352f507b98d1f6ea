package router

import (
	"net/http"
	"sort"
	"strings"
)

// Candidate is one route a request was compared with, in precedence order.
type Candidate struct {
	Route *Route
	// Bucket is the route hostname the candidate was filed under ("" for
	// routes without hostnames).
	Bucket string
	// Matched reports whether the request satisfied its match.
	Matched bool
}

// Explanation says how Match decides for one request, for the admin
// "explain" endpoint: which listener host was chosen and every candidate
// route up to and including the one that matched.
type Explanation struct {
	// ListenerHost is the chosen Gateway listener(s) ("ns/gw/listener");
	// "" when no listener hostname accepts the request's host.
	ListenerHost string
	Candidates   []Candidate
	// Chosen is the route that serves the request, nil for a 404.
	Chosen *Route
}

// Explain runs Match's decision for r, keeping the candidates it tried.
// It is for humans, not the hot path: it allocates.
func (t *Table) Explain(r *http.Request) Explanation {
	var e Explanation
	var buf [maxHost]byte
	host, fits := requestHost(r.Host, &buf)
	vh, ok := t.hosts.lookup(host, fits)
	if !ok {
		return e
	}
	e.ListenerHost = vh.name
	try := func(bucket string, rs []*Route) bool {
		for _, rt := range rs {
			c := Candidate{Route: rt, Bucket: bucket, Matched: rt.m.matches(r)}
			e.Candidates = append(e.Candidates, c)
			if c.Matched {
				e.Chosen = rt
				return true
			}
		}
		return false
	}
	x := &vh.routes
	if fits {
		if rs, ok := x.exact[string(host)]; ok && try(string(host), rs) {
			return e
		}
		for i := x.nextWild(host, 0); i >= 0; i = x.nextWild(host, i+1) {
			if rs, ok := x.wild[string(host[i:])]; ok && try("*"+string(host[i:]), rs) {
				return e
			}
		}
	}
	try("", x.any)
	return e
}

// HostRoutes is one listener host's routes in precedence order, bucket by
// bucket, as Match tries them.
type HostRoutes struct {
	ListenerHost string
	Buckets      []Bucket
}

// Bucket is the routes filed under one route hostname.
type Bucket struct {
	Hostname string // "" for routes without hostnames
	Routes   []*Route
}

// Routes lists the table's routes for humans (the admin /routes endpoint):
// listener hosts by name, and within each, exact hostnames, then wildcards
// (longest first), then routes without hostnames.
func (t *Table) Routes() []HostRoutes {
	var out []HostRoutes
	seen := map[*vhost]bool{}
	add := func(vh *vhost) {
		if vh == nil || seen[vh] {
			return
		}
		seen[vh] = true
		hr := HostRoutes{ListenerHost: vh.name}
		x := &vh.routes
		for _, h := range sortedKeys(x.exact) {
			hr.Buckets = append(hr.Buckets, Bucket{Hostname: h, Routes: x.exact[h]})
		}
		wild := sortedKeys(x.wild)
		sort.SliceStable(wild, func(i, j int) bool { return len(wild[i]) > len(wild[j]) })
		for _, h := range wild {
			hr.Buckets = append(hr.Buckets, Bucket{Hostname: "*" + h, Routes: x.wild[h]})
		}
		if len(x.any) > 0 {
			hr.Buckets = append(hr.Buckets, Bucket{Routes: x.any})
		}
		out = append(out, hr)
	}
	for _, h := range sortedKeys(t.hosts.exact) {
		add(t.hosts.exact[h])
	}
	for _, h := range sortedKeys(t.hosts.wild) {
		add(t.hosts.wild[h])
	}
	if t.hosts.hasAny {
		add(t.hosts.any)
	}
	sort.SliceStable(out, func(i, j int) bool { return strings.Compare(out[i].ListenerHost, out[j].ListenerHost) < 0 })
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
