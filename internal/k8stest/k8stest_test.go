package k8stest

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	meshgatev1alpha1 "github.com/meshgate/meshgate/api/v1alpha1"
)

func TestControlPlane(t *testing.T) {
	start := time.Now()
	cp := Start(t, Options{CRDs: true})
	t.Logf("control plane with CRDs ready in %v", time.Since(start).Round(time.Millisecond))
	ctx := context.Background()
	c := cp.Client(t)

	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "k8stest"}}
	if err := c.Create(ctx, ns); err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	gc := &gatewayv1.GatewayClass{
		ObjectMeta: metav1.ObjectMeta{Name: "meshgate"},
		Spec:       gatewayv1.GatewayClassSpec{ControllerName: "meshgate.dev/gateway-controller"},
	}
	if err := c.Create(ctx, gc); err != nil {
		t.Fatalf("create GatewayClass: %v", err)
	}
	route := &gatewayv1.HTTPRoute{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "r1"},
		Spec: gatewayv1.HTTPRouteSpec{
			CommonRouteSpec: gatewayv1.CommonRouteSpec{ParentRefs: []gatewayv1.ParentReference{{Name: "gw"}}},
			Hostnames:       []gatewayv1.Hostname{"example.com"},
			Rules: []gatewayv1.HTTPRouteRule{{
				BackendRefs: []gatewayv1.HTTPBackendRef{{BackendRef: gatewayv1.BackendRef{
					BackendObjectReference: gatewayv1.BackendObjectReference{Name: "svc", Port: ptr.To(gatewayv1.PortNumber(80))},
				}}},
			}},
		},
	}
	if err := c.Create(ctx, route); err != nil {
		t.Fatalf("create HTTPRoute: %v", err)
	}

	var gotGC gatewayv1.GatewayClass
	if err := c.Get(ctx, client.ObjectKey{Name: "meshgate"}, &gotGC); err != nil {
		t.Fatalf("get GatewayClass: %v", err)
	}
	if gotGC.Spec.ControllerName != gc.Spec.ControllerName {
		t.Errorf("GatewayClass controllerName = %q", gotGC.Spec.ControllerName)
	}
	var gotRoute gatewayv1.HTTPRoute
	if err := c.Get(ctx, client.ObjectKeyFromObject(route), &gotRoute); err != nil {
		t.Fatalf("get HTTPRoute: %v", err)
	}
	if len(gotRoute.Spec.Hostnames) != 1 || gotRoute.Spec.Hostnames[0] != "example.com" {
		t.Errorf("HTTPRoute hostnames = %v", gotRoute.Spec.Hostnames)
	}
	// CRD defaulting ran on the server: the rule got the default path match.
	if m := gotRoute.Spec.Rules[0].Matches; len(m) != 1 || m[0].Path == nil || m[0].Path.Value == nil || *m[0].Path.Value != "/" {
		t.Errorf("HTTPRoute rule matches not defaulted by the CRD schema: %+v", m)
	}

	// Meshgate's own CRDs are installed and served.
	var backends meshgatev1alpha1.BackendList
	if err := c.List(ctx, &backends, client.InNamespace(ns.Name)); err != nil {
		t.Errorf("list Meshgate Backends: %v", err)
	}

	out, err := cp.Kubectl(t, "get", "gatewayclasses", "-o", "name")
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(out) != "gatewayclass.gateway.networking.k8s.io/meshgate" {
		t.Errorf("kubectl get gatewayclasses = %q", out)
	}

	// API server outage: requests fail, then work again with the data kept.
	stop := time.Now()
	cp.StopAPIServer()
	t.Logf("API server stopped in %v", time.Since(stop).Round(time.Millisecond))
	shortCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	err = c.Get(shortCtx, client.ObjectKeyFromObject(route), &gotRoute)
	cancel()
	if err == nil {
		t.Fatal("get HTTPRoute succeeded while the API server was stopped")
	}
	t.Logf("while stopped: %v", err)
	restart := time.Now()
	cp.StartAPIServer()
	t.Logf("API server restarted in %v", time.Since(restart).Round(time.Millisecond))
	var again gatewayv1.HTTPRoute
	if err := c.Get(ctx, client.ObjectKeyFromObject(route), &again); err != nil {
		t.Fatalf("get HTTPRoute after restart: %v", err)
	}
	if again.UID != gotRoute.UID {
		t.Errorf("HTTPRoute UID changed across the restart: %s != %s", again.UID, gotRoute.UID)
	}
}

func TestControllerManager(t *testing.T) {
	start := time.Now()
	cp := Start(t, Options{ControllerManager: true})
	t.Logf("control plane with controller manager ready in %v", time.Since(start).Round(time.Millisecond))
	ctx := context.Background()
	c := cp.Client(t)

	labels := map[string]string{"app": "echo"}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "echo"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(int32(2)),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "echo", Image: "echo"}}},
			},
		},
	}
	// The ServiceAccount admission plugin rejects pods until the
	// serviceaccount controller has created "default"; the ReplicaSet
	// controller retries, so creating the Deployment right away is fine.
	if err := c.Create(ctx, d); err != nil {
		t.Fatalf("create Deployment: %v", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		var pods corev1.PodList
		if err := c.List(ctx, &pods, client.InNamespace("default"), client.MatchingLabels(labels)); err != nil {
			t.Fatalf("list pods: %v", err)
		}
		if len(pods.Items) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("deployment made %d pods, want 2", len(pods.Items))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestMissingBinaryMessage(t *testing.T) {
	t.Setenv("MESHGATE_TOOLS", t.TempDir())
	ft := &fakeTB{TB: t}
	done := make(chan struct{})
	go func() { // Fatalf calls runtime.Goexit
		defer close(done)
		Start(ft, Options{})
	}()
	<-done
	if !strings.Contains(ft.msg, "run make test-deps (scripts/k8s-tools.sh builds it)") {
		t.Errorf("message = %q", ft.msg)
	}
}

type fakeTB struct {
	testing.TB
	msg string
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// TestFreePortsDistinct: the ports chosen together for etcd and the API
// server never repeat (each was taken and released alone before, and one
// came back twice).
func TestFreePortsDistinct(t *testing.T) {
	for range 50 {
		ports, err := freePorts(3)
		if err != nil {
			t.Fatal(err)
		}
		seen := map[int]bool{}
		for _, p := range ports {
			if p == 0 || seen[p] {
				t.Fatalf("freePorts(3) = %v: want three distinct ports", ports)
			}
			seen[p] = true
		}
	}
}
