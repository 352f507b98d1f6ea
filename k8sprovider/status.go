package k8sprovider

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"reflect"
	"sort"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"

	mgv1alpha1 "github.com/meshgate/meshgate/api/v1alpha1"
	"github.com/meshgate/meshgate/translate"
)

// SupportedFeatures are the Gateway API features Meshgate claims in
// GatewayClass status.supportedFeatures. Each is implemented and covered by
// tests; nothing is listed to look better.
var SupportedFeatures = []gwapiv1.FeatureName{
	"Gateway", "GatewayPort8080", "GatewayHTTPListenerIsolation",
	"HTTPRoute", "HTTPRouteHostRewrite", "HTTPRouteMethodMatching", "HTTPRouteQueryParamMatching",
	"HTTPRoutePathRedirect", "HTTPRoutePortRedirect", "HTTPRouteSchemeRedirect", "HTTPRoutePathRewrite",
	"HTTPRouteRequestMirror", "HTTPRouteRequestMultipleMirrors", "HTTPRouteRequestPercentageMirror",
	"HTTPRouteResponseHeaderModification", "HTTPRouteBackendRequestHeaderModification",
	"HTTPRouteRequestTimeout", "HTTPRouteBackendTimeout", "HTTPRouteRetry",
	"HTTPRouteBackendProtocolH2C", "HTTPRouteBackendProtocolWebSocket", "HTTPRouteParentRefPort",
	"HTTPRoute303RedirectStatusCode", "HTTPRoute307RedirectStatusCode", "HTTPRoute308RedirectStatusCode",
	"HTTPRouteNamedRouteRule", "HTTPRouteRetryConnectionError", "HTTPRouteRetryBackendTimeout", "HTTPRouteCORS", "HTTPRouteDestinationPortMatching",
	"GRPCRoute", "GRPCRouteNamedRouteRule", "TLSRoute", "TLSRouteModeTerminate", "TLSRouteModeMixed", "TCPRoute", "UDPRoute",
	"ListenerSet", "ReferenceGrant", "BackendTLSPolicy", "BackendTLSPolicySANValidation", "GatewayAddressEmpty", "GatewayStaticAddresses", "GatewayHTTPSListenerDetectMisdirectedRequests",
	"GatewayFrontendClientCertificateValidation", "GatewayFrontendClientCertificateValidationInsecureFallback", "GatewayBackendClientCertificate",
}

// StatusWriter publishes translation results as Kubernetes status. Only the
// leader writes (SetLeader); followers keep the latest statuses so they can
// write them at once if they take over. Writes happen in the background:
// Publish never blocks the reload path, the newest statuses win, and a
// failed write is retried with backoff.
type StatusWriter struct {
	// Client writes status subresources; Reader reads current objects
	// (the provider's cache, so no extra API load).
	Client client.Client
	Reader func() client.Reader
	// ControllerName is this implementation's spec.controllerName; only
	// route parent statuses carrying it are replaced.
	ControllerName string
	// GatewayService, when set, is the data-plane Service whose load
	// balancer ingress (or node addresses, for NodePort) every Gateway
	// reports in status.addresses instead of the bound addresses.
	GatewayService types.NamespacedName
	Log            *slog.Logger

	mu      sync.Mutex
	latest  []translate.ObjectStatus
	leader  bool
	pending chan struct{}
	once    sync.Once
}

// Publish hands over the statuses of a config now in force.
func (w *StatusWriter) Publish(statuses []translate.ObjectStatus) {
	w.init()
	w.mu.Lock()
	w.latest = statuses
	w.mu.Unlock()
	w.kick()
}

// SetLeader turns writing on or off; on becoming leader the latest statuses
// are written.
func (w *StatusWriter) SetLeader(leader bool) {
	w.init()
	w.mu.Lock()
	w.leader = leader
	w.mu.Unlock()
	if leader {
		w.kick()
	}
}

func (w *StatusWriter) init() {
	w.once.Do(func() { w.pending = make(chan struct{}, 1) })
}

func (w *StatusWriter) kick() {
	select {
	case w.pending <- struct{}{}:
	default:
	}
}

// Run writes statuses as they come until ctx ends. The Gateway Service is
// watched through the cache too: a new load balancer address is published
// at the next resync (every 30 s) or config change.
func (w *StatusWriter) Run(ctx context.Context) {
	w.init()
	log := w.Log
	if log == nil {
		log = slog.Default()
	}
	resync := time.NewTicker(30 * time.Second)
	defer resync.Stop()
	var retry <-chan time.Time
	backoff := time.Duration(0)
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.pending:
		case <-retry:
		case <-resync.C:
		}
		retry = nil
		w.mu.Lock()
		statuses, leader := w.latest, w.leader
		w.mu.Unlock()
		if !leader || statuses == nil || w.Reader() == nil {
			continue
		}
		if err := w.write(ctx, statuses); err != nil {
			backoff = min(max(2*backoff, 500*time.Millisecond), 30*time.Second)
			log.Warn("status not written; retrying", "error", err.Error(), "retry_in", backoff.String())
			retry = time.After(backoff)
			continue
		}
		backoff = 0
	}
}

// write updates every object whose status differs from what it should be.
func (w *StatusWriter) write(ctx context.Context, statuses []translate.ObjectStatus) error {
	var firstErr error
	note := func(err error) {
		if err != nil && firstErr == nil && !apierrors.IsNotFound(err) {
			firstErr = err
		}
	}
	svcAddrs, err := w.serviceAddresses(ctx)
	note(err)
	for i := range statuses {
		st := &statuses[i]
		if st.Ignored {
			continue
		}
		switch st.Kind {
		case "GatewayClass":
			note(w.update(ctx, &gwapiv1.GatewayClass{}, st, func(o client.Object) {
				gc := o.(*gwapiv1.GatewayClass)
				gc.Status.Conditions = mergeConditions(gc.Status.Conditions, st.Conditions)
				gc.Status.SupportedFeatures = supportedFeatures()
			}))
		case "Gateway":
			note(w.update(ctx, &gwapiv1.Gateway{}, st, func(o client.Object) {
				gw := o.(*gwapiv1.Gateway)
				gw.Status.Conditions = mergeConditions(gw.Status.Conditions, st.Conditions)
				gw.Status.Listeners = mergeListeners(gw.Status.Listeners, st.Listeners)
				gw.Status.Addresses = gatewayAddresses(st.Addresses, svcAddrs, w.GatewayService.Name != "")
				gw.Status.AttachedListenerSets = st.AttachedListenerSets
			}))
		case "ListenerSet":
			note(w.update(ctx, &gwapiv1.ListenerSet{}, st, func(o client.Object) {
				ls := o.(*gwapiv1.ListenerSet)
				ls.Status.Conditions = mergeConditions(ls.Status.Conditions, st.Conditions)
				ls.Status.Listeners = mergeListenerEntries(ls.Status.Listeners, st.ListenerEntries)
			}))
		case "HTTPRoute":
			note(w.update(ctx, &gwapiv1.HTTPRoute{}, st, func(o client.Object) {
				r := o.(*gwapiv1.HTTPRoute)
				r.Status.Parents = w.mergeParents(r.Status.Parents, st.Parents)
			}))
		case "GRPCRoute":
			note(w.update(ctx, &gwapiv1.GRPCRoute{}, st, func(o client.Object) {
				r := o.(*gwapiv1.GRPCRoute)
				r.Status.Parents = w.mergeParents(r.Status.Parents, st.Parents)
			}))
		case "TCPRoute":
			note(w.update(ctx, &gwapiv1.TCPRoute{}, st, func(o client.Object) {
				r := o.(*gwapiv1.TCPRoute)
				r.Status.Parents = w.mergeParents(r.Status.Parents, st.Parents)
			}))
		case "TLSRoute":
			note(w.update(ctx, &gwapiv1.TLSRoute{}, st, func(o client.Object) {
				r := o.(*gwapiv1.TLSRoute)
				r.Status.Parents = w.mergeParents(r.Status.Parents, st.Parents)
			}))
		case "UDPRoute":
			note(w.update(ctx, &gwapiv1.UDPRoute{}, st, func(o client.Object) {
				r := o.(*gwapiv1.UDPRoute)
				r.Status.Parents = w.mergeParents(r.Status.Parents, st.Parents)
			}))
		case mgv1alpha1.KindTrafficPolicy:
			note(w.update(ctx, &mgv1alpha1.TrafficPolicy{}, st, func(o client.Object) {
				p := o.(*mgv1alpha1.TrafficPolicy)
				p.Status.Ancestors = w.policyAncestors(p, st.Conditions)
			}))
		case mgv1alpha1.KindSecurityPolicy:
			note(w.update(ctx, &mgv1alpha1.SecurityPolicy{}, st, func(o client.Object) {
				p := o.(*mgv1alpha1.SecurityPolicy)
				p.Status.Ancestors = w.targetAncestors(p.Namespace, p.Spec.TargetRefs, p.Status.Ancestors, st.Conditions)
			}))
		case "BackendTLSPolicy":
			note(w.update(ctx, &gwapiv1.BackendTLSPolicy{}, st, func(o client.Object) {
				p := o.(*gwapiv1.BackendTLSPolicy)
				p.Status.Ancestors = w.mergeAncestors(p.Status.Ancestors, st.Ancestors)
			}))
		}
	}
	return firstErr
}

// update reads the object from the cache, applies set to a copy and writes
// the status subresource if it changed. A conflict (the object changed
// meanwhile) is left to the next pass, which sees the new version.
func (w *StatusWriter) update(ctx context.Context, obj client.Object, st *translate.ObjectStatus, set func(client.Object)) error {
	key := types.NamespacedName{Namespace: st.Namespace, Name: st.Name}
	if err := w.Reader().Get(ctx, key, obj); err != nil {
		return err
	}
	before := obj.DeepCopyObject().(client.Object)
	set(obj)
	if reflect.DeepEqual(statusOf(before), statusOf(obj)) {
		return nil
	}
	if err := w.Client.Status().Update(ctx, obj); err != nil {
		if apierrors.IsConflict(err) {
			w.kick()
			return nil
		}
		return fmt.Errorf("%s %s/%s: %w", st.Kind, st.Namespace, st.Name, err)
	}
	return nil
}

// statusOf is the status field of the object kinds written here.
func statusOf(o client.Object) any {
	v := reflect.ValueOf(o).Elem().FieldByName("Status")
	if !v.IsValid() {
		return nil
	}
	return v.Interface()
}

// mergeConditions returns want, keeping the LastTransitionTime of each
// condition whose status did not change, so timestamps mean what they say.
func mergeConditions(have []metav1.Condition, want []metav1.Condition) []metav1.Condition {
	now := metav1.NewTime(time.Now().Truncate(time.Second))
	out := make([]metav1.Condition, len(want))
	for i, c := range want {
		c.LastTransitionTime = now
		for _, h := range have {
			if h.Type == c.Type && h.Status == c.Status {
				c.LastTransitionTime = h.LastTransitionTime
				if h.Reason == c.Reason && h.Message == c.Message && h.ObservedGeneration == c.ObservedGeneration {
					c = h
				}
				break
			}
		}
		out[i] = c
	}
	return out
}

func mergeListeners(have, want []gwapiv1.ListenerStatus) []gwapiv1.ListenerStatus {
	out := make([]gwapiv1.ListenerStatus, len(want))
	for i, l := range want {
		var prev []metav1.Condition
		for _, h := range have {
			if h.Name == l.Name {
				prev = h.Conditions
			}
		}
		l.Conditions = mergeConditions(prev, l.Conditions)
		if l.SupportedKinds == nil {
			l.SupportedKinds = []gwapiv1.RouteGroupKind{}
		}
		out[i] = l
	}
	return out
}

// mergeListenerEntries is mergeListeners for a ListenerSet's
// status.listeners.
func mergeListenerEntries(have, want []gwapiv1.ListenerEntryStatus) []gwapiv1.ListenerEntryStatus {
	out := make([]gwapiv1.ListenerEntryStatus, len(want))
	for i, l := range want {
		var prev []metav1.Condition
		for _, h := range have {
			if h.Name == l.Name {
				prev = h.Conditions
			}
		}
		l.Conditions = mergeConditions(prev, l.Conditions)
		if l.SupportedKinds == nil {
			l.SupportedKinds = []gwapiv1.RouteGroupKind{}
		}
		out[i] = l
	}
	return out
}

// mergeParents replaces this controller's parent entries and keeps other
// controllers' (a route may attach to Gateways of several implementations).
func (w *StatusWriter) mergeParents(have, want []gwapiv1.RouteParentStatus) []gwapiv1.RouteParentStatus {
	var out []gwapiv1.RouteParentStatus
	for _, h := range have {
		if string(h.ControllerName) != w.ControllerName {
			out = append(out, h)
		}
	}
	for _, p := range want {
		for _, h := range have {
			if string(h.ControllerName) == w.ControllerName && reflect.DeepEqual(h.ParentRef, p.ParentRef) {
				p.Conditions = mergeConditions(h.Conditions, p.Conditions)
				break
			}
		}
		if !hasTimes(p.Conditions) {
			p.Conditions = mergeConditions(nil, p.Conditions)
		}
		out = append(out, p)
	}
	return out
}

func hasTimes(cs []metav1.Condition) bool {
	for _, c := range cs {
		if c.LastTransitionTime.IsZero() {
			return false
		}
	}
	return true
}

// policyAncestors is one ancestor entry per targetRef of p, all with the
// policy's conditions; other controllers' entries are kept.
func (w *StatusWriter) policyAncestors(p *mgv1alpha1.TrafficPolicy, conds []metav1.Condition) []gwapiv1.PolicyAncestorStatus {
	return w.targetAncestors(p.Namespace, p.Spec.TargetRefs, p.Status.Ancestors, conds)
}

// targetAncestors is policyAncestors for any policy kind: its namespace,
// targetRefs and current ancestors.
func (w *StatusWriter) targetAncestors(namespace string, refs []gwapiv1.LocalPolicyTargetReferenceWithSectionName, cur []gwapiv1.PolicyAncestorStatus, conds []metav1.Condition) []gwapiv1.PolicyAncestorStatus {
	var out []gwapiv1.PolicyAncestorStatus
	for _, a := range cur {
		if string(a.ControllerName) != w.ControllerName {
			out = append(out, a)
		}
	}
	for _, ref := range refs {
		ns := gwapiv1.Namespace(namespace)
		group, kind := ref.Group, ref.Kind
		pr := gwapiv1.ParentReference{Group: &group, Kind: &kind, Namespace: &ns, Name: ref.Name, SectionName: ref.SectionName}
		var prev []metav1.Condition
		for _, a := range cur {
			if string(a.ControllerName) == w.ControllerName && reflect.DeepEqual(a.AncestorRef, pr) {
				prev = a.Conditions
			}
		}
		out = append(out, gwapiv1.PolicyAncestorStatus{
			AncestorRef:    pr,
			ControllerName: gwapiv1.GatewayController(w.ControllerName),
			Conditions:     mergeConditions(prev, conds),
		})
		if len(out) == 16 {
			break // the API's limit
		}
	}
	return out
}

// serviceAddresses are the data-plane Service's external addresses: load
// balancer ingress, else (NodePort) the nodes' addresses; nil when no
// Service is configured.
func (w *StatusWriter) serviceAddresses(ctx context.Context) ([]gwapiv1.GatewayStatusAddress, error) {
	if w.GatewayService.Name == "" {
		return nil, nil
	}
	var svc corev1.Service
	if err := w.Client.Get(ctx, w.GatewayService, &svc); err != nil {
		return nil, fmt.Errorf("gateway Service %s: %w", w.GatewayService, err)
	}
	var out []gwapiv1.GatewayStatusAddress
	ipType, hostType := gwapiv1.IPAddressType, gwapiv1.HostnameAddressType
	for _, ing := range svc.Status.LoadBalancer.Ingress {
		if ing.IP != "" {
			out = append(out, gwapiv1.GatewayStatusAddress{Type: &ipType, Value: ing.IP})
		} else if ing.Hostname != "" {
			out = append(out, gwapiv1.GatewayStatusAddress{Type: &hostType, Value: ing.Hostname})
		}
	}
	if len(out) > 0 || svc.Spec.Type != corev1.ServiceTypeNodePort {
		return out, nil
	}
	var nodes corev1.NodeList
	if err := w.Client.List(ctx, &nodes); err != nil {
		return nil, fmt.Errorf("nodes for NodePort Service %s: %w", w.GatewayService, err)
	}
	seen := map[string]bool{}
	for _, n := range nodes.Items {
		for _, want := range []corev1.NodeAddressType{corev1.NodeExternalIP, corev1.NodeInternalIP} {
			for _, a := range n.Status.Addresses {
				if a.Type == want && !seen[a.Address] {
					seen[a.Address] = true
					out = append(out, gwapiv1.GatewayStatusAddress{Type: &ipType, Value: a.Address})
				}
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Value < out[j].Value })
	return out, nil
}

// gatewayAddresses is a Gateway's status.addresses: the Service's when one
// is configured, else the addresses its listeners are bound to (the
// wildcard address says nothing useful and is left out).
func gatewayAddresses(bound []string, svc []gwapiv1.GatewayStatusAddress, useService bool) []gwapiv1.GatewayStatusAddress {
	if useService {
		return svc
	}
	ipType := gwapiv1.IPAddressType
	var out []gwapiv1.GatewayStatusAddress
	for _, a := range bound {
		if ip, err := netip.ParseAddr(a); err == nil && ip.IsUnspecified() {
			continue
		}
		out = append(out, gwapiv1.GatewayStatusAddress{Type: &ipType, Value: a})
	}
	return out
}

func supportedFeatures() []gwapiv1.SupportedFeature {
	out := make([]gwapiv1.SupportedFeature, len(SupportedFeatures))
	for i, f := range SupportedFeatures {
		out[i] = gwapiv1.SupportedFeature{Name: f}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
