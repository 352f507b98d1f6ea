package translate

import (
	"fmt"
	"regexp"
	"strings"

	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/meshgate/meshgate/ir"
)

// compileGRPCRoute compiles a GRPCRoute into the same ir.Routes an HTTPRoute
// makes: a gRPC call is an HTTP/2 POST to /package.Service/Method, so a
// method match is a path match and the router, filters and proxy need
// nothing gRPC-specific. Backends are always spoken to over HTTP/2.
func (t *translator) compileGRPCRoute(r *gwapiv1.GRPCRoute) *routeState {
	rs := t.newRouteState(kindGRPCRoute, &r.ObjectMeta, r.Spec.CommonRouteSpec, r.Spec.Hostnames)
	rules := r.Spec.Rules
	if len(rules) == 0 {
		rules = []gwapiv1.GRPCRouteRule{{}}
	}
	for i := range rules {
		rule := &rules[i]
		path := fmt.Sprintf("spec.rules[%d]", i)
		matches := rule.Matches
		if len(matches) == 0 {
			matches = []gwapiv1.GRPCRouteMatch{{}}
		}
		var irMatches []ir.Match
		var dropped *ruleResult
		for j, m := range matches {
			im, err := grpcMatch(m)
			if err != nil {
				dropped = droppedRule(fmt.Sprintf("%s.matches[%d].%v", path, j, err))
				break
			}
			irMatches = append(irMatches, im)
		}
		if dropped != nil {
			rs.rules = append(rs.rules, dropped)
			continue
		}
		hr := &gwapiv1.HTTPRouteRule{Name: rule.Name, Filters: grpcFilters(rule.Filters)}
		for _, br := range rule.BackendRefs {
			hr.BackendRefs = append(hr.BackendRefs, gwapiv1.HTTPBackendRef{BackendRef: br.BackendRef, Filters: grpcFilters(br.Filters)})
		}
		rs.rules = append(rs.rules, t.compileRuleWith(rs, i, hr, irMatches))
	}
	return rs
}

// grpcFilters converts GRPCRoute filters to their HTTPRoute twins, which
// have the same fields and meaning.
func grpcFilters(fs []gwapiv1.GRPCRouteFilter) []gwapiv1.HTTPRouteFilter {
	out := make([]gwapiv1.HTTPRouteFilter, 0, len(fs))
	for _, f := range fs {
		out = append(out, gwapiv1.HTTPRouteFilter{
			Type:                   gwapiv1.HTTPRouteFilterType(f.Type),
			RequestHeaderModifier:  f.RequestHeaderModifier,
			ResponseHeaderModifier: f.ResponseHeaderModifier,
			RequestMirror:          f.RequestMirror,
			ExtensionRef:           f.ExtensionRef,
		})
	}
	return out
}

// grpcNameRE is what the CRD allows for an Exact service or method name.
var (
	grpcServiceRE = regexp.MustCompile(`^(?i)\.?[a-z_][a-z_0-9]*(\.[a-z_][a-z_0-9]*)*$`)
	grpcMethodRE  = regexp.MustCompile(`^[A-Za-z_][A-Za-z_0-9]*$`)
)

// grpcMatch turns a GRPCRouteMatch into a path match on /service/method
// plus header matches. Exact service and method give an exact path, an
// exact service alone a prefix "/service/", anything else an anchored
// regular expression over the two path segments.
func grpcMatch(m gwapiv1.GRPCRouteMatch) (ir.Match, error) {
	out := ir.Match{Path: ir.PathMatch{Type: ir.PathPrefix, Value: "/"}}
	if mm := m.Method; mm != nil {
		typ := gwapiv1.GRPCMethodMatchExact
		if mm.Type != nil {
			typ = *mm.Type
		}
		var svc, meth string
		if mm.Service != nil {
			svc = *mm.Service
		}
		if mm.Method != nil {
			meth = *mm.Method
		}
		if svc == "" && meth == "" {
			return out, fmt.Errorf("method: one of service and method is required")
		}
		switch typ {
		case gwapiv1.GRPCMethodMatchExact:
			if svc != "" && !grpcServiceRE.MatchString(svc) {
				return out, fmt.Errorf("method.service: %q is not a valid gRPC service name", svc)
			}
			if meth != "" && !grpcMethodRE.MatchString(meth) {
				return out, fmt.Errorf("method.method: %q is not a valid gRPC method name", meth)
			}
			switch {
			case svc != "" && meth != "":
				out.Path = ir.PathMatch{Type: ir.PathExact, Value: "/" + svc + "/" + meth}
			case svc != "":
				out.Path = ir.PathMatch{Type: ir.PathPrefix, Value: "/" + svc}
			default:
				out.Path = ir.PathMatch{Type: ir.PathRegularExpression, Value: "/[^/]+/" + regexp.QuoteMeta(meth)}
			}
		case gwapiv1.GRPCMethodMatchRegularExpression:
			svcRE, methRE := "[^/]+", "[^/]+"
			if svc != "" {
				if _, err := regexp.Compile(svc); err != nil {
					return out, fmt.Errorf("method.service: %q is not a valid regular expression: %v", svc, err)
				}
				svcRE = "(?:" + svc + ")"
			}
			if meth != "" {
				if _, err := regexp.Compile(meth); err != nil {
					return out, fmt.Errorf("method.method: %q is not a valid regular expression: %v", meth, err)
				}
				methRE = "(?:" + meth + ")"
			}
			out.Path = ir.PathMatch{Type: ir.PathRegularExpression, Value: "/" + svcRE + "/" + methRE}
		default:
			return out, fmt.Errorf("method.type: %q is not one of Exact, RegularExpression", typ)
		}
	}
	for i, h := range m.Headers {
		var typ *string
		if h.Type != nil {
			s := string(*h.Type)
			typ = &s
		}
		name := string(h.Name)
		if strings.HasPrefix(name, ":") {
			return out, fmt.Errorf("headers[%d].name: %q is a pseudo-header, which cannot be matched", i, name)
		}
		sm, err := stringMatch(name, typ, h.Value)
		if err != nil {
			return out, fmt.Errorf("headers[%d].%v", i, err)
		}
		out.Headers = append(out.Headers, sm)
	}
	return out, nil
}
