package translate

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"

	mgv1alpha1 "github.com/meshgate/meshgate/api/v1alpha1"
	"github.com/meshgate/meshgate/ir"
)

// ruleResult is one compiled HTTPRoute rule.
type ruleResult struct {
	// routes are one per match, without Hostnames (those depend on the
	// listener). Empty when the rule is dropped.
	routes []*ir.Route
	// l4 is the rule of a TCPRoute, TLSRoute or UDPRoute, without
	// Hostnames.
	l4 *ir.L4Route
	// reason and problem say why the rule is invalid (a
	// RouteConditionReason and "spec.rules[i]...: what is wrong"); empty
	// when it is valid. An invalid rule whose matches could be built
	// answers 500; one whose matches could not is dropped.
	reason  string
	problem string
	dropped bool
}

func (r *ruleResult) valid() bool { return r.problem == "" }

// compileRule turns one rule into routes. Match problems drop the rule, as
// a match that cannot be evaluated cannot be answered either. Problems with
// filters or timeouts keep the matches but answer 500, because the spec
// forbids skipping a filter: requests it would have processed must get an
// error. Unresolvable backendRefs are not rule problems: their share of
// traffic gets 500 and ResolvedRefs says why.
func (t *translator) compileRule(rs *routeState, i int, rule *gwapiv1.HTTPRouteRule) *ruleResult {
	path := fmt.Sprintf("spec.rules[%d]", i)
	matches := rule.Matches
	if len(matches) == 0 {
		matches = []gwapiv1.HTTPRouteMatch{{}}
	}
	irMatches := make([]ir.Match, 0, len(matches))
	for j, m := range matches {
		im, err := buildMatch(m)
		if err != nil {
			return droppedRule(fmt.Sprintf("%s.matches[%d].%v", path, j, err))
		}
		irMatches = append(irMatches, im)
	}
	return t.compileRuleWith(rs, i, rule, irMatches)
}

// droppedRule is a rule whose matches cannot be built.
func droppedRule(problem string) *ruleResult {
	return &ruleResult{reason: string(gwapiv1.RouteReasonUnsupportedValue), problem: problem, dropped: true}
}

// compileRuleWith compiles a rule whose matches are already built; GRPCRoute
// rules come here too, converted to the HTTPRoute shape.
func (t *translator) compileRuleWith(rs *routeState, i int, rule *gwapiv1.HTTPRouteRule, irMatches []ir.Match) *ruleResult {
	rr := &ruleResult{}
	path := fmt.Sprintf("spec.rules[%d]", i)
	invalid := func(reason gwapiv1.RouteConditionReason, msg string) {
		if rr.problem == "" {
			rr.reason, rr.problem = string(reason), msg
		}
	}

	timeouts, err := buildTimeouts(rule.Timeouts)
	if err != nil {
		invalid(gwapiv1.RouteReasonUnsupportedValue, path+".timeouts."+err.Error())
	}

	var retry *ir.Retry
	if rule.Retry != nil {
		if retry, err = httpRouteRetry(rule.Retry); err != nil {
			invalid(gwapiv1.RouteReasonUnsupportedValue, path+".retry."+err.Error())
		}
	}
	var session *ir.SessionPersistence
	if rule.SessionPersistence != nil {
		if session, err = sessionPersistence(rule.SessionPersistence); err != nil {
			invalid(gwapiv1.RouteReasonUnsupportedValue, path+".sessionPersistence."+err.Error())
		}
	}

	fr := t.buildFilters(rs, path+".filters", rule.Filters, irMatches)
	if fr.problem != "" {
		invalid(gwapiv1.RouteConditionReason(fr.reason), fr.problem)
	}
	rs.refs = append(rs.refs, fr.refs...)
	rs.refs = append(rs.refs, fr.mirrorRefs...)
	direct500 := len(fr.refs) > 0
	if fr.redirect && len(rule.BackendRefs) > 0 {
		invalid(gwapiv1.RouteReasonIncompatibleFilters, path+".filters: a RequestRedirect filter cannot be combined with backendRefs")
	}

	var backends []ir.WeightedBackend
	for k := range rule.BackendRefs {
		br := &rule.BackendRefs[k]
		bpath := fmt.Sprintf("%s.backendRefs[%d]", path, k)
		wb, ref, problem := t.backendRef(rs, bpath, &br.BackendRef)
		if problem != "" {
			invalid(gwapiv1.RouteReasonUnsupportedValue, problem)
		}
		if ref != nil {
			rs.refs = append(rs.refs, *ref)
		}
		bfr := t.buildFilters(rs, bpath+".filters", br.Filters, irMatches)
		if bfr.problem != "" {
			invalid(gwapiv1.RouteConditionReason(bfr.reason), bfr.problem)
		}
		for k, f := range bfr.filters {
			if f.Type != ir.FilterRequestHeaderModifier && f.Type != ir.FilterResponseHeaderModifier {
				// Redirects, rewrites and mirrors decide before a backend
				// is picked, so per-backend they would be half applied.
				invalid(gwapiv1.RouteReasonUnsupportedValue, fmt.Sprintf("%s.filters[%d].type: %s is not supported on a backendRef; put it on the rule", bpath, k, f.Type))
			}
		}
		if bfr.fault != nil {
			invalid(gwapiv1.RouteReasonUnsupportedValue, bpath+".filters: a FaultInjection ExtensionRef is not supported on a backendRef; put it on the rule")
		}
		rs.refs = append(rs.refs, bfr.mirrorRefs...)
		if len(bfr.refs) > 0 {
			// An unresolvable backend filter fails only the requests
			// sent to that backend.
			rs.refs = append(rs.refs, bfr.refs...)
			wb.Target = nil
		}
		wb.Filters = bfr.filters
		backends = append(backends, wb)
	}

	var ruleName string
	if rule.Name != nil {
		ruleName = string(*rule.Name)
	}
	for j, im := range irMatches {
		r := &ir.Route{
			Name:              rs.key.String(),
			RuleIndex:         i,
			MatchIndex:        j,
			RuleName:          ruleName,
			CreationTimestamp: rs.meta.CreationTimestamp.Time,
			Match:             im,
		}
		if rr.valid() && !direct500 {
			r.Filters = fr.filters
			r.Backends = backends
			r.Timeouts = timeouts
			r.Retry = retry
			r.SessionPersistence = session
			r.Fault = fr.fault
		} else {
			r.DirectResponse = &ir.DirectResponse{StatusCode: 500}
		}
		rr.routes = append(rr.routes, r)
	}
	return rr
}

// pathRE is Gateway API's pattern for Exact and PathPrefix path values.
var pathRE = regexp.MustCompile(`^(?:[-A-Za-z0-9/._~!$&'()*+,;=:@]|[%][0-9a-fA-F]{2})+$`)

// tokenRE is RFC 7230's token, the pattern for header names.
var tokenRE = regexp.MustCompile("^[A-Za-z0-9!#$%&'*+\\-.^_`|~]+$")

// checkPath validates an Exact or PathPrefix path value the way the CRD
// does: an absolute, normalised path.
func checkPath(p string) error {
	if !strings.HasPrefix(p, "/") {
		return fmt.Errorf("%q must start with \"/\"", p)
	}
	if !pathRE.MatchString(p) {
		return fmt.Errorf("%q contains characters not allowed in a path", p)
	}
	for _, bad := range []string{"//", "/./", "/../", "%2f", "%2F", "#"} {
		if strings.Contains(p, bad) {
			return fmt.Errorf("%q must not contain %q", p, bad)
		}
	}
	if strings.HasSuffix(p, "/..") || strings.HasSuffix(p, "/.") {
		return fmt.Errorf("%q must not end with \"/.\" or \"/..\"", p)
	}
	return nil
}

var methods = map[gwapiv1.HTTPMethod]bool{
	gwapiv1.HTTPMethodGet: true, gwapiv1.HTTPMethodHead: true, gwapiv1.HTTPMethodPost: true,
	gwapiv1.HTTPMethodPut: true, gwapiv1.HTTPMethodDelete: true, gwapiv1.HTTPMethodConnect: true,
	gwapiv1.HTTPMethodOptions: true, gwapiv1.HTTPMethodTrace: true, gwapiv1.HTTPMethodPatch: true,
}

// buildMatch converts one HTTPRouteMatch, applying the API defaults (path
// PathPrefix "/", header and query types Exact). Errors start with the field
// path relative to the match.
func buildMatch(m gwapiv1.HTTPRouteMatch) (ir.Match, error) {
	out := ir.Match{Path: ir.PathMatch{Type: ir.PathPrefix, Value: "/"}}
	if m.Path != nil {
		if m.Path.Type != nil {
			out.Path.Type = ir.PathMatchType(*m.Path.Type)
		}
		if m.Path.Value != nil {
			out.Path.Value = *m.Path.Value
		}
	}
	switch out.Path.Type {
	case ir.PathExact, ir.PathPrefix:
		if err := checkPath(out.Path.Value); err != nil {
			return out, fmt.Errorf("path.value: %v", err)
		}
	case ir.PathRegularExpression:
		if _, err := regexp.Compile(out.Path.Value); err != nil {
			return out, fmt.Errorf("path.value: invalid regular expression: %v", err)
		}
	default:
		return out, fmt.Errorf("path.type: %q is not supported; use Exact, PathPrefix or RegularExpression", out.Path.Type)
	}

	if m.Method != nil {
		if !methods[*m.Method] {
			return out, fmt.Errorf("method: %q is not a supported HTTP method", *m.Method)
		}
		out.Method = string(*m.Method)
	}

	seen := map[string]bool{}
	for i, h := range m.Headers {
		var typ *string
		if h.Type != nil {
			typ = ptrTo(string(*h.Type))
		}
		sm, err := stringMatch(string(h.Name), typ, h.Value)
		if err != nil {
			return out, fmt.Errorf("headers[%d].%v", i, err)
		}
		// Header names are case-insensitive; the spec says the first
		// of equivalent entries wins and the others are ignored.
		if k := strings.ToLower(sm.Name); !seen[k] {
			seen[k] = true
			out.Headers = append(out.Headers, sm)
		}
	}
	seen = map[string]bool{}
	for i, q := range m.QueryParams {
		var typ *string
		if q.Type != nil {
			typ = ptrTo(string(*q.Type))
		}
		sm, err := stringMatch(string(q.Name), typ, q.Value)
		if err != nil {
			return out, fmt.Errorf("queryParams[%d].%v", i, err)
		}
		// Query parameter names are case-sensitive; first wins here too.
		if !seen[sm.Name] {
			seen[sm.Name] = true
			out.QueryParams = append(out.QueryParams, sm)
		}
	}
	return out, nil
}

func stringMatch(name string, typ *string, value string) (ir.StringMatch, error) {
	sm := ir.StringMatch{Type: ir.MatchExact, Name: name, Value: value}
	if typ != nil {
		sm.Type = ir.StringMatchType(*typ)
	}
	if !tokenRE.MatchString(name) {
		return sm, fmt.Errorf("name: %q is not a valid name", name)
	}
	switch sm.Type {
	case ir.MatchExact:
		if value == "" {
			return sm, fmt.Errorf("value: required")
		}
	case ir.MatchRegularExpression:
		if _, err := regexp.Compile(value); err != nil {
			return sm, fmt.Errorf("value: invalid regular expression: %v", err)
		}
	default:
		return sm, fmt.Errorf("type: %q is not supported; use Exact or RegularExpression", sm.Type)
	}
	return sm, nil
}

// durationRE is GEP-2257's Gateway API Duration format.
var durationRE = regexp.MustCompile(`^([0-9]{1,5}(h|m|s|ms)){1,4}$`)

// parseDuration parses a Gateway API Duration; "0s" becomes TimeoutDisabled.
func parseDuration(d gwapiv1.Duration) (time.Duration, error) {
	if !durationRE.MatchString(string(d)) {
		return 0, fmt.Errorf("%q is not a Gateway API duration (like 1h30m, 10s or 500ms)", d)
	}
	v, err := time.ParseDuration(string(d))
	if err != nil {
		return 0, fmt.Errorf("%q: %v", d, err)
	}
	if v == 0 {
		return TimeoutDisabled, nil
	}
	return v, nil
}

// buildTimeouts converts rule timeouts. Errors start with the field name
// relative to "timeouts".
func buildTimeouts(to *gwapiv1.HTTPRouteTimeouts) (ir.Timeouts, error) {
	var out ir.Timeouts
	if to == nil {
		return out, nil
	}
	var err error
	if to.Request != nil {
		if out.Request, err = parseDuration(*to.Request); err != nil {
			return ir.Timeouts{}, fmt.Errorf("request: %v", err)
		}
	}
	if to.BackendRequest != nil {
		if out.BackendRequest, err = parseDuration(*to.BackendRequest); err != nil {
			return ir.Timeouts{}, fmt.Errorf("backendRequest: %v", err)
		}
	}
	if out.Request > 0 && out.BackendRequest > out.Request {
		return ir.Timeouts{}, fmt.Errorf("backendRequest: %s is longer than request %s; the request timeout includes it", *to.BackendRequest, *to.Request)
	}
	return out, nil
}

// filterResult is a converted filter list.
type filterResult struct {
	// mirrorRefs are unresolvable mirror backends: reported, not fatal.
	mirrorRefs []refProblem
	filters    []ir.Filter
	// reason and problem describe the first invalid filter.
	reason  string
	problem string
	// refs are unresolvable filter references (ExtensionRef).
	refs     []refProblem
	redirect bool
	// fault is the rule's FaultInjection, from an ExtensionRef.
	fault *ir.Fault
}

// buildFilters converts a rule's or backendRef's filters. matches are the
// rule's matches, which ReplacePrefixMatch depends on.
func (t *translator) buildFilters(rs *routeState, path string, fs []gwapiv1.HTTPRouteFilter, matches []ir.Match) filterResult {
	var fr filterResult
	invalid := func(reason gwapiv1.RouteConditionReason, format string, args ...any) {
		if fr.problem == "" {
			fr.reason, fr.problem = string(reason), fmt.Sprintf(format, args...)
		}
	}
	seen := map[gwapiv1.HTTPRouteFilterType]int{}
	for k := range fs {
		f := &fs[k]
		fp := fmt.Sprintf("%s[%d]", path, k)
		switch f.Type {
		case gwapiv1.HTTPRouteFilterRequestHeaderModifier, gwapiv1.HTTPRouteFilterResponseHeaderModifier,
			gwapiv1.HTTPRouteFilterRequestRedirect, gwapiv1.HTTPRouteFilterURLRewrite, gwapiv1.HTTPRouteFilterCORS:
			if prev, dup := seen[f.Type]; dup {
				invalid(gwapiv1.RouteReasonUnsupportedValue, "%s.type: %s is already used by %s[%d]; each filter type may appear once", fp, f.Type, path, prev)
				continue
			}
			seen[f.Type] = k
		}
		switch f.Type {
		case gwapiv1.HTTPRouteFilterRequestHeaderModifier, gwapiv1.HTTPRouteFilterResponseHeaderModifier:
			spec, field := f.RequestHeaderModifier, "requestHeaderModifier"
			if f.Type == gwapiv1.HTTPRouteFilterResponseHeaderModifier {
				spec, field = f.ResponseHeaderModifier, "responseHeaderModifier"
			}
			if spec == nil {
				invalid(gwapiv1.RouteReasonUnsupportedValue, "%s.%s: required for type %s", fp, field, f.Type)
				continue
			}
			hm, err := headerModifier(spec)
			if err != nil {
				invalid(gwapiv1.RouteReasonUnsupportedValue, "%s.%s.%v", fp, field, err)
				continue
			}
			out := ir.Filter{Type: ir.FilterType(f.Type)}
			if f.Type == gwapiv1.HTTPRouteFilterRequestHeaderModifier {
				out.RequestHeaderModifier = hm
			} else {
				out.ResponseHeaderModifier = hm
			}
			fr.filters = append(fr.filters, out)
		case gwapiv1.HTTPRouteFilterRequestRedirect:
			fr.redirect = true
			if f.RequestRedirect == nil {
				invalid(gwapiv1.RouteReasonUnsupportedValue, "%s.requestRedirect: required for type RequestRedirect", fp)
				continue
			}
			rd, err := redirect(f.RequestRedirect, matches)
			if err != nil {
				invalid(gwapiv1.RouteReasonUnsupportedValue, "%s.requestRedirect.%v", fp, err)
				continue
			}
			fr.filters = append(fr.filters, ir.Filter{Type: ir.FilterRequestRedirect, RequestRedirect: rd})
		case gwapiv1.HTTPRouteFilterURLRewrite:
			if f.URLRewrite == nil {
				invalid(gwapiv1.RouteReasonUnsupportedValue, "%s.urlRewrite: required for type URLRewrite", fp)
				continue
			}
			rw, err := urlRewrite(f.URLRewrite, matches)
			if err != nil {
				invalid(gwapiv1.RouteReasonUnsupportedValue, "%s.urlRewrite.%v", fp, err)
				continue
			}
			fr.filters = append(fr.filters, ir.Filter{Type: ir.FilterURLRewrite, URLRewrite: rw})
		case gwapiv1.HTTPRouteFilterExtensionRef:
			// An ExtensionRef Meshgate cannot resolve must not be
			// skipped (the spec): the requests it would process get
			// a 500.
			e := f.ExtensionRef
			if e == nil {
				fr.refs = append(fr.refs, refProblem{string(gwapiv1.RouteReasonInvalidKind), fp + ".extensionRef: required for type ExtensionRef"})
				continue
			}
			if string(e.Group) != mgv1alpha1.GroupName || string(e.Kind) != mgv1alpha1.KindFaultInjection {
				fr.refs = append(fr.refs, refProblem{string(gwapiv1.RouteReasonInvalidKind),
					fmt.Sprintf("%s.extensionRef: %s %q is not a filter kind Meshgate supports", fp, groupKind(string(e.Group), string(e.Kind)), e.Name)})
				continue
			}
			if fr.fault != nil {
				invalid(gwapiv1.RouteReasonUnsupportedValue, "%s: only one FaultInjection filter is allowed per rule", fp)
				continue
			}
			fi := t.faults[nsName{rs.key.ns, string(e.Name)}]
			switch {
			case fi == nil:
				fr.refs = append(fr.refs, refProblem{"FilterNotFound", fmt.Sprintf("%s.extensionRef: %s", fp, t.notFound(mgv1alpha1.KindFaultInjection, rs.key.ns, string(e.Name)))})
			case fi.problem != "":
				fr.refs = append(fr.refs, refProblem{"FilterNotFound", fmt.Sprintf("%s.extensionRef: FaultInjection %s/%s is invalid: %s", fp, rs.key.ns, e.Name, fi.problem)})
			default:
				fr.fault = fi.fault
			}
		case gwapiv1.HTTPRouteFilterRequestMirror:
			m, problem := t.mirror(rs, fp+".requestMirror", f.RequestMirror, &fr)
			if problem != "" {
				invalid(gwapiv1.RouteReasonUnsupportedValue, "%s", problem)
				continue
			}
			fr.filters = append(fr.filters, ir.Filter{Type: ir.FilterRequestMirror, RequestMirror: m})
		case gwapiv1.HTTPRouteFilterCORS:
			if f.CORS == nil {
				invalid(gwapiv1.RouteReasonUnsupportedValue, "%s.cors: required for type CORS", fp)
				continue
			}
			c, err := corsFilter(f.CORS)
			if err != nil {
				invalid(gwapiv1.RouteReasonUnsupportedValue, "%s.cors.%v", fp, err)
				continue
			}
			fr.filters = append(fr.filters, ir.Filter{Type: ir.FilterCORS, CORS: c})
		case gwapiv1.HTTPRouteFilterExternalAuth:
			invalid(gwapiv1.RouteReasonUnsupportedValue, "%s.type: %s filters are not supported by Meshgate", fp, f.Type)
		default:
			invalid(gwapiv1.RouteReasonUnsupportedValue, "%s.type: unknown filter type %q", fp, f.Type)
		}
	}
	_, rd := seen[gwapiv1.HTTPRouteFilterRequestRedirect]
	_, rw := seen[gwapiv1.HTTPRouteFilterURLRewrite]
	if rd && rw {
		// Reported in preference to anything else: it is the one
		// combination the spec names as incompatible.
		fr.reason = string(gwapiv1.RouteReasonIncompatibleFilters)
		fr.problem = path + ": RequestRedirect and URLRewrite filters cannot be combined"
	}
	return fr
}

// headerModifier validates header names (RFC 7230 tokens, each at most once
// per list) and values (no control characters, which would let a value
// smuggle a header).
func headerModifier(h *gwapiv1.HTTPHeaderFilter) (*ir.HeaderModifier, error) {
	out := &ir.HeaderModifier{}
	check := func(list string, i int, name, value string, seen map[string]bool) error {
		if !tokenRE.MatchString(name) {
			return fmt.Errorf("%s[%d].name: %q is not a valid header name", list, i, name)
		}
		if seen[strings.ToLower(name)] {
			return fmt.Errorf("%s[%d].name: %q appears twice", list, i, name)
		}
		seen[strings.ToLower(name)] = true
		if strings.ContainsAny(value, "\r\n\x00") {
			return fmt.Errorf("%s[%d].value: must not contain CR, LF or NUL", list, i)
		}
		return nil
	}
	seen := map[string]bool{}
	for i, x := range h.Set {
		if err := check("set", i, string(x.Name), x.Value, seen); err != nil {
			return nil, err
		}
		out.Set = append(out.Set, ir.Header{Name: string(x.Name), Value: x.Value})
	}
	seen = map[string]bool{}
	for i, x := range h.Add {
		if err := check("add", i, string(x.Name), x.Value, seen); err != nil {
			return nil, err
		}
		out.Add = append(out.Add, ir.Header{Name: string(x.Name), Value: x.Value})
	}
	seen = map[string]bool{}
	for i, x := range h.Remove {
		if err := check("remove", i, x, "", seen); err != nil {
			return nil, err
		}
		out.Remove = append(out.Remove, x)
	}
	return out, nil
}

// pathModifier validates a redirect or rewrite path. ReplacePrefixMatch
// replaces the prefix a PathPrefix match matched, so every match of the
// rule must be one. (The CRD demands exactly one PathPrefix match; any
// number is accepted here, each Route knowing its own prefix.)
func pathModifier(pm *gwapiv1.HTTPPathModifier, matches []ir.Match) (*ir.PathModifier, error) {
	switch pm.Type {
	case gwapiv1.FullPathHTTPPathModifier:
		if pm.ReplaceFullPath == nil {
			return nil, fmt.Errorf("path.replaceFullPath: required for type ReplaceFullPath")
		}
		if !strings.HasPrefix(*pm.ReplaceFullPath, "/") {
			return nil, fmt.Errorf("path.replaceFullPath: %q must start with \"/\"", *pm.ReplaceFullPath)
		}
		return &ir.PathModifier{Type: ir.FullPathReplace, Value: *pm.ReplaceFullPath}, nil
	case gwapiv1.PrefixMatchHTTPPathModifier:
		if pm.ReplacePrefixMatch == nil {
			return nil, fmt.Errorf("path.replacePrefixMatch: required for type ReplacePrefixMatch")
		}
		v := *pm.ReplacePrefixMatch
		if v != "" && !strings.HasPrefix(v, "/") {
			return nil, fmt.Errorf("path.replacePrefixMatch: %q must start with \"/\"", v)
		}
		for j, m := range matches {
			if m.Path.Type != ir.PathPrefix {
				return nil, fmt.Errorf("path.replacePrefixMatch: needs PathPrefix path matches, but the rule's matches[%d] is %s", j, m.Path.Type)
			}
		}
		return &ir.PathModifier{Type: ir.PrefixMatchReplace, Value: v}, nil
	}
	return nil, fmt.Errorf("path.type: %q is not supported; use ReplaceFullPath or ReplacePrefixMatch", pm.Type)
}

var redirectCodes = map[int]bool{301: true, 302: true, 303: true, 307: true, 308: true}

func redirect(r *gwapiv1.HTTPRequestRedirectFilter, matches []ir.Match) (*ir.Redirect, error) {
	out := &ir.Redirect{StatusCode: 302}
	if r.Scheme != nil {
		if *r.Scheme != "http" && *r.Scheme != "https" {
			return nil, fmt.Errorf("scheme: %q is not supported; use http or https", *r.Scheme)
		}
		out.Scheme = ptrTo(*r.Scheme)
	}
	if r.Hostname != nil {
		if err := checkHostname(string(*r.Hostname), false); err != nil {
			return nil, fmt.Errorf("hostname: %v", err)
		}
		out.Hostname = ptrTo(string(*r.Hostname))
	}
	if r.Port != nil {
		if *r.Port < 1 || *r.Port > 65535 {
			return nil, fmt.Errorf("port: %d is not a valid port (1-65535)", *r.Port)
		}
		out.Port = ptrTo(*r.Port)
	}
	if r.Path != nil {
		pm, err := pathModifier(r.Path, matches)
		if err != nil {
			return nil, err
		}
		out.Path = pm
	}
	if r.StatusCode != nil {
		if !redirectCodes[*r.StatusCode] {
			return nil, fmt.Errorf("statusCode: %d is not a redirect status (301, 302, 303, 307 or 308)", *r.StatusCode)
		}
		out.StatusCode = *r.StatusCode
	}
	return out, nil
}

func urlRewrite(r *gwapiv1.HTTPURLRewriteFilter, matches []ir.Match) (*ir.URLRewrite, error) {
	out := &ir.URLRewrite{}
	if r.Hostname != nil {
		if err := checkHostname(string(*r.Hostname), false); err != nil {
			return nil, fmt.Errorf("hostname: %v", err)
		}
		out.Hostname = ptrTo(string(*r.Hostname))
	}
	if r.Path != nil {
		pm, err := pathModifier(r.Path, matches)
		if err != nil {
			return nil, err
		}
		out.Path = pm
	}
	return out, nil
}

// mirror compiles a RequestMirror filter. An unresolvable backendRef is
// reported through ResolvedRefs and mirrors nothing, as the spec says; a bad
// percent or fraction makes the rule invalid.
func (t *translator) mirror(rs *routeState, path string, m *gwapiv1.HTTPRequestMirrorFilter, fr *filterResult) (*ir.Mirror, string) {
	if m == nil {
		return nil, path + ": required for type RequestMirror"
	}
	out := &ir.Mirror{Percent: 100}
	switch {
	case m.Percent != nil && m.Fraction != nil:
		return nil, path + ": percent and fraction cannot both be set"
	case m.Percent != nil:
		if *m.Percent < 0 || *m.Percent > 100 {
			return nil, fmt.Sprintf("%s.percent: %d is not in 0-100", path, *m.Percent)
		}
		out.Percent = float64(*m.Percent)
	case m.Fraction != nil:
		den := int32(100)
		if m.Fraction.Denominator != nil {
			den = *m.Fraction.Denominator
		}
		if den < 1 || m.Fraction.Numerator < 0 || m.Fraction.Numerator > den {
			return nil, fmt.Sprintf("%s.fraction: %d/%d is not a fraction between 0 and 1", path, m.Fraction.Numerator, den)
		}
		out.Percent = 100 * float64(m.Fraction.Numerator) / float64(den)
	}
	wb, ref, problem := t.backendRef(rs, path+".backendRef", &gwapiv1.BackendRef{BackendObjectReference: m.BackendRef})
	if problem != "" {
		return nil, problem
	}
	if ref != nil {
		fr.mirrorRefs = append(fr.mirrorRefs, *ref)
	}
	out.Target = wb.Target
	return out, ""
}
