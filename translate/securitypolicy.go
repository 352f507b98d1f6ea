package translate

import (
	"fmt"
	"net/url"
	"sort"
	"strings"
	"time"

	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"

	mgv1alpha1 "github.com/meshgate/meshgate/api/v1alpha1"
	"github.com/meshgate/meshgate/auth"
	"github.com/meshgate/meshgate/ir"
)

// SecurityPolicy attachment: the same targets, specificity and conflict
// rules as TrafficPolicy (policy.go), with sections ipAccess, basicAuth,
// jwt and extAuth. Gateway and listener policies land on the listener's
// ir.ListenerHost (checked before routing); route and rule policies on
// each ir.Route (checked after). See mgv1alpha1.SecurityPolicy.

type securityPolicy struct {
	p       *mgv1alpha1.SecurityPolicy
	id      string
	problem string
	sec     ir.SecurityPolicy

	found      []bool
	conflicted []string
}

type securityIndex struct {
	byTarget map[policyTarget]*securityPolicy
	all      []*securityPolicy
	// proxyHosts are the listener hosts whose sockets expect PROXY
	// protocol headers.
	proxyHosts map[*ir.ListenerHost]bool
}

// translateSecurityPolicies validates every SecurityPolicy, indexes the
// winners per target and sets the listener-level policies. It runs after
// Gateways and Backends, before routes.
func (t *translator) translateSecurityPolicies() {
	t.security = &securityIndex{byTarget: map[policyTarget]*securityPolicy{}, proxyHosts: map[*ir.ListenerHost]bool{}}
	ps := make([]*mgv1alpha1.SecurityPolicy, 0, len(t.s.SecurityPolicies))
	for _, p := range t.s.SecurityPolicies {
		if p != nil {
			ps = append(ps, p)
		}
	}
	sort.SliceStable(ps, func(i, j int) bool { return olderFirst(ps[i], ps[j]) })
	for _, p := range ps {
		sp := t.convertSecurityPolicy(p)
		t.security.all = append(t.security.all, sp)
		if sp.problem != "" {
			continue
		}
		sp.found = make([]bool, len(p.Spec.TargetRefs))
		sp.conflicted = make([]string, len(p.Spec.TargetRefs))
		for i, ref := range p.Spec.TargetRefs {
			pt := policyTarget{kind: string(ref.Kind), ns: p.Namespace, name: string(ref.Name)}
			if ref.SectionName != nil {
				pt.section = string(*ref.SectionName)
			}
			if pt.kind == kindService || pt.kind == kindBackend || !t.policyTargetExists(string(ref.Group), pt) {
				continue
			}
			sp.found[i] = true
			if prev := t.security.byTarget[pt]; prev != nil {
				sp.conflicted[i] = prev.id
				continue
			}
			t.security.byTarget[pt] = sp
		}
	}
	// Listener level: Gateway-wide, then the listener's own per section.
	for _, gs := range t.gateways {
		gw := t.security.byTarget[policyTarget{kindGateway, gs.key.ns, gs.key.name, ""}]
		for _, ls := range gs.listeners {
			chain := []*securityPolicy{gw, nil}
			if ls.set == nil {
				chain[1] = t.security.byTarget[policyTarget{kindGateway, gs.key.ns, gs.key.name, string(ls.l.Name)}]
			}
			eff := mergeSecurity(chain)
			proxy := false
			for _, sp := range chain {
				if sp != nil && sp.p.Spec.ProxyProtocol {
					proxy = true
				}
			}
			for _, h := range ls.hosts {
				if !eff.Empty() {
					c := *eff
					h.Security = &c
				}
				if proxy && (ls.protocol == ir.ProtocolHTTP || ls.protocol == ir.ProtocolHTTPS) {
					t.security.proxyHosts[h] = true
				}
			}
		}
	}
}

// mergeSecurity takes each section from the last (most specific) policy
// in chain setting it; nil when none does.
func mergeSecurity(chain []*securityPolicy) *ir.SecurityPolicy {
	out := &ir.SecurityPolicy{}
	for _, sp := range chain {
		if sp == nil {
			continue
		}
		if sp.sec.IPAccess != nil {
			out.IPAccess = sp.sec.IPAccess
		}
		if sp.sec.BasicAuth != nil {
			out.BasicAuth = sp.sec.BasicAuth
		}
		if sp.sec.JWT != nil {
			out.JWT = sp.sec.JWT
		}
		if sp.sec.ExtAuth != nil {
			out.ExtAuth = sp.sec.ExtAuth
		}
	}
	if out.Empty() {
		return nil
	}
	return out
}

// applySecurity sets the route- and rule-level policy of r.
func (t *translator) applySecurity(r *ir.Route, rs *routeState) {
	if t.security == nil || len(t.security.byTarget) == 0 {
		return
	}
	g := t.security.byTarget
	chain := []*securityPolicy{g[policyTarget{rs.kind, rs.key.ns, rs.key.name, ""}], nil}
	if r.RuleName != "" {
		chain[1] = g[policyTarget{rs.kind, rs.key.ns, rs.key.name, r.RuleName}]
	}
	r.Security = mergeSecurity(chain)
}

// applyProxyProtocol marks the sockets of listeners that expect PROXY
// protocol headers: one socket serves every listener on its address.
func (t *translator) applyProxyProtocol(cfg *ir.Config) {
	if t.security == nil || len(t.security.proxyHosts) == 0 || cfg == nil {
		return
	}
	for _, l := range cfg.Listeners {
		for _, h := range l.Hosts {
			if t.security.proxyHosts[h] {
				l.ProxyProtocol = true
			}
		}
	}
}

func (t *translator) convertSecurityPolicy(p *mgv1alpha1.SecurityPolicy) *securityPolicy {
	sp := &securityPolicy{p: p, id: p.Namespace + "/" + p.Name}
	fail := func(format string, args ...any) *securityPolicy {
		sp.problem = fmt.Sprintf(format, args...)
		return sp
	}
	s := &p.Spec
	if len(s.TargetRefs) == 0 {
		return fail("spec.targetRefs: at least one target is required")
	}
	for i, ref := range s.TargetRefs {
		k := string(ref.Kind)
		if string(ref.Group) != gatewayGroup || (k != kindGateway && k != kindHTTPRoute && k != kindGRPCRoute) {
			return fail("spec.targetRefs[%d]: %s is not a Gateway, HTTPRoute or GRPCRoute", i, groupKind(string(ref.Group), k))
		}
		if s.ProxyProtocol && k != kindGateway {
			return fail("spec.proxyProtocol: only allowed when every target is a Gateway (targetRefs[%d] is a %s)", i, k)
		}
	}
	if a := s.IPAccess; a != nil {
		if len(a.Allow)+len(a.Deny) == 0 {
			return fail("spec.ipAccess: set allow, deny or both")
		}
		if _, err := auth.NewIPList(a.Allow, a.Deny); err != nil {
			return fail("spec.ipAccess.%v", err)
		}
		sp.sec.IPAccess = &ir.IPAccess{Policy: sp.id, Allow: a.Allow, Deny: a.Deny}
	}
	if b := s.BasicAuth; b != nil {
		data, src, problem := t.policySecret(p.Namespace, "spec.basicAuth.users", b.Users, ".htpasswd")
		if problem != "" {
			return fail("%s", problem)
		}
		users, err := auth.ParseHtpasswd(data)
		if err != nil {
			return fail("spec.basicAuth.users: Secret %s key .htpasswd: %v", src, err)
		}
		realm := b.Realm
		if realm == "" {
			realm = "meshgate"
		}
		if strings.ContainsAny(realm, "\"\r\n") {
			return fail("spec.basicAuth.realm: must not contain quotes or line breaks")
		}
		sp.sec.BasicAuth = &ir.BasicAuth{Policy: sp.id, Realm: realm, Source: "secret/" + src, Users: users}
	}
	if j := s.JWT; j != nil {
		out, problem := t.convertJWT(p.Namespace, sp.id, j)
		if problem != "" {
			return fail("%s", problem)
		}
		sp.sec.JWT = out
	}
	if e := s.ExtAuth; e != nil {
		out, problem := t.convertExtAuth(p.Namespace, sp.id, e)
		if problem != "" {
			return fail("%s", problem)
		}
		sp.sec.ExtAuth = out
	}
	if sp.sec.Empty() && !s.ProxyProtocol {
		return fail("spec: a SecurityPolicy must set at least one section")
	}
	return sp
}

// policySecret reads key of a Secret a policy in ns refers to.
func (t *translator) policySecret(ns, path string, ref gwapiv1.SecretObjectReference, key string) ([]byte, string, string) {
	if ref.Group != nil && *ref.Group != "" || ref.Kind != nil && *ref.Kind != "Secret" {
		return nil, "", path + ": only core Secrets are supported"
	}
	sns := ns
	if ref.Namespace != nil && *ref.Namespace != "" {
		sns = string(*ref.Namespace)
	}
	if !t.refGranted(mgv1alpha1.GroupName, mgv1alpha1.KindSecurityPolicy, ns, "", "Secret", sns, string(ref.Name)) {
		return nil, "", fmt.Sprintf("%s: Secret %s/%s is in another namespace and no ReferenceGrant there allows it", path, sns, ref.Name)
	}
	src := sns + "/" + string(ref.Name)
	sec := t.secrets[nsName{sns, string(ref.Name)}]
	if sec == nil {
		return nil, src, path + ": " + t.notFound("Secret", sns, string(ref.Name))
	}
	data, ok := sec.Data[key]
	if !ok {
		if v, ok2 := sec.StringData[key]; ok2 {
			return []byte(v), src, ""
		}
		return nil, src, fmt.Sprintf("%s: Secret %s has no key %q", path, src, key)
	}
	return data, src, ""
}

func (t *translator) convertJWT(ns, id string, j *mgv1alpha1.JWTAuth) (*ir.JWTAuth, string) {
	out := &ir.JWTAuth{Policy: id, Optional: j.Optional}
	if len(j.Providers) == 0 {
		return nil, "spec.jwt.providers: at least one provider is required"
	}
	names := map[string]bool{}
	for i, p := range j.Providers {
		path := fmt.Sprintf("spec.jwt.providers[%d]", i)
		if p.Name == "" || names[p.Name] {
			return nil, path + ".name: required and unique"
		}
		names[p.Name] = true
		ip := &ir.JWTProvider{Name: p.Name, Issuer: p.Issuer, Audiences: p.Audiences, Algorithms: p.Algorithms, Cookie: p.FromCookie}
		if len(ip.Algorithms) == 0 {
			ip.Algorithms = auth.DefaultAlgorithms
		}
		for k, a := range ip.Algorithms {
			if !auth.ValidAlgorithm(a) {
				return nil, fmt.Sprintf("%s.algorithms[%d]: %q is not accepted (asymmetric algorithms only; never none or HMAC)", path, k, a)
			}
		}
		switch {
		case p.JWKSSecretRef != nil && p.RemoteJWKS != nil, p.JWKSSecretRef == nil && p.RemoteJWKS == nil:
			return nil, path + ": set exactly one of jwksSecretRef and remoteJWKS"
		case p.JWKSSecretRef != nil:
			data, src, problem := t.policySecret(ns, path+".jwksSecretRef", *p.JWKSSecretRef, "jwks")
			if problem != "" {
				return nil, problem
			}
			if _, err := auth.ParseJWKS(data); err != nil {
				return nil, fmt.Sprintf("%s.jwksSecretRef: Secret %s key jwks: %v", path, src, err)
			}
			ip.JWKS, ip.JWKSSource = data, "secret/"+src
		default:
			u, err := url.Parse(p.RemoteJWKS.URI)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return nil, fmt.Sprintf("%s.remoteJWKS.uri: %q is not an http or https URL", path, p.RemoteJWKS.URI)
			}
			ip.RemoteJWKS = p.RemoteJWKS.URI
			ip.CacheDuration = auth.DefaultJWKSCache
			if d := p.RemoteJWKS.CacheDuration; d != nil {
				v, err := parseDuration(*d)
				if err != nil || v <= 0 {
					return nil, fmt.Sprintf("%s.remoteJWKS.cacheDuration: %q is not a positive duration", path, *d)
				}
				ip.CacheDuration = v
			}
		}
		if h := p.FromHeader; h != nil {
			if p.FromCookie != "" {
				return nil, path + ": set at most one of fromHeader and fromCookie"
			}
			if !tokenRE.MatchString(h.Name) {
				return nil, fmt.Sprintf("%s.fromHeader.name: %q is not a valid header name", path, h.Name)
			}
			ip.Header, ip.Prefix = h.Name, h.Prefix
		}
		if p.FromCookie != "" && !tokenRE.MatchString(p.FromCookie) {
			return nil, fmt.Sprintf("%s.fromCookie: %q is not a valid cookie name", path, p.FromCookie)
		}
		for k, c := range p.ClaimToHeaders {
			if c.Claim == "" || !tokenRE.MatchString(c.Header) {
				return nil, fmt.Sprintf("%s.claimToHeaders[%d]: a claim and a valid header name are required", path, k)
			}
			ip.ClaimToHeaders = append(ip.ClaimToHeaders, ir.ClaimToHeader{Claim: c.Claim, Header: c.Header})
		}
		out.Providers = append(out.Providers, ip)
	}
	for i, r := range j.Rules {
		if r.Claim == "" || len(r.Values) == 0 {
			return nil, fmt.Sprintf("spec.jwt.rules[%d]: a claim and at least one value are required", i)
		}
		out.Rules = append(out.Rules, ir.ClaimRule{Claim: r.Claim, Values: r.Values})
	}
	return out, ""
}

func (t *translator) convertExtAuth(ns, id string, e *mgv1alpha1.ExtAuth) (*ir.ExtAuth, string) {
	out := &ir.ExtAuth{Policy: id, Timeout: time.Second, FailOpen: e.FailOpen}
	var ref gwapiv1.BackendObjectReference
	path := "spec.extAuth"
	switch {
	case e.GRPC != nil && e.HTTP != nil, e.GRPC == nil && e.HTTP == nil:
		return nil, "spec.extAuth: set exactly one of grpc and http"
	case e.GRPC != nil:
		out.GRPC, ref, path = true, e.GRPC.BackendRef, "spec.extAuth.grpc.backendRef"
	default:
		ref, path = e.HTTP.BackendRef, "spec.extAuth.http.backendRef"
		out.Path = strings.TrimSuffix(e.HTTP.Path, "/")
		if out.Path != "" && (!strings.HasPrefix(out.Path, "/") || strings.ContainsAny(out.Path, "?# \t\r\n")) {
			return nil, fmt.Sprintf("spec.extAuth.http.path: %q must be a path starting with /", e.HTTP.Path)
		}
		for i, h := range e.HTTP.HeadersToBackend {
			if !tokenRE.MatchString(h) {
				return nil, fmt.Sprintf("spec.extAuth.http.headersToBackend[%d]: %q is not a valid header name", i, h)
			}
		}
		out.HeadersToBackend = e.HTTP.HeadersToBackend
	}
	if e.Timeout != nil {
		v, err := parseDuration(*e.Timeout)
		if err != nil || v <= 0 {
			return nil, fmt.Sprintf("spec.extAuth.timeout: %q is not a positive duration", *e.Timeout)
		}
		out.Timeout = v
	}
	group, kind := "", kindService
	if ref.Group != nil {
		group = string(*ref.Group)
	}
	if ref.Kind != nil {
		kind = string(*ref.Kind)
	}
	bns := ns
	if ref.Namespace != nil && *ref.Namespace != "" {
		bns = string(*ref.Namespace)
	}
	name := string(ref.Name)
	if !t.refGranted(mgv1alpha1.GroupName, mgv1alpha1.KindSecurityPolicy, ns, group, kind, bns, name) {
		return nil, fmt.Sprintf("%s: %s %s/%s is in another namespace and no ReferenceGrant there allows it", path, kind, bns, name)
	}
	want := ir.BackendHTTP1
	if out.GRPC {
		want = ir.BackendH2C
	}
	switch {
	case group == "" && kind == kindService:
		if ref.Port == nil {
			return nil, path + ".port: required for a Service"
		}
		b, _, msg := t.serviceBackend(bns, name, *ref.Port, want)
		if b == nil {
			return nil, path + ": " + msg
		}
		out.Backend = b
	case group == mgv1alpha1.GroupName && kind == kindBackend:
		bs := t.backends[nsName{bns, name}]
		if bs == nil {
			return nil, path + ": " + t.notFound(kindBackend, bns, name)
		}
		if bs.problem != "" {
			return nil, fmt.Sprintf("%s: Backend %s/%s is invalid: %s", path, bns, name, bs.problem)
		}
		out.Backend = bs.target
	default:
		return nil, fmt.Sprintf("%s: %s is not a Service or Backend", path, groupKind(group, kind))
	}
	return out, ""
}

// securityPolicyStatuses reports every SecurityPolicy the way
// policyStatuses reports TrafficPolicies.
func (t *translator) securityPolicyStatuses() {
	if t.security == nil {
		return
	}
	for _, sp := range t.security.all {
		t.statuses = append(t.statuses, attachedPolicyStatus(mgv1alpha1.KindSecurityPolicy, &sp.p.ObjectMeta, sp.p.Spec.TargetRefs, sp.problem, sp.found, sp.conflicted))
	}
}
