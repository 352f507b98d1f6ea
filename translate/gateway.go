package translate

import (
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"net/netip"
	"slices"
	"sort"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/meshgate/meshgate/ir"
	mgtls "github.com/meshgate/meshgate/tls"
)

const (
	kindGatewayClass = "GatewayClass"
	kindGateway      = "Gateway"
	kindListenerSet  = "ListenerSet"
	kindHTTPRoute    = "HTTPRoute"
	kindGRPCRoute    = "GRPCRoute"
	kindTCPRoute     = "TCPRoute"
	kindTLSRoute     = "TLSRoute"
	kindUDPRoute     = "UDPRoute"
	kindService      = "Service"
	kindSecret       = "Secret"
	gatewayGroup     = gwapiv1.GroupName
)

// gatewayState is one Gateway of a class this controller serves.
type gatewayState struct {
	gw  *gwapiv1.Gateway
	key nsName
	// addrs are the IPs its listeners bind, normalised.
	addrs []string
	// reason and problem are set when the Gateway as a whole is not
	// accepted: a GatewayConditionReason and "field: what is wrong".
	reason    gwapiv1.GatewayConditionReason
	problem   string
	listeners []*listenerState
	// sets are the ListenerSets attached to it, in precedence order
	// (oldest first, then namespace/name).
	sets []*listenerSetState
	// tlsState is what spec.tls resolved to; nil when unset.
	tlsState *gatewayTLSState
}

func (g *gatewayState) accepted() bool { return g.problem == "" }

// listenerState is one Gateway listener, or one listener of a ListenerSet
// attached to the Gateway, and everything known about it.
type listenerState struct {
	gs *gatewayState
	// set is the ListenerSet the listener comes from; nil for the
	// Gateway's own listeners.
	set      *listenerSetState
	idx      int
	l        *gwapiv1.Listener
	hostname string
	protocol ir.Protocol
	// tlsMode is set for TLS listeners.
	tlsMode ir.TLSMode

	// Accepted=False when acceptReason is set.
	acceptReason gwapiv1.ListenerConditionReason
	acceptMsg    string
	// Conflicted=True when conflictReason is set (acceptReason is then set
	// too, as conflicted listeners are not accepted).
	conflictReason gwapiv1.ListenerConditionReason
	// ResolvedRefs=False when refs is not empty.
	refs []refProblem
	// overlap is set for OverlappingTLSConfig=True.
	overlap string

	supportedKinds []gwapiv1.RouteGroupKind
	// kinds are the route kinds that may attach, by kind name.
	kinds    map[string]bool
	from     gwapiv1.FromNamespaces
	selector labels.Selector

	certs []*ir.Certificate
	// acme is set when the listener's certificate comes from ACME.
	acme *ir.ACME
	// clientAuth is the Gateway's spec.tls.frontend validation for an
	// HTTPS listener's port; nil for none.
	clientAuth *ir.ClientAuth
	// tlsOpts are the HTTPS listener's tls.options (frontendtls.go).
	tlsOpts mgtls.ListenerOptions
	// hosts are this listener's share of each socket it is bound on.
	hosts []*ir.ListenerHost
	// attached counts the accepted routes attached, by route.
	attached map[nsName]bool
	// httpLike are the HTTPRoutes and GRPCRoutes installed, by kind, with
	// their hostnames here, so that one of the other kind with overlapping
	// hostnames can be refused as the spec requires. Kept by kind so a
	// route is checked only against the other kind (usually few), not
	// against every route of the listener.
	httpLike map[string]*hostOverlap
}

// installedRoute is an HTTPRoute or GRPCRoute installed on a listener.
type installedRoute struct {
	kind  string
	key   nsName
	hosts []string
}

// refProblem is a failed reference: a condition reason and a message that
// starts with the field path.
type refProblem struct {
	reason string
	msg    string
}

func (l *listenerState) path() string {
	return fmt.Sprintf("spec.listeners[%d]", l.idx)
}

func (l *listenerState) name() string {
	if l.set != nil {
		// Listener names need only be unique within their own object,
		// so a ListenerSet's listeners are named after the set.
		return "listenerset/" + l.set.key.String() + "/" + string(l.l.Name)
	}
	return l.gs.key.String() + "/" + string(l.l.Name)
}

// ownerKind and ownerNS are the kind and namespace of the object declaring
// the listener: allowedRoutes "Same" and certificate references are
// relative to them.
func (l *listenerState) ownerKind() string {
	if l.set != nil {
		return kindListenerSet
	}
	return kindGateway
}

func (l *listenerState) ownerNS() string {
	if l.set != nil {
		return l.set.key.ns
	}
	return l.gs.gw.Namespace
}

func (l *listenerState) accepted() bool { return l.acceptReason == "" }

// programmed reports whether the listener is bound: the Gateway and the
// listener are accepted, it conflicts with nothing and, when it terminates
// TLS, it has a certificate.
func (l *listenerState) programmed() bool {
	return l.gs.accepted() && (l.set == nil || l.set.attached()) && l.accepted() && (!l.terminatesTLS() || len(l.certs) > 0 || l.acme != nil)
}

// terminatesTLS reports whether the listener needs certificates.
func (l *listenerState) terminatesTLS() bool {
	return l.protocol == ir.ProtocolHTTPS || (l.protocol == ir.ProtocolTLS && l.tlsMode == ir.TLSTerminate)
}

func (l *listenerState) reject(reason gwapiv1.ListenerConditionReason, format string, args ...any) {
	if l.acceptReason != "" {
		return
	}
	l.acceptReason = reason
	l.acceptMsg = fmt.Sprintf(format, args...)
}

func (t *translator) translateClasses() {
	for _, gc := range t.s.GatewayClasses {
		if gc == nil {
			continue
		}
		st := ObjectStatus{Kind: kindGatewayClass, Name: gc.Name}
		if string(gc.Spec.ControllerName) != t.opts.ControllerName {
			st.Accepted, st.Ignored = true, true
			st.Reason = fmt.Sprintf("spec.controllerName: %q is not this controller (%s)", gc.Spec.ControllerName, t.opts.ControllerName)
			t.statuses = append(t.statuses, st)
			continue
		}
		cs := &classState{gc: gc, accepted: true}
		if gc.Spec.ParametersRef != nil {
			// Meshgate defines no parameters kind, so any reference is
			// unresolvable; accepting the class would silently ignore
			// settings the user asked for.
			cs.accepted = false
			cs.problem = fmt.Sprintf("spec.parametersRef: %s %s is not supported; Meshgate GatewayClasses take no parameters", gc.Spec.ParametersRef.Kind, gc.Spec.ParametersRef.Name)
			st.Conditions = []metav1.Condition{condition(string(gwapiv1.GatewayClassConditionStatusAccepted), false,
				string(gwapiv1.GatewayClassReasonInvalidParameters), cs.problem, gc.Generation)}
			st.Reason = cs.problem
		} else {
			st.Accepted = true
			st.Conditions = []metav1.Condition{condition(string(gwapiv1.GatewayClassConditionStatusAccepted), true,
				string(gwapiv1.GatewayClassReasonAccepted), "GatewayClass is accepted by "+t.opts.ControllerName, gc.Generation)}
		}
		t.classes[gc.Name] = cs
		t.statuses = append(t.statuses, st)
	}
}

func (t *translator) translateGateways() {
	for _, gw := range t.s.Gateways {
		if gw == nil {
			continue
		}
		key := nsName{gw.Namespace, gw.Name}
		cs := t.classes[string(gw.Spec.GatewayClassName)]
		if cs == nil {
			t.foreignGWs[key] = true
			reason := fmt.Sprintf("spec.gatewayClassName: GatewayClass %q is not served by %s", gw.Spec.GatewayClassName, t.opts.ControllerName)
			if !t.classExists(string(gw.Spec.GatewayClassName)) {
				reason = "spec.gatewayClassName: " + t.notFound(kindGatewayClass, "", string(gw.Spec.GatewayClassName))
			}
			t.statuses = append(t.statuses, ObjectStatus{
				Kind: kindGateway, Namespace: gw.Namespace, Name: gw.Name,
				Accepted: true, Ignored: true, Reason: reason,
			})
			continue
		}
		gs := &gatewayState{gw: gw, key: key}
		t.validateGateway(gs, cs)
		t.gatewayIndex[key] = gs
		t.gateways = append(t.gateways, gs)
	}
	// Older Gateways win conflicts for a shared port, so adding a Gateway
	// can never take a working one down.
	sort.SliceStable(t.gateways, func(i, j int) bool { return olderFirst(t.gateways[i].gw, t.gateways[j].gw) })
	t.translateListenerSets()
	for _, gs := range t.gateways {
		t.gatewayTLS(gs)
		findListenerConflicts(gs.listeners, kindGateway)
		findSetConflicts(gs)
	}
	for _, gs := range t.gateways {
		t.bindListeners(gs)
	}
	for _, addr := range sortedKeys(t.sockets) {
		findTLSOverlaps(t.sockets[addr])
	}
}

func (t *translator) classExists(name string) bool {
	for _, gc := range t.s.GatewayClasses {
		if gc != nil && gc.Name == name {
			return true
		}
	}
	return false
}

func (gs *gatewayState) fail(reason gwapiv1.GatewayConditionReason, format string, args ...any) {
	if gs.problem != "" {
		return
	}
	gs.reason = reason
	gs.problem = fmt.Sprintf(format, args...)
}

// validateGateway checks the Gateway-level fields and each listener on its
// own; conflicts between listeners are found afterwards.
func (t *translator) validateGateway(gs *gatewayState, cs *classState) {
	gw := gs.gw
	if !cs.accepted {
		gs.fail(gwapiv1.GatewayReasonInvalid, "spec.gatewayClassName: GatewayClass %s is not accepted: %s", cs.gc.Name, cs.problem)
	}
	if gw.Spec.Infrastructure != nil && gw.Spec.Infrastructure.ParametersRef != nil {
		p := gw.Spec.Infrastructure.ParametersRef
		gs.fail(gwapiv1.GatewayReasonInvalidParameters, "spec.infrastructure.parametersRef: %s %s is not supported; Meshgate Gateways take no parameters", p.Kind, p.Name)
	}
	t.gatewayAddresses(gs)
	if len(gw.Spec.Listeners) == 0 && listenerSetsFrom(gw) == gwapiv1.NamespacesFromNone {
		// A Gateway admitting ListenerSets may leave all its listeners
		// to them (GEP-1713, "Gateway Changes").
		gs.fail(gwapiv1.GatewayReasonListenersNotValid, "spec.listeners: at least one listener is required")
	}
	names := map[gwapiv1.SectionName]int{}
	for i := range gw.Spec.Listeners {
		ls := &listenerState{gs: gs, idx: i, l: &gw.Spec.Listeners[i], attached: map[nsName]bool{}}
		gs.listeners = append(gs.listeners, ls)
		if first, dup := names[ls.l.Name]; dup {
			ls.reject(gwapiv1.ListenerReasonUnsupportedValue, "name: %q is also the name of spec.listeners[%d]; listener names must be unique", ls.l.Name, first)
		} else {
			names[ls.l.Name] = i
		}
		t.validateListener(ls)
	}
}

// gatewayAddresses picks the IPs to bind. Every spec.addresses entry must be
// an IP address (type IPAddress or unset): Meshgate binds sockets itself, so
// it cannot honour Hostname or NamedAddress addresses, and the spec requires
// rejecting a Gateway whose addresses cannot be honoured rather than binding
// somewhere else.
func (t *translator) gatewayAddresses(gs *gatewayState) {
	seen := map[string]bool{}
	unspecified := ""
	for i, a := range gs.gw.Spec.Addresses {
		if a.Type != nil && *a.Type != gwapiv1.IPAddressType {
			gs.fail(gwapiv1.GatewayReasonUnsupportedAddress, "spec.addresses[%d]: address type %q is not supported; use IPAddress", i, *a.Type)
			return
		}
		if a.Value == "" {
			// An empty value asks the implementation to choose.
			continue
		}
		ip, err := netip.ParseAddr(a.Value)
		if err != nil {
			gs.fail(gwapiv1.GatewayReasonUnsupportedAddress, "spec.addresses[%d]: %q is not an IP address", i, a.Value)
			return
		}
		s := ip.String()
		if ip.IsUnspecified() {
			unspecified = s
		}
		if !seen[s] {
			seen[s] = true
			gs.addrs = append(gs.addrs, s)
		}
	}
	if unspecified != "" && len(gs.addrs) > 1 {
		// Binding the wildcard address and a specific one on the same
		// port fails at run time; say so now.
		gs.fail(gwapiv1.GatewayReasonUnsupportedAddress, "spec.addresses: the unspecified address %s cannot be combined with other addresses", unspecified)
		return
	}
	if len(gs.addrs) == 0 && t.opts.AddressPool.IsValid() {
		if a, ok := t.poolAddress(gs.key); ok {
			gs.addrs = []string{a}
			return
		}
		gs.fail(gwapiv1.GatewayReasonAddressNotAssigned, "the address pool %s has no free address left", t.opts.AddressPool)
		return
	}
	if len(gs.addrs) == 0 {
		a := t.opts.DefaultAddress
		if ip, err := netip.ParseAddr(a); err == nil {
			a = ip.String()
		}
		gs.addrs = []string{a}
	}
}

func (t *translator) validateListener(ls *listenerState) {
	l := ls.l
	if l.Port < 1 || l.Port > 65535 {
		ls.reject(gwapiv1.ListenerReasonPortUnavailable, "port: %d is not a valid port (1-65535)", l.Port)
	}
	switch l.Protocol {
	case gwapiv1.HTTPProtocolType:
		ls.protocol = ir.ProtocolHTTP
	case gwapiv1.HTTPSProtocolType:
		ls.protocol = ir.ProtocolHTTPS
	case gwapiv1.TLSProtocolType:
		ls.protocol = ir.ProtocolTLS
	case gwapiv1.TCPProtocolType:
		ls.protocol = ir.ProtocolTCP
	case gwapiv1.UDPProtocolType:
		ls.protocol = ir.ProtocolUDP
	default:
		ls.reject(gwapiv1.ListenerReasonUnsupportedProtocol, "protocol: %q is not supported; Meshgate serves HTTP, HTTPS, TLS, TCP and UDP", l.Protocol)
		ls.supportedKinds = []gwapiv1.RouteGroupKind{}
		return
	}
	if (ls.protocol == ir.ProtocolTCP || ls.protocol == ir.ProtocolUDP) && l.Hostname != nil && *l.Hostname != "" {
		// A TCP or UDP connection carries no name to match against, so a
		// hostname could only be silently ignored.
		ls.reject(gwapiv1.ListenerReasonUnsupportedValue, "hostname: must not be set for protocol %s", l.Protocol)
	} else if l.Hostname != nil && *l.Hostname != "" {
		h := string(*l.Hostname)
		if err := checkHostname(h, true); err != nil {
			ls.reject(gwapiv1.ListenerReasonUnsupportedValue, "hostname: %v", err)
		}
		ls.hostname = h
	}
	t.allowedRoutes(ls)
	switch ls.protocol {
	case ir.ProtocolHTTP:
		if l.TLS != nil {
			ls.reject(gwapiv1.ListenerReasonUnsupportedValue, "tls: must not be set for protocol HTTP")
		}
	case ir.ProtocolHTTPS, ir.ProtocolTLS:
		t.listenerTLS(ls)
	case ir.ProtocolTCP, ir.ProtocolUDP:
		if l.TLS != nil {
			ls.reject(gwapiv1.ListenerReasonUnsupportedValue, "tls: must not be set for protocol %s", l.Protocol)
		}
	}
}

// routeKindsFor are the route kinds a listener protocol serves; all of them
// are allowed when allowedRoutes.kinds is empty, as the spec asks.
func routeKindsFor(p ir.Protocol) []string {
	switch p {
	case ir.ProtocolHTTP, ir.ProtocolHTTPS:
		return []string{kindHTTPRoute, kindGRPCRoute}
	case ir.ProtocolTLS:
		return []string{kindTLSRoute}
	case ir.ProtocolTCP:
		return []string{kindTCPRoute}
	case ir.ProtocolUDP:
		return []string{kindUDPRoute}
	}
	return nil
}

// allowedRoutes evaluates spec.listeners[].allowedRoutes: the route kinds
// (those the protocol serves, see routeKindsFor) and the namespaces routes
// may come from.
func (t *translator) allowedRoutes(ls *listenerState) {
	ar := ls.l.AllowedRoutes
	ls.from = gwapiv1.NamespacesFromSame
	ls.kinds = map[string]bool{}
	ls.supportedKinds = []gwapiv1.RouteGroupKind{}
	serves := routeKindsFor(ls.protocol)
	add := func(kind string) {
		if !ls.kinds[kind] {
			ls.kinds[kind] = true
			ls.supportedKinds = append(ls.supportedKinds, gwapiv1.RouteGroupKind{Group: ptrTo(gwapiv1.Group(gatewayGroup)), Kind: gwapiv1.Kind(kind)})
		}
	}
	if ar == nil || len(ar.Kinds) == 0 {
		for _, k := range serves {
			add(k)
		}
	} else {
		for i, k := range ar.Kinds {
			g := gatewayGroup
			if k.Group != nil {
				g = string(*k.Group)
			}
			if g == gatewayGroup && slices.Contains(serves, string(k.Kind)) {
				add(string(k.Kind))
				continue
			}
			ls.refs = append(ls.refs, refProblem{string(gwapiv1.ListenerReasonInvalidRouteKinds),
				fmt.Sprintf("allowedRoutes.kinds[%d]: route kind %s is not supported for protocol %s", i, groupKind(g, string(k.Kind)), ls.l.Protocol)})
		}
	}
	if ar == nil || ar.Namespaces == nil || ar.Namespaces.From == nil {
		return
	}
	ls.from = *ar.Namespaces.From
	switch ls.from {
	case gwapiv1.NamespacesFromSame, gwapiv1.NamespacesFromAll, gwapiv1.NamespacesFromNone:
	case gwapiv1.NamespacesFromSelector:
		if ar.Namespaces.Selector == nil {
			ls.reject(gwapiv1.ListenerReasonUnsupportedValue, "allowedRoutes.namespaces.selector: required when from is Selector")
			return
		}
		sel, err := metav1.LabelSelectorAsSelector(ar.Namespaces.Selector)
		if err != nil {
			ls.reject(gwapiv1.ListenerReasonUnsupportedValue, "allowedRoutes.namespaces.selector: %v", err)
			return
		}
		ls.selector = sel
	default:
		ls.reject(gwapiv1.ListenerReasonUnsupportedValue, "allowedRoutes.namespaces.from: %q is not one of Same, All, Selector, None", ls.from)
	}
}

// allowsNamespace reports whether routes in ns may attach to the listener.
func (t *translator) allowsNamespace(ls *listenerState, ns string) bool {
	switch ls.from {
	case gwapiv1.NamespacesFromSame:
		return ns == ls.ownerNS()
	case gwapiv1.NamespacesFromAll:
		return true
	case gwapiv1.NamespacesFromSelector:
		return ls.selector != nil && ls.selector.Matches(labels.Set(t.namespaceLabels(ns)))
	}
	return false
}

// listenerTLS validates an HTTPS listener's TLS settings and loads its
// certificates. Each certificateRef must be a core Secret of type
// kubernetes.io/tls holding a valid key pair; a Secret in another namespace
// needs a ReferenceGrant. Every bad reference sets ResolvedRefs=False; the
// listener is programmed with the good ones if there is at least one.
func (t *translator) listenerTLS(ls *listenerState) {
	cfg := ls.l.TLS
	if cfg == nil && t.listenerACME(ls) {
		return
	}
	if cfg == nil {
		ls.refs = append(ls.refs, refProblem{string(gwapiv1.ListenerReasonInvalidCertificateRef), fmt.Sprintf("tls: required for protocol %s", ls.l.Protocol)})
		if ls.protocol == ir.ProtocolTLS {
			ls.tlsMode = ir.TLSTerminate
		}
		return
	}
	if !t.listenerTLSOptions(ls, cfg.Options) {
		return
	}
	if ls.protocol == ir.ProtocolTLS {
		ls.tlsMode = ir.TLSTerminate
		if cfg != nil && cfg.Mode != nil && *cfg.Mode == gwapiv1.TLSModePassthrough {
			// The gateway never sees the certificate: the backend
			// presents its own.
			ls.tlsMode = ir.TLSPassthrough
			return
		}
	}
	if cfg.Mode != nil && *cfg.Mode != gwapiv1.TLSModeTerminate && *cfg.Mode != gwapiv1.TLSModePassthrough {
		ls.reject(gwapiv1.ListenerReasonUnsupportedValue, "tls.mode: %q is not one of Terminate, Passthrough", *cfg.Mode)
		return
	}
	if cfg.Mode != nil && *cfg.Mode == gwapiv1.TLSModePassthrough {
		ls.reject(gwapiv1.ListenerReasonUnsupportedValue, "tls.mode: Passthrough is not supported for protocol HTTPS; use a TLS listener with TLSRoutes")
		return
	}
	if len(cfg.CertificateRefs) == 0 && t.listenerACME(ls) {
		return
	}
	if len(cfg.CertificateRefs) == 0 {
		ls.refs = append(ls.refs, refProblem{string(gwapiv1.ListenerReasonInvalidCertificateRef), fmt.Sprintf("tls.certificateRefs: at least one certificate is required for protocol %s in Terminate mode", ls.l.Protocol)})
		return
	}
	// A ListenerSet's references are its own: relative to its namespace
	// and granted to ListenerSets, never to its parent Gateway (GEP-1713,
	// "ReferenceGrant Semantics").
	gwNS, fromKind := ls.ownerNS(), ls.ownerKind()
	for i, ref := range cfg.CertificateRefs {
		path := fmt.Sprintf("tls.certificateRefs[%d]", i)
		group, kind := "", kindSecret
		if ref.Group != nil {
			group = string(*ref.Group)
		}
		if ref.Kind != nil {
			kind = string(*ref.Kind)
		}
		ns := gwNS
		if ref.Namespace != nil && *ref.Namespace != "" {
			ns = string(*ref.Namespace)
		}
		bad := func(reason gwapiv1.ListenerConditionReason, format string, args ...any) {
			ls.refs = append(ls.refs, refProblem{string(reason), path + ": " + fmt.Sprintf(format, args...)})
		}
		if group != "" || kind != kindSecret {
			bad(gwapiv1.ListenerReasonInvalidCertificateRef, "%s is not supported; only core Secrets are", groupKind(group, kind))
			continue
		}
		if !t.refGranted(gatewayGroup, fromKind, gwNS, "", kindSecret, ns, string(ref.Name)) {
			bad(gwapiv1.ListenerReasonRefNotPermitted, "Secret %s/%s is in another namespace and no ReferenceGrant there allows %ss from %s", ns, ref.Name, fromKind, gwNS)
			continue
		}
		sec := t.secrets[nsName{ns, string(ref.Name)}]
		if sec == nil {
			bad(gwapiv1.ListenerReasonInvalidCertificateRef, "%s", t.notFound(kindSecret, ns, string(ref.Name)))
			continue
		}
		if sec.Type != corev1.SecretTypeTLS {
			bad(gwapiv1.ListenerReasonInvalidCertificateRef, "Secret %s/%s has type %q, want %s", ns, ref.Name, sec.Type, corev1.SecretTypeTLS)
			continue
		}
		crt, key := sec.Data[corev1.TLSCertKey], sec.Data[corev1.TLSPrivateKeyKey]
		if _, err := tls.X509KeyPair(crt, key); err != nil {
			bad(gwapiv1.ListenerReasonInvalidCertificateRef, "Secret %s/%s does not hold a valid certificate and key: %v", ns, ref.Name, err)
			continue
		}
		c := &ir.Certificate{Name: "secret/" + ns + "/" + string(ref.Name), CertPEM: crt, KeyPEM: key}
		if ls.hostname != "" {
			c.Hostnames = []string{ls.hostname}
		}
		ls.certs = append(ls.certs, c)
	}
}

func groupKind(group, kind string) string {
	if group == "" {
		return "core/" + kind
	}
	return group + "/" + kind
}

func ptrTo[T any](v T) *T { return &v }

// poolAddress is the pool address of Gateway key: every Gateway of the
// snapshot without spec.addresses is given one, in namespace/name order,
// each at the hash of its name or the next free address after it.
func (t *translator) poolAddress(key nsName) (string, bool) {
	if t.poolAddrs == nil {
		t.poolAddrs = map[nsName]string{}
		var keys []nsName
		for _, gw := range t.s.Gateways {
			if gw != nil && !hasAddress(gw) {
				keys = append(keys, nsName{gw.Namespace, gw.Name})
			}
		}
		sort.Slice(keys, func(i, j int) bool { return keys[i].String() < keys[j].String() })
		p := t.opts.AddressPool.Masked()
		bits := p.Addr().BitLen() - p.Bits()
		if bits > 16 {
			bits = 16 // 65,536 addresses are plenty and keep the arithmetic small
		}
		size := uint64(1) << bits
		used := map[uint64]bool{0: true} // the network address itself
		if size > 2 && p.Addr().Is4() {
			used[size-1] = true // and IPv4's broadcast
		}
		for _, k := range keys {
			if uint64(len(used)) >= size {
				break
			}
			h := fnv.New64a()
			h.Write([]byte(k.String()))
			i := h.Sum64() % size
			for used[i] {
				i = (i + 1) % size
			}
			used[i] = true
			t.poolAddrs[k] = addrPlus(p.Addr(), i).String()
		}
	}
	a, ok := t.poolAddrs[key]
	return a, ok
}

func hasAddress(gw *gwapiv1.Gateway) bool {
	for _, a := range gw.Spec.Addresses {
		if a.Value != "" {
			return true
		}
	}
	return false
}

// addrPlus is a + n, for n below 2^16 within a prefix of at least that size.
func addrPlus(a netip.Addr, n uint64) netip.Addr {
	b := a.As16()
	lo := binary.BigEndian.Uint64(b[8:]) + n
	binary.BigEndian.PutUint64(b[8:], lo)
	out := netip.AddrFrom16(b)
	if a.Is4() {
		return out.Unmap()
	}
	return out
}
