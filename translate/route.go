package translate

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/meshgate/meshgate/ir"
)

// routeState is one route object of any kind, compiled independently of
// where it attaches: its rules and reference problems are the same for
// every parent.
type routeState struct {
	kind       string
	meta       *metav1.ObjectMeta
	parentRefs []gwapiv1.ParentReference
	key        nsName
	// hostnames are spec.hostnames; hostProblem is set when one is
	// invalid, which rejects the route. TCPRoutes and UDPRoutes have none.
	hostnames   []string
	hostProblem string
	rules       []*ruleResult
	// refs are unresolvable references (backendRefs, ExtensionRefs).
	refs []refProblem
}

// installed remembers which routes a ListenerHost already holds, so a route
// reaching one listener through two parentRefs is installed once.
type installKey struct {
	host  *ir.ListenerHost
	route nsName
	kind  string
}

func (t *translator) translateRoutes() {
	var routes []*routeState
	for _, r := range t.s.HTTPRoutes {
		if r != nil {
			routes = append(routes, t.compileHTTPRoute(r))
		}
	}
	for _, r := range t.s.GRPCRoutes {
		if r != nil {
			routes = append(routes, t.compileGRPCRoute(r))
		}
	}
	for _, r := range t.s.TCPRoutes {
		if r != nil {
			routes = append(routes, t.compileL4Route(kindTCPRoute, &r.ObjectMeta, r.Spec.CommonRouteSpec, nil, tcpRules(r.Spec.Rules)))
		}
	}
	for _, r := range t.s.TLSRoutes {
		if r != nil {
			routes = append(routes, t.compileL4Route(kindTLSRoute, &r.ObjectMeta, r.Spec.CommonRouteSpec, r.Spec.Hostnames, tlsRules(r.Spec.Rules)))
		}
	}
	for _, r := range t.s.UDPRoutes {
		if r != nil {
			routes = append(routes, t.compileL4Route(kindUDPRoute, &r.ObjectMeta, r.Spec.CommonRouteSpec, nil, udpRules(r.Spec.Rules)))
		}
	}
	// Rollouts rewrite their target rules before the rules attach.
	t.applyRollouts(routes)
	// Oldest first, then by namespace/name: where routes compete (an
	// HTTPRoute and a GRPCRoute for one hostname), the first one wins.
	sort.SliceStable(routes, func(i, j int) bool {
		a, b := routes[i], routes[j]
		if ta, tb := a.meta.CreationTimestamp, b.meta.CreationTimestamp; !ta.Equal(&tb) {
			return ta.Before(&tb)
		}
		if a.key.ns != b.key.ns {
			return a.key.ns < b.key.ns
		}
		if a.key.name != b.key.name {
			return a.key.name < b.key.name
		}
		return a.kind < b.kind
	})
	installed := map[installKey]bool{}
	// One status per route: grown once, not by doubling a large struct.
	t.statuses = slices.Grow(t.statuses, len(routes))
	for _, rs := range routes {
		st := ObjectStatus{Kind: rs.kind, Namespace: rs.key.ns, Name: rs.key.name}
		for j := range rs.parentRefs {
			pr := rs.parentRefs[j]
			group, kind := gatewayGroup, kindGateway
			if pr.Group != nil {
				group = string(*pr.Group)
			}
			if pr.Kind != nil {
				kind = string(*pr.Kind)
			}
			if group != gatewayGroup || (kind != kindGateway && kind != kindListenerSet) {
				// Services (mesh) and other parents are not ours.
				continue
			}
			ns := rs.key.ns
			if pr.Namespace != nil && *pr.Namespace != "" {
				ns = string(*pr.Namespace)
			}
			key := nsName{ns, string(pr.Name)}
			if kind == kindListenerSet {
				if t.foreignSets[key] {
					continue
				}
				st.Parents = append(st.Parents, t.attachRoute(rs, j, pr, kind, nil, t.setIndex[key], installed))
				continue
			}
			if t.foreignGWs[key] {
				continue
			}
			st.Parents = append(st.Parents, t.attachRoute(rs, j, pr, kind, t.gatewayIndex[key], nil, installed))
		}
		if len(st.Parents) == 0 {
			st.Accepted, st.Ignored = true, true
			st.Reason = "spec.parentRefs: no parentRef names a Gateway served by " + t.opts.ControllerName
			t.statuses = append(t.statuses, st)
			continue
		}
		st.Accepted, st.Reason = routeSummary(rs, st.Parents)
		t.statuses = append(t.statuses, st)
	}
}

// routeSummary condenses a route's parent statuses into Accepted and the
// first problem, in order: attachment, route validity, references.
func routeSummary(rs *routeState, parents []gwapiv1.RouteParentStatus) (bool, string) {
	var partial, refs string
	for _, p := range parents {
		for _, c := range p.Conditions {
			switch {
			case c.Type == string(gwapiv1.RouteConditionAccepted) && c.Status != metav1.ConditionTrue:
				return false, c.Message
			case c.Type == string(gwapiv1.RouteConditionPartiallyInvalid) && partial == "":
				partial = c.Message
			}
		}
	}
	if len(rs.refs) > 0 {
		refs = rs.refs[0].msg
	}
	for _, rr := range rs.rules {
		if !rr.valid() {
			return false, rr.problem
		}
	}
	if refs != "" {
		return false, refs
	}
	return partial == "", partial
}

func (t *translator) newRouteState(kind string, meta *metav1.ObjectMeta, common gwapiv1.CommonRouteSpec, hostnames []gwapiv1.Hostname) *routeState {
	rs := &routeState{kind: kind, meta: meta, parentRefs: common.ParentRefs, key: nsName{meta.Namespace, meta.Name}}
	for i, h := range hostnames {
		if err := checkHostname(string(h), true); err != nil {
			rs.hostProblem = fmt.Sprintf("spec.hostnames[%d]: %v", i, err)
			break
		}
		rs.hostnames = append(rs.hostnames, string(h))
	}
	return rs
}

func (t *translator) compileHTTPRoute(r *gwapiv1.HTTPRoute) *routeState {
	rs := t.newRouteState(kindHTTPRoute, &r.ObjectMeta, r.Spec.CommonRouteSpec, r.Spec.Hostnames)
	rules := r.Spec.Rules
	if len(rules) == 0 {
		// The API server defaults an empty rule list to one rule
		// matching everything, with no backend: a 500.
		rules = []gwapiv1.HTTPRouteRule{{}}
	}
	for i := range rules {
		rs.rules = append(rs.rules, t.compileRule(rs, i, &rules[i]))
	}
	return rs
}

// attachRoute attaches a route to the listeners one parentRef selects and
// returns the parent's status. The parent is a Gateway (gs, nil if it does
// not exist) or a ListenerSet (set, likewise); each has only its own
// listeners, so a route whose parent is a Gateway never reaches its
// ListenerSets' listeners (GEP-1713, "Gateway Parents and sectionName").
// Listeners are narrowed by sectionName and port, then by allowedRoutes
// (kind and namespace), then by hostname intersection; each step that
// leaves nothing has its own reason. Routes are installed on every selected
// listener that is programmed; the listener's attachedRoutes counts the
// route only when it is accepted.
func (t *translator) attachRoute(rs *routeState, j int, pr gwapiv1.ParentReference, parentKind string, gs *gatewayState, set *listenerSetState, installed map[installKey]bool) gwapiv1.RouteParentStatus {
	gen := rs.meta.Generation
	path := fmt.Sprintf("spec.parentRefs[%d]", j)
	ps := gwapiv1.RouteParentStatus{ParentRef: pr, ControllerName: gwapiv1.GatewayController(t.opts.ControllerName)}
	resolved := t.resolvedRefsCondition(rs, gen)
	reject := func(reason gwapiv1.RouteConditionReason, msg string) gwapiv1.RouteParentStatus {
		ps.Conditions = []metav1.Condition{
			condition(string(gwapiv1.RouteConditionAccepted), false, string(reason), path+": "+msg, gen),
			resolved,
		}
		return ps
	}
	ns := rs.key.ns
	if pr.Namespace != nil && *pr.Namespace != "" {
		ns = string(*pr.Namespace)
	}
	var listeners []*listenerState
	var parent string
	if parentKind == kindListenerSet {
		if set == nil {
			return reject(gwapiv1.RouteReasonNoMatchingParent, t.notFound(kindListenerSet, ns, string(pr.Name)))
		}
		if !set.attached() {
			return reject(gwapiv1.RouteReasonNoMatchingParent, fmt.Sprintf("ListenerSet %s is not attached to a Gateway: %s", set.key, set.problem))
		}
		gs, listeners, parent = set.gs, set.listeners, "ListenerSet "+set.key.String()
	} else {
		if gs == nil {
			return reject(gwapiv1.RouteReasonNoMatchingParent, t.notFound(kindGateway, ns, string(pr.Name)))
		}
		if !gs.accepted() {
			return reject(gwapiv1.RouteReasonNoMatchingParent, fmt.Sprintf("Gateway %s is not accepted: %s", gs.key, gs.problem))
		}
		listeners, parent = gs.listeners, "Gateway "+gs.key.String()
	}

	var candidates []*listenerState
	for _, ls := range listeners {
		if pr.SectionName != nil && *pr.SectionName != "" && ls.l.Name != *pr.SectionName {
			continue
		}
		if pr.Port != nil && ls.l.Port != *pr.Port {
			continue
		}
		candidates = append(candidates, ls)
	}
	if len(candidates) == 0 {
		var want []string
		if pr.SectionName != nil && *pr.SectionName != "" {
			want = append(want, fmt.Sprintf("named %q", *pr.SectionName))
		}
		if pr.Port != nil {
			want = append(want, fmt.Sprintf("on port %d", *pr.Port))
		}
		return reject(gwapiv1.RouteReasonNoMatchingParent, fmt.Sprintf("%s has no listener %s", parent, strings.Join(want, " and ")))
	}

	var allowed []*listenerState
	kindAllowed := false
	for _, ls := range candidates {
		kindAllowed = kindAllowed || ls.kinds[rs.kind]
		if ls.kinds[rs.kind] && t.allowsNamespace(ls, rs.key.ns) {
			allowed = append(allowed, ls)
		}
	}
	if !kindAllowed {
		return reject(gwapiv1.RouteReasonNotAllowedByListeners, fmt.Sprintf("no selected listener of %s accepts the %s kind (see their protocol and allowedRoutes.kinds)", parent, rs.kind))
	}
	if len(allowed) == 0 {
		return reject(gwapiv1.RouteReasonNotAllowedByListeners, fmt.Sprintf("no selected listener of %s allows routes from namespace %s (see allowedRoutes.namespaces)", parent, rs.key.ns))
	}
	if rs.hostProblem != "" {
		ps.Conditions = []metav1.Condition{
			condition(string(gwapiv1.RouteConditionAccepted), false, string(gwapiv1.RouteReasonUnsupportedValue), rs.hostProblem, gen),
			resolved,
		}
		return ps
	}

	type attachment struct {
		ls    *listenerState
		hosts []string
	}
	var attached []attachment
	for _, ls := range allowed {
		if hosts, ok := routeHostnames(ls.hostname, rs.hostnames); ok {
			attached = append(attached, attachment{ls, hosts})
		}
	}
	if len(attached) == 0 {
		return reject(gwapiv1.RouteReasonNoMatchingListenerHostname, fmt.Sprintf("no hostname of the route matches a hostname of the selected listeners of %s", parent))
	}
	if rs.kind == kindHTTPRoute || rs.kind == kindGRPCRoute {
		// An HTTPRoute and a GRPCRoute may not share a hostname on one
		// listener; routes come here oldest first, so the older one
		// keeps it (the spec's rule).
		var kept []attachment
		var clash string
		for _, a := range attached {
			if other := otherKindOverlap(a.ls, rs.kind, a.hosts); other != "" {
				clash = other
				continue
			}
			kept = append(kept, a)
		}
		if len(kept) == 0 {
			return reject(gwapiv1.RouteReasonNotAllowedByListeners, fmt.Sprintf("its hostnames overlap those of the older %s on the selected listeners of %s; an HTTPRoute and a GRPCRoute cannot share a hostname", clash, parent))
		}
		attached = kept
	}

	var valid int
	var problems []string
	for i, rr := range rs.rules {
		if rr.valid() {
			valid++
		} else {
			what := "answers 500"
			if rr.dropped {
				what = "is dropped"
			}
			problems = append(problems, fmt.Sprintf("%s (rule %d %s)", rr.problem, i, what))
		}
	}
	for _, a := range attached {
		if valid > 0 {
			a.ls.attached[rs.key] = true
			if rs.kind == kindHTTPRoute || rs.kind == kindGRPCRoute {
				if a.ls.httpLike == nil {
					a.ls.httpLike = map[string]*hostOverlap{}
				}
				if a.ls.httpLike[rs.kind] == nil {
					a.ls.httpLike[rs.kind] = &hostOverlap{}
				}
				a.ls.httpLike[rs.kind].add(installedRoute{rs.kind, rs.key, a.hosts})
			}
		}
		for _, h := range a.ls.hosts {
			k := installKey{h, rs.key, rs.kind}
			if installed[k] {
				continue
			}
			installed[k] = true
			for _, rr := range rs.rules {
				for _, r := range rr.routes {
					c := *r
					c.Hostnames = a.hosts
					t.applyPolicies(&c, gs, a.ls, rs)
					t.applySecurity(&c, rs)
					h.Routes = append(h.Routes, &c)
				}
				if rr.l4 != nil {
					c := *rr.l4
					c.Hostnames = a.hosts
					h.L4Routes = append(h.L4Routes, &c)
				}
			}
		}
	}

	if valid == 0 {
		first := rs.firstInvalid()
		ps.Conditions = []metav1.Condition{
			condition(string(gwapiv1.RouteConditionAccepted), false, first.reason, "No valid rule: "+strings.Join(problems, "; "), gen),
			resolved,
		}
		return ps
	}
	ps.Conditions = []metav1.Condition{
		condition(string(gwapiv1.RouteConditionAccepted), true, string(gwapiv1.RouteReasonAccepted), "Route is accepted", gen),
		resolved,
	}
	if len(problems) > 0 {
		ps.Conditions = append(ps.Conditions, condition(string(gwapiv1.RouteConditionPartiallyInvalid), true, string(gwapiv1.RouteReasonUnsupportedValue),
			"Dropped Rule(s): "+strings.Join(problems, "; "), gen))
	}
	return ps
}

func (rs *routeState) firstInvalid() *ruleResult {
	for _, rr := range rs.rules {
		if !rr.valid() {
			return rr
		}
	}
	return &ruleResult{}
}

func (t *translator) resolvedRefsCondition(rs *routeState, gen int64) metav1.Condition {
	if len(rs.refs) == 0 {
		return condition(string(gwapiv1.RouteConditionResolvedRefs), true, string(gwapiv1.RouteReasonResolvedRefs), "All references are resolved", gen)
	}
	msgs := make([]string, len(rs.refs))
	for i, r := range rs.refs {
		msgs[i] = r.msg
	}
	return condition(string(gwapiv1.RouteConditionResolvedRefs), false, rs.refs[0].reason, strings.Join(msgs, "; "), gen)
}

// otherKindOverlap names the installed route of the other kind (HTTPRoute
// vs GRPCRoute) whose hostnames on ls overlap hosts, or "" if none does.
func otherKindOverlap(ls *listenerState, kind string, hosts []string) string {
	other := kindHTTPRoute
	if kind == kindHTTPRoute {
		other = kindGRPCRoute
	}
	if ir, ok := ls.httpLike[other].first(hosts); ok {
		return ir.kind + " " + ir.key.String()
	}
	return ""
}
