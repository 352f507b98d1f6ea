package translate

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"

	mgv1alpha1 "github.com/meshgate/meshgate/api/v1alpha1"
	"github.com/meshgate/meshgate/ir"
)

// Policy attachment (GEP-713). A TrafficPolicy targets Gateways (or one of
// their listeners), routes (or one named rule), Services (or one named
// port) and Backends. Each section of the effective policy of a route rule
// and backend comes from the most specific policy that sets it; see
// mgv1alpha1.TrafficPolicy for the order.

// Specificity levels, least specific first.
const (
	levelGateway = iota
	levelListener
	levelRoute
	levelRule
	levelBackend
	levelBackendPort
	levels
)

// policyTarget identifies what a targetRef names, with its section.
type policyTarget struct {
	kind, ns, name, section string
}

// trafficPolicy is a validated TrafficPolicy, converted to ir pieces.
type trafficPolicy struct {
	p       *mgv1alpha1.TrafficPolicy
	id      string // "namespace/name"
	problem string // spec is invalid: not applied anywhere

	retry        *ir.Retry
	perTry       time.Duration
	request      time.Duration
	rateLimits   []*ir.RateLimit
	session      *ir.SessionPersistence
	lb           *ir.LoadBalancer
	health       *ir.HealthCheck
	panicPct     float64
	outlier      *ir.OutlierDetection
	breaker      *ir.CircuitBreaker
	connect      time.Duration
	idle         time.Duration
	routeLevel   bool // sets a route-level section
	backendLevel bool // sets a backend-level section

	// Per targetRef outcome, for status.
	found      []bool
	conflicted []string
	// used is set once the policy shaped some route or backend.
	used bool
}

// policyIndex holds the winning policy per target.
type policyIndex struct {
	byTarget map[policyTarget]*trafficPolicy
	all      []*trafficPolicy
}

// translatePolicies validates every TrafficPolicy and indexes the winners
// per target. It runs before routes attach, so attachRoute can apply them.
func (t *translator) translatePolicies() {
	t.policies = &policyIndex{byTarget: map[policyTarget]*trafficPolicy{}}
	ps := make([]*mgv1alpha1.TrafficPolicy, 0, len(t.s.TrafficPolicies))
	for _, p := range t.s.TrafficPolicies {
		if p != nil {
			ps = append(ps, p)
		}
	}
	sort.SliceStable(ps, func(i, j int) bool { return olderFirst(ps[i], ps[j]) })
	for _, p := range ps {
		tp := convertPolicy(p)
		t.policies.all = append(t.policies.all, tp)
		if tp.problem != "" {
			continue
		}
		tp.found = make([]bool, len(p.Spec.TargetRefs))
		tp.conflicted = make([]string, len(p.Spec.TargetRefs))
		for i, ref := range p.Spec.TargetRefs {
			pt := policyTarget{kind: string(ref.Kind), ns: p.Namespace, name: string(ref.Name)}
			if ref.SectionName != nil {
				pt.section = string(*ref.SectionName)
			}
			if !t.policyTargetExists(string(ref.Group), pt) {
				continue
			}
			tp.found[i] = true
			if prev := t.policies.byTarget[pt]; prev != nil {
				tp.conflicted[i] = prev.id
				continue
			}
			t.policies.byTarget[pt] = tp
		}
	}
}

// policyTargetExists reports whether the target (and its section) exists.
func (t *translator) policyTargetExists(group string, pt policyTarget) bool {
	key := nsName{pt.ns, pt.name}
	switch {
	case group == gatewayGroup && pt.kind == kindGateway:
		gs := t.gatewayIndex[key]
		if gs == nil {
			return false
		}
		if pt.section == "" {
			return true
		}
		for _, ls := range gs.listeners {
			if string(ls.l.Name) == pt.section {
				return true
			}
		}
	case group == gatewayGroup && pt.kind == kindHTTPRoute:
		if r := t.httpRoutes[key]; r != nil {
			return pt.section == "" || hasRuleName(len(r.Spec.Rules), func(i int) *gwapiv1.SectionName { return r.Spec.Rules[i].Name }, pt.section)
		}
	case group == gatewayGroup && pt.kind == kindGRPCRoute:
		if r := t.grpcRoutes[key]; r != nil {
			return pt.section == "" || hasRuleName(len(r.Spec.Rules), func(i int) *gwapiv1.SectionName { return r.Spec.Rules[i].Name }, pt.section)
		}
	case group == "" && pt.kind == kindService:
		svc := t.services[key]
		if svc == nil {
			return false
		}
		if pt.section == "" {
			return true
		}
		for _, p := range svc.Spec.Ports {
			if p.Name == pt.section {
				return true
			}
		}
	case group == mgv1alpha1.GroupName && pt.kind == kindBackend:
		return t.backends[key] != nil && pt.section == ""
	}
	return false
}

func hasRuleName(n int, name func(int) *gwapiv1.SectionName, want string) bool {
	for i := 0; i < n; i++ {
		if s := name(i); s != nil && string(*s) == want {
			return true
		}
	}
	return false
}

// policyStatuses reports every TrafficPolicy: Accepted when it applies to at
// least one target, otherwise why not (Invalid, TargetNotFound, Conflicted).
func (t *translator) policyStatuses() {
	for _, tp := range t.policies.all {
		t.statuses = append(t.statuses, attachedPolicyStatus(mgv1alpha1.KindTrafficPolicy, &tp.p.ObjectMeta, tp.p.Spec.TargetRefs, tp.problem, tp.found, tp.conflicted))
	}
}

// attachedPolicyStatus is the status of a policy attached by targetRefs
// (TrafficPolicy, SecurityPolicy): problem makes it Invalid; otherwise
// found[i] and conflicted[i] (the winning policy's name) say what became of
// each targetRef.
func attachedPolicyStatus(kind string, meta *metav1.ObjectMeta, refs []gwapiv1.LocalPolicyTargetReferenceWithSectionName, problem string, found []bool, conflicted []string) ObjectStatus {
	st := ObjectStatus{Kind: kind, Namespace: meta.Namespace, Name: meta.Name}
	reason, msg := string(gwapiv1.PolicyReasonAccepted), "Policy is accepted"
	if problem != "" {
		reason, msg = string(gwapiv1.PolicyReasonInvalid), problem
	} else {
		var notes []string
		applied := 0
		for i, ref := range refs {
			path := fmt.Sprintf("spec.targetRefs[%d]", i)
			what := groupKind(string(ref.Group), string(ref.Kind)) + " " + meta.Namespace + "/" + string(ref.Name)
			if ref.SectionName != nil {
				what += " section " + string(*ref.SectionName)
			}
			switch {
			case !found[i]:
				notes = append(notes, path+": "+what+" not found")
			case conflicted[i] != "":
				notes = append(notes, fmt.Sprintf("%s: %s %s already targets %s and wins, being older", path, kind, conflicted[i], what))
			default:
				applied++
			}
		}
		switch {
		case applied > 0 && len(notes) > 0:
			msg = "Policy is accepted for some targets; " + strings.Join(notes, "; ")
		case applied == 0 && allFalse(found):
			reason, msg = string(gwapiv1.PolicyReasonTargetNotFound), strings.Join(notes, "; ")
		case applied == 0:
			reason, msg = string(gwapiv1.PolicyReasonConflicted), strings.Join(notes, "; ")
		}
	}
	st.Accepted = reason == string(gwapiv1.PolicyReasonAccepted)
	if !st.Accepted {
		st.Reason = msg
	}
	st.Conditions = []metav1.Condition{condition(string(gwapiv1.PolicyConditionAccepted), st.Accepted, reason, msg, meta.Generation)}
	return st
}

func allFalse(bs []bool) bool {
	for _, b := range bs {
		if b {
			return false
		}
	}
	return true
}

// routePolicies returns, least specific first, the policies applying to a
// rule of route rs attached through listener ls of gateway gs.
func (t *translator) routePolicies(gs *gatewayState, ls *listenerState, rs *routeState, ruleName string) [levelRule + 1]*trafficPolicy {
	var out [levelRule + 1]*trafficPolicy
	if t.policies == nil {
		return out
	}
	g := t.policies.byTarget
	out[levelGateway] = g[policyTarget{kindGateway, gs.key.ns, gs.key.name, ""}]
	if ls.set == nil {
		// A Gateway sectionName names one of its own listeners; a
		// ListenerSet's listeners inherit only Gateway-wide policies.
		out[levelListener] = g[policyTarget{kindGateway, gs.key.ns, gs.key.name, string(ls.l.Name)}]
	}
	out[levelRoute] = g[policyTarget{rs.kind, rs.key.ns, rs.key.name, ""}]
	if ruleName != "" {
		out[levelRule] = g[policyTarget{rs.kind, rs.key.ns, rs.key.name, ruleName}]
	}
	return out
}

// applyPolicies fills the route-level sections of r, a copy of a compiled
// rule attached through ls, and replaces its backends by ones carrying the
// backend-level sections. The rule's own settings (timeouts, retry,
// sessionPersistence) win over any policy.
func (t *translator) applyPolicies(r *ir.Route, gs *gatewayState, ls *listenerState, rs *routeState) {
	if t.policies == nil || len(t.policies.byTarget) == 0 || r.DirectResponse != nil {
		return
	}
	chain := t.routePolicies(gs, ls, rs, r.RuleName)
	var used []string
	use := func(tp *trafficPolicy) {
		tp.used = true
		for _, u := range used {
			if u == tp.id {
				return
			}
		}
		used = append(used, tp.id)
	}
	// Most specific first for route-level sections.
	for i := len(chain) - 1; i >= 0; i-- {
		tp := chain[i]
		if tp == nil {
			continue
		}
		if tp.retry != nil && r.Retry == nil {
			c := *tp.retry
			r.Retry = &c
			use(tp)
			if tp.perTry > 0 && r.Timeouts.BackendRequest == 0 {
				r.Timeouts.BackendRequest = tp.perTry
			}
		}
		if tp.request != 0 && r.Timeouts.Request == 0 {
			r.Timeouts.Request = tp.request
			use(tp)
		}
		if tp.rateLimits != nil && r.RateLimits == nil {
			r.RateLimits = tp.rateLimits
			use(tp)
		}
		if tp.session != nil && r.SessionPersistence == nil {
			r.SessionPersistence = tp.session
			use(tp)
		}
	}
	if len(r.Backends) > 0 {
		bs := make([]ir.WeightedBackend, len(r.Backends))
		copy(bs, r.Backends)
		for i := range bs {
			if bs[i].Target != nil {
				bs[i].Target = t.policyBackend(bs[i].Target, chain, use)
			}
		}
		r.Backends = bs
	}
	sort.Strings(used)
	r.Policies = used
}

// policyBackend returns b with the backend-level sections of the policies
// that apply to it. A backend shaped by policies gets its own name
// ("<name>~<policies>"), so routes with different policies keep separate
// runtime state (health, ejections, breaker counts), while every route with
// the same effective policies shares one.
func (t *translator) policyBackend(b *ir.Backend, chain [levelRule + 1]*trafficPolicy, use func(*trafficPolicy)) *ir.Backend {
	var full [levels]*trafficPolicy
	copy(full[:], chain[:])
	if o, ok := t.backendOrigin[b.Name]; ok {
		g := t.policies.byTarget
		full[levelBackend] = g[policyTarget{o.kind, o.ns, o.name, ""}]
		if o.portName != "" {
			full[levelBackendPort] = g[policyTarget{o.kind, o.ns, o.name, o.portName}]
		}
	}
	c := *b
	var ids []string
	for i := levels - 1; i >= 0; i-- {
		tp := full[i]
		if tp == nil || !tp.backendLevel {
			continue
		}
		before := len(ids)
		take := func(set bool) {
			if set && len(ids) == before {
				ids = append(ids, tp.id)
				use(tp)
			}
		}
		if tp.lb != nil && c.LoadBalancer == nil {
			c.LoadBalancer = tp.lb
			take(true)
		}
		if tp.health != nil && c.HealthCheck == nil {
			c.HealthCheck = tp.health
			c.PanicThreshold = tp.panicPct
			take(true)
		}
		if tp.outlier != nil && c.Outlier == nil {
			c.Outlier = tp.outlier
			take(true)
		}
		if tp.breaker != nil && c.CircuitBreaker == nil {
			c.CircuitBreaker = tp.breaker
			take(true)
		}
		if tp.connect != 0 && c.ConnectTimeout == 0 {
			c.ConnectTimeout = tp.connect
			take(true)
		}
		if tp.idle != 0 && c.IdleTimeout == 0 {
			c.IdleTimeout = tp.idle
			take(true)
		}
	}
	if len(ids) == 0 {
		return b
	}
	sort.Strings(ids)
	c.Name = b.Name + "~" + strings.Join(ids, "+")
	key := c.Name + "|" + string(c.Protocol)
	if shared := t.irBackends[key]; shared != nil {
		return shared
	}
	t.irBackends[key] = &c
	return &c
}

// backendOrigin is the object a backend name was made from, so policies
// targeting that object (or one of its ports) can find it.
type backendOrigin struct {
	kind, ns, name, portName string
}

// convertPolicy validates a TrafficPolicy and converts its sections. The
// CRD (and the files loader applying the same schema) catch most mistakes;
// this is the check that holds whatever the source.
func convertPolicy(p *mgv1alpha1.TrafficPolicy) *trafficPolicy {
	tp := &trafficPolicy{p: p, id: p.Namespace + "/" + p.Name}
	fail := func(format string, args ...any) *trafficPolicy {
		tp.problem = fmt.Sprintf(format, args...)
		return tp
	}
	s := &p.Spec
	if len(s.TargetRefs) == 0 {
		return fail("spec.targetRefs: at least one target is required")
	}
	for i, ref := range s.TargetRefs {
		g, k := string(ref.Group), string(ref.Kind)
		ok := (g == gatewayGroup && (k == kindGateway || k == kindHTTPRoute || k == kindGRPCRoute)) ||
			(g == "" && k == kindService) || (g == mgv1alpha1.GroupName && k == kindBackend)
		if !ok {
			return fail("spec.targetRefs[%d]: %s is not a kind a TrafficPolicy can target (Gateway, HTTPRoute, GRPCRoute, Service, Backend)", i, groupKind(g, k))
		}
	}
	dur := func(path string, d *gwapiv1.Duration) (time.Duration, string) {
		if d == nil {
			return 0, ""
		}
		v, err := parseDuration(*d)
		if err != nil {
			return 0, path + ": " + err.Error()
		}
		if v == TimeoutDisabled {
			return 0, path + ": must be greater than zero"
		}
		return v, ""
	}
	var problem string
	if r := s.Retry; r != nil {
		tp.retry, tp.perTry, problem = convertRetry(r, dur)
		if problem != "" {
			return fail("%s", problem)
		}
		tp.routeLevel = true
	}
	if to := s.Timeouts; to != nil {
		if to.Request != nil {
			v, err := parseDuration(*to.Request)
			if err != nil {
				return fail("spec.timeouts.request: %v", err)
			}
			tp.request = v
			tp.routeLevel = true
		}
		if tp.connect, problem = dur("spec.timeouts.connect", to.Connect); problem != "" {
			return fail("%s", problem)
		}
		if tp.idle, problem = dur("spec.timeouts.idle", to.Idle); problem != "" {
			return fail("%s", problem)
		}
		tp.backendLevel = tp.backendLevel || tp.connect > 0 || tp.idle > 0
	}
	if rl := s.RateLimit; rl != nil {
		if tp.rateLimits, problem = convertRateLimits(tp.id, rl); problem != "" {
			return fail("%s", problem)
		}
		tp.routeLevel = true
	}
	if sp := s.SessionPersistence; sp != nil {
		v, err := sessionPersistence(sp)
		if err != nil {
			return fail("spec.sessionPersistence.%v", err)
		}
		tp.session = v
		tp.routeLevel = true
	}
	if lb := s.LoadBalancer; lb != nil {
		out := &ir.LoadBalancer{Type: ir.LoadBalancerType(lb.Type)}
		switch out.Type {
		case ir.LBRoundRobin, ir.LBLeastRequest, ir.LBRandom:
			if lb.ConsistentHash != nil {
				return fail("spec.loadBalancer.consistentHash: only allowed with RingHash and Maglev")
			}
		case ir.LBRingHash, ir.LBMaglev:
			ch := lb.ConsistentHash
			if ch == nil {
				return fail("spec.loadBalancer.consistentHash: required for %s", lb.Type)
			}
			out.HashOn = ir.HashOnType(ch.Type)
			switch out.HashOn {
			case ir.HashHeader, ir.HashCookie:
				if ch.Name == nil || *ch.Name == "" {
					return fail("spec.loadBalancer.consistentHash.name: required for type %s", ch.Type)
				}
				out.HashName = *ch.Name
				if out.HashOn == ir.HashHeader && !tokenRE.MatchString(out.HashName) {
					return fail("spec.loadBalancer.consistentHash.name: %q is not a valid header name", out.HashName)
				}
			case ir.HashSourceIP:
				if ch.Name != nil {
					return fail("spec.loadBalancer.consistentHash.name: not allowed for type SourceIP")
				}
			default:
				return fail("spec.loadBalancer.consistentHash.type: %q is not Header, Cookie or SourceIP", ch.Type)
			}
		default:
			return fail("spec.loadBalancer.type: %q is not RoundRobin, LeastRequest, Random, RingHash or Maglev", lb.Type)
		}
		if out.SlowStart, problem = dur("spec.loadBalancer.slowStartWindow", lb.SlowStartWindow); problem != "" {
			return fail("%s", problem)
		}
		tp.lb = out
		tp.backendLevel = true
	}
	if hc := s.HealthCheck; hc != nil {
		if tp.health, tp.panicPct, problem = convertHealthCheck(hc, dur); problem != "" {
			return fail("%s", problem)
		}
		tp.backendLevel = true
	}
	if od := s.OutlierDetection; od != nil {
		out := &ir.OutlierDetection{
			Consecutive5xx:     int(deref(od.Consecutive5xx, 5)),
			MaxEjectionPercent: float64(deref(od.MaxEjectionPercent, 50)),
		}
		out.ConsecutiveGatewayErrors = int(deref(od.ConsecutiveGatewayErrors, 0))
		if out.Consecutive5xx < 0 || out.ConsecutiveGatewayErrors < 0 {
			return fail("spec.outlierDetection: thresholds must not be negative")
		}
		if out.MaxEjectionPercent < 0 || out.MaxEjectionPercent > 100 {
			return fail("spec.outlierDetection.maxEjectionPercent: %v is out of range 0-100", out.MaxEjectionPercent)
		}
		if out.BaseEjectionTime, problem = dur("spec.outlierDetection.baseEjectionTime", od.BaseEjectionTime); problem != "" {
			return fail("%s", problem)
		}
		if out.MaxEjectionTime, problem = dur("spec.outlierDetection.maxEjectionTime", od.MaxEjectionTime); problem != "" {
			return fail("%s", problem)
		}
		if out.BaseEjectionTime == 0 {
			out.BaseEjectionTime = 30 * time.Second
		}
		if out.MaxEjectionTime == 0 {
			out.MaxEjectionTime = 300 * time.Second
		}
		if out.MaxEjectionTime < out.BaseEjectionTime {
			return fail("spec.outlierDetection.maxEjectionTime: shorter than baseEjectionTime")
		}
		tp.outlier = out
		tp.backendLevel = true
	}
	if cb := s.CircuitBreaker; cb != nil {
		out := &ir.CircuitBreaker{
			MaxConnections:     int(deref(cb.MaxConnections, 0)),
			MaxPendingRequests: int(deref(cb.MaxPendingRequests, 0)),
			MaxRequests:        int(deref(cb.MaxRequests, 0)),
			MaxRetries:         int(deref(cb.MaxRetries, 0)),
		}
		if out.MaxConnections < 0 || out.MaxPendingRequests < 0 || out.MaxRequests < 0 || out.MaxRetries < 0 {
			return fail("spec.circuitBreaker: limits must not be negative")
		}
		if cb.MaxRetries != nil && *cb.MaxRetries == 0 {
			// Zero retries in flight is a real setting (no retries),
			// not "no cap"; -1 carries it to the data plane.
			out.MaxRetries = -1
		}
		tp.breaker = out
		tp.backendLevel = true
	}
	if !tp.routeLevel && !tp.backendLevel {
		return fail("spec: a TrafficPolicy must set at least one section")
	}
	return tp
}

func deref[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}

// grpcCodes maps gRPC status names, as written in policies, to codes.
var grpcCodes = map[string]int{
	"Cancelled": 1, "Unknown": 2, "InvalidArgument": 3, "DeadlineExceeded": 4, "NotFound": 5,
	"AlreadyExists": 6, "PermissionDenied": 7, "ResourceExhausted": 8, "FailedPrecondition": 9,
	"Aborted": 10, "OutOfRange": 11, "Unimplemented": 12, "Internal": 13, "Unavailable": 14,
	"DataLoss": 15, "Unauthenticated": 16,
}

// Retry defaults: Envoy's backoff, and a budget of 20% of requests in flight
// with at least 3 concurrent retries.
const (
	defaultRetryAttempts = 2
	defaultBudgetPercent = 20
	defaultMinRetries    = 3
	defaultBackoffBase   = 25 * time.Millisecond
)

func convertRetry(r *mgv1alpha1.Retry, dur func(string, *gwapiv1.Duration) (time.Duration, string)) (*ir.Retry, time.Duration, string) {
	out := &ir.Retry{
		Attempts:            int(deref(r.Attempts, defaultRetryAttempts)),
		NonIdempotent:       r.AllowNonIdempotent,
		BudgetPercent:       defaultBudgetPercent,
		MinRetryConcurrency: defaultMinRetries,
	}
	if out.Attempts < 0 || out.Attempts > 10 {
		return nil, 0, fmt.Sprintf("spec.retry.attempts: %d is out of range 0-10", out.Attempts)
	}
	on := r.RetryOn
	if len(on) == 0 {
		on = []mgv1alpha1.RetryOn{"connect-failure", "reset", "gateway-error"}
	}
	codes := map[int]bool{}
	for i, o := range on {
		switch o {
		case "connect-failure":
			out.ConnectFailure = true
		case "reset":
			out.Reset = true
		case "timeout":
			out.Timeout = true
		case "5xx":
			for c := 500; c <= 599; c++ {
				codes[c] = true
			}
		case "gateway-error":
			codes[502], codes[503], codes[504] = true, true, true
		case "retriable-status-codes":
			if len(r.StatusCodes) == 0 {
				return nil, 0, fmt.Sprintf("spec.retry.retryOn[%d]: retriable-status-codes needs statusCodes", i)
			}
		default:
			return nil, 0, fmt.Sprintf("spec.retry.retryOn[%d]: %q is not connect-failure, reset, timeout, 5xx, gateway-error or retriable-status-codes", i, o)
		}
	}
	for i, c := range r.StatusCodes {
		if c < 400 || c > 599 {
			return nil, 0, fmt.Sprintf("spec.retry.statusCodes[%d]: %d is not a 4xx or 5xx status", i, c)
		}
		codes[int(c)] = true
	}
	for c := range codes {
		out.Codes = append(out.Codes, c)
	}
	sort.Ints(out.Codes)
	for i, name := range r.GRPCCodes {
		c, ok := grpcCodes[name]
		if !ok {
			return nil, 0, fmt.Sprintf("spec.retry.grpcCodes[%d]: %q is not a gRPC status name", i, name)
		}
		out.GRPCCodes = append(out.GRPCCodes, c)
	}
	sort.Ints(out.GRPCCodes)
	perTry, problem := dur("spec.retry.perTryTimeout", r.PerTryTimeout)
	if problem != "" {
		return nil, 0, problem
	}
	out.BackoffBase = defaultBackoffBase
	if b := r.Backoff; b != nil {
		if v, problem := dur("spec.retry.backoff.baseInterval", b.BaseInterval); problem != "" {
			return nil, 0, problem
		} else if v > 0 {
			out.BackoffBase = v
		}
		if out.BackoffMax, problem = dur("spec.retry.backoff.maxInterval", b.MaxInterval); problem != "" {
			return nil, 0, problem
		}
	}
	if out.BackoffMax == 0 {
		out.BackoffMax = 10 * out.BackoffBase
	}
	if out.BackoffMax < out.BackoffBase {
		return nil, 0, "spec.retry.backoff: baseInterval must not exceed maxInterval"
	}
	if b := r.Budget; b != nil {
		out.BudgetPercent = float64(deref(b.Percent, defaultBudgetPercent))
		out.MinRetryConcurrency = int(deref(b.MinRetryConcurrency, defaultMinRetries))
		if out.BudgetPercent < 0 || out.BudgetPercent > 100 || out.MinRetryConcurrency < 0 {
			return nil, 0, "spec.retry.budget: percent must be 0-100 and minRetryConcurrency not negative"
		}
	}
	return out, perTry, ""
}

// httpRouteRetry converts a rule's Gateway API retry (GEP-1731): the listed
// codes, plus connection errors (connect failures, resets and attempts that
// hit the backendRequest timeout), which the spec says implementations
// SHOULD retry. Its backoff is a minimum wait, with jitter above it.
func httpRouteRetry(r *gwapiv1.HTTPRouteRetry) (*ir.Retry, error) {
	out := &ir.Retry{
		Attempts:            defaultRetryAttempts,
		ConnectFailure:      true,
		Reset:               true,
		Timeout:             true,
		BackoffBase:         defaultBackoffBase,
		BudgetPercent:       defaultBudgetPercent,
		MinRetryConcurrency: defaultMinRetries,
	}
	if r.Attempts != nil {
		if *r.Attempts < 0 || *r.Attempts > 10 {
			return nil, fmt.Errorf("attempts: %d is out of range 0-10", *r.Attempts)
		}
		out.Attempts = *r.Attempts
	}
	for i, c := range r.Codes {
		if c < 400 || c > 599 {
			return nil, fmt.Errorf("codes[%d]: %d is not a 4xx or 5xx status", i, c)
		}
		out.Codes = append(out.Codes, int(c))
	}
	sort.Ints(out.Codes)
	if r.Backoff != nil {
		v, err := parseDuration(*r.Backoff)
		if err != nil {
			return nil, fmt.Errorf("backoff: %v", err)
		}
		if v > 0 {
			out.BackoffBase, out.BackoffMin = v, v
		} else {
			out.BackoffBase = 0
		}
	}
	out.BackoffMax = 10 * out.BackoffBase
	return out, nil
}

// sessionPersistence converts Gateway API sessionPersistence. Errors start
// with the field name.
func sessionPersistence(sp *gwapiv1.SessionPersistence) (*ir.SessionPersistence, error) {
	out := &ir.SessionPersistence{Type: ir.SessionCookie, Name: "meshgate-session"}
	if sp.Type != nil {
		out.Type = ir.SessionPersistenceType(*sp.Type)
	}
	switch out.Type {
	case ir.SessionCookie, ir.SessionHeader:
	default:
		return nil, fmt.Errorf("type: %q is not Cookie or Header", out.Type)
	}
	if sp.SessionName != nil && *sp.SessionName != "" {
		out.Name = *sp.SessionName
		if !tokenRE.MatchString(out.Name) {
			return nil, fmt.Errorf("sessionName: %q is not a valid cookie or header name", out.Name)
		}
	} else if out.Type == ir.SessionHeader {
		out.Name = "x-meshgate-session"
	}
	if sp.AbsoluteTimeout != nil {
		v, err := parseDuration(*sp.AbsoluteTimeout)
		if err != nil {
			return nil, fmt.Errorf("absoluteTimeout: %v", err)
		}
		if v > 0 {
			out.AbsoluteTimeout = v
		}
	}
	if cc := sp.CookieConfig; cc != nil && cc.LifetimeType != nil {
		switch *cc.LifetimeType {
		case gwapiv1.PermanentCookieLifetimeType:
			if out.AbsoluteTimeout == 0 {
				return nil, fmt.Errorf("cookieConfig.lifetimeType: Permanent needs absoluteTimeout")
			}
			out.Permanent = true
		case gwapiv1.SessionCookieLifetimeType:
		default:
			return nil, fmt.Errorf("cookieConfig.lifetimeType: %q is not Permanent or Session", *cc.LifetimeType)
		}
	}
	return out, nil
}

// convertRateLimits converts local and global rules; each gets a name that
// is stable across reloads so counts survive them.
func convertRateLimits(id string, rl *mgv1alpha1.RateLimit) ([]*ir.RateLimit, string) {
	var out []*ir.RateLimit
	conv := func(kind string, rules []mgv1alpha1.RateLimitRule, global bool) string {
		for i, r := range rules {
			path := fmt.Sprintf("spec.rateLimit.%s[%d]", kind, i)
			o := &ir.RateLimit{
				Name:     fmt.Sprintf("%s/%s/%d", id, kind, i),
				Key:      ir.RateLimitKeyType(r.Key),
				Global:   global,
				FailOpen: global && rl.FailOpen,
			}
			switch o.Key {
			case ir.RateLimitRoute, ir.RateLimitClientIP, ir.RateLimitIdentity:
				if r.Header != nil {
					return path + ".header: only allowed with key Header"
				}
			case ir.RateLimitHeader:
				if r.Header == nil || !tokenRE.MatchString(*r.Header) {
					return path + ".header: a valid header name is required with key Header"
				}
				o.Header = *r.Header
			default:
				return fmt.Sprintf("%s.key: %q is not Route, ClientIP, Header or Identity", path, r.Key)
			}
			if r.Requests < 1 {
				return path + ".requests: must be at least 1"
			}
			o.Requests = uint32(r.Requests)
			switch r.Unit {
			case "Second":
				o.Period = time.Second
			case "Minute":
				o.Period = time.Minute
			case "Hour":
				o.Period = time.Hour
			default:
				return fmt.Sprintf("%s.unit: %q is not Second, Minute or Hour", path, r.Unit)
			}
			if r.Burst != nil {
				if *r.Burst < 1 {
					return path + ".burst: must be at least 1"
				}
				o.Burst = uint32(*r.Burst)
			}
			out = append(out, o)
		}
		return ""
	}
	if p := conv("local", rl.Local, false); p != "" {
		return nil, p
	}
	if p := conv("global", rl.Global, true); p != "" {
		return nil, p
	}
	if len(out) == 0 {
		return nil, "spec.rateLimit: set local or global rules"
	}
	return out, ""
}

func convertHealthCheck(hc *mgv1alpha1.HealthCheck, dur func(string, *gwapiv1.Duration) (time.Duration, string)) (*ir.HealthCheck, float64, string) {
	out := &ir.HealthCheck{
		Type:               ir.HealthCheckType(hc.Type),
		Interval:           5 * time.Second,
		Timeout:            time.Second,
		HealthyThreshold:   int(deref(hc.HealthyThreshold, 1)),
		UnhealthyThreshold: int(deref(hc.UnhealthyThreshold, 3)),
	}
	switch out.Type {
	case ir.HealthHTTP, ir.HealthTCP, ir.HealthGRPC:
	default:
		return nil, 0, fmt.Sprintf("spec.healthCheck.type: %q is not HTTP, TCP or GRPC", hc.Type)
	}
	if hc.HTTP != nil && out.Type != ir.HealthHTTP {
		return nil, 0, "spec.healthCheck.http: only allowed with type HTTP"
	}
	if hc.GRPC != nil && out.Type != ir.HealthGRPC {
		return nil, 0, "spec.healthCheck.grpc: only allowed with type GRPC"
	}
	if v, p := dur("spec.healthCheck.interval", hc.Interval); p != "" {
		return nil, 0, p
	} else if v > 0 {
		out.Interval = v
	}
	if v, p := dur("spec.healthCheck.timeout", hc.Timeout); p != "" {
		return nil, 0, p
	} else if v > 0 {
		out.Timeout = v
	}
	if out.HealthyThreshold < 1 || out.UnhealthyThreshold < 1 {
		return nil, 0, "spec.healthCheck: thresholds must be at least 1"
	}
	if h := hc.HTTP; h != nil {
		out.Path, out.Host = h.Path, h.Host
		if out.Path != "" && !strings.HasPrefix(out.Path, "/") {
			return nil, 0, fmt.Sprintf("spec.healthCheck.http.path: %q must start with /", out.Path)
		}
		if strings.ContainsAny(out.Path+out.Host, " \t\r\n") {
			return nil, 0, "spec.healthCheck.http: path and host must not contain spaces or line breaks"
		}
		for i, s := range h.ExpectedStatuses {
			if s < 100 || s > 599 {
				return nil, 0, fmt.Sprintf("spec.healthCheck.http.expectedStatuses[%d]: %d is not an HTTP status", i, s)
			}
			out.ExpectedStatuses = append(out.ExpectedStatuses, int(s))
		}
	}
	if out.Type == ir.HealthHTTP && out.Path == "" {
		out.Path = "/"
	}
	if g := hc.GRPC; g != nil {
		out.GRPCService = g.Service
	}
	pct := float64(deref(hc.PanicThreshold, 0))
	if pct < 0 || pct > 100 {
		return nil, 0, "spec.healthCheck.panicThreshold: out of range 0-100"
	}
	return out, pct, ""
}

// faultInjection is a validated FaultInjection.
type faultInjection struct {
	fault   *ir.Fault
	problem string
}

// translateFaults validates every FaultInjection and reports its status.
func (t *translator) translateFaults() {
	t.faults = map[nsName]*faultInjection{}
	for _, f := range t.s.FaultInjections {
		if f == nil {
			continue
		}
		fi := &faultInjection{}
		fi.fault, fi.problem = convertFault(f)
		t.faults[nsName{f.Namespace, f.Name}] = fi
		st := ObjectStatus{Kind: mgv1alpha1.KindFaultInjection, Namespace: f.Namespace, Name: f.Name, Accepted: fi.problem == ""}
		if fi.problem != "" {
			st.Reason = fi.problem
			st.Conditions = []metav1.Condition{condition("Accepted", false, "Invalid", fi.problem, f.Generation)}
		} else {
			st.Conditions = []metav1.Condition{condition("Accepted", true, "Accepted", "FaultInjection is valid", f.Generation)}
		}
		t.statuses = append(t.statuses, st)
	}
}

func convertFault(f *mgv1alpha1.FaultInjection) (*ir.Fault, string) {
	out := &ir.Fault{Name: f.Namespace + "/" + f.Name}
	s := &f.Spec
	if s.Delay == nil && s.Abort == nil {
		return nil, "spec: set delay, abort or both"
	}
	for i, h := range s.Headers {
		var typ *string
		if h.Type != nil {
			v := string(*h.Type)
			typ = &v
		}
		m, err := stringMatch(string(h.Name), typ, h.Value)
		if err != nil {
			return nil, fmt.Sprintf("spec.headers[%d].%v", i, err)
		}
		out.Headers = append(out.Headers, m)
	}
	if d := s.Delay; d != nil {
		v, err := parseDuration(d.Duration)
		if err != nil || v <= 0 {
			return nil, fmt.Sprintf("spec.delay.duration: %q is not a positive Gateway API duration", d.Duration)
		}
		pct, err := percentage(d.Percentage)
		if err != nil {
			return nil, "spec.delay.percentage: " + err.Error()
		}
		out.Delay = &ir.FaultDelay{Duration: v, Percent: pct}
	}
	if a := s.Abort; a != nil {
		if a.HTTPStatus == nil && a.GRPCStatus == nil {
			return nil, "spec.abort: set httpStatus, grpcStatus or both"
		}
		pct, err := percentage(a.Percentage)
		if err != nil {
			return nil, "spec.abort.percentage: " + err.Error()
		}
		// Without httpStatus, plain HTTP requests get the HTTP twin of
		// grpcStatus (filters.CompileFault maps it).
		fa := &ir.FaultAbort{Percent: pct}
		if a.HTTPStatus != nil {
			if *a.HTTPStatus < 200 || *a.HTTPStatus > 599 {
				return nil, fmt.Sprintf("spec.abort.httpStatus: %d is not an HTTP status 200-599", *a.HTTPStatus)
			}
			fa.HTTPStatus = int(*a.HTTPStatus)
		}
		if a.GRPCStatus != nil {
			c, ok := grpcCodes[*a.GRPCStatus]
			if !ok {
				return nil, fmt.Sprintf("spec.abort.grpcStatus: %q is not a gRPC status name", *a.GRPCStatus)
			}
			fa.GRPCStatus = &c
		}
		out.Abort = fa
	}
	return out, ""
}

// percentage parses "0" to "100" with an optional fraction.
func percentage(s string) (float64, error) {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || strings.ContainsAny(s, "eE+-xXpPnN_") || v < 0 || v > 100 {
		return 0, fmt.Errorf("%q is not a number from 0 to 100", s)
	}
	return v, nil
}
