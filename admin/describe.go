package admin

import (
	"fmt"
	"strings"

	"github.com/meshgate/meshgate/ir"
	"github.com/meshgate/meshgate/router"
)

// matchSummary renders a route match the way a user wrote it.
func matchSummary(m ir.Match) string {
	parts := []string{string(m.Path.Type) + " " + m.Path.Value}
	if m.Method != "" {
		parts = append(parts, "method "+m.Method)
	}
	for _, h := range m.Headers {
		parts = append(parts, fmt.Sprintf("header %s %s %q", h.Name, op(h.Type), h.Value))
	}
	for _, q := range m.QueryParams {
		parts = append(parts, fmt.Sprintf("query %s %s %q", q.Name, op(q.Type), q.Value))
	}
	return strings.Join(parts, ", ")
}

func op(t ir.StringMatchType) string {
	if t == ir.MatchRegularExpression {
		return "~"
	}
	return "="
}

// BackendView is one backendRef of a route as the admin API shows it.
type BackendView struct {
	Name      string   `json:"name"`
	Weight    int32    `json:"weight"`
	Share     float64  `json:"sharePercent"`
	Protocol  string   `json:"protocol,omitempty"`
	Endpoints []string `json:"endpoints,omitempty"`
	// Invalid is set for a backendRef that could not be resolved: its
	// share of requests gets 500.
	Invalid bool `json:"invalid,omitempty"`
}

// RouteView is one compiled route match as the admin API shows it.
type RouteView struct {
	Route    string        `json:"route"`
	Rule     int           `json:"rule"`
	Match    int           `json:"match"`
	Listener string        `json:"listener"`
	Hosts    []string      `json:"hostnames,omitempty"`
	When     string        `json:"when"`
	Filters  []string      `json:"filters,omitempty"`
	Backends []BackendView `json:"backends,omitempty"`
	// Action says what the route does: "forward", "redirect",
	// "direct response 500".
	Action string `json:"action"`
}

func routeView(rt *router.Route) RouteView {
	r := rt.IR
	v := RouteView{Route: r.Name, Rule: r.RuleIndex, Match: r.MatchIndex, Listener: rt.Listener,
		Hosts: r.Hostnames, When: matchSummary(r.Match), Action: "forward"}
	for _, f := range r.Filters {
		v.Filters = append(v.Filters, string(f.Type))
	}
	switch {
	case r.DirectResponse != nil:
		v.Action = fmt.Sprintf("direct response %d", r.DirectResponse.StatusCode)
	case rt.Redirect != nil:
		v.Action = "redirect"
	}
	var total int64
	for _, b := range r.Backends {
		total += int64(b.Weight)
	}
	for _, b := range r.Backends {
		bv := BackendView{Weight: b.Weight, Invalid: b.Target == nil}
		if total > 0 {
			bv.Share = 100 * float64(b.Weight) / float64(total)
		}
		if b.Target != nil {
			bv.Name, bv.Protocol = b.Target.Name, string(b.Target.Protocol)
			if b.Target.TLS != nil {
				bv.Protocol += "+TLS"
			}
			for _, e := range b.Target.Endpoints {
				bv.Endpoints = append(bv.Endpoints, e.Address)
			}
		} else {
			bv.Name = "(invalid reference)"
		}
		v.Backends = append(v.Backends, bv)
	}
	if v.Action == "forward" && total == 0 {
		v.Action = "500: no backend with weight"
	}
	return v
}
