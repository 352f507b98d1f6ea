// Package k8sprovider feeds the gateway from the Kubernetes API: informers
// (controller-runtime's cache over client-go) watch the Gateway API kinds,
// Services, EndpointSlices, Secrets, Namespaces and Meshgate's kinds, and
// every change sends a complete config.Snapshot, debounced, into the same
// translator the files provider feeds. A behaviour difference between the
// two providers is a bug.
//
// The snapshot is built from the informers' stores, never from ad-hoc list
// calls, so an API server outage cannot produce an empty or partial
// snapshot: the stores keep the last state they saw, the gateway keeps
// serving it, and the informers resync when the server is back.
//
// Status flows the other way through StatusWriter, which only the elected
// leader runs.
package k8sprovider

import (
	"context"
	"errors"
	"fmt"
	"k8s.io/client-go/discovery"
	"log/slog"
	"sort"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"

	mgv1alpha1 "github.com/meshgate/meshgate/api/v1alpha1"
	"github.com/meshgate/meshgate/config"
)

// Provider watches a cluster and sends snapshots of it.
type Provider struct {
	// Config reaches the API server (in cluster: rest.InClusterConfig).
	Config *rest.Config
	// Debounce is how long changes must pause before a snapshot is sent
	// (a `kubectl apply` of many objects is one reload); 100 ms when
	// zero. A steady stream of changes still sends one snapshot per
	// MaxDelay (1 s when zero), so traffic follows within a second.
	Debounce time.Duration
	MaxDelay time.Duration
	// Log receives watch problems.
	Log *slog.Logger

	// cache is set by Run once the informers are synced; the status
	// writer reads through it.
	mu    sync.Mutex
	cache cache.Cache
	kinds []watched
}

// watched is one kind the provider follows, with how to copy its objects
// into a snapshot.
type watched struct {
	gvk  schema.GroupVersionKind
	list client.ObjectList
	add  func(s *config.Snapshot, l client.ObjectList)
	// optional kinds (a CRD not installed) are skipped with a warning
	// instead of failing the provider.
	optional bool
}

// Scheme holds every type the provider reads or writes.
func Scheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, gwapiv1.Install, mgv1alpha1.AddToScheme} {
		if err := add(s); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func kinds() []watched {
	gw := func(kind string) schema.GroupVersionKind {
		return schema.GroupVersionKind{Group: gwapiv1.GroupName, Version: "v1", Kind: kind}
	}
	mg := func(kind string) schema.GroupVersionKind {
		return schema.GroupVersionKind{Group: mgv1alpha1.GroupName, Version: mgv1alpha1.Version, Kind: kind}
	}
	return []watched{
		{gvk: gw("GatewayClass"), list: &gwapiv1.GatewayClassList{}, add: func(s *config.Snapshot, l client.ObjectList) {
			for i := range l.(*gwapiv1.GatewayClassList).Items {
				s.GatewayClasses = append(s.GatewayClasses, &l.(*gwapiv1.GatewayClassList).Items[i])
			}
		}},
		{gvk: gw("Gateway"), list: &gwapiv1.GatewayList{}, add: func(s *config.Snapshot, l client.ObjectList) {
			for i := range l.(*gwapiv1.GatewayList).Items {
				s.Gateways = append(s.Gateways, &l.(*gwapiv1.GatewayList).Items[i])
			}
		}},
		{gvk: gw("ListenerSet"), optional: true, list: &gwapiv1.ListenerSetList{}, add: func(s *config.Snapshot, l client.ObjectList) {
			for i := range l.(*gwapiv1.ListenerSetList).Items {
				s.ListenerSets = append(s.ListenerSets, &l.(*gwapiv1.ListenerSetList).Items[i])
			}
		}},
		{gvk: gw("HTTPRoute"), list: &gwapiv1.HTTPRouteList{}, add: func(s *config.Snapshot, l client.ObjectList) {
			for i := range l.(*gwapiv1.HTTPRouteList).Items {
				s.HTTPRoutes = append(s.HTTPRoutes, &l.(*gwapiv1.HTTPRouteList).Items[i])
			}
		}},
		{gvk: gw("GRPCRoute"), optional: true, list: &gwapiv1.GRPCRouteList{}, add: func(s *config.Snapshot, l client.ObjectList) {
			for i := range l.(*gwapiv1.GRPCRouteList).Items {
				s.GRPCRoutes = append(s.GRPCRoutes, &l.(*gwapiv1.GRPCRouteList).Items[i])
			}
		}},
		{gvk: gw("TCPRoute"), optional: true, list: &gwapiv1.TCPRouteList{}, add: func(s *config.Snapshot, l client.ObjectList) {
			for i := range l.(*gwapiv1.TCPRouteList).Items {
				s.TCPRoutes = append(s.TCPRoutes, &l.(*gwapiv1.TCPRouteList).Items[i])
			}
		}},
		{gvk: gw("TLSRoute"), optional: true, list: &gwapiv1.TLSRouteList{}, add: func(s *config.Snapshot, l client.ObjectList) {
			for i := range l.(*gwapiv1.TLSRouteList).Items {
				s.TLSRoutes = append(s.TLSRoutes, &l.(*gwapiv1.TLSRouteList).Items[i])
			}
		}},
		{gvk: gw("UDPRoute"), optional: true, list: &gwapiv1.UDPRouteList{}, add: func(s *config.Snapshot, l client.ObjectList) {
			for i := range l.(*gwapiv1.UDPRouteList).Items {
				s.UDPRoutes = append(s.UDPRoutes, &l.(*gwapiv1.UDPRouteList).Items[i])
			}
		}},
		{gvk: gw("ReferenceGrant"), optional: true, list: &gwapiv1.ReferenceGrantList{}, add: func(s *config.Snapshot, l client.ObjectList) {
			for i := range l.(*gwapiv1.ReferenceGrantList).Items {
				s.ReferenceGrants = append(s.ReferenceGrants, &l.(*gwapiv1.ReferenceGrantList).Items[i])
			}
		}},
		{gvk: gw("BackendTLSPolicy"), optional: true, list: &gwapiv1.BackendTLSPolicyList{}, add: func(s *config.Snapshot, l client.ObjectList) {
			for i := range l.(*gwapiv1.BackendTLSPolicyList).Items {
				s.BackendTLSPolicies = append(s.BackendTLSPolicies, &l.(*gwapiv1.BackendTLSPolicyList).Items[i])
			}
		}},
		{gvk: corev1.SchemeGroupVersion.WithKind("ConfigMap"), list: &corev1.ConfigMapList{}, add: func(s *config.Snapshot, l client.ObjectList) {
			for i := range l.(*corev1.ConfigMapList).Items {
				s.ConfigMaps = append(s.ConfigMaps, &l.(*corev1.ConfigMapList).Items[i])
			}
		}},
		{gvk: corev1.SchemeGroupVersion.WithKind("Service"), list: &corev1.ServiceList{}, add: func(s *config.Snapshot, l client.ObjectList) {
			for i := range l.(*corev1.ServiceList).Items {
				s.Services = append(s.Services, &l.(*corev1.ServiceList).Items[i])
			}
		}},
		{gvk: discoveryv1.SchemeGroupVersion.WithKind("EndpointSlice"), list: &discoveryv1.EndpointSliceList{}, add: func(s *config.Snapshot, l client.ObjectList) {
			for i := range l.(*discoveryv1.EndpointSliceList).Items {
				s.EndpointSlices = append(s.EndpointSlices, &l.(*discoveryv1.EndpointSliceList).Items[i])
			}
		}},
		{gvk: corev1.SchemeGroupVersion.WithKind("Secret"), list: &corev1.SecretList{}, add: func(s *config.Snapshot, l client.ObjectList) {
			for i := range l.(*corev1.SecretList).Items {
				s.Secrets = append(s.Secrets, &l.(*corev1.SecretList).Items[i])
			}
		}},
		{gvk: corev1.SchemeGroupVersion.WithKind("Namespace"), list: &corev1.NamespaceList{}, add: func(s *config.Snapshot, l client.ObjectList) {
			for i := range l.(*corev1.NamespaceList).Items {
				s.Namespaces = append(s.Namespaces, &l.(*corev1.NamespaceList).Items[i])
			}
		}},
		{gvk: mg(mgv1alpha1.KindBackend), optional: true, list: &mgv1alpha1.BackendList{}, add: func(s *config.Snapshot, l client.ObjectList) {
			for i := range l.(*mgv1alpha1.BackendList).Items {
				s.Backends = append(s.Backends, &l.(*mgv1alpha1.BackendList).Items[i])
			}
		}},
		{gvk: mg(mgv1alpha1.KindTrafficPolicy), optional: true, list: &mgv1alpha1.TrafficPolicyList{}, add: func(s *config.Snapshot, l client.ObjectList) {
			for i := range l.(*mgv1alpha1.TrafficPolicyList).Items {
				s.TrafficPolicies = append(s.TrafficPolicies, &l.(*mgv1alpha1.TrafficPolicyList).Items[i])
			}
		}},
		{gvk: mg(mgv1alpha1.KindSecurityPolicy), optional: true, list: &mgv1alpha1.SecurityPolicyList{}, add: func(s *config.Snapshot, l client.ObjectList) {
			for i := range l.(*mgv1alpha1.SecurityPolicyList).Items {
				s.SecurityPolicies = append(s.SecurityPolicies, &l.(*mgv1alpha1.SecurityPolicyList).Items[i])
			}
		}},
		{gvk: mg(mgv1alpha1.KindFaultInjection), optional: true, list: &mgv1alpha1.FaultInjectionList{}, add: func(s *config.Snapshot, l client.ObjectList) {
			for i := range l.(*mgv1alpha1.FaultInjectionList).Items {
				s.FaultInjections = append(s.FaultInjections, &l.(*mgv1alpha1.FaultInjectionList).Items[i])
			}
		}},
		{gvk: mg(mgv1alpha1.KindRollout), optional: true, list: &mgv1alpha1.RolloutList{}, add: func(s *config.Snapshot, l client.ObjectList) {
			for i := range l.(*mgv1alpha1.RolloutList).Items {
				s.Rollouts = append(s.Rollouts, &l.(*mgv1alpha1.RolloutList).Items[i])
			}
		}},
	}
}

// Run starts the informers, waits until every one has synced, sends the
// first snapshot and then one after each settled burst of changes, until ctx
// ends. The newest snapshot wins: a slow consumer gets the latest, not a
// queue.
func (p *Provider) Run(ctx context.Context, out chan<- config.Update) error {
	log := p.Log
	if log == nil {
		log = slog.Default()
	}
	debounce, maxDelay := p.Debounce, p.MaxDelay
	if debounce <= 0 {
		debounce = 100 * time.Millisecond
	}
	if maxDelay <= 0 {
		maxDelay = time.Second
	}
	scheme, err := Scheme()
	if err != nil {
		return err
	}
	if err := waitForAPI(ctx, p.Config, log); err != nil {
		return err
	}
	changed := make(chan struct{}, 1)
	poke := func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	handler := toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { poke() },
		UpdateFunc: func(any, any) { poke() },
		DeleteFunc: func(any) { poke() },
	}
	var (
		c      cache.Cache
		active []watched
	)
	for backoff := time.Second; ; backoff = min(2*backoff, 30*time.Second) {
		var err error
		c, active, err = p.setup(ctx, scheme, handler, log)
		if err == nil {
			break
		}
		// Right after an API server (re)start, the CRD groups may not be
		// in discovery yet: wait and try again rather than exit.
		log.Warn("kubernetes watches not set up; retrying", "error", err.Error(), "retry_in", backoff.String())
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
	}
	cacheErr := make(chan error, 1)
	go func() { cacheErr <- c.Start(ctx) }()
	if !c.WaitForCacheSync(ctx) {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return errors.New("kubernetes: informers did not sync")
	}
	p.mu.Lock()
	p.cache, p.kinds = c, active
	p.mu.Unlock()
	log.Info("kubernetes informers synced", "kinds", len(active))

	send := func() error {
		s, err := p.snapshot(ctx)
		if err != nil {
			// A store read cannot fail once synced; if it did, the
			// old config stays rather than a partial one.
			log.Error("kubernetes snapshot not built; previous config stays", "error", err.Error())
			return nil
		}
		select {
		case out <- config.Update{Snapshot: s}:
		case <-ctx.Done():
			return ctx.Err()
		}
		return nil
	}
	// Drain the events of the initial sync: the first snapshot covers them.
	select {
	case <-changed:
	default:
	}
	if err := send(); err != nil {
		return err
	}
	var settle, deadline <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-cacheErr:
			if err != nil {
				return fmt.Errorf("kubernetes cache: %w", err)
			}
			return nil
		case <-changed:
			settle = time.After(debounce)
			if deadline == nil {
				deadline = time.After(maxDelay)
			}
			continue
		case <-settle:
		case <-deadline:
		}
		settle, deadline = nil, nil
		if err := send(); err != nil {
			return err
		}
	}
}

// snapshot copies the informers' stores into a new Snapshot.
func (p *Provider) snapshot(ctx context.Context) (*config.Snapshot, error) {
	p.mu.Lock()
	c, ks := p.cache, p.kinds
	p.mu.Unlock()
	s := &config.Snapshot{}
	for _, k := range ks {
		l := k.list.DeepCopyObject().(client.ObjectList)
		if err := c.List(ctx, l); err != nil {
			return nil, fmt.Errorf("list %s: %w", k.gvk.Kind, err)
		}
		if err := sortList(l); err != nil {
			return nil, err
		}
		if err := meta.EachListItem(l, scrub); err != nil {
			return nil, err
		}
		k.add(s, l)
	}
	return s, nil
}

// Reader is the provider's cache once synced (nil before), for the status
// writer to read current objects without extra API calls.
func (p *Provider) Reader() client.Reader {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cache == nil {
		return nil
	}
	return p.cache
}

// sortList orders l's items by namespace and name: the cache lists in map
// order, and an unchanged cluster must give an identical snapshot (its hash
// decides whether to re-translate).
func sortList(l client.ObjectList) error {
	items, err := meta.ExtractList(l)
	if err != nil {
		return err
	}
	key := func(o runtime.Object) string {
		m, _ := meta.Accessor(o)
		return m.GetNamespace() + "/" + m.GetName()
	}
	sort.SliceStable(items, func(i, j int) bool { return key(items[i]) < key(items[j]) })
	return meta.SetList(l, items)
}

// scrub drops what the translator never reads but changes on every write:
// resourceVersion, managed fields and the status the gateway itself writes
// (a Rollout's status is its progress and stays). Without this, each status
// write would change the snapshot and re-translate the whole config.
func scrub(o runtime.Object) error {
	m, err := meta.Accessor(o)
	if err != nil {
		return err
	}
	m.SetResourceVersion("")
	m.SetManagedFields(nil)
	switch x := o.(type) {
	case *gwapiv1.GatewayClass:
		x.Status = gwapiv1.GatewayClassStatus{}
	case *gwapiv1.Gateway:
		x.Status = gwapiv1.GatewayStatus{}
	case *gwapiv1.HTTPRoute:
		x.Status = gwapiv1.HTTPRouteStatus{}
	case *gwapiv1.GRPCRoute:
		x.Status = gwapiv1.GRPCRouteStatus{}
	case *gwapiv1.TCPRoute:
		x.Status = gwapiv1.TCPRouteStatus{}
	case *gwapiv1.TLSRoute:
		x.Status = gwapiv1.TLSRouteStatus{}
	case *gwapiv1.UDPRoute:
		x.Status = gwapiv1.UDPRouteStatus{}
	case *gwapiv1.ListenerSet:
		x.Status = gwapiv1.ListenerSetStatus{}
	case *gwapiv1.BackendTLSPolicy:
		x.Status = gwapiv1.PolicyStatus{}
	case *mgv1alpha1.TrafficPolicy:
		x.Status = gwapiv1.PolicyStatus{}
	case *mgv1alpha1.SecurityPolicy:
		x.Status = gwapiv1.PolicyStatus{}
	case *corev1.Service:
		x.Status = corev1.ServiceStatus{}
	}
	return nil
}

// waitForAPI returns once the API server answers, retrying with backoff
// (1 s up to 30 s) while it does not: a gateway started during an API
// outage waits, unready, instead of exiting and crash-looping.
func waitForAPI(ctx context.Context, cfg *rest.Config, log *slog.Logger) error {
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return fmt.Errorf("kubernetes client: %w", err)
	}
	backoff := time.Second
	for {
		_, err := dc.ServerVersion()
		if err == nil {
			return nil
		}
		log.Warn("kubernetes API server not reachable; retrying", "error", err.Error(), "retry_in", backoff.String())
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

// setup resolves every watched kind and registers its informer.
func (p *Provider) setup(ctx context.Context, scheme *runtime.Scheme, handler toolscache.ResourceEventHandler, log *slog.Logger) (cache.Cache, []watched, error) {
	httpClient, err := rest.HTTPClientFor(p.Config)
	if err != nil {
		return nil, nil, fmt.Errorf("kubernetes client: %w", err)
	}
	mapper, err := apiutil.NewDynamicRESTMapper(p.Config, httpClient)
	if err != nil {
		return nil, nil, fmt.Errorf("kubernetes discovery: %w", err)
	}
	c, err := cache.New(p.Config, cache.Options{Scheme: scheme, Mapper: mapper, HTTPClient: httpClient})
	if err != nil {
		return nil, nil, fmt.Errorf("kubernetes cache: %w", err)
	}

	var active []watched
	for _, k := range kinds() {
		if _, err := mapper.RESTMapping(k.gvk.GroupKind(), k.gvk.Version); err != nil {
			if meta.IsNoMatchError(err) && k.optional {
				log.Warn("kind not served by the API server (CRD not installed?); not watched", "kind", k.gvk.String())
				continue
			}
			return nil, nil, fmt.Errorf("kubernetes: %s: %w", k.gvk, err)
		}
		obj, err := scheme.New(k.gvk)
		if err != nil {
			return nil, nil, err
		}
		inf, err := c.GetInformer(ctx, obj.(client.Object))
		if err != nil {
			return nil, nil, fmt.Errorf("watch %s: %w", k.gvk.Kind, err)
		}
		if _, err := inf.AddEventHandler(handler); err != nil {
			return nil, nil, fmt.Errorf("watch %s: %w", k.gvk.Kind, err)
		}
		active = append(active, k)
	}
	return c, active, nil
}
