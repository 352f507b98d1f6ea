package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"
	"sigs.k8s.io/yaml"

	mgv1alpha1 "github.com/meshgate/meshgate/api/v1alpha1"
	"github.com/meshgate/meshgate/internal/k8stest"
)

// kubeEnv is a real kube-apiserver and etcd with the Gateway API and
// Meshgate CRDs, plus a client, for the tests that run the gateway with
// --kubernetes.
type kubeEnv struct {
	t  *testing.T
	cp *k8stest.ControlPlane
	c  client.Client
	ns string
}

func newKubeEnv(t *testing.T) *kubeEnv {
	t.Helper()
	cp := k8stest.Start(t, k8stest.Options{CRDs: true})
	e := &kubeEnv{t: t, cp: cp, c: cp.Client(t), ns: "apps"}
	e.create(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: e.ns}})
	e.create(&gwapiv1.GatewayClass{
		ObjectMeta: metav1.ObjectMeta{Name: "meshgate"},
		Spec:       gwapiv1.GatewayClassSpec{ControllerName: "gateway.meshgate.dev/controller"},
	})
	return e
}

func (e *kubeEnv) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	e.t.Cleanup(cancel)
	return ctx
}

func (e *kubeEnv) create(o client.Object) {
	e.t.Helper()
	if err := e.c.Create(e.ctx(), o); err != nil {
		e.t.Fatalf("create %T %s: %v", o, o.GetName(), err)
	}
}

// update reads the object, changes it with edit and writes it back,
// retrying on conflicts (the gateway writes status meanwhile).
func (e *kubeEnv) update(o client.Object, edit func()) {
	e.t.Helper()
	for i := 0; ; i++ {
		if err := e.c.Get(e.ctx(), client.ObjectKeyFromObject(o), o); err != nil {
			e.t.Fatal(err)
		}
		edit()
		err := e.c.Update(e.ctx(), o)
		if err == nil {
			return
		}
		if !apierrors.IsConflict(err) || i > 20 {
			e.t.Fatalf("update %s: %v", o.GetName(), err)
		}
	}
}

// eventually polls cond until it holds or 30 s pass.
func (e *kubeEnv) eventually(what string, cond func() (bool, string)) {
	e.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	last := ""
	for time.Now().Before(deadline) {
		ok, msg := cond()
		if ok {
			return
		}
		last = msg
		time.Sleep(50 * time.Millisecond)
	}
	e.t.Fatalf("%s: not within 30 s; last: %s", what, last)
}

// service creates a Service with one port named http and an EndpointSlice
// with the given loopback ports as endpoints of that port.
func (e *kubeEnv) service(name string, ep endpoint) *discoveryv1.EndpointSlice {
	e.t.Helper()
	e.create(&corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: e.ns},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80}}},
	})
	es := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: name + "-1", Namespace: e.ns, Labels: map[string]string{discoveryv1.LabelServiceName: name}},
		AddressType: discoveryv1.AddressTypeIPv4,
	}
	setSliceEndpoints(es, ep)
	e.create(es)
	return es
}

// setSliceEndpoints points es at one backend. The API server refuses
// loopback addresses in an EndpointSlice, so the backends of these tests
// listen in network namespaces of their own (newNetnsBackend).
func setSliceEndpoints(es *discoveryv1.EndpointSlice, ep endpoint) {
	name, p := "http", int32(ep.port)
	es.Ports = []discoveryv1.EndpointPort{{Name: &name, Port: &p}}
	es.Endpoints = []discoveryv1.Endpoint{{Addresses: []string{ep.ip}}}
}

// endpoint is a backend's address as an EndpointSlice names it.
type endpoint struct {
	ip   string
	port int
}

// newKubeBackend is a backend reachable at an address an EndpointSlice
// may hold.
func newKubeBackend(t *testing.T, name string) endpoint {
	b, ip := newNetnsBackend(t, name)
	return endpoint{ip, b.port}
}

func (e *kubeEnv) route(name, host string, backends ...string) *gwapiv1.HTTPRoute {
	var refs []gwapiv1.HTTPBackendRef
	for _, b := range backends {
		port := gwapiv1.PortNumber(80)
		refs = append(refs, gwapiv1.HTTPBackendRef{BackendRef: gwapiv1.BackendRef{BackendObjectReference: gwapiv1.BackendObjectReference{Name: gwapiv1.ObjectName(b), Port: &port}}})
	}
	return &gwapiv1.HTTPRoute{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: e.ns},
		Spec: gwapiv1.HTTPRouteSpec{
			CommonRouteSpec: gwapiv1.CommonRouteSpec{ParentRefs: []gwapiv1.ParentReference{{Name: "gw"}}},
			Hostnames:       []gwapiv1.Hostname{gwapiv1.Hostname(host)},
			Rules:           []gwapiv1.HTTPRouteRule{{BackendRefs: refs}},
		},
	}
}

func condition(cs []metav1.Condition, typ string) *metav1.Condition {
	return meta.FindStatusCondition(cs, typ)
}

func condTrue(cs []metav1.Condition, typ string, gen int64) (bool, string) {
	c := condition(cs, typ)
	if c == nil {
		return false, typ + " missing"
	}
	if c.Status != metav1.ConditionTrue || c.ObservedGeneration != gen {
		return false, fmt.Sprintf("%s=%s gen %d (want %d): %s: %s", typ, c.Status, c.ObservedGeneration, gen, c.Reason, c.Message)
	}
	return true, ""
}

// TestKubernetesProvider runs the gateway with --kubernetes against a real
// kube-apiserver: status is written as Gateway API defines it, traffic
// follows route and EndpointSlice changes, a cross-namespace reference
// without a ReferenceGrant is refused, and an API server outage changes
// nothing for traffic while changes made meanwhile are picked up after.
func TestKubernetesProvider(t *testing.T) {
	e := newKubeEnv(t)
	v1, v2 := newKubeBackend(t, "v1"), newKubeBackend(t, "v2")
	ip := newLoopbackIP(t)
	port := freePort(t, ip)

	addrType := gwapiv1.IPAddressType
	gw := &gwapiv1.Gateway{
		ObjectMeta: metav1.ObjectMeta{Name: "gw", Namespace: e.ns},
		Spec: gwapiv1.GatewaySpec{
			GatewayClassName: "meshgate",
			Addresses:        []gwapiv1.GatewaySpecAddress{{Type: &addrType, Value: ip}},
			Listeners:        []gwapiv1.Listener{{Name: "http", Port: gwapiv1.PortNumber(port), Protocol: gwapiv1.HTTPProtocolType}},
		},
	}
	e.create(gw)
	e.service("app-v1", v1)
	es2 := e.service("app-v2", v2)
	rt := e.route("app", "app.test", "app-v1")
	e.create(rt)

	g := startGateway(t, ip, "", "--kubernetes", "--kubeconfig", e.cp.Kubeconfig)

	// Status: GatewayClass accepted with its features, Gateway accepted
	// and programmed with its address and attached route, route accepted.
	e.eventually("GatewayClass Accepted", func() (bool, string) {
		var gc gwapiv1.GatewayClass
		if err := e.c.Get(e.ctx(), types.NamespacedName{Name: "meshgate"}, &gc); err != nil {
			return false, err.Error()
		}
		if len(gc.Status.SupportedFeatures) == 0 {
			return false, "no supportedFeatures"
		}
		return condTrue(gc.Status.Conditions, "Accepted", gc.Generation)
	})
	e.eventually("Gateway Programmed", func() (bool, string) {
		var got gwapiv1.Gateway
		if err := e.c.Get(e.ctx(), client.ObjectKeyFromObject(gw), &got); err != nil {
			return false, err.Error()
		}
		for _, typ := range []string{"Accepted", "Programmed"} {
			if ok, msg := condTrue(got.Status.Conditions, typ, got.Generation); !ok {
				return false, msg
			}
		}
		if len(got.Status.Addresses) != 1 || got.Status.Addresses[0].Value != ip {
			return false, fmt.Sprintf("addresses %v, want %s", got.Status.Addresses, ip)
		}
		if len(got.Status.Listeners) != 1 || got.Status.Listeners[0].AttachedRoutes != 1 {
			return false, fmt.Sprintf("listeners %+v, want one with 1 attached route", got.Status.Listeners)
		}
		for _, typ := range []string{"Accepted", "Programmed", "ResolvedRefs"} {
			if ok, msg := condTrue(got.Status.Listeners[0].Conditions, typ, got.Generation); !ok {
				return false, "listener " + msg
			}
		}
		return true, ""
	})
	routeAccepted := func(name string) func() (bool, string) {
		return func() (bool, string) {
			var got gwapiv1.HTTPRoute
			if err := e.c.Get(e.ctx(), types.NamespacedName{Namespace: e.ns, Name: name}, &got); err != nil {
				return false, err.Error()
			}
			if len(got.Status.Parents) != 1 {
				return false, fmt.Sprintf("parents %+v", got.Status.Parents)
			}
			p := got.Status.Parents[0]
			if p.ControllerName != "gateway.meshgate.dev/controller" {
				return false, "controllerName " + string(p.ControllerName)
			}
			for _, typ := range []string{"Accepted", "ResolvedRefs"} {
				if ok, msg := condTrue(p.Conditions, typ, got.Generation); !ok {
					return false, msg
				}
			}
			return true, ""
		}
	}
	e.eventually("HTTPRoute Accepted", routeAccepted("app"))

	url := g.url(port, "/")
	backendOf := func() string {
		r, err := tryDo(defaultClient, request{url: url, host: "app.test"})
		if err != nil {
			return "error: " + err.Error()
		}
		return r.backend()
	}
	e.eventually("traffic to v1", func() (bool, string) { b := backendOf(); return b == "v1", b })

	// A route change is followed.
	e.update(rt, func() { rt.Spec.Rules[0].BackendRefs[0].Name = "app-v2" })
	e.eventually("route change followed", func() (bool, string) { b := backendOf(); return b == "v2", b })

	// An EndpointSlice change is followed.
	e.update(es2, func() { setSliceEndpoints(es2, v1) })
	e.eventually("EndpointSlice change followed", func() (bool, string) { b := backendOf(); return b == "v1", b })

	// A cross-namespace backendRef without a ReferenceGrant is refused.
	e.create(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "other"}})
	e.create(&corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "far", Namespace: "other"},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80}}}})
	far := e.route("far", "far.test", "far")
	otherNS := gwapiv1.Namespace("other")
	far.Spec.Rules[0].BackendRefs[0].Namespace = &otherNS
	e.create(far)
	e.eventually("RefNotPermitted", func() (bool, string) {
		var got gwapiv1.HTTPRoute
		if err := e.c.Get(e.ctx(), client.ObjectKeyFromObject(far), &got); err != nil || len(got.Status.Parents) == 0 {
			return false, fmt.Sprint(err)
		}
		c := condition(got.Status.Parents[0].Conditions, "ResolvedRefs")
		if c == nil || c.Status != metav1.ConditionFalse || c.Reason != "RefNotPermitted" {
			return false, fmt.Sprintf("%+v", c)
		}
		return true, ""
	})

	// API server outage: traffic keeps flowing, with no failed request.
	var failures, ok atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		deadline := time.Now().Add(60 * time.Second)
		for time.Now().Before(deadline) {
			select {
			case <-stop:
				return
			default:
			}
			r, err := tryDo(defaultClient, request{url: url, host: "app.test"})
			if err != nil || r.status != http.StatusOK {
				failures.Add(1)
			} else {
				ok.Add(1)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	e.cp.StopAPIServer()
	time.Sleep(3 * time.Second) // informers notice and start retrying
	if !g.running() {
		t.Fatal("the gateway exited when the API server went away")
	}
	// Meanwhile, a change lands in etcd through... nothing: the API server
	// is down. Change it right after the restart instead and check it is
	// picked up, proving the watches resumed.
	e.cp.StartAPIServer()
	e.update(rt, func() { rt.Spec.Rules[0].BackendRefs[0].Name = "app-v1" })
	e.update(es2, func() { setSliceEndpoints(es2, v2) })
	e.update(rt, func() { rt.Spec.Rules[0].BackendRefs[0].Name = "app-v2" })
	e.eventually("change after API server restart followed", func() (bool, string) { b := backendOf(); return b == "v2", b })
	close(stop)
	wg.Wait()
	if failures.Load() != 0 {
		t.Errorf("%d of %d requests failed across the API server outage", failures.Load(), failures.Load()+ok.Load())
	}
	if ok.Load() == 0 {
		t.Error("no request was made during the outage")
	}
}

// TestKubernetesLeaderElection runs two gateways on one cluster: both serve
// traffic, exactly one holds the Lease and writes status; when it dies the
// other takes over and status keeps being written.
func TestKubernetesLeaderElection(t *testing.T) {
	e := newKubeEnv(t)
	v1 := newKubeBackend(t, "v1")
	e.create(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "meshgate-system"}})
	e.service("app-v1", v1)
	e.create(e.route("app", "app.test", "app-v1"))

	// Each replica serves the same Gateway on its own loopback address
	// (as replicas do on their own pods); the Gateway has no address, so
	// the status reports none rather than one replica's.
	var gws []*gateway
	port := 0
	var ips []string
	for i := 0; i < 2; i++ {
		ip := newLoopbackIP(t)
		if port == 0 {
			port = freePort(t, ip)
			e.create(&gwapiv1.Gateway{
				ObjectMeta: metav1.ObjectMeta{Name: "gw", Namespace: e.ns},
				Spec: gwapiv1.GatewaySpec{
					GatewayClassName: "meshgate",
					Listeners:        []gwapiv1.Listener{{Name: "http", Port: gwapiv1.PortNumber(port), Protocol: gwapiv1.HTTPProtocolType}},
				},
			})
		}
		ips = append(ips, ip)
		gws = append(gws, startGateway(t, ip, "", "--kubernetes", "--kubeconfig", e.cp.Kubeconfig,
			"--bind-address", ip, "--leader-elect", "--leader-elect-namespace", "meshgate-system"))
	}
	for i, g := range gws {
		e.eventually(fmt.Sprintf("replica %d serves", i), func() (bool, string) {
			r, err := tryDo(defaultClient, request{url: g.url(port, "/"), host: "app.test"})
			if err != nil {
				return false, err.Error()
			}
			return r.backend() == "v1", r.String()
		})
	}
	holder := func() string {
		var l coordinationv1.Lease
		if err := e.c.Get(e.ctx(), types.NamespacedName{Namespace: "meshgate-system", Name: "meshgate-leader"}, &l); err != nil || l.Spec.HolderIdentity == nil {
			return ""
		}
		return *l.Spec.HolderIdentity
	}
	e.eventually("a leader", func() (bool, string) { return holder() != "", "no holder" })
	first := holder()
	leaderIdx := -1
	for i, g := range gws {
		if g.countLogs("leader election: now the leader; writing status") > 0 {
			if leaderIdx >= 0 {
				t.Fatal("both replicas say they are the leader")
			}
			leaderIdx = i
		}
	}
	if leaderIdx < 0 {
		t.Fatalf("lease held by %q but no replica logged leadership", first)
	}
	// Status is written by the leader.
	e.eventually("route status written", func() (bool, string) {
		var got gwapiv1.HTTPRoute
		if err := e.c.Get(e.ctx(), types.NamespacedName{Namespace: e.ns, Name: "app"}, &got); err != nil || len(got.Status.Parents) == 0 {
			return false, "no parents"
		}
		return true, ""
	})

	// Kill the leader: the other takes the lease (after the lease
	// duration) and writes status for a new route.
	gws[leaderIdx].cmd.Process.Kill()
	other := gws[1-leaderIdx]
	e.eventually("new leader", func() (bool, string) {
		return other.countLogs("leader election: now the leader; writing status") > 0, "holder " + holder()
	})
	e.create(e.route("second", "second.test", "app-v1"))
	e.eventually("new route's status written by the new leader", func() (bool, string) {
		var got gwapiv1.HTTPRoute
		if err := e.c.Get(e.ctx(), types.NamespacedName{Namespace: e.ns, Name: "second"}, &got); err != nil || len(got.Status.Parents) == 0 {
			return false, "no parents"
		}
		return condTrue(got.Status.Parents[0].Conditions, "Accepted", got.Generation)
	})
	r := get(t, other.url(port, "/"), "second.test")
	if r.backend() != "v1" {
		t.Errorf("surviving replica: %s", r)
	}
}

// TestKubernetesSecretRotation: replacing the certificate in a listener's
// Secret is served to new handshakes at once, while a connection opened
// with the old certificate keeps working.
func TestKubernetesSecretRotation(t *testing.T) {
	e := newKubeEnv(t)
	v1 := newKubeBackend(t, "v1")
	ip := newLoopbackIP(t)
	port := freePort(t, ip)
	oldCert, newCert := newTestCert(t, "secure.test"), newTestCert(t, "secure.test")
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "secure-cert", Namespace: e.ns},
		Type:       corev1.SecretTypeTLS,
		Data:       map[string][]byte{"tls.crt": []byte(oldCert.certPEM), "tls.key": []byte(oldCert.keyPEM)},
	}
	e.create(secret)
	addrType := gwapiv1.IPAddressType
	mode := gwapiv1.TLSModeTerminate
	e.create(&gwapiv1.Gateway{
		ObjectMeta: metav1.ObjectMeta{Name: "gw", Namespace: e.ns},
		Spec: gwapiv1.GatewaySpec{
			GatewayClassName: "meshgate",
			Addresses:        []gwapiv1.GatewaySpecAddress{{Type: &addrType, Value: ip}},
			Listeners: []gwapiv1.Listener{{
				Name: "https", Port: gwapiv1.PortNumber(port), Protocol: gwapiv1.HTTPSProtocolType,
				TLS: &gwapiv1.ListenerTLSConfig{Mode: &mode, CertificateRefs: []gwapiv1.SecretObjectReference{{Name: "secure-cert"}}},
			}},
		},
	})
	e.service("app-v1", v1)
	e.create(e.route("app", "secure.test", "app-v1"))
	g := startGateway(t, ip, "", "--kubernetes", "--kubeconfig", e.cp.Kubeconfig, "--http3=false")
	addr := g.addr(port)
	e.eventually("old certificate served", func() (bool, string) {
		c, err := sniCertOf(addr, "secure.test")
		if err != nil {
			return false, err.Error()
		}
		return c.Equal(oldCert.cert), "other certificate"
	})

	// A keep-alive connection opened before the rotation.
	pool := x509.NewCertPool()
	pool.AddCert(oldCert.cert)
	pool.AddCert(newCert.cert)
	tr := &http.Transport{TLSClientConfig: &tls.Config{ServerName: "secure.test", RootCAs: pool}, MaxIdleConnsPerHost: 1}
	t.Cleanup(tr.CloseIdleConnections)
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	var conns atomic.Int64
	getVia := func() (string, bool, error) {
		var reused bool
		ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) {
			reused = i.Reused
			if !i.Reused {
				conns.Add(1)
			}
		}})
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+addr+"/", nil)
		req.Host = "secure.test"
		resp, err := c.Do(req)
		if err != nil {
			return "", false, err
		}
		defer resp.Body.Close()
		io.Copy(io.Discard, resp.Body)
		return resp.Header.Get("X-Backend"), reused, nil
	}
	if b, _, err := getVia(); err != nil || b != "v1" {
		t.Fatalf("before rotation: %q %v", b, err)
	}

	e.update(secret, func() {
		secret.Data = map[string][]byte{"tls.crt": []byte(newCert.certPEM), "tls.key": []byte(newCert.keyPEM)}
	})
	e.eventually("new certificate served", func() (bool, string) {
		c, err := sniCertOf(addr, "secure.test")
		if err != nil {
			return false, err.Error()
		}
		return c.Equal(newCert.cert), "still the old certificate"
	})
	b, reused, err := getVia()
	if err != nil || b != "v1" {
		t.Fatalf("after rotation on the old connection: %q %v", b, err)
	}
	if !reused || conns.Load() != 1 {
		t.Errorf("the connection opened before the rotation was not kept (reused=%v, connections=%d)", reused, conns.Load())
	}
}

// TestKubernetesTrafficPolicy applies Meshgate's own kinds through the API
// server: a FaultInjection on a route rule and a TrafficPolicy with a rate
// limit act on traffic exactly as from files, and the policies' status
// (Accepted, TargetNotFound, Conflicted) is written to their ancestors.
func TestKubernetesTrafficPolicy(t *testing.T) {
	e := newKubeEnv(t)
	v1 := newKubeBackend(t, "v1")
	ip := newLoopbackIP(t)
	port := freePort(t, ip)
	addrType := gwapiv1.IPAddressType
	e.create(&gwapiv1.Gateway{
		ObjectMeta: metav1.ObjectMeta{Name: "gw", Namespace: e.ns},
		Spec: gwapiv1.GatewaySpec{
			GatewayClassName: "meshgate",
			Addresses:        []gwapiv1.GatewaySpecAddress{{Type: &addrType, Value: ip}},
			Listeners:        []gwapiv1.Listener{{Name: "http", Port: gwapiv1.PortNumber(port), Protocol: gwapiv1.HTTPProtocolType}},
		},
	})
	e.service("app-v1", v1)
	limited := e.route("limited", "limited.test", "app-v1")
	e.create(limited)
	faulty := e.route("faulty", "faulty.test", "app-v1")
	faulty.Spec.Rules[0].Filters = []gwapiv1.HTTPRouteFilter{{
		Type:         gwapiv1.HTTPRouteFilterExtensionRef,
		ExtensionRef: &gwapiv1.LocalObjectReference{Group: "gateway.meshgate.dev", Kind: "FaultInjection", Name: "teapot"},
	}}
	e.create(faulty)
	for _, obj := range []string{`
apiVersion: gateway.meshgate.dev/v1alpha1
kind: FaultInjection
metadata: {name: teapot, namespace: apps}
spec:
  headers: [{name: x-fault, value: "on"}]
  abort: {httpStatus: 418, percentage: "100"}`, `
apiVersion: gateway.meshgate.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: limit, namespace: apps}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: limited}]
  rateLimit:
    local: [{key: Route, requests: 3, unit: Hour}]`, `
apiVersion: gateway.meshgate.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: limit-again, namespace: apps}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: limited}]
  retry: {attempts: 1}`, `
apiVersion: gateway.meshgate.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: nowhere, namespace: apps}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: missing}]
  retry: {attempts: 1}`} {
		var u unstructured.Unstructured
		if err := yaml.Unmarshal([]byte(obj), &u.Object); err != nil {
			t.Fatal(err)
		}
		e.create(&u)
		// The newer policy on the same target must lose to the older.
		time.Sleep(1100 * time.Millisecond)
	}
	// An invalid one never gets past the API server's validation (the
	// same CRD schema the files loader applies).
	var bad unstructured.Unstructured
	yaml.Unmarshal([]byte(`
apiVersion: gateway.meshgate.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: bad, namespace: apps}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: limited}]
  retry: {attempts: 11}`), &bad.Object)
	if err := e.c.Create(e.ctx(), &bad); err == nil || !strings.Contains(err.Error(), "spec.retry.attempts") {
		t.Errorf("invalid TrafficPolicy: got %v, want a validation error naming spec.retry.attempts", err)
	}

	g := startGateway(t, ip, "", "--kubernetes", "--kubeconfig", e.cp.Kubeconfig)
	url := g.url(port, "/")

	e.eventually("fault injected for the tester", func() (bool, string) {
		r, err := tryDo(defaultClient, request{url: url, host: "faulty.test", header: http.Header{"X-Fault": {"on"}}})
		if err != nil {
			return false, err.Error()
		}
		return r.status == 418, r.String()
	})
	if r := get(t, url, "faulty.test"); r.status != 200 || r.backend() != "v1" {
		t.Errorf("request without the tester header: %s", r)
	}
	var codes []int
	for i := 0; i < 5; i++ {
		codes = append(codes, get(t, url, "limited.test").status)
	}
	if fmt.Sprint(codes) != "[200 200 200 429 429]" {
		t.Errorf("rate limit of 3 per hour: statuses %v", codes)
	}

	policyReason := func(name string) (string, string) {
		var p mgv1alpha1.TrafficPolicy
		if err := e.c.Get(e.ctx(), types.NamespacedName{Namespace: e.ns, Name: name}, &p); err != nil {
			return "", err.Error()
		}
		if len(p.Status.Ancestors) == 0 {
			return "", "no ancestors"
		}
		a := p.Status.Ancestors[0]
		c := condition(a.Conditions, "Accepted")
		if c == nil || string(a.ControllerName) != "gateway.meshgate.dev/controller" {
			return "", fmt.Sprintf("%+v", a)
		}
		return c.Reason, c.Message
	}
	for name, want := range map[string]string{"limit": "Accepted", "limit-again": "Conflicted", "nowhere": "TargetNotFound"} {
		e.eventually("TrafficPolicy "+name+" "+want, func() (bool, string) {
			got, msg := policyReason(name)
			return got == want, got + ": " + msg
		})
	}
}

// TestKubernetesServiceAddresses: with --gateway-service, Gateways report
// the data-plane Service's load balancer address, or the nodes' addresses
// for a NodePort Service, instead of the bound address.
func TestKubernetesServiceAddresses(t *testing.T) {
	e := newKubeEnv(t)
	ip := newLoopbackIP(t)
	port := freePort(t, ip)
	e.create(&gwapiv1.Gateway{
		ObjectMeta: metav1.ObjectMeta{Name: "gw", Namespace: e.ns},
		Spec: gwapiv1.GatewaySpec{
			GatewayClassName: "meshgate",
			Listeners:        []gwapiv1.Listener{{Name: "http", Port: gwapiv1.PortNumber(port), Protocol: gwapiv1.HTTPProtocolType}},
		},
	})
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "meshgate", Namespace: e.ns},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Ports: []corev1.ServicePort{{Name: "http", Port: 80}},
			ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicyLocal},
	}
	e.create(svc)
	// What a cloud controller would write.
	svc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "203.0.113.10"}, {Hostname: "lb.example.com"}}
	if err := e.c.Status().Update(e.ctx(), svc); err != nil {
		t.Fatal(err)
	}
	startGateway(t, ip, "", "--kubernetes", "--kubeconfig", e.cp.Kubeconfig, "--bind-address", ip, "--gateway-service", e.ns+"/meshgate")
	addresses := func() string {
		var gw gwapiv1.Gateway
		if err := e.c.Get(e.ctx(), types.NamespacedName{Namespace: e.ns, Name: "gw"}, &gw); err != nil {
			return err.Error()
		}
		var out []string
		for _, a := range gw.Status.Addresses {
			out = append(out, string(*a.Type)+"="+a.Value)
		}
		return strings.Join(out, ",")
	}
	e.eventually("load balancer addresses", func() (bool, string) {
		a := addresses()
		return a == "IPAddress=203.0.113.10,Hostname=lb.example.com", a
	})

	// NodePort: the nodes' addresses (external first).
	e.create(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-a"}})
	node := &corev1.Node{}
	if err := e.c.Get(e.ctx(), types.NamespacedName{Name: "node-a"}, node); err != nil {
		t.Fatal(err)
	}
	node.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "10.0.0.5"}, {Type: corev1.NodeExternalIP, Address: "198.51.100.5"}}
	if err := e.c.Status().Update(e.ctx(), node); err != nil {
		t.Fatal(err)
	}
	e.update(svc, func() {
		svc.Spec.Type = corev1.ServiceTypeNodePort
		svc.Spec.ExternalTrafficPolicy = ""
	})
	svc.Status.LoadBalancer.Ingress = nil
	if err := e.c.Status().Update(e.ctx(), svc); err != nil {
		t.Fatal(err)
	}
	e.eventually("node addresses", func() (bool, string) {
		a := addresses()
		return a == "IPAddress=10.0.0.5,IPAddress=198.51.100.5", a
	})
}

// TestKubernetesListenerSet: a team's ListenerSet in its own namespace adds
// a listener to a shared Gateway that allows it; the listener serves the
// team's route, and status is written to the ListenerSet and the Gateway.
func TestKubernetesListenerSet(t *testing.T) {
	e := newKubeEnv(t)
	v1 := newKubeBackend(t, "v1")
	ip := newLoopbackIP(t)
	port := freePort(t, ip)
	addrType := gwapiv1.IPAddressType
	all := gwapiv1.NamespacesFromAll
	e.create(&gwapiv1.Gateway{
		ObjectMeta: metav1.ObjectMeta{Name: "shared", Namespace: e.ns},
		Spec: gwapiv1.GatewaySpec{
			GatewayClassName: "meshgate",
			Addresses:        []gwapiv1.GatewaySpecAddress{{Type: &addrType, Value: ip}},
			AllowedListeners: &gwapiv1.AllowedListeners{Namespaces: &gwapiv1.ListenerNamespaces{From: &all}},
			Listeners:        []gwapiv1.Listener{{Name: "http", Port: gwapiv1.PortNumber(port), Protocol: gwapiv1.HTTPProtocolType, Hostname: ptr(gwapiv1.Hostname("platform.test"))}},
		},
	})
	e.create(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-a"}})
	gwNS := gwapiv1.Namespace(e.ns)
	e.create(&gwapiv1.ListenerSet{
		ObjectMeta: metav1.ObjectMeta{Name: "team-a", Namespace: "team-a"},
		Spec: gwapiv1.ListenerSetSpec{
			ParentRef: gwapiv1.ParentGatewayReference{Name: "shared", Namespace: &gwNS},
			Listeners: []gwapiv1.ListenerEntry{{Name: "a", Port: gwapiv1.PortNumber(port), Protocol: gwapiv1.HTTPProtocolType, Hostname: ptr(gwapiv1.Hostname("a.test"))}},
		},
	})
	// The team's Service and route live in its namespace.
	saved := e.ns
	e.ns = "team-a"
	e.service("app-a", v1)
	rt := e.route("app-a", "a.test", "app-a")
	e.ns = saved
	lsGroup, lsKind := gwapiv1.Group(gwapiv1.GroupName), gwapiv1.Kind("ListenerSet")
	rt.Spec.ParentRefs = []gwapiv1.ParentReference{{Group: &lsGroup, Kind: &lsKind, Name: "team-a"}}
	e.create(rt)

	g := startGateway(t, ip, "", "--kubernetes", "--kubeconfig", e.cp.Kubeconfig)
	e.eventually("team route served on the shared port", func() (bool, string) {
		r, err := tryDo(defaultClient, request{url: g.url(port, "/"), host: "a.test"})
		if err != nil {
			return false, err.Error()
		}
		return r.backend() == "v1", r.String()
	})
	e.eventually("ListenerSet status", func() (bool, string) {
		var ls gwapiv1.ListenerSet
		if err := e.c.Get(e.ctx(), types.NamespacedName{Namespace: "team-a", Name: "team-a"}, &ls); err != nil {
			return false, err.Error()
		}
		for _, typ := range []string{"Accepted", "Programmed"} {
			if ok, msg := condTrue(ls.Status.Conditions, typ, ls.Generation); !ok {
				return false, msg
			}
		}
		if len(ls.Status.Listeners) != 1 || ls.Status.Listeners[0].AttachedRoutes != 1 {
			return false, fmt.Sprintf("listeners %+v", ls.Status.Listeners)
		}
		return true, ""
	})
	e.eventually("Gateway attachedListenerSets", func() (bool, string) {
		var gw gwapiv1.Gateway
		if err := e.c.Get(e.ctx(), types.NamespacedName{Namespace: e.ns, Name: "shared"}, &gw); err != nil {
			return false, err.Error()
		}
		n := gw.Status.AttachedListenerSets
		return n != nil && *n == 1, fmt.Sprint(n)
	})
}

func ptr[T any](v T) *T { return &v }

// TestKubernetesStartWithAPIDown: a gateway started while the API server is
// down waits, unready, instead of exiting; once the server is back it syncs
// and serves.
func TestKubernetesStartWithAPIDown(t *testing.T) {
	e := newKubeEnv(t)
	v1 := newKubeBackend(t, "v1")
	ip := newLoopbackIP(t)
	port := freePort(t, ip)
	addrType := gwapiv1.IPAddressType
	e.create(&gwapiv1.Gateway{
		ObjectMeta: metav1.ObjectMeta{Name: "gw", Namespace: e.ns},
		Spec: gwapiv1.GatewaySpec{
			GatewayClassName: "meshgate",
			Addresses:        []gwapiv1.GatewaySpecAddress{{Type: &addrType, Value: ip}},
			Listeners:        []gwapiv1.Listener{{Name: "http", Port: gwapiv1.PortNumber(port), Protocol: gwapiv1.HTTPProtocolType}},
		},
	})
	e.service("app-v1", v1)
	e.create(e.route("app", "app.test", "app-v1"))

	e.cp.StopAPIServer()
	g := launchGateway(t, ip, "", "--kubernetes", "--kubeconfig", e.cp.Kubeconfig)
	time.Sleep(3 * time.Second)
	if !g.running() {
		t.Fatal("the gateway exited while the API server was down")
	}
	if code := g.adminGet("/ready"); code == http.StatusOK {
		t.Error("ready before any config was read")
	}
	e.cp.StartAPIServer()
	g.waitReady()
	if r := get(t, g.url(port, "/"), "app.test"); r.backend() != "v1" {
		t.Errorf("after the API server came back: %s", r)
	}
}
