package translate

import (
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/meshgate/meshgate/ir"
)

// l4Rule is the part TCPRoute, TLSRoute and UDPRoute rules share.
type l4Rule struct {
	name        *gwapiv1.SectionName
	backendRefs []gwapiv1.BackendRef
}

func tcpRules(rs []gwapiv1.TCPRouteRule) []l4Rule {
	out := make([]l4Rule, len(rs))
	for i, r := range rs {
		out[i] = l4Rule{r.Name, r.BackendRefs}
	}
	return out
}

func tlsRules(rs []gwapiv1.TLSRouteRule) []l4Rule {
	out := make([]l4Rule, len(rs))
	for i, r := range rs {
		out[i] = l4Rule{r.Name, r.BackendRefs}
	}
	return out
}

func udpRules(rs []gwapiv1.UDPRouteRule) []l4Rule {
	out := make([]l4Rule, len(rs))
	for i, r := range rs {
		out[i] = l4Rule{r.Name, r.BackendRefs}
	}
	return out
}

// compileL4Route compiles a TCPRoute, TLSRoute or UDPRoute. Each rule
// becomes one ir.L4Route whose backends share connections by weight; an
// unresolvable backendRef keeps its share, and those connections are closed,
// the layer-4 equivalent of HTTPRoute's 500.
func (t *translator) compileL4Route(kind string, meta *metav1.ObjectMeta, common gwapiv1.CommonRouteSpec, hostnames []gwapiv1.Hostname, rules []l4Rule) *routeState {
	rs := t.newRouteState(kind, meta, common, hostnames)
	if len(rules) == 0 {
		rs.rules = append(rs.rules, &ruleResult{reason: string(gwapiv1.RouteReasonUnsupportedValue), problem: "spec.rules: at least one rule is required", dropped: true})
		return rs
	}
	for i, rule := range rules {
		rr := &ruleResult{}
		path := fmt.Sprintf("spec.rules[%d]", i)
		if len(rule.backendRefs) == 0 {
			rr.reason, rr.problem = string(gwapiv1.RouteReasonUnsupportedValue), path+".backendRefs: at least one backendRef is required"
			rr.dropped = true
			rs.rules = append(rs.rules, rr)
			continue
		}
		r := &ir.L4Route{Name: rs.key.String(), RuleIndex: i, CreationTimestamp: meta.CreationTimestamp.Time}
		for k := range rule.backendRefs {
			bpath := fmt.Sprintf("%s.backendRefs[%d]", path, k)
			wb, ref, problem := t.backendRef(rs, bpath, &rule.backendRefs[k])
			if problem != "" && rr.problem == "" {
				rr.reason, rr.problem = string(gwapiv1.RouteReasonUnsupportedValue), problem
			}
			if ref != nil {
				rs.refs = append(rs.refs, *ref)
			}
			r.Backends = append(r.Backends, wb)
		}
		if rr.valid() {
			rr.l4 = r
		} else {
			rr.dropped = true
		}
		rs.rules = append(rs.rules, rr)
	}
	return rs
}
