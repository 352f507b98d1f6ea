package e2e

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"
	"sigs.k8s.io/yaml"

	mgv1alpha1 "github.com/meshgate/meshgate/api/v1alpha1"
)

// TestKubernetesRollout: with --kubernetes the gateway drives a Rollout
// from its own measurements, writes its progress and conditions to status,
// and `kubectl edit`-style changes of spec (promote) take effect.
func TestKubernetesRollout(t *testing.T) {
	e := newKubeEnv(t)
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
	e.service("app-v1", newKubeBackend(t, "v1"))
	e.service("app-v2", newKubeBackend(t, "v2"))
	p80 := gwapiv1.PortNumber(80)
	zero := int32(0)
	ruleName := gwapiv1.SectionName("main")
	e.create(&gwapiv1.HTTPRoute{
		ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: e.ns},
		Spec: gwapiv1.HTTPRouteSpec{
			CommonRouteSpec: gwapiv1.CommonRouteSpec{ParentRefs: []gwapiv1.ParentReference{{Name: "gw"}}},
			Rules: []gwapiv1.HTTPRouteRule{{Name: &ruleName, BackendRefs: []gwapiv1.HTTPBackendRef{
				{BackendRef: gwapiv1.BackendRef{BackendObjectReference: gwapiv1.BackendObjectReference{Name: "app-v1", Port: &p80}}},
				{BackendRef: gwapiv1.BackendRef{BackendObjectReference: gwapiv1.BackendObjectReference{Name: "app-v2", Port: &p80}, Weight: &zero}},
			}}},
		},
	})
	var u unstructured.Unstructured
	if err := yaml.Unmarshal([]byte(`
apiVersion: gateway.meshgate.dev/v1alpha1
kind: Rollout
metadata: {name: app, namespace: apps}
spec:
  targetRef: {kind: HTTPRoute, name: app, ruleName: main}
  stableBackend: {name: app-v1}
  canaryBackend: {name: app-v2}
  steps:
  - {weight: 10, minDuration: 500ms, minRequests: 5}
  - {weight: 50, minDuration: 1h, minRequests: 5}
  analysis: {maxErrorRate: "1"}`), &u.Object); err != nil {
		t.Fatal(err)
	}
	e.create(&u)

	g := startGateway(t, ip, "", "--kubernetes", "--kubeconfig", e.cp.Kubeconfig, "--rollout-interval", "100ms")
	stop := load(t, g.url(port, "/"))
	defer stop()
	ro := &mgv1alpha1.Rollout{ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: e.ns}}
	get := func() *mgv1alpha1.Rollout {
		if err := e.c.Get(e.ctx(), client.ObjectKeyFromObject(ro), ro); err != nil {
			t.Fatal(err)
		}
		return ro
	}
	e.eventually("Rollout at step 2 (50%) in status", func() (bool, string) {
		st := get().Status
		c := condition(st.Conditions, mgv1alpha1.RolloutConditionProgressing)
		if st.Phase != mgv1alpha1.RolloutProgressing || st.Step != 1 || st.CanaryWeight != 50 || c == nil || c.Status != metav1.ConditionTrue || st.Canary == nil {
			return false, fmt.Sprintf("%+v", st)
		}
		return true, ""
	})
	t.Logf("status: phase %s step %d weight %d: %s", ro.Status.Phase, ro.Status.Step, ro.Status.CanaryWeight, ro.Status.Message)

	e.update(ro, func() { ro.Spec.Promote = true })
	e.eventually("Rollout Succeeded (promoted) in status", func() (bool, string) {
		st := get().Status
		c := condition(st.Conditions, mgv1alpha1.RolloutConditionSucceeded)
		if st.Phase != mgv1alpha1.RolloutSucceeded || st.CanaryWeight != 100 || c == nil || c.Status != metav1.ConditionTrue || c.Reason != "Promoted" {
			return false, fmt.Sprintf("%+v", st)
		}
		return true, ""
	})
	stop()
	e.eventually("every request to v2", func() (bool, string) {
		for i := 0; i < 20; i++ {
			resp, err := defaultClient.Get(g.url(port, "/"))
			if err != nil {
				return false, err.Error()
			}
			resp.Body.Close()
			if b := resp.Header.Get("X-Backend"); resp.StatusCode != http.StatusOK || b != "v2" {
				return false, fmt.Sprintf("request %d: %d from %q", i, resp.StatusCode, b)
			}
		}
		return true, ""
	})
	_ = time.Second
}
