package translate

import (
	"crypto/x509"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"

	mgv1alpha1 "github.com/meshgate/meshgate/api/v1alpha1"
	"github.com/meshgate/meshgate/ir"
)

const kindBackend = mgv1alpha1.KindBackend

// appProtocol maps a Service port's or Backend's appProtocol to how the
// proxy speaks to the endpoints. Protocols that need TLS to the backend are
// refused (Meshgate has no backend TLS yet); the spec says such a backend
// is invalid rather than spoken to in the wrong protocol. Anything else,
// including WebSocket, is HTTP/1.1.
func appProtocol(p string) (ir.BackendProtocol, error) {
	switch p {
	case "kubernetes.io/h2c", "h2c":
		return ir.BackendH2C, nil
	case "https", "kubernetes.io/wss", "tls":
		return "", fmt.Errorf("appProtocol %q needs TLS to the backend, which is not supported", p)
	}
	return ir.BackendHTTP1, nil
}

// translateBackends validates every Meshgate Backend and reports its status.
// Invalid ones stay in the index so references to them can say why.
func (t *translator) translateBackends() {
	for _, b := range t.s.Backends {
		if b == nil {
			continue
		}
		bs := &backendState{b: b}
		eps, proto, problem := validateBackend(b)
		var upTLS *ir.UpstreamTLS
		if problem == "" && b.Spec.TLS != nil {
			upTLS, problem = t.backendTLS(b)
		}
		st := ObjectStatus{Kind: kindBackend, Namespace: b.Namespace, Name: b.Name}
		if problem != "" {
			bs.problem = problem
			st.Reason = problem
			st.Conditions = append(st.Conditions, condition("Accepted", false, "Invalid", problem, b.Generation))
		} else {
			name := "backend/" + b.Namespace + "/" + b.Name
			bs.target = &ir.Backend{Name: name, Protocol: proto, Endpoints: eps, TLS: upTLS}
			t.irBackends[name] = bs.target
			t.backendOrigin[name] = backendOrigin{kind: kindBackend, ns: b.Namespace, name: b.Name}
			st.Accepted = true
			st.Conditions = append(st.Conditions, condition("Accepted", true, "Accepted", "Backend is valid", b.Generation))
		}
		t.backends[nsName{b.Namespace, b.Name}] = bs
		t.statuses = append(t.statuses, st)
	}
}

func validateBackend(b *mgv1alpha1.Backend) ([]ir.Endpoint, ir.BackendProtocol, string) {
	proto, err := appProtocol(b.Spec.AppProtocol)
	if b.Spec.TLS != nil && b.Spec.AppProtocol == "h2" {
		proto, err = ir.BackendH2C, nil
	}
	if err != nil {
		return nil, "", "spec.appProtocol: " + err.Error()
	}
	if len(b.Spec.Endpoints) == 0 {
		return nil, "", "spec.endpoints: at least one endpoint is required"
	}
	seen := map[string]bool{}
	var eps []ir.Endpoint
	for i, e := range b.Spec.Endpoints {
		if e.Address == "" {
			return nil, "", fmt.Sprintf("spec.endpoints[%d].address: required", i)
		}
		addr := e.Address
		if ip, err := netip.ParseAddr(addr); err == nil {
			addr = ip.String()
		} else if err := checkHostname(addr, false); err != nil {
			return nil, "", fmt.Sprintf("spec.endpoints[%d].address: %q is neither an IP address nor a valid host name", i, e.Address)
		}
		if e.Port < 1 || e.Port > 65535 {
			return nil, "", fmt.Sprintf("spec.endpoints[%d].port: %d is not a valid port (1-65535)", i, e.Port)
		}
		a := net.JoinHostPort(addr, fmt.Sprint(e.Port))
		if !seen[a] {
			seen[a] = true
			ep := ir.Endpoint{Address: a}
			if e.Weight != nil {
				if *e.Weight < 1 || *e.Weight > 1000 {
					return nil, "", fmt.Sprintf("spec.endpoints[%d].weight: %d is out of range 1-1000", i, *e.Weight)
				}
				if *e.Weight > 1 {
					ep.Weight = *e.Weight
				}
			}
			eps = append(eps, ep)
		}
	}
	sort.Slice(eps, func(i, j int) bool { return eps[i].Address < eps[j].Address })
	return eps, proto, ""
}

// backendRef resolves one backendRef. It returns the weighted backend (with
// a nil Target when unresolvable), the reference problem if any (for
// ResolvedRefs) and a value problem that makes the whole rule invalid.
func (t *translator) backendRef(rs *routeState, path string, br *gwapiv1.BackendRef) (ir.WeightedBackend, *refProblem, string) {
	wb := ir.WeightedBackend{Weight: 1}
	if br.Weight != nil {
		if *br.Weight < 0 || *br.Weight > 1000000 {
			return wb, nil, fmt.Sprintf("%s.weight: %d is out of range 0-1000000", path, *br.Weight)
		}
		wb.Weight = *br.Weight
	}
	group, kind := "", kindService
	if br.Group != nil {
		group = string(*br.Group)
	}
	if br.Kind != nil {
		kind = string(*br.Kind)
	}
	routeNS := rs.key.ns
	ns := routeNS
	if br.Namespace != nil && *br.Namespace != "" {
		ns = string(*br.Namespace)
	}
	name := string(br.Name)
	fail := func(reason gwapiv1.RouteConditionReason, format string, args ...any) (ir.WeightedBackend, *refProblem, string) {
		return wb, &refProblem{string(reason), path + ": " + fmt.Sprintf(format, args...)}, ""
	}
	failPort := func(format string, args ...any) (ir.WeightedBackend, *refProblem, string) {
		return wb, &refProblem{string(gwapiv1.RouteReasonUnsupportedValue), path + ".port: " + fmt.Sprintf(format, args...)}, ""
	}
	isService := group == "" && kind == kindService
	isBackend := group == mgv1alpha1.GroupName && kind == kindBackend
	if !isService && !isBackend {
		return fail(gwapiv1.RouteReasonInvalidKind, "%s is not a supported backend kind; use a core Service or a %s Backend", groupKind(group, kind), mgv1alpha1.GroupName)
	}
	if !t.refGranted(gatewayGroup, rs.kind, routeNS, group, kind, ns, name) {
		return fail(gwapiv1.RouteReasonRefNotPermitted, "%s %s/%s is in another namespace and no ReferenceGrant there allows %ss from %s", kind, ns, name, rs.kind, routeNS)
	}
	if isService {
		if br.Port == nil {
			return failPort("required for a Service backend")
		}
		target, reason, msg := t.serviceBackend(ns, name, *br.Port, wantProtocol(rs.kind))
		if target == nil {
			return fail(reason, "%s", msg)
		}
		wb.Target = t.withProtocol(target, wantProtocol(rs.kind))
		return wb, nil, ""
	}
	bs := t.backends[nsName{ns, name}]
	switch {
	case bs == nil:
		return fail(gwapiv1.RouteReasonBackendNotFound, "%s", t.notFound(kindBackend, ns, name))
	case bs.problem != "":
		return fail(gwapiv1.RouteReasonBackendNotFound, "Backend %s/%s is invalid: %s", ns, name, bs.problem)
	}
	if br.Port != nil {
		// A Backend's endpoints carry their own ports; a port on the
		// reference must agree with them rather than be ignored.
		for _, e := range bs.b.Spec.Endpoints {
			if e.Port != *br.Port {
				return failPort("%d does not match Backend %s/%s, whose endpoints use port %d", *br.Port, ns, name, e.Port)
			}
		}
	}
	wb.Target = t.withProtocol(bs.target, wantProtocol(rs.kind))
	return wb, nil, ""
}

// serviceBackend resolves a Service port to its ready endpoints. Endpoints
// come from the EndpointSlices labelled with the Service's name, through the
// slice port whose name is the Service port's name (which is how targetPort,
// named or numeric, is resolved by Kubernetes). Endpoints whose ready
// condition is false are left out; an unknown condition counts as ready, as
// the EndpointSlice API says. One *ir.Backend is shared by every route that
// uses the same Service port.
func (t *translator) serviceBackend(ns, name string, port int32, want ir.BackendProtocol) (*ir.Backend, gwapiv1.RouteConditionReason, string) {
	svc := t.services[nsName{ns, name}]
	if svc == nil {
		return nil, gwapiv1.RouteReasonBackendNotFound, t.notFound(kindService, ns, name)
	}
	var sp *corev1.ServicePort
	for i := range svc.Spec.Ports {
		if svc.Spec.Ports[i].Port == port {
			sp = &svc.Spec.Ports[i]
			break
		}
	}
	if sp == nil {
		return nil, gwapiv1.RouteReasonBackendNotFound, fmt.Sprintf("Service %s/%s has no port %d", ns, name, port)
	}
	var app string
	if sp.AppProtocol != nil {
		app = *sp.AppProtocol
	}
	upTLS := t.serviceTLS(ns, name, sp)
	proto, err := appProtocol(app)
	if err != nil && upTLS != nil {
		// A BackendTLSPolicy provides the TLS these protocols need.
		proto, err = ir.BackendHTTP1, nil
	}
	if err != nil && want != ir.BackendTCP && want != ir.BackendUDP {
		// A TCPRoute or TLSRoute passes bytes through, so the port's
		// application protocol does not matter to it.
		return nil, gwapiv1.RouteReasonUnsupportedProtocol, fmt.Sprintf("Service %s/%s port %d: %v", ns, name, port, err)
	}
	bname := fmt.Sprintf("service/%s/%s:%d", ns, name, port)
	if b := t.irBackends[bname]; b != nil {
		return b, "", ""
	}
	b := &ir.Backend{Name: bname, Protocol: proto, Endpoints: t.serviceEndpoints(ns, name, sp), TLS: upTLS}
	t.irBackends[bname] = b
	t.backendOrigin[bname] = backendOrigin{kind: kindService, ns: ns, name: name, portName: sp.Name}
	return b, "", ""
}

func (t *translator) serviceEndpoints(ns, name string, sp *corev1.ServicePort) []ir.Endpoint {
	seen := map[string]bool{}
	var eps []ir.Endpoint
	for _, sl := range t.slices[nsName{ns, name}] {
		port := int32(-1)
		for _, p := range sl.Ports {
			pn := ""
			if p.Name != nil {
				pn = *p.Name
			}
			if pn != sp.Name || p.Port == nil {
				continue
			}
			if p.Protocol != nil && sp.Protocol != "" && *p.Protocol != sp.Protocol {
				continue
			}
			port = *p.Port
			break
		}
		if port < 1 || port > 65535 {
			continue
		}
		for _, ep := range sl.Endpoints {
			c := ep.Conditions
			draining := false
			if c.Ready != nil && !*c.Ready {
				// A terminating endpoint that still serves finishes
				// its work but gets new requests only when nothing
				// else is left, so a rolling update causes no 503s.
				if c.Serving == nil || !*c.Serving || c.Terminating == nil || !*c.Terminating {
					continue
				}
				draining = true
			}
			for _, a := range ep.Addresses {
				addr := net.JoinHostPort(a, fmt.Sprint(port))
				if !seen[addr] {
					seen[addr] = true
					eps = append(eps, ir.Endpoint{Address: addr, Draining: draining})
				}
			}
		}
	}
	sort.Slice(eps, func(i, j int) bool { return eps[i].Address < eps[j].Address })
	return eps
}

// wantProtocol is the upstream protocol a route kind imposes on its
// backends, or "" when the backend's appProtocol decides (HTTPRoute).
func wantProtocol(routeKind string) ir.BackendProtocol {
	switch routeKind {
	case kindGRPCRoute:
		// gRPC is HTTP/2 only; the spec makes GRPCRoute backends h2c
		// whatever the Service port's appProtocol says.
		return ir.BackendH2C
	case kindTCPRoute, kindTLSRoute:
		return ir.BackendTCP
	case kindUDPRoute:
		return ir.BackendUDP
	}
	return ""
}

// withProtocol returns b spoken in protocol p: b itself when it already is
// (or p is empty), otherwise one shared copy per name and protocol. The copy
// keeps b's Name, so runtime state such as the round-robin position is
// shared by every route using the same endpoints.
func (t *translator) withProtocol(b *ir.Backend, p ir.BackendProtocol) *ir.Backend {
	if p == "" || b.Protocol == p {
		return b
	}
	key := b.Name + "|" + string(p)
	if c := t.irBackends[key]; c != nil {
		return c
	}
	c := *b
	c.Protocol = p
	if p == ir.BackendTCP || p == ir.BackendUDP {
		// Bytes are passed through: no TLS of the gateway's own.
		c.TLS = nil
	}
	t.irBackends[key] = &c
	return &c
}

// backendTLS validates a Backend's spec.tls and loads its trusted roots.
func (t *translator) backendTLS(b *mgv1alpha1.Backend) (*ir.UpstreamTLS, string) {
	spec := b.Spec.TLS
	out := &ir.UpstreamTLS{ServerName: spec.ServerName}
	if out.ServerName == "" {
		for _, e := range b.Spec.Endpoints {
			if _, err := netip.ParseAddr(e.Address); err == nil {
				return nil, "spec.tls.serverName: required when an endpoint address is an IP address (the certificate is checked against it)"
			}
		}
		out.ServerName = b.Spec.Endpoints[0].Address
	} else if err := checkHostname(out.ServerName, false); err != nil {
		return nil, fmt.Sprintf("spec.tls.serverName: %v", err)
	}
	var names []string
	for i, ref := range spec.CACertificateRefs {
		sec := t.secrets[nsName{b.Namespace, ref.Name}]
		if sec == nil {
			return nil, fmt.Sprintf("spec.tls.caCertificateRefs[%d]: %s", i, t.notFound(kindSecret, b.Namespace, ref.Name))
		}
		pem := sec.Data["ca.crt"]
		pool := x509.NewCertPool()
		if len(pem) == 0 || !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Sprintf("spec.tls.caCertificateRefs[%d]: Secret %s/%s has no PEM certificate under ca.crt", i, b.Namespace, ref.Name)
		}
		out.CAPEM = append(out.CAPEM, pem...)
		out.CAPEM = append(out.CAPEM, '\n')
		names = append(names, "secret/"+b.Namespace+"/"+ref.Name)
	}
	out.CAName = strings.Join(names, ",")
	if out.CAName == "" {
		out.CAName = "system"
	}
	return out, ""
}
