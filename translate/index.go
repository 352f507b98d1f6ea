package translate

import (
	"sort"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"

	mgv1alpha1 "github.com/meshgate/meshgate/api/v1alpha1"
	"github.com/meshgate/meshgate/config"
	"github.com/meshgate/meshgate/ir"
)

// nsName is a namespaced object key.
type nsName struct{ ns, name string }

func (k nsName) String() string { return k.ns + "/" + k.name }

// translator holds the indexes and intermediate state of one translation.
// It lives only for the duration of one Translate call.
type translator struct {
	s    *config.Snapshot
	opts Options

	classes      map[string]*classState
	gateways     []*gatewayState // ours, in precedence order
	gatewayIndex map[nsName]*gatewayState
	foreignGWs   map[nsName]bool // Gateways of classes other controllers serve
	// sets are the ListenerSets naming a Gateway of ours (or none), in
	// precedence order; foreignSets those naming other controllers'.
	sets        []*listenerSetState
	setIndex    map[nsName]*listenerSetState
	foreignSets map[nsName]bool

	services   map[nsName]*corev1.Service
	secrets    map[nsName]*corev1.Secret
	slices     map[nsName][]*discoveryv1.EndpointSlice // by service
	grants     map[string][]*gwapiv1.ReferenceGrant    // by namespace
	namespaces map[string]map[string]string            // labels
	backends   map[nsName]*backendState
	rejected   map[string]string // "Kind/ns/name" -> loader reason
	// httpRoutes and grpcRoutes are the first route of each name, so a
	// policy's target is found without scanning 10,000 routes.
	httpRoutes map[nsName]*gwapiv1.HTTPRoute
	grpcRoutes map[nsName]*gwapiv1.GRPCRoute

	// irBackends shares one *ir.Backend per name between routes.
	irBackends map[string]*ir.Backend
	// sockets are the bound addresses, by "ip:port".
	sockets map[string]*socket
	// backendOrigin says which Service port or Backend each backend name
	// was made from, for policies targeting them.
	backendOrigin map[string]backendOrigin
	// policies are the TrafficPolicies by target; faults the
	// FaultInjections by name.
	policies *policyIndex
	// security are the SecurityPolicies by target (securitypolicy.go).
	security *securityIndex
	// poolAddrs are the Gateways' addresses from Options.AddressPool.
	poolAddrs map[nsName]string
	faults    map[nsName]*faultInjection
	// btls are the BackendTLSPolicies and the Service ports they apply to.
	btls *backendTLSIndex

	statuses []ObjectStatus
}

// classState is a GatewayClass this controller serves.
type classState struct {
	gc       *gwapiv1.GatewayClass
	accepted bool
	problem  string
}

// backendState is a validated Meshgate Backend.
type backendState struct {
	b       *mgv1alpha1.Backend
	problem string // field path and what is wrong; empty when valid
	target  *ir.Backend
}

// socket is one bound address and the Gateway listeners sharing it.
type socket struct {
	address  string
	port     int32
	ip       string
	protocol ir.Protocol
	owner    *gatewayState
	// byHostname records which listener claimed each hostname.
	byHostname map[string]*listenerState
	hosts      []*ir.ListenerHost
	certs      []*ir.Certificate
	listeners  []*listenerState
	// clientAuth is the HTTPS client certificate validation every
	// listener on the socket shares.
	clientAuth *ir.ClientAuth
}

func newTranslator(s *config.Snapshot, opts Options) *translator {
	t := &translator{
		s:             s,
		opts:          opts,
		classes:       map[string]*classState{},
		gatewayIndex:  map[nsName]*gatewayState{},
		foreignGWs:    map[nsName]bool{},
		setIndex:      map[nsName]*listenerSetState{},
		foreignSets:   map[nsName]bool{},
		services:      map[nsName]*corev1.Service{},
		httpRoutes:    make(map[nsName]*gwapiv1.HTTPRoute, len(s.HTTPRoutes)),
		grpcRoutes:    make(map[nsName]*gwapiv1.GRPCRoute, len(s.GRPCRoutes)),
		secrets:       map[nsName]*corev1.Secret{},
		slices:        map[nsName][]*discoveryv1.EndpointSlice{},
		grants:        map[string][]*gwapiv1.ReferenceGrant{},
		namespaces:    map[string]map[string]string{},
		backends:      map[nsName]*backendState{},
		rejected:      map[string]string{},
		irBackends:    map[string]*ir.Backend{},
		sockets:       map[string]*socket{},
		backendOrigin: map[string]backendOrigin{},
	}
	for _, o := range s.Services {
		if o != nil {
			t.services[nsName{o.Namespace, o.Name}] = o
		}
	}
	for _, o := range s.HTTPRoutes {
		if o == nil {
			continue
		}
		if k := (nsName{o.Namespace, o.Name}); t.httpRoutes[k] == nil {
			t.httpRoutes[k] = o
		}
	}
	for _, o := range s.GRPCRoutes {
		if o == nil {
			continue
		}
		if k := (nsName{o.Namespace, o.Name}); t.grpcRoutes[k] == nil {
			t.grpcRoutes[k] = o
		}
	}
	for _, o := range s.Secrets {
		if o != nil {
			t.secrets[nsName{o.Namespace, o.Name}] = o
		}
	}
	for _, o := range s.EndpointSlices {
		if o == nil {
			continue
		}
		svc, ok := o.Labels[discoveryv1.LabelServiceName]
		if !ok {
			continue
		}
		k := nsName{o.Namespace, svc}
		t.slices[k] = append(t.slices[k], o)
	}
	for _, o := range s.ReferenceGrants {
		if o != nil {
			t.grants[o.Namespace] = append(t.grants[o.Namespace], o)
		}
	}
	for _, o := range s.Namespaces {
		if o != nil {
			t.namespaces[o.Name] = o.Labels
		}
	}
	for _, p := range s.Rejected {
		t.rejected[p.Kind+"/"+p.Namespace+"/"+p.Name] = p.Reason
	}
	return t
}

// notFound says that kind ns/name is missing, and why if the loader rejected
// it, since "not found" alone would send the user looking in the wrong place.
func (t *translator) notFound(kind, ns, name string) string {
	id := kind + " " + ns + "/" + name
	if ns == "" {
		id = kind + " " + name
	}
	if r, ok := t.rejected[kind+"/"+ns+"/"+name]; ok {
		return id + " is invalid and was not loaded: " + r
	}
	return id + " not found"
}

// namespaceLabels returns a namespace's labels, including the
// kubernetes.io/metadata.name label the API server sets on every namespace,
// so a selector on it works even when the namespace is not in the snapshot
// (as with the files provider).
func (t *translator) namespaceLabels(ns string) map[string]string {
	l := map[string]string{corev1.LabelMetadataName: ns}
	for k, v := range t.namespaces[ns] {
		l[k] = v
	}
	return l
}

// refGranted reports whether a ReferenceGrant in toNS lets objects of
// fromGroup/fromKind in fromNS refer to toGroup/toKind named toName.
// Same-namespace references need no grant.
func (t *translator) refGranted(fromGroup, fromKind, fromNS, toGroup, toKind, toNS, toName string) bool {
	if fromNS == toNS {
		return true
	}
	for _, g := range t.grants[toNS] {
		from := false
		for _, f := range g.Spec.From {
			if string(f.Group) == fromGroup && string(f.Kind) == fromKind && string(f.Namespace) == fromNS {
				from = true
				break
			}
		}
		if !from {
			continue
		}
		for _, to := range g.Spec.To {
			if string(to.Group) == toGroup && string(to.Kind) == toKind && (to.Name == nil || *to.Name == "" || string(*to.Name) == toName) {
				return true
			}
		}
	}
	return false
}

// condition builds a Gateway API condition without timestamp.
func condition(typ string, ok bool, reason, msg string, gen int64) metav1.Condition {
	st := metav1.ConditionFalse
	if ok {
		st = metav1.ConditionTrue
	}
	return metav1.Condition{Type: typ, Status: st, Reason: reason, Message: msg, ObservedGeneration: gen}
}

// olderFirst orders objects by creation time, then namespace/name, which is
// how Gateway API breaks ties between objects.
func olderFirst(a, b metav1.Object) bool {
	ta, tb := a.GetCreationTimestamp(), b.GetCreationTimestamp()
	if !ta.Equal(&tb) {
		return ta.Before(&tb)
	}
	if a.GetNamespace() != b.GetNamespace() {
		return a.GetNamespace() < b.GetNamespace()
	}
	return a.GetName() < b.GetName()
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
