package translate

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"sort"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"

	mgv1alpha1 "github.com/meshgate/meshgate/api/v1alpha1"
	"github.com/meshgate/meshgate/config"
	"github.com/meshgate/meshgate/ir"
)

// Rollouts (progressive delivery). A Rollout rewrites the weights of the
// stable and canary backendRefs of one route rule. The translator stays
// pure: the canary weight comes from the Rollout object itself (RolloutWeight:
// spec controls, then status), which the rollout engine keeps current (in a
// cluster through status, with --config by overlaying its state file).

// RolloutIdentity fingerprints what a rollout's progress belongs to: the
// target rule, the two backends and the revision. When a Rollout's
// status.identity differs, its progress is stale and it starts over.
func RolloutIdentity(spec *mgv1alpha1.RolloutSpec) string {
	h := sha256.New()
	rule := ""
	if spec.TargetRef.RuleName != nil {
		rule = string(*spec.TargetRef.RuleName)
	}
	port := func(p *int32) int32 {
		if p == nil {
			return 0
		}
		return *p
	}
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00%s\x00%d\x00%s\x00%d\x00%s", spec.TargetRef.Kind, spec.TargetRef.Name, rule,
		spec.StableBackend.Name, port(spec.StableBackend.Port), spec.CanaryBackend.Name, port(spec.CanaryBackend.Port), spec.Revision)
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// RolloutWeight is the canary's share in percent that ro asks for now:
// 0 when aborted, 100 when promoted, the first step's weight when it has
// no current progress (no status, or status of another identity), else
// status.canaryWeight.
func RolloutWeight(ro *mgv1alpha1.Rollout) int32 {
	switch {
	case ro.Spec.Abort:
		return 0
	case ro.Spec.Promote:
		return 100
	case ro.Status.Phase == "" || ro.Status.Identity != RolloutIdentity(&ro.Spec):
		if len(ro.Spec.Steps) == 0 {
			return 0
		}
		return clampWeight(ro.Spec.Steps[0].Weight)
	}
	return clampWeight(ro.Status.CanaryWeight)
}

func clampWeight(w int32) int32 { return min(max(w, 0), 100) }

// RolloutSessionCookie is the cookie keeping a client on one version when
// a Rollout asks for sessionSticky.
func RolloutSessionCookie(ro *mgv1alpha1.Rollout) string {
	return "meshgate-rollout-" + ro.Namespace + "-" + ro.Name
}

// applyRollouts rewrites the target rules of every valid Rollout in routes
// (compiled, not yet attached) and records each Rollout's status.
func (t *translator) applyRollouts(routes []*routeState) {
	if len(t.s.Rollouts) == 0 {
		return
	}
	ros := make([]*mgv1alpha1.Rollout, 0, len(t.s.Rollouts))
	for _, ro := range t.s.Rollouts {
		if ro != nil {
			ros = append(ros, ro)
		}
	}
	sort.SliceStable(ros, func(i, j int) bool { return olderFirst(ros[i], ros[j]) })
	byRoute := map[string]*routeState{}
	for _, rs := range routes {
		byRoute[rs.kind+"/"+rs.key.String()] = rs
	}
	claimed := map[string]string{} // "kind/ns/name#rule" -> rollout
	for _, ro := range ros {
		st := ObjectStatus{Kind: mgv1alpha1.KindRollout, Namespace: ro.Namespace, Name: ro.Name}
		problem, ruleKey := t.applyRollout(ro, byRoute, claimed)
		gen := ro.Generation
		if problem != "" {
			st.Reason = problem
			st.Conditions = []metav1.Condition{condition("Accepted", false, "Invalid", problem, gen)}
		} else {
			claimed[ruleKey] = ro.Namespace + "/" + ro.Name
			st.Accepted = true
			st.Conditions = []metav1.Condition{condition("Accepted", true, "Accepted",
				fmt.Sprintf("canary at %d%%", RolloutWeight(ro)), gen)}
		}
		t.statuses = append(t.statuses, st)
	}
}

// RolloutTarget is what a Rollout measures: the route ("namespace/name")
// and rule index its requests carry in obs.Request, and the ir backend
// names (without policy suffix) of its stable and canary backendRefs.
type RolloutTarget struct {
	Route          string
	Rule           int
	Stable, Canary string
}

// RolloutTargetOf resolves ro against s, or says what is wrong.
func RolloutTargetOf(s *config.Snapshot, ro *mgv1alpha1.Rollout) (RolloutTarget, string) {
	rule, si, ci, refs, problem := rolloutRefs(s, ro)
	if problem != "" {
		return RolloutTarget{}, problem
	}
	name := func(br gwapiv1.BackendRef) string {
		ns := ro.Namespace
		if br.Namespace != nil && *br.Namespace != "" {
			ns = string(*br.Namespace)
		}
		if br.Kind != nil && string(*br.Kind) == kindBackend {
			return "backend/" + ns + "/" + string(br.Name)
		}
		port := int32(0)
		if br.Port != nil {
			port = int32(*br.Port)
		}
		return fmt.Sprintf("service/%s/%s:%d", ns, br.Name, port)
	}
	return RolloutTarget{
		Route:  ro.Namespace + "/" + ro.Spec.TargetRef.Name,
		Rule:   rule,
		Stable: name(refs.backends[rule][si]),
		Canary: name(refs.backends[rule][ci]),
	}, ""
}

// rolloutRefs finds ro's target rule and the indexes of its stable and
// canary backendRefs in s.
func rolloutRefs(s *config.Snapshot, ro *mgv1alpha1.Rollout) (rule, si, ci int, refs *ruleRefs, problem string) {
	spec := &ro.Spec
	ref := spec.TargetRef
	if ref.Group != "" && ref.Group != gatewayGroup || (ref.Kind != kindHTTPRoute && ref.Kind != kindGRPCRoute) {
		return 0, 0, 0, nil, "spec.targetRef: must be an HTTPRoute or GRPCRoute of " + gatewayGroup
	}
	if len(spec.Steps) == 0 {
		return 0, 0, 0, nil, "spec.steps: at least one step is required"
	}
	refs = rolloutRuleRefs(s, ref.Kind, ro.Namespace, ref.Name)
	if refs == nil {
		return 0, 0, 0, nil, fmt.Sprintf("spec.targetRef: %s %s/%s not found", ref.Kind, ro.Namespace, ref.Name)
	}
	rule = -1
	if ref.RuleName != nil {
		for i, n := range refs.names {
			if n == string(*ref.RuleName) {
				rule = i
			}
		}
		if rule < 0 {
			return 0, 0, 0, nil, fmt.Sprintf("spec.targetRef.ruleName: %s %s/%s has no rule named %q", ref.Kind, ro.Namespace, ref.Name, *ref.RuleName)
		}
	} else {
		if len(refs.backends) != 1 {
			return 0, 0, 0, nil, fmt.Sprintf("spec.targetRef.ruleName: required, %s %s/%s has %d rules", ref.Kind, ro.Namespace, ref.Name, len(refs.backends))
		}
		rule = 0
	}
	find := func(field string, b mgv1alpha1.RolloutBackend) (int, string) {
		idx := -1
		for k, r := range refs.backends[rule] {
			if string(r.Name) != b.Name || (b.Port != nil && (r.Port == nil || int32(*r.Port) != *b.Port)) {
				continue
			}
			if idx >= 0 {
				return -1, fmt.Sprintf("spec.%s: %q names several backendRefs of the rule; set port", field, b.Name)
			}
			idx = k
		}
		if idx < 0 {
			return -1, fmt.Sprintf("spec.%s: the target rule has no backendRef %q", field, b.Name)
		}
		return idx, ""
	}
	if si, problem = find("stableBackend", spec.StableBackend); problem != "" {
		return
	}
	if ci, problem = find("canaryBackend", spec.CanaryBackend); problem != "" {
		return
	}
	if si == ci {
		return 0, 0, 0, nil, "spec.canaryBackend: names the same backendRef as stableBackend"
	}
	return rule, si, ci, refs, ""
}

// applyRollout applies one Rollout, or says why it cannot.
func (t *translator) applyRollout(ro *mgv1alpha1.Rollout, byRoute map[string]*routeState, claimed map[string]string) (problem, ruleKey string) {
	spec := &ro.Spec
	ref := spec.TargetRef
	rule, si, ci, _, problem := rolloutRefs(t.s, ro)
	if problem != "" {
		return problem, ""
	}
	rs := byRoute[ref.Kind+"/"+ro.Namespace+"/"+ref.Name]
	if rs == nil {
		return fmt.Sprintf("spec.targetRef: %s %s/%s not found", ref.Kind, ro.Namespace, ref.Name), ""
	}
	ruleKey = fmt.Sprintf("%s/%s/%s#%d", ref.Kind, ro.Namespace, ref.Name, rule)
	if other, ok := claimed[ruleKey]; ok {
		return fmt.Sprintf("spec.targetRef: the rule is already driven by the older Rollout %s", other), ""
	}
	if rule >= len(rs.rules) {
		return "spec.targetRef: rule not compiled", ""
	}
	rr := rs.rules[rule]
	if !rr.valid() {
		return fmt.Sprintf("spec.targetRef: the target rule is invalid (%s)", rr.problem), ""
	}
	w := RolloutWeight(ro)
	var session *ir.SessionPersistence
	if spec.SessionSticky {
		session = &ir.SessionPersistence{Type: ir.SessionCookie, Name: RolloutSessionCookie(ro)}
	}
	var overrides []ir.StringMatch
	if o := spec.Override; o != nil {
		if o.Header != nil {
			overrides = append(overrides, ir.StringMatch{Type: ir.MatchExact, Name: o.Header.Name, Value: o.Header.Value})
		}
		if o.Cookie != nil {
			overrides = append(overrides, ir.StringMatch{Type: ir.MatchRegularExpression, Name: "Cookie",
				Value: `(^|;\s*)` + regexp.QuoteMeta(o.Cookie.Name) + "=" + regexp.QuoteMeta(o.Cookie.Value) + `\s*(;|$)`})
		}
	}
	base := rr.routes
	next := len(base)
	var out []*ir.Route
	for _, r := range base {
		if r.DirectResponse != nil || len(r.Backends) <= max(si, ci) {
			out = append(out, r)
			continue
		}
		c := *r
		var bs []ir.WeightedBackend
		for k, b := range r.Backends {
			switch k {
			case si:
				b.Weight = 100 - w
			case ci:
				b.Weight = w
			}
			// A backend at 0% is left out, not just weighted 0, so sticky
			// sessions pinned to it move too (a rollback is immediate).
			if (k == si || k == ci) && b.Weight == 0 {
				continue
			}
			bs = append(bs, b)
		}
		c.Backends = bs
		if session != nil && c.SessionPersistence == nil {
			c.SessionPersistence = session
		}
		out = append(out, &c)
		for _, m := range overrides {
			o := *r
			o.MatchIndex = next
			next++
			o.Match.Headers = append(append([]ir.StringMatch(nil), r.Match.Headers...), m)
			cb := r.Backends[ci]
			cb.Weight = 1
			o.Backends = []ir.WeightedBackend{cb}
			// The override wins over a session pinned to stable.
			o.SessionPersistence = nil
			out = append(out, &o)
		}
	}
	rr.routes = out
	return "", ruleKey
}

// ruleRefs are a route's rule names and backendRefs, in spec order.
type ruleRefs struct {
	names    []string
	backends [][]gwapiv1.BackendRef
}

func rolloutRuleRefs(s *config.Snapshot, kind, ns, name string) *ruleRefs {
	out := &ruleRefs{}
	add := func(n *gwapiv1.SectionName, brs []gwapiv1.BackendRef) {
		s := ""
		if n != nil {
			s = string(*n)
		}
		out.names = append(out.names, s)
		out.backends = append(out.backends, brs)
	}
	switch kind {
	case kindHTTPRoute:
		for _, r := range s.HTTPRoutes {
			if r != nil && r.Namespace == ns && r.Name == name {
				for _, rule := range r.Spec.Rules {
					var brs []gwapiv1.BackendRef
					for _, b := range rule.BackendRefs {
						brs = append(brs, b.BackendRef)
					}
					add(rule.Name, brs)
				}
				return out
			}
		}
	case kindGRPCRoute:
		for _, r := range s.GRPCRoutes {
			if r != nil && r.Namespace == ns && r.Name == name {
				for _, rule := range r.Spec.Rules {
					var brs []gwapiv1.BackendRef
					for _, b := range rule.BackendRefs {
						brs = append(brs, b.BackendRef)
					}
					add(rule.Name, brs)
				}
				return out
			}
		}
	}
	return nil
}
