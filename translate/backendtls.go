package translate

import (
	"crypto/x509"
	"fmt"
	"net/url"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/meshgate/meshgate/ir"
)

// BackendTLSPolicy (Gateway API, GEP-1897) makes the gateway speak TLS to
// the Service ports it targets and verify their certificates.
//
// How Meshgate reads it:
//   - Targets are core Services (group "", kind Service), optionally one
//     port by name (sectionName). A policy naming a port takes precedence
//     over one naming the whole Service; two policies naming the same
//     Service and sectionName conflict, and the older one (then the first
//     by namespace/name) wins, the other is Accepted=False Conflicted.
//   - validation.hostname is the SNI and, unless subjectAltNames are
//     given, the name the certificate must carry; with subjectAltNames the
//     certificate must carry one of them instead.
//   - CA certificates come from ConfigMaps (key ca.crt) in the policy's
//     namespace, or the system roots (wellKnownCACertificates: System).
//   - options are implementation-specific and Meshgate defines none: they
//     are ignored (and said so in the Accepted message).
//   - A policy that is invalid, or whose CA references are all invalid,
//     still claims its targets but fails closed: every connection to them
//     fails (503), as the spec requires for invalid CA references, rather
//     than sending the requests unencrypted or unverified.
//   - Status has one ancestor per Gateway of this controller whose routes
//     send traffic (backendRefs or mirrors) to a targeted Service port.

const (
	kindBackendTLSPolicy = "BackendTLSPolicy"
	kindConfigMap        = "ConfigMap"
	// maxPolicyAncestors is the API's limit on status.ancestors.
	maxPolicyAncestors = 16
)

// btlsTarget is a Service, or one port of it by name (section).
type btlsTarget struct{ ns, svc, section string }

// svcPort is a Service port by name, as backends are made from.
type svcPort struct{ ns, svc, port string }

// backendTLSPolicy is one validated BackendTLSPolicy.
type backendTLSPolicy struct {
	p *gwapiv1.BackendTLSPolicy
	// targets are the targetRefs naming an existing Service (and port).
	targets []btlsTarget
	// Accepted=False when acceptReason is set.
	acceptReason gwapiv1.PolicyConditionReason
	acceptMsg    string
	// ResolvedRefs=False when refReason is set.
	refReason gwapiv1.PolicyConditionReason
	refMsg    string
	// ignored notes what Meshgate does not act on (options, targets not
	// found while others are).
	ignored []string
	// tls is what the targeted ports get; its Error is set when the
	// policy is unusable.
	tls *ir.UpstreamTLS
}

// backendTLSIndex is every BackendTLSPolicy and which one applies where.
type backendTLSIndex struct {
	all      []*backendTLSPolicy
	byTarget map[btlsTarget]*backendTLSPolicy
}

// translateBackendTLSPolicies validates the policies and resolves their
// targets and conflicts, before routes are translated so that the Service
// backends made for routes carry their TLS settings.
func (t *translator) translateBackendTLSPolicies() {
	idx := &backendTLSIndex{byTarget: map[btlsTarget]*backendTLSPolicy{}}
	t.btls = idx
	var ps []*gwapiv1.BackendTLSPolicy
	for _, p := range t.s.BackendTLSPolicies {
		if p != nil {
			ps = append(ps, p)
		}
	}
	if len(ps) == 0 {
		return
	}
	cms := map[nsName]*corev1.ConfigMap{}
	for _, c := range t.s.ConfigMaps {
		if c != nil {
			cms[nsName{c.Namespace, c.Name}] = c
		}
	}
	sort.SliceStable(ps, func(i, j int) bool { return olderFirst(ps[i], ps[j]) })
	for _, p := range ps {
		bp := &backendTLSPolicy{p: p}
		t.backendTLSTargets(bp)
		t.backendTLSValidation(bp, cms)
		for k := range p.Spec.Options {
			bp.ignored = append(bp.ignored, fmt.Sprintf("spec.options[%s]", k))
		}
		sort.Strings(bp.ignored)
		for _, tg := range bp.targets {
			if other := idx.byTarget[tg]; other != nil {
				what := "Service " + tg.ns + "/" + tg.svc
				if tg.section != "" {
					what += " port " + tg.section
				}
				bp.accept(gwapiv1.PolicyReasonConflicted, fmt.Sprintf("spec.targetRefs: %s is already targeted by the older BackendTLSPolicy %s/%s", what, other.p.Namespace, other.p.Name))
				continue
			}
			idx.byTarget[tg] = bp
		}
		idx.all = append(idx.all, bp)
	}
}

// acceptRank orders the reasons a policy is not accepted: the first one
// recorded of the most important kind is reported.
var acceptRank = map[gwapiv1.PolicyConditionReason]int{
	gwapiv1.PolicyReasonInvalid:                        4,
	gwapiv1.PolicyReasonTargetNotFound:                 3,
	gwapiv1.PolicyReasonConflicted:                     2,
	gwapiv1.BackendTLSPolicyReasonNoValidCACertificate: 1,
}

// accept records why the policy is not accepted.
func (bp *backendTLSPolicy) accept(reason gwapiv1.PolicyConditionReason, msg string) {
	if acceptRank[reason] > acceptRank[bp.acceptReason] {
		bp.acceptReason, bp.acceptMsg = reason, msg
	}
}

// backendTLSTargets resolves spec.targetRefs to Services and ports.
func (t *translator) backendTLSTargets(bp *backendTLSPolicy) {
	p := bp.p
	if len(p.Spec.TargetRefs) == 0 {
		bp.accept(gwapiv1.PolicyReasonInvalid, "spec.targetRefs: at least one target is required")
		return
	}
	var notFound []string
	seen := map[btlsTarget]bool{}
	for i, ref := range p.Spec.TargetRefs {
		path := fmt.Sprintf("spec.targetRefs[%d]", i)
		if ref.Group != "" || ref.Kind != kindService {
			bp.accept(gwapiv1.PolicyReasonInvalid, fmt.Sprintf("%s: %s is not a supported target; a BackendTLSPolicy targets core Services", path, groupKind(string(ref.Group), string(ref.Kind))))
			continue
		}
		svc := t.services[nsName{p.Namespace, string(ref.Name)}]
		if svc == nil {
			notFound = append(notFound, path+": "+t.notFound(kindService, p.Namespace, string(ref.Name)))
			continue
		}
		tg := btlsTarget{ns: p.Namespace, svc: svc.Name}
		if ref.SectionName != nil && *ref.SectionName != "" {
			tg.section = string(*ref.SectionName)
			found := false
			for _, sp := range svc.Spec.Ports {
				found = found || sp.Name == tg.section
			}
			if !found {
				notFound = append(notFound, fmt.Sprintf("%s.sectionName: Service %s/%s has no port named %q", path, p.Namespace, svc.Name, tg.section))
				continue
			}
		}
		if seen[tg] {
			bp.accept(gwapiv1.PolicyReasonInvalid, fmt.Sprintf("%s: duplicates an earlier targetRef", path))
			continue
		}
		seen[tg] = true
		bp.targets = append(bp.targets, tg)
	}
	if len(notFound) > 0 {
		if len(bp.targets) == 0 {
			bp.accept(gwapiv1.PolicyReasonTargetNotFound, strings.Join(notFound, "; "))
		} else {
			bp.ignored = append(bp.ignored, notFound...)
		}
	}
}

// backendTLSValidation checks spec.validation and builds the TLS settings
// the targets get.
func (t *translator) backendTLSValidation(bp *backendTLSPolicy, cms map[nsName]*corev1.ConfigMap) {
	p := bp.p
	v := &p.Spec.Validation
	out := &ir.UpstreamTLS{ServerName: string(v.Hostname)}
	invalid := func(msg string) { bp.accept(gwapiv1.PolicyReasonInvalid, msg) }
	if v.Hostname == "" {
		invalid("spec.validation.hostname: required")
	} else if err := checkHostname(string(v.Hostname), false); err != nil {
		invalid(fmt.Sprintf("spec.validation.hostname: %v", err))
	}
	for i, san := range v.SubjectAltNames {
		path := fmt.Sprintf("spec.validation.subjectAltNames[%d]", i)
		switch san.Type {
		case gwapiv1.HostnameSubjectAltNameType:
			if san.URI != "" {
				invalid(path + ".uri: must be empty when type is Hostname")
			} else if err := checkHostname(string(san.Hostname), true); san.Hostname == "" || err != nil {
				if err == nil {
					err = fmt.Errorf("required when type is Hostname")
				}
				invalid(fmt.Sprintf("%s.hostname: %v", path, err))
			} else {
				out.SANDNSNames = append(out.SANDNSNames, strings.ToLower(string(san.Hostname)))
			}
		case gwapiv1.URISubjectAltNameType:
			u, err := url.Parse(string(san.URI))
			switch {
			case san.Hostname != "":
				invalid(path + ".hostname: must be empty when type is URI")
			case san.URI == "":
				invalid(path + ".uri: required when type is URI")
			case err != nil || u.Scheme == "" || u.Opaque == "" && u.Host == "" && u.Path == "":
				invalid(fmt.Sprintf("%s.uri: %q is not an absolute URI with a scheme", path, san.URI))
			default:
				out.SANURIs = append(out.SANURIs, string(san.URI))
			}
		default:
			invalid(fmt.Sprintf("%s.type: %q is not supported (Hostname or URI)", path, san.Type))
		}
	}

	wk := v.WellKnownCACertificates != nil && *v.WellKnownCACertificates != ""
	switch {
	case wk && len(v.CACertificateRefs) > 0:
		invalid("spec.validation: caCertificateRefs and wellKnownCACertificates are mutually exclusive")
	case wk && *v.WellKnownCACertificates != gwapiv1.WellKnownCACertificatesSystem:
		invalid(fmt.Sprintf("spec.validation.wellKnownCACertificates: %q is not supported; use System or caCertificateRefs", *v.WellKnownCACertificates))
	case wk:
		out.CAName = "system"
	case len(v.CACertificateRefs) == 0:
		invalid("spec.validation: one of caCertificateRefs or wellKnownCACertificates is required")
	default:
		var names, problems []string
		for i, ref := range v.CACertificateRefs {
			path := fmt.Sprintf("spec.validation.caCertificateRefs[%d]", i)
			fail := func(reason gwapiv1.PolicyConditionReason, msg string) {
				if bp.refReason == "" {
					bp.refReason = reason
				}
				problems = append(problems, path+": "+msg)
			}
			if ref.Group != "" || ref.Kind != kindConfigMap {
				fail(gwapiv1.BackendTLSPolicyReasonInvalidKind, fmt.Sprintf("%s is not a supported kind; use a core ConfigMap", groupKind(string(ref.Group), string(ref.Kind))))
				continue
			}
			cm := cms[nsName{p.Namespace, string(ref.Name)}]
			if cm == nil {
				fail(gwapiv1.BackendTLSPolicyReasonInvalidCACertificateRef, t.notFound(kindConfigMap, p.Namespace, string(ref.Name)))
				continue
			}
			pem := []byte(cm.Data["ca.crt"])
			if len(pem) == 0 {
				pem = cm.BinaryData["ca.crt"]
			}
			if len(pem) == 0 || !x509.NewCertPool().AppendCertsFromPEM(pem) {
				fail(gwapiv1.BackendTLSPolicyReasonInvalidCACertificateRef, fmt.Sprintf("ConfigMap %s/%s has no PEM certificate under ca.crt", p.Namespace, ref.Name))
				continue
			}
			out.CAPEM = append(out.CAPEM, pem...)
			out.CAPEM = append(out.CAPEM, '\n')
			names = append(names, "configmap/"+p.Namespace+"/"+string(ref.Name))
		}
		out.CAName = strings.Join(names, ",")
		if len(problems) > 0 {
			bp.refMsg = strings.Join(problems, "; ")
		}
		if len(names) == 0 {
			bp.accept(gwapiv1.BackendTLSPolicyReasonNoValidCACertificate, bp.refMsg)
		}
	}
	if bp.acceptReason == gwapiv1.PolicyReasonInvalid || bp.acceptReason == gwapiv1.BackendTLSPolicyReasonNoValidCACertificate {
		// Fail closed: the targets were meant to be reached over
		// verified TLS.
		out = &ir.UpstreamTLS{
			ServerName: out.ServerName,
			Error:      fmt.Sprintf("BackendTLSPolicy %s/%s is not usable: %s", p.Namespace, p.Name, bp.acceptMsg),
		}
	}
	bp.tls = out
}

// serviceTLS is the TLS a Service port is spoken to with: that of the
// BackendTLSPolicy naming the port, else of the one naming the Service;
// nil for cleartext.
func (t *translator) serviceTLS(ns, name string, sp *corev1.ServicePort) *ir.UpstreamTLS {
	if bp := t.backendTLSPolicyFor(ns, name, sp.Name); bp != nil {
		return bp.tls
	}
	return nil
}

func (t *translator) backendTLSPolicyFor(ns, name, port string) *backendTLSPolicy {
	if t.btls == nil {
		return nil
	}
	if port != "" {
		if bp := t.btls.byTarget[btlsTarget{ns, name, port}]; bp != nil {
			return bp
		}
	}
	return t.btls.byTarget[btlsTarget{ns, name, ""}]
}

// backendTLSPolicyStatuses reports every policy, with one ancestor per
// Gateway whose routes use a Service port it targets. It runs after routes
// are installed.
func (t *translator) backendTLSPolicyStatuses() {
	if t.btls == nil || len(t.btls.all) == 0 {
		return
	}
	used := t.servicePortGateways()
	for _, bp := range t.btls.all {
		p := bp.p
		gen := p.Generation
		gws := map[nsName]bool{}
		for _, ref := range p.Spec.TargetRefs {
			if ref.Group != "" || ref.Kind != kindService {
				continue
			}
			section := ""
			if ref.SectionName != nil {
				section = string(*ref.SectionName)
			}
			for sp, g := range used {
				if sp.ns == p.Namespace && sp.svc == string(ref.Name) && (section == "" || section == sp.port) {
					for k := range g {
						gws[k] = true
					}
				}
			}
		}
		st := ObjectStatus{Kind: kindBackendTLSPolicy, Namespace: p.Namespace, Name: p.Name, Accepted: true}
		var accepted metav1.Condition
		if bp.acceptReason != "" {
			accepted = condition(string(gwapiv1.PolicyConditionAccepted), false, string(bp.acceptReason), bp.acceptMsg, gen)
			st.Accepted, st.Reason = false, bp.acceptMsg
		} else {
			msg := "Policy is accepted"
			if len(bp.ignored) > 0 {
				msg += "; ignored: " + strings.Join(bp.ignored, "; ")
			}
			accepted = condition(string(gwapiv1.PolicyConditionAccepted), true, string(gwapiv1.PolicyReasonAccepted), msg, gen)
		}
		resolved := condition(string(gwapiv1.BackendTLSPolicyConditionResolvedRefs), true, string(gwapiv1.BackendTLSPolicyReasonResolvedRefs), "All references are resolved", gen)
		if bp.refReason != "" {
			resolved = condition(string(gwapiv1.BackendTLSPolicyConditionResolvedRefs), false, string(bp.refReason), bp.refMsg, gen)
			if st.Accepted {
				st.Accepted, st.Reason = false, bp.refMsg
			}
		}
		st.Conditions = []metav1.Condition{accepted, resolved}
		keys := make([]nsName, 0, len(gws))
		for k := range gws {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool { return keys[i].String() < keys[j].String() })
		for _, k := range keys {
			if len(st.Ancestors) == maxPolicyAncestors {
				break
			}
			group, kind, ns := gwapiv1.Group(gatewayGroup), gwapiv1.Kind(kindGateway), gwapiv1.Namespace(k.ns)
			st.Ancestors = append(st.Ancestors, gwapiv1.PolicyAncestorStatus{
				AncestorRef:    gwapiv1.ParentReference{Group: &group, Kind: &kind, Namespace: &ns, Name: gwapiv1.ObjectName(k.name)},
				ControllerName: gwapiv1.GatewayController(t.opts.ControllerName),
				Conditions:     st.Conditions,
			})
		}
		t.statuses = append(t.statuses, st)
	}
}

// servicePortGateways lists, for each Service port that installed HTTP and
// gRPC routes send traffic to (backendRefs and mirrors), the Gateways of
// those routes. TCP, TLS and UDP routes pass bytes through: the policy does
// not apply to them.
func (t *translator) servicePortGateways() map[svcPort]map[nsName]bool {
	used := map[svcPort]map[nsName]bool{}
	note := func(gw nsName, b *ir.Backend) {
		if b == nil {
			return
		}
		name, _, _ := strings.Cut(b.Name, "~") // a TrafficPolicy's variant
		o, ok := t.backendOrigin[name]
		if !ok || o.kind != kindService {
			return
		}
		k := svcPort{o.ns, o.name, o.portName}
		if used[k] == nil {
			used[k] = map[nsName]bool{}
		}
		used[k][gw] = true
	}
	for _, sock := range t.sockets {
		if sock.owner == nil {
			continue
		}
		gw := sock.owner.key
		for _, h := range sock.hosts {
			for _, r := range h.Routes {
				for _, wb := range r.Backends {
					note(gw, wb.Target)
				}
				for _, f := range r.Filters {
					if f.RequestMirror != nil {
						note(gw, f.RequestMirror.Target)
					}
				}
			}
		}
	}
	return used
}
