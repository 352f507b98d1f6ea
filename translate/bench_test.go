package translate

import (
	"fmt"
	"strings"
	"testing"

	"github.com/meshgate/meshgate/config"
)

// BenchmarkTranslate10k translates the reload benchmark's snapshot: one
// Gateway, one Backend and 10,000 HTTPRoutes, one per host.
func BenchmarkTranslate10k(b *testing.B) {
	var y strings.Builder
	y.WriteString(`apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: meshgate}
spec: {controllerName: gateway.meshgate.dev/controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: bench, namespace: default}
spec:
  gatewayClassName: meshgate
  addresses: [{type: IPAddress, value: 127.0.0.1}]
  listeners:
  - {name: http, protocol: HTTP, port: 8093}
---
apiVersion: gateway.meshgate.dev/v1alpha1
kind: Backend
metadata: {name: origin, namespace: default}
spec:
  endpoints: [{address: 127.0.0.1, port: 9001}]
`)
	for i := range 10000 {
		fmt.Fprintf(&y, "---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r%d}\nspec:\n  parentRefs: [{name: bench}]\n  hostnames: [h%d.bench.local]\n  rules:\n  - matches: [{path: {type: PathPrefix, value: /p%d}}]\n    backendRefs: [{group: gateway.meshgate.dev, kind: Backend, name: origin}]\n", i, i, i)
	}
	s, err := config.Parse("bench.yaml", []byte(y.String()))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		res := Translate(s, Options{})
		if res.Config == nil || len(res.Config.Listeners) != 1 || len(res.Config.Listeners[0].Hosts[0].Routes) != 10000 {
			b.Fatal("unexpected translation")
		}
	}
}
